"""vessel's Python API, shaped like docker-py:

    import vessel
    client = vessel.from_env()
    print(client.containers.run("busybox", ["echo", "hi"], remove=True))   # b"hi\\n"
    box = client.containers.run("busybox", "sleep 60", detach=True, name="box")
    code, output = box.exec_run("hostname")
    box.stop(); box.remove()

The `vessel` command is built on these calls.
"""

import json
import os
import shlex
import time

from vessel.engine import networking
from vessel.engine.core import DEFAULT_RUNROOT, Engine
from vessel.engine.model import (DEFAULT_NETWORK_MODE, ContainerConfig, NetworkAttachment, Ulimit,
                                 expand_env, parse_bytes, parse_capabilities, parse_expose, parse_publish,
                                 parse_tmpfs, validate_name)
from vessel.engine.health import Healthcheck
from vessel.engine.restart import RestartPolicy
from vessel.engine.model import label_matches as _label_matches, parse_mount, parse_volume
from vessel.errors import Conflict, InvalidArgument, NotFound, VesselError

__all__ = ["Client", "Container", "ContainerError", "ExecResult", "Volume", "from_env", "DEFAULT_ROOT"]

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
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


class Client:
    def __init__(self, root=DEFAULT_ROOT, runroot=DEFAULT_RUNROOT):
        self.engine = Engine(root, runroot)
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)
        self.volumes = VolumeCollection(self)

    def close(self):
        self.engine.close()

    def df(self):
        """Docker's disk usage object: LayersSize, Images, Containers, Volumes, BuildCache."""
        from vessel.engine import system

        return system.disk_usage(self.engine)

    def info(self):
        """Docker's /info object: containers by state, images, storage and cgroup drivers, host facts."""
        from vessel.engine import system

        return system.info(self.engine)

    def version(self):
        """Docker's /version object."""
        from vessel.engine import system

        return system.version()

    def events(self, since=None, until=None, filters=None, decode=None):
        """docker-py's events(): a generator of JSON messages (bytes, or dicts with `decode`).

        `since`/`until` are datetimes, unix seconds or Docker's strings (RFC3339, durations like
        "10m"); without `until` it follows new events until the caller stops iterating.
        """
        import datetime

        from vessel.engine import events
        from vessel.times import parse_time

        def stamp(value, name):
            if isinstance(value, datetime.datetime):
                return int(value.timestamp() * 1_000_000_000)
            return parse_time(value, name)

        for event in events.follow(self.engine.state, stamp(since, "since"), stamp(until, "until"),
                                   events.parse_filters(filters)):
            message = event.to_docker()
            yield message if decode else json.dumps(message).encode()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ImageCollection:
    """docker-py's `client.images`, on the image store: its Image records (id, repo_tags, config, size...)."""

    def __init__(self, client):
        self.client = client

    @property
    def store(self):
        return self.client.engine.images

    def get(self, name):
        """The image a reference, id or id prefix names; NotFound ("No such image: ...") otherwise."""
        return self.store.get(name)

    def list(self, name=None, all=False, filters=None):  # noqa: A002 - docker-py's name
        """All images, newest first; `name` (or filters={"reference": ...}) keeps those with a tag of that
        repository (or repository:tag); filters "dangling" (True: untagged only) and "label" (key or key=value)."""
        from vessel.engine.model import label_matches
        from vessel.image.reference import parse

        filters = {k: [v] if isinstance(v, (str, bool)) else list(v) for k, v in (filters or {}).items()}
        unknown = set(filters) - {"dangling", "label", "reference"}
        if unknown:
            raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
        names = ([name] if name else []) + filters.get("reference", [])

        def named(image, text):
            wanted = parse(text)
            bare = ":" not in text.rpartition("/")[2] and "@" not in text
            return any(parse(t).repository == wanted.repository if bare else parse(t).familiar == wanted.familiar
                       for t in image.repo_tags)

        images = self.store.list()
        for text in names:
            images = [i for i in images if named(i, text)]
        for value in filters.get("dangling", []):
            images = [i for i in images if bool(i.repo_tags) != (str(value).lower() in ("true", "1"))]
        for value in filters.get("label", []):
            images = [i for i in images if label_matches(i.config.config.labels or {}, value)]
        return images

    def pull(self, repository, tag=None, all_tags=False, platform=None, progress=None):
        """Pull repository[:tag] (a digest tag "sha256:..." pins it) and return the Image.

        `progress`: a text stream that gets Docker's pull lines (None: quiet).
        """
        from vessel.errors import Unsupported
        from vessel.image import registry
        from vessel.image.reference import parse

        if all_tags:
            raise Unsupported("pulling all tags of a repository is not supported")
        name = repository if not tag else f"{repository}{'@' if tag.startswith('sha256:') else ':'}{tag}"
        ref = parse(name)
        image = registry.pull(self.store, name, platform=platform or "linux/amd64", progress=progress)
        self.client.engine.emit_image_event("pull", ref.familiar, name=ref.familiar)
        return image

    def remove(self, image, force=False, noprune=False):
        """Untag, and delete when no tag is left: [{"Untagged": ref} | {"Deleted": id}] like the Engine API."""
        image_id = self.store.get(image).id
        result = []
        for kind, what in self.store.remove(image, force=force):
            result.append({kind: what})
            if kind == "Untagged" or what == image_id:
                self.client.engine.emit_image_event("untag" if kind == "Untagged" else "delete", image_id,
                                                    name=what)
        return result

    def tag(self, image, repository, tag=None, force=False):
        """Name `image` repository[:tag]; True, as docker-py returns."""
        from vessel.image.reference import parse

        target = f"{repository}:{tag}" if tag else repository
        tagged = self.store.tag(image, target)
        self.client.engine.emit_image_event("tag", tagged.id, name=parse(target).familiar)
        return True


