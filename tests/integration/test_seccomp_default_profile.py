"""Docker's default profile (runtime/data/seccomp_default.json) in the real kernel."""

import ctypes
import json
import os
import socket

import pytest

from helpers import run_in_child

from vessel.runtime import linux, seccomp

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")

PROFILE = os.path.join(os.path.dirname(seccomp.__file__), "..", "data", "seccomp_default.json")
BUSYBOX = "/usr/bin/busybox"
NR = seccomp.syscall_table("SCMP_ARCH_X86_64")
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
EPERM, ENOSYS = 1, 38
CLONE_NEWNS = 0x00020000


def raw(name, *args):
    ctypes.set_errno(0)
    result = LIBC.syscall(ctypes.c_long(NR[name]), *(ctypes.c_ulong(a) for a in args))
    return "ok" if result != -1 else ctypes.get_errno()


def workload(tmp):
    """What a busybox container does: files, fork+exec, an AF_INET socket."""
    out = {}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        out["socket"] = "ok"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(write_end, 1)
        os.execv(BUSYBOX, ["sh", "-c", f"echo hello > {tmp}/f && cat {tmp}/f && ls {tmp} && id -u"])
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        out["sh"] = reader.read()
    out["sh_status"] = os.waitpid(pid, 0)[1]
    return out


def test_default_profile_blocks_escapes_and_runs_a_workload(tmp_path):
    with open(PROFILE, "rb") as fh:
        config = seccomp.parse(json.loads(fh.read()))
    program = seccomp.compile(config)

    def filtered():
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        assert seccomp.install(program, config.flags) is None
        result = {name: raw(name) for name in (
            "keyctl", "add_key", "mount", "kexec_load", "bpf", "open_by_handle_at", "umount2",
            "setns", "io_uring_setup", "userfaultfd", "init_module", "reboot", "pivot_root")}
        result["unshare(CLONE_NEWNS)"] = raw("unshare", CLONE_NEWNS)
        result["clone3"] = raw("clone3", 0, 0)
        result["socket(AF_ALG)"] = raw("socket", 38, 5, 0)
        result["socket(AF_VSOCK)"] = raw("socket", 40, 1, 0)
        result["personality(query)"] = raw("personality", 0xFFFFFFFF)
        result["personality(READ_IMPLIES_EXEC)"] = raw("personality", 0x0400000)
        result["getppid"] = raw("getppid")
        result["workload"] = workload(tmp_path)
        return result

    status, result = run_in_child(filtered)
    assert os.waitstatus_to_exitcode(status) == 0, result
    workload_result = result.pop("workload")
    assert result == {
        "keyctl": EPERM, "add_key": EPERM, "mount": EPERM, "kexec_load": EPERM, "bpf": EPERM,
        "open_by_handle_at": EPERM, "umount2": EPERM, "setns": EPERM, "io_uring_setup": EPERM,
        "userfaultfd": EPERM, "init_module": EPERM, "reboot": EPERM, "pivot_root": EPERM,
        "unshare(CLONE_NEWNS)": EPERM, "clone3": ENOSYS, "socket(AF_ALG)": EPERM,
        "socket(AF_VSOCK)": EPERM, "personality(query)": "ok",
        "personality(READ_IMPLIES_EXEC)": EPERM, "getppid": "ok",
    }
    assert workload_result == {"socket": "ok", "sh": "hello\nf\n0\n", "sh_status": 0}
