"""linux.seccomp.listenerPath: the notify listener reaches the agent, for run and exec.

A seccomp agent (here a thread of the test) listens on a unix socket; the
runtime connects to it while the path is still reachable, loads the filter
and sends one ContainerProcessState message with the listener fd. The agent
then answers the container's notified mkdir with EACCES.
"""

import array
import fcntl
import json
import os
import select
import socket
import struct
import threading

from helpers import runtime

NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)
EACCES = 13
SYS_MKDIR, SYS_MKDIRAT = 83, 258


class Agent(threading.Thread):
    """Accepts listeners; answers every notified syscall with -EACCES; records what it got."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.messages = []
        self.notified = []
        self.stop = threading.Event()

    def run(self):
        listeners = []
        while not self.stop.is_set():
            ready, _, _ = select.select([self.server] + listeners, [], [], 0.1)
            for item in ready:
                if item is self.server:
                    conn, _ = self.server.accept()
                    fds = array.array("i")
                    data, ancdata, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4))
                    for level, kind, payload in ancdata:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.frombytes(payload[:4])
                    conn.close()
                    self.messages.append((json.loads(data), len(fds)))
                    listeners.extend(fds)
                else:
                    self._answer(item, listeners)
        for fd in listeners:
            os.close(fd)
        self.server.close()

    def _answer(self, fd, listeners):
        request = bytearray(80)
        try:
            fcntl.ioctl(fd, NOTIF_RECV, request)
        except OSError:  # the filtered process is gone
            listeners.remove(fd)
            os.close(fd)
            return
        notif_id, pid, _flags, nr = struct.unpack_from("=QIIi", request)
        self.notified.append(nr)
        response = bytearray(struct.pack("=QqiI", notif_id, 0, -EACCES, 0))
        try:
            fcntl.ioctl(fd, NOTIF_SEND, response)
        except OSError:
            pass


def _profile(path):
    return {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path, "listenerMetadata": "vessel-test",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}


def test_listener_reaches_the_agent_for_run_and_exec(root, bundle, names, tmp_path):
    path = str(tmp_path / "agent.sock")
    agent = Agent(path)
    agent.start()
    cid = names()
    b = bundle(("sh", "-c", "mkdir /made 2>&1; ls -d /made 2>&1; sleep 100"),
               edit=lambda c: c["linux"].update(seccomp=_profile(path)))
    try:
        runtime(root, "run", "-d", "--bundle", b, cid, check=True)
        out = runtime(root, "exec", cid, "mkdir", "/made-by-exec")
        assert out.returncode != 0 and b"Permission denied" in out.stderr, out
        assert not os.path.exists(os.path.join(b, "rootfs", "made"))
        assert not os.path.exists(os.path.join(b, "rootfs", "made-by-exec"))
    finally:
        runtime(root, "delete", "--force", cid)
        agent.stop.set()
        agent.join()
    assert len(agent.messages) == 2, agent.messages
    for message, fd_count in agent.messages:
        assert fd_count == 1
        assert message["fds"] == ["seccompFd"] and message["metadata"] == "vessel-test"
        assert message["state"]["id"] == cid and message["pid"] > 0
        assert os.path.realpath(message["state"]["bundle"]) == os.path.realpath(b)
    assert set(agent.notified) <= {SYS_MKDIR, SYS_MKDIRAT} and len(agent.notified) >= 2


def test_unreachable_agent_fails_create(root, bundle, names, tmp_path):
    from sectools import one_line_error

    path = str(tmp_path / "nobody-listens.sock")
    b = bundle(edit=lambda c: c["linux"].update(seccomp=_profile(path)))
    line = one_line_error(runtime(root, "run", "--bundle", b, names()))
    assert "seccomp agent" in line
    assert not os.path.exists(root) or os.listdir(root) == []
