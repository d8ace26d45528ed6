"""Entry point of the `vessel` command.

Commands are listed by name with the module that defines them and imported
only when used (pip's lazy command table), so `vessel --help` stays cheap.
Errors are mapped to Docker's exit codes here and nowhere else.
"""

import importlib
import os
import sys

import click

from vessel.errors import VesselError

__all__ = ["main"]

# command name -> "module:attribute" of a click.Command
COMMANDS = {
    "pull": "vessel.cli.images:pull",
    "push": "vessel.cli.images:push",
    "images": "vessel.cli.images:images",
    "image": "vessel.cli.images:image",
    "rmi": "vessel.cli.images:rmi",
    "tag": "vessel.cli.images:tag",
    "history": "vessel.cli.images:history",
    "save": "vessel.cli.images:save",
    "load": "vessel.cli.images:load",
    "import": "vessel.cli.images:import_",
    "login": "vessel.cli.images:login",
    "logout": "vessel.cli.images:logout",
    "system": "vessel.cli.images:system",
}

DEFAULT_ROOT = "/var/lib/vessel"

EXIT_ENGINE_ERROR = 125


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None


class Context:
    """What every command receives: the state root chosen by the user."""

    def __init__(self, root):
        self.root = root


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="VESSEL_ROOT", default=DEFAULT_ROOT, show_default=True,
              help="Root directory of vessel's state (or VESSEL_ROOT).")
@click.version_option(package_name="vessel", prog_name="vessel")
@click.pass_context
def cli(ctx, root):
    """A Docker-compatible container engine, daemonless."""
    ctx.obj = Context(os.path.abspath(root))


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="vessel", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"vessel: {exc.format_message()}", err=True)
        click.echo("See 'vessel --help'.", err=True)
        return EXIT_ENGINE_ERROR
    except VesselError as exc:
        click.echo(f"Error: {exc}", err=True)
        return EXIT_ENGINE_ERROR
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
