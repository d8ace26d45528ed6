"""The runtime side of create: validate, fork the init, wire it up, record it.

Follows crun's design: the init is a clone of this process (no re-exec), so
setup runs in the interpreter that is already loaded. The runtime writes the
user-namespace maps, places the init in its cgroups, runs the runtime-side
hooks and saves the state; on any failure it kills the init and removes
everything it made.
"""

import os

from vessel.errors import InvalidArgument, Unsupported
from vessel.runtime import container as ctr
from vessel.runtime import jsonio, linux, spec as oci, sync

__all__ = ["create"]


class Prepared:
    """The validated inputs of a create: spec and the parsed security sections."""

    __slots__ = ("spec", "caps", "seccomp_program", "seccomp_flags", "resources")

    def __init__(self, spec_, caps, seccomp_program, seccomp_flags, resources):
        self.spec = spec_
        self.caps = caps
        self.seccomp_program = seccomp_program
        self.seccomp_flags = seccomp_flags
        self.resources = resources


def prepare(bundle, systemd_cgroup=False):
    """Load and check everything before any state is created."""
    spec_ = oci.load(bundle)
    if spec_.process is None:
        raise InvalidArgument("config.json: process is required to create a container")
    if systemd_cgroup:
        raise Unsupported("--systemd-cgroup is not supported: vessel-runtime manages cgroupfs directly")
    mount_ns = spec_.linux.namespace("mount")
    if mount_ns is None:
        raise InvalidArgument("config.json: a mount namespace is required")
    caps = None
    if spec_.process.capabilities is not None:
        from vessel.runtime import capabilities

        caps = capabilities.parse(spec_.process.capabilities)
    program, flags = None, ()
    if spec_.linux.seccomp is not None:
        program, flags = seccomp_program(spec_.linux.seccomp)
    from vessel.runtime import cgroups

    resources = cgroups.parse_resources(spec_.linux.resources)
    _check_unsupported(spec_)
    return Prepared(spec_, caps, program, flags, resources)


_compiled_seccomp = {}  # linux.seccomp as JSON -> (program, flags), for a process that creates many containers


def seccomp_program(section):
    """(BPF program, flags) of a config's linux.seccomp; each distinct section is compiled once per process.

    The engine's monitor compiles before it forks `create`, so the forked
    verb finds the filter already compiled.
    """
    key = jsonio.dumps(section)
    if key not in _compiled_seccomp:
        from vessel.runtime import seccomp

        config = seccomp.parse(section)
        _compiled_seccomp[key] = (seccomp.compile(config), tuple(config.flags))
    return _compiled_seccomp[key]


def _check_unsupported(spec_):
    proc = spec_.process
    if proc.apparmor_profile and not os.path.exists("/sys/kernel/security/apparmor"):
        raise Unsupported(f"apparmor profile {proc.apparmor_profile!r} requested but AppArmor is not enabled on this host")
    if proc.selinux_label and not os.path.exists("/sys/fs/selinux/enforce"):
        raise Unsupported("an SELinux label was requested but SELinux is not enabled on this host")


def preserve_fds_option(opts):
    """runc's --preserve-fds N: how many fds after stdio the program inherits."""
    value = opts.get("preserve-fds") or "0"
    if not value.isdigit():
        raise InvalidArgument(f"invalid --preserve-fds value {value!r}")
    return int(value)


def create(ctx, container_id, prepared, console_socket=None, pid_file=None, no_pivot=False,
           preserve_fds=0, console=None, new_keyring=True):
    """Create the container in the `created` state from `prepare()`'s result; returns the Container.

    The terminal's master end goes to `console_socket` (a path, runc's flag) or,
    for `run` in the foreground, to `console`, an already connected socket.
    """
    spec_ = prepared.spec
    bundle = spec_.bundle
    proc = spec_.process
    if proc.terminal and console_socket is None and console is None:
        raise InvalidArgument("cannot allocate a terminal without --console-socket")
    if not proc.terminal and (console_socket is not None or console is not None):
        raise InvalidArgument("--console-socket given but process.terminal is false")
    container = ctr.Container.new(ctx.root, container_id, bundle, spec_.annotations)
    created = _Resources()
    try:
        if console is None and console_socket is not None:
            console = sync.connect_unix(console_socket)
        _launch(container, prepared, created, console, pid_file, no_pivot, preserve_fds, new_keyring, ctx.debug)
    except BaseException as exc:
        cleanup_error = created.undo(container)
        if cleanup_error is not None:
            exc.add_note(f"cleanup also failed: {cleanup_error}")
        raise
    return container


