"""`docker cp`: files between a container's filesystem and the host, or a tar stream.

Both sides are a directory fd taken as root: the container's root, or on the
host the directory the copy lands in (or "/" for a source). The named path is
resolved with openat2(RESOLVE_IN_ROOT), so a symlink, absolute or with "..",
never leads out of the container; below it the walk goes name by name with
O_NOFOLLOW, and every file is created relative to an in-root directory fd,
so neither a symlink in the image nor one a running container swaps in can
make the copy read or write a host file (CVE-2018-15664 class). Nothing of the
image runs on the host (CVE-2019-14271).

Copies are streams of (TarInfo, file) entries: from a walk or a tar archive,
into a directory or a tar archive.
"""

import errno
import os
import posixpath
import shutil
import stat
import tarfile

from vessel.errors import InvalidArgument, NotFound
from vessel.image import tree
from vessel.runtime import paths

__all__ = ["copy", "entries", "extract", "open_directory", "read_tar", "write_tar", "path_stat"]

_NODE_BITS = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}


def path_stat(root_fd, path, follow=True):
    """os.stat_result of `path` in the root (its last symlink followed, in the root, with `follow`), or None."""
    try:
        fd = paths.open_in_root(root_fd, path, paths.O_PATH | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def entries(root_fd, path, arcname, follow=False):
    """(TarInfo, readable file or None) for `path` in the root and everything below it, named from `arcname`.

    `follow` follows a symlink as the last component of `path` (docker cp -L).
    The file of an entry is valid until the next entry is asked for.
    """
    try:
        fd = paths.open_in_root(root_fd, path, paths.O_PATH | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotFound(f"Could not find the file {path} in container") from None
        raise
    for info, data, _ in tree.walk(fd, arcname):
        yield info, data


def _parts(name):
    """The components of a member name; None for the root itself or names climbing out."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return parts


def open_directory(root_fd, path):
    """An O_PATH fd of the directory `path` in the root; NotFound if it is missing or no directory."""
    try:
        return paths.open_in_root(root_fd, path, paths.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotFound(f"no such directory: {path}") from None
        raise


def extract(directory_fd, items, owner=None):
    """Create the entries of `items` in the directory open at `directory_fd`, taken as their root.

    Member names, hard link targets and the symlinks met on the way all resolve
    inside that directory. `owner` is the (uid, gid) every entry gets; None
    keeps the entries' own (docker cp -a). Missing parents are created; an
    existing non-directory is replaced. Returns the bytes of file data written.
    """
    directories, written = [], 0
    parent_key, parent = None, None  # the last parent directory's fd: archives list a directory's files together
    try:
        for info, data in items:
            parts = _parts(info.name)
            if parts is None:
                continue
            if parts[:-1] != parent_key:
                if parent is not None:
                    os.close(parent)
                    parent = None
                parent = paths.ensure_in_root(directory_fd, posixpath.join(*parts[:-1]) if len(parts) > 1 else "")
                parent_key = parts[:-1]
            _create(directory_fd, parent, parts[-1], info, data)
            written += info.size if info.isreg() else 0
            uid, gid = owner if owner is not None else (info.uid, info.gid)
            _settle(parent, parts[-1], info, uid, gid)
            if info.type == tarfile.DIRTYPE:
                directories.append((posixpath.join(*parts), info.mtime))
    finally:
        if parent is not None:
            os.close(parent)
    for relative, mtime in reversed(directories):  # after their contents: writing changes a directory's mtime
        fd = paths.open_in_root(directory_fd, relative, paths.O_PATH | os.O_NOFOLLOW)
        try:
            os.utime(paths.fd_path(fd), (mtime, mtime))
        finally:
            os.close(fd)
    return written


def _create(directory_fd, parent, leaf, info, data):
    try:
        existing = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            if info.type == tarfile.DIRTYPE:
                return
            raise InvalidArgument(f"cannot overwrite directory {info.name!r} with non-directory")
        os.unlink(leaf, dir_fd=parent)
    if info.type == tarfile.DIRTYPE:
        os.mkdir(leaf, 0o700, dir_fd=parent)
    elif info.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        with open(fd, "wb") as out:
            if data is not None:
                shutil.copyfileobj(data, out, 1 << 20)
    elif info.type == tarfile.SYMTYPE:
        os.symlink(info.linkname, leaf, dir_fd=parent)
    elif info.type == tarfile.LNKTYPE:
        target = _parts(info.linkname)
        if target is None:
            raise InvalidArgument(f"invalid hard link {info.name!r} -> {info.linkname!r}")
        source = paths.open_in_root(directory_fd, "/".join(target[:-1]), paths.O_PATH | os.O_DIRECTORY)
        try:
            os.link(target[-1], leaf, src_dir_fd=source, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(source)
    elif info.type in _NODE_BITS:
        os.mknod(leaf, 0o600 | _NODE_BITS[info.type], os.makedev(info.devmajor, info.devminor), dir_fd=parent)
    else:
        raise InvalidArgument(f"unsupported entry type in archive: {info.name!r}")


def _settle(parent, leaf, info, uid, gid):
    """Owner, mode and times of the entry just made, on the node itself (never through a symlink)."""
    os.chown(leaf, uid, gid, dir_fd=parent, follow_symlinks=False)
    if info.type == tarfile.SYMTYPE:
        os.utime(leaf, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)
        return
    fd = os.open(leaf, paths.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errno.ELOOP, "replaced by a symlink during the copy", info.name)
        os.chmod(paths.fd_path(fd), info.mode & 0o7777)
        os.utime(paths.fd_path(fd), (info.mtime, info.mtime))
    finally:
        os.close(fd)


def write_tar(items, out):
    """Write the entries to the binary file `out` as a tar stream."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data in items:
            tar.addfile(info, data)


def read_tar(source):
    """The entries of a tar stream (any compression) from the binary file `source`."""
    try:
        with tarfile.open(fileobj=source, mode="r|*") as tar:
            for member in tar:
                yield member, tar.extractfile(member) if member.isreg() else None
    except tarfile.TarError as exc:
        raise InvalidArgument(f"the input is not a valid tar archive: {exc}") from None


def copy(source_fd, source, target_fd, target, follow=False, owner=None):
    """Docker's cp rules from `source` (in the root `source_fd`) to `target` (in `target_fd`).

    A directory lands inside an existing directory under its own name, or its
    contents do when the source ends in "/."; a missing target is created
    with the source's contents; a file replaces an existing file. Returns the bytes of file data copied.
    """
    contents_only = source == "." or source.endswith("/.")
    wants_directory = source.endswith("/") or contents_only
    st = path_stat(source_fd, source, follow=follow or wants_directory)
    if st is None and wants_directory:
        st = path_stat(source_fd, source[:-2] if contents_only and source != "." else source.rstrip("/"), follow)
    if st is None:
        raise NotFound(f"Could not find the file {source}")
    is_dir = stat.S_ISDIR(st.st_mode)
    if wants_directory and not is_dir:
        raise InvalidArgument(f"{source}: not a directory")
    destination = path_stat(target_fd, target)
    if destination is not None and stat.S_ISDIR(destination.st_mode):
        directory, name = target, "." if contents_only else posixpath.basename(posixpath.normpath(source))
    elif destination is not None:
        if is_dir:
            raise InvalidArgument(f"cannot copy a directory to a file: {target}")
        if target.endswith("/"):
            raise InvalidArgument(f"{target}: not a directory")
        directory, name = posixpath.dirname(target), posixpath.basename(target)
    else:
        if target.endswith("/") and not is_dir:
            raise NotFound(f"the destination directory {target} must exist")
        directory, name = posixpath.dirname(target.rstrip("/")), posixpath.basename(target.rstrip("/"))
        parent = path_stat(target_fd, directory)
        if parent is None or not stat.S_ISDIR(parent.st_mode):
            raise NotFound(f"no such directory: {directory or '/'}")
    directory_fd = open_directory(target_fd, directory)
    try:
        return extract(directory_fd, entries(source_fd, source, name, follow or wants_directory), owner)
    finally:
        os.close(directory_fd)
