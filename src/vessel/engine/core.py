"""The engine's operations on containers, shared by the CLI, the Python API and the monitor.

Files of a container <id>:
    <root>/containers/<id>/            private state: <id>-json.log, hostname, hosts, resolv.conf,
                                       exit (the init's exit code), runtime.log
    <runroot>/containers/<id>/         the OCI bundle: config.json and rootfs/ (the overlay mount)
    <root>/image/snapshots/active/<id> the writable layer
"""

import json
import contextlib
import functools
import os
import sys
import time

from vessel.engine import networking
from vessel.engine import names as naming
from vessel.engine import health, restart, specgen
from vessel.engine.volumes import Volumes, plan_mounts, unmount_all
from vessel.engine.model import ContainerConfig
from vessel.engine.state import CREATED, DEAD, EXITED, PAUSED, REMOVING, RESTARTING, RUNNING, Record, State
from vessel.errors import Conflict, InvalidArgument, NotFound, Unavailable, Unsupported, VesselError
from vessel.runtime import linux

__all__ = ["Engine", "ContainerStartError", "DEFAULT_RUNROOT"]

DEFAULT_RUNROOT = "/run/vessel"
_EINVAL, _ENOENT = 22, 2
# made by the engine as bind targets (Docker keeps them in a hidden init layer): not the container's changes
_ENGINE_MOUNT_POINTS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


class ContainerStartError(VesselError):
    """The container's process could not be started; `exit_code` is Docker's 125/126/127."""

    category = "start"

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def start_error_code(message):
    """Docker's exit code for a failed start (docker/cli's mapping): 127 not found, 126 EACCES/EISDIR, else 125."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "is a directory" in lowered:
        return 126
    return 125


def default_runtime():
    """vessel's own runtime, started isolated and without site (what the launcher does)."""
    import vessel

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(vessel.__file__)))
    return [sys.executable, "-IS", "-c",
            f"import sys; sys.path.insert(0, {package_parent!r}); from vessel.runtime.cli import run; run()"]


def _walk(top):
    """Paths below `top` (relative), parents before children, sorted."""
    found = []
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(directory, name), top))
    return sorted(found)


