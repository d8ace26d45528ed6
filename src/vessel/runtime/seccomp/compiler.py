"""Compile a SeccompConfig into a classic BPF program (an array of struct sock_filter).

Hand-written because the runtime may not load libseccomp.  The decisions are
libseccomp's, as runc drives it:

- seccomp_data.arch not among the filter's architectures: KILL_THREAD
  (libseccomp's default bad-arch action).  The native architecture is always
  included; listed architectures this kernel can never report (aarch64 on an
  x86_64 host) are left out, as their code could never run.
- On x86_64 a number with __X32_SYSCALL_BIT is an x32 call: bad arch unless
  SCMP_ARCH_X32 is listed.
- runc's -ENOSYS stub: unless the default action is ALLOW, LOG, TRACE or
  ERRNO(ENOSYS), numbers above the highest syscall the profile names fail with
  ENOSYS, so that libc falls back from syscalls newer than the profile.
- The rules of one syscall are tried in profile order and the first whose
  conditions all hold decides; none matching means the default action.
- Arguments are compared as 64-bit values, on both 32-bit halves; on 32-bit
  ABIs (x86, x32, arm) only the low half exists, as in libseccomp.
- Dispatch is a binary search over intervals of syscall numbers (runs of
  neighbours with one action share an interval), so Docker's profile runs
  at most 17 instructions per call; conditional jumps farther than 255
  instructions go through `ja` trampolines.
"""

import os
import struct

from vessel.errors import InvalidArgument, Unsupported
from vessel.runtime import jsonio
from vessel.runtime.seccomp.config import (
    ARCHITECTURES, RET_ALLOW, RET_ERRNO, RET_KILL_THREAD, RET_LOG, RET_TRACE,
)

__all__ = ["BPF_MAXINSNS", "compile", "native_arch", "syscall_table"]

BPF_MAXINSNS = 4096
X32_SYSCALL_BIT = 0x40000000
ENOSYS = 38

# classic BPF opcodes (linux/filter.h)
LD_W_ABS = 0x20
JA = 0x05
JEQ = 0x15
JGT = 0x25
JGE = 0x35
AND_K = 0x54
RET_K = 0x06

# struct seccomp_data offsets (little-endian ABIs only: every table below is LE)
_NR = 0
_ARCH = 4
_ARGS = 16

# OCI name -> (table in runtime/data, argument width in bits)
_ABIS = {
    "SCMP_ARCH_X86_64": ("x86_64", 64),
    "SCMP_ARCH_X86": ("x86", 32),
    "SCMP_ARCH_X32": ("x32", 32),
    "SCMP_ARCH_AARCH64": ("aarch64", 64),
    "SCMP_ARCH_ARM": ("arm", 32),
    "SCMP_ARCH_RISCV64": ("riscv64", 64),
}
# native arch -> the ABIs its kernel can run, native first
_FAMILIES = {
    "SCMP_ARCH_X86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "SCMP_ARCH_X86": ("SCMP_ARCH_X86",),
    "SCMP_ARCH_AARCH64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "SCMP_ARCH_ARM": ("SCMP_ARCH_ARM",),
    "SCMP_ARCH_RISCV64": ("SCMP_ARCH_RISCV64",),
}
_MACHINES = {
    "x86_64": "SCMP_ARCH_X86_64", "i386": "SCMP_ARCH_X86", "i686": "SCMP_ARCH_X86",
    "aarch64": "SCMP_ARCH_AARCH64", "arm64": "SCMP_ARCH_AARCH64", "armv7l": "SCMP_ARCH_ARM",
    "armv8l": "SCMP_ARCH_ARM", "riscv64": "SCMP_ARCH_RISCV64",
}

_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
_tables = {}


def native_arch():
    """The OCI name of this machine's architecture."""
    machine = os.uname().machine
    try:
        return _MACHINES[machine]
    except KeyError:
        raise Unsupported(f"seccomp: no syscall table for machine {machine}") from None


