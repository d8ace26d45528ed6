"""Restart policies and healthchecks with real containers under the monitor: `--restart`, `--health-*`,
the image's HEALTHCHECK, what ps, inspect and events show, `start --all --by-restart-policy`.

Intervals are short (200 ms) and every wait polls with a generous deadline; nothing asserts on timing.
"""

import json
import os
import time

import pytest

from peers import busybox_docker_archive
from test_engine_cli import Vessel, busybox_tarball, vessel  # noqa: F401 - fixtures


def _until(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _inspect(vessel, name, template):
    return vessel("inspect", "-f", template, name).stdout.strip()


def _state(vessel, name):
    return json.loads(_inspect(vessel, name, "{{json .State}}")), int(_inspect(vessel, name, "{{.RestartCount}}"))


def _actions(vessel, name):
    lines = vessel("events", "--since", "0", "--until", str(time.time()), "--filter", f"container={name}",
                   "--format", "{{.Action}}").stdout.splitlines()
    return [line.strip() for line in lines]


def test_on_failure_restarts_exactly_n_times(vessel, names):
    name = names("onfail")
    vessel("run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3")

    def settled():
        state, count = _state(vessel, name)
        return state["Status"] == "exited" and count == 2

    _until(settled, what="two restarts")
    time.sleep(1.0)  # longer than the back-off of a third restart (400 ms), which must not come
    state, count = _state(vessel, name)
    assert (state["Status"], state["ExitCode"], count) == ("exited", 3, 2)
    assert vessel("logs", name).stdout.splitlines() == ["run"] * 3
    assert json.loads(_inspect(vessel, name, "{{json .HostConfig.RestartPolicy}}")) == \
        {"Name": "on-failure", "MaximumRetryCount": 2}
    actions = _actions(vessel, name)
    assert actions.count("die") == 3 and actions.count("restart") == 2


def test_on_failure_does_not_restart_a_success(vessel, names):
    name = names("onok")
    vessel("run", "-d", "--name", name, "--restart", "on-failure", "busybox", "true")
    _until(lambda: _state(vessel, name)[0]["Status"] == "exited", what="the exit")
    time.sleep(0.5)
    assert _state(vessel, name)[1] == 0


def test_always_restarts_until_stopped_and_the_stop_sticks(vessel, names):
    name = names("always")
    # exits quickly on its first runs (counted in its own filesystem), then keeps running
    script = "n=$(cat /runs 2>/dev/null || echo 0); echo $((n + 1)) > /runs; [ $n -ge 3 ] && exec sleep 60; sleep 0.2"
    vessel("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", script)
    _until(lambda: _state(vessel, name)[1] >= 2, what="restarts")
    # listed without -a while running or restarting (not in the instant it is being created again)
    _until(lambda: name in vessel("ps", "--format", "{{.Names}}").stdout.split(), what="listed")
    vessel("stop", "-t", "1", name)
    state, count = _state(vessel, name)
    assert state["Status"] == "exited"
    time.sleep(1.5)
    assert _state(vessel, name) == (state, count)
    assert name not in vessel("ps", "--format", "{{.Names}}").stdout.split()
    vessel("start", name)           # a start by the user: the count starts again from 0
    assert _state(vessel, name)[1] == 0
    vessel("kill", name)            # SIGKILL by the user: no restart either
    _until(lambda: _state(vessel, name)[0]["Status"] == "exited", what="the kill")
    time.sleep(1.0)
    assert _state(vessel, name)[0]["Status"] == "exited"


def test_stop_and_rm_during_the_back_off(vessel, names):
    first, second = names("backoff"), names("backoff")
    for name in (first, second):
        vessel("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    # from the 6th restart on the back-off is 3.2 s or more: long enough to look at a waiting container
    _until(lambda: _state(vessel, first)[1] >= 6 and _state(vessel, first)[0]["Status"] == "restarting",
           what="a long back-off wait")
    status = vessel("ps", "--filter", f"name={first}", "--format", "{{.Status}}").stdout
    assert status.startswith("Restarting (1) ") and status.strip().endswith("ago"), status
    state, _ = _state(vessel, first)
    assert state["Restarting"] and state["Running"]
    refused = vessel("rm", first, code=125)
    assert "You cannot remove a restarting container" in refused.stderr
    # the back-off keeps doubling, so a stop soon lands in a wait (or stops a short run)
    vessel("stop", first)
    count = _state(vessel, first)[1]
    vessel("rm", "-f", second)
    assert second not in vessel("ps", "-a", "--format", "{{.Names}}").stdout.split()
    time.sleep(2)
    state, later = _state(vessel, first)
    assert state["Status"] == "exited" and later == count


def test_wait_on_a_restarting_container_ends_at_its_next_exit(vessel, names):
    name = names("waitrs")
    vessel("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "sleep 0.3; exit 3")
    _until(lambda: _state(vessel, name)[1] >= 1, what="a restart")
    # while it runs (ExitCode is 0 then), the wait ends at its exit, with that exit's code
    _until(lambda: _state(vessel, name)[0]["Status"] == "running", what="running")
    assert vessel("wait", name).stdout == "3\n"
    # while it waits for its restart, the wait ends at the exit after that restart, not at once
    _until(lambda: _state(vessel, name)[0]["Status"] == "restarting", what="restarting")
    count = _state(vessel, name)[1]
    assert vessel("wait", name).stdout == "3\n"
    assert _state(vessel, name)[1] > count
    vessel("rm", "-f", name)


def test_update_restart_policy(vessel, names):
    name = names("upd")
    vessel("create", "--name", name, "busybox", "sh", "-c", "exit 1")
    vessel("update", "--restart", "on-failure:1", name)
    assert json.loads(_inspect(vessel, name, "{{json .HostConfig.RestartPolicy}}")) == \
        {"Name": "on-failure", "MaximumRetryCount": 1}
    vessel("start", name)
    _until(lambda: _state(vessel, name) [1] == 1 and _state(vessel, name)[0]["Status"] == "exited",
           what="one restart")
    bad = vessel("update", "--restart", "bogus", name, code=125)
    assert "invalid restart policy: unknown policy 'bogus'" in bad.stderr
    removed = names("updrm")
    vessel("create", "--rm", "--name", removed, "busybox", "true")
    refused = vessel("update", "--restart", "always", removed, code=125)
    assert "Restart policy cannot be updated because AutoRemove is enabled" in refused.stderr


def test_start_all_by_restart_policy_after_a_boot(vessel, names):
    always, unless, unless_stopped, plain = (names("boot") for _ in range(4))
    vessel("run", "-d", "--name", always, "--restart", "always", "busybox", "sleep", "60")
    vessel("run", "-d", "--name", unless, "--restart", "unless-stopped", "busybox", "sleep", "60")
    vessel("run", "-d", "--name", unless_stopped, "--restart", "unless-stopped", "busybox", "sleep", "60")
    vessel("run", "-d", "--name", plain, "busybox", "sleep", "60")
    vessel("stop", "-t", "0", always, unless_stopped, plain)
    # what a reboot leaves: `unless` was running, no one stopped it; its process is gone
    vessel("rm", "-f", unless)
    crash_once = "[ -e /crashed ] && exec sleep 60; touch /crashed; kill -9 $$"
    vessel("run", "-d", "--name", unless, "busybox", "sh", "-c", crash_once)
    _until(lambda: _state(vessel, unless)[0]["Status"] == "exited", what="the crash")
    vessel("update", "--restart", "unless-stopped", unless)
    started = vessel("start", "--all", "--by-restart-policy").stdout.split()
    assert sorted(started) == sorted([always, unless])
    running = vessel("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(n for n in running if n in (always, unless, unless_stopped, plain)) == sorted([always, unless])
    listed = vessel("ps", "-a", "--filter", "restart-policy=unless-stopped", "--format", "{{.Names}}").stdout.split()
    assert sorted(listed) == sorted([unless, unless_stopped])
    assert vessel("start", "--all", "--filter", "restart-policy=unless-stopped").stdout.split() == [unless_stopped]


def _health(vessel, name):
    text = _inspect(vessel, name, "{{json .State.Health}}")
    return json.loads(text) if text not in ("", "null", "<no value>") else None


def test_healthy_unhealthy_and_timed_out_probes(vessel, names):
    healthy, unhealthy, slow = names("ok"), names("bad"), names("slow")
    vessel("run", "-d", "--name", healthy, "--health-cmd", "echo fine", "--health-interval", "200ms",
           "busybox", "sleep", "60")
    vessel("run", "-d", "--name", unhealthy, "--health-cmd", "echo broken; exit 1", "--health-interval", "200ms",
           "--health-retries", "2", "busybox", "sleep", "60")
    vessel("run", "-d", "--name", slow, "--health-cmd", "sleep 10", "--health-interval", "200ms",
           "--health-timeout", "300ms", "--health-retries", "1", "busybox", "sleep", "60")
    _until(lambda: (_health(vessel, healthy) or {}).get("Status") == "healthy", what="healthy")
    _until(lambda: (_health(vessel, unhealthy) or {}).get("Status") == "unhealthy", what="unhealthy")
    _until(lambda: (_health(vessel, slow) or {}).get("Status") == "unhealthy", what="timed out")

    good = _health(vessel, healthy)
    assert good["FailingStreak"] == 0 and good["Log"][-1]["ExitCode"] == 0 and good["Log"][-1]["Output"] == "fine\n"
    bad = _health(vessel, unhealthy)
    assert bad["FailingStreak"] >= 2 and bad["Log"][-1] | {"Start": 0, "End": 0} == \
        {"Start": 0, "End": 0, "ExitCode": 1, "Output": "broken\n"}
    timed_out = _health(vessel, slow)["Log"][-1]
    assert timed_out["ExitCode"] == -1 and timed_out["Output"] == "Health check exceeded timeout (300ms)"
    _until(lambda: len(_health(vessel, healthy)["Log"]) == 5, what="five results")
    time.sleep(0.6)
    assert len(_health(vessel, healthy)["Log"]) == 5

    statuses = dict(line.split(" ", 1) for line in
                    vessel("ps", "--format", "{{.Names}} {{.Status}}").stdout.splitlines())
    assert statuses[healthy].startswith("Up ") and statuses[healthy].endswith(" (healthy)")
    assert statuses[unhealthy].endswith(" (unhealthy)")
    filtered = vessel("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").stdout.split()
    assert sorted(filtered) == sorted([unhealthy, slow])
    assert vessel("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout.split() == [healthy]
    assert json.loads(_inspect(vessel, slow, "{{json .Config.Healthcheck}}")) == {
        "Test": ["CMD-SHELL", "sleep 10"], "Interval": 200_000_000, "Timeout": 300_000_000, "Retries": 1}
    assert "health_status: healthy" in _actions(vessel, healthy)
    assert "health_status: unhealthy" in _actions(vessel, unhealthy)
    vessel("rm", "-f", healthy, unhealthy, slow)


def test_start_period_and_health_starting(vessel, names):
    name = names("period")
    vessel("run", "-d", "--name", name, "--health-cmd", "test -e /tmp/ready", "--health-interval", "200ms",
           "--health-retries", "1", "--health-start-period", "60s", "--health-start-interval", "200ms",
           "busybox", "sleep", "60")
    _until(lambda: len((_health(vessel, name) or {}).get("Log", [])) >= 2, what="failing probes")
    health = _health(vessel, name)
    assert health["Status"] == "starting" and health["FailingStreak"] == 0
    assert "(health: starting)" in vessel("ps", "--format", "{{.Status}}", "--filter", f"name={name}").stdout
    assert vessel("ps", "--filter", "health=starting", "--format", "{{.Names}}").stdout.split() == [name]
    vessel("exec", name, "touch", "/tmp/ready")
    _until(lambda: _health(vessel, name)["Status"] == "healthy", what="healthy")


def test_the_images_healthcheck_and_no_healthcheck(vessel, names, tmp_path):
    check = {"Test": ["CMD", "/bin/true"], "Interval": 200_000_000, "Retries": 2}
    archive = busybox_docker_archive(str(tmp_path / "checked.tar"), tag="checked:latest",
                                     config={"Healthcheck": check})
    vessel("load", "-i", archive)
    inherited, overridden, disabled = names("img"), names("img"), names("img")
    vessel("run", "-d", "--name", inherited, "checked", "sleep", "60")
    vessel("run", "-d", "--name", overridden, "--health-cmd", "exit 1", "checked", "sleep", "60")
    vessel("run", "-d", "--name", disabled, "--no-healthcheck", "checked", "sleep", "60")
    assert json.loads(_inspect(vessel, inherited, "{{json .Config.Healthcheck}}")) == check
    assert json.loads(_inspect(vessel, overridden, "{{json .Config.Healthcheck}}")) == \
        {"Test": ["CMD-SHELL", "exit 1"], "Interval": 200_000_000, "Retries": 2}
    assert json.loads(_inspect(vessel, disabled, "{{json .Config.Healthcheck}}"))["Test"] == ["NONE"]
    _until(lambda: (_health(vessel, inherited) or {}).get("Status") == "healthy", what="healthy")
    _until(lambda: (_health(vessel, overridden) or {}).get("Status") == "unhealthy", what="unhealthy")
    assert _health(vessel, disabled) is None
    assert vessel("ps", "--filter", "health=none", "--format", "{{.Names}}").stdout.split() == [disabled]
    vessel("rm", "-f", inherited, overridden, disabled)


@pytest.mark.parametrize("flags,message", [
    (["--restart", "bogus"], "invalid restart policy: unknown policy 'bogus'"),
    (["--restart", "on-failure:-1"], "maximum retry count cannot be negative"),
    (["--restart", "on-failure:x"], "invalid restart policy format: maximum retry count must be an integer"),
    (["--restart", "always", "--rm"], "Conflicting options: --restart and --rm"),
    (["--health-cmd", "true", "--health-interval", "5"], 'time: missing unit in duration "5"'),
    (["--health-cmd", "true", "--health-interval", "-1s"], "--health-interval cannot be negative"),
    (["--health-cmd", "true", "--health-timeout", "10us"], "Timeout in Healthcheck cannot be less than 1ms"),
    (["--health-cmd", "true", "--health-retries", "-1"], "--health-retries cannot be negative"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts with --health-* options"),
])
def test_bad_values_exit_125_and_create_nothing(vessel, flags, message):
    for command in ("run", "create"):
        result = vessel(command, *flags, "busybox", "true", code=125)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert vessel.ids() == []


def test_python_api(vessel, names):
    from vessel.api import Client
    from vessel.errors import InvalidArgument

    with Client(vessel.root, vessel.runroot) as client:
        box = client.containers.run("busybox", ["sleep", "60"], detach=True, name=names("api"),
                                    cgroup_parent=vessel.cgroup_name,
                                    restart_policy={"Name": "on-failure", "MaximumRetryCount": 1},
                                    healthcheck={"test": ["CMD", "true"], "interval": 200_000_000})
        assert box.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}

        def healthy():
            box.reload()
            return box.health == "healthy"

        _until(healthy, what="healthy")
        assert box.attrs["State"]["Health"]["Status"] == "healthy"
        box.update(restart_policy={"Name": "always"})
        assert box.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
        with pytest.raises(InvalidArgument, match="Conflicting options"):
            client.containers.create("busybox", "true", restart_policy={"Name": "always"}, auto_remove=True)
        box.remove(force=True)


def test_a_monitor_handoff_keeps_the_back_off_timers_and_the_health(vessel, names):
    import signal

    from vessel.api import Client

    waiting, checked = names("handoff"), names("handoff")
    vessel("run", "-d", "--name", checked, "--health-cmd", "true", "--health-interval", "200ms", "busybox",
           "sleep", "60")
    _until(lambda: (_health(vessel, checked) or {}).get("Status") == "healthy", what="healthy")
    vessel("run", "-d", "--name", waiting, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    _until(lambda: _state(vessel, waiting)[0]["Status"] == "restarting", what="a back-off wait")
    with Client(vessel.root, vessel.runroot) as client:
        monitor = client.containers.get(checked).record.supervisor_pid
    os.kill(monitor, signal.SIGHUP)
    count = _state(vessel, waiting)[1]
    _until(lambda: _state(vessel, waiting)[1] >= count + 2, what="restarts after the handoff")
    last = _health(vessel, checked)["Log"][-1]["Start"]
    _until(lambda: _health(vessel, checked)["Log"][-1]["Start"] > last, what="probes after the handoff")
    assert _health(vessel, checked)["Status"] == "healthy"
    vessel("rm", "-f", waiting, checked)


def test_a_signal_that_is_not_a_stop_still_restarts(vessel, names):
    name = names("hup")
    vessel("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c",
           "trap 'exit 3' HUP; sleep 60 & wait")
    vessel("kill", "-s", "HUP", name)       # Docker: only SIGKILL or the stop signal cancel the policy
    _until(lambda: _state(vessel, name)[1] == 1 and _state(vessel, name)[0]["Status"] == "running",
           what="a restart")
    vessel("rm", "-f", name)


def test_a_killed_monitor_leaves_a_waiting_container_exited(vessel, names):
    import signal

    from vessel.api import Client

    name = names("orphan")
    vessel("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    _until(lambda: _state(vessel, name)[1] >= 6 and _state(vessel, name)[0]["Status"] == "restarting",
           what="a long back-off wait")
    with Client(vessel.root, vessel.runroot) as client:
        monitor = client.containers.get(name).record.supervisor_pid
    os.kill(monitor, signal.SIGKILL)
    _until(lambda: _state(vessel, name)[0]["Status"] == "exited", what="shown exited")
    assert vessel("start", "--all", "--by-restart-policy").stdout.split() == [name]
    _until(lambda: _state(vessel, name)[1] >= 1, what="its policy at work again")
    vessel("rm", "-f", name)


@pytest.mark.parametrize("runtime", ["vessel", "runc"])
def test_a_timed_out_probe_is_killed_in_the_container(vessel, names, runtime):
    name = names("killed")
    vessel("run", "-d", "--name", name, "--runtime", runtime, "--health-cmd", "sleep 10", "--health-interval",
           "200ms", "--health-timeout", "300ms", "busybox", "sleep", "60")
    _until(lambda: len((_health(vessel, name) or {}).get("Log", [])) >= 3, what="three timed out probes")
    probes = [row for row in vessel("top", name).stdout.splitlines()[1:] if row.endswith("sleep 10")]
    assert len(probes) <= 1, probes      # at most the one running now
    vessel("rm", "-f", name)
