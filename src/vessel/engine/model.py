"""Typed records of the engine: what a container is made of, parsed once.

`RunOptions.parse` turns Docker's `run` flags (as strings) into a
`ContainerConfig`; the config is stored as JSON in the database and read back
with `ContainerConfig.from_json`, so nothing downstream digs in dicts.
"""

import os
import re

from vessel.engine.health import Healthcheck
from vessel.engine.restart import RestartPolicy
from vessel.errors import InvalidArgument, Unsupported
from vessel.records import asdict, field, fields, record

__all__ = ["Mount", "ContainerConfig", "NetworkAttachment", "PortBinding", "Ulimit", "parse_bytes", "parse_cpus", "parse_env_file",
           "parse_expose", "parse_publish", "parse_mount", "parse_restart", "parse_volume", "validate_name", "validate_volume_name"]

_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack", "as"}
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
DEFAULT_NETWORK_MODE = "bridge"   # as Docker
DEFAULT_SHM_SIZE = 64 << 20   # /dev/shm, as Docker


def validate_name(name):
    """Docker's container name rule (a leading / is allowed and dropped)."""
    bare = name[1:] if name.startswith("/") else name
    if not _NAME_RE.fullmatch(bare):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return bare


def parse_bytes(text, flag):
    """Docker's RAMInBytes: 512, 64k, 1.5g, 10MB (binary units)."""
    match = _SIZE_RE.fullmatch(str(text).strip())
    if not match:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: invalid size: \'{text}\'')
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_cpus(text):
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} '
                              "as a rational number") from None
    if value < 0 or value > (os.cpu_count() or 1):
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only "
                              f"{os.cpu_count()} CPUs available")
    return int(value * 1e9)


def parse_restart(text):
    """--restart as a RestartPolicy (Docker's messages for bad values)."""
    return RestartPolicy.parse(text)


def parse_env_file(path, expand=True):
    """KEY=value lines; a bare KEY takes the caller's value (`expand`); # comments and blanks skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror.lower()}") from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [expand_env(entry) for entry in entries] if expand else entries


def expand_env(item):
    """`KEY` alone means the caller's KEY (dropped when unset), as Docker does."""
    if "=" in item:
        if item.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {item}")
        return item
    value = os.environ.get(item)
    return None if value is None else f"{item}={value}"


def merge_env(base, overrides):
    """Image env overridden by the user's, keeping the first position of each key."""
    merged = {}
    for item in list(base) + [o for o in overrides if o is not None]:
        key, _, value = item.partition("=")
        merged[key] = value
    return [f"{key}={value}" for key, value in merged.items()]


_VOLUME_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
MOUNT_TYPES = ("bind", "volume", "tmpfs")


def label_matches(labels, text):
    """Docker's label filter: `key` (present) or `key=value`."""
    key, sep, value = text.partition("=")
    return key in labels and (not sep or labels[key] == value)


