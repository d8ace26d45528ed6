"""The image commands end to end: import, images, tag, rmi, history, inspect, save, load, prune, df."""

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest

from image_fixtures import ALPINE, busybox_rootfs_tar, directory, file, gzipped, make_tar, symlink
from vessel.cli.main import main
from vessel.image.store import ImageStore
from vessel.runtime import linux

VESSEL = [sys.executable, "-m", "vessel.cli.main"]


@pytest.fixture
def vessel(tmp_path, capsys):
    root = str(tmp_path / "state")

    def run(*args, code=0):
        capsys.readouterr()
        result = main(["--root", root, *args])
        out, err = capsys.readouterr()
        assert result == code, (out, err)
        return out if code == 0 else err

    run.root = root
    return run


def test_import_alpine_and_list(vessel):
    image_id = vessel("import", ALPINE, "alpine:3.20", "--change", 'CMD ["/bin/sh"]',
                      "--change", "ENV A=B C=d", "-c", "WORKDIR /srv", "-c", "EXPOSE 80 53/udp",
                      "-c", 'LABEL a=b "c d"=e', "-c", "USER 1000:1000", "-c", "VOLUME /data").strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    lines = vessel("images").splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[0].index("TAG") == lines[1].index("3.20")
    assert lines[1].split()[:3] == ["alpine", "3.20", image_id[7:19]]
    assert lines[1].rstrip().endswith("MB")
    assert vessel("images", "-q").split() == [image_id[7:19]]
    assert vessel("images", "--format", "{{.Repository}}:{{.Tag}}").split() == ["alpine:3.20"]
    assert vessel("image", "ls", "--no-trunc", "-q").split() == [image_id]
    (document,) = json.loads(vessel("image", "inspect", "alpine:3.20"))
    assert document["Id"] == image_id and document["RepoTags"] == ["alpine:3.20"]
    config = document["Config"]
    assert config["Cmd"] == ["/bin/sh"] and config["Env"] == ["A=B", "C=d"]
    assert config["WorkingDir"] == "/srv" and config["User"] == "1000:1000"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and config["Volumes"] == {"/data": {}}
    assert config["Labels"] == {"a": "b", "c d": "e"}
    assert document["Os"] == "linux" and document["Architecture"] == "amd64"
    assert document["RootFS"]["Type"] == "layers" and len(document["RootFS"]["Layers"]) == 1
    assert document["Size"] > 7_000_000
    assert vessel("image", "inspect", "-f", "{{.Id}}", image_id[7:15]).strip() == image_id
    history = vessel("history", "alpine:3.20").splitlines()
    assert history[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"] and "Imported from" in history[1]


def test_imported_alpine_snapshot_runs(vessel, tmp_path):
    vessel("import", ALPINE, "alpine:run")
    store = ImageStore(vessel.root)
    image = store.get("alpine:run")
    (mount,) = store.snapshots.prepare("run-test", image.chain_id)
    target = tmp_path / "rootfs"
    target.mkdir()
    linux.mount(mount.source, str(target), mount.type, 0, ",".join(mount.options))
    try:
        release = subprocess.run(["chroot", str(target), "/bin/cat", "/etc/alpine-release"],
                                 capture_output=True, text=True, check=True).stdout
        assert release.strip() == "3.20.3"
    finally:
        linux.umount2(str(target), linux.MNT_DETACH)
    store.snapshots.remove("run-test")
    store.close()


def test_import_busybox_from_stdin(vessel, tmp_path):
    tar = busybox_rootfs_tar(str(tmp_path / "busybox.tar"))
    with open(tar, "rb") as handle:
        result = subprocess.run([*VESSEL, "--root", vessel.root, "import", "-", "busybox:local"],
                                stdin=handle, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert vessel("images", "--format", "{{.Repository}} {{.Tag}}").split() == ["busybox", "local"]


def test_tag_rmi(vessel, tmp_path):
    layer = tmp_path / "layer.tar.gz"
    layer.write_bytes(gzipped(make_tar(directory("etc"), file("etc/hostname", b"x"))))
    image_id = vessel("import", str(layer), "first:1").strip()
    vessel("tag", "first:1", "localhost:5000/second:2")
    assert sorted(vessel("images", "--format", "{{.Repository}}:{{.Tag}}").split()) == [
        "first:1", "localhost:5000/second:2"]
    err = vessel("rmi", image_id[7:19], code=125)
    assert err.startswith("Error: conflict: unable to delete") and "multiple repositories" in err
    assert vessel("rmi", "first:1") == "Untagged: first:1\n"
    out = vessel("rmi", "localhost:5000/second:2")
    assert out.splitlines()[:2] == ["Untagged: localhost:5000/second:2", f"Deleted: {image_id}"]
    assert vessel("images", "-q") == ""


@pytest.mark.parametrize("args,message", [
    (["rmi", "nothere"], "Error: No such image: nothere:latest"),
    (["image", "inspect", "nothere"], "Error: No such image: nothere:latest"),
    (["history", "Bad_Name"], "Error: No such image: Bad_Name"),
    (["import", ALPINE, "Bad_Name"], "Error: invalid reference format"),
    (["tag", "nothere", "x"], "Error: No such image"),
    (["import", "/nonexistent.tar"], "Error: open /nonexistent.tar"),
    (["load", "-i", "/nonexistent.tar"], "Error: open /nonexistent.tar"),
    (["import", "-c", "FROM x", ALPINE], "Error: 'FROM' is not a valid change command"),
    (["save", "-o", "/tmp/never-written.tar", "nothere"], "Error: No such image"),
])
def test_errors(vessel, args, message):
    err = vessel(*args, code=125)
    assert err.startswith(message) and len(err.strip().splitlines()) == 1
    assert not os.path.exists("/tmp/never-written.tar")


@pytest.mark.parametrize("content,message", [
    (b"not a tar at all" * 100, "Error: invalid"),
    (make_tar(file("etc/x", b"x"))[:700], "Error: truncated|Error: invalid"),
    (gzipped(os.urandom(3000))[:1000], "Error: corrupt gzip"),
])
def test_import_corrupt_leaves_nothing(vessel, tmp_path, content, message):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    err = vessel("import", str(bad), "bad:1", code=125)
    assert re.match(message, err) and len(err.strip().splitlines()) == 1
    assert vessel("images", "-q") == ""
    image_dir = os.path.join(vessel.root, "image")
    assert os.listdir(os.path.join(image_dir, "blobs/sha256")) == []
    assert os.listdir(os.path.join(image_dir, "ingest")) == []
    assert os.listdir(os.path.join(image_dir, "snapshots/committed")) == []
    assert os.listdir(os.path.join(image_dir, "snapshots/staging")) == []


@pytest.mark.parametrize("archive_format", ["docker-archive", "oci-archive"])
def test_save_load_round_trip(vessel, tmp_path, archive_format):
    layer = tmp_path / "layer.tar"
    layer.write_bytes(make_tar(directory("etc"), file("etc/hostname", b"saved")))
    image_id = vessel("import", str(layer), "saved:1", "-c", "CMD [\"true\"]").strip()
    vessel("tag", "saved:1", "localhost:5000/saved:2")
    out = tmp_path / "out.tar"
    vessel("save", "--format", archive_format, "-o", str(out), "saved:1", "localhost:5000/saved:2")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"index.json", "oci-layout"} <= names
    if archive_format == "docker-archive":
        assert {"manifest.json", "repositories"} <= names
    vessel("rmi", "-f", image_id)
    loaded = vessel("load", "-i", str(out)).splitlines()
    assert sorted(loaded) == ["Loaded image: localhost:5000/saved:2", "Loaded image: saved:1"]
    assert vessel("images", "--no-trunc", "-q").split() == [image_id, image_id]
    (document,) = json.loads(vessel("image", "inspect", "saved:1"))
    assert document["Config"]["Cmd"] == ["true"]


def test_save_to_stdout_and_load_from_stdin(vessel, tmp_path):
    layer = tmp_path / "layer.tar"
    layer.write_bytes(make_tar(file("a", b"a")))
    vessel("import", str(layer), "piped:1")
    saved = subprocess.run([*VESSEL, "--root", vessel.root, "save", "piped:1"], capture_output=True, check=True).stdout
    other_root = str(tmp_path / "other")
    loaded = subprocess.run([*VESSEL, "--root", other_root, "load"], input=gzipped(saved),
                            capture_output=True, check=True).stdout.decode()
    assert loaded == "Loaded image: piped:1\n"


def test_load_corrupt(vessel, tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(make_tar(file("manifest.json", b"[{\"Config\": \"missing.json\", \"Layers\": []}]")))
    assert vessel("load", "-i", str(bad), code=125).startswith("Error: invalid image archive: missing.json")
    bad.write_bytes(make_tar(file("something", b"x")))
    assert "neither manifest.json nor index.json" in vessel("load", "-i", str(bad), code=125)
    bad.write_bytes(b"\x00garbage" * 200)
    assert vessel("load", "-i", str(bad), code=125).startswith("Error: ")


def test_prune_and_df(vessel, tmp_path):
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    first.write_bytes(make_tar(file("one", os.urandom(200_000))))
    second.write_bytes(make_tar(file("two", b"2")))
    dangling = vessel("import", str(first), "p:1").strip()
    vessel("import", str(second), "p:1")
    assert "<none>" in vessel("images")
    df = vessel("system", "df").splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "2", "0"]
    out = vessel("image", "prune", "-f")
    assert f"deleted: {dangling}" in out and "Total reclaimed space: " in out
    assert out.strip().splitlines()[-1] != "Total reclaimed space: 0B"
    assert "<none>" not in vessel("images")
    vessel("image", "prune", "-a", "-f")
    assert vessel("images", "-q") == ""
    assert os.listdir(os.path.join(vessel.root, "image/blobs/sha256")) == []


def test_load_classic_docker_archive(vessel, tmp_path):
    """The pre-25 `docker save` layout: <id>/layer.tar (one a symlink, one gzip), <hex>.json config."""

    first = make_tar(directory("etc"), file("etc/hostname", b"classic"))
    second = make_tar(file("etc/motd", b"hi"))
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in (first, second, first)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": "a"}, {"created_by": "b"}, {"created_by": "c"}]}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": ["classic:1", "classic:2"],
                            "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"]}]).encode()
    archive = make_tar(file(f"{config_hex}.json", config), directory("aaa"), file("aaa/layer.tar", first),
                       file("aaa/VERSION", b"1.0"), directory("bbb"), file("bbb/layer.tar", gzipped(second)),
                       directory("ccc"), symlink("../aaa/layer.tar", "ccc/layer.tar"),
                       file("manifest.json", manifest), file("repositories", b'{"classic": {"1": "aaa"}}'))
    path = tmp_path / "classic.tar"
    path.write_bytes(archive)
    assert vessel("load", "-i", str(path)).splitlines() == ["Loaded image: classic:1", "Loaded image: classic:2"]
    (document,) = json.loads(vessel("image", "inspect", "classic:2"))
    assert document["Id"] == f"sha256:{config_hex}" and document["RootFS"]["Layers"] == diff_ids
    assert sorted(document["RepoTags"]) == ["classic:1", "classic:2"]


def test_load_rejects_tampered_layer(vessel, tmp_path):
    layer = make_tar(file("a", b"a"))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(b"x").hexdigest()]}})
    archive = make_tar(file("c.json", config.encode()), file("l.tar", layer),
                       file("manifest.json", b'[{"Config": "c.json", "RepoTags": ["t:1"], "Layers": ["l.tar"]}]'))
    path = tmp_path / "tampered.tar"
    path.write_bytes(archive)
    assert "diff_id mismatch" in vessel("load", "-i", str(path), code=125)
    assert vessel("images", "-q") == ""
    assert os.listdir(os.path.join(vessel.root, "image/blobs/sha256")) == []


def test_import_platform(vessel, tmp_path):
    layer = tmp_path / "layer.tar"
    layer.write_bytes(make_tar(file("a", b"a")))
    vessel("import", "--platform", "linux/arm64/v8", str(layer), "arm:1")
    (document,) = json.loads(vessel("image", "inspect", "arm:1"))
    assert (document["Os"], document["Architecture"], document["Variant"]) == ("linux", "arm64", "v8")
    assert vessel("import", "--platform", "linux//", str(layer), code=125).startswith("Error: invalid platform")
