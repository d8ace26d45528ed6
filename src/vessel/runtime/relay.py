"""Relaying a container's terminal to our own stdio (`run` without --console-socket)."""

import os
import select

from vessel.runtime import sync

__all__ = ["TerminalRelay"]


class TerminalRelay:
    """Receives the pty master from the init, then copies bytes both ways."""

    __slots__ = ("ours", "peer", "master", "saved_mode")

    def __init__(self):
        self.ours, self.peer = sync.stream_pair()
        self.master = None
        self.saved_mode = None

    def receive_master(self):
        self.peer.close()
        _, fds = sync.receive_fds(self.ours)
        self.ours.close()
        if not fds:
            raise OSError(5, "the container did not send its terminal")
        self.master = fds[0]
        if os.isatty(0):
            import termios
            import tty

            self.saved_mode = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # keep what was typed before the container started
        self.resize()

    def resize(self):
        if self.master is None or not os.isatty(0):
            return
        import fcntl
        import termios

        size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def copy_until_exit(self):
        """Copy stdin -> pty and pty -> stdout until the pty closes."""
        sources = [self.master, 0]
        while sources:
            try:
                ready, _, _ = select.select(sources, [], [])
            except InterruptedError:
                continue
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every slave end is closed
                    data = b""
                if not data:
                    if fd == self.master:
                        return
                    sources.remove(fd)
                    continue
                target = 1 if fd == self.master else self.master
                while data:
                    data = data[os.write(target, data):]

    def close(self):
        if self.saved_mode is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_mode)
        if self.master is not None:
            os.close(self.master)
            self.master = None
