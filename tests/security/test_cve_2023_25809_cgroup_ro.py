"""CVE-2023-25809: a writable host cgroupfs inside the container.

Rootless runc without a cgroup namespace bound the host's /sys/fs/cgroup
read-write. Every /sys/fs/cgroup* mount the container sees must be read-only
(runc's mounts.bats test_ro_cgroup_mount), with or without a cgroup
namespace, with a cgroup mount or only the host's /sys bound in.
"""

import os

import pytest

from helpers import runtime

MAPPED = 100000


def _cgroup_mounts(output):
    mounts = []
    for line in output.decode().splitlines():
        fields = line.split()
        if fields[4].startswith("/sys/fs/cgroup"):
            mounts.append((fields[4], set(fields[5].split(","))))
    return mounts



@pytest.mark.parametrize("cgroupns", [True, False])
def test_cgroup_mount_is_read_only(root, bundle, names, cgroupns):
    def edit(cfg):
        if not cgroupns:
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "cgroup"]

    b = bundle(("sh", "-c", "cat /proc/self/mountinfo; mkdir /sys/fs/cgroup/pids/x 2>/dev/null && echo WROTE; true"),
               edit=edit)
    out = runtime(root, "run", "--bundle", b, names(), check=True).stdout
    mounts = _cgroup_mounts(out)
    assert mounts, out
    assert all("ro" in options for _, options in mounts), mounts
    assert b"WROTE" not in out


def test_host_sys_bound_in_a_user_namespace_is_read_only(root, bundle, names, tmp_path):
    """No network namespace of its own: sysfs cannot be mounted, the host's /sys is bound recursively."""
    def edit(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] not in ("network",
                                                                                             "cgroup")]
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": MAPPED, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": MAPPED, "size": 65536}]
        cfg["linux"].pop("resources", None)
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] not in ("cgroup", "mqueue")]

    b = bundle(("cat", "/proc/self/mountinfo"), edit=edit)
    path = tmp_path
    while str(path).startswith("/tmp/pytest-of-"):
        os.chmod(path, os.stat(path).st_mode | 0o011)
        path = path.parent
    out = runtime(root, "run", "--bundle", b, names())
    assert out.returncode == 0, out.stderr
    mounts = _cgroup_mounts(out.stdout)
    assert mounts, out.stdout
    assert all("ro" in options for _, options in mounts), mounts
