"""vessel-runtime delete: remove a container's processes, cgroups and state."""

import os
import sys
import time

from vessel.errors import Conflict, NotFound, VesselError
from vessel.runtime import container as ctr

__all__ = ["main", "delete"]


def main(ctx, opts, args):
    force = bool(opts.get("force"))
    failed = 0
    for container_id in args:
        try:
            container = ctr.Container.load(ctx.root, container_id)
        except NotFound:
            if force:
                continue
            raise
        delete(container, force)
    return failed


def delete(container, force=False):
    status = container.status()
    if status in (ctr.RUNNING, ctr.PAUSED) and not force:
        raise Conflict(f"cannot delete container {container.id} that is not stopped: {status}")
    if status == ctr.CREATING and not force and _create_in_progress(container):
        raise Conflict(f"cannot delete container {container.id}: it is still being created")
    manager = container.cgroup_manager()
    if status != ctr.STOPPED:
        if container.alive():
            try:
                os.kill(container.pid, 9)
            except ProcessLookupError:
                pass
    if manager is not None:
        try:
            manager.kill_all(9)
            if status == ctr.PAUSED:
                manager.thaw()
        except OSError:
            pass
    _wait_gone(container)
    if manager is not None:
        manager.destroy()
    _poststop(container)
    container.remove_dir()


def _create_in_progress(container):
    # a create that died leaves a directory without state; a live one is younger than a minute
    try:
        age = time.time() - os.stat(container.dir).st_mtime
    except FileNotFoundError:
        return False
    return age < 60


def _wait_gone(container, timeout=10.0):
    deadline = time.monotonic() + timeout
    while container.alive():
        if time.monotonic() > deadline:
            raise Conflict(f"container {container.id}: init did not exit after SIGKILL")
        time.sleep(0.005)


def _poststop(container):
    if "poststop" not in container.data.get("hooks", ("poststop",)):
        return
    if not os.path.exists(container.file("config.json")):
        return
    from vessel.runtime import launcher

    spec_ = launcher.load_config(container)
    if not spec_.hooks.poststop:
        return
    from vessel.runtime import hooks

    state = container.oci_state()
    state["status"] = ctr.STOPPED
    try:
        hooks.run_hooks("poststop", spec_.hooks.poststop, state)
    except VesselError as exc:
        sys.stderr.write(f"vessel-runtime: warning: {exc}\n")
