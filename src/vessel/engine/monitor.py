"""The monitor: one process per (root, runroot) that supervises every running container.

The first `start` launches it (`connect`): a fresh interpreter, detached (new
session, double fork), child subreaper so container inits reparent to it,
exactly one at a time (a flock on <runroot>/monitor-<tag>.lock, held for
life), listening on <runroot>/monitor-<tag>.sock.  One single-threaded
selectors loop serves every container: it holds their stdio pipes or pty
masters, writes the json-file logs, serves attach clients, reaps the inits,
records exit codes (database and exit file), calls `Engine.cleanup_runtime`
and applies --rm.  It leaves by itself once it has supervised nothing for
`_IDLE_GRACE` seconds.  It loads the engine (vessel.engine.core, the
database) only to start containers and record their exits: once it has only
served running containers for `_SLIM_AFTER` seconds, and they are at least
`_SLIM_FROM` and fewer than `_SLIM_UNTIL`, it hands off to a copy of itself
without it.

vessel's own runtime is not exec'd: the monitor has vessel.runtime imported
and runs each verb in a forked child.  Other runtimes are spawned.

On the socket every message is an attach frame (vessel.engine.attach): a
client sends one REQUEST (JSON: {"op": "start"|"attach", "id": ..., "attach":
bool}), the monitor answers with one EVENT ({"event": "started"|"attached"}
or {"event": "error", "message", "code"}); an attaching connection then
carries the container's streams.

SIGHUP replaces the monitor by a fresh copy of itself (`handoff`): every fd
and the per-container state go through a socket pair (SCM_RIGHTS) to the new
program, exec'd in the same process, so that it stays the inits' parent.  A
monitor also hands off by itself when a command connects and vessel's files
have changed on disk since it started (vessel was upgraded), so that the
command is served by the code it came with.
"""

import os
import selectors
import signal
import sys
import time
import zlib

# only light modules here: a slim monitor runs on these alone (the engine's are imported where used)
from vessel.engine import attach
from vessel.errors import Unavailable, VesselError
from vessel.runtime import jsonio, sync

__all__ = ["Monitor", "connect", "request", "attach_to", "main", "runtime_error", "socket_path", "wake"]

_IDLE_GRACE = 5.0          # an idle monitor waits this long for the next start before it leaves
_SLIM_AFTER = 0.5          # a monitor quiet this long sheds the engine's code (a slim handoff) ...
# ... when it serves this many containers: the engine's ~5 MB is worth shedding only where it weighs on each
# of them (below 10 the monitor costs more than they do either way; from 40 on it is ~0.1 MB each), while
# loading it again costs the next command ~12 ms
_SLIM_FROM, _SLIM_UNTIL = 10, 40
_DRAIN_TIMEOUT = 2.0       # output is still read this long after the init exited
_CLIENT_BACKLOG = 8 << 20  # an attach client that falls this many bytes behind is dropped
_RUNTIME_TIMEOUT = 120
_CODE_CHECK_EVERY = 2.0    # a connecting command makes the monitor look for an upgrade at most this often
# vessel.runtime modules its verbs import on first use: imported once in the monitor, not in every child
_RUNTIME_MODULES = ("verbs.create", "verbs.start", "verbs.delete", "verbs.state", "verbs.kill", "verbs.exec",
                    "launcher", "init", "process", "rootfs", "terminal", "relay", "hooks", "capabilities",
                    "cgroups", "cgroups.manager", "cgroups.v1", "cgroups.v2", "cgroups.devices",
                    "cgroups.resources", "seccomp", "seccomp.compiler", "seccomp.config", "seccomp.kernel")
_HANDOFF_FDS = 200         # fds per handoff message (SCM_RIGHTS takes at most 253)


def _tag(root):
    return f"{zlib.crc32(os.fsencode(root)):08x}"


def socket_path(root, runroot):
    return os.path.join(runroot, f"monitor-{_tag(root)}.sock")


def _lock_path(root, runroot):
    return os.path.join(runroot, f"monitor-{_tag(root)}.lock")


def runtime_error(log_path, verb, stderr=b""):
    """The last error of a runtime's json --log (or of its stderr): why `verb` failed."""
    message = ""
    try:
        with open(log_path, "rb") as handle:
            for line in handle:
                try:
                    entry = jsonio.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
                    message = entry["msg"]
    except OSError:
        pass
    if not message and stderr.strip():
        message = stderr.decode(errors="replace").strip().splitlines()[-1]
    return message or f"the OCI runtime's {verb} failed"


# the client side

