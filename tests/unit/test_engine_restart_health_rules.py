"""Restart policies and healthchecks: parsing, Docker's decisions and the health state machine."""

import pytest

from vessel.engine import health
from vessel.engine.health import Healthcheck, HealthState, ProbeResult
from vessel.engine.model import ContainerConfig
from vessel.engine.restart import RestartPolicy, decide, due_after_boot, next_delay
from vessel.errors import InvalidArgument
from vessel.times import parse_duration


@pytest.mark.parametrize("text,policy", [
    ("no", RestartPolicy()), ("", RestartPolicy()), ("always", RestartPolicy("always")),
    ("unless-stopped", RestartPolicy("unless-stopped")), ("on-failure", RestartPolicy("on-failure")),
    ("on-failure:3", RestartPolicy("on-failure", 3)),
])
def test_restart_policy_parse(text, policy):
    assert RestartPolicy.parse(text) == policy


@pytest.mark.parametrize("text,message", [
    ("sometimes", "invalid restart policy: unknown policy 'sometimes'"),
    (":3", "invalid restart policy format: no policy provided before colon"),
    ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
    ("on-failure:-1", "maximum retry count cannot be negative"),
    ("always:3", "maximum retry count can only be used with 'on-failure'"),
])
def test_restart_policy_errors(text, message):
    with pytest.raises(InvalidArgument, match=message):
        RestartPolicy.parse(text)


def test_restart_policy_from_api_and_json():
    assert RestartPolicy.from_api({"Name": "on-failure", "MaximumRetryCount": 2}) == RestartPolicy("on-failure", 2)
    assert RestartPolicy.from_api(None) == RestartPolicy()
    assert RestartPolicy.from_api("always").to_docker() == {"Name": "always", "MaximumRetryCount": 0}
    config = ContainerConfig(image="busybox", restart_policy=RestartPolicy("on-failure", 2))
    assert ContainerConfig.from_json(config.to_json()).restart_policy == RestartPolicy("on-failure", 2)
    assert ContainerConfig.from_json({"image": "busybox"}).restart_policy == RestartPolicy()


def test_restart_decisions():
    on_failure_2 = RestartPolicy("on-failure", 2)
    assert decide(on_failure_2, 1, 0, False) and decide(on_failure_2, 1, 1, False)
    assert not decide(on_failure_2, 1, 2, False)
    assert not decide(on_failure_2, 0, 0, False)
    assert decide(RestartPolicy("on-failure"), 3, 100, False)
    assert decide(RestartPolicy("always"), 0, 5, True)          # the boot rule; a pending stop cancels elsewhere
    assert decide(RestartPolicy("unless-stopped"), 0, 0, False)
    assert not decide(RestartPolicy("unless-stopped"), 0, 0, True)
    assert not decide(RestartPolicy(), 1, 0, False)


def test_back_off_doubles_to_a_minute_and_resets_after_ten_seconds():
    delays, delay = [], 0
    for _ in range(12):
        delay = next_delay(delay, 0.5)
        delays.append(delay)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60
    assert next_delay(60, 10.0) == 0.1


@pytest.mark.parametrize("text,nanoseconds", [
    ("0", 0), ("200ms", 200_000_000), ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000),
    ("10us", 10_000), ("3s", 3_000_000_000), ("1h2m3s4ms", 3_723_004_000_000),
])
def test_parse_duration(text, nanoseconds):
    assert parse_duration(text, "--health-interval") == nanoseconds


@pytest.mark.parametrize("text,reason", [("5", "missing unit"), ("abc", "invalid duration"), ("", "invalid duration"),
                                         ("3x", "unknown unit \"x\""), ("1m3", "missing unit")])
def test_parse_duration_errors(text, reason):
    expected = f'invalid argument "{text}" for "--health-interval" flag: time: {reason}'
    with pytest.raises(InvalidArgument, match=expected):
        parse_duration(text, "--health-interval")


