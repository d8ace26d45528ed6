"""Commands on a container's filesystem: cp and commit (also under `vessel container`)."""

import contextlib
import os
import posixpath
import sys

import click

from vessel.cli.common import client
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
    from vessel.engine import copy

    source_container, source_path = split_location(source)
    target_container, target_path = split_location(destination)
    if source_container and target_container:
        raise InvalidArgument("copying between containers is not supported")
    if not source_container and not target_container:
        raise InvalidArgument("must specify at least one container source")
    api = client(obj)
    try:
        if source_container:
            with api.engine.filesystem(source_container) as (_, root):
                if target_path == "-":
                    name = posixpath.basename(posixpath.normpath(source_path)) or "."
                    copy.write_tar(copy.entries(root, source_path, name, follow_link), sys.stdout.buffer)
                    sys.stdout.buffer.flush()
                    return
                with _host_root() as host:
                    copy.copy(root, source_path, host, _local(target_path), follow_link,
                              None if archive else (os.geteuid(), os.getegid()))
            return
        with api.engine.filesystem(target_container) as (_, root):
            owner = None if archive else (0, 0)
            if source_path == "-":
                directory = copy.open_directory(root, target_path)
                try:
                    copy.extract(directory, copy.read_tar(sys.stdin.buffer), owner)
                finally:
                    os.close(directory)
                return
            with _host_root() as host:
                copy.copy(host, _local(source_path), root, target_path, follow_link, owner)
    except OSError as exc:
        raise VesselError(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)) from None
    finally:
        api.close()


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
    api = client(obj)
    try:
        image = api.engine.commit(container, repository, author=author, message=message, changes=changes,
                                     pause=pause)
    finally:
        api.close()
    click.echo(image.id)
