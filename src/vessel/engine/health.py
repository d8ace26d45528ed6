"""Healthchecks, as Docker runs them: a probe command in the container every interval.

`Healthcheck` is the configuration (the image's HEALTHCHECK merged with the
`--health-*` flags, durations in nanoseconds as in Docker's JSON). `HealthState`
is what `inspect` shows as `.State.Health` (Status, FailingStreak, the last 5
results), stored as JSON in the container's row. The monitor calls `watch`
when a container starts running and `unwatch` when it is gone; probes run
through `monitor.spawn_exec` and never block the monitor's loop.
"""

import time

from vessel.errors import InvalidArgument
from vessel.records import field, record
from vessel.times import parse_duration

__all__ = ["Healthcheck", "HealthState", "ProbeResult", "from_flags", "merge", "watch",
           "unwatch", "STARTING", "HEALTHY", "UNHEALTHY", "NONE"]

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_START_INTERVAL = 5_000_000_000
DEFAULT_RETRIES = 3
MINIMUM_DURATION = 1_000_000        # 1ms, Docker's container.MinimumDuration
MAX_OUTPUT = 4096                   # bytes of probe output kept (Docker's maxOutputLen)
MAX_LOG = 5                         # results kept (Docker's maxLogEntries)

def _go_duration(nanoseconds):
    """Go's Duration.String() for the durations a healthcheck uses (30s, 200ms, 1m30s)."""
    if nanoseconds % 1_000_000_000 == 0:
        seconds = nanoseconds // 1_000_000_000
        hours, rest = divmod(seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{seconds}s"
    if nanoseconds < 1_000_000_000:
        return f"{nanoseconds / 1_000_000:g}ms"
    return f"{nanoseconds / 1_000_000_000:g}s"


@record
class Healthcheck:
    """Docker's HealthConfig: Test is [] (inherit), ["NONE"], ["CMD", args...] or ["CMD-SHELL", command]."""

    test: list = field(default_factory=list)
    interval: int = 0               # nanoseconds; 0 means Docker's default
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    @classmethod
    def from_docker(cls, raw, what="Healthcheck"):
        """Docker's JSON (the image config's Healthcheck, or docker-py's healthcheck dict)."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{what} must be an object")
        values = {}
        for key, name in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period"),
                          ("StartInterval", "start_interval"), ("Retries", "retries")):
            value = raw.get(key, raw.get(name, 0)) or 0
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidArgument(f"{what}.{key} must be an integer")
            values[name] = value
        test = raw.get("Test", raw.get("test")) or []
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if not isinstance(test, list) or not all(isinstance(item, str) for item in test):
            raise InvalidArgument(f"{what}.Test must be a list of strings")
        return cls(test=list(test), **values).validated()

    @classmethod
    def from_json(cls, raw):
        return cls(**raw) if isinstance(raw, dict) else None

    def validated(self):
        """Docker's daemon-side checks."""
        for name, value in (("Interval", self.interval), ("Timeout", self.timeout),
                            ("StartPeriod", self.start_period), ("StartInterval", self.start_interval)):
            if value != 0 and value < MINIMUM_DURATION:
                raise InvalidArgument(f"{name} in Healthcheck cannot be less than 1ms")
        if self.retries < 0:
            raise InvalidArgument("Retries in Healthcheck cannot be negative")
        if self.test and self.test[0] not in ("NONE", "CMD", "CMD-SHELL"):
            raise InvalidArgument(f"unknown healthcheck type '{self.test[0]}' (expected NONE, CMD or CMD-SHELL)")
        if self.test and self.test[0] != "NONE" and len(self.test) < 2:
            raise InvalidArgument(f"healthcheck {self.test[0]} needs a command")
        return self

    def to_docker(self):
        """Inspect's Config.Healthcheck (zero durations omitted, as Docker's omitempty does)."""
        document = {"Test": list(self.test)}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout),
                           ("StartPeriod", self.start_period), ("StartInterval", self.start_interval),
                           ("Retries", self.retries)):
            if value:
                document[key] = value
        return document

    @property
    def enabled(self):
        return bool(self.test) and self.test[0] in ("CMD", "CMD-SHELL")

    def command(self):
        """The probe's argv in the container (CMD-SHELL runs through /bin/sh -c)."""
        return ["/bin/sh", "-c", self.test[1]] if self.test[0] == "CMD-SHELL" else list(self.test[1:])

    def interval_seconds(self):
        return (self.interval or DEFAULT_INTERVAL) / 1e9

    def timeout_seconds(self):
        return (self.timeout or DEFAULT_TIMEOUT) / 1e9

    def start_period_seconds(self):
        return self.start_period / 1e9

    def start_interval_seconds(self):
        return (self.start_interval or DEFAULT_START_INTERVAL) / 1e9

    def retries_or_default(self):
        return self.retries if self.retries > 0 else DEFAULT_RETRIES


def from_flags(cmd=None, interval=None, timeout=None, start_period=None, start_interval=None, retries=None,
               disabled=False):
    """The `--health-*` / `--no-healthcheck` flags (strings as typed) as a Healthcheck, or None if none given."""
    durations = {}
    for name, text, flag in (("interval", interval, "--health-interval"), ("timeout", timeout, "--health-timeout"),
                             ("start_period", start_period, "--health-start-period"),
                             ("start_interval", start_interval, "--health-start-interval")):
        durations[name] = 0 if text is None else parse_duration(text, flag)
    if retries is None:
        count = 0
    else:
        try:
            count = int(retries)
        except ValueError:
            raise InvalidArgument(f'invalid argument "{retries}" for "--health-retries" flag: strconv.ParseInt: '
                                  f'parsing "{retries}": invalid syntax') from None
    given = bool(cmd) or count != 0 or any(durations.values())
    if disabled:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return Healthcheck(test=["NONE"])
    if not given:
        return None
    for name, flag in (("interval", "--health-interval"), ("timeout", "--health-timeout")):
        if durations[name] < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
    if count < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    for name, flag in (("start_period", "--health-start-period"), ("start_interval", "--health-start-interval")):
        if durations[name] < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
    return Healthcheck(test=["CMD-SHELL", cmd] if cmd else [], retries=count, **durations).validated()


