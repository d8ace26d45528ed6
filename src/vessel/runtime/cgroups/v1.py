"""cgroup v1: one directory per mounted hierarchy (cpu, memory, ..., name=systemd).

On hybrid hosts the cgroup2 hierarchy (usually /sys/fs/cgroup/unified) is
joined too, and used only for what v1 lacks: cgroup.kill, a freezer or device
filter when those v1 controllers are not mounted, and `unified` resources.
Values and write orders follow runc: memory before or after memory+swap
depending on the current limit, CFS period retried after the quota, cpu.shares
read back. The deprecated kernel memory limit is ignored, as runc does.
"""

import os

from vessel.errors import Conflict, InvalidArgument, Unsupported
from vessel.runtime.cgroups import host
from vessel.runtime.cgroups.manager import (Manager, cgroup_error, read_file, read_int, remove_dirs,
                                             wait_until, write_file)

__all__ = ["Hierarchy", "V1Manager"]


class Hierarchy:
    """The container's `directory` in the hierarchy mounted at `mountpoint`; no controllers: cgroup2."""

    __slots__ = ("mountpoint", "controllers", "directory")

    def __init__(self, mountpoint, controllers, directory):
        self.mountpoint = mountpoint
        self.controllers = tuple(controllers)
        self.directory = directory

    @property
    def optional(self):
        """Named hierarchies (name=systemd) and cgroup2 carry no v1 limits: failing to join is not fatal."""
        return all(c.startswith("name=") for c in self.controllers)


def _mkdirs(top, directory, created, cpuset):
    """mkdir -p below the mountpoint `top`; cpuset levels with empty cpus/mems get their parent's."""
    current = top
    for part in directory[len(top):].strip("/").split("/"):
        parent, current = current, f"{current}/{part}"
        try:
            os.mkdir(current, 0o755)
            created.append(current)
        except FileExistsError:
            pass
        if cpuset:  # a task cannot join a cpuset cgroup with no cpus or mems
            for name in ("cpuset.cpus", "cpuset.mems"):
                if read_file(current, name, "-") == "":
                    write_file(current, name, read_file(parent, name))


