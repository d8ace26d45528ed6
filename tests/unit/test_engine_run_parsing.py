"""Parsing of the run/create flags (devices, cgroup rules, sysctls, namespace modes, cpusets, detach keys,
resource checks), the config they make, and the Go-template `{{.Map "key"}}` of ps."""

import os

import pytest

from vessel.api import build_config
from vessel.cli.images import render
from vessel.engine.attach import EscapeFilter, parse_detach_keys
from vessel.engine.model import (DEFAULT_SHM_SIZE, ContainerConfig, Device, parse_cpuset, parse_device_cgroup_rule,
                                 parse_env_file, parse_namespace_mode, parse_sysctl)
from vessel.errors import InvalidArgument, NotFound


def test_device_forms():
    assert Device.parse("/dev/null") == Device("/dev/null", "/dev/null", "rwm")
    assert Device.parse("/dev/null:/dev/other") == Device("/dev/null", "/dev/other", "rwm")
    assert Device.parse("/dev/null:r") == Device("/dev/null", "/dev/null", "r")
    assert Device.parse("/dev/null:/dev/x:rw") == Device("/dev/null", "/dev/x", "rw")
    for text, message in [("/dev/null:/dev/x:rwz", "invalid device mode: rwz"),
                          ("dev/null", "bad format for path: dev/null"),
                          ("/dev/null:relative", "bad format for path: relative"),
                          ("/dev/nosuchdevice", 'adding custom device "/dev/nosuchdevice": no such file')]:
        with pytest.raises(InvalidArgument, match=message):
            Device.parse(text)


def test_device_cgroup_rules():
    assert parse_device_cgroup_rule("c 1:3 rwm") == "c 1:3 rwm"
    assert parse_device_cgroup_rule("a *:* m") == "a *:* m"
    for bad in ("c 1:3", "x 1:3 r", "c 1:3 rwx", "c one:3 r"):
        with pytest.raises(InvalidArgument, match=f"invalid device cgroup format '{bad}'"):
            parse_device_cgroup_rule(bad)


def test_sysctls():
    assert parse_sysctl("kernel.shmmax=100") == ("kernel.shmmax", "100")
    assert parse_sysctl("fs.mqueue.msg_max=20") == ("fs.mqueue.msg_max", "20")
    assert parse_sysctl("net.ipv4.ip_forward=1") == ("net.ipv4.ip_forward", "1")
    with pytest.raises(InvalidArgument, match="sysctl 'kernel.hostname=x' is not whitelisted"):
        parse_sysctl("kernel.hostname=x")
    with pytest.raises(InvalidArgument, match="not allowed in host network namespace"):
        parse_sysctl("net.ipv4.ip_forward=1", network_mode="host")
    with pytest.raises(InvalidArgument, match="not allowed in host IPC namespace"):
        parse_sysctl("kernel.shmmax=1", ipc_mode="host")


def test_namespace_modes():
    assert parse_namespace_mode("ipc", "") == "private"
    assert parse_namespace_mode("pid", "container:web") == "container:web"
    assert parse_namespace_mode("uts", "host") == "host"
    for kind, text, message in [("pid", "private", "--pid: invalid PID mode"),
                                ("ipc", "container:", "--ipc: invalid IPC mode"),
                                ("uts", "container:web", "--uts: invalid UTS mode")]:
        with pytest.raises(InvalidArgument, match=message):
            parse_namespace_mode(kind, text)


def test_cpusets():
    assert parse_cpuset("0", "cpuset cpus") == "0"
    assert parse_cpuset("", "cpuset cpus") == ""
    with pytest.raises(InvalidArgument, match="Invalid value 1-0 for cpuset cpus"):
        parse_cpuset("1-0", "cpuset cpus")
    with pytest.raises(InvalidArgument, match="Requested CPUs are not available - requested 0-4096"):
        parse_cpuset("0-4096", "cpuset cpus")


