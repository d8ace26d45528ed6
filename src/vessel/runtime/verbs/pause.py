"""vessel-runtime pause / resume: freeze and thaw every process of a container."""

from vessel.errors import Unsupported
from vessel.runtime import container as ctr

__all__ = ["main"]


def main(ctx, opts, args):
    container = ctr.Container.load(ctx.root, args[0])
    manager = container.cgroup_manager()
    if ctx.verb == "pause":
        container.require("pause")
        if manager is None:
            raise Unsupported(f"container {container.id} has no cgroup to freeze")
        manager.freeze()
        container.set_status(ctr.PAUSED)
    else:
        container.require("resume")
        manager.thaw()
        container.set_status(ctr.RUNNING)
    return 0
