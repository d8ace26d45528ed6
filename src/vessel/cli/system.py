"""System commands: events, info, version, and `system df|prune|events|info`.

Output follows the Docker CLI's lines, columns and wording.
"""

import datetime
import json
import sys

import click

from vessel.cli.common import client, print_section
from vessel.cli.containers import binary_size
from vessel.cli.images import created_since, human_size, render, table
from vessel.errors import InvalidArgument


def _formatted(fmt, records):
    """`--format`: a Go template for each record; "json" is Docker's shorthand for {{json .}}."""
    return render("{{json .}}" if fmt == "json" else fmt, records)


# -- events ----------------------------------------------------------------------

@click.command("events")
@click.option("--since", help="Show all events created since timestamp (or duration like 10m).")
@click.option("--until", help="Stream events until this timestamp (or duration).")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", help="Format output using a Go template subset, or 'json'.")
@click.pass_obj
def events(obj, since, until, filters, fmt):
    """Get real time events from the engine."""
    from vessel.engine import events as recorded
    from vessel.times import parse_time

    parsed = recorded.parse_filters(filters)
    start, end = parse_time(since, "since"), parse_time(until, "until")
    with client(obj) as api:
        try:
            for event in recorded.follow(api.engine.state, start, end, parsed):
                click.echo(_formatted(fmt, [event.to_docker()]) if fmt else event.line())
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


# -- system df -------------------------------------------------------------------

def _reclaimable(part, whole):
    return human_size(part) + (f" ({int(100 * part / whole)}%)" if whole else "")


def df_rows(usage):
    """The four rows of `system df` from Docker's disk usage object."""
    images, containers, volumes = usage["Images"], usage["Containers"], usage["Volumes"]
    layers = usage["LayersSize"]
    active_images = [i for i in images if i["Containers"]]
    used = sum(i["Size"] - i["SharedSize"] for i in active_images) + \
        max((i["SharedSize"] for i in active_images), default=0)
    container_size = sum(c["SizeRw"] for c in containers)
    idle_containers = sum(c["SizeRw"] for c in containers if c["State"] not in ("running", "paused"))
    volume_size = sum(v["UsageData"]["Size"] for v in volumes)
    idle_volumes = sum(v["UsageData"]["Size"] for v in volumes if not v["UsageData"]["RefCount"])
    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(active_images)),
         "Size": human_size(layers), "Reclaimable": _reclaimable(max(0, layers - used), layers)},
        {"Type": "Containers", "TotalCount": str(len(containers)),
         "Active": str(sum(c["State"] in ("running", "paused") for c in containers)),
         "Size": human_size(container_size), "Reclaimable": _reclaimable(idle_containers, container_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(bool(v["UsageData"]["RefCount"]) for v in volumes)),
         "Size": human_size(volume_size), "Reclaimable": _reclaimable(idle_volumes, volume_size)},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]


def _df_verbose(usage):
    images = []
    for image in usage["Images"]:
        for tag in image["RepoTags"] or ["<none>:<none>"]:
            repository, tag_name = tag.rsplit(":", 1)
            images.append([repository, tag_name, image["Id"].partition(":")[2][:12],
                           created_since(_iso(image["Created"])),
                           human_size(image["Size"]), human_size(image["SharedSize"]),
                           human_size(image["Size"] - image["SharedSize"]), str(image["Containers"])])
    containers = [[c["Id"][:12], c["Image"], json.dumps(_truncate(c["Command"]), ensure_ascii=False),
                   str(len(c["Mounts"])),
                   human_size(c["SizeRw"]), created_since(_iso(c["Created"])), c["Status"], c["Names"][0][1:]]
                  for c in usage["Containers"]]
    volumes = [[v["Name"], str(v["UsageData"]["RefCount"]), human_size(v["UsageData"]["Size"])]
               for v in usage["Volumes"]]
    sections = [
        "Images space usage:\n\n" + table(images, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE",
                                                   "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]),
        "Containers space usage:\n\n" + table(containers, ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES",
                                                           "SIZE", "CREATED", "STATUS", "NAMES"]),
        "Local Volumes space usage:\n\n" + table(volumes, ["VOLUME NAME", "LINKS", "SIZE"]),
        "Build cache usage: 0B\n\n" + table([], ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED",
                                                 "USAGE", "SHARED"]),
    ]
    return "\n\n".join(sections)


