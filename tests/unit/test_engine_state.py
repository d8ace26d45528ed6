"""The engine's state: opening (an older database is upgraded once, an up-to-date one opened without a
write), lookups by name and id prefix."""

import os
import sqlite3
import threading

from vessel.engine.state import _COLUMNS, State

FIRST_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE containers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image_id TEXT NOT NULL, image_ref TEXT NOT NULL,
    created REAL NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', started REAL NOT NULL DEFAULT 0,
    finished REAL NOT NULL DEFAULT 0, restart_count INTEGER NOT NULL DEFAULT 0, runtime TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}', supervisor_pid INTEGER NOT NULL DEFAULT 0,
    supervisor_start TEXT NOT NULL DEFAULT ''
);
INSERT INTO containers (id, name, image_id, image_ref, created, config, status, runtime)
    VALUES ('c0ffee', 'old', 'sha256:1', 'busybox', 1.0, '{"image": "busybox"}', 'exited', '["runc"]');
"""


def _database(root):
    return os.path.join(root, "engine", "engine.db")


def test_first_schema_is_upgraded(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "engine"))
    with sqlite3.connect(_database(root)) as db:
        db.executescript(FIRST_SCHEMA)
    state = State(root)
    try:
        columns = [row[1] for row in state._db.execute("PRAGMA table_info(containers)")]
        assert set(_COLUMNS) <= set(columns)
        record = state.find("old")
        assert (record.id, record.status, record.config.image, record.runtime) == ("c0ffee", "exited", "busybox",
                                                                                   ["runc"])
        assert [r.name for r in state.all(("exited",))] == ["old"] and state.all(("running",)) == []
    finally:
        state.close()


def test_opening_an_up_to_date_state_takes_no_write_lock(tmp_path):
    root = str(tmp_path)
    State(root).close()
    writer = sqlite3.connect(_database(root), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another command in the middle of a write transaction
    opened = []

    def open_state():
        state = State(root)
        opened.append(len(state.all()))
        state.close()

    try:
        thread = threading.Thread(target=open_state, daemon=True)
        thread.start()
        thread.join(10)
        assert opened == [0]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_find_by_unique_id_prefix(tmp_path):
    import pytest

    from vessel.errors import Conflict, NotFound

    root = str(tmp_path)
    os.makedirs(os.path.join(root, "engine"))
    with sqlite3.connect(_database(root)) as db:
        db.executescript(FIRST_SCHEMA)
        for container_id, name in (("abc123", "one"), ("abd456", "two"), ("f00", "abc")):
            db.execute("INSERT INTO containers (id, name, image_id, image_ref, created, config, status, runtime) "
                       "VALUES (?, ?, 'sha256:1', 'busybox', 2.0, ?, 'created', '[]')",
                       (container_id, name, '{"image": "busybox"}'))
    state = State(root)
    try:
        assert state.find("abc12").name == "one" and state.find("abd").name == "two"
        assert state.find("abc").id == "f00"  # an exact name before an id prefix
        assert state.find("/two").id == "abd456" and state.find("c0").name == "old"
        with pytest.raises(Conflict, match="multiple IDs found with provided prefix: ab"):
            state.find("ab")
        with pytest.raises(NotFound, match="No such container: abe"):
            state.find("abe")
    finally:
        state.close()
