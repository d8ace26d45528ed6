"""CVE-2022-0811 ("cr8escape"): sysctl value injection.

CRI-O passed sysctls to pinns joined with "+", so the value
`1+kernel.core_pattern=|/payload` set a host-wide sysctl. Values with "+",
"=" or line breaks are refused, and so is every key outside the namespaced
set (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.* with a network
namespace of the container's own): one line, nothing created, the host's
core_pattern unchanged.
"""

import os

import pytest

from helpers import runtime
from sectools import one_line_error

CORE_PATTERN = "/proc/sys/kernel/core_pattern"


def _no_netns(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]


def _no_ipcns(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "ipc"]


@pytest.mark.parametrize("sysctls, edit", [
    ({"kernel.shm_rmid_forced": "1+kernel.core_pattern=|/pwned"}, None),
    ({"kernel.shm_rmid_forced": "1\nkernel.core_pattern=|/pwned"}, None),
    ({"kernel.shmmax": "1=2"}, None),
    ({"kernel.core_pattern": "|/pwned"}, None),
    ({"kernel.sem+kernel.core_pattern": "1"}, None),
    ({"kernel.shmmax/../../core_pattern": "1"}, None),
    ({"kernel..core_pattern": "1"}, None),
    ({"vm.overcommit_memory": "1"}, None),
    ({"fs.protected_symlinks": "0"}, None),
    ({"net.ipv4.ip_forward": "1"}, _no_netns),
    ({"kernel.shmmax": "123456"}, _no_ipcns),
], ids=["plus", "newline", "equals", "host-key", "plus-in-key", "traversal", "empty-component",
        "vm", "fs", "net-without-netns", "ipc-without-ipcns"])
def test_bad_sysctls_are_refused_at_create(root, bundle, names, sysctls, edit):
    before = open(CORE_PATTERN).read()

    def configure(cfg):
        cfg["linux"]["sysctl"] = sysctls
        if edit is not None:
            edit(cfg)

    proc = runtime(root, "create", "--bundle", bundle(edit=configure), names())
    assert "sysctl" in one_line_error(proc)
    assert not os.path.exists(root) or os.listdir(root) == []
    assert open(CORE_PATTERN).read() == before


def test_namespaced_sysctls_are_applied(root, bundle, names):
    def configure(cfg):
        cfg["linux"]["sysctl"] = {"kernel.shmmax": "123456789", "kernel.sem": "250 32000 32 128",
                                  "fs.mqueue.msg_max": "20", "net.ipv4.ip_local_port_range": "2000 3000",
                                  "net.ipv4.ip_local_reserved_ports": "2500,2600"}

    b = bundle(("cat", "/proc/sys/kernel/shmmax", "/proc/sys/kernel/sem", "/proc/sys/fs/mqueue/msg_max",
                "/proc/sys/net/ipv4/ip_local_port_range", "/proc/sys/net/ipv4/ip_local_reserved_ports"),
               edit=configure)
    out = runtime(root, "run", "--bundle", b, names(), check=True).stdout.decode().split()
    assert out == ["123456789", "250", "32000", "32", "128", "20", "2000", "3000", "2500,2600"]
