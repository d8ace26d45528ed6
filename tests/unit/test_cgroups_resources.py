"""parse_resources / parse_update_flags: the checks on OCI linux.resources and runc update flags."""

import subprocess
import sys

import pytest

from vessel.errors import InvalidArgument, Unsupported
from vessel.runtime.cgroups import parse_resources, parse_update_flags
from vessel.runtime.cgroups.resources import DeviceRule, parse_size

FULL = {
    "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 2 << 30, "kernel": -1,
               "kernelTCP": 1 << 20, "swappiness": 60, "disableOOMKiller": False,
               "useHierarchy": True, "checkBeforeUpdate": True},
    "cpu": {"shares": 1024, "quota": 50000, "burst": 1000, "period": 100000,
            "realtimeRuntime": 950000, "realtimePeriod": 1000000, "cpus": "0-1,3", "mems": "0", "idle": 0},
    "pids": {"limit": 100},
    "blockIO": {"weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": True, "type": "c", "major": 136, "access": "mwr"}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    "unified": {"memory.high": "1073741824", "io.weight": "default 100"},
}


def test_full_resources_round_trip():
    resources = parse_resources(FULL)
    assert resources.memory["limit"] == 1 << 30
    assert resources.cpu["cpus"] == "0-1,3"
    assert resources.devices == [DeviceRule(False), DeviceRule(True, "c", 1, 3, "rw"),
                                 DeviceRule(True, "c", 136, None, "rwm")]
    assert resources.block_io["throttleWriteIOPSDevice"] == [{"major": 8, "minor": 16, "rate": 300}]
    again = parse_resources(resources.to_oci())
    assert again.to_oci() == resources.to_oci()


def test_none_and_empty_give_empty_resources():
    assert parse_resources(None).is_empty()
    assert parse_resources({}).is_empty()
    assert parse_resources({"memory": None}).is_empty()


@pytest.mark.parametrize("obj, message", [
    ([], "linux.resources: expected an object"),
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit: expected an integer"),
    ({"memory": {"limit": True}}, "linux.resources.memory.limit: expected an integer"),
    ({"memory": {"limit": -2}}, "linux.resources.memory.limit: -2 is out of range"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness: 101 is out of range"),
    ({"memory": {"disableOOMKiller": 1}},
     "linux.resources.memory.disableOOMKiller: expected true or false"),
    ({"cpu": {"shares": -1}}, "linux.resources.cpu.shares: -1 is out of range"),
    ({"cpu": {"cpus": "0-a"}}, "linux.resources.cpu.cpus: '0-a' is not a list"),
    ({"cpu": {"cpus": "3-1"}}, "linux.resources.cpu.cpus: '3-1' has a range that runs backwards"),
    ({"cpu": {"quota": 1.5}}, "linux.resources.cpu.quota: expected an integer"),
    ({"pids": {"limit": "10"}}, "linux.resources.pids.limit: expected an integer"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight: 5 is out of range"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate: is required"),
    ({"blockIO": {"weightDevice": {}}}, "linux.resources.blockIO.weightDevice: expected an array"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]},
     "linux.resources.hugepageLimits[0].pageSize: '2M' is not a page size"),
    ({"devices": [{"type": "c"}]}, "linux.resources.devices[0].allow: is required"),
    ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type: 'x' is not one of a, b, c"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access: 'rwx' is not made"),
    ({"devices": [{"allow": True, "major": "1"}]}, "linux.resources.devices[0].major: expected an integer"),
    ({"network": {"classID": -1}}, "linux.resources.network.classID: -1 is out of range"),
    ({"unified": {"../memory.max": "1"}}, "linux.resources.unified: '../memory.max' is not a cgroup file"),
    ({"unified": {"a/memory.max": "1"}}, "linux.resources.unified: 'a/memory.max' is not a cgroup file"),
    ({"unified": {"..": "1"}}, "linux.resources.unified: '..' is not a cgroup file"),
    ({"unified": {"memory.max": 1}}, "linux.resources.unified.memory.max: expected a string"),
])
def test_bad_resources_name_the_field(obj, message):
    with pytest.raises(InvalidArgument) as info:
        parse_resources(obj)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_device_defaults_and_wildcards():
    rules = parse_resources({"devices": [{"allow": True}, {"allow": False, "type": "b", "major": -1,
                                                              "minor": None, "access": ""}]}).devices
    assert rules == [DeviceRule(True, "a", None, None, "rwm"), DeviceRule(False, "b", None, None, "rwm")]


@pytest.mark.parametrize("text, size", [
    ("512", 512), ("64k", 64 << 10), ("64K", 64 << 10), ("1m", 1 << 20), ("1M", 1 << 20),
    ("2g", 2 << 30), ("1.5g", 3 << 29), ("1mb", 1 << 20), ("1MiB", 1 << 20), ("10b", 10),
    ("-1", -1), ("1 m", 1 << 20),
])
def test_sizes_like_runc(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "m", "-2", "1x", "1.2.3m", "abc", ".5m"])
def test_bad_sizes(text):
    with pytest.raises(InvalidArgument):
        parse_size(text)


def test_update_flags():
    resources = parse_update_flags({"--memory": "1m", "memory-swap": "-1", "cpu-share": "512",
                                    "cpu-quota": "-1", "cpuset-cpus": "0", "pids-limit": "20",
                                    "blkio-weight": "300", "cpu-rt-runtime": None})
    assert resources.memory == {"limit": 1 << 20, "swap": -1}
    assert resources.cpu == {"shares": 512, "quota": -1, "cpus": "0"}
    assert resources.pids == {"limit": 20}
    assert resources.block_io == {"weight": 300}


@pytest.mark.parametrize("flags, error, message", [
    ({"memory": "lots"}, InvalidArgument, "--memory: 'lots' is not a size"),
    ({"cpu-share": "x"}, InvalidArgument, "--cpu-share: 'x' is not an integer"),
    ({"blkio-weight": "5"}, InvalidArgument, "--blkio-weight: 5 is out of range"),
    ({"kernel-memory": "1m"}, InvalidArgument, "--kernel-memory: not a resource flag"),
    ({"l3-cache-schema": "L3:0=ff"}, Unsupported, "--l3-cache-schema: Intel RDT"),
])
def test_bad_update_flags(flags, error, message):
    with pytest.raises(error) as info:
        parse_update_flags(flags)
    assert str(info.value).startswith(message)


def test_merged_keeps_old_values():
    old = parse_resources({"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 5}})
    new = old.merged(parse_update_flags({"memory": "1k"}))
    assert new.memory == {"limit": 1024, "swap": 200}
    assert new.pids == {"limit": 5}
    changed = old.merged(parse_update_flags({"memory": "1k"}), changed_only=True)
    assert changed.memory == {"limit": 1024, "swap": 200} and changed.pids is None


def test_package_import_is_cheap():
    """Runtime start-up: the package must not pull in json, re, enum, typing and friends."""
    code = ("import sys; import vessel.runtime.cgroups; "
            "print(' '.join(sorted(m for m in ('json', 're', 'enum', 'typing', 'dataclasses', "
            "'subprocess', 'signal', 'ctypes', 'socket') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