def _command(value):
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _mounts(volumes, mounts):
    """docker-py's `volumes` (["/h:/c:ro", "name:/c", "/c"] or {"/h or name": {"bind": "/c", "mode": "ro"}})
    and `mounts` (--mount strings, or dicts shaped like docker-py's Mount) -> [Mount]."""
    if isinstance(volumes, dict):
        volumes = [f"{source}:{spec['bind']}:{spec.get('mode', 'rw')}" if isinstance(spec, dict)
                   else f"{source}:{spec}" for source, spec in volumes.items()]
    return [parse_volume(v) for v in volumes or []] + \
        [parse_mount(m if isinstance(m, str) else mount_text(m)) for m in mounts or []]


def _env(environment):
    if not environment:
        return []
    if isinstance(environment, dict):
        return [f"{k}={v}" for k, v in environment.items()]
    return [expand_env(item) for item in environment]


_SECURITY_OPTS = ("seccomp=unconfined", "seccomp:unconfined", "no-new-privileges", "no-new-privileges=true",
                  "no-new-privileges:true", "no-new-privileges=false")


def build_config(image, command=None, *, entrypoint=None, environment=None, working_dir="", user="",
                 hostname="", domainname="", tty=False, stdin_open=False, labels=None, volumes=None, mounts=None,
                 volumes_from=None, tmpfs=None,
                 extra_hosts=None, dns=None, network_mode=None, network=None, networks=None, ipv4_address=None,
                 ipv6_address=None, network_aliases=None, mac_address=None, ports=None, publish=None,
                 publish_all_ports=False, expose=None, mem_limit=0, nano_cpus=0, pids_limit=0,
                 ulimits=None, read_only=False, cap_add=None, cap_drop=None, privileged=False, security_opt=None,
                 stop_signal=None, stop_timeout=None, auto_remove=False, cgroup_parent="", restart_policy=None,
                 healthcheck=None, log_config=None, **host_options):
    """A ContainerConfig from docker-py style arguments (strings are parsed, bad ones rejected).

    Networks: `network_mode` (bridge, host, none, container:NAME, a network's name) or
    `network`/`networks` (names; the first is the mode), `ipv4_address`, `ipv6_address`,
    `network_aliases` and `mac_address` for the first network. Ports: docker-py's
    `ports` ({"80/tcp": 8080 | None | ("127.0.0.1", 8080) | [..]}) and/or `publish`
    (-p strings), `publish_all_ports` (-P), `expose` (--expose strings).
    """
    mode, attachments = _attachments(network_mode, network, networks, ipv4_address, ipv6_address, network_aliases,
                               mac_address)
    policy = RestartPolicy.from_api(restart_policy)
    if auto_remove and policy.enabled:
        raise InvalidArgument("Conflicting options: --restart and --rm")
    if not isinstance(healthcheck, Healthcheck):
        healthcheck = Healthcheck.from_docker(healthcheck)
    memory = parse_bytes(mem_limit, "-m, --memory") if isinstance(mem_limit, str) else int(mem_limit or 0)
    if memory and memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    seccomp_profile = {}
    for option in security_opt or []:
        if option.startswith(("seccomp=", "seccomp:")) and option not in _SECURITY_OPTS:
            seccomp_profile = load_seccomp_profile(option[len("seccomp="):])
        elif option not in _SECURITY_OPTS and not option.startswith("label"):
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
        mounts=_mounts(volumes, mounts), volumes_from=list(volumes_from or []), tmpfs=tmpfs_map, extra_hosts=list(extra_hosts or []), dns=list(dns or []),
        network_mode=mode,
        networks=attachments, ports=_port_bindings(ports, publish), publish_all=bool(publish_all_ports),
        expose=[key for item in expose or [] for key in parse_expose(str(item))], memory=memory, nano_cpus=int(nano_cpus or 0), pids_limit=int(pids_limit or 0),
        ulimits=[u if isinstance(u, Ulimit) else Ulimit.parse(u) for u in ulimits or []],
        read_only=bool(read_only), cap_add=parse_capabilities(cap_add or []),
        cap_drop=parse_capabilities(cap_drop or []), privileged=bool(privileged),
        seccomp_unconfined=any(o in ("seccomp=unconfined", "seccomp:unconfined") for o in security_opt or []),
        seccomp_profile=seccomp_profile,
        no_new_privileges=any(o.startswith("no-new-privileges") and not o.endswith("false")
                              for o in security_opt or []),
        stop_signal=stop_signal or "SIGTERM", stop_timeout=10 if stop_timeout is None else int(stop_timeout),
        auto_remove=bool(auto_remove), cgroup_parent=cgroup_parent or "", restart_policy=policy,
        healthcheck=healthcheck,
    )
    if "max-size" in log_options:
        config.log_max_size = parse_bytes(log_options["max-size"], "--log-opt max-size")
    if "max-file" in log_options:
        if not str(log_options["max-file"]).isdigit() or int(log_options["max-file"]) < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        config.log_max_file = int(log_options["max-file"])
    _host_options(config, log_config, **host_options)
    # an explicit entrypoint replaces the image's; None keeps it
    if entrypoint is None:
        config.entrypoint = None
    return config


