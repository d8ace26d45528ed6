"""A directory tree as tar entries, walked by file descriptors: below the top node every
name is opened with O_NOFOLLOW relative to its directory's fd, so no symlink is ever
followed and a tree that changes meanwhile (a running container's) cannot redirect the
walk onto other files. Used by `cp` and by snapshot commits.
"""

import os
import stat
import tarfile

from vessel.runtime.paths import O_PATH, fd_path

__all__ = ["walk"]

_TYPES = ((stat.S_ISDIR, tarfile.DIRTYPE), (stat.S_ISREG, tarfile.REGTYPE), (stat.S_ISLNK, tarfile.SYMTYPE),
          (stat.S_ISCHR, tarfile.CHRTYPE), (stat.S_ISBLK, tarfile.BLKTYPE), (stat.S_ISFIFO, tarfile.FIFOTYPE))


def walk(fd, name):
    """(TarInfo, file or None, O_PATH fd) for the node open at `fd` (which this closes) and all below it.

    Names start from `name` ("" or "." for the top: its children get bare names).
    Regular files come with a reader of exactly the size in their header; a second
    name of a hard-linked file comes as a hard link entry. Sockets are left out.
    The file and the fd of an entry are valid until the next entry is asked for.
    """
    yield from _walk(fd, name, {})


def _info(name, st, fd):
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    info.type = next(kind for test, kind in _TYPES if test(st.st_mode))
    if info.type == tarfile.REGTYPE:
        info.size = st.st_size
    elif info.type == tarfile.SYMTYPE:
        info.linkname = os.readlink("", dir_fd=fd)
    elif info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _walk(fd, name, linked):
    try:
        st = os.fstat(fd)
        if stat.S_ISSOCK(st.st_mode):
            return
        info = _info(name, st, fd)
        if info.type == tarfile.REGTYPE and st.st_nlink > 1:
            first = linked.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
        if info.type != tarfile.REGTYPE:
            yield info, None, fd
            if info.type == tarfile.DIRTYPE:
                yield from _children(fd, name, linked)
            return
        with open(os.open(fd_path(fd), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as data:
            yield info, _Exactly(data, info.size), fd
    finally:
        os.close(fd)


def _children(fd, name, linked):
    directory = os.open(fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for child in sorted(os.listdir(directory)):
            try:
                child_fd = os.open(child, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            except FileNotFoundError:
                continue  # removed meanwhile
            yield from _walk(child_fd, f"{name}/{child}" if name not in ("", ".") else child, linked)
    finally:
        os.close(directory)


class _Exactly:
    """A file read as exactly `size` bytes (padded with zeros if it shrank meanwhile): the size in the header."""

    def __init__(self, handle, size):
        self.handle, self.left = handle, size

    def read(self, count=-1):
        count = self.left if count is None or count < 0 else min(count, self.left)
        data = self.handle.read(count)
        if len(data) < count:
            data += b"\0" * (count - len(data))
        self.left -= len(data)
        return data
