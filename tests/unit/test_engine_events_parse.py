"""Events without a container: Docker's time arguments, filters, the line and the JSON message."""

import pytest

from vessel.engine.events import Event, parse_filters
from vessel.errors import InvalidArgument
from vessel.times import parse_time

NOW = 1_800_000_000 * 10 ** 9


@pytest.mark.parametrize("text, expected", [
    ("1700000000", 1_700_000_000 * 10 ** 9),
    ("1700000000.25", 1_700_000_000 * 10 ** 9 + 250_000_000),
    ("10m", NOW - 600 * 10 ** 9),
    ("1h30m", NOW - 5400 * 10 ** 9),
    ("500ms", NOW - 500_000_000),
    ("2026-12-04T15:00:00Z", 1_796_396_400 * 10 ** 9),
    ("2026-12-04T15:00:00.5Z", 1_796_396_400 * 10 ** 9 + 500_000_000),
    ("2026-12-04T16:00:00+01:00", 1_796_396_400 * 10 ** 9),
    (None, None),
    ("", None),
])
def test_times_and_durations(text, expected):
    assert parse_time(text, now=NOW) == expected


def test_bad_time_is_one_clear_error():
    with pytest.raises(InvalidArgument, match='invalid value for "since": failed to parse value as time or '
                                              'duration: "yesterday"'):
        parse_time("yesterday")


def test_filters_from_the_cli_and_from_docker_py():
    assert parse_filters(["type=container", "event=start", "event=die"]) == {
        "type": ["container"], "event": ["start", "die"]}
    assert parse_filters({"label": ["a=b", "c"], "container": "web"}) == {"label": ["a=b", "c"], "container": ["web"]}
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        parse_filters(["colour=red"])
    with pytest.raises(InvalidArgument, match="expected name=value"):
        parse_filters(["type"])


def test_line_message_and_matching():
    event = Event(1, 1_796_396_400 * 10 ** 9 + 123, "container", "exec_start: sh -c ls", "abc123",
                  {"name": "web", "image": "busybox", "team": "blue"})
    assert event.line() == ("2026-12-04T15:00:00.000000123Z container exec_start: sh -c ls abc123 "
                            "(image=busybox, name=web, team=blue)")
    message = event.to_docker()
    assert message["status"] == "exec_start: sh -c ls" and message["from"] == "busybox"
    assert message["time"] == 1_796_396_400 and message["Actor"]["ID"] == "abc123"
    assert event.matches({"event": ["exec_start"], "container": ["web", "nope"], "label": ["team=blue"]})
    assert event.matches({"container": ["abc"], "image": ["busybox"], "label": ["team"]})
    assert not event.matches({"type": ["image"]})
    assert not event.matches({"label": ["team=red"]})


def test_volume_and_network_filters():
    volume = Event(2, 0, "volume", "create", "data", {"driver": "local"})
    assert volume.matches({"volume": ["data"]}) and not volume.matches({"volume": ["other"]})
    assert not volume.matches({"network": ["data"]})
    assert parse_filters(["volume=data", "network=net"]) == {"volume": ["data"], "network": ["net"]}
