"""Volumes: directories of data that outlive containers, Docker's `local` driver.

    <root>/volumes/<name>/_data      the data (a container's mount source)

Metadata is in engine.db (`volumes`); a volume created with `type`/`device`/`o`
options is mounted on its `_data` while at least one container uses it (the
`volume_mounts` rows count the users) and unmounted after the last. A volume
that is empty when a container first mounts it gets a copy of what the
container's image has at that path (owners, modes, times, xattrs and symlinks
kept), read through openat2(RESOLVE_IN_ROOT) so nothing outside the rootfs is
ever read.
"""

import contextlib
import errno
import json
import os
import stat
import time

from vessel.engine import events
from vessel.engine.model import Mount, label_matches, validate_volume_name
from vessel.errors import Conflict, InvalidArgument, NotFound, Unavailable
from vessel.records import field, record, replace
from vessel.runtime import linux, paths

__all__ = ["Volume", "Volumes", "plan_mounts", "copy_up", "tree_size", "unmount_all"]

_DRIVER_OPTIONS = ("type", "device", "o")
# an option that needs another (Docker's local driver)
_REQUIRED_WITH = {"device": "type", "type": "device", "o": "device"}
_ANONYMOUS_LABEL = "com.docker.volume.anonymous"


@record
class Volume:
    """One row of the volumes table."""

    name: str
    driver: str = "local"
    labels: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    created: float = 0.0
    anonymous: bool = False

    @classmethod
    def from_row(cls, row):
        name, driver, labels, options, created, anonymous = row
        return cls(name, driver, json.loads(labels), json.loads(options), created, bool(anonymous))


_SELECT = "SELECT name, driver, labels, options, created, anonymous FROM volumes"


def _validate_options(driver, options):
    if driver != "local":
        raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    for key in options:
        if key == "size":
            raise InvalidArgument("quota size requested but no quota support")
        if key not in _DRIVER_OPTIONS:
            raise InvalidArgument(f'invalid option: "{key}"')
    for key, needed in _REQUIRED_WITH.items():
        if key in options and needed not in options:
            raise InvalidArgument(f'missing required option: "{needed}"')


def _mounted(path):
    with open("/proc/self/mountinfo") as handle:
        return any(line.split()[4] == path for line in handle)


def unmount_all(path):
    """Unmount everything stacked on `path` (lazily); nothing mounted there is fine."""
    while True:
        try:
            linux.umount2(path, linux.MNT_DETACH)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return
            raise


