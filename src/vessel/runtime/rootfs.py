"""Building the container's filesystem view: mounts, devices, pivot_root.

Runs in the container's init, in its new mount namespace, before and after
pivot_root. Every mount target is resolved inside the rootfs (paths.py) and
mounted through its /proc/self/fd/N magic link, never through a path string
that a racing container could swap for a symlink.
"""

import os
import stat

from vessel.errors import InvalidArgument
from vessel.runtime import linux, paths

__all__ = ["parse_options", "prepare_rootfs", "pivot", "finish_rootfs"]

L = linux
# option -> (flags to set, flags to clear)
_FLAG_OPTIONS = {
    "defaults": (0, 0), "ro": (L.MS_RDONLY, 0), "rw": (0, L.MS_RDONLY),
    "nosuid": (L.MS_NOSUID, 0), "suid": (0, L.MS_NOSUID), "nodev": (L.MS_NODEV, 0), "dev": (0, L.MS_NODEV),
    "noexec": (L.MS_NOEXEC, 0), "exec": (0, L.MS_NOEXEC), "sync": (L.MS_SYNCHRONOUS, 0),
    "async": (0, L.MS_SYNCHRONOUS), "dirsync": (L.MS_DIRSYNC, 0), "remount": (L.MS_REMOUNT, 0),
    "mand": (L.MS_MANDLOCK, 0), "nomand": (0, L.MS_MANDLOCK), "atime": (0, L.MS_NOATIME),
    "noatime": (L.MS_NOATIME, 0), "diratime": (0, L.MS_NODIRATIME), "nodiratime": (L.MS_NODIRATIME, 0),
    "relatime": (L.MS_RELATIME, 0), "norelatime": (0, L.MS_RELATIME),
    "strictatime": (L.MS_STRICTATIME, 0), "nostrictatime": (0, L.MS_STRICTATIME),
    "lazytime": (L.MS_LAZYTIME, 0), "nolazytime": (0, L.MS_LAZYTIME),
    "nosymfollow": (L.MS_NOSYMFOLLOW, 0), "symfollow": (0, L.MS_NOSYMFOLLOW),
    "silent": (L.MS_SILENT, 0), "loud": (0, L.MS_SILENT),
    "bind": (L.MS_BIND, 0), "rbind": (L.MS_BIND | L.MS_REC, 0),
}
_PROPAGATION = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED, "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
# options runtimes accept and act on elsewhere, or that carry no meaning for mount(2)
_EXTENSION_OPTIONS = {"tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z", "U", "private-ish"}
_UNSUPPORTED = {"idmap", "ridmap"}
# recursive options (runtime-spec 1.1), applied with mount_setattr(AT_RECURSIVE):
# option -> (MOUNT_ATTR bits to set, bits to clear)
_ATIME = L.MOUNT_ATTR__ATIME
_RECURSIVE = {
    "rro": (L.MOUNT_ATTR_RDONLY, 0), "rrw": (0, L.MOUNT_ATTR_RDONLY),
    "rnosuid": (L.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, L.MOUNT_ATTR_NOSUID),
    "rnodev": (L.MOUNT_ATTR_NODEV, 0), "rdev": (0, L.MOUNT_ATTR_NODEV),
    "rnoexec": (L.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, L.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (L.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, L.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (L.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, L.MOUNT_ATTR_NOSYMFOLLOW),
    # the atime modes are one field: each choice clears it first
    "rrelatime": (L.MOUNT_ATTR_RELATIME, _ATIME), "rnorelatime": (L.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rnoatime": (L.MOUNT_ATTR_NOATIME, _ATIME), "ratime": (L.MOUNT_ATTR_RELATIME, _ATIME),
    "rstrictatime": (L.MOUNT_ATTR_STRICTATIME, _ATIME), "rnostrictatime": (L.MOUNT_ATTR_RELATIME, _ATIME),
}

_ST_FLAGS = ((os.ST_RDONLY, L.MS_RDONLY), (os.ST_NOSUID, L.MS_NOSUID), (os.ST_NODEV, L.MS_NODEV),
             (os.ST_NOEXEC, L.MS_NOEXEC), (os.ST_NOATIME, L.MS_NOATIME),
             (os.ST_NODIRATIME, L.MS_NODIRATIME), (os.ST_RELATIME, L.MS_RELATIME))

DEFAULT_DEVICES = (
    # path, major, minor
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)
_DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
              ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))


class MountOptions:
    __slots__ = ("flags", "clear", "propagation", "data", "extensions", "recursive_set", "recursive_clear")

    def __init__(self, flags, clear, propagation, data, extensions, recursive_set=0, recursive_clear=0):
        self.flags = flags
        self.clear = clear
        self.propagation = propagation
        self.data = data
        self.extensions = extensions
        self.recursive_set = recursive_set
        self.recursive_clear = recursive_clear


def parse_options(options, where="mount"):
    """OCI mount options -> flags, propagation flags and the fs data string."""
    flags = clear = rec_set = rec_clear = 0
    propagation = []
    data = []
    extensions = set()
    for option in options:
        if option in _RECURSIVE:
            on, off = _RECURSIVE[option]
            if off == _ATIME:  # one of the atime modes replaces the others
                rec_clear |= _ATIME
                rec_set = (rec_set & ~_ATIME) | on
            else:
                rec_set = (rec_set | on) & ~off
                rec_clear = (rec_clear | off) & ~on
        elif option in _FLAG_OPTIONS:
            on, off = _FLAG_OPTIONS[option]
            flags = (flags | on) & ~off
            clear = (clear | off) & ~on
        elif option in _PROPAGATION:
            propagation.append(_PROPAGATION[option])
        elif option in _EXTENSION_OPTIONS:
            extensions.add(option)
        elif option in _UNSUPPORTED:
            raise InvalidArgument(f"{where}: mount option {option!r} is not supported yet")
        elif not option:
            raise InvalidArgument(f"{where}: empty mount option")
        else:
            data.append(option)
    return MountOptions(flags, clear, propagation, ",".join(data) or None, extensions, rec_set, rec_clear)


# -- before pivot_root ---------------------------------------------------------

def prepare_rootfs(spec, cgroup_mounts, in_user_ns):
    """Mount everything into the rootfs; returns an fd of the rootfs for pivot."""
    linux_cfg = spec.linux
    propagation = _PROPAGATION.get(linux_cfg.rootfs_propagation or "", L.MS_SLAVE | L.MS_REC)
    L.mount(None, "/", None, propagation | L.MS_REC if propagation & L.MS_REC else propagation)
    rootfs = spec.root.path
    _make_parent_private(rootfs)
    L.mount(rootfs, rootfs, None, L.MS_BIND | L.MS_REC)
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    has_dev_mount = False
    for index, mount in enumerate(spec.mounts):
        where = f"mounts[{index}] ({mount.destination})"
        opts = parse_options(mount.options, where)
        kind = mount.type or ("bind" if opts.flags & L.MS_BIND else None)
        try:
            if kind == "cgroup" or kind == "cgroup2":
                _mount_cgroup(root_fd, mount, opts, cgroup_mounts, spec)
            else:
                _mount_one(root_fd, mount, opts, kind, spec.bundle, where)
        except OSError as exc:
            raise OSError(exc.errno, f"{where}: {exc.strerror}", exc.filename) from None
        if os.path.normpath(mount.destination) == "/dev":
            has_dev_mount = True
    _create_devices(root_fd, spec.linux.devices, in_user_ns, has_dev_mount)
    return root_fd


def _make_parent_private(rootfs):
    """pivot_root refuses a new root whose parent mount is shared.

    The parent of the bind made next is the mount holding `rootfs`: the rootfs
    itself when it is a mount point (an engine's overlay), as runc finds it.
    """
    path = rootfs
    mountpoints = _mountpoints()
    while path not in mountpoints and path != "/":
        path = os.path.dirname(path)
    try:
        L.mount(None, path, None, L.MS_PRIVATE)
    except OSError:
        pass


def _mountpoints():
    points = set()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            points.add(line.split(b" ", 5)[4].decode().replace("\\040", " "))
    return points


def _mount_one(root_fd, mount, opts, kind, bundle, where):
    is_bind = bool(opts.flags & L.MS_BIND) or kind in ("bind", "rbind")
    flags = opts.flags
    if kind == "rbind":
        flags |= L.MS_BIND | L.MS_REC
    elif kind == "bind":
        flags |= L.MS_BIND
    source = mount.source
    directory = True
    source_fd = None
    if is_bind:
        if not source:
            raise InvalidArgument(f"{where}: a bind mount needs a source")
        if not source.startswith("/"):
            source = os.path.join(bundle, source)
        try:
            # one lookup: what is checked is what gets mounted, even if the path changes
            source_fd = os.open(source, paths.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InvalidArgument(f"{where}: bind source {source} does not exist") from None
        directory = stat.S_ISDIR(os.fstat(source_fd).st_mode)
        source = paths.fd_path(source_fd)
    special = kind in ("proc", "sysfs") or os.path.normpath(mount.destination) in ("/proc", "/sys")
    try:
        target_fd = paths.ensure_in_root(root_fd, mount.destination, directory=directory,
                                         follow_last=not special)
    except BaseException:
        if source_fd is not None:
            os.close(source_fd)
        raise
    try:
        target = paths.fd_path(target_fd)
        if special:
            _check_plain_directory(target_fd, mount.destination)
        data = opts.data
        if kind == "sysfs" or kind == "proc":
            fstype = kind
        elif is_bind:
            fstype = None
        else:
            fstype = kind
        copy_from = None
        if "tmpcopyup" in opts.extensions and kind == "tmpfs":
            # what the image has at the destination shows through the new tmpfs
            copy_from = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            L.mount(source if is_bind else (source or kind), target, fstype,
                    flags & ~L.MS_RDONLY if is_bind else flags, data)
        except PermissionError:
            if kind != "sysfs":
                raise
            # no private network namespace (or a user namespace): bind the host's /sys instead
            L.mount("/sys", target, None, L.MS_BIND | L.MS_REC)
            flags |= L.MS_BIND
            is_bind = True
            if flags & L.MS_RDONLY:
                # the host's cgroup and other mounts below /sys come along: none may stay
                # writable (CVE-2023-25809)
                mounted = paths.reopen_mounted(root_fd, mount.destination, target_fd)
                try:
                    L.mount_setattr_recursive(mounted, L.MOUNT_ATTR_RDONLY)
                finally:
                    os.close(mounted)
        # the fd still names the directory under the new mount: look the mount up again
        mounted = paths.reopen_mounted(root_fd, mount.destination, target_fd)
        os.close(target_fd)
        target_fd = mounted
        target = paths.fd_path(target_fd)
        if is_bind and flags & ~(L.MS_BIND | L.MS_REC):
            _remount_bind(target, flags)
        if copy_from is not None:
            try:
                _copy_tree(copy_from, target_fd)
            finally:
                os.close(copy_from)
        if opts.recursive_set or opts.recursive_clear:
            L.mount_setattr_recursive(target_fd, opts.recursive_set, opts.recursive_clear)
        for propagation in opts.propagation:
            L.mount(None, target, None, propagation)
    finally:
        os.close(target_fd)
        if source_fd is not None:
            os.close(source_fd)


def _copy_tree(source_fd, target_fd):
    """Copy a directory's content (files, dirs, symlinks, fifos; owners and modes) by fds."""
    for entry in os.scandir(source_fd):
        name = entry.name
        st = entry.stat(follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=target_fd)
            sub_source = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source_fd)
            sub_target = os.open(name, paths.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=target_fd)
            try:
                _copy_tree(sub_source, sub_target)
            finally:
                os.close(sub_source)
                os.close(sub_target)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=source_fd), name, dir_fd=target_fd)
        elif stat.S_ISREG(st.st_mode):
            src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source_fd)
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=target_fd)
            try:
                while os.sendfile(dst, src, None, 1 << 20):
                    pass
            finally:
                os.close(src)
                os.close(dst)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(name, 0o600, dir_fd=target_fd)
        else:
            continue  # sockets and device nodes are not copied up
        os.chown(name, st.st_uid, st.st_gid, dir_fd=target_fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, mode, dir_fd=target_fd)