def validate_volume_name(name):
    """Docker's local volume name rule."""
    if not _VOLUME_NAME_RE.fullmatch(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                              '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                              "use absolute path")
    return name


@record
class Mount:
    """One mount of a container: a host path (bind), a volume (named, or anonymous until created) or a tmpfs.

    `flag` says where it came from, for inspect: "-v" (with the text in `spec`), "--mount", "image" (a VOLUME
    of the image) or "volumes-from".
    """

    type: str
    target: str
    source: str = ""                 # bind: host path; volume: name ("" for an anonymous one not created yet)
    readonly: bool = False
    propagation: str = ""            # bind only; "" is Docker's default rprivate
    nocopy: bool = False             # volume only: no copy of the image's content into an empty volume
    driver: str = "local"            # volume only, with the next two: how a missing volume is created
    driver_options: dict = field(default_factory=dict)
    volume_labels: dict = field(default_factory=dict)
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    flag: str = "-v"
    spec: str = ""
    mode: str = ""                   # the mode text of -v (inspect's Mode)
    anonymous: bool = False          # volume only: named by the engine at create (removed with the container)


def _invalid_spec(text, reason=""):
    return InvalidArgument(f"invalid volume specification: '{text}'" + (f": {reason}" if reason else ""))


def _mount_config_error(kind, reason):
    return InvalidArgument(f'invalid mount config for type "{kind}": {reason}')


def _valid_mode(mode):
    """Docker's linux mode rule: comma separated, at most one access, propagation, label and copy mode."""
    kinds = {"access": 0, "propagation": 0, "label": 0, "copy": 0}
    for part in mode.split(",") if mode else []:
        kind = ("access" if part in ("ro", "rw") else "propagation" if part in _PROPAGATIONS else
                "label" if part in ("z", "Z") else "copy" if part == "nocopy" else None)
        if kind is None:
            return False
        kinds[kind] += 1
    return all(count <= 1 for count in kinds.values())


def _check_target(kind, target):
    if not target.startswith("/"):
        raise _mount_config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    target = os.path.normpath(target)
    if target == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    return target


def parse_volume(text):
    """`-v` as Docker reads it: /path (anonymous), name:/path[:mode] (volume), /host:/path[:mode] (bind)."""
    parts = text.split(":")
    if not parts[0]:
        raise _invalid_spec(text)
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise _invalid_spec(text)
        source, target, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _invalid_spec(text)
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    options = mode.split(",") if mode else []
    if source.startswith("."):
        source = os.path.abspath(source)
    kind = "bind" if source.startswith("/") else "volume"
    try:
        target = _check_target(kind, target)
    except InvalidArgument as exc:
        raise _invalid_spec(text, str(exc)) from None
    propagation = next((o for o in options if o in _PROPAGATIONS), "")
    if kind == "bind":
        if "nocopy" in options:
            raise _invalid_spec(text, str(_mount_config_error("bind", "field VolumeOptions must not be specified")))
        source = os.path.normpath(source)
    else:
        if propagation:
            raise _invalid_spec(text, str(_mount_config_error("volume", "field BindOptions must not be specified")))
        if source:
            validate_volume_name(source)
    return Mount(kind, target, source, readonly="ro" in options, propagation=propagation,
                 nocopy="nocopy" in options, flag="-v", spec=text, mode=mode)


_MOUNT_KEYS = {"type", "source", "src", "target", "destination", "dst", "readonly", "ro", "bind-propagation",
               "volume-nocopy", "volume-driver", "volume-opt", "volume-label", "tmpfs-size", "tmpfs-mode",
               "consistency"}
_BOOLEANS = {"1": True, "t": True, "true": True, "T": True, "TRUE": True, "True": True,
             "0": False, "f": False, "false": False, "F": False, "FALSE": False, "False": False}


def parse_mount(text):
    """`--mount type=bind|volume|tmpfs,source=,target=,...` as the Docker CLI and daemon read it."""
    import csv

    values = {"type": "volume"}
    repeated = {"volume-opt": {}, "volume-label": {}}
    try:  # CSV as Docker reads it: "volume-opt=o=size=1m,uid=1000" in quotes keeps its comma
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise InvalidArgument(f"invalid argument \"{text}\" for \"--mount\" flag: bad CSV") from None
    for item in (part.strip() for part in fields):
        key, sep, value = item.partition("=")
        key = key.lower()
        if key not in _MOUNT_KEYS:
            raise InvalidArgument(f"unexpected key '{key}' in '{item}'")
        if not sep:
            if key in ("readonly", "ro", "volume-nocopy"):
                value = "true"
            else:
                raise InvalidArgument(f"invalid field '{item}' must be a key=value pair")
        if key in repeated:
            name, eq, option = value.partition("=")
            if not eq and key == "volume-opt":
                raise InvalidArgument(f"invalid value for {key}: {value}")
            repeated[key][name] = option
            continue
        values[{"src": "source", "destination": "target", "dst": "target", "ro": "readonly"}.get(key, key)] = value
    kind = values["type"]
    if kind not in MOUNT_TYPES:
        raise _mount_config_error(kind, "mount type unknown")
    if "target" not in values:
        raise InvalidArgument("target is required")
    flags = {}
    for key in ("readonly", "volume-nocopy"):
        if key in values:
            if values[key] not in _BOOLEANS:
                raise InvalidArgument(f"invalid value for {key}: {values[key]}")
            flags[key] = _BOOLEANS[values[key]]
    given = set(values) | {k for k, v in repeated.items() if v}
    own_keys = {"bind": {"bind-propagation"}, "volume": {"volume-nocopy", "volume-driver", "volume-opt", "volume-label"},
                "tmpfs": {"tmpfs-size", "tmpfs-mode"}}
    field_names = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}
    for other, keys in own_keys.items():
        if other != kind and given & keys:
            raise _mount_config_error(kind, f"field {field_names[other]} must not be specified")
    target = _check_target(kind, values["target"])
    source = values.get("source", "")
    mount = Mount(kind, target, source, readonly=flags.get("readonly", False), flag="--mount", spec=text)
    if kind == "bind":
        if not source:
            raise _mount_config_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _mount_config_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        mount.source = os.path.normpath(source)
        mount.propagation = values.get("bind-propagation", "")
        if mount.propagation and mount.propagation not in _PROPAGATIONS:
            raise _mount_config_error(kind, f"invalid propagation mode: {mount.propagation}")
    elif kind == "volume":
        if source:
            validate_volume_name(source)
        mount.nocopy = flags.get("volume-nocopy", False)
        mount.driver = values.get("volume-driver", "local")
        mount.driver_options = repeated["volume-opt"]
        mount.volume_labels = repeated["volume-label"]
    else:
        if source:
            raise _mount_config_error(kind, "field Source must not be specified")
        if "tmpfs-size" in values:
            mount.tmpfs_size = parse_bytes(values["tmpfs-size"], "--mount tmpfs-size")
        if "tmpfs-mode" in values:
            try:
                mount.tmpfs_mode = int(values["tmpfs-mode"], 8)
            except ValueError:
                raise InvalidArgument(f"invalid value for tmpfs-mode: {values['tmpfs-mode']}") from None
    return mount


