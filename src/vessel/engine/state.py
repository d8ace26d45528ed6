"""The engine's state: one SQLite database (WAL) at <root>/engine/engine.db.

Every vessel command and the monitor open it for a few short
transactions (writes take BEGIN IMMEDIATE, readers never block writers), so
there is no daemon to ask and no lock held across a container's life.
"""

import fcntl
import json
import os
import sqlite3
import zlib
from contextlib import contextmanager

from vessel.engine.health import HealthState
from vessel.engine.model import ContainerConfig
from vessel.errors import AlreadyExists, Conflict, NotFound

__all__ = ["Record", "State", "image_users", "CREATED", "RUNNING", "PAUSED", "EXITED", "DEAD", "REMOVING"]

SCHEMA_VERSION = 1
CREATED, RUNNING, PAUSED, EXITED, DEAD, REMOVING = "created", "running", "paused", "exited", "dead", "removing"
RESTARTING = "restarting"   # exited, waiting for its restart policy's back-off (engine/restart.py)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    image_ref TEXT NOT NULL,
    created REAL NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL DEFAULT 0,
    finished REAL NOT NULL DEFAULT 0,
    restart_count INTEGER NOT NULL DEFAULT 0,
    runtime TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    supervisor_pid INTEGER NOT NULL DEFAULT 0,
    supervisor_start TEXT NOT NULL DEFAULT '',
    manually_stopped INTEGER NOT NULL DEFAULT 0,
    restart_delay REAL NOT NULL DEFAULT 0,
    health TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);
