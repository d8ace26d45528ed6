"""The last steps before execve, shared by create (init) and exec.

Order: rlimits, personality, user groups and ids (keeping capabilities across
the switch), capabilities, no_new_privs, seccomp, then execve. Runs only in a
freshly forked child; any failure is reported by the caller and ends the child.
"""

import os

from vessel.errors import NotFound, PermissionDenied, Unavailable
from vessel.runtime import linux

__all__ = ["ExecError", "find_executable", "finalize_and_exec", "environment"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecError(NotFound):
    """The program named by process.args cannot be found (Docker's exit 127)."""


def environment(env_list):
    env = {}
    for entry in env_list:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def find_executable(name, env):
    """Resolve args[0] like runc: a path as given, else a search of the container's PATH."""
    if "/" in name:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise ExecError(f'exec: "{name}": stat {name}: no such file or directory') from None
        if not os.access(name, os.X_OK) or (st.st_mode & 0o170000) == 0o040000:
            raise PermissionDenied(f'exec: "{name}": permission denied')
        return name
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and os.access(candidate, os.X_OK):
            return candidate
    raise ExecError(f'exec: "{name}": executable file not found in $PATH')


def preload(terminal=False, caps=False, seccomp=False, hooks=False, debug=False):
    """Get this process ready to reach into a container: imports done, not dumpable.

    Once a process is in the container's mount namespace nothing may be
    loaded: that would run code from the image. And from the clone or fork on,
    this process and its children are visible to the container until they
    exec: non-dumpable, their /proc/<pid>/exe (the host interpreter), fds, cwd
    and root cannot be opened from it (CVE-2019-5736). The flag is inherited
    across fork and reset by the container program's execve.
    """
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    import resource  # noqa: F401  (rlimits)

    if debug:
        import traceback  # noqa: F401  (error reports with --debug)
    if terminal:
        from vessel.runtime import terminal as _terminal  # noqa: F401
    if caps:
        from vessel.runtime import capabilities  # noqa: F401
    if seccomp:
        from vessel.runtime import seccomp as _seccomp  # noqa: F401
    if hooks:
        from vessel.runtime import hooks as _hooks  # noqa: F401


def close_inherited(keep=(), preserve_fds=0):
    """Close every fd above stdio except `keep` and the preserved ones.

    Whatever the runtime's caller leaked (a host directory, say) must not stay
    open in a process that enters the container: through /proc/self/fd/N as
    the cwd it leads back to the host (CVE-2024-21626).
    """
    first = 3 + preserve_fds
    for fd in sorted(fd for fd in keep if fd is not None and fd >= first) + [_LAST_FD + 1]:
        if fd > first:
            linux.close_range(first, fd - 1)
        first = fd + 1


_LAST_FD = 0x7FFFFFFF


def enter_cwd(cwd):
    """chdir to the process's cwd and make sure it is inside the container's root.

    getcwd() fails (ENOENT) for a directory the root cannot reach, e.g. one
    opened before pivot_root or setns and named by /proc/self/fd/N.
    """
    os.chdir(cwd)
    try:
        here = os.getcwd()
    except FileNotFoundError:
        here = ""
    if not here.startswith("/"):
        raise PermissionDenied(f"cwd {cwd} is outside the container's root")


class ListenerHandOver:
    """Hands the seccomp notify listener to the agent at linux.seccomp.listenerPath.

    The agent's socket is a host path: it is connected before the process
    enters the container, and used right after the filter is loaded (the
    `on_listener` of finalize_and_exec), as runc's init does through its parent.
    """

    __slots__ = ("sock", "path", "state", "metadata")

    def __init__(self, sock, path, state, metadata):
        self.sock = sock
        self.path = path
        self.state = state
        self.metadata = metadata

    def __call__(self, listener_fd):
        from vessel.runtime import seccomp

        try:
            seccomp.send_listener_on(self.sock, listener_fd, self.state, self.metadata, self.path)
        finally:
            os.close(listener_fd)
            self.sock.close()


def connect_seccomp_agent(seccomp_raw, state):
    """A ListenerHandOver when the profile notifies (SCMP_ACT_NOTIFY), else None."""
    if not seccomp_raw or not seccomp_raw.get("listenerPath"):
        return None
    if not any(isinstance(rule, dict) and rule.get("action") == "SCMP_ACT_NOTIFY"
               for rule in seccomp_raw.get("syscalls") or ()):
        return None
    from vessel.runtime import seccomp

    path = seccomp_raw["listenerPath"]
    try:
        sock = seccomp.connect_agent(path)
    except OSError as exc:
        raise Unavailable(f"seccomp agent at {path}: {exc.strerror or exc}") from None
    return ListenerHandOver(sock, path, state, seccomp_raw.get("listenerMetadata") or "")


def host_pid():
    """This process's pid in the pid namespace of the mounted /proc (the host's, before pivot_root)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"NSpid:"):
                return int(line.split()[1])
    return os.getpid()


def apply_rlimits(rlimits):
    import resource

    for limit in rlimits:
        try:
            resource.setrlimit(limit.resource, (_rlim(limit.soft), _rlim(limit.hard)))
        except (ValueError, OSError) as exc:
            raise PermissionDenied(
                f"cannot set {limit.type} to soft={limit.soft} hard={limit.hard}: {exc}; "
                "raising a hard limit needs CAP_SYS_RESOURCE") from None


def _rlim(value):
    return -1 if value >= 2**63 else value


def finalize_and_exec(proc, executable, seccomp_program=None, seccomp_flags=(), preserve_fds=0,
                      caps=None, on_listener=None):
    """Apply the process settings and replace this process with the container's program.

    rlimits are the caller's step: the init applies them at create, so that a
    limit the host refuses fails the create, as with runc. Seccomp follows
    runc's order: without no_new_privs loading a filter needs CAP_SYS_ADMIN,
    so it comes before the capabilities are dropped; with it, as late as possible.
    """
    user = proc.user
    os.umask(0o022 if user.umask is None else user.umask)

    def load_seccomp():
        from vessel.runtime import seccomp

        listener = seccomp.install(seccomp_program, seccomp_flags)
        if listener is not None and on_listener is not None:
            on_listener(listener)

    if seccomp_program is not None and not proc.no_new_privileges:
        load_seccomp()
    capabilities = _capabilities_module() if caps is not None else None
    if capabilities is not None:
        capabilities.apply_before_user_switch(caps)
    os.setgroups(list(user.additional_gids))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if capabilities is not None:
        capabilities.apply_after_user_switch(caps)
    if proc.no_new_privileges:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        if seccomp_program is not None:
            load_seccomp()
    for fd in range(3, 3 + preserve_fds):
        os.set_inheritable(fd, True)
    os.execve(executable, proc.args, environment(proc.env))


def _capabilities_module():
    from vessel.runtime import capabilities

    return capabilities

