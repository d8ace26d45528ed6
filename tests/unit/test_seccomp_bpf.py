"""seccomp: config validation, and compiled decisions checked in a BPF interpreter.

The interpreter below runs a program on a struct seccomp_data the way the
kernel does.  Decisions are cross-checked against libseccomp (Debian's
python3-seccomp, run under /usr/bin/python3) with runc's -ENOSYS stub rule.
"""

import json
import os
import struct
import subprocess

import pytest

from vessel.errors import InvalidArgument, Unsupported
from vessel.runtime import seccomp
from vessel.runtime.seccomp import compiler
from vessel.runtime.seccomp.config import (
    RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_KILL_THREAD, RET_LOG, RET_TRACE, RET_TRAP,
    RET_USER_NOTIF,
)

AUDIT_X86_64 = 0xC000003E
AUDIT_I386 = 0x40000003
AUDIT_AARCH64 = 0xC00000B7
AUDIT_ARM = 0x40000028
X32 = 0x40000000
ENOSYS = RET_ERRNO | 38
EPERM = RET_ERRNO | 1
NR = seccomp.syscall_table("SCMP_ARCH_X86_64")
NR32 = seccomp.syscall_table("SCMP_ARCH_X86")


# --- a classic BPF interpreter -------------------------------------------------------

def run(program, nr, arch=AUDIT_X86_64, args=(0, 0, 0, 0, 0, 0)):
    """The SECCOMP_RET_* value `program` returns for one syscall."""
    data = struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, 0x1234, *args)
    insns = list(struct.iter_unpack("=HBBI", program))
    assert 0 < len(insns) <= 4096
    a = x = 0
    memory = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            assert k % 4 == 0 and k < len(data)
            a = struct.unpack_from("=I", data, k)[0]
        elif code == 0x00:  # ld #k
            a = k
        elif code == 0x60:  # ld M[k]
            a = memory[k]
        elif code == 0x61:  # ldx M[k]
            x = memory[k]
        elif code == 0x02:  # st M[k]
            memory[k] = a
        elif code == 0x03:  # stx M[k]
            memory[k] = x
        elif code == 0x07:  # tax
            x = a
        elif code == 0x87:  # txa
            a = x
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x44:  # or #k
            a |= k
        elif code == 0x06:  # ret #k
            return k
        elif code == 0x16:  # ret a
            return a
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45, 0x1D, 0x2D, 0x3D, 0x4D):
            operand = x if code & 0x08 else k
            kind = code & 0xF0
            taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand,
                     0x40: bool(a & operand)}[kind]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x} at {pc - 1}")
        assert pc < len(insns), "ran off the end of the program"


def compiled(profile, arch="SCMP_ARCH_X86_64"):
    return seccomp.compile(seccomp.parse(profile), arch)


def allow(*names, **extra):
    return {"names": list(names), "action": "SCMP_ACT_ALLOW", **extra}


def arg(index, op, value, value_two=None):
    out = {"index": index, "value": value, "op": f"SCMP_CMP_{op}"}
    if value_two is not None:
        out["valueTwo"] = value_two
    return out


# --- parse -------------------------------------------------------------------------

def test_parse_reads_everything():
    config = seccomp.parse({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "listenerPath": "/run/agent.sock", "listenerMetadata": "hello",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [arg(1, "MASKED_EQ", 0o7000, 0), arg(0, "NE", 5)]},
        ],
    })
    assert config.default_action == RET_ERRNO | 38
    assert config.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86")
    assert config.flag_bits == 6
    assert config.listener_path == "/run/agent.sock" and config.listener_metadata == "hello"
    assert config.uses_notify
    read, notify, chmod = config.rules
    assert read.names == ("read", "write") and read.action == RET_ALLOW
    assert notify.action == RET_USER_NOTIF
    assert chmod.action == RET_ERRNO | 13
    assert [(c.index, c.op, c.value, c.value_two) for c in chmod.conditions] == [
        (1, "SCMP_CMP_MASKED_EQ", 0o7000, 0), (0, "SCMP_CMP_NE", 5, 0)]


