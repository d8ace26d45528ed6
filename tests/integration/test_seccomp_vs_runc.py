"""vessel-runtime's container process is locked down like runc's.

Both runtimes start a sleeping container from the same bundle (Docker's
default seccomp profile, a non-root user with an ambient capability).  The
capability sets must be equal, and each filter, read back from the kernel
with PTRACE_SECCOMP_GET_FILTER, must decide like the other on every syscall
number in the BPF interpreter of test_seccomp_bpf.
"""

import ctypes
import json
import os
import shutil
import sys
import time

import pytest

from helpers import runtime
from vessel.runtime import defaults, seccomp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
from test_seccomp_bpf import AUDIT_AARCH64, AUDIT_I386, AUDIT_X86_64, run  # noqa: E402  (the BPF interpreter)

RUNC = shutil.which("runc")
pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(RUNC is None, reason="runc is not installed"),
              pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")]

PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 16, 17, 0x420C
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)


def loaded_filter(pid):
    """The (single) seccomp program of process `pid`, as the kernel holds it."""
    assert _libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0, os.strerror(ctypes.get_errno())
    try:
        os.waitpid(pid, 0)
        count = _libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, None, None)
        assert count > 0, os.strerror(ctypes.get_errno())
        buffer = ctypes.create_string_buffer(8 * count)
        assert _libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, None, buffer) == count
        return buffer.raw
    finally:
        _libc.ptrace(PTRACE_DETACH, pid, None, None)


def container_pid(root, cid, runtime_cmd=None):
    for _ in range(100):
        state = runtime(root, "state", cid, runtime_cmd=runtime_cmd)
        if state.returncode == 0 and json.loads(state.stdout)["status"] == "running":
            pid = json.loads(state.stdout)["pid"]
            with open(f"/proc/{pid}/status") as fh:
                if "Seccomp:\t2" in fh.read():
                    return pid
        time.sleep(0.05)
    raise AssertionError(f"{cid} did not start: {state.stderr}")


def status_lines(pid):
    with open(f"/proc/{pid}/status") as fh:
        return [line for line in fh if line.startswith(("Cap", "NoNewPrivs", "Seccomp:", "Uid", "Gid"))]


def newer_than_libseccomp_2_5_4():
    """Syscall numbers Debian 12's runc cannot name (added after Linux 6.1, and uretprobe)."""
    numbers = set(range(451, 480)) | {335, 336}
    return numbers | {n | 0x40000000 for n in numbers}


def test_locked_down_like_runc(tmp_path, bundle, names):
    def edit(cfg):
        cfg["linux"]["seccomp"] = defaults.default_seccomp()
        cfg["linux"]["cgroupsPath"] = ""  # below the caller's own cgroup
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        three = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        cfg["process"]["capabilities"] = {"bounding": three + ["CAP_SETUID"], "effective": three,
                                          "permitted": three, "inheritable": ["CAP_NET_BIND_SERVICE"],
                                          "ambient": ["CAP_NET_BIND_SERVICE"]}

    path = bundle(("sleep", "60"), edit=edit)
    ours_id, theirs_id = names("ours"), names("runc")
    ours_root, theirs_root = tmp_path / "v", tmp_path / "r"  # short: runtime sockets live below
    try:
        runtime(ours_root, "run", "-d", "--bundle", path, ours_id, check=True)
        runtime(theirs_root, "run", "-d", "--bundle", path, theirs_id, runtime_cmd=[RUNC], check=True)
        ours_pid, theirs_pid = container_pid(ours_root, ours_id), container_pid(theirs_root, theirs_id, [RUNC])
        ours_status, theirs_status = status_lines(ours_pid), status_lines(theirs_pid)
        ours, theirs = loaded_filter(ours_pid), loaded_filter(theirs_pid)
    finally:
        runtime(ours_root, "delete", "--force", ours_id)
        runtime(theirs_root, "delete", "--force", theirs_id, runtime_cmd=[RUNC])
    assert ours_status == theirs_status
    assert "CapAmb:\t0000000000000400\n" in ours_status  # CAP_NET_BIND_SERVICE survived execve
    skip = newer_than_libseccomp_2_5_4()
    x32 = seccomp.syscall_table("SCMP_ARCH_X32").values()
    table64, table32 = seccomp.syscall_table("SCMP_ARCH_X86_64"), seccomp.syscall_table("SCMP_ARCH_X86")
    with_args = {table64["socket"], table64["personality"], table64["clone"], table32["personality"],
                 table32["clone"], table32["socket"]}
    checks = 0
    for arch, numbers in ((AUDIT_X86_64, [*range(500), *x32, 0x3FFFFFFF, 0xFFFFFFFF]),
                          (AUDIT_I386, [*range(500), 0xFFFFFFFF]), (AUDIT_AARCH64, range(20))):
        for nr in numbers:
            if nr in skip:
                continue
            values = (0, 8, 38, 39, 40, 41, 0x20000, 0x20000000, 0xFFFFFFFF, 1 << 32)
            for value in values if nr in with_args else values[:2]:
                args = (value, 1, 0, 0, 0, 0)
                checks += 1
                assert run(ours, nr, arch, args) == run(theirs, nr, arch, args), (hex(arch), nr, hex(value))
    assert checks > 2000