class _Resources:
    """What a create has made so far, undone in reverse on failure."""

    __slots__ = ("pid", "cgroup", "files")

    def __init__(self):
        self.pid = 0
        self.cgroup = None
        self.files = []

    def undo(self, container):
        first_error = None
        if self.pid > 0:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if self.cgroup is not None:
            try:
                self.cgroup.destroy()
            except OSError as exc:
                first_error = first_error or exc
        for path in self.files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        container.remove_dir()
        return first_error


def _namespace_plan(linux_cfg):
    """(clone flags for new namespaces, joins done in the init, joins needing an intermediate)."""
    flags = 0
    joins, early_joins = [], []
    for ns in linux_cfg.namespaces:
        flag = linux.NAMESPACE_FLAGS[ns.type][0]
        if ns.path:
            if not os.path.exists(ns.path):
                raise InvalidArgument(f"namespace path {ns.path} ({ns.type}) does not exist")
            (early_joins if ns.type in ("user", "pid", "time") else joins).append((ns.type, ns.path))
        elif ns.type not in ("cgroup", "time"):
            flags |= flag
    # mount last: the other paths are looked up in the host's mount namespace
    joins.sort(key=lambda item: item[0] == "mount")
    early_joins.sort(key=lambda item: item[0] != "user")
    return flags, joins, early_joins


def _launch(container, prepared, created, console, pid_file, no_pivot, preserve_fds, new_keyring, debug):
    from vessel.runtime import cgroups
    from vessel.runtime import init

    spec_ = prepared.spec
    linux_cfg = spec_.linux
    manager = cgroups.open_manager(linux_cfg.cgroups_path, container.id)
    manager.create()
    created.cgroup = manager
    # device rules wait until the init has made the device nodes (mknod is a device access)
    limits, device_rules = _split_device_rules(prepared.resources)
    manager.apply(limits)
    container.data["cgroup"] = manager.to_state()
    _copy_config(spec_.bundle, container.file("config.json"))
    # the init is born in the cgroup2 directory and moves itself into the v1 ones
    cgroup2_dir, cgroup_tasks = manager.join_plan()
    cgroup2_fd = os.open(cgroup2_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cgroup2_dir else None
    flags, joins, early_joins = _namespace_plan(linux_cfg)
    new_time_ns = linux_cfg.namespace("time") is not None and not linux_cfg.namespace("time").path
    listener = sync.listen_unix(container.file("start.sock"))
    ours, theirs = sync.pair()
    cfg = init.InitConfig(
        container_id=container.id, spec=spec_, channel=theirs, start_listener=listener, console=console,
        no_pivot=no_pivot, preserve_fds=preserve_fds, caps=prepared.caps,
        seccomp_program=prepared.seccomp_program, seccomp_flags=prepared.seccomp_flags,
        cgroup_mounts=manager.mounts(), joins=joins,
        has_runtime_hooks=bool(spec_.hooks.prestart or spec_.hooks.createRuntime),
        new_keyring=new_keyring, cgroup_tasks=cgroup_tasks, debug=debug,
    )
    # the init must not import anything: load now what its later steps use
    from vessel.runtime import process

    process.preload(terminal=spec_.process.terminal, caps=prepared.caps is not None,
                    seccomp=prepared.seccomp_program is not None,
                    hooks=bool(spec_.hooks.createContainer or spec_.hooks.startContainer), debug=debug)
    try:
        if early_joins or new_time_ns:
            intermediate = os.fork()
            if intermediate == 0:
                _intermediate(cfg, flags, early_joins, new_time_ns, linux_cfg.time_offsets, cgroup2_fd)
            os.waitpid(intermediate, 0)
        else:
            pid = linux.clone(flags, cgroup2_fd)
            if pid == 0:
                ours.close()
                init.run(cfg)
            created.pid = pid
    finally:
        if cgroup2_fd is not None:
            os.close(cgroup2_fd)
    theirs.close()
    listener.close()
    if console is not None:
        console.close()
    _, _, _, pid = ours.expect("hello")
    created.pid = pid
    if linux_cfg.namespace("user") is not None:
        _write_id_maps(pid, linux_cfg)
    ours.send("go")
    if spec_.process.oom_score_adj is not None:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(spec_.process.oom_score_adj))
    container.data["pid"] = pid
    container.data["startTime"] = ctr.process_start_time(pid)
    container.data["rootfs"] = spec_.root.path
    # start and delete read the saved config only when there are hooks to run
    container.data["hooks"] = [kind for kind in ("poststart", "poststop") if getattr(spec_.hooks, kind)]
    while True:
        try:
            kind, _, _, _ = ours.expect("hooks", "ready")
        except sync.ChildFailed as exc:
            raise sync.ChildFailed(_why_init_died(pid, prepared.resources) or str(exc)) from None
        if kind == "ready":
            break
        _run_runtime_hooks(container, spec_)
        ours.send("hooks-done")
    ours.close()
    if device_rules is not None:
        manager.apply(device_rules)
    container.data["status"] = ctr.CREATED
    container.save()
    if pid_file:
        jsonio.write_atomic(os.path.abspath(pid_file), str(pid), 0o644)
        created.files.append(os.path.abspath(pid_file))


