"""The container monitor (vessel.engine.monitor): one process per state root supervising every container.

Real containers through the `vessel` CLI (test_engine_cli's fixture): one
monitor for many containers, leaving when idle, kill -9 of it, its handoff to
a fresh copy (SIGHUP), concurrent runs, other runtimes.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from test_engine_cli import _assert_clean, busybox_tarball, monitors, vessel  # noqa: F401 - fixtures


def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().split(b"\0")


def _monitor_pid(vessel, name):
    from vessel.engine.state import State

    state = State(vessel.root)
    try:
        return state.find(name).supervisor_pid
    finally:
        state.close()


def _wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))


def test_many_containers_under_one_monitor(vessel):
    from vessel.engine.monitor import _SLIM_FROM

    names = [f"many{i}" for i in range(_SLIM_FROM)]
    for name in names:
        vessel("run", "-d", "--name", name, "busybox", "sh", "-c", f"echo {name}; sleep 100")
    pids = {_monitor_pid(vessel, name) for name in names}
    assert len(pids) == 1
    # (polled: a monitor exec'ing its slim successor shows no command line for an instant)
    _wait_for(lambda: monitors(vessel) == list(pids))
    monitor = pids.pop()
    # quiet and serving many, it hands off to a copy of itself without the engine's code (same process)
    _wait_for(lambda: b"--successor" in _cmdline(monitor))
    assert _pss_kib(monitor) > 0
    states = [c["State"] for c in json.loads(vessel("inspect", *names).stdout)]
    assert all(s["Running"] for s in states)
    _wait_for(lambda: all(vessel("logs", name).stdout == f"{name}\n" for name in names))
    vessel("stop", "-t", "0", names[0])
    assert vessel("inspect", "-f", "{{.State.ExitCode}}", names[0]).stdout.strip() == "137"
    _wait_for(lambda: monitors(vessel) == [monitor])  # still serving the others
    vessel("rm", "-f", *names)
    _assert_clean(vessel)


def test_monitor_leaves_when_idle(vessel):
    vessel("run", "-d", "--name", "brief", "busybox", "sleep", "0.5")
    monitor = _monitor_pid(vessel, "brief")
    _wait_for(lambda: monitors(vessel) == [monitor])
    _wait_for(lambda: monitors(vessel) == [])
    assert vessel("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "brief").stdout == "exited 0\n"
    assert not [n for n in os.listdir(vessel.runroot) if n.endswith(".sock")]
    # the next start launches a new one
    assert vessel("start", "-a", "brief").returncode == 0
    vessel("rm", "brief")
    _assert_clean(vessel)


def test_killed_monitor(vessel):
    vessel("run", "-d", "--name", "kept", "busybox", "sleep", "100")
    vessel("run", "-d", "--name", "waited", "busybox", "sleep", "100")
    vessel("run", "-d", "--name", "stopped", "busybox", "sh", "-c", "trap 'exit 9' TERM; while true; do sleep 0.1; done")
    monitor = _monitor_pid(vessel, "kept")
    os.kill(monitor, signal.SIGKILL)
    _wait_for(lambda: monitors(vessel) == [])
    assert vessel("ps", "--format", "{{.Names}} {{.State}}").stdout.split("\n")[:3] == \
        ["stopped running", "waited running", "kept running"]
    waiting = vessel.popen("wait", "waited", stdout=subprocess.PIPE, text=True)
    vessel("kill", "waited")
    assert waiting.communicate(timeout=30)[0] == "137\n"
    vessel("stop", "stopped")
    assert vessel("inspect", "-f", "{{.State.Status}}", "stopped").stdout == "exited\n"
    # a new container gets a new monitor; the orphaned one stays removable
    assert vessel("run", "--rm", "busybox", "echo", "after").stdout == "after\n"
    vessel("rm", "-f", "kept", "waited", "stopped")
    _assert_clean(vessel)


def test_handoff_keeps_containers(vessel):
    vessel("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
           "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done")
    vessel("run", "-d", "--name", "ending", "busybox", "sh", "-c", "sleep 1.5; echo bye; exit 5")
    vessel("run", "-d", "-i", "--name", "reader", "busybox", "sh", "-c", "read line; echo got $line; exit 4")
    vessel("run", "-d", "-t", "--name", "term", "busybox", "sh", "-c", "sleep 1.5; tty; exit 2")
    monitor = _monitor_pid(vessel, "ticker")
    _wait_for(lambda: "tick 3\n" in vessel("logs", "ticker").stdout)
    os.kill(monitor, signal.SIGHUP)

    _wait_for(lambda: b"--successor" in _cmdline(monitor))
    _wait_for(lambda: monitors(vessel) == [monitor])  # the same process, a new program
    # the exit codes of containers that end after the handoff are recorded
    _wait_for(lambda: vessel("inspect", "-f", "{{.State.Status}}", "ending", "term").stdout == "exited\nexited\n")
    assert vessel("inspect", "-f", "{{.State.ExitCode}}", "ending", "term").stdout == "5\n2\n"
    assert vessel("logs", "ending").stdout == "bye\n"
    assert vessel("logs", "term").stdout.strip() == "/dev/pts/0"
    # the log goes on without a gap
    count = len(vessel("logs", "ticker").stdout.splitlines())
    _wait_for(lambda: len(vessel("logs", "ticker").stdout.splitlines()) > count + 5)
    ticks = [int(line.split()[1]) for line in vessel("logs", "ticker").stdout.splitlines()]
    assert ticks == list(range(len(ticks)))
    # attach works after it: stdin in, output and exit code out
    attached = vessel("attach", "reader", input="hello\n", code=4)
    assert attached.stdout == "got hello\n"
    vessel("rm", "-f", "ticker", "ending", "reader", "term")
    _assert_clean(vessel)


def test_an_upgrade_on_disk_makes_the_monitor_hand_off(vessel):
    from vessel.engine import monitor as monitor_module

    vessel("run", "-d", "--name", "steady", "busybox", "sh", "-c", "echo up; sleep 100")
    monitor = _monitor_pid(vessel, "steady")
    _wait_for(lambda: monitors(vessel) == [monitor])
    assert b"--successor" not in _cmdline(monitor)  # one container: no slim handoff either
    # vessel "upgraded" under it: one of its files is not the one the monitor started with (its time
    # differs; older, as a reinstall of an older version could make it)
    path = monitor_module.__file__
    before = os.stat(path)
    try:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
        time.sleep(monitor_module._CODE_CHECK_EVERY)
        assert vessel("run", "--rm", "busybox", "echo", "served").stdout == "served\n"
        _wait_for(lambda: b"--successor" in _cmdline(monitor))
    finally:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert monitors(vessel) == [monitor]
    assert vessel("logs", "steady").stdout == "up\n"
    vessel("stop", "-t", "0", "steady")
    assert vessel("inspect", "-f", "{{.State.ExitCode}}", "steady").stdout == "137\n"
    vessel("rm", "steady")
    _assert_clean(vessel)


def test_concurrent_run_rm(vessel):
    procs = [vessel.popen("run", "--rm", "busybox", "sh", "-c", f"echo out {i}; echo err {i} >&2; exit {i % 5}",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(20)]
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, out, err) == (i % 5, f"out {i}\n", f"err {i}\n")
    _assert_clean(vessel)


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_other_runtimes_are_executed(vessel, runtime):
    result = vessel("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "echo via peer; exit 3", code=None)
    if runtime == "crun" and "cgroups in hybrid mode not supported" in result.stderr:
        pytest.skip("crun refuses this machine's hybrid cgroups (cgroup2 offers a controller)")
    assert (result.returncode, result.stdout) == (3, "via peer\n")
    vessel("run", "-d", "--name", "peer", "--runtime", runtime, "busybox", "sh", "-c", "echo up; sleep 100")
    _wait_for(lambda: vessel("logs", "peer").stdout == "up\n")
    vessel("stop", "-t", "0", "peer")
    assert vessel("inspect", "-f", "{{.State.ExitCode}}", "peer").stdout == "137\n"
    vessel("rm", "peer")
    _assert_clean(vessel)