_MIN_MEMORY = 6 * 1024 * 1024
_LOG_DRIVERS = ("json-file", "none")
_DOCKER_LOG_DRIVERS = ("local", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs", "gcplogs",
                       "logentries")


def _size(value, flag):
    """A byte count given as a number or Docker's size text ("64m"); "-1" where -1 means unlimited."""
    if isinstance(value, str):
        return -1 if value.strip() == "-1" else parse_bytes(value, flag)
    return int(value or 0)


def load_seccomp_profile(path):
    """A seccomp profile file in Docker's format (or OCI's), read once at create as dockerd does."""
    import json

    try:
        with open(path, "rb") as handle:
            profile = json.loads(handle.read())
    except OSError as exc:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {exc.strerror.lower()}") from None
    except ValueError as exc:
        raise InvalidArgument(f"Decoding seccomp profile failed: {exc}") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str) or \
            not isinstance(profile.get("syscalls", []), list):
        raise InvalidArgument(f"Decoding seccomp profile failed: {path}: not a seccomp profile (defaultAction, "
                              "syscalls)")
    return profile


def _host_options(config, log_config=None, *, memswap_limit=0, mem_reservation=0, cpu_shares=0, cpu_period=0,
                  cpu_quota=0, cpuset_cpus="", cpuset_mems="", devices=None, device_cgroup_rules=None,
                  shm_size=None, group_add=None, oom_score_adj=0, pid_mode="", ipc_mode="", uts_mode="",
                  sysctls=None, init=False):
    """docker-py's resource, device, namespace and init options onto `config`, checked as dockerd checks them.

    Sizes are bytes or Docker's text ("64m"); `memswap_limit` -1 is unlimited swap; `devices` are
    "host[:container][:rwm]" strings; `sysctls` a dict; `pid_mode`/`ipc_mode` may be "container:NAME".
    """
    from vessel.engine.model import (DEFAULT_SHM_SIZE, Device, parse_cpuset, parse_device_cgroup_rule,
                                     parse_namespace_mode, parse_sysctl)

    driver = (log_config.get("Type") if isinstance(log_config, dict) else None) or "json-file"
    if driver not in _LOG_DRIVERS:
        if driver in _DOCKER_LOG_DRIVERS:
            from vessel.errors import Unsupported

            raise Unsupported(f"logging driver {driver!r} is not supported (json-file, none)")
        raise InvalidArgument(f"logger: no log driver named '{driver}' is registered")
    config.log_driver = driver
    swap = _size(memswap_limit, "--memory-swap")
    reservation = _size(mem_reservation, "--memory-reservation")
    if reservation and reservation < _MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if config.memory and reservation > config.memory:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    if swap > 0 and not config.memory:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if swap > 0 and swap < config.memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    config.memory_swap, config.memory_reservation = swap, reservation
    shares = int(cpu_shares or 0)
    if shares < 0:
        raise InvalidArgument(f"invalid CPU shares ({shares}): value must be a positive integer")
    config.cpu_shares = min(max(shares, 2), 262144) if shares else 0  # the kernel's range, as dockerd clamps
    period, quota = int(cpu_period or 0), int(cpu_quota or 0)
    if config.nano_cpus and period:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if config.nano_cpus and quota:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    config.cpu_period, config.cpu_quota = period, quota
    config.cpuset_cpus = parse_cpuset(cpuset_cpus or "", "cpuset cpus")
    config.cpuset_mems = parse_cpuset(cpuset_mems or "", "cpuset mems")
    config.devices = [d if isinstance(d, Device) else Device.parse(d) for d in devices or []]
    config.device_cgroup_rules = [parse_device_cgroup_rule(r) for r in device_cgroup_rules or []]
    if shm_size is not None:
        config.shm_size = _size(shm_size, "--shm-size")
        if config.shm_size < 0:
            raise InvalidArgument("SHM size can not be less than 0")
        config.shm_size = config.shm_size or DEFAULT_SHM_SIZE
    config.group_add = [str(g) for g in group_add or []]
    if not -1000 <= int(oom_score_adj or 0) <= 1000:
        raise InvalidArgument(f"Invalid value {oom_score_adj}, range for oom score adj is [-1000, 1000]")
    config.oom_score_adj = int(oom_score_adj or 0)
    config.pid_mode = parse_namespace_mode("pid", pid_mode)
    config.ipc_mode = parse_namespace_mode("ipc", ipc_mode)
    config.uts_mode = parse_namespace_mode("uts", uts_mode)
    if config.uts_mode == "host":
        if config.hostname:
            raise InvalidArgument("Conflicting options: hostname and the UTS mode")
        import socket

        config.hostname = socket.gethostname()
    config.sysctls = dict(parse_sysctl(f"{k}={v}", config.network_mode, config.ipc_mode)
                          for k, v in (sysctls or {}).items())
    config.init = bool(init)
    if config.init:
        from vessel.engine.specgen import check_docker_init

        check_docker_init()