def syscall_table(arch):
    """{name: number} for an OCI architecture name, from runtime/data/syscalls_<abi>.json."""
    table = _tables.get(arch)
    if table is None:
        if arch not in _ABIS:
            raise Unsupported(f"seccomp: no syscall table for {arch}")
        with open(os.path.join(_DATA_DIR, f"syscalls_{_ABIS[arch][0]}.json"), "rb") as fh:
            table = _tables[arch] = jsonio.loads(fh.read())
    return table


class _Assembler:
    """Straight-line BPF with forward labels; far conditional jumps get `ja` trampolines."""

    def __init__(self):
        self.items = []  # ("op", code, k) | ("jump", code, k, true label, false label) | ("label", id)
        self.next_label = 0

    def label(self):
        self.next_label += 1
        return self.next_label

    def place(self, label):
        self.items.append(("label", label))

    def op(self, code, k=0):
        self.items.append(("op", code, k & 0xFFFFFFFF))

    def load(self, offset):
        self.op(LD_W_ABS, offset)

    def ret(self, action):
        self.op(RET_K, action)

    def jump(self, code, k, true=None, false=None):
        """Conditional jump; a target of None means the next instruction."""
        after = None
        if true is None or false is None:
            after = self.label()
        self.items.append(("jump", code, k & 0xFFFFFFFF,
                           after if true is None else true, after if false is None else false))
        if after is not None:
            self.place(after)

    def assemble(self):
        far = {}  # item index -> (true target needs a trampoline, false target needs one)
        changed = True
        while changed:  # trampolines only ever get added, so this ends
            changed = False
            positions, labels = self._layout(far)
            for index, item in enumerate(self.items):
                if item[0] != "jump":
                    continue
                after = positions[index] + 1
                wanted = (labels[item[3]] - after > 255, labels[item[4]] - after > 255)
                old = far.get(index, (False, False))
                new = (old[0] or wanted[0], old[1] or wanted[1])
                if new != old:
                    far[index] = new
                    changed = True
        pack = struct.Struct("=HBBI").pack
        out = []
        for index, item in enumerate(self.items):
            if item[0] == "op":
                out.append(pack(item[1], 0, 0, item[2]))
            elif item[0] == "jump":
                _, code, k, true, false = item
                far_true, far_false = far.get(index, (False, False))
                after = positions[index] + 1
                jt = 0 if far_true else labels[true] - after
                jf = int(far_true) if far_false else labels[false] - after
                out.append(pack(code, jt, jf, k))
                if far_true:
                    out.append(pack(JA, 0, 0, labels[true] - (after + 1)))
                if far_false:
                    out.append(pack(JA, 0, 0, labels[false] - (after + far_true + 1)))
        return b"".join(out)

    def _layout(self, far):
        positions = {}
        labels = {}
        position = 0
        for index, item in enumerate(self.items):
            if item[0] == "label":
                labels[item[1]] = position
                continue
            positions[index] = position
            position += 1
            if item[0] == "jump":
                far_true, far_false = far.get(index, (False, False))
                position += far_true + far_false
        return positions, labels


