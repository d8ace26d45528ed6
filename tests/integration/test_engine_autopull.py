"""`run`/`create` pull a missing image (Docker's lines on stderr), `--pull always|missing|never`, and the
image half of the Python API (images.pull/list/get/tag/remove) against a real registry on loopback."""

import os

import pytest

from registry_fixtures import registry  # noqa: F401 - fixture
from test_engine_api import client  # noqa: F401 - fixture
from test_engine_cli import Vessel, busybox_tarball, vessel  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"), reason="needs docker-registry")


@pytest.fixture
def fresh(tmp_path, names):
    """A vessel state with no image at all."""
    cli = Vessel(str(tmp_path / "fresh"), names("cg"))
    yield cli
    cli.teardown()


def _push(vessel, name):
    vessel("tag", "busybox", name)
    vessel("push", name)


def test_run_pulls_a_missing_image(vessel, fresh, registry):  # noqa: F811
    name = f"{registry.host}/tests/busybox:v1"
    _push(vessel, name)
    result = fresh("run", "--rm", name, "echo", "pulled")
    assert result.stdout == "pulled\n"
    lines = result.stderr.splitlines()
    assert lines[0] == f"Unable to find image '{name}' locally"
    assert "v1: Pulling from tests/busybox" in lines and f"Status: Downloaded newer image for {name}" in lines
    assert fresh("run", "--rm", name, "true").stderr == ""  # present now: no pull
    result = fresh("run", "--rm", "--pull", "always", name, "true")
    assert "Unable to find" not in result.stderr and f"Status: Image is up to date for {name}" in result.stderr
    assert fresh("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == f"{registry.host}/tests/busybox:v1\n"


def test_create_pulls_and_pull_never_refuses(vessel, fresh, registry):  # noqa: F811
    name = f"{registry.host}/tests/busybox:v2"
    _push(vessel, name)
    result = fresh("create", "--pull", "never", "--name", "never", name, "true", code=125)
    assert result.stderr == f"Error: No such image: {name}\n"
    assert fresh.ids() == []
    result = fresh("create", "--name", "made", name, "true")
    assert result.stderr.startswith(f"Unable to find image '{name}' locally\n")
    assert result.stdout.strip() in fresh.ids()


def test_unknown_image_gives_125_and_creates_nothing(fresh, registry):  # noqa: F811
    name = f"{registry.host}/tests/nothere:v1"
    result = fresh("run", "--rm", name, "true", code=125)
    lines = result.stderr.splitlines()
    assert lines[0] == f"Unable to find image '{name}' locally"
    assert lines[-1].startswith("Error: ") and "nothere" in lines[-1] and "Traceback" not in result.stderr
    assert fresh.ids() == []


def test_api_images_and_run_pull(vessel, registry, client):  # noqa: F811
    name = f"{registry.host}/tests/busybox"
    _push(vessel, f"{name}:v3")
    image = client.images.pull(name, tag="v3")
    assert f"{name}:v3" in image.repo_tags
    assert client.images.get(f"{name}:v3").id == image.id
    assert [i.id for i in client.images.list(name)] == [image.id]
    assert client.images.list(f"{name}:nosuchtag") == []
    assert [i.id for i in client.images.list(filters={"reference": f"{name}:v3", "dangling": False})] == [image.id]
    assert all(not i.repo_tags for i in client.images.list(filters={"dangling": True}))
    assert client.images.list(filters={"label": "no.such.label"}) == []
    assert client.images.tag(image.id, "local/copy", "one") is True
    assert client.images.get("local/copy:one").id == image.id
    assert client.images.remove("local/copy:one") == [{"Untagged": "local/copy:one"}]
    client.images.remove(f"{name}:v3")
    assert client.containers.run(f"{name}:v3", "echo hi", remove=True, cgroup_parent=client.cgroup) == b"hi\n"


def test_platform_of_a_local_image(vessel):  # noqa: F811
    local = vessel("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "busybox").stdout.strip()
    other = "linux/s390x" if local != "linux/s390x" else "linux/amd64"
    vessel("run", "--rm", "--pull", "never", "--platform", local, "busybox", "true")
    result = vessel("run", "--rm", "--pull", "never", "--platform", other, "busybox", "true", code=125)
    assert result.stderr == (f"Error: image with reference busybox was found but does not match the specified "
                             f"platform: wanted {other}, actual: {local}\n")
    result = vessel("run", "--rm", "--platform", "linux//x", "busybox", "true", code=125)
    assert "invalid platform 'linux//x'" in result.stderr
    assert vessel.ids() == []
