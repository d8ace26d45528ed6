"""vessel-runtime run: create and start a container; in the foreground, wait for it.

In the foreground the runtime forwards signals to the container's init, relays
the terminal when there is no --console-socket, deletes the container when it
exits and returns its exit status (128+N when killed by signal N).
"""

from vessel.runtime import container as ctr
from vessel.runtime import foreground, launcher, linux
from vessel.runtime.verbs import delete, start

__all__ = ["main"]


def main(ctx, opts, args):
    detach = bool(opts.get("detach"))
    console_socket = opts.get("console-socket")
    prepared = launcher.prepare(opts.get("bundle") or ".", ctx.systemd_cgroup)
    relay = None
    if prepared.spec.process.terminal and not detach and console_socket is None:
        from vessel.runtime.relay import TerminalRelay

        relay = TerminalRelay()
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    container = launcher.create(
        ctx, args[0], prepared, console_socket=console_socket,
        pid_file=opts.get("pid-file"), no_pivot=bool(opts.get("no-pivot")),
        preserve_fds=launcher.preserve_fds_option(opts), new_keyring=not opts.get("no-new-keyring"),
        console=relay.peer if relay else None)
    try:
        if relay is not None:
            relay.receive_master()
        start.start(container)
    except BaseException:
        delete.delete(container, force=True)
        raise
    if detach:
        return 0
    status = foreground.wait_forwarding(container.pid, relay)
    if not opts.get("keep"):
        delete.delete(ctr.Container.load(ctx.root, container.id), force=True)
    return status
