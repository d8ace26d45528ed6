"""Entry point of the `vessel` command.

Commands are listed by name with the module that defines them and imported
only when used (pip's lazy command table), so `vessel --help` stays cheap.
A plain `run` or `create` skips click altogether (vessel.cli.runflags says why).
Errors are mapped to Docker's exit codes here and nowhere else.
"""

import os
import sys

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
    "system": "vessel.cli.system:system",
    "network": "vessel.cli.networks:network",
    "volume": "vessel.cli.volumes:volume",
    "run": "vessel.cli.containers:run",
    "create": "vessel.cli.containers:create",
    "start": "vessel.cli.containers:start",
    "stop": "vessel.cli.containers:stop",
    "kill": "vessel.cli.containers:kill",
    "rm": "vessel.cli.containers:rm",
    "ps": "vessel.cli.containers:ps",
    "logs": "vessel.cli.containers:logs",
    "inspect": "vessel.cli.containers:inspect",
    "wait": "vessel.cli.containers:wait",
    "exec": "vessel.cli.containers:exec_",
    "pause": "vessel.cli.containers:pause",
    "unpause": "vessel.cli.containers:unpause",
    "rename": "vessel.cli.containers:rename",
    "top": "vessel.cli.containers:top",
    "port": "vessel.cli.containers:port",
    "container": "vessel.cli.containers:container",
    "export": "vessel.cli.containers:export",
    "restart": "vessel.cli.containers:restart",
    "attach": "vessel.cli.containers:attach",
    "diff": "vessel.cli.containers:diff",
    "stats": "vessel.cli.containers:stats",
    "update": "vessel.cli.containers:update",
    "events": "vessel.cli.system:events",
    "cp": "vessel.cli.filesystem:cp",
    "commit": "vessel.cli.filesystem:commit",
    "info": "vessel.cli.system:info",
    "version": "vessel.cli.system:version",
}

DEFAULT_ROOT = "/var/lib/vessel"
DEFAULT_RUNROOT = "/run/vessel"

EXIT_ENGINE_ERROR = 125


class Context:
    """What every command receives: the state root and runtime root chosen by the user."""

    def __init__(self, root, runroot=DEFAULT_RUNROOT):
        self.root = root
        self.runroot = runroot


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    from vessel.cli.runflags import parse_command_line

    fast = None
    try:
        fast = parse_command_line(args, DEFAULT_ROOT, DEFAULT_RUNROOT)
        if fast is None:
            return _click_main(args)
        command, root, runroot, params = fast
        from vessel.cli import runner

        return getattr(runner, command)(Context(os.path.abspath(root), os.path.abspath(runroot)), params)
    except VesselError as exc:
        _echo_error(f"Error: {exc}")
        return EXIT_ENGINE_ERROR
    except (EOFError, KeyboardInterrupt):
        if fast is not None:
            _echo_error("\nAborted.")  # what click prints when it is interrupted
        return 130
    except BrokenPipeError:
        return 1  # click's exit code when its output pipe closed


def _echo_error(text):
    print(text, file=sys.stderr, flush=True)


def _click_main(args):
    """Every command line the fast path leaves alone: click parses it, shows help and reports its errors."""
    import click

    cli = _click_group()
    try:
        result = cli.main(args=args, prog_name="vessel", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"vessel: {exc.format_message()}", err=True)
        click.echo("See 'vessel --help'.", err=True)
        return EXIT_ENGINE_ERROR
    # without standalone mode click returns a command's Exit code instead of raising it
    return result if isinstance(result, int) else 0


def _click_group():
    """The `vessel` click group with its lazy command table."""
    import importlib

    import click

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

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--root", envvar="VESSEL_ROOT", default=DEFAULT_ROOT, show_default=True,
                  help="Root directory of vessel's state (or VESSEL_ROOT).")
    @click.option("--runroot", envvar="VESSEL_RUNROOT", default=DEFAULT_RUNROOT, show_default=True,
                  help="Directory of the containers' runtime files (or VESSEL_RUNROOT).")
    @click.version_option(package_name="vessel", prog_name="vessel")
    @click.pass_context
    def cli(ctx, root, runroot):
        """A Docker-compatible container engine, daemonless."""
        ctx.obj = Context(os.path.abspath(root), os.path.abspath(runroot))

    return cli


def launch():
    """The installed command (vessel.runtime.entrypoint's launcher): exit without the interpreter's teardown."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass  # a closed pipe: nothing more can be written
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