def test_detach_keys():
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-@,ctrl-[,ctrl-_") == b"\x00\x1b\x1f"
    for bad in ("ctrl-1", "", "ab"):
        with pytest.raises(InvalidArgument, match="Invalid detach keys"):
            parse_detach_keys(bad)
    escape = EscapeFilter(parse_detach_keys("ctrl-a,x"))
    assert escape.feed(b"ls\x01") == (b"ls", False) and escape.feed(b"x") == (b"", True)


def test_label_file_lines_are_not_expanded(tmp_path):
    path = tmp_path / "labels"
    path.write_text("a=1\n# comment\nHOME\n")
    assert parse_env_file(str(path), expand=False) == ["a=1", "HOME"]


def test_config_from_docker_py_options():
    config = build_config("busybox", "true", mem_limit="64m", memswap_limit=-1, mem_reservation="16m",
                          cpu_shares=1, cpuset_cpus="0", devices=["/dev/null:/dev/n:r"], shm_size="1g",
                          group_add=[5], pid_mode="host", uts_mode="host", sysctls={"kernel.sem": "1 2 3 4"},
                          log_config={"Type": "none"})
    assert (config.memory_swap, config.memory_reservation, config.cpu_shares) == (-1, 16 << 20, 2)
    assert config.devices == [Device("/dev/null", "/dev/n", "r")] and config.shm_size == 1 << 30
    assert (config.group_add, config.pid_mode, config.ipc_mode, config.uts_mode) == (["5"], "host", "private", "host")
    assert config.hostname == os.uname().nodename and config.log_driver == "none"
    assert ContainerConfig.from_json(config.to_json()).devices == config.devices
    assert build_config("busybox", "true").shm_size == DEFAULT_SHM_SIZE


@pytest.mark.parametrize("options,message", [
    ({"memswap_limit": "1g"}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"mem_limit": "64m", "memswap_limit": "32m"}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"mem_reservation": "1m"}, "Minimum memory reservation allowed is 6MB"),
    ({"nano_cpus": 10**9, "cpu_period": 100000}, "Nano CPUs and CPU Period cannot both be set"),
    ({"cpu_quota": 10}, r"CPU cfs quota can not be less than 1ms \(i.e. 1000\)"),
    ({"cpu_shares": -1}, "invalid CPU shares"),
    ({"shm_size": -5}, "SHM size can not be less than 0"),
    ({"oom_score_adj": -1001}, r"range for oom score adj is \[-1000, 1000\]"),
    ({"uts_mode": "host", "hostname": "h"}, "Conflicting options: hostname and the UTS mode"),
    ({"log_config": {"Type": "syslog"}}, "logging driver 'syslog' is not supported"),
    ({"log_config": {"Type": "bogus"}}, "logger: no log driver named 'bogus' is registered"),
])
def test_config_checks(options, message):
    with pytest.raises(InvalidArgument, match=message):
        build_config("busybox", "true", **options)


def test_template_map_argument():
    rows = [{"Names": "web", "Label": {"tier": "front"}}, {"Names": "db", "Label": {}}]
    assert render('{{.Names}}={{.Label "tier"}}', rows) == "web=front\ndb="
    assert render('{{index .Label "tier"}}|{{json .Label}}', rows[:1]) == 'front|{"tier":"front"}'
    assert render('table {{.Names}}\t{{.Label "tier"}}', rows).splitlines()[0].split() == ["NAMES", "LABEL"]


def test_init_needs_tini(monkeypatch):
    from vessel.engine import specgen

    monkeypatch.setattr(specgen, "DOCKER_INIT", "/nonexistent/tini-static")
    with pytest.raises(InvalidArgument, match="--init: docker-init is not installed on this host"):
        build_config("busybox", "true", init=True)


def test_cpus_range():
    from vessel.engine.model import parse_cpus

    assert parse_cpus("0.5") == 500_000_000
    with pytest.raises(InvalidArgument, match=f"Range of CPUs is from 0.01 to {os.cpu_count()}.00"):
        parse_cpus(str(os.cpu_count() + 1))


def test_user_files_follow_symlinks_inside_the_root_only(tmp_path):
    from vessel.engine import specgen

    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib" / "passwd.real").write_text("app:x:4242:4343::/srv:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to("/lib/passwd.real")  # absolute: taken inside the root, as Docker does
    (root / "etc" / "group").symlink_to("../../../../lib/group.fifo")
    os.mkfifo(root / "lib" / "group.fifo")  # never opened for reading: that would block
    user = specgen.resolve_user(str(root), "app")
    assert (user.uid, user.gid, user.home) == (4242, 4343, "/srv")
    with pytest.raises(NotFound, match="unable to find group staff"):
        specgen.resolve_user(str(root), "app:staff")
