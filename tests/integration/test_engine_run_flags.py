"""`vessel run`/`create` flags seen from inside the container: cgroup files, /proc, /dev, namespaces, tini.

Bad values exit 125 with Docker's message and leave nothing behind.
"""

import json
import os
import pwd
import socket

import pytest

from test_engine_api import client  # noqa: F401 - fixture
from test_engine_cli import _assert_clean, busybox_tarball, detach_from_run, vessel  # noqa: F401 - fixtures

CGROUP_FILE = ("f() { cat /sys/fs/cgroup/$1 2>/dev/null || cat /sys/fs/cgroup/$2; }; ")


def _host_config(vessel, name):
    return json.loads(vessel("inspect", name).stdout)[0]["HostConfig"]


def test_memory_and_cpu_flags_reach_the_cgroup(vessel):
    vessel("run", "-d", "--name", "tuned", "--memory", "64m", "--memory-swap", "96m", "--memory-reservation",
           "32m", "--cpu-shares", "512", "--cpuset-cpus", "0", "--cpuset-mems", "0", "--cpu-period", "50000",
           "--cpu-quota", "25000", "busybox", "sleep", "100")
    script = CGROUP_FILE + ("f memory/memory.memsw.limit_in_bytes memory.swap.max; "
                            "f memory/memory.soft_limit_in_bytes memory.low; f cpu/cpu.shares cpu.weight; "
                            "f cpuset/cpuset.cpus cpuset.cpus; f cpuset/cpuset.mems cpuset.mems; "
                            "f cpu/cpu.cfs_period_us cpu.max; f cpu/cpu.cfs_quota_us cpu.max")
    values = vessel("exec", "tuned", "sh", "-c", script).stdout.split()
    if os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):  # cgroup v1 with swap accounting
        assert values == [str(96 << 20), str(32 << 20), "512", "0", "0", "50000", "25000"]
    host_config = _host_config(vessel, "tuned")
    assert (host_config["MemorySwap"], host_config["MemoryReservation"], host_config["CpuShares"]) == \
        (96 << 20, 32 << 20, 512)
    assert (host_config["CpusetCpus"], host_config["CpuPeriod"], host_config["CpuQuota"]) == ("0", 50000, 25000)


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
                    reason="needs cgroup v1 swap accounting")
def test_swap_defaults_to_the_memory_and_follows_updates(vessel):
    vessel("run", "-d", "--name", "swapper", "--memory", "64m", "busybox", "sleep", "100")
    read = "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
    assert vessel("exec", "swapper", "sh", "-c", read).stdout.strip() == str(128 << 20)
    assert _host_config(vessel, "swapper")["MemorySwap"] == 128 << 20
    vessel("update", "--memory", "256m", "swapper")
    assert vessel("exec", "swapper", "sh", "-c", read).stdout.strip() == str(512 << 20)
    vessel("run", "-d", "--name", "unlimited", "--memory", "64m", "--memory-swap", "-1", "busybox", "sleep", "100")
    assert int(vessel("exec", "unlimited", "sh", "-c", read).stdout) > 1 << 40
    vessel("run", "-d", "--name", "fixed", "--memory", "64m", "--memory-swap", "100m", "busybox", "sleep", "100")
    result = vessel("update", "--memory", "200m", "fixed", code=125)
    assert "Memory limit should be smaller than already set memoryswap limit" in result.stderr


def test_shm_size(vessel):
    assert vessel("run", "--rm", "busybox", "df", "-k", "/dev/shm").stdout.split()[-5] == "65536"
    assert vessel("run", "--rm", "--shm-size", "128m", "busybox", "df", "-k", "/dev/shm").stdout.split()[-5] == \
        "131072"


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse")
def test_devices_and_device_cgroup_rules(vessel):
    # /dev/fuse (c 10:229) is not among the default devices: only --device puts it in the container
    vessel("run", "--rm", "busybox", "ls", "/dev/fuse", code=1)
    read = "dd if={} of=/dev/null count=0 2>/dev/null && echo readable || echo denied"
    output = vessel("run", "--rm", "--device", "/dev/fuse:/dev/myfuse:r", "busybox", "sh", "-c",
                    "ls -l /dev/myfuse; " + read.format("/dev/myfuse")).stdout.splitlines()
    assert output[0].startswith("c") and "10, 229" in output[0] and output[1] == "readable"
    output = vessel("run", "--rm", "--device", "/dev/fuse:/dev/myfuse:w", "busybox", "sh", "-c",
                    read.format("/dev/myfuse")).stdout
    assert output == "denied\n"  # the device cgroup allows writes only
    make = "mknod /dev/f c 10 229 && " + read.format("/dev/f")  # mknod is allowed (c *:* m), opening is not
    assert vessel("run", "--rm", "busybox", "sh", "-c", make).stdout == "denied\n"
    assert vessel("run", "--rm", "--device-cgroup-rule", "c 10:229 rm", "busybox", "sh", "-c", make).stdout == \
        "readable\n"
    devices = _host_config(vessel, vessel("create", "--device", "/dev/fuse", "busybox").stdout.strip())["Devices"]
    assert devices == [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]


