"""What the managers write, checked against a temporary tree that imitates cgroupfs.

Each fake control file is a plain file; a write replaces its content, so for
files the kernel appends to (io.max, devices.allow) only the last line is seen.
"""

import os

import pytest

from vessel.errors import Conflict, InvalidArgument, NotFound, Unsupported, VesselError
from vessel.runtime.cgroups import Manager, detect, parse_resources
from vessel.runtime.cgroups.host import cgroup_mounts, container_path, own_cgroups
from vessel.runtime.cgroups.v1 import Hierarchy, V1Manager
from vessel.runtime.cgroups.v2 import V2Manager, cpu_weight, io_weight, swap_max

V2_FILES = {
    "cgroup.procs": "", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0", "cgroup.kill": "",
    "memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.current": "4096",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
    "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "pids.current": "0", "io.weight": "default 100",
    "io.max": "", "hugetlb.2MB.max": "max", "memory.high": "max", "rdma.max": "",
    "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\n"
                "throttled_usec 20",
    "memory.stat": "anon 100\nfile 200", "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1",
    "memory.peak": "8192", "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0",
}


def fill(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(content)


def read(directory, name):
    with open(os.path.join(directory, name)) as f:
        return f.read()


@pytest.fixture
def v2(tmp_path):
    fill(tmp_path, {"cgroup.controllers": "cpuset cpu io memory pids", "cgroup.subtree_control": ""})
    manager = V2Manager("/box/ctr", root=str(tmp_path))
    manager.create()
    fill(manager.directory, V2_FILES)
    return manager


def test_cpu_weight_matches_runc_and_crun():
    # the reference points of runc's own test: unset, min-1, min, min+1, default, max-1, max, max+1
    shares = (0, 1, 2, 3, 1024, 262143, 262144, 262145)
    assert [cpu_weight(s) for s in shares] == [0, 1, 1, 2, 100, 10000, 10000, 10000]
    assert io_weight(10) == 1 and io_weight(1000) == 10000 and io_weight(500) == 4950


@pytest.mark.parametrize("swap, limit, expected", [
    (0, -1, "max"), (-1, 100, "max"), (0, 100, None), (300, 100, "200"), (100, 100, "0"), (300, -1, "300"),
])
def test_swap_conversion(swap, limit, expected):
    assert swap_max(swap, limit) == expected


@pytest.mark.parametrize("swap, limit", [(300, 0), (50, 100)])
def test_bad_swap(swap, limit):
    with pytest.raises(InvalidArgument):
        swap_max(swap, limit)


def test_v2_create_enables_controllers_and_is_idempotent(tmp_path, v2):
    assert os.path.isdir(tmp_path / "box" / "ctr")
    assert read(tmp_path, "cgroup.subtree_control") == "+pids"  # one write per controller; last kept
    v2.create()


def test_v2_apply(v2):
    v2.apply(parse_resources({
        "memory": {"limit": 1 << 20, "swap": 3 << 20, "reservation": 1 << 19, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 20000, "cpus": "0", "mems": "0", "idle": 1},
        "pids": {"limit": 0},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "rdma": {"mlx5_1": {"hcaHandles": 3}},
        "unified": {"memory.high": "524288"},
    }))
    d = v2.directory
    assert read(d, "memory.max") == str(1 << 20)
    assert read(d, "memory.swap.max") == str(2 << 20)
    assert read(d, "memory.low") == str(1 << 19)
    assert read(d, "cpu.weight") == "59"
    assert read(d, "cpu.max") == "20000 100000"
    assert read(d, "cpu.idle") == "1"
    assert read(d, "cpuset.cpus") == "0"
    assert read(d, "pids.max") == "0"
    assert read(d, "io.weight") == "4950"
    assert read(d, "io.max") == "8:0 rbps=1000"
    assert read(d, "hugetlb.2MB.max") == str(4 << 20)
    assert read(d, "rdma.max") == "mlx5_1 hca_handle=3"
    assert read(d, "memory.high") == "524288"


def test_v2_unlimited_values(v2):
    v2.apply(parse_resources({"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 50000},
                              "pids": {"limit": -1}}))
    d = v2.directory
    assert (read(d, "memory.max"), read(d, "memory.swap.max")) == ("max", "max")
    assert read(d, "cpu.max") == "max 50000"
    assert read(d, "pids.max") == "max"


def test_v2_prefers_bfq_weight(v2):
    fill(v2.directory, {"io.bfq.weight": "default 100"})
    v2.apply(parse_resources({"blockIO": {"weight": 500}}))
    assert read(v2.directory, "io.bfq.weight") == "500"


def test_v2_refusals(v2):
    with pytest.raises(Unsupported, match="realtime"):
        v2.apply(parse_resources({"cpu": {"realtimeRuntime": 1000}}))
    with pytest.raises(Unsupported, match="net_cls"):
        v2.apply(parse_resources({"network": {"classID": 1}}))
    with pytest.raises(Conflict, match="current usage 4096"):
        v2.apply(parse_resources({"memory": {"limit": 4096, "checkBeforeUpdate": True}}))
    os.unlink(os.path.join(v2.directory, "pids.max"))
    with pytest.raises(Unsupported, match="pids.max does not exist"):
        v2.apply(parse_resources({"pids": {"limit": 5}}))


def test_v2_stats_and_state(v2):
    stats = v2.stats()
    assert stats["cpu"]["usage"] == {"total": 1500000, "user": 1000000, "kernel": 500000}
    assert stats["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1, "throttledTime": 20000}
    assert stats["memory"]["usage"] == {"usage": 4096, "limit": (1 << 64) - 1, "max": 8192, "failcnt": 3}
    assert stats["memory"]["cache"] == 200
    assert stats["pids"] == {"current": 0, "limit": 0}
    written = stats["blkio"]["ioServiceBytesRecursive"][1]
    assert written == {"major": 8, "minor": 0, "op": "Write", "value": 8192}
    restored = Manager.from_state(v2.to_state())
    assert isinstance(restored, V2Manager) and restored.directory == v2.directory
    assert restored.mounts() == [("", v2.directory, "", ())]
    assert restored.procs_fd_paths() == [v2.directory + "/cgroup.procs"]


def test_v2_destroy_removes_nested_and_tolerates_missing(v2):
    os.mkdir(os.path.join(v2.directory, "sub"))
    for name in os.listdir(v2.directory):  # real cgroupfs has no regular files to remove
        if name != "sub":
            os.unlink(os.path.join(v2.directory, name))
    v2.destroy()
    assert not os.path.exists(v2.directory)
    v2.destroy()


@pytest.fixture
def v1(tmp_path):
    layout = {"cpu,cpuacct": ("cpu", "cpuacct"), "memory": ("memory",), "pids": ("pids",),
              "cpuset": ("cpuset",), "devices": ("devices",), "blkio": ("blkio",),
              "systemd": ("name=systemd",)}
    hierarchies = []
    for name, controllers in layout.items():
        mountpoint = str(tmp_path / name)
        fill(mountpoint, {"cpuset.cpus": "0-3", "cpuset.mems": "0"} if name == "cpuset" else {})
        if name == "cpuset":  # an existing level without cpus, as a fresh kernel cpuset has
            fill(f"{mountpoint}/parent", {"cpuset.cpus": "", "cpuset.mems": ""})
        hierarchies.append(Hierarchy(mountpoint, controllers, f"{mountpoint}/parent/ctr"))
    manager = V1Manager(hierarchies)
    manager.create()
    files = {
        "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "0",
                   "memory.soft_limit_in_bytes": "0", "memory.swappiness": "60", "memory.oom_control": "",
                   "memory.kmem.tcp.limit_in_bytes": "0"},
        "cpu,cpuacct": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000",
                        "cpu.rt_runtime_us": "0", "cpu.rt_period_us": "1000000"},
        "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
        "pids": {"pids.max": "max"}, "devices": {"devices.allow": "", "devices.deny": ""},
        "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
                  "blkio.throttle.write_iops_device": ""},
    }
    for name, content in files.items():
        fill(f"{tmp_path / name}/parent/ctr", content)
    return manager


