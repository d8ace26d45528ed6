"""What `run` and `create` do, without click: the fast path (vessel.cli.runflags) calls these directly
and the click commands in vessel.cli.containers call them too. Each returns the command's exit code;
engine errors propagate to vessel.cli.main, which maps them."""

import os
import sys

from vessel.errors import InvalidArgument, NotFound

__all__ = ["run", "create", "start_failed"]


def _echo(text, err=False):
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _client(obj):
    from vessel.api import Client

    return Client(obj.root, obj.runroot)


def start_failed(exc):
    """A start failure: Docker's message; returns its exit code (125, 126 or 127)."""
    _echo(f"Error: {exc}", err=True)
    return exc.exit_code


def run(obj, opts):
    """`vessel run`: create the container, start it detached or attached; the container's exit code."""
    from vessel.engine import monitor
    from vessel.engine.attach import parse_detach_keys
    from vessel.engine.core import ContainerStartError

    monitor.wake(obj.root, obj.runroot)  # it loads what the start needs while this command creates the container
    detach = opts["detach"]
    streams = _attached_streams(opts["attach_streams"], detach)
    detach_keys = parse_detach_keys(opts["detach_keys"])
    container = _create(obj, opts)
    try:
        if detach:
            container.start()
            _echo(container.id)
            return 0
        code = container.start_attached(stdin_fd=0 if opts["interactive"] and "stdin" in streams else None,
                                        stdout=None if "stdout" in streams else _discard,
                                        stderr=None if "stderr" in streams else _discard,
                                        sig_proxy=opts["sig_proxy"], detach_keys=detach_keys)
    except ContainerStartError as exc:
        return start_failed(exc)
    if code == 141:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing more can be written to the closed pipe
    return code


def create(obj, opts):
    """`vessel create`: print the new container's id."""
    _echo(_create(obj, opts).id)
    return 0


def _create(obj, opts):
    from vessel.engine.model import parse_bytes, parse_cpus, parse_env_file

    env = []
    for path in opts["env_file"]:
        env += [item for item in parse_env_file(path) if item is not None]
    env += list(opts["env"])
    labels = {}
    label_lines = [line for path in opts["label_file"] for line in parse_env_file(path, expand=False)]
    for item in label_lines + list(opts["labels"]):
        key, _, value = item.partition("=")
        labels[key] = value
    log_config = {}
    for item in opts["log_opts"]:
        key, sep, value = item.partition("=")
        if not sep or key not in ("max-size", "max-file") or opts["log_driver"] != "json-file":
            raise InvalidArgument(f"unknown log opt '{key}' for {opts['log_driver']} log driver")
        log_config[key] = value
    memory = parse_bytes(opts["memory"], "-m, --memory") if opts["memory"] is not None else 0
    nano_cpus = parse_cpus(opts["cpus"]) if opts["cpus"] is not None else 0
    host_options = _host_flags(opts)
    restart_policy, healthcheck = _restart_and_health(opts)
    if opts["cidfile"] and os.path.exists(opts["cidfile"]):
        raise InvalidArgument(f"Container ID file found, make sure the other container isn't running or delete "
                              f"{opts['cidfile']}")
    client = _client(obj)
    _ensure_image(client, opts["image"], opts["pull"], opts["platform"])
    container = client.containers.create(
        opts["image"], list(opts["command"]) or None, name=opts["name"], runtime=opts["runtime"],
        entrypoint=opts["entrypoint"], environment=env, working_dir=opts["workdir"], user=opts["user"],
        hostname=opts["hostname"], domainname=opts["domainname"], tty=opts["tty"],
        stdin_open=opts["interactive"], labels=labels, volumes=list(opts["volumes"]), tmpfs=list(opts["tmpfs"]),
        mounts=list(opts["mounts"]), volumes_from=list(opts["volumes_from"]),
        extra_hosts=list(opts["add_hosts"]), dns=list(opts["dns"]), networks=list(opts["networks"]),
        ipv4_address=opts["ip"], ipv6_address=opts["ip6"], network_aliases=list(opts["network_aliases"]),
        mac_address=opts["mac_address"], publish=list(opts["publish"]), publish_all_ports=opts["publish_all"],
        expose=list(opts["expose"]),
        mem_limit=memory, nano_cpus=nano_cpus, pids_limit=opts["pids_limit"], ulimits=list(opts["ulimits"]),
        read_only=opts["read_only"], cap_add=list(opts["cap_add"]), cap_drop=list(opts["cap_drop"]),
        privileged=opts["privileged"], security_opt=list(opts["security_opt"]), stop_signal=opts["stop_signal"],
        stop_timeout=opts["stop_timeout"], auto_remove=opts["remove"], cgroup_parent=opts["cgroup_parent"],
        restart_policy=restart_policy, healthcheck=healthcheck,
        log_config={"Type": opts["log_driver"], "Config": log_config}, **host_options,
    )
    if opts["cidfile"]:
        _write_cidfile(opts["cidfile"], container.id)
    return container


