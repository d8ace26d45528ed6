"""The `vessel` container commands end to end: the real monitor, runtimes, overlays and cgroups.

Each test has its own --root and --runroot under tmp_path and a cgroup parent
named after the run token (below this process's cgroup), removed at teardown.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from helpers import default_bridge_env
from image_fixtures import ALPINE
from peers import busybox_tar, remove_cgroup_tree

VESSEL = [sys.executable, "-m", "vessel.cli.main"]


class Vessel:
    """The vessel CLI on a state of its own; `run`/`create` get the test's cgroup parent."""

    def __init__(self, base, cgroup_name):
        self.root = os.path.join(base, "root")
        self.runroot = os.path.join(base, "run")
        self.cgroup_name = cgroup_name
        # a default bridge of this root's own (name, subnet): concurrent tests never share one
        self.env = dict(os.environ, VESSEL_ROOT=self.root, VESSEL_RUNROOT=self.runroot,
                        **default_bridge_env(self.root))

    def argv(self, *args):
        args = [str(a) for a in args]
        if args and args[0] in ("run", "create"):
            args = [args[0], "--cgroup-parent", self.cgroup_name, *args[1:]]
        return VESSEL + args

    def __call__(self, *args, code=0, input=None, timeout=60):
        proc = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout)
        if code is not None:
            assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def popen(self, *args, **kwargs):
        return subprocess.Popen(self.argv(*args), env=self.env, **kwargs)

    def ids(self):
        return self("ps", "-aq", "--no-trunc").stdout.split()

    def teardown(self):
        ids = self.ids()
        if ids:
            self("rm", "-f", *ids, code=None)
        remove_cgroup_tree(self.cgroup_name)


@pytest.fixture(scope="session")
def busybox_tarball(tmp_path_factory):
    return busybox_tar(str(tmp_path_factory.mktemp("engine-image") / "busybox.tar"))


@pytest.fixture
def vessel(tmp_path, names, busybox_tarball):
    cli = Vessel(str(tmp_path), names("cg"))
    cli("import", busybox_tarball, "busybox", "--change", 'CMD ["sh"]')
    yield cli
    cli.teardown()