def _condition(asm, condition, width, fail):
    """Code that falls through when `condition` holds and jumps to `fail` otherwise."""
    op, lo_offset = condition.op, _ARGS + 8 * condition.index
    value = condition.value
    value_lo, value_hi = value & 0xFFFFFFFF, value >> 32
    if op == "SCMP_CMP_MASKED_EQ":
        datum = condition.value_two
        halves = [(lo_offset, value_lo, datum & 0xFFFFFFFF)]
        if width == 64:
            halves.insert(0, (lo_offset + 4, value_hi, datum >> 32))
        for offset, mask, expect in halves:
            asm.load(offset)
            asm.op(AND_K, mask)
            asm.jump(JEQ, expect, None, fail)
        return
    if width == 32:
        asm.load(lo_offset)
        _compare_low(asm, op, value_lo, fail)
        return
    passed = asm.label()
    asm.load(lo_offset + 4)
    if op == "SCMP_CMP_EQ":
        asm.jump(JEQ, value_hi, None, fail)
    elif op == "SCMP_CMP_NE":
        asm.jump(JEQ, value_hi, None, passed)
    elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        asm.jump(JGT, value_hi, passed, None)
        asm.jump(JEQ, value_hi, None, fail)
    else:  # LT, LE
        asm.jump(JGT, value_hi, fail, None)
        asm.jump(JEQ, value_hi, None, passed)
    asm.load(lo_offset)
    _compare_low(asm, op, value_lo, fail)
    asm.place(passed)


def _compare_low(asm, op, value, fail):
    if op == "SCMP_CMP_EQ":
        asm.jump(JEQ, value, None, fail)
    elif op == "SCMP_CMP_NE":
        asm.jump(JEQ, value, fail, None)
    elif op == "SCMP_CMP_GT":
        asm.jump(JGT, value, None, fail)
    elif op == "SCMP_CMP_GE":
        asm.jump(JGE, value, None, fail)
    elif op == "SCMP_CMP_LT":
        asm.jump(JGE, value, fail, None)
    else:  # LE
        asm.jump(JGT, value, fail, None)


def _rules_by_number(config, arch):
    table = syscall_table(arch)
    by_number = {}
    for rule in config.rules:
        for name in rule.names:
            number = table.get(name)
            if number is None:
                continue  # not a syscall of this ABI (or of any): skipped like libseccomp
            rules = by_number.setdefault(number, [])
            if not rules or rules[-1].conditions:  # rules after an unconditional one never run
                rules.append(rule)
    return by_number


def _enosys_cutoff(config, arch):
    action = config.default_action
    if action & 0xFFFF0000 in (RET_ALLOW, RET_LOG, RET_TRACE) or action == RET_ERRNO | ENOSYS:
        return None
    table = syscall_table(arch)
    numbers = [table[name] for name in config.syscall_names if name in table]
    return max(numbers) if numbers else None


def _x86_64_sections(asm, config, has_x32):
    """x86_64 and x32 share AUDIT_ARCH_X86_64; x32 numbers have __X32_SYSCALL_BIT.

    Without x32, number -1 (a syscall a tracer skipped) still gets the default
    action rather than the bad-arch kill, as in libseccomp; with x32 it is an
    x32 number, as in runc's stub.
    """
    regular, high = asm.label(), asm.label()
    asm.jump(JGE, X32_SYSCALL_BIT, high, regular)
    asm.place(high)
    if has_x32:
        _section(asm, config, "SCMP_ARCH_X32")
    else:
        minus_one, bad = asm.label(), asm.label()
        asm.jump(JEQ, 0xFFFFFFFF, minus_one, bad)
        asm.place(minus_one)
        asm.ret(config.default_action)
        asm.place(bad)
        asm.ret(RET_KILL_THREAD)
    asm.place(regular)
    _section(asm, config, "SCMP_ARCH_X86_64")


def _section(asm, config, arch):
    """Code for one ABI, entered with the syscall number in A.

    The number line is cut into intervals with one outcome each (an action, or
    the rules of one syscall); a binary search over their starts picks one.
    """
    default = config.default_action
    intervals = []  # [first number, action or list of rules]; each ends where the next starts
    uncovered = 0
    for number, rules in sorted(_rules_by_number(config, arch).items()):
        outcome = rules[0].action if len(rules) == 1 and not rules[0].conditions else rules
        if number > uncovered:
            intervals.append([uncovered, default])
        elif intervals and intervals[-1][1] == outcome:
            uncovered = number + 1  # a neighbour with the same outcome: one interval
            continue
        intervals.append([number, outcome])
        uncovered = number + 1
    cutoff = _enosys_cutoff(config, arch)
    if cutoff is None or cutoff + 1 > uncovered:
        intervals.append([uncovered, default])
    if cutoff is not None:
        intervals.append([cutoff + 1, RET_ERRNO | ENOSYS])
    _search(asm, intervals, _ABIS[arch][1], default)


