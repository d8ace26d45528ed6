"""CVE-2024-21626: a host fd leaked into the init, reached through the cwd.

runc's init held an fd of the host's /sys/fs/cgroup; a config (or image
WORKDIR, or `exec --cwd`) of /proc/self/fd/N put the container's cwd in the
host's mount namespace, and `../..` led to the host's "/". Here the caller of
the runtime leaks host directory fds (as any careless caller may), and every
cwd of /proc/self/fd/3 to /proc/self/fd/32 must either fail the create or land
inside the container; an fd audit of the created init then finds nothing but
stdio and sockets.
"""

import os
import subprocess
import tempfile

import pytest

from helpers import RUNTIME, runtime
from sectools import install_probe, one_line_error

LEAKED = range(3, 11)


def _runtime_leaking(root, directory, *args):
    """vessel-runtime run by a caller that leaks fds 3-10, all open on `directory`."""
    import fcntl

    opened = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    high = fcntl.fcntl(opened, fcntl.F_DUPFD_CLOEXEC, 64)
    os.close(opened)

    def leak():
        for number in LEAKED:
            os.dup2(high, number, inheritable=True)

    # files, not pipes: a created init keeps the runtime's stdio open
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(RUNTIME + ["--root", str(root)] + list(args), preexec_fn=leak, close_fds=False,
                                  stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=60)
        finally:
            os.close(high)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    return proc


def _assert_contained(proc, sentinel):
    if proc.returncode != 0:
        one_line_error(proc)
        return
    cwd = proc.stdout.decode().splitlines()[0]
    assert cwd.startswith("/") and "unreachable" not in cwd, proc.stdout


ESCAPE = "pwd; touch pwned ../pwned ../../pwned 2>/dev/null; true"


def test_cwd_through_proc_self_fd(root, bundle, names, sentinel):
    for number in range(3, 33):
        b = bundle(("sh", "-c", ESCAPE), edit=lambda c: c["process"].update(cwd=f"/proc/self/fd/{number}"))
        proc = _runtime_leaking(root, sentinel.path, "run", "--bundle", b, names())
        _assert_contained(proc, sentinel)
        sentinel.assert_untouched()


def test_cwd_through_proc_self_cwd(root, bundle, names, sentinel):
    b = bundle(("sh", "-c", ESCAPE), edit=lambda c: c["process"].update(cwd="/proc/self/cwd/.."))
    proc = _runtime_leaking(root, sentinel.path, "run", "--bundle", b, names())
    _assert_contained(proc, sentinel)


def test_exec_cwd_through_proc_self_fd(root, bundle, names, sentinel):
    cid = names()
    runtime(root, "run", "-d", "--bundle", bundle(("sleep", "100")), cid, check=True)
    try:
        for number in range(3, 33):
            proc = _runtime_leaking(root, sentinel.path, "exec", "--cwd", f"/proc/self/fd/{number}", cid,
                                    "sh", "-c", ESCAPE)
            _assert_contained(proc, sentinel)
            sentinel.assert_untouched()
    finally:
        runtime(root, "delete", "--force", cid)


ALLOWED_PREFIXES = ("socket:[", "pipe:[", "anon_inode:", "/dev/null", "/dev/pts/")


@pytest.mark.parametrize("terminal", [False, True])
def test_created_init_holds_no_host_fds(root, bundle, names, tmp_path, sentinel, terminal):
    """runc's create.bats "detect fd leak": every fd of a created init is stdio or a socket."""
    import socket

    cid = names()
    b = bundle(("sleep", "100"), edit=lambda c: c["process"].update(terminal=terminal))
    pid_file = os.path.join(b, "init.pid")
    extra = []
    server = None
    if terminal:
        console = str(tmp_path / "console.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(console)
        server.listen(1)
        extra = ["--console-socket", console]
    try:
        proc = _runtime_leaking(root, sentinel.path, "create", "--bundle", b, "--pid-file", pid_file, *extra, cid)
        assert proc.returncode == 0, proc.stderr
        pid = int(open(pid_file).read())
        held = {int(n): os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
    finally:
        if server is not None:
            server.close()
        runtime(root, "delete", "--force", cid)
    leaked = {n: target for n, target in held.items() if n > 2 and not target.startswith(ALLOWED_PREFIXES)}
    assert not leaked, held


def test_started_program_has_only_stdio(root, bundle, names, probe, sentinel):
    b = bundle(("/probe", "fds"))
    install_probe(b, probe)
    proc = _runtime_leaking(root, sentinel.path, "run", "--bundle", b, names())
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.decode().splitlines()] == ["0", "1", "2"]
