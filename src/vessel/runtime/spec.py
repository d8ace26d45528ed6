"""The OCI runtime spec (config.json, versions 1.0 to 1.2) as typed records.

`load(bundle)` reads config.json once, converts it into the records below and
validates it; nothing past this module reads the raw JSON. Sections owned by
other modules (cgroup resources, seccomp, capabilities) are handed to their
own parsers here, so they too are checked before anything is created.

Plain slotted classes are used instead of dataclasses: `dataclasses` imports
`inspect` and `re`, about 20 ms, which is most of the runtime's start budget.
"""

import os

from vessel.errors import InvalidArgument, NotFound, Unsupported
from vessel.runtime import jsonio

__all__ = [
    "Device", "Hook", "Hooks", "IDMapping", "Linux", "Mount", "Namespace", "Process",
    "Rlimit", "Root", "Spec", "User", "load", "parse",
]

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


class Record:
    """A slotted record: keyword construction, defaults, equality and repr."""

    __slots__ = ()
    _defaults = {}

    def __init__(self, **fields):
        for name in self.__slots__:
            if name in fields:
                value = fields.pop(name)
            else:
                value = self._defaults.get(name)
                if isinstance(value, (list, dict)):
                    value = type(value)(value)
            setattr(self, name, value)
        if fields:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(fields))}")

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"


class Root(Record):
    __slots__ = ("path", "readonly")
    _defaults = {"readonly": False}


class Mount(Record):
    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")
    _defaults = {"options": [], "uid_mappings": [], "gid_mappings": []}


class User(Record):
    __slots__ = ("uid", "gid", "umask", "additional_gids", "username")
    _defaults = {"uid": 0, "gid": 0, "additional_gids": []}


class Rlimit(Record):
    __slots__ = ("type", "resource", "soft", "hard")


class Process(Record):
    __slots__ = (
        "terminal", "console_size", "user", "args", "command_line", "env", "cwd",
        "capabilities", "rlimits", "no_new_privileges", "apparmor_profile",
        "oom_score_adj", "selinux_label", "scheduler", "io_priority", "exec_cpu_affinity",
    )
    _defaults = {"terminal": False, "args": [], "env": [], "rlimits": [], "no_new_privileges": False}


class Hook(Record):
    __slots__ = ("path", "args", "env", "timeout")
    _defaults = {"args": [], "env": []}


class Hooks(Record):
    __slots__ = tuple(HOOK_KINDS)
    _defaults = {kind: [] for kind in HOOK_KINDS}


class Namespace(Record):
    __slots__ = ("type", "path")


class IDMapping(Record):
    __slots__ = ("container_id", "host_id", "size")


class Device(Record):
    __slots__ = ("type", "path", "major", "minor", "file_mode", "uid", "gid")


class Linux(Record):
    __slots__ = (
        "namespaces", "uid_mappings", "gid_mappings", "time_offsets", "devices",
        "cgroups_path", "resources", "rootfs_propagation", "seccomp", "sysctl",
        "masked_paths", "readonly_paths", "mount_label", "personality", "intel_rdt",
    )
    _defaults = {
        "namespaces": [], "uid_mappings": [], "gid_mappings": [], "time_offsets": {},
        "devices": [], "sysctl": {}, "masked_paths": [], "readonly_paths": [],
    }

    def namespace(self, kind):
        """The namespace entry of this type, or None when the host's is shared."""
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


class Spec(Record):
    __slots__ = (
        "oci_version", "root", "mounts", "process", "hostname", "domainname", "hooks",
        "annotations", "linux", "bundle", "raw",
    )
    _defaults = {"mounts": [], "annotations": {}}


# -- reading ----------------------------------------------------------------

