"""What `system df`, `info` and `version` report, and the filters of `system prune`, in the shapes of
Docker's API (/system/df, /info, /version) so that the CLI and docker-py style callers share them."""

import os
import platform
import shutil
import uuid

from vessel.engine.model import label_matches
from vessel.engine.state import PAUSED, RUNNING
from vessel.errors import NotFound
from vessel.runtime.jsonio import write_atomic

__all__ = ["disk_usage", "info", "version", "prune_filter", "rfc3339_seconds", "API_VERSION"]

API_VERSION = "1.43"
_BACKING = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}  # Docker's names of filesystems


def rfc3339_seconds(text):
    """An RFC 3339 time (an image's or a network's `created`) as unix seconds (0 when absent or malformed)."""
    from vessel.times import parse_rfc3339

    return (parse_rfc3339(text) or 0) // 1_000_000_000


def _filesystem_type(path):
    """The type of the filesystem holding `path` (the longest mount point above it in /proc/self/mounts)."""
    best, kind = "", ""
    with open("/proc/self/mounts") as handle:
        for line in handle:
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def _container_size(engine, record):
    try:
        return engine.images.snapshots.usage(record.id)[0]
    except NotFound:
        return 0


def disk_usage(engine):
    """Docker's /system/df: LayersSize, Images, Containers, Volumes, BuildCache."""
    records = engine.list()
    images = engine.images.list()
    users = {}
    for record in records:
        users[record.image_id] = users.get(record.image_id, 0) + 1
    layer_images = {}
    layer_sizes = {}
    for image in images:
        for layer in image.layers:
            layer_images[layer.chain_id] = layer_images.get(layer.chain_id, 0) + 1
            layer_sizes[layer.chain_id] = layer.size
    image_rows = []
    for image in images:
        shared = sum(layer.size for layer in image.layers if layer_images[layer.chain_id] > 1)
        image_rows.append({
            "Id": image.id, "ParentId": "", "RepoTags": image.repo_tags, "RepoDigests": image.repo_digests,
            "Created": rfc3339_seconds(image.created), "Size": image.size, "SharedSize": shared,
            "VirtualSize": image.size, "Labels": image.config.config.labels or {},
            "Containers": users.get(image.id, 0)})
    sizes = {image.id: image.size for image in images}
    container_rows = []
    for record in records:
        size = _container_size(engine, record)
        container_rows.append({
            "Id": record.id, "Names": ["/" + record.name], "Image": record.image_ref, "ImageID": record.image_id,
            "Command": " ".join(record.config.args), "Created": int(record.created), "State": record.status,
            "Status": record.status, "SizeRw": size, "SizeRootFs": size + sizes.get(record.image_id, 0),
            "Labels": record.labels,
            "Mounts": [mount.source for mount in record.config.mounts if mount.type == "volume"]})
    volume_rows = []
    volumes = engine.volumes
    for volume, size, references in volumes.usage():
        volume_rows.append({
            "Name": volume.name, "Driver": volume.driver, "Mountpoint": volumes.data_path(volume.name),
            "Labels": volume.labels, "Scope": "local", "Options": volume.options,
            "UsageData": {"Size": size, "RefCount": references}})
    return {"LayersSize": sum(layer_sizes.values()), "Images": image_rows, "Containers": container_rows,
            "Volumes": volume_rows, "BuildCache": []}


def _memory_total():
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _operating_system():
    try:
        with open("/etc/os-release") as handle:
            fields = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
    except OSError:
        return "Linux"
    return fields.get("PRETTY_NAME", "Linux").strip('"')


def _engine_id(root):
    """A stable id of this state root (Docker's daemon ID), made on first use."""
    path = os.path.join(root, "engine", "id")
    try:
        with open(path) as handle:
            return handle.read().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        write_atomic(path, value, mode=0o644)
        return value


def _runtimes():
    found = {"vessel": {"path": "vessel-runtime"}}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            found[name] = {"path": path}
    return found


def info(engine):
    """Docker's /info object for this state root."""
    from vessel import __version__

    records = engine.list()
    running = sum(r.status == RUNNING for r in records)
    paused = sum(r.status == PAUSED for r in records)
    cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    backing = _filesystem_type(engine.root)
    return {
        "ID": _engine_id(engine.root), "Containers": len(records), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": len(records) - running - paused,
        "Images": len(engine.images.list()), "Driver": engine.images.snapshots.driver,
        "DriverStatus": [["Backing Filesystem", _BACKING.get(backing, backing)]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "none"]},
        "MemoryLimit": True, "SwapLimit": os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": _read_flag("/proc/sys/net/ipv4/ip_forward"), "Debug": False,
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version,
        "KernelVersion": platform.release(), "OperatingSystem": _operating_system(), "OSVersion": "",
        "OSType": "linux", "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1,
        "MemTotal": _memory_total(), "DockerRootDir": engine.root, "Name": platform.node(),
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": _runtimes(), "DefaultRuntime": "vessel", "Swarm": {"LocalNodeState": "inactive"},
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"], "Warnings": [],
    }


def _read_flag(path):
    try:
        with open(path) as handle:
            return handle.read().strip() == "1"
    except OSError:
        return False


def version():
    """Docker's /version object (the engine is this process: client and server are one program)."""
    from vessel import __version__

    return {
        "Platform": {"Name": "vessel"}, "Version": __version__, "ApiVersion": API_VERSION,
        "MinAPIVersion": "1.24", "GitCommit": "", "GoVersion": "python" + platform.python_version(),
        "Os": "linux", "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "KernelVersion": platform.release(), "BuildTime": "",
        "Components": [{"Name": "Engine", "Version": __version__,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Os": "linux",
                                    "KernelVersion": platform.release()}}],
    }


def prune_filter(filters):
    """`prune --filter until=|label=|label!=` ({key: [values]}) as a predicate: selected(labels, created unix
    seconds)."""
    from vessel.times import parse_time

    until = [parse_time(v, "until") / 1e9 for v in filters.get("until", []) if v]
    labels, unlabels = filters.get("label", []), filters.get("label!", [])

    def selected(item_labels, created):
        return (all(created < limit for limit in until)
                and all(label_matches(item_labels, text) for text in labels)
                and not any(label_matches(item_labels, text) for text in unlabels))

    return selected
