"""Volumes, binds and tmpfs mounts end to end: `vessel volume ...`, -v, --mount, --tmpfs, --volumes-from.

Real containers through the CLI, each test on a state root of its own; no mount is left behind.
"""

import json
import os
import subprocess
import tarfile

import pytest

from helpers import make_busybox_rootfs
from test_engine_cli import Vessel, busybox_tarball  # noqa: F401 - a fixture


@pytest.fixture(scope="session")
def volume_image_tarball(tmp_path_factory):
    """busybox plus /data: a file owned by 1000 with mode 0640, a symlink, a directory."""
    base = tmp_path_factory.mktemp("volume-image")
    rootfs = str(base / "rootfs")
    make_busybox_rootfs(rootfs)
    data = os.path.join(rootfs, "data")
    os.makedirs(os.path.join(data, "sub"))
    with open(os.path.join(data, "hello"), "w") as handle:
        handle.write("hello\n")
    os.chown(os.path.join(data, "hello"), 1000, 1000)
    os.chmod(os.path.join(data, "hello"), 0o640)
    os.symlink("hello", os.path.join(data, "link"))
    os.chmod(data, 0o750)
    path = str(base / "withvol.tar")
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    return path


@pytest.fixture
def vessel(tmp_path, names, busybox_tarball, volume_image_tarball):  # noqa: F811 - the fixture above
    cli = Vessel(str(tmp_path), names("cg"))
    cli("import", busybox_tarball, "busybox", "--change", 'CMD ["sh"]')
    cli("import", volume_image_tarball, "withvol", "--change", 'CMD ["sh"]', "--change", "VOLUME /data")
    yield cli
    cli.teardown()
    for name in cli("volume", "ls", "-q", code=None).stdout.split():
        cli("volume", "rm", "-f", name, code=None)
    assert _mounted_below(cli.root) == [] and _mounted_below(cli.runroot) == []


def _mounted_below(path):
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(path)]


def _volumes(vessel):
    return sorted(vessel("volume", "ls", "-q").stdout.split())


def _inspect(vessel, name):
    return json.loads(vessel("inspect", name).stdout)[0]