def monitors(vessel):
    """Pids of the live container monitors of this test's root."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        if any(b"vessel.engine.monitor" in arg for arg in argv) and vessel.root.encode() in argv:
            found.append(int(pid))
    return found


def _mounted_below(path):
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(path)]


def _assert_clean(vessel):
    assert vessel.ids() == []
    assert os.listdir(os.path.join(vessel.root, "containers")) == []
    assert os.listdir(os.path.join(vessel.root, "image", "snapshots", "active")) == []
    assert _mounted_below(vessel.runroot) == []


def test_run_rm_echo(vessel):
    result = vessel("run", "--rm", "busybox", "echo", "hi")
    assert result.stdout == "hi\n"
    _assert_clean(vessel)


def test_exit_codes(vessel):
    result = vessel("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", code=3)
    assert result.stdout == "out\n" and result.stderr == "err\n"
    result = vessel("run", "--rm", "busybox", "nosuchcommand", code=127)
    assert 'exec: "nosuchcommand": executable file not found in $PATH' in result.stderr
    result = vessel("run", "--rm", "busybox", "/etc/passwd", code=126)
    assert "permission denied" in result.stderr
    result = vessel("run", "--rm", "--pull", "never", "nosuchimage", "true", code=125)  # (no pull: no network)
    assert "No such image: nosuchimage:latest" in result.stderr
    # without --rm the failed container stays, "Created", as Docker leaves it
    vessel("run", "--name", "failed", "busybox", "nosuchcommand", code=127)
    assert vessel("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split() == ["failed", "created"]
    vessel("rm", "failed")
    _assert_clean(vessel)


def test_detached_logs_stop_rm(vessel):
    script = "i=0; while true; do echo line$i; echo err$i >&2; i=$((i+1)); sleep 0.1; done"
    container_id = vessel("run", "-d", "--name", "ticker", "busybox", "sh", "-c", script).stdout.strip()
    assert len(container_id) == 64
    follower = vessel.popen("logs", "-f", "ticker", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while "line5" not in vessel("logs", "ticker").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    logs = vessel("logs", "ticker")
    assert logs.stdout.startswith("line0\nline1\n") and logs.stderr.startswith("err0\nerr1\n")
    tail = vessel("logs", "--tail", "4", "ticker")  # the last entries of both streams together
    assert tail.stdout.count("\n") + tail.stderr.count("\n") == 4
    stamped = vessel("logs", "-t", "--tail", "2", "ticker").stdout
    assert stamped[:4].isdigit() and stamped.split(" ", 1)[0].endswith("Z")
    log_path = os.path.join(vessel.root, "containers", container_id, f"{container_id}-json.log")
    with open(log_path) as handle:
        entry = json.loads(handle.readline())
    assert entry["log"] == "line0\n" and entry["stream"] == "stdout" and entry["time"].endswith("Z")
    assert vessel("logs", "--since", "1h", "ticker").stdout.startswith("line0\n")
    assert vessel("logs", "--since", "2999-01-01T00:00:00Z", "ticker").stdout == ""
    started = time.monotonic()
    assert vessel("stop", "-t", "1", "ticker").stdout == "ticker\n"
    assert time.monotonic() - started < 8
    followed, _ = follower.communicate(timeout=10)  # -f ends when the container stops
    assert followed.startswith(b"line0\n") and b"line5\n" in followed
    document = json.loads(vessel("inspect", "ticker").stdout)[0]
    assert document["State"]["Status"] == "exited" and document["State"]["ExitCode"] == 137
    assert document["Id"] == container_id and document["Name"] == "/ticker"
    assert document["Config"]["Cmd"] == ["sh", "-c", script] and document["LogPath"] == log_path
    assert vessel("wait", "ticker").stdout == "137\n"
    vessel("rm", "ticker")
    _assert_clean(vessel)


def test_stop_gracefully_with_trap(vessel):
    vessel("run", "-d", "--name", "graceful", "busybox", "sh", "-c",
           "trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done")
    time.sleep(0.3)
    vessel("stop", "graceful")
    assert vessel("wait", "graceful").stdout == "7\n"
    assert vessel("logs", "graceful").stdout == "bye\n"


def test_ps_columns_filters_and_format(vessel):
    vessel("run", "-d", "--name", "alpha", "-l", "tier=web", "busybox", "sleep", "100")
    vessel("run", "--name", "beta", "-l", "tier=db", "busybox", "sh", "-c", "exit 2", code=2)
    vessel("create", "--name", "gamma", "busybox", "true")
    lines = vessel("ps").stdout.splitlines()
    header = lines[0]
    assert [c.strip() for c in re.split(r"\s{3,}", header)] == \
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 2
    row = lines[1]
    assert row[header.index("IMAGE"):].startswith("busybox ")
    assert row[header.index("COMMAND"):].startswith('"sleep 100"')
    assert row[header.index("STATUS"):].startswith("Up ")
    assert row.rstrip().endswith("alpha")
    everything = vessel("ps", "-a", "--format", "{{.Names}}|{{.Status}}").stdout.splitlines()
    statuses = dict(line.split("|") for line in everything)
    assert set(statuses) == {"alpha", "beta", "gamma"}
    assert statuses["beta"].startswith("Exited (2) ") and statuses["gamma"] == "Created"
    assert len(vessel("ps", "-q").stdout.split()) == 1 and len(vessel("ps", "-aq").stdout.split()[0]) == 12
    assert vessel("ps", "-a", "--filter", "name=bet", "--format", "{{.Names}}").stdout == "beta\n"
    assert vessel("ps", "-a", "-f", "status=exited", "--format", "{{.Names}}").stdout == "beta\n"
    assert vessel("ps", "-a", "-f", "label=tier=web", "--format", "{{.Names}}").stdout == "alpha\n"
    assert sorted(vessel("ps", "-a", "-f", "label=tier", "--format", "{{.Names}}").stdout.split()) == \
        ["alpha", "beta"]
    record = json.loads(vessel("ps", "--format", "json").stdout)
    assert record["Names"] == "alpha" and record["State"] == "running" and record["Ports"] == ""
    table = vessel("ps", "--format", "table {{.Names}}\t{{.Status}}").stdout.splitlines()
    assert table[0].split() == ["NAMES", "STATUS"] and table[1].startswith("alpha")
    vessel("ps", "-f", "bogus=1", code=125)


def test_exec(vessel):
    vessel("run", "-d", "--name", "box", "-e", "FROM_RUN=1", "busybox", "sleep", "100")
    assert vessel("exec", "box", "sh", "-c", "echo $FROM_RUN $HOSTNAME").stdout.split()[0] == "1"
    vessel("exec", "box", "sh", "-c", "exit 4", code=4)
    result = vessel("exec", "box", "nosuchcommand", code=127)
    assert "executable file not found" in result.stderr
    assert vessel("exec", "-u", "user", "box", "id", "-u").stdout == "1000\n"
    assert vessel("exec", "-e", "X=y", "-w", "/tmp", "box", "sh", "-c", "echo $X $PWD").stdout == "y /tmp\n"
    assert vessel("exec", "-i", "box", "cat", input="piped\n").stdout == "piped\n"
    vessel("exec", "-d", "box", "sh", "-c", "sleep 1 > /tmp/detached")
    top = vessel("top", "box").stdout.splitlines()
    assert "PID" in top[0].split() and any("sleep 100" in line for line in top[1:])
    vessel("pause", "box")
    assert vessel("ps", "--format", "{{.Status}}").stdout.rstrip().endswith("(Paused)")
    vessel("exec", "box", "true", code=125)
    vessel("unpause", "box")
    vessel("rename", "box", "crate")
    assert vessel("ps", "--format", "{{.Names}}").stdout == "crate\n"
    assert vessel("port", "crate").stdout == ""


def _read_until(fd, needle, timeout=15):
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_tty_through_a_pty(vessel):
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = vessel.popen("run", "-it", "--rm", "busybox", "sh", stdin=slave, stdout=slave, stderr=slave,
                        start_new_session=True)
    os.close(slave)
    try:
        assert b"# " in _read_until(master, b"# ")
        os.write(master, b"tty; stty size; echo $((6*7))\n")
        output = _read_until(master, b"42\r\n")
        assert b"/dev/pts/0\r\n" in output and b"33 101\r\n" in output and b"42\r\n" in output
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(proc.pid, signal.SIGWINCH)
        time.sleep(0.3)
        os.write(master, b"stty size; exit 5\n")
        assert b"40 120\r\n" in _read_until(master, b"40 120\r\n")
        assert proc.wait(timeout=15) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    _assert_clean(vessel)


def test_tty_output_in_logs(vessel):
    container_id = vessel("run", "-d", "-t", "--name", "pty", "busybox", "sh", "-c", "tty; echo done").stdout.strip()
    assert vessel("wait", "pty").stdout == "0\n"
    assert vessel("logs", "pty").stdout == "/dev/pts/0\ndone\n"  # (text mode folds the pty's \r\n)
    with open(os.path.join(vessel.root, "containers", container_id, f"{container_id}-json.log")) as handle:
        entries = [json.loads(line) for line in handle]
    assert [e["log"] for e in entries] == ["/dev/pts/0\r\n", "done\r\n"]
    assert {e["stream"] for e in entries} == {"stdout"}


def test_interactive_stdin(vessel):
    result = vessel("run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z; exit 9", input="hello\n", code=9)
    assert result.stdout == "HELLO\n"


def test_bind_mounts(vessel, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from host\n")
    assert vessel("run", "--rm", "-v", f"{data}:/data:ro", "busybox", "cat", "/data/in.txt").stdout == "from host\n"
    result = vessel("run", "--rm", "-v", f"{data}:/data:ro", "busybox", "touch", "/data/x", code=1)
    assert "Read-only file system" in result.stderr
    vessel("run", "--rm", "-v", f"{data}:/deep/data", "busybox", "sh", "-c", "echo back > /deep/data/out.txt")
    assert (data / "out.txt").read_text() == "back\n"
    vessel("run", "--rm", "-v", "relative/dir:/x", "busybox", "true", code=125)  # neither a path nor a name


def test_user_resolution(vessel):
    assert vessel("run", "--rm", "-u", "user", "busybox", "id").stdout == "uid=1000(user) gid=1000(user)\n"
    assert vessel("run", "--rm", "-u", "nobody:tty", "busybox", "id", "-u").stdout == "65534\n"
    assert vessel("run", "--rm", "-u", "4242:4343", "busybox", "sh", "-c", "id -u; id -g").stdout == "4242\n4343\n"
    result = vessel("run", "--rm", "-u", "nosuchuser", "busybox", "id", code=125)
    assert "unable to find user nosuchuser" in result.stderr
    _assert_clean(vessel)


def test_read_only_and_tmpfs(vessel):
    result = vessel("run", "--rm", "--read-only", "busybox", "touch", "/x", code=1)
    assert "Read-only file system" in result.stderr
    vessel("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "touch", "/scratch/x")


def test_limits_reach_the_cgroup(vessel):
    vessel("run", "-d", "--name", "limited", "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5",
           "--ulimit", "nofile=512:1024", "busybox", "sleep", "100")
    memory = vessel("exec", "limited", "sh", "-c",
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
    assert memory.stdout.strip() == str(64 << 20)
    pids = vessel("exec", "limited", "sh", "-c",
                  "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
    assert pids.stdout.strip() == "50"
    assert vessel("exec", "limited", "sh", "-c", "ulimit -n; ulimit -Hn").stdout.split() == ["512", "1024"]
    host_config = json.loads(vessel("inspect", "limited").stdout)[0]["HostConfig"]
    assert host_config["Memory"] == 64 << 20 and host_config["NanoCpus"] == 500_000_000


def test_network_modes(vessel):
    none = vessel("run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev").stdout
    interfaces = [line.split(":")[0].strip() for line in none.splitlines()[2:]]
    assert interfaces == ["lo"]

    def stable(text):  # the host's own interfaces: concurrent tests add and remove veths and bridges
        names = {line.split(":")[0].strip() for line in text.splitlines()[2:]}
        return {n for n in names if not n.startswith(("veth", "vsl", "br-", "vessel"))}

    with open("/proc/net/dev") as handle:
        host_interfaces = stable(handle.read())
    host = vessel("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev").stdout
    assert stable(host) == host_interfaces
    vessel("run", "--rm", "--network", "nosuchnetwork", "busybox", "true", code=125)
    hosts = vessel("run", "--rm", "--add-host", "db:10.1.2.3", "-h", "myhost", "busybox", "sh", "-c",
                   "hostname; cat /etc/hosts").stdout
    assert hosts.startswith("myhost\n") and "10.1.2.3\tdb" in hosts


def test_bad_input_creates_nothing(vessel):
    before = vessel.ids()
    result = vessel("run", "--memory", "12xyz", "busybox", "true", code=125)
    assert result.stderr.startswith("Error: invalid argument \"12xyz\" for \"-m, --memory\" flag")
    result = vessel("run", "--restart", "sometimes", "busybox", "true", code=125)
    assert "invalid restart policy" in result.stderr
    result = vessel("run", "--restart", "always", "--rm", "busybox", "true", code=125)
    assert "Conflicting options: --restart and --rm" in result.stderr
    vessel("run", "--name", "bad/name", "busybox", "true", code=125)
    vessel("run", "--cap-add", "NOT_A_CAP", "busybox", "true", code=125)
    vessel("run", "--ulimit", "nofile=x", "busybox", "true", code=125)
    vessel("run", "--security-opt", "apparmor=foo", "busybox", "true", code=125)
    assert vessel.ids() == before
    vessel("create", "--name", "taken", "busybox", "true")
    result = vessel("create", "--name", "taken", "busybox", "true", code=125)
    assert 'Conflict. The container name "/taken" is already in use' in result.stderr
    assert len(vessel.ids()) == 1 and len(os.listdir(os.path.join(vessel.root, "containers"))) == 1
    vessel("run", "-d", "--name", "busy", "busybox", "sleep", "100")
    result = vessel("rm", "busy", code=125)
    assert 'cannot remove container "/busy": container is running' in result.stderr
    result = vessel("rm", "nosuch", code=125)
    assert "No such container: nosuch" in result.stderr
    vessel("rm", "-f", "busy", "taken")
    _assert_clean(vessel)


def test_concurrent_runs(vessel):
    procs = [vessel.popen("run", "-d", "busybox", "sleep", "100", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(10)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 10, outputs
    ids = {out.strip().decode() for out, _ in outputs}
    assert len(ids) == 10
    listed = vessel("ps", "--format", "{{.Names}} {{.State}}").stdout.splitlines()
    assert len(listed) == 10 and all(line.endswith(" running") for line in listed)
    assert len({line.split()[0] for line in listed}) == 10
    assert all("_" in line.split()[0] for line in listed)
    vessel("rm", "-f", *ids)
    _assert_clean(vessel)


def test_killed_monitor_leaves_a_removable_container(vessel):
    from vessel.engine.state import State

    vessel("run", "-d", "--name", "orphan", "busybox", "sleep", "100")
    state = State(vessel.root)
    try:
        record = state.find("orphan")
    finally:
        state.close()
    os.kill(record.supervisor_pid, signal.SIGKILL)
    time.sleep(0.2)
    assert vessel("ps", "--format", "{{.Names}} {{.State}}").stdout == "orphan running\n"
    vessel("rm", "-f", "orphan")
    _assert_clean(vessel)
    deadline = time.monotonic() + 10  # the init's new parent reaps it
    while os.path.exists(f"/proc/{record.pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{record.pid}")


def test_start_attach_and_restart_a_stopped_container(vessel):
    vessel("create", "--name", "again", "busybox", "sh", "-c", "echo run")
    assert vessel("start", "-a", "again").stdout == "run\n"
    assert vessel("start", "again").stdout == "again\n"
    vessel("wait", "again")
    assert vessel("logs", "again").stdout == "run\nrun\n"


def test_kill_with_signal(vessel):
    vessel("run", "-d", "--name", "target", "busybox", "sh", "-c",
           "trap 'exit 42' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)
    assert vessel("kill", "-s", "USR1", "target").stdout == "target\n"
    assert vessel("wait", "target").stdout == "42\n"
    vessel("kill", "target", code=125)


def test_other_runtime_runc(vessel):
    assert vessel("run", "--rm", "--runtime", "runc", "busybox", "echo", "via runc").stdout == "via runc\n"
    vessel("run", "--rm", "--runtime", "no-such-runtime", "busybox", "true", code=125)
    _assert_clean(vessel)


def test_alpine(vessel):
    vessel("import", ALPINE, "alpine")
    assert vessel("run", "--rm", "alpine", "cat", "/etc/alpine-release").stdout == "3.20.3\n"
    assert vessel("run", "--rm", "-u", "nobody", "alpine", "id", "-un").stdout == "nobody\n"


def test_log_rotation_options(vessel):
    container_id = vessel("run", "--name", "chatty", "--log-opt", "max-size=2k", "--log-opt", "max-file=2",
                          "busybox", "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done"
                          ).stdout.strip().splitlines()[-1]
    assert container_id == "line199"
    private = os.path.join(vessel.root, "containers", vessel.ids()[0])
    logs = sorted(name for name in os.listdir(private) if "-json.log" in name)
    assert len(logs) == 2 and logs[1].endswith(".1")
    assert all(os.path.getsize(os.path.join(private, name)) <= 2048 for name in logs)
    kept = vessel("logs", "chatty").stdout.splitlines()
    assert kept[-1] == "line199" and "line0" not in kept
    vessel("run", "--log-opt", "color=red", "busybox", "true", code=125)


def test_capabilities_and_privileged(vessel):
    def effective(*flags):
        status = vessel("run", "--rm", *flags, "busybox", "grep", "CapEff", "/proc/self/status").stdout
        return int(status.split()[1], 16)

    default = effective()
    assert default & (1 << 0) and not default & (1 << 21)  # CAP_CHOWN yes, CAP_SYS_ADMIN no
    assert not effective("--cap-drop", "chown") & 1
    assert effective("--cap-add", "SYS_ADMIN") & (1 << 21)
    assert effective("--privileged") & (1 << 21)
    assert effective("--cap-drop", "ALL") == 0
    no_new_privs = vessel("run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs",
                          "/proc/self/status").stdout.split()[1]
    assert no_new_privs == "1"
    seccomp = vessel("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "grep", "Seccomp:",
                     "/proc/self/status").stdout.split()[1]
    assert seccomp == "0"


def test_concurrent_starts_start_once_under_one_monitor(vessel):
    container_id = vessel("create", "--name", "once", "busybox", "sh", "-c", "echo started; sleep 100").stdout.strip()
    procs = [vessel.popen("start", "once", stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(5)]
    assert [proc.wait(timeout=60) for proc in procs] == [0] * 5
    assert vessel("ps", "--format", "{{.Names}} {{.State}}").stdout == "once running\n"
    time.sleep(0.3)
    assert vessel("logs", "once").stdout == "started\n"
    deadline = time.monotonic() + 10  # polled: a monitor exec'ing its slim successor shows no argv for an instant
    while len(monitors(vessel)) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(monitors(vessel)) == 1
    assert json.loads(vessel("inspect", container_id).stdout)[0]["State"]["Running"]


def test_attached_run_proxies_signals(vessel):
    proc = vessel.popen("run", "--rm", "--name", "proxied", "busybox", "sh", "-c",
                        "trap 'echo caught; exit 3' INT; echo ready; while true; do sleep 0.1; done",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert out == b"caught\n" and proc.returncode == 3
    _assert_clean(vessel)


def test_entrypoint_workdir_env_and_dns(vessel, tmp_path):
    assert vessel("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint").stdout == "via entrypoint\n"
    assert vessel("run", "--rm", "-w", "/made/here", "busybox", "pwd").stdout == "/made/here\n"
    env_file = tmp_path / "env"
    env_file.write_text("# settings\nFROM_FILE=1\nSHARED=file\n")
    env = vessel("run", "--rm", "--env-file", env_file, "-e", "SHARED=flag", "busybox", "env").stdout.splitlines()
    assert "FROM_FILE=1" in env and "SHARED=flag" in env and "SHARED=file" not in env
    assert any(line.startswith("PATH=") for line in env) and any(line.startswith("HOSTNAME=") for line in env)
    resolv = vessel("run", "--rm", "--dns", "192.0.2.53", "busybox", "cat", "/etc/resolv.conf").stdout
    assert resolv == "nameserver 192.0.2.53\n"
    document = json.loads(vessel("create", "--name", "described", "--entrypoint", "sleep", "busybox", "5").stdout
                          and vessel("inspect", "described").stdout)[0]
    assert document["Path"] == "sleep" and document["Args"] == ["5"]
    assert document["Config"]["Entrypoint"] == ["sleep"] and document["Config"]["Cmd"] == ["5"]
    assert document["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    size_header = vessel("ps", "-a", "-s").stdout.splitlines()[0]
    assert size_header.rstrip().endswith("SIZE")


def test_attach_and_restart(vessel):
    vessel("run", "-d", "-i", "--name", "echoer", "busybox", "sh", "-c", "while read line; do echo got $line; done")
    client = vessel.popen("attach", "echoer", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    client.stdin.write(b"one\n")
    client.stdin.flush()
    assert client.stdout.readline() == b"got one\n"
    client.stdin.close()  # stdin closes with the last attached client: the loop ends
    assert client.wait(timeout=20) == 0
    assert vessel("logs", "echoer").stdout == "got one\n"
    vessel("attach", "echoer", code=125)
    vessel("run", "-d", "--name", "again", "busybox", "sh", "-c", "echo boot; sleep 100")
    assert vessel("restart", "-t", "0", "again").stdout == "again\n"
    deadline = time.monotonic() + 10
    while vessel("logs", "again").stdout != "boot\nboot\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert vessel("ps", "--format", "{{.State}}").stdout == "running\n"


def test_diff(vessel):
    vessel("run", "--name", "changed", "busybox", "sh", "-c",
           "echo x > /new; mkdir -p /tmp/dir; rm /etc/passwd; echo y >> /etc/group")
    changes = vessel("diff", "changed").stdout.splitlines()
    assert changes == ["C /etc", "C /etc/group", "D /etc/passwd", "A /new", "C /tmp", "A /tmp/dir"]
    assert vessel("container", "diff", "changed").stdout.splitlines() == changes


def test_stats_no_stream(vessel):
    vessel("run", "-d", "--name", "busy", "--memory", "64m", "busybox", "sh", "-c",
           "while true; do :; done & sleep 100")
    vessel("create", "--name", "idle", "busybox", "true")
    lines = vessel("stats", "--no-stream").stdout.splitlines()
    assert [c.strip() for c in re.split(r"\s{3,}", lines[0])] == \
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
    assert len(lines) == 2
    row = json.loads(vessel("stats", "--no-stream", "--format", "json", "busy").stdout)
    assert row["Name"] == "busy" and row["MemUsage"].endswith(" / 64MiB") and int(row["PIDs"]) >= 2
    assert float(row["CPUPerc"].rstrip("%")) > 20
    assert vessel("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}", "idle").stdout == "idle 0.00%\n"


def test_update_and_prune(vessel):
    vessel("run", "-d", "--name", "resized", "--memory", "64m", "busybox", "sleep", "100")
    assert vessel("update", "--memory", "128m", "--pids-limit", "20", "resized").stdout == "resized\n"
    read = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
    assert vessel("exec", "resized", "sh", "-c", read).stdout.strip() == str(128 << 20)
    host_config = json.loads(vessel("inspect", "resized").stdout)[0]["HostConfig"]
    assert host_config["Memory"] == 128 << 20 and host_config["PidsLimit"] == 20
    vessel("update", "--memory", "12xyz", "resized", code=125)
    vessel("update", "--restart", "sometimes", "resized", code=125)
    vessel("run", "--name", "done1", "busybox", "true")
    vessel("create", "--name", "fresh", "busybox", "true")
    output = vessel("container", "prune", "-f").stdout.splitlines()
    assert output[0] == "Deleted Containers:" and len(output) == 5 and output[-1].startswith("Total reclaimed space:")
    assert vessel("ps", "-a", "--format", "{{.Names}}").stdout == "resized\n"


def detach_from_run(vessel, name, flags, typed):
    """`run -it` a shell on a pty, type `typed` at its prompt; the run must leave with 0, the container run on."""
    master, slave = os.openpty()
    proc = vessel.popen("run", "-it", "--name", name, *flags, "busybox", "sh", stdin=slave, stdout=slave,
                        stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        assert b"# " in _read_until(master, b"# ")
        os.write(master, typed)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert vessel("ps", "--format", "{{.Names}} {{.State}}").stdout == f"{name} running\n"


def test_detach_keys_leave_the_container_running(vessel):
    detach_from_run(vessel, "detachable", [], b"\x10\x11")
    assert vessel("exec", "detachable", "echo", "still here").stdout == "still here\n"


def test_rmi_refuses_an_image_a_container_uses(vessel):
    """Docker's rule: an image that a container uses cannot be removed without -f."""
    vessel("create", "--name", "user-of-image", "busybox", "true")
    proc = vessel("rmi", "busybox", code=125)
    assert "container" in proc.stderr
    assert vessel("images", "-q").stdout.strip()


def test_export_running_and_stopped(vessel, tmp_path):
    """`vessel export` writes the container's whole filesystem, changes included, as a tar."""
    import tarfile

    vessel("run", "-d", "--name", "exp", "busybox", "sh", "-c", "echo mine > /made-here; sleep 100")
    deadline = time.monotonic() + 10
    while vessel("exec", "exp", "cat", "/made-here", code=None).returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    running = tmp_path / "running.tar"
    vessel("export", "-o", running, "exp")
    vessel("stop", "-t", "0", "exp")
    stopped = tmp_path / "stopped.tar"
    vessel("export", "--output", stopped, "exp")
    for archive in (running, stopped):
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
            assert {"bin/busybox", "etc/passwd", "made-here"} <= names
            assert tar.extractfile("made-here").read() == b"mine\n"
    assert not _mounted_below(vessel.runroot + "/export-")
    proc = vessel("export", "-o", tmp_path / "x.tar", "no-such-container", code=125)
    assert "No such container" in proc.stderr
    assert not (tmp_path / "x.tar").exists()
