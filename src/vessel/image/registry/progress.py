"""Docker-style pull/push progress.

On a terminal each layer owns one line that is redrawn in place
(`a1b2c3d4e5f6: Downloading [=====>      ]  1.2MB/2.2MB`); elsewhere every
status change is one plain line (`a1b2c3d4e5f6: Pull complete`), so logs stay
readable.
"""

import threading
import time

__all__ = ["Progress", "human_size", "make_progress", "short_id"]

_BAR_WIDTH = 50
_REDRAW_SECONDS = 0.1


def short_id(digest):
    return digest.split(":", 1)[-1][:12]


def human_size(size):
    """Docker's decimal sizes: 532B, 1.21kB, 2.2MB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1000
    return f"{size}B"


def _bar(done, total):
    if not total:
        return human_size(done)
    filled = min(_BAR_WIDTH, int(_BAR_WIDTH * done / total))
    arrow = "=" * max(filled - 1, 0) + (">" if filled else "")
    return f"[{arrow.ljust(_BAR_WIDTH)}] {human_size(done):>7}/{human_size(total)}"


class Progress:
    """Writes progress to a text stream; thread-safe."""

    def __init__(self, stream):
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._lock = threading.Lock()
        self._order = []
        self._last_draw = {}

    def line(self, text):
        """A message line of its own (headers, the final digest)."""
        with self._lock:
            self._order.clear()
            self.stream.write(text + "\n")
            self.stream.flush()

    def status(self, key, text):
        """Set the status of one layer (`key` is a digest)."""
        with self._lock:
            self._draw(key, f"{short_id(key)}: {text}")

    def bytes(self, key, verb, done, total):
        """Byte progress of one layer; drawn on terminals only, at most every 0.1 s."""
        if not self.tty:
            return
        now = time.monotonic()
        with self._lock:
            if done < total and now - self._last_draw.get(key, 0) < _REDRAW_SECONDS:
                return
            self._last_draw[key] = now
            self._draw(key, f"{short_id(key)}: {verb} {_bar(done, total)}")

    def _draw(self, key, text):
        if not self.tty:
            self.stream.write(text + "\n")
        elif key not in self._order:
            self._order.append(key)
            self.stream.write(f"\x1b[2K\r{text}\n")
        else:
            up = len(self._order) - self._order.index(key)
            self.stream.write(f"\x1b[{up}A\x1b[2K\r{text}\x1b[{up}B\r")
        self.stream.flush()


class _Silent:
    def line(self, text):
        pass

    def status(self, key, text):
        pass

    def bytes(self, key, verb, done, total):
        pass


def make_progress(progress):
    """None -> silent; a text stream -> Progress on it; a Progress -> itself."""
    if progress is None:
        return _Silent()
    if isinstance(progress, (Progress, _Silent)):
        return progress
    return Progress(progress)
