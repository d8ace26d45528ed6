"""A slim monitor loads the engine when a command connects (monitor.wake, Engine.start's early connection).

Whether the engine is loaded shows in the monitor's open files: the engine
holds the state database open, a slim monitor does not.
"""

import os
import time

from test_engine_cli import _assert_clean, busybox_tarball, monitors, vessel  # noqa: F401 - fixtures
from test_engine_monitor import _cmdline, _monitor_pid, _wait_for


def _holds_database(pid, root):
    database = os.path.join(root, "engine", "engine.db")
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) == database:
                return True
        except OSError:
            continue
    return False


def _slim(pid, root):
    return b"--successor" in _cmdline(pid) and not _holds_database(pid, root)


def test_wake_loads_the_engine_of_a_slim_monitor(vessel):
    from vessel.engine import monitor

    vessel("run", "-d", "--name", "sleeper", "busybox", "sleep", "100")
    pid = _monitor_pid(vessel, "sleeper")
    time.sleep(2 * monitor._SLIM_AFTER)
    assert _holds_database(pid, vessel.root)  # a few containers: the engine stays loaded
    for n in range(1, monitor._SLIM_FROM):
        vessel("run", "-d", "--name", f"sleeper{n}", "busybox", "sleep", "100")
    _wait_for(lambda: _slim(pid, vessel.root))
    monitor.wake(vessel.root, vessel.runroot)
    _wait_for(lambda: _holds_database(pid, vessel.root))
    _wait_for(lambda: _slim(pid, vessel.root))  # and sheds it again when nothing comes
    assert vessel("run", "--rm", "busybox", "echo", "hi").stdout == "hi\n"
    assert monitors(vessel) == [pid]
    # serving many, it keeps the engine again: its few MB are little for each of them
    names = [f"sleeper{n}" for n in range(1, monitor._SLIM_UNTIL)]
    for name in names[monitor._SLIM_FROM - 1:]:
        vessel("run", "-d", "--name", name, "busybox", "sleep", "100")
    _wait_for(lambda: _holds_database(pid, vessel.root))
    time.sleep(2 * monitor._SLIM_AFTER)
    assert _holds_database(pid, vessel.root)
    vessel("rm", "-f", "sleeper", *names)
    _assert_clean(vessel)


def test_wake_without_a_monitor_launches_none(vessel):
    from vessel.engine import monitor

    monitor.wake(vessel.root, vessel.runroot)
    assert monitors(vessel) == []
    assert not os.path.exists(monitor.socket_path(vessel.root, vessel.runroot))
