"""Commands on a container's filesystem: cp and commit (also under `vessel container`)."""

import contextlib
import os
import posixpath
import sys

import click

from vessel.cli.common import client
from vessel.cli.images import human_size
from vessel.errors import InvalidArgument, VesselError


def split_location(argument):
    """Docker's reading of a cp argument: (container, path), container None for a local path.

    A path that is absolute or starts with "." is local even with a colon in it.
    """
    if argument == "-" or argument.startswith((".", "/")):
        return None, argument
    container, colon, path = argument.partition(":")
    if not colon:
        return None, argument
    if not container:
        raise InvalidArgument(f"invalid container name in {argument!r}")
    if not path:
        raise InvalidArgument("filepath can not be empty")
    return container, path


def _local(path):
    """An absolute host path keeping a trailing "/" or "/." (they choose what is copied)."""
    return path if path.startswith("/") else os.path.join(os.getcwd(), path)


@contextlib.contextmanager
def _host_root():
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@click.command("cp")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy.")
@click.argument("source")
@click.argument("destination")
@click.pass_obj
def cp(obj, archive, follow_link, quiet, source, destination):
    """Copy files/folders between a container and the local filesystem.

    \b
    vessel cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    vessel cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH
    """
    source_container, source_path = split_location(source)
    target_container, target_path = split_location(destination)
    if source_container and target_container:
        raise InvalidArgument("copying between containers is not supported")
    if not source_container and not target_container:
        raise InvalidArgument("must specify at least one container source")
    try:
        with client(obj) as api:
            if source_container:
                copied = _copy_out(api, source_container, source_path, target_path, archive, follow_link)
            else:
                copied = _copy_in(api, source_path, target_container, target_path, archive, follow_link)
    except OSError as exc:
        raise VesselError(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)) from None
    if copied is not None and not quiet and sys.stderr.isatty():  # Docker's progress line, on terminals only
        click.echo(f"Successfully copied {human_size(copied)} to {destination}", err=True)


def _copy_out(api, container, source, target, archive, follow):
    from vessel.engine import copy

    with api.engine.filesystem(container) as (_, root):
        if target == "-":
            name = posixpath.basename(posixpath.normpath(source)) or "."
            copy.write_tar(copy.entries(root, source, name, follow), sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return None
        with _host_root() as host:
            return copy.copy(root, source, host, _local(target), follow,
                             None if archive else (os.geteuid(), os.getegid()))


def _copy_in(api, source, container, target, archive, follow):
    from vessel.engine import copy

    owner = None if archive else (0, 0)
    with api.engine.filesystem(container) as (_, root):
        if source == "-":
            directory = copy.open_directory(root, target)
            try:
                return copy.extract(directory, copy.read_tar(sys.stdin.buffer), owner)
            finally:
                os.close(directory)
        with _host_root() as host:
            return copy.copy(host, _local(source), root, target, follow, owner)


@click.command("commit")
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              help="Pause container during commit.")
@click.argument("container")
@click.argument("repository", required=False)
@click.pass_obj
def commit(obj, author, changes, message, pause, container, repository):
    """Create a new image from a container's changes."""
    with client(obj) as api:
        image = api.engine.commit(container, repository, author=author, message=message, changes=changes,
                                  pause=pause)
    click.echo(image.id)