@pytest.mark.parametrize("action, ret", [
    ("SCMP_ACT_KILL", RET_KILL_THREAD), ("SCMP_ACT_KILL_THREAD", RET_KILL_THREAD),
    ("SCMP_ACT_KILL_PROCESS", RET_KILL_PROCESS), ("SCMP_ACT_TRAP", RET_TRAP),
    ("SCMP_ACT_ERRNO", RET_ERRNO | 1), ("SCMP_ACT_TRACE", RET_TRACE | 1),
    ("SCMP_ACT_ALLOW", RET_ALLOW), ("SCMP_ACT_LOG", RET_LOG),
])
def test_parse_actions(action, ret):
    assert seccomp.parse({"defaultAction": action}).default_action == ret


@pytest.mark.parametrize("profile, message", [
    ([], "must be an object"),
    ({}, "defaultAction is required"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown action 'SCMP_ACT_NOPE'"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "cannot be the default"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "errnoRet is only valid"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "from 0 to 65535"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]},
     "unknown architecture 'SCMP_ARCH_Z80'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": "SCMP_ARCH_X86"}, "must be a list"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
     "unknown flag 'SECCOMP_FILTER_FLAG_FAST'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}, "syscalls must be a list"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]},
     "names must be a non-empty list"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [""], "action": "SCMP_ACT_ALLOW"}]},
     "is not a syscall name"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}, "unknown action None"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL",
                                                        "errnoRet": 3}]}, "errnoRet is only valid"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [allow("read", args=[arg(6, "EQ", 1)])]}, "index must be an integer from 0 to 5"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [allow("read", args=[arg(0, "EQ", 1 << 64)])]}, "value must be an integer"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [allow("read", args=[arg(0, "EQ", 1.5)])]}, "value must be an integer"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [allow("read", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}])]},
     "unknown operator 'SCMP_CMP_ABOUT'"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [allow("read", args=[{"index": 0, "op": "SCMP_CMP_EQ"}])]}, "value is required"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}, "listenerPath is required"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/x",
      "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}, "cannot be used for write"),
])
def test_parse_rejects_with_one_line(profile, message):
    with pytest.raises(InvalidArgument) as info:
        seccomp.parse(profile)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith("linux.seccomp: ")


def test_parse_drops_rules_equal_to_default_and_splits_same_argument_comparisons():
    config = seccomp.parse({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"},
        allow("socket", args=[arg(0, "NE", 38), arg(0, "NE", 40)]),
    ]})
    # Like runc: two comparisons of one argument become alternatives.
    assert [len(rule.conditions) for rule in config.rules] == [1, 1]
    assert config.syscall_names == ("keyctl", "socket")


# --- compile: decisions ------------------------------------------------------------

def test_allowlist_default_errno_and_bad_arch():
    program = compiled({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
                        "syscalls": [allow("read", "write", "getpid")]})
    assert run(program, NR["read"]) == RET_ALLOW
    assert run(program, NR["getpid"]) == RET_ALLOW
    assert run(program, NR["close"]) == RET_ERRNO | 13
    assert run(program, NR["getpid"], arch=AUDIT_I386) == RET_KILL_THREAD  # not listed
    assert run(program, NR["getpid"], arch=AUDIT_AARCH64) == RET_KILL_THREAD
    assert run(program, X32 | 39) == RET_KILL_THREAD  # x32 not listed
    assert run(program, NR["getpid"] + 1) == ENOSYS  # newer than anything in the profile


def test_subarchitectures_and_x32():
    program = compiled({"defaultAction": "SCMP_ACT_ERRNO",
                        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                          "SCMP_ARCH_AARCH64"],
                        "syscalls": [allow("getpid", "fork")]})
    assert run(program, NR32["getpid"], arch=AUDIT_I386) == RET_ALLOW
    assert run(program, NR32["fork"], arch=AUDIT_I386) == RET_ALLOW
    assert run(program, 1, arch=AUDIT_I386) == EPERM  # exit on i386
    assert run(program, NR["getpid"], arch=AUDIT_I386) == ENOSYS  # 39 > 20, newest i386 name
    assert run(program, X32 | 39) == RET_ALLOW
    assert run(program, X32 | 1) == EPERM  # x32 write: not allowed
    assert run(program, NR["getpid"], arch=AUDIT_AARCH64) == RET_KILL_THREAD  # not this kernel
    aarch = compiled({"defaultAction": "SCMP_ACT_ERRNO",
                      "architectures": ["SCMP_ARCH_ARM"], "syscalls": [allow("getpid")]},
                     "SCMP_ARCH_AARCH64")
    assert run(aarch, 172, arch=AUDIT_AARCH64) == RET_ALLOW
    assert run(aarch, 20, arch=AUDIT_ARM) == RET_ALLOW
    assert run(aarch, 172, arch=AUDIT_X86_64) == RET_KILL_THREAD


