"""Snapshotter: layers committed once by chain id; the returned mounts really mount."""

import contextlib
import hashlib
import io
import os

import pytest

from image_fixtures import directory, file, gzipped, hardlink, make_tar, symlink
from vessel.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from vessel.image.snapshots import COPY, OVERLAY, Snapshotter, chain_ids
from vessel.runtime import linux

LAYERS = [
    make_tar(directory("etc"), file("etc/passwd", b"root"), file("etc/group", b"g"),
             directory("var/cache"), file("var/cache/old", b"o"), file("bin/sh", b"sh", 0o755),
             hardlink("bin/sh", "bin/ash")),
    make_tar(file("etc/.wh.group"), directory("var/cache"), file("var/cache/.wh..wh..opq"),
             file("var/cache/new", b"n"), symlink("/etc/passwd", "passwd-link")),
    make_tar(file("etc/hostname", b"box"), file("var/cache/newer", b"nn")),
]
DIFF_IDS = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in LAYERS]
CHAINS = chain_ids(DIFF_IDS)


def commit_all(snapshotter):
    parent = None
    for layer, diff_id, chain in zip(LAYERS, DIFF_IDS, CHAINS):
        snapshotter.commit_layer(chain, parent, io.BytesIO(gzipped(layer)), diff_id)
        parent = chain


@contextlib.contextmanager
def mounted(mounts, target):
    (mount,) = mounts
    if mount.type == "bind":
        linux.mount(mount.source, target, None, linux.MS_BIND | linux.MS_REC)
        if "ro" in mount.options:
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
    else:
        linux.mount(mount.source, target, mount.type, 0, ",".join(mount.options))
    try:
        yield target
    finally:
        linux.umount2(target, linux.MNT_DETACH)


def check_view(root):
    assert sorted(os.listdir(root / "etc")) == ["hostname", "passwd"]
    assert sorted(os.listdir(root / "var/cache")) == ["new", "newer"]
    assert (root / "etc/passwd").read_bytes() == b"root"
    assert os.readlink(root / "passwd-link") == "/etc/passwd"
    assert os.path.samefile(root / "bin/sh", root / "bin/ash")


def test_chain_ids():
    assert CHAINS[0] == DIFF_IDS[0]
    assert CHAINS[1] == "sha256:" + hashlib.sha256(f"{DIFF_IDS[0]} {DIFF_IDS[1]}".encode()).hexdigest()


def test_overlay_is_detected(tmp_path):
    assert Snapshotter(str(tmp_path)).driver == OVERLAY


@pytest.mark.parametrize("driver", [OVERLAY, COPY])
def test_prepare_mount_write_remove(tmp_path, driver):
    snapshotter = Snapshotter(str(tmp_path / "state"), driver)
    commit_all(snapshotter)
    assert sorted(snapshotter.committed()) == sorted(CHAINS)
    mounts = snapshotter.prepare("ctr1", CHAINS[-1])
    if driver == OVERLAY:
        assert mounts[0].type == "overlay"
        lowerdir = next(o for o in mounts[0].options if o.startswith("lowerdir="))
        assert lowerdir.count(":") == 2 and CHAINS[-1][7:] in lowerdir.split(":")[0]
    else:
        assert mounts[0].type == "bind"
    target = tmp_path / "rootfs"
    target.mkdir()
    with mounted(mounts, target) as root:
        check_view(root)
        (root / "etc/new-in-container").write_bytes(b"c")
        os.unlink(root / "etc/passwd")
    # the layers are untouched; the write landed in the container's own snapshot
    for lower in snapshotter.lowers(CHAINS[-1]):
        assert not os.path.exists(os.path.join(lower, "etc/new-in-container"))
    assert os.path.exists(tmp_path / "state/image/snapshots/active/ctr1/fs/etc/new-in-container")
    with mounted(snapshotter.prepare("ctr2", CHAINS[-1]), target) as root:
        check_view(root)
    size, inodes = snapshotter.usage("ctr1")
    assert inodes >= 2 and size > 0
    snapshotter.remove("ctr1")
    snapshotter.remove("ctr2")
    assert snapshotter.active() == []
    assert os.listdir(target) == []


def test_readonly_view(tmp_path):
    snapshotter = Snapshotter(str(tmp_path / "state"), OVERLAY)
    commit_all(snapshotter)
    target = tmp_path / "rootfs"
    target.mkdir()
    with mounted(snapshotter.prepare("view", CHAINS[-1], readonly=True), target) as root:
        check_view(root)
        with pytest.raises(OSError):
            (root / "x").write_bytes(b"")
    with mounted(snapshotter.prepare("view1", CHAINS[0], readonly=True), target) as root:
        assert sorted(os.listdir(root / "etc")) == ["group", "passwd"]
    with mounted(snapshotter.prepare("empty"), target) as root:
        assert os.listdir(root) == []


def test_commit_once_and_concurrently(tmp_path):
    state = str(tmp_path / "state")
    snapshotter = Snapshotter(state, OVERLAY)
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            try:
                Snapshotter(state).commit_layer(CHAINS[0], None, io.BytesIO(LAYERS[0]), DIFF_IDS[0])
                os._exit(0)
            except BaseException:
                os._exit(1)
        pids.append(pid)
    assert [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids] == [0, 0, 0]
    assert snapshotter.committed() == [CHAINS[0]]
    assert os.listdir(tmp_path / "state/image/snapshots/staging") == []


def test_bad_layer_leaves_nothing(tmp_path):
    snapshotter = Snapshotter(str(tmp_path), OVERLAY)
    with pytest.raises(InvalidArgument, match="diff_id mismatch"):
        snapshotter.commit_layer(CHAINS[0], None, io.BytesIO(LAYERS[1]), DIFF_IDS[0])
    with pytest.raises(InvalidArgument, match="truncated"):
        snapshotter.commit_layer(CHAINS[0], None, io.BytesIO(LAYERS[0][:700]), DIFF_IDS[0])
    assert snapshotter.committed() == []
    assert os.listdir(tmp_path / "image/snapshots/staging") == []


def test_errors_and_gc(tmp_path):
    snapshotter = Snapshotter(str(tmp_path), OVERLAY)
    commit_all(snapshotter)
    with pytest.raises(NotFound):
        snapshotter.prepare("x", "sha256:" + "0" * 64)
    with pytest.raises(InvalidArgument):
        snapshotter.prepare("../escape", CHAINS[0])
    snapshotter.prepare("c", CHAINS[1])
    with pytest.raises(AlreadyExists):
        snapshotter.prepare("c", CHAINS[1])
    with pytest.raises(Conflict):
        snapshotter.remove_committed(CHAINS[1])
    with pytest.raises(Conflict):
        Snapshotter(str(tmp_path), COPY)
    count, freed = snapshotter.gc(keep=[])
    assert count == 1 and freed > 0  # only the top layer; the active snapshot pins the rest
    assert sorted(snapshotter.committed()) == sorted(CHAINS[:2])
    snapshotter.remove("c")
    assert snapshotter.gc(keep=[])[0] == 2 and snapshotter.committed() == []