class Volumes:
    """The volumes of the state root `root` (metadata in `state`, the engine's database)."""

    def __init__(self, root, state):
        self.directory = os.path.join(root, "volumes")
        self.state = state

    def data_path(self, name):
        return os.path.join(self.directory, name, "_data")

    # the store

    def create(self, name=None, driver="local", labels=None, options=None, anonymous=False):
        """A new volume (an existing one of that name is returned as it is, as Docker does)."""
        driver = driver or "local"
        options = dict(options or {})
        _validate_options(driver, options)
        name = validate_volume_name(name) if name else os.urandom(32).hex()
        labels = dict(labels or {})
        if anonymous:
            labels[_ANONYMOUS_LABEL] = ""
        os.makedirs(self.directory, mode=0o701, exist_ok=True)
        with self.state.write() as db:
            row = db.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return Volume.from_row(row)
            volume = Volume(name, driver, labels, options, time.time(), anonymous)
            data = self.data_path(name)
            os.makedirs(data, mode=0o755, exist_ok=True)  # left by a create that crashed: reused
            try:
                db.execute("INSERT INTO volumes VALUES (?, ?, ?, ?, ?, ?)",
                           (name, driver, json.dumps(labels), json.dumps(options), volume.created, int(anonymous)))
            except BaseException:
                import shutil

                shutil.rmtree(os.path.dirname(data), ignore_errors=True)
                raise
        events.record(self.state, "volume", "create", name, {"driver": driver})
        return volume

    def get(self, name):
        rows = self.state.query(_SELECT + " WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"No such volume: {name}")
        return Volume.from_row(rows[0])

    def list(self):
        return [Volume.from_row(row) for row in self.state.query(_SELECT + " ORDER BY name")]

    def users(self, name=None):
        """Ids of the containers (any state) that mount volume `name`; all volumes' users as a dict if None."""
        found = {}
        for record in self.state.all():
            for mount in record.config.mounts:
                if mount.type == "volume" and mount.source:
                    found.setdefault(mount.source, []).append(record.id)
        return found if name is None else found.get(name, [])

    def remove(self, name, force=False):
        """Remove a volume no container uses; `force` ignores a missing one (not one in use)."""
        with self.state.write() as db:
            if db.execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone() is None:
                if force:
                    return
                raise NotFound(f"No such volume: {name}")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))
            db.execute("DELETE FROM volume_mounts WHERE volume = ?", (name,))
        import shutil

        unmount_all(self.data_path(name))
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        events.record(self.state, "volume", "destroy", name, {"driver": "local"})

    def usage(self):
        """[(Volume, size in bytes, number of containers using it)], for `system df`."""
        users = self.users()
        return [(volume, tree_size(self.data_path(volume.name)), len(users.get(volume.name, [])))
                for volume in self.list()]

    def prune(self, all=False, filters=None):  # noqa: A002 - Docker's name
        """Remove unused volumes (only anonymous ones unless `all`): ([names], bytes reclaimed)."""
        deleted, reclaimed = [], 0
        users = self.users()
        for volume in self.list():
            if volume.name in users or not (all or volume.anonymous) or not matches(volume, filters or {}, users):
                continue
            size = tree_size(self.data_path(volume.name))
            try:
                self.remove(volume.name)
            except (Conflict, NotFound):
                continue
            deleted.append(volume.name)
            reclaimed += size
        return deleted, reclaimed

    # containers

    def provision(self, mounts, made):
        """Create the volumes `mounts` name that do not exist yet (naming anonymous ones); new names go to `made`."""
        for mount in mounts:
            if mount.type != "volume":
                continue
            if mount.source and self.state.query("SELECT 1 FROM volumes WHERE name = ?", (mount.source,)):
                continue
            mount.anonymous = not mount.source
            volume = self.create(mount.source or None, mount.driver, mount.volume_labels, mount.driver_options,
                                 anonymous=mount.anonymous)
            mount.source = volume.name
            made.append(volume.name)

    def discard(self, names):
        """Undo `provision`: remove the volumes it made."""
        for name in names:
            try:
                self.remove(name, force=True)
            except Conflict:
                pass

    def attach(self, record, rootfs):
        """Make the container's volumes ready to mount: {volume name: host path}.

        Missing volumes are created, ones with driver options mounted (counted),
        empty ones filled from the rootfs (the image) unless `nocopy`.
        """
        found = {}
        for mount in record.config.mounts:
            if mount.type != "volume":
                continue
            try:
                volume = self.get(mount.source)
            except NotFound:  # removed since the container was created
                volume = self.create(mount.source, mount.driver, mount.volume_labels, mount.driver_options,
                                     anonymous=mount.anonymous)
            path = self.data_path(volume.name)
            if volume.options:
                self._acquire(volume, record.id)
            if not mount.nocopy:
                copy_up(rootfs, mount.target, path)
            found[volume.name] = path
        return found

    def _acquire(self, volume, container_id):
        path = self.data_path(volume.name)
        with self.state.write() as db:
            db.execute("INSERT OR IGNORE INTO volume_mounts VALUES (?, ?)", (volume.name, container_id))
            if not _mounted(path):
                _mount_local(volume.options, path)

    def release(self, record):
        """The container no longer uses its volumes: unmount those no other container uses."""
        if not self.state.query("SELECT 1 FROM volume_mounts WHERE container = ?", (record.id,)):
            return
        with self.state.write() as db:
            names = [row[0] for row in
                     db.execute("SELECT volume FROM volume_mounts WHERE container = ?", (record.id,)).fetchall()]
            db.execute("DELETE FROM volume_mounts WHERE container = ?", (record.id,))
            for name in names:
                if db.execute("SELECT 1 FROM volume_mounts WHERE volume = ?", (name,)).fetchone() is None:
                    unmount_all(self.data_path(name))

    def remove_anonymous(self, record):
        """Remove the anonymous volumes of a removed container that no other container uses."""
        for mount in record.config.mounts:
            if mount.type != "volume" or not mount.source:
                continue
            try:
                if self.get(mount.source).anonymous:
                    self.remove(mount.source)
            except (NotFound, Conflict):
                pass


