"""Helpers of the security suite: the probe in a rootfs, host sentinels, file hashes."""

import hashlib
import os
import sys

from helpers import SRC


def install_probe(bundle_dir, probe_path):
    """Copy the probe into the bundle's rootfs as /probe."""
    target = os.path.join(bundle_dir, "rootfs", "probe")
    with open(probe_path, "rb") as src, open(target, "wb") as dst:
        dst.write(src.read())
    os.chmod(target, 0o755)
    return "/probe"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def trusted_files():
    """The interpreter's real file and every runtime module: what an escape would overwrite."""
    files = [os.path.realpath(sys.executable)]
    runtime_dir = os.path.join(SRC, "vessel", "runtime")
    for top, _, names in os.walk(runtime_dir):
        files += [os.path.join(top, n) for n in sorted(names) if n.endswith((".py", ".json"))]
    return files


class Sentinel:
    """A host directory holding one file: its content, mtime and siblings must not change."""

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(self.path)
        self.file = os.path.join(self.path, "secret")
        with open(self.file, "w") as f:
            f.write("host secret\n")
        self.snapshot = self._state()

    def _state(self):
        entries = {}
        for name in sorted(os.listdir(self.path)):
            st = os.lstat(os.path.join(self.path, name))
            entries[name] = (st.st_mode, st.st_size, st.st_mtime_ns)
        with open(self.file, "rb") as f:
            content = f.read()
        return entries, content, os.stat(self.path).st_mtime_ns

    def assert_untouched(self):
        assert self._state() == self.snapshot, f"host sentinel {self.path} was modified"
        assert not _mounted_at_or_below(self.path), f"something is mounted on host sentinel {self.path}"


def _mounted_at_or_below(path):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4] == path or line.split()[4].startswith(path + "/")]


def one_line_error(proc):
    """The runtime failed with exit 1 and exactly one line on stderr; returns that line."""
    err = proc.stderr.decode()
    assert proc.returncode == 1, (proc.returncode, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


RACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.fsencode(p) for p in sys.argv[1:3])
while True:
    libc.renameat2(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE
"""


class ExchangeRacer:
    """A host process swapping two names in a shared directory with renameat2(RENAME_EXCHANGE), forever.

    What a container sharing the volume could do (runc's CVE-2021-30465 exploit loop).
    """

    def __init__(self, first, second):
        self.args = [sys.executable, "-I", "-S", "-c", RACER, str(first), str(second)]
        self.proc = None

    def __enter__(self):
        import subprocess

        self.proc = subprocess.Popen(self.args)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def race_rounds(default=150):
    """How many creates a race test makes (VESSEL_RACE_ROUNDS overrides)."""
    return int(os.environ.get("VESSEL_RACE_ROUNDS", default))


def mount_roots(mountinfo_text):
    """(root within its filesystem, mount point) of every line of a mountinfo."""
    return [(line.split()[3], line.split()[4]) for line in mountinfo_text.splitlines() if line.strip()]


def run_with_console(root, bundle_dir, cid, socket_path, timeout=20):
    """create with --console-socket, start, and return what the container wrote to its terminal."""
    import array
    import socket
    import time

    from helpers import runtime

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_path))
    server.listen(1)
    try:
        proc = runtime(root, "create", "--bundle", bundle_dir, "--console-socket", str(socket_path), cid)
        if proc.returncode != 0:
            return proc, None
        conn, _ = server.accept()
        fds = array.array("i")
        _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:4])
        conn.close()
        master = fds[0]
        runtime(root, "start", cid, check=True)
        out = b""
        deadline = time.monotonic() + timeout
        while b"END" not in out and time.monotonic() < deadline:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        os.close(master)
        return proc, out.decode(errors="replace").replace("\r\n", "\n")
    finally:
        server.close()
        runtime(root, "delete", "--force", cid)
