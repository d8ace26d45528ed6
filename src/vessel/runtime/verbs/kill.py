"""vessel-runtime kill: send a signal to the container's init (or all its processes)."""

import os

from vessel.errors import Conflict, InvalidArgument
from vessel.runtime import container as ctr
from vessel.runtime.signals import parse_signal

__all__ = ["main", "kill"]


def main(ctx, opts, args):
    try:
        sig = parse_signal(args[1] if len(args) > 1 else "SIGTERM")
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    kill(ctr.Container.load(ctx.root, args[0]), sig, bool(opts.get("all")))
    return 0


def kill(container, sig, all_processes=False):
    status = container.status()
    if status not in ctr.ALLOWED["kill"] and not (all_processes and status == ctr.STOPPED):
        raise Conflict(f"container {container.id} is not running (status {status})")
    if all_processes:
        manager = container.cgroup_manager()
        if manager is not None:
            manager.kill_all(sig)
            return
    try:
        os.kill(container.pid, sig)
    except ProcessLookupError:
        raise Conflict(f"container {container.id} is not running") from None
    if status == ctr.PAUSED and sig == 9:
        manager = container.cgroup_manager()
        if manager is not None:
            manager.thaw()
