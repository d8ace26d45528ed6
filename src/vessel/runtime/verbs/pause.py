"""vessel-runtime pause / resume: freeze and thaw every process of a container."""

from vessel.errors import Unsupported
from vessel.runtime import container as ctr
from vessel.runtime.verbs.kill import cgroup_manager

__all__ = ["main"]


def main(ctx, opts, args):
    container = ctr.Container.load(ctx.root, args[0])
    manager = cgroup_manager(container)
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
