"""CVE-2019-14271 class: code from the image run by a host-privileged process.

`docker cp` chrooted into the container and glibc loaded the image's
libnss_*.so; here the init and the exec helper are the host's Python
interpreter with the host's privileges, living in the container's root from
pivot_root (or setns) until they exec. Any import or NSS lookup there would
load the image's files. The image below shadows every stdlib module, every
codec, every extension module, every vessel module and glibc's NSS services
at the paths the interpreter would look in; each fake leaves a marker.
After create, start, exec (with and without a terminal, as root and not,
failing and not) and failing creates, no marker exists.
"""

import os
import shutil
import subprocess

import pytest

from helpers import RUNTIME, SRC, runtime
from sectools import run_with_console

FAKE_MODULE = "open('/pwned-python-' + __name__, 'w').close()\n"
FAKE_LIBRARY = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void pwn(void)
{
    int fd = open("/pwned-native", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0)
        close(fd);
}
"""
NSS_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib")


@pytest.fixture(scope="module")
def fake_library(tmp_path_factory):
    build = tmp_path_factory.mktemp("fakelib")
    (build / "fake.c").write_text(FAKE_LIBRARY)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(build / "fake.so"), str(build / "fake.c")], check=True)
    return str(build / "fake.so")


def _runtime_path():
    """sys.path of the runtime's interpreter, as the RUNTIME command starts it."""
    out = subprocess.run(RUNTIME[:4] + ["import sys; print('\\n'.join(sys.path))"], capture_output=True,
                         text=True, check=True).stdout.split()
    return [p for p in out if os.path.isdir(p)] + [SRC]


def _plant(rootfs, fake_library):
    """Shadow everything the interpreter could load, at the same paths inside the rootfs."""
    for directory in _runtime_path():
        mirror = os.path.join(rootfs, directory.lstrip("/"))
        for top, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "test", "tests", "idlelib", "tkinter",
                                                    "lib2to3", "ensurepip", "site-packages")]
            target = os.path.join(mirror, os.path.relpath(top, directory))
            os.makedirs(target, exist_ok=True)
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(target, name), "w") as f:
                        f.write(FAKE_MODULE)
                elif name.endswith(".so"):
                    shutil.copy(fake_library, os.path.join(target, name))
    for directory in NSS_DIRS:
        os.makedirs(os.path.join(rootfs, directory), exist_ok=True)
        for name in ("libnss_files.so.2", "libnss_pwn.so.2", "libnss_compat.so.2", "libnss_dns.so.2"):
            shutil.copy(fake_library, os.path.join(rootfs, directory, name))
    with open(os.path.join(rootfs, "etc", "nsswitch.conf"), "w") as f:
        f.write("passwd: pwn files\ngroup: pwn files\nshadow: pwn files\nhosts: pwn files\n")


def _markers(rootfs):
    return sorted(name for name in os.listdir(rootfs) if name.startswith("pwned"))


@pytest.fixture
def image_bundle(bundle, fake_library):
    def make(args, edit=None):
        b = bundle(args, edit=edit)
        _plant(os.path.join(b, "rootfs"), fake_library)
        return b

    return make


def _full_config(cfg):
    """Everything that makes the init do more after pivot_root: Docker's seccomp, hooks, sysctls."""
    from vessel.runtime import defaults

    cfg["linux"]["seccomp"] = defaults.default_seccomp()
    cfg["linux"]["sysctl"] = {"kernel.shmmax": "123456"}
    cfg["hooks"] = {"createContainer": [{"path": "/bin/true"}], "startContainer": [{"path": "/bin/true"}]}
    cfg["process"]["rlimits"].append({"type": "RLIMIT_CORE", "hard": 0, "soft": 0})


def test_create_start_exec_load_nothing_from_the_image(root, image_bundle, names, tmp_path, trusted_unchanged):
    b = image_bundle(("sleep", "100"), edit=_full_config)
    rootfs = os.path.join(b, "rootfs")
    cid = names()
    runtime(root, "create", "--bundle", b, cid, check=True)
    try:
        runtime(root, "start", cid, check=True)
        runtime(root, "exec", cid, "true", check=True)
        runtime(root, "exec", "--user", "1000:1000", "--cwd", "/tmp", "--cap", "CAP_SYS_ADMIN", cid, "true",
                check=True)
        assert runtime(root, "exec", cid, "/no/such/program").returncode != 0
        assert runtime(root, "exec", "--cwd", "/no/such/dir", cid, "true").returncode != 0
        assert runtime(root, "--debug", "exec", cid, "/no/such/program").returncode != 0
        tty = tmp_path / "exec-tty.sock"
        import socket

        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(tty))
        server.listen(1)
        try:
            runtime(root, "exec", "-t", "-d", "--console-socket", str(tty), cid, "true", check=True)
        finally:
            server.close()
    finally:
        runtime(root, "delete", "--force", cid)
    assert _markers(rootfs) == []


def test_terminal_run_loads_nothing_from_the_image(root, image_bundle, names, tmp_path, trusted_unchanged):
    def edit(cfg):
        _full_config(cfg)
        cfg["process"]["terminal"] = True

    b = image_bundle(("sh", "-c", "echo END"), edit=edit)
    proc, out = run_with_console(root, b, names(), tmp_path / "console.sock")
    assert out is not None and "END" in out, proc.stderr
    assert _markers(os.path.join(b, "rootfs")) == []


@pytest.mark.parametrize("failure", ["missing-program", "missing-cwd", "bad-sysctl-path", "rlimit"])
def test_failing_creates_load_nothing_from_the_image(root, image_bundle, names, failure, trusted_unchanged):
    def edit(cfg):
        if failure == "missing-program":
            cfg["process"]["args"] = ["/no/such/program"]
        elif failure == "missing-cwd":
            cfg["process"]["cwd"] = "/no/such/dir"
        elif failure == "bad-sysctl-path":
            cfg["linux"]["sysctl"] = {"net.ipv4.no_such_sysctl": "1"}
        else:
            cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 2**40, "soft": 2**40}]

    b = image_bundle(("true",), edit=edit)
    for debug in ([], ["--debug"]):
        proc = runtime(root, *debug, "run", "--bundle", b, names())
        assert proc.returncode != 0
    assert _markers(os.path.join(b, "rootfs")) == []