def _attachments(network_mode, network, networks, ipv4, ipv6, aliases, mac):
    """(network mode, [NetworkAttachment]) of a new container; no attachments for host, none, container:."""
    names = list(networks or []) + ([network] if network else [])
    if network_mode and names:
        raise InvalidArgument("conflicting options: network_mode and network(s)")
    if not names:
        mode = network_mode or DEFAULT_NETWORK_MODE
        names = [mode]
    if names[0] in ("host", "none") or names[0].startswith("container:"):
        if names[1:]:
            raise InvalidArgument("conflicting options: cannot attach both user-defined and non-user-defined "
                                  "network-modes")
        if ipv4 or ipv6 or aliases or mac:
            raise InvalidArgument("conflicting options: network settings and the network mode")
        return names[0], []
    first = NetworkAttachment(names[0], aliases=list(aliases or []), ipv4=ipv4 or "", ipv6=ipv6 or "",
                              mac=(mac or "").lower())
    return names[0], [first] + [NetworkAttachment(name) for name in names[1:]]


def _port_bindings(ports, publish):
    """docker-py's `ports` dict and -p strings -> [PortBinding]."""
    bindings = [b for spec in publish or [] for b in parse_publish(spec)]
    for key, targets in (ports or {}).items():
        for target in targets if isinstance(targets, list) else [targets]:
            host_ip, host_port = target if isinstance(target, tuple) else ("", target)
            spec = f"{host_port or ''}:{key}"
            bindings += parse_publish(f"[{host_ip}]:{spec}" if host_ip else spec)
    return bindings


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
        options.pop("platform", None)  # (the pull's; a local image is used whatever its platform)
        config = build_config(image, command, **options)
        for mode in ("pid_mode", "ipc_mode"):  # container:NAME is kept as container:ID, as Docker does
            kind, _, peer = getattr(config, mode).partition(":")
            if kind == "container":
                setattr(config, mode, "container:" + self.engine.get(peer).id)
        record = self.engine.create(config, name=name, runtime=runtime)
        return Container(self.client, record)

    def run(self, image, command=None, detach=False, remove=False, stdout=True, stderr=False, **options):
        """docker-py's run: the image is pulled first when missing; output bytes, or the Container with `detach`."""
        try:
            self.client.images.get(image)
        except NotFound:
            self.client.images.pull(image, platform=options.get("platform"))
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

    def prune(self, filters=None):
        """Remove every stopped container (filters: until, label, label!):
        {"ContainersDeleted": [ids], "SpaceReclaimed": bytes}."""
        from vessel.engine.events import parse_filters
        from vessel.engine.system import prune_filter

        selected = prune_filter(parse_filters(filters, ("until", "label", "label!")))
        deleted, reclaimed = [], 0
        for record in self.engine.list():
            if record.status in ("created", "exited", "dead") and selected(record.labels, record.created):
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
        records = self.engine.list(None if all else ("running", "paused", "restarting"))
        if not all:
            records = [r for r in records if r.status in ("running", "paused", "restarting")]
        filters = _resolve_filters(self.engine, filters or {})
        containers = [Container(self.client, r) for r in records if matches(r, filters)]
        return containers[:limit] if limit >= 0 else containers


_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _resolve_filters(engine, filters):
    """Filters that name other objects, resolved once: before/since to creation times, ancestor to image ids."""
    resolved = {}
    for key, values in filters.items():
        values = [values] if isinstance(values, str) else list(values)
        if key in ("before", "since"):
            values = [engine.get(v).created for v in values]
        elif key == "ancestor":
            ids = []
            for value in values:
                try:
                    ids.append(engine.images.get(value).id)
                except NotFound:
                    pass  # an image that is gone: only containers naming it textually match
            values = values + ids
        elif key == "status":
            bad = [v for v in values if v not in _STATUSES]
            if bad:
                raise InvalidArgument(f"invalid filter 'status={bad[0]}'")
        elif key == "health":
            bad = [v for v in values if v not in ("starting", "healthy", "unhealthy", "none")]
            if bad:
                raise InvalidArgument(f"Unrecognised filter value for health: {bad[0]}")
        elif key == "restart-policy":
            for value in values:
                RestartPolicy.validated(value)
        resolved[key] = values
    return resolved


