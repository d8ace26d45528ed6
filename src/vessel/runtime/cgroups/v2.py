"""cgroup v2 (unified hierarchy): one directory per container.

Values follow runc/crun: cpu shares become cpu.weight on their quadratic curve,
the OCI swap (memory+swap) becomes memory.swap.max = swap - limit, blkio weight
goes to io.bfq.weight as is or to io.weight converted, device rules become an
eBPF program. v1-only memory knobs (kernel, kernelTCP, swappiness,
disableOOMKiller, useHierarchy) and blockIO leafWeight are ignored as runc
ignores them; realtime CPU and network limits, which v2 cannot express, raise
Unsupported.
"""

import os

from vessel.errors import Conflict, InvalidArgument, NotFound, Unsupported, VesselError
from vessel.runtime.cgroups import host
from vessel.runtime.cgroups.manager import (Manager, cgroup_error, read_file, read_int, remove_dirs,
                                             wait_until, write_file)

__all__ = ["V2Manager", "cpu_weight", "io_weight", "swap_max"]

DEFAULT_ROOT = "/sys/fs/cgroup"


def cpu_weight(shares):
    """cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100); 0 stays 0."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    from math import ceil, log2
    power = log2(shares)
    return ceil(10 ** ((power * power + 125 * power) / 612.0 - 7.0 / 34.0))


def io_weight(blkio_weight):
    """blkio weight (10..1000) to io.weight (1..10000), linearly; 0 stays 0."""
    if blkio_weight == 0:
        return 0
    return 1 + (blkio_weight - 10) * 9999 // 990


def swap_max(swap, limit):
    """OCI memory.swap (memory+swap; 0 unset, -1 unlimited) to memory.swap.max; None: leave it."""
    if limit == -1 and swap == 0:
        return "max"  # "unlimited memory" means unlimited swap too, as on v1
    if swap == -1:
        return "max"
    if swap == 0:
        return None
    if limit == -1:
        return str(swap)
    if limit == 0:
        raise InvalidArgument("linux.resources.memory.swap: cannot be set without memory.limit")
    if swap < limit:
        raise InvalidArgument(f"linux.resources.memory.swap: {swap} is below memory.limit {limit} "
                              "(swap is memory+swap)")
    return str(swap - limit)


def _max(value):
    return "max" if value == -1 else str(value)


def _apply_memory(directory, memory):
    limit = memory.get("limit", 0)
    swap = memory.get("swap", 0)
    if memory.get("checkBeforeUpdate") and limit > 0:
        usage = read_int(directory, "memory.current")
        if usage >= limit:
            raise Conflict(f"cgroup: memory limit {limit} is not above the current usage {usage}")
    swap_value = swap_max(swap, limit)
    if swap_value is not None:
        try:
            write_file(directory, "memory.swap.max", swap_value)
        except Unsupported:
            if swap_value not in ("max", "0"):  # no swap accounting: only a real limit matters
                raise
    if limit:
        write_file(directory, "memory.max", _max(limit))
    if memory.get("reservation"):
        write_file(directory, "memory.low", _max(memory["reservation"]))


def _apply_cpu(directory, cpu):
    if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
        raise Unsupported("linux.resources.cpu.realtimeRuntime/realtimePeriod: "
                          "cgroup v2 has no realtime CPU limits")
    if "idle" in cpu:
        write_file(directory, "cpu.idle", str(cpu["idle"]))
    if cpu.get("shares"):
        write_file(directory, "cpu.weight", str(cpu_weight(cpu["shares"])))
    quota, period = cpu.get("quota", 0), cpu.get("period", 0)
    burst = str(cpu["burst"]) if "burst" in cpu else None
    if burst is not None:
        try:
            write_file(directory, "cpu.max.burst", burst)
            burst = None
        except InvalidArgument as exc:  # EINVAL: may need the new quota first
            if not quota or isinstance(exc, Unsupported):
                raise
    if quota or period:
        write_file(directory, "cpu.max", f"{quota if quota > 0 else 'max'} {period or 100000}")
    if burst is not None:
        write_file(directory, "cpu.max.burst", burst)
    for key in ("cpus", "mems"):
        if cpu.get(key):
            write_file(directory, f"cpuset.{key}", cpu[key])


def _apply_io(directory, block_io):
    bfq = os.path.exists(f"{directory}/io.bfq.weight")
    if block_io.get("weight"):
        if bfq:
            write_file(directory, "io.bfq.weight", str(block_io["weight"]))
        else:
            write_file(directory, "io.weight", str(io_weight(block_io["weight"])))
    for device in block_io.get("weightDevice", ()):
        if device.get("weight"):
            number = f"{device['major']}:{device['minor']}"
            if bfq:
                write_file(directory, "io.bfq.weight", f"{number} {device['weight']}")
            else:
                write_file(directory, "io.weight", f"{number} {io_weight(device['weight'])}")
    for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                      ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for device in block_io.get(key, ()):
            write_file(directory, "io.max", f"{device['major']}:{device['minor']} {name}={device['rate']}")


def _apply_hugetlb(directory, limits):
    for entry in limits:
        prefix = f"hugetlb.{entry['pageSize']}"
        write_file(directory, f"{prefix}.max", str(entry["limit"]))
        if os.path.exists(f"{directory}/{prefix}.rsvd.max"):
            write_file(directory, f"{prefix}.rsvd.max", str(entry["limit"]))


def rdma_line(device, limits):
    fields = [device]
    if "hcaHandles" in limits:
        fields.append(f"hca_handle={limits['hcaHandles']}")
    if "hcaObjects" in limits:
        fields.append(f"hca_object={limits['hcaObjects']}")
    return " ".join(fields)


def apply_device_rules(directory, rules):
    """Install the rules as this cgroup's eBPF device program (none if they allow everything)."""
    from vessel.runtime.cgroups import devices, ebpf

    state = devices.emulate(rules)
    program = None if state.default_allow and not state.exceptions else devices.bpf_program(state)
    try:
        ebpf.replace_device_program(directory, program)
    except OSError as exc:
        error = cgroup_error(exc, directory, "install the eBPF device filter on")
        raise type(error)(f"{error} ({exc.strerror})") from None