@record
class Ulimit:
    name: str
    soft: int
    hard: int

    @classmethod
    def parse(cls, text):
        name, _, values = text.partition("=")
        soft, _, hard = values.partition(":")
        if name not in _ULIMITS or not soft.lstrip("-").isdigit() or (hard and not hard.lstrip("-").isdigit()):
            raise InvalidArgument(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit argument')
        hard = hard or soft
        if int(soft) > int(hard):
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        return cls(name, int(soft), int(hard))


@record
class NetworkAttachment:
    """One network a container is on (--network NAME, network connect) and how."""

    network: str
    aliases: list = field(default_factory=list)
    ipv4: str = ""                  # --ip: a fixed address
    ipv6: str = ""                  # --ip6
    mac: str = ""                   # --mac-address
    last_ipv4: str = ""             # the addresses it had last: taken again on restart when still free
    last_ipv6: str = ""


@record
class PortBinding:
    """One published port (-p, -P): host_port 0 is any free port, last_host_port the one it got."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    last_host_port: int = 0

    @property
    def key(self):
        return f"{self.container_port}/{self.proto}"


def _port_numbers(text, what, spec):
    first, sep, last = text.partition("-")
    if not first.isdigit() or (sep and not last.isdigit()):
        raise InvalidArgument(f"invalid {what}: {text}" if text else f"no port specified: {spec}<empty>")
    low, high = int(first), int(last or first)
    if not 0 < low <= high <= 65535 and not (what == "hostPort" and low == high == 0):
        raise InvalidArgument(f"invalid {what}: {text}")
    return list(range(low, high + 1))


def parse_publish(spec):
    """Docker's -p [ip:][hostPort:]containerPort[/proto] (ports may be ranges) -> [PortBinding]."""
    rest, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    host_ip = ""
    if rest.startswith("["):
        host_ip, _, rest = rest[1:].partition("]")
        rest = rest[1:] if rest.startswith(":") else rest
    elif rest.count(":") == 2:
        host_ip, _, rest = rest.partition(":")
    host_port, _, container_port = rest.rpartition(":")
    if host_ip:
        import ipaddress

        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    containers = _port_numbers(container_port, "containerPort", spec)
    hosts = _port_numbers(host_port, "hostPort", spec) if host_port else [0]
    if hosts == [0]:
        hosts = [0] * len(containers)
    elif len(hosts) != len(containers):
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: {container_port} and "
                              f"{host_port}")
    return [PortBinding(c, proto, host_ip, h) for h, c in zip(hosts, containers)]


