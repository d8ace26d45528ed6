"""vessel-runtime list: the containers under --root."""

import sys

from vessel.errors import InvalidArgument
from vessel.runtime import container as ctr
from vessel.runtime import jsonio
from vessel.runtime.verbs.state import describe

__all__ = ["main"]


def main(ctx, opts, args):
    fmt = opts.get("format") or "table"
    if fmt not in ("table", "json"):
        raise InvalidArgument(f"invalid format {fmt!r}: use table or json")
    containers = ctr.Container.all(ctx.root)
    if opts.get("quiet"):
        sys.stdout.write("".join(c.id + "\n" for c in containers))
        return 0
    states = [describe(c) for c in containers]
    if fmt == "json":
        sys.stdout.write(jsonio.dumps(states) + "\n")
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"] or "root")
             for s in states]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
    return 0