def _mount_local(options, path):
    """Mount what the local driver's type/device/o options describe on `path`."""
    from vessel.runtime.rootfs import parse_options

    kind, device = options.get("type", ""), options.get("device", "")
    parts = [part for part in options.get("o", "").split(",") if part]
    parsed = parse_options(parts, "volume options")
    try:
        if parsed.flags & linux.MS_BIND:
            linux.mount(device, path, None, parsed.flags)
            if parsed.flags & ~(linux.MS_BIND | linux.MS_REC):
                linux.mount(None, path, None, parsed.flags | linux.MS_REMOUNT)
        else:
            linux.mount(device, path, kind, parsed.flags, parsed.data)
    except OSError as exc:
        raise Unavailable(f"error while mounting volume '{path}': failed to mount local volume: mount "
                          f"{device}:{path}, flags: {parsed.flags:#x}, data: {parsed.data or ''}: "
                          f"{os.strerror(exc.errno).lower()}") from None


def plan_mounts(config, find_container):
    """The container's final mounts: its own (-v, --mount), then --volumes-from's, then the image's VOLUMEs.

    A later source never shadows a target an earlier one took; two of the
    container's own mounts on one target are an error, as in Docker.
    """
    own = list(config.mounts)
    taken = set(config.tmpfs)
    for mount in own:
        if mount.target in taken:
            raise InvalidArgument(f"Duplicate mount point: {mount.target}")
        taken.add(mount.target)
        if mount.type == "bind" and mount.flag == "--mount" and not os.path.lexists(mount.source):
            raise InvalidArgument(f'invalid mount config for type "bind": bind source path does not exist: '
                                  f"{mount.source}")
    result = own
    for item in config.volumes_from:
        name, _, mode = item.partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"invalid mode: {mode}")
        source = find_container(name)
        for mount in source.config.mounts:
            if mount.type == "tmpfs" or mount.target in taken:
                continue
            copied = replace(mount, flag="volumes-from")
            if mode:
                copied.readonly = mode == "ro"
            result.append(copied)
            taken.add(mount.target)
    for target in config.volumes:
        target = os.path.normpath(target)
        if target not in taken:
            result.append(Mount("volume", target, flag="image"))
            taken.add(target)
    return result


# copy-up

