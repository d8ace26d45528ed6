"""The native half of apply_layer (vessel.image._filewriter: header scan, file writer) and the
pure-Python path give the same entries and trees, keep the same breakout properties and report
the same failures.

The writer is used when the target starts empty; `path` runs each case once with the native
half and once without it (as on an install without a compiler).
"""

import hashlib
import io
import os
import stat
import tarfile

import pytest

from image_fixtures import chardev, directory, file, gzipped, hardlink, make_tar, symlink
from test_image_unpack_breakouts import CASES, outside_snapshot
from vessel.errors import InvalidArgument
from vessel.image import unpack
from vessel.image.unpack import apply_layer


def without_native(monkeypatch):
    """As on an install without a compiler: the pure-Python path only."""
    for helper in ("_write_files", "_scan_headers", "_take_files"):
        monkeypatch.setattr(unpack, helper, None)


@pytest.fixture(params=["native", "python"])
def path(request, monkeypatch):
    if request.param == "python":
        without_native(monkeypatch)
    return request.param


def apply(tar, root, **kwargs):
    return apply_layer(io.BytesIO(tar), str(root), **kwargs)


def tree(root):
    """Everything apply_layer sets, for every path below `root`."""
    result = {}
    for directory_path, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(directory_path, name)
            info = os.lstat(full)
            if stat.S_ISREG(info.st_mode):
                with open(full, "rb") as handle:
                    content = handle.read()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(full).encode()
            else:
                content = info.st_rdev
            result[os.path.relpath(full, root)] = (info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns,
                                                   info.st_nlink, content)
    return result


def both_ways(tmp_path, monkeypatch, tar, untimed=(), **kwargs):
    """{"native": ..., "python": ...}: the tree, diff_id, entry count and content size of `tar`
    applied with the native half and without it; `untimed` paths are made now (no time to compare)."""
    results = {}
    for name in ("native", "python"):
        if name == "python":
            without_native(monkeypatch)
        root = tmp_path / name
        root.mkdir()
        result = apply(tar, root, **kwargs)
        made = tree(root)
        for untimed_path in untimed:
            if untimed_path in made:
                made[untimed_path] = made[untimed_path][:3] + made[untimed_path][4:]
        results[name] = (made, result.diff_id, result.entries, result.content_size)
    return results


def test_native_writer_is_built():
    """scripts/setup (pip install -e) compiles it; without it every layer takes the Python path."""
    from vessel.image import _filewriter
    assert unpack._write_files is _filewriter.write_files


def test_writer_in_use_only_for_an_empty_target(tmp_path, monkeypatch):
    if unpack._write_files is None:
        pytest.skip("the native writer is not built")
    calls = []
    native = unpack._write_files
    monkeypatch.setattr(unpack, "_write_files", lambda ops: calls.append(len(ops)) or native(ops))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    apply(make_tar(file("a", b"1"), directory("d"), file("d/b", b"2")), fresh)
    assert sum(calls) == 2
    calls.clear()
    apply(make_tar(file("c", b"3")), fresh)  # not empty now
    assert calls == []
    assert (fresh / "c").read_bytes() == b"3"


def test_same_tree_as_python(tmp_path, monkeypatch):
    """Every kind of entry, paths written again, files replacing directories and the reverse,
    links to queued files, setgid directories, a file over a chunk: the same tree both ways."""
    big = os.urandom(unpack._CHUNK + 1000)
    xattr_file, xattr_data = file("x/attrs", b"with xattrs")
    xattr_file.pax_headers = {"SCHILY.xattr.user.k": "v"}
    entries = [directory("x", 0o750, uid=3, gid=4)]
    for index in range(300):
        entries.append(file(f"x/f{index}", os.urandom(index * 7), 0o600 + index % 3 * 0o11,
                            uid=index % 5, gid=index % 7))
    entries += [
        (xattr_file, xattr_data),
        file("x/f1", b"written again"),
        hardlink("x/f2", "x/link-to-f2"),
        symlink("f3", "x/sym"),
        file("x/sym", b"file over a symlink"),
        directory("x/f4"),  # a directory over a queued file
        file("x/f4/inside", b"i"),
        directory("y"),
        file("y/sub/implied", b"parent made on the way"),
        file("y/sub", b"file over a directory"),
        directory("g", 0o2775, gid=55),
        file("g/in-setgid", b"s", uid=0, gid=0),
        file("g/suid", b"u", 0o4755),
        file("big", big),
        symlink("/x", "z"),
        file("z/through-symlink", b"t"),
        file("x/.wh.f5"),
        file("after/all", b"end"),
    ]
    tar = make_tar(*entries)
    # "after" is made on the way, x/f5 is a whiteout
    results = both_ways(tmp_path, monkeypatch, gzipped(tar), untimed=("after", os.path.join("x", "f5")))
    assert results["native"][0] == results["python"][0]
    assert results["native"] == results["python"]
    native_tree = results["native"][0]
    assert native_tree[os.path.join("x", "f1")][-1] == b"written again"
    assert native_tree[os.path.join("x", "through-symlink")][-1] == b"t"
    assert stat.S_ISCHR(native_tree[os.path.join("x", "f5")][0])
    assert results["native"][1] == "sha256:" + hashlib.sha256(tar).hexdigest()


