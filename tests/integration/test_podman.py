"""podman drives vessel-runtime (`podman --runtime`): run, run -d + exec, stop, rm, a terminal."""

import os
import shutil
import subprocess

import pytest

from helpers import MANAGED_MOUNT_PREFIXES, run_in_pty
from peers import Podman, busybox_tar

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")


@pytest.fixture(scope="module")
def podman(tmp_path_factory, run_token):
    pm = Podman(str(tmp_path_factory.mktemp("podman")), run_token)
    MANAGED_MOUNT_PREFIXES.append(f"{pm.base}/storage/overlay/")
    try:
        pm("import", busybox_tar(os.path.join(pm.base, "busybox.tar")), "localhost/busybox:latest")
        # podman makes its storage mounts and the cgroup parent on first use: do it
        # now, so that each test's leak guard sees only what that test made
        pm("run", "--rm", *pm.run_args(), "localhost/busybox", "true")
        yield pm
    finally:
        pm.teardown()
        MANAGED_MOUNT_PREFIXES.remove(f"{pm.base}/storage/overlay/")


def test_run_rm(podman):
    proc = podman("run", "--rm", *podman.run_args(), "localhost/busybox",
                  "sh", "-c", "echo hello; grep -E '^(CapEff|Seccomp):' /proc/self/status")
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "hello"
    assert lines[1].split() == ["CapEff:", "00000000a80425fb"]  # Docker's 14 default capabilities
    assert lines[2].split() == ["Seccomp:", "2"]
    assert podman("ps", "-aq").stdout.strip() == b""


def test_exit_code_and_missing_command(podman):
    assert podman("run", "--rm", *podman.run_args(), "localhost/busybox", "sh", "-c", "exit 42",
                  check=False).returncode == 42
    proc = podman("run", "--rm", *podman.run_args(), "localhost/busybox", "no-such-command", check=False)
    assert proc.returncode == 127, proc.stderr


def test_detached_exec_stop_rm(podman):
    name = "vessel-detached"
    podman("run", "-d", "--name", name, *podman.run_args(), "localhost/busybox", "sleep", "1000")
    try:
        out = podman("exec", name, "sh", "-c", "echo from exec; cat /proc/1/cmdline").stdout.decode()
        assert out.startswith("from exec\nsleep")
        assert podman("exec", name, "sh", "-c", "exit 5", check=False).returncode == 5
        inspect = podman("inspect", "-f", "{{.State.Status}}", name).stdout.decode().strip()
        assert inspect == "running"
        podman("stop", "-t", "1", name)
        assert podman("inspect", "-f", "{{.State.Status}}", name).stdout.decode().strip() == "exited"
    finally:
        podman("rm", "-f", name, check=False)
    assert podman("ps", "-aq").stdout.strip() == b""


def test_terminal(podman):
    # `podman run -t` with a pty on our side: conmon receives the console through --console-socket
    code, output = run_in_pty(podman.global_args + [
        "run", "--rm", "-t", *podman.run_args(), "localhost/busybox", "sh", "-c", "tty; stty size"], podman.env)
    assert code == 0, output
    assert b"/dev/pts/0" in output


def test_podman_teardown_leaves_nothing(tmp_path_factory, run_token):
    pm = Podman(str(tmp_path_factory.mktemp("pm")), run_token + "x")
    pm("import", busybox_tar(os.path.join(pm.base, "busybox.tar")), "localhost/busybox:latest")
    pm("run", "-d", "--name", "x", *pm.run_args(), "localhost/busybox", "sleep", "100")
    pm.teardown()
    left = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "6", "-name", pm.cgroup_name],
                          capture_output=True, text=True).stdout
    assert left == ""