def test_unknown_names_are_skipped():
    program = compiled({"defaultAction": "SCMP_ACT_ERRNO",
                        "syscalls": [allow("no_such_syscall", "getpid", "socketcall")]})
    assert run(program, NR["getpid"]) == RET_ALLOW
    with pytest.raises(Unsupported):
        seccomp.compile(seccomp.parse({"defaultAction": "SCMP_ACT_ALLOW"}), "SCMP_ARCH_S390X")


def test_no_enosys_stub_for_allow_like_default_or_enosys_default():
    for default in ({"defaultAction": "SCMP_ACT_ALLOW"}, {"defaultAction": "SCMP_ACT_LOG"},
                    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}):
        program = compiled({**default, "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_KILL"}]})
        assert run(program, 400) == seccomp.parse(default).default_action
        assert run(program, NR["getpid"]) == RET_KILL_THREAD


def test_empty_profile():
    program = compiled({"defaultAction": "SCMP_ACT_LOG"})
    assert run(program, 0) == RET_LOG
    assert run(program, 0, arch=AUDIT_I386) == RET_KILL_THREAD


OPS = {
    "EQ": lambda a, v: a == v, "NE": lambda a, v: a != v, "LT": lambda a, v: a < v,
    "LE": lambda a, v: a <= v, "GT": lambda a, v: a > v, "GE": lambda a, v: a >= v,
}
VALUES = [0, 1, 5, 0xFFFFFFFF, 1 << 32, (1 << 32) + 5, 0x123456789, (1 << 64) - 1, 0x7FFFFFFF00000000]


def probes(value):
    out = set()
    for base in (value, value >> 32 << 32, value & 0xFFFFFFFF):
        for delta in (-(1 << 32), -1, 0, 1, 1 << 32):
            out.add((base + delta) % (1 << 64))
    return sorted(out)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_comparison_on_64_bit_values(op):
    for value in VALUES:
        program = compiled({"defaultAction": "SCMP_ACT_ERRNO",
                            "syscalls": [allow("getpid", args=[arg(3, op, value)])]})
        for probe in probes(value):
            expected = RET_ALLOW if OPS[op](probe, value) else EPERM
            assert run(program, NR["getpid"], args=(0, 0, 0, probe, 0, 0)) == expected, (op, value, probe)


@pytest.mark.parametrize("op", sorted(OPS))
def test_comparisons_on_32_bit_abi_use_the_low_half(op):
    value = (7 << 32) | 5  # libseccomp keeps only the low 32 bits on 32-bit ABIs
    program = compiled({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
                        "syscalls": [allow("getpid", args=[arg(0, op, value)])]})
    for probe in (0, 4, 5, 6, 0xFFFFFFFF):
        expected = RET_ALLOW if OPS[op](probe, 5) else EPERM
        assert run(program, NR32["getpid"], arch=AUDIT_I386, args=(probe, 0, 0, 0, 0, 0)) == expected


def test_masked_eq_two_conditions_and_two_rules():
    program = compiled({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        # clone allowed only without namespace flags (Docker's rule)
        allow("clone", args=[arg(0, "MASKED_EQ", 0x7E020000, 0)]),
        # mmap with both conditions (AND)
        allow("mmap", args=[arg(2, "EQ", 3), arg(1, "LE", 4096)]),
        # personality: two rules (OR)
        allow("personality", args=[arg(0, "EQ", 0)]),
        allow("personality", args=[arg(0, "EQ", 8)]),
        # masked comparison on the high half
        allow("getpid", args=[arg(5, "MASKED_EQ", 0xFF00000000, 0x1200000000)]),
    ]})
    clone = NR["clone"]
    assert run(program, clone, args=(0x11 | 0x100, 0, 0, 0, 0, 0)) == RET_ALLOW
    assert run(program, clone, args=(0x20000000, 0, 0, 0, 0, 0)) == EPERM  # CLONE_NEWPID
    assert run(program, clone, args=(1 << 40, 0, 0, 0, 0, 0)) == RET_ALLOW  # high half unmasked
    mmap = NR["mmap"]
    assert run(program, mmap, args=(0, 4096, 3, 0, 0, 0)) == RET_ALLOW
    assert run(program, mmap, args=(0, 4097, 3, 0, 0, 0)) == EPERM
    assert run(program, mmap, args=(0, 10, 7, 0, 0, 0)) == EPERM
    for value, expected in ((0, RET_ALLOW), (8, RET_ALLOW), (1, EPERM), (8 | 1 << 32, EPERM)):
        assert run(program, NR["personality"], args=(value, 0, 0, 0, 0, 0)) == expected
    getpid = NR["getpid"]
    assert run(program, getpid, args=(0, 0, 0, 0, 0, 0x12_0000_0000 | 0xFFFF)) == RET_ALLOW
    assert run(program, getpid, args=(0, 0, 0, 0, 0, 0x13_0000_0000)) == EPERM


