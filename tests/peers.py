"""Real peer tools driving vessel-runtime: a podman and a containerd of the test's own.

Each gets its own state dirs under a temp dir, cgroups below this process's own
cgroup, no network beyond the container's own namespace, and is torn down with
everything it made.
"""

import os
import shutil
import subprocess
import tarfile
import time

from vessel.runtime.entrypoint import write_launcher

from helpers import make_busybox_rootfs


def own_cgroup():
    """This process's cgroup path (the deepest of the v1 hierarchies, or the v2 one)."""
    paths = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            paths.append(line.rstrip("\n").split(":", 2)[2])
    return max(paths, key=len)


def make_cgroup_parent(name):
    """mkdir <own cgroup>/<name> in every hierarchy: the parent of the test's containers."""
    own = own_cgroup().lstrip("/")
    for top in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", top)
        if os.path.exists(os.path.join(base, "cgroup.procs")):
            os.makedirs(os.path.join(base, own, name), exist_ok=True)


def remove_cgroup_tree(name):
    """rmdir every cgroup dir called `name` (and below) in every hierarchy."""
    for top in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", top)
        for current, dirs, _ in os.walk(base):
            if os.path.basename(current) == name:
                for sub, _, _ in sorted(os.walk(current), key=lambda item: -len(item[0])):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
                dirs[:] = []
            elif current.count("/") > 8:
                dirs[:] = []


def busybox_tar(path):
    rootfs = os.path.join(os.path.dirname(path), "busybox-rootfs")
    make_busybox_rootfs(rootfs)
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    shutil.rmtree(rootfs)
    return path


def busybox_docker_archive(path, tag="docker.io/library/busybox:latest", config=None):
    """A one-layer image in docker-archive format (what `docker save` writes); `config` adds to its config."""
    import hashlib
    import io
    import json

    layer = busybox_tar(path + ".layer")
    with open(layer, "rb") as f:
        layer_bytes = f.read()
    os.unlink(layer)
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   **(config or {})},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "vessel tests: busybox-static"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("layer.tar", layer_bytes), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def runtime_launcher(directory):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "vessel-runtime")
    write_launcher(path)
    return path


class Podman:
    """podman with state of its own, running containers through vessel-runtime."""

    def __init__(self, base, token):
        self.base = base
        self.runtime = runtime_launcher(base)
        self.cgroup_name = f"vessel-podman-{token}"
        self.cgroup_parent = f"{own_cgroup()}/{self.cgroup_name}"
        make_cgroup_parent(self.cgroup_name)
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            # this machine's hard RLIMIT_NOFILE is 20000 and root lacks CAP_SYS_RESOURCE:
            # podman's defaults (1048576) cannot be set, so ask for what can
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.global_args = [
            "podman", "--root", f"{base}/storage", "--runroot", f"{base}/run", "--tmpdir", f"{base}/tmp",
            "--runtime", self.runtime, "--runtime-flag", f"root={base}/runtime-root",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--storage-driver", "overlay",
        ]

    def __call__(self, *args, check=True, timeout=60, stdin=subprocess.DEVNULL):
        proc = subprocess.run(self.global_args + list(args), capture_output=True, env=self.env,
                              timeout=timeout, stdin=stdin)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} -> {proc.returncode}: {proc.stderr.decode()}")
        return proc

    def run_args(self):
        return ["--network", "none", "--cgroup-parent", self.cgroup_parent]

    def teardown(self):
        self("rm", "--all", "--force", "--time", "0", check=False)
        self("system", "reset", "--force", check=False)
        remove_cgroup_tree(self.cgroup_name)
        _unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


class Containerd:
    """A containerd of the test's own (root, state, socket) on loopback-free unix sockets."""

    def __init__(self, base, token):
        self.base = base
        self.runtime = runtime_launcher(base)
        self.socket = f"{base}/containerd.sock"
        self.cgroup_name = f"vessel-ctr-{token}"
        self.cgroup_prefix = f"{own_cgroup()}/{self.cgroup_name}"
        make_cgroup_parent(self.cgroup_name)
        config = os.path.join(base, "config.toml")
        with open(config, "w") as f:
            f.write(
                "version = 2\n"
                f'root = "{base}/root"\nstate = "{base}/state"\n'
                f'[grpc]\n  address = "{self.socket}"\n'
                f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
                '[debug]\n  level = "warn"\n'
                "[metrics]\n  address = \"\"\n"
                # no CRI: it would look for CNI and listen for kubelets
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            )
        self.log = open(os.path.join(base, "containerd.log"), "wb")
        self.process = subprocess.Popen(["containerd", "--config", config], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("containerd did not start: " + open(self.log.name).read()[-2000:])
            time.sleep(0.05)

    def run_args(self, container_id):
        """ctr run flags: our runtime, its own root, a cgroup below ours."""
        return ["--runc-binary", self.runtime, "--runc-root", f"{self.base}/runtime-root",
                "--cgroup", f"{self.cgroup_prefix}/{container_id}"]

    def ctr(self, *args, check=True, timeout=60):
        proc = subprocess.run(["ctr", "--address", self.socket, "--namespace", "vessel-test", *args],
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} -> {proc.returncode}: {proc.stderr.decode()}")
        return proc

    def teardown(self):
        listing = self.ctr("containers", "list", "-q", check=False).stdout.decode().split()
        for name in listing:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", name, check=False)
            self.ctr("tasks", "delete", "--force", name, check=False)
            self.ctr("containers", "delete", name, check=False)
        for image in self.ctr("images", "list", "-q", check=False).stdout.decode().split():
            self.ctr("images", "remove", image, check=False)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        # shims outlive containerd by design; ours belong to this test's state dir
        subprocess.run(["pkill", "-9", "-f", f"containerd-shim.*{self.base}"], capture_output=True)
        remove_cgroup_tree(self.cgroup_name)
        _unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def _unmount_below(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(path)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