def test_groups_oom_score_and_sysctls(vessel):
    output = vessel("run", "--rm", "--group-add", "tty", "--group-add", "4242", "--oom-score-adj", "500",
                    "--sysctl", "kernel.shmmax=123456", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "sh", "-c",
                    "id -G; cat /proc/self/oom_score_adj /proc/sys/kernel/shmmax "
                    "/proc/sys/net/ipv4/ip_forward").stdout.splitlines()
    assert {"5", "4242"} <= set(output[0].split()) and output[1:] == ["500", "123456", "1"]
    vessel("run", "-d", "--name", "grouped", "--group-add", "4242", "busybox", "sleep", "100")
    assert "4242" in vessel("exec", "-u", "nobody", "grouped", "id", "-G").stdout.split()
    result = vessel("run", "--rm", "--group-add", "nosuchgroup", "busybox", "true", code=125)
    assert "Unable to find group nosuchgroup" in result.stderr


def test_pid_ipc_and_uts_modes(vessel):
    vessel("run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sh", "-c",
           "echo shared > /dev/shm/note; exec sleep 100")
    vessel("run", "-d", "--name", "private", "busybox", "sleep", "100")
    joined = vessel("run", "--rm", "--pid", "container:donor", "--ipc", "container:donor", "busybox", "sh", "-c",
                    "cat /dev/shm/note; ps -o pid,args").stdout
    assert joined.startswith("shared\n") and "sleep 100" in joined
    result = vessel("run", "--rm", "--ipc", "container:private", "busybox", "true", code=125)
    assert "non-shareable IPC" in result.stderr
    assert vessel("run", "--rm", "--pid", "host", "busybox", "sh", "-c", "echo $$").stdout.strip() != "1"
    assert vessel("run", "--rm", "--uts", "host", "busybox", "hostname").stdout.strip() == socket.gethostname()
    vessel("run", "--rm", "--ipc", "none", "busybox", "ls", "/dev/shm", code=1)
    host_config = _host_config(vessel, "donor")
    assert host_config["IpcMode"] == "shareable" and host_config["PidMode"] == ""
    result = vessel("run", "--rm", "--uts", "host", "-h", "named", "busybox", "true", code=125)
    assert "Conflicting options: hostname and the UTS mode" in result.stderr
    vessel("rm", "-f", "donor", "private")
    _assert_clean(vessel)


def test_init_is_pid_1_and_reaps_orphans(vessel):
    output = vessel("run", "--rm", "--init", "busybox", "sh", "-c",
                    "(sleep 0.2 &); sleep 1; ps -o pid,stat,args").stdout.splitlines()
    assert output[1].split()[0] == "1" and output[1].split()[2:] == ["/sbin/docker-init", "--", "sh", "-c",
                                                                   "(sleep", "0.2", "&);", "sleep", "1;", "ps",
                                                                   "-o", "pid,stat,args"]
    assert not any(line.split()[1].startswith("Z") for line in output[1:])  # the orphan was reaped
    vessel("run", "--rm", "--init", "busybox", "sh", "-c", "exit 3", code=3)
    vessel("run", "-d", "--name", "inited", "--init", "busybox", "sleep", "100")
    vessel("stop", "-t", "30", "inited")  # tini forwards SIGTERM to sleep: no wait for the timeout
    assert vessel("wait", "inited").stdout == "143\n"
    assert _host_config(vessel, "inited")["Init"] is True


