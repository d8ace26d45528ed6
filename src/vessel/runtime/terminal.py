"""The container's terminal: a pty from the container's own devpts.

The master end is handed to the caller through --console-socket (SCM_RIGHTS),
as runc does; the slave becomes the init's controlling terminal and
/dev/console.
"""

import fcntl
import os
import stat
import struct

from vessel.runtime import linux, paths, sync

__all__ = ["open_pty", "become_controlling", "set_size"]

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431
_TIOCSCTTY = 0x540E
_TIOCSWINSZ = 0x5414


def open_pty():
    """(master fd, slave path) from /dev/ptmx of the current mount namespace."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"))[0]
    return master, f"/dev/pts/{number}"


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, _TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def bind_console(slave_path):
    """Bind the pty slave over /dev/console; neither may be a symlink (CVE-2025-52565)."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dev = paths.ensure_in_root(root, "/dev")
    finally:
        os.close(root)
    try:
        target = _console_node(dev)
    finally:
        os.close(dev)
    try:
        slave = os.open(slave_path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(slave)
            if not stat.S_ISCHR(st.st_mode) or not 136 <= os.major(st.st_rdev) <= 143:
                raise OSError(19, f"{slave_path} is not a pts device", slave_path)
            linux.mount(paths.fd_path(slave), paths.fd_path(target), None, linux.MS_BIND)
        finally:
            os.close(slave)
    finally:
        os.close(target)


def _console_node(dev_fd):
    """O_PATH fd of dev/console as a plain file or device node, replacing a symlink."""
    try:
        if stat.S_ISLNK(os.stat("console", dir_fd=dev_fd, follow_symlinks=False).st_mode):
            os.unlink("console", dir_fd=dev_fd)
    except FileNotFoundError:
        pass
    try:
        os.close(os.open("console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dev_fd))
    except FileExistsError:
        pass
    fd = os.open("console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev_fd)
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
        os.close(fd)
        raise OSError(21, "/dev/console is neither a file nor a device node", "/dev/console")
    return fd


def send_master(console_sock, master):
    sync.send_fds(console_sock, b"/dev/ptmx", [master])


def become_controlling(slave_path):
    """Make the slave the controlling terminal and stdio of this process."""
    os.setsid()
    fd = os.open(slave_path, os.O_RDWR | os.O_NOFOLLOW)
    fcntl.ioctl(fd, _TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
