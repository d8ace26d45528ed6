"""Apply an image layer (a tar stream, maybe compressed) to a directory.

Hand-written tar reader: `tarfile` parses every header into a TarInfo through
several Python layers and cannot hash the exact stream it reads; this reader
slices headers out of one buffer and hashes each decompressed chunk as it
arrives, so the diff_id is known when the last entry is written.  Measured on
a 20 000-file layer: tarfile's stream mode needs 0.71 s just to parse and
read it, this reader 0.15 s including sha256.

Where the time goes (bench/unpack.py): GNU tar spends it all in the kernel,
creating files; the same system calls cost us as much, plus the Python around
them.  What helps: a reader thread decompresses (big chunks, through
python-isal's zlib-compatible inflater when it is installed: Intel ISA-L
inflates 2.2x as fast as zlib, and gzip is where most of a pull's time goes;
zlib otherwise) and hashes a compressed layer; the fds of directories this layer made are
kept, so their files need no openat2 of the full path; header checksums are
summed with adler32 over the two halves of the block (each half's byte sum is
below adler32's modulus, so the sum is exact) instead of sum() per byte.
The native helper (_filewriter.c, built at install time; optional) parses
runs of plain ustar headers, and, when the target starts empty, makes the
regular files on two writer threads, a batch at a time with the GIL released,
while this thread does everything else; the first writer also hashes an
uncompressed layer.  The common case, a plain regular file with a clean name
in a directory this layer made, is queued for the writers straight from its
header (take_files: the checks of _Applier._hand_over, against the applier's
own sets), so no Entry or Python call is made for it; every other entry, and
every decision that is not that common case, stays here.  Without the
helper every header is parsed and every file made here.  Tried and slower: Python writing
files on two threads (each system call gives the GIL up and has to win it
back), the reader thread for an uncompressed layer, and a forked second
process applying half of the entries (both processes together spent more
CPU than one, ~0.68 s against ~0.5 s, so a loaded machine lost by it).

Every path is resolved inside the target, never outside it: entry names are
cleaned lexically (`../x` is `/x` of the root), parent directories are opened
with openat2(RESOLVE_IN_ROOT) so symlinks resolve as if the target were `/`,
and the last component is always created or removed with *at calls that do not
follow it.  This is containerd's `applyNaive` semantics (pkg/archive/tar.go).

Two whiteout styles:
  overlay=True   the layer goes into its own directory, whiteouts become
                 overlayfs whiteouts (0:0 char devices, trusted.overlay.opaque)
  overlay=False  the layer is applied on top of its parents' files and
                 whiteouts delete (the copying snapshotter)
"""

import errno
import hashlib
import os
import queue
import stat
import struct
import threading
import zlib

from vessel.errors import InvalidArgument, Unavailable, Unsupported
from vessel.runtime import linux

__all__ = ["LayerResult", "apply_layer", "decompressed", "detect_compression"]

try:
    from isal import isal_zlib as _inflate
except ImportError:  # no wheel for this platform: the standard library's zlib does the same, slower
    _inflate = zlib

try:
    from vessel.image._filewriter import (scan_headers as _scan_headers, take_files as _take_files,
                                          write_files as _write_files)
except ImportError:  # not built (no compiler at install time): all of it is done in Python
    _scan_headers = _take_files = _write_files = None

_CHUNK = 1 << 20
_READ_AHEAD = 4  # chunks the reader thread may be ahead
_MAX_CACHED_DIRS = 512
_WRITER_BATCH = 1024  # files per call of the native writer (each call takes the GIL twice)
_WRITER_BATCHES = 4  # batches handed over and not yet written
_WRITER_THREADS = 2
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_EXTENSION = 1 << 20  # pax and GNU long-name headers; real ones are tiny
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_WHITEOUT = b".wh."
_OPAQUE = b".wh..wh..opq"
_REGULAR = (b"0", b"\0", b"7")
_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_RESOLVE = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_INVALID_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EEXIST, errno.EISDIR,
                   errno.EXDEV, errno.EINVAL, errno.ENAMETOOLONG, errno.EPERM, errno.EMLINK}


class LayerResult:
    """What applying a layer found: its diff_id, stream size, file bytes, entry count."""

    __slots__ = ("diff_id", "tar_size", "content_size", "entries")

    def __init__(self, diff_id, tar_size, content_size, entries):
        self.diff_id = diff_id
        self.tar_size = tar_size
        self.content_size = content_size
        self.entries = entries


# -- decompression ----------------------------------------------------------

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"),
          (b"\xfd7zXZ\x00", "xz"))


