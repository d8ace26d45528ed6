"""The attach protocol between a vessel command and the container monitor.

A unix stream socket (the monitor's, vessel.engine.monitor) carrying frames:
one byte of kind, four bytes of big-endian length, then the payload.

    client -> monitor: REQUEST (JSON, the first frame), then STDIN data, STDIN_EOF, RESIZE b"rows cols"
    monitor -> client: EVENT (JSON, the answer), then STDOUT / STDERR data, EXIT b"<code>" (last frame)
"""

import os
import selectors
import signal
import struct

__all__ = ["STDIN", "STDOUT", "STDERR", "RESIZE", "EXIT", "STDIN_EOF", "REQUEST", "EVENT", "Detached", "EscapeFilter", "frame",
           "FrameReader", "attach", "parse_detach_keys"]

STDIN, STDOUT, STDERR, RESIZE, EXIT, STDIN_EOF, REQUEST, EVENT = range(8)
DETACH_KEYS = b"\x10\x11"  # Docker's default: ctrl-p ctrl-q


class Detached(Exception):
    """The user typed the detach keys: the client leaves, the container runs on."""
_HEADER = struct.Struct(">BI")
MAX_FRAME = 1 << 20


def frame(kind, payload=b""):
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Splits a byte stream into (kind, payload) frames."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data):
        self.buffer += data
        frames = []
        while len(self.buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self.buffer)
            if size > MAX_FRAME:
                raise ValueError(f"attach frame of {size} bytes")
            if len(self.buffer) < _HEADER.size + size:
                break
            frames.append((kind, self.buffer[_HEADER.size:_HEADER.size + size]))
            self.buffer = self.buffer[_HEADER.size + size:]
        return frames


def _terminal_size(fd):
    import fcntl
    import termios

    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def parse_detach_keys(text):
    """Docker's --detach-keys ("ctrl-p,ctrl-q", "a", "ctrl-@"...) -> bytes; None keeps the default."""
    if text is None:
        return DETACH_KEYS
    controls = {chr(ord("a") + n): n + 1 for n in range(26)} | {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30,
                                                                "_": 31}
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            codes.append(ord(key))
        elif key.lower().startswith("ctrl-") and key[5:].lower() in controls:
            codes.append(controls[key[5:].lower()])
        else:
            from vessel.errors import InvalidArgument

            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(codes)


def attach(sock, stdin_fd=None, stdout=None, stderr=None, tty=False, on_signal=None, detach_keys=DETACH_KEYS):
    """Relay a container's streams until it exits; returns its exit code (None if the link broke).

    `stdin_fd` (or None) is forwarded; `stdout`/`stderr` are callables taking
    bytes (default: write to fds 1 and 2).  With `tty` and a terminal on
    stdin, the local terminal goes raw and its size follows SIGWINCH.
    `on_signal(signum)` receives SIGINT/SIGTERM (the sig-proxy).  Typing
    `detach_keys` (ctrl-p ctrl-q) on the forwarded stdin raises Detached.
    """
    stdout = stdout or (lambda data: _write_all(1, data))
    stderr = stderr or (lambda data: _write_all(2, data))
    reader = FrameReader()
    saved_mode = None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    previous = {}
    pending_signals = []
    selector = selectors.DefaultSelector()
    local_tty = tty and stdin_fd is not None and os.isatty(stdin_fd)
    escape = EscapeFilter(detach_keys)

    def handler(signum, _frame):
        pending_signals.append(signum)
        try:
            os.write(wake_w, b"\0")
        except BlockingIOError:
            pass

    try:
        if local_tty:
            import termios
            import tty as ttymod

            saved_mode = termios.tcgetattr(stdin_fd)
            ttymod.setraw(stdin_fd, termios.TCSANOW)
            sock.sendall(frame(RESIZE, ("%d %d" % _terminal_size(stdin_fd)).encode()))
            previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, handler)
        if on_signal is not None and not local_tty:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, handler)
        selector.register(sock, selectors.EVENT_READ, "sock")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        if stdin_fd is not None:
            selector.register(stdin_fd, selectors.EVENT_READ, "stdin")
        while True:
            for key, _ in selector.select():
                if key.data == "wake":
                    os.read(wake_r, 4096)
                    while pending_signals:
                        signum = pending_signals.pop(0)
                        if signum == signal.SIGWINCH:
                            sock.sendall(frame(RESIZE, ("%d %d" % _terminal_size(stdin_fd)).encode()))
                        elif on_signal is not None:
                            on_signal(signum)
                elif key.data == "stdin":
                    try:
                        data = os.read(stdin_fd, 65536)
                    except OSError:
                        data = b""
                    if data:
                        data, detach = escape.feed(data)
                        if data:
                            sock.sendall(frame(STDIN, data))
                        if detach:
                            raise Detached()
                    else:
                        selector.unregister(stdin_fd)
                        sock.sendall(frame(STDIN_EOF))
                else:
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        return None
                    for kind, payload in reader.feed(data):
                        if kind == STDOUT:
                            stdout(payload)
                        elif kind == STDERR:
                            stderr(payload)
                        elif kind == EXIT:
                            return int(payload or b"0")
    finally:
        selector.close()
        for signum, old in previous.items():
            signal.signal(signum, old)
        os.close(wake_r)
        os.close(wake_w)
        if saved_mode is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved_mode)


class EscapeFilter:
    """Finds the detach key sequence in typed input, across reads; keys that only began it pass on."""

    def __init__(self, keys):
        self.keys = keys
        self.matched = 0

    def feed(self, data):
        """(bytes to forward, whether the whole sequence was typed)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            out += self.keys[:self.matched]
            self.matched = 0
            if byte == self.keys[0]:
                self.matched = 1
            else:
                out.append(byte)
        return bytes(out), False


def _write_all(fd, data):
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            selectors.DefaultSelector().select(0.01)
