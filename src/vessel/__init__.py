"""vessel: a Linux container engine and OCI runtime written in Python.

The package root imports nothing, so that `vessel.runtime` starts cold and fast.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