def test_named_volume_outlives_containers_and_is_shared(vessel):
    assert vessel("volume", "create", "--label", "team=a", "data").stdout == "data\n"
    document = json.loads(vessel("volume", "inspect", "data").stdout)[0]
    assert document["Name"] == "data" and document["Driver"] == "local" and document["Scope"] == "local"
    assert document["Labels"] == {"team": "a"} and document["Options"] is None
    assert document["Mountpoint"] == os.path.join(vessel.root, "volumes", "data", "_data")
    assert document["CreatedAt"].endswith("Z")
    vessel("run", "--rm", "-v", "data:/d", "busybox", "sh", "-c", "echo one > /d/f")
    assert vessel("run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f").stdout == "one\n"
    reader = vessel("run", "-d", "--mount", "source=data,target=/x", "busybox", "sleep", "60").stdout.strip()
    assert vessel("exec", reader, "cat", "/x/f").stdout == "one\n"
    mounts = _inspect(vessel, reader)["Mounts"]
    assert mounts == [{"Type": "volume", "Name": "data", "Source": document["Mountpoint"], "Destination": "/x",
                       "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}]
    assert _inspect(vessel, reader)["HostConfig"]["Mounts"] == [{"Type": "volume", "Source": "data", "Target": "/x"}]
    vessel("rm", "-f", reader)
    # a volume named by a container that does not exist yet is created, and stays after --rm
    vessel("run", "--rm", "-v", "fresh:/d", "busybox", "true")
    assert _volumes(vessel) == ["data", "fresh"]
    assert vessel("volume", "ls").stdout.splitlines() == ["DRIVER    VOLUME NAME", "local     data",
                                                          "local     fresh"]
    vessel("volume", "rm", "data", "fresh")
    assert _volumes(vessel) == [] and not os.path.exists(document["Mountpoint"])
    events = vessel("events", "--since", "10m", "--until", "0s", "--filter", "type=volume", "--format",
                    "{{.Action}} {{.Actor.ID}}").stdout.splitlines()
    assert events == ["create data", "create fresh", "destroy data", "destroy fresh"]
    result = vessel("volume", "inspect", "data", code=1)
    assert result.stderr == "Error: No such volume: data\n"


def test_copy_up_from_the_image_and_nocopy(vessel):
    listing = vessel("run", "--rm", "-v", "copied:/data", "withvol", "ls", "-ln", "/data").stdout.splitlines()
    assert [line.split()[0] for line in listing[1:]] == ["-rw-r-----", "lrwxrwxrwx", "drwxr-xr-x"]
    assert listing[1].split()[2:4] == ["1000", "1000"] and listing[2].endswith("link -> hello")
    data = os.path.join(vessel.root, "volumes", "copied", "_data")
    assert oct(os.stat(data).st_mode & 0o777) == "0o750"  # the directory's own mode comes along
    # copied once: a volume that is no longer empty is left as it is
    vessel("run", "--rm", "-v", "copied:/data", "busybox", "sh", "-c", "rm /data/hello")
    assert "hello" not in vessel("run", "--rm", "-v", "copied:/data", "withvol", "ls", "/data").stdout.split()
    assert vessel("run", "--rm", "-v", "empty:/data:nocopy", "withvol", "ls", "-A", "/data").stdout == ""
    assert vessel("run", "--rm", "--mount", "source=empty2,target=/data,volume-nocopy", "withvol",
                  "ls", "-A", "/data").stdout == ""
    # a host directory is never written to by copy-up
    host = os.path.join(vessel.root, "..", "hostdir")
    os.makedirs(host)
    vessel("run", "--rm", "-v", f"{host}:/data", "withvol", "true")
    assert os.listdir(host) == []


def test_anonymous_volumes_rm_v_and_run_rm(vessel):
    kept = vessel("create", "withvol", "true").stdout.strip()
    mounts = _inspect(vessel, kept)["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Destination"] == "/data" and len(mounts[0]["Name"]) == 64
    assert _inspect(vessel, kept)["Config"]["Volumes"] == {"/data": {}}
    anonymous = mounts[0]["Name"]
    labels = json.loads(vessel("volume", "inspect", anonymous).stdout)[0]["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    assert vessel("volume", "ls", "-q", "--filter", "dangling=true").stdout == ""
    vessel("rm", kept)  # without -v the volume stays, dangling
    assert vessel("volume", "ls", "-q", "--filter", "dangling=true").stdout.split() == [anonymous]
    vessel("volume", "rm", anonymous)
    gone = vessel("create", "-v", "/scratch", "withvol", "true").stdout.strip()
    names = {m["Destination"]: m["Name"] for m in _inspect(vessel, gone)["Mounts"]}
    assert sorted(names) == ["/data", "/scratch"]
    assert _volumes(vessel) == sorted(names.values())
    vessel("rm", "-v", gone)
    assert _volumes(vessel) == []
    # run --rm removes anonymous volumes, never named ones; a named volume on the VOLUME path replaces it
    vessel("run", "--rm", "-v", "named:/data", "withvol", "true")
    vessel("run", "--rm", "-v", "/other", "withvol", "true")
    assert _volumes(vessel) == ["named"]


def test_read_only_bind_refuses_writes(vessel, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "file").write_text("from host\n")
    result = vessel("run", "--rm", "-v", f"{host}:/h:ro", "busybox", "sh", "-c", "cat /h/file; touch /h/new",
                    code=1)
    assert result.stdout == "from host\n" and "Read-only file system" in result.stderr
    result = vessel("run", "--rm", "--mount", f"type=bind,src={host},dst=/h,readonly", "busybox",
                    "touch", "/h/new", code=1)
    assert "Read-only file system" in result.stderr
    vessel("run", "--rm", "-v", f"{host}:/h", "busybox", "sh", "-c", "echo written > /h/new")
    assert (host / "new").read_text() == "written\n"
    created = tmp_path / "made" / "by-v"
    vessel("run", "--rm", "-v", f"{created}:/m", "busybox", "true")  # -v makes a missing source directory
    assert created.is_dir()
    box = vessel("create", "-v", f"{host}:/h:ro,rslave", "busybox", "true").stdout.strip()
    assert _inspect(vessel, box)["Mounts"] == [{"Type": "bind", "Source": str(host), "Destination": "/h",
                                                "Mode": "ro,rslave", "RW": False, "Propagation": "rslave"}]
    assert _inspect(vessel, box)["HostConfig"]["Binds"] == [f"{host}:/h:ro,rslave"]


@pytest.fixture
def shared_dir(tmp_path):
    """A host directory that is a mount point of its own with shared propagation (what rshared needs)."""
    path = tmp_path / "shared"
    (path / "sub").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "--make-shared", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path / "sub")], capture_output=True)
    subprocess.run(["umount", "-l", str(path)], check=True)


