"""Docker's time arguments, parsed by one set of rules for every command.

`parse_time` reads what `--since`/`--until` (logs, events) and the `until=` filters
(prune, images) take, as moby's GetTimestamp does: a Go duration ago (`10m`,
`1h30m`), Unix seconds with an optional fraction, or an RFC 3339 date-time
with or without seconds, fraction and zone (zone-less is local time) or a bare
date. `parse_rfc3339` reads the stamps vessel itself stores (log lines,
images' and networks' `created`). `parse_duration` is Go's time.ParseDuration.
"""

import re
import time

from vessel.errors import InvalidArgument

__all__ = ["parse_time", "parse_rfc3339", "parse_duration"]

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d*\.?\d*)([^\d.]*)")
_UNIX = re.compile(r"(\d+)(?:\.(\d+))?")
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")
# the layouts GetTimestamp picks from, by how much clock a value has: (Go layout, pattern)
_DATE = (("2006-01-02", r"(\d{4})-(\d\d)-(\d\d)"),)
_CLOCK = (("T15", r"T(\d\d)"), (":04", r":(\d\d)"), (":05", r":(\d\d)"), (".999999999", r"(?:\.(\d+))?"))
_ZONE = ("Z07:00", r"(Z|[+-]\d\d:\d\d)")


def parse_duration(text, flag):
    """Go's time.ParseDuration ("1m30s", "200ms", "1.5h", "0") to nanoseconds; errors name the flag."""
    value = str(text).strip()

    def invalid(reason):
        return InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: time: {reason} in duration "{text}"'
                               if reason else f'invalid argument "{text}" for "{flag}" flag: time: invalid '
                               f'duration "{text}"')

    sign = -1 if value.startswith("-") else 1
    body = value[1:] if value[:1] in "+-" else value
    if body == "0":
        return 0
    if not body:
        raise invalid("")
    total, position = 0.0, 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        number, unit = match.groups()
        if number in ("", ".") or match.end() == position:
            raise invalid("")
        if not unit:
            raise invalid("missing unit")
        if unit not in _UNITS:
            raise invalid(f'unknown unit "{unit}"')
        total += float(number) * _UNITS[unit]
        position = match.end()
    return sign * int(round(total))


def _nanos(fraction):
    """The digits after a decimal point as nanoseconds (beyond nine digits dropped)."""
    return int(((fraction or "") + "000000000")[:9])


def parse_rfc3339(text):
    """An RFC 3339 stamp with zone (vessel's own, e.g. a log line's time) -> nanoseconds since the epoch,
    or None when `text` is not one."""
    match = _RFC3339.fullmatch(text or "")
    if not match:
        return None
    stamp, fraction, zone = match.groups()
    import datetime  # here: only time arguments need it, not the commands that import this module

    try:
        moment = datetime.datetime.fromisoformat(stamp + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + _nanos(fraction)


def _layout(value):
    """GetTimestamp's choice of layout for `value`: (Go layout, compiled pattern, local time?)."""
    local = not any(c in value for c in "zZ+") and value.count("-") != 3
    if "." in value:
        clock = 4
    elif "T" in value:
        colons = value.count(":")
        if not local and "z" not in value.lower() and colons:
            colons -= 1  # the one in the zone's offset
        clock = min(colons, 2) + 1
    else:
        clock = 0
    parts = _DATE + _CLOCK[:clock] + (() if local else (_ZONE,))
    return "".join(p[0] for p in parts), re.compile("".join(p[1] for p in parts)), local


def _from_layout(value, now):
    """`value` read by its layout as nanoseconds; ValueError (Go's wording) if it does not fit."""
    import datetime

    layout, pattern, local = _layout(value)
    match = pattern.fullmatch(value)
    if not match:
        raise ValueError(f'parsing time "{value}" as "{layout}": cannot parse')
    groups = list(match.groups())
    zone_text = None if local else groups.pop()
    year, month, day, hour, minute, second, fraction = (groups + [None] * 7)[:7]
    if local:
        offset = datetime.datetime.fromtimestamp(now / 1e9, datetime.timezone.utc).astimezone().utcoffset()
        zone = datetime.timezone(offset)  # the local offset now, as Docker's
    elif zone_text == "Z":
        zone = datetime.timezone.utc
    else:
        hours, minutes = int(zone_text[1:3]), int(zone_text[4:6])
        zone = datetime.timezone((-1 if zone_text[0] == "-" else 1) * datetime.timedelta(hours=hours, minutes=minutes))
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                                   int(second or 0), tzinfo=zone)
    except ValueError as exc:
        raise ValueError(f'parsing time "{value}": {exc}') from None
    return int(moment.timestamp()) * 1_000_000_000 + _nanos(fraction)


def parse_time(text, name="since", now=None):
    """Docker's time argument `text` (for the flag or filter `name`) -> nanoseconds since the epoch; None when
    empty.  Durations count back from `now` (nanoseconds, default the current time)."""
    if text is None or str(text) == "":
        return None
    value = str(text)
    now = time.time_ns() if now is None else now
    if value != "0":
        try:
            return now - parse_duration(value, name)
        except InvalidArgument:
            pass  # not a duration
    try:
        return _from_layout(value, now)
    except ValueError as exc:
        if "-" in value:  # meant as a date
            raise InvalidArgument(f'invalid value for "{name}": {exc}') from None
    match = _UNIX.fullmatch(value)
    if not match:
        raise InvalidArgument(f'invalid value for "{name}": failed to parse value as time or duration: "{value}"')
    return int(match.group(1)) * 1_000_000_000 + _nanos(match.group(2))