def copy_up(rootfs, target, data):
    """Copy the rootfs's `target` (a directory) into the volume directory `data` if that is empty."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            source = paths.open_in_root(root_fd, target, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return
    finally:
        os.close(root_fd)
    try:
        destination = os.open(data, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.listdir(destination):
                return
            _copy_tree(source, destination, destination, "", {})
            _copy_metadata(os.fstat(source), destination, source)
        finally:
            os.close(destination)
    finally:
        os.close(source)


@contextlib.contextmanager
def _opened(name, dir_fd, flags):
    """An fd of `name` in directory fd `dir_fd`, never through a symlink; closed afterwards."""
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _copy_tree(source, destination, top, prefix, links):
    """Copy the entries of directory fd `source` into directory fd `destination` (never following symlinks)."""
    for name in sorted(os.listdir(source)):
        info = os.stat(name, dir_fd=source, follow_symlinks=False)
        relative = prefix + name
        if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
            key = (info.st_dev, info.st_ino)
            if key in links:
                # through an fd resolved inside the volume: a path could meet a symlink a container just made
                first = paths.open_in_root(top, links[key], paths.O_PATH | os.O_NOFOLLOW)
                try:
                    os.link(paths.fd_path(first), name, dst_dir_fd=destination, follow_symlinks=True)
                finally:
                    os.close(first)
                continue
            links[key] = relative
        try:
            _copy_entry(name, info, source, destination, top, relative, links)
        except FileExistsError:
            pass  # another container filled the volume at the same time


def _copy_entry(name, info, source, destination, top, relative, links):
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(name, 0o700, dir_fd=destination)
        with _opened(name, source, os.O_RDONLY | os.O_DIRECTORY) as inner_source, \
                _opened(name, destination, os.O_RDONLY | os.O_DIRECTORY) as inner:
            _copy_tree(inner_source, inner, top, relative + "/", links)
            _copy_metadata(info, inner, inner_source)
    elif stat.S_ISREG(mode):
        with _opened(name, source, os.O_RDONLY) as reader, \
                _opened(name, destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL) as writer:
            _copy_data(reader, writer, info.st_size)
            _copy_metadata(info, writer, reader)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=source), name, dir_fd=destination)
        os.chown(name, info.st_uid, info.st_gid, dir_fd=destination, follow_symlinks=False)
        os.utime(name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=destination, follow_symlinks=False)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        os.mknod(name, mode, info.st_rdev, dir_fd=destination)
        # a node is never opened for real (a fifo would block): act on its O_PATH fd's /proc path
        with _opened(name, destination, paths.O_PATH) as node:
            os.chown(paths.fd_path(node), info.st_uid, info.st_gid)
            os.chmod(paths.fd_path(node), stat.S_IMODE(mode))
            os.utime(paths.fd_path(node), ns=(info.st_atime_ns, info.st_mtime_ns))
    # sockets are not copied (as Docker's copy does not)


def _copy_data(reader, writer, size):
    copied = 0
    while copied < size:
        try:
            count = os.copy_file_range(reader, writer, size - copied)
        except OSError:
            count = 0
        if count == 0:
            chunk = os.read(reader, 1 << 20)
            if not chunk:
                return
            count = os.write(writer, chunk)
        copied += count


def _copy_metadata(info, fd, source_fd):
    """Owner, mode (after chown, which clears set-id bits), xattrs and times onto fd."""
    os.fchown(fd, info.st_uid, info.st_gid)
    os.fchmod(fd, stat.S_IMODE(info.st_mode))
    try:
        names = os.listxattr(source_fd)
    except OSError:
        names = []
    for key in names:
        try:
            os.setxattr(fd, key, os.getxattr(source_fd, key))
        except OSError:
            pass  # an attribute this filesystem does not take (trusted.*, a security module's)
    os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))


def tree_size(path):
    """Bytes of the regular files below `path` (each inode once), Docker's volume size."""
    seen, total = set(), 0
    for directory, dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def matches(volume, filters, users):
    """Docker's volume filters: dangling, name (substring), label (key or key=value), label!=, driver."""
    for key, values in filters.items():
        values = [values] if isinstance(values, str) else list(values)
        if not values:
            continue
        if key == "dangling":
            wanted = [v.lower() in ("true", "1") for v in values]
            ok = any((volume.name not in users) == w for w in wanted)
        elif key == "name":
            ok = any(v in volume.name for v in values)
        elif key == "label":
            ok = all(label_matches(volume.labels, v) for v in values)
        elif key == "label!":
            ok = not any(label_matches(volume.labels, v) for v in values)
        elif key == "driver":
            ok = volume.driver in values
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True