def test_bind_propagation(vessel, shared_dir, tmp_path):
    shared = vessel("run", "-d", "-v", f"{shared_dir}:/h:rshared", "busybox", "sleep", "60").stdout.strip()
    private = vessel("run", "-d", "-v", f"{shared_dir}:/h", "busybox", "sleep", "60").stdout.strip()
    assert _inspect(vessel, shared)["Mounts"][0]["Propagation"] == "rshared"
    assert _inspect(vessel, private)["Mounts"][0]["Propagation"] == "rprivate"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(shared_dir / "sub")], check=True)
    assert vessel("exec", shared, "grep", "-c", " /h/sub ", "/proc/mounts").stdout == "1\n"
    assert vessel("exec", private, "grep", "-c", " /h/sub ", "/proc/mounts", code=1).stdout == "0\n"
    vessel("rm", "-f", shared, private)
    # rshared needs a shared source mount, as Docker checks
    plain = tmp_path / "plain"
    plain.mkdir()
    result = vessel("run", "--rm", "-v", f"{plain}:/h:rshared", "busybox", "true", code=125)
    assert f"path {plain} is mounted on " in result.stderr and "is not a shared mount" in result.stderr


def test_tmpfs_sizes_and_modes(vessel):
    out = vessel("run", "--rm", "--tmpfs", "/t:size=1m", "busybox", "df", "-k", "/t").stdout.splitlines()[1]
    assert out.split()[1] == "1024"
    script = "df -k /m | tail -1; stat -c %a /m; grep ' /m ' /proc/mounts"
    out = vessel("run", "--rm", "--mount", "type=tmpfs,target=/m,tmpfs-size=2m,tmpfs-mode=1770", "busybox",
                 "sh", "-c", script).stdout.splitlines()
    assert out[0].split()[1] == "2048" and out[1] == "1770" and "nosuid,nodev,noexec" in out[2]
    box = vessel("create", "--mount", "type=tmpfs,dst=/m,tmpfs-size=2m", "busybox", "true").stdout.strip()
    assert _inspect(vessel, box)["Mounts"] == [{"Type": "tmpfs", "Source": "", "Destination": "/m", "Mode": "",
                                                "RW": True, "Propagation": ""}]
    assert _inspect(vessel, box)["HostConfig"]["Mounts"] == [
        {"Type": "tmpfs", "Source": "", "Target": "/m", "TmpfsOptions": {"SizeBytes": 2 << 20, "Mode": 0}}]


