"""Bad input in the security sections: one clear line, exit 1, nothing created.

A typo in a seccomp profile or a capability list must never give a
container with less confinement than asked for; it fails the create before
any state, cgroup or process exists.
"""

import os

import pytest

from helpers import runtime
from sectools import one_line_error

ALLOW_ALL = {"defaultAction": "SCMP_ACT_ALLOW"}


def _seccomp(value):
    def edit(cfg):
        cfg["linux"]["seccomp"] = value
    return edit


def _caps(kind, names):
    def edit(cfg):
        cfg["process"]["capabilities"][kind] = names
    return edit


def _process(**fields):
    def edit(cfg):
        cfg["process"].update(fields)
    return edit


CASES = {
    "seccomp-not-object": (_seccomp(["SCMP_ACT_ALLOW"]), "seccomp"),
    "seccomp-no-default": (_seccomp({"syscalls": []}), "defaultAction"),
    "seccomp-unknown-default": (_seccomp({"defaultAction": "SCMP_ACT_MAYBE"}), "SCMP_ACT_MAYBE"),
    "seccomp-unknown-action": (_seccomp(dict(ALLOW_ALL, syscalls=[{"names": ["mount"], "action": "SCMP_ACT_NOPE"}])),
                               "SCMP_ACT_NOPE"),
    "seccomp-unknown-syscall": (_seccomp(dict(ALLOW_ALL, syscalls=[{"names": ["mount", "no_such_syscall"],
                                                                    "action": "SCMP_ACT_ERRNO"}])),
                                "no_such_syscall"),
    "seccomp-empty-names": (_seccomp(dict(ALLOW_ALL, syscalls=[{"names": [], "action": "SCMP_ACT_ERRNO"}])),
                            "names"),
    "seccomp-unknown-operator": (_seccomp(dict(ALLOW_ALL, syscalls=[{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}])), "SCMP_CMP_SOMETIMES"),
    "seccomp-arg-index": (_seccomp(dict(ALLOW_ALL, syscalls=[{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}])), "index"),
    "seccomp-negative-value": (_seccomp(dict(ALLOW_ALL, syscalls=[{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}])), "value"),
    "seccomp-unknown-arch": (_seccomp(dict(ALLOW_ALL, architectures=["SCMP_ARCH_PDP11"])), "SCMP_ARCH_PDP11"),
    "seccomp-unknown-flag": (_seccomp(dict(ALLOW_ALL, flags=["SECCOMP_FILTER_FLAG_MAGIC"])), "MAGIC"),
    "seccomp-errno-range": (_seccomp({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
                            "errnoRet"),
    "seccomp-notify-no-listener": (_seccomp(dict(ALLOW_ALL, syscalls=[{"names": ["mkdir"],
                                                                       "action": "SCMP_ACT_NOTIFY"}])),
                                   "listenerPath"),
    "seccomp-notify-default": (_seccomp({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}), "NOTIFY"),
    "seccomp-notify-write": (_seccomp(dict(ALLOW_ALL, listenerPath="/x", syscalls=[
        {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}])), "write"),
    "seccomp-notify-sendmsg": (_seccomp(dict(ALLOW_ALL, listenerPath="/x", syscalls=[
        {"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}])), "sendmsg"),
    "cap-unknown": (_caps("bounding", ["CAP_CHOWN", "CAP_TIME_TRAVEL"]), "CAP_TIME_TRAVEL"),
    "cap-lowercase": (_caps("effective", ["cap_chown"]), "cap_chown"),
    "cap-not-list": (_caps("permitted", "CAP_CHOWN"), "permitted"),
    "cap-not-string": (_caps("ambient", [21]), "21"),
    "cap-effective-not-permitted": (_caps("effective", ["CAP_SYS_ADMIN"]), "CAP_SYS_ADMIN"),
    "apparmor-unavailable": (_process(apparmorProfile="docker-default"), "apparmor"),
    "selinux-unavailable": (_process(selinuxLabel="system_u:system_r:container_t:s0"), "SELinux"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_security_section_fails_cleanly(root, bundle, names, case):
    edit, word = CASES[case]
    if case == "apparmor-unavailable" and os.path.exists("/sys/kernel/security/apparmor"):
        pytest.skip("AppArmor is enabled on this host")
    if case == "selinux-unavailable" and os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled on this host")
    proc = runtime(root, "create", "--bundle", bundle(edit=edit), names())
    line = one_line_error(proc)
    assert word in line, line
    assert not os.path.exists(root) or os.listdir(root) == []
