"""Seccomp for the container process: OCI linux.seccomp -> classic BPF -> kernel.

    config = seccomp.parse(spec["linux"]["seccomp"])
    program = seccomp.compile(config)
    listener = seccomp.install(program, config.flags)   # needs no_new_privs or CAP_SYS_ADMIN
    if listener is not None:
        seccomp.send_listener(listener, config.listener_path, state, config.listener_metadata)

Imported only when a config has a seccomp section.
"""

from vessel.runtime.seccomp.compiler import compile, native_arch, syscall_table
from vessel.runtime.seccomp.config import ACTIONS, ARCHITECTURES, FLAGS, OPERATORS, SeccompConfig, parse
from vessel.runtime.seccomp.kernel import connect_agent, install, send_listener, send_listener_on, supported_flags

__all__ = ["SeccompConfig", "compile", "connect_agent", "features", "install", "native_arch", "parse",
           "send_listener", "send_listener_on", "syscall_table"]


def features():
    """The linux.seccomp object of `vessel-runtime features` (OCI features.json)."""
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(ARCHITECTURES),
        "knownFlags": sorted(FLAGS),
        "supportedFlags": sorted(supported_flags()),
    }