def write_unified(directory, unified):
    for name, value in unified.items():
        write_file(directory, name, value)


class V2Manager(Manager):
    """The container's directory `root + path` in a cgroup2 hierarchy mounted at `root`."""

    __slots__ = ("root", "path")
    mode = "v2"

    def __init__(self, path, root=DEFAULT_ROOT):
        self.root = root.rstrip("/") or "/"
        self.path = path

    @classmethod
    def open(cls, cgroups_path, container_id, root=DEFAULT_ROOT):
        own = host.own_cgroups().get("", "/")
        return cls(host.container_path(cgroups_path, container_id, own), root)

    @property
    def directory(self):
        return self.root + self.path

    def join_plan(self):
        return self.directory, []

    def directories(self):
        return [self.directory]

    def create(self):
        """mkdir the cgroup and its parents, enabling every available controller on the way."""
        created = []
        current = self.root
        try:
            for part in self.path.strip("/").split("/"):
                self._enable_controllers(current)
                current = f"{current}/{part}"
                try:
                    os.mkdir(current, 0o755)
                    created.append(current)
                except FileExistsError:
                    pass
        except OSError as exc:
            remove_dirs(created)
            raise cgroup_error(exc, current, "create") from None
        except BaseException:
            remove_dirs(created)
            raise

    @staticmethod
    def _enable_controllers(directory):
        """Best effort: a parent with tasks of its own (EBUSY) cannot delegate; apply will say so."""
        available = read_file(directory, "cgroup.controllers", "").split()
        enabled = read_file(directory, "cgroup.subtree_control", "").split()
        for controller in available:
            if controller in enabled:
                continue
            try:
                write_file(directory, "cgroup.subtree_control", f"+{controller}")
            except VesselError:
                continue

    def apply(self, resources):
        directory = self.directory
        if resources.network:
            raise Unsupported("linux.resources.network: cgroup v2 has no net_cls/net_prio")
        if resources.memory:
            _apply_memory(directory, resources.memory)
        if resources.cpu:
            _apply_cpu(directory, resources.cpu)
        if resources.pids and "limit" in resources.pids:
            write_file(directory, "pids.max", "max" if resources.pids["limit"] < 0
                       else str(resources.pids["limit"]))
        if resources.block_io:
            _apply_io(directory, resources.block_io)
        if resources.hugepage_limits:
            _apply_hugetlb(directory, resources.hugepage_limits)
        for device, limits in (resources.rdma or {}).items():
            write_file(directory, "rdma.max", rdma_line(device, limits))
        if resources.devices:
            apply_device_rules(directory, resources.devices)
        if resources.unified:
            write_unified(directory, resources.unified)

    def freeze(self):
        freeze(self.directory)

    def thaw(self):
        thaw(self.directory)

    def is_frozen(self):
        return is_frozen(self.directory)

    def _kill_file(self):
        return self.directory if os.path.exists(f"{self.directory}/cgroup.kill") else None

    def stats(self):
        from vessel.runtime.cgroups import stats
        return stats.v2_stats(self.directory, self.pids)

    def mounts(self):
        """[(name, host_dir, options, symlinks)]: for v2 the single ("", dir, "", ())."""
        return [("", self.directory, "", ())]

    def to_state(self):
        return {"mode": "v2", "root": self.root, "path": self.path}

    @classmethod
    def from_state(cls, data):
        return cls(data["path"], data.get("root", DEFAULT_ROOT))


def freeze(directory):
    """Freeze a cgroup2 directory and wait until cgroup.events says it is frozen."""
    write_file(directory, "cgroup.freeze", "1")
    if not wait_until(lambda: is_frozen(directory)):
        write_file(directory, "cgroup.freeze", "0")
        raise Conflict(f"cgroup: {directory} did not freeze in time")


def thaw(directory):
    write_file(directory, "cgroup.freeze", "0")
    wait_until(lambda: not is_frozen(directory))


def is_frozen(directory):
    return _events(directory).get("frozen") == 1


def _events(directory):
    """cgroup.events as {key: int}; empty if the cgroup is gone."""
    try:
        text = read_file(directory, "cgroup.events")
    except (NotFound, Unsupported):
        return {}
    return {key: int(value) for key, value in (line.split() for line in text.splitlines())}
