"""Container commands: run, create, start, stop, restart, attach, kill, rm, ps, logs, inspect,
wait, exec, pause, unpause, rename, top, port, diff, stats, update (and the same under `vessel container`,
which adds `prune`).

Flags, columns, messages and exit codes follow the Docker CLI; every command
is a thin layer over vessel.api (the Python API), which does the work.
"""

import datetime
import json
import os
import sys
import time

import click

from vessel.cli.images import human_duration, human_size, render, table
from vessel.cli.common import for_each, print_documents, print_pruned
from vessel.cli.filesystem import commit, cp
from vessel.errors import InvalidArgument, NotFound, VesselError

_RUN_SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _client(obj):
    from vessel.api import Client

    return Client(obj.root, obj.runroot)


def _fail_start(exc):
    """A start failure: Docker's message and its exit code (125, 126 or 127)."""
    click.echo(f"Error: {exc}", err=True)
    raise click.exceptions.Exit(exc.exit_code)


# -- run / create -----------------------------------------------------------------

_host_options = [
    click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: -1 for unlimited."),
    click.option("--memory-reservation", default=None, help="Memory soft limit."),
    click.option("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)."),
    click.option("--cpu-period", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) period."),
    click.option("--cpu-quota", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) quota."),
    click.option("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)."),
    click.option("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)."),
    click.option("--device", "devices", multiple=True, help="Add a host device to the container."),
    click.option("--device-cgroup-rule", "device_cgroup_rules", multiple=True,
                 help="Add a rule to the cgroup allowed devices list."),
    click.option("--shm-size", default=None, help="Size of /dev/shm."),
    click.option("--group-add", multiple=True, help="Add additional groups to join."),
    click.option("--oom-score-adj", type=int, default=0, help="Tune host's OOM preferences (-1000 to 1000)."),
    click.option("--pid", "pid_mode", default="", help="PID namespace to use."),
    click.option("--ipc", "ipc_mode", default="", help="IPC mode to use."),
    click.option("--uts", "uts_mode", default="", help="UTS namespace to use."),
    click.option("--sysctl", "sysctls", multiple=True, help="Sysctl options."),
    click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and reaps "
                                              "processes."),
    click.option("--pull", default="missing", help='Pull image before running ("always", "missing", "never").'),
    click.option("--platform", default=None, help="Set platform if server is multi-platform capable."),
    click.option("--cidfile", default=None, help="Write the container ID to the file."),
    click.option("--label-file", multiple=True, help="Read in a line delimited file of labels."),
    click.option("-a", "--attach", "attach_streams", multiple=True, help="Attach to STDIN, STDOUT or STDERR."),
    click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container."),
]


