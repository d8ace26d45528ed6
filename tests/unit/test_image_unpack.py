"""Layer application: entry types, metadata, whiteouts, compression, diff_id, errors."""

import hashlib
import io
import os
import stat
import tarfile

import pytest

from image_fixtures import chardev, directory, fifo, file, gzipped, hardlink, make_tar, symlink, zstded
from vessel.errors import InvalidArgument, Unsupported
from vessel.image.unpack import apply_layer, detect_compression


def apply(tar, root, **kwargs):
    return apply_layer(io.BytesIO(tar), str(root), **kwargs)


def test_basic_types_and_metadata(tmp_path):
    tar = make_tar(
        directory("etc", 0o750, uid=5, gid=6),
        file("etc/passwd", b"root\n", 0o640, uid=7, gid=8),
        file("bin/suid", b"x", 0o4755),
        symlink("passwd", "etc/link", uid=3, gid=4),
        hardlink("etc/passwd", "etc/hard"),
        fifo("run/fifo", 0o640),
        chardev("dev/null", 1, 3),
    )
    result = apply(tar, tmp_path)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert result.tar_size == len(tar) and result.content_size == 6 and result.entries == 7
    etc = os.stat(tmp_path / "etc")
    assert stat.S_IMODE(etc.st_mode) == 0o750 and (etc.st_uid, etc.st_gid) == (5, 6)
    assert etc.st_mtime == 1_700_000_000
    info = os.stat(tmp_path / "etc/passwd")
    assert stat.S_IMODE(info.st_mode) == 0o640 and (info.st_uid, info.st_gid) == (7, 8)
    assert info.st_mtime == 1_700_000_000 and info.st_nlink == 2
    assert (tmp_path / "etc/passwd").read_bytes() == b"root\n"
    assert stat.S_IMODE(os.stat(tmp_path / "bin/suid").st_mode) == 0o4755
    link = os.lstat(tmp_path / "etc/link")
    assert os.readlink(tmp_path / "etc/link") == "passwd" and (link.st_uid, link.st_gid) == (3, 4)
    assert os.path.samefile(tmp_path / "etc/hard", tmp_path / "etc/passwd")
    assert stat.S_ISFIFO(os.stat(tmp_path / "run/fifo").st_mode)
    null = os.stat(tmp_path / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o755  # implied parent


def test_xattrs_pax(tmp_path):
    info, data = file("f", b"x")
    info.pax_headers = {"SCHILY.xattr.user.test": "value", "SCHILY.xattr.trusted.overlay.opaque": "y"}
    apply(make_tar((info, data)), tmp_path)
    assert os.getxattr(tmp_path / "f", "user.test") == b"value"
    with pytest.raises(OSError):
        os.getxattr(tmp_path / "f", "trusted.overlay.opaque")  # layers cannot forge overlay metadata


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names(tmp_path, fmt):
    if fmt == tarfile.USTAR_FORMAT:  # prefix (155) + name (100)
        name = "d" * 70 + "/" + "e" * 70 + "/" + "f" * 90
    else:
        name = "d" * 90 + "/" + "e" * 90 + "/" + "f" * 90
    target = "t" * 99 if fmt == tarfile.USTAR_FORMAT else "t" * 150
    apply(make_tar(file(name, b"long"), symlink(target, "link"), fmt=fmt), tmp_path)
    assert (tmp_path / name).read_bytes() == b"long"
    assert os.readlink(tmp_path / "link") == target


@pytest.mark.parametrize("compress", [lambda d: d, gzipped, zstded,
                                      lambda d: __import__("bz2").compress(d),
                                      lambda d: __import__("lzma").compress(d)])
def test_compressions_give_same_diff_id(tmp_path, compress):
    tar = make_tar(file("a", b"hello" * 1000))
    result = apply(compress(tar), tmp_path)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert (tmp_path / "a").read_bytes() == b"hello" * 1000


def test_detect_compression():
    assert detect_compression(b"\x1f\x8b\x08") == "gzip"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(b"etc/") is None


def test_diff_id_checked(tmp_path):
    with pytest.raises(InvalidArgument, match="diff_id mismatch"):
        apply(make_tar(file("a")), tmp_path, expected_diff_id="sha256:" + "0" * 64)


def test_big_file(tmp_path):
    data = os.urandom(3 << 20)
    result = apply(gzipped(make_tar(file("big", data))), tmp_path)
    assert (tmp_path / "big").read_bytes() == data and result.content_size == len(data)


def test_overlay_whiteouts(tmp_path):
    tar = make_tar(
        file("etc/.wh.passwd"),
        directory("var"),
        file("var/.wh..wh..opq"),
        file("var/new", b"n"),
        file(".wh..wh.plnk/123"),
    )
    apply(tar, tmp_path, overlay=True)
    whiteout = os.stat(tmp_path / "etc/passwd")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(tmp_path / "var", "trusted.overlay.opaque") == b"y"
    assert (tmp_path / "var/new").read_bytes() == b"n"


def test_apply_mode_whiteouts(tmp_path):
    apply(make_tar(file("etc/passwd", b"p"), file("etc/group", b"g"), file("var/old", b"o"),
                   file("var/keep/x", b"x")), tmp_path, overlay=False)
    apply(make_tar(file("etc/.wh.passwd"), file("var/new", b"n"), file("var/.wh..wh..opq"),
                   file(".wh.nothing")), tmp_path, overlay=False)
    assert sorted(os.listdir(tmp_path / "etc")) == ["group"]
    assert sorted(os.listdir(tmp_path / "var")) == ["new"]


def test_replace_dir_with_file_and_back(tmp_path):
    apply(make_tar(directory("x"), file("x/y", b"1")), tmp_path, overlay=False)
    apply(make_tar(file("x", b"file")), tmp_path, overlay=False)
    assert (tmp_path / "x").read_bytes() == b"file"
    apply(make_tar(directory("x", 0o700), file("x/z")), tmp_path, overlay=False)
    assert os.listdir(tmp_path / "x") == ["z"]


def test_missing_parent_copies_lower_attributes(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    apply(make_tar(directory("etc", 0o710, uid=3, gid=4), file("etc/a")), lower)
    apply(make_tar(file("etc/b")), upper, lowers=[str(lower)])
    info = os.stat(upper / "etc")
    assert stat.S_IMODE(info.st_mode) == 0o710 and (info.st_uid, info.st_gid) == (3, 4)


def _truncated():
    tar = make_tar(file("a", os.urandom(5000)))
    return tar[:3000]


@pytest.mark.parametrize("data,message", [
    (b"", "truncated"),
    (b"garbage" * 100, "truncated|checksum"),
    (bytes(511), "truncated"),
    (b"x" * 1024, "checksum"),
    (_truncated(), "truncated"),
    (gzipped(make_tar(file("a", os.urandom(10000))))[:2000], "corrupt gzip|truncated"),
    (b"\x1f\x8b" + b"\x00" * 100, "corrupt gzip"),
    (b"\x28\xb5\x2f\xfd" + b"\xff" * 50, "corrupt zstd"),
])
def test_corrupt(tmp_path, data, message):
    with pytest.raises(InvalidArgument, match=message):
        apply(data, tmp_path)


def test_missing_end_marker_is_truncated(tmp_path):
    tar = make_tar(file("a", b"x"))
    with pytest.raises(InvalidArgument, match="truncated"):
        apply(tar[:1024], tmp_path)


def test_bad_whiteouts(tmp_path):
    for name in (".wh..", ".wh...", "etc/.wh..", "etc/.wh..."):
        with pytest.raises(InvalidArgument, match="invalid whiteout"):
            apply(make_tar(file(name)), tmp_path)


def test_hardlink_to_missing_target(tmp_path):
    with pytest.raises(InvalidArgument, match="not found"):
        apply(make_tar(hardlink("nope", "x")), tmp_path)


def test_sparse_rejected(tmp_path):
    info, data = file("s", b"x")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with pytest.raises(Unsupported, match="sparse"):
        apply(make_tar((info, data)), tmp_path)


def test_root_entry_ignored_and_dot_slash_names(tmp_path):
    os.chmod(tmp_path, 0o711)
    apply(make_tar(directory("./", 0o700), file("./a/./b/../c", b"c")), tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o711
    assert (tmp_path / "a/c").read_bytes() == b"c"


def test_hostile_headers(tmp_path):
    info, data = file("f", b"x")
    info.pax_headers = {"comment": "x" * (2 << 20)}
    with pytest.raises(InvalidArgument, match="extension header"):
        apply(make_tar((info, data)), tmp_path)
    info, data = file("g", b"x")
    info.pax_headers = {"uid": "99999999999999999999"}
    with pytest.raises(InvalidArgument):
        apply(make_tar((info, data)), tmp_path)
    info, data = file("h", b"x")
    info.pax_headers = {"linkpath": "a\x00b"}
    info.type = tarfile.SYMTYPE
    with pytest.raises(InvalidArgument):
        apply(make_tar((info, None)), tmp_path)


def test_setgid_directory_does_not_leak_group(tmp_path):
    tar = make_tar(directory("shared", 0o2775, uid=0, gid=50), file("shared/own", b"x", uid=0, gid=0),
                   file("shared/inherit", b"y", uid=0, gid=50), directory("shared/sub", 0o755, gid=0))
    apply(tar, tmp_path)
    assert os.stat(tmp_path / "shared/own").st_gid == 0
    assert os.stat(tmp_path / "shared/inherit").st_gid == 50
    assert os.stat(tmp_path / "shared/sub").st_gid == 0
    assert stat.S_IMODE(os.stat(tmp_path / "shared").st_mode) == 0o2775


def test_directory_xattrs_and_modes_kept_on_merge(tmp_path):
    info, _ = directory("d", 0o700)
    info.pax_headers = {"SCHILY.xattr.user.dir": "1"}
    apply(make_tar((info, None), file("d/a")), tmp_path, overlay=False)
    apply(make_tar(directory("d", 0o751), file("d/b")), tmp_path, overlay=False)
    assert sorted(os.listdir(tmp_path / "d")) == ["a", "b"]
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o751
    assert os.getxattr(tmp_path / "d", "user.dir") == b"1"


@pytest.mark.parametrize("inflater", ["zlib", "isal"])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_gzip_members_across_reads(monkeypatch, inflater, chunk):
    """Several members, zero padding between them, at any read size: the bytes come out once each."""
    import gzip
    import zlib

    from vessel.image import unpack

    monkeypatch.setattr(unpack, "_inflate", zlib if inflater == "zlib" else pytest.importorskip("isal.isal_zlib"))
    monkeypatch.setattr(unpack, "_CHUNK", chunk)
    first = os.urandom(3000) + b"layer " * 200000
    stream = gzip.compress(first) + bytes(10) + gzip.compress(b"second") + gzip.compress(first[:7000])
    reader = unpack.decompressed(io.BytesIO(stream))
    parts = []
    while part := reader.read(1 << 20 if chunk > 7 else 100):
        parts.append(part)
    assert b"".join(parts) == first + b"second" + first[:7000]
    for bad, message in ((stream[:len(stream) // 2], "corrupt gzip.*ended"), (stream + b"\x1f", "trailing garbage")):
        reader = unpack.decompressed(io.BytesIO(bad))
        with pytest.raises(InvalidArgument, match=message):
            while reader.read(1 << 20):
                pass
