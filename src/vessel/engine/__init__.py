"""The engine: containers made from images, supervised without a daemon.

See docs/engine.md for the processes, the state and the files involved.
"""


def network_connect(root, container, network, ipv4=None, ipv6=None, aliases=(), runroot=None):
    """`vessel network connect`: put a container (created, running or stopped) on a network."""
    from vessel.engine import networking

    with _engine(root, runroot) as engine:
        networking.connect(engine, container, network, ipv4=ipv4, ipv6=ipv6, aliases=aliases)


def network_disconnect(root, container, network, force=False, runroot=None):
    """`vessel network disconnect`: take a container off a network."""
    from vessel.engine import networking

    with _engine(root, runroot) as engine:
        networking.disconnect(engine, container, network, force=force)


def _engine(root, runroot):
    """An Engine on `root` and `runroot` (default: VESSEL_RUNROOT, else /run/vessel)."""
    import contextlib
    import os

    from vessel.engine.core import DEFAULT_RUNROOT, Engine

    return contextlib.closing(Engine(root, runroot or os.environ.get("VESSEL_RUNROOT", DEFAULT_RUNROOT)))
