"""vessel: a Linux container engine and OCI runtime written in Python.

The package root imports nothing, so that `vessel.runtime` starts cold and fast;
`vessel.from_env()` (the Python API, see vessel.api) is loaded on first access.
"""

__version__ = "0.1.0"
__all__ = ["__version__", "from_env", "Client"]

_LAZY = {"from_env": "vessel.api", "Client": "vessel.api"}


def __getattr__(name):
    """`vessel.from_env` and `vessel.Client` load the API on first use only."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vessel' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
