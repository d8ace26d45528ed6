"""cgroup v2 for real: membership, freezer, cgroup.kill, stats and the eBPF device filter.

On a v2 host this uses /sys/fs/cgroup; on a hybrid host the unified hierarchy
(usually /sys/fs/cgroup/unified), which has no controllers but the core files.
"""

import os
import signal
import subprocess
import time

import pytest

from vessel.errors import Unsupported
from vessel.runtime.cgroups import Manager, detect, parse_resources
from vessel.runtime.cgroups.host import cgroup_mounts
from vessel.runtime.cgroups.v2 import V2Manager


def _unified_root():
    if detect() == "v2":
        return "/sys/fs/cgroup"
    return next((m.mountpoint for m in cgroup_mounts() if m.version == 2 and m.root == "/"), None)


ROOT = _unified_root()
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or ROOT is None, reason="needs root and a cgroup2 mount")


@pytest.fixture
def cgroup(names):
    manager = V2Manager.open(names("cg"), "unused", root=ROOT)
    manager.create()
    started = []
    yield manager, started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    if os.path.isdir(manager.directory):
        manager.thaw()
        manager.kill_all(signal.SIGKILL)
    manager.destroy()


def spawn(manager, started, argv, **kwargs):
    process = subprocess.Popen(argv, preexec_fn=lambda: manager.add(os.getpid()), **kwargs)
    started.append(process)
    return process


def wait_for(check):
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_membership_freeze_and_state(cgroup):
    manager, started = cgroup
    assert manager.directory.startswith(ROOT + "/") and os.path.isdir(manager.directory)
    sleeper = spawn(manager, started, ["sleep", "1000"])
    assert manager.pids() == [sleeper.pid]
    assert manager.procs_fd_paths() == [manager.directory + "/cgroup.procs"]
    manager.freeze()
    assert manager.is_frozen()
    manager.thaw()
    assert not manager.is_frozen()
    restored = Manager.from_state(manager.to_state())
    assert restored.pids() == [sleeper.pid] and restored.mounts() == [("", manager.directory, "", ())]


def test_kill_all_with_cgroup_kill_and_with_signals(cgroup):
    manager, started = cgroup
    first = spawn(manager, started, ["sleep", "1000"])
    manager.kill_all(signal.SIGTERM)  # freeze, signal, thaw
    assert first.wait(timeout=10) == -signal.SIGTERM
    tree = spawn(manager, started, ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    wait_for(lambda: len(manager.pids()) == 3)
    manager.kill_all(signal.SIGKILL)  # cgroup.kill
    assert tree.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: manager.pids() == [])
    paused = spawn(manager, started, ["sleep", "1000"])
    manager.freeze()
    manager.kill_all(signal.SIGCONT)  # a paused container stays paused...
    assert manager.is_frozen() and paused.poll() is None
    manager.kill_all(signal.SIGKILL)  # ...but dies of SIGKILL
    assert paused.wait(timeout=10) == -signal.SIGKILL
    assert not manager.is_frozen()
    manager.destroy()
    assert not os.path.exists(manager.directory)


def test_device_filter_is_enforced_and_replaced(cgroup):
    manager, started = cgroup
    manager.apply(parse_resources({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
    ]}))
    script = ("head -c1 /dev/zero >/dev/null && echo zero-read; "
              "(echo x >/dev/zero) 2>/dev/null || echo zero-write-denied; "
              "head -c1 /dev/urandom >/dev/null 2>&1 || echo urandom-denied")

    def probe():
        process = spawn(manager, started, ["sh", "-c", script], stdout=subprocess.PIPE, text=True)
        return process.communicate(timeout=30)[0].split()

    assert probe() == ["zero-read", "zero-write-denied", "urandom-denied"]
    manager.apply(parse_resources({"devices": [{"allow": True, "access": "rwm"}]}))
    assert probe() == ["zero-read"]


def test_stats_and_missing_controllers(cgroup):
    manager, started = cgroup
    spawn(manager, started, ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"]).wait(timeout=30)
    stats = manager.stats()
    assert stats["cpu"]["usage"]["total"] > 0
    assert stats["pids"]["current"] == 0
    available = open(f"{manager.directory}/cgroup.controllers").read().split()
    if "pids" not in available:
        with pytest.raises(Unsupported, match="pids.max does not exist"):
            manager.apply(parse_resources({"pids": {"limit": 5}}))
