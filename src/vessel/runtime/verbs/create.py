"""vessel-runtime create: set up a container and leave it waiting for start."""

from vessel.runtime import launcher

__all__ = ["main"]




def main(ctx, opts, args):
    prepared = launcher.prepare(opts.get("bundle") or ".", ctx.systemd_cgroup)
    launcher.create(ctx, args[0], prepared, console_socket=opts.get("console-socket"),
                    pid_file=opts.get("pid-file"), no_pivot=bool(opts.get("no-pivot")),
                    preserve_fds=launcher.preserve_fds_option(opts), new_keyring=not opts.get("no-new-keyring"))
    return 0
