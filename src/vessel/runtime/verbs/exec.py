"""vessel-runtime exec: run another process inside a running container.

The runtime forks a child that joins the container's namespaces, and that
child forks the process itself (a pid namespace applies to children only), so
the new process is a member of every namespace of the container. The runtime
is a child subreaper, so it inherits and can wait for that process.
"""

import _signal
import os

from vessel.errors import Conflict, InvalidArgument
from vessel.runtime import container as ctr
from vessel.runtime import foreground, jsonio, launcher, linux, process, spec as oci, sync

__all__ = ["main"]

_NS_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def main(ctx, opts, args):
    container = ctr.Container.load(ctx.root, args[0])
    status = container.status()
    if status == ctr.PAUSED and not opts.get("ignore-paused"):
        raise Conflict(f"cannot exec in paused container {container.id}")
    if status not in (ctr.CREATED, ctr.RUNNING, ctr.PAUSED):
        raise Conflict(f"cannot exec in a stopped container {container.id}")
    spec_ = launcher.load_config(container)
    proc = _build_process(spec_, opts, args[1:])
    detach = bool(opts.get("detach"))
    console_socket = opts.get("console-socket")
    if proc.terminal and console_socket is None and detach:
        raise InvalidArgument("cannot allocate a terminal without --console-socket")
    relay = None
    if proc.terminal and console_socket is None:
        from vessel.runtime.relay import TerminalRelay

        relay = TerminalRelay()
    console = sync.connect_unix(console_socket) if console_socket else (relay.peer if relay else None)
    caps = None
    if proc.capabilities is not None:
        from vessel.runtime import capabilities

        caps = capabilities.parse(proc.capabilities)
    program, flags = None, ()
    if spec_.linux.seccomp is not None:
        from vessel.runtime import seccomp

        config = seccomp.parse(spec_.linux.seccomp)
        program, flags = seccomp.compile(config), tuple(config.flags)
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    sub_cgroups = opts.get("cgroup", [])
    if sub_cgroups:
        if not container.data.get("cgroup"):
            raise InvalidArgument("--cgroup: the container has no cgroup")
        _sub_cgroup_targets(container.data["cgroup"], sub_cgroups)  # check before forking
    pid = _spawn(container, spec_, proc, console, caps, program, flags, launcher.preserve_fds_option(opts), sub_cgroups)
    if opts.get("pid-file"):
        jsonio.write_atomic(os.path.abspath(opts["pid-file"]), str(pid), 0o644)
    if relay is not None:
        relay.receive_master()
    if detach:
        return 0
    return foreground.wait_forwarding(pid, relay)


def _build_process(spec_, opts, command):
    if opts.get("process"):
        try:
            with open(opts["process"], "rb") as f:
                raw = jsonio.loads(f.read())
        except OSError as exc:
            raise InvalidArgument(f"cannot read --process file: {exc.strerror}") from None
        except jsonio.JSONError as exc:
            raise InvalidArgument(f"--process file: {exc}") from None
        return oci._process(oci._Reader(raw, "process"))
    if not command:
        raise InvalidArgument("exec: no command given (args or --process)")
    base = spec_.process
    env = list(base.env) + list(opts.get("env", []))
    user = oci.User(uid=base.user.uid, gid=base.user.gid, umask=base.user.umask,
                    additional_gids=list(base.user.additional_gids))
    if opts.get("user"):
        uid, _, gid = opts["user"].partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise InvalidArgument(f"invalid --user {opts['user']!r}: use UID[:GID] numbers")
        user.uid = int(uid)
        user.gid = int(gid) if gid else user.gid
    for value in opts.get("additional-gids", []):
        if not value.isdigit():
            raise InvalidArgument(f"invalid --additional-gids value {value!r}")
        user.additional_gids.append(int(value))
    caps = base.capabilities
    if opts.get("cap"):
        caps = {k: list(v) for k, v in (caps or {}).items()}
        for cap in opts["cap"]:
            for kind in ("bounding", "effective", "permitted", "ambient"):
                caps.setdefault(kind, [])
                if cap not in caps[kind]:
                    caps[kind].append(cap)
    return oci.Process(
        terminal=bool(opts.get("tty")), console_size=None, user=user, args=list(command), env=env,
        cwd=opts.get("cwd") or base.cwd, capabilities=caps, rlimits=base.rlimits,
        no_new_privileges=bool(opts.get("no-new-privs")) or base.no_new_privileges,
        apparmor_profile=opts.get("apparmor") or base.apparmor_profile, oom_score_adj=None,
        selinux_label=opts.get("process-label") or base.selinux_label,
    )


def _namespace_fds(container, spec_):
    fds = []
    configured = {ns.type for ns in spec_.linux.namespaces}
    for kind in _NS_ORDER:
        if kind not in configured:
            continue
        flag, name = linux.NAMESPACE_FLAGS[kind]
        path = f"/proc/{container.pid}/ns/{name}"
        fds.append((kind, flag, os.open(path, os.O_RDONLY | os.O_CLOEXEC), path))
    return fds


