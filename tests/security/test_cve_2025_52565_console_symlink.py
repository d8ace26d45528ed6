"""CVE-2025-52565: /dev/console (or the pts slave) as a symlink when terminal is true.

runc bind-mounted the pty over /dev/console through a path; an image (or a
racing container) that made /dev/console a symlink got the pty, or rather
the bind, somewhere else, and /dev/console pointing at a file of its choice.
The console must end up a pts device at /dev/console itself, with the
symlink's target untouched and nothing mounted on it.
"""

import os

import pytest

from sectools import one_line_error, run_with_console

PROBE = "stat -c '%F %t' /dev/console; cat /etc/target; grep -c ' /etc/target ' /proc/self/mountinfo; echo END"


@pytest.mark.parametrize("link", ["/etc/target", "../etc/target", "HOST"])
def test_console_is_a_symlink(root, bundle, names, tmp_path, sentinel, link):
    def edit(cfg):
        cfg["process"]["terminal"] = True
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev"]

    b = bundle(("sh", "-c", PROBE), edit=edit)
    rootfs = os.path.join(b, "rootfs")
    with open(os.path.join(rootfs, "etc", "target"), "w") as f:
        f.write("image file\n")
    os.makedirs(os.path.join(rootfs, "dev", "pts"), exist_ok=True)
    os.symlink(sentinel.file if link == "HOST" else link, os.path.join(rootfs, "dev", "console"))
    proc, out = run_with_console(root, b, names(), tmp_path / "console.sock")
    if out is None:
        one_line_error(proc)
        return
    lines = out.splitlines()
    assert lines[0] == "character special file 88", out  # 0x88 = 136, the pts major
    assert lines[1] == "image file", out
    assert lines[2] == "0", out
    assert open(os.path.join(rootfs, "etc", "target")).read() == "image file\n"