def _iso(seconds):
    """Unix seconds as an ISO 8601 time in UTC (what created_since reads)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def _truncate(command, width=20):
    return command if len(command) <= width else command[:width - 1] + "…"


@click.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.option("--format", "fmt", help="Format output using a Go template subset, or 'json'.")
@click.pass_obj
def system_df(obj, verbose, fmt):
    """Show disk usage."""
    with client(obj) as api:
        usage = api.df()
    if fmt:
        click.echo(_formatted(fmt, df_rows(usage)))
    elif verbose:
        click.echo(_df_verbose(usage))
    else:
        columns = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
        click.echo(table([[r[c] for c in columns] for r in df_rows(usage)],
                         ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]))


# -- system prune ----------------------------------------------------------------

def _prune_warning(all_images, volumes):
    lines = ["WARNING! This will remove:", "  - all stopped containers",
             "  - all networks not used by at least one container"]
    if volumes:
        lines.append("  - all anonymous volumes not used by at least one container")
    if all_images:
        lines += ["  - all images without at least one container associated to them", "  - all build cache"]
    else:
        lines += ["  - all dangling images", "  - unused build cache"]
    return "\n".join(lines) + "\n"


@click.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove all unused images not just dangling ones.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "label=<key>=<value>").')
@click.pass_obj
def system_prune(obj, all_images, volumes, force, filters):
    """Remove unused data."""
    from vessel.engine import events as recorded
    from vessel.engine import system
    from vessel.network import Networks

    parsed = recorded.parse_filters(filters, ("until", "label", "label!"))
    if volumes and "until" in parsed:
        raise InvalidArgument('The "until" filter is not supported with "--volumes"')
    selected = system.prune_filter(parsed)
    if not force:
        click.echo(_prune_warning(all_images, volumes))
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    with client(obj) as api:
        result = api.containers.prune(filters=parsed)
        reclaimed = result["SpaceReclaimed"]
        with Networks(obj.root) as nets:
            networks = nets.prune(lambda net: selected(net["labels"], system.rfc3339_seconds(net["created"])))
        deleted_volumes, volume_bytes = api.engine.volumes.prune(filters=parsed) if volumes else ([], 0)
        image_events, image_bytes = api.engine.images.prune(
            all_images=all_images,
            select=lambda image: selected(image.config.config.labels, system.rfc3339_seconds(image.created)))
        for kind, size in (("container", result["SpaceReclaimed"]), ("network", 0), ("volume", volume_bytes),
                           ("image", image_bytes)):
            recorded.record(api.engine.state, kind, "prune", "", {"reclaimed": size})
        reclaimed += volume_bytes + image_bytes
    print_section("Deleted Containers:", result["ContainersDeleted"])
    print_section("Deleted Networks:", networks)
    print_section("Deleted Volumes:", deleted_volumes)
    print_section("Deleted Images:", [f"{kind.lower()}: {what}" for kind, what in image_events])
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")


# -- info, version ---------------------------------------------------------------

def _client_info():
    from vessel import __version__

    return {"Version": __version__, "Context": "default", "Debug": False}


def _info_text(info):
    plugins = info["Plugins"]
    lines = ["Client:", f" Version:    {info['ClientInfo']['Version']}", " Context:    default",
             " Debug Mode: false", "", "Server:",
             f" Containers: {info['Containers']}", f"  Running: {info['ContainersRunning']}",
             f"  Paused: {info['ContainersPaused']}", f"  Stopped: {info['ContainersStopped']}",
             f" Images: {info['Images']}", f" Server Version: {info['ServerVersion']}",
             f" Storage Driver: {info['Driver']}", *[f"  {key}: {value}" for key, value in info["DriverStatus"]],
             f" Logging Driver: {info['LoggingDriver']}", f" Cgroup Driver: {info['CgroupDriver']}",
             f" Cgroup Version: {info['CgroupVersion']}", " Plugins:",
             *[f"  {kind}: {' '.join(names)}" for kind, names in plugins.items()],
             f" Swarm: {info['Swarm']['LocalNodeState']}", f" Runtimes: {' '.join(sorted(info['Runtimes']))}",
             f" Default Runtime: {info['DefaultRuntime']}", " Security Options:", "  seccomp", "   Profile: builtin",
             f" Kernel Version: {info['KernelVersion']}", f" Operating System: {info['OperatingSystem']}",
             f" OSType: {info['OSType']}", f" Architecture: {info['Architecture']}", f" CPUs: {info['NCPU']}",
             f" Total Memory: {binary_size(info['MemTotal'])}", f" Name: {info['Name']}", f" ID: {info['ID']}",
             f" Docker Root Dir: {info['DockerRootDir']}", " Debug Mode: false", " Experimental: false",
             " Live Restore Enabled: false"]
    return "\n".join(lines)


@click.command("info")
@click.option("-f", "--format", "fmt", help="Format output using a Go template subset, or 'json'.")
@click.pass_obj
def info(obj, fmt):
    """Display system-wide information."""
    with client(obj) as api:
        document = dict(api.info(), ClientInfo=_client_info())
    click.echo(_formatted(fmt, [document]) if fmt else _info_text(document))


def _version_text(document):
    own, server = document["Client"], document["Server"]
    lines = ["Client:"]
    for label, value in (("Version", own["Version"]), ("API version", own["ApiVersion"]),
                         ("Python version", own["GoVersion"]), ("OS/Arch", f"{own['Os']}/{own['Arch']}"),
                         ("Context", own["Context"])):
        lines.append(f" {label + ':':<18} {value}")
    lines += ["", f"Server: {server['Platform']['Name']}", " Engine:"]
    for label, value in (("Version", server["Version"]),
                         ("API version", f"{server['ApiVersion']} (minimum version {server['MinAPIVersion']})"),
                         ("Python version", server["GoVersion"]), ("OS/Arch", f"{server['Os']}/{server['Arch']}"),
                         ("Kernel version", server["KernelVersion"]), ("Experimental", "false")):
        lines.append(f"  {label + ':':<17} {value}")
    return "\n".join(lines)


@click.command("version")
@click.option("-f", "--format", "fmt", help="Format output using a Go template subset, or 'json'.")
def version(fmt):
    """Show the vessel version information."""
    from vessel.engine import system

    server = system.version()
    own = {key: server[key] for key in ("Version", "ApiVersion", "GitCommit", "GoVersion", "Os", "Arch", "BuildTime")}
    document = {"Client": dict(own, DefaultAPIVersion=server["ApiVersion"], Context="default"),
                "Server": server}
    click.echo(_formatted(fmt, [document]) if fmt else _version_text(document))


@click.group("system")
def system():
    """Manage vessel."""


for _name, _command in (("df", system_df), ("prune", system_prune), ("info", info), ("events", events)):
    system.add_command(_command, _name)
