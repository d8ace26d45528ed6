"""Snapshot commit: a container's writable layer as a new image layer (for `commit` and builds).

The overlay upper directory holds exactly the container's changes: added and
changed files as themselves, deletions as 0/0 character devices, and
directories whose lower contents are hidden as directories with the
trusted.overlay.opaque xattr. The layer tar says the same in the OCI way:
`.wh.<name>` files and `.wh..wh..opq` markers. It is gzipped into the content
store while its diff id (sha256 of the tar) is computed, and the new image is
the parent's layers plus this one, so the snapshots below are shared.
"""

import datetime
import hashlib
import os
import tarfile
import zlib

from vessel.errors import Unsupported
from vessel.image import manifest as manifests
from vessel.image import tree
from vessel.image.archive import create_image

__all__ = ["layer_changes", "write_layer", "commit"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"


def _is_opaque(fd):
    try:
        return os.getxattr(f"/proc/self/fd/{fd}", _OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _marker(name, mtime):
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o600, mtime
    return info


def layer_changes(upper, exclude=()):
    """Layer tar entries (TarInfo, file or None) for the overlay upper directory `upper`.

    `exclude` holds names ("etc/hosts") left out: the engine's own mount points.
    """
    top = os.open(upper, tree.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for info, data, fd in tree.walk(top, ""):
        if info.name == "" or info.name in exclude:
            continue
        if info.type == tarfile.CHRTYPE and info.devmajor == 0 and info.devminor == 0:
            parent, _, base = info.name.rpartition("/")
            yield _marker(f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base, info.mtime), None
            continue
        yield info, data
        if info.type == tarfile.DIRTYPE and _is_opaque(fd):
            yield _marker(f"{info.name}/{OPAQUE_MARKER}", info.mtime), None


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
    if store.snapshots.driver != "overlay" or len(mounts) != 1:
        raise Unsupported("commit needs the overlay snapshot driver (this state uses copies of the whole tree)")
    if mounts[0].type == "overlay":
        upper = dict(o.split("=", 1) for o in mounts[0].options if "=" in o)["upperdir"]
    else:
        upper = mounts[0].source  # an image without layers: the whole tree is the change
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    descriptor, diff_id = write_layer(store.content, layer_changes(upper, exclude))
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
