"""The engine with many containers: concurrent runs and a state of 500 containers, end to end.

Speed targets are in bench/engine.py; these check that the results are right.
"""

import os

from test_engine_cli import Vessel, busybox_tarball, vessel  # noqa: F401  (the CLI fixture and its image)
from vessel.api import Client

CONCURRENT = 50
CREATED = 500


def _mounted_below(path):
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(path)]


def test_concurrent_runs_all_succeed(vessel):  # noqa: F811
    procs = [vessel.popen("run", "--rm", "--network", "none", "busybox", "sh", "-c", f"echo {i}; exit {i % 4}",
                          stdout=-1, stderr=-1, stdin=-3) for i in range(CONCURRENT)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, out.decode(), err.decode()))
    assert [(code, out) for code, out, _ in results] == [(i % 4, f"{i}\n") for i in range(CONCURRENT)], \
        [err for _, _, err in results if err]
    assert vessel.ids() == []  # --rm: each run returns after its container is gone
    assert os.listdir(os.path.join(vessel.root, "containers")) == []
    assert _mounted_below(vessel.runroot) == []


def test_ps_lists_500_containers_and_rm_removes_them(vessel):  # noqa: F811
    client = Client(vessel.root, vessel.runroot)
    try:
        created = [client.containers.create("busybox", ["true"], name=f"box{i}", network_mode="none",
                                            labels={"n": str(i)}).id for i in range(CREATED)]
    finally:
        client.close()
    vessel("run", "--name", "done", "--network", "none", "busybox", "sh", "-c", "exit 3", code=3)
    running = vessel("run", "-d", "--name", "up", "--network", "none", "busybox", "sleep", "300").stdout.strip()

    listed = vessel("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}").stdout.splitlines()
    # newest first: the running one, the exited one, then the created ones from the last made
    assert listed[:2] == [f"{running} up running", f"{vessel.ids()[1]} done exited"]
    assert listed[2:] == [f"{cid} box{i} created" for i, cid in reversed(list(enumerate(created)))]
    table = vessel("ps", "-a").stdout.splitlines()
    assert len(table) == 1 + CREATED + 2 and "Exited (3)" in table[2] and table[2].endswith(" done")
    assert vessel("ps", "--format", "{{.Names}}").stdout.split() == ["up"]
    assert vessel("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").stdout.split() == ["done"]
    assert vessel("ps", "-a", "--filter", "label=n=499", "--format", "{{.Names}}").stdout.split() == ["box499"]
    assert vessel("ps", "-n", "3", "--format", "{{.Names}}").stdout.split() == ["up", "done", "box499"]
    assert vessel("inspect", "--format", "{{.Name}} {{.State.Status}}", "box250").stdout.strip() == "/box250 created"

    vessel("rm", "-f", "up", "done")
    removed = vessel("rm", *[f"box{i}" for i in range(CREATED)]).stdout.split()
    assert removed == [f"box{i}" for i in range(CREATED)]
    assert vessel.ids() == []
    assert os.listdir(os.path.join(vessel.root, "containers")) == []
    assert os.listdir(os.path.join(vessel.root, "image", "snapshots", "active")) == []
    assert _mounted_below(vessel.runroot) == []
