"""The fast paths of apply_layer give the same tree as applying entry by entry did.

Directory fds are cached (made by directory entries, evicted oldest first),
gzip goes through zlib directly on a reader thread and tar checksums are
summed with adler32: these cases push each of them to its edges (more
directories than the cache holds, a path written twice, a file replacing a
cached directory, multi-member gzip). No timing here: see bench/unpack.py.
"""

import gzip
import hashlib
import io
import os
import stat

import pytest

from image_fixtures import directory, file, hardlink, make_tar, symlink
from vessel.errors import InvalidArgument
from vessel.image import unpack
from vessel.image.unpack import apply_layer


def apply(tar, root, **kwargs):
    return apply_layer(io.BytesIO(tar), str(root), **kwargs)


def test_many_files_in_many_directories(tmp_path):
    """More directories than the fd cache holds, each visited again after its fd was evicted."""
    entries = []
    expected = {}
    dirs = unpack._MAX_CACHED_DIRS + 40
    for index in range(dirs):
        entries.append(directory(f"d{index % 7}/sub{index}", 0o750 + index % 2 * 5))
        for number in range(3):
            name = f"d{index % 7}/sub{index}/f{number}"
            data = os.urandom(index % 50) * number
            entries.append(file(name, data, 0o600 + number * 0o22))
            expected[name] = data
    for index in range(dirs):  # back to every directory once its fd was evicted
        name = f"d{index % 7}/sub{index}/late"
        entries.append(file(name, b"late %d" % index))
        expected[name] = b"late %d" % index
    tar = make_tar(*entries)
    result = apply(tar, tmp_path)
    assert result.entries == len(entries)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    for name, data in expected.items():
        assert (tmp_path / name).read_bytes() == data
        assert os.stat(tmp_path / name).st_mtime == 1_700_000_000
    assert stat.S_IMODE(os.stat(tmp_path / "d0/sub0/f2").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "d1/sub1").st_mode) == 0o755
    assert len(os.listdir(tmp_path / "d3")) == len([i for i in range(dirs) if i % 7 == 3])


def test_same_path_twice_keeps_the_last(tmp_path):
    tar = make_tar(file("a", b"first"), file("b", b"other"), file("a", b"second", 0o600))
    apply(tar, tmp_path)
    assert (tmp_path / "a").read_bytes() == b"second"
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o600


def test_file_replaces_a_directory_and_a_symlink(tmp_path):
    tar = make_tar(directory("x"), file("x/inner", b"gone"), file("keep", b"k"), file("x", b"now a file"),
                   symlink("/etc", "link"), file("link", b"not the link"))
    apply(tar, tmp_path, overlay=False)
    assert (tmp_path / "x").read_bytes() == b"now a file"
    assert not os.path.islink(tmp_path / "link") and (tmp_path / "link").read_bytes() == b"not the link"
    assert (tmp_path / "keep").read_bytes() == b"k"


def test_directory_replacing_a_file(tmp_path):
    tar = make_tar(file("p", b"file first"), directory("p", 0o700), file("p/child", b"c"))
    apply(tar, tmp_path, overlay=False)
    assert stat.S_ISDIR(os.lstat(tmp_path / "p").st_mode)
    assert (tmp_path / "p/child").read_bytes() == b"c"


def test_file_below_a_file_is_an_error(tmp_path):
    """The parent became a file (its cached directory fd must not be used), so the child cannot be made."""
    tar = make_tar(directory("q"), file("q", b"file"), file("q/child", b"c"))
    with pytest.raises(InvalidArgument):
        apply(tar, tmp_path, overlay=False)


def test_hardlink_to_a_file_just_written(tmp_path):
    tar = make_tar(file("data/one", b"payload"), hardlink("data/one", "data/two"))
    apply(tar, tmp_path)
    assert os.path.samestat(os.stat(tmp_path / "data/one"), os.stat(tmp_path / "data/two"))


def test_existing_file_or_symlink_in_the_way(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/old").write_bytes(b"old")
    os.symlink("/etc/passwd", tmp_path / "etc/evil")
    tar = make_tar(file("etc/old", b"new"), file("etc/evil", b"in the root"))
    apply(tar, tmp_path, overlay=False)
    assert (tmp_path / "etc/old").read_bytes() == b"new"
    assert not os.path.islink(tmp_path / "etc/evil")
    assert (tmp_path / "etc/evil").read_bytes() == b"in the root"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to set owners")
def test_setgid_directory_and_owners(tmp_path):
    tar = make_tar(directory("shared", 0o2775, gid=1234), file("shared/f", b"x", uid=0, gid=0),
                   file("other", b"y", uid=42, gid=43))
    apply(tar, tmp_path)
    assert (os.stat(tmp_path / "shared/f").st_gid, os.stat(tmp_path / "other").st_uid) == (0, 42)
    assert os.stat(tmp_path / "other").st_gid == 43


def test_multi_member_gzip_with_padding(tmp_path):
    tar = make_tar(file("a", b"1" * 5000), file("b", b"2"))
    middle = len(tar) // 2
    blob = gzip.compress(tar[:middle], mtime=0) + gzip.compress(tar[middle:], mtime=0) + bytes(512)
    result = apply(blob, tmp_path)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert (tmp_path / "b").read_bytes() == b"2"


@pytest.mark.parametrize("damage", ["truncated", "garbage after", "corrupt"])
def test_bad_gzip(tmp_path, damage):
    blob = gzip.compress(make_tar(file("a", os.urandom(20000))), mtime=0)
    if damage == "truncated":
        blob = blob[:-100]
    elif damage == "garbage after":
        blob += b"not gzip"
    else:
        blob = blob[:200] + bytes([blob[200] ^ 0xFF]) + blob[201:]
    with pytest.raises(InvalidArgument):
        apply(blob, tmp_path)


def test_checksum_is_exact(tmp_path):
    """A header whose stored checksum is off by the adler32 modulus is still rejected."""
    tar = bytearray(make_tar(file("a", b"x")))
    stored = int(tar[148:154], 8)
    tar[148:156] = b"%06o\0 " % (stored + 65521)
    with pytest.raises(InvalidArgument, match="checksum"):
        apply(bytes(tar), tmp_path)


def test_error_names_the_entry(tmp_path):
    (tmp_path / "ro").mkdir()
    tar = make_tar(file("ro/a", b"x"), file("ro/" + "n" * 300, b"too long"), file("ro/c", b"z"))
    with pytest.raises(InvalidArgument, match="nnnn"):
        apply(tar, tmp_path)
