"""What this host mounts and where the calling process sits, read from /proc.

Hand-parsed (no `re`): /proc/self/mountinfo and /proc/self/cgroup have fixed,
space- and colon-separated layouts.
"""

from vessel.errors import InvalidArgument, Unavailable

__all__ = ["CgroupMount", "cgroup_mounts", "container_path", "own_cgroups"]

# Super options of a v1 cgroup mount that are not controller names.
_GENERIC_OPTIONS = ("rw", "ro", "none", "noprefix", "clone_children", "xattr", "cpuset_v2_mode",
                    "favordynmods", "nsdelegate", "memory_recursiveprot", "memory_localevents")


class CgroupMount:
    """One mounted hierarchy: controllers () for cgroup2, ("name=systemd",) for named ones."""

    __slots__ = ("mountpoint", "root", "version", "controllers")

    def __init__(self, mountpoint, root, version, controllers):
        self.mountpoint = mountpoint
        self.root = root
        self.version = version
        self.controllers = controllers

    def directory(self, cgroup_path):
        """The host directory of `cgroup_path` (relative to the hierarchy's root)."""
        if self.root != "/" and (cgroup_path == self.root or cgroup_path.startswith(self.root + "/")):
            cgroup_path = cgroup_path[len(self.root):]
        return self.mountpoint + cgroup_path.rstrip("/") if cgroup_path != "/" else self.mountpoint


def _unescape(field):
    """mountinfo writes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def cgroup_mounts(mountinfo=None):
    """Every cgroup and cgroup2 mount, first mount of each hierarchy only."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    mounts, seen = [], set()
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue
        fstype = fields[dash + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        options = fields[dash + 3].split(",") if len(fields) > dash + 3 else []
        controllers = () if fstype == "cgroup2" else tuple(
            o for o in options if o not in _GENERIC_OPTIONS and not o.startswith("release_agent="))
        key = (fstype, controllers)
        if key in seen:
            continue
        seen.add(key)
        mounts.append(CgroupMount(_unescape(fields[4]), _unescape(fields[3]),
                                  2 if fstype == "cgroup2" else 1, controllers))
    return mounts


def own_cgroups(text=None):
    """{controller: cgroup path} of the calling process; "" is the cgroup2 (unified) entry."""
    if text is None:
        with open("/proc/self/cgroup") as f:
            text = f.read()
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths[""] = parts[2]
            continue
        for controller in parts[1].split(","):
            paths[controller] = parts[2]
    if not paths:
        raise Unavailable("cannot tell which cgroup this process is in: /proc/self/cgroup is empty")
    return paths


def container_path(cgroups_path, container_id, own_path):
    """The container's cgroup path in one hierarchy, given the caller's own path there.

    Absolute paths are taken as they are; relative and empty ones go below the
    caller's own cgroup (empty: "vessel-<id>").
    """
    path = cgroups_path or f"vessel-{container_id}"
    if not isinstance(path, str):
        raise InvalidArgument("linux.cgroupsPath: expected a string")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"linux.cgroupsPath: {path!r} must not contain \"..\"")
    if "\0" in path:
        raise InvalidArgument("linux.cgroupsPath: must not contain NUL")
    if not parts:
        raise InvalidArgument(f"linux.cgroupsPath: {path!r} names the root cgroup")
    if path.startswith("/"):
        return "/" + "/".join(parts)
    return own_path.rstrip("/") + "/" + "/".join(parts)