def _sub_cgroup_targets(state, values):
    """runc's `exec --cgroup [controller:]path`: directories below the container's cgroup."""
    targets = []
    for value in values:
        controllers, _, sub = value.rpartition(":")
        if not sub or sub.startswith("/") or ".." in sub.split("/"):
            raise InvalidArgument(f"invalid --cgroup {value!r}: give a path below the container's cgroup")
        if state["mode"] == "v2":
            if controllers:
                raise InvalidArgument(f"invalid --cgroup {value!r}: cgroup v2 takes no controller names")
            targets.append(os.path.join(state["root"], state["path"].lstrip("/"), sub))
            continue
        wanted = set(controllers.split(",")) if controllers else None
        for hierarchy in state["hierarchies"]:
            if wanted is None or wanted & set(hierarchy["controllers"]):
                targets.append(os.path.join(hierarchy["directory"], sub))
    for target in targets:
        if not os.path.isdir(target):
            raise InvalidArgument(f"--cgroup: {target} does not exist")
    return targets


def _join_sub_cgroups(state, values, pid):
    for target in _sub_cgroup_targets(state, values):
        with open(os.path.join(target, "cgroup.procs"), "w") as f:
            f.write(str(pid))


def _spawn(container, spec_, proc, console, caps, program, flags, preserve_fds, sub_cgroups=()):
    process.preload(terminal=proc.terminal, caps=caps is not None, seccomp=program is not None)
    
    manager = container.cgroup_manager()
    # like the init: move ourselves into the v1 cgroups, fork into the cgroup2 one
    cgroup2_dir, cgroup_tasks = manager.join_plan() if manager is not None else (None, [])
    cgroup2_fd = os.open(cgroup2_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cgroup2_dir else None
    # the agent's socket is a host path: connected here; the pid is filled in once known
    agent = process.connect_seccomp_agent(spec_.linux.seccomp, {
        "ociVersion": spec_.oci_version, "id": container.id, "status": "running", "pid": 0,
        "bundle": container.data.get("bundle"), "annotations": spec_.annotations})
    ns_fds = _namespace_fds(container, spec_)
    ours, theirs = sync.pair()
    child = os.fork()
    if child == 0:
        status = 1
        try:
            ours.close()
            process.close_inherited([theirs.fileno(), console.fileno() if console is not None else None,
                                     cgroup2_fd, agent.sock.fileno() if agent is not None else None]
                                    + [fd for _, _, fd, _ in ns_fds], preserve_fds)
            for path in cgroup_tasks:
                with open(path, "w") as tasks:
                    tasks.write("0")
            for kind, flag, fd, path in ns_fds:
                if kind == "user" and os.readlink(path) == os.readlink("/proc/self/ns/user"):
                    continue
                linux.setns(fd, flag, path)
                os.close(fd)
            if linux.clone(0, cgroup2_fd) == 0:
                _exec_child(theirs, proc, console, caps, program, flags, preserve_fds, agent)
            status = 0
        except BaseException as exc:
            theirs.send("error", _text(exc))
        finally:
            os._exit(status)
    for _, _, fd, _ in ns_fds:
        os.close(fd)
    if cgroup2_fd is not None:
        os.close(cgroup2_fd)
    if agent is not None:
        agent.sock.close()
    theirs.close()
    if console is not None:
        console.close()
    os.waitpid(child, 0)
    try:
        _, _, _, pid = ours.expect("hello")
        if sub_cgroups:
            _join_sub_cgroups(container.data["cgroup"], sub_cgroups, pid)
        ours.send("go", pid)
        kind, payload, _, _ = ours.receive()
        if kind == "error":
            raise process.ExecError(payload) if payload.startswith("exec:") else Conflict(payload)
    finally:
        ours.close()
    return pid


def _text(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename and str(exc.filename) not in exc.strerror else "")
    return str(exc) or type(exc).__name__


def _exec_child(channel, proc, console, caps, program, flags, preserve_fds, agent):
    status = 1
    try:
        channel.send("hello")
        _, host_pid, _, _ = channel.expect("go")
        if agent is not None:
            agent.state["pid"] = host_pid
        if proc.terminal:
            from vessel.runtime import terminal

            master, slave = terminal.open_pty()
            if proc.console_size is not None:
                terminal.set_size(master, *proc.console_size)
            terminal.send_master(console, master)
            os.close(master)
            console.close()
            terminal.become_controlling(slave)
        process.enter_cwd(proc.cwd)
        executable = process.find_executable(proc.args[0], process.environment(proc.env))
        process.apply_rlimits(proc.rlimits)
        linux.close_range(3 + preserve_fds, flags=1 << 2)
        for name in ("SIGPIPE", "SIGXFSZ", "SIGINT"):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
        process.finalize_and_exec(proc, executable, program, flags, preserve_fds, caps, on_listener=agent)
    except BaseException as exc:
        status = 127 if isinstance(exc, process.ExecError) else 1
        channel.send("error", _text(exc))
    finally:
        os._exit(status)