@pytest.mark.parametrize("overlay", [False, True], ids=["apply", "overlay"])
@pytest.mark.parametrize("name", sorted(name for name, case in CASES.items() if case[0] is None))
def test_breakout_into_an_empty_root(tmp_path, path, name, overlay):
    """The breakout cases that start from an empty root: there the native writer is used."""
    root, host = tmp_path / "root", tmp_path / "host"
    root.mkdir()
    (host / "etc").mkdir(parents=True)
    (host / "etc/passwd").write_bytes(b"host passwd")
    (host / "etc/unbroken").write_bytes(b"host")
    _, entries, expect = CASES[name]
    before = outside_snapshot(host)
    tar = make_tar(*entries)
    if isinstance(expect, type):
        with pytest.raises(expect):
            apply(tar, root, overlay=overlay)
    else:
        apply(tar, root, overlay=overlay)
        if expect is not None and not (overlay and "Whiteout" in name):
            expect(root)
    assert outside_snapshot(host) == before
    assert sorted(os.listdir(tmp_path)) == ["host", "root"]


def test_failed_file_is_named(tmp_path, path):
    """A failure in the writer's thread names the entry it failed on, not the one being parsed."""
    tar = make_tar(file("a", b"x"), file("n" * 300, b"too long"), *[file(f"later{i}", b"z") for i in range(50)])
    with pytest.raises(InvalidArgument, match="applying layer entry nnnn"):
        apply(tar, tmp_path)


