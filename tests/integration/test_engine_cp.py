"""`vessel cp` and Container.get_archive/put_archive: Docker's path rules both ways, running and stopped
containers, tar streams, ownership, and symlinks that must never lead out of the container's root."""

import io
import os
import subprocess
import tarfile

from test_engine_cli import busybox_tarball, vessel  # noqa: F401 - fixtures


def _sh(vessel, name, script):
    vessel("run", "--name", name, "busybox", "sh", "-c", script)


def _cat(vessel, name, path):
    """A file's content as the container sees it (through a copy out, the container may be stopped)."""
    proc = subprocess.run(vessel.argv("cp", f"{name}:{path}", "-"), env=vessel.env, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        return tar.extractfile(tar.getmembers()[0]).read()


def test_copy_out_follows_dockers_path_rules(vessel, tmp_path):
    _sh(vessel, "src", "mkdir -p /d/sub && echo one > /d/a && echo two > /d/sub/b && echo f > /file")
    out = tmp_path / "out"
    out.mkdir()
    vessel("cp", "src:/file", out / "new")                       # missing target: the file itself
    assert (out / "new").read_text() == "f\n"
    vessel("cp", "src:/file", out)                               # existing directory: inside it
    assert (out / "file").read_text() == "f\n"
    (out / "existing").write_text("old")
    vessel("cp", "src:/file", out / "existing")                  # existing file: replaced
    assert (out / "existing").read_text() == "f\n"
    proc = vessel("cp", "src:/file", f"{out}/missing/", code=125)
    assert "must exist" in proc.stderr
    vessel("cp", "src:/d", out / "copy")                         # missing target: the directory's contents
    assert (out / "copy" / "sub" / "b").read_text() == "two\n"
    vessel("cp", "src:/d", out / "copy")                         # existing directory: the directory inside
    assert (out / "copy" / "d" / "a").read_text() == "one\n"
    (out / "contents").mkdir()
    vessel("cp", "src:/d/.", out / "contents")                   # "/.": the contents into it
    assert sorted(os.listdir(out / "contents")) == ["a", "sub"]
    proc = vessel("cp", "src:/d", out / "existing", code=125)
    assert "cannot copy a directory to a file" in proc.stderr
    proc = vessel("cp", "src:/file/", out / "x", code=125)
    assert "not a directory" in proc.stderr
    proc = vessel("cp", "src:/nope", out / "x", code=125)
    assert "Could not find the file /nope" in proc.stderr and "Traceback" not in proc.stderr
    assert vessel("cp", "src:/file", "dst:/x", code=125).stderr.strip().endswith(
        "copying between containers is not supported")
    assert "at least one container" in vessel("cp", out / "new", out / "y", code=125).stderr


def test_copy_in_stopped_and_ownership(vessel, tmp_path):
    vessel("create", "--name", "dst", "busybox", "true")
    source = tmp_path / "tree"
    (source / "inner").mkdir(parents=True)
    (source / "inner" / "f").write_text("data")
    os.chmod(source / "inner" / "f", 0o640)
    os.symlink("inner/f", source / "link")
    os.chown(source / "inner" / "f", 1234, 5678)
    vessel("cp", source, "dst:/opt")
    vessel("cp", "-a", source, "dst:/kept")
    vessel("cp", source / "inner" / "f", "dst:/etc/renamed")
    out = tmp_path / "back"
    vessel("cp", "-a", "dst:/", out)
    assert (out / "opt" / "inner" / "f").read_text() == "data"
    assert os.readlink(out / "opt" / "link") == "inner/f"
    assert os.stat(out / "opt" / "inner" / "f").st_mode & 0o777 == 0o640
    owned = os.stat(out / "opt" / "inner" / "f")
    kept = os.stat(out / "kept" / "inner" / "f")
    assert (owned.st_uid, owned.st_gid) == (0, 0) and (kept.st_uid, kept.st_gid) == (1234, 5678)
    assert (out / "etc" / "renamed").read_text() == "data"
    listing = vessel("run", "--rm", "busybox", "true")  # the image itself is unchanged
    assert listing.returncode == 0


def test_running_container_sees_copies_and_tmpfs_is_reachable(vessel, tmp_path):
    vessel("run", "-d", "--name", "live", "--tmpfs", "/scratch", "busybox", "sleep", "60")
    vessel("exec", "live", "sh", "-c", "echo in-tmpfs > /scratch/t")
    (tmp_path / "f").write_text("hello")
    vessel("cp", tmp_path / "f", "live:/scratch/")
    assert vessel("exec", "live", "cat", "/scratch/f").stdout == "hello"
    vessel("cp", "live:/scratch/t", tmp_path / "t")
    assert (tmp_path / "t").read_text() == "in-tmpfs\n"
    vessel("pause", "live")
    vessel("cp", "live:/scratch/f", tmp_path / "paused")
    vessel("unpause", "live")
    assert (tmp_path / "paused").read_text() == "hello"


def test_tar_streams_both_ways(vessel):
    vessel("create", "--name", "box", "busybox", "true")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("x/y", b"deep"), ("top", b"t")):
            info = tarfile.TarInfo(name)
            info.size, info.uid = len(data), 42
            tar.addfile(info, io.BytesIO(data))
    vessel("cp", "-", "box:/tmp", input=None, code=None)  # no stdin: an empty stream is not a tar
    proc = subprocess.run(vessel.argv("cp", "-", "box:/tmp"), env=vessel.env, input=buffer.getvalue(),
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert _cat(vessel, "box", "/tmp/x/y") == b"deep"
    proc = subprocess.run(vessel.argv("cp", "box:/tmp", "-"), env=vessel.env, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        assert {"tmp", "tmp/x", "tmp/x/y", "tmp/top"} <= set(tar.getnames())
    proc = subprocess.run(vessel.argv("cp", "-", "box:/etc/passwd"), env=vessel.env, input=buffer.getvalue(),
                          capture_output=True)
    assert proc.returncode == 125 and b"no such directory" in proc.stderr


def test_symlinks_in_the_container_never_lead_to_the_host(vessel, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret").write_text("host secret")
    _sh(vessel, "evil", f"ln -s {victim} /abs && ln -s ../../../../../../{victim} /rel && ln -s /etc /tmp/etc "
                        f"&& mkdir /d && ln -s {victim}/secret /d/leak")
    out = tmp_path / "out"
    out.mkdir()
    # out of the container: a symlink on the way resolves inside the container's root
    vessel("cp", "evil:/tmp/etc/passwd", out / "passwd")
    assert b"root:x:0:0" in (out / "passwd").read_bytes()
    for link in ("abs", "rel"):
        proc = vessel("cp", f"evil:/{link}/secret", out / link, code=125)
        assert "Could not find the file" in proc.stderr
        assert not (out / link).exists()
    assert vessel("cp", "-L", "evil:/d/leak", out / "leak", code=125).returncode == 125
    vessel("cp", "evil:/d", out / "d")  # the link itself comes out, not what it names on the host
    assert os.readlink(out / "d" / "leak") == f"{victim}/secret"
    # into the container: a symlink in the target resolves inside the container's root too
    (tmp_path / "payload").write_text("pwned")
    for link in ("abs", "rel"):
        vessel("cp", tmp_path / "payload", f"evil:/{link}/payload", code=125)
    _sh(vessel, "evil2", f"mkdir -p {victim} && ln -s {victim} /abs")
    vessel("cp", tmp_path / "payload", "evil2:/abs/payload")
    assert _cat(vessel, "evil2", f"{victim}/payload") == b"pwned"
    assert sorted(os.listdir(victim)) == ["secret"]
    assert (victim / "secret").read_text() == "host secret"


def test_tar_entries_cannot_climb_or_follow_their_own_symlinks(vessel, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    vessel("create", "--name", "box", "busybox", "true")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, str(victim)
        tar.addfile(link)
        for name in ("link/pwned", "../../../../../../" + str(victim) + "/climb"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        hard = tarfile.TarInfo("hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, "../../../../../etc/passwd"
        tar.addfile(hard)
    proc = subprocess.run(vessel.argv("cp", "-", "box:/tmp"), env=vessel.env, input=buffer.getvalue(),
                          capture_output=True)
    assert os.listdir(victim) == []
    assert proc.returncode == 125 and b"invalid hard link" in proc.stderr
    assert _cat(vessel, "box", f"/tmp/{victim}/pwned") == b"x"
    # and a container-made symlink inside a copied tree does not redirect the host-side writes
    _sh(vessel, "maker", f"mkdir /t && ln -s {victim} /t/l")
    vessel("cp", "maker:/t", tmp_path / "t")
    assert os.path.islink(tmp_path / "t" / "l") and os.listdir(victim) == []


def test_python_api_get_and_put_archive(vessel, tmp_path):
    from vessel.api import Client

    vessel("create", "--name", "api", "busybox", "true")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with Client(vessel.root, vessel.runroot) as client:
        container = client.containers.get("api")
        assert container.put_archive("/tmp", buffer.getvalue()) is True
        chunks, stat = container.get_archive("/tmp/hello.txt")
        data = b"".join(chunks)
        assert stat["name"] == "hello.txt" and stat["size"] == 2 and stat["linkTarget"] == ""
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert tar.extractfile("hello.txt").read() == b"hi"
        chunks, stat = container.get_archive("/etc")
        assert stat["mode"] & (1 << 31)


def test_stopped_container_binds_and_volumes_are_copied_through(vessel, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "seen").write_text("from the host")
    vessel("create", "--name", "vols", "-v", f"{host}:/bound", "-v", "data:/data", "-v", f"{host}:/ro:ro",
           "busybox", "true")
    (tmp_path / "f").write_text("into the volume")
    vessel("cp", tmp_path / "f", "vols:/data/f")
    vessel("cp", tmp_path / "f", "vols:/bound/g")
    assert (host / "g").read_text() == "into the volume"
    assert "Read-only file system" in vessel("cp", tmp_path / "f", "vols:/ro/h", code=125).stderr
    vessel("cp", "vols:/bound/seen", tmp_path / "seen")
    assert (tmp_path / "seen").read_text() == "from the host"
    assert vessel("run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/f").stdout == "into the volume"
    assert not [line for line in open("/proc/self/mountinfo") if vessel.runroot + "/copy-" in line]