def load(bundle):
    """Read and validate `<bundle>/config.json`."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFound(f"bundle {bundle}: config.json not found") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = jsonio.loads(text)
    except jsonio.JSONError as exc:
        raise InvalidArgument(f"config.json: {exc}") from None
    return parse(raw, bundle)


def parse(raw, bundle, check_rootfs=True):
    """Convert the config.json object into a validated `Spec`."""
    r = _Reader(raw, "config.json")
    version = r.string("ociVersion", required=True)
    if not version.startswith("1."):
        raise Unsupported(f"config.json: unsupported ociVersion {version!r} (1.0 to 1.2 are)")
    spec = Spec(
        oci_version=version,
        root=_root(r.object("root", required=True), bundle),
        mounts=[_mount(m) for m in r.list_of("mounts", _Reader.object_item)],
        process=_process(r.object("process")),
        hostname=r.string("hostname"),
        domainname=r.string("domainname"),
        hooks=_hooks(r.object("hooks")),
        annotations=r.string_map("annotations"),
        linux=_linux(r.object("linux")),
        bundle=bundle,
        raw=raw,
    )
    _validate(spec, check_rootfs)
    return spec


class _Reader:
    """Typed access to one JSON object, with the path used in error messages."""

    __slots__ = ("obj", "where")

    def __init__(self, obj, where):
        if not isinstance(obj, dict):
            raise InvalidArgument(f"{where}: expected an object, got {_kind(obj)}")
        self.obj = obj
        self.where = where

    def _get(self, key, types, type_name, required):
        value = self.obj.get(key)
        if value is None:
            if required:
                raise InvalidArgument(f"{self.where}: {key} is required")
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise InvalidArgument(f"{self.where}.{key}: expected {type_name}, got {_kind(value)}")
        return value

    def string(self, key, required=False):
        return self._get(key, (str,), "a string", required)

    def boolean(self, key):
        return bool(self._get(key, (bool,), "a boolean", False))

    def integer(self, key, required=False, low=None, high=None):
        value = self._get(key, (int,), "an integer", required)
        if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
            raise InvalidArgument(f"{self.where}.{key}: {value} is out of range")
        return value

    def object(self, key, required=False):
        value = self._get(key, (dict,), "an object", required)
        return None if value is None else _Reader(value, f"{self.where}.{key}")

    def raw_object(self, key):
        return self._get(key, (dict,), "an object", False)

    def list_of(self, key, item):
        items = self._get(key, (list,), "a list", False) or []
        return [item(self, f"{self.where}.{key}[{i}]", v) for i, v in enumerate(items)]

    def strings(self, key):
        return self.list_of(key, _Reader.string_item)

    def string_map(self, key):
        value = self._get(key, (dict,), "an object", False) or {}
        for k, v in value.items():
            if not isinstance(v, str):
                raise InvalidArgument(f"{self.where}.{key}.{k}: expected a string, got {_kind(v)}")
        return dict(value)

    @staticmethod
    def string_item(_parent, where, value):
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}: expected a string, got {_kind(value)}")
        return value

    @staticmethod
    def object_item(_parent, where, value):
        return _Reader(value, where)

    @staticmethod
    def int_item(_parent, where, value):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"{where}: expected a non-negative integer, got {value!r}")
        return value


def _kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), "a value")


def _root(r, bundle):
    path = r.string("path", required=True)
    path = os.path.normpath(os.path.join(bundle, path))
    return Root(path=path, readonly=r.boolean("readonly"))


def _mount(r):
    mount = Mount(
        destination=r.string("destination", required=True),
        type=r.string("type"),
        source=r.string("source"),
        options=r.strings("options"),
        uid_mappings=r.list_of("uidMappings", _id_mapping),
        gid_mappings=r.list_of("gidMappings", _id_mapping),
    )
    if not mount.destination.startswith("/"):
        raise InvalidArgument(f"{r.where}.destination: {mount.destination!r} is not an absolute path")
    if mount.uid_mappings or mount.gid_mappings:
        raise Unsupported(f"{r.where}: id-mapped mounts are not supported yet")
    return mount


def _id_mapping(_parent, where, value):
    r = _Reader(value, where)
    return IDMapping(
        container_id=r.integer("containerID", required=True, low=0, high=0xFFFFFFFF),
        host_id=r.integer("hostID", required=True, low=0, high=0xFFFFFFFF),
        size=r.integer("size", required=True, low=1, high=0xFFFFFFFF),
    )


def _process(r):
    if r is None:
        return None
    user = r.object("user")
    size = r.object("consoleSize")
    process = Process(
        terminal=r.boolean("terminal"),
        console_size=None if size is None else (
            size.integer("height", required=True, low=0), size.integer("width", required=True, low=0)),
        user=User() if user is None else User(
            uid=user.integer("uid", low=0, high=0xFFFFFFFF) or 0,
            gid=user.integer("gid", low=0, high=0xFFFFFFFF) or 0,
            umask=user.integer("umask", low=0, high=0o7777),
            additional_gids=user.list_of("additionalGids", _Reader.int_item),
            username=user.string("username"),
        ),
        args=r.strings("args"),
        command_line=r.string("commandLine"),
        env=r.strings("env"),
        cwd=r.string("cwd", required=True),
        capabilities=r.raw_object("capabilities"),
        rlimits=r.list_of("rlimits", _rlimit),
        no_new_privileges=r.boolean("noNewPrivileges"),
        apparmor_profile=r.string("apparmorProfile"),
        oom_score_adj=r.integer("oomScoreAdj", low=-1000, high=1000),
        selinux_label=r.string("selinuxLabel"),
        scheduler=r.raw_object("scheduler"),
        io_priority=r.raw_object("ioPriority"),
        exec_cpu_affinity=r.raw_object("execCPUAffinity"),
    )
    if not process.args:
        raise InvalidArgument("config.json: process.args must not be empty")
    if not process.cwd.startswith("/"):
        raise InvalidArgument(f"config.json: process.cwd {process.cwd!r} is not an absolute path")
    for entry in process.env:
        if "=" not in entry:
            raise InvalidArgument(f"config.json: process.env entry {entry!r} has no '='")
    return process


def _rlimit(_parent, where, value):
    r = _Reader(value, where)
    kind = r.string("type", required=True)
    if kind not in RLIMITS:
        raise InvalidArgument(f"{where}.type: unknown rlimit {kind!r}")
    return Rlimit(
        type=kind, resource=RLIMITS[kind],
        soft=r.integer("soft", required=True, low=0, high=2**64 - 1),
        hard=r.integer("hard", required=True, low=0, high=2**64 - 1),
    )


def _hooks(r):
    if r is None:
        return Hooks()
    lists = {}
    for kind in HOOK_KINDS:
        lists[kind] = r.list_of(kind, _hook)
    return Hooks(**lists)


def _hook(_parent, where, value):
    r = _Reader(value, where)
    hook = Hook(
        path=r.string("path", required=True),
        args=r.strings("args"),
        env=r.strings("env"),
        timeout=r.integer("timeout"),
    )
    if not hook.path.startswith("/"):
        raise InvalidArgument(f"{where}.path: {hook.path!r} is not an absolute path")
    if hook.timeout is not None and hook.timeout <= 0:
        raise InvalidArgument(f"{where}.timeout: must be positive")
    return hook


def _namespace(_parent, where, value):
    r = _Reader(value, where)
    kind = r.string("type", required=True)
    if kind not in NAMESPACE_TYPES:
        raise InvalidArgument(f"{where}.type: unknown namespace type {kind!r}")
    return Namespace(type=kind, path=r.string("path"))


def _device(_parent, where, value):
    r = _Reader(value, where)
    device = Device(
        type=r.string("type", required=True),
        path=r.string("path", required=True),
        major=r.integer("major", low=0),
        minor=r.integer("minor", low=0),
        file_mode=r.integer("fileMode", low=0, high=0o7777),
        uid=r.integer("uid", low=0, high=0xFFFFFFFF),
        gid=r.integer("gid", low=0, high=0xFFFFFFFF),
    )
    if device.type not in ("c", "b", "u", "p"):
        raise InvalidArgument(f"{where}.type: unknown device type {device.type!r}")
    if device.type != "p" and (device.major is None or device.minor is None):
        raise InvalidArgument(f"{where}: major and minor are required for type {device.type!r}")
    if not device.path.startswith("/dev/"):
        raise InvalidArgument(f"{where}.path: {device.path!r} is not under /dev")
    return device


def _linux(r):
    if r is None:
        return Linux()
    personality = r.object("personality")
    if personality is not None:
        domain = personality.string("domain", required=True)
        if domain not in PERSONALITY_DOMAINS:
            raise InvalidArgument(f"config.json: linux.personality.domain: unknown domain {domain!r}")
        personality = PERSONALITY_DOMAINS[domain]
    linux = Linux(
        namespaces=r.list_of("namespaces", _namespace),
        uid_mappings=r.list_of("uidMappings", _id_mapping),
        gid_mappings=r.list_of("gidMappings", _id_mapping),
        time_offsets=r.raw_object("timeOffsets") or {},
        devices=r.list_of("devices", _device),
        cgroups_path=r.string("cgroupsPath"),
        resources=r.raw_object("resources"),
        rootfs_propagation=r.string("rootfsPropagation"),
        seccomp=r.raw_object("seccomp"),
        sysctl=r.string_map("sysctl"),
        masked_paths=r.strings("maskedPaths"),
        readonly_paths=r.strings("readonlyPaths"),
        mount_label=r.string("mountLabel"),
        personality=personality,
        intel_rdt=r.raw_object("intelRdt"),
    )
    return linux


def _validate(spec, check_rootfs):
    if check_rootfs and not os.path.isdir(spec.root.path):
        raise NotFound(f"rootfs {spec.root.path} does not exist or is not a directory")
    linux = spec.linux
    seen = set()
    for ns in linux.namespaces:
        if ns.type in seen:
            raise InvalidArgument(f"config.json: namespace {ns.type!r} is listed twice")
        seen.add(ns.type)
    user_ns = linux.namespace("user")
    if (linux.uid_mappings or linux.gid_mappings) and (user_ns is None or user_ns.path):
        raise InvalidArgument("config.json: uid/gid mappings need a new user namespace")
    if user_ns is not None and not user_ns.path and not (linux.uid_mappings and linux.gid_mappings):
        raise InvalidArgument("config.json: a new user namespace needs uidMappings and gidMappings")
    if linux.time_offsets and (linux.namespace("time") is None or linux.namespace("time").path):
        raise InvalidArgument("config.json: timeOffsets need a new time namespace")
    if spec.hostname and (linux.namespace("uts") is None or linux.namespace("uts").path):
        raise InvalidArgument("config.json: setting the hostname needs a new uts namespace")
    if linux.rootfs_propagation not in (None, "", "shared", "slave", "private", "unbindable",
                                        "rshared", "rslave", "rprivate", "runbindable"):
        raise InvalidArgument(f"config.json: unknown rootfsPropagation {linux.rootfs_propagation!r}")
    if linux.intel_rdt:
        raise Unsupported("config.json: linux.intelRdt is not supported by vessel-runtime")
    for key, value in linux.sysctl.items():
        _check_sysctl(linux, key, value, check_rootfs)
    for index, mount in enumerate(spec.mounts):
        if mount.destination == "/":
            raise InvalidArgument("config.json: a mount on / is not allowed; use root.path")
        _check_proc_mount(index, mount)


# Sysctls that belong to a namespace the container has of its own (runc's list):
# anything else would change the host (CVE-2022-0811 set kernel.core_pattern).
_IPC_SYSCTL_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.")
_IPC_SYSCTLS = ("kernel.sem",)
_SYSCTL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./")


def _check_sysctl(linux, key, value, check_namespaces):
    where = f"config.json: linux.sysctl {key!r}"
    if (not key or not set(key) <= _SYSCTL_NAME_CHARS or ".." in key or "//" in key
            or key[0] in "./" or key[-1] in "./"):
        raise InvalidArgument(f"{where}: not a sysctl name")
    if any(c in value for c in "+=\n\r\0"):
        raise InvalidArgument(f"{where}: the value {value!r} may not contain '+', '=' or line breaks")
    if key.startswith(_IPC_SYSCTL_PREFIXES) or key in _IPC_SYSCTLS:
        if linux.namespace("ipc") is None:
            raise InvalidArgument(f"{where}: needs an ipc namespace of the container's own")
        return
    if key.startswith("net."):
        ns = linux.namespace("network")
        if ns is None or (check_namespaces and ns.path and _same_file(ns.path, "/proc/self/ns/net")):
            raise InvalidArgument(f"{where}: needs a network namespace of the container's own")
        return
    raise InvalidArgument(f"{where}: not a namespaced sysctl; it would change the host")


def _same_file(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


# Files lxcfs (and runc) may bind over procfs entries; nothing else goes on /proc.
_PROC_BINDS = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
               "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
               "/proc/sys/kernel/ns_last_pid")


def _check_proc_mount(index, mount):
    """Only procfs at /proc, only lxcfs-style binds below it (CVE-2019-16884)."""
    destination = os.path.normpath(mount.destination)
    where = f"config.json: mounts[{index}] ({mount.destination})"
    if destination == "/proc":
        if mount.type != "proc":
            raise InvalidArgument(f"{where}: only a mount of type proc may be mounted on /proc")
    elif destination.startswith("/proc/"):
        is_bind = mount.type in ("bind", "rbind") or "bind" in mount.options or "rbind" in mount.options
        if destination not in _PROC_BINDS or not is_bind:
            raise InvalidArgument(f"{where}: /proc entries may only be covered by binds of "
                                  f"{', '.join(_PROC_BINDS)}")