class V1Manager(Manager):
    """A container cgroup spread over v1 hierarchies, plus the unified (cgroup2) one if any."""

    __slots__ = ("hierarchies",)
    mode = "v1"

    def __init__(self, hierarchies):
        self.hierarchies = list(hierarchies)

    @property
    def unified(self):
        """The container's directory in the cgroup2 hierarchy of a hybrid host, or None."""
        return next((h.directory for h in self.hierarchies if not h.controllers), None)

    @classmethod
    def open(cls, cgroups_path, container_id):
        own = host.own_cgroups()
        hierarchies = []
        for mount in host.cgroup_mounts():
            own_path = own.get(mount.controllers[0] if mount.controllers else "")
            if own_path is None:  # a hierarchy this process is not in (cgroup_mounts lists one cgroup2)
                continue
            path = host.container_path(cgroups_path, container_id, own_path)
            hierarchies.append(Hierarchy(mount.mountpoint, mount.controllers, mount.directory(path)))
        if all(not h.controllers for h in hierarchies):
            raise Unsupported("cgroup: no cgroup v1 hierarchy is mounted on this host")
        return cls(hierarchies)

    def paths(self):
        """{controller: directory}; "" is the unified directory on hybrid hosts."""
        return {c: h.directory for h in self.hierarchies for c in h.controllers or ("",)}

    def directories(self):
        return list(dict.fromkeys(h.directory for h in self.hierarchies))

    def join_plan(self):
        tasks = [f"{d}/tasks" for d in dict.fromkeys(h.directory for h in self.hierarchies if h.controllers)]
        return self.unified, tasks

    def _procs_directory(self):
        paths = self.paths()
        for controller in ("freezer", "pids", "memory", "cpu", "devices", ""):
            if controller in paths:
                return paths[controller]
        return self.directories()[0]

    def _dir(self, controller, what):
        directory = self.paths().get(controller)
        if directory is None:
            raise Unsupported(f"{what} needs the {controller} cgroup controller, "
                              "which is not mounted on this host")
        return directory

    def create(self):
        created = []
        try:
            for hierarchy in list(self.hierarchies):
                mark = len(created)
                try:
                    _mkdirs(hierarchy.mountpoint, hierarchy.directory, created,
                            "cpuset" in hierarchy.controllers)
                except OSError as exc:
                    if not hierarchy.optional:
                        raise cgroup_error(exc, hierarchy.directory, "create") from None
                    remove_dirs(created[mark:])
                    del created[mark:]
                    self.hierarchies.remove(hierarchy)
        except BaseException:
            remove_dirs(created)
            raise

    # -- limits -------------------------------------------------------------------------------

    def apply(self, resources):
        r = resources
        if r.memory:
            self._apply_memory(r.memory)
        if r.cpu:
            self._apply_cpu(r.cpu)
        if r.pids and "limit" in r.pids:
            limit = r.pids["limit"]
            write_file(self._dir("pids", "linux.resources.pids"), "pids.max",
                       "max" if limit < 0 else str(limit))
        if r.block_io:
            self._apply_blkio(r.block_io)
        for entry in r.hugepage_limits or ():
            directory = self._dir("hugetlb", "linux.resources.hugepageLimits")
            prefix = f"hugetlb.{entry['pageSize']}"
            write_file(directory, f"{prefix}.limit_in_bytes", str(entry["limit"]))
            if os.path.exists(f"{directory}/{prefix}.rsvd.limit_in_bytes"):
                write_file(directory, f"{prefix}.rsvd.limit_in_bytes", str(entry["limit"]))
        if r.devices:
            self._apply_devices(r.devices)
        if r.network:
            self._apply_network(r.network)
        for device, limits in (r.rdma or {}).items():
            from vessel.runtime.cgroups.v2 import rdma_line
            write_file(self._dir("rdma", "linux.resources.rdma"), "rdma.max", rdma_line(device, limits))
        if r.unified:
            if not self.unified:
                raise Unsupported("linux.resources.unified: this host has no cgroup v2 hierarchy")
            from vessel.runtime.cgroups.v2 import write_unified
            write_unified(self.unified, r.unified)

    def _apply_memory(self, memory):
        directory = self._dir("memory", "linux.resources.memory")
        limit, swap = memory.get("limit", 0), memory.get("swap", 0)
        has_swap = os.path.exists(f"{directory}/memory.memsw.limit_in_bytes")
        if limit == -1 and swap == 0 and has_swap:
            swap = -1  # unlimited memory means unlimited swap too
        if swap and not has_swap:
            if swap != -1:
                raise Unsupported("linux.resources.memory.swap: this kernel does not account swap "
                                  "(no memory.memsw.limit_in_bytes)")
            swap = 0
        # The kernel wants limit <= memory+swap at every moment: raise swap first when growing.
        swap_first = bool(limit and swap) and (
            swap == -1 or read_int(directory, "memory.limit_in_bytes") < swap)
        if swap and swap_first:
            write_file(directory, "memory.memsw.limit_in_bytes", str(swap))
        if limit:
            _set_memory_limit(directory, limit)
        if swap and not swap_first:
            write_file(directory, "memory.memsw.limit_in_bytes", str(swap))
        if memory.get("reservation"):
            write_file(directory, "memory.soft_limit_in_bytes", str(memory["reservation"]))
        if memory.get("kernelTCP"):
            write_file(directory, "memory.kmem.tcp.limit_in_bytes", str(memory["kernelTCP"]))
        if memory.get("disableOOMKiller"):
            write_file(directory, "memory.oom_control", "1")
        if memory.get("swappiness", -1) != -1:
            write_file(directory, "memory.swappiness", str(memory["swappiness"]))
        if "useHierarchy" in memory:
            write_file(directory, "memory.use_hierarchy", "1" if memory["useHierarchy"] else "0")

    def _apply_cpu(self, cpu):
        if any(cpu.get(k) for k in ("cpus", "mems")):
            cpuset = self._dir("cpuset", "linux.resources.cpu.cpus/mems")
            for key in ("cpus", "mems"):
                if cpu.get(key):
                    write_file(cpuset, f"cpuset.{key}", cpu[key])
        keys = ("shares", "quota", "period", "burst", "idle", "realtimeRuntime", "realtimePeriod")
        if not any(key in cpu for key in keys):
            return
        directory = self._dir("cpu", "linux.resources.cpu")
        if cpu.get("shares"):
            write_file(directory, "cpu.shares", str(cpu["shares"]))
            actual = read_int(directory, "cpu.shares")
            if actual != cpu["shares"]:
                bound = "maximum" if actual < cpu["shares"] else "minimum"
                raise InvalidArgument(
                    f"linux.resources.cpu.shares: the {bound} this kernel allows is {actual}")
        quota = cpu.get("quota", 0)
        pending = []  # writes the kernel refused until the new quota is in place
        for key, name in (("period", "cpu.cfs_period_us"), ("burst", "cpu.cfs_burst_us")):
            if cpu.get(key) or (key == "burst" and key in cpu):
                try:
                    write_file(directory, name, str(cpu[key]))
                except InvalidArgument as exc:  # EINVAL; Unsupported (no such file) is final
                    if not quota or isinstance(exc, Unsupported):
                        raise
                    pending.append((name, str(cpu[key])))
        if quota:
            write_file(directory, "cpu.cfs_quota_us", str(quota))
            for name, value in pending:
                write_file(directory, name, value)
        if "idle" in cpu:
            write_file(directory, "cpu.idle", str(cpu["idle"]))
        # The realtime period bounds the runtime: the same retry as for CFS.
        runtime, period = cpu.get("realtimeRuntime", 0), cpu.get("realtimePeriod", 0)
        period_pending = False
        if period:
            try:
                write_file(directory, "cpu.rt_period_us", str(period))
            except InvalidArgument as exc:
                if not runtime or isinstance(exc, Unsupported):
                    raise
                period_pending = True
        if runtime:
            write_file(directory, "cpu.rt_runtime_us", str(runtime))
            if period_pending:
                write_file(directory, "cpu.rt_period_us", str(period))

    def _apply_blkio(self, block_io):
        directory = self._dir("blkio", "linux.resources.blockIO")
        bfq = not os.path.exists(f"{directory}/blkio.weight") and os.path.exists(
            f"{directory}/blkio.bfq.weight")
        weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
        if block_io.get("weight"):
            write_file(directory, weight_file, str(block_io["weight"]))
        if block_io.get("leafWeight"):
            write_file(directory, "blkio.leaf_weight", str(block_io["leafWeight"]))
        for device in block_io.get("weightDevice", ()):
            number = f"{device['major']}:{device['minor']}"
            if device.get("weight"):
                write_file(directory, f"{weight_file}_device", f"{number} {device['weight']}")
            if device.get("leafWeight"):
                write_file(directory, "blkio.leaf_weight_device", f"{number} {device['leafWeight']}")
        for key, name in (("throttleReadBpsDevice", "read_bps_device"),
                          ("throttleWriteBpsDevice", "write_bps_device"),
                          ("throttleReadIOPSDevice", "read_iops_device"),
                          ("throttleWriteIOPSDevice", "write_iops_device")):
            for device in block_io.get(key, ()):
                write_file(directory, f"blkio.throttle.{name}",
                           f"{device['major']}:{device['minor']} {device['rate']}")

    def _apply_devices(self, rules):
        paths = self.paths()
        if "devices" not in paths and self.unified:
            from vessel.runtime.cgroups.v2 import apply_device_rules
            apply_device_rules(self.unified, rules)
            return
        from vessel.runtime.cgroups.devices import v1_writes
        directory = self._dir("devices", "linux.resources.devices")
        for name, line in v1_writes(rules):
            write_file(directory, name, line)

    def _apply_network(self, network):
        if "classID" in network:
            write_file(self._dir("net_cls", "linux.resources.network.classID"), "net_cls.classid",
                       str(network["classID"]))
        for entry in network.get("priorities", ()):
            write_file(self._dir("net_prio", "linux.resources.network.priorities"),
                       "net_prio.ifpriomap", f"{entry['name']} {entry['priority']}")

    # -- freezer, signals, stats --------------------------------------------------------------

    def _freezer(self):
        """("v1", freezer dir) or ("v2", unified dir): the unified freezer stands in if need be."""
        paths = self.paths()
        if "freezer" in paths:
            return "v1", paths["freezer"]
        if self.unified and os.path.exists(f"{self.unified}/cgroup.freeze"):
            return "v2", self.unified
        raise Unsupported("cgroup: freezing needs the freezer controller, which is not mounted here")

    def freeze(self):
        kind, directory = self._freezer()
        if kind == "v2":
            from vessel.runtime.cgroups import v2
            v2.freeze(directory)
            return

        def frozen():
            state = read_file(directory, "freezer.state")
            if state == "FREEZING":  # tasks forked meanwhile: ask again
                write_file(directory, "freezer.state", "FROZEN")
            return state == "FROZEN"

        write_file(directory, "freezer.state", "FROZEN")
        if not wait_until(frozen):
            write_file(directory, "freezer.state", "THAWED")
            raise Conflict(f"cgroup: {directory} did not freeze in time")

    def thaw(self):
        kind, directory = self._freezer()
        if kind == "v2":
            from vessel.runtime.cgroups import v2
            v2.thaw(directory)
            return
        write_file(directory, "freezer.state", "THAWED")
        wait_until(lambda: read_file(directory, "freezer.state") == "THAWED")

    def is_frozen(self):
        kind, directory = self._freezer()
        if kind == "v2":
            from vessel.runtime.cgroups import v2
            return v2.is_frozen(directory)
        return read_file(directory, "freezer.state") == "FROZEN"

    def _kill_file(self):
        if self.unified and os.path.exists(f"{self.unified}/cgroup.kill"):
            return self.unified
        return None

    def stats(self):
        from vessel.runtime.cgroups import stats
        return stats.v1_stats(self.paths(), self.pids)

    def mounts(self):
        """[(name, host_dir, options, symlinks)] per v1 hierarchy.

        name is the hierarchy's directory under /sys/fs/cgroup ("cpu,cpuacct",
        "memory", "systemd"); host_dir the container's cgroup in it; options the
        cgroup mount options naming it ("cpu,cpuacct", "name=systemd");
        symlinks the controller names that should point at name ("cpu", "cpuacct").
        """
        result = []
        for hierarchy in self.hierarchies:
            if not hierarchy.controllers:
                continue
            name = os.path.basename(hierarchy.mountpoint)
            links = tuple(c for c in hierarchy.controllers if c != name and not c.startswith("name="))
            result.append((name, hierarchy.directory, ",".join(hierarchy.controllers), links))
        return result

    def to_state(self):
        return {"mode": "v1",
                "hierarchies": [{"mountpoint": h.mountpoint, "controllers": list(h.controllers),
                                 "directory": h.directory} for h in self.hierarchies]}

    @classmethod
    def from_state(cls, data):
        return cls([Hierarchy(h["mountpoint"], h["controllers"], h["directory"])
                    for h in data["hierarchies"]])


def _set_memory_limit(directory, limit):
    try:
        write_file(directory, "memory.limit_in_bytes", str(limit))
    except Conflict:  # EBUSY: below what the cgroup already uses
        usage = read_int(directory, "memory.usage_in_bytes")
        peak = read_int(directory, "memory.max_usage_in_bytes")
        raise Conflict(f"linux.resources.memory.limit: cannot set {limit}, the cgroup already uses "
                       f"{usage} bytes (peak {peak})") from None
