"""CVE-2021-30465: a symlink-exchange race on a mount destination.

A container sharing a volume with the victim swaps a directory on the path of
one of the victim's mount targets with a symlink to a host path, in a tight
renameat2(RENAME_EXCHANGE) loop, while the victim is created again and again.
runc checked the target and then mounted on the path string, so the mount
landed where the symlink pointed. Every target must be resolved inside the
rootfs and mounted through its fd: whatever the timing, nothing of the host
sentinel is mounted into the container and nothing appears in it.
"""

import os

from helpers import runtime
from sectools import ExchangeRacer, mount_roots, one_line_error, race_rounds


def test_mount_target_swapped_for_a_symlink(root, bundle, names, tmp_path, sentinel):
    volume = tmp_path / "volume"
    (volume / "a" / "mnt").mkdir(parents=True)
    os.symlink(sentinel.path, volume / "evil")
    # bind sources are host paths the engine chose and are followed as such; the
    # targets are what the container controls
    source = tmp_path / "source"
    source.mkdir()

    def edit(cfg):
        cfg["mounts"] += [
            {"destination": "/vol", "type": "bind", "source": str(volume), "options": ["rbind"]},
            {"destination": "/vol/a/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "/vol/a/mnt/data", "type": "bind", "source": str(source), "options": ["bind"]},
        ]

    b = bundle(("cat", "/proc/self/mountinfo"), edit=edit)
    made = failed = 0
    with ExchangeRacer(volume / "a", volume / "evil"):
        for _ in range(race_rounds()):
            proc = runtime(root, "run", "--bundle", b, names())
            if proc.returncode != 0:
                one_line_error(proc)
                failed += 1
                continue
            made += 1
            for fs_root, point in mount_roots(proc.stdout.decode()):
                assert "host-sentinel" not in fs_root, (fs_root, point)
    sentinel.assert_untouched()
    assert made > 0, "no create succeeded: the race test proves nothing"


def test_mount_target_swapped_while_remounting_read_only(root, bundle, names, tmp_path, sentinel):
    """A read-only bind stays read-only: the remount never lands on another mount."""
    volume = tmp_path / "volume"
    (volume / "a" / "ro").mkdir(parents=True)
    os.symlink(sentinel.path, volume / "evil")
    source = tmp_path / "source"
    source.mkdir()

    def edit(cfg):
        cfg["mounts"] += [
            {"destination": "/vol", "type": "bind", "source": str(volume), "options": ["rbind"]},
            {"destination": "/vol/a/ro", "type": "bind", "source": str(source), "options": ["bind", "ro"]},
        ]

    b = bundle(("sh", "-c", "touch /vol/a/ro/written 2>/dev/null; cat /proc/self/mountinfo"), edit=edit)
    with ExchangeRacer(volume / "a", volume / "evil"):
        for _ in range(race_rounds(100)):
            proc = runtime(root, "run", "--bundle", b, names())
            if proc.returncode != 0:
                one_line_error(proc)
            assert not (source / "written").exists()
    sentinel.assert_untouched()
