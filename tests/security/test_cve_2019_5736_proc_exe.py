"""CVE-2019-5736: the host binary reachable through /proc/<pid>/exe.

runc's init re-executed itself while the container could reach it through
/proc/<pid>/exe and overwrote the host runc. Here the host binary is the
Python interpreter: the init (until it execs) and the exec helper (until the
new process execs) are visible inside the container's pid namespace. They
must be non-dumpable, so that a container process, even root of a user
namespace with every capability in it, cannot open their exe (the host
interpreter) or the fds they hold.
"""

import os
import sys
import time

from helpers import runtime
from sectools import install_probe

ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
            "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_AUDIT_WRITE",
            "CAP_SETFCAP"]
MAPPED = 100000


def _userns_bundle(bundle, tmp_path, probe):
    """A container whose root is host uid 100000 and holds every capability in its namespace."""
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": MAPPED, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": MAPPED, "size": 65536}]
        cfg["process"]["capabilities"] = {"bounding": ALL_CAPS, "effective": ALL_CAPS, "permitted": ALL_CAPS}

    b = bundle(("sleep", "100"), edit=edit)
    install_probe(b, probe)
    path = tmp_path
    while str(path).startswith("/tmp/pytest-of-"):
        os.chmod(path, os.stat(path).st_mode | 0o011)
        path = path.parent
    for top, dirs, files in os.walk(os.path.join(b, "rootfs")):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            os.lchown(name, MAPPED, MAPPED)
    return b


def _wait_for(path, text, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in open(path).read():
            return open(path).read()
        time.sleep(0.1)
    raise AssertionError(f"{path} never got {text!r}")


def test_runtime_processes_are_unreachable_during_create_and_exec(root, bundle, names, tmp_path, probe,
                                                                  trusted_unchanged):
    b = _userns_bundle(bundle, tmp_path, probe)
    cid = names()
    runtime(root, "create", "--bundle", b, cid, check=True)
    # the container stays `created`: its pid 1 is still the runtime's init (Python)
    host = os.stat(os.path.realpath(sys.executable))
    race = f"/probe exe-race 4 {host.st_dev}:{host.st_ino} > /tmp/race.out 2>&1"
    runtime(root, "exec", "-d", cid, "sh", "-c", race, check=True)
    for _ in range(15):
        runtime(root, "exec", cid, "true", check=True)
    out = _wait_for(os.path.join(b, "rootfs", "tmp", "race.out"), "seen ")
    runtime(root, "delete", "--force", cid, check=True)
    summary = out.strip().splitlines()[-1].split()
    assert int(summary[1]) > 0, "the racer never saw the init: the test proves nothing"
    assert int(summary[3]) == 0, out