CREATE INDEX IF NOT EXISTS containers_status ON containers(status);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS volume_mounts (
    volume TEXT NOT NULL,
    container TEXT NOT NULL,
    PRIMARY KEY (volume, container)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}'
);
"""

_COLUMNS = ("id", "name", "image_id", "image_ref", "created", "config", "status", "pid", "exit_code", "error",
            "started", "finished", "restart_count", "runtime", "labels", "supervisor_pid", "supervisor_start",
            "manually_stopped", "restart_delay", "health")
# columns added after the first schema: (name, definition, value of a new Record that does not give it)
_ADDED_COLUMNS = (("manually_stopped", "INTEGER NOT NULL DEFAULT 0", 0),
                  ("restart_delay", "REAL NOT NULL DEFAULT 0", 0.0),
                  ("health", "TEXT NOT NULL DEFAULT ''", None))
_DEFAULTS = {name: value for name, _, value in _ADDED_COLUMNS}


class Record:
    """One row of the containers table, typed."""

    __slots__ = tuple(name for name in _COLUMNS if name != "config") + ("_config", "_config_text")

    def __init__(self, **values):
        self._config_text = None
        for name in _COLUMNS:
            setattr(self, name, values[name] if name in values else _DEFAULTS[name])

    @classmethod
    def from_row(cls, row):
        values = dict(zip(_COLUMNS, row))
        config_text = values.pop("config")
        values["runtime"] = json.loads(values["runtime"])
        values["labels"] = json.loads(values["labels"])
        values["health"] = HealthState.from_json(json.loads(values["health"] or "null"))
        record = cls(config=None, **values)
        record._config_text = config_text
        return record

    @property
    def config(self):
        """The ContainerConfig, decoded on first use (`ps -q` over many rows needs none of them)."""
        if self._config is None:
            self._config = ContainerConfig.from_json(json.loads(self._config_text))
        return self._config

    @config.setter
    def config(self, value):
        self._config = value

    @property
    def running(self):
        return self.status in (RUNNING, PAUSED)


class State:
    def __init__(self, root):
        directory = os.path.join(root, "engine")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # switching a new database to WAL does not wait on busy_timeout: opening is serialized by a flock
        lock = os.open(os.path.join(directory, "open.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._db = sqlite3.connect(os.path.join(directory, "engine.db"), timeout=60, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL's commits need no fsync each to stay consistent (a power cut may lose the last ones): a run
            # makes a dozen commits, and fsync costs ms on a busy disk
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        finally:
            os.close(lock)

    def _migrate(self):
        # the schema's fingerprint in user_version: opening a database already in this shape takes no write lock
        fingerprint = zlib.crc32(repr((_SCHEMA, _COLUMNS)).encode()) & 0x7FFFFFFF
        if self._db.execute("PRAGMA user_version").fetchone()[0] == fingerprint:
            return
        with self.write() as db:
            db.execute(f"PRAGMA user_version = {fingerprint}")
            for statement in _SCHEMA.strip().split(";\n"):
                if statement.strip():
                    db.execute(statement)
            present = {row[1] for row in db.execute("PRAGMA table_info(containers)")}
            for name, definition, _ in _ADDED_COLUMNS:
                if name not in present:
                    db.execute(f"ALTER TABLE containers ADD COLUMN {name} {definition}")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise Conflict(f"engine state was written by a newer vessel (schema {row[0]})")

    def close(self):
        self._db.close()

    @contextmanager
    def write(self):
        """A write transaction (BEGIN IMMEDIATE: writers queue up front, never deadlock)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def insert(self, record):
        values = {name: getattr(record, name) for name in _COLUMNS}
        values["config"] = json.dumps(record.config.to_json())
        values["runtime"] = json.dumps(record.runtime)
        values["labels"] = json.dumps(record.labels)
        values["health"] = json.dumps(record.health.to_json()) if record.health else ""
        try:
            with self.write() as db:
                db.execute(f"INSERT INTO containers ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
                           [values[name] for name in _COLUMNS])
        except sqlite3.IntegrityError:
            existing = self._db.execute("SELECT id FROM containers WHERE name = ?", (record.name,)).fetchone()
            if existing:
                raise AlreadyExists(f'Conflict. The container name "/{record.name}" is already in use by container '
                                    f'"{existing[0]}". You have to remove (or rename) that container to be able '
                                    "to reuse that name.") from None
            raise AlreadyExists(f"container id {record.id} already exists") from None

    def update(self, container_id, **values):
        with self.write() as db:
            self._set(db, container_id, values)

    @staticmethod
    def _set(db, container_id, values):
        assignments = ", ".join(f"{name} = ?" for name in values)
        db.execute(f"UPDATE containers SET {assignments} WHERE id = ?", [*values.values(), container_id])

    def names(self):
        return {row[0] for row in self._db.execute("SELECT name FROM containers")}

    def all(self, statuses=None):
        """Every container, newest first; with `statuses`, only those in one of them."""
        where = f" WHERE status IN ({','.join('?' * len(statuses))})" if statuses else ""
        rows = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM containers{where} ORDER BY created DESC",
                                tuple(statuses or ())).fetchall()
        return [Record.from_row(row) for row in rows]

    def by_id(self, container_id):
        row = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM containers WHERE id = ?",
                               (container_id,)).fetchone()
        return Record.from_row(row) if row else None

    def find(self, name_or_id):
        """By exact name, full id, or unique id prefix (Docker's lookup order)."""
        text = name_or_id[1:] if name_or_id.startswith("/") else name_or_id
        columns = ",".join(_COLUMNS)
        row = self._db.execute(f"SELECT {columns} FROM containers WHERE id = ? OR name = ?",
                               (text, text)).fetchone()
        if row is None and text and all(c in "0123456789abcdef" for c in text):
            # a range of the primary key, not LIKE (a scan of every row); "g" sorts after every hex digit
            rows = self._db.execute(f"SELECT {columns} FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                                    (text, text + "g")).fetchall()
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {text}")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {name_or_id}")
        return Record.from_row(row)

    def transition(self, container_id, allowed, **values):
        """Update only if the status is one of `allowed`; returns whether it did."""
        with self.write() as db:
            row = db.execute("SELECT status FROM containers WHERE id = ?", (container_id,)).fetchone()
            if row is None or row[0] not in allowed:
                return False
            self._set(db, container_id, values)
            return True

    def rename(self, container_id, new_name):
        try:
            self.update(container_id, name=new_name)
        except sqlite3.IntegrityError:
            existing = self._db.execute("SELECT id FROM containers WHERE name = ?", (new_name,)).fetchone()
            raise AlreadyExists(f'Conflict. The container name "/{new_name}" is already in use by container '
                                f'"{existing[0] if existing else "?"}". You have to remove (or rename) that '
                                "container to be able to reuse that name.") from None

    def delete(self, container_id):
        with self.write() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def query(self, sql, params=()):
        """The rows of one read statement (for the tables other modules own: volumes, ...)."""
        return self._db.execute(sql, params).fetchall()

    def image_users(self, image_id):
        rows = self._db.execute("SELECT id, status FROM containers WHERE image_id = ?", (image_id,)).fetchall()
        return [(cid, status in (RUNNING, PAUSED)) for cid, status in rows]




def image_users(root):
    """ImageStore's `users` callback for `root`: image id -> [(container id, running)] (rmi's guard)."""
    if not os.path.exists(os.path.join(root, "engine", "engine.db")):
        return lambda image_id: []

    def users(image_id):
        state = State(root)
        try:
            return state.image_users(image_id)
        finally:
            state.close()

    return users