def detect_compression(head):
    """'gzip', 'zstd', 'bzip2', 'xz' or None (uncompressed) from the first bytes."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class _Prefixed:
    """A file object whose first bytes were already read to sniff the format."""

    def __init__(self, head, fileobj):
        self._head = head
        self._file = fileobj

    def read(self, size=-1):
        if self._head:
            if size < 0:
                data, self._head = self._head + self._file.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._file.read(size)

    def readable(self):
        return True


class _Gunzip:
    """gzip (one or more members) with an inflater directly: big chunks, no GzipFile layers."""

    def __init__(self, source):
        self._source = source
        self._inflater = None  # None between members
        self._input = b""

    def read(self, size):
        while True:
            if not self._input:
                self._input = self._source.read(_CHUNK)
                if not self._input:
                    if self._inflater is None:
                        return b""
                    data = self._inflater.decompress(b"", size)  # ISA-L may hold output of input it took
                    if data:
                        return data
                    raise EOFError("compressed stream ended before the end-of-stream marker")
            if self._inflater is None:
                self._input = self._input.lstrip(b"\0")  # padding after a member
                if not self._input:
                    continue
                if len(self._input) < 2:  # the next member's magic may straddle two reads
                    more = self._source.read(_CHUNK)
                    if more:
                        self._input += more
                        continue
                if not self._input.startswith(b"\x1f\x8b"):
                    raise OSError("trailing garbage after the gzip stream")
                self._inflater = _inflate.decompressobj(31)
            data = self._inflater.decompress(self._input, size)
            self._input = self._inflater.unconsumed_tail
            if self._inflater.eof:  # what follows the member (zlib may leave a copy of it in unconsumed_tail too)
                self._input = self._inflater.unused_data
                self._inflater = None
            if data:
                return data


class _Decompressed:
    """read(n) over the decompressed bytes; corrupt or truncated input -> InvalidArgument."""

    def __init__(self, fileobj):
        head = fileobj.read(6)
        self.compression = detect_compression(head)
        source = _Prefixed(head, fileobj)
        self._errors = (OSError, EOFError, zlib.error, _inflate.error)
        if self.compression == "gzip":
            self._stream = _Gunzip(source)
        elif self.compression == "zstd":
            import zstandard
            self._stream = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
            self._errors += (zstandard.ZstdError,)
        elif self.compression == "bzip2":
            import bz2
            self._stream = bz2.BZ2File(source)
        elif self.compression == "xz":
            import lzma
            self._stream = lzma.LZMAFile(source)
            self._errors += (lzma.LZMAError,)
        else:
            self._stream = source

    def read(self, size):
        try:
            return self._stream.read(size)
        except self._errors as exc:
            raise InvalidArgument(f"corrupt {self.compression or 'layer'} stream: {exc}") from None


def decompressed(fileobj):
    """A reader of the uncompressed bytes of `fileobj` (gzip, zstd, bzip2, xz or plain)."""
    return _Decompressed(fileobj)


# -- tar reading --------------------------------------------------------------

class _Reader:
    """Reads, decompresses and hashes a compressed layer on its own thread, chunks ahead.

    zlib, sha256 and file reads release the GIL, so this work overlaps with
    parsing and writing files on the main thread.
    """

    def __init__(self, read):
        self.hash = hashlib.sha256()
        self.total = 0
        self._ready = []  # chunks (or an exception) handed over, oldest first
        self._cond = threading.Condition()
        self._stopped = False
        self._finished = None  # b"" at end of stream, or the exception that ended it
        self._thread = threading.Thread(target=self._run, args=(read,), name="layer-reader", daemon=True)
        self._thread.start()

    def _run(self, read):
        try:
            while True:
                chunk = read(_CHUNK)
                if chunk:
                    self.hash.update(chunk)
                    self.total += len(chunk)
                if not self._hand_over(chunk) or not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - raised again on the main thread
            self._hand_over(exc)

    def _hand_over(self, item):
        with self._cond:
            while len(self._ready) >= _READ_AHEAD and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return False
            self._ready.append(item)
            self._cond.notify_all()
            return True

    def read(self):
        """The next chunk; b"" at the end of the stream."""
        if self._finished is not None:
            if isinstance(self._finished, BaseException):
                raise self._finished
            return b""
        with self._cond:
            while not self._ready:
                self._cond.wait()
            item = self._ready.pop(0)
            self._cond.notify_all()
        if isinstance(item, BaseException) or not item:
            self._finished = item
            if item:
                raise item
        return item

    def close(self):
        """Stop the thread (it ends after its current read) and wait for it."""
        with self._cond:
            self._stopped = True
            self._ready.clear()
            self._cond.notify_all()
        self._thread.join()


class _InlineReader:
    """_Reader's interface without the thread: for uncompressed layers, where reading and
    hashing are too little work to be worth handing over between threads (measured)."""

    def __init__(self, read):
        self._read = read
        self.hash = hashlib.sha256()
        self.update = self.hash.update  # a _FileWriter's thread takes this over when there is one
        self.total = 0

    def read(self):
        chunk = self._read(_CHUNK)
        self.update(chunk)
        self.total += len(chunk)
        return chunk

    def close(self):
        pass


class _Buffer:
    """Buffers the uncompressed stream handed over by a _Reader."""

    def __init__(self, read):
        self._read = read
        self._buf = b""
        self._pos = 0

    def _fill(self, need):
        while len(self._buf) - self._pos < need:
            chunk = self._read()
            if not chunk:
                return False
            self._buf = self._buf[self._pos:] + chunk
            self._pos = 0
        return True

    def take(self, size):
        """Exactly `size` bytes (a memoryview) or None at end of stream."""
        if len(self._buf) - self._pos < size and not self._fill(size):
            return None
        start = self._pos
        self._pos += size
        return memoryview(self._buf)[start:self._pos]

    def pieces(self, size):
        """Yield `size` bytes in pieces of at most one buffer."""
        while size:
            if self._pos >= len(self._buf) and not self._fill(1):
                raise InvalidArgument("truncated tar archive: file data cut short")
            start = self._pos
            end = min(len(self._buf), start + size)
            self._pos = end
            size -= end - start
            yield memoryview(self._buf)[start:end]

    def skip(self, size):
        if len(self._buf) - self._pos >= size:
            self._pos += size
            return
        for _ in self.pieces(size):
            pass

    def drain(self):
        self._pos = len(self._buf)
        while self._fill(1):
            self._pos = len(self._buf)


class Entry:
    """One tar member after pax/GNU extension headers are folded in."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime", "atime", "linkname",
                 "devmajor", "devminor", "xattrs")


