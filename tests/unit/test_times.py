"""Docker's time arguments (moby's GetTimestamp rules) and vessel's own RFC 3339 stamps."""

import time

import pytest

from vessel.errors import InvalidArgument
from vessel.times import parse_rfc3339, parse_time

NOW = 1_800_000_000 * 10 ** 9
S = 10 ** 9
NOON = 1_796_385_600 * S  # 2026-12-04T12:00:00Z


@pytest.fixture
def zone(monkeypatch):
    """Run with the local zone set to `name` (zone-less times are local)."""
    def use(name):
        monkeypatch.setenv("TZ", name)
        time.tzset()
    yield use
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("text, expected", [
    ("10m", NOW - 600 * S), ("1h30m", NOW - 5400 * S), ("500ms", NOW - S // 2), ("1.5h", NOW - 5400 * S),
    ("-10m", NOW + 600 * S),
    ("0", 0), ("1700000000", 1_700_000_000 * S), ("1700000000.25", 1_700_000_000 * S + S // 4),
    ("1700000000.123456789", 1_700_000_000 * S + 123_456_789),
    ("2026-12-04T12:00:00Z", NOON), ("2026-12-04T12:00:00.5Z", NOON + S // 2),
    ("2026-12-04T12:00:00.123456789Z", NOON + 123_456_789),
    ("2026-12-04T13:00:00+01:00", NOON), ("2026-12-04T11:00:00-01:00", NOON),
    ("2026-12-04T12:30Z", NOON + 1800 * S), ("2026-12-04T13:30+01:00", NOON + 1800 * S),
    ("2026-12-04T12Z", NOON), ("2026-12-04T11-01:00", NOON),
    ("2026-12-04Z", NOON - 12 * 3600 * S), ("2026-12-04+02:00", NOON - 14 * 3600 * S),
    (None, None), ("", None),
])
def test_accepted_forms(text, expected):
    assert parse_time(text, "since", now=NOW) == expected


@pytest.mark.parametrize("text, expected", [
    ("2026-12-04T12:00:00", NOON), ("2026-12-04T12:00:00.25", NOON + S // 4), ("2026-12-04T12:30", NOON + 1800 * S),
    ("2026-12-04T12", NOON), ("2026-12-04", NOON - 12 * 3600 * S),
])
def test_zoneless_times_are_local(zone, text, expected):
    zone("UTC")
    assert parse_time(text, now=NOW) == expected
    zone("XYZ-3")  # three hours east of UTC: local noon is 09:00Z
    assert parse_time(text, now=NOW) == expected - 3 * 3600 * S


@pytest.mark.parametrize("text, reason", [
    ("yesterday", 'failed to parse value as time or duration: "yesterday"'),
    ("12:30", 'failed to parse value as time or duration: "12:30"'),
    ("1.2.3", 'failed to parse value as time or duration: "1.2.3"'),
    ("10x", 'failed to parse value as time or duration: "10x"'),
    ("2026-13-01", 'parsing time "2026-13-01": month must be in 1..12'),
    ("2026-12-04T1", 'parsing time "2026-12-04T1" as "2006-01-02T15": cannot parse'),
    ("2026-12-04 12:00:00", 'parsing time "2026-12-04 12:00:00" as "2006-01-02": cannot parse'),
    ("2026-12-04T12:00:00.5+0100", 'parsing time "2026-12-04T12:00:00.5+0100" as '
                                   '"2006-01-02T15:04:05.999999999Z07:00": cannot parse'),
    ("2026-12-04T12:00:00z", 'parsing time "2026-12-04T12:00:00z" as "2006-01-02T15:04:05Z07:00": cannot parse'),
])
def test_rejected_forms_name_the_flag(text, reason):
    with pytest.raises(InvalidArgument) as caught:
        parse_time(text, "until", now=NOW)
    assert str(caught.value) == f'invalid value for "until": {reason}'


def test_own_stamps():
    assert parse_rfc3339("2026-12-04T12:00:00Z") == NOON
    assert parse_rfc3339("2026-12-04T12:00:00.000000001Z") == NOON + 1
    assert parse_rfc3339("2026-12-04T14:00:00.5+02:00") == NOON + S // 2
    for text in ("", None, "2026-12-04", "2026-12-04T12:00:00", "2026-02-30T12:00:00Z", "10m"):
        assert parse_rfc3339(text) is None