def matches(record, filters):
    """Docker's ps filters: name (substring/regex), id (prefix), status, label (key or key=value), ancestor,
    exited, before, since, volume, network, health, restart-policy (`before`/`since`/`ancestor` resolved by
    _resolve_filters)."""
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
        elif key == "before":
            ok = record.created < min(values)
        elif key == "since":
            ok = record.created > max(values)
        elif key == "volume":
            ok = any(m.source in values or m.target in values for m in record.config.mounts)
        elif key == "network":
            ok = any(n in values for n in [a.network for a in record.config.networks] + [record.config.network_mode])
        elif key == "is-task":
            ok = "false" in values  # no swarm: no container is a task
        elif key == "health":
            ok = (record.health.status if record.health else "none") in values
        elif key == "restart-policy":
            ok = record.config.restart_policy.name in values
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


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
    health = property(lambda self: self.record.health.status if self.record.health else "unknown")

    @property
    def attrs(self):
        return inspect_document(self.engine, self.record)

    @property
    def ports(self):
        """docker-py's Container.ports: NetworkSettings.Ports ({"80/tcp": [{"HostIp", "HostPort"}]})."""
        return networking.port_settings(self.record.config, self.record.status in ("running", "paused"))

    def reload(self):
        self.record = self.engine.get(self.record.id)

    def start(self):
        self.engine.start(self.record.id)
        self.reload()

    def start_attached(self, stdin_fd=None, stdout=None, stderr=None, tty=None, sig_proxy=True, detach_keys=None):
        """Start with output (and `stdin_fd`) relayed here; returns the exit code.

        `detach_keys` (bytes, default ctrl-p ctrl-q) typed on stdin leave the container running."""
        from vessel.engine import attach

        self.engine.emit_event(self.record, "attach")
        # attached by the monitor before the container's process starts
        sock = self.engine.start(self.record.id, wait_attach=True)

        def forward(signum):
            try:
                self.kill(signum)
            except VesselError:
                pass

        try:
            code = attach.attach(sock, stdin_fd=stdin_fd, stdout=stdout, stderr=stderr,
                                 tty=self.record.config.tty if tty is None else tty,
                                 on_signal=forward if sig_proxy else None,
                                 detach_keys=detach_keys or attach.DETACH_KEYS)
        except BrokenPipeError:
            return 141  # our stdout went away: leave, the container runs on (what SIGPIPE does to docker)
        except attach.Detached:
            return 0
        finally:
            sock.close()
        if code is None:
            code = self.wait()["StatusCode"]
        try:
            self.reload()
        except NotFound:
            pass
        return code

    def attach_foreground(self, stdin_fd=None, sig_proxy=True, detach_keys=None):
        """Relay the running container's streams from now on (Docker's attach); returns its exit code."""
        from vessel.engine import attach, monitor

        self.reload()
        if self.record.status not in ("running", "paused"):
            raise Conflict("You cannot attach to a stopped container, start it first")
        sock = monitor.attach_to(self.engine, self.id)
        self.engine.emit_event(self.record, "attach")
        try:
            code = attach.attach(sock, stdin_fd=stdin_fd, tty=self.record.config.tty,
                                 on_signal=(lambda signum: self.kill(signum)) if sig_proxy else None,
                                 detach_keys=detach_keys or attach.DETACH_KEYS)
        except attach.Detached:
            return 0
        finally:
            sock.close()
        return self.wait()["StatusCode"] if code is None else code

    def update(self, mem_limit=None, nano_cpus=None, pids_limit=None, restart_policy=None):
        """Change memory, CPU and pids limits and the restart policy (docker-py's names)."""
        policy = None if restart_policy is None else RestartPolicy.from_api(restart_policy)
        if policy is not None and policy.enabled and self.record.config.auto_remove:
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the "
                                  "container")
        memory = parse_bytes(mem_limit, "-m, --memory") if isinstance(mem_limit, str) else mem_limit
        if memory and memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        self.engine.update(self.id, memory=memory, nano_cpus=nano_cpus, pids_limit=pids_limit, restart_policy=policy)
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
        """{"StatusCode": n, "Error": None} once the container stopped (or was removed).

        As Docker's: a container its restart policy is about to start again counts as running, and the
        wait ends at its next exit, restarted or not.
        """
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition}")
        if condition == "next-exit":
            while self.engine.state.by_id(self.id) is not None and \
                    self.engine.state.by_id(self.id).status not in ("running", "paused"):
                time.sleep(0.05)
        began = time.monotonic()
        current = self.engine.wait_exit(self.record, timeout, through_restarts=True)
        if timeout is not None and time.monotonic() - began >= timeout and current is not None and \
                current.status in ("running", "paused", "restarting"):
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
        from vessel.times import parse_time

        if isinstance(since, (int, float)):
            since = int(since * 1e9)
        elif isinstance(since, str):
            since = parse_time(since, "since")
        if isinstance(until, (int, float)):
            until = int(until * 1e9)
        elif isinstance(until, str):
            until = parse_time(until, "until")
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

    def exec_foreground(self, cmd, stdin=False, tty=False, detach=False, environment=None, user="", workdir="",
                        privileged=False):
        """Run `cmd` in the container on this process's stdio; returns its exit code."""
        import subprocess

        self.reload()
        argv = self.engine.exec_argv(self.record, _command(cmd), tty=tty, detach=detach, env=_env(environment),
                                     user=user, workdir=workdir or "", privileged=privileged)
        return self._exec_code(argv, stdin=None if stdin or tty else subprocess.DEVNULL).returncode

    def _exec_code(self, argv, **kwargs):
        """Run the runtime's exec; a process that could not be started is 126 or 127, as in Docker."""
        import subprocess
        import tempfile

        from vessel.engine.core import start_error_code
        from vessel.engine.monitor import runtime_error

        with tempfile.NamedTemporaryFile(dir=self.engine.private_dir(self.id), prefix="exec-",
                                         suffix=".log") as log:
            runtime_len = len(self.record.runtime)
            argv = argv[:runtime_len] + ["--log", log.name, "--log-format", "json"] + argv[runtime_len:]
            result = subprocess.run(argv, **kwargs)
            if result.returncode != 0:
                message = runtime_error(log.name, "exec")
                if message != "the OCI runtime's exec failed":
                    result.returncode = start_error_code(message) if start_error_code(message) != 125 else 126
        return result

    def exec_run(self, cmd, stdout=True, stderr=True, stdin=False, tty=False, privileged=False, user="",
                 detach=False, stream=False, environment=None, workdir=None, demux=False):
        """Run `cmd` in the container: ExecResult(exit_code, output), as docker-py's exec_run.

        `output` is bytes (stdout and stderr together), or with `demux` a (stdout, stderr) pair (None
        for a stream not asked for); with `stream` a generator of chunks (or pairs) and exit_code None.
        `environment`: dict or ["K=V"]; `user`: name or uid[:gid] from the container's /etc/passwd.
        """
        import subprocess

        self.reload()
        argv = self.engine.exec_argv(self.record, _command(cmd), tty=tty, detach=detach, env=_env(environment),
                                     user=user, workdir=workdir or "", privileged=privileged)
        if stream and not detach:
            return ExecResult(None, _exec_stream(argv, stdout, stderr, demux))
        if demux and not detach:
            result = self._exec_code(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                                     stderr=subprocess.PIPE if stderr else subprocess.DEVNULL)
            return ExecResult(result.returncode, (result.stdout if stdout else None,
                                                  result.stderr if stderr else None))
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

    def commit(self, repository=None, tag=None, message="", author="", pause=True, changes=None, conf=None):
        """docker-py's commit: the container's changes as a new image (tagged repository:tag if given)."""
        if conf:
            raise InvalidArgument("commit: conf is not supported; use changes (Dockerfile instructions)")
        if isinstance(changes, str):
            changes = [changes]
        name = f"{repository}:{tag}" if repository and tag else repository
        return self.engine.commit(self.id, name, author=author or "", message=message or "", changes=changes or (),
                                  pause=pause)

    def get_archive(self, path, chunk_size=2 << 20, encode_stream=False, follow=False):
        """(tar chunks, stat) of `path` in the container, as docker-py returns them."""
        import posixpath
        import tempfile

        from vessel.engine import copy

        spool = tempfile.TemporaryFile()
        name = posixpath.basename(posixpath.normpath(path)) or "/"
        top = []

        def remember_top(items):
            for info, data in items:
                top[:] = top or [info]
                yield info, data

        with self.engine.filesystem(self.id) as (_, root):
            copy.write_tar(remember_top(copy.entries(root, path, name, follow)), spool)
        spool.seek(0)
        info = top[0]
        mode = info.mode | (1 << 31 if info.isdir() else 0) | (1 << 27 if info.issym() else 0)
        details = {"name": name, "size": info.size, "mode": mode, "linkTarget": info.linkname,
                   "mtime": rfc3339(info.mtime).replace(".000000Z", "Z")}

        def chunks():
            with spool:
                while True:
                    data = spool.read(chunk_size)
                    if not data:
                        return
                    yield data

        return chunks(), details

    def put_archive(self, path, data):
        """Extract the tar `data` (bytes or a binary file) into the existing directory `path` of the container."""
        import io

        from vessel.engine import copy

        source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        with self.engine.filesystem(self.id) as (_, root):
            directory = copy.open_directory(root, path)
            try:
                copy.extract(directory, copy.read_tar(source), owner=None)
            finally:
                os.close(directory)
        return True

    def diff(self):
        """[{"Kind": 0|1|2, "Path": p}] as docker-py returns it (0 changed, 1 added, 2 deleted)."""
        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Kind": kinds[kind], "Path": path} for kind, path in self.engine.diff(self.id)]

    def top(self, ps_args=None):
        header, rows = self.engine.top(self.record.id, shlex.split(ps_args) if ps_args else ())
        return {"Titles": header, "Processes": rows}


