"""The container's init: the child side of create, from clone to execve.

Runs in the forked copy of the runtime inside the new namespaces. It never
returns: it either becomes the container's program or reports an error to the
runtime and exits. It imports nothing: the runtime loads every module it will
need before the clone, so no code from the image can be loaded by this
process (and a mapped root that cannot read the interpreter's directory still
has every module).
"""

import _signal
import os

from vessel.errors import PermissionDenied
from vessel.runtime import linux, process, rootfs, sync

__all__ = ["run"]

CLOSE_RANGE_CLOEXEC = 1 << 2


class InitConfig:
    """What the runtime hands to the init at fork time (no serialisation needed)."""

    __slots__ = ("container_id", "spec", "channel", "start_listener", "console", "no_pivot", "preserve_fds",
                 "caps", "seccomp_program", "seccomp_flags", "cgroup_mounts", "joins", "has_runtime_hooks",
                 "new_keyring", "cgroup_tasks", "debug", "seccomp_agent")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))


def run(cfg):
    """Set up the container and exec its program; never returns."""
    try:
        channel = cfg.channel
        try:
            executable = _setup(cfg)
            channel.send("ready")
            channel.close()
            _wait_for_start_and_exec(cfg, executable)
        except BaseException as exc:  # report, whatever it was, then die
            channel.send("error", _describe(exc, cfg.debug))
    finally:
        os._exit(1)


def _describe(exc, debug=False):
    if debug:
        import traceback

        return "".join(traceback.format_exception(exc)).rstrip()
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename and str(exc.filename) not in text:
            text += f": {exc.filename}"
        return text
    return str(exc) or type(exc).__name__


def _setup(cfg):
    spec = cfg.spec
    channel = cfg.channel
    process.close_inherited((channel.fileno(), cfg.start_listener.fileno(),
                             cfg.console.fileno() if cfg.console is not None else None), cfg.preserve_fds or 0)
    # join the v1 cgroups first, moving only ourselves: no global lock, and
    # still with the host's credentials and mounts
    for path in cfg.cgroup_tasks:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    channel.send("hello")
    channel.expect("go")
    user_ns = spec.linux.namespace("user")
    if user_ns is not None:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for kind, path in cfg.joins:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(fd, linux.NAMESPACE_FLAGS[kind][0], path)
        finally:
            os.close(fd)
    if cfg.new_keyring:
        linux.join_session_keyring(cfg.container_id)
    if spec.hostname is not None:
        linux.sethostname(spec.hostname)
    if spec.domainname is not None:
        linux.setdomainname(spec.domainname)
    cgroup_ns = spec.linux.namespace("cgroup")
    if cgroup_ns is not None and not cgroup_ns.path:
        linux.unshare(linux.CLONE_NEWCGROUP)
    root_fd = rootfs.prepare_rootfs(spec, cfg.cgroup_mounts, user_ns is not None)
    if cfg.has_runtime_hooks:
        channel.send("hooks")
        channel.expect("hooks-done")
    if spec.hooks.createContainer:
        from vessel.runtime import hooks

        hooks.run_hooks("createContainer", spec.hooks.createContainer,
                        {"ociVersion": spec.oci_version, "id": cfg.container_id, "status": "creating",
                         "pid": os.getpid(), "bundle": spec.bundle})
    if spec.linux.seccomp and spec.linux.seccomp.get("listenerPath"):
        # the agent's socket is a host path: connect while it can still be reached
        cfg.seccomp_agent = process.connect_seccomp_agent(spec.linux.seccomp, {
            "ociVersion": spec.oci_version, "id": cfg.container_id, "status": "created",
            "pid": process.host_pid(), "bundle": spec.bundle, "annotations": spec.annotations})
    rootfs.pivot(root_fd, cfg.no_pivot)
    os.close(root_fd)
    # sysctls go in while /proc/sys is still writable, as in runc
    for key, value in spec.linux.sysctl.items():
        _write_sysctl(key, value)
    rootfs.finish_rootfs(spec)
    proc = spec.process
    if proc.terminal:
        _setup_terminal(cfg)
    process.enter_cwd(proc.cwd)
    if spec.linux.personality is not None:
        linux.personality(spec.linux.personality)
    executable = process.find_executable(proc.args[0], process.environment(proc.env))
    process.apply_rlimits(proc.rlimits)
    # nothing of the host but stdio, the console and preserved fds may reach the program
    linux.close_range(3 + (cfg.preserve_fds or 0), flags=CLOSE_RANGE_CLOEXEC)
    return executable


# net.ipv4.conf.eth0/100.forwarding -> net/ipv4/conf/eth0.100/forwarding
_SYSCTL_TO_PATH = str.maketrans("./", "/.")


def _write_sysctl(key, value):
    path = "/proc/sys/" + key.translate(_SYSCTL_TO_PATH)
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        # a fake /proc (an image's directory, a volume) would swallow the value (CVE-2019-16884)
        if linux.fstatfs_type(fd) != linux.PROC_SUPER_MAGIC:
            raise PermissionDenied(f"sysctl {key}: {path} is not on procfs")
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _setup_terminal(cfg):
    from vessel.runtime import terminal

    master, slave = terminal.open_pty()
    size = cfg.spec.process.console_size
    if size is not None:
        terminal.set_size(master, size[0], size[1])
    terminal.bind_console(slave)
    terminal.send_master(cfg.console, master)
    os.close(master)
    cfg.console.close()
    terminal.become_controlling(slave)


def _wait_for_start_and_exec(cfg, executable):
    listener = cfg.start_listener
    while True:
        conn = sync.accept(listener)
        request = conn.recv(64)
        if request == b"start":
            break
        conn.close()
    listener.close()
    try:
        spec = cfg.spec
        if spec.hooks.startContainer:
            from vessel.runtime import hooks

            hooks.run_hooks("startContainer", spec.hooks.startContainer,
                            {"ociVersion": spec.oci_version, "id": cfg.container_id, "status": "created",
                             "pid": os.getpid(), "bundle": spec.bundle})
        # Python ignores these; an ignored signal would stay ignored across execve
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        process.finalize_and_exec(spec.process, executable, cfg.seccomp_program, cfg.seccomp_flags,
                                  cfg.preserve_fds or 0, cfg.caps, on_listener=cfg.seccomp_agent)
    except BaseException as exc:
        try:
            conn.sendall(_describe(exc).encode())
        except OSError:
            pass
        os._exit(127 if isinstance(exc, process.ExecError) else 1)
