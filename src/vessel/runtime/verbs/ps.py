"""vessel-runtime ps: the processes running inside a container."""

import subprocess
import sys

from vessel.errors import InvalidArgument, Unavailable
from vessel.runtime import container as ctr
from vessel.runtime import jsonio

__all__ = ["main"]


def main(ctx, opts, args):
    fmt = opts.get("format") or "table"
    if fmt not in ("table", "json"):
        raise InvalidArgument(f"invalid format {fmt!r}: use table or json")
    container = ctr.Container.load(ctx.root, args[0])
    manager = container.cgroup_manager()
    pids = sorted(manager.pids()) if manager is not None else ([container.pid] if container.alive() else [])
    if fmt == "json":
        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return 0
    ps_args = args[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise Unavailable(f"ps failed: {exc}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("ps output has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            sys.stdout.write(line + "\n")
    return 0