def _host_options_document(config):
    """inspect's HostConfig fields of the resource, device, namespace and init options."""
    swap = config.memory_swap or (2 * config.memory if config.memory else 0)
    return {
        "MemorySwap": swap, "MemoryReservation": config.memory_reservation, "CpuShares": config.cpu_shares,
        "CpuPeriod": config.cpu_period, "CpuQuota": config.cpu_quota, "CpusetCpus": config.cpuset_cpus,
        "CpusetMems": config.cpuset_mems,
        "Devices": [{"PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.permissions}
                    for d in config.devices],
        "DeviceCgroupRules": config.device_cgroup_rules or None, "ShmSize": config.shm_size,
        "GroupAdd": config.group_add or None, "OomScoreAdj": config.oom_score_adj, "PidMode": config.pid_mode,
        "IpcMode": config.ipc_mode, "UTSMode": config.uts_mode, "Sysctls": config.sysctls or None,
        "Init": config.init or None,
    }


def _exec_stream(argv, stdout, stderr, demux):
    """Chunks of a running exec as they come: bytes, or (stdout, stderr) pairs with `demux`."""
    import selectors
    import subprocess

    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                            stderr=(subprocess.PIPE if demux or not stdout else subprocess.STDOUT) if stderr
                            else subprocess.DEVNULL)
    try:
        with selectors.DefaultSelector() as selector:
            for index, pipe in ((0, proc.stdout), (1, proc.stderr)):
                if pipe is not None:
                    selector.register(pipe, selectors.EVENT_READ, index)
            while selector.get_map():
                for key, _ in selector.select():
                    data = os.read(key.fileobj.fileno(), 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                    elif demux:
                        yield (data, None) if key.data == 0 else (None, data)
                    else:
                        yield data
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _health_document(health):
    """inspect's State.Health."""
    return {"Status": health.status, "FailingStreak": health.failing_streak,
            "Log": [{"Start": rfc3339(entry.start), "End": rfc3339(entry.end), "ExitCode": entry.exit_code,
                     "Output": entry.output} for entry in health.log]}


def inspect_document(engine, record):
    """Docker's `inspect` shape for the fields vessel has."""
    config = record.config
    private = engine.private_dir(record.id)
    status = record.status
    mounts = [mount_document(engine, m) for m in config.mounts]
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
            "Status": status, "Running": status in ("running", "paused", "restarting"),
            "Paused": status == "paused",
            "Restarting": status == "restarting", "OOMKilled": False, "Dead": status == "dead", "Pid": record.pid,
            "ExitCode": record.exit_code, "Error": record.error,
            "StartedAt": rfc3339(record.started), "FinishedAt": rfc3339(record.finished),
            **({"Health": _health_document(record.health)} if record.health else {}),
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
            "Binds": [m.spec for m in config.mounts if m.flag == "-v"] or None,
            "Mounts": [host_config_mount(m) for m in config.mounts if m.flag == "--mount"] or None,
            "VolumesFrom": config.volumes_from or None,
            "LogConfig": {"Type": config.log_driver, "Config": {"max-size": str(config.log_max_size),
                                                                "max-file": str(config.log_max_file)}
                          if config.log_driver == "json-file" else {}},
            "NetworkMode": config.network_mode,
            "PortBindings": networking.port_bindings(config), "PublishAllPorts": config.publish_all,
            "RestartPolicy": config.restart_policy.to_docker(),
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
            **_host_options_document(config),
        },
        "GraphDriver": {"Name": engine.images.snapshots.driver, "Data": graph},
        "Mounts": mounts,
        "Config": {
            "Hostname": config.hostname or record.id[:12], "Domainname": config.domainname,
            "User": config.user, "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "Tty": config.tty, "OpenStdin": config.open_stdin, "StdinOnce": False,
            "Env": config.env, "Cmd": config.cmd or None, "Image": record.image_ref,
            "Volumes": {m.target: {} for m in config.mounts if m.flag == "image" or
                        (m.flag == "-v" and ":" not in m.spec)} or None, "WorkingDir": config.working_dir,
            "Entrypoint": config.entrypoint or None, "Labels": dict(record.labels),
            "StopSignal": config.stop_signal, "StopTimeout": config.stop_timeout,
            **({"Healthcheck": config.healthcheck.to_docker()} if config.healthcheck else {}),
            "ExposedPorts": {key: {} for key in config.expose} or None,
        },
        "NetworkSettings": networking.network_settings(engine, record),
    }


