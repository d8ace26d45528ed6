"""Typed records of the engine: what a container is made of, parsed once.

`RunOptions.parse` turns Docker's `run` flags (as strings) into a
`ContainerConfig`; the config is stored as JSON in the database and read back
with `ContainerConfig.from_json`, so nothing downstream digs in dicts.
"""

import dataclasses
import os
import re
from dataclasses import dataclass, field

from vessel.errors import InvalidArgument, Unsupported

__all__ = ["Bind", "ContainerConfig", "Ulimit", "parse_bytes", "parse_cpus", "parse_env_file",
           "parse_restart", "validate_name"]

_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack", "as"}
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


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
    if value < 0:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only "
                              f"{os.cpu_count()} CPUs available")
    return int(value * 1e9)


def parse_restart(text):
    """Validate --restart; only "no" is implemented in this engine so far."""
    name, _, count = (text or "no").partition(":")
    if name not in RESTART_POLICIES or (count and (name != "on-failure" or not count.isdigit())):
        raise InvalidArgument(f"invalid restart policy format: {text}")
    if name != "no":
        raise Unsupported(f"restart policy {name!r} is not supported yet (only \"no\")")
    return "no"


def parse_env_file(path):
    """KEY=value lines; a bare KEY takes the caller's value; # comments and blanks skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror.lower()}") from None
    return [expand_env(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


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


@dataclass
class Bind:
    """-v host:container[:ro|rw]."""

    source: str
    target: str
    readonly: bool = False

    @classmethod
    def parse(cls, text):
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            if len(parts) == 1 and parts[0].startswith("/"):
                raise Unsupported(f"anonymous volumes are not supported yet: {text}")
            raise InvalidArgument(f"invalid volume specification: '{text}'")
        mode = parts[2] if len(parts) == 3 else "rw"
        if not set(mode.split(",")) <= {"ro", "rw", "z", "Z", "private", "rprivate", "slave", "rslave"}:
            raise InvalidArgument(f"invalid mode: {mode}")
        if not parts[0].startswith("/"):
            raise Unsupported(f"named volumes are not supported yet: {parts[0]}")
        if not parts[1].startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{text}': invalid mount config for type "
                                  f"\"bind\": invalid mount path: '{parts[1]}' mount path must be absolute")
        return cls(os.path.abspath(parts[0]), os.path.normpath(parts[1]), "ro" in mode.split(","))


@dataclass
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


@dataclass
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
    volumes: list = field(default_factory=list)       # the image's VOLUME paths (recorded, not created)
    binds: list = field(default_factory=list)         # [Bind]
    tmpfs: dict = field(default_factory=dict)         # target -> options
    extra_hosts: list = field(default_factory=list)   # ["name:ip"]
    dns: list = field(default_factory=list)
    network_mode: str = "none"
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

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw):
        raw = dict(raw)
        raw["binds"] = [Bind(**b) for b in raw.get("binds", [])]
        raw["ulimits"] = [Ulimit(**u) for u in raw.get("ulimits", [])]
        known = {f.name for f in dataclasses.fields(cls)}
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
