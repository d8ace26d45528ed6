"""seccomp filters loaded into the real kernel, in forked children.

Each child sets no_new_privs, loads a compiled profile, makes raw syscalls
through libc's syscall(), reports errno values through a pipe and _exits.
"""

import array
import ctypes
import json
import mmap
import os
import signal
import socket
import struct

import pytest

from helpers import run_in_child

from vessel.errors import InvalidArgument, PermissionDenied, Unavailable
from vessel.runtime import linux, seccomp

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")

NR = seccomp.syscall_table("SCMP_ARCH_X86_64")
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
EPERM, EACCES, ENOSYS = 1, 13, 38
X32 = 0x40000000
# What the child needs to report back and exit, on top of each test's rules.
BASE = ["read", "write", "close", "exit", "exit_group", "brk", "mmap", "munmap", "mremap",
        "madvise", "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "futex", "getpid", "gettid"]


def raw(name_or_nr, *args):
    """errno of a raw syscall, or ("ok", return value)."""
    nr = NR[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
    ctypes.set_errno(0)
    result = LIBC.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args))
    return ["ok", result] if result != -1 else ctypes.get_errno()


def in_filtered_child(profile, body, flags=None, no_new_privs=True):
    """Fork; the child loads `profile` then runs body(); returns (wait status, JSON result)."""
    config = seccomp.parse(profile)
    program = seccomp.compile(config)

    def filtered():
        if no_new_privs:
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        listener = seccomp.install(program, config.flags if flags is None else flags)
        return body() if listener is None else body(listener)

    return run_in_child(filtered)


def ok_child(profile, body, **kwargs):
    status, result = in_filtered_child(profile, body, **kwargs)
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


def allow(*names):
    return {"names": list(names), "action": "SCMP_ACT_ALLOW"}


def arg(index, op, value, value_two=None):
    out = {"index": index, "value": value, "op": f"SCMP_CMP_{op}"}
    if value_two is not None:
        out["valueTwo"] = value_two
    return out


def test_allowlist_with_default_errno():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EACCES,
               "syscalls": [allow(*BASE, "getppid", "uname")]}
    parent = os.getpid()
    result = ok_child(profile, lambda: {"ppid": raw("getppid"), "uid": raw("getuid"),
                                        "mkdir": raw("mkdir", 0, 0o755), "uname": os.uname().sysname})
    assert result == {"ppid": ["ok", parent], "uid": EACCES, "mkdir": EACCES, "uname": "Linux"}


def test_errno_per_rule_and_default_eperm():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
        {"names": ["getgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
        {"names": ["geteuid", "getegid"], "action": "SCMP_ACT_ERRNO"},
    ]}
    result = ok_child(profile, lambda: [raw(n) for n in ("getuid", "getgid", "geteuid", "getegid", "getppid")])
    assert result[:4] == [28, ["ok", 0], EPERM, EPERM]
    assert result[4] == ["ok", os.getpid()]


OPS = {
    "EQ": ("getuid", lambda a, v: a == v), "NE": ("getgid", lambda a, v: a != v),
    "LT": ("geteuid", lambda a, v: a < v), "LE": ("getegid", lambda a, v: a <= v),
    "GT": ("getppid", lambda a, v: a > v), "GE": ("getpgrp", lambda a, v: a >= v),
}
VALUE = (5 << 32) | 7
PROBES = [0, 6, 7, 8, 5 << 32, VALUE - 1, VALUE, VALUE + 1, 6 << 32, (1 << 64) - 1]


def test_each_operator_in_the_kernel():
    rules = [{"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + i,
              "args": [arg(2, op, VALUE)]} for i, (op, (name, _)) in enumerate(sorted(OPS.items()))]
    rules.append({"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
                  "args": [arg(1, "MASKED_EQ", 0xFF0000000F, 0x0500000007)]})
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}

    def denied(name, *args):
        return isinstance(raw(name, *args), int)

    def body():
        out = {op: [denied(name, 0, 0, probe) for probe in PROBES] for op, (name, _) in OPS.items()}
        out["MASKED_EQ"] = [denied("getsid", 0, probe) for probe in
                            (0x0500000007, 0x05000000F7, 0xA500000007, 0x0500000006, 0x0600000007, 7)]
        out["errno"] = raw("getuid", 0, 0, VALUE)
        return out

    result = ok_child(profile, body)
    for op, (_, test) in OPS.items():
        assert result[op] == [test(probe, VALUE) for probe in PROBES], op
    assert result["MASKED_EQ"] == [True, True, False, False, False, False]
    assert result["errno"] == 100  # EQ is first in sorted order