# the spec's default devices (and the terminal): always usable, whatever the rules say
_DEFAULT_DEVICE_RULES = (("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),
                         ("c", 5, 0), ("c", 5, 1), ("c", 5, 2), ("c", 136, None))


def _split_device_rules(resources):
    """(resources without device rules, resources with only the device rules or None).

    The rules are exactly the configured ones plus the spec's default devices:
    unlike runc, nodes in linux.devices get no allow rule of their own.
    """
    from vessel.runtime import cgroups
    from vessel.runtime.cgroups.resources import DeviceRule

    if not resources.devices:
        return resources, None
    limits = cgroups.Resources()
    for name in limits.__slots__:
        setattr(limits, name, getattr(resources, name))
    limits.devices = None
    rules = list(resources.devices)
    rules += [DeviceRule(True, kind, major, minor, "rwm") for kind, major, minor in _DEFAULT_DEVICE_RULES]
    devices = cgroups.Resources()
    devices.devices = rules
    return limits, devices


def _copy_config(bundle, destination):
    """Keep the config as it was at create: exec, start and delete read this copy."""
    with open(os.path.join(bundle, "config.json"), "rb") as f:
        jsonio.write_atomic(destination, f.read())


def load_config(container):
    """The spec saved at create time."""
    with open(container.file("config.json"), "rb") as f:
        raw = jsonio.loads(f.read())
    return oci.parse(raw, container.data.get("bundle") or "/", check_rootfs=False)


def _why_init_died(pid, resources):
    """A clearer reason when the init vanished without a word (it is our child)."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if waited != pid or not os.WIFSIGNALED(status):
        return None
    signal = os.WTERMSIG(status)
    if signal == 9 and resources.memory and resources.memory.get("limit"):
        return (f"container init was killed (SIGKILL) while setting up: out of memory under "
                f"linux.resources.memory.limit={resources.memory['limit']}?")
    return f"container init was killed by signal {signal} while setting up"


def _intermediate(cfg, flags, early_joins, new_time_ns, time_offsets, cgroup2_fd):
    """A short-lived child that joins user/pid/time namespaces, then clones the init."""
    from vessel.runtime import init

    status = 1
    try:
        for kind, path in early_joins:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            linux.setns(fd, linux.NAMESPACE_FLAGS[kind][0], path)
            os.close(fd)
        if new_time_ns:
            linux.unshare(linux.CLONE_NEWTIME)
            _write_time_offsets(time_offsets)
        if linux.clone(flags, cgroup2_fd) == 0:
            init.run(cfg)
        status = 0
    except BaseException as exc:
        cfg.channel.send("error", init._describe(exc))
    finally:
        os._exit(status)


_CLOCKS = {"monotonic": "monotonic", "boottime": "boottime"}


def _write_time_offsets(offsets):
    lines = []
    for clock, value in offsets.items():
        if clock not in _CLOCKS:
            raise InvalidArgument(f"timeOffsets: unknown clock {clock!r}")
        lines.append(f"{clock} {int(value.get('secs', 0))} {int(value.get('nanosecs', 0))}\n")
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))


def _write_id_maps(pid, linux_cfg):
    for name, mappings in (("uid_map", linux_cfg.uid_mappings), ("gid_map", linux_cfg.gid_mappings)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def _run_runtime_hooks(container, spec_):
    from vessel.runtime import hooks

    state = {"ociVersion": spec_.oci_version, "id": container.id, "status": ctr.CREATING,
             "pid": container.data["pid"], "bundle": container.data["bundle"]}
    if spec_.annotations:
        state["annotations"] = spec_.annotations
    hooks.run_hooks("prestart", spec_.hooks.prestart, state)
    hooks.run_hooks("createRuntime", spec_.hooks.createRuntime, state)
