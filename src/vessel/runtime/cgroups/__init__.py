"""Cgroups for vessel-runtime: limits, membership, freezing, stats; v1, v2 and hybrid hosts.

The runtime core uses only what is exported here::

    resources = parse_resources(spec.linux.resources)     # InvalidArgument on bad input
    manager = open_manager(spec.linux.cgroups_path, container_id)
    manager.create(); manager.apply(resources); manager.add(pid)
    state["cgroup"] = manager.to_state()  ...  Manager.from_state(state["cgroup"])

Importing this package loads only os/errno-level modules; the per-version
managers, stats and the eBPF device filter are imported when first needed.
"""

import os

from vessel.errors import Unsupported
from vessel.runtime.cgroups.manager import Manager
from vessel.runtime.cgroups.resources import Resources, parse_resources, parse_update_flags

__all__ = ["Manager", "Resources", "detect", "open_manager", "parse_resources", "parse_update_flags"]

CGROUP_ROOT = "/sys/fs/cgroup"


def detect(root=CGROUP_ROOT):
    """"v2" when `root` is a cgroup2 mount (unified only), else "v1" (hybrid counts as v1)."""
    return "v2" if os.path.exists(f"{root}/cgroup.controllers") else "v1"


def open_manager(cgroups_path, container_id, systemd=False):
    """The manager for a container's cgroup (nothing is created yet).

    `cgroups_path` is the OCI linux.cgroupsPath: absolute paths are below the
    cgroup mount root; relative or empty ones below the caller's own cgroup
    (per hierarchy on v1), empty meaning "vessel-<container_id>".
    """
    if systemd:
        raise Unsupported("--systemd-cgroup: vessel-runtime has no systemd cgroup driver; "
                          "drop the flag and give linux.cgroupsPath as a cgroupfs path")
    if detect() == "v2":
        from vessel.runtime.cgroups.v2 import V2Manager
        return V2Manager.open(cgroups_path, container_id)
    from vessel.runtime.cgroups.v1 import V1Manager
    return V1Manager.open(cgroups_path, container_id)
