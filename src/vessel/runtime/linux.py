"""The one place where the runtime calls libc through ctypes.

Every wrapper raises `OSError(errno, message, path)` instead of returning -1.
Callers that want to be unit-tested without root take a `Syscalls`-like object
(this module, or a recorder in tests) rather than importing the functions.
"""

import ctypes
import os

__all__ = [
    "CLONE_NEWCGROUP", "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID",
    "CLONE_NEWTIME", "CLONE_NEWUSER", "CLONE_NEWUTS", "NAMESPACE_FLAGS",
    "clone", "mount", "personality", "pivot_root", "prctl", "setdomainname",
    "sethostname", "setns", "umount2", "unshare",
]

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# OCI namespace type -> clone flag, and the name of its /proc/<pid>/ns entry.
NAMESPACE_FLAGS = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_pivot_root = 155
_SYS_clone = 56
_SYS_clone3 = 435
_SYS_close_range = 436
_SYS_openat2 = 437
_SYS_pidfd_open = 434
_SYS_capget = 125
_SYS_capset = 126
_SYS_seccomp = 317

_libc = ctypes.CDLL(None, use_errno=True)
_c_ulong = ctypes.c_ulong
_c_char_p = ctypes.c_char_p
_c_int = ctypes.c_int
_c_long = ctypes.c_long

_mount = _libc.mount
_mount.argtypes = (_c_char_p, _c_char_p, _c_char_p, _c_ulong, _c_char_p)
_umount2 = _libc.umount2
_umount2.argtypes = (_c_char_p, _c_int)
_unshare = _libc.unshare
_unshare.argtypes = (_c_int,)
_setns = _libc.setns
_setns.argtypes = (_c_int, _c_int)
_sethostname = _libc.sethostname
_sethostname.argtypes = (_c_char_p, ctypes.c_size_t)
_setdomainname = _libc.setdomainname
_setdomainname.argtypes = (_c_char_p, ctypes.c_size_t)
_prctl = _libc.prctl
_prctl.argtypes = (_c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong)
_personality = _libc.personality
_personality.argtypes = (_c_ulong,)
_syscall = _libc.syscall
_syscall.restype = _c_long


def _raise(what, path=None):
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(value):
    return None if value is None else os.fsencode(value)


def mount(source, target, fstype, flags=0, data=None):
    if _mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        _raise(f"mount {source} on {target}", target)


def umount2(target, flags=0):
    if _umount2(_b(target), flags) != 0:
        _raise("umount", target)


def pivot_root(new_root, put_old):
    if _syscall(_SYS_pivot_root, _b(new_root), _b(put_old)) != 0:
        _raise("pivot_root", new_root)


def unshare(flags):
    if _unshare(flags) != 0:
        _raise(f"unshare({flags:#x})")


def setns(fd, nstype=0, path=None):
    if _setns(fd, nstype) != 0:
        _raise("setns", path)


def sethostname(name):
    raw = name.encode()
    if _sethostname(raw, len(raw)) != 0:
        _raise("sethostname")


def setdomainname(name):
    raw = name.encode()
    if _setdomainname(raw, len(raw)) != 0:
        _raise("setdomainname")


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    result = _prctl(option, arg2, arg3, arg4, arg5)
    if result < 0:
        _raise(f"prctl({option})")
    return result


def personality(persona):
    if _personality(persona) == -1:
        _raise("personality")


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
        "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")]


_before_fork = ctypes.pythonapi.PyOS_BeforeFork
_after_fork_parent = ctypes.pythonapi.PyOS_AfterFork_Parent
_after_fork_child = ctypes.pythonapi.PyOS_AfterFork_Child
_SIGCHLD = 17


CLONE_INTO_CGROUP = 0x200000000


