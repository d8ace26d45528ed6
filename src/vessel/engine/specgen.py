"""The OCI config.json of a container: Docker's defaults, then the image, then the run options.

The user is resolved from the container's own /etc/passwd and /etc/group,
read through openat2(RESOLVE_IN_ROOT) with a size bound (never NSS, never a
symlink out of the rootfs), as Docker does.
"""

import os
import stat

from vessel.engine.model import ContainerConfig
from vessel.errors import InvalidArgument, NotFound
from vessel.runtime import defaults, paths

__all__ = ["build_spec", "resolve_user", "own_cgroup", "cgroups_path", "remove_default_cgroup_parent",
           "write_etc_files"]

_MAX_DB_FILE = 1 << 20
_RLIMITS = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
            "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
            "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
            "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
            "stack": "RLIMIT_STACK", "as": "RLIMIT_AS"}
CPU_PERIOD = 100000


class User:
    __slots__ = ("uid", "gid", "additional_gids", "home")

    def __init__(self, uid, gid, additional_gids, home):
        self.uid, self.gid, self.additional_gids, self.home = uid, gid, additional_gids, home


def _read_in_root(rootfs, path):
    """Lines of a small file inside the rootfs, or [] when absent."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = paths.open_in_root(root_fd, path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: the last component is a symlink
                return []
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return []
            data = os.read(fd, _MAX_DB_FILE + 1)
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    if len(data) > _MAX_DB_FILE:
        raise InvalidArgument(f"{path} in the container is larger than {_MAX_DB_FILE} bytes")
    return data.decode("utf-8", "replace").splitlines()


def _entries(lines, fields):
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            yield parts


def resolve_user(rootfs, spec):
    """Docker's user spec ("", name, uid, name:group, uid:gid) -> User, from the rootfs's files."""
    spec = spec or "0"
    user_part, _, group_part = spec.partition(":")
    passwd = list(_entries(_read_in_root(rootfs, "/etc/passwd"), 7))
    entry = None
    for parts in passwd:
        if parts[0] == user_part or (user_part.isdigit() and parts[2] == user_part):
            entry = parts
            break
    if entry is not None:
        uid, gid, home, name = int(entry[2]), int(entry[3]), entry[5], entry[0]
    elif user_part.isdigit():
        uid, gid, home, name = int(user_part), 0, "/", None
    else:
        raise NotFound(f"unable to find user {user_part}: no matching entries in passwd file")
    groups = list(_entries(_read_in_root(rootfs, "/etc/group"), 4))
    if group_part:
        match = [g for g in groups if g[0] == group_part or (group_part.isdigit() and g[2] == group_part)]
        if match:
            gid = int(match[0][2])
        elif group_part.isdigit():
            gid = int(group_part)
        else:
            raise NotFound(f"unable to find group {group_part}: no matching entries in group file")
    additional = []
    if name is not None:
        for g in groups:
            if name in g[3].split(",") and g[2].isdigit() and int(g[2]) != gid:
                additional.append(int(g[2]))
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise InvalidArgument(f"user {spec}: id out of range")
    return User(uid, gid, additional, home or "/")


def own_cgroup():
    """This process's cgroup (the deepest path among the v1 hierarchies, or the v2 one)."""
    with open("/proc/self/cgroup") as handle:
        found = [line.rstrip("\n").split(":", 2)[2] for line in handle if line.count(":") >= 2]
    return max(found, key=len) if found else "/"


def cgroups_path(config, container_id):
    """<parent>/<id>; the parent defaults to <own cgroup>/vessel, a relative one is below our own."""
    parent = config.cgroup_parent or "vessel"
    if not parent.startswith("/"):
        parent = f"{own_cgroup().rstrip('/')}/{parent}"
    return f"{parent.rstrip('/')}/{container_id}"


def remove_default_cgroup_parent(config):
    """rmdir <own cgroup>/vessel in every hierarchy once no container is left in it."""
    if config.cgroup_parent:
        return
    parent = f"{own_cgroup().strip('/')}/vessel".lstrip("/")
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        try:
            os.rmdir(os.path.join("/sys/fs/cgroup", hierarchy, parent))
        except OSError:
            pass  # not empty (another container), not there, or not a hierarchy


def write_etc_files(directory, config, container_id):
    """hostname, hosts and resolv.conf of the container, in its private dir."""
    hostname = config.hostname or container_id[:12]
    hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
    for item in config.extra_hosts:
        name, _, address = item.partition(":")
        hosts.append(f"{address}\t{name}")
    if config.dns:
        resolv = [f"nameserver {server}" for server in config.dns]
    else:
        try:
            with open("/etc/resolv.conf") as handle:
                resolv = [line.rstrip("\n") for line in handle
                          if not (line.startswith("nameserver") and line.split()[1:2] and
                                  (line.split()[1].startswith("127.") or line.split()[1] == "::1"))]
        except (OSError, IndexError):
            resolv = []
    for name, lines in (("hostname", [hostname]), ("hosts", hosts), ("resolv.conf", resolv)):
        tmp = os.path.join(directory, f".{name}.tmp")
        with open(tmp, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, os.path.join(directory, name))


