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
from vessel.cli import runflags
from vessel.cli.filesystem import commit, cp
from vessel.errors import InvalidArgument, NotFound, VesselError

_RUN_SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _client(obj):
    from vessel.api import Client

    return Client(obj.root, obj.runroot)


def _fail_start(exc):
    """A start failure: Docker's message and its exit code (125, 126 or 127)."""
    from vessel.cli.runner import start_failed

    raise click.exceptions.Exit(start_failed(exc))


# -- run / create -----------------------------------------------------------------

def _flag_options(flags):
    """The click options of a table of vessel.cli.runflags flags, in the table's order."""
    def decorate(function):
        for flag in reversed(flags):
            if flag.kind == runflags.SWITCH:
                option = click.option("/".join(flag.decls), flag.dest, default=flag.default, help=flag.help)
            elif flag.kind == runflags.FLAG:
                option = click.option(*flag.decls, flag.dest, is_flag=True, help=flag.help)
            elif flag.kind == runflags.MULTIPLE:
                option = click.option(*flag.decls, flag.dest, multiple=True, help=flag.help)
            else:
                option = click.option(*flag.decls, flag.dest, type=int if flag.kind == runflags.INT else None,
                                      default=flag.default, help=flag.help)
            function = option(function)
        return function

    return decorate


@click.command("run", context_settings=_RUN_SETTINGS)
@_flag_options(runflags.RUN_FLAGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(obj, **opts):
    """Create and run a new container from an image."""
    from vessel.cli import runner

    raise click.exceptions.Exit(runner.run(obj, opts))


@click.command("create", context_settings=_RUN_SETTINGS)
@_flag_options(runflags.CREATE_FLAGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(obj, **opts):
    """Create a new container."""
    from vessel.cli import runner

    raise click.exceptions.Exit(runner.create(obj, opts))


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
        text = render(fmt, rows, PS_HEADERS, "*formatter.ContainerContext")
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
@click.option("--filter", "filters", multiple=True, help="Provide filter values (until=, label=, label!=).")
@click.pass_obj
def prune(obj, force, filters):
    """Remove all stopped containers."""
    if not force and not click.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?", default=False):
        return
    result = _client(obj).containers.prune(filters=list(filters))
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
