"""Pure pieces of the engine: flag parsing, names, logs, user lookup, attach frames, exit codes."""

import json
import os
import random

import pytest

from vessel.engine import attach, logs, names, specgen
from vessel.engine.core import start_error_code
from vessel.engine.model import (ContainerConfig, Mount, parse_volume, Ulimit, merge_env, parse_bytes, parse_cpus,
                                 parse_env_file, parse_restart, validate_name)
from vessel.errors import InvalidArgument, NotFound
from vessel.times import parse_rfc3339


@pytest.mark.parametrize("text,value", [("512", 512), ("64k", 65536), ("12m", 12 << 20), ("1.5g", 3 << 29),
                                        ("10MB", 10 << 20), ("2GiB", 2 << 30)])
def test_parse_bytes(text, value):
    assert parse_bytes(text, "-m, --memory") == value


def test_parse_bytes_message():
    expected = r"""invalid argument "12xyz" for "-m, --memory" flag: invalid size: '12xyz'"""
    with pytest.raises(InvalidArgument, match=expected):
        parse_bytes("12xyz", "-m, --memory")


def test_cpus_and_restart():
    assert parse_cpus("1.5") == 1_500_000_000
    with pytest.raises(InvalidArgument):
        parse_cpus("many")
    assert parse_restart("no").name == "no"
    for bad in ("sometimes", "always:3", "on-failure:x"):
        with pytest.raises(InvalidArgument, match="invalid restart policy"):
            parse_restart(bad)
    assert parse_restart("on-failure:3").maximum_retry_count == 3


def test_binds_and_ulimits():
    assert parse_volume("/a:/b:ro") == Mount("bind", "/b", "/a", True, flag="-v", spec="/a:/b:ro", mode="ro")
    assert parse_volume("/a/../c:/b/") == Mount("bind", "/b", "/c", False, flag="-v", spec="/a/../c:/b/")
    for bad in ("a", "/a:b", "vol/x:/b", "/a:/b:xx", ":/b"):
        with pytest.raises(InvalidArgument):
            parse_volume(bad)
    assert Ulimit.parse("nofile=512:1024") == Ulimit("nofile", 512, 1024)
    assert Ulimit.parse("nproc=64") == Ulimit("nproc", 64, 64)
    for bad in ("nofile", "bogus=1", "nofile=2:1"):
        with pytest.raises(InvalidArgument):
            Ulimit.parse(bad)


def test_names_env_and_config_round_trip(tmp_path, monkeypatch):
    assert validate_name("/web-1") == "web-1"
    with pytest.raises(InvalidArgument, match=r"Invalid container name \(a/b\)"):
        validate_name("a/b")
    assert merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3", None]) == ["PATH=/bin", "A=2", "B=3"]
    monkeypatch.setenv("FROM_HOST", "yes")
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nX=1\n\nFROM_HOST\nUNSET_VARIABLE_XYZ\n")
    assert parse_env_file(str(env_file)) == ["X=1", "FROM_HOST=yes", None]
    config = ContainerConfig(image="busybox", cmd=["sh"], mounts=[Mount("bind", "/b", "/a", True)],
                             ulimits=[Ulimit("nofile", 1, 2)], memory=1 << 20)
    assert ContainerConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_random_names_avoid_taken():
    rng = random.Random(1)
    taken = set()
    for _ in range(50):
        name = names.random_name(taken, rng)
        assert name not in taken and "_" in name
        taken.add(name)


def test_start_error_codes():
    assert start_error_code('exec: "x": executable file not found in $PATH') == 127
    assert start_error_code("stat /x: no such file or directory") == 127
    assert start_error_code('exec: "/etc": permission denied') == 126
    assert start_error_code("unable to find user bob: no matching entries in passwd file") == 125


def test_log_writer_rotates_and_reader_follows_the_order(tmp_path):
    path = str(tmp_path / "c-json.log")
    writer = logs.LogWriter(path, max_size=200, max_file=3)
    for index in range(20):
        writer.write("stdout" if index % 2 else "stderr", f"line {index}\n".encode())
    writer.write("stdout", b"partial")
    writer.close()
    files = sorted(os.listdir(tmp_path))
    assert files == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    entries = list(logs.read_entries(path))
    texts = [text for _, text, _ in entries]
    assert texts[-1] == "partial" and texts[-2] == "line 19\n"
    assert texts == sorted(texts, key=lambda t: int(t.split()[1]) if t.startswith("line") else 99)
    assert all(stamp.endswith("Z") for _, _, stamp in entries)