def clone(flags, cgroup_fd=None):
    """fork(2) into new namespaces; returns 0 in the child, its pid in the parent.

    Uses clone3 (which also takes CLONE_NEWTIME, and with `cgroup_fd` creates
    the child directly in that cgroup2 directory) with clone as the fallback,
    and runs CPython's own fork hooks around it, exactly as os.fork() does.
    """
    args = _CloneArgs(flags=flags, exit_signal=_SIGCHLD)
    if cgroup_fd is not None:
        args.flags |= CLONE_INTO_CGROUP
        args.cgroup = cgroup_fd
    _before_fork()
    pid = _syscall(_SYS_clone3, ctypes.byref(args), ctypes.sizeof(args))
    if pid < 0 and ctypes.get_errno() == 38 and not flags & CLONE_NEWTIME and cgroup_fd is None:  # ENOSYS
        pid = _syscall(_SYS_clone, _c_ulong(flags | _SIGCHLD), None, None, None, None)
    if pid == 0:
        _after_fork_child()
        return 0
    err = ctypes.get_errno()
    _after_fork_parent()
    if pid < 0:
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def close_range(first, last=0xFFFFFFFF, flags=0):
    if _syscall(_SYS_close_range, ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags)) != 0:
        _raise("close_range")


def pidfd_open(pid):
    fd = _syscall(_SYS_pidfd_open, _c_int(pid), ctypes.c_uint(0))
    if fd < 0:
        _raise(f"pidfd_open({pid})")
    return fd


RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_OPENAT2_EAGAIN_RETRIES = 100


def openat2(dirfd, path, flags, mode=0, resolve=0):
    """openat2(2), retried on EAGAIN: with RESOLVE_IN_ROOT or RESOLVE_BENEATH the
    kernel gives up a ".." walk when any rename happened meanwhile, anywhere."""
    how = _OpenHow(flags=flags, mode=mode, resolve=resolve)
    raw_path = _b(path)
    for _ in range(_OPENAT2_EAGAIN_RETRIES):
        fd = _syscall(_SYS_openat2, _c_int(dirfd), raw_path, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return fd
        if ctypes.get_errno() != 11:  # EAGAIN
            break
    _raise("openat2", path)


_SYS_keyctl = 250
_KEYCTL_JOIN_SESSION_KEYRING = 1
_KEYCTL_SETPERM = 5
_KEYCTL_DESCRIBE = 6


def join_session_keyring(name):
    """A fresh session keyring named `name`, searchable by its user (as runc makes it).

    Returns False where the kernel has no keyrings."""
    key = _syscall(_SYS_keyctl, _c_int(_KEYCTL_JOIN_SESSION_KEYRING), _b(name))
    if key < 0:
        if ctypes.get_errno() == 38:  # ENOSYS
            return False
        _raise("keyctl(join session keyring)")
    buf = ctypes.create_string_buffer(256)
    if _syscall(_SYS_keyctl, _c_int(_KEYCTL_DESCRIBE), _c_int(key), buf, ctypes.c_size_t(256)) < 0:
        _raise("keyctl(describe)")
    perm = int(buf.value.split(b";")[3], 16) | 0x080000
    if _syscall(_SYS_keyctl, _c_int(_KEYCTL_SETPERM), _c_int(key), ctypes.c_uint(perm)) < 0:
        _raise("keyctl(setperm)")
    return True


_SYS_mount_setattr = 442
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def mount_setattr_recursive(fd, attr_set, attr_clr=0):
    """Set (and clear) MOUNT_ATTR_* flags on the mount at `fd` and every mount below it."""
    attr = _MountAttr(attr_set=attr_set, attr_clr=attr_clr)
    if _syscall(_SYS_mount_setattr, _c_int(fd), b"", ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE),
                ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))) != 0:
        _raise("mount_setattr")


PROC_SUPER_MAGIC = 0x9FA0
DEVPTS_SUPER_MAGIC = 0x1CD1
_fstatfs = _libc.fstatfs
_fstatfs.argtypes = (_c_int, ctypes.c_void_p)


def fstatfs_type(fd):
    """The filesystem magic number (f_type) of the file open at `fd`."""
    buf = ctypes.create_string_buffer(128)  # struct statfs is 120 bytes on 64-bit
    if _fstatfs(fd, buf) != 0:
        _raise("fstatfs")
    return ctypes.c_long.from_buffer(buf).value


def syscall(number, *args):
    """Raw syscall for the few callers (capabilities, seccomp) with their own structs."""
    result = _syscall(number, *args)
    if result < 0:
        _raise(f"syscall {number}")
    return result