def _container_options(function):
    options = [
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", "env", multiple=True, help="Set environment variables."),
        click.option("--env-file", multiple=True, help="Read in a file of environment variables."),
        click.option("-l", "--label", "labels", multiple=True, help="Set meta data on a container."),
        click.option("-v", "--volume", "volumes", multiple=True,
                     help="Bind mount a volume (host-path|name:container-path[:options], or container-path)."),
        click.option("--mount", "mounts", multiple=True, help="Attach a filesystem mount to the container."),
        click.option("--volumes-from", multiple=True, help="Mount volumes from the specified container(s)."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory."),
        click.option("-w", "--workdir", default="", help="Working directory inside the container."),
        click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-h", "--hostname", default="", help="Container host name."),
        click.option("--domainname", default="", help="Container NIS domain name."),
        click.option("--add-host", "add_hosts", multiple=True, help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--network", "--net", "networks", multiple=True,
                     help="Connect a container to a network (bridge, host, none, container:NAME, a network)."),
        click.option("--ip", default=None, help="IPv4 address (e.g., 172.30.100.104)."),
        click.option("--ip6", default=None, help="IPv6 address (e.g., 2001:db8::33)."),
        click.option("--network-alias", "network_aliases", multiple=True, help="Add network-scoped alias."),
        click.option("--mac-address", default=None, help="Container MAC address (e.g., 92:d0:c6:0a:29:33)."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports."),
        click.option("-m", "--memory", default=None, help="Memory limit."),
        click.option("--cpus", default=None, help="Number of CPUs."),
        click.option("--pids-limit", type=int, default=0, help="Tune container pids limit."),
        click.option("--ulimit", "ulimits", multiple=True, help="Ulimit options (name=soft[:hard])."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--security-opt", multiple=True, help="Security options."),
        click.option("--stop-signal", default=None, help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container."),
        click.option("--runtime", default=None, help="Runtime to use for this container (runc, crun, a path)."),
        click.option("--restart", default="no", help="Restart policy: no, on-failure[:max-retries], always, "
                     "unless-stopped."),
        click.option("--health-cmd", default=None, help="Command to run to check health."),
        click.option("--health-interval", default=None, help="Time between running the check (ms|s|m|h)."),
        click.option("--health-retries", default=None, help="Consecutive failures needed to report unhealthy."),
        click.option("--health-timeout", default=None, help="Maximum time to allow one check to run (ms|s|m|h)."),
        click.option("--health-start-period", default=None,
                     help="Start period for the container to initialize before counting retries (ms|s|m|h)."),
        click.option("--health-start-interval", default=None,
                     help="Time between running the check during the start period (ms|s|m|h)."),
        click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK."),
        click.option("--cgroup-parent", default="", help="Optional parent cgroup for the container."),
        click.option("--log-driver", default="json-file", help="Logging driver (json-file)."),
        click.option("--log-opt", "log_opts", multiple=True, help="Log driver options (max-size, max-file)."),
        click.option("--rm", "remove", is_flag=True, help="Automatically remove the container when it exits."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        *_host_options,
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        function = option(function)
    return function


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
        click.echo(f"Unable to find image '{ref.familiar}' locally", err=True)
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


@click.command("run", context_settings=_RUN_SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals to the process.")
@_container_options
@click.pass_obj
def run(obj, detach, sig_proxy, **opts):
    """Create and run a new container from an image."""
    from vessel.engine.attach import parse_detach_keys
    from vessel.engine.core import ContainerStartError

    streams = _attached_streams(opts["attach_streams"], detach)
    detach_keys = parse_detach_keys(opts["detach_keys"])
    container = _create(obj, opts)
    try:
        if detach:
            container.start()
            click.echo(container.id)
            return
        code = container.start_attached(stdin_fd=0 if opts["interactive"] and "stdin" in streams else None,
                                        stdout=None if "stdout" in streams else _discard,
                                        stderr=None if "stderr" in streams else _discard,
                                        sig_proxy=sig_proxy, detach_keys=detach_keys)
    except ContainerStartError as exc:
        _fail_start(exc)
    if code == 141:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing more can be written to the closed pipe
    raise click.exceptions.Exit(code)


@click.command("create", context_settings=_RUN_SETTINGS)
@_container_options
@click.pass_obj
def create(obj, **opts):
    """Create a new container."""
    click.echo(_create(obj, opts).id)


# -- lifecycle --------------------------------------------------------------------

@click.command("start")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.option("--all", "start_all", is_flag=True, help="Start all stopped containers (those --filter selects).")
@click.option("-f", "--filter", "filters", multiple=True, help="With --all: filter as ps does (restart-policy=...).")
@click.option("--by-restart-policy", is_flag=True,
              help="With --all: only those their restart policy restarts after a boot (always; unless-stopped "
                   "unless stopped by the user; on-failure after a failure, retries left).")
@click.argument("names", nargs=-1)
@click.pass_obj
def start(obj, attach, interactive, start_all, filters, by_restart_policy, names):
    """Start one or more stopped containers."""
    from vessel.engine.core import ContainerStartError

    if start_all == bool(names):
        raise InvalidArgument("start requires at least 1 argument" if not names else
                              "--all and container names are mutually exclusive")
    if (filters or by_restart_policy) and not start_all:
        raise InvalidArgument("--filter and --by-restart-policy need --all")
    client = _client(obj)
    if start_all:
        _start_all(client, _filters(filters), by_restart_policy)
        return
    if attach or interactive:
        if len(names) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        container = client.containers.get(names[0])
        try:
            code = container.start_attached(stdin_fd=0 if interactive else None)
        except ContainerStartError as exc:
            _fail_start(exc)
        raise click.exceptions.Exit(code)

    def one(name):
        try:
            client.containers.get(name).start()
        except ContainerStartError as exc:
            raise VesselError(str(exc)) from None
        click.echo(name)

    for_each(names, one)


def _start_all(client, filters, by_restart_policy):
    """`start --all`: the stopped containers matching `filters` (Docker's boot rule with `by_restart_policy`)."""
    from vessel.engine import restart

    stopped = [c.record for c in client.containers.list(all=True, filters=filters)
               if c.status in ("created", "exited")]
    results = restart.start_each(client.engine, restart.due_after_boot(stopped) if by_restart_policy else stopped)
    failed = False
    for record, error in results:
        if error is None:
            click.echo(record.name)
        else:
            click.echo(f"Error: {record.name}: {error}", err=True)
            failed = True
    if failed:
        raise click.exceptions.Exit(125)


@click.command("stop")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing it.")
@click.option("-s", "--signal", "signal", default=None, help="Signal to send to the container.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def stop(obj, timeout, signal, names):
    """Stop one or more running containers."""
    client = _client(obj)

    def one(name):
        client.containers.get(name).stop(timeout, signal)
        click.echo(name)

    for_each(names, one)


@click.command("restart")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing it.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def restart(obj, timeout, names):
    """Restart one or more containers."""
    from vessel.engine.core import ContainerStartError

    client = _client(obj)

    def one(name):
        try:
            client.containers.get(name).restart(timeout)
        except ContainerStartError as exc:
            raise VesselError(str(exc)) from None
        click.echo(name)

    for_each(names, one)


@click.command("attach")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container.")
@click.argument("name")
@click.pass_obj
def attach(obj, no_stdin, sig_proxy, detach_keys, name):
    """Attach local standard input, output, and error streams to a running container."""
    from vessel.engine.attach import parse_detach_keys

    keys = parse_detach_keys(detach_keys)
    container = _client(obj).containers.get(name)
    stdin = None if no_stdin or not container.record.config.open_stdin else 0
    raise click.exceptions.Exit(container.attach_foreground(stdin_fd=stdin, sig_proxy=sig_proxy, detach_keys=keys))


@click.command("kill")
@click.option("-s", "--signal", "signal", default="KILL", help="Signal to send to the container.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def kill(obj, signal, names):
    """Kill one or more running containers."""
    client = _client(obj)

    def one(name):
        client.containers.get(name).kill(signal)
        click.echo(name)

    for_each(names, one)


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(obj, force, volumes, names):
    """Remove one or more containers."""
    client = _client(obj)

    def one(name):
        client.containers.get(name).remove(force=force, v=volumes)
        click.echo(name)

    for_each(names, one)


@click.command("pause")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def pause(obj, names):
    """Pause all processes within one or more containers."""
    client = _client(obj)
    for_each(names, lambda name: (client.containers.get(name).pause(), click.echo(name)))


@click.command("unpause")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def unpause(obj, names):
    """Unpause all processes within one or more containers."""
    client = _client(obj)
    for_each(names, lambda name: (client.containers.get(name).unpause(), click.echo(name)))


@click.command("rename")
@click.argument("name")
@click.argument("new_name")
@click.pass_obj
def rename(obj, name, new_name):
    """Rename a container."""
    _client(obj).containers.get(name).rename(new_name)


@click.command("wait")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def wait(obj, names):
    """Block until one or more containers stop, then print their exit codes."""
    client = _client(obj)
    for_each(names, lambda name: click.echo(client.containers.get(name).wait()["StatusCode"]))


# -- ps ---------------------------------------------------------------------------

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}


def _ellipsis(text, width):
    return text if len(text) <= width else text[:width - 1] + "…"


def status_text(record, now=None):
    now = time.time() if now is None else now
    if record.status == "running":
        health = f" ({record.health.display()})" if record.health else ""
        return f"Up {human_duration(max(0, now - record.started))}{health}"
    if record.status == "restarting":
        return f"Restarting ({record.exit_code}) {human_duration(max(0, now - record.finished))} ago"
    if record.status == "paused":
        return f"Up {human_duration(max(0, now - record.started))} (Paused)"
    if record.status == "exited":
        return f"Exited ({record.exit_code}) {human_duration(max(0, now - record.finished))} ago"
    if record.status == "removing":
        return "Removal In Progress"
    return record.status.capitalize()


def _ps_row(client, container, no_trunc, size):
    from vessel.engine import networking

    record = container.record
    command = " ".join(record.config.args)
    created = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
    row = {
        "ID": record.id if no_trunc else record.id[:12],
        "Image": record.image_ref,
        "Command": json.dumps(command if no_trunc else _ellipsis(command, 20), ensure_ascii=False),
        "CreatedAt": created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
        "RunningFor": human_duration(max(0, time.time() - record.created)) + " ago",
        "Ports": networking.ports_text(record.config, record.status in ("running", "paused")),
        "State": record.status,
        "Status": status_text(record),
        "Names": record.name,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(record.labels.items())),
        "Mounts": ",".join(m.source if no_trunc else _ellipsis(m.source, 15)
                           for m in record.config.mounts if m.type != "tmpfs"),
        "Networks": ",".join(a.network for a in record.config.networks) or record.config.network_mode,
        "LocalVolumes": str(sum(1 for m in record.config.mounts if m.type == "volume")),
        "Label": dict(record.labels),  # for {{.Label "key"}}
        "Size": "",
    }
    if size:
        used, virtual = _sizes(client, record)
        row["Size"] = f"{human_size(used)} (virtual {human_size(virtual)})"
    return row


def _sizes(client, record):
    """(bytes in the writable layer, those plus the image's): Docker's SizeRw and SizeRootFs."""
    try:
        used = client.engine.images.snapshots.usage(record.id)[0]
    except VesselError:
        used = 0
    try:
        return used, client.engine.images.get(record.image_id).size + used
    except VesselError:
        return used, used


def _filters(items):
    filters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    return filters


@click.command("ps")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers.")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", default=None, help="Format output using a Go template subset, or json.")
@click.pass_obj
def ps(obj, show_all, quiet, size, last, latest, no_trunc, filters, fmt):
    """List containers."""
    client = _client(obj)
    limit = 1 if latest else last
    containers = client.containers.list(all=show_all or limit >= 0, filters=_filters(filters), limit=limit)
    if quiet:
        for container in containers:
            click.echo(container.id if no_trunc else container.id[:12])
        return
    size = size or ".Size" in (fmt or "")
    rows = [_ps_row(client, c, no_trunc, size) for c in containers]
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps({k: v for k, v in row.items() if k != "Label"}, ensure_ascii=False))
        return
    if fmt in ("table", "table {{.}}"):
        fmt = None
    if fmt:
        text = render(fmt, rows, PS_HEADERS)
        if text:
            click.echo(text)
        return
    columns = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
    if size:
        columns.append("Size")
    header = [PS_HEADERS[c] for c in columns]
    click.echo(table([[row[c] for c in columns] for row in rows], header))


# -- logs, inspect, exec, top, port -------------------------------------------------

@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", default=None, help="Show logs since timestamp or relative (e.g. 42m).")
@click.option("--until", default=None, help="Show logs before a timestamp or relative (e.g. 42m).")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.argument("name")
@click.pass_obj
def logs(obj, follow, tail, timestamps, since, until, details, name):
    """Fetch the logs of a container."""
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise InvalidArgument(f"invalid value for \"tail\": {tail}")
    container = _client(obj).containers.get(name)
    for stream, text, stamp in container.log_entries(follow=follow, tail=tail, since=since, until=until):
        data = ((stamp + " ") if timestamps else "") + (" " if details else "") + text  # (no log attributes)
        target = sys.stdout if stream == "stdout" else sys.stderr
        target.write(data)
        target.flush()


@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a Go template subset.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("--type", "kind", type=click.Choice(["container", "image"]), default=None)
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(obj, fmt, size, kind, names):
    """Return low-level information on containers (or images)."""
    from vessel.cli.images import inspect_document as image_document

    client = _client(obj)
    documents = []
    failed = False
    for name in names:
        try:
            if kind != "image":
                try:
                    container_ = client.containers.get(name)
                    document = container_.attrs
                    if size:
                        document["SizeRw"], document["SizeRootFs"] = _sizes(client, container_.record)
                    documents.append(document)
                    continue
                except NotFound:
                    if kind == "container":
                        raise
            documents.append(image_document(client.engine.images, client.images.get(name)))
        except NotFound:
            click.echo(f"Error: No such object: {name}", err=True)
            failed = True
    print_documents(documents, fmt, failed)


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", default="", help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(obj, detach, interactive, tty, env, env_file, user, workdir, privileged, name, command):
    """Execute a command in a running container."""
    from vessel.engine.model import parse_env_file

    environment = [item for path in env_file for item in parse_env_file(path) if item is not None] + list(env)
    container = _client(obj).containers.get(name)
    code = container.exec_foreground(list(command), stdin=interactive, tty=tty, detach=detach,
                                     environment=environment, user=user, workdir=workdir, privileged=privileged)
    raise click.exceptions.Exit(code)


@click.command("top")
@click.argument("name")
@click.argument("ps_args", nargs=-1)
@click.pass_obj
def top(obj, name, ps_args):
    """Display the running processes of a container."""
    result = _client(obj).containers.get(name).top(" ".join(ps_args) or None)
    click.echo(table(result["Processes"], result["Titles"]))


@click.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, instead of STDOUT.")
@click.argument("name")
@click.pass_obj
def export(obj, output, name):
    """Export a container's filesystem as a tar archive."""
    container_ = _client(obj).containers.get(name)
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        container_.export(sys.stdout.buffer)
        return
    tmp = f"{output}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            container_.export(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@click.command("diff")
@click.argument("name")
@click.pass_obj
def diff(obj, name):
    """Inspect changes to files or directories on a container's filesystem."""
    for change in _client(obj).containers.get(name).diff():
        click.echo(f"{'CAD'[change['Kind']]} {change['Path']}")


STATS_HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
                 "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def binary_size(size):
    """Docker's units.BytesSize: 1.5MiB, 64MiB, 0B."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.4g}{unit}"
        value /= 1024
    return f"{size}B"


def _stats_row(figures):
    return {"ID": figures["id"][:12], "Name": figures["name"], "CPUPerc": f"{figures['cpu_percent']:.2f}%",
            "MemUsage": f"{binary_size(figures['memory_usage'])} / {binary_size(figures['memory_limit'])}",
            "MemPerc": f"{figures['memory_percent']:.2f}%",
            "NetIO": f"{human_size(figures['net_rx'])} / {human_size(figures['net_tx'])}",
            "BlockIO": f"{human_size(figures['block_read'])} / {human_size(figures['block_write'])}",
            "PIDs": str(figures["pids"])}


@click.command("stats")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--format", "fmt", default=None, help="Format output using a Go template subset, or json.")
@click.argument("names", nargs=-1)
@click.pass_obj
def stats(obj, show_all, no_stream, fmt, names):
    """Display a live stream of container(s) resource usage statistics."""
    client = _client(obj)
    while True:
        containers = [client.containers.get(n) for n in names] if names else client.containers.list(all=show_all)
        rows = []
        for container in containers:
            if container.status in ("running", "paused"):
                try:
                    rows.append(_stats_row(container.stats()))
                    continue
                except VesselError:
                    pass
            rows.append({key: "--" for key in STATS_HEADERS} | {"ID": container.id[:12], "Name": container.name,
                                                                "CPUPerc": "0.00%", "MemPerc": "0.00%",
                                                                "PIDs": "0"})
        if fmt == "json":
            text = "\n".join(json.dumps(row) for row in rows)
        elif fmt:
            text = render(fmt, rows, STATS_HEADERS)
        else:
            columns = list(STATS_HEADERS)
            text = table([[row[c] for c in columns] for row in rows], [STATS_HEADERS[c] for c in columns])
        if not no_stream:
            click.echo("\x1b[2J\x1b[H", nl=False)
        if text:
            click.echo(text)
        if no_stream:
            return
        time.sleep(0.5)


@click.command("update")
@click.option("-m", "--memory", default=None, help="Memory limit.")
@click.option("--cpus", default=None, help="Number of CPUs.")
@click.option("--pids-limit", type=int, default=None, help="Tune container pids limit (-1 for unlimited).")
@click.option("--restart", default=None, help="Restart policy to apply when a container exits.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def update(obj, memory, cpus, pids_limit, restart, names):
    """Update configuration of one or more containers."""
    from vessel.engine.model import parse_bytes, parse_cpus

    memory = parse_bytes(memory, "-m, --memory") if memory is not None else None
    nano_cpus = parse_cpus(cpus) if cpus is not None else None
    if pids_limit is not None and pids_limit < 0:
        pids_limit = 0
    client = _client(obj)

    def one(name):
        client.containers.get(name).update(mem_limit=memory, nano_cpus=nano_cpus, pids_limit=pids_limit,
                                           restart_policy=restart)
        click.echo(name)

    for_each(names, one)


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_obj
def prune(obj, force):
    """Remove all stopped containers."""
    if not force and not click.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?", default=False):
        return
    result = _client(obj).containers.prune()
    print_pruned("Deleted Containers:", result["ContainersDeleted"], result["SpaceReclaimed"])


@click.command("port")
@click.argument("name")
@click.argument("port_spec", required=False)
@click.pass_obj
def port(obj, name, port_spec):
    """List port mappings or a specific mapping for the container."""
    from vessel.engine import networking

    ports = _client(obj).containers.get(name).attrs["NetworkSettings"]["Ports"]
    if port_spec:
        number, _, proto = port_spec.partition("/")
        key = f"{number}/{proto or 'tcp'}"
        if not ports.get(key):
            raise NotFound(f"No public port '{key}' published for {name}")
        ports = {key: ports[key]}
    for key, bindings in ports.items():
        for binding in bindings or []:
            address = networking.host_address(binding)
            click.echo(address if port_spec else f"{key} -> {address}")


@click.group("container")
def container():
    """Manage containers."""


for _command in (run, create, start, stop, restart, attach, kill, rm, ps, logs, inspect, wait, exec_, pause,
                 unpause, rename, top, port, diff, export, stats, update, prune):
    container.add_command(_command)
container.add_command(ps, "ls")
container.add_command(ps, "list")
container.add_command(rm, "remove")
container.add_command(cp)
container.add_command(commit)