def _restart_and_health(opts):
    """--restart and the --health-* flags, checked before anything is pulled or made."""
    from vessel.engine import health
    from vessel.engine.restart import RestartPolicy

    policy = RestartPolicy.parse(opts["restart"])
    if opts["remove"] and policy.enabled:
        raise InvalidArgument("Conflicting options: --restart and --rm")
    healthcheck = health.from_flags(opts["health_cmd"], opts["health_interval"], opts["health_timeout"],
                                    opts["health_start_period"], opts["health_start_interval"],
                                    opts["health_retries"], opts["no_healthcheck"])
    return policy, healthcheck


def _host_flags(opts):
    """docker-py's names for the resource, device, namespace and init flags."""
    from vessel.engine.model import parse_sysctl

    return dict(
        memswap_limit=opts["memory_swap"] or 0, mem_reservation=opts["memory_reservation"] or 0,
        cpu_shares=opts["cpu_shares"], cpu_period=opts["cpu_period"], cpu_quota=opts["cpu_quota"],
        cpuset_cpus=opts["cpuset_cpus"], cpuset_mems=opts["cpuset_mems"], devices=list(opts["devices"]),
        device_cgroup_rules=list(opts["device_cgroup_rules"]), shm_size=opts["shm_size"],
        group_add=list(opts["group_add"]), oom_score_adj=opts["oom_score_adj"], pid_mode=opts["pid_mode"],
        ipc_mode=opts["ipc_mode"], uts_mode=opts["uts_mode"], init=opts["init"],
        sysctls=dict(parse_sysctl(item) for item in opts["sysctls"]),
    )


def _ensure_image(client, image, policy, platform):
    """--pull: the image is pulled (progress on stderr) when missing, always, or never; a local image of
    another platform than --platform counts as missing."""
    from vessel.image.manifest import parse_platform
    from vessel.image.reference import parse

    if policy not in ("always", "missing", "never"):
        raise InvalidArgument(f"invalid pull option: '{policy}': must be one of \"always\", \"missing\" or "
                              "\"never\"")
    wanted = parse_platform(platform) if platform else None
    if policy != "always":
        try:
            local = client.images.get(image).config
        except NotFound:
            if policy == "never":
                raise
        else:
            actual = "/".join(p for p in (local.os, local.architecture, local.variant) if p)
            if wanted is None or (local.os, local.architecture) == (wanted.os, wanted.architecture) and \
                    wanted.variant in ("", local.variant):
                return
            if policy == "never":
                raise NotFound(f"image with reference {image} was found but does not match the specified platform: "
                               f"wanted {wanted}, actual: {actual}")
    ref = parse(image)
    if policy != "always":
        _echo(f"Unable to find image '{ref.familiar}' locally", err=True)
    client.images.pull(str(ref), platform=platform, progress=sys.stderr)  # (tagged: no "Using default tag")


def _write_cidfile(path, container_id):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(container_id)
    os.replace(tmp, path)


def _discard(data):
    """Output of a stream that is not attached (-a)."""


def _attached_streams(values, detach):
    """-a stdin|stdout|stderr (any case); none given means stdout and stderr (and stdin with -i)."""
    if values and detach:
        raise InvalidArgument("Conflicting options: -a and -d")
    streams = {v.lower() for v in values}
    if not streams <= {"stdin", "stdout", "stderr"}:
        bad = next(v for v in values if v.lower() not in ("stdin", "stdout", "stderr"))
        raise InvalidArgument(f'invalid argument "{bad}" for "-a, --attach" flag: valid streams are STDIN, '
                              "STDOUT and STDERR")
    return streams or {"stdin", "stdout", "stderr"}
