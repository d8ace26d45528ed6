"""The embedded DNS server's wire format and name table (no sockets to the outside)."""

import json
import sqlite3
import struct

from vessel.network.dns import Names, Server, build_answer, parse_query, parse_upstream, read_upstreams


def query(name, qtype=1, ident=7):
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)


def answers(reply):
    count = struct.unpack("!H", reply[6:8])[0]
    offset = reply.index(b"\0", 12) + 5
    found = []
    for _ in range(count):
        size = struct.unpack("!H", reply[offset + 10:offset + 12])[0]
        found.append(reply[offset + 12:offset + 12 + size])
        offset += 12 + size
    return found


def test_parse_query_reads_the_question_and_refuses_garbage():
    parsed = parse_query(query("Web.Example", 28, ident=99))
    assert (parsed.id, parsed.name, parsed.qtype, parsed.qclass) == (99, "web.example", 28, 1)
    assert parse_query(b"\0\1") is None
    assert parse_query(query("x")[:-3]) is None
    response = bytearray(query("x"))
    response[2] |= 0x80
    assert parse_query(bytes(response)) is None


def test_build_answer_has_records_and_flags():
    message = query("svc")
    reply = build_answer(parse_query(message), message, ["10.0.0.2", "fd00::2"])
    ident, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (ident, qd, an) == (7, 1, 2)
    assert flags & 0x8000 and flags & 0x0100 and flags & 0x0080 and not flags & 0x000F
    assert answers(reply) == [bytes([10, 0, 0, 2]), bytes.fromhex("fd00" + "00" * 13 + "02")]


def make_db(tmp_path):
    path = str(tmp_path / "n.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE networks (id TEXT, dns_pid INTEGER)")
    db.execute("CREATE TABLE endpoints (network_id, container_id, name, hostname, aliases, ipv4, ipv6)")
    db.execute("INSERT INTO networks VALUES ('n1', NULL)")
    rows = [("n1", "a" * 64, "one", None, ["svc"], "10.0.0.2", None),
            ("n1", "b" * 64, "two", "host2", ["svc"], "10.0.0.3", "fd00::3"),
            ("n2", "c" * 64, "three", None, ["svc"], "10.9.0.3", None)]
    db.executemany("INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [r[:4] + (json.dumps(r[4]),) + r[5:] for r in rows])
    db.commit()
    db.close()
    return path


def test_names_rotate_and_stay_on_their_network(tmp_path):
    names = Names(make_db(tmp_path), "n1")
    firsts = {names.lookup("svc")[0][0] for _ in range(4)}
    assert firsts == {"10.0.0.2", "10.0.0.3"}
    assert names.lookup("three") is None
    assert names.lookup("host2") == (["10.0.0.3"], ["fd00::3"])
    assert names.lookup("b" * 12)[0] == ["10.0.0.3"]
    assert names.alive(1234) is True


def test_known_name_without_aaaa_is_nodata_and_unknown_without_upstream_is_servfail(tmp_path):
    server = Server(Names(make_db(tmp_path), "n1"), upstreams=[])
    reply = server.resolve(query("one", 28))
    assert struct.unpack("!H", reply[6:8])[0] == 0 and reply[3] & 0x0F == 0
    reply = server.resolve(query("elsewhere.example"))
    assert reply[3] & 0x0F == 2
    assert server.resolve(b"\x00\x01garbage")[3] & 0x0F == 1


def test_upstream_parsing(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 127.0.0.53\nsearch x\nnameserver ::1\n")
    assert read_upstreams(str(conf)) == [("127.0.0.53", 53), ("::1", 53)]
    assert parse_upstream("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_upstream("[::1]:5300") == ("::1", 5300)
    assert parse_upstream("fd00::1") == ("fd00::1", 53)
