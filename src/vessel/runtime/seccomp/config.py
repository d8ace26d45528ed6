"""Validation of the OCI `linux.seccomp` object into plain records.

Everything is checked here so that `compile` never meets bad input: one
`InvalidArgument` line names the first problem.  Syscall names are kept as
strings; they are resolved per architecture at compile time, where names
unknown to an architecture are skipped (libseccomp and runc do the same).
"""

from vessel.errors import InvalidArgument

__all__ = ["ACTIONS", "ARCHITECTURES", "FLAGS", "OPERATORS", "Condition", "Rule",
           "SeccompConfig", "parse"]

EPERM = 1

# SECCOMP_RET_* values (linux/seccomp.h); ERRNO, TRACE and TRAP carry 16 bits of data.
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

ACTIONS = {
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_TRACE": RET_TRACE,
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_NOTIFY": RET_USER_NOTIF,
}
_TAKES_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")

# OCI name -> AUDIT_ARCH_* value (linux/audit.h), the value of seccomp_data.arch.
ARCHITECTURES = {
    "SCMP_ARCH_X86": 0x40000003,
    "SCMP_ARCH_X86_64": 0xC000003E,
    "SCMP_ARCH_X32": 0xC000003E,  # x86_64 with __X32_SYSCALL_BIT set in the number
    "SCMP_ARCH_ARM": 0x40000028,
    "SCMP_ARCH_AARCH64": 0xC00000B7,
    "SCMP_ARCH_MIPS": 0x00000008,
    "SCMP_ARCH_MIPS64": 0x80000008,
    "SCMP_ARCH_MIPS64N32": 0xA0000008,
    "SCMP_ARCH_MIPSEL": 0x40000008,
    "SCMP_ARCH_MIPSEL64": 0xC0000008,
    "SCMP_ARCH_MIPSEL64N32": 0xE0000008,
    "SCMP_ARCH_PPC": 0x00000014,
    "SCMP_ARCH_PPC64": 0x80000015,
    "SCMP_ARCH_PPC64LE": 0xC0000015,
    "SCMP_ARCH_S390": 0x00000016,
    "SCMP_ARCH_S390X": 0x80000016,
    "SCMP_ARCH_PARISC": 0x0000000F,
    "SCMP_ARCH_PARISC64": 0x8000000F,
    "SCMP_ARCH_RISCV64": 0xC00000F3,
    "SCMP_ARCH_LOONGARCH64": 0xC0000102,
    "SCMP_ARCH_M68K": 0x00000004,
    "SCMP_ARCH_SH": 0x4000002A,
    "SCMP_ARCH_SHEB": 0x0000002A,
}

# OCI flag name -> SECCOMP_FILTER_FLAG_* bit.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}

_U64_MAX = (1 << 64) - 1


class Condition:
    """One argument comparison: args[index] <op> value (MASKED_EQ: args & value == value_two)."""

    __slots__ = ("index", "op", "value", "value_two")

    def __init__(self, index, op, value, value_two=0):
        self.index = index
        self.op = op
        self.value = value
        self.value_two = value_two

    def __repr__(self):
        return f"Condition({self.index}, {self.op}, {self.value:#x}, {self.value_two:#x})"


class Rule:
    """Syscall names with one action, taken when all conditions hold (no conditions: always)."""

    __slots__ = ("names", "action", "conditions")

    def __init__(self, names, action, conditions=()):
        self.names = names
        self.action = action
        self.conditions = conditions

    def __repr__(self):
        return f"Rule({list(self.names)}, {self.action:#x}, {list(self.conditions)})"


class SeccompConfig:
    """A validated linux.seccomp; actions are SECCOMP_RET_* values with their data."""

    __slots__ = ("default_action", "architectures", "flags", "listener_path",
                 "listener_metadata", "rules", "syscall_names")

    def __init__(self, default_action, architectures=(), flags=(), listener_path=None,
                 listener_metadata="", rules=(), syscall_names=None):
        self.default_action = default_action
        self.architectures = architectures
        self.flags = flags
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        self.rules = rules
        # Every name in the profile, redundant rules included: the -ENOSYS cut-off uses them.
        self.syscall_names = syscall_names if syscall_names is not None else tuple(
            dict.fromkeys(name for rule in rules for name in rule.names))

    @property
    def uses_notify(self):
        return any(rule.action == RET_USER_NOTIF for rule in self.rules)

    @property
    def flag_bits(self):
        bits = 0
        for flag in self.flags:
            bits |= FLAGS[flag]
        return bits


def _fail(message):
    raise InvalidArgument(f"linux.seccomp: {message}")


def _uint(value, where, limit):
    if type(value) is not int or not 0 <= value <= limit:
        _fail(f"{where} must be an integer from 0 to {limit}, not {value!r}")
    return value


