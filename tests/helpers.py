"""Shared test helpers: a busybox root filesystem and OCI bundles built from it.

Everything is made locally from Debian's busybox-static; nothing is downloaded.
"""

import copy
import json
import os
import shutil
import subprocess
import sys

from vessel.runtime import defaults

BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
RUNTIME = [sys.executable, "-I", "-S", "-c",
           f"import sys; sys.path.insert(0, {SRC!r}); from vessel.runtime.cli import main; sys.exit(main())"]

# the shared/ folder sits beside the project's checkout
ALPINE = os.path.join(os.path.dirname(os.path.dirname(SRC)), "shared", "images",
                      "alpine-minirootfs-3.20.3-x86_64.tar.gz")
_ROOTFS_CACHE = {}
# mounts below these belong to a module-wide fixture (e.g. a podman's storage)
# whose teardown removes them; the leak guard does not count them against a test
MANAGED_MOUNT_PREFIXES = []


def make_busybox_rootfs(path):
    """A minimal root filesystem: busybox, its applet links, /etc/passwd and /etc/group."""
    cached = _ROOTFS_CACHE.get("busybox")
    if cached and os.path.isdir(cached):
        subprocess.run(["cp", "-a", cached + "/.", path], check=True)
        return path
    os.makedirs(path, exist_ok=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "run"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(path, applet)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/bin/busybox", link)
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                "user:x:1000:1000:user:/home/user:/bin/sh\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nnogroup:x:65534:\nuser:x:1000:\n")
    return path


def default_config(args=("true",), terminal=False):
    spec = defaults.default_spec(terminal=terminal, args=args)
    spec["linux"].pop("seccomp", None)
    return spec


def make_bundle(path, args=("true",), config=None, edit=None):
    """A bundle dir with a busybox rootfs and a config (Docker defaults unless given)."""
    os.makedirs(path, exist_ok=True)
    make_busybox_rootfs(os.path.join(path, "rootfs"))
    cfg = copy.deepcopy(config) if config is not None else default_config(args)
    if edit is not None:
        edit(cfg)
    write_config(path, cfg)
    return path


def write_config(bundle, cfg):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def runtime(root, *args, check=False, input=None, timeout=60, runtime_cmd=None):
    """Run vessel-runtime (or another runtime) with --root; returns CompletedProcess.

    Output goes through temporary files, not pipes: a detached container keeps
    the runtime's stdio open, and a pipe would never reach end-of-file.
    """
    import tempfile

    cmd = list(runtime_cmd or RUNTIME) + ["--root", str(root)] + [str(a) for a in args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return proc


def run_in_pty(argv, env=None, typed=b""):
    """Run argv with a pty as its terminal, type `typed`, read all output; returns (exit code, output)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env if env is not None else os.environ)
    if typed:
        os.write(fd, typed)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output


def run_in_child(body):
    """Run body() in a forked child; return (wait status, its JSON-able result or the error text)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            payload = json.dumps(body())
        except BaseException as exc:  # report everything to the parent
            payload, code = json.dumps(f"{type(exc).__name__}: {exc}"), 1
        os.write(write_end, payload.encode())
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        output = reader.read()
    _, status = os.waitpid(pid, 0)
    return status, json.loads(output) if output else None


def default_bridge_env(root=None):
    """VESSEL_DEFAULT_BRIDGE/VESSEL_DEFAULT_SUBNET for a state root of a test's own.

    A `vsl<hex>` bridge on a /24 of 10.192.0.0/11 not routed on this host, so that
    concurrent test runs never share (or remove each other's) default bridge. With
    `root`, the root's network database is made with it at once, so that a Client in
    the test's own process (without these variables) finds it too.
    """
    import ipaddress

    if root is not None:
        from vessel.network.manager import Networks

        env = default_bridge_env()
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            Networks(str(root)).close()
        finally:
            for key, value in saved.items():
                if value is None:
                    del os.environ[key]
                else:
                    os.environ[key] = value
        return env

    routes = subprocess.run(["ip", "-4", "route", "show", "table", "main"], capture_output=True, text=True).stdout
    routed = [ipaddress.ip_network(line.split()[0]) for line in routes.splitlines()
              if line and line.split()[0][0].isdigit()]
    while True:
        number = int.from_bytes(os.urandom(2), "big") % 8192
        subnet = ipaddress.ip_network(f"10.{192 + number // 256}.{number % 256}.0/24")
        if not any(subnet.overlaps(route) for route in routed):
            return {"VESSEL_DEFAULT_BRIDGE": f"vsl{os.urandom(4).hex()}", "VESSEL_DEFAULT_SUBNET": str(subnet)}
