"""The embedded DNS server of a user-defined network (stdlib only).

One process per network that has endpoints, listening on the network's gateway
address (UDP and TCP, port 53) in the host's namespace, so containers use the
gateway as their nameserver and the server can reach the host's resolvers even
when those are on 127.0.0.x.  It answers A and AAAA queries for the names of
the endpoints on its network (container name, hostname, aliases, container id
and its 12-character prefix), rotating the order when a name has several
addresses, and forwards every other query verbatim to the upstream resolvers.

Names are read from the network database on each query, so attach/detach
need not signal the server.  The server exits when its network row is gone or
names another pid.  Started and stopped by vessel.network.manager; run as
`python -m vessel.network.dns --db DB --network ID --listen ADDR [--upstream HOST[:PORT]]...`.
"""

import argparse
import ipaddress
import json
import os
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time

__all__ = ["build_answer", "parse_query", "read_upstreams"]

TYPE_A, TYPE_AAAA = 1, 28
CLASS_IN = 1
TTL = 600
RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_FORMERR = 2, 3, 1
FORWARD_TIMEOUT = 3.0


class Query:
    """The question of a DNS query."""

    __slots__ = ("id", "flags", "name", "qtype", "qclass", "question_end")

    def __init__(self, ident, flags, name, qtype, qclass, question_end):
        self.id, self.flags, self.name = ident, flags, name
        self.qtype, self.qclass, self.question_end = qtype, qclass, question_end