def test_two_conditions_and_two_rules():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 40,
         "args": [arg(0, "EQ", 1), arg(1, "GT", 10)]},
        {"names": ["getgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 41, "args": [arg(0, "EQ", 1)]},
        {"names": ["getgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42, "args": [arg(0, "EQ", 2)]},
    ]}
    result = ok_child(profile, lambda: [
        raw("getuid", 1, 11), raw("getuid", 1, 10), raw("getuid", 2, 11),
        raw("getgid", 1), raw("getgid", 2), raw("getgid", 3)])
    assert result == [40, ["ok", 0], ["ok", 0], 41, 42, ["ok", 0]]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"])
def test_kill_actions_end_the_child_with_sigsys(action):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": action}]}
    status, result = in_filtered_child(profile, lambda: raw("getppid"))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, (status, result)


def test_trap_sends_a_catchable_sigsys():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]}

    def body():
        caught = []
        signal.signal(signal.SIGSYS, lambda signum, frame: caught.append(signum))
        raw("getppid")
        return caught

    assert ok_child(profile, body) == [signal.SIGSYS]


def test_log_allows_and_trace_without_tracer_is_enosys():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
        {"names": ["getuid"], "action": "SCMP_ACT_TRACE"}]}
    assert ok_child(profile, lambda: [raw("getppid"), raw("getuid")]) == [["ok", os.getpid()], ENOSYS]


def test_unknown_names_are_skipped_and_newer_syscalls_get_enosys():
    profile = {"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [allow(*BASE, "getppid", "no_such_syscall", "fork_in_a_dream")]}
    result = ok_child(profile, lambda: [raw("getppid"), raw("getuid"), raw(NR["exit_group"] + 1), raw(440)])
    assert result == [["ok", os.getpid()], EPERM, ENOSYS, ENOSYS]


def test_x32_calls_are_killed_unless_x32_is_listed():
    profile = {"defaultAction": "SCMP_ACT_ALLOW"}
    status, _ = in_filtered_child(profile, lambda: raw(X32 | NR["getpid"]))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
    listed = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
              "syscalls": [allow(*BASE)]}
    # getpid is allowed for x32 too: the kernel (no CONFIG_X86_X32_ABI here) answers ENOSYS or runs it;
    # umask is not allowed: the filter answers EPERM.
    result = ok_child(listed, lambda: [raw(X32 | NR["getpid"]), raw(X32 | NR["umask"], 0o22)])
    assert result[0] == ENOSYS or result[0][0] == "ok"
    assert result[1] == EPERM


def int80(number):
    """Run `int 0x80` (the i386 ABI) with eax=number and no arguments; returns eax."""
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(b"\xb8" + struct.pack("<I", number) + b"\xcd\x80\xc3")  # mov eax, n; int 0x80; ret
    function = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    return function()


def test_i386_calls_follow_the_architecture_list():
    if int80(20) != os.getpid():
        pytest.skip("no IA32 emulation")
    status, _ = in_filtered_child({"defaultAction": "SCMP_ACT_ALLOW"}, lambda: int80(20))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS  # bad arch
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
               "syscalls": [allow(*BASE, "getppid")]}
    # i386 getpid (20) is allowed by name; i386 getuid (24) is below the cut-off and denied.
    result = ok_child(profile, lambda: [int80(20), int80(24), os.getpid()])
    assert result[0] == result[2]
    assert result[1] == -EPERM


def test_install_needs_no_new_privs_or_cap_sys_admin():
    program = seccomp.compile(seccomp.parse({"defaultAction": "SCMP_ACT_ALLOW"}))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        message = "no error"
        try:
            os.setresuid(1000, 1000, 1000)
            seccomp.install(program)
        except PermissionDenied as exc:
            message = str(exc)
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        message = reader.read()
    os.waitpid(pid, 0)
    assert message == "seccomp: loading a filter needs no_new_privs or CAP_SYS_ADMIN"