def _remount_bind(target, flags, keep_current=False):
    """Apply ro/nosuid/... to a bind mount, keeping the flags the kernel locked.

    With `keep_current` the mount's present flags are kept as well (read-only
    paths and a read-only root change nothing but "ro").
    """
    wanted = (flags & ~L.MS_REC) | L.MS_BIND | L.MS_REMOUNT
    if keep_current:
        wanted |= _current_flags(target)
    try:
        L.mount(None, target, None, wanted)
    except PermissionError:
        L.mount(None, target, None, wanted | _current_flags(target))


def _current_flags(target):
    current = os.statvfs(target).f_flag
    return sum(ms_flag for st_flag, ms_flag in _ST_FLAGS if current & st_flag and ms_flag != L.MS_RDONLY)


O_DIRECTORY_PATH = paths.O_PATH | os.O_DIRECTORY


def _remount_bind_at(root_fd, destination, under_fd, flags):
    """_remount_bind on the mount just made over `under_fd` at `destination`."""
    mounted = paths.reopen_mounted(root_fd, destination, under_fd)
    try:
        _remount_bind(paths.fd_path(mounted), flags)
    finally:
        os.close(mounted)


def _check_plain_directory(fd, destination):
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{destination} must be mounted on an ordinary directory")


def _mount_cgroup(root_fd, mount, opts, cgroup_mounts, spec):
    """/sys/fs/cgroup inside the container: the container's own cgroups, read-only by default."""
    target_fd = paths.ensure_in_root(root_fd, mount.destination)
    flags = opts.flags | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC
    new_cgroupns = spec.linux.namespace("cgroup") is not None
    try:
        target = paths.fd_path(target_fd)
        if cgroup_mounts and cgroup_mounts[0][0] == "":  # unified hierarchy
            if new_cgroupns:
                L.mount("cgroup2", target, "cgroup2", flags)
            else:
                L.mount(cgroup_mounts[0][1], target, None, L.MS_BIND | L.MS_REC)
                _remount_bind_at(root_fd, mount.destination, target_fd, flags | L.MS_BIND)
            return
        L.mount("tmpfs", target, "tmpfs", flags & ~L.MS_RDONLY, "mode=755")
        mounted = paths.reopen_mounted(root_fd, mount.destination, target_fd)
        os.close(target_fd)
        target_fd = mounted
        target = paths.fd_path(target_fd)
        for entry in cgroup_mounts:
            name, host_dir, options = entry[0], entry[1], entry[2]
            sub_fd = paths.ensure_in_root(root_fd, f"{mount.destination}/{name}")
            try:
                sub = paths.fd_path(sub_fd)
                if new_cgroupns:
                    L.mount("cgroup", sub, "cgroup", flags, options)
                else:
                    L.mount(host_dir, sub, None, L.MS_BIND | L.MS_REC)
                    _remount_bind_at(root_fd, f"{mount.destination}/{name}", sub_fd, flags | L.MS_BIND)
            finally:
                os.close(sub_fd)
            for link in (entry[3] if len(entry) > 3 else ()):
                try:
                    os.symlink(name, link, dir_fd=target_fd)
                except FileExistsError:
                    pass
        if flags & L.MS_RDONLY:
            L.mount(None, target, None, (flags | L.MS_REMOUNT) & ~L.MS_REC)
    finally:
        os.close(target_fd)