def test_first_matching_rule_wins_and_errno_per_rule():
    program = compiled({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "args": [arg(0, "EQ", 1)]},
        {"names": ["getpid", "getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7},
        {"names": ["getpid"], "action": "SCMP_ACT_KILL"},  # never reached
        {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 9},
    ]})
    assert run(program, NR["getpid"], args=(1, 0, 0, 0, 0, 0)) == RET_ERRNO | 5
    assert run(program, NR["getpid"]) == RET_ERRNO | 7
    assert run(program, NR["getppid"]) == RET_ERRNO | 7
    assert run(program, NR["gettid"]) == RET_TRACE | 9
    assert run(program, NR["read"]) == RET_ALLOW


def test_long_programs_use_trampolines():
    # Every x86_64 syscall with a three-condition rule: thousands of instructions.
    names = sorted(NR, key=NR.get)[:200]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        allow(name, args=[arg(0, "GT", 10), arg(1, "NE", 1 << 33), arg(2, "LT", 99)]) for name in names]}
    program = compiled(profile)
    assert len(program) // 8 > 2000
    jumps = [insn for insn in struct.iter_unpack("=HBBI", program) if insn[0] == 0x05]
    assert jumps, "expected ja trampolines"
    for name in names[::7]:
        assert run(program, NR[name], args=(11, 0, 98, 0, 0, 0)) == RET_ALLOW
        assert run(program, NR[name], args=(11, 1 << 33, 98, 0, 0, 0)) == EPERM
        assert run(program, NR[name], args=(10, 0, 98, 0, 0, 0)) == EPERM


def test_too_long_is_one_line_error():
    names = sorted(NR, key=NR.get)
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        allow(name, args=[arg(i, "GT", 1 << 40) for i in range(6)]) for name in names]}
    with pytest.raises(InvalidArgument, match="more than the kernel's 4096"):
        compiled(profile)


def test_default_profile_compiles_and_decides():
    path = os.path.join(os.path.dirname(compiler.__file__), "..", "data", "seccomp_default.json")
    if not os.path.exists(path):
        pytest.skip("no seccomp_default.json")
    with open(path) as fh:
        profile = json.load(fh)
    program = compiled(profile)
    assert len(program) // 8 < 1000  # three ABIs of ~370 syscalls, runs of neighbours merged
    for name in ("read", "write", "openat", "execve", "clone", "exit_group", "chroot"):
        assert run(program, NR[name]) == RET_ALLOW, name
    for name in ("keyctl", "add_key", "unshare", "mount", "kexec_load", "bpf", "open_by_handle_at",
                 "io_uring_setup", "userfaultfd", "reboot", "setns", "init_module"):
        assert run(program, NR[name]) == EPERM, name
    assert run(program, NR["clone3"]) == ENOSYS
    assert run(program, NR["clone"], args=(0x20000000, 0, 0, 0, 0, 0)) == EPERM
    assert run(program, NR["socket"], args=(38, 5, 0, 0, 0, 0)) == EPERM  # AF_ALG
    assert run(program, NR["socket"], args=(40, 1, 0, 0, 0, 0)) == EPERM  # AF_VSOCK
    for family in (1, 2, 10, 16, 39, 41):
        assert run(program, NR["socket"], args=(family, 1, 0, 0, 0, 0)) == RET_ALLOW
    assert run(program, NR32["getpid"], arch=AUDIT_I386) == RET_ALLOW
    assert run(program, X32 | 39) == RET_ALLOW


# --- cross-check with libseccomp ---------------------------------------------------