def test_flags_are_accepted_by_the_kernel():
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                         "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
               "syscalls": [{"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3}]}
    assert ok_child(profile, lambda: raw("getuid")) == 3


def test_large_profile_loads():
    # a rule with three 64-bit comparisons for 200 syscalls: thousands of instructions, far jumps
    names = sorted(NR, key=NR.get)[:200]
    keep = set(BASE)
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 77,
         "args": [arg(3, "EQ", 0xDEAD), arg(4, "GT", 1 << 40), arg(5, "MASKED_EQ", 0xF, 0x3)]}
        for name in names if name not in keep]}
    program = seccomp.compile(seccomp.parse(profile))
    assert len(program) // 8 > 2000
    result = ok_child(profile, lambda: [raw("getuid", 0, 0, 0, 0xDEAD, 1 << 41, 0x13),
                                        raw("getuid", 0, 0, 0, 0xDEAD, 1 << 40, 0x13),
                                        raw("getppid", 0, 0, 0, 0xDEAD, 1 << 41, 0x3)])
    assert result == [77, ["ok", 0], 77]


def test_notify_hands_the_listener_to_an_agent(tmp_path):
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path, "listenerMetadata": "meta",
               "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 4242, "bundle": "/b"}

    def body(listener):
        seccomp.send_listener(listener, path, state, "meta")
        os.close(listener)
        return raw("getppid")  # answered by the agent below

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        server.close()
        os.close(read_end)
        config = seccomp.parse(profile)
        try:
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            payload = json.dumps(body(seccomp.install(seccomp.compile(config), config.flags)))
        except BaseException as exc:
            payload = json.dumps(repr(exc))
        os.write(write_end, payload.encode())
        os._exit(0)
    os.close(write_end)
    try:
        server.settimeout(10)
        conn, _ = server.accept()
        fds = array.array("i")
        message, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data)
        conn.close()
        assert len(fds) == 1
        listener = fds[0]
        notification = bytearray(80)  # struct seccomp_notif
        import fcntl
        fcntl.ioctl(listener, 0xC0502100, notification)  # SECCOMP_IOCTL_NOTIF_RECV
        notif_id, notif_pid, _, nr = struct.unpack_from("=QIIi", notification)
        response = struct.pack("=QqiI", notif_id, 31337, 0, 0)  # struct seccomp_notif_resp
        fcntl.ioctl(listener, 0xC0182101, response)  # SECCOMP_IOCTL_NOTIF_SEND
        os.close(listener)
    finally:
        server.close()
        with os.fdopen(read_end) as reader:
            output = reader.read()
        _, status = os.waitpid(pid, 0)
    assert json.loads(message) == {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 4242,
                                   "metadata": "meta", "state": state}
    assert nr == NR["getppid"] and notif_pid == pid
    assert json.loads(output) == ["ok", 31337]
    assert os.waitstatus_to_exitcode(status) == 0


def test_send_listener_without_agent_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match=r"^seccomp agent at .*/nobody\.sock: No such file or directory$"):
        seccomp.send_listener(0, str(tmp_path / "nobody.sock"), {"pid": 1}, "")


def test_kernel_rejects_a_malformed_program_with_one_line():
    no_return = struct.pack("=HBBI", 0x20, 0, 0, 4)  # ld [4] and nothing else
    result = ok_child({"defaultAction": "SCMP_ACT_ALLOW"}, lambda: _try_install(no_return))
    assert result.startswith("seccomp: the kernel rejected the filter or its flags 0x0: ")
    with pytest.raises(InvalidArgument, match="8-byte instructions"):
        seccomp.install(b"\x06\x00")


def _try_install(program):
    try:
        seccomp.install(program)
    except InvalidArgument as exc:
        return str(exc)
    return "loaded"


def seccomp_status():
    with open("/proc/self/status") as fh:
        return [line for line in fh if line.startswith("Seccomp")]


def test_features_probe_the_kernel_without_loading_anything():
    before = seccomp_status()
    features = seccomp.features()
    assert features["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in features["actions"] and len(features["actions"]) == 9
    assert features["operators"] == sorted(f"SCMP_CMP_{op}" for op in ("NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"))
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"} <= set(features["archs"])
    assert features["knownFlags"] == sorted(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                             "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                             "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    assert features["supportedFlags"] == features["knownFlags"]  # Linux >= 6.0
    assert seccomp_status() == before