def merge(user, image):
    """The container's healthcheck: the user's settings, the image's where the user gave none (Docker's merge)."""
    if image is None or user is None:
        return user or image
    return Healthcheck(test=user.test or image.test, interval=user.interval or image.interval,
                       timeout=user.timeout or image.timeout, start_period=user.start_period or image.start_period,
                       start_interval=user.start_interval or image.start_interval,
                       retries=user.retries or image.retries)


# -- the state shown by inspect --------------------------------------------------------

@record
class ProbeResult:
    start: float
    end: float
    exit_code: int
    output: str


@record
class HealthState:
    status: str = STARTING
    failing_streak: int = 0
    log: list = field(default_factory=list)     # [ProbeResult], oldest first

    @classmethod
    def from_json(cls, raw):
        if not raw:
            return None
        return cls(raw["status"], raw["failing_streak"], [ProbeResult(**entry) for entry in raw["log"]])

    def to_json(self):
        return {"status": self.status, "failing_streak": self.failing_streak,
                "log": [vars(entry) for entry in self.log]}

    def record(self, result, healthcheck, started):
        """Docker's handleProbeResult: keep the last 5, count failures (not within the start period)."""
        self.log = (self.log + [result])[-MAX_LOG:]
        if result.exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
            return
        if self.status == STARTING and result.start - started < healthcheck.start_period_seconds():
            return
        self.failing_streak += 1
        if self.failing_streak >= healthcheck.retries_or_default():
            self.status = UNHEALTHY

    def display(self):
        """ps's suffix: "health: starting", "healthy", "unhealthy"."""
        return "health: starting" if self.status == STARTING else self.status


def truncate_output(data):
    """At most 4096 bytes of the probe's output, "..." appended when some were dropped (Docker's limitedBuffer)."""
    kept = data[:MAX_OUTPUT].decode(errors="replace")
    return kept + "..." if len(data) > MAX_OUTPUT else kept


def save(state, container_id, health):
    import json

    state.update(container_id, health=json.dumps(health.to_json()))


# -- probing, inside the monitor -------------------------------------------------------

_watchers = {}       # container id -> _Watcher, in the monitor process


def watch(monitor, record):
    """The container started running: reset its health to starting and schedule the probes."""
    healthcheck = record.config.healthcheck
    unwatch(monitor, record)
    if healthcheck is None or not healthcheck.enabled:
        return
    current = monitor.engine.state.by_id(record.id)
    if current is None:
        return
    health = current.health or HealthState()
    if not any(result.start >= current.started for result in health.log):
        # a new run (a monitor taking over after a handoff keeps what this run's probes found)
        health.status, health.failing_streak = STARTING, 0
        save(monitor.engine.state, record.id, health)
    watcher = _Watcher(monitor, current, healthcheck)
    _watchers[record.id] = watcher
    watcher.schedule()


def unwatch(monitor, record):
    """The container stopped or is gone: no more probes (a probe still running is ignored when it ends)."""
    watcher = _watchers.pop(record.id, None)
    if watcher is not None:
        watcher.stop()


class _Watcher:
    def __init__(self, monitor, record, healthcheck):
        self.monitor = monitor
        self.record = record
        self.healthcheck = healthcheck
        self.handle = None
        self.stopped = False

    def stop(self):
        self.stopped = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def next_delay(self, status):
        """Docker's getInterval: start-interval while starting in the start period, never past its end."""
        check = self.healthcheck
        elapsed = time.time() - self.record.started
        if elapsed >= check.start_period_seconds():
            return check.interval_seconds()
        remaining = check.start_period_seconds() - elapsed
        if remaining < check.interval_seconds():
            return remaining
        return check.start_interval_seconds() if status == STARTING else check.interval_seconds()

    def schedule(self, status=STARTING):
        if not self.stopped:
            self.handle = self.monitor.call_later(self.next_delay(status), self.probe)

    def probe(self):
        self.handle = None
        if self.stopped:
            return
        current = self.monitor.engine.state.by_id(self.record.id)
        if current is not None and current.status == "paused":   # Docker does not probe a paused container
            self.schedule(current.health.status if current.health else STARTING)
            return
        started = time.time()
        timeout = self.healthcheck.timeout_seconds()
        self.monitor.spawn_exec(self.record, self.healthcheck.command(), timeout,
                                lambda code, output: self.done(started, timeout, code, output))

    def done(self, started, timeout, exit_code, output):
        if self.stopped:
            return
        output = output or b""
        if exit_code is None:       # killed after the timeout
            text = truncate_output(output)
            message = f"Health check exceeded timeout ({_go_duration(int(timeout * 1e9))})"
            result = ProbeResult(started, time.time(), -1, f"{message}: {text}" if text else message)
        else:
            result = ProbeResult(started, time.time(), exit_code, truncate_output(output))
        engine = self.monitor.engine
        current = engine.state.by_id(self.record.id)
        if current is None or current.health is None:
            return
        health = current.health
        before = health.status
        health.record(result, self.healthcheck, self.record.started)
        save(engine.state, self.record.id, health)
        if health.status != before:
            engine.emit_event(self.record, f"health_status: {health.status}")
        self.schedule(health.status)
