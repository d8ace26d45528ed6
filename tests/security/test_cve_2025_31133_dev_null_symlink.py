"""CVE-2025-31133: /dev/null replaced by a symlink before the masked paths are bound.

runc masked files by bind-mounting the container's /dev/null over them; with
/dev/null swapped for a symlink to /proc/sys/kernel/core_pattern the "mask"
became a writable window on a host sysctl. The mask source must be the null
device itself (checked through an O_PATH|O_NOFOLLOW fd), whether the symlink
comes with the image or is raced in through a /dev shared with the host.
"""

import os

import pytest

from helpers import runtime
from sectools import ExchangeRacer, mount_roots, one_line_error, race_rounds

CORE_PATTERN = "/proc/sys/kernel/core_pattern"
PROBE = ("stat -c '%F %t:%T' /dev/null /proc/keys; echo '|/pwned' > /proc/keys 2>/dev/null; "
         "cat /proc/self/mountinfo")


@pytest.fixture
def core_pattern():
    """The host's kernel.core_pattern; restored (and reported) if a test changed it."""
    before = open(CORE_PATTERN).read()
    yield before
    after = open(CORE_PATTERN).read()
    if after != before:
        with open(CORE_PATTERN, "w") as f:
            f.write(before)
    assert after == before, f"host core_pattern changed to {after!r}"


def _check_masked(out, raced=False):
    lines = out.splitlines()
    if not raced:  # with the racer still at work, the program's own /dev/null may be either name
        assert lines[0] == "character special file 1:3", lines[0]
    assert lines[1] == "character special file 1:3", lines[1]
    for fs_root, point in mount_roots("\n".join(lines[2:])):
        if point in ("/proc/keys", "/proc/interrupts", "/proc/timer_list"):
            assert fs_root != "/sys/kernel/core_pattern", (fs_root, point)


def test_image_dev_null_is_a_symlink(root, bundle, names, core_pattern):
    def edit(cfg):
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev"]

    b = bundle(("sh", "-c", PROBE), edit=edit)
    os.symlink(CORE_PATTERN, os.path.join(b, "rootfs", "dev", "null"))
    proc = runtime(root, "run", "--bundle", b, names())
    assert proc.returncode == 0, proc.stderr
    _check_masked(proc.stdout.decode())


def test_dev_null_raced_through_a_shared_dev(root, bundle, names, tmp_path, core_pattern):
    shared_dev = tmp_path / "shared-dev"
    shared_dev.mkdir()
    os.symlink(CORE_PATTERN, shared_dev / "evil")

    def edit(cfg):
        cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
        cfg["mounts"].append({"destination": "/dev", "type": "bind", "source": str(shared_dev),
                              "options": ["rbind"]})

    b = bundle(("sh", "-c", PROBE), edit=edit)
    made = 0
    with ExchangeRacer(shared_dev / "null", shared_dev / "evil"):
        for _ in range(race_rounds(100)):
            proc = runtime(root, "run", "--bundle", b, names())
            if proc.returncode != 0:
                one_line_error(proc)
                continue
            made += 1
            _check_masked(proc.stdout.decode(), raced=True)
    assert made > 0, "no create succeeded: the race test proves nothing"
