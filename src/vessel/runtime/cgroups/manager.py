"""What both cgroup versions share: file access with clear errors, pids, kill, destroy."""

import errno
import os
import time

from vessel.errors import (Conflict, InvalidArgument, NotFound, PermissionDenied, Unavailable,
                           Unsupported)

__all__ = ["Manager", "cgroup_error", "read_file", "read_int", "remove_dirs", "wait_until", "write_file"]

SIGKILL = 9
_WAIT_SECONDS = 5.0


def cgroup_error(exc, path, action):
    """Turn an OSError into a one-line vessel error: "cgroup: cannot <action> <path>: <reason>"."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    message = f"cgroup: cannot {action} {path}: {reason}"
    if exc.errno == errno.ENOENT:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            return NotFound(f"cgroup {directory} does not exist")
        return Unsupported(f"cgroup: {path} does not exist "
                           "(the controller is not available here or not enabled for this cgroup)")
    if exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
        return PermissionDenied(message)
    if exc.errno == errno.EBUSY:
        return Conflict(message)
    if exc.errno == errno.ESRCH:
        return NotFound(message)
    if exc.errno in (errno.EINVAL, errno.ERANGE, errno.EOPNOTSUPP):
        return InvalidArgument(message)
    return Unavailable(message)


def write_file(directory, name, value):
    path = f"{directory}/{name}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise cgroup_error(exc, path, f"write {value!r} to") from None


def read_file(directory, name, default=None):
    """The file's text without the trailing newline; `default` if it does not exist."""
    path = f"{directory}/{name}"
    try:
        with open(path) as f:
            return f.read().rstrip("\n")
    except FileNotFoundError:
        if default is not None:
            return default
        raise cgroup_error(OSError(errno.ENOENT, "missing"), path, "read") from None
    except OSError as exc:
        raise cgroup_error(exc, path, "read") from None


def read_int(directory, name, default=None):
    """An integer file; "max" reads as -1."""
    text = read_file(directory, name, None if default is None else "")
    if text == "":
        return default
    return -1 if text == "max" else int(text)


def remove_dirs(directories):
    """Undo mkdirs (given in creation order); best effort, the caller is already failing."""
    for directory in reversed(directories):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def _procs_below(directory):
    pids = []
    for current, _dirs, files in os.walk(directory):
        if "cgroup.procs" not in files:
            continue
        try:
            with open(f"{current}/cgroup.procs") as f:
                pids.extend(int(line) for line in f.read().split())
        except FileNotFoundError:  # removed while walking
            continue
    return pids


def _rmdir_tree(directory):
    """Remove a cgroup and everything below it, deepest first, waiting for exiting tasks."""
    for current, _dirs, _files in os.walk(directory, topdown=False):
        deadline = time.monotonic() + _WAIT_SECONDS
        delay = 0.001
        while True:
            try:
                os.rmdir(current)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise cgroup_error(exc, current, "remove") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)


def wait_until(check):
    """Poll `check()` with growing pauses for a few seconds; whether it became true."""
    deadline = time.monotonic() + _WAIT_SECONDS
    delay = 0.0005
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


class Manager:
    """One container's cgroup; V1Manager and V2Manager fill in the version-specific parts."""

    __slots__ = ()
    mode = None

    def directories(self):
        """The container's directory in every joined hierarchy, without repeats."""
        raise NotImplementedError

    def create(self):
        """mkdir the cgroup (and missing parents) everywhere; fine if it exists; undone on failure."""
        raise NotImplementedError

    def apply(self, resources):
        """Write the limits given in `resources` (a Resources); what is absent is left alone."""
        raise NotImplementedError

    def stats(self):
        """Usage shaped like the "data" of `runc events --stats`."""
        raise NotImplementedError

    def mounts(self):
        """[(name, host_dir, options, symlinks)] for the container's /sys/fs/cgroup (see subclasses)."""
        raise NotImplementedError

    def to_state(self):
        """A JSON-serialisable description; `Manager.from_state` turns it back into a manager."""
        raise NotImplementedError

    def _procs_directory(self):
        """The directory whose subtree lists every process of the container."""
        return self.directories()[0]

    def procs_fd_paths(self):
        """Every cgroup.procs file of the container (the init opens them before pivot_root)."""
        return [f"{d}/cgroup.procs" for d in self.directories()]

    def join_plan(self):
        """How a new process can enter this cgroup without a costly migration.

        (cgroup2 directory for clone3's CLONE_INTO_CGROUP or None, v1 `tasks`
        files the process writes "0" into itself). Moving oneself through
        `tasks` skips the global threadgroup lock whose write side waits for an
        RCU grace period (about 10 ms), which a write of another pid to
        cgroup.procs pays.
        """
        raise NotImplementedError

    def add(self, pid):
        """Move `pid` into the container's cgroup in every hierarchy."""
        for directory in self.directories():
            write_file(directory, "cgroup.procs", str(pid))

    def pids(self):
        """Every process in the container's cgroup and below."""
        return _procs_below(self._procs_directory())

    def freeze(self):
        raise NotImplementedError

    def thaw(self):
        raise NotImplementedError

    def is_frozen(self):
        raise NotImplementedError

    def _kill_file(self):
        """Directory with a usable cgroup.kill, or None."""
        return None

    def kill_all(self, sig):
        """Send `sig` to every process, frozen meanwhile so that none can fork away.

        SIGKILL goes through cgroup.kill where there is one. A cgroup that was
        paused stays paused, except for SIGKILL: frozen tasks only die once thawed.
        """
        try:
            was_frozen = self.is_frozen()
        except Unsupported:  # no freezer at all: signal as they are
            was_frozen = None
        kill_dir = self._kill_file() if sig == SIGKILL and not was_frozen else None
        if kill_dir is not None:
            write_file(kill_dir, "cgroup.kill", "1")
            if wait_until(lambda: not self.pids()):
                return
        elif not self.pids():
            return
        if was_frozen is False:
            self.freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if was_frozen is False or (was_frozen and sig == SIGKILL):
                self.thaw()

    def destroy(self):
        """rmdir the cgroup and anything below it, deepest first; missing directories are fine."""
        for directory in self.directories():
            _rmdir_tree(directory)

    @classmethod
    def from_state(cls, data):
        """The manager `to_state()` described."""
        mode = data.get("mode") if isinstance(data, dict) else None
        if mode == "v2":
            from vessel.runtime.cgroups.v2 import V2Manager as kind
        elif mode == "v1":
            from vessel.runtime.cgroups.v1 import V1Manager as kind
        else:
            raise InvalidArgument(f"cgroup state: unknown mode {mode!r}")
        try:
            return kind.from_state(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidArgument(f"cgroup state: malformed {mode} description ({exc!r})") from None
