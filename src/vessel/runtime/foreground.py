"""Waiting for a container process in the foreground (`run`, `exec` without -d)."""

import _signal
import os

__all__ = ["wait_forwarding"]

FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")


def wait_forwarding(pid, relay=None):
    """Forward signals to `pid`, relay its terminal, reap it; return a shell-style status."""

    def forward(signum, _frame):
        if signum == _signal.SIGWINCH and relay is not None:
            relay.resize()
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in FORWARDED:
        _signal.signal(getattr(_signal, name), forward)
    if relay is not None:
        relay.copy_until_exit()
    while True:
        waited, status = os.waitpid(-1, 0)
        if waited == pid:
            break
    if relay is not None:
        relay.close()
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
