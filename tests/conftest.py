"""Suite-wide fixtures, including the leak guard.

The leak guard fails a test that leaves behind a mount below the test's temp
dirs, a cgroup or process of this run, a network namespace, or files in the
default state directories; and it removes what it finds so later tests start clean.
"""

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from helpers import MANAGED_MOUNT_PREFIXES, make_bundle, runtime

RUN_TOKEN = f"vt{uuid.uuid4().hex[:8]}"
CGROUP_ROOT = "/sys/fs/cgroup"
GUARDED_DIRS = ("/run/vessel-runtime", "/run/vessel", "/var/lib/vessel")



@pytest.fixture(scope="session")
def run_token():
    """A token unique to this test run; put it in every name a test creates."""
    return RUN_TOKEN


@pytest.fixture
def names(run_token, request):
    """Unique names for this test: names("ctr") -> 'vt1a2b3c4d-ctr-<n>'."""
    counter = [0]

    def make(kind="c"):
        counter[0] += 1
        return f"{run_token}-{kind}-{abs(hash(request.node.nodeid)) % 100000}-{counter[0]}"

    return make


@pytest.fixture
def root(tmp_path):
    """A runtime state root of this test's own, emptied through the runtime afterwards."""
    path = tmp_path / "state"
    yield path
    if path.exists():
        for cid in os.listdir(path):
            runtime(path, "delete", "--force", cid)


@pytest.fixture
def bundle(tmp_path):
    """make(args, edit=None, config=None) -> a busybox bundle dir."""
    counter = [0]

    def make(args=("true",), edit=None, config=None):
        counter[0] += 1
        return make_bundle(str(tmp_path / f"bundle{counter[0]}"), args=args, edit=edit, config=config)

    return make


def _mounts(prefixes):
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if any(point == p.rstrip("/") or point.startswith(p) for p in MANAGED_MOUNT_PREFIXES):
                continue
            if any(point.startswith(p) for p in prefixes) or RUN_TOKEN in point:
                found.add(point)
    return found


def _cgroups():
    found = set()
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        if top.count("/") > 10:
            dirs[:] = []
            continue
        for d in dirs:
            if RUN_TOKEN in d:
                found.add(os.path.join(top, d))
    return found


def _processes(prefixes):
    found = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            places = [os.readlink(f"/proc/{pid}/{what}") for what in ("root", "cwd")]
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state = stat[stat.rindex(b")") + 2:].split()[0]
        if state == b"Z":
            continue
        if any(p.startswith(prefix) for p in places for prefix in prefixes) or RUN_TOKEN in cmdline:
            found[pid] = cmdline[:120]
    return found


def _netns():
    # tests name their namespaces with the run token; others on the machine are not ours
    try:
        return {name for name in os.listdir("/run/netns") if RUN_TOKEN in name}
    except FileNotFoundError:
        return set()


def _guarded_files():
    found = set()
    for d in GUARDED_DIRS:
        try:
            found.update(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            pass
    return found


@pytest.fixture(autouse=True)
def leak_guard(request, tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp())
    prefixes = (base.rstrip("/") + "/",)  # pytest-37/ must not match pytest-372
    before = (_mounts(prefixes), _cgroups(), set(_processes(prefixes)), _netns(), _guarded_files())
    yield
    leaks = []
    procs = _processes(prefixes)
    new_procs = {pid: cmd for pid, cmd in procs.items() if pid not in before[2]}
    if new_procs:
        leaks.append(f"processes {new_procs}")
        for pid in new_procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    new_mounts = _mounts(prefixes) - before[0]
    if new_mounts:
        leaks.append(f"mounts {sorted(new_mounts)}")
        for point in sorted(new_mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
    new_cgroups = _cgroups() - before[1]
    if new_cgroups:
        leaks.append(f"cgroups {sorted(new_cgroups)}")
        for path in sorted(new_cgroups, key=len, reverse=True):
            _remove_cgroup(path)
    new_netns = _netns() - before[3]
    if new_netns:
        leaks.append(f"network namespaces {sorted(new_netns)}")
        for name in new_netns:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    new_files = _guarded_files() - before[4]
    if new_files:
        leaks.append(f"files {sorted(new_files)}")
        for path in new_files:
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
    if leaks:
        pytest.fail("test left behind: " + "; ".join(leaks), pytrace=False)


def _remove_cgroup(path):
    for top, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            try:
                os.rmdir(os.path.join(top, d))
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass
