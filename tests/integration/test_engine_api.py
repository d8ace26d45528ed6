"""The Python API (vessel.from_env, docker-py's shape) on real containers."""

import os
import subprocess
import sys

import pytest

from helpers import default_bridge_env
from peers import busybox_tar, remove_cgroup_tree


@pytest.fixture
def client(tmp_path, names, monkeypatch):
    import vessel

    root, runroot = str(tmp_path / "root"), str(tmp_path / "run")
    tarball = busybox_tar(str(tmp_path / "busybox.tar"))
    subprocess.run([sys.executable, "-m", "vessel.cli.main", "--root", root, "import", tarball, "busybox",
                    "--change", 'CMD ["sh"]'], check=True, capture_output=True)
    monkeypatch.setenv("VESSEL_ROOT", root)
    monkeypatch.setenv("VESSEL_RUNROOT", runroot)
    for key, value in default_bridge_env().items():  # a default bridge of this root's own
        monkeypatch.setenv(key, value)
    cgroup = names("cg")
    api = vessel.from_env()
    api.cgroup = cgroup
    yield api
    for container in api.containers.list(all=True):
        container.remove(force=True)
    api.close()
    remove_cgroup_tree(cgroup)


def test_import_vessel_stays_light():
    code = "import sys, vessel; print(sorted(m for m in sys.modules if m.startswith('vessel')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['vessel']"


def test_run_returns_output_or_raises(client):
    from vessel.api import ContainerError

    assert client.containers.run("busybox", "echo hi", remove=True, cgroup_parent=client.cgroup) == b"hi\n"
    with pytest.raises(ContainerError) as failure:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], remove=True,
                              cgroup_parent=client.cgroup)
    assert failure.value.exit_status == 3 and failure.value.stderr == b"oops\n"
    assert client.containers.list(all=True) == []


def test_detached_container_object(client):
    box = client.containers.run("busybox", "sh -c 'echo started; sleep 100'", detach=True, name="box",
                                labels={"a": "b"}, environment={"GREETING": "hello"}, cgroup_parent=client.cgroup)
    assert box.name == "box" and box.status == "running" and len(box.id) == 64 and box.labels == {"a": "b"}
    assert client.containers.get("box").id == box.id
    assert [c.name for c in client.containers.list()] == ["box"]
    assert [c.name for c in client.containers.list(filters={"label": "a=b"})] == ["box"]
    assert box.exec_run("sh -c 'echo $GREETING'") == (0, b"hello\n")
    assert box.exec_run(["sh", "-c", "exit 6"]).exit_code == 6
    assert box.exec_run("id -u", user="user").output == b"1000\n"
    assert box.attrs["State"]["Running"] is True and box.attrs["Config"]["Labels"] == {"a": "b"}
    assert box.top()["Titles"][1] == "PID"
    box.stop(timeout=1)
    assert box.status == "exited"
    assert box.wait() == {"StatusCode": 137, "Error": None}
    assert box.logs() == b"started\n"
    assert box.logs(timestamps=True).split(b" ", 1)[1] == b"started\n"
    box.remove()
    assert client.containers.list(all=True) == []


def test_images_and_unknown_names(client):
    from vessel.errors import NotFound

    assert [image.repo_tags for image in client.images.list()] == [["busybox:latest"]]
    assert client.images.get("busybox").repo_tags == ["busybox:latest"]
    with pytest.raises(NotFound):
        client.containers.get("nosuch")
    with pytest.raises(NotFound):
        client.containers.create("nosuchimage")
    assert not os.path.exists(os.path.join(os.environ["VESSEL_ROOT"], "containers"))


def test_image_users_guard_image_removal(client):
    from vessel.engine.state import image_users
    from vessel.errors import Conflict
    from vessel.image.store import ImageStore

    container = client.containers.create("busybox", "true", cgroup_parent=client.cgroup)
    root = os.environ["VESSEL_ROOT"]
    with ImageStore(root, users=image_users(root)) as store:
        assert store.users(container.record.image_id) == [(container.id, False)]
        with pytest.raises(Conflict, match="must force"):
            store.remove("busybox")