LIBSECCOMP_EXPORT = r"""
import json, os, sys, tempfile
import seccomp as s

profile = json.load(sys.stdin)
def action(name, errno):
    return {"SCMP_ACT_ALLOW": s.ALLOW, "SCMP_ACT_KILL": s.KILL, "SCMP_ACT_KILL_THREAD": s.KILL,
            "SCMP_ACT_KILL_PROCESS": s.KILL_PROCESS, "SCMP_ACT_TRAP": s.TRAP, "SCMP_ACT_LOG": s.LOG,
            "SCMP_ACT_ERRNO": s.ERRNO(1 if errno is None else errno),
            "SCMP_ACT_TRACE": s.TRACE(1 if errno is None else errno)}[name]
ops = {"SCMP_CMP_" + k: getattr(s, k) for k in ("NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ")}
default = action(profile["defaultAction"], profile.get("defaultErrnoRet"))
f = s.SyscallFilter(default)
for arch in profile.get("architectures", []):
    try:
        f.add_arch(getattr(s.Arch, arch[len("SCMP_ARCH_"):]))
    except Exception:
        pass  # the native arch is already there
for rule in profile.get("syscalls", []):
    act = action(rule["action"], rule.get("errnoRet"))
    if act == default:
        continue
    conds = [s.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0)) for a in rule.get("args", [])]
    indexes = [a["index"] for a in rule.get("args", [])]
    groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
    for name in rule["names"]:
        for group in groups:
            try:
                f.add_rule(act, name, *group)
            except (ValueError, RuntimeError):
                pass  # unknown name
with tempfile.TemporaryFile() as fh:
    f.export_bpf(fh)
    fh.seek(0)
    sys.stdout.buffer.write(fh.read())
"""


def libseccomp_program(profile):
    if not os.path.exists("/usr/lib/python3/dist-packages/seccomp.cpython-311-x86_64-linux-gnu.so"):
        pytest.skip("python3-seccomp is not installed")
    result = subprocess.run(["/usr/bin/python3", "-c", LIBSECCOMP_EXPORT], input=json.dumps(profile).encode(),
                            capture_output=True, check=True)
    return result.stdout


def runc_decision(libseccomp, profile, nr, arch, args):
    """libseccomp's answer, with runc's -ENOSYS stub in front of it."""
    config = seccomp.parse(profile)
    nr &= 0xFFFFFFFF
    if nr == 0xFFFFFFFF and arch == AUDIT_X86_64 and "SCMP_ARCH_X32" not in config.architectures:
        return run(libseccomp, nr, arch, args)  # runc's stub lets -1 through on x86_64 without x32
    cutoff_arch = {AUDIT_I386: "SCMP_ARCH_X86", AUDIT_X86_64: "SCMP_ARCH_X32" if nr & X32 else "SCMP_ARCH_X86_64",
                   AUDIT_AARCH64: "SCMP_ARCH_AARCH64", AUDIT_ARM: "SCMP_ARCH_ARM"}
    abi = cutoff_arch.get(arch)
    listed = abi == "SCMP_ARCH_X86_64" or abi in config.architectures
    if abi and listed:
        cutoff = compiler._enosys_cutoff(config, abi)
        if cutoff is not None and nr > cutoff:
            return ENOSYS
    return run(libseccomp, nr, arch, args)


