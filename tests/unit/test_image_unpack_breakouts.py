"""containerd's archive breakout cases (pkg/archive/tar_test.go TestBreakouts), ported.

Every case runs with a sentinel directory next to the root; nothing outside the
root may be created or changed, and the in-root result must match containerd's.
"""

import io
import os
import stat
import uuid

import pytest

from image_fixtures import directory, file, hardlink, make_tar, symlink
from vessel.errors import InvalidArgument
from vessel.image.unpack import apply_layer
from vessel.runtime import linux

EXPECTED = b"unbroken"


def in_root_stat(root, name):
    """stat `name` resolving symlinks as if `root` were '/' (containerd's fs.RootPath)."""
    fd = linux.openat2(os.open(root, os.O_PATH), name, os.O_PATH, 0, linux.RESOLVE_IN_ROOT)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def same_file(a, b):
    def check(root):
        assert os.path.samestat(in_root_stat(root, a), in_root_stat(root, b))
    return check


def not_same_file(a, b):
    def check(root):
        assert not os.path.samestat(in_root_stat(root, a), in_root_stat(root, b))
    return check


def file_value(name, value):
    def check(root):
        assert (root / name).read_bytes() == value
    return check


def not_exists(name):
    def check(root):
        assert not os.path.lexists(root / name)
    return check


def unbroken(root):
    assert (root / "etc/unbroken").read_bytes() == EXPECTED


def all_of(*checks):
    def check(root):
        for one in checks:
            one(root)
    return check


def pre(*steps):
    def setup(root):
        for kind, *args in steps:
            if kind == "dir":
                (root / args[0].strip("/")).mkdir(mode=0o755)
            elif kind == "file":
                (root / args[0].strip("/")).write_bytes(args[1])
            elif kind == "symlink":
                os.symlink(args[0], root / args[1].strip("/"))
            elif kind == "link":
                os.link(root / args[0].strip("/"), root / args[1].strip("/"))
    return setup


