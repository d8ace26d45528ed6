"""Volumes without containers: -v/--mount parsing, the volume store on a real database, copy-up on real files."""

import os
import stat

import pytest

from vessel.engine.model import ContainerConfig, Mount, parse_mount, parse_volume
from vessel.engine.state import State
from vessel.engine.volumes import Volumes, copy_up, plan_mounts, tree_size
from vessel.errors import Conflict, InvalidArgument, NotFound


def test_parse_volume_kinds():
    assert parse_volume("/data") == Mount("volume", "/data", "", flag="-v", spec="/data")
    assert parse_volume("cache:/var/cache:ro,nocopy") == Mount(
        "volume", "/var/cache", "cache", readonly=True, nocopy=True, flag="-v", spec="cache:/var/cache:ro,nocopy",
        mode="ro,nocopy")
    bind = parse_volume("/srv/../srv/www:/www/:rshared")
    assert (bind.type, bind.source, bind.target, bind.propagation, bind.readonly) == \
        ("bind", "/srv/www", "/www", "rshared", False)
    assert parse_volume("./here:/h").source == os.path.abspath("here")
    for bad, message in [("", "invalid volume specification: ''"), ("/a:/b:/c:/d", "invalid volume specification"),
                         ("/a:rw", "invalid volume specification: '/a:rw'"), ("/a:/b:ro,ro", "invalid mode: ro,ro"),
                         ("x:/b", "includes invalid characters"), ("/a:/b:nocopy", "field VolumeOptions"),
                         ("v1:/b:slave", "field BindOptions"), ("v1:rel", "mount path must be absolute")]:
        with pytest.raises(InvalidArgument, match=message):
            parse_volume(bad)


def test_parse_mount_fields():
    volume = parse_mount("source=v1,dst=/d,ro,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=a=b")
    assert (volume.type, volume.source, volume.target, volume.readonly) == ("volume", "v1", "/d", True)
    assert volume.driver_options == {"type": "tmpfs", "device": "tmpfs"} and volume.volume_labels == {"a": "b"}
    assert volume.flag == "--mount" and not volume.nocopy
    assert parse_mount("type=volume,target=/d,volume-nocopy=false").nocopy is False
    quoted = parse_mount('target=/d,"volume-opt=o=size=1m,uid=1000",volume-opt=type=tmpfs')
    assert quoted.driver_options == {"o": "size=1m,uid=1000", "type": "tmpfs"}
    assert parse_mount("target=/anon").source == ""
    bind = parse_mount("type=bind,src=/srv,target=/s,readonly=true,bind-propagation=rslave")
    assert (bind.source, bind.readonly, bind.propagation) == ("/srv", True, "rslave")
    tmpfs = parse_mount("type=tmpfs,destination=/t,tmpfs-size=64k,tmpfs-mode=0700")
    assert (tmpfs.tmpfs_size, tmpfs.tmpfs_mode) == (65536, 0o700)
    for bad, message in [("type=tmpfs,target=/t,tmpfs-mode=9", "invalid value for tmpfs-mode"),
                         ("type=volume,target=/t,volume-opt=novalue", "invalid value for volume-opt"),
                         ("type=tmpfs,target=/t,tmpfs-size=lots", "invalid size"),
                         ("type=bind,source=rel,target=/t", "mount path must be absolute"),
                         ("type=volume,target=/", "destination can't be '/'")]:
        with pytest.raises(InvalidArgument, match=message):
            parse_mount(bad)


def test_plan_mounts_order_and_sources():
    source = ContainerConfig(image="x", mounts=[Mount("volume", "/shared", "v1"), Mount("bind", "/h", "/srv"),
                                                Mount("tmpfs", "/t")])

    class Found:
        config = source

    config = ContainerConfig(image="x", mounts=[Mount("volume", "/data", "mine")], tmpfs={"/run": ""},
                             volumes=["/data", "/run", "/cache/"], volumes_from=["src:ro"])
    planned = plan_mounts(config, lambda name: Found)
    assert [(m.type, m.target, m.source, m.readonly, m.flag) for m in planned] == [
        ("volume", "/data", "mine", False, "-v"), ("volume", "/shared", "v1", True, "volumes-from"),
        ("bind", "/h", "/srv", True, "volumes-from"), ("volume", "/cache", "", False, "image")]
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /run"):
        plan_mounts(ContainerConfig(image="x", mounts=[Mount("volume", "/run", "v1")], tmpfs={"/run": ""}),
                    lambda name: Found)
    with pytest.raises(InvalidArgument, match="invalid mode: rx"):
        plan_mounts(ContainerConfig(image="x", volumes_from=["src:rx"]), lambda name: Found)


@pytest.fixture
def store(tmp_path):
    state = State(str(tmp_path))
    yield Volumes(str(tmp_path), state)
    state.close()


