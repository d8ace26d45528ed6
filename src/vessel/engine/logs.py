"""Docker's json-file log driver: one JSON object per line, rotated by size.

    {"log":"hi\\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}

<id>-json.log is the live file; <id>-json.log.1 ... .N-1 the older ones
(max-file counts the live one).  Rotation is on by default (10 MB x 3),
unlike Docker's unbounded default.
"""

import os
import time

from vessel.runtime import jsonio  # not `json`: a slim monitor writes logs without `re` loaded

__all__ = ["LogWriter", "NoLog", "open_log", "read_entries", "timestamp"]


def timestamp(ns=None):
    """RFC3339Nano in UTC, as Go prints it (trailing zeros of the fraction dropped)."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


class LogWriter:
    """Appends entries to <dir>/<id>-json.log, rotating at `max_size` bytes (0 = never).

    `handle` is the live file already open (a monitor's successor receives it).
    """

    def __init__(self, path, max_size, max_file, handle=None):
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.handle = handle or open(path, "ab", buffering=0)
        self.size = self.handle.tell()

    def write(self, stream, data):
        """One entry per line of `data` (a partial last line is its own entry, as Docker does)."""
        for line in data.splitlines(keepends=True):
            entry = jsonio.dumps({"log": line.decode("utf-8", "replace"), "stream": stream,
                                  "time": timestamp()}, ensure_ascii=False) + "\n"
            encoded = entry.encode()
            if self.max_size and self.size and self.size + len(encoded) > self.max_size:
                self._rotate()
            self.handle.write(encoded)
            self.size += len(encoded)

    def _rotate(self):
        self.handle.close()
        if self.max_file == 1:
            os.truncate(self.path, 0)
        else:
            _shift(self.path, self.max_file)
        self.handle = open(self.path, "ab", buffering=0)
        self.size = 0

    def close(self):
        self.handle.close()


class NoLog:
    """--log-driver none: the output goes to attached clients only."""

    def write(self, stream, data):
        pass

    def close(self):
        pass


def open_log(path, config):
    """The container's log writer for its --log-driver (json-file, or none)."""
    if config.log_driver == "none":
        return NoLog()
    return LogWriter(path, config.log_max_size, config.log_max_file)


def _shift(path, max_file):
    for index in range(max_file - 1, 1, -1):
        if os.path.exists(f"{path}.{index - 1}"):
            os.replace(f"{path}.{index - 1}", f"{path}.{index}")
    if os.path.exists(path):
        os.replace(path, f"{path}.1")


def _files(path):
    """The log files, oldest first."""
    rotated = []
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        suffix = name[len(base) + 1:]
        if name.startswith(base + ".") and suffix.isdigit():
            rotated.append((int(suffix), os.path.join(directory, name)))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if os.path.exists(path) else [])


def _parse(line):
    try:
        entry = jsonio.loads(line)
        return entry["stream"], entry["log"], entry["time"]
    except (ValueError, KeyError, TypeError):
        return None


def read_entries(path, since=None, until=None, live_limit=None):
    """(stream, text, time) of every stored entry, oldest first; the live file up to `live_limit` bytes."""
    for name in _files(path):
        try:
            with open(name, "rb") as handle:
                data = handle.read(live_limit) if name == path and live_limit is not None else handle.read()
                for line in data.splitlines(keepends=True):
                    if not line.endswith(b"\n"):
                        break
                    entry = _parse(line)
                    if entry is None or not _in_window(entry[2], since, until):
                        continue
                    yield entry
        except FileNotFoundError:
            continue


def _in_window(stamp, since, until):
    if since is None and until is None:
        return True
    from vessel.times import parse_rfc3339

    value = parse_rfc3339(stamp)
    if value is None:
        return True
    return (since is None or value >= since) and (until is None or value <= until)


def follow(path, position, alive, since=None, poll=0.1):
    """Entries appended to the live file from byte `position` on, until `alive()` is false."""
    handle = None
    inode = None
    pending = b""
    while True:
        if handle is None:
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                if not alive():
                    return
                time.sleep(poll)
                continue
            inode = os.fstat(handle.fileno()).st_ino
            handle.seek(position)
        chunk = handle.read(65536)
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                entry = _parse(line)
                if entry is not None and _in_window(entry[2], since, None):
                    yield entry
            continue
        try:
            rotated = os.stat(path).st_ino != inode
        except FileNotFoundError:
            rotated = True
        if rotated:
            handle.close()
            handle, position = None, 0
            continue
        if not alive():
            handle.close()
            return
        time.sleep(poll)
