"""vessel-runtime's verbs end to end, on the real kernel."""

import json
import os
import time

import pytest

from helpers import runtime


def state(root, cid):
    proc = runtime(root, "state", cid, check=True)
    return json.loads(proc.stdout)


def wait_status(root, cid, wanted, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state(root, cid)["status"] == wanted:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never reached {wanted}: {state(root, cid)}")


def test_run_prints_and_returns_exit_code(root, bundle, names):
    b = bundle(("sh", "-c", "echo out; echo err >&2; exit 7"))
    proc = runtime(root, "run", "--bundle", b, names())
    assert proc.returncode == 7
    assert proc.stdout == b"out\n"
    assert proc.stderr == b"err\n"
    assert os.listdir(root) == []


def test_create_start_state_kill_delete(root, bundle, names):
    cid = names()
    b = bundle(("sleep", "100"))
    pid_file = os.path.join(b, "init.pid")
    runtime(root, "create", "--bundle", b, "--pid-file", pid_file, cid, check=True)
    st = state(root, cid)
    assert st["status"] == "created"
    assert st["id"] == cid and st["bundle"] == b
    assert int(open(pid_file).read()) == st["pid"] > 0
    runtime(root, "start", cid, check=True)
    assert state(root, cid)["status"] == "running"
    listing = json.loads(runtime(root, "list", "-f", "json", check=True).stdout)
    assert [c["id"] for c in listing] == [cid]
    assert runtime(root, "list", "-q", check=True).stdout.decode().split() == [cid]
    runtime(root, "kill", cid, "KILL", check=True)
    wait_status(root, cid, "stopped")
    runtime(root, "delete", cid, check=True)
    assert runtime(root, "state", cid).returncode == 1


def test_namespaces_hostname_env_cwd_user(root, bundle, names):
    def edit(cfg):
        cfg["hostname"] = "boxy"
        cfg["process"]["env"].append("GREETING=hello there")
        cfg["process"]["cwd"] = "/tmp"
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}

    b = bundle(("sh", "-c", 'hostname; echo "$GREETING"; pwd; id; echo $$'), edit=edit)
    proc = runtime(root, "run", "--bundle", b, names(), check=True)
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "boxy"
    assert lines[1] == "hello there"
    assert lines[2] == "/tmp"
    assert lines[3].startswith("uid=1000(user) gid=1000(user) groups=5(tty)")
    assert lines[4] == "1"  # pid 1 of its own pid namespace


def test_mounts_and_readonly_root(root, bundle, names):
    def edit(cfg):
        cfg["root"]["readonly"] = True
        cfg["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=1m", "mode=700"]})

    b = bundle(("sh", "-c", "touch /x 2>/dev/null && echo rootrw || echo rootro; "
                            "touch /data/y && echo datarw; grep ' /data ' /proc/self/mountinfo; "
                            "grep ' /proc ' /proc/self/mountinfo"), edit=edit)
    out = runtime(root, "run", "--bundle", b, names(), check=True).stdout.decode()
    assert "rootro" in out and "datarw" in out
    assert "tmpfs" in out.split("/data")[1].splitlines()[0]
    assert " - proc " in out


