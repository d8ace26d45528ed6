"""`vessel events` and client.events(): what container and image operations record, filters, formats."""

import json
import os
import re
import select
import subprocess
import time

import pytest
from registry_fixtures import registry  # noqa: F401 - fixture
from test_engine_cli import busybox_tarball, vessel  # noqa: F401 - fixtures

_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (container|image) (\S+(?:: .*?)?) (\S+)(?: \((.*)\))?$")


def _readline(proc, timeout=30):
    """The next line of a streaming `vessel events`, failing instead of hanging when none comes."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no event line within the timeout"
    return proc.stdout.readline()


def _events(vessel, *args):
    lines = vessel("events", "--since", "0", "--until", str(time.time()), *args).stdout.splitlines()
    parsed = []
    for line in lines:
        match = _LINE.match(line)
        assert match, line
        parsed.append(match.groups())
    return parsed


def test_container_lifecycle_events_in_docker_line_format(vessel, names):
    name = names("ev")
    cid = vessel("run", "-d", "--name", name, "-l", "team=blue", "busybox", "sleep", "30").stdout.strip()
    vessel("pause", name)
    vessel("unpause", name)
    vessel("exec", name, "true")
    vessel("stop", "-t", "1", name)
    vessel("rename", name, name + "x")
    vessel("rm", name + "x")
    events = [e for e in _events(vessel) if e[0] == "container"]
    actions = [action.split(":")[0] for _, action, actor, _ in events]
    assert actions[:2] == ["create", "start"]
    for expected in ("pause", "unpause", "exec_create", "exec_start", "kill", "die", "stop", "rename", "destroy"):
        assert expected in actions, (expected, actions)
    assert actions.index("kill") < actions.index("die") < actions.index("stop") < actions.index("destroy")
    assert all(actor == cid for _, _, actor, _ in events)
    create = events[0][3]
    assert f"name={name}" in create and "image=busybox" in create and "team=blue" in create
    die = next(e for e in events if e[1] == "die")
    assert "exitCode=" in die[3]
    kill = next(e for e in events if e[1] == "kill")
    assert "signal=15" in kill[3]
    assert f"oldName=/{name}" in next(e for e in events if e[1] == "rename")[3]


def test_filters_and_json_format(vessel, names):
    first, second = names("a"), names("b")
    vessel("create", "--name", first, "-l", "k=v", "busybox", "true")
    vessel("create", "--name", second, "busybox", "true")
    vessel("tag", "busybox", "copy:1")
    only_first = _events(vessel, "--filter", f"container={first}")
    assert [e[1] for e in only_first] == ["create"]
    assert len(_events(vessel, "--filter", "label=k=v")) == 1
    assert len(_events(vessel, "--filter", "label=k")) == 1
    assert {e[0] for e in _events(vessel, "--filter", "type=image")} == {"image"}
    tags = _events(vessel, "--filter", "event=tag")
    assert len(tags) == 1 and "name=copy:1" in tags[0][3]
    assert _events(vessel, "--filter", "event=create", "--filter", "event=tag").__len__() == 3
    out = vessel("events", "--since", "0", "--until", str(time.time()), "--filter", f"container={second}",
                 "--format", "{{json .}}").stdout
    message = json.loads(out)
    assert message["Type"] == "container" and message["Action"] == "create" and message["status"] == "create"
    assert message["Actor"]["Attributes"]["name"] == second and message["from"] == "busybox"
    assert isinstance(message["timeNano"], int) and message["time"] == message["timeNano"] // 10 ** 9
    out = vessel("events", "--since", "0", "--until", str(time.time()), "--filter", "event=tag",
                 "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}").stdout
    assert out == "image tag copy:1\n"


def test_image_events_rmi_untag_delete(vessel):
    vessel("tag", "busybox", "other:2")
    vessel("rmi", "other:2")
    actions = [e[1] for e in _events(vessel, "--filter", "type=image")]
    assert actions == ["import", "tag", "untag"]


def test_since_until_and_bad_input(vessel, names):
    vessel("create", "--name", names("c"), "busybox", "true")
    assert _events(vessel, "--filter", "event=create")
    assert vessel("events", "--since", "1m", "--until", "0s", "--filter", "event=create").stdout.count("create") == 1
    past = vessel("events", "--since", "2000-01-01T00:00:00Z", "--until", "2000-01-01T00:00:01+00:00").stdout
    assert past == ""
    bad = vessel("events", "--since", "yesterday", code=125)
    assert "failed to parse value as time or duration" in bad.stderr and "Traceback" not in bad.stderr
    bad = vessel("events", "--filter", "colour=red", code=125)
    assert "invalid filter 'colour'" in bad.stderr


def test_streaming_shows_new_events_until_interrupted(vessel, names):
    name = names("s")
    proc = vessel.popen("events", "--filter", "event=create", stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        vessel("create", "--name", name, "busybox", "true")
        line = _readline(proc)
        assert f"name={name}" in line and " container create " in line
    finally:
        proc.terminate()
        proc.wait(10)


def test_python_api_events(vessel, names):
    from vessel.api import Client

    name = names("p")
    vessel("create", "--name", name, "busybox", "true")
    with Client(vessel.root, vessel.runroot) as client:
        decoded = list(client.events(since=0, until=time.time(), filters={"container": name}, decode=True))
        assert [m["Action"] for m in decoded] == ["create"]
        raw = list(client.events(since=0, until=time.time(), filters={"event": "create"}))
        assert json.loads(raw[0])["Actor"]["Attributes"]["name"] == name


def test_without_since_or_until_only_new_events_come(vessel, names):
    vessel("create", "--name", names("old"), "busybox", "true")
    proc = vessel.popen("events", "--format", "{{.Action}} {{.Actor.Attributes.name}}", stdout=subprocess.PIPE,
                        text=True)
    try:
        time.sleep(1.5)
        fresh = names("new")
        vessel("create", "--name", fresh, "busybox", "true")
        assert _readline(proc) == f"create {fresh}\n"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"), reason="needs docker-registry")
def test_push_and_pull_events(vessel, registry):  # noqa: F811 - fixture
    name = f"{registry.host}/tests/events:v1"
    vessel("tag", "busybox", name)
    vessel("push", "-q", name)
    vessel("rmi", name)
    vessel("pull", "-q", name)
    lines = _events(vessel, "--filter", "type=image")
    assert [(action, actor) for _, action, actor, _ in lines if action in ("push", "pull")] == \
        [("push", name), ("pull", name)]
