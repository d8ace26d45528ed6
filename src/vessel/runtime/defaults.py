"""Docker's default container configuration, as an OCI config.json object.

Used by `vessel-runtime spec` and by the engine when it builds a config. The
lists follow what moby and containerd ship (see shared/research/security.md).
"""

__all__ = ["DEFAULT_CAPABILITIES", "MASKED_PATHS", "READONLY_PATHS", "default_spec"]

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm")


def default_mounts():
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def default_seccomp():
    """Docker's default seccomp profile, or None where the data file is absent."""
    import os

    from vessel.runtime import jsonio

    path = os.path.join(os.path.dirname(__file__), "data", "seccomp_default.json")
    try:
        with open(path, "rb") as f:
            return jsonio.loads(f.read())
    except FileNotFoundError:
        return None


def default_spec(rootless=False, terminal=True, args=("sh",)):
    caps = list(DEFAULT_CAPABILITIES)
    spec = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": list(DEFAULT_ENV),
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "vessel",
        "mounts": default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    seccomp = default_seccomp()
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    if rootless:
        linux = spec["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        linux.pop("resources")
        spec["mounts"] = [m for m in spec["mounts"] if m["type"] not in ("cgroup",)]
        for mount in spec["mounts"]:
            if mount["type"] == "sysfs":
                mount.update(type="none", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
            if mount["type"] == "devpts":
                mount["options"] = [o for o in mount["options"] if o != "gid=5"]
    return spec
