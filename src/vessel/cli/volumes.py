"""`vessel volume create|ls|inspect|rm|prune`, with the Docker CLI's flags, columns and messages."""

import json

import click

from vessel.cli.common import client, for_each, key_value_pairs, print_documents, print_pruned
from vessel.cli.images import human_size, render, table
from vessel.errors import InvalidArgument, NotFound

HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
           "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}


def _filters(items, keys):
    """The --filter values as {key: [values]}, keys outside `keys` refused (the engine's parser, loaded late)."""
    from vessel.engine.events import parse_filters

    return parse_filters(items, keys)


@click.group("volume")
def volume():
    """Manage volumes."""


@volume.command("create")
@click.option("--name", default=None, help="Specify volume name.")
@click.option("-d", "--driver", default="local", help="Specify volume driver name.")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume.")
@click.option("-o", "--opt", "options", multiple=True, help="Set driver specific options.")
@click.argument("name_argument", metavar="[VOLUME]", required=False)
@click.pass_obj
def create(obj, name, driver, labels, options, name_argument):
    """Create a volume."""
    if name and name_argument and name != name_argument:
        raise InvalidArgument("conflicting options: either specify --name or provide positional arg, not both")
    with client(obj) as api:
        created = api.volumes.create(name or name_argument, driver, key_value_pairs(options, "option"),
                                     key_value_pairs(labels, "label"))
    click.echo(created.name)


def _row(volumes, found, users):
    """ls's fields of one volume (`volumes`: the engine's Volumes)."""
    from vessel.engine.volumes import tree_size

    record = found.record
    path = volumes.data_path(record.name)
    return {"Driver": record.driver, "Name": record.name, "Scope": "local", "Mountpoint": path,
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(record.labels.items())),
            "Links": str(len(users.get(record.name, []))), "Size": human_size(tree_size(path))}


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true').")
@click.option("--format", "fmt", default=None, help="Format output using a Go template subset, or json.")
@click.pass_obj
def ls(obj, quiet, filters, fmt):
    """List volumes."""
    with client(obj) as api:
        found = api.volumes.list(filters=_filters(filters, ("dangling", "driver", "label", "label!", "name")))
        if quiet:
            for item in found:
                click.echo(item.name)
            return
        volumes = api.engine.volumes
        users = volumes.users()
        rows = [_row(volumes, item, users) for item in found]
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    elif fmt:
        text = render(fmt, rows, HEADERS)
        if text:
            click.echo(text)
    else:
        click.echo(table([[row["Driver"], row["Name"]] for row in rows], [HEADERS["Driver"], HEADERS["Name"]]))


@volume.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a Go template subset.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(obj, fmt, names):
    """Display detailed information on one or more volumes."""
    documents, failed = [], False
    with client(obj) as api:
        for name in names:
            try:
                documents.append(api.volumes.get(name).attrs)
            except NotFound as exc:
                click.echo(f"Error: {exc}", err=True)
                failed = True
    print_documents(documents, fmt, failed)


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(obj, force, names):
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    with client(obj) as api:
        def one(name):
            api.engine.volumes.remove(name, force=force)
            click.echo(name)

        for_each(names, one)


@volume.command("prune")
@click.option("-a", "--all", "prune_all", is_flag=True, help="Remove all unused volumes, not just anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>').")
@click.pass_obj
def prune(obj, prune_all, force, filters):
    """Remove unused local volumes."""
    parsed = _filters(filters, ("label", "label!", "all"))
    which = "all local volumes" if prune_all else "anonymous local volumes"
    if not force and not click.confirm(f"WARNING! This will remove {which} not used by at least one container.\n"
                                       "Are you sure you want to continue?", default=False):
        return
    if prune_all:
        parsed["all"] = ["true"]
    with client(obj) as api:
        result = api.volumes.prune(filters=parsed)
    print_pruned("Deleted Volumes:", result["VolumesDeleted"], result["SpaceReclaimed"])


volume.add_command(ls, "list")
volume.add_command(rm, "remove")
