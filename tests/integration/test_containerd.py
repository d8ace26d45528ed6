"""containerd drives vessel-runtime: `ctr run --runc-binary` on an image from `ctr image import`."""

import os
import shutil

import pytest

from helpers import MANAGED_MOUNT_PREFIXES
from peers import Containerd, busybox_docker_archive

pytestmark = pytest.mark.skipif(shutil.which("containerd") is None or shutil.which("ctr") is None,
                                reason="containerd is not installed")
IMAGE = "docker.io/library/busybox:latest"


@pytest.fixture(scope="module")
def containerd(tmp_path_factory, run_token):
    daemon = Containerd(str(tmp_path_factory.mktemp("containerd")), run_token)
    MANAGED_MOUNT_PREFIXES.append(f"{daemon.base}/root/")
    try:
        daemon.ctr("images", "import", busybox_docker_archive(os.path.join(daemon.base, "busybox.tar")))
        yield daemon
    finally:
        daemon.teardown()
        MANAGED_MOUNT_PREFIXES.remove(f"{daemon.base}/root/")


def test_ctr_run(containerd, names):
    cid = names("ctr")
    proc = containerd.ctr("run", "--rm", *containerd.run_args(cid), IMAGE, cid,
                          "sh", "-c", "echo hello from containerd; cat /proc/self/cgroup | grep memory; exit 3",
                          check=False)
    assert proc.returncode == 3, proc.stderr
    out = proc.stdout.decode().splitlines()
    assert out[0] == "hello from containerd"
    assert out[1].endswith(f"/vessel-ctr-{containerd.cgroup_name.split('-', 2)[2]}/{cid}") or cid in out[1]
    assert containerd.ctr("containers", "list", "-q").stdout.strip() == b""


def test_ctr_detached_task_exec_kill(containerd, names):
    cid = names("ctr")
    containerd.ctr("run", "--detach", *containerd.run_args(cid), IMAGE, cid, "sleep", "1000")
    try:
        tasks = containerd.ctr("tasks", "list").stdout.decode()
        assert cid in tasks and "RUNNING" in tasks
        proc = containerd.ctr("tasks", "exec", "--exec-id", "probe", cid, "sh", "-c", "echo exec $$", check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.decode().startswith("exec ")
        containerd.ctr("tasks", "kill", "--signal", "SIGKILL", cid)
        containerd.ctr("tasks", "delete", cid, timeout=30)
    finally:
        containerd.ctr("tasks", "delete", "--force", cid, check=False)
        containerd.ctr("containers", "delete", cid, check=False)