def _number(field):
    """A tar numeric field: octal text, or GNU base-256 when the high bit is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field, "big", signed=False) & ~(0x80 << (8 * (len(field) - 1)))
        return -value if field[0] & 0x40 else value
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        pass
    try:
        return int(field.partition(b"\0")[0].strip(b" ") or b"0", 8)
    except ValueError:
        raise InvalidArgument(f"invalid tar header: bad number {bytes(field)!r}") from None


class _NumberCache(dict):
    """numbers[field] -> _number(field), remembered: modes, owners and times repeat."""

    __slots__ = ()

    def __missing__(self, field):
        if len(self) >= 4096:
            self.clear()
        value = self[field] = _number(field)
        return value


def _nul_terminated(field):
    return bytes(field).partition(b"\0")[0]


def _time_ns(text):
    negative = text.startswith(b"-")
    whole, _, frac = text.lstrip(b"-").partition(b".")
    try:
        value = int(whole or b"0") * 1_000_000_000 + int((frac[:9] or b"0").ljust(9, b"0"))
    except ValueError:
        raise InvalidArgument(f"invalid pax time {text!r}") from None
    return -value if negative else value


def _parse_pax(data):
    records = {}
    data = bytes(data)
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidArgument("invalid pax header: bad record length") from None
        if space < 0 or length <= 0 or pos + length > len(data):
            raise InvalidArgument("invalid pax header: bad record length")
        record = data[space + 1:pos + length]
        if not record.endswith(b"\n") or b"=" not in record:
            raise InvalidArgument("invalid pax header: malformed record")
        key, _, value = record[:-1].partition(b"=")
        records[key] = value
        pos += length
    return records


def _read_entries(buf, take_files=None):
    """Yield Entry objects; the caller consumes regular-file data with buf.pieces(size).

    `take_files(data, pos)`, if given, consumes the plain entries it handles itself from
    `pos` in buffer `data` on and returns where it stopped; only the next one is parsed here.
    """
    global_pax = {}
    pax = {}
    long_name = long_link = None
    numbers = _NumberCache()
    adler32 = zlib.adler32
    scan = _scan_headers
    while True:
        if scan is not None and not (global_pax or pax) and long_name is None and long_link is None:
            if take_files is not None:
                buf._pos = take_files(buf._buf, buf._pos)
                scanned = scan(buf._buf, buf._pos, Entry, 1)  # one entry the long way, then take again
            else:
                scanned = scan(buf._buf, buf._pos, Entry)  # the plain headers in the buffer, natively
            for entry, start, end in scanned:
                buf._pos = start
                yield entry  # its data is in the buffer: taking it does not refill
                buf._pos = end
            if scanned:
                continue
        header = buf.take(_BLOCK)
        if header is None:
            raise InvalidArgument("truncated tar archive: missing end-of-archive marker")
        if header == _ZERO_BLOCK:
            return
        (name, mode, uid, gid, size, mtime, checksum, typeflag, linkname, magic, _version,
         _uname, _gname, devmajor, devminor, prefix) = _HEADER.unpack(header)
        try:
            stored = _number(checksum)
        except InvalidArgument:
            stored = None
        # the byte sum of each half fits below adler32's modulus, so this is exact
        if stored != ((adler32(header[:256]) & 0xFFFF) + (adler32(header[256:]) & 0xFFFF) - 2
                      - sum(checksum) + 256):
            raise InvalidArgument("invalid tar header: checksum mismatch (not a tar archive, or corrupt)")
        size = _number(size)
        if size < 0:
            raise InvalidArgument("invalid tar header: negative size")
        padded = -size % _BLOCK
        if typeflag in b"xgLK":
            if size > _MAX_EXTENSION:
                raise InvalidArgument(f"invalid tar archive: {size}-byte extension header")
            data = bytearray()
            for piece in buf.pieces(size):
                data += piece
            buf.skip(padded)
            if typeflag == b"x":
                pax.update(_parse_pax(data))
            elif typeflag == b"g":
                global_pax.update(_parse_pax(data))
            elif typeflag == b"L":
                long_name = _nul_terminated(data)
            else:
                long_link = _nul_terminated(data)
            continue
        entry = Entry()
        name = name.partition(b"\0")[0]
        if magic == b"ustar\x00" and prefix[0]:
            name = prefix.partition(b"\0")[0] + b"/" + name
        records = {**global_pax, **pax} if global_pax else pax
        entry.mode = numbers[mode] & 0o7777
        if records:
            entry.name = records.get(b"path") or long_name or name
            entry.linkname = records.get(b"linkpath") or long_link or linkname.partition(b"\0")[0]
            entry.uid = int(records[b"uid"]) if b"uid" in records else numbers[uid]
            entry.gid = int(records[b"gid"]) if b"gid" in records else numbers[gid]
            entry.mtime = _time_ns(records[b"mtime"]) if b"mtime" in records else numbers[mtime] * 1_000_000_000
            entry.atime = _time_ns(records[b"atime"]) if b"atime" in records else entry.mtime
            if b"size" in records:
                size = int(records[b"size"])
                padded = -size % _BLOCK
        else:
            entry.name = long_name or name
            entry.linkname = long_link or linkname.partition(b"\0")[0]
            entry.uid = numbers[uid]
            entry.gid = numbers[gid]
            entry.mtime = entry.atime = numbers[mtime] * 1_000_000_000
        entry.size = size
        if typeflag in b"34":
            entry.devmajor = _number(devmajor)
            entry.devminor = _number(devminor)
        entry.xattrs = None
        if records:
            for key, value in records.items():
                if key.startswith(b"SCHILY.xattr."):
                    if entry.xattrs is None:
                        entry.xattrs = {}
                    entry.xattrs[key[13:].decode("utf-8", "surrogateescape")] = value
                elif key.startswith(b"GNU.sparse."):
                    raise Unsupported("sparse files in layers are not supported")
        if typeflag in _REGULAR and entry.name.endswith(b"/"):
            typeflag = b"5"
        entry.type = typeflag
        if pax:
            pax = {}
        if long_name is not None or long_link is not None:
            long_name = long_link = None
        yield entry
        if typeflag in _REGULAR or typeflag not in b"123456":
            # regular data, or an unknown type the consumer rejected or skipped
            if entry.size is not None:
                buf.skip(entry.size)
            buf.skip(padded)


# -- applying ---------------------------------------------------------------

def _clean(name):
    """Lexically clean a member name as if rooted at '/'; [] means the root itself."""
    if b"\0" in name:
        raise InvalidArgument("invalid tar entry: NUL in name")
    stripped = name.rstrip(b"/")
    if stripped and stripped[0] not in b"./" and b"//" not in stripped and b"/." not in stripped:
        return stripped.split(b"/")  # no empty, "." or ".." component: already clean
    parts = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def _umask():
    with open("/proc/self/status", "rb") as handle:
        for line in handle:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    return 0o022


class _Barrier:
    """Runs `action` once every writer thread got here, i.e. after all they had before it."""

    def __init__(self, threads, action):
        self._left = threads
        self._lock = threading.Lock()
        self._action = action

    def arrive(self):
        with self._lock:
            self._left -= 1
            if self._left:
                return
        self._action()


class _FileWriter:
    """Creates regular files with the native helper on _WRITER_THREADS threads, in batches.

    The helper makes the system calls with the GIL released, so parsing and the other
    entries go on meanwhile on the main thread.  The applier hands over only files whose
    parent is a directory this layer made (so its fd is the real place, and two queued files
    never share a path) and waits (sync) before anything that could touch a file still
    queued; directory fds leaving the applier's cache are closed once no thread may use them.
    """

    def __init__(self):
        self._ops = []
        self._names = []
        self._closing = []  # retired directory fds: closed once the batches that may use them are written
        self._queues = [queue.SimpleQueue() for _ in range(_WRITER_THREADS)]
        self._next = 0  # the thread the next batch goes to
        self._slots = threading.Semaphore(_WRITER_BATCHES)
        self.error = None
        self.running = True
        self._threads = [threading.Thread(target=self._run, args=(jobs,), name="layer-writer", daemon=True)
                         for jobs in self._queues]
        for thread in self._threads:
            thread.start()

    def add(self, op, name):
        self._ops.append(op)
        self._names.append(name)
        if len(self._ops) >= _WRITER_BATCH:
            self.flush()

    def take_files(self, data, pos, applier):
        """Queue the common-case files from `pos` on natively (_filewriter.take_files);
        returns where it stopped and the files and bytes it took."""
        files = size = 0
        while True:
            pos, taken, taken_size = _take_files(data, pos, applier, self._ops, self._names,
                                                 _WRITER_BATCH, _CHUNK)
            files += taken
            size += taken_size
            if len(self._ops) < _WRITER_BATCH:
                return pos, files, size
            self.flush()

    def close_later(self, fds):
        self._closing.extend(fds)

    def hash_later(self, hash):
        """An update() for `hash` run on the first thread, in order (sha256 releases the GIL)."""
        put = self._queues[0].put
        return lambda chunk: put((hash.update, chunk))

    def flush(self):
        if self.error is not None:
            self._raise()
        if self._ops:
            self._slots.acquire()
            self._queues[self._next].put((self._ops, self._names))
            self._next = (self._next + 1) % _WRITER_THREADS
            self._ops, self._names = [], []
        if self._closing:
            fds, self._closing = self._closing, []
            self._everywhere(lambda: [os.close(fd) for fd in fds])

    def sync(self):
        """Wait until every file handed over is written; raise the first failure."""
        self.flush()
        done = threading.Event()
        self._everywhere(done.set)
        done.wait()
        if self.error is not None:
            self._raise()

    def close(self):
        """Stop the threads after what they are writing (the rest is dropped: the layer failed)."""
        if self.running:
            self.running = False
            for jobs in self._queues:
                jobs.put(None)
            for thread in self._threads:
                thread.join()
            for fd in self._closing:
                os.close(fd)
            self._closing = []

    def _everywhere(self, action):
        barrier = _Barrier(_WRITER_THREADS, action)
        for jobs in self._queues:
            jobs.put(barrier)

    def _raise(self):
        name, exc = self.error
        exc.layer_entry = name
        raise exc

    def _run(self, jobs):
        while (item := jobs.get()) is not None:
            try:
                if isinstance(item, _Barrier):
                    item.arrive()
                elif callable(item[0]):  # hash_later
                    item[0](item[1])
                else:
                    try:
                        if self.error is None and self.running:
                            self._write(*item)
                    finally:
                        self._slots.release()
            except BaseException as exc:  # noqa: BLE001 - raised on the main thread
                self.error = self.error or (None, exc)

    def _write(self, ops, names):
        while ops:
            failed = _write_files(ops)
            if failed is None:
                return
            index, code = failed
            dir_fd, name = ops[index][:2]
            if code != errno.EEXIST or not _remove_at(dir_fd, name):  # a layer writing a path again
                self.error = (names[index], OSError(code, os.strerror(code)))
                return
            ops, names = ops[index:], names[index:]  # again from the one in the way, now removed


def _remove_at(dir_fd, name):
    """Remove `name` in `dir_fd` without following it, a directory with all in it; False if absent."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        import shutil
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
    return True


