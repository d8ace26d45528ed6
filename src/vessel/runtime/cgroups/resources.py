"""Checked OCI `linux.resources`, and runc's `update` flags turned into the same shape.

The checks are hand-written (no schema library) because this runs on every
`create`; each one names the offending field in one line.
"""

from vessel.errors import InvalidArgument, Unsupported

__all__ = ["DeviceRule", "Resources", "parse_resources", "parse_size", "parse_update_flags"]

_PREFIX = "linux.resources"
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
_UINT32_MAX = (1 << 32) - 1
_INT32_MAX = (1 << 31) - 1
_DEVICE_TYPES = ("a", "b", "c")


class DeviceRule:
    """One `linux.resources.devices` entry; major/minor None mean "any"."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow, type="a", major=None, minor=None, access="rwm"):
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access

    def __eq__(self, other):
        return isinstance(other, DeviceRule) and self.to_oci() == other.to_oci()

    def __repr__(self):
        return f"DeviceRule({self.to_oci()!r})"

    def to_oci(self):
        return {"allow": self.allow, "type": self.type, "major": self.major,
                "minor": self.minor, "access": self.access}


class Resources:
    """Validated resources. Every group is None when absent, so `apply` writes only what was given.

    memory, cpu, block_io, network, pids: dicts with the OCI key names;
    hugepage_limits: list of {"pageSize", "limit"}; devices: list of DeviceRule;
    rdma: {device: {"hcaHandles", "hcaObjects"}}; unified: {file name: value}.
    """

    __slots__ = ("memory", "cpu", "pids", "block_io", "hugepage_limits", "devices",
                 "network", "rdma", "unified")

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, None)

    def is_empty(self):
        return all(getattr(self, name) is None for name in self.__slots__)

    def merged(self, newer, changed_only=False):
        """These resources with every group or key given in `newer` replaced (for `update`).

        With changed_only, groups that `newer` does not touch are left out: what
        `update` should apply, since v1 needs e.g. the current memory+swap
        alongside a new memory limit, but not the device rules again.
        """
        result = Resources()
        for name in self.__slots__:
            old, new = getattr(self, name), getattr(newer, name)
            if changed_only and new is None:
                continue
            if isinstance(old, dict) and isinstance(new, dict) and name != "unified":
                combined = dict(old)
                combined.update(new)
                new = combined
            setattr(result, name, old if new is None else new)
        return result

    def to_oci(self):
        """The OCI `linux.resources` object these resources came from (normalised)."""
        out = {}
        for name, key in _OCI_KEYS:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "devices":
                value = [rule.to_oci() for rule in value]
            out[key] = value
        return out


_OCI_KEYS = (("memory", "memory"), ("cpu", "cpu"), ("pids", "pids"), ("block_io", "blockIO"),
             ("hugepage_limits", "hugepageLimits"), ("devices", "devices"),
             ("network", "network"), ("rdma", "rdma"), ("unified", "unified"))


def _fail(where, what):
    raise InvalidArgument(f"{where}: {what}")


def _integer(value, where, low, high):
    if type(value) is not int:
        _fail(where, "expected an integer")
    if not low <= value <= high:
        _fail(where, f"{value} is out of range ({low} to {high})")
    return value


def _int64(value, where):
    return _integer(value, where, _INT64_MIN, _INT64_MAX)


def _limit(value, where):
    """A byte limit: -1 (unlimited) or a non-negative int64."""
    return _integer(value, where, -1, _INT64_MAX)


def _uint64(value, where):
    return _integer(value, where, 0, _UINT64_MAX)


def _bool(value, where):
    if type(value) is not bool:
        _fail(where, "expected true or false")
    return value


def _string(value, where):
    if type(value) is not str:
        _fail(where, "expected a string")
    return value


def _object(value, where):
    if type(value) is not dict:
        _fail(where, "expected an object")
    return value


def _array(value, where):
    if type(value) is not list:
        _fail(where, "expected an array")
    return value


def _cpu_list(value, where):
    """A cpuset list such as "0-3,7"; empty means "leave as is"."""
    _string(value, where)
    if value.strip() == "":
        return ""
    for part in value.strip().split(","):
        bounds = part.split("-")
        if len(bounds) > 2 or not all(b.isdigit() and b.isascii() for b in bounds):
            _fail(where, f"{value!r} is not a list like \"0-3,5\"")
        if len(bounds) == 2 and int(bounds[0]) > int(bounds[1]):
            _fail(where, f"{value!r} has a range that runs backwards")
    return value.strip()


def _fields(obj, where, checks):
    """Check every known key of `obj` with its checker; unknown keys are dropped."""
    out = {}
    for key, value in _object(obj, where).items():
        check = checks.get(key)
        if check is None or value is None:
            continue
        out[key] = check(value, f"{where}.{key}")
    return out


_MEMORY = {
    "limit": _limit, "reservation": _limit, "swap": _limit, "kernel": _limit,
    "kernelTCP": _limit,
    "swappiness": lambda v, w: _integer(v, w, -1, 100) if v != _UINT64_MAX else -1,
    "disableOOMKiller": _bool, "useHierarchy": _bool, "checkBeforeUpdate": _bool,
}

_CPU = {
    "shares": _uint64, "quota": _int64, "burst": _uint64, "period": _uint64,
    "realtimeRuntime": _int64, "realtimePeriod": _uint64,
    "cpus": _cpu_list, "mems": _cpu_list,
    "idle": lambda v, w: _integer(v, w, -1, 1),
}


def _weight(value, where):
    if value == 0:
        return 0
    return _integer(value, where, 10, 1000)


def _weight_device(value, where):
    entry = _fields(value, where, {"major": _int64, "minor": _int64,
                                   "weight": _weight, "leafWeight": _weight})
    _need(entry, where, "major", "minor")
    return entry


def _throttle_device(value, where):
    entry = _fields(value, where, {"major": _int64, "minor": _int64, "rate": _uint64})
    _need(entry, where, "major", "minor", "rate")
    return entry


def _need(entry, where, *keys):
    for key in keys:
        if key not in entry:
            _fail(f"{where}.{key}", "is required")


def _list_of(check):
    def check_list(value, where):
        return [check(item, f"{where}[{i}]") for i, item in enumerate(_array(value, where))]
    return check_list


_BLOCK_IO = {
    "weight": _weight, "leafWeight": _weight,
    "weightDevice": _list_of(_weight_device),
    "throttleReadBpsDevice": _list_of(_throttle_device),
    "throttleWriteBpsDevice": _list_of(_throttle_device),
    "throttleReadIOPSDevice": _list_of(_throttle_device),
    "throttleWriteIOPSDevice": _list_of(_throttle_device),
}


def _page_size(value, where):
    """A hugetlb page size as the kernel names it in file names: "2MB", "1GB", "64KB"."""
    _string(value, where)
    number, unit = value[:-2], value[-2:]
    if unit not in ("KB", "MB", "GB") or not (number.isdigit() and number.isascii()):
        _fail(where, f"{value!r} is not a page size like \"2MB\"")
    return value


def _hugepage_limit(value, where):
    entry = _fields(value, where, {"pageSize": _page_size, "limit": _uint64})
    _need(entry, where, "pageSize", "limit")
    return entry


def _device_rule(value, where):
    _object(value, where)
    if "allow" not in value:
        _fail(f"{where}.allow", "is required")
    allow = _bool(value["allow"], f"{where}.allow")
    kind = value.get("type")
    kind = "a" if kind is None else _string(kind, f"{where}.type")
    if kind not in _DEVICE_TYPES:
        _fail(f"{where}.type", f"{kind!r} is not one of a, b, c")
    major, minor = (None if value.get(k) is None else _integer(value[k], f"{where}.{k}", -1, _INT32_MAX)
                    for k in ("major", "minor"))
    access = value.get("access")
    access = "rwm" if access in (None, "") else _string(access, f"{where}.access")
    if any(c not in "rwm" for c in access) or len(set(access)) != len(access):
        _fail(f"{where}.access", f"{access!r} is not made of r, w and m")
    # -1 is how Go-era configs write "any".
    return DeviceRule(allow, kind, None if major == -1 else major, None if minor == -1 else minor,
                      "".join(c for c in "rwm" if c in access))


def _priority(value, where):
    entry = _fields(value, where, {"name": _string,
                                   "priority": lambda v, w: _integer(v, w, 0, _UINT32_MAX)})
    _need(entry, where, "name", "priority")
    return entry


_NETWORK = {
    "classID": lambda v, w: _integer(v, w, 0, _UINT32_MAX),
    "priorities": _list_of(_priority),
}

_RDMA_LIMIT = {"hcaHandles": lambda v, w: _integer(v, w, 0, _UINT32_MAX),
               "hcaObjects": lambda v, w: _integer(v, w, 0, _UINT32_MAX)}


def _rdma(value, where):
    return {_string(name, where): _fields(limits, f"{where}.{name}", _RDMA_LIMIT)
            for name, limits in _object(value, where).items()}


def _unified(value, where):
    out = {}
    for key, item in _object(value, where).items():
        if key in ("", ".", "..") or "/" in key or "\0" in key or "." not in key.strip("."):
            _fail(f"{where}", f"{key!r} is not a cgroup file name like \"memory.high\"")
        out[key] = _string(item, f"{where}.{key}")
    return out


def parse_resources(obj):
    """Check a raw OCI `linux.resources` object (or None) and return Resources."""
    resources = Resources()
    if obj is None:
        return resources
    _object(obj, _PREFIX)
    for key, attr, check in (
        ("memory", "memory", lambda v, w: _fields(v, w, _MEMORY)),
        ("cpu", "cpu", lambda v, w: _fields(v, w, _CPU)),
        ("pids", "pids", lambda v, w: _fields(v, w, {"limit": _int64})),
        ("blockIO", "block_io", lambda v, w: _fields(v, w, _BLOCK_IO)),
        ("hugepageLimits", "hugepage_limits", _list_of(_hugepage_limit)),
        ("devices", "devices", _list_of(_device_rule)),
        ("network", "network", lambda v, w: _fields(v, w, _NETWORK)),
        ("rdma", "rdma", _rdma),
        ("unified", "unified", _unified),
    ):
        value = obj.get(key)
        if value is not None:
            setattr(resources, attr, check(value, f"{_PREFIX}.{key}"))
    return resources


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text, where="size"):
    """A byte count as docker/runc take it: "512", "1m", "1.5g", "2MiB", "64kb"; "-1" is unlimited."""
    value = text.strip().lower()
    if value == "-1":
        return -1
    if value.endswith("b"):
        value = value[:-1]
    if value.endswith("i"):
        value = value[:-1]
    unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
    number = value[:len(value) - len(unit)].rstrip(" ")
    digits = number.replace(".", "", 1)
    if not digits or not (digits.isdigit() and digits.isascii()) or number.startswith("."):
        raise InvalidArgument(f"{where}: {text!r} is not a size like 512, 64k, 1m or 2g")
    size = int(float(number) * _SIZE_UNITS[unit]) if "." in number else int(number) * _SIZE_UNITS[unit]
    if size > _INT64_MAX:
        raise InvalidArgument(f"{where}: {text!r} is too large")
    return size


def _flag_int(low, high):
    def parse(text, where):
        try:
            value = int(text.strip())
        except ValueError:
            raise InvalidArgument(f"{where}: {text!r} is not an integer") from None
        return _integer(value, where, low, high)
    return parse


# runc `update` flag -> (group, OCI key, parser)
_UPDATE_FLAGS = {
    "blkio-weight": ("block_io", "weight", lambda t, w: _weight(_flag_int(0, 1000)(t, w), w)),
    "cpu-period": ("cpu", "period", _flag_int(0, _UINT64_MAX)),
    "cpu-quota": ("cpu", "quota", _flag_int(_INT64_MIN, _INT64_MAX)),
    "cpu-burst": ("cpu", "burst", _flag_int(0, _UINT64_MAX)),
    "cpu-share": ("cpu", "shares", _flag_int(0, _UINT64_MAX)),
    "cpu-rt-period": ("cpu", "realtimePeriod", _flag_int(0, _UINT64_MAX)),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", _flag_int(_INT64_MIN, _INT64_MAX)),
    "cpuset-cpus": ("cpu", "cpus", _cpu_list),
    "cpuset-mems": ("cpu", "mems", _cpu_list),
    "memory": ("memory", "limit", parse_size),
    "memory-reservation": ("memory", "reservation", parse_size),
    "memory-swap": ("memory", "swap", parse_size),
    "pids-limit": ("pids", "limit", _flag_int(_INT64_MIN, _INT64_MAX)),
}


def parse_update_flags(flags):
    """Resources from runc-style `update` flags: {"memory": "1m", "cpu-share": "512", ...}.

    Keys may carry the leading "--"; values are the flag's text. Flags that are
    None are skipped. Intel RDT flags (--l3-cache-schema, --mem-bw-schema) raise
    Unsupported: vessel has no resctrl support.
    """
    resources = Resources()
    for name, text in flags.items():
        if text is None:
            continue
        flag = name[2:] if name.startswith("--") else name
        if flag in ("l3-cache-schema", "mem-bw-schema"):
            raise Unsupported(f"--{flag}: Intel RDT (resctrl) is not supported by vessel-runtime")
        entry = _UPDATE_FLAGS.get(flag)
        if entry is None:
            raise InvalidArgument(f"--{flag}: not a resource flag of update")
        group, key, parse = entry
        if not isinstance(text, str):
            text = str(text)
        value = parse(text, f"--{flag}")
        current = getattr(resources, group) or {}
        current[key] = value
        setattr(resources, group, current)
    return resources
