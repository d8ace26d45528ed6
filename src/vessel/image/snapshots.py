"""Snapshots: each layer unpacked once, shared by chain id; containers get mounts.

containerd's model: a snapshotter *returns* mounts and never mounts them
(the runtime consumes the descriptions).  Layout under <root>/image/snapshots/:

    driver                    "overlay" or "copy", fixed when the directory is created
    committed/<chain hex>/    fs/ (one layer, overlay whiteouts) + info.json
    active/<key>/             fs/ (upper or full copy) + work/ + info.json
    staging/                  half-made snapshots; renamed into place when whole

The "copy" driver is the fallback where overlayfs cannot be mounted: every
committed snapshot holds the full merged tree (parent copied, layer applied
with deleting whiteouts) and prepare() copies it into a bind-mounted dir.
"""

import fcntl
import json
import os
import re
import time

from vessel.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Unavailable, Unsupported
from vessel.image.reference import validate_digest
from vessel.runtime import linux
from vessel.runtime.spec import Mount

__all__ = ["Snapshotter", "chain_ids"]

OVERLAY = "overlay"
COPY = "copy"
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MOUNT_DATA_MAX = 4000  # the kernel copies at most one page of mount options


def chain_ids(diff_ids):
    """OCI chain ids: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    import hashlib  # here only: an image lookup reads the chain ids the store recorded

    chains = []
    for diff_id in diff_ids:
        if chains:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
        else:
            chains.append(diff_id)
    return chains


def _write_json(path, value):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)


def _usage(path):
    """(bytes on disk, inodes) under path, counting hard links once."""
    seen = set()
    size = inodes = 0
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            size += info.st_blocks * 512
            inodes += 1
    return size, inodes


def _rmtree(path, ignore_errors=False):
    import shutil  # here: it pulls in bz2 and lzma, ~2 ms of every `run` otherwise

    shutil.rmtree(path, ignore_errors=ignore_errors)


def _new_dir(parent, prefix):
    """A new private directory in `parent` (what tempfile.mkdtemp makes, without its imports on run's path)."""
    while True:
        path = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def _overlay_works(scratch):
    """Mount a throwaway overlay in `scratch` to learn whether this host can."""
    base = _new_dir(scratch, "probe-")
    try:
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(base, name))
        options = f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
        try:
            linux.mount("overlay", f"{base}/merged", "overlay", 0, options)
        except OSError:
            return False
        linux.umount2(f"{base}/merged", linux.MNT_DETACH)
        return True
    finally:
        _rmtree(base, ignore_errors=True)


