"""Cgroup statistics shaped like the "data" object of `runc events --stats`.

Keys follow runc's types.Stats JSON: cpu.usage (nanoseconds), cpu.throttling,
memory.usage/swap/kernel/kernelTCP entries {limit, usage, max, failcnt},
memory.raw (memory.stat), pids {current, limit}, blkio entries
{major, minor, op, value}, hugetlb {size: {usage, max, failcnt}}. A limit
that is "max" reads as 2**64-1, as in runc. Missing files are left out.
"""

import os

from vessel.errors import NotFound, Unsupported
from vessel.runtime.cgroups.manager import read_file

__all__ = ["v1_stats", "v2_stats"]

_UNLIMITED = (1 << 64) - 1


def _text(directory, name):
    if directory is None:
        return None
    try:
        return read_file(directory, name)
    except (NotFound, Unsupported):
        return None


def _number(directory, name):
    text = _text(directory, name)
    if text is None or text == "":
        return None
    return _UNLIMITED if text == "max" else int(text)


def _keyed(directory, name):
    """A "key value" per line file (cpu.stat, memory.stat, memory.events) as a dict."""
    text = _text(directory, name)
    if not text:
        return {}
    pairs = (line.split() for line in text.splitlines())
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].lstrip("-").isdigit()}


def _cpu_list(text):
    """ "0-2,4" -> [0, 1, 2, 4]."""
    cpus = []
    for part in (text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


def _clean(entry):
    return {key: value for key, value in entry.items() if value is not None}


def _empty_stats():
    return {"cpu": {"usage": {}, "throttling": {}}, "cpuset": {}, "memory": {}, "pids": {},
            "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": None}


def _page_sizes(directory, suffix):
    """Hugetlb page size names ("2MB") that have `hugetlb.<size><suffix>` files."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n[len("hugetlb."):-len(suffix)] for n in names
                  if n.startswith("hugetlb.") and n.endswith(suffix) and ".rsvd." not in n)


def _throttling(cpu_stat, time_key, scale):
    return _clean({"periods": cpu_stat.get("nr_periods"), "throttledPeriods": cpu_stat.get("nr_throttled"),
                   "throttledTime": None if time_key not in cpu_stat else cpu_stat[time_key] * scale})


_CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                 "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")


def v1_stats(paths, pids):
    """Stats from v1 hierarchies {controller: directory}; `pids` lists the processes."""
    stats = _empty_stats()
    cpuacct, cpu = paths.get("cpuacct"), paths.get("cpu")
    usage = stats["cpu"]["usage"]
    usage["total"] = _number(cpuacct, "cpuacct.usage")
    percpu = _text(cpuacct, "cpuacct.usage_percpu")
    if percpu:
        usage["percpu"] = [int(v) for v in percpu.split()]
    rows = (_text(cpuacct, "cpuacct.usage_all") or "").splitlines()[1:]
    if rows:
        usage["percpu_user"] = [int(row.split()[1]) for row in rows]
        usage["percpu_kernel"] = [int(row.split()[2]) for row in rows]
    ticks = _keyed(cpuacct, "cpuacct.stat")
    nanoseconds_per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    usage["user"] = ticks.get("user", 0) * nanoseconds_per_tick
    usage["kernel"] = ticks.get("system", 0) * nanoseconds_per_tick
    stats["cpu"]["usage"] = _clean(usage)
    stats["cpu"]["throttling"] = _throttling(_keyed(cpu, "cpu.stat"), "throttled_time", 1)

    cpuset = paths.get("cpuset")
    if cpuset:
        stats["cpuset"] = {"cpus": _cpu_list(_text(cpuset, "cpuset.cpus")),
                           "mems": _cpu_list(_text(cpuset, "cpuset.mems"))}
        for name in _CPUSET_FLAGS:
            value = _number(cpuset, f"cpuset.{name}")
            if value is not None:
                stats["cpuset"][name] = value

    memory = paths.get("memory")
    if memory:
        raw = _keyed(memory, "memory.stat")
        stats["memory"] = {"cache": raw.get("cache", 0), "raw": raw}
        for key, prefix in (("usage", "memory"), ("swap", "memory.memsw"), ("kernel", "memory.kmem"),
                            ("kernelTCP", "memory.kmem.tcp")):
            entry = _clean({"limit": _number(memory, f"{prefix}.limit_in_bytes"),
                            "usage": _number(memory, f"{prefix}.usage_in_bytes"),
                            "max": _number(memory, f"{prefix}.max_usage_in_bytes"),
                            "failcnt": _number(memory, f"{prefix}.failcnt")})
            if entry:
                stats["memory"][key] = entry

    stats["pids"] = _pids(paths.get("pids"), pids)

    blkio = paths.get("blkio")
    if blkio:
        for key, names in (("ioServiceBytesRecursive", ("blkio.io_service_bytes_recursive",
                                                        "blkio.bfq.io_service_bytes_recursive",
                                                        "blkio.throttle.io_service_bytes_recursive")),
                           ("ioServicedRecursive", ("blkio.io_serviced_recursive",
                                                    "blkio.bfq.io_serviced_recursive",
                                                    "blkio.throttle.io_serviced_recursive"))):
            for name in names:
                text = _text(blkio, name)
                if text is not None:
                    stats["blkio"][key] = _blkio_entries(text)
                    break

    hugetlb = paths.get("hugetlb")
    for size in _page_sizes(hugetlb, ".limit_in_bytes") if hugetlb else ():
        stats["hugetlb"][size] = _clean({
            "usage": _number(hugetlb, f"hugetlb.{size}.usage_in_bytes"),
            "max": _number(hugetlb, f"hugetlb.{size}.max_usage_in_bytes"),
            "failcnt": _number(hugetlb, f"hugetlb.{size}.failcnt")})
    return stats


def _blkio_entries(text):
    """v1 "8:0 Read 4096" lines (the closing "Total N" line has no device)."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, minor = fields[0].split(":")
        entries.append({"major": int(major), "minor": int(minor), "op": fields[1], "value": int(fields[2])})
    return entries


def _pids(directory, pids):
    current = _number(directory, "pids.current")
    limit = _number(directory, "pids.max")
    return {"current": len(pids()) if current is None else current,
            "limit": 0 if limit in (None, _UNLIMITED) else limit}


def v2_stats(directory, pids):
    """Stats from one cgroup2 directory; `pids` lists the processes."""
    stats = _empty_stats()
    cpu_stat = _keyed(directory, "cpu.stat")
    stats["cpu"]["usage"] = _clean({
        "total": cpu_stat["usage_usec"] * 1000 if "usage_usec" in cpu_stat else None,
        "user": cpu_stat.get("user_usec", 0) * 1000,
        "kernel": cpu_stat.get("system_usec", 0) * 1000})
    stats["cpu"]["throttling"] = _throttling(cpu_stat, "throttled_usec", 1000)

    cpus = _text(directory, "cpuset.cpus.effective")
    if cpus is not None:
        stats["cpuset"] = {"cpus": _cpu_list(cpus),
                           "mems": _cpu_list(_text(directory, "cpuset.mems.effective"))}

    current = _number(directory, "memory.current")
    if current is not None:
        raw = _keyed(directory, "memory.stat")
        limit = _number(directory, "memory.max")
        stats["memory"] = {"cache": raw.get("file", 0), "raw": raw, "usage": _clean({
            "usage": current, "limit": limit, "max": _number(directory, "memory.peak"),
            "failcnt": _keyed(directory, "memory.events").get("max", 0)})}
        swap = _number(directory, "memory.swap.current")
        if swap is not None:
            # runc reports v2 swap as memory+swap, the way v1's memsw counts it
            swap_limit = _number(directory, "memory.swap.max")
            stats["memory"]["swap"] = {
                "usage": swap + current, "failcnt": _keyed(directory, "memory.swap.events").get("max", 0),
                "limit": _UNLIMITED if _UNLIMITED in (swap_limit, limit) else swap_limit + limit}

    stats["pids"] = _pids(directory, pids)

    io_stat = _text(directory, "io.stat")
    if io_stat:
        service_bytes, serviced = [], []
        for line in io_stat.splitlines():
            fields = line.split()
            major, minor = (int(n) for n in fields[0].split(":"))
            values = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
            for op, bytes_key, ios_key in (("Read", "rbytes", "rios"), ("Write", "wbytes", "wios")):
                if bytes_key in values:
                    service_bytes.append({"major": major, "minor": minor, "op": op,
                                          "value": int(values[bytes_key])})
                if ios_key in values:
                    serviced.append({"major": major, "minor": minor, "op": op, "value": int(values[ios_key])})
        stats["blkio"] = {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}

    for size in _page_sizes(directory, ".max"):
        stats["hugetlb"][size] = _clean({
            "usage": _number(directory, f"hugetlb.{size}.current"),
            "failcnt": _keyed(directory, f"hugetlb.{size}.events").get("max", 0)})
    return stats
