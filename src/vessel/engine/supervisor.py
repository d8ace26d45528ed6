"""The per-container supervisor: the process that owns a running container.

`spawn` starts it detached (new session, then a second fork so it is nobody's
child); it makes itself a child subreaper, creates and starts the container
through the OCI runtime, copies the container's output into the json-file log
and to attached clients, reaps the init, records the exit code (in the
database and in an exit file), deletes the runtime's container, unmounts the
rootfs and applies --rm.  Events go to the starting command through a pipe,
one JSON line each: created, started, or error (with Docker's exit code).
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time

__all__ = ["spawn", "main"]

_ATTACH_TIMEOUT = 60
_DRAIN_TIMEOUT = 2.0


def spawn(engine, record, wait_attach, lock_fd):
    """Start the supervisor of `record`; returns the read end of its event pipe (a text file).

    `lock_fd` (the container's flocked supervisor.lock) is inherited and stays
    open, hence locked, for the supervisor's whole life.
    """
    import vessel

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(vessel.__file__)))
    read_end, write_end = os.pipe()
    private = engine.private_dir(record.id)
    argv = [sys.executable, "-c",
            f"import sys; sys.path.insert(0, {package_parent!r}); from vessel.engine.supervisor import main; main()",
            engine.root, engine.runroot, record.id, str(write_end), "1" if wait_attach else "0"]
    with open(os.path.join(private, "supervisor.log"), "ab") as log:
        first = subprocess.Popen(argv, pass_fds=(write_end, lock_fd), start_new_session=True, cwd=private,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    os.close(write_end)
    first.wait()
    return os.fdopen(read_end, "r")


def main():
    root, runroot, container_id, events_fd, wait_attach = sys.argv[1:6]
    if os.fork() != 0:
        os._exit(0)
    # caught, not ignored: an ignored signal would stay ignored in the container's processes
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: None)
    from vessel.engine.core import Engine

    engine = Engine(root, runroot)
    try:
        Supervisor(engine, container_id, int(events_fd), wait_attach == "1").run()
    finally:
        engine.close()
    os._exit(0)


class Supervisor:
    def __init__(self, engine, container_id, events_fd, wait_attach):
        self.engine = engine
        self.record = engine.state.by_id(container_id)
        self.events = os.fdopen(events_fd, "w")
        self.wait_attach = wait_attach
        self.clients = {}
        self.outputs = {}        # fd -> stream name
        self.stdin_fd = None     # where client input goes: a pipe or the pty master
        self.master = None
        self.init_pid = 0
        self.status = None
        self.selector = selectors.DefaultSelector()

    def emit(self, event, **fields):
        if self.events is None:
            return
        try:
            self.events.write(json.dumps({"event": event, **fields}) + "\n")
            self.events.flush()
        except OSError:
            pass

    def close_events(self):
        if self.events is not None:
            try:
                self.events.close()
            except OSError:
                pass
            self.events = None

    def run(self):
        from vessel.runtime import linux

        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        record = self.record
        engine = self.engine
        listener = None
        try:
            from vessel.runtime import sync

            path = engine.attach_socket(record.id)
            if os.path.lexists(path):
                os.unlink(path)
            listener = sync.listen_unix(path, backlog=16)
            self.create()
            if self.wait_attach:
                self.emit("created")
                self.accept_first(listener)
            self.start()
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the starting command
            self.fail(exc)
            if listener is not None:
                listener.close()
            return
        from vessel.engine.core import process_start_time

        self.emit("started", pid=self.init_pid, supervisor=os.getpid(),
                  supervisor_start=process_start_time(os.getpid()))
        self.close_events()
        try:
            self.loop(listener)
        finally:
            listener.close()
            self.finish()

    # starting

    def create(self):
        from vessel.engine.logs import open_log

        record, engine = self.record, self.engine
        config = record.config
        private = engine.private_dir(record.id)
        bundle = engine.bundle_dir(record.id)
        self.log = open_log(engine.log_path(record.id), config)
        runtime_log = os.path.join(private, "runtime.log")
        if os.path.exists(runtime_log):
            os.unlink(runtime_log)
        pid_file = os.path.join(bundle, "init.pid")
        argv = list(record.runtime) + ["--log", runtime_log, "--log-format", "json",
                                       "create", "--bundle", bundle, "--pid-file", pid_file]
        given = []
        if config.tty:
            from vessel.runtime import sync

            console_path = os.path.join(bundle, "console.sock")
            if os.path.lexists(console_path):
                os.unlink(console_path)
            console = sync.listen_unix(console_path)
            argv += ["--console-socket", console_path, record.id]
            stdio = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            console = None
            if config.open_stdin:
                stdin_r, self.stdin_fd = os.pipe()
                given.append(stdin_r)
            else:
                stdin_r = subprocess.DEVNULL
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            given += [out_w, err_w]
            self.outputs = {out_r: "stdout", err_r: "stderr"}
            argv.append(record.id)
            stdio = dict(stdin=stdin_r, stdout=out_w, stderr=err_w)
        try:
            result = subprocess.run(argv, timeout=120, **stdio)
        finally:
            for fd in given:
                os.close(fd)
        if result.returncode != 0:
            if console is not None:
                console.close()
            raise StartFailure(self.runtime_error(runtime_log, "create"))
        with open(pid_file) as handle:
            self.init_pid = int(handle.read().strip())
        if console is not None:
            try:
                self.master = self.receive_master(console)
            finally:
                console.close()
            self.outputs = {self.master: "stdout"}
            self.stdin_fd = self.master
        self.engine.state.update(record.id, pid=self.init_pid)

    @staticmethod
    def receive_master(console):
        from vessel.runtime import sync

        ready = selectors.DefaultSelector()
        ready.register(console, selectors.EVENT_READ)
        if not ready.select(30):
            raise StartFailure("the runtime did not send the container's terminal")
        ready.close()
        conn = sync.accept(console)
        try:
            _, fds = sync.receive_fds(conn)
        finally:
            conn.close()
        if not fds:
            raise StartFailure("the runtime did not send the container's terminal")
        return fds[0]

    def accept_first(self, listener):
        ready = selectors.DefaultSelector()
        ready.register(listener, selectors.EVENT_READ)
        try:
            if not ready.select(_ATTACH_TIMEOUT):
                raise StartFailure("no client attached in time")
        finally:
            ready.close()
        self.add_client(listener)

    def add_client(self, listener):
        from vessel.engine.attach import FrameReader
        from vessel.runtime import sync

        conn = sync.accept(listener)
        self.clients[conn] = FrameReader()
        self.selector.register(conn, selectors.EVENT_READ, "client")

    def start(self):
        record = self.record
        runtime_log = os.path.join(self.engine.private_dir(record.id), "runtime.log")
        result = subprocess.run(list(record.runtime) + ["--log", runtime_log, "--log-format", "json",
                                                        "start", record.id],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                timeout=120)
        if result.returncode != 0:
            raise StartFailure(self.runtime_error(runtime_log, "start", result.stderr))
        from vessel.engine.core import process_start_time
        from vessel.engine.state import RUNNING

        self.engine.state.update(record.id, status=RUNNING, started=time.time(), finished=0, exit_code=0,
                                 error="", supervisor_pid=os.getpid(),
                                 supervisor_start=process_start_time(os.getpid()))
        self.engine.emit_event(record, "start")

    @staticmethod
    def runtime_error(log_path, verb, stderr=b""):
        message = ""
        try:
            with open(log_path, "rb") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("level") in ("error", "fatal") and entry.get("msg"):
                        message = entry["msg"]
        except OSError:
            pass
        if not message and stderr:
            message = stderr.decode(errors="replace").strip().splitlines()[-1]
        return message or f"the OCI runtime's {verb} failed"

    def fail(self, exc):
        from vessel.engine.core import start_error_code
        from vessel.engine.state import CREATED, EXITED, REMOVING
        from vessel.errors import VesselError

        message = str(exc) if isinstance(exc, (StartFailure, VesselError)) else f"{type(exc).__name__}: {exc}"
        code = start_error_code(message)
        engine, record = self.engine, self.record
        try:
            engine.cleanup_runtime(record)
        finally:
            if self.master is not None:
                os.close(self.master)
            if record.config.auto_remove and engine.state.transition(record.id, (CREATED, EXITED),
                                                                     status=REMOVING):
                engine.destroy(record)
            else:
                engine.state.update(record.id, error=message, exit_code=code, pid=0)
            self.emit("error", message=message, code=code)
            self.close_events()

    # running

    def loop(self, listener):
        from vessel.engine import attach

        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector = self.selector
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        selector.register(listener, selectors.EVENT_READ, "listener")
        for fd in self.outputs:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, "output")
        deadline = None
        self.reap()
        while self.outputs or self.status is None:
            if self.status is not None and deadline is None:
                deadline = time.monotonic() + _DRAIN_TIMEOUT
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if deadline is not None and timeout == 0:
                break
            for key, _ in selector.select(timeout):
                if key.data == "wake":
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif key.data == "listener":
                    self.add_client(listener)
                elif key.data == "output":
                    self.copy_output(key.fd)
                else:
                    self.client_input(key.fileobj, attach)
        signal.set_wakeup_fd(-1)
        for fd in list(self.outputs):
            self.close_output(fd)
        os.close(wake_r)
        os.close(wake_w)

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self.status = os.waitstatus_to_exitcode(status)
                if self.status < 0:
                    self.status = 128 - self.status

    def copy_output(self, fd):
        from vessel.engine import attach

        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if not data:
            self.close_output(fd)
            return
        stream = self.outputs[fd]
        self.log.write(stream, data)
        self.broadcast(attach.frame(attach.STDOUT if stream == "stdout" else attach.STDERR, data))

    def close_output(self, fd):
        self.selector.unregister(fd)
        del self.outputs[fd]
        if fd != self.master:
            os.close(fd)

    def broadcast(self, data):
        for conn in list(self.clients):
            try:
                conn.setblocking(True)
                conn.sendall(data)
            except OSError:
                self.drop_client(conn)

    def drop_client(self, conn):
        self.clients.pop(conn, None)
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()
        if not self.clients and self.stdin_fd is not None and self.stdin_fd != self.master:
            os.close(self.stdin_fd)  # Docker's StdinOnce: the attached client's end closes stdin
            self.stdin_fd = None

    def client_input(self, conn, attach):
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop_client(conn)
            return
        try:
            frames = self.clients[conn].feed(data)
        except ValueError:
            self.drop_client(conn)
            return
        for kind, payload in frames:
            if kind == attach.STDIN and self.stdin_fd is not None:
                try:
                    os.write(self.stdin_fd, payload)
                except OSError:
                    pass
            elif kind == attach.STDIN_EOF and self.stdin_fd is not None and self.stdin_fd != self.master:
                os.close(self.stdin_fd)
                self.stdin_fd = None
            elif kind == attach.RESIZE and self.master is not None:
                self.resize(payload)

    def resize(self, payload):
        from vessel.runtime import terminal

        try:
            rows, cols = (int(v) for v in payload.split())
            terminal.set_size(self.master, rows, cols)
        except (ValueError, OSError):
            pass

    # after the exit

    def finish(self):
        from vessel.engine import attach
        from vessel.engine.state import EXITED, PAUSED, REMOVING, RUNNING

        engine, record = self.engine, self.record
        code = self.status if self.status is not None else 137
        try:
            self.log.close()
            if self.stdin_fd is not None and self.stdin_fd != self.master:
                os.close(self.stdin_fd)
            if self.master is not None:
                os.close(self.master)
            with open(os.path.join(engine.private_dir(record.id), "exit"), "w") as handle:
                handle.write(str(code))
            engine.cleanup_runtime(record)
        finally:
            if engine.state.transition(record.id, (RUNNING, PAUSED), status=EXITED, exit_code=code, pid=0,
                                       finished=time.time()):
                engine.emit_event(record, "die", exitCode=code)
            if record.config.auto_remove and engine.state.transition(record.id, (EXITED,), status=REMOVING):
                engine.destroy(record)
            self.broadcast(attach.frame(attach.EXIT, str(code).encode()))
            for conn in list(self.clients):
                self.drop_client(conn)


class StartFailure(Exception):
    """The runtime refused to create or start the container."""
