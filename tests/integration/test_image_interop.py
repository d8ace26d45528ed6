"""Archives written by vessel load in podman and read by skopeo, and the reverse."""

import json
import shutil
import subprocess
import tempfile

import pytest

from image_fixtures import ALPINE, busybox_rootfs_tar
from vessel.cli.main import main
from vessel.image.store import ImageStore

pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(not shutil.which("podman") or not shutil.which("skopeo"),
                                 reason="needs podman and skopeo")]


@pytest.fixture
def vessel(tmp_path, capsys):
    root = str(tmp_path / "state")

    def run(*args):
        capsys.readouterr()
        assert main(["--root", root, *args]) == 0, capsys.readouterr()
        return capsys.readouterr().out

    run.root = root
    return run


@pytest.fixture
def podman(tmp_path):
    """podman with all of its state under tmp_path (vfs storage: no mounts)."""
    base = tmp_path / "podman"
    base.mkdir()
    runroot = tempfile.mkdtemp(prefix="vessel-podman-", dir="/tmp")  # podman wants <= 50 characters
    command = ["podman", "--root", str(base / "root"), "--runroot", runroot,
               "--tmpdir", str(base / "tmp"), "--storage-driver", "vfs", "--events-backend", "none"]

    def run(*args):
        result = subprocess.run(command + list(args), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    yield run
    subprocess.run(command + ["rmi", "-a", "-f"], capture_output=True, timeout=300)
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(runroot, ignore_errors=True)


def skopeo_inspect(transport_path):
    result = subprocess.run(["skopeo", "inspect", transport_path], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_archive_loads_in_podman_and_skopeo(vessel, podman, tmp_path):
    image_id = vessel("import", ALPINE, "alpine:3.20", "-c", 'CMD ["/bin/sh"]', "-c", "ENV X=1").strip()
    busybox = busybox_rootfs_tar(str(tmp_path / "busybox.tar"))
    busybox_id = vessel("import", busybox, "localhost:5000/busybox:v1").strip()
    archive = tmp_path / "images.tar"
    vessel("save", "-o", str(archive), "alpine:3.20", "localhost:5000/busybox:v1")

    info = skopeo_inspect(f"docker-archive:{archive}:docker.io/library/alpine:3.20")
    (document,) = json.loads(vessel("image", "inspect", "alpine:3.20"))
    assert info["Layers"] == document["RootFS"]["Layers"]
    assert "X=1" in info["Env"] and info["Architecture"] == "amd64"
    single = tmp_path / "single.tar"
    vessel("save", "-o", str(single), "localhost:5000/busybox:v1")
    (busybox_document,) = json.loads(vessel("image", "inspect", "localhost:5000/busybox:v1"))
    assert skopeo_inspect(f"docker-archive:{single}")["Layers"] == busybox_document["RootFS"]["Layers"]

    loaded = podman("load", "-i", str(archive))
    assert "docker.io/library/alpine:3.20" in loaded and "localhost:5000/busybox:v1" in loaded
    listed = podman("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n")
    assert f"docker.io/library/alpine:3.20 {image_id}" in listed
    assert f"localhost:5000/busybox:v1 {busybox_id}" in listed
    config = json.loads(podman("image", "inspect", "docker.io/library/alpine:3.20"))[0]["Config"]
    assert config["Cmd"] == ["/bin/sh"]


def test_oci_archive_loads_in_podman_and_skopeo(vessel, podman, tmp_path):
    image_id = vessel("import", ALPINE, "alpine:oci").strip()
    archive = tmp_path / "oci.tar"
    vessel("save", "--format", "oci-archive", "-o", str(archive), "alpine:oci")
    info = skopeo_inspect(f"oci-archive:{archive}")
    with ImageStore(vessel.root) as store:
        assert info["Digest"] == store.get("alpine:oci").manifest_digest  # blobs saved as stored
    assert "docker.io/library/alpine:oci" in podman("load", "-i", str(archive))
    assert image_id in podman("images", "--no-trunc", "--format", "{{.ID}}")


def test_podman_and_skopeo_archives_load_in_vessel(vessel, podman, tmp_path):
    vessel("import", ALPINE, "alpine:3.20")
    original = tmp_path / "original.tar"
    vessel("save", "-o", str(original), "alpine:3.20")
    podman("load", "-i", str(original))
    from_podman = tmp_path / "from-podman.tar"
    podman("save", "-o", str(from_podman), "docker.io/library/alpine:3.20")
    oci = tmp_path / "from-skopeo-oci.tar"
    subprocess.run(["skopeo", "copy", f"docker-archive:{original}", f"oci-archive:{oci}:docker.io/library/alpine:oci"],
                   check=True, capture_output=True, timeout=120)
    vessel("rmi", "alpine:3.20")
    assert "Loaded image: alpine:3.20" in vessel("load", "-i", str(from_podman))
    assert "Loaded image: alpine:oci" in vessel("load", "-i", str(oci))
    assert sorted(vessel("images", "--format", "{{.Tag}}").split()) == ["3.20", "oci"]
