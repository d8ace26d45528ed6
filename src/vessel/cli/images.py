"""Image commands: images, image *, rmi, tag, history, save, load, import, pull, push,
login, logout.  Output follows the Docker CLI's columns and wording.

`--format` takes Go templates as Docker's does (vessel.cli.gotemplate), and a leading `table`.
"""

import datetime
import json
import os
import sys
import time

import click

from vessel.errors import InvalidArgument, VesselError
from vessel.times import parse_rfc3339, parse_time


def _store(root):
    import sqlite3

    from vessel.errors import PermissionDenied, Unavailable
    from vessel.image.store import ImageStore

    from vessel.engine.state import image_users

    try:
        # the engine tells which containers use an image, so that rmi refuses those
        return ImageStore(root, users=image_users(root))
    except PermissionError as exc:
        raise PermissionDenied(f"image store in {root}: {exc.strerror}: {exc.filename}") from None
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"image store in {root}: {exc}") from None


def _image_event(root, action, actor_id, name):
    """Record a Docker-style image event in the engine's state (what `vessel events` shows)."""
    from vessel.engine.events import record_image

    record_image(root, action, actor_id, name=name)


# -- formatting helpers ----------------------------------------------------------

def human_size(size):
    """Docker's decimal sizes with three significant digits: 532B, 4.26MB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)}B" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"


def human_duration(seconds):
    """Docker's units.HumanDuration."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def created_since(text):
    stamp = parse_rfc3339(text)
    if stamp is None:
        return "N/A"
    return human_duration(max(time.time_ns() - stamp, 0) / 1e9) + " ago"


def table(rows, header):
    """Docker's tabwriter layout: columns padded by 3, at least 10 wide, last one bare (rows may have fewer or
    more cells than the header: a template can write a varying number of tabs)."""
    every_row = [header] + rows
    widths = [max(10, max(len(str(r[i])) for r in every_row if i < len(r)) + 3)
              for i in range(max(map(len, every_row)))]
    lines = []
    for row in every_row:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths)] + [str(row[-1])]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def render(template, records, headers=None, kind="object"):
    """Docker's --format: the Go template (vessel.cli.gotemplate) executed for each record (a dict), the
    results one a line; a leading `table` adds Docker's header row (`headers` names the columns, else the
    field's name in upper case) and aligns the tab-separated columns.

    A template Go's parser refuses, or a record without a field it names (`kind` is the record's type in the
    message), fails as Docker's does (InvalidArgument)."""
    from vessel.cli.gotemplate import parse

    template = template.replace("\\t", "\t").replace("\\n", "\n")
    is_table = template.startswith("table")
    if is_table:
        template = template[len("table"):].strip()
    compiled = parse(template)
    lines = [compiled.execute(record, kind) for record in records]
    if not is_table:
        return "\n".join(lines)
    rows = [line.split("\t") for line in [compiled.header(headers or {})] + lines]
    return table(rows[1:], rows[0])


def _echo(text):
    if text:
        click.echo(text)


# -- images ----------------------------------------------------------------------

IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}


def _image_rows(image, no_trunc):
    from vessel.image import reference as references

    image_id = image.id if no_trunc else image.short_id
    base = {"ID": image_id, "CreatedSince": created_since(image.created), "CreatedAt": image.created or "",
            "Size": human_size(image.size), "Containers": "N/A"}
    digests = {}
    for name in image.digest_refs:
        ref = references.parse(name)
        digests.setdefault(ref.familiar_name, ref.digest)
    rows = []
    for name in image.tag_refs:
        ref = references.parse(name)
        rows.append(dict(base, Repository=ref.familiar_name, Tag=ref.tag,
                         Digest=digests.get(ref.familiar_name, "<none>")))
    tagged_repos = {row["Repository"] for row in rows}
    for repo, digest in digests.items():
        if repo not in tagged_repos:
            rows.append(dict(base, Repository=repo, Tag="<none>", Digest=digest))
    if not rows:
        rows.append(dict(base, Repository="<none>", Tag="<none>", Digest="<none>"))
    return rows


def _matches(row, pattern):
    """Docker's reference filter: a name (normalised) or a glob such as `busy*:1.*`."""
    from fnmatch import fnmatchcase

    from vessel.image import reference as references

    if not any(c in pattern for c in "*?["):
        try:
            ref = references.parse(pattern, default_tag=False)
        except InvalidArgument:
            return False
        return row["Repository"] == ref.familiar_name and (ref.tag is None or row["Tag"] == ref.tag)
    repo_pattern, tag_pattern = pattern, ""
    head, sep, tail = pattern.rpartition(":")
    if sep and "/" not in tail:
        repo_pattern, tag_pattern = head, tail
    return fnmatchcase(row["Repository"], repo_pattern) and (not tag_pattern or fnmatchcase(row["Tag"], tag_pattern))


