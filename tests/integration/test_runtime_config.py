"""config.json features beyond the basics: time namespace, personality, sysctl, devices,
hooks inside the container, overlay mounts, oomScoreAdj, --no-pivot, --preserve-fds."""

import os
import subprocess

from helpers import runtime


def run_out(root, bundle_dir, cid, *extra):
    proc = runtime(root, "run", *extra, "--bundle", bundle_dir, cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


def test_time_namespace_offsets(root, bundle, names):
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365}, "monotonic": {"secs": 1000}}

    out = run_out(root, bundle(("cat", "/proc/uptime"), edit=edit), names())
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert float(out.split()[0]) - host > 86400 * 364


def test_personality_linux32(root, bundle, names):
    out = run_out(root, bundle(("uname", "-m"), edit=lambda c: c["linux"].update(personality={"domain": "LINUX32"})),
                  names())
    assert out.strip() in ("i686", "i386")


def test_sysctl_and_domainname(root, bundle, names):
    def edit(cfg):
        cfg["linux"]["sysctl"] = {"kernel.shmmax": "123456789", "net.ipv4.ip_forward": "1"}
        cfg["domainname"] = "example.test"

    out = run_out(root, bundle(("sh", "-c", "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward; "
                                            "cat /proc/sys/kernel/domainname"), edit=edit), names())
    assert out.split() == ["123456789", "1", "example.test"]


def test_configured_devices(root, bundle, names):
    def edit(cfg):
        cfg["linux"]["devices"] = [{"path": "/dev/loop-vessel", "type": "b", "major": 7, "minor": 0,
                                    "fileMode": 0o640, "uid": 0, "gid": 6},
                                   {"path": "/dev/fifo", "type": "p"}]

    out = run_out(root, bundle(("sh", "-c", "stat -c '%F %t:%T %a %g' /dev/loop-vessel; stat -c %F /dev/fifo"),
                               edit=edit), names())
    lines = out.splitlines()
    assert lines[0] == "block special file 7:0 640 6"
    assert lines[1] == "fifo"


def test_hooks_inside_the_container(root, bundle, names, tmp_path):
    marker = tmp_path / "marks"
    marker.mkdir()

    def edit(cfg):
        cfg["mounts"].append({"destination": "/marks", "type": "bind", "source": str(marker), "options": ["rbind"]})
        cfg["hooks"] = {
            # createContainer runs in the container's namespaces before pivot_root: host paths resolve
            "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"hostname > {marker}/create"]}],
            # startContainer runs in the container after pivot_root: container paths resolve
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "hostname > /marks/start"]}],
        }
        cfg["hostname"] = "hooked"

    run_out(root, bundle(("true",), edit=edit), names())
    assert (marker / "create").read_text().strip() == "hooked"
    assert (marker / "start").read_text().strip() == "hooked"


def test_overlay_mount(root, bundle, names, tmp_path):
    lower, upper, work = (tmp_path / n for n in ("lower", "upper", "work"))
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "from-lower").write_text("lower\n")

    def edit(cfg):
        cfg["mounts"].append({"destination": "/ov", "type": "overlay", "source": "overlay",
                              "options": [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]})

    out = run_out(root, bundle(("sh", "-c", "cat /ov/from-lower; echo new > /ov/written"), edit=edit), names())
    assert out == "lower\n"
    assert (upper / "written").read_text() == "new\n"


def test_oom_score_adj(root, bundle, names):
    out = run_out(root, bundle(("cat", "/proc/self/oom_score_adj"),
                               edit=lambda c: c["process"].update(oomScoreAdj=500)), names())
    assert out.strip() == "500"


def test_no_pivot(root, bundle, names):
    out = run_out(root, bundle(("sh", "-c", "ls / | wc -l")), names(), "--no-pivot")
    assert int(out) > 5


def test_preserve_fds(root, bundle, names, tmp_path):
    data = tmp_path / "data"
    data.write_text("passed through\n")
    b = bundle(("sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"))
    cid = names()
    import shlex

    from helpers import RUNTIME

    cmd = [*RUNTIME, "--root", str(root), "run", "--preserve-fds", "1", "--bundle", b, cid]
    # the shell opens the file as fd 3 of the runtime, as a caller passing fds does
    proc = subprocess.run(["sh", "-c", f"exec {shlex.join(cmd)} 3<{shlex.quote(str(data))}"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "passed through"
    assert lines[1].split()[:4] == ["0", "1", "2", "3"]


def test_only_stdio_reaches_the_program(root, bundle, names):
    out = run_out(root, bundle(("sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '")), names())
    assert out.split() == ["0", "1", "2", "3"]  # 3 is ls's own directory fd


def test_rlimits(root, bundle, names):
    def edit(cfg):
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
                                     {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]

    out = run_out(root, bundle(("sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"), edit=edit), names())
    assert out.split() == ["512", "1000", "0"]


def test_rlimit_above_hard_limit_fails_create(root, bundle, names):
    b = bundle(edit=lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1 << 40, "hard": 1 << 40}]))
    proc = runtime(root, "create", "--bundle", b, names())
    assert proc.returncode == 1
    assert b"RLIMIT_NOFILE" in proc.stderr
    assert os.listdir(root) == []


def test_session_keyring(root, bundle, names):
    """Each container gets a session keyring named after it, unless --no-new-keyring."""
    b = bundle(("sleep", "100"))
    with_ring, without = names(), names()
    runtime(root, "run", "-d", "--bundle", b, with_ring, check=True)
    runtime(root, "run", "-d", "--no-new-keyring", "--bundle", b, without, check=True)
    try:
        with open("/proc/keys") as f:
            keys = f.read()
        assert with_ring in keys
        assert without not in keys
    finally:
        runtime(root, "delete", "--force", with_ring)
        runtime(root, "delete", "--force", without)


def test_recursive_mount_options(root, bundle, names, tmp_path):
    """rro and friends (runtime-spec 1.1) reach the mounts below a bind too."""
    outer = tmp_path / "outer"
    (outer / "inner").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "inner-" + names("t"), str(outer / "inner")],
                   check=True)
    try:
        def edit(cfg):
            cfg["mounts"].append({"destination": "/m", "type": "bind", "source": str(outer),
                                  "options": ["rbind", "rro", "rnosuid", "rnoatime"]})

        out = run_out(root, bundle(("sh", "-c", "touch /m/inner/x 2>/dev/null || echo denied; "
                                                "awk '$5 == \"/m/inner\" {print $6}' /proc/self/mountinfo"),
                                   edit=edit), names())
        lines = out.split()
        assert lines[0] == "denied"
        assert {"ro", "nosuid", "noatime"} <= set(lines[1].split(","))
    finally:
        subprocess.run(["umount", str(outer / "inner")], check=True)


def test_idmap_is_a_clear_error(root, bundle, names):
    b = bundle(edit=lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/tmp",
                                                   "options": ["rbind", "idmap"]}))
    proc = runtime(root, "create", "--bundle", b, names())
    assert proc.returncode == 1 and b"idmap" in proc.stderr and b"not supported" in proc.stderr


def test_tmpcopyup(root, bundle, names):
    """A tmpfs with tmpcopyup starts with what the image has at that path."""
    def edit(cfg):
        cfg["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                              "options": ["tmpcopyup", "size=1m"]})

    out = run_out(root, bundle(("sh", "-c", "grep -c root /etc/passwd; stat -c %F /etc/group; "
                                            "echo x > /etc/new && grep ' /etc ' /proc/self/mountinfo | "
                                            "grep -c tmpfs"), edit=edit), names())
    assert out.split() == ["1", "regular", "file", "1"]
