"""vessel-runtime update: change a container's cgroup limits while it runs."""

import sys

from vessel.errors import InvalidArgument, Unsupported
from vessel.runtime import container as ctr
from vessel.runtime import jsonio

__all__ = ["main"]


def main(ctx, opts, args):
    from vessel.runtime import cgroups

    container = ctr.Container.load(ctx.root, args[0])
    container.require("update")
    manager = container.cgroup_manager()
    if manager is None:
        raise Unsupported(f"container {container.id} has no cgroup")
    source = opts.pop("resources", None)
    if source is not None:
        try:
            text = sys.stdin.buffer.read() if source == "-" else open(source, "rb").read()
            raw = jsonio.loads(text)
        except OSError as exc:
            raise InvalidArgument(f"cannot read --resources {source}: {exc.strerror}") from None
        except jsonio.JSONError as exc:
            raise InvalidArgument(f"--resources: {exc}") from None
        resources = cgroups.parse_resources(raw)
    else:
        flags = {name: value for name, value in opts.items() if name not in ("help",)}
        if not flags:
            raise InvalidArgument("update: nothing to change; give --resources or a limit flag")
        resources = cgroups.parse_update_flags(flags)
    # v1 needs e.g. the current swap limit next to a new memory limit: apply the
    # changed groups merged with what the container has, and remember the result
    from vessel.runtime import launcher

    spec_ = launcher.load_config(container)
    current = cgroups.parse_resources(spec_.linux.resources)
    manager.apply(current.merged(resources, changed_only=True))
    spec_.raw.setdefault("linux", {})["resources"] = current.merged(resources).to_oci()
    jsonio.write_atomic(container.file("config.json"), jsonio.dumps(spec_.raw))
    return 0
