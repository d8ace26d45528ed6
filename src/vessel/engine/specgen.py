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
    """Lines of a small regular file inside the rootfs, or [] when absent (or not a regular file).

    Symlinks are followed as Docker does, but inside the rootfs (RESOLVE_IN_ROOT); the file is
    opened for reading only once it is known to be a regular file (never a FIFO or a device).
    """
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            found = paths.open_in_root(root_fd, path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: a symlink loop
                return []
            raise
        try:
            if not stat.S_ISREG(os.fstat(found).st_mode):
                return []
            fd = os.open(paths.fd_path(found), os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(found)
        try:
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


def _source_propagation(path):
    """The propagation of the host mount holding `path`: (mount point, "shared" | "slave" | "private")."""
    best, kind = "/", "private"
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            point = fields[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                optional = fields[6:fields.index("-")]
                best = point
                kind = ("shared" if any(f.startswith("shared:") for f in optional) else
                        "slave" if any(f.startswith("master:") for f in optional) else "private")
    return best, kind


def _add_mounts(spec, config, rootfs, volume_paths):
    """The container's binds, volumes and --mount tmpfs, parents before children (Docker's order)."""
    propagations = set()
    for mount in sorted(config.mounts, key=lambda m: m.target.count("/")):
        access = "ro" if mount.readonly else "rw"
        if mount.type == "tmpfs":
            options = ["nosuid", "nodev", "noexec", access]
            if mount.tmpfs_size:
                options.append(f"size={mount.tmpfs_size}")
            if mount.tmpfs_mode:
                options.append(f"mode={mount.tmpfs_mode:o}")
            _ensure_target(rootfs, mount.target, True)
            spec["mounts"].append({"destination": mount.target, "type": "tmpfs", "source": "tmpfs",
                                   "options": options})
            continue
        if mount.type == "volume":
            source, propagation = volume_paths[mount.source], "rprivate"
        else:
            source, propagation = mount.source, mount.propagation or "rprivate"
            if not os.path.lexists(source):
                os.makedirs(source, exist_ok=True)  # Docker creates a missing -v source as a directory
            point, kind = _source_propagation(os.path.realpath(source))
            if propagation.endswith("shared") and kind != "shared":
                raise InvalidArgument(f"path {source} is mounted on {point} but it is not a shared mount")
            if propagation.endswith("slave") and kind == "private":
                raise InvalidArgument(f"path {source} is mounted on {point} but it is not a shared or slave mount")
            propagations.add(propagation)
        _ensure_target(rootfs, mount.target, os.path.isdir(source))
        spec["mounts"].append({"destination": mount.target, "type": "bind", "source": source,
                               "options": ["rbind", propagation, access]})
    if propagations & {"shared", "rshared"}:
        spec["linux"]["rootfsPropagation"] = "rshared"
    elif propagations & {"slave", "rslave"}:
        spec["linux"]["rootfsPropagation"] = "rslave"


def build_spec(config: ContainerConfig, container_id, rootfs, private_dir, tty=None, peer_pid=None,
               volume_paths=None):
    """The config.json object for the container (its rootfs already mounted at `rootfs`).

    `peer_pid(kind, name)` gives the init pid of the running container whose namespace `kind` ("pid", "ipc")
    this one joins (--pid/--ipc container:NAME).
    `volume_paths` maps the names of the container's volumes to their host directories.
    """
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
    _add_mounts(spec, config, rootfs, volume_paths or {})
    _host_options(spec, config, container_id, rootfs, private_dir, peer_pid)
    spec["annotations"] = {"org.vessel.container.id": container_id}
    return spec


def all_capabilities():
    """Every capability this process may pass on (its bounding set: root here may lack some)."""
    from vessel.runtime.capabilities import ALL_CAPABILITIES, kernel_last_cap

    with open("/proc/self/status") as handle:
        bounding = next(int(line.split()[1], 16) for line in handle if line.startswith("CapBnd:"))
    return [name for number, name in enumerate(ALL_CAPABILITIES[:kernel_last_cap() + 1]) if bounding >> number & 1]


def _capabilities(process, config):
    if config.privileged:
        caps = all_capabilities()
    else:
        caps = list(defaults.DEFAULT_CAPABILITIES)
        if "ALL" in config.cap_add:
            caps = all_capabilities()
        caps += [c for c in config.cap_add if c != "ALL" and c not in caps]
        if "ALL" in config.cap_drop:
            caps = [c for c in config.cap_add if c != "ALL"]
        caps = [c for c in caps if c not in config.cap_drop or c in config.cap_add]
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}


DOCKER_INIT = "/usr/bin/tini-static"   # Debian's tini, mounted as Docker's /sbin/docker-init
DOCKER_INIT_TARGET = "/sbin/docker-init"


def check_docker_init():
    """--init needs tini installed on the host."""
    if not os.access(DOCKER_INIT, os.X_OK):
        raise InvalidArgument(f"--init: docker-init is not installed on this host ({DOCKER_INIT}: install "
                              "Debian's tini package)")


def swap_accounted():
    """Whether the kernel limits memory+swap (cgroup v1 memsw files, or v2's memory.swap.max)."""
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or \
        os.path.exists("/sys/fs/cgroup/memory.swap.max")


def _host_options(spec, config, container_id, rootfs, private_dir, peer_pid):
    """Resources, devices, namespaces, sysctls, /dev/shm, extra groups and --init of the run options."""
    process, linux = spec["process"], spec["linux"]
    resources = linux["resources"]
    memory = resources.get("memory", {})
    if swap_accounted():
        if config.memory_swap:
            memory["swap"] = config.memory_swap
        elif config.memory:
            memory["swap"] = 2 * config.memory  # Docker's default: as much swap as memory
    if config.memory_reservation:
        memory["reservation"] = config.memory_reservation
    if memory:
        resources["memory"] = memory
    cpu = resources.get("cpu", {})
    for key, value in (("shares", config.cpu_shares), ("period", config.cpu_period), ("quota", config.cpu_quota),
                       ("cpus", config.cpuset_cpus), ("mems", config.cpuset_mems)):
        if value:
            cpu[key] = value
    if cpu:
        resources["cpu"] = cpu
    # Docker's default rules beyond the spec's devices: mknod of any node (opening it stays denied) and /dev/net/tun
    resources["devices"] += [{"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
                             {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"}]
    for device in config.devices:
        _add_device(linux, device)
    for rule in config.device_cgroup_rules:
        kind, numbers, access = rule.split()
        major, minor = numbers.split(":")
        entry = {"allow": True, "type": kind, "access": access}
        if major != "*":
            entry["major"] = int(major)
        if minor != "*":
            entry["minor"] = int(minor)
        resources["devices"].append(entry)
    if config.oom_score_adj:
        process["oomScoreAdj"] = config.oom_score_adj
    if config.sysctls:
        linux["sysctl"] = dict(config.sysctls)
    if config.group_add:
        gids = process["user"].setdefault("additionalGids", [])
        gids += [g for g in resolve_groups(rootfs, config.group_add) if g not in gids]
    _namespace_modes(spec, config, container_id, private_dir, peer_pid)
    if config.seccomp_profile and not config.privileged:
        linux["seccomp"] = oci_seccomp(config.seccomp_profile, process["capabilities"]["bounding"])
    if config.init:
        check_docker_init()
        _ensure_target(rootfs, DOCKER_INIT_TARGET, False)
        spec["mounts"].append({"destination": DOCKER_INIT_TARGET, "type": "bind", "source": DOCKER_INIT,
                               "options": ["rbind", "rprivate", "ro", "nosuid", "nodev"]})
        process["args"] = [DOCKER_INIT_TARGET, "--"] + process["args"]


_GO_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le",
              "s390x": "s390x", "riscv64": "riscv64"}
_SECCOMP_ARCHES = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86",
                   "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
                   "riscv64": "SCMP_ARCH_RISCV64"}


def oci_seccomp(profile, capabilities):
    """A seccomp profile in Docker's format (archMap, includes/excludes by caps, arches, minKernel) as the
    OCI section for this host and these capabilities; an OCI section passes through unchanged."""
    arch = _GO_ARCHES.get(os.uname().machine, os.uname().machine)
    kernel = tuple(int(p) for p in os.uname().release.split("-")[0].split(".")[:2] if p.isdigit())

    def new_enough(rule):
        return kernel >= tuple(int(p) for p in rule["minKernel"].split(".")[:2])

    def included(rule):  # every capability listed, the arch listed, the kernel at least minKernel
        return all(c in capabilities for c in rule.get("caps") or []) and \
            (not rule.get("arches") or arch in rule["arches"]) and (not rule.get("minKernel") or new_enough(rule))

    def excluded(rule):  # any capability listed, the arch listed, or the kernel at least minKernel
        return any(c in capabilities for c in rule.get("caps") or []) or arch in (rule.get("arches") or []) or \
            bool(rule.get("minKernel") and new_enough(rule))

    section = {k: v for k, v in profile.items() if k not in ("archMap", "syscalls")}
    if "architectures" not in section and profile.get("archMap"):
        own = _SECCOMP_ARCHES.get(arch)
        for entry in profile["archMap"]:
            if entry.get("architecture") == own:
                section["architectures"] = [own] + list(entry.get("subArchitectures") or [])
    section["syscalls"] = []
    for rule in profile.get("syscalls") or []:
        if included(rule.get("includes") or {}) and not excluded(rule.get("excludes") or {}):
            section["syscalls"].append({k: v for k, v in rule.items()
                                        if k not in ("includes", "excludes", "comment", "name")})
            if rule.get("name") and not rule.get("names"):
                section["syscalls"][-1]["names"] = [rule["name"]]
    return section


def _add_device(linux, device):
    """The host device node recreated in the container, and allowed in its device cgroup."""
    try:
        info = os.stat(device.host)
    except OSError as exc:
        raise InvalidArgument(f"error gathering device information while adding custom device "
                              f"\"{device.host}\": {(exc.strerror or str(exc)).lower()}") from None
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"error gathering device information while adding custom device "
                              f"\"{device.host}\": not a device node")
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    linux.setdefault("devices", []).append({"path": device.container, "type": kind, "major": major,
                                            "minor": minor, "fileMode": stat.S_IMODE(info.st_mode),
                                            "uid": info.st_uid, "gid": info.st_gid})
    linux["resources"]["devices"].append({"allow": True, "type": kind, "major": major, "minor": minor,
                                          "access": device.permissions})


def _namespace_modes(spec, config, container_id, private_dir, peer_pid):
    """--pid, --ipc and --uts: the host's namespace, another container's, or (ipc) no /dev/shm."""
    linux = spec["linux"]
    modes = {"pid": config.pid_mode, "ipc": config.ipc_mode, "uts": config.uts_mode}
    for kind, mode in modes.items():
        if mode == "host":
            linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != kind]
        elif mode.startswith("container:"):
            pid = peer_pid(kind, mode.partition(":")[2])
            for namespace in linux["namespaces"]:
                if namespace["type"] == kind:
                    namespace["path"] = f"/proc/{pid}/ns/{kind}"
    if config.uts_mode == "host":
        spec.pop("hostname", None)
        spec.pop("domainname", None)
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    if config.ipc_mode == "none":
        spec["mounts"].remove(shm)
    elif config.ipc_mode == "host":
        shm.update(type="bind", source="/dev/shm", options=["rbind", "rprivate", "nosuid", "nodev", "noexec"])
    elif config.ipc_mode.startswith("container:") or config.ipc_mode == "shareable":
        owner = config.ipc_mode.partition(":")[2] or container_id  # (joined, its id; the engine checked it runs)
        shm.update(type="bind", source=os.path.join(os.path.dirname(private_dir), owner, "shm"),
                   options=["rbind", "rprivate", "nosuid", "nodev", "noexec"])
    else:
        shm["options"] = [o for o in shm["options"] if not o.startswith("size=")] + [f"size={config.shm_size}"]


def resolve_groups(rootfs, groups):
    """--group-add names or ids -> gids, names from the container's /etc/group."""
    entries = list(_entries(_read_in_root(rootfs, "/etc/group"), 4))
    gids = []
    for group in groups:
        match = [g for g in entries if g[0] == group]
        if match and match[0][2].isdigit():
            gids.append(int(match[0][2]))
        elif group.isdigit() and int(group) <= 0xFFFFFFFE:
            gids.append(int(group))
        else:
            raise NotFound(f"Unable to find group {group}: no matching entries in group file")
    return gids