def _search(asm, intervals, width, default):
    if len(intervals) == 1:
        outcome = intervals[0][1]
        if isinstance(outcome, int):
            asm.ret(outcome)
        else:
            _rules(asm, outcome, width, default)
        return
    middle = len(intervals) // 2
    upper = asm.label()
    asm.jump(JGE, intervals[middle][0], upper, None)
    _search(asm, intervals[:middle], width, default)
    asm.place(upper)
    _search(asm, intervals[middle:], width, default)


def _rules(asm, rules, width, default):
    """The rules of one syscall in order; the first whose conditions all hold decides."""
    for rule in rules:
        if not rule.conditions:
            asm.ret(rule.action)
            return
        fail = asm.label()
        for condition in rule.conditions:
            _condition(asm, condition, width, fail)
        asm.ret(rule.action)
        asm.place(fail)
    asm.ret(default)


def _check_deny_list_names(config):
    """In a profile that allows by default, every name it restricts must be a known syscall.

    Names unknown to the target's tables are skipped, as runc does: profiles
    name syscalls of every architecture and of newer kernels, and under a
    deny-by-default profile (Docker's, podman's) a skipped name is denied
    anyway. In a deny list, though, a name known nowhere is a typo that would
    leave the syscall meant blocked allowed: an error. The other
    architectures' tables are searched as bytes, not parsed, to stay cheap.
    """
    if config.default_action & 0xFFFF0000 not in (RET_ALLOW, RET_LOG):
        return
    missing = [name for rule in config.rules if rule.action & 0xFFFF0000 not in (RET_ALLOW, RET_LOG)
               for name in rule.names if not any(name in table for table in _tables.values())]
    if not missing:
        return
    raw = []
    for arch, (abi, _) in _ABIS.items():
        if arch not in _tables:
            with open(os.path.join(_DATA_DIR, f"syscalls_{abi}.json"), "rb") as fh:
                raw.append(fh.read())
    for name in missing:
        quoted = b'"' + name.encode() + b'"'
        if not any(quoted in data for data in raw):
            raise InvalidArgument(f"linux.seccomp: unknown syscall {name!r} in a rule that restricts it")


def compile(config, arch=None):
    """The BPF program (bytes of struct sock_filter) for `config` on `arch` (default: native)."""
    native = arch or native_arch()
    if native not in _FAMILIES:
        raise Unsupported(f"seccomp: cannot build filters for {native}")
    family = _FAMILIES[native]
    abis = [native] + [name for name in config.architectures if name in family and name != native]
    asm = _Assembler()
    asm.load(_ARCH)
    audit_entries = {}
    for abi in abis:
        audit = ARCHITECTURES[abi]
        if audit not in audit_entries:
            audit_entries[audit] = asm.label()
            asm.jump(JEQ, audit, audit_entries[audit], None)
    asm.ret(RET_KILL_THREAD)
    for audit, entry in audit_entries.items():
        asm.place(entry)
        asm.load(_NR)
        members = [abi for abi in abis if ARCHITECTURES[abi] == audit]
        if audit == ARCHITECTURES["SCMP_ARCH_X86_64"]:
            _x86_64_sections(asm, config, "SCMP_ARCH_X32" in members)
        else:
            _section(asm, config, members[0])
    _check_deny_list_names(config)
    program = asm.assemble()
    count = len(program) // 8
    if count > BPF_MAXINSNS:
        raise InvalidArgument(
            f"linux.seccomp: the filter needs {count} BPF instructions, more than the kernel's {BPF_MAXINSNS}")
    return program