def test_truncated_layer_fails(tmp_path, path):
    tar = make_tar(*[file(f"d/f{i}", os.urandom(3000)) for i in range(200)])
    with pytest.raises(InvalidArgument, match="truncated"):
        apply(tar[:len(tar) // 2], tmp_path)
    assert len(os.listdir(tmp_path / "d")) < 200


def entries_of(tar, scan):
    """Every entry's fields and data as _read_entries gives them, with or without the native scan."""
    original = unpack._scan_headers
    unpack._scan_headers = scan
    try:
        source = io.BytesIO(tar)
        buf = unpack._Buffer(lambda: source.read(4096))  # small reads: headers and data across refills
        result = []
        for entry in unpack._read_entries(buf):
            data = b""
            if entry.type in unpack._REGULAR:
                data = bytes(buf.take(entry.size)) if entry.size else b""
                entry.size = None
            result.append(tuple(getattr(entry, name, None) for name in unpack.Entry.__slots__) + (data,))
        return result
    finally:
        unpack._scan_headers = original


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_native_scan_reads_what_python_reads(fmt):
    if unpack._scan_headers is None:
        pytest.skip("the native helper is not built")
    long_dir = "/".join(["segment%02d" % index for index in range(12)])  # > 100 bytes: prefix or extension
    entries = [directory("d", 0o2755, uid=7, gid=8), file("d/a", os.urandom(1000), 0o4751, uid=1, gid=2),
               file("d/empty"), symlink("a", "d/sym"), hardlink("d/a", "d/hard"), directory(long_dir),
               file(long_dir + "/f", b"deep"), file("slash/", b""), chardev("dev/null", 1, 3),
               file("d/last", os.urandom(5000))]
    if fmt != tarfile.USTAR_FORMAT:
        entries.append(file("big-uid", b"u", uid=0o7777777 + 5))  # base-256
    for size in (0, 511, 512, 513, 9000):
        entries.append(file(f"sized/{size}", os.urandom(size)))
    tar = make_tar(*entries, fmt=fmt)
    assert entries_of(tar, unpack._scan_headers) == entries_of(tar, None)


def test_native_scan_leaves_odd_headers_to_python():
    """Numbers with other spellings, a v7 header without magic, a regular file named like a directory
    with data: parsed the same either way (the scan stops, Python reads them)."""
    if unpack._scan_headers is None:
        pytest.skip("the native helper is not built")
    tar = bytearray(make_tar(file("a", b"x" * 700), file("b", b"y"), file("c/", b""), file("e", b"z"),
                             fmt=tarfile.USTAR_FORMAT))

    def rewrite(offset, field, value):
        tar[offset + field[0]:offset + field[0] + field[1]] = value
        block = tar[offset:offset + 512]
        block[148:156] = b" " * 8
        tar[offset + 148:offset + 156] = b"%06o\0 " % sum(block)

    rewrite(0, (100, 8), b"  644 \0\0")  # mode with leading spaces
    second = 512 + 1024
    rewrite(second, (257, 8), bytes(8))  # no magic
    assert entries_of(bytes(tar), unpack._scan_headers) == entries_of(bytes(tar), None)


def test_directory_fds_outlive_the_files_queued_in_them(tmp_path, monkeypatch):
    """Files round-robin over more directories than the fd cache holds: each file's directory
    evicts one a queued file still needs; every file must land in its own directory."""
    monkeypatch.setattr(unpack, "_MAX_CACHED_DIRS", 4)
    entries = [directory(f"d{index}") for index in range(12)]
    entries += [file(f"d{index % 12}/f{index}", b"%d" % index) for index in range(600)]
    apply(make_tar(*entries), tmp_path)
    for index in range(600):
        assert (tmp_path / f"d{index % 12}/f{index}").read_bytes() == b"%d" % index
    assert sum(len(os.listdir(tmp_path / f"d{index}")) for index in range(12)) == 600


@pytest.mark.parametrize("overlay", [True, False], ids=["overlay", "apply"])
@pytest.mark.parametrize("compress", [bytes, gzipped], ids=["plain", "gzip"])
def test_take_files_leaves_the_exceptions_to_python(tmp_path, monkeypatch, compress, overlay):
    """Names the native take_files must leave to Python (not clean, whiteouts, below a symlink, a
    path again, a directory's path) among many it takes (across writer batches): the same tree
    as the pure-Python path, and the plain ones were taken natively."""
    if unpack._take_files is None:
        pytest.skip("the native helper is not built")
    entries = [directory("d"), file("top", b"in the root"), file("d/a", b"a"), file("./d/b", b"b"),
               file("d//c", b"c"), file("d/./e", b"e"), file("d/x/../f", b"f"), file("/d/g", b"g"),
               file("d/.hidden", b"h"), file("d/..dots", b"dots"), file("d/.wh.gone"),
               symlink("d", "s"), file("s/through", b"via symlink"), file("d/a", b"again"),
               directory("d/sub"), directory("d/many", 0o700)]
    entries += [file(f"d/many/f{index}", b"%d" % index, 0o640) for index in range(2500)]
    entries += [file("d/sub", b"file over a directory"), file("d/many/after", b"after a removal")]
    tar = compress(make_tar(*entries))
    taken = []
    native = unpack._take_files

    def counting(*args):
        result = native(*args)
        taken.append(result[1])
        return result

    monkeypatch.setattr(unpack, "_take_files", counting)
    trees = both_ways(tmp_path, monkeypatch, tar, untimed=("d/gone",), overlay=overlay)  # an overlay whiteout
    assert trees["native"] == trees["python"]
    made = trees["native"][0]
    assert made["d/a"][-1] == b"again" and made["d/sub"][-1] == b"file over a directory"
    assert made["d/through"][-1] == b"via symlink" and stat.S_ISLNK(made["s"][0])
    assert ("d/gone" in made) == overlay
    # d/many/f* but those cut by a buffer's end, top, d/a (twice: not queued after a sync), d/.hidden,
    # d/..dots; the others in Python
    assert 2500 - 10 < sum(taken) <= 2500 + 5
