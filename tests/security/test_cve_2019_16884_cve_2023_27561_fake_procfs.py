"""CVE-2019-16884 and CVE-2023-27561 (CVE-2019-19921): a fake /proc or /sys.

With /proc replaced (an image symlink, a volume or bind mounted over it)
runc wrote the LSM label into an ordinary file, and a racing symlink put
procfs somewhere else. /proc and /sys must be mounted on ordinary directories,
only procfs may be mounted at /proc, only the lxcfs-style files over its
entries, and the runtime's own writes to /proc (sysctls) go to procfs only.
Each bad case fails the create with one line and leaves nothing behind.
"""

import os

import pytest

from helpers import runtime
from sectools import one_line_error


def _fake_proc_dir(tmp_path):
    fake = tmp_path / "fakeproc"
    (fake / "sys" / "kernel").mkdir(parents=True)
    (fake / "sys" / "kernel" / "shmmax").write_text("untouched\n")
    return fake


def _create_fails(root, b, names, *words):
    proc = runtime(root, "run", "--bundle", b, names())
    line = one_line_error(proc)
    assert all(word in line for word in words), line
    assert not os.path.exists(root) or os.listdir(root) == []
    return line


@pytest.mark.parametrize("target", ["/fakeproc", "../../../../../../tmp", "HOST"])
def test_proc_is_a_symlink(root, bundle, names, tmp_path, target):
    fake = _fake_proc_dir(tmp_path)
    b = bundle()
    rootfs_proc = os.path.join(b, "rootfs", "proc")
    os.rmdir(rootfs_proc)
    os.symlink(str(fake) if target == "HOST" else target, rootfs_proc)
    os.makedirs(os.path.join(b, "rootfs", "fakeproc"))
    _create_fails(root, b, names, "/proc", "ordinary directory")
    assert os.listdir(fake) == ["sys"]


@pytest.mark.parametrize("target", ["/fakesys", "HOST"])
def test_sys_is_a_symlink(root, bundle, names, tmp_path, target):
    fake = tmp_path / "fakesys"
    fake.mkdir()
    b = bundle()
    rootfs_sys = os.path.join(b, "rootfs", "sys")
    os.rmdir(rootfs_sys)
    os.symlink(str(fake) if target == "HOST" else target, rootfs_sys)
    os.makedirs(os.path.join(b, "rootfs", "fakesys"))
    _create_fails(root, b, names, "/sys", "ordinary directory")
    assert os.listdir(fake) == []


@pytest.mark.parametrize("mount_type", ["bind", "tmpfs"])
def test_mount_over_proc_is_rejected(root, bundle, names, tmp_path, mount_type):
    fake = _fake_proc_dir(tmp_path)

    def edit(cfg):
        cfg["mounts"].append({"destination": "/proc", "type": mount_type, "source": str(fake),
                              "options": ["rbind"] if mount_type == "bind" else []})
        cfg["linux"]["sysctl"] = {"kernel.shmmax": "12345"}

    _create_fails(root, bundle(edit=edit), names, "/proc", "proc")
    assert (fake / "sys" / "kernel" / "shmmax").read_text() == "untouched\n"


def test_mount_over_proc_sys_is_rejected(root, bundle, names, tmp_path):
    """A tmpfs over /proc/sys would swallow the sysctl writes (and hide the real ones)."""
    def edit(cfg):
        cfg["mounts"].append({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs", "options": []})
        cfg["linux"]["sysctl"] = {"kernel.shmmax": "12345"}

    _create_fails(root, bundle(edit=edit), names, "/proc/sys")


def test_lxcfs_style_binds_are_allowed(root, bundle, names, tmp_path):
    fake_uptime = tmp_path / "uptime"
    fake_uptime.write_text("1.00 2.00\n")

    def edit(cfg):
        cfg["mounts"].append({"destination": "/proc/uptime", "type": "bind", "source": str(fake_uptime),
                              "options": ["bind", "ro"]})

    out = runtime(root, "run", "--bundle", bundle(("cat", "/proc/uptime"), edit=edit), names(), check=True)
    assert out.stdout == b"1.00 2.00\n"


def test_sysctls_are_written_to_procfs_only(root, bundle, names):
    """Without a proc mount the image's /proc is a plain directory: the sysctl write must fail, not land there."""
    def edit(cfg):
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "proc"]
        cfg["linux"]["sysctl"] = {"kernel.shmmax": "12345"}
        cfg["linux"]["maskedPaths"] = []
        cfg["linux"]["readonlyPaths"] = []

    b = bundle(edit=edit)
    fake = os.path.join(b, "rootfs", "proc", "sys", "kernel")
    os.makedirs(fake)
    with open(os.path.join(fake, "shmmax"), "w") as f:
        f.write("untouched\n")
    _create_fails(root, b, names, "kernel.shmmax", "procfs")
    assert open(os.path.join(fake, "shmmax")).read() == "untouched\n"