def test_log_lines_are_dockers_compact_utf8_json(tmp_path):
    path = str(tmp_path / "c-json.log")
    writer = logs.LogWriter(path, max_size=0, max_file=1)
    writer.write("stdout", "héllo \"x\"\n".encode())
    writer.close()
    line = open(path, encoding="utf-8").read()
    assert line.startswith('{"log":"héllo \\"x\\"\\n","stream":"stdout","time":"') and line.endswith('Z"}\n')


def test_log_times():
    assert logs.timestamp(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert logs.timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert parse_rfc3339(logs.timestamp(1_700_000_000_123_400_000)) == 1_700_000_000_123_400_000


def _rootfs(tmp_path, passwd, group=""):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(passwd)
    (root / "etc" / "group").write_text(group)
    return str(root)


def test_resolve_user(tmp_path):
    root = _rootfs(tmp_path, "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1001:Bob:/home/bob:/bin/sh\n",
                   "root:x:0:\nstaff:x:50:bob,alice\nbob:x:1001:\nwheel:x:10:bob\n")
    user = specgen.resolve_user(root, "bob")
    assert (user.uid, user.gid, sorted(user.additional_gids), user.home) == (1000, 1001, [10, 50], "/home/bob")
    user = specgen.resolve_user(root, "bob:staff")
    assert (user.uid, user.gid) == (1000, 50)
    user = specgen.resolve_user(root, "1000")
    assert (user.uid, user.gid) == (1000, 1001)
    user = specgen.resolve_user(root, "4242:4343")
    assert (user.uid, user.gid, user.additional_gids) == (4242, 4343, [])
    assert specgen.resolve_user(root, "").uid == 0
    with pytest.raises(NotFound, match="unable to find user carol"):
        specgen.resolve_user(root, "carol")
    with pytest.raises(NotFound, match="unable to find group nogroup"):
        specgen.resolve_user(root, "bob:nogroup")


def test_resolve_user_never_leaves_the_rootfs(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:4444:4444::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").symlink_to(outside / "passwd")
    with pytest.raises(NotFound):
        specgen.resolve_user(str(root), "evil")
    os.unlink(root / "etc" / "passwd")
    os.rmdir(root / "etc")
    (root / "etc").symlink_to(outside)  # an absolute symlink resolves inside the root: no passwd there
    with pytest.raises(NotFound):
        specgen.resolve_user(str(root), "evil")


def test_cgroups_path_is_below_our_own():
    config = ContainerConfig(image="x")
    own = specgen.own_cgroup().rstrip("/")
    assert specgen.cgroups_path(config, "abc") == f"{own}/vessel/abc"
    config.cgroup_parent = "/elsewhere"
    assert specgen.cgroups_path(config, "abc") == "/elsewhere/abc"


def test_attach_frames():
    reader = attach.FrameReader()
    data = attach.frame(attach.STDOUT, b"hello") + attach.frame(attach.EXIT, b"3")
    assert reader.feed(data[:4]) == []
    assert reader.feed(data[4:]) == [(attach.STDOUT, b"hello"), (attach.EXIT, b"3")]
    with pytest.raises(ValueError):
        attach.FrameReader().feed(b"\x01\xff\xff\xff\xff")


def test_cli_figures():
    from vessel.cli.containers import _ellipsis, binary_size, status_text
    from vessel.engine.state import Record

    assert binary_size(0) == "0B" and binary_size(64 << 20) == "64MiB" and binary_size(1536 * 1024) == "1.5MiB"
    assert _ellipsis("sh -c i=0; while true; do", 20) == "sh -c i=0; while tr…"
    values = dict(id="x", name="n", image_id="i", image_ref="r", created=0, config=None, status="exited",
                  pid=0, exit_code=3, error="", started=100, finished=190, restart_count=0, runtime=[], labels={},
                  supervisor_pid=0, supervisor_start="")
    assert status_text(Record(**values), now=200) == "Exited (3) 10 seconds ago"
    assert status_text(Record(**{**values, "status": "running"}), now=200) == "Up About a minute"
    assert status_text(Record(**{**values, "status": "paused"}), now=101) == "Up 1 second (Paused)"
    assert status_text(Record(**{**values, "status": "created"})) == "Created"


def test_detach_keys_across_reads():
    escape = attach.EscapeFilter(attach.DETACH_KEYS)
    assert escape.feed(b"ab\x10") == (b"ab", False)
    assert escape.feed(b"c") == (b"\x10c", False)
    assert escape.feed(b"x\x10") == (b"x", False)
    assert escape.feed(b"\x11rest") == (b"", True)
    assert escape.feed(b"\x10\x10\x11") == (b"\x10", True)
