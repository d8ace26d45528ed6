"""cgroup v1 for real: a cgroup below this process's own, limits, a real process, freezer, kill, stats.

Runs only as root on a host whose /sys/fs/cgroup is v1 (or hybrid).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from vessel.errors import Conflict, InvalidArgument
from vessel.runtime.cgroups import Manager, detect, open_manager, parse_resources
from vessel.runtime.cgroups.host import own_cgroups

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or detect() != "v1", reason="needs root and cgroup v1")


@pytest.fixture
def cgroup(names):
    """A created V1Manager below our own cgroups; its processes are killed and its dirs removed after."""
    manager = open_manager(names("cg"), "unused")
    manager.create()
    started = []
    yield manager, started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    if all(os.path.isdir(d) for d in manager.directories()):
        manager.thaw()
        manager.kill_all(signal.SIGKILL)
    manager.destroy()


def spawn(manager, started, argv, **kwargs):
    """Start argv inside the cgroup: the child joins it before exec."""
    process = subprocess.Popen(argv, preexec_fn=lambda: manager.add(os.getpid()), **kwargs)
    started.append(process)
    return process


def read(directory, name):
    with open(f"{directory}/{name}") as f:
        return f.read().strip()


def test_created_below_own_cgroups(cgroup):
    manager, _ = cgroup
    own = own_cgroups()
    for controller, directory in manager.paths().items():
        assert os.path.isdir(directory)
        if controller == "memory":
            assert own["memory"].rstrip("/") + "/" in directory
    assert manager.to_state()["mode"] == "v1"
    assert Manager.from_state(manager.to_state()).paths() == manager.paths()


def test_limits_membership_and_devices(cgroup):
    manager, started = cgroup
    manager.apply(parse_resources({
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 16},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}],
    }))
    paths = manager.paths()
    assert read(paths["memory"], "memory.limit_in_bytes") == str(64 << 20)
    if os.path.exists(f"{paths['memory']}/memory.memsw.limit_in_bytes"):
        assert read(paths["memory"], "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(paths["memory"], "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(paths["cpu"], "cpu.shares") == "512"
    assert read(paths["cpu"], "cpu.cfs_quota_us") == "25000"
    assert read(paths["cpuset"], "cpuset.cpus") == "0"
    assert read(paths["pids"], "pids.max") == "16"
    assert read(paths["devices"], "devices.list").splitlines() == ["c 1:3 rwm", "c 1:5 r"]

    sleeper = spawn(manager, started, ["sleep", "1000"])
    assert manager.pids() == [sleeper.pid]
    with open(f"/proc/{sleeper.pid}/cgroup") as f:
        membership = f.read()
    assert f"memory:{paths['memory'][len('/sys/fs/cgroup/memory'):]}" in membership

    probe = spawn(manager, started, ["sh", "-c", "head -c1 /dev/zero >/dev/null && echo zero-ok; "
                                     "head -c1 /dev/urandom >/dev/null || echo urandom-denied"],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = probe.communicate(timeout=30)
    assert out.split() == ["zero-ok", "urandom-denied"], err
    assert "Operation not permitted" in err


def test_pids_limit_stops_a_fork_loop(cgroup):
    manager, started = cgroup
    manager.apply(parse_resources({"pids": {"limit": 5}}))
    script = "i=0; while [ $i -lt 20 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done; echo all"
    loop = spawn(manager, started, ["sh", "-c", script],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = loop.communicate(timeout=30)
    assert "all" not in out
    assert "fork" in err.lower()
    assert 0 < len(manager.pids()) <= 5
    assert manager.stats()["pids"]["limit"] == 5


def test_freeze_thaw_stats_kill_destroy(cgroup):
    manager, started = cgroup
    manager.apply(parse_resources({"memory": {"limit": 32 << 20}}))
    sleeper = spawn(manager, started, ["sleep", "1000"])
    manager.freeze()
    assert manager.is_frozen()
    assert read(manager.paths()["freezer"], "freezer.state") == "FROZEN"
    manager.thaw()
    assert not manager.is_frozen()

    stats = manager.stats()
    assert stats["pids"]["current"] == 1
    assert stats["memory"]["usage"]["limit"] == 32 << 20
    assert "total" in stats["cpu"]["usage"]
    assert set(stats) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}

    manager.kill_all(signal.SIGTERM)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert not manager.is_frozen()

    paused = spawn(manager, started, ["sleep", "1000"])
    manager.freeze()
    manager.kill_all(signal.SIGKILL)
    assert paused.wait(timeout=10) == -signal.SIGKILL
    assert not manager.is_frozen()


def test_kill_all_sigkill_reaches_every_process(cgroup):
    manager, started = cgroup
    tree = spawn(manager, started, ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    deadline = time.monotonic() + 10
    while len(manager.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    manager.kill_all(signal.SIGKILL)
    assert tree.wait(timeout=10) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while manager.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert manager.pids() == []
    manager.destroy()
    assert not any(os.path.exists(d) for d in manager.directories())


def test_hugetlb_limits_and_stats(cgroup):
    manager, _ = cgroup
    directory = manager.paths().get("hugetlb")
    if directory is None or not os.path.exists(f"{directory}/hugetlb.2MB.limit_in_bytes"):
        pytest.skip("no v1 hugetlb hierarchy with 2MB pages")
    manager.apply(parse_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}))
    assert read(directory, "hugetlb.2MB.limit_in_bytes") == str(4 << 20)
    if os.path.exists(f"{directory}/hugetlb.2MB.rsvd.limit_in_bytes"):
        assert read(directory, "hugetlb.2MB.rsvd.limit_in_bytes") == str(4 << 20)
    assert manager.stats()["hugetlb"]["2MB"] == {"usage": 0, "max": 0, "failcnt": 0}


def test_kernel_refusals_are_clear(cgroup):
    manager, _ = cgroup
    with pytest.raises(InvalidArgument, match="cpu.shares: the minimum this kernel allows is 2"):
        manager.apply(parse_resources({"cpu": {"shares": 1}}))
    with pytest.raises(InvalidArgument, match="cpuset.cpus"):
        manager.apply(parse_resources({"cpu": {"cpus": "4000"}}))


def test_hybrid_unified_stands_in_for_missing_v1_controllers(names):
    """Without v1 freezer and devices hierarchies, the cgroup2 directory freezes and filters devices."""
    manager = open_manager(names("cg"), "unused")
    if manager.unified is None:
        pytest.skip("not a hybrid host")
    manager.hierarchies = [h for h in manager.hierarchies
                           if "freezer" not in h.controllers and "devices" not in h.controllers]
    manager.create()
    started = []
    try:
        manager.apply(parse_resources({"devices": [{"allow": False}, {"allow": True, "type": "c", "major": 1,
                                                                       "minor": 3, "access": "rw"}]}))
        sleeper = spawn(manager, started, ["sleep", "1000"])
        manager.freeze()
        assert manager.is_frozen() and read(manager.unified, "cgroup.freeze") == "1"
        manager.thaw()
        probe = spawn(manager, started, ["sh", "-c", "echo x >/dev/null && head -c1 /dev/zero"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = probe.communicate(timeout=30)
        assert probe.returncode != 0 and "Operation not permitted" in err
        manager.kill_all(signal.SIGKILL)
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
        manager.destroy()


ALLOCATE = ("import sys, time\nb = bytearray(int(sys.argv[1]) << 20)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\nprint('ok', flush=True)\ntime.sleep(1000)")


def test_memory_limit_enforced_and_updated(cgroup):
    manager, started = cgroup
    manager.apply(parse_resources({"memory": {"limit": 32 << 20}}))
    hog = spawn(manager, started, [sys.executable, "-c", ALLOCATE, "100"], stdout=subprocess.PIPE)
    assert hog.wait(timeout=60) == -signal.SIGKILL  # the OOM killer, inside the cgroup only
    assert manager.stats()["memory"]["usage"]["failcnt"] > 0

    manager.apply(parse_resources({"memory": {"limit": 256 << 20}}))
    holder = spawn(manager, started, [sys.executable, "-c", ALLOCATE, "40"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ok"
    with pytest.raises(Conflict, match="memory.limit: cannot set 8388608, the cgroup already uses"):
        manager.apply(parse_resources({"memory": {"limit": 8 << 20}}))
    assert holder.poll() is None

    memory = manager.paths()["memory"]
    if not os.path.exists(f"{memory}/memory.memsw.limit_in_bytes"):
        return
    # growing needs memory+swap raised first, shrinking needs the limit lowered first
    manager.apply(parse_resources({"memory": {"limit": 512 << 20, "swap": 1 << 30}}))
    assert (read(memory, "memory.limit_in_bytes"), read(memory, "memory.memsw.limit_in_bytes")) == (
        str(512 << 20), str(1 << 30))
    manager.apply(parse_resources({"memory": {"limit": 128 << 20, "swap": 128 << 20}}))
    assert (read(memory, "memory.limit_in_bytes"), read(memory, "memory.memsw.limit_in_bytes")) == (
        str(128 << 20), str(128 << 20))
    manager.apply(parse_resources({"memory": {"limit": -1}}))
    assert read(memory, "memory.memsw.limit_in_bytes") == read(memory, "memory.limit_in_bytes")