CASES = {
    "SymlinkAbsolute": (None, [directory("etc"), symlink("/etc", "localetc"),
                               file("/localetc/unbroken", EXPECTED)], unbroken),
    "SymlinkUpAndOut": (None, [directory("etc"), directory("dummy"), symlink("/dummy/../etc", "localetc"),
                               file("/localetc/unbroken", EXPECTED)], unbroken),
    "SymlinkMultipleAbsolute": (None, [directory("etc"), directory("dummy"), symlink("/etc", "/dummy/etc"),
                                       symlink("/dummy/etc", "localetc"),
                                       file("/dummy/etc/unbroken", EXPECTED)], unbroken),
    "SymlinkMultipleRelative": (None, [directory("etc"), directory("dummy"), symlink("/etc", "/dummy/etc"),
                                       symlink("./dummy/etc", "localetc"),
                                       file("/dummy/etc/unbroken", EXPECTED)], unbroken),
    "SymlinkEmptyFile": (None, [directory("etc"), file("etc/emptied", b"notempty"),
                                symlink("/etc", "localetc"), file("/localetc/emptied", b"")],
                         file_value("etc/emptied", b"")),
    "HardlinkRelative": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                directory("breakouts"), symlink("../../etc", "breakouts/d1"),
                                hardlink("/breakouts/d1/passwd", "breakouts/mypasswd")],
                         same_file("/breakouts/mypasswd", "/etc/passwd")),
    "HardlinkDownAndOut": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                  directory("breakouts"), directory("downandout"),
                                  symlink("../downandout/../../etc", "breakouts/d1"),
                                  hardlink("/breakouts/d1/passwd", "breakouts/mypasswd")],
                           same_file("/breakouts/mypasswd", "/etc/passwd")),
    "HardlinkAbsolute": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                symlink("/etc", "localetc"), hardlink("/localetc/passwd", "localpasswd")],
                         same_file("localpasswd", "/etc/passwd")),
    "HardlinkRelativeLong": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                    symlink("../../../../../../../etc", "localetc"),
                                    hardlink("/localetc/passwd", "localpasswd")],
                             same_file("localpasswd", "/etc/passwd")),
    # containerd resolves "upandout/.." lexically and links etc/passwd; the kernel's
    # in-root resolution needs "upandout" to exist, so the link target is not found.
    "HardlinkRelativeUpAndOut": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                        symlink("upandout/../../../etc", "localetc"),
                                        hardlink("/localetc/passwd", "localpasswd")],
                                 InvalidArgument),
    "HardlinkDirectRelative": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                      hardlink("../../../../../etc/passwd", "localpasswd")],
                               same_file("localpasswd", "/etc/passwd")),
    "HardlinkDirectAbsolute": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                      hardlink("/etc/passwd", "localpasswd")],
                               same_file("localpasswd", "/etc/passwd")),
    "SymlinkParentDirectory": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                      symlink("/etc/", ".."), hardlink("/etc/passwd", "localpasswd")],
                               same_file("/localpasswd", "/etc/passwd")),
    "SymlinkEmptyFilename": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                    symlink("/etc/", ""), hardlink("/etc/passwd", "localpasswd")],
                             same_file("/localpasswd", "/etc/passwd")),
    "SymlinkParentRelative": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                     symlink("/etc/", "localetc/sub/.."),
                                     hardlink("/etc/passwd", "/localetc/localpasswd")],
                              same_file("/localetc/localpasswd", "/etc/passwd")),
    "SymlinkSlashEnded": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                 directory("localetc/", 0o770),
                                 hardlink("/etc/passwd", "/localetc/localpasswd")],
                          same_file("/localetc/localpasswd", "/etc/passwd")),
    "SymlinkOverrideDirectory": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside"), ("dir", "localetc")),
                                 [symlink("/etc", "localetc"), hardlink("/etc/passwd", "/localetc/localpasswd")],
                                 same_file("/localetc/localpasswd", "/etc/passwd")),
    "SymlinkOverrideDirectoryRelative": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside"),
                                             ("dir", "localetc")),
                                         [symlink("../../etc", "localetc"),
                                          hardlink("/etc/passwd", "/localetc/localpasswd")],
                                         same_file("/localetc/localpasswd", "/etc/passwd")),
    "DirectoryOverrideSymlink": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside"),
                                     ("symlink", "/etc", "localetc")),
                                 [directory("/localetc/"), hardlink("/etc/passwd", "/localetc/localpasswd")],
                                 all_of(same_file("/localetc/localpasswd", "/etc/passwd"),
                                        lambda root: os.path.isdir(root / "localetc")
                                        and not os.path.islink(root / "localetc"))),
    "DirectoryOverrideSymlinkAndHardlink": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside"),
                                                ("symlink", "etc", "localetc"),
                                                ("link", "etc/passwd", "localetc/localpasswd")),
                                            [directory("/localetc/"), file("/localetc/localpasswd", b"different")],
                                            all_of(not_same_file("/localetc/localpasswd", "/etc/passwd"),
                                                   file_value("etc/passwd", b"inside"))),
    "WhiteoutRootParent": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside")),
                           [file(".wh...")], InvalidArgument),
    "WhiteoutParent": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside")),
                       [file("etc/.wh...")], InvalidArgument),
    "WhiteoutRoot": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside")),
                     [file(".wh..")], InvalidArgument),
    "WhiteoutCurrentDirectory": (pre(("dir", "etc"), ("file", "etc/passwd", b"inside")),
                                 [file("etc/.wh..")], InvalidArgument),
    "WhiteoutSymlink": (pre(("dir", "etc"), ("file", "etc/passwd", b"all users"), ("symlink", "/etc", "localetc")),
                        [file(".wh.localetc")],
                        all_of(file_value("etc/passwd", b"all users"), not_exists("localetc"))),
    "WhiteoutSymlinkPath": (pre(("dir", "etc"), ("file", "etc/passwd", b"all users"),
                                ("file", "etc/whitedout", b"ahhhh whiteout"), ("symlink", "/etc", "localetc")),
                            [file("localetc/.wh.whitedout")],
                            all_of(file_value("etc/passwd", b"all users"), not_exists("etc/whitedout"))),
    "WhiteoutDirectoryName": (pre(("dir", "etc"), ("file", "etc/passwd", b"all users"),
                                  ("file", "etc/whitedout", b"ahhhh whiteout"), ("symlink", "/etc", "localetc")),
                              [file(".wh.etc/somefile", b"non-empty")],
                              all_of(file_value("etc/passwd", b"all users"),
                                     file_value(".wh.etc/somefile", b"non-empty"))),
    "WhiteoutDeadSymlinkParent": (pre(("dir", "etc"), ("file", "etc/passwd", b"all users"),
                                      ("symlink", "/dne", "localetc")),
                                  [file("localetc/.wh.etc")], file_value("etc/passwd", b"all users")),
    "WhiteoutRelativePath": (pre(("dir", "etc"), ("file", "etc/passwd", b"all users"),
                                 ("symlink", "/dne", "localetc")),
                             [file("dne/../.wh.etc")], not_exists("etc/passwd")),
    "HardlinkSymlinkBeforeCreateTarget": (None, [directory("etc", 0o770), symlink("/etc/passwd", "localpasswd"),
                                                 hardlink("localpasswd", "localpasswd-dup"),
                                                 file("/etc/passwd", b"after")],
                                          same_file("localpasswd-dup", "/etc/passwd")),
    "HardlinkSymlinkRelative": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                       symlink("../../../../../etc/passwd", "passwdlink"),
                                       hardlink("/passwdlink", "localpasswd")],
                                all_of(lambda root: os.path.samestat(os.lstat(root / "localpasswd"),
                                                                     os.lstat(root / "passwdlink")),
                                       same_file("/localpasswd", "/etc/passwd"))),
    "HardlinkSymlinkAbsolute": (None, [directory("etc", 0o770), file("/etc/passwd", b"inside"),
                                       symlink("/etc/passwd", "passwdlink"),
                                       hardlink("/passwdlink", "localpasswd")],
                                all_of(lambda root: os.path.samestat(os.lstat(root / "localpasswd"),
                                                                     os.lstat(root / "passwdlink")),
                                       same_file("/localpasswd", "/etc/passwd"))),
    # vessel's own additions
    "AbsoluteName": (None, [file("/etc/abs", b"a")], file_value("etc/abs", b"a")),
    "DotDotName": (None, [file("../../../../etc/dotdot", b"d")], file_value("etc/dotdot", b"d")),
    "SymlinkThenFileThroughIt": (None, [symlink("../../../..", "up"), file("up/escaped", b"e")],
                                 file_value("escaped", b"e")),
    "SymlinkChainOut": (None, [symlink("b", "a"), symlink("c", "b"), symlink("../../../../..", "c"),
                               file("a/chain", b"c")], file_value("chain", b"c")),
    "SymlinkToDirThenDir": (None, [symlink("/", "x"), directory("x/y"), file("x/y/z", b"z")],
                            file_value("y/z", b"z")),
    "WhiteoutThroughSymlinkOut": (pre(("file", "keep", b"k")), [symlink("../..", "up"), file("up/.wh.keep")],
                                  not_exists("keep")),
    "OpaqueThroughSymlinkOut": (pre(("file", "keep", b"k")),
                                [symlink("../../..", "up"), file("up/.wh..wh..opq")], None),
    "HardlinkToDirectory": (None, [directory("d"), hardlink("d", "linked")], InvalidArgument),
    "SymlinkLoop": (None, [symlink("loop", "loop"), file("loop/x")], InvalidArgument),
}


