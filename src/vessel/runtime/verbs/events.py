"""vessel-runtime events: container statistics as JSON lines (runc's shape)."""

import sys
import time

from vessel.errors import Conflict, InvalidArgument
from vessel.runtime import container as ctr
from vessel.runtime import jsonio

__all__ = ["main", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """Go-style durations as runc takes them: 500ms, 5s, 1m."""
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            number = text[: -len(unit)]
            try:
                value = float(number) * _UNITS[unit]
            except ValueError:
                break
            if value > 0:
                return value
    raise InvalidArgument(f"invalid duration {text!r} (e.g. 5s, 500ms)")


def main(ctx, opts, args):
    interval = parse_duration(opts.get("interval") or "5s")
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
