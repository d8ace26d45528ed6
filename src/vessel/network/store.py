"""Networks, endpoints, address allocations and published ports in SQLite.

One database per state root (<root>/network/network.db, WAL mode) shared by
every vessel process; writers take the lock up front (BEGIN IMMEDIATE) so two
processes can never hand out the same address.  Kernel state is not stored:
it is derived from these rows and rebuilt when missing (after a reboot).
"""

import contextlib
import json
import os
import sqlite3
import zlib

from vessel.errors import AlreadyExists, Conflict, NotFound

__all__ = ["Store"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    subnet6 TEXT,
    gateway6 TEXT,
    internal INTEGER NOT NULL DEFAULT 0,
    mtu INTEGER NOT NULL DEFAULT 1500,
    options TEXT NOT NULL DEFAULT '{}',
    labels TEXT NOT NULL DEFAULT '{}',
    predefined INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    dns_pid INTEGER
);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks(id),
    container_id TEXT NOT NULL,
    name TEXT,
    ifname TEXT NOT NULL,
    host_ifname TEXT NOT NULL,
    netns_path TEXT NOT NULL,
    mac TEXT NOT NULL,
    ipv4 TEXT NOT NULL,
    ipv6 TEXT,
    aliases TEXT NOT NULL DEFAULT '[]',
    hostname TEXT,
    UNIQUE (network_id, container_id)
);
CREATE TABLE IF NOT EXISTS addresses (
    network_id TEXT NOT NULL REFERENCES networks(id),
    address TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (network_id, address)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ports (
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    PRIMARY KEY (host_ip, host_port, proto)
);
"""

NETWORK_COLUMNS = ("id", "name", "driver", "bridge", "subnet", "gateway", "subnet6", "gateway6",
                   "internal", "mtu", "options", "labels", "predefined", "created", "dns_pid")
ENDPOINT_COLUMNS = ("id", "network_id", "container_id", "name", "ifname", "host_ifname", "netns_path",
                    "mac", "ipv4", "ipv6", "aliases", "hostname")
JSON_COLUMNS = ("options", "labels", "aliases")


def _row(columns, values):
    row = dict(zip(columns, values))
    for key in JSON_COLUMNS:
        if key in row:
            row[key] = json.loads(row[key])
    return row


class Store:
    """The network database of one state root."""

    def __init__(self, root):
        self.dir = os.path.join(root, "network")
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "network.db")
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # as the engine's state: WAL stays consistent without an fsync per commit (a power cut may lose the
        # last ones, and the namespaces their addresses went to with them); an attach makes several commits
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # the schema's fingerprint in user_version: opening a database already in this shape takes no write lock
        fingerprint = zlib.crc32(SCHEMA.encode()) & 0x7FFFFFFF
        if self.db.execute("PRAGMA user_version").fetchone()[0] != fingerprint:
            with self.transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {fingerprint}")

    def close(self):
        self.db.close()

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction holding the database lock from its first statement."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def setting(self, key, default=None):
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key, value):
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value)))

    # -- networks ---------------------------------------------------------------

    def networks(self):
        rows = self.db.execute(f"SELECT {', '.join(NETWORK_COLUMNS)} FROM networks ORDER BY created, name")
        return [_row(NETWORK_COLUMNS, r) for r in rows]

    def find_network(self, ref):
        """A network by name, full id or unique id prefix."""
        rows = self.db.execute(
            f"SELECT {', '.join(NETWORK_COLUMNS)} FROM networks WHERE name = ? OR id = ?", (ref, ref)).fetchall()
        if not rows and len(ref) >= 1 and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.execute(
                f"SELECT {', '.join(NETWORK_COLUMNS)} FROM networks WHERE id LIKE ?", (ref + "%",)).fetchall()
            if len(rows) > 1:
                raise Conflict(f"network {ref} is ambiguous ({len(rows)} matches)")
        if not rows:
            raise NotFound(f"network {ref} not found")
        by_name = [r for r in rows if r[1] == ref]
        return _row(NETWORK_COLUMNS, (by_name or rows)[0])

    def add_network(self, db, net):
        if db.execute("SELECT 1 FROM networks WHERE name = ?", (net["name"],)).fetchone():
            raise AlreadyExists(f"network with name {net['name']} already exists")
        values = [json.dumps(net[c]) if c in JSON_COLUMNS else net.get(c) for c in NETWORK_COLUMNS]
        db.execute(f"INSERT INTO networks ({', '.join(NETWORK_COLUMNS)}) VALUES "
                   f"({', '.join('?' for _ in NETWORK_COLUMNS)})", values)
        for address in (net["gateway"], net.get("gateway6")):
            if address:
                db.execute("INSERT INTO addresses VALUES (?, ?, 'gateway')", (net["id"], address))

    def delete_network(self, db, network_id):
        db.execute("DELETE FROM addresses WHERE network_id = ?", (network_id,))
        db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def set_dns_pid(self, db, network_id, pid):
        db.execute("UPDATE networks SET dns_pid = ? WHERE id = ?", (pid, network_id))

    # -- addresses --------------------------------------------------------------

    def taken(self, db, network_id):
        return {r[0] for r in db.execute("SELECT address FROM addresses WHERE network_id = ?", (network_id,))}

    def claim(self, db, network_id, address, owner):
        try:
            db.execute("INSERT INTO addresses VALUES (?, ?, ?)", (network_id, str(address), owner))
        except sqlite3.IntegrityError:
            raise Conflict(f"address {address} is already in use on this network") from None

    # -- endpoints --------------------------------------------------------------

    def endpoints(self, network_id=None, container_id=None):
        query = f"SELECT {', '.join(ENDPOINT_COLUMNS)} FROM endpoints WHERE 1"
        args = []
        if network_id is not None:
            query += " AND network_id = ?"
            args.append(network_id)
        if container_id is not None:
            query += " AND container_id = ?"
            args.append(container_id)
        return [_row(ENDPOINT_COLUMNS, r) for r in self.db.execute(query + " ORDER BY rowid", args)]

    def endpoint(self, endpoint_id):
        row = self.db.execute(f"SELECT {', '.join(ENDPOINT_COLUMNS)} FROM endpoints WHERE id = ?",
                              (endpoint_id,)).fetchone()
        return _row(ENDPOINT_COLUMNS, row) if row else None

    def endpoint_by_ip(self, address):
        row = self.db.execute(f"SELECT {', '.join(ENDPOINT_COLUMNS)} FROM endpoints WHERE ipv4 = ? OR ipv6 = ?",
                              (address, address)).fetchone()
        return _row(ENDPOINT_COLUMNS, row) if row else None

    def add_endpoint(self, db, ep):
        if db.execute("SELECT 1 FROM endpoints WHERE network_id = ? AND container_id = ?",
                      (ep["network_id"], ep["container_id"])).fetchone():
            raise AlreadyExists(f"container {ep['container_id'][:12]} is already attached to this network")
        values = [json.dumps(ep[c]) if c in JSON_COLUMNS else ep.get(c) for c in ENDPOINT_COLUMNS]
        db.execute(f"INSERT INTO endpoints ({', '.join(ENDPOINT_COLUMNS)}) VALUES "
                   f"({', '.join('?' for _ in ENDPOINT_COLUMNS)})", values)

    def delete_endpoint(self, db, endpoint_id):
        db.execute("DELETE FROM ports WHERE endpoint_id = ?", (endpoint_id,))
        db.execute("DELETE FROM addresses WHERE owner = ?", (endpoint_id,))
        db.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))

    # -- ports ------------------------------------------------------------------

    PORT_COLUMNS = ("endpoint_id", "host_ip", "host_port", "container_ip", "container_port", "proto")

    def ports(self, endpoint_id=None):
        query = f"SELECT {', '.join(self.PORT_COLUMNS)} FROM ports"
        args = ()
        if endpoint_id is not None:
            query += " WHERE endpoint_id = ?"
            args = (endpoint_id,)
        return [dict(zip(self.PORT_COLUMNS, r)) for r in self.db.execute(query + " ORDER BY host_port", args)]

    def add_port(self, db, port):
        db.execute(f"INSERT INTO ports ({', '.join(self.PORT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                   [port[c] for c in self.PORT_COLUMNS])

    def delete_port(self, db, port):
        db.execute("DELETE FROM ports WHERE host_ip = ? AND host_port = ? AND proto = ?",
                   (port["host_ip"], port["host_port"], port["proto"]))
