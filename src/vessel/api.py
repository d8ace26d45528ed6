"""vessel's Python API, shaped like docker-py:

    import vessel
    client = vessel.from_env()
    print(client.containers.run("busybox", ["echo", "hi"], remove=True))   # b"hi\\n"
    box = client.containers.run("busybox", "sleep 60", detach=True, name="box")
    code, output = box.exec_run("hostname")
    box.stop(); box.remove()

The `vessel` command is built on these calls.
"""

import datetime
import os
import shlex
import subprocess
import time

from vessel.engine.core import DEFAULT_RUNROOT, ContainerStartError, Engine
from vessel.engine.model import (Bind, ContainerConfig, Ulimit, expand_env, parse_bytes, parse_capabilities,
                                 parse_restart, parse_tmpfs, validate_name)
from vessel.errors import Conflict, InvalidArgument, NotFound, VesselError

__all__ = ["Client", "Container", "ContainerError", "ExecResult", "from_env", "DEFAULT_ROOT"]

DEFAULT_ROOT = "/var/lib/vessel"
_ZERO_TIME = "0001-01-01T00:00:00Z"


class ContainerError(VesselError):
    """A non-detached run whose command exited non-zero (docker-py's ContainerError)."""

    category = "container"

    def __init__(self, container, exit_status, command, image, stderr):
        self.container, self.exit_status, self.command, self.image, self.stderr = \
            container, exit_status, command, image, stderr
        super().__init__(f"Command '{command}' in image '{image}' returned non-zero exit status {exit_status}: "
                         f"{stderr.decode(errors='replace').strip()}")


class ExecResult(tuple):
    """(exit_code, output), with names."""

    def __new__(cls, exit_code, output):
        return super().__new__(cls, (exit_code, output))

    exit_code = property(lambda self: self[0])
    output = property(lambda self: self[1])


def from_env():
    """A client on VESSEL_ROOT / VESSEL_RUNROOT (defaults /var/lib/vessel, /run/vessel)."""
    return Client(os.environ.get("VESSEL_ROOT", DEFAULT_ROOT), os.environ.get("VESSEL_RUNROOT", DEFAULT_RUNROOT))


def rfc3339(seconds):
    if not seconds:
        return _ZERO_TIME
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class Client:
    def __init__(self, root=DEFAULT_ROOT, runroot=DEFAULT_RUNROOT):
        self.engine = Engine(root, runroot)
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)

    def close(self):
        self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ImageCollection:
    def __init__(self, client):
        self.client = client

    def get(self, name):
        return self.client.engine.images.get(name)

    def list(self):
        return self.client.engine.images.list()


def _command(value):
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _binds(volumes):
    """docker-py's volumes: ["/h:/c:ro"] or {"/h": {"bind": "/c", "mode": "ro"}}."""
    if not volumes:
        return []
    if isinstance(volumes, dict):
        return [Bind.parse(f"{host}:{spec['bind']}:{spec.get('mode', 'rw')}") for host, spec in volumes.items()]
    return [Bind.parse(v) for v in volumes]


def _env(environment):
    if not environment:
        return []
    if isinstance(environment, dict):
        return [f"{k}={v}" for k, v in environment.items()]
    return [expand_env(item) for item in environment]


_SECURITY_OPTS = ("seccomp=unconfined", "seccomp:unconfined", "no-new-privileges", "no-new-privileges=true",
                  "no-new-privileges:true", "no-new-privileges=false")