def test_volume_store(store):
    anonymous = store.create(anonymous=True)
    assert len(anonymous.name) == 64 and anonymous.anonymous
    assert anonymous.labels == {"com.docker.volume.anonymous": ""}
    named = store.create("named", labels={"a": "b"})
    assert store.create("named").created == named.created  # an existing name is returned as it is
    assert os.path.isdir(store.data_path("named")) and store.get("named").labels == {"a": "b"}
    assert [v.name for v in store.list()] == sorted([anonymous.name, "named"])
    with open(os.path.join(store.data_path("named"), "f"), "wb") as handle:
        handle.write(b"x" * 1000)
    os.link(os.path.join(store.data_path("named"), "f"), os.path.join(store.data_path("named"), "g"))
    assert tree_size(store.data_path("named")) == 1000  # a hard link counts once
    assert sorted((v.name, size, links) for v, size, links in store.usage()) == \
        sorted([(anonymous.name, 0, 0), ("named", 1000, 0)])
    for bad, options, kind in [("a/b", {}, InvalidArgument), ("ok-name", {"size": "1g"}, InvalidArgument),
                               ("ok-name", {"o": "size=1m"}, InvalidArgument),
                               ("ok-name", {"device": "/x"}, InvalidArgument)]:
        with pytest.raises(kind):
            store.create(bad, options=options)
    with pytest.raises(NotFound, match="plugin"):
        store.create("ok-name", driver="nfs-plugin")
    assert store.prune() == ([anonymous.name], 0)
    assert store.prune(all=True, filters={"label": ["a=c"]}) == ([], 0)
    assert store.prune(all=True, filters={"label": ["a=b"]}) == (["named"], 1000)
    assert store.list() == [] and os.listdir(store.directory) == []
    with pytest.raises(NotFound, match="No such volume: named"):
        store.remove("named")
    store.remove("named", force=True)


def test_volume_in_use_is_kept(store, tmp_path):
    from vessel.engine.state import Record

    store.create("busy")
    config = ContainerConfig(image="x", mounts=[Mount("volume", "/d", "busy")])
    store.state.insert(Record(id="c" * 64, name="user", image_id="i", image_ref="x", created=0, config=config,
                              status="created", pid=0, exit_code=0, error="", started=0, finished=0,
                              restart_count=0, runtime=["true"], labels={}, supervisor_pid=0,
                              supervisor_start=""))
    with pytest.raises(Conflict, match=r"remove busy: volume is in use - \[c{64}\]"):
        store.remove("busy")
    assert store.prune(all=True) == ([], 0)
    store.state.delete("c" * 64)
    store.remove("busy")


def _make_tree(root):
    data = os.path.join(root, "data")
    os.makedirs(os.path.join(data, "private"))
    os.chmod(os.path.join(data, "private"), 0o700)
    os.chown(os.path.join(data, "private"), 1000, 1001)
    tool = os.path.join(data, "tool")
    with open(tool, "w") as handle:
        handle.write("#!/bin/sh\n")
    os.chown(tool, 1000, 1000)
    os.chmod(tool, 0o4755)  # set-uid survives the chown
    os.setxattr(tool, "user.origin", b"image")
    os.link(tool, os.path.join(data, "private", "tool-link"))
    os.symlink("/etc/shadow", os.path.join(data, "escape"))  # copied as a link, never followed
    os.mkfifo(os.path.join(data, "pipe"))
    os.utime(tool, ns=(1_000_000_000, 2_000_000_000))
    return data


def test_copy_up_keeps_metadata(tmp_path):
    rootfs = tmp_path / "rootfs"
    _make_tree(str(rootfs))
    volume = tmp_path / "volume"
    volume.mkdir()
    copy_up(str(rootfs), "/data", str(volume))
    tool = os.lstat(volume / "tool")
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and (tool.st_uid, tool.st_gid) == (1000, 1000)
    assert tool.st_mtime_ns == 2_000_000_000 and os.getxattr(volume / "tool", "user.origin") == b"image"
    assert os.lstat(volume / "private" / "tool-link").st_ino == tool.st_ino
    private = os.lstat(volume / "private")
    assert stat.S_IMODE(private.st_mode) == 0o700 and (private.st_uid, private.st_gid) == (1000, 1001)
    assert os.readlink(volume / "escape") == "/etc/shadow"
    assert stat.S_ISFIFO(os.lstat(volume / "pipe").st_mode)
    # not empty any more: nothing is copied again
    os.unlink(volume / "tool")
    copy_up(str(rootfs), "/data", str(volume))
    assert not os.path.lexists(volume / "tool")


def test_copy_up_stays_inside_the_rootfs(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "inside").write_text("the image's own /etc\n")
    # the VOLUME path is a symlink that points far above the rootfs: resolved as if rootfs were /
    os.symlink("../../../../../../../etc", rootfs / "data")
    volume = tmp_path / "volume"
    volume.mkdir()
    copy_up(str(rootfs), "/data", str(volume))
    assert os.listdir(volume) == ["inside"]
    empty = tmp_path / "empty"
    empty.mkdir()
    copy_up(str(rootfs), "/missing", str(empty))
    (rootfs / "file").write_text("not a directory\n")
    copy_up(str(rootfs), "/file", str(empty))
    assert os.listdir(empty) == []