class _Applier:
    """Applies entries in order. Directory fds are cached by path (the dirs this layer made
    or opened), dropped all at once when a removal changes the tree; an fd leaving the cache
    is closed only after the current entry, which may still hold it."""

    def __init__(self, target, overlay, lowers, writer=None):
        self.overlay = overlay
        self.writer = writer
        self.real = {b""} if writer is not None else set()  # dirs made here, reached without symlinks
        self.pending = set()  # files handed to the writer since its last sync
        self.root_fd = os.open(target, _O_PATH_DIR)
        self.lower_fds = []
        self.dirs = {}
        self.setgid_dirs = set()  # cached dirs whose new files would inherit the group
        self.retired = []
        self.created = set()
        self.taken = self.taken_size = 0  # files (and their bytes) queued by take_files
        self.dir_times = []
        self.euid, self.egid = os.geteuid(), os.getegid()
        self.same_owner = self.euid == 0
        self.umask = _umask()
        try:
            for lower in lowers:
                self.lower_fds.append(os.open(lower, _O_PATH_DIR))
        except BaseException:
            self.close()
            raise

    def close(self):
        self._forget_dirs()
        self.release()
        for fd in [self.root_fd, *self.lower_fds]:
            os.close(fd)
        self.lower_fds = []

    def _forget_dirs(self):
        """Drop the cache after a removal changed the tree; fds close at the end of the entry."""
        self.retired.extend(self.dirs.values())
        self.dirs.clear()
        self.setgid_dirs.clear()

    def release(self):
        if self.writer is not None and self.writer.running:
            self.writer.close_later(self.retired)
        else:
            for fd in self.retired:
                os.close(fd)
        self.retired.clear()

    def sync(self):
        """Wait for the files the writer still has: the next step may touch them."""
        if self.pending:
            self.writer.sync()
            self.pending.clear()

    def _settle(self, entry, parts):
        """sync() unless this entry surely touches no queued file: it is made in a directory made
        here, at a path not queued, not a whiteout, not a directory again, not a link to a queued file."""
        key = b"/".join(parts)
        if (key.rpartition(b"/")[0] in self.real and key not in self.pending and key not in self.real
                and not parts[-1].startswith(_WHITEOUT)):
            if entry.type != b"1":
                return
            target = b"/".join(_clean(entry.linkname))
            if target and target.rpartition(b"/")[0] in self.real and target not in self.pending:
                return
        self.sync()

    def take_files(self, data, pos):
        """The regular files _hand_over would queue, from `pos` in buffer `data` on, queued
        without an Entry each (the native helper makes the same checks); where it stopped."""
        pos, files, size = self.writer.take_files(data, pos, self)
        self.taken += files
        self.taken_size += size
        return pos

    def _hand_over(self, entry, buf, parts):
        """Queue a regular file for the writer; False if it must be made here (see _FileWriter)."""
        size = entry.size
        if entry.xattrs or size > _CHUNK:
            return False
        key = b"/".join(parts)
        parent_key = key[:-len(parts[-1]) - 1] if len(parts) > 1 else b""
        if parent_key not in self.real or key in self.pending or key in self.real:
            return False
        parent = self.dirs.get(parent_key) if parent_key else self.root_fd
        if parent is None:
            parent = self._open_dir(parts[:-1], True)
        data = buf.take(size) if size else b""
        if data is None:
            raise InvalidArgument("truncated tar archive: file data cut short")
        entry.size = None  # consumed
        fresh = parent not in self.setgid_dirs
        mode = entry.mode
        flags = 0
        if self.same_owner and (entry.uid != self.euid or entry.gid != self.egid or not fresh):
            flags |= 1  # fchown
        if not fresh or mode & 0o7000 or mode & self.umask:
            flags |= 2  # fchmod
        self.writer.add((parent, parts[-1], data, mode, entry.uid, entry.gid, flags, entry.atime, entry.mtime),
                        entry.name)
        self.pending.add(key)
        if not self.overlay:
            self.created.add(key)
        return True

    # path resolution

    def _open_dir(self, parts, create):
        """An O_PATH fd of directory `parts` resolved in the root; None if absent and not `create`."""
        if not parts:
            return self.root_fd
        key = b"/".join(parts)
        fd = self.dirs.get(key)
        if fd is not None:
            return fd
        try:
            fd = linux.openat2(self.root_fd, key, _O_PATH_DIR, 0, _RESOLVE)
        except FileNotFoundError:
            if not create:
                return None
            parent = self._open_dir(parts[:-1], True)
            mode, owner, times = self._lower_dir_info(parts)
            try:
                os.mkdir(parts[-1], 0o700, dir_fd=parent)
            except FileExistsError:
                raise InvalidArgument(
                    f"{key.decode(errors='replace')}: parent is a dangling symlink") from None
            fd = os.open(parts[-1], _O_PATH_DIR | os.O_NOFOLLOW, dir_fd=parent)
            if b"/".join(parts[:-1]) in self.real:
                self.real.add(key)
            self._set_dir_meta(fd, mode, owner, times)
            if not self.overlay:
                self.created.add(key)
        self._cache_dir(key, fd)
        return fd

    def _cache_dir(self, key, fd):
        """Remember dir fd `fd` for `key`; the oldest is retired (closed after the entry) when full."""
        if len(self.dirs) >= _MAX_CACHED_DIRS:
            old_fd = self.dirs.pop(next(iter(self.dirs)))
            self.setgid_dirs.discard(old_fd)
            self.retired.append(old_fd)
        self.dirs[key] = fd
        if os.fstat(fd).st_mode & stat.S_ISGID:
            self.setgid_dirs.add(fd)

    def _lower_dir_info(self, parts):
        """Mode, owner and times for a parent dir missing here: the lower layers' copy, else 0755."""
        key = b"/".join(parts)
        for lower in self.lower_fds:
            try:
                fd = linux.openat2(lower, key, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW, 0, _RESOLVE)
            except OSError:
                continue
            try:
                info = os.fstat(fd)
            finally:
                os.close(fd)
            if stat.S_ISDIR(info.st_mode):
                return stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid), (info.st_atime_ns, info.st_mtime_ns)
            break
        return 0o755, None, None

    def _set_dir_meta(self, path_fd, mode, owner, times):
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=path_fd)
        try:
            if owner is not None and self.same_owner:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            if times is not None:
                os.utime(fd, ns=times)
        finally:
            os.close(fd)

    def _remove(self, parent, base):
        """Remove `base` in `parent` (without following it); True if something was there."""
        self.sync()
        if not _remove_at(parent, base):
            return False
        self._forget_dirs()
        if self.real:
            self.real = {b""}  # which dirs are still ours and where: only the root is sure
        return True

    # entries

    def _create(self, make, parent, base):
        """Run make() to create `base`; if something is in the way, remove it and retry once."""
        try:
            return make()
        except FileExistsError:
            self._remove(parent, base)
            return make()

    def apply(self, entry, buf):
        parts = _clean(entry.name)
        if not parts:
            return  # the root itself: containerd ignores it too
        base = parts[-1]
        kind = entry.type
        if self.writer is not None:
            if kind in _REGULAR and not base.startswith(_WHITEOUT) and self._hand_over(entry, buf, parts):
                return
            if self.pending:
                self._settle(entry, parts)
        if base.startswith(_WHITEOUT):
            self._whiteout(parts)
            return
        parent = self._open_dir(parts[:-1], True)
        if kind in _REGULAR:
            try:
                fd = os.open(base, _NEW_FILE, entry.mode & 0o777, dir_fd=parent)
            except FileExistsError:  # as _create(), without a closure per file
                self._remove(parent, base)
                fd = os.open(base, _NEW_FILE, entry.mode & 0o777, dir_fd=parent)
            try:
                if entry.size <= _CHUNK:
                    data = buf.take(entry.size) if entry.size else b""
                    if data is None:
                        raise InvalidArgument("truncated tar archive: file data cut short")
                    while data:
                        data = data[os.write(fd, data):]
                else:
                    for piece in buf.pieces(entry.size):
                        while piece:
                            piece = piece[os.write(fd, piece):]
                entry.size = None  # consumed
                self._meta(fd, entry, fresh=parent not in self.setgid_dirs)
            finally:
                os.close(fd)
        elif kind == b"5":
            self._directory(parent, base, parts, entry)
        elif kind == b"2":
            self._create(lambda: os.symlink(entry.linkname, base, dir_fd=parent), parent, base)
            if self.same_owner:
                os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
            if entry.xattrs:
                self._link_xattrs(parent, base, entry.xattrs)
            os.utime(base, ns=(entry.atime, entry.mtime), dir_fd=parent, follow_symlinks=False)
        elif kind == b"1":
            self._hardlink(parent, base, parts, entry)
        elif kind in (b"3", b"4", b"6"):
            if kind == b"6":
                self._create(lambda: os.mkfifo(base, 0o600, dir_fd=parent), parent, base)
            else:
                node = (stat.S_IFCHR if kind == b"3" else stat.S_IFBLK) | 0o600
                device = os.makedev(entry.devmajor, entry.devminor)
                self._create(lambda: os.mknod(base, node, device, dir_fd=parent), parent, base)
            if self.same_owner:
                os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
            os.chmod(base, entry.mode, dir_fd=parent)  # a node just made here, not a symlink
            os.utime(base, ns=(entry.atime, entry.mtime), dir_fd=parent, follow_symlinks=False)
        else:
            raise Unsupported(f"tar entry {entry.name.decode(errors='replace')}: "
                              f"unsupported type {kind!r}")
        if not self.overlay:  # only opaque directories in apply mode need the set
            self.created.add(b"/".join(parts))

    def _directory(self, parent, base, parts, entry):
        try:
            os.mkdir(base, 0o700, dir_fd=parent)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(base, dir_fd=parent, follow_symlinks=False).st_mode):
                self._remove(parent, base)
                os.mkdir(base, 0o700, dir_fd=parent)
                self._made_dir(parts)
        else:
            self._made_dir(parts)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            self._meta(fd, entry)
        except BaseException:
            os.close(fd)
            raise
        key = b"/".join(parts)
        if key in self.dirs:
            self.retired.append(fd)  # the cached fd is the same directory
        else:
            self._cache_dir(key, fd)  # its files come next: no openat2 for them
        self.dir_times.append((parts, entry.atime, entry.mtime))

    def _made_dir(self, parts):
        if self.real and b"/".join(parts[:-1]) in self.real:
            self.real.add(b"/".join(parts))

    def _meta(self, fd, entry, fresh=False):
        """Owner, mode, xattrs and times; `fresh`: a new file that already has our uid/gid and umask-ed mode."""
        if self.same_owner and (entry.uid != self.euid or entry.gid != self.egid or not fresh):
            os.fchown(fd, entry.uid, entry.gid)
        if not fresh or entry.mode & 0o7000 or entry.mode & self.umask:
            os.fchmod(fd, entry.mode)
        if entry.xattrs:
            for name, value in entry.xattrs.items():
                if name.startswith("trusted.overlay."):
                    continue  # a layer must not forge overlayfs metadata
                try:
                    os.setxattr(fd, name, value)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                        raise
        os.utime(fd, ns=(entry.atime, entry.mtime))

    def _link_xattrs(self, parent, base, xattrs):
        path = f"/proc/self/fd/{parent}/{os.fsdecode(base)}"
        for name, value in xattrs.items():
            if name.startswith("trusted.overlay."):
                continue
            try:
                os.setxattr(path, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def _hardlink(self, parent, base, parts, entry):
        target = _clean(entry.linkname)
        if not target:
            raise InvalidArgument(f"hard link {entry.name.decode(errors='replace')}: target is the root")
        if target == parts:
            return
        target_parent = self._open_dir(target[:-1], False)
        try:
            if target_parent is None:
                raise FileNotFoundError
            self._create(lambda: os.link(target[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent,
                                         follow_symlinks=False), parent, base)
        except FileNotFoundError:
            raise InvalidArgument(f"hard link {entry.name.decode(errors='replace')}: "
                                  f"target {entry.linkname.decode(errors='replace')} not found") from None

    def _whiteout(self, parts):
        base = parts[-1]
        if base == _OPAQUE:
            self._opaque(parts[:-1])
            return
        if base.startswith(_WHITEOUT + _WHITEOUT):
            return  # other aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
        name = base[len(_WHITEOUT):]
        if name in (b"", b".", b".."):
            raise InvalidArgument(f"invalid whiteout {b'/'.join(parts).decode(errors='replace')}")
        if self.overlay:
            parent = self._open_dir(parts[:-1], True)
            self._remove(parent, name)
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=parent)
        else:
            parent = self._open_dir(parts[:-1], False)
            if parent is not None:
                self._remove(parent, name)

    def _opaque(self, parts):
        if self.overlay:
            path_fd = self._open_dir(parts, True)
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=path_fd)
            try:
                os.setxattr(fd, "trusted.overlay.opaque", b"y")
            finally:
                os.close(fd)
            return
        path_fd = self._open_dir(parts, False)
        if path_fd is None:
            return
        prefix = b"/".join(parts) + b"/" if parts else b""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=path_fd)
        try:
            children = os.listdir(fd)
        finally:
            os.close(fd)
        for child in children:
            child = os.fsencode(child)
            if prefix + child not in self.created:
                self._remove(path_fd, child)

    def finish(self):
        """Directory times last: creating children changed them."""
        self.sync()
        for parts, atime, mtime in reversed(self.dir_times):
            parent = self._open_dir(parts[:-1], False)
            if parent is None:
                continue
            try:
                os.utime(parts[-1], ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                continue


def _is_empty(target):
    """Whether directory `target` has no entries (then everything in it is this layer's)."""
    with os.scandir(target) as listing:
        return next(listing, None) is None


def apply_layer(source, target, overlay=True, lowers=(), expected_diff_id=None):
    """Apply the layer in `source` (path or binary file object) to directory `target`.

    `lowers` are the parent layers' directories, top first (overlay mode copies
    the attributes of parent directories it has to create from them).  Checks
    the diff_id against `expected_diff_id` and returns a LayerResult.
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        with open(source, "rb") as handle:
            return apply_layer(handle, target, overlay, lowers, expected_diff_id)
    stream = _Decompressed(source)
    reader = (_Reader if stream.compression else _InlineReader)(stream.read)
    buf = _Buffer(reader.read)
    applier = writer = None
    content = count = 0
    entry = None
    try:
        if _write_files is not None and _is_empty(target):
            writer = _FileWriter()
            if isinstance(reader, _InlineReader):
                reader.update = writer.hash_later(reader.hash)
        applier = _Applier(target, overlay, lowers, writer)
        take_files = applier.take_files if writer is not None and _take_files is not None else None
        for entry in _read_entries(buf, take_files):
            size = entry.size if entry.type in _REGULAR else 0
            applier.apply(entry, buf)
            if applier.retired:
                applier.release()
            content += size
            count += 1
        applier.finish()
        buf.drain()
        content += applier.taken_size
        count += applier.taken
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"invalid tar archive: {exc}") from None
    except OSError as exc:
        name = getattr(exc, "layer_entry", None) or (entry.name if entry is not None else None)
        where = name.decode(errors="replace") if name is not None else target
        reason = exc.strerror or str(exc)
        message = f"applying layer entry {where}: {reason[:1].lower()}{reason[1:]}"
        if exc.errno in _INVALID_ERRNOS:
            raise InvalidArgument(message) from None
        raise Unavailable(message) from None
    finally:
        reader.close()
        if writer is not None:
            writer.close()
        if applier is not None:
            applier.close()
    diff_id = "sha256:" + reader.hash.hexdigest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise InvalidArgument(f"layer diff_id mismatch: expected {expected_diff_id}, got {diff_id}")
    return LayerResult(diff_id, reader.total, content, count)