def build_config(image, command=None, *, entrypoint=None, environment=None, working_dir="", user="",
                 hostname="", domainname="", tty=False, stdin_open=False, labels=None, volumes=None, tmpfs=None,
                 extra_hosts=None, dns=None, network_mode="none", mem_limit=0, nano_cpus=0, pids_limit=0,
                 ulimits=None, read_only=False, cap_add=None, cap_drop=None, privileged=False, security_opt=None,
                 stop_signal=None, stop_timeout=None, auto_remove=False, cgroup_parent="", restart_policy=None,
                 log_config=None):
    """A ContainerConfig from docker-py style arguments (strings are parsed, bad ones rejected)."""
    if network_mode not in ("none", "host"):
        from vessel.errors import Unsupported

        raise Unsupported(f"network mode {network_mode!r} is not supported yet (none or host)")
    if restart_policy:
        parse_restart(restart_policy.get("Name", "no") if isinstance(restart_policy, dict) else restart_policy)
    memory = parse_bytes(mem_limit, "-m, --memory") if isinstance(mem_limit, str) else int(mem_limit or 0)
    if memory and memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    for option in security_opt or []:
        if option not in _SECURITY_OPTS and not option.startswith("label"):
            raise InvalidArgument(f"invalid --security-opt: {option!r}")
    if stop_signal:
        from vessel.runtime.signals import parse_signal

        try:
            parse_signal(stop_signal)
        except ValueError:
            raise InvalidArgument(f"Invalid signal: {stop_signal}") from None
    tmpfs_map = {}
    if isinstance(tmpfs, dict):
        tmpfs_map = {os.path.normpath(k): v for k, v in tmpfs.items()}
    else:
        for item in tmpfs or []:
            target, options = parse_tmpfs(item)
            tmpfs_map[target] = options
    for host in extra_hosts or []:
        name, _, address = host.partition(":")
        if not name or not address:
            raise InvalidArgument(f"invalid argument \"{host}\" for \"--add-host\" flag: bad format for add-host")
    log_options = (log_config or {}).get("Config", {}) if isinstance(log_config, dict) else {}
    config = ContainerConfig(
        image=image, cmd=_command(command) or [],
        entrypoint=None if entrypoint is None else (_command(entrypoint) if entrypoint != "" else []),
        env=_env(environment), working_dir=working_dir or "", user=user or "", hostname=hostname or "",
        domainname=domainname or "", tty=bool(tty), open_stdin=bool(stdin_open), labels=dict(labels or {}),
        binds=_binds(volumes), tmpfs=tmpfs_map, extra_hosts=list(extra_hosts or []), dns=list(dns or []),
        network_mode=network_mode, memory=memory, nano_cpus=int(nano_cpus or 0), pids_limit=int(pids_limit or 0),
        ulimits=[u if isinstance(u, Ulimit) else Ulimit.parse(u) for u in ulimits or []],
        read_only=bool(read_only), cap_add=parse_capabilities(cap_add or []),
        cap_drop=parse_capabilities(cap_drop or []), privileged=bool(privileged),
        seccomp_unconfined=any(o.startswith("seccomp") for o in security_opt or []),
        no_new_privileges=any(o.startswith("no-new-privileges") and not o.endswith("false")
                              for o in security_opt or []),
        stop_signal=stop_signal or "SIGTERM", stop_timeout=10 if stop_timeout is None else int(stop_timeout),
        auto_remove=bool(auto_remove), cgroup_parent=cgroup_parent or "",
    )
    if "max-size" in log_options:
        config.log_max_size = parse_bytes(log_options["max-size"], "--log-opt max-size")
    if "max-file" in log_options:
        if not str(log_options["max-file"]).isdigit() or int(log_options["max-file"]) < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        config.log_max_file = int(log_options["max-file"])
    # an explicit entrypoint replaces the image's; None keeps it
    if entrypoint is None:
        config.entrypoint = None
    return config