def _create_devices(root_fd, devices, in_user_ns, has_dev_mount):
    wanted = [(path, "c", major, minor, 0o666, 0, 0) for path, major, minor in DEFAULT_DEVICES]
    configured = {d.path for d in devices}
    wanted = [w for w in wanted if w[0] not in configured]
    wanted += [(d.path, d.type, d.major or 0, d.minor or 0,
                0o666 if d.file_mode is None else d.file_mode, d.uid or 0, d.gid or 0) for d in devices]
    for path, kind, major, minor, mode, uid, gid in wanted:
        _make_device(root_fd, path, kind, major, minor, mode, uid, gid, in_user_ns)
    if not has_dev_mount:
        return
    for target, link in _DEV_LINKS:
        _symlink_in_root(root_fd, target, link)
    _symlink_in_root(root_fd, "pts/ptmx", "/dev/ptmx")


def _symlink_in_root(root_fd, target, link):
    parent_fd = paths.ensure_in_root(root_fd, os.path.dirname(link))
    try:
        os.symlink(target, os.path.basename(link), dir_fd=parent_fd)
    except FileExistsError:
        pass
    finally:
        os.close(parent_fd)


_KIND = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _make_device(root_fd, path, kind, major, minor, mode, uid, gid, in_user_ns):
    parent_fd = paths.ensure_in_root(root_fd, os.path.dirname(path))
    name = os.path.basename(path)
    try:
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_IFMT(st.st_mode) == _KIND[kind] and os.major(st.st_rdev) == major \
                    and os.minor(st.st_rdev) == minor:
                return
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"cannot create device {path}: a directory is in the way")
            os.unlink(name, dir_fd=parent_fd)
        if in_user_ns:
            # mknod is not allowed in a user namespace: bind the host's node instead
            host = f"/dev/{name}" if path.startswith("/dev/") else path
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o644, dir_fd=parent_fd)
            os.close(fd)
            node_fd = _open_node(parent_fd, name, path, stat.S_IFREG)
            try:
                L.mount(host, paths.fd_path(node_fd), None, L.MS_BIND)
            finally:
                os.close(node_fd)
            return
        os.mknod(name, _KIND[kind] | (mode & 0o7777), os.makedev(major, minor), dir_fd=parent_fd)
        node_fd = _open_node(parent_fd, name, path, _KIND[kind], os.makedev(major, minor))
        try:
            os.chown(paths.fd_path(node_fd), uid, gid)
            os.chmod(paths.fd_path(node_fd), mode & 0o7777)
        finally:
            os.close(node_fd)
    finally:
        os.close(parent_fd)


