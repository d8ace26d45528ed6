"""vessel-runtime state: print the container's state as JSON."""

import sys

from vessel.runtime import container as ctr
from vessel.runtime import jsonio

__all__ = ["main", "describe"]


def describe(container):
    """runc's state shape: the OCI state plus rootfs, created and owner."""
    state = container.oci_state()
    annotations = state.pop("annotations", None)
    state["rootfs"] = container.data.get("rootfs", "")
    state["created"] = container.data.get("created", "")
    state["owner"] = container.data.get("owner", "")
    if annotations:
        state["annotations"] = annotations
    return state


def main(ctx, opts, args):
    container = ctr.Container.load(ctx.root, args[0])
    sys.stdout.write(jsonio.dumps(describe(container), indent=2) + "\n")
    return 0