def _copy_tree(source, target):
    """Copy a tree keeping owners, modes, times, xattrs, links and devices (reflinks if possible)."""
    import subprocess

    result = subprocess.run(["cp", "-a", "--reflink=auto", f"{source}/.", target],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise Unavailable(f"copying snapshot: {result.stderr.strip()}")


class Snapshotter:
    """Committed layer snapshots by chain id, active snapshots by key."""

    def __init__(self, root, driver=None):
        self.base = os.path.join(root, "image", "snapshots")
        self.committed_dir = os.path.join(self.base, "committed")
        self.active_dir = os.path.join(self.base, "active")
        self.staging = os.path.join(self.base, "staging")
        for directory in (self.committed_dir, self.active_dir, self.staging):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self.driver = self._driver(driver)

    def _driver(self, wanted):
        path = os.path.join(self.base, "driver")
        try:
            with open(path) as handle:
                existing = handle.read().strip()
        except FileNotFoundError:
            existing = None
        if existing and wanted and existing != wanted:
            raise Conflict(f"snapshots in {self.base} use the {existing} driver, not {wanted}")
        if existing:
            return existing
        if wanted not in (None, OVERLAY, COPY):
            raise InvalidArgument(f"unknown snapshot driver {wanted!r} (overlay or copy)")
        driver = wanted or (OVERLAY if _overlay_works(self.staging) else COPY)
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as handle:
            handle.write(driver)
        os.rename(tmp, path)
        return driver

    # committed snapshots

    def _committed_path(self, chain_id):
        return os.path.join(self.committed_dir, validate_digest(chain_id).partition(":")[2])

    def exists(self, chain_id):
        return os.path.isdir(self._committed_path(chain_id))

    def info(self, chain_id):
        try:
            with open(os.path.join(self._committed_path(chain_id), "info.json")) as handle:
                return json.load(handle)
        except FileNotFoundError:
            raise NotFound(f"snapshot {chain_id}: not found") from None

    def lowers(self, chain_id):
        """fs directories of `chain_id` and its parents, top first."""
        dirs = []
        while chain_id is not None:
            dirs.append(os.path.join(self._committed_path(chain_id), "fs"))
            chain_id = self.info(chain_id)["parent"]
        return dirs

    def commit_layer(self, chain_id, parent, layer, diff_id):
        """Unpack `layer` (path or file object) as snapshot `chain_id` on `parent`, once.

        Concurrent callers for the same chain id wait for the first (flock on
        a lock file next to the snapshot); the snapshot appears only when
        whole.  Returns its info dict.
        """
        target = self._committed_path(chain_id)
        lock_path = f"{target}.lock"
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if os.path.isdir(target):
                return self.info(chain_id)
            if parent is not None and not self.exists(parent):
                raise NotFound(f"parent snapshot {parent}: not found")
            return self._unpack(target, chain_id, parent, layer, diff_id)
        finally:
            try:
                if os.path.samestat(os.fstat(lock_fd), os.stat(lock_path)):
                    os.unlink(lock_path)
            except FileNotFoundError:
                pass
            os.close(lock_fd)

    def _unpack(self, target, chain_id, parent, layer, diff_id):
        from vessel.image.unpack import apply_layer

        stage = _new_dir(self.staging, "commit-")
        try:
            fs = os.path.join(stage, "fs")
            os.mkdir(fs, 0o755)
            if self.driver == OVERLAY:
                lowers = self.lowers(parent) if parent else []
                result = apply_layer(layer, fs, overlay=True, lowers=lowers, expected_diff_id=diff_id)
            else:
                if parent:
                    _copy_tree(os.path.join(self._committed_path(parent), "fs"), fs)
                result = apply_layer(layer, fs, overlay=False, expected_diff_id=diff_id)
            info = {"chain_id": chain_id, "parent": parent, "diff_id": result.diff_id,
                    "size": result.content_size, "tar_size": result.tar_size}
            _write_json(os.path.join(stage, "info.json"), info)
            try:
                os.rename(stage, target)
            except OSError:
                if not os.path.isdir(target):
                    raise
                _rmtree(stage)  # a writer that lost our lock file's race got there first
                return self.info(chain_id)
        except BaseException:
            _rmtree(stage, ignore_errors=True)
            raise
        return info

    def committed(self):
        """Chain ids of all committed snapshots."""
        return ["sha256:" + name for name in os.listdir(self.committed_dir)
                if len(name) == 64 and os.path.isdir(os.path.join(self.committed_dir, name))]

    def remove_committed(self, chain_id):
        """Remove a committed snapshot; Conflict while a snapshot is built on it."""
        target = self._committed_path(chain_id)
        if not os.path.isdir(target):
            raise NotFound(f"snapshot {chain_id}: not found")
        children = [c for c in self.committed() if self.info(c)["parent"] == chain_id]
        children += [k for k in self.active() if self.active_info(k)["parent"] == chain_id]
        if children:
            raise Conflict(f"snapshot {chain_id} is the parent of {children[0]}")
        self._discard(target)

    def _discard(self, path):
        """Rename away first so a crash never leaves a half-deleted snapshot visible."""
        doomed = _new_dir(self.staging, "remove-")
        os.rename(path, os.path.join(doomed, "x"))
        _rmtree(doomed)

    def gc(self, keep, grace_seconds=0):
        """Remove committed snapshots not in `keep` nor under an active one; (count, bytes freed).

        Snapshots committed less than `grace_seconds` ago survive: an image
        being registered right now has not recorded them yet.
        """
        cutoff = time.time() - grace_seconds
        needed = set(keep)
        for key in self.active():
            parent = self.active_info(key)["parent"]
            while parent and parent not in needed:
                needed.add(parent)
                parent = self.info(parent)["parent"]
        for chain_id in list(needed):
            parent = self.info(chain_id)["parent"] if self.exists(chain_id) else None
            while parent and parent not in needed:
                needed.add(parent)
                parent = self.info(parent)["parent"]
        count = freed = 0
        doomed = [c for c in self.committed() if c not in needed
                  and os.stat(os.path.join(self._committed_path(c), "info.json")).st_mtime <= cutoff]
        for chain_id in doomed:
            path = self._committed_path(chain_id)
            freed += _usage(path)[0]
            self._discard(path)
            count += 1
        for name in os.listdir(self.staging):
            path = os.path.join(self.staging, name)
            if os.stat(path).st_mtime <= cutoff:
                _rmtree(path, ignore_errors=True)
        return count, freed

    # active snapshots

    def _active_path(self, key):
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise InvalidArgument(f"invalid snapshot key {key!r}")
        return os.path.join(self.active_dir, key)

    def active(self):
        return sorted(os.listdir(self.active_dir))

    def active_info(self, key):
        try:
            with open(os.path.join(self._active_path(key), "info.json")) as handle:
                return json.load(handle)
        except FileNotFoundError:
            raise NotFound(f"snapshot {key}: not found") from None

    def prepare(self, key, parent=None, readonly=False):
        """Create active snapshot `key` on committed `parent`; returns its mounts."""
        target = self._active_path(key)
        if os.path.exists(target):
            raise AlreadyExists(f"snapshot {key}: already exists")
        if parent is not None and not self.exists(parent):
            raise NotFound(f"parent snapshot {parent}: not found")
        stage = _new_dir(self.staging, "prepare-")
        try:
            os.mkdir(os.path.join(stage, "fs"), 0o755)
            os.mkdir(os.path.join(stage, "work"), 0o700)
            if self.driver == COPY and parent is not None:
                _copy_tree(os.path.join(self._committed_path(parent), "fs"), os.path.join(stage, "fs"))
            _write_json(os.path.join(stage, "info.json"), {"key": key, "parent": parent, "readonly": readonly})
            try:
                os.rename(stage, target)
            except OSError:
                raise AlreadyExists(f"snapshot {key}: already exists") from None
        except BaseException:
            _rmtree(stage, ignore_errors=True)
            raise
        return self.mounts(key)

    def mounts(self, key):
        """The mounts that assemble active snapshot `key` (to be mounted by the runtime)."""
        info = self.active_info(key)
        path = self._active_path(key)
        upper, work = os.path.join(path, "fs"), os.path.join(path, "work")
        mode = "ro" if info["readonly"] else "rw"
        if self.driver == COPY or info["parent"] is None:
            return [Mount(type="bind", source=upper, options=["rbind", mode])]
        lowers = self.lowers(info["parent"])
        if any(c in self.base for c in ",:="):
            raise Unsupported(f"state directory {self.base} contains ',', ':' or '=', "
                              "which overlay mount options cannot carry")
        if info["readonly"]:
            if len(lowers) == 1:
                return [Mount(type="bind", source=lowers[0], options=["rbind", "ro"])]
            options = [f"lowerdir={':'.join(lowers)}"]
        else:
            options = [f"workdir={work}", f"upperdir={upper}", f"lowerdir={':'.join(lowers)}"]
        if os.path.exists("/sys/module/overlay/parameters/index"):
            options.append("index=off")
        if len(",".join(options)) > _MOUNT_DATA_MAX:
            raise Unsupported(f"image has too many layers ({len(lowers)}) for one overlay mount")
        return [Mount(type="overlay", source="overlay", options=options)]

    def remove(self, key):
        """Remove active snapshot `key` (it must not be mounted)."""
        path = self._active_path(key)
        if not os.path.isdir(path):
            raise NotFound(f"snapshot {key}: not found")
        self._discard(path)

    def usage(self, key_or_chain_id):
        """(bytes, inodes) used by one snapshot's own directory."""
        if key_or_chain_id.startswith("sha256:"):
            path = self._committed_path(key_or_chain_id)
        else:
            path = self._active_path(key_or_chain_id)
        if not os.path.isdir(path):
            raise NotFound(f"snapshot {key_or_chain_id}: not found")
        return _usage(os.path.join(path, "fs"))