def outside_snapshot(host):
    return sorted((str(p), p.lstat().st_mode, p.lstat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
                  for p in host.rglob("*"))


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "root"
    host = tmp_path / "host"
    root.mkdir()
    (host / "etc").mkdir(parents=True)
    (host / "etc/passwd").write_bytes(b"host passwd")
    (host / "etc/unbroken").write_bytes(b"host")
    perm400 = host / "perm400"
    perm400.write_bytes(b"...")
    perm400.chmod(0o400)
    return root, host


@pytest.mark.parametrize("overlay", [False, True], ids=["apply", "overlay"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_breakout(roots, name, overlay):
    root, host = roots
    setup, entries, expect = CASES[name]
    if setup is not None:
        setup(root)
    before = outside_snapshot(host)
    siblings = sorted(os.listdir(root.parent))
    tar = make_tar(*entries)
    if overlay and name == "WhiteoutDeadSymlinkParent":
        expect = InvalidArgument  # an overlay whiteout needs its parent; it will not follow the dead link
    if isinstance(expect, type):
        with pytest.raises(expect):
            apply_layer(io.BytesIO(tar), str(root), overlay=overlay)
    else:
        apply_layer(io.BytesIO(tar), str(root), overlay=overlay)
        if expect is not None and not (overlay and "Whiteout" in name):
            expect(root)
    assert outside_snapshot(host) == before
    assert sorted(os.listdir(root.parent)) == siblings


def test_hardlink_symlink_chmod(roots):
    """A symlink to a host file, hard-linked, then chmod-ed: the host file keeps its mode."""
    root, host = roots
    target, outside = host / "perm400", host / "also-exists-outside-root"
    outside.write_bytes(b"...")
    outside.chmod(0o640)
    tar = make_tar(symlink(str(target), str(outside)), hardlink(str(outside), "sketchylink"))
    apply_layer(io.BytesIO(tar), str(root), overlay=False)
    assert stat.S_IMODE(target.lstat().st_mode) == 0o400
    assert stat.S_IMODE(outside.lstat().st_mode) == 0o640
    assert os.path.islink(root / "sketchylink")


def test_symlink_override_path(roots):
    root, _ = roots
    name = f"breakout-{uuid.uuid4().hex}"
    tar = make_tar(directory("foo"), directory("foo/tmp"), file(f"foo/tmp/{name}", b"\0\1\2"),
                   symlink("/", "foo"), file(f"foo/tmp/{name}", b"\3\4\5"),
                   directory("foo"), directory("foo/tmp"), file(f"foo/tmp/{name}", b"\6\7\10"))
    apply_layer(io.BytesIO(tar), str(root), overlay=False)
    assert not os.path.exists(f"/tmp/{name}")
    assert (root / "foo/tmp" / name).read_bytes() == b"\6\7\10"
    assert (root / "tmp" / name).read_bytes() == b"\3\4\5"