def test_v1_create_fills_empty_cpusets(tmp_path, v1):
    assert read(tmp_path / "cpuset" / "parent", "cpuset.cpus") == "0-3"
    assert read(tmp_path / "cpuset" / "parent", "cpuset.mems") == "0"


def test_v1_apply(tmp_path, v1):
    v1.apply(parse_resources({
        "memory": {"limit": 1 << 20, "swap": 2 << 20, "reservation": 1 << 19, "swappiness": 0,
                   "disableOOMKiller": True, "kernel": 1 << 20, "kernelTCP": 1 << 18},
        "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "1", "realtimeRuntime": 100},
        "pids": {"limit": 7},
        "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]},
        "devices": [{"allow": False}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
    }))
    paths = v1.paths()
    assert read(paths["memory"], "memory.limit_in_bytes") == str(1 << 20)
    assert read(paths["memory"], "memory.memsw.limit_in_bytes") == str(2 << 20)
    assert read(paths["memory"], "memory.soft_limit_in_bytes") == str(1 << 19)
    assert read(paths["memory"], "memory.swappiness") == "0"
    assert read(paths["memory"], "memory.oom_control") == "1"
    assert read(paths["memory"], "memory.kmem.tcp.limit_in_bytes") == str(1 << 18)
    assert read(paths["cpu"], "cpu.cfs_quota_us") == "50000"
    assert read(paths["cpu"], "cpu.cfs_period_us") == "200000"
    assert read(paths["cpu"], "cpu.rt_runtime_us") == "100"
    assert read(paths["cpuset"], "cpuset.cpus") == "1"
    assert read(paths["pids"], "pids.max") == "7"
    assert read(paths["blkio"], "blkio.bfq.weight") == "300"
    assert read(paths["blkio"], "blkio.bfq.weight_device") == "8:0 200"
    assert read(paths["blkio"], "blkio.throttle.write_iops_device") == "8:0 50"
    assert read(paths["devices"], "devices.deny") == "a"
    assert read(paths["devices"], "devices.allow") == "c 1:3 rw"


def test_v1_refusals(v1):
    with pytest.raises(Unsupported, match="hugepageLimits needs the hugetlb cgroup controller"):
        v1.apply(parse_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}))
    with pytest.raises(Unsupported, match="no cgroup v2 hierarchy"):
        v1.apply(parse_resources({"unified": {"memory.high": "1"}}))
    with pytest.raises(Unsupported, match="freezer"):
        v1.freeze()


