"""Restart policies: `--restart no|on-failure[:N]|always|unless-stopped`, as Docker's restart manager.

The policy is parsed once into a `RestartPolicy` (kept in the container's
config). When a container's init has exited and the exit is recorded, the
monitor calls `after_exit`: the policy decides, the back-off grows (100 ms,
doubling, at most a minute; back to 100 ms when the container had run 10 s),
RestartCount goes up and the row's status is `restarting` until the timer
fires and the monitor starts the container again. A user's `stop` (or `kill` with
SIGKILL or the stop signal) marks the container manually stopped, which
cancels any pending restart and every later one until the user starts it.

There is no daemon that restarts at boot: `vessel start --all --by-restart-policy`
starts what `due_after_boot` selects, what Docker's daemon would start when it
comes up.
"""

import time

from vessel.errors import InvalidArgument
from vessel.records import record

__all__ = ["RestartPolicy", "POLICIES", "after_exit", "decide", "next_delay", "mark_stopped", "resume",
           "due_after_boot", "being_started", "settle", "start_each"]

POLICIES = ("no", "always", "on-failure", "unless-stopped")
FIRST_DELAY = 0.1           # seconds; Docker's defaultTimeout
MAX_DELAY = 60.0            # Docker's maxRestartTimeout
RESET_AFTER = 10.0          # a container that ran this long restarts after FIRST_DELAY again


@record(frozen=True)
class RestartPolicy:
    """Docker's HostConfig.RestartPolicy."""

    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def parse(cls, text):
        """The CLI's `--restart` text: no, always, unless-stopped, on-failure[:N]."""
        text = text or "no"
        name, colon, count = text.partition(":")
        if colon and not name:
            raise InvalidArgument("invalid restart policy format: no policy provided before colon")
        retries = 0
        if count:
            try:
                retries = int(count)
            except ValueError:
                raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer") \
                    from None
        return cls.validated(name, retries)

    @classmethod
    def validated(cls, name, retries=0):
        """Docker's daemon-side check of a policy name and retry count."""
        name = name or "no"
        if name not in POLICIES:
            raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                                  "'on-failure', or 'unless-stopped'")
        if not isinstance(retries, int):
            raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer")
        if name != "on-failure" and retries:
            raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'"
                                  + (" and cannot be negative" if retries < 0 else ""))
        if retries < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
        return cls(name, retries)

    @classmethod
    def from_api(cls, value):
        """docker-py's restart_policy: {"Name": ..., "MaximumRetryCount": n}, a policy text, or None."""
        if value is None or isinstance(value, RestartPolicy):
            return value or cls()
        if isinstance(value, dict):
            return cls.validated(value.get("Name") or "no", value.get("MaximumRetryCount") or 0)
        return cls.parse(str(value))

    @classmethod
    def from_json(cls, raw):
        return cls(**raw) if isinstance(raw, dict) else cls()

    def to_docker(self):
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}

    @property
    def enabled(self):
        return self.name != "no"


def decide(policy, exit_code, restart_count, manually_stopped):
    """Whether the policy restarts a container that exited with `exit_code` (Docker's ShouldRestart)."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def next_delay(previous, ran_for):
    """The back-off before the next restart: 100 ms, doubling up to a minute; reset after a 10 s run."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def after_exit(monitor, record, exit_code):
    """The monitor's exit hook: if the policy says so, mark the container restarting and set the timer."""
    from vessel.engine.state import EXITED, RESTARTING

    engine = monitor.engine
    current = engine.state.by_id(record.id)
    if current is None or current.status != EXITED or current.manually_stopped or \
            not decide(current.config.restart_policy, exit_code, current.restart_count, False):
        return
    delay = next_delay(current.restart_delay, current.finished - current.started)
    if engine.state.transition(record.id, (EXITED,), status=RESTARTING, restart_count=current.restart_count + 1,
                               restart_delay=delay):
        monitor.call_later(delay, lambda: _restart_due(monitor, record.id))


def _restart_due(monitor, container_id):
    """The back-off is over: start the container again unless the user stopped or removed it meanwhile."""
    from vessel.engine.state import EXITED, RESTARTING

    engine = monitor.engine
    if not engine.state.transition(container_id, (RESTARTING,), status=EXITED):
        return
    record = engine.state.by_id(container_id)
    engine.emit_event(record, "restart")
    monitor.restart(record)


def resume(monitor):
    """A successor monitor (after a handoff) sets the timers of the containers waiting to restart again."""
    from vessel.engine.state import RESTARTING

    for record in monitor.engine.state.all((RESTARTING,)):
        monitor.call_later(record.restart_delay, lambda container_id=record.id: _restart_due(monitor, container_id))


def mark_stopped(engine, container_id):
    """The user stopped or killed it: no restart now (a pending one is cancelled) nor after later exits."""
    from vessel.engine.state import EXITED, RESTARTING

    with engine.state.write() as db:
        db.execute("UPDATE containers SET manually_stopped = 1, status = CASE status WHEN ? THEN ? ELSE status END "
                   "WHERE id = ?", (RESTARTING, EXITED, container_id))


def due_after_boot(records):
    """The stopped containers among `records` that Docker's daemon restarts when it comes up.

    always: every one that ran before; unless-stopped: unless the user stopped
    it; on-failure: after a non-zero exit while retries remain.
    """
    from vessel.engine.state import EXITED

    return [record for record in records
            if record.status == EXITED and decide(record.config.restart_policy, record.exit_code,
                                                  record.restart_count, record.manually_stopped)]


def being_started(record):
    """Whether `record` is `created` because it is being started again (it ran before; a failed start has an error)."""
    from vessel.engine.state import CREATED

    return record.status == CREATED and bool(record.started) and not record.error


def settle(engine, record, timeout=30):
    """The fresh record once a start in progress has ended (bounded), so that a stop or rm -f acts on the result."""
    deadline = time.monotonic() + timeout
    current = engine.state.by_id(record.id)
    while current is not None and being_started(current) and time.monotonic() < deadline:
        time.sleep(0.02)
        current = engine.state.by_id(record.id)
    return current or record


def start_each(engine, records):
    """Start every record, one failure not stopping the others: [(record, VesselError or None)]."""
    from vessel.errors import VesselError

    results = []
    for record in records:
        try:
            engine.start(record.id)
        except VesselError as exc:
            results.append((record, exc))
        else:
            results.append((record, None))
    return results