# -- volumes and mounts -------------------------------------------------------------

def mount_document(engine, mount):
    """One entry of a container's inspect `Mounts`, as Docker shows it."""
    document = {"Type": mount.type, "Source": mount.source if mount.type == "bind" else "",
                "Destination": mount.target, "Mode": mount.mode, "RW": not mount.readonly,
                "Propagation": (mount.propagation or "rprivate") if mount.type == "bind" else ""}
    if mount.type == "volume":
        document = {"Type": "volume", "Name": mount.source, "Source": engine.volumes.data_path(mount.source),
                    "Destination": mount.target, "Driver": mount.driver, "Mode": mount.mode,
                    "RW": not mount.readonly, "Propagation": ""}
    return document


def host_config_mount(mount):
    """A --mount as HostConfig.Mounts holds it (Docker's mount.Mount)."""
    document = {"Type": mount.type, "Source": mount.source, "Target": mount.target}
    if mount.readonly:
        document["ReadOnly"] = True
    if mount.type == "bind" and mount.propagation:
        document["BindOptions"] = {"Propagation": mount.propagation}
    elif mount.type == "volume" and (mount.nocopy or mount.volume_labels or mount.driver_options):
        document["VolumeOptions"] = {"NoCopy": mount.nocopy, "Labels": mount.volume_labels or None,
                                     "DriverConfig": {"Name": mount.driver, "Options": mount.driver_options}}
    elif mount.type == "tmpfs" and (mount.tmpfs_size or mount.tmpfs_mode):
        document["TmpfsOptions"] = {"SizeBytes": mount.tmpfs_size, "Mode": mount.tmpfs_mode}
    return document


