"""CVE-2026-41579 (crun: CVE-2026-47766): the rootfs's /dev is a symlink out of the root.

Device nodes and the /dev links were created through rootfs/dev, so a
symlink there populated a host directory. Resolved inside the root, the
outside directory stays empty, whether /dev gets a tmpfs or not.
"""

import os

import pytest

from helpers import runtime
from sectools import one_line_error


@pytest.mark.parametrize("dev_tmpfs", [True, False])
@pytest.mark.parametrize("absolute", [True, False])
def test_dev_symlink_does_not_populate_outside(root, bundle, names, tmp_path, dev_tmpfs, absolute):
    outside = tmp_path / "outside"
    outside.mkdir()

    def edit(cfg):
        if not dev_tmpfs:
            cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]

    b = bundle(("sh", "-c", "stat -c '%F %t:%T' /dev/null"), edit=edit)
    rootfs_dev = os.path.join(b, "rootfs", "dev")
    os.rmdir(rootfs_dev)
    relative = os.path.relpath(str(outside), os.path.join(b, "rootfs"))
    os.symlink(str(outside) if absolute else relative, rootfs_dev)
    proc = runtime(root, "run", "--bundle", b, names())
    if proc.returncode != 0:
        one_line_error(proc)
    else:
        assert proc.stdout == b"character special file 1:3\n"
    assert os.listdir(outside) == []
