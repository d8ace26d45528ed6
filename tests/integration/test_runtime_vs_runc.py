"""The same bundle gives the same observable result under vessel-runtime and runc."""

import shutil

import pytest

from helpers import runtime

RUNC = shutil.which("runc")
pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed")

PROBE = ("sh", "-c",
         "hostname; id; pwd; echo $$; "
         "awk '{for (i = 7; i <= NF; i++) if ($i == \"-\") print $5, $(i + 1), $6}' /proc/self/mountinfo | sort; "
         "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null; "
         "ls /dev | sort; exit 3")


# Where vessel is stricter than runc on purpose: the tmpfs that holds the cgroup
# hierarchies is read-only too (runc leaves it writable; see CVE-2023-25809).
STRICTER = {"/sys/fs/cgroup tmpfs nodev,noexec,nosuid,relatime,ro":
            "/sys/fs/cgroup tmpfs nodev,noexec,nosuid,relatime,rw"}


def normalise(text):
    """Sort each mount's flags; map vessel's deliberate differences onto runc's."""
    lines = []
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 3:
            parts[2] = ",".join(sorted(parts[2].split(",")))
        line = " ".join(parts)
        lines.append(STRICTER.get(line, line))
    return lines


def test_same_result_as_runc(tmp_path, bundle, names):
    def edit(cfg):
        cfg["hostname"] = "compare"
        cfg["process"]["cwd"] = "/tmp"
        cfg["linux"]["resources"].update({"memory": {"limit": 48 * 1024 * 1024}, "pids": {"limit": 30}})
        cfg["linux"]["cgroupsPath"] = ""  # below the caller's own cgroup

    b = bundle(PROBE, edit=edit)
    ours = runtime(tmp_path / "vessel-root", "run", "--bundle", b, names())
    theirs = runtime(tmp_path / "runc-root", "run", "--bundle", b, names(), runtime_cmd=[RUNC])
    assert theirs.returncode == 3, theirs.stderr
    assert ours.returncode == theirs.returncode
    assert ours.stderr == theirs.stderr == b""
    ours_lines, theirs_lines = normalise(ours.stdout.decode()), normalise(theirs.stdout.decode())
    assert ours_lines[:3] == theirs_lines[:3] == ["compare", "uid=0(root) gid=0(root)", "/tmp"]
    assert ours_lines == theirs_lines
