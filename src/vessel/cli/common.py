"""What the command modules share."""

import click

from vessel.errors import VesselError

__all__ = ["client", "for_each"]


def client(obj):
    """The Python API's Client on the command's state root and runtime root."""
    from vessel.api import Client

    return Client(obj.root, obj.runroot)


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