def test_volumes_from(vessel, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    vessel("create", "--name", "source", "-v", "shared:/d", "-v", f"{host}:/h", "busybox", "true")
    vessel("run", "--rm", "--volumes-from", "source", "busybox", "sh", "-c", "echo 1 > /d/f; echo 2 > /h/g")
    assert (host / "g").read_text() == "2\n"
    result = vessel("run", "--rm", "--volumes-from", "source:ro", "busybox", "sh", "-c", "cat /d/f; touch /d/x",
                    code=1)
    assert result.stdout == "1\n" and "Read-only file system" in result.stderr
    box = vessel("create", "--volumes-from", "source", "busybox", "true").stdout.strip()
    document = _inspect(vessel, box)
    assert sorted((m["Type"], m["Destination"]) for m in document["Mounts"]) == [("bind", "/h"), ("volume", "/d")]
    assert document["HostConfig"]["VolumesFrom"] == ["source"]
    result = vessel("volume", "rm", "shared", code=125)
    assert "volume is in use" in result.stderr
    result = vessel("create", "--volumes-from", "nosuch", "busybox", "true", code=125)
    assert "No such container: nosuch" in result.stderr


def test_tmpfs_typed_local_volume(vessel):
    vessel("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=5m", "tv")
    options = json.loads(vessel("volume", "inspect", "tv").stdout)[0]["Options"]
    assert options == {"type": "tmpfs", "device": "tmpfs", "o": "size=5m"}
    data = os.path.join(vessel.root, "volumes", "tv", "_data")
    first = vessel("run", "-d", "-v", "tv:/t", "busybox", "sleep", "60").stdout.strip()
    second = vessel("run", "-d", "-v", "tv:/t", "busybox", "sleep", "60").stdout.strip()
    assert _mounted_below(data) == [data]  # one mount for both users
    assert vessel("exec", first, "df", "-k", "/t").stdout.splitlines()[1].split()[1] == "5120"
    vessel("exec", first, "sh", "-c", "echo shared > /t/f")
    assert vessel("exec", second, "cat", "/t/f").stdout == "shared\n"
    vessel("rm", "-f", first)
    assert _mounted_below(data) == [data]
    vessel("rm", "-f", second)
    assert _mounted_below(data) == []
    assert vessel("run", "--rm", "-v", "tv:/t", "busybox", "ls", "-A", "/t").stdout == ""
    # made by --mount with the driver's options; an anonymous one by --mount without a source
    out = vessel("run", "--rm", "--mount", "source=tv2,target=/t,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
                 "volume-opt=o=size=3m", "--mount", "type=volume,target=/anon", "busybox", "df", "-k", "/t")
    assert out.stdout.splitlines()[1].split()[1] == "3072"
    vessel("volume", "rm", "tv2")
    result = vessel("volume", "create", "-o", "type=tmpfs", "bad", code=125)
    assert result.stderr == 'Error: missing required option: "device"\n'
    result = vessel("volume", "create", "-o", "color=red", "bad", code=125)
    assert result.stderr == 'Error: invalid option: "color"\n'
    assert _volumes(vessel) == ["tv"]


def test_volume_rm_in_use_prune_and_filters(vessel):
    vessel("volume", "create", "--label", "keep=yes", "named")
    vessel("volume", "create", "other")
    user = vessel("create", "-v", "named:/n", "busybox", "true").stdout.strip()
    result = vessel("volume", "rm", "named", code=125)
    assert result.stderr == f"Error: remove named: volume is in use - [{user}]\n"
    assert vessel("volume", "rm", "-f", "nosuch").returncode == 0
    assert "No such volume: nosuch" in vessel("volume", "rm", "nosuch", code=125).stderr
    anonymous = vessel("create", "-v", "/a", "busybox", "true").stdout.strip()
    anonymous_name = _inspect(vessel, anonymous)["Mounts"][0]["Name"]
    vessel("run", "--rm", "-v", "other:/o", "busybox", "sh", "-c", "head -c 2000 /dev/zero > /o/z")
    vessel("rm", anonymous)
    assert vessel("volume", "ls", "-q", "-f", "label=keep").stdout.split() == ["named"]
    assert vessel("volume", "ls", "-q", "-f", "name=oth").stdout.split() == ["other"]
    assert vessel("volume", "ls", "-q", "-f", "dangling=false").stdout.split() == ["named"]
    assert vessel("volume", "ls", "-q", "-f", "driver=local").stdout.split() == sorted(
        [anonymous_name, "named", "other"])
    assert vessel("volume", "ls", "--format", "{{.Name}}:{{.Driver}}:{{.Labels}}", "-f",
                  "label=keep=yes").stdout == "named:local:keep=yes\n"
    result = vessel("volume", "prune", "-f")  # Docker 23+: only anonymous volumes without -a
    assert result.stdout == f"Deleted Volumes:\n{anonymous_name}\n\nTotal reclaimed space: 0B\n"
    result = vessel("volume", "prune", "-f", "-a", "--filter", "label!=keep")
    assert result.stdout == "Deleted Volumes:\nother\n\nTotal reclaimed space: 2kB\n"
    assert vessel("volume", "prune", "-a", input="n\n").stdout.startswith(
        "WARNING! This will remove all local volumes not used by at least one container.")
    vessel("rm", user)
    assert vessel("volume", "prune", "-af").stdout == "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"
    assert _volumes(vessel) == []


@pytest.mark.parametrize("flags, message", [
    (["-v", "/a:/b:xx"], "invalid mode: xx"),
    (["-v", "/a:b"], "invalid volume specification: '/a:b': invalid mount config for type \"bind\": "
                     "invalid mount path: 'b' mount path must be absolute"),
    (["-v", "relative"], "invalid volume specification: 'relative'"),
    (["-v", "/a:ro"], "invalid volume specification: '/a:ro'"),
    (["-v", "bad/name:/b"], '"bad/name" includes invalid characters for a local volume name'),
    (["-v", "vol:/b:rshared"], 'invalid mount config for type "volume": field BindOptions must not be specified'),
    (["-v", "/a:/b:ro,rw"], "invalid mode: ro,rw"),
    (["-v", "/a:/"], "invalid specification: destination can't be '/'"),
    (["--mount", "type=bind,source=/nonexistent-vessel-dir,target=/x"],
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-vessel-dir'),
    (["--mount", "type=bind,target=/x"], 'invalid mount config for type "bind": field Source must not be empty'),
    (["--mount", "type=tmpfs,source=x,target=/x"],
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    (["--mount", "type=bind,source=/tmp,target=/x,volume-nocopy"],
     'invalid mount config for type "bind": field VolumeOptions must not be specified'),
    (["--mount", "type=volume,target=/x,tmpfs-size=1m"],
     'invalid mount config for type "volume": field TmpfsOptions must not be specified'),
    (["--mount", "type=magic,target=/x"], 'invalid mount config for type "magic": mount type unknown'),
    (["--mount", "source=v"], "target is required"),
    (["--mount", "type=volume,target=/x,colour=red"], "unexpected key 'colour' in 'colour=red'"),
    (["--mount", "type=volume,target"], "invalid field 'target' must be a key=value pair"),
    (["--mount", "type=volume,target=/x,readonly=maybe"], "invalid value for readonly: maybe"),
    (["--mount", "type=bind,source=/tmp,target=/x,bind-propagation=sideways"],
     'invalid mount config for type "bind": invalid propagation mode: sideways'),
    (["--mount", "type=volume,target=x"],
     'invalid mount config for type "volume": invalid mount path: \'x\' mount path must be absolute'),
    (["-v", "aa:/x", "-v", "bb:/x"], "Duplicate mount point: /x"),
    (["-v", "aa:/x", "--volumes-from", "nosuch"], "No such container: nosuch"),
    (["--mount", "target=/x,volume-driver=nosuch"], 'plugin "nosuch" not found'),
])
def test_bad_mount_syntax_creates_nothing(vessel, flags, message):
    result = vessel("run", "--rm", *flags, "busybox", "true", code=125)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert vessel.ids() == [] and _volumes(vessel) == []
    containers = os.path.join(vessel.root, "containers")
    assert not os.path.exists(containers) or os.listdir(containers) == []


def test_python_api(vessel):
    from vessel.api import Client
    from vessel.errors import NotFound

    client = Client(vessel.root, vessel.runroot)
    options = {"remove": True, "cgroup_parent": vessel.cgroup_name}
    try:
        volume = client.volumes.create("apivol", labels={"k": "v"})
        assert volume.name == volume.id == "apivol" and volume.attrs["Labels"] == {"k": "v"}
        client.containers.run("busybox", ["sh", "-c", "echo api > /v/f"],
                              volumes={"apivol": {"bind": "/v", "mode": "rw"}}, **options)
        assert client.containers.run("busybox", "cat /v/f", volumes=["apivol:/v:ro"], **options) == b"api\n"
        assert client.containers.run("busybox", "cat /m/f", **options, mounts=[
            {"Type": "volume", "Source": "apivol", "Target": "/m", "ReadOnly": True}]) == b"api\n"
        first = client.containers.run("withvol", "true", detach=True, cgroup_parent=vessel.cgroup_name)
        first.wait()
        anonymous = first.attrs["Mounts"][0]["Name"]
        assert [v.name for v in client.volumes.list(filters={"dangling": "false"})] == [anonymous]
        first.remove()
        assert sorted(v.name for v in client.volumes.list(filters={"dangling": "true"})) == sorted(
            [anonymous, "apivol"])
        # the image's /data was copied in at start: 6 bytes of hello
        assert client.volumes.prune() == {"VolumesDeleted": [anonymous], "SpaceReclaimed": 6}
        assert client.volumes.prune(filters={"all": "true"}) == {"VolumesDeleted": ["apivol"], "SpaceReclaimed": 4}
        with pytest.raises(NotFound):
            client.volumes.get("apivol")
    finally:
        client.close()