def test_bind_mount_readonly(root, bundle, names, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("host data")

    def edit(cfg):
        cfg["mounts"].append({"destination": "/mnt/s", "type": "bind", "source": str(shared),
                              "options": ["rbind", "ro"]})

    b = bundle(("sh", "-c", "cat /mnt/s/f; echo; touch /mnt/s/g 2>/dev/null || echo denied"), edit=edit)
    out = runtime(root, "run", "--bundle", b, names(), check=True).stdout.decode()
    assert "host data" in out and "denied" in out
    assert not (shared / "g").exists()


def test_masked_and_readonly_paths(root, bundle, names):
    b = bundle(("sh", "-c", "cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; "
                            "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo sysro"))
    out = runtime(root, "run", "--bundle", b, names(), check=True).stdout.decode().split()
    assert out == ["0", "0", "sysro"]


def test_cgroup_limits_applied(root, bundle, names):
    def edit(cfg):
        cfg["linux"]["resources"].update({"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 20},
                                          "cpu": {"shares": 512}})

    b = bundle(("sh", "-c", "cd /sys/fs/cgroup; if [ -d memory ]; then "
                            "cat memory/memory.limit_in_bytes pids/pids.max cpu/cpu.shares; "
                            "else cat memory.max pids.max cpu.weight; fi"), edit=edit)
    out = runtime(root, "run", "--bundle", b, names(), check=True).stdout.decode().split()
    assert out[:2] == [str(64 * 1024 * 1024), "20"]
    assert out[2] in ("512", "20")  # v1 shares, or v2 weight converted from shares


def test_exec_and_ps(root, bundle, names):
    cid = names()
    b = bundle(("sleep", "100"))
    runtime(root, "run", "-d", "--bundle", b, cid, check=True)
    try:
        proc = runtime(root, "exec", cid, "sh", "-c", "echo $$; hostname; cat /proc/1/cmdline")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.decode().splitlines()
        assert int(lines[0]) > 1
        assert lines[2].startswith("sleep")
        assert runtime(root, "exec", cid, "sh", "-c", "exit 3").returncode == 3
        proc = runtime(root, "exec", cid, "no-such-program")
        assert proc.returncode != 0
        assert b"executable file not found" in proc.stderr
        pids = json.loads(runtime(root, "ps", "-f", "json", cid, check=True).stdout)
        assert state(root, cid)["pid"] in pids
        # exec into a sub-cgroup of the container (runc's --cgroup)
        memory_dir = next(h["directory"] for h in json.load(open(root / cid / "state.json"))["cgroup"]
                          ["hierarchies"] if "memory" in h["controllers"]) if os.path.exists(
                          "/sys/fs/cgroup/memory") else None
        if memory_dir:
            os.mkdir(os.path.join(memory_dir, "sub"))
            out = runtime(root, "exec", "--cgroup", "memory:sub", cid, "cat", "/proc/self/cgroup", check=True)
            assert any(line.endswith("/sub") for line in out.stdout.decode().splitlines() if ":memory:" in line)
            bad = runtime(root, "exec", "--cgroup", "memory:../x", cid, "true")
            assert bad.returncode == 1 and b"invalid --cgroup" in bad.stderr
    finally:
        runtime(root, "delete", "--force", cid)


def test_pause_resume(root, bundle, names):
    cid = names()
    b = bundle(("sleep", "100"))
    runtime(root, "run", "-d", "--bundle", b, cid, check=True)
    try:
        runtime(root, "pause", cid, check=True)
        assert state(root, cid)["status"] == "paused"
        pid = state(root, cid)["pid"]
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("D", "S", "t", "T")
        runtime(root, "resume", cid, check=True)
        assert state(root, cid)["status"] == "running"
    finally:
        runtime(root, "delete", "--force", cid)


def test_update_memory(root, bundle, names):
    cid = names()
    b = bundle(("sleep", "100"))
    runtime(root, "run", "-d", "--bundle", b, cid, check=True)
    try:
        runtime(root, "update", "--memory", "32m", cid, check=True)
        out = runtime(root, "exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", check=True)
        assert out.stdout.decode().strip() == str(32 * 1024 * 1024)
        runtime(root, "update", "--pids-limit", "50", cid, check=True)
        runtime(root, "update", "--resources", "-", cid, check=True, input=b'{"memory": {"limit": 40000000}}')
        out = runtime(root, "exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                      "/sys/fs/cgroup/pids/pids.max", check=True)
        assert out.stdout.decode().split() == [str(40000000 // 4096 * 4096), "50"]
        proc = runtime(root, "update", "--memory", "12xyz", cid)
        assert proc.returncode == 1 and proc.stderr.count(b"\n") == 1
    finally:
        runtime(root, "delete", "--force", cid)


def test_hooks_get_state_on_stdin(root, bundle, names, tmp_path):
    log = tmp_path / "hooks.log"
    script = tmp_path / "hook.sh"
    script.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {log}\n")
    script.chmod(0o755)

    def edit(cfg):
        cfg["hooks"] = {kind: [{"path": str(script), "args": ["hook.sh", kind]}]
                        for kind in ("prestart", "createRuntime", "poststart", "poststop")}

    cid = names()
    b = bundle(("true",), edit=edit)
    runtime(root, "run", "--bundle", b, cid, check=True)
    lines = log.read_text().splitlines()
    kinds = [line.split(" ", 1)[0] for line in lines]
    assert kinds == ["prestart", "createRuntime", "poststart", "poststop"]
    first = json.loads(lines[0].split(" ", 1)[1])
    assert first["id"] == cid and first["pid"] > 0 and first["bundle"] == b


def test_failing_hook_fails_create_and_leaves_nothing(root, bundle, names, tmp_path):
    def edit(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 5"], "timeout": 1}]}

    cid = names()
    proc = runtime(root, "create", "--bundle", bundle(edit=edit), cid)
    assert proc.returncode == 1
    assert b"timed out" in proc.stderr
    assert os.listdir(root) == []


def test_user_namespace_mappings(root, bundle, names, tmp_path):
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    b = bundle(("sh", "-c", "cat /proc/self/uid_map; id -u; touch /tmp/mine && stat -c %u /tmp/mine"), edit=edit)
    # the container's root is host uid 100000: it must reach and own its rootfs
    path = tmp_path
    while str(path).startswith("/tmp/pytest-of-"):
        os.chmod(path, os.stat(path).st_mode | 0o011)
        path = path.parent
    for top, dirs, files in os.walk(os.path.join(b, "rootfs")):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            os.lchown(name, 100000, 100000)
    out = runtime(root, "run", "--bundle", b, names())
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode().split()
    assert text == ["0", "100000", "65536", "0", "0"]
    assert os.stat(os.path.join(b, "rootfs", "tmp", "mine")).st_uid == 100000


def test_join_network_namespace_by_path(root, bundle, names):
    first = names()
    runtime(root, "run", "-d", "--bundle", bundle(("sleep", "100")), first, check=True)
    try:
        pid = state(root, first)["pid"]
        ns = f"/proc/{pid}/ns/net"

        def edit(cfg):
            for entry in cfg["linux"]["namespaces"]:
                if entry["type"] == "network":
                    entry["path"] = ns

        b = bundle(("readlink", "/proc/self/ns/net"), edit=edit)
        out = runtime(root, "run", "--bundle", b, names(), check=True).stdout.decode().strip()
        assert out == os.readlink(ns)
    finally:
        runtime(root, "delete", "--force", first)


def test_console_socket_receives_the_pty(root, bundle, names, tmp_path):
    import array
    import socket

    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    cid = names()
    b = bundle(("sh", "-c", "tty; echo done"), edit=lambda c: c["process"].update(terminal=True))
    try:
        runtime(root, "create", "--bundle", b, "--console-socket", path, cid, check=True)
        conn, _ = server.accept()
        fds = array.array("i")
        _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:4])
        master = fds[0]
        runtime(root, "start", cid, check=True)
        out = b""
        deadline = time.monotonic() + 10
        while b"done" not in out and time.monotonic() < deadline:
            try:
                out += os.read(master, 1024)
            except OSError:
                break
        os.close(master)
        conn.close()
        assert b"/dev/console" in out or b"/dev/pts/" in out
    finally:
        server.close()
        runtime(root, "delete", "--force", cid)


def test_log_json_error(root, names, tmp_path):
    log = tmp_path / "log.json"
    proc = runtime(root, "--log", str(log), "--log-format", "json", "state", "nonexistent")
    assert proc.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"]


@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete", "pause", "resume", "ps", "exec"])
def test_unknown_container(root, verb):
    extra = ["true"] if verb == "exec" else []
    proc = runtime(root, verb, "ghost", *extra)
    assert proc.returncode == 1
    assert proc.stderr.decode().count("\n") == 1
    assert b"ghost" in proc.stderr


@pytest.mark.timeout(60)
def test_run_relays_terminal_without_console_socket(root, bundle, names):
    """`run` in the foreground with terminal:true and no --console-socket relays the pty itself."""
    from helpers import RUNTIME, run_in_pty

    b = bundle(("sh", "-c", "tty; read line; echo got:$line"), edit=lambda c: c["process"].update(terminal=True))
    code, output = run_in_pty(RUNTIME + ["--root", str(root), "run", "--bundle", b, names()], typed=b"typed\n")
    assert code == 0, output
    assert b"/dev/pts/0" in output or b"/dev/console" in output
    assert b"got:typed" in output
