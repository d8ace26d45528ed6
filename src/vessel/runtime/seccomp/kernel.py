"""Loading a filter with seccomp(2), and handing its notify listener to an agent.

The listener hand-over follows runc: connect to the agent's unix socket at
`listenerPath` and send one message holding the OCI ContainerProcessState JSON
with the listener fd attached as SCM_RIGHTS.  `_socket` is used directly
because `socket` costs several milliseconds of imports.
"""

import _socket
import ctypes
import struct

from vessel.errors import InvalidArgument, PermissionDenied, Unavailable, Unsupported
from vessel.runtime import jsonio, linux
from vessel.runtime.seccomp.config import FLAGS, RET_USER_NOTIF

__all__ = ["connect_agent", "install", "send_listener", "send_listener_on", "supported_flags"]

SECCOMP_SET_MODE_FILTER = 1
FLAG_TSYNC = 1
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32
_RET_K = 0x06
_EACCES = 13
_EINVAL = 22
_EFAULT = 14
OCI_VERSION = "1.2.1"


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _returns_notify(program):
    return any(code == _RET_K and k & 0xFFFF0000 == RET_USER_NOTIF
               for code, _, _, k in struct.iter_unpack("=HBBI", program))


def install(program, flags=()):
    """Load `program` as the calling thread's seccomp filter.

    `flags` are OCI flag names (SeccompConfig.flags) or SECCOMP_FILTER_FLAG_*
    bits.  When the program can answer SCMP_ACT_NOTIFY the filter is loaded
    with SECCOMP_FILTER_FLAG_NEW_LISTENER and the listener fd is returned;
    otherwise None.  The caller must have set no_new_privs
    (prctl PR_SET_NO_NEW_PRIVS) or hold CAP_SYS_ADMIN; after this call every
    syscall of the thread, and of what it execs, goes through the filter.
    """
    if isinstance(flags, int):
        bits = flags
    else:
        bits = 0
        for flag in flags:
            if flag not in FLAGS:
                raise InvalidArgument(f"linux.seccomp: unknown flag {flag!r}")
            bits |= FLAGS[flag]
    if not program or len(program) % 8:
        raise InvalidArgument("seccomp: a BPF program is a non-empty array of 8-byte instructions")
    notify = _returns_notify(program)
    if notify:
        bits |= FLAG_NEW_LISTENER
        if bits & FLAG_TSYNC:
            bits |= FLAG_TSYNC_ESRCH  # TSYNC alone would return a thread id, not the listener
    else:
        bits &= ~FLAG_WAIT_KILLABLE_RECV  # only means something with a listener; EINVAL without
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    try:
        result = linux.syscall(linux._SYS_seccomp, ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
                               ctypes.c_ulong(bits), ctypes.byref(fprog))
    except OSError as exc:
        if exc.errno == _EACCES:
            raise PermissionDenied(
                "seccomp: loading a filter needs no_new_privs or CAP_SYS_ADMIN") from None
        if exc.errno in (_EINVAL, _EFAULT):
            raise InvalidArgument(
                f"seccomp: the kernel rejected the filter or its flags {bits:#x}: {exc.strerror}") from None
        raise Unsupported(f"seccomp: cannot load the filter: {exc.strerror}") from None
    return result if notify else None


def supported_flags():
    """The OCI flag names this kernel accepts.

    Probed like libseccomp does: seccomp(SET_MODE_FILTER, flag, NULL) fails
    with EFAULT when the flag is known (the filter pointer is checked after
    the flags) and with EINVAL when it is not.  Nothing gets loaded.
    """
    supported = []
    for name, bit in FLAGS.items():
        probe = bit | FLAG_NEW_LISTENER if bit == FLAG_WAIT_KILLABLE_RECV else bit
        try:
            linux.syscall(linux._SYS_seccomp, ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
                          ctypes.c_ulong(probe), None)
        except OSError as exc:
            if exc.errno == _EFAULT:
                supported.append(name)
    return supported


def send_listener(listener_fd, listener_path, state, metadata=""):
    """Send the notify listener fd and the container state to the agent at `listener_path`.

    `state` is the OCI state object (a dict, or its JSON text); the message is
    a ContainerProcessState: ociVersion, fds ["seccompFd"], pid, metadata, state.
    """
    try:
        sock = connect_agent(listener_path)
    except OSError as exc:
        raise Unavailable(f"seccomp agent at {listener_path}: {exc.strerror or exc}") from None
    try:
        send_listener_on(sock, listener_fd, state, metadata, listener_path)
    finally:
        sock.close()


def connect_agent(listener_path):
    """A connected socket to the seccomp agent (made early, while its path is reachable)."""
    from vessel.runtime import sync

    return sync.connect_unix(listener_path)


def send_listener_on(sock, listener_fd, state, metadata="", listener_path="the agent"):
    """send_listener over an already connected socket."""
    if isinstance(state, (bytes, str)):
        state = jsonio.loads(state)
    message = {
        "ociVersion": state.get("ociVersion", OCI_VERSION),
        "fds": ["seccompFd"],
        "pid": state.get("pid", 0),
        "metadata": metadata or "",
        "state": state,
    }
    data = jsonio.dumps(message).encode()
    try:
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", listener_fd))])
    except OSError as exc:
        raise Unavailable(f"seccomp agent at {listener_path}: {exc.strerror or exc}") from None
