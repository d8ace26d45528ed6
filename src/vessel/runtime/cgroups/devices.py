"""Device access rules: the v1 `devices` controller's semantics, for v1 writes and v2 eBPF.

OCI rules are applied in order, the way the v1 kernel applies writes to
devices.allow/deny: a full wildcard rule ("a", any major/minor, "rwm") resets
the default and drops every exception; any other rule adds access to, or
removes access from, the exception with exactly the same type/major/minor.
The same state then becomes either v1 writes or a BPF_PROG_TYPE_CGROUP_DEVICE
program, so a container sees the same devices on both cgroup versions.
"""

__all__ = ["DeviceState", "bpf_program", "emulate", "v1_writes"]

# Access bits and type numbers as in <linux/bpf.h> (BPF_DEVCG_ACC_*, BPF_DEVCG_DEV_*).
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}
ALL_ACCESS = 7
TYPE_NUMBERS = {"b": 1, "c": 2}


def access_bits(access):
    bits = 0
    for char in access:
        bits |= ACCESS_BITS[char]
    return bits


def access_text(bits):
    return "".join(char for char in "rwm" if bits & ACCESS_BITS[char])


def _is_reset(rule):
    return rule.type == "a" and rule.major is None and rule.minor is None and rule.access == "rwm"


def _expand(rule):
    """(type, major, minor, bits) for the rule; "a" with numbers means both b and c."""
    kinds = ("c", "b") if rule.type == "a" else (rule.type,)
    return [(kind, rule.major, rule.minor, access_bits(rule.access)) for kind in kinds]


class DeviceState:
    """A default (allow or deny) plus exceptions {(type, major, minor): access bits}."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow=True):
        self.default_allow = default_allow
        self.exceptions = {}

    def apply(self, rule):
        if _is_reset(rule):
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        for kind, major, minor, bits in _expand(rule):
            key = (kind, major, minor)
            if rule.allow == self.default_allow:
                remaining = self.exceptions.get(key, 0) & ~bits
                if remaining:
                    self.exceptions[key] = remaining
                else:
                    self.exceptions.pop(key, None)
            else:
                self.exceptions[key] = self.exceptions.get(key, 0) | bits

    def allows(self, kind, major, minor, access):
        """Whether an access ("r", "rw", ...) to one device passes, as the kernel decides."""
        wanted = access_bits(access)
        for (ex_kind, ex_major, ex_minor), bits in self.exceptions.items():
            if ex_kind != kind or ex_major not in (None, major) or ex_minor not in (None, minor):
                continue
            if self.default_allow and bits & wanted:
                return False
            if not self.default_allow and wanted & ~bits == 0:
                return True
        return self.default_allow


def emulate(rules, default_allow=True):
    state = DeviceState(default_allow)
    for rule in rules:
        state.apply(rule)
    return state


def _number(value):
    return "*" if value is None else str(value)


def v1_writes(rules):
    """[(file, line)] to write to a v1 devices cgroup, one line per write.

    From the last full wildcard rule on, the final state is written (reset, then
    its exceptions); rules before it cannot matter. Without such a rule the
    rules are written one by one on top of what the cgroup inherited.
    """
    last_reset = max((i for i, rule in enumerate(rules) if _is_reset(rule)), default=None)
    if last_reset is None:
        return [("devices.allow" if rule.allow else "devices.deny",
                 f"{kind} {_number(major)}:{_number(minor)} {access_text(bits)}")
                for rule in rules for kind, major, minor, bits in _expand(rule)]
    state = emulate(rules[last_reset:])
    reset = ("devices.allow" if state.default_allow else "devices.deny", "a")
    exception_file = "devices.deny" if state.default_allow else "devices.allow"
    return [reset] + [(exception_file, f"{kind} {_number(major)}:{_number(minor)} {access_text(bits)}")
                      for (kind, major, minor), bits in state.exceptions.items()]


# eBPF opcodes (<linux/bpf_common.h>, <linux/bpf.h>)
_LDX_MEM_W = 0x61
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU32_MOV_X = 0xBC
_ALU32_MOV_K = 0xB4
_JMP_JEQ_K = 0x15
_JMP_JNE_K = 0x55
_JMP_EXIT = 0x95


def bpf_program(state):
    """The instructions [(code, dst, src, off, imm)] of a cgroup device program for `state`.

    The context is struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}
    with access_type = access << 16 | type. Registers: r2 type, r3 access,
    r4 major, r5 minor. Each exception is one block that returns its verdict
    on a match and otherwise jumps to the next block; the end returns the default.
    """
    program = [
        (_LDX_MEM_W, 2, 1, 0, 0), (_ALU32_AND_K, 2, 0, 0, 0xFFFF),
        (_LDX_MEM_W, 3, 1, 0, 0), (_ALU32_RSH_K, 3, 0, 0, 16),
        (_LDX_MEM_W, 4, 1, 4, 0), (_LDX_MEM_W, 5, 1, 8, 0),
    ]
    verdict = 0 if state.default_allow else 1
    for (kind, major, minor), bits in state.exceptions.items():
        checks = [(_JMP_JNE_K, 2, 0, TYPE_NUMBERS[kind])]
        if state.default_allow:  # a deny exception matches when any wanted bit is listed
            if bits != ALL_ACCESS:
                checks += [(_ALU32_MOV_X, 1, 3, None), (_ALU32_AND_K, 1, 0, bits), (_JMP_JEQ_K, 1, 0, 0)]
        elif bits != ALL_ACCESS:  # an allow exception matches when every wanted bit is listed
            checks += [(_ALU32_MOV_X, 1, 3, None), (_ALU32_AND_K, 1, 0, ALL_ACCESS & ~bits),
                       (_JMP_JNE_K, 1, 0, 0)]
        if major is not None:
            checks.append((_JMP_JNE_K, 4, 0, major))
        if minor is not None:
            checks.append((_JMP_JNE_K, 5, 0, minor))
        block = checks + [(_ALU32_MOV_K, 0, 0, verdict), (_JMP_EXIT, 0, 0, None)]
        for i, (code, dst, src, imm) in enumerate(block):
            jumps = code in (_JMP_JNE_K, _JMP_JEQ_K)
            program.append((code, dst, src, len(block) - i - 1 if jumps else 0, imm or 0))
    program += [(_ALU32_MOV_K, 0, 0, 0, 1 if state.default_allow else 0), (_JMP_EXIT, 0, 0, 0, 0)]
    return program