def connect(engine, timeout=30):
    """A connection to the monitor of `engine`'s root and runroot; launches one if none runs."""
    import fcntl

    path = socket_path(engine.root, engine.runroot)
    deadline = time.monotonic() + timeout
    os.makedirs(engine.runroot, mode=0o700, exist_ok=True)
    while True:
        try:
            return sync.connect_unix(path)
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        lock = os.open(_lock_path(engine.root, engine.runroot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a monitor is starting or leaving
            os.close(lock)
            if time.monotonic() > deadline:
                raise Unavailable("the container monitor did not answer") from None
            time.sleep(0.005)
            continue
        try:
            _launch_monitor(engine, lock)
        finally:
            os.close(lock)


def _launch_monitor(engine, lock):
    """Start a monitor that inherits the flocked `lock`; returns once it listens."""
    import subprocess

    ready_r, ready_w = os.pipe()
    argv = _monitor_argv(engine.root, engine.runroot, str(lock), str(ready_w))
    log_path = os.path.join(engine.runroot, f"monitor-{_tag(engine.root)}.log")
    try:
        with open(log_path, "ab") as log:
            first = subprocess.Popen(argv, pass_fds=(lock, ready_w), start_new_session=True, cwd="/",
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        os.close(ready_w)
        ready_w = None
        first.wait()
        with os.fdopen(ready_r, "rb") as ready:
            ready_r = None
            answer = ready.read()
    finally:
        for fd in (ready_r, ready_w):
            if fd is not None:
                os.close(fd)
    if answer != b"ready":
        raise Unavailable(f"the container monitor did not start: {answer.decode(errors='replace') or 'see ' + log_path}")


def _code_stamp():
    """(fingerprint, newest modification time) of vessel's source files and extensions (~0.4 ms to read):
    any file added, removed, or written changes the fingerprint."""
    import vessel

    files, directories = [], [os.path.dirname(vessel.__file__)]
    while directories:
        with os.scandir(directories.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        directories.append(entry.path)
                elif entry.name.endswith((".py", ".so")):
                    info = entry.stat(follow_symlinks=False)
                    files.append((entry.path, info.st_mtime_ns, info.st_size))
    return hash(frozenset(files)), max((mtime for _, mtime, _ in files), default=0)


def _monitor_argv(*args):
    """The command line of a fresh monitor: an isolated interpreter that finds vessel and its dependencies."""
    import vessel

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(vessel.__file__)))
    # site-packages too: the engine's third-party dependencies
    paths = [package_parent] + [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return [sys.executable, "-IS", "-c",
            f"import sys; sys.path[:0] = {paths!r}; from vessel.engine.monitor import main; main()", *args]


def _read_frame(sock):
    """One whole frame (kind, payload) from a blocking socket; None at EOF."""
    header = _recv_exactly(sock, 5)
    if header is None:
        return None
    size = int.from_bytes(header[1:], "big")
    payload = _recv_exactly(sock, size) if size else b""
    return None if payload is None else (header[0], payload)


def _recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None
        data += chunk
    return data


def wake(root, runroot):
    """Have the monitor, if one listens, load the engine now: a start follows (no monitor is launched)."""
    try:
        sync.connect_unix(socket_path(root, runroot)).close()
    except OSError:
        pass


def request(engine, message, sock=None):
    """Send one request (on `sock` if given, a connection from `connect`); returns (socket, the answer as a dict)."""
    sock = sock or connect(engine)
    try:
        sock.sendall(attach.frame(attach.REQUEST, jsonio.dumps(message).encode()))
        reply = _read_frame(sock)
    except BaseException:
        sock.close()
        raise
    if reply is None or reply[0] != attach.EVENT:
        return sock, {"event": "error", "message": "the container monitor exited before answering", "code": 125,
                      "lost": True}
    return sock, jsonio.loads(reply[1])


def attach_to(engine, container_id):
    """A socket carrying the streams of a running container (Docker's attach)."""
    from vessel.errors import Conflict

    sock, answer = request(engine, {"op": "attach", "id": container_id})
    if answer["event"] != "attached":
        sock.close()
        raise Conflict(answer.get("message") or "You cannot attach to a stopped container, start it first")
    return sock


# the monitor

def main():
    """Entry point of the monitor's interpreter: argv root runroot lock-fd ready-fd, or --successor fd ..."""
    if sys.argv[1] == "--successor":
        monitor = Monitor.adopt(int(sys.argv[2]))
    else:
        root, runroot, lock, ready = sys.argv[1:5]
        if os.fork() != 0:
            os._exit(0)
        monitor = Monitor.launch(root, runroot, int(lock), int(ready))
    monitor.serve()
    from vessel.engine import networking  # the default bridge monitors keep up goes with the last of them

    monitor._guarded(networking.remove_idle_default_bridge, monitor.root)
    os._exit(0)


class Timer:
    """A callback due at `when` (monotonic); `cancel()` before it ran keeps it from running."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when, callback):
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self):
        self.cancelled = True

    def __lt__(self, other):
        return self.when < other.when


class Completed:
    """A finished runtime command (the fields of subprocess.CompletedProcess that callers read)."""

    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode, stdout=b"", stderr=b""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


class Client:
    """An attached connection: frames in, a bounded queue of frames out."""

    __slots__ = ("sock", "reader", "out", "container")

    def __init__(self, sock, container, reader=None, out=b""):
        self.sock, self.container = sock, container
        self.reader = reader or attach.FrameReader()
        self.out = bytearray(out)


class Supervised:
    """One running container: its init, its streams, its log and its attached clients.

    `record` is None in a slim monitor (loaded again when the container exits).
    """

    __slots__ = ("id", "record", "init_pid", "status", "outputs", "stdin_fd", "master", "log", "clients",
                 "drain")

    def __init__(self, container_id, record=None):
        self.id = container_id
        self.record = record
        self.init_pid = 0
        self.status = None       # the init's exit code once reaped
        self.outputs = {}        # fd -> "stdout" | "stderr"
        self.stdin_fd = None     # where client input goes: a pipe or the pty master
        self.master = None
        self.log = None
        self.clients = []
        self.drain = None        # the Timer that ends draining after the exit


class StartFailure(Exception):
    """The runtime refused to create or start the container."""


def _monitor_engine(root, runroot, monitor):
    """An Engine whose runtime verbs go through `monitor` (forked in-process for vessel's runtime).

    Its detaches leave an idle default bridge up until the monitor leaves.
    """
    from vessel.engine import networking
    from vessel.engine.core import Engine

    networking.keep_default_bridge(root, monitor.call_later)

    class MonitorEngine(Engine):
        def runtime(self, record, *args, capture=True, timeout=60, **kwargs):
            return monitor.run_runtime(record, [str(a) for a in args], capture=capture, timeout=timeout)

    return MonitorEngine(root, runroot)


def _own_runtime_args(runtime):
    """The arguments after the launcher when `runtime` is vessel's own runtime, else None."""
    if len(runtime) > 3 and runtime[1] == "-IS" and runtime[2] == "-c" and "vessel.runtime.cli" in runtime[3]:
        return list(runtime[4:])
    return None


def _preload_runtime():
    import importlib

    for name in _RUNTIME_MODULES:
        if f"vessel.runtime.{name}" not in sys.modules:
            importlib.import_module(f"vessel.runtime.{name}")


def _compile_seccomp(bundle):
    """Compile the bundle's seccomp filter in the monitor (once per profile): the forked create reuses it."""
    from vessel.runtime import jsonio, launcher

    _preload_runtime()
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as handle:
            section = jsonio.loads(handle.read()).get("linux", {}).get("seccomp")
        if section is not None:
            launcher.seccomp_program(section)
    except (OSError, ValueError, VesselError):
        pass  # the runtime's create reports it


def _hook(module, name):
    """vessel.engine.<module>.<name> if another part of the engine provides it, else None."""
    import importlib

    try:
        found = importlib.import_module(f"vessel.engine.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"vessel.engine.{module}":
            return None
        raise
    return getattr(found, name, None)


class Monitor:
    """The loop that owns every running container of one (root, runroot).

    The engine (vessel.engine.core, the database) is imported and opened on
    first use; a monitor that has only running containers (`_SLIM_FROM` up to
    `_SLIM_UNTIL`) to serve for `_SLIM_AFTER` seconds hands off to a fresh copy of itself without it, and
    loads it again on the next connection (a starting command connects before
    it prepares the bundle, so both happen at once).
    """

    def __init__(self, root, runroot, lock_fd, listener):
        from vessel.runtime import linux

        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        self.root, self.runroot = root, runroot
        self._engine = None
        self.lock_fd = lock_fd
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.containers = {}     # id -> Supervised
        self.pending = {}        # connection that has not sent its request yet -> FrameReader
        self.children = {}       # pid -> callback(exit code) for processes started with spawn_exec
        self.timers = []         # heap of Timer
        self.idle_since = self.active_since = time.monotonic()
        self.handoff_requested = False
        self.code_stamp, self.code_checked = _code_stamp(), time.monotonic()
        self.pid = os.getpid()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self.selector.register(listener, selectors.EVENT_READ, ("listener", None))
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGHUP, self._on_hup)
        # caught, not ignored: an ignored signal would stay ignored in the container's processes
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)

    @property
    def engine(self):
        if self._engine is None:
            self._engine = _monitor_engine(self.root, self.runroot, self)
        return self._engine

    @property
    def start_time(self):
        from vessel.engine.core import process_start_time

        return process_start_time(self.pid)

    @classmethod
    def launch(cls, root, runroot, lock_fd, ready_fd):
        """The first monitor: listen, then tell the launching command (on `ready_fd`)."""
        os.set_inheritable(lock_fd, False)
        try:
            path = socket_path(root, runroot)
            if os.path.lexists(path):
                os.unlink(path)  # a killed monitor's
            listener = sync.listen_unix(path, backlog=128)
            monitor = cls(root, runroot, lock_fd, listener)
        except BaseException as exc:
            os.write(ready_fd, f"{type(exc).__name__}: {exc}".encode())
            os.close(ready_fd)
            raise
        os.write(ready_fd, b"ready")
        os.close(ready_fd)
        return monitor

    # public interface for the engine's other parts (restart policies, health checks)

    def call_later(self, delay, callback):
        """Run `callback()` from the loop after `delay` seconds; returns a handle with cancel()."""
        import heapq

        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        heapq.heappush(self.timers, timer)
        return timer

    def spawn_exec(self, record, argv, timeout, on_done):
        """Run `argv` in the running container without blocking the loop.

        `on_done(exit_code, output)` gets the exit code and the combined output
        (bytes), or exit code None when `timeout` seconds passed first (the
        command is then killed).
        """
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        # the process in the container: other runtimes (runc) do not run it in their process group
        pid_file = os.path.join(self.engine.bundle_dir(record.id), f"exec-{time.monotonic_ns()}.pid")
        try:
            pid = self._launch(record, ["exec", "--pid-file", pid_file, record.id, *argv], (None, out_w, out_w),
                               new_group=True)
        finally:
            os.close(out_w)
        os.set_blocking(out_r, False)
        job = {"pid": pid, "output": bytearray(), "fd": out_r, "code": None, "done": False, "timer": None}

        def forget_pid_file():
            try:
                os.unlink(pid_file)
            except FileNotFoundError:
                pass

        def finish():
            if job["done"] or job["fd"] is not None or job["pid"] in self.children:
                return
            job["done"] = True
            if job["timer"] is not None:
                job["timer"].cancel()
            forget_pid_file()
            on_done(job["code"], bytes(job["output"]))

        def exited(code):
            job["code"] = code
            finish()

        def expire():
            if job["done"]:
                return
            try:
                with open(pid_file) as handle:
                    os.kill(int(handle.read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            forget_pid_file()
            job["done"] = True
            on_done(None, bytes(job["output"]))

        job["finish"] = finish
        self.children[pid] = exited
        job["timer"] = self.call_later(timeout, expire)
        self.selector.register(out_r, selectors.EVENT_READ, ("exec", job))

    def restart(self, record):
        """Start `record` again from inside the monitor (restart policies): prepare, create, start.

        Returns whether it runs; a failure is recorded on the container as for `start`.
        """
        from vessel.engine.core import start_error_code
        from vessel.engine.state import CREATED, EXITED

        engine = self.engine
        if record.id in self.containers:
            return True
        if not engine.state.transition(record.id, (CREATED, EXITED), status=CREATED, error=""):
            return False
        try:
            engine.cleanup_runtime(record)
            engine.prepare_bundle(record)
        except VesselError as exc:
            engine.state.update(record.id, error=str(exc), exit_code=start_error_code(str(exc)))
            return False
        return self.begin(engine.state.by_id(record.id) or record, None)[0] is not None

    # the loop

    def serve(self):
        """Run until no container, client or child is left for `_IDLE_GRACE` seconds."""
        import heapq

        self.reap()
        while True:
            if self.handoff_requested:
                self.handoff()
            now = time.monotonic()
            while self.timers and (self.timers[0].cancelled or self.timers[0].when <= now):
                timer = heapq.heappop(self.timers)
                if not timer.cancelled:
                    self._guarded(timer.callback)
            if self.pending or self.children or any(not t.cancelled for t in self.timers):
                self.active_since = now
            if self.busy():
                self.idle_since = now
            elif now - self.idle_since >= _IDLE_GRACE and self.leave():
                return
            timeout = self.idle_since + _IDLE_GRACE - now if not self.busy() else None
            if self._engine is not None and _SLIM_FROM <= len(self.containers) < _SLIM_UNTIL and \
                    not self.handoff_requested:
                if now - self.active_since >= _SLIM_AFTER:
                    self.handoff(slim=True)
                timeout = self.active_since + _SLIM_AFTER - now if timeout is None else timeout
            if self.timers:
                due = max(0.0, self.timers[0].when - now)
                timeout = due if timeout is None else min(timeout, due)
            for key, mask in self.selector.select(timeout):
                self._guarded(self.dispatch, key, mask)

    def dispatch(self, key, mask):
        """Handle one ready fd of the loop."""
        kind, item = key.data
        if kind == "wake":
            self._drain_wake()
            self.reap()
        elif kind == "listener":
            self.accept()
        elif kind == "request":
            self.read_request(key.fileobj)
        elif kind == "output":
            self.copy_output(item, key.fd)
        elif kind == "client":
            if mask & selectors.EVENT_WRITE:
                self.flush_client(item)
            if mask & selectors.EVENT_READ and item.container is not None:
                self.client_input(item)
        elif kind == "exec":
            self.exec_output(item)

    def busy(self):
        return bool(self.containers or self.pending or self.children or
                    any(not t.cancelled for t in self.timers))

    def leave(self):
        """Stop listening unless a connection is already queued; True when the monitor may exit."""
        path = socket_path(self.root, self.runroot)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener.setblocking(False)
        try:
            conn = sync.accept(self.listener)
        except BlockingIOError:
            conn = None
        if conn is None:
            self.selector.unregister(self.listener)
            self.listener.close()
            if self._engine is not None:
                self._engine.close()
            return True
        # someone connected just now: listen again (we still hold the lock, nobody else can)
        self.selector.unregister(self.listener)
        self.listener.close()
        self.listener = sync.listen_unix(path, backlog=128)
        self.selector.register(self.listener, selectors.EVENT_READ, ("listener", None))
        self._add_pending(conn)
        return False

    def _guarded(self, callback, *args):
        """Run an event handler, hook or timer callback; its failure is logged, never the monitor's end."""
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - one container's hook must not stop the others
            import traceback

            traceback.print_exc()

    def _drain_wake(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _on_hup(self, *_):
        self.handoff_requested = True

    def accept(self):
        self.listener.setblocking(False)
        while True:
            try:
                conn = sync.accept(self.listener)
            except BlockingIOError:
                return
            self._add_pending(conn)
            if self._upgraded():
                self.handoff_requested = True  # the new code serves this command: the handoff takes it along
            elif self._engine is None:  # slim: loaded while the command prepares what it asks for (a start)
                self.load_engine()

    def _upgraded(self):
        """Whether vessel's files changed since this program started (looked at every _CODE_CHECK_EVERY s),
        and have not changed for as long (an install still writing them is left to finish first)."""
        now = time.monotonic()
        if self.handoff_requested or now - self.code_checked < _CODE_CHECK_EVERY:
            return False
        self.code_checked = now
        stamp = _code_stamp()
        return stamp[0] != self.code_stamp[0] and time.time_ns() - stamp[1] >= _CODE_CHECK_EVERY * 1e9

    def load_engine(self):
        """The engine, the runtime's modules and Docker's default seccomp filter, before a start needs them."""
        from vessel.runtime import defaults, launcher

        self._engine = _monitor_engine(self.root, self.runroot, self)
        _preload_runtime()
        section = defaults.default_seccomp()
        if section is not None:
            launcher.seccomp_program(section)  # the section most bundles have: their create finds it compiled

    def _add_pending(self, conn, reader=None):
        conn.setblocking(False)
        self.pending[conn] = reader or attach.FrameReader()
        self.selector.register(conn, selectors.EVENT_READ, ("request", None))

    def read_request(self, conn):
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        reader = self.pending[conn]
        try:
            frames = reader.feed(data) if data else None
        except ValueError:
            frames = None
        if not frames:
            if frames is None:
                self._forget_pending(conn)
                conn.close()
            return
        self._forget_pending(conn)
        kind, payload = frames[0]
        try:
            message = jsonio.loads(payload) if kind == attach.REQUEST else {}
        except ValueError:
            message = {}
        op = message.get("op")
        if op == "start":
            self.handle_start(conn, message)
        elif op == "attach":
            self.handle_attach(conn, message, reader)
        else:
            self._reply(conn, {"event": "error", "message": f"unknown monitor request {op!r}", "code": 125})
            conn.close()

    def _forget_pending(self, conn):
        del self.pending[conn]
        self.selector.unregister(conn)

    @staticmethod
    def _reply(conn, event):
        conn.setblocking(True)
        try:
            conn.sendall(attach.frame(attach.EVENT, jsonio.dumps(event).encode()))
        except OSError:
            pass

    def handle_start(self, conn, message):
        from vessel.engine.state import CREATED

        record = self.engine.state.by_id(message.get("id", ""))
        if record is None or record.status != CREATED or record.id in self.containers:
            self._reply(conn, {"event": "error", "code": 125,
                               "message": f"container {message.get('id', '')[:12]} cannot be started now"})
            conn.close()
            return
        client = Client(conn, None) if message.get("attach") else None
        started, error = self.begin(record, client)
        if started is None:
            self._reply(conn, error)
            conn.close()
            return
        self._reply(conn, {"event": "started", "pid": started.init_pid, "monitor": self.pid,
                           "monitor_start": self.start_time})
        if client is None:
            conn.close()

    def handle_attach(self, conn, message, reader):
        supervised = self.containers.get(message.get("id", ""))
        if supervised is None or supervised.status is not None:
            self._reply(conn, {"event": "error", "code": 125,
                               "message": "You cannot attach to a stopped container, start it first"})
            conn.close()
            return
        self._reply(conn, {"event": "attached"})
        self._add_client(supervised, Client(conn, supervised, reader))

    def _add_client(self, supervised, client):
        client.container = supervised
        client.sock.setblocking(False)
        supervised.clients.append(client)
        self.selector.register(client.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0),
                               ("client", client))

    # starting

    def begin(self, record, client):
        """Create and start `record` (its bundle is prepared): (Supervised, None) or (None, error event).

        `client`, if any, is attached before the container's process starts.
        """
        from vessel.engine import networking  # here: a slim monitor does without it

        self.active_since = time.monotonic()
        supervised = Supervised(record.id, record)
        try:
            networking.attach(self.engine, record)  # endpoints and ports in the namespace prepare_bundle made
            self.create(supervised)
            if client is not None:
                self._add_client(supervised, client)
            self.containers[record.id] = supervised
            self.start(supervised)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the starting command
            self.containers.pop(record.id, None)
            if client is not None:
                self._drop_client(client, close=False)
            return None, self.fail(supervised, exc)
        for fd in supervised.outputs:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, ("output", supervised))
        watch = _hook("health", "watch")
        if watch is not None:
            self._guarded(watch, self, supervised.record)
        return supervised, None

    def _runtime_log(self, record):
        return os.path.join(self.engine.private_dir(record.id), "runtime.log")

    def create(self, supervised):
        from vessel.engine.logs import open_log

        record, engine = supervised.record, self.engine
        config = record.config
        bundle = engine.bundle_dir(record.id)
        supervised.log = open_log(engine.log_path(record.id), config)
        runtime_log = self._runtime_log(record)
        try:
            os.unlink(runtime_log)
        except FileNotFoundError:
            pass
        pid_file = os.path.join(bundle, "init.pid")
        args = ["--log", runtime_log, "--log-format", "json", "create", "--bundle", bundle, "--pid-file", pid_file]
        given = []
        console = None
        if config.tty:
            console_path = os.path.join(bundle, "console.sock")
            if os.path.lexists(console_path):
                os.unlink(console_path)
            console = sync.listen_unix(console_path)
            args += ["--console-socket", console_path, record.id]
            stdio = (None, None, None)
        else:
            stdin_r = None
            if config.open_stdin:
                stdin_r, supervised.stdin_fd = os.pipe2(os.O_CLOEXEC)
                given.append(stdin_r)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            given += [out_w, err_w]
            supervised.outputs = {out_r: "stdout", err_r: "stderr"}
            args.append(record.id)
            stdio = (stdin_r, out_w, err_w)
        if _own_runtime_args(record.runtime) is not None:
            _compile_seccomp(bundle)
        try:
            result = self.run_runtime(record, args, stdio=stdio, capture=False, timeout=_RUNTIME_TIMEOUT)
        finally:
            for fd in given:
                os.close(fd)
        try:
            if result.returncode != 0:
                raise StartFailure(runtime_error(runtime_log, "create", result.stderr))
            with open(pid_file) as handle:
                supervised.init_pid = int(handle.read().strip())
            if console is not None:
                supervised.master = self._receive_master(console)
                supervised.outputs = {supervised.master: "stdout"}
                supervised.stdin_fd = supervised.master
        finally:
            if console is not None:
                console.close()
        engine.state.update(record.id, pid=supervised.init_pid)

    @staticmethod
    def _receive_master(console):
        ready = selectors.DefaultSelector()
        try:
            ready.register(console, selectors.EVENT_READ)
            if not ready.select(30):
                raise StartFailure("the runtime did not send the container's terminal")
        finally:
            ready.close()
        conn = sync.accept(console)
        try:
            _, fds = sync.receive_fds(conn)
        finally:
            conn.close()
        if not fds:
            raise StartFailure("the runtime did not send the container's terminal")
        return fds[0]

    def start(self, supervised):
        from vessel.engine.state import RUNNING

        record = supervised.record
        runtime_log = self._runtime_log(record)
        result = self.run_runtime(record, ["--log", runtime_log, "--log-format", "json", "start", record.id],
                                  capture=True, timeout=_RUNTIME_TIMEOUT)
        if result.returncode != 0:
            raise StartFailure(runtime_error(runtime_log, "start", result.stderr))
        self.engine.state.update(record.id, status=RUNNING, started=time.time(), finished=0, exit_code=0,
                                 error="", supervisor_pid=self.pid, supervisor_start=self.start_time)
        self.engine.emit_event(record, "start")

    def fail(self, supervised, exc):
        """Undo a start that failed; returns the error event for the starting command."""
        from vessel.engine.core import start_error_code
        from vessel.engine.state import CREATED, EXITED, REMOVING

        message = str(exc) if isinstance(exc, (StartFailure, VesselError)) else f"{type(exc).__name__}: {exc}"
        code = start_error_code(message)
        engine, record = self.engine, supervised.record
        try:
            self._close_streams(supervised)
            engine.cleanup_runtime(record)
        finally:
            if record.config.auto_remove and engine.state.transition(record.id, (CREATED, EXITED),
                                                                     status=REMOVING):
                engine.destroy(record)
            else:
                engine.state.update(record.id, error=message, exit_code=code, pid=0)
        return {"event": "error", "message": message, "code": code}

    # the runtime

    def run_runtime(self, record, args, stdio=(None, None, None), capture=True, timeout=60):
        """Run one runtime command to its end (stdout and stderr captured unless given or not `capture`)."""
        captured = {}
        stdin, stdout, stderr = stdio
        ours = []
        if capture:
            if stdout is None:
                out_r, stdout = os.pipe2(os.O_CLOEXEC)
                captured[out_r] = bytearray()
                ours.append(stdout)
            if stderr is None:
                err_r, stderr = os.pipe2(os.O_CLOEXEC)
                captured[err_r] = bytearray()
                ours.append(stderr)
        try:
            pid = self._launch(record, args, (stdin, stdout, stderr))
        finally:
            for fd in ours:
                os.close(fd)
        code = self._wait(pid, captured, timeout)
        results = [bytes(data) for data in captured.values()]
        for fd in captured:
            os.close(fd)
        if capture:
            out = results.pop(0) if stdio[1] is None else b""
            err = results.pop(0) if stdio[2] is None else b""
            return Completed(code, out, err)
        return Completed(code)

    def _wait(self, pid, captured, timeout):
        """The exit code of our child `pid`, reading `captured` pipes meanwhile; SIGKILL after `timeout`."""
        deadline = time.monotonic() + timeout
        waiter = selectors.DefaultSelector()
        pidfd = os.pidfd_open(pid)
        try:
            waiter.register(pidfd, selectors.EVENT_READ)
            for fd in captured:
                os.set_blocking(fd, False)
                waiter.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.kill(pid, signal.SIGKILL)  # then wait for it without a deadline
                    deadline = float("inf")
                for key, _ in waiter.select(None if deadline == float("inf") else remaining):
                    if key.fd == pidfd:
                        _, status = os.waitpid(pid, 0)
                        for fd in captured:
                            self._read_available(fd, captured[fd])
                        code = os.waitstatus_to_exitcode(status)
                        return 128 - code if code < 0 else code
                    if not self._read_available(key.fd, captured[key.fd]):
                        waiter.unregister(key.fd)
        finally:
            waiter.close()
            os.close(pidfd)

    @staticmethod
    def _read_available(fd, into):
        """Append what `fd` has now; False at EOF."""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            into += chunk

    def _launch(self, record, args, stdio, new_group=False):
        """Start the container's runtime with `args` on `stdio` (fds or None for /dev/null); returns its pid."""
        own = _own_runtime_args(record.runtime)
        if own is None:
            actions = []
            devnull = None
            for target, fd in enumerate(stdio):
                if fd is None:
                    if devnull is None:
                        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                    fd = devnull
                actions.append((os.POSIX_SPAWN_DUP2, fd, target))
            group = {"setpgroup": 0} if new_group else {}
            try:
                return os.posix_spawn(record.runtime[0], list(record.runtime) + list(args), os.environ,
                                      file_actions=actions, **group,
                                      setsigdef=(signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
            finally:
                if devnull is not None:
                    os.close(devnull)
        from vessel.runtime import cli

        _preload_runtime()
        pid = os.fork()
        if pid != 0:
            return pid
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            if new_group:
                os.setpgid(0, 0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for target, fd in enumerate(stdio):
                os.dup2(devnull if fd is None else fd, target)
            from vessel.runtime import linux

            linux.close_range(3)
            import gc

            gc.disable()
            code = cli.main(own + list(args))
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - the child must never return into the monitor's loop
            pass
        os._exit(code)

    # running

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            callback = self.children.pop(pid, None)
            if callback is not None:
                self._guarded(callback, code)
                continue
            for supervised in list(self.containers.values()):
                if supervised.init_pid == pid and supervised.status is None:
                    supervised.status = code
                    self._exited(supervised)

    def _exited(self, supervised):
        if not supervised.outputs:
            self.finish(supervised)
        elif supervised.drain is None:
            supervised.drain = self.call_later(_DRAIN_TIMEOUT, lambda: self.finish(supervised))

    def copy_output(self, supervised, fd):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if not data:
            self._close_output(supervised, fd)
            if supervised.status is not None and not supervised.outputs:
                self.finish(supervised)
            return
        stream = supervised.outputs[fd]
        supervised.log.write(stream, data)
        self.broadcast(supervised, attach.frame(attach.STDOUT if stream == "stdout" else attach.STDERR, data))

    def _close_output(self, supervised, fd):
        self.selector.unregister(fd)
        del supervised.outputs[fd]
        if fd != supervised.master:
            os.close(fd)

    def broadcast(self, supervised, data):
        for client in list(supervised.clients):
            client.out += data
            self.flush_client(client)

    def flush_client(self, client):
        try:
            while client.out:
                sent = client.sock.send(client.out)
                del client.out[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop_client(client)
            return
        if len(client.out) > _CLIENT_BACKLOG:
            self._drop_client(client)
            return
        try:
            self.selector.modify(client.sock, selectors.EVENT_READ |
                                 (selectors.EVENT_WRITE if client.out else 0), ("client", client))
        except (KeyError, ValueError):
            pass

    def _drop_client(self, client, close=True):
        supervised = client.container
        if supervised is not None and client in supervised.clients:
            supervised.clients.remove(client)
        try:
            self.selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        if close:
            client.sock.close()
        if supervised is not None and not supervised.clients and supervised.stdin_fd is not None \
                and supervised.stdin_fd != supervised.master:
            os.close(supervised.stdin_fd)  # Docker's StdinOnce: the attached client's end closes stdin
            supervised.stdin_fd = None

    def client_input(self, client):
        supervised = client.container
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_client(client)
            return
        try:
            frames = client.reader.feed(data)
        except ValueError:
            self._drop_client(client)
            return
        for kind, payload in frames:
            if kind == attach.STDIN and supervised.stdin_fd is not None:
                try:
                    os.write(supervised.stdin_fd, payload)
                except OSError:
                    pass
            elif kind == attach.STDIN_EOF and supervised.stdin_fd is not None \
                    and supervised.stdin_fd != supervised.master:
                os.close(supervised.stdin_fd)
                supervised.stdin_fd = None
            elif kind == attach.RESIZE and supervised.master is not None:
                self._resize(supervised.master, payload)

    @staticmethod
    def _resize(master, payload):
        from vessel.runtime import terminal

        try:
            rows, cols = (int(v) for v in payload.split())
            terminal.set_size(master, rows, cols)
        except (ValueError, OSError):
            pass

    def exec_output(self, job):
        if self._read_available(job["fd"], job["output"]):
            return
        self.selector.unregister(job["fd"])
        os.close(job["fd"])
        job["fd"] = None
        job["finish"]()

    # after the exit

    def _close_streams(self, supervised):
        for fd in list(supervised.outputs):
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass
            if fd != supervised.master:
                os.close(fd)
        supervised.outputs = {}
        if supervised.stdin_fd is not None and supervised.stdin_fd != supervised.master:
            os.close(supervised.stdin_fd)
        supervised.stdin_fd = None
        if supervised.master is not None:
            os.close(supervised.master)
            supervised.master = None
        if supervised.log is not None:
            supervised.log.close()
            supervised.log = None

    def finish(self, supervised):
        """The init exited: record it, undo the runtime's container, apply --rm, tell the clients."""
        from vessel.engine.state import EXITED, PAUSED, REMOVING, RUNNING

        if self.containers.get(supervised.id) is not supervised:
            return
        del self.containers[supervised.id]
        self.active_since = time.monotonic()
        if supervised.drain is not None:
            supervised.drain.cancel()
        engine = self.engine
        code = supervised.status if supervised.status is not None else 137
        record = supervised.record or engine.state.by_id(supervised.id)
        if record is None:  # its row is gone: nothing left to record
            self._close_streams(supervised)
            self._tell_exit(supervised, code)
            return
        removed = False
        try:
            self._close_streams(supervised)
            self._write_exit_file(record.id, code)
            engine.cleanup_runtime(record)
        finally:
            if engine.state.transition(record.id, (RUNNING, PAUSED), status=EXITED, exit_code=code, pid=0,
                                       finished=time.time()):
                engine.emit_event(record, "die", exitCode=code)
            unwatch = _hook("health", "unwatch")
            if unwatch is not None:
                self._guarded(unwatch, self, record)
            if record.config.auto_remove and engine.state.transition(record.id, (EXITED,), status=REMOVING):
                removed = True
                self._guarded(engine.destroy, record)
            self._tell_exit(supervised, code)
        if not removed:
            after_exit = _hook("restart", "after_exit")
            if after_exit is not None:
                current = engine.state.by_id(record.id)
                if current is not None:
                    self._guarded(after_exit, self, current, code)

    def _tell_exit(self, supervised, code):
        """The exit code to every attached client, as the last frame."""
        for client in list(supervised.clients):
            client.out += attach.frame(attach.EXIT, str(code).encode())
            client.sock.setblocking(True)
            self.flush_client(client)
            self._drop_client(client)

    def _write_exit_file(self, container_id, code):
        path = os.path.join(self.engine.private_dir(container_id), "exit")
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(str(code))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    # handoff

    def handoff(self, slim=False):
        """Replace this program by a fresh monitor in the same process, keeping every container.

        The state and every fd are queued on a socket pair (SCM_RIGHTS), then
        the process execs the monitor anew, which reads them back: being the
        same process, it stays the parent of the inits it reaps.  A `slim`
        successor does not load the engine (nothing is pending: no timers,
        children or requests), which keeps an idle monitor small.
        """
        import socket

        self.handoff_requested = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = [self.lock_fd, self.listener.fileno()]
        state = {"root": self.root, "runroot": self.runroot, "slim": slim, "containers": [], "pending": [],
                 "children": sorted(self.children)}

        def index(fd):
            fds.append(fd)
            return len(fds) - 1

        def client_state(client):
            return {"sock": index(client.sock.fileno()), "buffer": client.reader.buffer.decode("latin-1"),
                    "out": bytes(client.out).decode("latin-1")}

        for supervised in self.containers.values():
            log = supervised.log
            state["containers"].append({
                "id": supervised.id, "init_pid": supervised.init_pid, "status": supervised.status,
                "outputs": [[index(fd), stream] for fd, stream in supervised.outputs.items()],
                "master": None if supervised.master is None else index(supervised.master),
                "stdin": None if supervised.stdin_fd is None or supervised.stdin_fd == supervised.master
                else index(supervised.stdin_fd),
                "log": [index(log.handle.fileno()), log.path, log.max_size, log.max_file]
                if hasattr(log, "handle") else None,
                "clients": [client_state(c) for c in supervised.clients]})
        for conn, reader in self.pending.items():
            state["pending"].append({"sock": index(conn.fileno()), "buffer": reader.buffer.decode("latin-1")})
        header = jsonio.dumps(state).encode()
        ours.sendall(len(header).to_bytes(8, "big") + header)
        for first in range(0, len(fds), _HANDOFF_FDS):
            sync.send_fds(ours, b"f", fds[first:first + _HANDOFF_FDS])
        ours.close()
        os.set_inheritable(theirs.fileno(), True)
        signal.set_wakeup_fd(-1)
        sys.stdout.flush()
        sys.stderr.flush()
        # root and runroot only name it in ps: the state comes through the socket
        os.execv(sys.executable, _monitor_argv("--successor", str(theirs.fileno()), self.root, self.runroot))

    @classmethod
    def adopt(cls, channel_fd):
        """The successor's side of `handoff`: read the state and the fds, take every container over."""
        import socket

        from vessel.engine.logs import LogWriter, NoLog

        channel = socket.socket(fileno=channel_fd)
        size = int.from_bytes(_recv_exactly(channel, 8), "big")
        state = jsonio.loads(_recv_exactly(channel, size))
        fds = []
        while True:
            _, received = sync.receive_fds(channel, size=1, max_fds=_HANDOFF_FDS)
            if not received:
                break
            fds.extend(received)
        channel.close()
        for fd in fds:
            os.set_inheritable(fd, False)
        listener = socket.socket(fileno=fds[1])
        monitor = cls(state["root"], state["runroot"], fds[0], listener)
        for pid in state["children"]:
            monitor.children[pid] = lambda code: None  # their callers lived in the old program
        for entry in state["containers"]:
            supervised = Supervised(entry["id"])
            supervised.init_pid = entry["init_pid"]
            supervised.status = entry["status"]
            supervised.outputs = {fds[i]: stream for i, stream in entry["outputs"]}
            supervised.master = None if entry["master"] is None else fds[entry["master"]]
            supervised.stdin_fd = supervised.master if entry["stdin"] is None else fds[entry["stdin"]]
            if entry["log"] is None:
                supervised.log = NoLog()
            else:
                log_fd, path, max_size, max_file = entry["log"]
                supervised.log = LogWriter(path, max_size, max_file, handle=os.fdopen(fds[log_fd], "ab", buffering=0))
            monitor.containers[supervised.id] = supervised
            for fd in supervised.outputs:
                os.set_blocking(fd, False)
                monitor.selector.register(fd, selectors.EVENT_READ, ("output", supervised))
            for item in entry["clients"]:
                reader = attach.FrameReader()
                reader.buffer = item["buffer"].encode("latin-1")
                client = Client(socket.socket(fileno=fds[item["sock"]]), supervised, reader,
                                item["out"].encode("latin-1"))
                monitor._add_client(supervised, client)
        for item in state["pending"]:
            reader = attach.FrameReader()
            reader.buffer = item["buffer"].encode("latin-1")
            monitor._add_pending(socket.socket(fileno=fds[item["sock"]]), reader)
        if not state["slim"]:
            monitor.rearm()
        return monitor

    def rearm(self):
        """After a full handoff: the records, the rows' monitor, health probes and restart timers again."""
        engine = self.engine
        watch = _hook("health", "watch")
        for supervised in list(self.containers.values()):
            supervised.record = engine.state.by_id(supervised.id)
            if supervised.record is None:
                continue
            engine.state.update(supervised.id, supervisor_pid=self.pid, supervisor_start=self.start_time)
            if watch is not None:
                self._guarded(watch, self, supervised.record)
            if supervised.status is not None:
                self._exited(supervised)
        resume = _hook("restart", "resume")  # the back-off timers of containers waiting to restart
        if resume is not None:
            self._guarded(resume, self)
