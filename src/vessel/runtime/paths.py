"""Resolving paths inside a container's root without ever leaving it.

Every lookup goes through openat2(RESOLVE_IN_ROOT): symlinks, absolute or
with "..", are resolved as if the rootfs were "/", so a malicious image or a
racing container cannot redirect a mount, mknod or write onto the host.
Results are O_PATH descriptors; callers act on `/proc/self/fd/N`, never on the
path string again.
"""

import os
import stat

from vessel.runtime import linux

__all__ = ["fd_path", "open_in_root", "ensure_in_root", "reopen_mounted"]

_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
O_PATH = 0o10000000


def fd_path(fd):
    return f"/proc/self/fd/{fd}"


def open_in_root(root_fd, path, flags=O_PATH, mode=0):
    """An fd for `path` (inside the root open at `root_fd`)."""
    return linux.openat2(root_fd, path.lstrip("/") or ".", flags | os.O_CLOEXEC, mode, _IN_ROOT)


def reopen_mounted(root_fd, path, old_fd):
    """An fd of the mount just made on `old_fd` (an fd keeps naming what was under it).

    `path` is resolved again; if it no longer leads where `old_fd` is (a racing
    container swapped a component for a symlink), the mount is not ours to
    change and this fails (CVE-2021-30465).
    """
    fd = open_in_root(root_fd, path)
    if os.readlink(fd_path(fd)) != os.readlink(fd_path(old_fd)):
        os.close(fd)
        raise OSError(40, f"{path} changed while it was being mounted", path)
    return fd


def ensure_in_root(root_fd, path, directory=True, mode=0o755, follow_last=True):
    """Open (creating it and its parents if missing) `path` inside the root.

    Returns an O_PATH fd. `directory` chooses what to create when the last
    component is missing: a directory or an empty file. Symlinks met on the way
    are expanded inside the root, and missing directories are created where
    they point. With `follow_last=False` a symlink as the last component is an
    error instead (for /proc and /sys, CVE-2019-19921).

    A directory renamed away while we walk (a container sharing the volume)
    makes the walk start again, a few times, before ENOENT is reported.
    """
    for attempt in range(_WALK_ATTEMPTS):
        try:
            return _walk_creating(root_fd, path, directory, mode, follow_last)
        except FileNotFoundError:
            if attempt + 1 == _WALK_ATTEMPTS:
                raise


_WALK_ATTEMPTS = 4


def _walk_creating(root_fd, path, directory, mode, follow_last):
    remaining = [p for p in path.split("/") if p]
    resolved = []
    links = 0
    while remaining:
        part = remaining.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        last = not remaining
        parent = open_in_root(root_fd, "/".join(resolved), O_PATH | os.O_DIRECTORY)
        try:
            try:
                st = os.stat(part, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                _create(parent, part, directory or not last, mode)
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                if last and not follow_last:
                    raise OSError(40, f"{path} is a symlink; it must be an ordinary directory", path)
                links += 1
                if links > 40:
                    raise OSError(40, "too many levels of symbolic links", path)
                target = os.readlink(part, dir_fd=parent)
                if target.startswith("/"):
                    resolved = []
                remaining[:0] = [p for p in target.split("/") if p]
                continue
        finally:
            os.close(parent)
        resolved.append(part)
    return open_in_root(root_fd, "/".join(resolved))


def _create(parent_fd, name, directory, mode):
    """mkdirat/openat of one component below an in-root directory fd."""
    try:
        if directory:
            os.mkdir(name, mode, dir_fd=parent_fd)
        else:
            fd = os.open(f"{fd_path(parent_fd)}/{name}",
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            os.close(fd)
    except FileExistsError:
        pass
