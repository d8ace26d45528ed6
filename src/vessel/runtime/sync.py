"""The message channel between the runtime and the container's init.

A SOCK_SEQPACKET socket pair; each message is one packet `kind` + NUL + JSON
payload, optionally with file descriptors (SCM_RIGHTS). The receiving side of
the runtime turns on SO_PASSCRED, so the kernel attaches the sender's pid as
seen from the runtime's pid namespace: the init's host pid, even when it was
started inside a pid namespace joined by path.

    runtime                                   init
       |  <-- hello (credentials: host pid) ---  |
       |  --- go (id maps written, cgroups) -->  |
       |  <-- hooks (before pivot_root) -------  |   only if prestart/createRuntime hooks
       |  --- hooks-done ---------------------->  |
       |  <-- ready | error -------------------  |
"""

import _socket
import os
import struct

from vessel.errors import VesselError
from vessel.runtime import jsonio

__all__ = ["Channel", "ChildFailed", "pair"]

_SOL_SOCKET = 1
_SO_PASSCRED = 16
_SCM_RIGHTS = 1
_SCM_CREDENTIALS = 2
_MAX_FDS = 16


class ChildFailed(VesselError):
    """The init reported an error, or died before saying anything."""

    category = "failed"


class Channel:
    __slots__ = ("sock",)

    def __init__(self, sock):
        self.sock = sock

    def fileno(self):
        return self.sock.fileno()

    def send(self, kind, payload=None, fds=()):
        data = kind.encode() + b"\0" + jsonio.dumps(payload).encode()
        ancillary = [(_SOL_SOCKET, _SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
        self.sock.sendmsg([data], ancillary)

    def receive(self):
        """Return (kind, payload, fds, sender pid or None); ('eof', None, [], None) on close."""
        space = _socket.CMSG_SPACE(_MAX_FDS * 4) + _socket.CMSG_SPACE(12)
        data, ancillary, _flags, _addr = self.sock.recvmsg(1 << 20, space)
        if not data:
            return "eof", None, [], None
        fds, pid = [], None
        for level, ctype, cdata in ancillary:
            if level == _SOL_SOCKET and ctype == _SCM_RIGHTS:
                usable = len(cdata) - len(cdata) % 4
                fds.extend(struct.unpack(f"{usable // 4}i", cdata[:usable]))
            elif level == _SOL_SOCKET and ctype == _SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        kind, _, payload = data.partition(b"\0")
        return kind.decode(), jsonio.loads(payload) if payload else None, fds, pid

    def expect(self, *kinds):
        """Receive one message; raise ChildFailed on an error report or EOF."""
        kind, payload, fds, pid = self.receive()
        if kind == "error":
            raise ChildFailed(payload)
        if kind == "eof":
            raise ChildFailed("container init exited unexpectedly")
        if kind not in kinds:
            raise ChildFailed(f"unexpected message {kind!r} from container init")
        return kind, payload, fds, pid

    def close(self):
        self.sock.close()


def pair():
    """(runtime end, init end); the runtime end receives sender credentials."""
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    ours.setsockopt(_SOL_SOCKET, _SO_PASSCRED, 1)
    return Channel(ours), Channel(theirs)


def stream_pair():
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)


def unix_socket():
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)


def _via_dir_fd(path, action):
    """Run `action(short_path)` for a socket path; long paths go through /proc/self/fd.

    sun_path holds 108 bytes and runtime roots nest deep (podman's ids are 64
    characters), so the directory is opened and named by its fd instead.
    """
    if len(os.fsencode(path)) < 100:
        return action(path)
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return action(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


def connect_unix(path):
    sock = unix_socket()
    try:
        _via_dir_fd(path, sock.connect)
    except OSError:
        sock.close()
        raise
    return sock


def listen_unix(path, backlog=4):
    sock = unix_socket()
    try:
        _via_dir_fd(path, sock.bind)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def accept(listener):
    fd, _ = listener._accept()
    return _socket.socket(fileno=fd)


def send_fds(sock, data, fds):
    sock.sendmsg([data], [(_SOL_SOCKET, _SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def receive_fds(sock, size=4096, max_fds=_MAX_FDS):
    data, ancillary, _flags, _addr = sock.recvmsg(size, _socket.CMSG_SPACE(max_fds * 4))
    fds = []
    for level, ctype, cdata in ancillary:
        if level == _SOL_SOCKET and ctype == _SCM_RIGHTS:
            usable = len(cdata) - len(cdata) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", cdata[:usable]))
    return data, fds


def close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass
