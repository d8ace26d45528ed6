"""vessel-runtime: an OCI runtime, a drop-in for runc.

Only the standard library and ctypes are used below this package, and modules
are imported lazily by verb, because the runtime's start time is a feature.
"""