def parse_expose(spec):
    """--expose PORT[/proto] or a range -> ["80/tcp", ...]."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    return [f"{n}/{proto}" for n in _port_numbers(port, "containerPort", spec)]


@record
class ContainerConfig:
    """Everything a container was created with (image defaults already merged in)."""

    image: str                      # the reference the user typed
    cmd: list = field(default_factory=list)
    entrypoint: list = field(default_factory=list)
    env: list = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    labels: dict = field(default_factory=dict)
    volumes: list = field(default_factory=list)       # the image's VOLUME paths
    mounts: list = field(default_factory=list)        # [Mount]: -v, --mount, image VOLUMEs, --volumes-from
    volumes_from: list = field(default_factory=list)  # ["container[:ro|rw]"] as given
    tmpfs: dict = field(default_factory=dict)         # target -> options
    extra_hosts: list = field(default_factory=list)   # ["name:ip"]
    dns: list = field(default_factory=list)
    network_mode: str = "none"
    networks: list = field(default_factory=list)      # [NetworkAttachment] (bridge modes)
    ports: list = field(default_factory=list)         # [PortBinding]
    expose: list = field(default_factory=list)        # ["80/tcp"]: the image's EXPOSE and --expose
    publish_all: bool = False
    memory: int = 0
    nano_cpus: int = 0
    pids_limit: int = 0
    ulimits: list = field(default_factory=list)       # [Ulimit]
    read_only: bool = False
    cap_add: list = field(default_factory=list)
    cap_drop: list = field(default_factory=list)
    privileged: bool = False
    seccomp_unconfined: bool = False
    no_new_privileges: bool = False
    stop_signal: str = "SIGTERM"
    stop_timeout: int = 10
    auto_remove: bool = False
    cgroup_parent: str = ""
    log_max_size: int = 10 << 20
    log_max_file: int = 3
    log_driver: str = "json-file"                     # json-file or none
    memory_swap: int = 0                              # memory+swap; -1 unlimited, 0 twice the memory
    memory_reservation: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    devices: list = field(default_factory=list)       # [Device]
    device_cgroup_rules: list = field(default_factory=list)  # ["c 1:3 rwm"]
    shm_size: int = DEFAULT_SHM_SIZE
    group_add: list = field(default_factory=list)     # group names or ids
    oom_score_adj: int = 0
    pid_mode: str = ""                                # "", host, container:<name|id>
    ipc_mode: str = "private"                         # private, shareable, none, host, container:<name|id>
    uts_mode: str = ""                                # "" or host
    sysctls: dict = field(default_factory=dict)
    init: bool = False                                # docker-init (tini) as PID 1
    seccomp_profile: dict = field(default_factory=dict)  # --security-opt seccomp=FILE (Docker's format)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    healthcheck: Healthcheck = None                   # the image's HEALTHCHECK merged with --health-*

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, raw):
        raw = dict(raw)
        raw["mounts"] = [Mount(**m) for m in raw.get("mounts", [])]
        raw["ulimits"] = [Ulimit(**u) for u in raw.get("ulimits", [])]
        raw["devices"] = [Device(**d) for d in raw.get("devices", [])]
        raw["networks"] = [NetworkAttachment(**n) for n in raw.get("networks", [])]
        raw["ports"] = [PortBinding(**p) for p in raw.get("ports", [])]
        raw["restart_policy"] = RestartPolicy.from_json(raw.get("restart_policy"))
        raw["healthcheck"] = Healthcheck.from_json(raw.get("healthcheck"))
        known = set(fields(cls))
        return cls(**{k: v for k, v in raw.items() if k in known})

    @property
    def args(self):
        return list(self.entrypoint) + list(self.cmd)


def parse_tmpfs(text):
    target, _, options = text.partition(":")
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs mount point: {target}: must be absolute")
    return os.path.normpath(target), options


def parse_capabilities(names):
    """CAP_X / x / ALL -> CAP_X names; unknown names rejected."""
    from vessel.runtime.capabilities import ALL_CAPABILITIES

    result = []
    for name in names:
        upper = name.upper()
        if upper == "ALL":
            result.append("ALL")
            continue
        upper = upper if upper.startswith("CAP_") else "CAP_" + upper
        if upper not in ALL_CAPABILITIES:
            raise InvalidArgument(f"invalid capability: {name}")
        result.append(upper)
    return result


_DEVICE_RULE_RE = re.compile(r"([acb]) (\d+|\*):(\d+|\*) ([rwm]{1,3})")
_NAMESPACED_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                       "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


@record
class Device:
    """--device host[:container][:permissions] (permissions: some of r, w, m)."""

    host: str
    container: str
    permissions: str = "rwm"

    @classmethod
    def parse(cls, text):
        parts = text.split(":")
        permissions = "rwm"
        if len(parts) == 3 or (len(parts) == 2 and _device_permissions(parts[1])):
            permissions = parts.pop()
            if not _device_permissions(permissions):
                raise InvalidArgument(f"invalid device mode: {permissions}")
        if len(parts) > 2 or not parts[0]:
            raise InvalidArgument(f"invalid device specification: {text}")
        host = parts[0]
        container = parts[1] if len(parts) == 2 and parts[1] else host
        for path in (host, container):
            if not path.startswith("/"):
                raise InvalidArgument(f"bad format for path: {path}")
        if not os.path.exists(host):
            raise InvalidArgument(f"error gathering device information while adding custom device \"{host}\": "
                                  "no such file or directory")
        return cls(os.path.normpath(host), os.path.normpath(container), permissions)


def _device_permissions(text):
    return bool(text) and len(text) <= 3 and set(text) <= set("rwm") and len(set(text)) == len(text)


def parse_device_cgroup_rule(text):
    """Docker's --device-cgroup-rule: "c|b|a major|*:minor|* rwm"."""
    if not _DEVICE_RULE_RE.fullmatch(text.strip()):
        raise InvalidArgument(f"invalid device cgroup format '{text}'")
    return text.strip()


