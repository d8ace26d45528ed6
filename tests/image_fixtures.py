"""Shared helpers for the image tests: build layer tars, rootfs tarballs and images."""

import gzip
import io
import os
import shutil
import subprocess
import tarfile

import zstandard

from helpers import ALPINE  # noqa: F401  (re-exported for the image tests)

BUSYBOX = "/usr/bin/busybox"
MTIME = 1_700_000_000


def _info(name, kind, mode, **extra):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    info.uid = extra.pop("uid", 0)
    info.gid = extra.pop("gid", 0)
    for key, value in extra.items():
        setattr(info, key, value)
    return info


def file(name, data=b"", mode=0o644, **extra):
    info = _info(name, tarfile.REGTYPE, mode, **extra)
    info.size = len(data)
    return info, data


def directory(name, mode=0o755, **extra):
    return _info(name, tarfile.DIRTYPE, mode, **extra), None


def symlink(target, name, **extra):
    return _info(name, tarfile.SYMTYPE, 0o777, linkname=target, **extra), None


def hardlink(target, name, **extra):
    return _info(name, tarfile.LNKTYPE, 0o644, linkname=target, **extra), None


def fifo(name, mode=0o600):
    return _info(name, tarfile.FIFOTYPE, mode), None


def chardev(name, major, minor, mode=0o666):
    return _info(name, tarfile.CHRTYPE, mode, devmajor=major, devminor=minor), None


def make_tar(*entries, fmt=tarfile.PAX_FORMAT):
    """Uncompressed tar bytes of (TarInfo, data) pairs."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def gzipped(data):
    return gzip.compress(data, mtime=0)


def zstded(data):
    return zstandard.ZstdCompressor().compress(data)


def busybox_rootfs_tar(path):
    """A busybox rootfs tarball: bin/busybox plus one symlink per applet."""
    root = f"{path}.rootfs"
    os.makedirs(f"{root}/bin")
    for name in ("etc", "tmp", "root"):
        os.makedirs(f"{root}/{name}")
    shutil.copy2(BUSYBOX, f"{root}/bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", f"{root}/bin/{applet}")
    with open(f"{root}/etc/passwd", "w") as handle:
        handle.write("root:x:0:0:root:/root:/bin/sh\n")
    subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", path, "."], check=True)
    shutil.rmtree(root)
    return path


def build_image(store, layer_tars, ref=None, config_changes=(), created="2024-01-02T03:04:05Z", compress=True):
    """Register an image made of the given uncompressed layer tars; returns the Image."""
    import hashlib

    from vessel.image import manifest as manifests
    from vessel.image.archive import apply_changes, create_image
    from vessel.image.reference import parse

    layers = []
    history = []
    for tar in layer_tars:
        blob = gzipped(tar) if compress else tar
        digest = store.content.put(blob)
        media_type = manifests.OCI_LAYER_GZIP if compress else manifests.OCI_LAYER
        layers.append((manifests.Descriptor(media_type, digest, len(blob)),
                       "sha256:" + hashlib.sha256(tar).hexdigest()))
        history.append(manifests.History(created=created, created_by=f"ADD layer{len(history)} /"))
    history.append(manifests.History(created=created, created_by='/bin/sh -c #(nop)  CMD ["sh"]', empty_layer=True))
    config = manifests.ImageConfig(architecture="amd64", os="linux", created=created,
                                   config=apply_changes(manifests.ContainerConfig(), config_changes),
                                   diff_ids=[], history=history)
    return create_image(store, layers, config, parse(ref) if isinstance(ref, str) else ref)
