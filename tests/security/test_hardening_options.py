"""The hardening knobs of config.json do what they say: device rules, no_new_privs, oomScoreAdj."""

import pytest

from helpers import runtime

OPEN_FUSE = ("[ -e /dev/fuse ] || mknod /dev/fuse c 10 229 2>&1; head -c0 /dev/fuse 2>&1 && echo opened; true")


@pytest.mark.parametrize("configured", ["none", "node", "rule"])
def test_device_access_is_exactly_what_is_configured(root, bundle, names, configured):
    """The device cgroup is exactly the configured rules plus the spec's default devices.

    A node listed in linux.devices exists in the container but stays unusable
    without an allow rule (the engine adds one for --device, as Docker does).
    """
    def edit(cfg):
        if configured == "node":
            cfg["linux"]["devices"] = [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229,
                                        "fileMode": 0o666, "uid": 0, "gid": 0}]
        elif configured == "rule":
            cfg["linux"]["resources"]["devices"].append(
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"})

    out = runtime(root, "run", "--bundle", bundle(("sh", "-c", OPEN_FUSE), edit=edit), names(),
                  check=True).stdout.decode()
    if configured in ("none", "node"):
        assert "Operation not permitted" in out, out
    else:  # the cgroup lets it through: the driver answers (opened, or no such device)
        assert "Operation not permitted" not in out, out


def test_default_devices_stay_usable_and_others_are_denied(root, bundle, names):
    script = ("for d in null zero full random urandom tty; do head -c0 /dev/$d 2>/dev/null && echo $d; done; "
              "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda >/dev/null 2>&1 || echo sda-denied; "
              "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem >/dev/null 2>&1 || echo mem-denied")
    out = runtime(root, "run", "--bundle", bundle(("sh", "-c", script)), names(), check=True).stdout.decode()
    assert out.split() == ["null", "zero", "full", "random", "urandom", "sda-denied", "mem-denied"]


def test_no_new_privileges(root, bundle, names):
    b = bundle(("grep", "NoNewPrivs", "/proc/self/status"),
               edit=lambda c: c["process"].update(noNewPrivileges=True))
    assert runtime(root, "run", "--bundle", b, names(), check=True).stdout.split() == [b"NoNewPrivs:", b"1"]


def test_oom_score_adj(root, bundle, names):
    b = bundle(("cat", "/proc/self/oom_score_adj"), edit=lambda c: c["process"].update(oomScoreAdj=321))
    assert runtime(root, "run", "--bundle", b, names(), check=True).stdout == b"321\n"