def mount_text(document):
    """A docker-py Mount (dict with Type, Source, Target, ReadOnly, *Options) as --mount text."""
    parts = [f"type={document.get('Type', 'volume')}", f"target={document['Target']}"]
    if document.get("Source"):
        parts.append(f"source={document['Source']}")
    if document.get("ReadOnly"):
        parts.append("readonly")
    if (document.get("BindOptions") or {}).get("Propagation"):
        parts.append(f"bind-propagation={document['BindOptions']['Propagation']}")
    volume = document.get("VolumeOptions") or {}
    if volume.get("NoCopy"):
        parts.append("volume-nocopy")
    parts += [f"volume-label={k}={v}" for k, v in (volume.get("Labels") or {}).items()]
    parts += [f"volume-opt={k}={v}" for k, v in ((volume.get("DriverConfig") or {}).get("Options") or {}).items()]
    tmpfs = document.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        parts.append(f"tmpfs-size={tmpfs['SizeBytes']}")
    if tmpfs.get("Mode"):
        parts.append(f"tmpfs-mode={tmpfs['Mode']:o}")
    return ",".join(parts)


def volume_document(engine, volume):
    """Docker's `volume inspect` object."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(volume.created))
    return {"CreatedAt": created, "Driver": volume.driver,
            "Labels": volume.labels or None, "Mountpoint": engine.volumes.data_path(volume.name),
            "Name": volume.name, "Options": volume.options or None, "Scope": "local"}


class VolumeCollection:
    """docker-py's client.volumes."""

    def __init__(self, client):
        self.client = client

    @property
    def store(self):
        return self.client.engine.volumes

    def create(self, name=None, driver=None, driver_opts=None, labels=None):
        return Volume(self.client, self.store.create(name, driver or "local", labels, driver_opts))

    def get(self, volume_id):
        return Volume(self.client, self.store.get(volume_id))

    def list(self, filters=None):
        from vessel.engine.volumes import matches

        users = self.store.users()
        return [Volume(self.client, v) for v in self.store.list() if matches(v, filters or {}, users)]

    def prune(self, filters=None):
        """Remove unused anonymous volumes (all unused ones with the filter all=true)."""
        filters = dict(filters or {})
        everything = filters.pop("all", None)
        everything = [everything] if isinstance(everything, (str, bool)) else list(everything or [])
        deleted, reclaimed = self.store.prune(all=any(str(v).lower() in ("true", "1") for v in everything),
                                              filters=filters)
        return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}


class Volume:
    """docker-py's Volume: name (also id), attrs, remove, reload."""

    def __init__(self, client, record):
        self.client = client
        self.record = record

    def __repr__(self):
        return f"<Volume: {self.short_id}>"

    id = name = property(lambda self: self.record.name)
    short_id = property(lambda self: self.record.name[:12])

    @property
    def attrs(self):
        return volume_document(self.client.engine, self.record)

    def reload(self):
        self.record = self.client.engine.volumes.get(self.record.name)

    def remove(self, force=False):
        self.client.engine.volumes.remove(self.record.name, force=force)
