"""Content-addressed blob store (containerd's local content store layout).

    <root>/image/blobs/sha256/<hex>     committed blobs, read-only, verified
    <root>/image/ingest/<sha256(key)>/  partial writes: `data`, `key`; flock-ed by
                                        the writer that owns them, resumable

A writer hashes what it writes, verifies size and digest on commit, fsyncs and
renames the data into `blobs/`; a mismatch discards the ingest.  Digests are
validated before any path is built from them.
"""

import fcntl
import os
import time

from vessel.errors import InvalidArgument, NotFound, Unavailable
from vessel.image.reference import validate_digest

__all__ = ["ContentStore", "Writer"]

_CHUNK = 1 << 20


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    """Blobs by digest under `<root>/image/`."""

    def __init__(self, root):
        self.base = os.path.join(root, "image")
        self.blobs = os.path.join(self.base, "blobs")
        self.ingest = os.path.join(self.base, "ingest")
        for directory in (os.path.join(self.blobs, "sha256"), self.ingest):
            os.makedirs(directory, mode=0o700, exist_ok=True)

    def _blob_path(self, digest):
        algorithm, _, hexpart = validate_digest(digest).partition(":")
        return os.path.join(self.blobs, algorithm, hexpart)

    def has(self, digest):
        return os.path.isfile(self._blob_path(digest))

    def path(self, digest):
        path = self._blob_path(digest)
        if not os.path.isfile(path):
            raise NotFound(f"content {digest}: not found")
        return path

    def size(self, digest):
        return os.stat(self.path(digest)).st_size

    def read(self, digest):
        with self.open(digest) as handle:
            return handle.read()

    def open(self, digest):
        try:
            return open(self._blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def writer(self, key, expected_digest=None, expected_size=None, wait=True):
        """A Writer for ingest `key`; resumes a partial ingest left by an earlier writer.

        A second writer with the same key waits for the first (or, with
        wait=False, raises Unavailable).
        """
        if expected_digest is not None:
            validate_digest(expected_digest)
        return Writer(self, key, expected_digest, expected_size, wait)

    def put(self, data, expected_digest=None):
        """Store bytes; returns their digest."""
        import hashlib  # only writers hash: reading the store (an image lookup) does not load OpenSSL

        algorithm = validate_digest(expected_digest).partition(":")[0] if expected_digest else "sha256"
        digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if expected_digest is not None and digest != expected_digest:
            raise InvalidArgument(f"digest mismatch: expected {expected_digest}, got {digest}")
        if self.has(digest):
            return digest
        with self.writer(digest, digest, len(data)) as writer:
            if writer.offset:
                writer.restart()
            writer.write(data)
            return writer.commit()

    def delete(self, digest):
        try:
            os.unlink(self._blob_path(digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def digests(self):
        for algorithm in sorted(os.listdir(self.blobs)):
            directory = os.path.join(self.blobs, algorithm)
            for name in os.listdir(directory):
                digest = f"{algorithm}:{name}"
                try:
                    validate_digest(digest)
                except InvalidArgument:
                    continue
                yield digest

    def gc(self, keep, grace_seconds=0):
        """Delete blobs not in `keep` and stale unlocked ingests; returns (count, bytes freed).

        Blobs younger than `grace_seconds` survive, so a pull that has written
        blobs but not yet registered its image is not robbed.
        """
        keep = set(keep)
        cutoff = time.time() - grace_seconds
        count = freed = 0
        for digest in list(self.digests()):
            if digest in keep:
                continue
            path = self._blob_path(digest)
            try:
                info = os.stat(path)
                if info.st_mtime > cutoff:
                    continue
                os.unlink(path)
            except FileNotFoundError:
                continue
            count += 1
            freed += info.st_blocks * 512
        for name in os.listdir(self.ingest):
            freed += self._remove_stale_ingest(os.path.join(self.ingest, name), cutoff)
        return count, freed

    @staticmethod
    def _remove_stale_ingest(directory, cutoff):
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return 0
        try:
            names = os.listdir(directory)
            newest = max([os.stat(os.path.join(directory, n)).st_mtime for n in names] + [0])
            if newest > cutoff:
                return 0
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return 0
        try:
            import shutil

            size = sum(os.stat(os.path.join(directory, n)).st_blocks * 512 for n in names)
            shutil.rmtree(directory, ignore_errors=True)
            return size
        finally:
            os.close(fd)


class Writer:
    """An exclusive, resumable ingest: write(), then commit() or abort()."""

    def __init__(self, store, key, expected_digest, expected_size, wait):
        import hashlib

        self.store = store
        self.key = key
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self.directory = os.path.join(store.ingest, hashlib.sha256(key.encode()).hexdigest())
        self._lock_fd = self._lock(wait)
        self._done = False
        data_path = os.path.join(self.directory, "data")
        try:
            self._fd = os.open(data_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._hash = hashlib.new((expected_digest or "sha256").partition(":")[0])
        self.offset = 0
        self._resume()
        if expected_size is not None and self.offset > expected_size:
            self.restart()  # a stale ingest longer than this blob: start over

    def _lock(self, wait):
        """flock the ingest directory; retry if it was removed while waiting."""
        while True:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                same = os.path.samestat(os.fstat(fd), os.stat(self.directory))
            except BlockingIOError:
                os.close(fd)
                raise Unavailable(f"ingest {self.key}: locked by another writer") from None
            except FileNotFoundError:
                same = False
            if same:
                key_path = os.path.join(self.directory, "key")
                if not os.path.exists(key_path):
                    with open(key_path, "w") as handle:
                        handle.write(self.key)
                return fd
            os.close(fd)

    def _resume(self):
        """Re-hash the bytes a previous writer left, so writing can continue."""
        while True:
            chunk = os.read(self._fd, _CHUNK)
            if not chunk:
                break
            self._hash.update(chunk)
            self.offset += len(chunk)

    def restart(self):
        """Throw away resumed bytes and start from offset 0."""
        import hashlib

        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = hashlib.new(self._hash.name)
        self.offset = 0

    def write(self, data):
        view = memoryview(data)
        self._hash.update(view)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self.offset += written
        if self.expected_size is not None and self.offset > self.expected_size:
            self.abort()
            raise InvalidArgument(
                f"content {self.key}: more data than the expected {self.expected_size} bytes")

    @property
    def digest(self):
        return f"{self._hash.name}:{self._hash.hexdigest()}"

    def commit(self):
        """Verify, fsync and move into blobs/; returns the digest."""
        digest = self.digest
        if self.expected_size is not None and self.offset != self.expected_size:
            self.abort()
            raise InvalidArgument(
                f"content {self.key}: size mismatch: got {self.offset} bytes, expected {self.expected_size}")
        if self.expected_digest is not None and digest != self.expected_digest:
            self.abort()
            raise InvalidArgument(f"digest mismatch: expected {self.expected_digest}, got {digest}")
        target = self.store._blob_path(digest)
        os.fsync(self._fd)
        os.fchmod(self._fd, 0o444)
        os.rename(os.path.join(self.directory, "data"), target)
        _fsync_dir(os.path.dirname(target))
        self._finish(remove=True)
        return digest

    def abort(self):
        """Discard the ingest."""
        if not self._done:
            self._finish(remove=True)

    def close(self):
        """Release the ingest, keeping its bytes for a later writer to resume."""
        if not self._done:
            self._finish(remove=False)

    def _finish(self, remove=True):
        self._done = True
        os.close(self._fd)
        if remove:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)
        os.close(self._lock_fd)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