def _action(name, errno_ret, where):
    if not isinstance(name, str) or name not in ACTIONS:
        _fail(f"{where}: unknown action {name!r}")
    if errno_ret is None:
        errno_ret = EPERM if name in _TAKES_ERRNO else 0
    elif name not in _TAKES_ERRNO:
        _fail(f"{where}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {name}")
    else:
        _uint(errno_ret, f"{where}: errnoRet", 0xFFFF)
    return ACTIONS[name] | errno_ret


def _names_list(obj, key, known, where):
    values = obj.get(key)
    if values is None:
        return ()
    if not isinstance(values, list):
        _fail(f"{where} must be a list")
    for value in values:
        if not isinstance(value, str) or value not in known:
            _fail(f"unknown {key[:-1] if key.endswith('s') else key} {value!r}")
    return tuple(dict.fromkeys(values))


def _conditions(args, where):
    if args is None:
        return ()
    if not isinstance(args, list):
        _fail(f"{where}.args must be a list")
    conditions = []
    for number, arg in enumerate(args):
        here = f"{where}.args[{number}]"
        if not isinstance(arg, dict):
            _fail(f"{here} must be an object")
        op = arg.get("op")
        if op not in OPERATORS:
            _fail(f"{here}: unknown operator {op!r}")
        if "index" not in arg:
            _fail(f"{here}: index is required")
        if "value" not in arg:
            _fail(f"{here}: value is required")
        conditions.append(Condition(
            _uint(arg["index"], f"{here}.index", 5), op,
            _uint(arg["value"], f"{here}.value", _U64_MAX),
            _uint(arg.get("valueTwo", 0), f"{here}.valueTwo", _U64_MAX)))
    return tuple(conditions)


# what the runtime calls between loading a filter and handing its listener over
_RUNTIME_NEEDS_AFTER_LOAD = ("write", "sendmsg")


def _rules(entry, number, default_action):
    where = f"syscalls[{number}]"
    if not isinstance(entry, dict):
        _fail(f"{where} must be an object")
    names = entry.get("names")
    if not isinstance(names, list) or not names:
        _fail(f"{where}.names must be a non-empty list")
    for name in names:
        if not isinstance(name, str) or not name:
            _fail(f"{where}.names: {name!r} is not a syscall name")
    action = _action(entry.get("action"), entry.get("errnoRet"), where)
    for needed in _RUNTIME_NEEDS_AFTER_LOAD:
        if action == RET_USER_NOTIF and needed in names:
            _fail(f"SCMP_ACT_NOTIFY cannot be used for {needed} (the runtime needs it to hand over the listener)")
    conditions = _conditions(entry.get("args"), where)
    if action == default_action:
        return []  # redundant with the default action; runc skips these too
    names = tuple(names)
    indexes = [condition.index for condition in conditions]
    if len(set(indexes)) < len(indexes):
        # Two comparisons of one argument: runc (and so every OCI profile) reads
        # them as alternatives, one rule per comparison, not as a conjunction.
        return [Rule(names, action, (condition,)) for condition in conditions]
    return [Rule(names, action, conditions)]


def parse(obj):
    """Validate a raw OCI linux.seccomp object into a SeccompConfig."""
    if not isinstance(obj, dict):
        _fail("must be an object")
    if "defaultAction" not in obj:
        _fail("defaultAction is required")
    default_action = _action(obj["defaultAction"], obj.get("defaultErrnoRet"), "defaultAction")
    if default_action == RET_USER_NOTIF:
        _fail("SCMP_ACT_NOTIFY cannot be the default action")
    architectures = _names_list(obj, "architectures", ARCHITECTURES, "architectures")
    flags = _names_list(obj, "flags", FLAGS, "flags")
    listener_path = obj.get("listenerPath")
    if listener_path is not None and (not isinstance(listener_path, str) or not listener_path):
        _fail("listenerPath must be a non-empty string")
    metadata = obj.get("listenerMetadata", "")
    if not isinstance(metadata, str):
        _fail("listenerMetadata must be a string")
    syscalls = obj.get("syscalls")
    if syscalls is None:
        syscalls = []
    if not isinstance(syscalls, list):
        _fail("syscalls must be a list")
    rules = []
    for number, entry in enumerate(syscalls):
        rules.extend(_rules(entry, number, default_action))
    all_names = tuple(dict.fromkeys(name for entry in syscalls for name in entry["names"]))
    config = SeccompConfig(default_action, architectures, flags, listener_path or None,
                           metadata, tuple(rules), all_names)
    if config.uses_notify and not config.listener_path:
        _fail("listenerPath is required with SCMP_ACT_NOTIFY")
    return config