def _list_images(root, reference, quiet, digests, no_trunc, fmt, filters):
    store = _store(root)
    dangling = None
    references_filter = [reference] if reference else []
    after, before = -1, 1 << 63  # created strictly between, in nanoseconds (0 when unknown)
    for item in filters:
        key, _, value = item.partition("=")
        if key == "dangling":
            dangling = value.lower() in ("true", "1")
        elif key == "reference":
            references_filter.append(value)
        elif key == "until":
            before = min(before, parse_time(value, "until") if value else before)
        elif key in ("before", "since"):  # relative to the image named
            created = parse_rfc3339(store.get(value).created) or 0
            after, before = (after, min(before, created)) if key == "before" else (max(after, created), before)
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    rows = []
    for image in store.list():
        if dangling is not None and bool(image.tag_refs) == dangling:
            continue
        if not after < (parse_rfc3339(image.created) or 0) < before:
            continue
        for row in _image_rows(image, no_trunc):
            if references_filter and not any(_matches(row, p) for p in references_filter):
                continue
            rows.append(row)
    if quiet:  # one line per row, like Docker (a twice-tagged image is listed twice)
        _echo("\n".join(row["ID"] for row in rows))
        return
    if fmt:
        _echo(render(fmt, rows, IMAGE_HEADERS, "*formatter.ImageContext"))
        return
    columns = ["Repository", "Tag"] + (["Digest"] if digests else []) + ["ID", "CreatedSince", "Size"]
    click.echo(table([[row[c] for c in columns] for row in rows], [IMAGE_HEADERS[c] for c in columns]))


def _images_options(function):
    for decorator in reversed([
        click.argument("reference", required=False),
        click.option("-a", "--all", "show_all", is_flag=True,
                     help="Show all images (accepted for Docker compatibility: vessel keeps no intermediate images)."),
        click.option("-q", "--quiet", is_flag=True, help="Only show image IDs."),
        click.option("--digests", is_flag=True, help="Show digests."),
        click.option("--no-trunc", is_flag=True, help="Don't truncate output."),
        click.option("--format", "fmt", help="Format output using a Go template subset."),
        click.option("-f", "--filter", "filters", multiple=True,
                     help="Filter output (dangling=, reference=, before=, since=, until=)."),
        click.pass_obj,
    ]):
        function = decorator(function)
    return function


@click.command("images")
@_images_options
def images(obj, reference, show_all, quiet, digests, no_trunc, fmt, filters):
    """List images."""
    _list_images(obj.root, reference, quiet, digests, no_trunc, fmt, filters)


@click.command("ls")
@_images_options
def image_ls(obj, reference, show_all, quiet, digests, no_trunc, fmt, filters):
    """List images."""
    _list_images(obj.root, reference, quiet, digests, no_trunc, fmt, filters)


# -- rmi, tag --------------------------------------------------------------------

@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rmi(obj, force, names):
    """Remove one or more images."""
    from vessel.cli.common import for_each

    store = _store(obj.root)

    def remove(name):
        image_id = store.get(name).id
        for kind, what in store.remove(name, force=force):
            click.echo(f"{kind}: {what}")
            if kind == "Untagged" or what == image_id:
                _image_event(obj.root, "untag" if kind == "Untagged" else "delete", image_id, what)

    for_each(names, remove)