def test_log_driver_none(vessel):
    assert vessel("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "shown").stdout == "shown\n"
    result = vessel("logs", "quiet", code=125)
    assert result.stderr == "Error: configured logging driver does not support reading\n"
    assert _host_config(vessel, "quiet")["LogConfig"] == {"Type": "none", "Config": {}}
    container_id = vessel("ps", "-aq", "--no-trunc").stdout.strip()
    assert not os.path.exists(os.path.join(vessel.root, "containers", container_id, f"{container_id}-json.log"))


def test_attach_cidfile_label_file_and_workdir(vessel, tmp_path):
    result = vessel("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (result.stdout, result.stderr) == ("out\n", "")
    result = vessel("run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (result.stdout, result.stderr) == ("", "err\n")
    cidfile = tmp_path / "cid"
    container_id = vessel("create", "--cidfile", cidfile, "busybox", "true").stdout.strip()
    assert cidfile.read_text() == container_id
    result = vessel("create", "--cidfile", cidfile, "busybox", "true", code=125)
    assert "Container ID file found" in result.stderr
    labels = tmp_path / "labels"
    labels.write_text("# team labels\ntier=web\nowner=ops\n\n")
    vessel("create", "--name", "labelled", "--label-file", labels, "-l", "owner=dev", "busybox")
    assert vessel("ps", "-a", "-f", "name=labelled", "--format", "{{.Labels}}").stdout == "owner=dev,tier=web\n"
    assert vessel("run", "--rm", "-w", "/new/deep/dir", "busybox", "pwd").stdout == "/new/deep/dir\n"


def test_detach_keys(vessel):
    # the default keys are just input now; ctrl-a x detaches
    detach_from_run(vessel, "keyed", ["--detach-keys", "ctrl-a,x"], b"\x10\x11\x01x")


def test_user_files_are_read_inside_the_root(vessel):
    """An image's /etc/passwd that is a symlink pointing out of the root is not followed to the host's."""
    host_only = next(p.pw_name for p in pwd.getpwall() if p.pw_name not in ("root", "daemon", "nobody", "user"))
    vessel("run", "-d", "--name", "linked", "busybox", "sleep", "100")
    vessel("exec", "linked", "sh", "-c", "ln -sf /../../../../../../../etc/passwd /etc/passwd")
    result = vessel("exec", "-u", host_only, "linked", "id", code=125)
    assert f"unable to find user {host_only}" in result.stderr


def test_etc_files_do_not_follow_symlinks_out_of_the_root(vessel, tmp_path, names):
    escape = f"/tmp/{names('escape')}"
    container_id = vessel("create", "--name", "sly", "busybox", "cat", "/etc/hosts").stdout.strip()
    upper = os.path.join(vessel.root, "image", "snapshots", "active", container_id, "upper", "etc")
    os.makedirs(upper, exist_ok=True)
    os.symlink(f"/../../../../../..{escape}", os.path.join(upper, "hosts"))
    try:
        result = vessel("start", "-a", "sly")
        assert "127.0.0.1\tlocalhost" in result.stdout
        assert not os.path.lexists(escape)
    finally:
        if os.path.lexists(escape):
            os.unlink(escape)


def test_exec_env_file_privileged_and_codes(vessel, tmp_path):
    vessel("run", "-d", "--name", "box", "busybox", "sleep", "100")
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=1\n# comment\nBOTH=file\n")
    assert vessel("exec", "--env-file", env_file, "-e", "BOTH=flag", "box", "sh", "-c",
                  "echo $FROM_FILE $BOTH").stdout == "1 flag\n"
    plain = vessel("exec", "box", "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    privileged = vessel("exec", "--privileged", "box", "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    assert int(privileged, 16) > int(plain, 16) and int(privileged, 16) & (1 << 21)  # CAP_SYS_ADMIN
    vessel("exec", "box", "nosuchcommand", code=127)
    vessel("exec", "box", "/etc/passwd", code=126)


def test_seccomp_profile_in_dockers_format(vessel, tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["chmod", "fchmod", "fchmodat"], "action": "SCMP_ACT_ERRNO",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}, "comment": "only when the container has CAP_SYS_ADMIN"},
        ],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    script = "mkdir /made 2>&1; chmod 600 /etc/hostname 2>&1 && echo chmod-ok"
    output = vessel("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "sh", "-c", script).stdout
    assert "Operation not permitted" in output.splitlines()[0] and output.endswith("chmod-ok\n")
    output = vessel("run", "--rm", "--security-opt", f"seccomp={path}", "--cap-add", "SYS_ADMIN", "busybox", "sh",
                    "-c", script, code=1).stdout
    assert "chmod-ok" not in output and output.count("Operation not permitted") == 2
    (tmp_path / "broken.json").write_text("{not json")
    result = vessel("run", "--rm", "--security-opt", f"seccomp={tmp_path / 'broken.json'}", "busybox", "true",
                    code=125)
    assert result.stderr.startswith("Error: Decoding seccomp profile failed:")


BAD_FLAGS = [
    (["--memory", "12xyz"], 'invalid argument "12xyz" for "-m, --memory" flag'),
    (["--memory-swap", "32m"], "You should always set the Memory limit when using Memoryswap limit"),
    (["--memory", "64m", "--memory-swap", "32m"], "Minimum memoryswap limit should be larger than memory limit"),
    (["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
    (["--memory", "64m", "--memory-reservation", "128m"],
     "Minimum memory limit can not be less than memory reservation limit"),
    (["--cpus", "1", "--cpu-quota", "50000"], "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (["--cpu-period", "10"], "CPU cfs period can not be less than 1ms"),
    (["--cpuset-cpus", "0-x"], "Invalid value 0-x for cpuset cpus"),
    (["--cpuset-cpus", "4096"], "Requested CPUs are not available - requested 4096"),
    (["--device", "/dev/nosuchdevice"], 'error gathering device information while adding custom device '
                                        '"/dev/nosuchdevice": no such file or directory'),
    (["--device", "/dev/null:/dev/x:rwz"], "invalid device mode: rwz"),
    (["--device-cgroup-rule", "c 1:3"], "invalid device cgroup format 'c 1:3'"),
    (["--shm-size", "lots"], 'invalid argument "lots" for "--shm-size" flag'),
    (["--oom-score-adj", "1001"], "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    (["--pid", "other"], "--pid: invalid PID mode"),
    (["--ipc", "public"], "--ipc: invalid IPC mode"),
    (["--uts", "container:x"], "--uts: invalid UTS mode"),
    (["--pid", "container:nosuchcontainer"], "No such container: nosuchcontainer"),
    (["--sysctl", "kernel.hostname=x"], "sysctl 'kernel.hostname=x' is not whitelisted"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "not allowed in host network namespace"),
    (["--log-driver", "bogus"], "logger: no log driver named 'bogus' is registered"),
    (["--log-driver", "none", "--log-opt", "max-size=1m"], "unknown log opt 'max-size' for none log driver"),
    (["--pull", "sometimes"], "invalid pull option: 'sometimes'"),
    (["-a", "stdweird"], 'invalid argument "stdweird" for "-a, --attach" flag'),
    (["-d", "-a", "stdout"], "Conflicting options: -a and -d"),
    (["--detach-keys", "ctrl-1"], "Invalid detach keys (ctrl-1) provided"),
    (["--label-file", "/nonexistent/labels"], "open /nonexistent/labels: no such file or directory"),
    (["--security-opt", "seccomp=/nonexistent/profile.json"],
     "opening seccomp profile (/nonexistent/profile.json) failed: no such file or directory"),
]


def test_bad_values_exit_125_and_create_nothing(vessel):
    existing = vessel("create", "busybox", "true").stdout.strip()
    for flags, message in BAD_FLAGS:
        result = vessel("run", "--rm", *flags, "busybox", "true", code=125)
        assert message in result.stderr, (flags, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, (flags, result.stderr)
    assert vessel.ids() == [existing]
    assert os.listdir(os.path.join(vessel.root, "containers")) == [existing]
    assert os.listdir(os.path.join(vessel.root, "image", "snapshots", "active")) == [existing]


def test_api_run_options_exec_and_logs(client):  # noqa: F811
    from vessel.errors import InvalidArgument

    box = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; exec sleep 100"], detach=True,
                                name="apibox", cgroup_parent=client.cgroup, mem_limit="64m", memswap_limit="96m",
                                cpu_shares=256, shm_size="32m", group_add=["tty"], oom_score_adj=300,
                                sysctls={"kernel.msgmax": "4096"}, init=True, ipc_mode="shareable",
                                log_config={"Type": "json-file", "Config": {"max-size": "1m"}})
    host_config = box.attrs["HostConfig"]
    assert (host_config["MemorySwap"], host_config["CpuShares"], host_config["ShmSize"]) == (96 << 20, 256, 32 << 20)
    assert (host_config["GroupAdd"], host_config["OomScoreAdj"], host_config["Init"]) == (["tty"], 300, True)
    code, output = box.exec_run("sh -c 'cat /proc/1/cmdline | tr \\\\0 \" \"; cat /proc/sys/kernel/msgmax'")
    assert code == 0 and output.decode().split() == ["/sbin/docker-init", "--", "sh", "-c",
                                                     "echo", "one;", "echo", "two", ">&2;", "exec", "sleep", "100",
                                                     "4096"]
    assert box.exec_run(["sh", "-c", "echo out; echo err >&2; exit 2"], demux=True) == (2, (b"out\n", b"err\n"))
    assert box.exec_run("pwd", workdir="/tmp", user="nobody", environment={"A": "b"}).output == b"/tmp\n"
    result = box.exec_run(["sh", "-c", "echo a; sleep 0.2; echo b >&2"], stream=True, demux=True)
    assert result.exit_code is None and list(result.output) == [(b"a\n", None), (None, b"b\n")]
    assert b"".join(box.exec_run("sh -c 'echo x; echo y'", stream=True).output) == b"x\ny\n"
    stream = box.logs(stream=True, follow=True, timestamps=True)
    first = next(stream)
    assert first.endswith(b" one\n") and first[:4].isdigit()
    box.stop(timeout=30)
    assert [c.name for c in client.containers.list(all=True, filters={"status": "exited", "label": []})] == ["apibox"]
    assert client.containers.list(all=True, filters={"before": "apibox"}) == []
    with pytest.raises(InvalidArgument, match="Minimum memoryswap limit should be larger than memory limit"):
        client.containers.create("busybox", "true", mem_limit="64m", memswap_limit="32m")
    with pytest.raises(InvalidArgument, match="invalid filter 'status=sleeping'"):
        client.containers.list(all=True, filters={"status": "sleeping"})


def test_ps_filters_templates_logs_details_and_inspect_size(vessel, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    vessel("run", "--name", "first", "-l", "tier=web", "busybox", "sh", "-c", "echo hello")
    vessel("run", "-d", "--name", "second", "-v", f"{data}:/data", "busybox", "sleep", "100")
    vessel("create", "--name", "third", "--network", "host", "busybox", "sh", "-c",
           "dd if=/dev/zero of=/f bs=1k count=8")
    names = lambda *flags: vessel("ps", "-a", *flags, "--format", "{{.Names}}").stdout.split()  # noqa: E731
    assert names() == ["third", "second", "first"]
    assert names("-f", "since=first") == ["third", "second"] and names("-f", "before=second") == ["first"]
    assert names("-f", "ancestor=busybox") == ["third", "second", "first"] and names("-f", "ancestor=other") == []
    assert names("-f", f"volume={data}") == ["second"] and names("-f", "volume=/data") == ["second"]
    assert names("-f", "network=host") == ["third"]
    assert names("-f", "exited=0") == ["first"] and names("-n", "2") == ["third", "second"]
    assert names("-l") == ["third"] and names("-f", "is-task=false") == ["third", "second", "first"]
    result = vessel("ps", "-a", "-f", "status=sleeping", code=125)
    assert result.stderr == "Error: invalid filter 'status=sleeping'\n"
    labels = vessel("ps", "-a", "--format", '{{.Names}}:{{.Label "tier"}}').stdout.split()
    assert labels == ["third:", "second:", "first:web"]
    assert len(vessel("ps", "--no-trunc", "--format", "{{.ID}}").stdout.strip()) == 64
    vessel("start", "-a", "third")
    sized = vessel("ps", "-a", "-f", "name=third", "--format", "{{.Size}}").stdout
    assert sized.split()[0].endswith("kB") and "(virtual " in sized
    document = json.loads(vessel("inspect", "-s", "third").stdout)[0]
    assert document["SizeRw"] >= 8192 and document["SizeRootFs"] > document["SizeRw"]
    assert "SizeRw" not in json.loads(vessel("inspect", "third").stdout)[0]
    assert vessel("inspect", "--type", "image", "--format", "{{.Id}}", "busybox").stdout.startswith("sha256:")
    assert vessel("inspect", "--type", "container", "busybox", code=1).stderr == "Error: No such object: busybox\n"
    assert vessel("inspect", "--format", '{{.Name}} {{index .Config.Labels "tier"}}', "first").stdout == "/first web\n"
    assert vessel("logs", "--details", "first").stdout == " hello\n"
    stamped = vessel("logs", "-t", "--details", "first").stdout
    assert stamped.endswith("Z  hello\n")