def test_v1_state_and_mounts(v1):
    restored = Manager.from_state(v1.to_state())
    assert restored.paths() == v1.paths()
    names = {m[0]: m for m in restored.mounts()}
    assert names["cpu,cpuacct"][2:] == ("cpu,cpuacct", ("cpu", "cpuacct"))
    assert names["systemd"][2:] == ("name=systemd", ())
    assert names["memory"][1] == v1.paths()["memory"]
    assert len(restored.procs_fd_paths()) == 7


def test_v1_with_unified_hierarchy(tmp_path):
    hierarchies = [Hierarchy(str(tmp_path / "pids"), ("pids",), str(tmp_path / "pids/ctr")),
                   Hierarchy(str(tmp_path / "unified"), (), str(tmp_path / "unified/ctr"))]
    for hierarchy in hierarchies:
        os.makedirs(hierarchy.mountpoint)
    manager = V1Manager(hierarchies)
    manager.create()
    fill(manager.unified, {"memory.high": "max"})
    manager.apply(parse_resources({"unified": {"memory.high": "4096"}}))
    assert read(manager.unified, "memory.high") == "4096"
    assert manager.paths() == {"pids": str(tmp_path / "pids/ctr"), "": str(tmp_path / "unified/ctr")}
    assert [m[0] for m in manager.mounts()] == ["pids"]
    assert Manager.from_state(manager.to_state()).unified == manager.unified


def test_from_state_rejects_garbage():
    with pytest.raises(InvalidArgument):
        Manager.from_state({"mode": "v3"})
    with pytest.raises(InvalidArgument, match="malformed v1"):
        Manager.from_state({"mode": "v1", "hierarchies": [{"mountpoint": "/x"}]})


MOUNTINFO = """\
25 1 0:23 / /sys rw - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:38 / /mnt/my\\040cg rw,relatime - cgroup2 cgroup2 rw
"""


def test_mountinfo_parsing():
    mounts = cgroup_mounts(MOUNTINFO)
    assert [(m.mountpoint, m.version, m.controllers) for m in mounts] == [
        ("/sys/fs/cgroup/cpu,cpuacct", 1, ("cpu", "cpuacct")),
        ("/sys/fs/cgroup/memory", 1, ("memory",)),
        ("/sys/fs/cgroup/systemd", 1, ("name=systemd",)),
        ("/sys/fs/cgroup/unified", 2, ()),
    ]
    memory = mounts[1]
    assert memory.directory("/docker/abc/vessel-x") == "/sys/fs/cgroup/memory/vessel-x"
    assert memory.directory("/docker/abc") == "/sys/fs/cgroup/memory"
    assert memory.directory("/other") == "/sys/fs/cgroup/memory/other"
    assert mounts[0].directory("/") == "/sys/fs/cgroup/cpu,cpuacct"


def test_proc_cgroup_parsing():
    own = own_cgroups("9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/x\n0::/u\n")
    assert own == {"name=systemd": "/", "memory": "/process_api/abc", "cpu": "/x", "cpuacct": "/x", "": "/u"}


@pytest.mark.parametrize("path, own, expected", [
    ("", "/", "/vessel-c1"), (None, "/a/b", "/a/b/vessel-c1"), ("x/y", "/a", "/a/x/y"),
    ("/abs/ctr", "/a", "/abs/ctr"), ("//abs//ctr/", "/a", "/abs/ctr"), ("./x", "/", "/x"),
])
def test_container_paths(path, own, expected):
    assert container_path(path, "c1", own) == expected


@pytest.mark.parametrize("path", ["../escape", "/a/../../b", "/", "a\0b"])
def test_bad_container_paths(path):
    with pytest.raises(InvalidArgument):
        container_path(path, "c1", "/")


def test_detect_by_root(tmp_path):
    assert detect(str(tmp_path)) == "v1"
    fill(tmp_path, {"cgroup.controllers": ""})
    assert detect(str(tmp_path)) == "v2"


def test_missing_cgroup_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        V2Manager("/gone", root=str(tmp_path)).apply(parse_resources({"pids": {"limit": 1}}))


def test_failed_create_leaves_nothing(tmp_path):
    manager = V2Manager("/new1/new2/" + "x" * 300, root=str(tmp_path))  # the last mkdir fails
    with pytest.raises(VesselError, match="cgroup: cannot create"):
        manager.create()
    assert os.listdir(tmp_path) == []