@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_obj
def tag(obj, source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from vessel.image import reference as references

    image = _store(obj.root).tag(source, target)
    _image_event(obj.root, "tag", image.id, references.parse(target).familiar)


# -- inspect, history ------------------------------------------------------------

def inspect_document(store, image):
    """Docker's image inspect JSON for one image."""
    config = image.config
    container_config = {
        "Hostname": "", "Domainname": "", "User": config.config.user, "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
        "Env": config.config.env or None, "Cmd": config.config.cmd, "Image": "",
        "Volumes": config.config.volumes or None, "WorkingDir": config.config.working_dir,
        "Entrypoint": config.config.entrypoint, "OnBuild": config.config.on_build or None,
        "Labels": config.config.labels or None,
    }
    if config.config.exposed_ports:
        container_config["ExposedPorts"] = config.config.exposed_ports
    if config.config.stop_signal:
        container_config["StopSignal"] = config.config.stop_signal
    if config.config.healthcheck:
        container_config["Healthcheck"] = config.config.healthcheck
    if config.config.shell:
        container_config["Shell"] = config.config.shell
    graph = {"Name": store.snapshots.driver, "Data": None}
    if image.layers and store.snapshots.driver == "overlay":
        lowers = store.snapshots.lowers(image.chain_id)
        graph["Data"] = {"LowerDir": ":".join(lowers[1:]) or None, "UpperDir": lowers[0]}
        graph["Data"] = {k: v for k, v in graph["Data"].items() if v}
    last_comment = config.history[-1].comment if config.history else ""
    document = {
        "Id": image.id, "RepoTags": image.repo_tags, "RepoDigests": image.repo_digests, "Parent": "",
        "Comment": last_comment, "Created": config.created, "DockerVersion": config.raw.get("docker_version", ""),
        "Author": config.author, "Config": container_config, "Architecture": config.architecture,
        "Os": config.os, "Size": image.size, "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": list(config.diff_ids)},
        "Metadata": {"LastTagTime": datetime.datetime.fromtimestamp(
            image.registered, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    }
    if config.variant:
        document["Variant"] = config.variant
    return document


def _inspect(root, names, fmt):
    store = _store(root)
    documents, errors = [], []
    for name in names:
        try:
            documents.append(inspect_document(store, store.get(name)))
        except VesselError as exc:
            errors.append(exc)
    if fmt:
        _echo(render(fmt, documents))
    else:
        click.echo(json.dumps(documents, indent=4))
    for exc in errors[:-1]:
        click.echo(f"Error: {exc}", err=True)
    if errors:
        raise errors[-1]


@click.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a Go template subset.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def image_inspect(obj, fmt, names):
    """Display detailed information on one or more images."""
    _inspect(obj.root, names, fmt)


HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY", "Size": "SIZE",
                   "Comment": "COMMENT", "CreatedAt": "CREATED AT"}


def _history(root, name, no_trunc, quiet, fmt, human):
    store = _store(root)
    image = store.get(name)
    layers = iter(image.layers)
    rows = []
    for entry in image.config.history:
        size = 0 if entry.empty_layer else next(layers, None)
        size = size.size if size else 0
        created_by = entry.created_by
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({"ID": "<missing>", "CreatedSince": created_since(entry.created) if human else entry.created,
                     "CreatedAt": entry.created, "CreatedBy": created_by,
                     "Size": human_size(size) if human else str(size), "Comment": entry.comment})
    rows.reverse()
    if rows:
        rows[0]["ID"] = image.id if no_trunc else image.short_id
    if quiet:
        _echo("\n".join(r["ID"] for r in rows))
    elif fmt:
        _echo(render(fmt, rows, HISTORY_HEADERS))
    else:
        columns = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
        click.echo(table([[r[c] for c in columns] for r in rows], [HISTORY_HEADERS[c] for c in columns]))


def _history_command(name):
    @click.command(name)
    @click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
    @click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
    @click.option("--format", "fmt", help="Format output using a Go template subset.")
    @click.option("-H", "--human", type=bool, default=True, show_default=True,
                  help="Print sizes and dates in human readable format.")
    @click.argument("image")
    @click.pass_obj
    def command(obj, no_trunc, quiet, fmt, human, image):
        """Show the history of an image."""
        _history(obj.root, image, no_trunc, quiet, fmt, human)
    return command


history = _history_command("history")


# -- prune -----------------------------------------------------------------------

@click.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (until=, label=, label!=).")
@click.pass_obj
def image_prune(obj, all_images, force, filters):
    """Remove unused images."""
    from vessel.engine.events import parse_filters
    from vessel.engine.system import prune_filter, rfc3339_seconds

    selected = prune_filter(parse_filters(filters, ("until", "label", "label!")))
    if not force:
        warning = ("WARNING! This will remove all images without at least one container associated to them."
                   if all_images else "WARNING! This will remove all dangling images.")
        click.echo(warning)
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    events, reclaimed = _store(obj.root).prune(all_images=all_images, select=lambda image: selected(
        image.config.config.labels, rfc3339_seconds(image.created)))
    if events:
        click.echo("Deleted Images:")
        for kind, what in events:
            click.echo(f"{kind.lower()}: {what}")
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")


# -- save, load, import ----------------------------------------------------------

@click.command("save")
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
@click.option("--format", "archive_format", type=click.Choice(["docker-archive", "oci-archive"]),
              default="docker-archive", show_default=True, help="Archive format.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def save(obj, output, archive_format, names):
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from vessel.image import archive

    store = _store(obj.root)
    if output in (None, "-"):
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        archive.save(store, names, sys.stdout.buffer, archive_format)
        sys.stdout.buffer.flush()
        _save_events(obj.root, store, names)
        return
    output = os.path.abspath(output)
    tmp = f"{output}.tmp.{os.getpid()}"
    try:
        try:
            handle = open(tmp, "wb")
        except OSError as exc:
            raise InvalidArgument(f"failed to save image: open {output}: {exc.strerror}") from None
        with handle:
            archive.save(store, names, handle, archive_format)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _save_events(obj.root, store, names)


def _save_events(root, store, names):
    for name in names:
        _image_event(root, "save", store.get(name).id, name)


@click.command("load")
@click.option("-i", "--input", "source", help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.pass_obj
def load(obj, source, quiet):
    """Load images from a tar archive (docker-archive or oci-archive)."""
    from vessel.image import archive

    store = _store(obj.root)
    if source in (None, "-"):
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        loaded = archive.load(store, sys.stdin.buffer)
    else:
        try:
            handle = open(source, "rb")
        except OSError as exc:
            raise InvalidArgument(f"open {source}: {exc.strerror}") from None
        with handle:
            loaded = archive.load(store, handle)
    for image, names in loaded:
        _image_event(obj.root, "load", image.id, names[0] if names else image.id)
        for name in names or [None]:
            click.echo(f"Loaded image: {name}" if name else f"Loaded image ID: {image.id}")


@click.command("import")
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option("--platform", help="Platform of the image (os/arch[/variant]); the host's by default.")
@click.argument("source")
@click.argument("repository", required=False)
@click.pass_obj
def import_(obj, changes, message, platform, source, repository):
    """Import the contents from a tarball to create a filesystem image."""
    from vessel.image import archive
    from vessel.image import reference as references

    ref = references.parse(repository) if repository else None
    if ref is not None and ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {repository}")
    store = _store(obj.root)
    if source == "-":
        image = archive.import_rootfs(store, sys.stdin.buffer, ref, changes, message, "-", platform)
    else:
        try:
            handle = open(source, "rb")
        except OSError as exc:
            raise InvalidArgument(f"open {source}: {exc.strerror}") from None
        with handle:
            image = archive.import_rootfs(store, handle, ref, changes, message, source, platform)
    _image_event(obj.root, "import", image.id, ref.familiar if ref else image.id)
    click.echo(image.id)


# -- registry --------------------------------------------------------------------

@click.command("pull")
@click.option("--platform", default="linux/amd64", show_default=True, help="Platform to pull.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.argument("name")
@click.pass_obj
def pull(obj, platform, quiet, name):
    """Download an image from a registry."""
    from vessel.image import reference as references
    from vessel.image import registry

    ref = references.parse(name)  # checked before any network access
    # the raw name goes through, so the pull can say "Using default tag: latest"
    registry.pull(_store(obj.root), name, platform=platform, progress=None if quiet else sys.stdout)
    _image_event(obj.root, "pull", ref.familiar, ref.familiar)
    if quiet:
        click.echo(str(ref))


@click.command("push")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.argument("name")
@click.pass_obj
def push(obj, quiet, name):
    """Upload an image to a registry."""
    from vessel.image import reference as references
    from vessel.image import registry

    ref = references.parse(name)
    registry.push(_store(obj.root), ref, progress=None if quiet else sys.stdout)
    _image_event(obj.root, "push", ref.familiar, ref.familiar)
    if quiet:
        click.echo(str(ref))


@click.command("login")
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.argument("server", required=False, default="docker.io")
@click.pass_obj
def login(obj, username, password, password_stdin, server):
    """Log in to a registry."""
    from vessel.image.registry import auth
    from vessel.image.registry.hosts import RegistryConfig

    if password_stdin:
        if password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.read().rstrip("\r\n")
    if password and not password_stdin:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    registries = RegistryConfig.load(root=obj.root)
    click.echo(auth.login(server, username, password, registries=registries))


@click.command("logout")
@click.argument("server", required=False, default="docker.io")
def logout(server):
    """Log out from a registry."""
    from vessel.image.registry import auth

    if auth.logout(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")


# -- groups ----------------------------------------------------------------------

@click.group("image")
def image():
    """Manage images."""


for _name, _command in (("ls", image_ls), ("list", image_ls), ("rm", rmi), ("inspect", image_inspect),
                        ("tag", tag), ("history", _history_command("history")), ("prune", image_prune),
                        ("save", save), ("load", load), ("import", import_), ("pull", pull), ("push", push)):
    image.add_command(_command, _name)
