"""What the command modules share."""

import click

from vessel.errors import InvalidArgument, VesselError

__all__ = ["client", "for_each", "key_value_pairs", "print_documents", "print_pruned", "print_section"]


def client(obj):
    """The Python API's Client on the command's state root and runtime root."""
    from vessel.api import Client

    return Client(obj.root, obj.runroot)


def key_value_pairs(items, what):
    """Repeated `key=value` flags (--label, --opt) as a dict; a later key wins."""
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what} {item!r}: want key=value")
        found[key] = value
    return found


def print_documents(documents, fmt, failed=False):
    """inspect's output: each document through the --format template, or all as indented JSON; exit 1 if
    some name was not found."""
    import json

    from vessel.cli.images import render

    if fmt:
        for document in documents:
            click.echo(render(fmt, [document]))
    else:
        click.echo(json.dumps(documents, indent=4, ensure_ascii=False))
    if failed:
        raise click.exceptions.Exit(1)


def print_section(title, names):
    """One part of a prune's report: the title, the names and a blank line; nothing without names."""
    if names:
        click.echo(title)
        for name in names:
            click.echo(name)
        click.echo("")


def print_pruned(title, names, reclaimed):
    """A prune's report: the title and the names (if any), then Docker's "Total reclaimed space" line."""
    from vessel.cli.images import human_size

    print_section(title, names)
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")


def for_each(names, action):
    """Apply `action` to every name, one "Error: ..." line per failure; exit 125 if any failed.

    Docker's way for rm, rmi, network rm and the like: one bad name does not stop the others.
    """
    failed = False
    for name in names:
        try:
            action(name)
        except VesselError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
    if failed:
        raise click.exceptions.Exit(125)
