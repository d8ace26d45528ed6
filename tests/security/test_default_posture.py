"""The posture of a container made from `vessel-runtime spec`'s default config.

gVisor's sandbox-posture idea with amicontained's syscall probing: one
container reports its credentials, capability sets, no_new_privs and seccomp
mode, namespaces, mount flags, open fds, masked and read-only paths, and
what a list of dangerous syscalls returns; each is compared with Docker's
defaults (shared/research/security.md section 1).
"""

import json
import os

import pytest

from helpers import runtime
from sectools import install_probe
from vessel.runtime import defaults
from vessel.runtime.capabilities import ALL_CAPABILITIES

EPERM, ENOSYS = 1, 38
NAMESPACES = ("pid", "net", "ipc", "uts", "mnt", "cgroup")

REPORT = """
grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
for ns in pid net ipc uts mnt cgroup user; do echo "ns $ns $(readlink /proc/self/ns/$ns)"; done
echo "id $(id -u):$(id -g)"
/probe fds | sed 's/^/fd /'
/probe syscalls | sed 's/^/syscall /'
echo "keys $(stat -c '%F %t:%T' /proc/keys)"
echo "acpi $(ls -A /proc/acpi 2>/dev/null | wc -l) $(touch /proc/acpi/x 2>/dev/null && echo rw || echo ro)"
echo "firmware $(ls -A /sys/firmware | wc -l)"
echo "procsys $(echo 1 > /proc/sys/kernel/shm_rmid_forced 2>/dev/null && echo rw || echo ro)"
echo "sysrq $(echo h > /proc/sysrq-trigger 2>/dev/null && echo rw || echo ro)"
echo "mknod $(mknod /tmp/sda b 8 0 2>/dev/null; head -c1 /tmp/sda >/dev/null 2>&1 && echo readable || echo denied)"
cat /proc/self/mountinfo | sed 's/^/mount /'
"""


@pytest.fixture(scope="module")
def posture(tmp_path_factory, probe):
    """{kind: [fields...]} as reported from inside a default container."""
    from helpers import make_busybox_rootfs

    base = tmp_path_factory.mktemp("posture")
    b = str(base / "bundle")
    os.makedirs(b)
    runtime(base / "state", "spec", "--bundle", b, check=True)
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    assert "seccomp" in cfg["linux"], "vessel-runtime spec must include Docker's seccomp profile"
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", REPORT]
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    make_busybox_rootfs(os.path.join(b, "rootfs"))
    install_probe(b, probe)
    proc = runtime(base / "state", "run", "--bundle", b, "posture")
    assert proc.returncode == 0, proc.stderr
    report = {}
    for line in proc.stdout.decode().splitlines():
        key, _, rest = line.partition(" ") if not line.startswith(("Cap", "NoNew", "Seccomp")) else \
            line.partition(":")
        report.setdefault(key.strip(), []).append(rest.strip())
    return report


def _mask(names):
    return sum(1 << ALL_CAPABILITIES.index(name) for name in names)


def test_capabilities_are_dockers(posture):
    docker = _mask(defaults.DEFAULT_CAPABILITIES)
    assert int(posture["CapInh"][0], 16) == 0
    assert int(posture["CapAmb"][0], 16) == 0
    for field in ("CapPrm", "CapEff", "CapBnd"):
        assert int(posture[field][0], 16) == docker, (field, posture[field][0])


def test_seccomp_filter_and_no_new_privs(posture):
    assert posture["Seccomp"] == ["2"]
    assert posture["Seccomp_filters"] == ["1"]
    assert posture["NoNewPrivs"] == ["0"]  # Docker's default; opt in with noNewPrivileges


def test_namespaces_are_the_containers_own(posture):
    inside = dict(entry.split(" ", 1) for entry in posture["ns"])
    for ns in NAMESPACES:
        assert inside[ns] != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert inside["user"] == os.readlink("/proc/self/ns/user")  # Docker's default: no user namespace
    assert posture["id"] == ["0:0"]


def _mounts(posture):
    """mount point -> (per-mount options, fs type, super options)."""
    mounts = {}
    for entry in posture["mount"]:
        fields = entry.split()
        sep = fields.index("-")
        mounts[fields[4]] = (set(fields[5].split(",")), fields[sep + 1], set(fields[sep + 3].split(",")))
    return mounts


def test_mount_flags(posture):
    mounts = _mounts(posture)
    assert {"nosuid", "nodev", "noexec"} <= mounts["/proc"][0] and mounts["/proc"][1] == "proc"
    assert "ro" in mounts["/sys"][0] and {"nosuid", "nodev", "noexec"} <= mounts["/sys"][0]
    assert "nosuid" in mounts["/dev"][0]
    assert {"nosuid", "noexec"} <= mounts["/dev/pts"][0]
    assert {"nosuid", "nodev", "noexec"} <= mounts["/dev/shm"][0]
    cgroup = [point for point in mounts if point.startswith("/sys/fs/cgroup")]
    assert cgroup and all("ro" in mounts[point][0] for point in cgroup), cgroup
    assert "ro" in mounts["/proc/sys"][0]
    if os.path.exists("/proc/sysrq-trigger"):  # absent on kernels without magic sysrq
        assert "ro" in mounts["/proc/sysrq-trigger"][0]


def test_only_stdio_is_open(posture):
    assert [entry.split()[0] for entry in posture["fd"]] == ["0", "1", "2"]


def test_masked_and_read_only_paths(posture):
    assert posture["keys"] == ["character special file 1:3"]
    if posture["acpi"] != ["0 ro"]:
        pytest.fail(f"/proc/acpi is not an empty read-only tmpfs: {posture['acpi']}")
    assert posture["firmware"] == ["0"]
    assert posture["procsys"] == ["ro"]
    assert posture["sysrq"] == ["ro"]


def test_device_cgroup_denies_other_devices(posture):
    assert posture["mknod"] == ["denied"]


BLOCKED = ("keyctl", "add_key", "request_key", "unshare_newns", "unshare_newuser", "unshare_newcgroup",
           "unshare_newnet", "clone_newns", "clone_newuser", "setns", "mount", "umount2", "pivot_root",
           "kexec_load", "kexec_file_load", "bpf", "open_by_handle_at", "init_module", "finit_module",
           "delete_module", "swapon", "swapoff", "userfaultfd", "perf_event_open", "fsopen", "open_tree",
           "io_uring_setup", "clock_settime", "reboot", "syslog", "quotactl", "sethostname", "socket_alg")


def test_dangerous_syscalls_get_eperm(posture):
    results = dict(entry.split() for entry in posture["syscall"])
    wrong = {name: results.get(name) for name in BLOCKED if results.get(name) != str(EPERM)}
    assert not wrong, f"expected EPERM: {wrong}"
    assert results["clone3"] == str(ENOSYS)  # so that libc falls back to the filterable clone
