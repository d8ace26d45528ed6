"""Device rules: v1 kernel semantics, the v1 writes, and the eBPF program (run here in a tiny interpreter)."""

import itertools

import pytest

from vessel.runtime.cgroups.devices import bpf_program, emulate, v1_writes
from vessel.runtime.cgroups.resources import DeviceRule as Rule

DENY_ALL = Rule(False)
ALLOW_ALL = Rule(True)


def run_program(program, kind, major, minor, access):
    """Interpret the handful of eBPF instructions bpf_program emits; returns r0."""
    bits = sum({"m": 1, "r": 2, "w": 4}[c] for c in access)
    context = {0: (bits << 16) | {"b": 1, "c": 2}[kind], 4: major, 8: minor}
    regs = [0] * 11
    pc = 0
    mask = 0xFFFFFFFF
    while True:
        code, dst, src, off, imm = program[pc]
        pc += 1
        if code == 0x61:
            regs[dst] = context[off]
        elif code == 0x54:
            regs[dst] = regs[dst] & imm & mask
        elif code == 0x74:
            regs[dst] = (regs[dst] & mask) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & mask
        elif code == 0xB4:
            regs[dst] = imm & mask
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x15:
            if regs[dst] == imm:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


DOCKER_LIKE = [
    DENY_ALL,
    Rule(True, "c", 1, 3, "rwm"), Rule(True, "c", 1, 5, "rwm"), Rule(True, "c", 1, 8, "rwm"),
    Rule(True, "c", 1, 9, "rwm"), Rule(True, "c", 5, 0, "rwm"), Rule(True, "c", 5, 1, "rwm"),
    Rule(False, "c", 10, 229, "rwm"), Rule(True, "c", 136, None, "rwm"), Rule(True, "c", None, None, "m"),
    Rule(True, "b", None, None, "m"),
]

CASES = [
    DOCKER_LIKE,
    [],
    [ALLOW_ALL, Rule(False, "c", 1, 3, "w"), Rule(False, "b", 8, None, "rwm")],
    [DENY_ALL, Rule(True, "c", 1, 3, "rwm"), Rule(False, "c", 1, 3, "w")],
    [DENY_ALL, Rule(True, "a", 4, None, "r")],
    [Rule(True, "c", 1, 3, "r"), DENY_ALL, Rule(True, "c", 1, 5, "rw")],
]

REQUESTS = list(itertools.product("bc", (1, 4, 5, 8, 10, 136), (0, 3, 5, 229), ("r", "w", "m", "rw", "rwm")))


@pytest.mark.parametrize("rules", CASES)
def test_program_agrees_with_kernel_semantics(rules):
    state = emulate(rules)
    program = bpf_program(state)
    for kind, major, minor, access in REQUESTS:
        expected = state.allows(kind, major, minor, access)
        assert run_program(program, kind, major, minor, access) == int(expected), (kind, major, minor, access)


def test_docker_like_rules():
    state = emulate(DOCKER_LIKE)
    assert not state.default_allow
    assert state.allows("c", 1, 3, "rw")
    assert state.allows("c", 136, 4, "rw")
    assert state.allows("b", 8, 0, "m") and not state.allows("b", 8, 0, "r")
    assert not state.allows("c", 10, 229, "r")
    assert not state.allows("c", 4, 0, "r")


def test_partial_removal_keeps_other_bits():
    state = emulate([DENY_ALL, Rule(True, "c", 1, 3, "rwm"), Rule(False, "c", 1, 3, "w")])
    assert state.exceptions == {("c", 1, 3): 3}  # r and m left
    assert state.allows("c", 1, 3, "r") and not state.allows("c", 1, 3, "rw")


def test_v1_writes_from_last_reset():
    assert v1_writes(DOCKER_LIKE[:3] + [Rule(False, "c", 10, 229, "rwm")]) == [
        ("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"), ("devices.allow", "c 1:5 rwm")]
    assert v1_writes([Rule(True, "c", 1, 3, "r"), ALLOW_ALL, Rule(False, "b", None, None, "w")]) == [
        ("devices.allow", "a"), ("devices.deny", "b *:* w")]


def test_v1_writes_without_reset_are_incremental():
    assert v1_writes([Rule(False, "a", 10, 229, "rw"), Rule(True, "c", 1, 3, "r")]) == [
        ("devices.deny", "c 10:229 rw"), ("devices.deny", "b 10:229 rw"), ("devices.allow", "c 1:3 r")]


def test_allow_everything_program_is_trivial():
    state = emulate([ALLOW_ALL])
    assert state.default_allow and not state.exceptions
    assert run_program(bpf_program(state), "c", 1, 3, "rwm") == 1