class ContainerCollection:
    def __init__(self, client):
        self.client = client

    @property
    def engine(self):
        return self.client.engine

    def create(self, image, command=None, name=None, runtime=None, **options):
        if name is not None:
            name = validate_name(name)
        if "remove" in options:
            options["auto_remove"] = options.pop("remove")
        config = build_config(image, command, **options)
        record = self.engine.create(config, name=name, runtime=runtime)
        return Container(self.client, record)

    def run(self, image, command=None, detach=False, remove=False, stdout=True, stderr=False, **options):
        container = self.create(image, command, auto_remove=remove, **options)
        if detach:
            container.start()
            return container
        out, err = [], []
        code = container.start_attached(stdout=out.append, stderr=err.append)
        output = (b"".join(out) if stdout else b"") + (b"".join(err) if stderr else b"")
        if code != 0:
            raise ContainerError(container, code, command, image, b"".join(err))
        return output

    def get(self, name_or_id):
        return Container(self.client, self.engine.get(name_or_id))

    def prune(self):
        """Remove every stopped container: {"ContainersDeleted": [ids], "SpaceReclaimed": bytes}."""
        deleted, reclaimed = [], 0
        for record in self.engine.list():
            if record.status in ("created", "exited", "dead"):
                try:
                    reclaimed += self.engine.images.snapshots.usage(record.id)[0]
                except VesselError:
                    pass
                try:
                    self.engine.remove(record.id)
                except NotFound:
                    continue
                deleted.append(record.id)
        return {"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}

    def list(self, all=False, filters=None, limit=-1):  # noqa: A002 - docker-py's name
        records = self.engine.list()
        if not all:
            records = [r for r in records if r.status in ("running", "paused")]
        containers = [Container(self.client, r) for r in records if matches(r, filters or {})]
        return containers[:limit] if limit >= 0 else containers


def matches(record, filters):
    """Docker's ps filters: name (substring/regex), id (prefix), status, label (key or key=value), ancestor."""
    import re

    for key, values in filters.items():
        values = [values] if isinstance(values, str) else list(values)
        if not values:
            continue
        if key == "name":
            ok = any(re.search(v, record.name) or re.search(v, "/" + record.name) for v in values)
        elif key == "id":
            ok = any(record.id.startswith(v) for v in values)
        elif key == "status":
            ok = record.status in values
        elif key == "label":
            ok = all(_label_matches(record.labels, v) for v in values)
        elif key == "ancestor":
            ok = any(v in (record.image_ref, record.image_id) or record.image_id.startswith("sha256:" + v)
                     for v in values)
        elif key == "exited":
            ok = record.status == "exited" and str(record.exit_code) in values
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def _label_matches(labels, text):
    key, sep, value = text.partition("=")
    return key in labels and (not sep or labels[key] == value)


class Container:
    def __init__(self, client, record):
        self.client = client
        self.record = record

    def __repr__(self):
        return f"<Container: {self.short_id}>"

    @property
    def engine(self):
        return self.client.engine

    id = property(lambda self: self.record.id)
    short_id = property(lambda self: self.record.id[:12])
    name = property(lambda self: self.record.name)
    status = property(lambda self: self.record.status)
    labels = property(lambda self: dict(self.record.labels))
    image = property(lambda self: self.engine.images.get(self.record.image_id))

    @property
    def attrs(self):
        return inspect_document(self.engine, self.record)

    def reload(self):
        self.record = self.engine.get(self.record.id)

    def start(self):
        self.engine.start(self.record.id)
        self.reload()

    def start_attached(self, stdin_fd=None, stdout=None, stderr=None, tty=None, sig_proxy=True):
        """Start with output (and `stdin_fd`) relayed here; returns the exit code."""
        from vessel.engine import attach

        events = self.engine.start(self.record.id, wait_attach=True)
        if events is None:
            raise InvalidArgument(f"container {self.short_id} is already running")
        try:
            event = _next_event(events)
            if event["event"] == "error":
                if event.get("lost"):
                    self.engine.abandon_start(self.record)
                raise ContainerStartError(event["message"], event["code"])
            from vessel.runtime import sync

            sock = sync.connect_unix(self.engine.attach_socket(self.id))
            started = _next_event(events)
            if started["event"] == "error":
                sock.close()
                if started.get("lost"):
                    self.engine.abandon_start(self.record)
                raise ContainerStartError(started["message"], started["code"])
        finally:
            events.close()

        def forward(signum):
            try:
                self.kill(signum)
            except VesselError:
                pass

        try:
            code = attach.attach(sock, stdin_fd=stdin_fd, stdout=stdout, stderr=stderr,
                                 tty=self.record.config.tty if tty is None else tty,
                                 on_signal=forward if sig_proxy else None)
        except BrokenPipeError:
            return 141  # our stdout went away: leave, the container runs on (what SIGPIPE does to docker)
        except attach.Detached:
            return 0
        finally:
            sock.close()
        if code is None:
            code = self.wait()["StatusCode"]
        # the supervisor has sent the exit code; --rm and its own exit follow at once
        self.engine.wait_supervisor(started.get("supervisor"), started.get("supervisor_start"))
        try:
            self.reload()
        except NotFound:
            pass
        return code

    def attach_foreground(self, stdin_fd=None, sig_proxy=True):
        """Relay the running container's streams from now on (Docker's attach); returns its exit code."""
        from vessel.engine import attach
        from vessel.runtime import sync

        self.reload()
        if self.record.status not in ("running", "paused"):
            raise Conflict("You cannot attach to a stopped container, start it first")
        sock = sync.connect_unix(self.engine.attach_socket(self.id))
        try:
            code = attach.attach(sock, stdin_fd=stdin_fd, tty=self.record.config.tty,
                                 on_signal=(lambda signum: self.kill(signum)) if sig_proxy else None)
        except attach.Detached:
            return 0
        finally:
            sock.close()
        return self.wait()["StatusCode"] if code is None else code

    def update(self, mem_limit=None, nano_cpus=None, pids_limit=None, restart_policy=None):
        """Change memory, CPU and pids limits (docker-py's names); restart policies are not supported yet."""
        if restart_policy:
            parse_restart(restart_policy.get("Name", "no") if isinstance(restart_policy, dict) else restart_policy)
        memory = parse_bytes(mem_limit, "-m, --memory") if isinstance(mem_limit, str) else mem_limit
        if memory and memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        self.engine.update(self.id, memory=memory, nano_cpus=nano_cpus, pids_limit=pids_limit)
        self.reload()

    def restart(self, timeout=None):
        self.stop(timeout)
        self.start()

    def stop(self, timeout=None, signal=None):
        """The stop signal, then SIGKILL after `timeout` seconds (the container's --stop-timeout by default)."""
        self.engine.stop(self.record.id, timeout, signal)
        self._quiet_reload()

    def kill(self, signal="SIGKILL"):
        self.engine.kill(self.record.id, signal)

    def pause(self):
        self.engine.pause(self.record.id)

    def unpause(self):
        self.engine.unpause(self.record.id)

    def rename(self, name):
        self.engine.rename(self.record.id, name)
        self.reload()

    def remove(self, force=False, v=False):
        self.engine.remove(self.record.id, force=force, volumes=v)

    def _quiet_reload(self):
        try:
            self.reload()
        except NotFound:
            pass

    def wait(self, timeout=None, condition="not-running"):
        """{"StatusCode": n, "Error": None} once the container stopped (or was removed)."""
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition}")
        if condition == "next-exit":
            while self.engine.state.by_id(self.id) is not None and \
                    self.engine.state.by_id(self.id).status not in ("running", "paused"):
                time.sleep(0.05)
        current = self.engine.wait_exit(self.record, timeout)
        if current is not None and current.status in ("running", "paused"):
            raise TimeoutError(f"container {self.short_id} still running after {timeout}s")
        if condition == "removed":
            while self.engine.state.by_id(self.id) is not None:
                time.sleep(0.05)
        code = current.exit_code if current is not None else self._exit_code_after_removal()
        if current is not None:
            self.record = current
        return {"StatusCode": code, "Error": None}

    def _exit_code_after_removal(self):
        return self.record.exit_code

    def log_entries(self, follow=False, tail="all", since=None, until=None):
        """(stream, text, RFC3339 time) of the stored output; with `follow`, new ones until it stops."""
        from vessel.engine.logs import parse_since

        if isinstance(since, (int, float)):
            since = int(since * 1e9)
        elif isinstance(since, str):
            since = parse_since(since)
        if isinstance(until, (int, float)):
            until = int(until * 1e9)
        elif isinstance(until, str):
            until = parse_since(until)
        tail_count = None if tail in ("all", None, -1) or int(tail) < 0 else int(tail)
        return self.engine.logs(self.record, follow=follow, tail=tail_count, since=since, until=until)

    def logs(self, stdout=True, stderr=True, stream=False, timestamps=False, tail="all", since=None,
             follow=None, until=None):
        """Bytes of the stored output (or an iterator of chunks with `stream`/`follow`)."""
        entries = self.log_entries(bool(follow if follow is not None else stream), tail, since, until)
        chunks = ((f"{stamp} " if timestamps else "").encode() + text.encode()
                  for name, text, stamp in entries
                  if (name == "stdout" and stdout) or (name == "stderr" and stderr))
        return chunks if stream or follow else b"".join(chunks)

    def exec_foreground(self, cmd, stdin=False, tty=False, detach=False, environment=None, user="", workdir=""):
        """Run `cmd` in the container on this process's stdio; returns its exit code."""
        self.reload()
        argv = self.engine.exec_argv(self.record, _command(cmd), tty=tty, detach=detach,
                                     env=_env(environment), user=user, workdir=workdir or "")
        return self._exec_code(argv, stdin=None if stdin or tty else subprocess.DEVNULL).returncode

    def _exec_code(self, argv, **kwargs):
        """Run the runtime's exec; a process that could not be started is 126 or 127, as in Docker."""
        import tempfile

        from vessel.engine.core import start_error_code
        from vessel.engine.supervisor import Supervisor

        with tempfile.NamedTemporaryFile(dir=self.engine.private_dir(self.id), prefix="exec-",
                                         suffix=".log") as log:
            runtime_len = len(self.record.runtime)
            argv = argv[:runtime_len] + ["--log", log.name, "--log-format", "json"] + argv[runtime_len:]
            result = subprocess.run(argv, **kwargs)
            if result.returncode != 0:
                message = Supervisor.runtime_error(log.name, "exec")
                if message != "the OCI runtime's exec failed":
                    result.returncode = start_error_code(message) if start_error_code(message) != 125 else 126
        return result

    def exec_run(self, cmd, stdout=True, stderr=True, stdin=False, tty=False, detach=False, environment=None,
                 workdir=None, user=""):
        """Run `cmd` in the container: ExecResult(exit_code, output bytes)."""
        self.reload()
        argv = self.engine.exec_argv(self.record, _command(cmd), tty=tty, detach=detach,
                                     env=_env(environment), user=user, workdir=workdir or "")
        result = self._exec_code(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                                 stderr=(subprocess.STDOUT if stdout else subprocess.PIPE) if stderr
                                 else subprocess.DEVNULL)
        if detach:
            return ExecResult(None, b"")
        return ExecResult(result.returncode, result.stdout or b"")

    def stats(self, interval=0.5):
        """Docker's stats figures from two readings `interval` seconds apart."""
        first = self.engine.stats_sample(self.record)
        time.sleep(interval)
        second = self.engine.stats_sample(self.record)
        with open("/proc/meminfo") as handle:
            host_memory = int(handle.readline().split()[1]) * 1024
        limit = second["limit"] if 0 < second["limit"] < host_memory else host_memory
        wall = max(1, second["time"] - first["time"])
        return {"id": self.id, "name": self.name,
                "cpu_percent": max(0, second["cpu"] - first["cpu"]) / wall * 100,
                "memory_usage": second["memory"], "memory_limit": limit,
                "memory_percent": second["memory"] / limit * 100 if limit else 0.0,
                "pids": second["pids"], "block_read": second["block_read"], "block_write": second["block_write"],
                "net_rx": 0, "net_tx": 0}

    def export(self, out):
        """Write the container's filesystem as a tar stream to the binary file `out`."""
        self.engine.export(self.id, out)

    def diff(self):
        """[{"Kind": 0|1|2, "Path": p}] as docker-py returns it (0 changed, 1 added, 2 deleted)."""
        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Kind": kinds[kind], "Path": path} for kind, path in self.engine.diff(self.id)]

    def top(self, ps_args=None):
        header, rows = self.engine.top(self.record.id, shlex.split(ps_args) if ps_args else ())
        return {"Titles": header, "Processes": rows}


