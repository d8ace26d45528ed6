"""The remaining runc verbs and flags: exec's options, ps table, kill --all, features, spec,
events, --systemd-cgroup, console size, rootfs propagation."""

import json
import os
import time

import pytest

from helpers import runtime


@pytest.fixture
def running(root, bundle, names):
    """A detached `sleep` container; yields its id."""
    cid = names()
    runtime(root, "run", "-d", "--bundle", bundle(("sleep", "1000")), cid, check=True)
    yield cid
    runtime(root, "delete", "--force", cid)


def test_exec_options(root, running, tmp_path):
    out = runtime(root, "exec", "-e", "FOO=bar", "--cwd", "/tmp", "-u", "1000:1000", "--additional-gids", "5",
                  running, "sh", "-c", 'echo $FOO; pwd; id', check=True).stdout.decode().splitlines()
    assert out == ["bar", "/tmp", "uid=1000(user) gid=1000(user) groups=5(tty)"]
    caps = runtime(root, "exec", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", running, "sh", "-c",
                   "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status", check=True).stdout.decode().split()
    assert int(caps[1], 16) & (1 << 21)  # CAP_SYS_ADMIN
    assert caps[3] == "1"


def test_exec_process_file_detached_with_pid_file(root, running, tmp_path):
    process = {"args": ["sh", "-c", "echo detached > /tmp/mark; sleep 1000"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    pid_file = tmp_path / "exec.pid"
    runtime(root, "exec", "--process", path, "-d", "--pid-file", pid_file, running, check=True)
    pid = int(pid_file.read_text())
    assert os.path.exists(f"/proc/{pid}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = runtime(root, "exec", running, "cat", "/tmp/mark").stdout
        if out == b"detached\n":
            break
        time.sleep(0.05)
    assert out == b"detached\n"
    pids = json.loads(runtime(root, "ps", "-f", "json", running, check=True).stdout)
    assert pid in pids


def test_ps_table(root, running):
    out = runtime(root, "ps", running, check=True).stdout.decode().splitlines()
    assert out[0].split()[:2] == ["UID", "PID"]
    assert any("sleep 1000" in line for line in out[1:])


def test_kill_all_and_numbers(root, running):
    runtime(root, "exec", "-d", running, "sleep", "999", check=True)
    runtime(root, "kill", "--all", running, "9", check=True)
    deadline = time.monotonic() + 5
    while json.loads(runtime(root, "state", running).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert json.loads(runtime(root, "ps", "-f", "json", running).stdout or b"[]") == []


def test_features(root):
    features = json.loads(runtime(root, "features", check=True).stdout)
    assert features["ociVersionMin"] == "1.0.0"
    assert "time" in features["linux"]["namespaces"]
    assert "CAP_SYS_ADMIN" in features["linux"]["capabilities"]
    assert features["linux"]["seccomp"]["enabled"] is True
    assert "rbind" in features["mountOptions"]


def test_spec_writes_docker_defaults(root, tmp_path):
    runtime(root, "spec", "--bundle", tmp_path, check=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert len(cfg["process"]["capabilities"]["bounding"]) == 14
    assert "/proc/kcore" in cfg["linux"]["maskedPaths"]
    assert cfg["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    again = runtime(root, "spec", "--bundle", tmp_path)
    assert again.returncode == 1 and b"exists" in again.stderr
    rootless = tmp_path / "rootless"
    rootless.mkdir()
    runtime(root, "spec", "--rootless", "--bundle", rootless, check=True)
    cfg = json.loads((rootless / "config.json").read_text())
    assert {"type": "user"} in cfg["linux"]["namespaces"] and cfg["linux"]["uidMappings"]


def test_events_stats(root, running):
    event = json.loads(runtime(root, "events", "--stats", running, check=True).stdout)
    assert event["type"] == "stats" and event["id"] == running
    assert event["data"]["pids"]["current"] >= 1
    proc = runtime(root, "events", "--interval", "soon", running)
    assert proc.returncode == 1 and b"invalid duration" in proc.stderr


def test_systemd_cgroup_is_a_clear_error(root, bundle, names):
    proc = runtime(root, "--systemd-cgroup", "create", "--bundle", bundle(), names())
    assert proc.returncode == 1 and b"systemd" in proc.stderr
    assert os.listdir(root) == [] if os.path.exists(root) else True


def test_console_size(root, bundle, names, tmp_path):
    import array
    import socket

    path = str(tmp_path / "c.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    cid = names()

    def edit(cfg):
        cfg["process"].update(terminal=True, consoleSize={"height": 33, "width": 101})

    try:
        runtime(root, "create", "--bundle", bundle(("sh", "-c", "stty size"), edit=edit), "--console-socket",
                path, cid, check=True)
        conn, _ = server.accept()
        _, ancdata, _, _ = conn.recvmsg(16, socket.CMSG_SPACE(4))
        fds = array.array("i")
        fds.frombytes(ancdata[0][2][:4])
        runtime(root, "start", cid, check=True)
        out = b""
        while b"\n" not in out:
            try:
                chunk = os.read(fds[0], 100)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(fds[0])
        conn.close()
        assert out.split()[:2] == [b"33", b"101"]
    finally:
        server.close()
        runtime(root, "delete", "--force", cid)


def test_rootfs_propagation_shared(root, bundle, names):
    out = runtime(root, "run", "--bundle", bundle(("awk", "$5 == \"/\"", "/proc/self/mountinfo"),
                                                  edit=lambda c: c["linux"].update(rootfsPropagation="rshared")),
                  names(), check=True).stdout.decode()
    assert "shared:" in out
