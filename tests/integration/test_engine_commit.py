"""`vessel commit` and Container.commit(): the container's changes as a new image that runs."""

import json
import time

from test_engine_cli import Vessel, busybox_tarball, vessel  # noqa: F401 - fixtures


def test_commit_then_run_sees_adds_changes_and_deletes(vessel):
    vessel("run", "--name", "base", "busybox", "sh", "-c", "mkdir -p /data/old && echo o > /data/old/f")
    first = vessel("commit", "base", "layered:1").stdout.strip()
    assert first.startswith("sha256:") and len(first) == 71
    vessel("run", "--name", "work", "layered:1", "sh", "-c",
           "echo new > /added && echo changed >> /etc/passwd && rm /etc/group "
           "&& rm -rf /data && mkdir -p /data/fresh && echo n > /data/fresh/f")
    image_id = vessel("commit", "-m", "the message", "-a", "Ann <ann@example.com>", "work", "layered:2").stdout.strip()
    seen = vessel("run", "--rm", "layered:2", "sh", "-c",
                  "cat /added; tail -n 1 /etc/passwd; test -e /etc/group || echo no-group; find /data | sort").stdout
    assert seen.split("\n")[:4] == ["new", "changed", "no-group", "/data"]
    assert "/data/fresh/f" in seen and "/data/old" not in seen  # the opaque directory hides the old contents
    document = json.loads(vessel("image", "inspect", "layered:2").stdout)[0]
    assert document["Id"] == image_id and document["Comment"] == "the message"
    assert document["Author"] == "Ann <ann@example.com>"
    base_layers = json.loads(vessel("image", "inspect", "layered:1").stdout)[0]["RootFS"]["Layers"]
    assert document["RootFS"]["Layers"][:-1] == base_layers
    assert len(document["RootFS"]["Layers"]) == len(base_layers) + 1
    history = vessel("history", "--no-trunc", "--format", "{{.Comment}}", "layered:2").stdout.splitlines()
    assert history[0] == "the message"


def test_commit_changes_and_config_from_the_container(vessel):
    vessel("create", "--name", "cfg", "-e", "FROM_RUN=1", "-l", "team=blue", "-w", "/tmp", "busybox",
           "sh", "-c", "echo $FROM_RUN $EXTRA")
    vessel("commit", "--change", "ENV EXTRA=2", "-c", "LABEL extra=yes", "cfg", "configured")
    config = json.loads(vessel("image", "inspect", "configured").stdout)[0]["Config"]
    assert "FROM_RUN=1" in config["Env"] and "EXTRA=2" in config["Env"]
    assert config["Labels"] == {"team": "blue", "extra": "yes"} and config["WorkingDir"] == "/tmp"
    assert vessel("run", "--rm", "configured").stdout == "1 2\n"
    bad = vessel("commit", "-c", "FROB x", "cfg", "broken", code=125)
    assert "not a valid change command" in bad.stderr and "Traceback" not in bad.stderr
    assert vessel("image", "inspect", "broken", code=None).returncode != 0
    assert "No such container" in vessel("commit", "nope", code=125).stderr
    untagged = vessel("commit", "cfg").stdout.strip()
    assert untagged.startswith("sha256:")


def test_commit_pauses_a_running_container_and_leaves_it_running(vessel):
    vessel("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo up > /state; sleep 60")
    deadline = time.monotonic() + 10
    while vessel("exec", "live", "cat", "/state", code=None).returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    vessel("commit", "live", "snap")
    assert json.loads(vessel("inspect", "live").stdout)[0]["State"]["Status"] == "running"
    vessel("commit", "--pause=false", "live", "snap2")
    assert vessel("run", "--rm", "snap2", "cat", "/state").stdout == "up\n"
    actions = vessel("events", "--since", "0", "--until", str(time.time()), "--filter", "container=live",
                     "--format", "{{.Action}}").stdout.split()
    assert actions.count("commit") == 2 and actions.count("pause") == 1 and actions.count("unpause") == 1


def test_python_api_commit(vessel):
    from vessel.api import Client

    vessel("run", "--name", "py", "busybox", "sh", "-c", "echo api > /from-api")
    with Client(vessel.root, vessel.runroot) as client:
        image = client.containers.get("py").commit("fromapi", "v1", message="m", changes=["CMD cat /from-api"])
        assert image.repo_tags == ["fromapi:v1"]
    assert vessel("run", "--rm", "fromapi:v1").stdout == "api\n"


def test_commit_with_the_copy_snapshot_driver(tmp_path, names, busybox_tarball):  # noqa: F811 - fixture
    import os

    copying = Vessel(str(tmp_path / "copy"), names("cg"))
    os.makedirs(os.path.join(copying.root, "image", "snapshots"))
    with open(os.path.join(copying.root, "image", "snapshots", "driver"), "w") as handle:
        handle.write("copy")
    try:
        copying("import", busybox_tarball, "busybox", "--change", 'CMD ["sh"]')
        copying("run", "--name", "work", "busybox", "sh", "-c",
                "echo new > /added && echo changed >> /etc/passwd && rm /etc/group && rm -rf /bin/../root")
        copying("commit", "work", "copied")
        seen = copying("run", "--rm", "copied", "sh", "-c",
                       "cat /added; tail -n 1 /etc/passwd; test -e /etc/group || echo no-group; "
                       "test -e /root || echo no-root").stdout
        assert seen == "new\nchanged\nno-group\nno-root\n"
        assert "copy" in copying("info", "--format", "{{.Driver}}").stdout
    finally:
        copying.teardown()
