"""Images that travel through a real registry run: pulled by vessel after skopeo put them
there, the real Alpine rootfs imported, pushed, pulled and run, and a vessel-pushed image
pulled and run by podman."""

import os
import shutil
import subprocess

import pytest

from helpers import ALPINE, MANAGED_MOUNT_PREFIXES
from peers import Podman
from registry_fixtures import busybox_image, registry, write_oci_layout  # noqa: F401  (fixtures)
from test_engine_cli import Vessel

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry") or not shutil.which("skopeo"),
                                reason="needs docker-registry and skopeo")


@pytest.fixture
def vessel(tmp_path, names):
    cli = Vessel(str(tmp_path), names("cg"))
    yield cli
    cli.teardown()


def test_skopeo_copied_image_pulls_and_runs(vessel, registry, tmp_path):  # noqa: F811
    layout = tmp_path / "layout"
    write_oci_layout(str(layout), busybox_image(note="from skopeo"), "v1")
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{registry.host}/interop/busybox:v1"], check=True, capture_output=True)
    vessel("pull", f"{registry.host}/interop/busybox:v1")
    # the image holds only busybox and its sh: read the file with the shell's builtins
    out = vessel("run", "--rm", f"{registry.host}/interop/busybox:v1",
                 "sh", "-c", 'read line < /etc/note; echo "$line"').stdout
    assert out == "from skopeo\n"


def test_alpine_import_push_pull_run(vessel, registry):  # noqa: F811
    name = f"{registry.host}/library/alpine:3.20"
    vessel("import", ALPINE, name)
    vessel("push", name)
    vessel("rmi", name)
    assert vessel("images", "-q").stdout.strip() == ""
    vessel("pull", name)
    out = vessel("run", "--rm", name, "cat", "/etc/alpine-release").stdout
    assert out.strip() == "3.20.3"


def test_podman_pulls_and_runs_what_vessel_pushed(vessel, registry, tmp_path_factory, run_token):  # noqa: F811
    name = f"{registry.host}/library/alpine:pushed"
    vessel("import", ALPINE, name, "--change", 'CMD ["cat", "/etc/alpine-release"]')
    vessel("push", name)
    podman = Podman(str(tmp_path_factory.mktemp("podman-interop")), run_token + "i")
    MANAGED_MOUNT_PREFIXES.append(f"{podman.base}/storage/overlay/")
    try:
        podman("pull", "--tls-verify=false", name)
        out = podman("run", "--rm", *podman.run_args(), name).stdout.decode()
        assert out.strip() == "3.20.3"
    finally:
        podman.teardown()
        MANAGED_MOUNT_PREFIXES.remove(f"{podman.base}/storage/overlay/")
