"""Snapshot commit: a container's writable layer as a new image layer (for `commit` and builds).

The overlay upper directory holds exactly the container's changes: added and
changed files as themselves, deletions as 0/0 character devices, and
directories whose lower contents are hidden as directories with the
trusted.overlay.opaque xattr. The layer tar says the same in the OCI way:
`.wh.<name>` files and `.wh..wh..opq` markers. It is gzipped into the content
store while its diff id (sha256 of the tar) is computed, and the new image is
the parent's layers plus this one, so the snapshots below are shared.

With the copy driver (no overlay) a container's snapshot is a whole tree: it
is compared with the parent's tree (type, mode, owner, size, mtime, link
target), and what is gone becomes whiteouts.
"""

import datetime
import hashlib
import os
import stat
import tarfile
import zlib

from vessel.errors import Unsupported
from vessel.image import manifest as manifests
from vessel.image import tree
from vessel.image.archive import create_image
from vessel.runtime import linux, paths

__all__ = ["layer_changes", "tree_changes", "write_layer", "commit"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"


def _is_opaque(fd):
    try:
        return os.getxattr(paths.fd_path(fd), _OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _marker(name, mtime):
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o600, mtime
    return info


def _whiteout(name, mtime):
    """The `.wh.` entry that deletes `name` in a layer."""
    parent, _, leaf = name.rpartition("/")
    return _marker(f"{parent}/{WHITEOUT_PREFIX}{leaf}" if parent else WHITEOUT_PREFIX + leaf, mtime)


def layer_changes(upper, exclude=()):
    """Layer tar entries (TarInfo, file or None) for the overlay upper directory `upper`.

    `exclude` holds names ("etc/hosts") left out: the engine's own mount points.
    """
    top = os.open(upper, paths.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for info, data, fd in tree.walk(top, ""):
        if info.name == "" or info.name in exclude:
            continue
        if info.type == tarfile.CHRTYPE and info.devmajor == 0 and info.devminor == 0:
            yield _whiteout(info.name, info.mtime), None
            continue
        yield info, data
        if info.type == tarfile.DIRTYPE and _is_opaque(fd):
            yield _marker(f"{info.name}/{OPAQUE_MARKER}", info.mtime), None


def _lookup(root_fd, name):
    """(lstat result, O_PATH fd) of `name` below root_fd, or None when it is missing; OSError ELOOP/ENOTDIR
    when a component on the way is a symlink or no directory (never followed)."""
    try:
        fd = linux.openat2(root_fd, name, paths.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, 0,
                           linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS)
    except FileNotFoundError:
        return None
    try:
        return os.fstat(fd), fd
    except BaseException:
        os.close(fd)
        raise


def _unchanged(new, new_fd, old, old_fd):
    if (new.st_mode, new.st_uid, new.st_gid, new.st_rdev) != (old.st_mode, old.st_uid, old.st_gid, old.st_rdev):
        return False
    if stat.S_ISDIR(new.st_mode):
        return True  # a directory's own changes are its entries'
    if (new.st_size, new.st_mtime_ns) != (old.st_size, old.st_mtime_ns):
        return False
    return not stat.S_ISLNK(new.st_mode) or os.readlink("", dir_fd=new_fd) == os.readlink("", dir_fd=old_fd)


def tree_changes(top, base, exclude=()):
    """Layer tar entries for the whole tree `top` against `base`, the tree it started as (the copy driver,
    where no upper directory records the changes): new and changed nodes, then whiteouts for what is gone."""
    top_fd = os.open(top, paths.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    base_fd = os.open(base, paths.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for info, data, fd in tree.walk(os.dup(top_fd), ""):
            if info.name == "" or info.name in exclude:
                continue
            try:
                found = _lookup(base_fd, info.name)
            except OSError:
                found = None  # a symlink or file on the way in the base: this path is new
            if found is not None:
                old, old_fd = found
                try:
                    if _unchanged(os.fstat(fd), fd, old, old_fd):
                        continue
                finally:
                    os.close(old_fd)
            yield info, data
        gone = []
        for info, _, _ in tree.walk(os.dup(base_fd), ""):
            if info.name == "" or any(info.name.startswith(prefix + "/") for prefix in gone):
                continue
            try:
                found = _lookup(top_fd, info.name)
            except OSError:
                continue  # replaced by a file or symlink on the way: that entry replaces it
            if found is not None:
                os.close(found[1])
                continue
            yield _whiteout(info.name, info.mtime), None
            gone.append(info.name)
    finally:
        os.close(top_fd)
        os.close(base_fd)


class _LayerWriter:
    """A file object for tarfile: gzips into a content-store writer, hashes the uncompressed bytes."""

    def __init__(self, writer):
        self.writer, self.diff = writer, hashlib.sha256()
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data):
        self.diff.update(data)
        self.writer.write(self.compressor.compress(data))
        return len(data)


def write_layer(content, items):
    """Store the entries as a gzipped layer blob; returns (Descriptor, diff id)."""
    key = f"commit-{os.getpid()}-{id(items)}"
    with content.writer(key) as writer:
        writer.restart()
        out = _LayerWriter(writer)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for info, data in items:
                tar.addfile(info, data)
        writer.write(out.compressor.flush())
        size = writer.offset
        digest = writer.commit()
    return manifests.Descriptor(manifests.OCI_LAYER_GZIP, digest, size), "sha256:" + out.diff.hexdigest()


def commit(store, mounts, parent, config, ref=None, author="", comment="", created_by="", exclude=()):
    """A new image: `parent`'s layers plus the changes of the active snapshot whose `mounts` are given.

    `config` is the new image's ContainerConfig (what `--change` made of the
    container's); the history gets one entry. Returns the registered Image.
    """
    if len(mounts) != 1:
        raise Unsupported("commit: the container's snapshot is not one mount")
    if mounts[0].type == "overlay":
        changes = layer_changes(dict(o.split("=", 1) for o in mounts[0].options if "=" in o)["upperdir"], exclude)
    elif store.snapshots.driver == "overlay" or not parent.layers:
        changes = layer_changes(mounts[0].source, exclude)  # an image without layers: the whole tree is new
    else:
        changes = tree_changes(mounts[0].source, store.snapshots.lowers(parent.chain_id)[0], exclude)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    descriptor, diff_id = write_layer(store.content, changes)
    raw = {k: v for k, v in parent.config.raw.items()
           if k not in ("author", "created", "container", "container_config", "docker_version")}
    history = list(parent.config.history) + [
        manifests.History(created=created, created_by=created_by, author=author, comment=comment)]
    image_config = manifests.ImageConfig(
        architecture=parent.config.architecture, os=parent.config.os, variant=parent.config.variant,
        config=config, diff_ids=[], history=history, created=created, author=author, raw=raw)
    layers = [(manifests.Descriptor(layer.media_type, layer.digest, layer.blob_size), layer.diff_id)
              for layer in parent.layers]
    return create_image(store, layers + [(descriptor, diff_id)], image_config, ref)