def parse_sysctl(text, network_mode="", ipc_mode=""):
    """--sysctl key=value: only the sysctls namespaced by the container's own ipc and network namespaces."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidArgument(f'invalid argument "{text}" for "--sysctl" flag: sysctl \'{text}\' is not whitelisted')
    if key.startswith("net."):
        if network_mode == "host":
            raise InvalidArgument(f"sysctl '{key}' is not allowed in host network namespace")
    elif key in _NAMESPACED_SYSCTLS or key.startswith("fs.mqueue."):
        if ipc_mode == "host":
            raise InvalidArgument(f"sysctl '{key}' is not allowed in host IPC namespace")
    else:
        raise InvalidArgument(f'invalid argument "{text}" for "--sysctl" flag: sysctl \'{text}\' is not whitelisted')
    return key, value


def parse_namespace_mode(kind, text):
    """--pid (host, container:X), --ipc (private, shareable, none, host, container:X), --uts (host)."""
    text = text or ""
    allowed = {"pid": ("", "host"), "ipc": ("", "private", "shareable", "none", "host"), "uts": ("", "host")}[kind]
    shared = kind != "uts" and text.startswith("container:") and len(text) > len("container:")
    if text not in allowed and not shared:
        label = {"pid": "PID", "ipc": "IPC", "uts": "UTS"}[kind]
        raise InvalidArgument(f"--{kind}: invalid {label} mode")
    return "private" if kind == "ipc" and not text else text


def parse_cpuset(text, flag):
    """A cpuset list ("0-2,4"): Docker checks it names only CPUs (or memory nodes) that exist."""
    if not text:
        return ""
    present = _online(flag)
    wanted = set()
    for part in text.split(","):
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()) or (sep and int(last) < int(first)):
            raise InvalidArgument(f"Invalid value {text} for {flag}")
        wanted.update(range(int(first), int(last or first) + 1))
    if not wanted <= present:
        available = ",".join(str(n) for n in sorted(present))
        raise InvalidArgument(f"Requested {'CPUs' if flag == 'cpuset cpus' else 'memory nodes'} are not available "
                              f"- requested {text}, available: {available}")
    return text


def _online(flag):
    path = "/sys/devices/system/cpu/online" if flag == "cpuset cpus" else "/sys/devices/system/node/online"
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except OSError:
        return set(range(os.cpu_count() or 1)) if flag == "cpuset cpus" else {0}
    present = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        present.update(range(int(first), int(last or first) + 1))
    return present