def parse_query(message):
    """A Query from the wire, or None when the message is not one question we can read."""
    if len(message) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", message[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, offset = [], 12
    while True:
        if offset >= len(message):
            return None
        length = message[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(message):
            return None
        labels.append(message[offset:offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(message):
        return None
    qtype, qclass = struct.unpack("!HH", message[offset:offset + 4])
    return Query(ident, flags, ".".join(labels).lower(), qtype, qclass, offset + 4)


def build_answer(query, message, addresses, rcode=0):
    """A response to `query` (its raw `message`) with A/AAAA records for `addresses`."""
    flags = 0x8000 | (query.flags & 0x7900) | 0x0400 | 0x0080 | rcode  # QR, opcode+RD kept, AA, RA
    header = struct.pack("!HHHHHH", query.id, flags, 1, len(addresses), 0, 0)
    records = []
    for address in addresses:
        packed = ipaddress.ip_address(address).packed
        rtype = TYPE_A if len(packed) == 4 else TYPE_AAAA
        records.append(struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, TTL, len(packed)) + packed)
    return header + message[12:query.question_end] + b"".join(records)


def error_answer(message, rcode):
    """A bare error response echoing the id (for queries we cannot parse)."""
    ident = struct.unpack("!H", message[:2])[0] if len(message) >= 2 else 0
    return struct.pack("!HHHHHH", ident, 0x8080 | rcode, 0, 0, 0, 0)


def read_upstreams(path="/etc/resolv.conf"):
    """The host's nameservers as (address, 53)."""
    found = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    found.append((words[1], 53))
    except OSError:
        pass
    return found


def parse_upstream(text):
    """'127.0.0.1:5353', '[::1]:53' or a bare address -> (address, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


class Names:
    """Name -> addresses of one network's endpoints, read from the database."""

    def __init__(self, db_path, network_id):
        self.db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
        self.network_id = network_id
        self.lock = threading.Lock()
        self.turns = {}

    def lookup(self, name, qtype=None):
        """(ipv4 list, ipv6 list) rotated for round robin, or None when the name is unknown.

        Each query type turns on its own: resolvers ask A and AAAA for every lookup.
        """
        with self.lock:
            rows = self.db.execute(
                "SELECT container_id, name, hostname, aliases, ipv4, ipv6 FROM endpoints WHERE network_id = ?",
                (self.network_id,)).fetchall()
            turn = self.turns[qtype] = self.turns.get(qtype, 0) + 1
        v4, v6, known = [], [], False
        for container_id, cname, hostname, aliases, ipv4, ipv6 in rows:
            names = {container_id, container_id[:12], cname, hostname, *json.loads(aliases)}
            if name in {n.lower() for n in names if n}:
                known = True
                v4.append(ipv4)
                if ipv6:
                    v6.append(ipv6)
        if not known:
            return None
        return _rotate(v4, turn), _rotate(v6, turn)

    def alive(self, pid):
        """Whether this server is still the one the network names."""
        with self.lock:
            row = self.db.execute("SELECT dns_pid FROM networks WHERE id = ?", (self.network_id,)).fetchone()
        return row is not None and row[0] in (None, pid)


def _rotate(items, turn):
    if not items:
        return items
    shift = turn % len(items)
    return items[shift:] + items[:shift]


class Server:
    """Answers from `names`, forwards the rest to `upstreams`."""

    def __init__(self, names, upstreams):
        self.names = names
        self.upstreams = upstreams

    def resolve(self, message, over_tcp=False):
        query = parse_query(message)
        if query is None:
            return error_answer(message, RCODE_FORMERR)
        found = self.names.lookup(query.name.rstrip("."), query.qtype) if query.qclass == CLASS_IN else None
        if found is None:
            return self.forward(query, message, over_tcp)
        v4, v6 = found
        addresses = v4 if query.qtype == TYPE_A else v6 if query.qtype == TYPE_AAAA else []
        return build_answer(query, message, addresses)

    def forward(self, query, message, over_tcp):
        for host, port in self.upstreams:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                if over_tcp:
                    return _ask_tcp(family, host, port, message)
                reply = _ask_udp(family, host, port, message, query.id)
                if reply is not None:
                    return reply
            except OSError:
                continue
        return build_answer(query, message, [], RCODE_SERVFAIL)


def _ask_udp(family, host, port, message, ident):
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(FORWARD_TIMEOUT)
        sock.connect((host, port))
        sock.send(message)
        deadline = time.monotonic() + FORWARD_TIMEOUT
        while time.monotonic() < deadline:
            reply = sock.recv(65535)
            if len(reply) >= 2 and struct.unpack("!H", reply[:2])[0] == ident:
                return reply
    return None


def _recv_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def _ask_tcp(family, host, port, message):
    with socket.create_connection((host, port), timeout=FORWARD_TIMEOUT) as sock:
        sock.sendall(struct.pack("!H", len(message)) + message)
        size = struct.unpack("!H", _recv_exact(sock, 2))[0]
        return _recv_exact(sock, size)


def serve_udp(server, sock):
    while True:
        message, peer = sock.recvfrom(65535)
        threading.Thread(target=_answer_udp, args=(server, sock, message, peer), daemon=True).start()


def _answer_udp(server, sock, message, peer):
    reply = server.resolve(message)
    try:
        sock.sendto(reply, peer)
    except OSError:
        pass


def serve_tcp(server, sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_answer_tcp, args=(server, conn), daemon=True).start()


def _answer_tcp(server, conn):
    with conn:
        conn.settimeout(10)
        try:
            while True:
                size = struct.unpack("!H", _recv_exact(conn, 2))[0]
                reply = server.resolve(_recv_exact(conn, size), over_tcp=True)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, ConnectionError, struct.error):
            pass


def _bind(listen, port):
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind((listen, port))
    tcp.bind((listen, port))
    tcp.listen(64)
    return udp, tcp


def main(argv=None):
    parser = argparse.ArgumentParser(prog="vessel-dns")
    parser.add_argument("--db", required=True)
    parser.add_argument("--network", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--upstream", action="append", default=[])
    parser.add_argument("--log", default=os.devnull)
    args = parser.parse_args(argv)
    upstreams = [parse_upstream(u) for u in args.upstream] or read_upstreams()
    try:
        udp, tcp = _bind(args.listen, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.listen}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    # daemonize: the starter reads our pid from stdout and reaps the intermediate
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        os._exit(0)
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    names = Names(args.db, args.network)
    server = Server(names, upstreams)
    threading.Thread(target=serve_udp, args=(server, udp), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(server, tcp), daemon=True).start()
    me = os.getpid()
    while True:
        time.sleep(2)
        try:
            if not names.alive(me):
                os._exit(0)
        except sqlite3.Error as exc:
            print(f"vessel-dns: {exc}", file=sys.stderr)
            os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