def _next_event(events):
    import json

    line = events.readline()
    if not line:
        return {"event": "error", "message": "the container's supervisor exited unexpectedly", "code": 125,
                "lost": True}
    return json.loads(line)


def inspect_document(engine, record):
    """Docker's `inspect` shape for the fields vessel has."""
    config = record.config
    private = engine.private_dir(record.id)
    status = record.status
    mounts = [{"Type": "bind", "Source": b.source, "Destination": b.target, "Mode": "ro" if b.readonly else "",
               "RW": not b.readonly, "Propagation": "rprivate"} for b in config.binds]
    graph = {}
    try:
        for mount in engine.images.snapshots.mounts(record.id):
            options = dict(o.split("=", 1) for o in mount.options or [] if "=" in o)
            graph = {"LowerDir": options.get("lowerdir", ""), "UpperDir": options.get("upperdir", mount.source),
                     "WorkDir": options.get("workdir", ""), "MergedDir": engine.rootfs(record.id)}
    except VesselError:
        pass
    return {
        "Id": record.id,
        "Created": rfc3339(record.created),
        "Path": config.args[0] if config.args else "",
        "Args": config.args[1:],
        "State": {
            "Status": status, "Running": status in ("running", "paused"), "Paused": status == "paused",
            "Restarting": False, "OOMKilled": False, "Dead": status == "dead", "Pid": record.pid,
            "ExitCode": record.exit_code, "Error": record.error,
            "StartedAt": rfc3339(record.started), "FinishedAt": rfc3339(record.finished),
        },
        "Image": record.image_id,
        "ResolvConfPath": os.path.join(private, "resolv.conf"),
        "HostnamePath": os.path.join(private, "hostname"),
        "HostsPath": os.path.join(private, "hosts"),
        "LogPath": engine.log_path(record.id),
        "Name": "/" + record.name,
        "RestartCount": record.restart_count,
        "Driver": engine.images.snapshots.driver,
        "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": {
            "Binds": [f"{b.source}:{b.target}" + (":ro" if b.readonly else "") for b in config.binds] or None,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": str(config.log_max_size),
                                                          "max-file": str(config.log_max_file)}},
            "NetworkMode": config.network_mode,
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": config.auto_remove,
            "CapAdd": config.cap_add or None, "CapDrop": config.cap_drop or None,
            "Dns": config.dns, "ExtraHosts": config.extra_hosts or None,
            "Privileged": config.privileged, "ReadonlyRootfs": config.read_only,
            "SecurityOpt": (["seccomp=unconfined"] if config.seccomp_unconfined else []) +
                           (["no-new-privileges"] if config.no_new_privileges else []) or None,
            "Tmpfs": config.tmpfs or None,
            "Runtime": record.runtime[0] if record.runtime[0] != engine.runtime_command(None)[0] else "vessel",
            "CgroupParent": config.cgroup_parent,
            "Memory": config.memory, "NanoCpus": config.nano_cpus,
            "PidsLimit": config.pids_limit or None,
            "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in config.ulimits] or None,
        },
        "GraphDriver": {"Name": engine.images.snapshots.driver, "Data": graph},
        "Mounts": mounts,
        "Config": {
            "Hostname": config.hostname or record.id[:12], "Domainname": config.domainname,
            "User": config.user, "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "Tty": config.tty, "OpenStdin": config.open_stdin, "StdinOnce": False,
            "Env": config.env, "Cmd": config.cmd or None, "Image": record.image_ref,
            "Volumes": {v: {} for v in config.volumes} or None, "WorkingDir": config.working_dir,
            "Entrypoint": config.entrypoint or None, "Labels": dict(record.labels),
            "StopSignal": config.stop_signal, "StopTimeout": config.stop_timeout,
        },
        "NetworkSettings": {"Networks": {config.network_mode: {"IPAddress": "", "Gateway": "", "MacAddress": ""}},
                            "Ports": {}, "IPAddress": "", "Gateway": "", "MacAddress": ""},
    }
