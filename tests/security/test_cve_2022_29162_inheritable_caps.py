"""CVE-2022-29162 (and CVE-2022-24769, CVE-2022-27650, CVE-2022-27649): inheritable capabilities.

`runc exec --cap` (and Docker's, crun's and podman's defaults) left the
inheritable set non-empty, so a non-root process that executed a binary with
file capabilities "+ei" gained them. With the default config and with
`exec --cap`, CapInh and CapAmb stay empty, and a uid 1000 process running a
cap_net_raw+ei copy of busybox ends with no capability at all.
"""

import os
import shutil
import subprocess

import pytest

from helpers import BUSYBOX, runtime

STATUS = "/opt/capbin/busybox grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status"


@pytest.fixture
def cap_bundle(bundle):
    """make(edit) -> a bundle whose rootfs has /opt/capbin/busybox with file caps cap_net_raw+ei."""
    def make(args=("sh", "-c", STATUS), edit=None):
        b = bundle(args, edit=edit)
        capbin = os.path.join(b, "rootfs", "opt", "capbin")
        os.makedirs(capbin)
        shutil.copy2(BUSYBOX, os.path.join(capbin, "busybox"))
        subprocess.run(["setcap", "cap_net_raw+ei", os.path.join(capbin, "busybox")], check=True)
        return b

    return make


def _caps(output):
    return {line.split(":")[0]: int(line.split(":")[1], 16) for line in output.decode().splitlines()}


def _as_user(cfg):
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}


def test_default_config_gains_nothing(root, cap_bundle, names):
    out = runtime(root, "run", "--bundle", cap_bundle(edit=_as_user), names(), check=True).stdout
    assert _caps(out) == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}


def test_exec_cap_does_not_fill_the_inheritable_set(root, cap_bundle, names):
    cid = names()
    runtime(root, "run", "-d", "--bundle", cap_bundle(("sleep", "100"), edit=_as_user), cid, check=True)
    try:
        out = runtime(root, "exec", "--cap", "CAP_NET_RAW", "--cap", "CAP_SYS_ADMIN", cid,
                      "sh", "-c", STATUS, check=True).stdout
        assert _caps(out) == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}
        out = runtime(root, "exec", "--cap", "CAP_NET_RAW", "--user", "0:0", cid,
                      "grep", "CapInh", "/proc/self/status", check=True).stdout
        assert int(out.split(b":")[1], 16) == 0
    finally:
        runtime(root, "delete", "--force", cid)


def test_the_probe_sees_an_inheritable_set_when_configured(root, cap_bundle, names):
    """Control: with CAP_NET_RAW inheritable (explicitly configured) the +ei binary does gain it."""
    def edit(cfg):
        _as_user(cfg)
        caps = cfg["process"]["capabilities"]
        caps["inheritable"] = ["CAP_NET_RAW"]

    out = runtime(root, "run", "--bundle", cap_bundle(edit=edit), names(), check=True).stdout
    assert _caps(out)["CapEff"] == 1 << 13  # CAP_NET_RAW
