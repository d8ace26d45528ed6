"""The layer writer of snapshot commits: an overlay upper dir in, an OCI layer tar with whiteouts out."""

import gzip
import hashlib
import io
import os
import tarfile

from vessel.image.commit import layer_changes, write_layer
from vessel.image.content import ContentStore


def _upper(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "passwd").write_text("changed")
    (upper / "etc" / "hosts").write_text("")              # the engine's mount point: not a change
    os.mknod(upper / "etc" / "group", 0o600 | 0o020000, os.makedev(0, 0))   # overlay's deletion
    (upper / "var" / "cache").mkdir(parents=True)
    os.setxattr(upper / "var" / "cache", "trusted.overlay.opaque", b"y")   # overlay's opaque directory
    (upper / "var" / "cache" / "fresh").write_text("f")
    os.symlink("/etc/passwd", upper / "link")
    os.link(upper / "etc" / "passwd", upper / "second")
    os.mknod(upper / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    return upper


def test_upper_dir_becomes_whiteouts_and_opaque_markers(tmp_path):
    items = [(info, data.read() if data else None)
             for info, data in layer_changes(str(_upper(tmp_path)), exclude=["etc/hosts"])]
    names = [info.name for info, _ in items]
    assert names == ["etc", "etc/.wh.group", "etc/passwd", ".wh.gone", "link", "second", "var",
                     "var/cache", "var/cache/.wh..wh..opq", "var/cache/fresh"]
    by_name = {info.name: (info, data) for info, data in items}
    assert by_name["etc/passwd"][1] == b"changed"
    assert by_name["etc/.wh.group"][0].isreg() and by_name["etc/.wh.group"][0].size == 0
    assert by_name["link"][0].issym() and by_name["link"][0].linkname == "/etc/passwd"
    assert by_name["second"][0].islnk() and by_name["second"][0].linkname == "etc/passwd"


def test_layer_blob_is_gzip_with_the_tar_digest_as_diff_id(tmp_path):
    content = ContentStore(str(tmp_path / "root"))
    descriptor, diff_id = write_layer(content, layer_changes(str(_upper(tmp_path))))
    blob = content.read(descriptor.digest)
    assert descriptor.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and descriptor.size == len(blob)
    tar_bytes = gzip.decompress(blob)
    assert diff_id == "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert "etc/hosts" in tar.getnames() and "var/cache/.wh..wh..opq" in tar.getnames()


def test_whole_tree_against_its_base_for_the_copy_driver(tmp_path):
    import shutil
    import subprocess

    from vessel.image.commit import tree_changes

    base = tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_text("root")
    (base / "etc" / "group").write_text("g")
    (base / "old" / "deep").mkdir(parents=True)
    (base / "old" / "deep" / "f").write_text("x")
    os.symlink("/etc", base / "link")
    (base / "same").write_text("s")
    top = tmp_path / "top"
    subprocess.run(["cp", "-a", f"{base}/.", str(top)], check=True)
    (top / "etc" / "passwd").write_text("root\nnew")
    os.unlink(top / "etc" / "group")
    shutil.rmtree(top / "old")
    os.unlink(top / "link")
    os.symlink("/var", top / "link")
    (top / "added").write_text("a")
    items = [(info.name, data.read() if data else None) for info, data in tree_changes(str(top), str(base))]
    assert items == [("added", b"a"), ("etc/passwd", b"root\nnew"), ("link", None), ("etc/.wh.group", None),
                     (".wh.old", None)]