CROSS_PROFILES = [
    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [allow("read", "write", "getpid", "exit_group")]},
    {"defaultAction": "SCMP_ACT_KILL_PROCESS", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
     "syscalls": [allow("read", "close", "fork", "umask", "exit"),
                  {"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                  {"names": ["chmod"], "action": "SCMP_ACT_TRAP"}]},
    {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
     "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [arg(0, "GT", 5)]},
                  {"names": ["getppid"], "action": "SCMP_ACT_LOG", "args": [arg(1, "LT", (3 << 32) | 7)]},
                  {"names": ["gettid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                   "args": [arg(2, "NE", 1 << 33)]},
                  {"names": ["umask"], "action": "SCMP_ACT_KILL", "args": [arg(0, "LE", 0o22)]},
                  {"names": ["dup"], "action": "SCMP_ACT_TRACE", "args": [arg(0, "GE", (1 << 32) + 1)]},
                  {"names": ["dup2"], "action": "SCMP_ACT_ERRNO",
                   "args": [arg(0, "MASKED_EQ", 0xF0000000F, 0x100000003)]}]},
    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
     "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
     "syscalls": [allow("clone", args=[arg(0, "MASKED_EQ", 0x7E020000, 0)]),
                  allow("personality", args=[arg(0, "EQ", 0)]),
                  allow("personality", args=[arg(0, "EQ", 0xFFFFFFFF)]),
                  allow("mmap", args=[arg(2, "EQ", 3), arg(3, "NE", 0x22)]),
                  allow("kill", args=[arg(0, "GT", 1), arg(0, "LT", 5)])]},
]


@pytest.mark.parametrize("number", range(len(CROSS_PROFILES)))
def test_decisions_match_libseccomp(number):
    profile = CROSS_PROFILES[number]
    ours = compiled(profile)
    theirs = libseccomp_program(profile)
    numbers = set(range(0, 20))
    for rule in profile["syscalls"]:
        for name in rule["names"]:
            for table in (NR, NR32, seccomp.syscall_table("SCMP_ARCH_X32")):
                if name in table:
                    numbers.update({table[name] - 1, table[name], table[name] + 1})
    numbers.update({335, 450, 451, 600, 0x3FFFFFFF, 0xFFFFFFFF})
    numbers.update({X32 | (n & 0x3FF) for n in list(numbers)})
    values = [0, 1, 2, 3, 5, 6, 7, 8, 0x22, 0o22, 0o23, 0xFFFFFFFF, 1 << 32, (1 << 32) + 1,
              (1 << 33), (3 << 32) | 6, (3 << 32) | 7, 0x100000003, 0x20000000, 0x7E020000, (1 << 64) - 1]
    checked = 0
    for arch in (AUDIT_X86_64, AUDIT_I386, AUDIT_AARCH64):
        for nr in sorted(numbers):
            for value in values:
                args = (value, value, value, value ^ 1, value, value)
                expected = runc_decision(theirs, profile, nr, arch, args)
                assert run(ours, nr, arch, args) == expected, (hex(arch), nr, hex(value))
                checked += 1
    assert checked > 1000


def test_aarch64_and_arm_decisions_match_libseccomp():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
               "syscalls": [allow("read", "write", "getpid", "exit_group", "openat", "cacheflush"),
                            allow("clone", args=[arg(0, "MASKED_EQ", 0x7E020000, 0)]),
                            {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
                             "args": [arg(1, "GE", (2 << 32) | 9)]}]}
    ours = compiled(profile, "SCMP_ARCH_AARCH64")
    theirs = libseccomp_program(profile)
    for arch, table in ((AUDIT_AARCH64, seccomp.syscall_table("SCMP_ARCH_AARCH64")),
                        (AUDIT_ARM, seccomp.syscall_table("SCMP_ARCH_ARM"))):
        for nr in sorted(set(range(300)) | set(table.values()) | {0xF0002, 0xFFFFFFFF}):
            for value in (0, 9, 0x20000000, (2 << 32) | 8, (2 << 32) | 9, 3 << 32):
                args = (value, value, 0, 0, 0, 0)
                assert run(ours, nr, arch, args) == runc_decision(theirs, profile, nr, arch, args), (hex(arch), nr)


def test_default_profile_matches_libseccomp():
    path = os.path.join(os.path.dirname(compiler.__file__), "..", "data", "seccomp_default.json")
    with open(path) as fh:
        profile = json.load(fh)
    ours = compiled(profile)
    theirs = libseccomp_program(profile)
    x32_table = seccomp.syscall_table("SCMP_ARCH_X32")
    # syscalls newer than Debian's libseccomp 2.5.4 (we know them, it does not)
    newer = {n for n in range(451, 480)} | {335, 336}
    newer |= {n | X32 for n in newer}
    values = [0, 1, 2, 8, 10, 37, 38, 39, 40, 41, 0x20000, 0x20008, 0xFFFFFFFF, 0x10000000,
              0x20000000 | 17, 0x11, (1 << 32) | 8, 1 << 40]
    for arch, numbers in ((AUDIT_X86_64, list(range(480)) + sorted(x32_table.values())),
                          (AUDIT_I386, range(480))):
        for nr in numbers:
            if nr in newer:
                continue
            with_args = nr in (NR["socket"], NR["personality"], NR["clone"], NR32["personality"],
                               NR32["clone"])
            for value in values if with_args else values[:1]:
                args = (value, 1, 0, 0, 0, 0)
                expected = runc_decision(theirs, profile, nr, arch, args)
                assert run(ours, nr, arch, args) == expected, (hex(arch), nr, hex(value))