def _open_node(parent_fd, name, path, kind, rdev=None):
    """O_PATH fd of the node just made, not of a symlink a racer put in its place (CVE-2025-31133)."""
    fd = os.open(name, paths.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    st = os.fstat(fd)
    if stat.S_IFMT(st.st_mode) != kind or (rdev is not None and st.st_rdev != rdev):
        os.close(fd)
        raise OSError(40, f"{path} was replaced while it was being created", path)
    return fd


# -- pivot_root and after --------------------------------------------------------

def pivot(root_fd, no_pivot=False):
    """Make the rootfs the new "/" and detach the old root."""
    if no_pivot:
        os.chdir(paths.fd_path(root_fd))
        L.mount(".", "/", None, L.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(paths.fd_path(root_fd), os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        L.pivot_root(".", ".")
        os.fchdir(old_root)
        L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
        L.umount2(".", L.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def finish_rootfs(spec):
    """After pivot_root: masked and read-only paths, read-only root, propagation."""
    linux_cfg = spec.linux
    for path in linux_cfg.masked_paths:
        mask_path(path)
    for path in linux_cfg.readonly_paths:
        readonly_path(path)
    if spec.root.readonly:
        _remount_bind("/", L.MS_BIND | L.MS_RDONLY, keep_current=True)
    if linux_cfg.rootfs_propagation:
        L.mount(None, "/", None, _PROPAGATION[linux_cfg.rootfs_propagation])


def mask_path(path):
    """Hide `path`: /dev/null over a file, an empty read-only tmpfs over a directory.

    Both the target and /dev/null are opened without following symlinks and
    mounted through their fds: a /dev/null swapped for a symlink to a procfs
    file would otherwise unmask that file (CVE-2025-31133).
    """
    try:
        target = os.open(path, paths.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        st = os.fstat(target)
        if stat.S_ISLNK(st.st_mode):
            raise InvalidArgument(f"masked path {path} is a symlink")
        if stat.S_ISDIR(st.st_mode):
            L.mount("tmpfs", paths.fd_path(target), "tmpfs", L.MS_RDONLY, "size=0")
            return
        null = os.open("/dev/null", paths.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            nst = os.fstat(null)
            if not stat.S_ISCHR(nst.st_mode) or (os.major(nst.st_rdev), os.minor(nst.st_rdev)) != (1, 3):
                raise InvalidArgument("/dev/null in the container is not the null device; refusing to mask with it")
            L.mount(paths.fd_path(null), paths.fd_path(target), None, L.MS_BIND)
        finally:
            os.close(null)
    finally:
        os.close(target)


def readonly_path(path):
    try:
        os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return
    L.mount(path, path, None, L.MS_BIND | L.MS_REC)
    _remount_bind(path, L.MS_BIND | L.MS_RDONLY, keep_current=True)
