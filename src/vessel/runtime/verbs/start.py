"""vessel-runtime start: let a created container run its program."""

import os

from vessel.errors import Conflict, VesselError
from vessel.runtime import container as ctr
from vessel.runtime import sync

__all__ = ["main", "start"]


class StartFailed(VesselError):
    category = "failed"


def main(ctx, opts, args):
    start(ctr.Container.load(ctx.root, args[0]))
    return 0


def start(container):
    container.require("start")
    path = container.file("start.sock")
    try:
        sock = sync.connect_unix(path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise Conflict(f"container {container.id} cannot be started: its init is gone") from None
    try:
        sock.sendall(b"start")
        chunks = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    if chunks:
        raise StartFailed(b"".join(chunks).decode(errors="replace"))
    container.set_status(ctr.RUNNING)
    _poststart(container)


def _poststart(container):
    if "poststart" not in container.data.get("hooks", ("poststart",)):
        return
    from vessel.runtime import launcher

    spec_ = launcher.load_config(container)
    if spec_.hooks.poststart:
        from vessel.runtime import hooks

        try:
            hooks.run_hooks("poststart", spec_.hooks.poststart, container.oci_state())
        except VesselError:
            # runc: a failing poststart hook is logged; the container keeps running
            import sys

            sys.stderr.write(f"vessel-runtime: warning: {sys.exc_info()[1]}\n")
