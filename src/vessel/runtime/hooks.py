"""Running OCI hooks: the container state on stdin, a timeout each.

Imported only when a config has hooks, so `subprocess` stays off the start path.
"""

import subprocess

from vessel.errors import VesselError
from vessel.runtime import jsonio

__all__ = ["HookFailed", "run_hooks"]


class HookFailed(VesselError):
    category = "failed"


def run_hooks(kind, hooks, state):
    """Run each hook in order; the first failure stops the list and raises."""
    payload = jsonio.dumps(state).encode()
    for hook in hooks:
        argv = hook.args or [hook.path]
        env = dict(entry.partition("=")[::2] for entry in hook.env)
        try:
            proc = subprocess.run(argv, executable=hook.path, input=payload, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=hook.timeout, close_fds=True)
        except subprocess.TimeoutExpired:
            raise HookFailed(f"{kind} hook {hook.path} timed out after {hook.timeout}s") from None
        except OSError as exc:
            raise HookFailed(f"{kind} hook {hook.path}: {exc.strerror}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            tail = f": {detail[-1]}" if detail else ""
            raise HookFailed(f"{kind} hook {hook.path} exited with status {proc.returncode}{tail}")