def process_start_time(pid):
    """Field 22 of /proc/<pid>/stat (to tell a process from a later one with its pid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return ""
    return data[data.rindex(b")") + 2:].split()[19].decode()


class Engine:
    """Containers under `root` (state) and `runroot` (runtime files)."""

    def __init__(self, root, runroot=DEFAULT_RUNROOT):
        self.root = os.path.abspath(root)
        self.runroot = os.path.abspath(runroot)
        self.state = State(self.root)
        self._images = None

    def close(self):
        self.state.close()
        if self._images is not None:
            self._images.close()

    @functools.cached_property
    def volumes(self):
        return Volumes(self.root, self.state)

    @property
    def images(self):
        if self._images is None:
            from vessel.image.store import ImageStore

            self._images = ImageStore(self.root, users=self.state.image_users)
        return self._images

    # paths

    def private_dir(self, container_id):
        return os.path.join(self.root, "containers", container_id)

    def bundle_dir(self, container_id):
        return os.path.join(self.runroot, "containers", container_id)

    def rootfs(self, container_id):
        return os.path.join(self.bundle_dir(container_id), "rootfs")

    def log_path(self, container_id):
        return os.path.join(self.private_dir(container_id), f"{container_id}-json.log")

    # runtime

    def runtime_command(self, name):
        """argv prefix (with --root) of the OCI runtime chosen by --runtime."""
        if name in (None, "", "vessel"):
            return default_runtime() + ["--root", os.path.join(self.runroot, "runtime")]
        import shutil

        path = shutil.which(name) if "/" not in name else name
        if not path or not os.access(path, os.X_OK):
            raise InvalidArgument(f"unknown or invalid runtime name: {name}")
        return [path, "--root", os.path.join(self.runroot, "runtime-" + os.path.basename(path))]

    def runtime(self, record, *args, capture=True, timeout=60, **kwargs):
        import subprocess

        argv = list(record.runtime) + [str(a) for a in args]
        if capture:
            kwargs.setdefault("stdin", subprocess.DEVNULL)
            kwargs.setdefault("capture_output", True)
        try:
            return subprocess.run(argv, timeout=timeout, **kwargs)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"runtime {args[0]} timed out after {timeout}s") from None

    def runtime_state(self, record):
        """The runtime's status of the container ("running", "stopped", ...) or None if unknown to it."""
        result = self.runtime(record, "state", record.id)
        if result.returncode != 0:
            return None
        try:
            return json.loads(result.stdout).get("status")
        except ValueError:
            return None

    # events

    def emit_event(self, record, action, **attributes):
        """Record a Docker-style container event (actor attributes: labels, image, name, then `attributes`)."""
        from vessel.engine import events

        events.record(self.state, "container", action, record.id,
                      {**record.labels, "image": record.image_ref, "name": record.name, **attributes})

    def emit_image_event(self, action, actor_id, **attributes):
        """Record a Docker-style image event (pull, push, tag, untag, delete, import, load, save)."""
        from vessel.engine import events

        events.record(self.state, "image", action, actor_id, attributes)

    # lookup

    def get(self, name_or_id):
        return self.refresh(self.state.find(name_or_id))

    def list(self, statuses=None):
        """Containers, newest first (only those in `statuses` if given), reconciled with the runtime."""
        return [self.refresh(record) for record in self.state.all(statuses)]

    def supervisor_alive(self, record):
        return bool(record.supervisor_pid) and \
            process_start_time(record.supervisor_pid) == record.supervisor_start != ""

    def refresh(self, record):
        """Reconcile a running record whose monitor is gone (killed): trust the runtime."""
        if record.status == RESTARTING and not self.supervisor_alive(record):
            # the monitor that was to restart it is gone; `start --all --by-restart-policy` restarts it
            self.state.transition(record.id, (RESTARTING,), status=EXITED)
            return self.state.by_id(record.id) or record
        if record.status not in (RUNNING, PAUSED) or self.supervisor_alive(record):
            return record
        status = self.runtime_state(record)
        if status in ("running", "paused", "created"):
            return record
        exit_code = self._exit_file(record.id, 137)
        if self.state.transition(record.id, (RUNNING, PAUSED), status=EXITED, pid=0, exit_code=exit_code,
                                 finished=time.time()):
            self.emit_event(record, "die", exitCode=exit_code)
        self.cleanup_runtime(record)
        return self.state.by_id(record.id) or record

    def _exit_file(self, container_id, default):
        try:
            with open(os.path.join(self.private_dir(container_id), "exit")) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return default

    # create

    def create(self, config: ContainerConfig, name=None, runtime=None):
        """A container in the `created` state: snapshot, private files, database row."""
        image = self.images.get(config.image)
        image_config = image.config.config
        config = self._merge_image(config, image_config)
        if not config.args:
            raise InvalidArgument("no command specified")
        networking.prepare_config(self, config, image_config)
        runtime_argv = self.runtime_command(runtime)
        config.mounts = plan_mounts(config, self.state.find)
        made_volumes = []
        container_id = os.urandom(32).hex()
        private = self.private_dir(container_id)
        os.makedirs(private, mode=0o710)
        try:
            self.volumes.provision(config.mounts, made_volumes)
            specgen.write_etc_files(private, config, container_id)
            self.images.snapshots.prepare(container_id, image.chain_id)
            try:
                self._insert(container_id, config, image, name, runtime_argv)
            except BaseException:
                self.images.snapshots.remove(container_id)
                raise
        except BaseException:
            import shutil

            shutil.rmtree(private, ignore_errors=True)
            self.volumes.discard(made_volumes)
            raise
        record = self.state.by_id(container_id)
        self.emit_event(record, "create")
        return record

    def _insert(self, container_id, config, image, name, runtime_argv):
        explicit = name is not None
        for _ in range(20):
            chosen = name if explicit else naming.random_name(self.state.names())
            record = Record(id=container_id, name=chosen, image_id=image.id, image_ref=config.image,
                            created=time.time(), config=config, status=CREATED, pid=0, exit_code=0, error="",
                            started=0, finished=0, restart_count=0, runtime=runtime_argv,
                            labels=config.labels, supervisor_pid=0, supervisor_start="")
            try:
                self.state.insert(record)
                return
            except VesselError:
                if explicit:
                    raise
        raise Conflict("could not pick a free container name")

    @staticmethod
    def _merge_image(config, image_config):
        from vessel.engine.model import merge_env

        if config.entrypoint is None:
            config.entrypoint = list(image_config.entrypoint or [])
            if not config.cmd:
                config.cmd = list(image_config.cmd or [])
        elif not config.cmd:
            config.cmd = []
        config.env = merge_env(image_config.env, config.env)
        config.working_dir = config.working_dir or image_config.working_dir
        config.user = config.user if config.user else image_config.user
        config.labels = {**image_config.labels, **config.labels}
        config.volumes = sorted(image_config.volumes)
        if image_config.stop_signal and config.stop_signal == "SIGTERM":
            config.stop_signal = image_config.stop_signal
        config.healthcheck = health.merge(config.healthcheck, health.Healthcheck.from_docker(
            image_config.healthcheck, "the image's Healthcheck"))
        return config

    # start

    def mount_rootfs(self, record):
        target = self.rootfs(record.id)
        os.makedirs(target, mode=0o755, exist_ok=True)
        self.unmount_rootfs(record)
        for mount in self.images.snapshots.mounts(record.id):
            options = list(mount.options or [])
            if mount.type == "overlay":
                linux.mount("overlay", target, "overlay", 0, ",".join(options))
            else:
                flags = linux.MS_BIND | (linux.MS_REC if "rbind" in options else 0)
                linux.mount(mount.source, target, None, flags)
                if "ro" in options:
                    linux.mount(None, target, None, flags | linux.MS_REMOUNT | linux.MS_RDONLY)
        return target

    def unmount_rootfs(self, record):
        unmount_all(self.rootfs(record.id))

    def prepare_bundle(self, record):
        """Mount the rootfs, set up the network namespace, write config.json; undone again on failure."""
        bundle = self.bundle_dir(record.id)
        os.makedirs(bundle, mode=0o700, exist_ok=True)
        rootfs = self.mount_rootfs(record)
        try:
            self.mount_shm(record)
            netns = networking.setup(self, record)
            volume_paths = self.volumes.attach(record, rootfs)
            spec = specgen.build_spec(record.config, record.id, rootfs, self.private_dir(record.id),
                                      peer_pid=self.peer_pid, volume_paths=volume_paths)
            if netns is not None:
                for namespace in spec["linux"]["namespaces"]:
                    if namespace["type"] == "network":
                        namespace["path"] = netns
            tmp = os.path.join(bundle, "config.json.tmp")
            with open(tmp, "w") as handle:
                handle.write(json.dumps(spec))  # json.dump would take the pure-Python encoder: ms for seccomp
            os.replace(tmp, os.path.join(bundle, "config.json"))
        except BaseException:
            networking.teardown(self, record)
            self.unmount_rootfs(record)
            self.unmount_shm(record)
            self.volumes.release(record)
            raise
        return bundle

    def peer_pid(self, kind, name_or_id):
        """The init pid of the running container whose `kind` namespace another joins (--pid/--ipc container:X)."""
        record = self.get(name_or_id)
        if record.status not in (RUNNING, PAUSED) or not record.pid:
            raise Conflict(f"cannot join {kind.upper()} of a non running container: {record.id}")
        if kind == "ipc" and record.config.ipc_mode != "shareable":
            raise Conflict(f"cannot join IPC of container {record.id}: non-shareable IPC (hint: use IpcMode:shareable "
                           "for the donor container)")
        return record.pid

    def mount_shm(self, record):
        """--ipc shareable: /dev/shm is a tmpfs on the host side (<private>/shm), so that others can join it."""
        if record.config.ipc_mode != "shareable":
            return
        target = os.path.join(self.private_dir(record.id), "shm")
        os.makedirs(target, mode=0o700, exist_ok=True)
        self.unmount_shm(record)
        linux.mount("shm", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                    f"mode=1777,size={record.config.shm_size}")

    def unmount_shm(self, record):
        try:
            linux.umount2(os.path.join(self.private_dir(record.id), "shm"), linux.MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (_EINVAL, _ENOENT):
                raise

    def start(self, name_or_id, wait_attach=False):
        """Start a created or exited container under the monitor (vessel.engine.monitor).

        With `wait_attach`, returns a socket attached to the container's
        streams since before its process started (for attach.attach); else None.
        """
        from vessel.engine import monitor

        record = self.get(name_or_id)
        # held while this command starts it: concurrent starts start it once
        lock = self._claim(record)
        if lock is None:
            if wait_attach:
                raise Conflict(f"container {record.id[:12]} is already running")
            return None
        try:
            record = self.get(record.id)
            if record.status in (RUNNING, PAUSED):  # its monitor was killed; the container runs on
                if wait_attach:
                    raise Conflict(f"container {record.id[:12]} is already running")
                return None
            if record.status in (REMOVING, DEAD):
                raise Conflict(f"container {record.id[:12]} is marked for removal and cannot be started")
            # a start by the user: Docker forgets the manual stop, the restart count and the back-off
            if not self.state.transition(record.id, (CREATED, EXITED), status=CREATED, error="", manually_stopped=0,
                                         restart_count=0, restart_delay=0):
                raise Conflict(f"container {record.id[:12]} is already running")
            # connected first: a monitor without the engine loaded loads it while the bundle is prepared
            sock = monitor.connect(self)
            try:
                self.cleanup_runtime(record)
                self.prepare_bundle(record)
            except BaseException as exc:
                sock.close()
                if not isinstance(exc, VesselError):
                    raise
                if record.config.auto_remove and self.state.transition(record.id, (CREATED,), status=REMOVING):
                    self.destroy(record)
                else:
                    self.state.update(record.id, error=str(exc))
                raise ContainerStartError(str(exc), start_error_code(str(exc))) from None
            try:
                sock, event = monitor.request(self, {"op": "start", "id": record.id, "attach": wait_attach}, sock)
            except BaseException:
                self.abandon_start(record)
                raise
        finally:
            os.close(lock)
        if event["event"] != "started":
            sock.close()
            if event.get("lost"):
                self.abandon_start(record)
            raise ContainerStartError(event["message"], event["code"])
        if wait_attach:
            return sock
        sock.close()
        return None

    def _claim(self, record):
        """An fd holding the container's start lock, or None when another command is starting it."""
        import fcntl

        fd = os.open(os.path.join(self.private_dir(record.id), "start.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def abandon_start(self, record):
        """Undo a start whose monitor died before answering: runtime container, rootfs mount."""
        current = self.state.by_id(record.id)
        if current is not None and current.status == CREATED:
            self.cleanup_runtime(record)

    # stop, kill, pause

    def kill(self, name_or_id, signal="SIGKILL"):
        from vessel.runtime.signals import parse_signal

        try:
            parse_signal(str(signal))
        except ValueError:
            raise InvalidArgument(f"Invalid signal: {signal}") from None
        record = self.get(name_or_id)
        if record.status == RESTARTING or (record.status in (RUNNING, PAUSED) and
                                 parse_signal(str(signal)) in (9, parse_signal(record.config.stop_signal))):
            restart.mark_stopped(self, record.id)  # Docker: the user stopped it, no restart by policy
            if record.status == RESTARTING:
                return record
        if record.status not in (RUNNING, PAUSED):
            raise Conflict(f"Cannot kill container: {name_or_id}: container {record.id} is not running")
        result = self.runtime(record, "kill", record.id, str(signal))
        if result.returncode != 0 and self.runtime_state(record) in ("running", "paused"):
            raise Unavailable(f"Cannot kill container: {name_or_id}: {result.stderr.decode().strip()}")
        self.emit_event(record, "kill", signal=parse_signal(str(signal)))
        return record

    def wait_exit(self, record, timeout=None, through_restarts=False):
        """Poll until the container is no longer running; returns the fresh record (or None if removed).

        `through_restarts` is Docker's `wait`: a container waiting to be restarted counts as running, and
        any exit after the call began ends the wait (also one its restart policy has already undone).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        first = None
        while True:
            current = self.state.by_id(record.id)
            if current is None:
                return None
            current = self.refresh(current)
            if first is None:
                first = current
            if through_restarts and current.status in (RUNNING, PAUSED, RESTARTING):
                # an exit since the first look: a new time of exit (a start resets it to 0), or more restarts
                # than the one a waiting container was due (an exit and restart between two looks)
                due = 1 if first.status == RESTARTING else 0
                if current.finished not in (0, first.finished) or current.restart_count > first.restart_count + due:
                    return current
            elif current.status not in (RUNNING, PAUSED):
                return current
            if deadline is not None and time.monotonic() >= deadline:
                return current
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def stop(self, name_or_id, timeout=None, signal=None):
        from vessel.runtime.signals import parse_signal

        record = self.get(name_or_id)
        if record.status in (RUNNING, PAUSED, RESTARTING) or restart.being_started(record):
            restart.mark_stopped(self, record.id)  # before the signal: the exit must not restart it
            record = restart.settle(self, record)
        if record.status not in (RUNNING, PAUSED):
            return record
        timeout = record.config.stop_timeout if timeout is None else timeout
        signal = signal or record.config.stop_signal or "SIGTERM"
        if record.status == PAUSED:
            self.runtime(record, "resume", record.id)
        if timeout != 0:
            self.runtime(record, "kill", record.id, signal)
            self.emit_event(record, "kill", signal=parse_signal(signal))
            current = self.wait_exit(record, timeout if timeout > 0 else None)
            if current is None or current.status not in (RUNNING, PAUSED):
                self.emit_event(record, "stop")
                return current
        self.runtime(record, "kill", record.id, "SIGKILL")
        self.emit_event(record, "kill", signal=9)
        current = self.wait_exit(record, 30)
        self.emit_event(record, "stop")
        return current

    def pause(self, name_or_id):
        record = self.get(name_or_id)
        if record.status == PAUSED:
            raise Conflict(f"container {record.id} is already paused")
        if record.status != RUNNING:
            raise Conflict(f"container {record.id} is not running")
        result = self.runtime(record, "pause", record.id)
        if result.returncode != 0:
            raise Unavailable(result.stderr.decode().strip() or "pause failed")
        self.state.transition(record.id, (RUNNING,), status=PAUSED)
        self.emit_event(record, "pause")

    def unpause(self, name_or_id):
        record = self.get(name_or_id)
        if record.status != PAUSED:
            raise Conflict(f"container {record.id} is not paused")
        result = self.runtime(record, "resume", record.id)
        if result.returncode != 0:
            raise Unavailable(result.stderr.decode().strip() or "unpause failed")
        self.state.transition(record.id, (PAUSED,), status=RUNNING)
        self.emit_event(record, "unpause")

    def rename(self, name_or_id, new_name):
        from vessel.engine.model import validate_name

        record = self.get(name_or_id)
        new_name = validate_name(new_name)
        if new_name == record.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        self.state.rename(record.id, new_name)
        networking.rename(self, record, new_name)
        self.emit_event(self.state.by_id(record.id), "rename", oldName="/" + record.name)

    def update(self, name_or_id, memory=None, nano_cpus=None, pids_limit=None, restart_policy=None):
        """Change the limits of a container (live, through the runtime, when it runs) and record them."""
        record = self.get(name_or_id)
        config = record.config
        if restart_policy is not None:
            config.restart_policy = restart_policy
        flags = []
        if memory is not None:
            if config.memory_swap > 0 and memory > config.memory_swap:
                raise Conflict("Memory limit should be smaller than already set memoryswap limit, update the "
                               "memoryswap at the same time")
            config.memory = memory
            flags += ["--memory", str(memory)]
            if memory and not config.memory_swap and specgen.swap_accounted():
                flags += ["--memory-swap", str(2 * memory)]  # the default swap follows the memory
        if nano_cpus is not None:
            config.nano_cpus = nano_cpus
            quota = nano_cpus * specgen.CPU_PERIOD // 1_000_000_000 if nano_cpus else -1
            flags += ["--cpu-period", str(specgen.CPU_PERIOD), "--cpu-quota", str(quota)]
        if pids_limit is not None:
            config.pids_limit = pids_limit
            flags += ["--pids-limit", str(pids_limit or -1)]
        if flags and record.status in (RUNNING, PAUSED):
            result = self.runtime(record, "update", *flags, record.id)
            if result.returncode != 0:
                raise Unavailable(f"Cannot update container {record.id}: "
                                  f"{result.stderr.decode(errors='replace').strip()}")
        self.state.update(record.id, config=json.dumps(config.to_json()))

    # removal

    def cleanup_runtime(self, record):
        """Delete the runtime's container, detach its networks, unmount the rootfs (all idempotent)."""
        if self._runtime_knows(record):
            self.runtime(record, "delete", "--force", record.id)
        networking.teardown(self, record)
        self.unmount_rootfs(record)
        self.unmount_shm(record)
        self.volumes.release(record)

    @staticmethod
    def _runtime_knows(record):
        """Whether the runtime may hold the container: <its --root>/<id> exists (runc's layout, and crun's)."""
        argv = list(record.runtime)
        if "--root" not in argv[:-1]:
            return True
        return os.path.lexists(os.path.join(argv[argv.index("--root") + 1], record.id))

    def remove(self, name_or_id, force=False, volumes=False):
        record = self.get(name_or_id)
        if record.status == RESTARTING and not force:
            raise Conflict(f"You cannot remove a restarting container {record.id}. Stop the container before "
                           "attempting removal or force remove")
        if force:
            restart.mark_stopped(self, record.id)
            record = restart.settle(self, record)
        if record.status in (RUNNING, PAUSED):
            if not force:
                raise Conflict(f'cannot remove container "/{record.name}": container is running: stop the '
                               "container before removing or force remove")
            self.runtime(record, "kill", record.id, "SIGKILL")
            record = self.wait_exit(record, 30)
            if record is None:
                return
            if record.status in (RUNNING, PAUSED):
                raise Unavailable(f"container {record.id[:12]} did not stop after SIGKILL")
        if not self.state.transition(record.id, (CREATED, EXITED, DEAD), status=REMOVING):
            current = self.state.by_id(record.id)
            if current is None or current.status == REMOVING:
                return  # someone else (the monitor's --rm) removes it
            raise Conflict(f"container {record.id[:12]} changed state during removal; try again")
        self.destroy(record, remove_volumes=volumes)

    def destroy(self, record, remove_volumes=False):
        """Remove everything of a container that is not running (its row is in `removing`).

        Its anonymous volumes go too with `remove_volumes` (rm -v) or --rm, as in Docker.
        """
        import shutil

        try:
            self.cleanup_runtime(record)
            specgen.remove_default_cgroup_parent(record.config)
            try:
                self.images.snapshots.remove(record.id)
            except NotFound:
                pass
            shutil.rmtree(self.bundle_dir(record.id), ignore_errors=True)
            shutil.rmtree(self.private_dir(record.id), ignore_errors=True)
        except BaseException:
            self.state.update(record.id, status=DEAD)
            raise
        self.state.delete(record.id)
        self.emit_event(record, "destroy")
        if remove_volumes or record.config.auto_remove:
            self.volumes.remove_anonymous(record)

    # exec, top, logs

    def exec_argv(self, record, command, tty=False, detach=False, env=(), user="", workdir="", privileged=False):
        """The runtime's exec command line for `command` in the running container (`privileged`: every capability)."""
        if record.status == PAUSED:
            raise Conflict(f"container {record.id} is paused, unpause the container before exec")
        if record.status != RUNNING:
            raise Conflict(f"container {record.id} is not running")
        if not command:
            raise InvalidArgument("exec requires at least 1 argument")
        argv = list(record.runtime) + ["exec"]
        if tty:
            argv.append("--tty")
        if detach:
            argv.append("--detach")
        if user:
            resolved = specgen.resolve_user(self.rootfs(record.id), user)
            argv += ["--user", f"{resolved.uid}:{resolved.gid}"]
            extra = specgen.resolve_groups(self.rootfs(record.id), record.config.group_add)  # as Docker's exec
            argv += [f"--additional-gids={g}" for g in dict.fromkeys(resolved.additional_gids + extra)]
        if workdir:
            argv += ["--cwd", workdir]
        for item in env:
            argv += ["--env", item]
        for capability in specgen.all_capabilities() if privileged else ():
            argv += ["--cap", capability]
        text, exec_id = " ".join(command), os.urandom(32).hex()
        self.emit_event(record, f"exec_create: {text}", execID=exec_id)
        self.emit_event(record, f"exec_start: {text}", execID=exec_id)
        return argv + [record.id] + list(command)

    def top(self, name_or_id, ps_args=()):
        record = self.get(name_or_id)
        if record.status not in (RUNNING, PAUSED):
            raise Conflict(f"container {record.id} is not running")
        result = self.runtime(record, "ps", "--format", "json", record.id)
        if result.returncode != 0:
            raise Unavailable(result.stderr.decode().strip())
        pids = json.loads(result.stdout or b"[]")
        import subprocess

        ps = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
        if ps.returncode != 0:
            raise InvalidArgument(f"ps: {ps.stderr.strip()}")
        lines = ps.stdout.splitlines()
        header = lines[0].split()
        pid_column = header.index("PID")
        rows = [line.split(None, len(header) - 1) for line in lines[1:]]
        return header, [row for row in rows if int(row[pid_column]) in pids]

    def stats_sample(self, record):
        """One reading of the container's cgroup through the runtime (`events --stats`)."""
        result = self.runtime(record, "events", "--stats", record.id)
        if result.returncode != 0:
            raise Conflict(f"container {record.id[:12]} is not running")
        data = json.loads(result.stdout.splitlines()[0]).get("data", {})
        memory = data.get("memory", {})
        usage = memory.get("usage", {})
        raw = memory.get("raw", {})
        inactive = raw.get("total_inactive_file", raw.get("inactive_file", 0))
        blkio = {"Read": 0, "Write": 0}
        for entry in data.get("blkio", {}).get("ioServiceBytesRecursive", []) or []:
            if entry.get("op", "").lower() in ("read", "write"):
                blkio[entry["op"].capitalize()] += entry.get("value", 0)
        return {"time": time.monotonic_ns(), "cpu": data.get("cpu", {}).get("usage", {}).get("total", 0),
                "memory": max(0, usage.get("usage", 0) - inactive), "limit": usage.get("limit", 0),
                "pids": data.get("pids", {}).get("current", 0), "block_read": blkio["Read"],
                "block_write": blkio["Write"]}

    def diff(self, name_or_id):
        """Docker's `diff`: [("A"|"C"|"D", path)] from the overlay's upper dir, sorted by path."""
        import stat as stat_

        record = self.get(name_or_id)
        options = {}
        for mount in self.images.snapshots.mounts(record.id):
            if mount.type != "overlay":
                if mount.type == "bind" and self.images.snapshots.driver == "overlay":
                    return [("A", "/" + p) for p in _walk(mount.source)]  # an image without layers
                raise Unsupported("diff needs the overlay snapshot driver")
            options = dict(o.split("=", 1) for o in mount.options if "=" in o)
        upper, lowers = options["upperdir"], options["lowerdir"].split(":")
        changes = []
        for relative in _walk(upper):
            info = os.lstat(os.path.join(upper, relative))
            if stat_.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                changes.append(("D", "/" + relative))
            elif any(os.path.lexists(os.path.join(lower, relative)) for lower in lowers):
                changes.append(("C", "/" + relative))
            elif "/" + relative not in _ENGINE_MOUNT_POINTS:
                changes.append(("A", "/" + relative))
        return changes

    def export(self, name_or_id, out):
        """Write the container's filesystem as one tar stream to the binary file `out` (Docker's export).

        A running container's rootfs is already mounted; a stopped one's is
        mounted read-only in a temporary directory for the time of the copy.
        """
        import tarfile
        import tempfile

        record = self.get(name_or_id)
        with contextlib.ExitStack() as stack:
            source = self.rootfs(record.id)
            if not os.path.ismount(source):
                source = stack.enter_context(tempfile.TemporaryDirectory(dir=self.runroot, prefix="export-"))
                self._mount_snapshot(record, source)
                stack.callback(linux.umount2, source, linux.MNT_DETACH)
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name in sorted(os.listdir(source)):
                    tar.add(os.path.join(source, name), arcname=name)

    def _mount_snapshot(self, record, target, readonly=True):
        for mount in self.images.snapshots.mounts(record.id):
            options = [o for o in (mount.options or []) if o not in ("rw",)]
            if mount.type == "overlay":
                linux.mount("overlay", target, "overlay", linux.MS_RDONLY if readonly else 0, ",".join(options))
            else:
                linux.mount(mount.source, target, None, linux.MS_BIND | linux.MS_REC)
                if readonly:
                    linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)

    def commit(self, name_or_id, repository=None, author="", message="", changes=(), pause=True):
        """Docker's commit: the container's changes as one new layer on its image's; returns the Image.

        A running container is paused meanwhile (`pause`); the image config is
        the container's (command, env, labels, ...) with `changes` applied.
        """
        from vessel.image import archive, commit as commits, reference
        from vessel.records import replace

        record = self.get(name_or_id)
        ref = reference.parse(repository) if repository else None
        if ref is not None and ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {repository}")
        parent = self.images.get(record.image_id)
        image_config = parent.config.config
        config = archive.apply_changes(replace(
            image_config, cmd=list(record.config.cmd) or None, entrypoint=list(record.config.entrypoint) or None,
            env=list(record.config.env), working_dir=record.config.working_dir, user=record.config.user,
            labels=dict(record.config.labels),
            exposed_ports={**image_config.exposed_ports, **{port: {} for port in record.config.expose}},
            stop_signal=image_config.stop_signal if record.config.stop_signal == "SIGTERM"
            else record.config.stop_signal), changes)
        paused = pause and record.status == RUNNING
        if paused:
            self.pause(record.id)
        try:
            image = commits.commit(self.images, self.images.snapshots.mounts(record.id), parent, config, ref,
                                   author=author, comment=message, created_by=" ".join(record.config.args),
                                   exclude=[path.lstrip("/") for path in _ENGINE_MOUNT_POINTS])
        finally:
            if paused:
                self.unpause(record.id)
        self.emit_event(record, "commit", author=author, comment=message, imageID=image.id,
                        imageRef=ref.familiar if ref else "")
        return image

    @contextlib.contextmanager
    def filesystem(self, name_or_id):
        """(record, O_PATH fd of the container's root) for the time of a copy (docker cp).

        A running container's root is /proc/<init>/root, its mounts included; a
        stopped one's snapshot is mounted in a private directory while the
        container's start lock is held, so that it cannot start meanwhile.
        """
        import tempfile

        record = self.get(name_or_id)
        with contextlib.ExitStack() as stack:
            if record.status not in (RUNNING, PAUSED):
                lock = self._claim(record)
                if lock is None:
                    raise Conflict(f"container {record.id[:12]} is starting; try again")
                stack.callback(os.close, lock)
                record = self.get(record.id)
            if record.status in (RUNNING, PAUSED):
                root = f"/proc/{record.pid}/root"
            else:
                os.makedirs(self.runroot, exist_ok=True)
                root = stack.enter_context(tempfile.TemporaryDirectory(dir=self.runroot, prefix="copy-"))
                self._mount_snapshot(record, root, readonly=False)
                stack.callback(linux.umount2, root, linux.MNT_DETACH)  # the binds below go with it
            fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            if record.status not in (RUNNING, PAUSED):
                self._mount_binds(record, fd)
            if record.status in (RUNNING, PAUSED) and not self._is_init(record):
                raise Conflict(f"container {record.id[:12]} is not running")  # exited and its pid reused
            yield record, fd

    def _mount_binds(self, record, root_fd):
        """Bind a stopped container's host paths and volumes into its root open at `root_fd` (cp sees them).

        Volumes with driver options are mounted only while the container runs and are left out."""
        from vessel.runtime import paths

        for mount in sorted(record.config.mounts, key=lambda m: m.target.count("/")):
            if mount.type == "bind":
                source = mount.source
            elif mount.type == "volume" and mount.source:
                try:
                    if self.volumes.get(mount.source).options:
                        continue
                except NotFound:
                    continue
                source = self.volumes.data_path(mount.source)
            else:
                continue
            if not os.path.exists(source):
                continue
            target = paths.ensure_in_root(root_fd, mount.target, directory=os.path.isdir(source))
            try:
                linux.mount(source, paths.fd_path(target), None, linux.MS_BIND | linux.MS_REC)
                if mount.readonly:
                    mounted = paths.reopen_mounted(root_fd, mount.target, target)
                    try:
                        linux.mount(None, paths.fd_path(mounted), None,
                                    linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
                    finally:
                        os.close(mounted)
            finally:
                os.close(target)

    @staticmethod
    def _is_init(record):
        """Whether the process record.pid is (still) in the container's cgroup."""
        try:
            with open(f"/proc/{record.pid}/cgroup") as handle:
                return record.pid > 0 and record.id in handle.read()
        except OSError:
            return False

    def logs(self, record, follow=False, tail=None, since=None, until=None):
        """(stream, text, time) entries; with `follow`, new ones until the container stops."""
        if record.config.log_driver == "none":
            raise Unsupported("configured logging driver does not support reading")
        from vessel.engine import logs as logfiles

        path = self.log_path(record.id)
        try:
            position = os.path.getsize(path)
        except FileNotFoundError:
            position = 0
        entries = list(logfiles.read_entries(path, since, until, live_limit=position))
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []
        yield from entries
        if follow:
            def alive():
                current = self.state.by_id(record.id)
                return current is not None and self.refresh(current).status in (RUNNING, PAUSED)

            yield from logfiles.follow(path, position, alive, since)
