"""vessel-runtime events: container statistics as JSON lines (runc's shape)."""

import sys
import time

from vessel.errors import Conflict, InvalidArgument
from vessel.runtime import container as ctr
from vessel.runtime import jsonio
from vessel.times import parse_duration

__all__ = ["main"]


def main(ctx, opts, args):
    interval = parse_duration(opts.get("interval") or "5s", "--interval") / 1e9
    if interval <= 0:
        raise InvalidArgument("duration interval must be greater than 0")
    container = ctr.Container.load(ctx.root, args[0])
    if container.status() == ctr.STOPPED:
        raise Conflict(f"container {container.id} is not running")
    manager = container.cgroup_manager()
    while True:
        event = {"type": "stats", "id": container.id, "data": manager.stats() if manager else {}}
        sys.stdout.write(jsonio.dumps(event) + "\n")
        sys.stdout.flush()
        if opts.get("stats"):
            return 0
        time.sleep(interval)
        if container.status() == ctr.STOPPED:
            return 0