def test_health_flags():
    check = health.from_flags("true", "200ms", "1s", "2s", None, "2")
    assert check == Healthcheck(["CMD-SHELL", "true"], 200_000_000, 1_000_000_000, 2_000_000_000, 0, 2)
    assert check.command() == ["/bin/sh", "-c", "true"]
    assert health.from_flags() is None
    assert health.from_flags(disabled=True).test == ["NONE"]
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-\\* options"):
        health.from_flags("true", disabled=True)
    with pytest.raises(InvalidArgument, match="--health-interval cannot be negative"):
        health.from_flags("true", "-1s")
    with pytest.raises(InvalidArgument, match="--health-retries cannot be negative"):
        health.from_flags("true", retries="-2")
    with pytest.raises(InvalidArgument, match="Interval in Healthcheck cannot be less than 1ms"):
        health.from_flags("true", "10us")
    with pytest.raises(InvalidArgument, match='invalid argument "x" for "--health-retries"'):
        health.from_flags("true", retries="x")


def test_health_merge_with_the_image():
    image = Healthcheck.from_docker({"Test": ["CMD", "/bin/check"], "Interval": 5_000_000_000, "Retries": 4})
    assert health.merge(None, image) == image
    merged = health.merge(health.from_flags(interval="1s"), image)
    assert merged.test == ["CMD", "/bin/check"] and merged.interval == 1_000_000_000 and merged.retries == 4
    assert health.merge(health.from_flags(disabled=True), image).test == ["NONE"]
    assert not health.merge(health.from_flags(disabled=True), image).enabled
    assert health.merge(None, None) is None
    assert image.to_docker() == {"Test": ["CMD", "/bin/check"], "Interval": 5_000_000_000, "Retries": 4}
    with pytest.raises(InvalidArgument, match="unknown healthcheck type 'RUN'"):
        Healthcheck.from_docker({"Test": ["RUN", "x"]})
    config = ContainerConfig(image="busybox", healthcheck=merged)
    assert ContainerConfig.from_json(config.to_json()).healthcheck == merged


def _result(start, code):
    return ProbeResult(start, start + 0.01, code, "")


def test_health_state_machine():
    check = Healthcheck(["CMD", "x"], retries=2)
    state = HealthState()
    state.record(_result(100, 1), check, started=99)
    assert (state.status, state.failing_streak) == ("starting", 1)
    state.record(_result(101, 1), check, started=99)
    assert (state.status, state.failing_streak) == ("unhealthy", 2)
    state.record(_result(102, 0), check, started=99)
    assert (state.status, state.failing_streak) == ("healthy", 0)
    for second in range(10):
        state.record(_result(103 + second, 0), check, started=99)
    assert len(state.log) == 5 and state.log[-1].start == 112
    assert HealthState.from_json(state.to_json()) == state
    assert state.display() == "healthy" and HealthState().display() == "health: starting"


def test_failures_in_the_start_period_do_not_count():
    check = Healthcheck(["CMD", "x"], start_period=5_000_000_000, retries=1)
    state = HealthState()
    state.record(_result(102, 1), check, started=100)
    assert (state.status, state.failing_streak) == ("starting", 0)
    state.record(_result(106, 1), check, started=100)
    assert state.status == "unhealthy"


def test_output_is_truncated_like_docker():
    assert health.truncate_output(b"ok\n") == "ok\n"
    long = health.truncate_output(b"x" * 5000)
    assert len(long) == 4096 + 3 and long.endswith("...")


def test_what_a_boot_starts():
    from types import SimpleNamespace

    def record(name, policy, status="exited", exit_code=0, restarts=0, stopped=False):
        config = SimpleNamespace(restart_policy=RestartPolicy.parse(policy))
        return SimpleNamespace(name=name, status=status, exit_code=exit_code, restart_count=restarts,
                               manually_stopped=stopped, config=config)

    records = [record("always-stopped", "always", stopped=True), record("unless", "unless-stopped"),
               record("unless-stopped", "unless-stopped", stopped=True), record("plain", "no", exit_code=1),
               record("failed", "on-failure:3", exit_code=1, restarts=2),
               record("failed-out", "on-failure:3", exit_code=1, restarts=3), record("ok", "on-failure", exit_code=0),
               record("never-ran", "always", status="created"), record("running", "always", status="running")]
    assert [r.name for r in due_after_boot(records)] == ["always-stopped", "unless", "failed"]