def _ensure_target(rootfs, target, directory):
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(paths.ensure_in_root(root_fd, target, directory=directory))
    finally:
        os.close(root_fd)


def build_spec(config: ContainerConfig, container_id, rootfs, private_dir, tty=None):
    """The config.json object for the container (its rootfs already mounted at `rootfs`)."""
    args = config.args
    if not args:
        raise InvalidArgument("no command specified")
    tty = config.tty if tty is None else tty
    spec = defaults.default_spec(terminal=tty, args=args)
    process = spec["process"]
    user = resolve_user(rootfs, config.user)
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = user.additional_gids
    hostname = config.hostname or container_id[:12]
    env = list(config.env)
    keys = {item.partition("=")[0] for item in env}
    if "PATH" not in keys:
        env.insert(0, defaults.DEFAULT_ENV[0])
    env.insert(1 if "PATH" not in keys else 0, f"HOSTNAME={hostname}")
    if tty and "TERM" not in keys:
        env.append("TERM=xterm")
    if "HOME" not in keys:
        env.append(f"HOME={user.home}")
    process["env"] = env
    process["cwd"] = config.working_dir or "/"
    process["noNewPrivileges"] = config.no_new_privileges
    for ulimit in config.ulimits:
        kind = _RLIMITS[ulimit.name]
        process["rlimits"] = [r for r in process["rlimits"] if r["type"] != kind]
        process["rlimits"].append({"type": kind, "soft": ulimit.soft, "hard": ulimit.hard})
    spec["hostname"] = hostname
    if config.domainname:
        spec["domainname"] = config.domainname
    spec["root"] = {"path": rootfs, "readonly": config.read_only}
    linux = spec["linux"]
    _capabilities(process, config)
    if config.privileged:
        linux.pop("seccomp", None)
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        for mount in spec["mounts"]:
            if mount["type"] in ("sysfs", "cgroup"):
                mount["options"] = [o for o in mount["options"] if o != "ro"]
    if config.seccomp_unconfined:
        linux.pop("seccomp", None)
    if config.network_mode == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    resources = linux["resources"]
    if config.memory:
        resources["memory"] = {"limit": config.memory}
    if config.nano_cpus:
        resources["cpu"] = {"quota": config.nano_cpus * CPU_PERIOD // 1_000_000_000, "period": CPU_PERIOD}
    if config.pids_limit:
        resources["pids"] = {"limit": config.pids_limit}
    linux["cgroupsPath"] = cgroups_path(config, container_id)
    mounts = spec["mounts"]
    if config.working_dir:
        _ensure_target(rootfs, config.working_dir, True)
    for name in ("hostname", "hosts", "resolv.conf"):
        source = os.path.join(private_dir, name)
        _ensure_target(rootfs, f"/etc/{name}", False)
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": source,
                       "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"] +
                                  (["ro"] if config.read_only else [])})
    for target, options in config.tmpfs.items():
        _ensure_target(rootfs, target, True)
        opts = ["nosuid", "nodev", "noexec"] + [o for o in options.split(",") if o]
        mounts.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts})
    for bind in config.binds:
        try:
            is_dir = os.path.isdir(bind.source)
            os.lstat(bind.source)
        except FileNotFoundError:
            os.makedirs(bind.source, exist_ok=True)  # Docker creates a missing -v source as a directory
            is_dir = True
        _ensure_target(rootfs, bind.target, is_dir)
        mounts.append({"destination": bind.target, "type": "bind", "source": bind.source,
                       "options": ["rbind", "rprivate", "ro" if bind.readonly else "rw"]})
    spec["annotations"] = {"org.vessel.container.id": container_id}
    return spec


def _all_capabilities():
    """Every capability this process may pass on (its bounding set: root here may lack some)."""
    from vessel.runtime.capabilities import ALL_CAPABILITIES, kernel_last_cap

    with open("/proc/self/status") as handle:
        bounding = next(int(line.split()[1], 16) for line in handle if line.startswith("CapBnd:"))
    return [name for number, name in enumerate(ALL_CAPABILITIES[:kernel_last_cap() + 1]) if bounding >> number & 1]


def _capabilities(process, config):
    if config.privileged:
        caps = _all_capabilities()
    else:
        caps = list(defaults.DEFAULT_CAPABILITIES)
        if "ALL" in config.cap_add:
            caps = _all_capabilities()
        caps += [c for c in config.cap_add if c != "ALL" and c not in caps]
        if "ALL" in config.cap_drop:
            caps = [c for c in config.cap_add if c != "ALL"]
        caps = [c for c in caps if c not in config.cap_drop or c in config.cap_add]
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
