"""Docker-style events, kept in the engine's database (the `events` table of engine.db).

Whoever changes a container, an image, a volume or a network records one row:
type (container, image, volume, network), action (create, start, die, tag,
...), the actor's id and its attributes (for containers: image, name, the
labels, and e.g. exitCode).
The newest RETAINED rows are kept. Readers select by sequence number, so a
follower polls for rows after the last it saw.
"""

import json
import time

from vessel.engine.model import label_matches
from vessel.errors import InvalidArgument

__all__ = ["Event", "record", "record_image", "read", "follow", "parse_filters", "RETAINED"]

RETAINED = 10000
_FILTER_KEYS = ("container", "event", "type", "image", "label", "volume", "network")


class Event:
    """One recorded event."""

    __slots__ = ("seq", "time_nano", "type", "action", "actor_id", "attributes")

    def __init__(self, seq, time_nano, type_, action, actor_id, attributes):
        self.seq, self.time_nano, self.type, self.action = seq, time_nano, type_, action
        self.actor_id, self.attributes = actor_id, attributes

    @classmethod
    def from_row(cls, row):
        seq, time_nano, type_, action, actor_id, attributes = row
        return cls(seq, time_nano, type_, action, actor_id, json.loads(attributes))

    def to_docker(self):
        """The JSON message of Docker's events API."""
        message = {"Type": self.type, "Action": self.action,
                   "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
                   "scope": "local", "time": self.time_nano // 1_000_000_000, "timeNano": self.time_nano}
        if self.type == "container":
            message.update(status=self.action, id=self.actor_id, **{"from": self.attributes.get("image", "")})
        return message

    def line(self):
        """`docker events`' default line: time type action id (k=v, ...)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time_nano // 1_000_000_000))
        text = f"{stamp}.{self.time_nano % 1_000_000_000:09d}Z {self.type} {self.action} " \
               f"{self.actor_id}"
        if self.attributes:
            text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items())) + ")"
        return text

    def matches(self, filters):
        """Docker's filter semantics: values of one key are alternatives, keys must all match."""
        name = self.attributes.get("name", "")
        tests = {
            "container": lambda v: self.type == "container" and (self.actor_id.startswith(v) or name == v),
            "event": lambda v: self.action == v or self.action.split(":", 1)[0] == v,
            "type": lambda v: self.type == v,
            "image": lambda v: self.attributes.get("image") == v or
            (self.type == "image" and (self.actor_id in (v, "sha256:" + v) or name == v)),
            "volume": lambda v: self.type == "volume" and (self.actor_id == v or name == v),
            "network": lambda v: self.type == "network" and (self.actor_id.startswith(v) or name == v),
            "label": lambda v: label_matches(self.attributes, v),
        }
        return all(any(tests[key](value) for value in values) for key, values in filters.items())


def record(state, type_, action, actor_id, attributes):
    """Append one event (and drop the ones beyond the newest RETAINED)."""
    values = {str(k): str(v) for k, v in attributes.items()}
    with state.write() as db:
        cursor = db.execute("INSERT INTO events (time_nano, type, action, actor_id, attributes) "
                            "VALUES (?, ?, ?, ?, ?)", (time.time_ns(), type_, action, actor_id, json.dumps(values)))
        if cursor.lastrowid % 100 == 0:
            db.execute("DELETE FROM events WHERE seq <= ?", (cursor.lastrowid - RETAINED,))


def record_image(root, action, actor_id, **attributes):
    """Record an image event in the state under `root` (for callers that hold no Engine)."""
    from vessel.engine.state import State

    state = State(root)
    try:
        record(state, "image", action, actor_id, attributes)
    finally:
        state.close()


def read(state, after=0, since=None, until=None):
    """Events with seq > `after` and since <= time_nano <= until (nanoseconds), oldest first."""
    rows = state.query("SELECT seq, time_nano, type, action, actor_id, attributes FROM events "
                       "WHERE seq > ? AND time_nano >= ? AND time_nano <= ? ORDER BY seq",
                       (after, since or 0, (1 << 63) - 1 if until is None else until))
    return [Event.from_row(row) for row in rows]


def follow(state, since=None, until=None, filters=None, interval=0.2):
    """Past events from `since`, then new ones as they are recorded, until `until` (forever if None).

    With neither bound only new events come (Docker's default)."""
    after = 0
    if since is None and until is None:
        after = state.query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]
    while True:
        now = time.time_ns()
        for event in read(state, after, since, until):
            after = event.seq
            if event.matches(filters or {}):
                yield event
        if until is not None and now >= until:
            return
        time.sleep(interval if until is None else max(0, min(interval, (until - now) / 1e9)))


def parse_filters(items, keys=_FILTER_KEYS):
    """['key=value', ...] (or docker-py's {key: value|[values]}) -> {key: [values]}; keys outside `keys` are
    refused."""
    if isinstance(items, dict):
        pairs = [(k, v) for k, values in items.items()
                 for v in (values if isinstance(values, (list, tuple)) else [values])]
    else:
        pairs = []
        for item in items or ():
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
            pairs.append((key, value))
    filters = {}
    for key, value in pairs:
        if key not in keys:
            raise InvalidArgument(f"invalid filter '{key}'")
        filters.setdefault(key, []).append(str(value))
    return filters
