"""`vessel system df|prune|info|events`, `vessel info` and `vessel version`, and their Python API."""

import json
import time

from test_engine_cli import busybox_tarball, vessel  # noqa: F401 - fixtures


def _rows(text):
    return {line.split()[0] if not line.startswith("Local") else "Local Volumes": line
            for line in text.splitlines()[1:]}


def test_df_counts_images_containers_and_volumes(vessel):
    vessel("volume", "create", "kept")
    vessel("run", "-d", "--name", "up", "-v", "kept:/data", "busybox", "sleep", "60")
    vessel("run", "--name", "done", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /big")
    vessel("tag", "busybox", "other:1")
    out = vessel("system", "df").stdout
    assert out.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = _rows(out)
    assert rows["Images"].split()[1:3] == ["1", "1"]
    assert rows["Containers"].split()[1:3] == ["2", "1"]
    assert rows["Local Volumes"].split()[2:4] == ["1", "1"]
    assert rows["Build"].split()[2:] == ["0", "0", "0B", "0B"]
    assert "(100%)" not in rows["Containers"] and "%" in rows["Containers"]
    formatted = vessel("system", "df", "--format", "{{.Type}}={{.TotalCount}}").stdout.splitlines()
    assert formatted == ["Images=1", "Containers=2", "Local Volumes=1", "Build Cache=0"]
    assert json.loads(vessel("system", "df", "--format", "json").stdout.splitlines()[0])["Type"] == "Images"
    verbose = vessel("system", "df", "-v").stdout
    for heading in ("Images space usage:", "Containers space usage:", "Local Volumes space usage:",
                    "Build cache usage: 0B"):
        assert heading in verbose
    assert "busybox" in verbose and "other" in verbose and "kept" in verbose
    container_line = next(line for line in verbose.splitlines() if line.endswith(" up"))
    assert container_line.split()[0] == vessel("ps", "-q", "--filter", "name=up").stdout.strip()


def test_prune_removes_stopped_containers_dangling_images_and_asks_first(vessel, names):
    spare = names("net")
    vessel("network", "create", spare)
    try:
        _prune_all_kinds(vessel, spare)
    finally:
        vessel("network", "rm", spare, code=None)


def _prune_all_kinds(vessel, spare):
    vessel("run", "--name", "stopped", "-l", "keep=no", "busybox", "true")
    vessel("run", "--name", "labelled", "-l", "keep=yes", "busybox", "true")
    vessel("run", "-d", "--name", "running", "busybox", "sleep", "60")
    aborted = vessel("system", "prune", input="n\n")
    assert aborted.stdout.startswith("WARNING! This will remove:\n  - all stopped containers\n"
                                     "  - all networks not used by at least one container\n"
                                     "  - all dangling images\n  - unused build cache\n\n")
    assert len(vessel.ids()) == 3
    filtered = vessel("system", "prune", "-f", "--filter", "label=keep=no").stdout
    assert filtered.startswith("Deleted Containers:\n") and "Total reclaimed space:" in filtered
    names = vessel("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert sorted(names) == ["labelled", "running"]
    out = vessel("system", "prune", "-f").stdout
    assert f"Deleted Networks:\n{spare}\n" in out
    assert vessel("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["running"]
    assert vessel("images", "-q").stdout.strip()  # used by the running container: not even -a removes it
    vessel("system", "prune", "-a", "-f")
    assert vessel("images", "-q").stdout.strip()
    assert 'The "until" filter is not supported with "--volumes"' in \
        vessel("system", "prune", "--filter", "until=1h", "--volumes", "-f", code=125).stderr
    assert "invalid filter 'colour'" in vessel("system", "prune", "-f", "--filter", "colour=red", code=125).stderr


def test_prune_all_and_volumes(vessel):
    vessel("run", "--name", "user", "-v", "/data", "busybox", "true")  # an anonymous volume
    vessel("volume", "create", "named")
    vessel("tag", "busybox", "second:1")
    warning = vessel("system", "prune", "-a", "--volumes", input="n\n").stdout
    assert "  - all anonymous volumes not used by at least one container\n" in warning
    assert "  - all images without at least one container associated to them\n  - all build cache\n" in warning
    out = vessel("system", "prune", "-a", "--volumes", "-f").stdout
    assert "Deleted Volumes:\n" in out and "Deleted Images:\nuntagged: busybox:latest\n" in out.replace(
        "untagged: second:1\n", "")
    assert vessel("volume", "ls", "-q").stdout.split() == ["named"]   # named volumes stay (Docker 23+)
    assert vessel("images", "-q").stdout == "" and vessel.ids() == []
    actions = vessel("events", "--since", "0", "--until", str(time.time()), "--filter", "event=prune",
                     "--format", "{{.Type}}").stdout.split()
    assert actions == ["container", "network", "volume", "image"]


def test_info_and_version(vessel):
    vessel("run", "-d", "--name", "up", "busybox", "sleep", "60")
    vessel("create", "--name", "made", "busybox", "true")
    text = vessel("info").stdout
    for line in (" Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n Images: 1\n", " Storage Driver: ",
                 " Cgroup Driver: cgroupfs\n", " Kernel Version: ", " Operating System: ", " OSType: linux\n",
                 " Architecture: ", " CPUs: ", " Total Memory: ", " Name: ", " ID: ",
                 f" Docker Root Dir: {vessel.root}\n", " Default Runtime: vessel\n", " Cgroup Version: "):
        assert line in text, line
    assert text.startswith("Client:\n Version:")
    document = json.loads(vessel("info", "--format", "{{json .}}").stdout)
    assert document["ContainersRunning"] == 1 and document["Images"] == 1 and document["OSType"] == "linux"
    assert "vessel" in document["Runtimes"] and document["ClientInfo"]["Context"] == "default"
    assert vessel("system", "info", "--format", "{{.ContainersStopped}} {{.CgroupDriver}}").stdout == "1 cgroupfs\n"
    assert json.loads(vessel("info", "--format", "{{json .ID}}").stdout) == document["ID"]  # stable
    version = vessel("version").stdout
    assert version.startswith("Client:\n Version:") and "\nServer: vessel\n Engine:\n  Version:" in version
    server = json.loads(vessel("version", "--format", "{{json .Server}}").stdout)
    assert server["ApiVersion"] and vessel("version", "--format", "{{.Client.Version}}").stdout.strip() == \
        server["Version"]


def test_python_api_df_info_version(vessel):
    from vessel.api import Client

    vessel("create", "--name", "made", "busybox", "true")
    with Client(vessel.root, vessel.runroot) as client:
        usage = client.df()
        assert set(usage) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
        assert usage["Images"][0]["Containers"] == 1 and usage["Containers"][0]["Names"] == ["/made"]
        assert client.info()["Containers"] == 1
        assert client.version()["Components"][0]["Name"] == "Engine"
        assert client.containers.prune(filters={"label": "nothing"})["ContainersDeleted"] == []
        assert client.containers.prune()["ContainersDeleted"] == [usage["Containers"][0]["Id"]]
