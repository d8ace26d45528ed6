"""The limits vessel writes are the ones runc writes for the same linux.resources.

runc creates a container (cgroupsPath relative: below this process's cgroups);
vessel's manager applies the same resources to a cgroup of its own; the
control files of both are read back and compared.
"""

import json
import os
import shutil

import pytest

from helpers import runtime
from vessel.runtime.cgroups import detect, open_manager, parse_resources
from vessel.runtime.cgroups.host import cgroup_mounts, own_cgroups
from vessel.runtime.cgroups.v1 import Hierarchy, V1Manager
from vessel.runtime.cgroups.v2 import V2Manager

RUNC = shutil.which("runc")
pytestmark = [pytest.mark.peers, pytest.mark.skipif(RUNC is None, reason="runc is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

RESOURCES = {
    "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
    "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 20},
}
# runc refuses hugepage limits on a host without the hugetlb controller (this VM has none)
if any("hugetlb" in m.controllers for m in cgroup_mounts()):
    RESOURCES["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 << 20}]

V1_FILES = [("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
            ("memory", "memory.soft_limit_in_bytes"), ("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"),
            ("cpu", "cpu.cfs_period_us"), ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.mems"),
            ("pids", "pids.max"), ("hugetlb", "hugetlb.2MB.limit_in_bytes")]
V2_FILES = [("", name) for name in ("memory.max", "memory.swap.max", "memory.low", "cpu.weight", "cpu.max",
                                    "cpuset.cpus", "cpuset.mems", "pids.max", "hugetlb.2MB.max")]


def manager_of(pid):
    """A manager for the cgroup a process is in (to read runc's container with vessel's code)."""
    with open(f"/proc/{pid}/cgroup") as f:
        paths = own_cgroups(f.read())
    if detect() == "v2":
        return V2Manager(paths[""])
    return V1Manager([Hierarchy(m.mountpoint, m.controllers, m.directory(paths[m.controllers[0] if m.controllers
                                                                                else ""]))
                      for m in cgroup_mounts() if (m.controllers[0] if m.controllers else "") in paths])


def shape(value):
    """The nested keys of a stats object (lists and numbers reduced to their type)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


def read(path):
    with open(path) as f:
        return f.read().strip()


def test_same_control_files_as_runc(tmp_path, bundle, names):
    runc_cgroup = names("runc")

    def edit(cfg):
        cfg["linux"]["cgroupsPath"] = runc_cgroup
        cfg["linux"]["resources"] = RESOURCES

    path = bundle(args=("sleep", "1000"), edit=edit)
    root = str(tmp_path / "runc-root")
    container = names("ctr")
    ours = open_manager(names("ours"), "unused")
    try:
        runtime(root, "create", "--bundle", path, container, runtime_cmd=[RUNC], check=True)
        pid = json.loads(runtime(root, "state", container, runtime_cmd=[RUNC], check=True).stdout)["pid"]
        runc_manager = manager_of(pid)
        theirs = runc_manager.paths() if detect() == "v1" else {"": runc_manager.directory}
        ours.create()
        ours.apply(parse_resources(RESOURCES))
        mine = ours.paths() if detect() == "v1" else {"": ours.directory}
        compared = 0
        for controller, name in V1_FILES if detect() == "v1" else V2_FILES:
            if controller not in mine or controller not in theirs:
                continue
            if not os.path.exists(f"{theirs[controller]}/{name}"):
                continue
            assert read(f"{mine[controller]}/{name}") == read(f"{theirs[controller]}/{name}"), name
            compared += 1
        assert compared >= 5

        # vessel's stats of runc's container match `runc events --stats` in shape and in the exact values
        events = json.loads(runtime(root, "events", "--stats", container, runtime_cmd=[RUNC], check=True).stdout)
        runc_stats, vessel_stats = events["data"], runc_manager.stats()
        assert vessel_stats["pids"] == runc_stats["pids"]
        assert vessel_stats["memory"]["usage"]["limit"] == runc_stats["memory"]["usage"]["limit"]
        for group in ("cpu", "cpuset", "memory", "pids", "hugetlb"):
            theirs_shape, ours_shape = shape(runc_stats.get(group, {})), shape(vessel_stats[group])
            missing = {k for k in theirs_shape if k not in ours_shape and k not in ("psi", "event_count")}
            assert not missing, (group, missing)
    finally:
        runtime(root, "delete", "--force", container, runtime_cmd=[RUNC])
        ours.destroy()
