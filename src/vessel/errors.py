"""The error tree shared by every layer of vessel.

Each error carries a category; only the command-line front ends map a category
to an exit code (and the API server to an HTTP status)::

    VesselError
    ├── NotFound          a container, image, file or name that does not exist
    ├── AlreadyExists     a name or id that is already taken
    ├── Conflict          the object is in a state that forbids the operation
    ├── InvalidArgument   malformed input: config, flag, manifest, tar
    ├── Unsupported       valid input this host or build cannot honour
    ├── Unavailable       a peer, registry or kernel feature did not answer
    └── PermissionDenied  the kernel or a registry refused

This module imports nothing: the runtime's start-up path loads it.
"""

__all__ = [
    "AlreadyExists",
    "Conflict",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Unavailable",
    "Unsupported",
    "VesselError",
]


class VesselError(Exception):
    """Base of every error vessel raises on purpose."""

    category = "internal"


class NotFound(VesselError):
    category = "not found"


class AlreadyExists(VesselError):
    category = "already exists"


class Conflict(VesselError):
    category = "conflict"


class InvalidArgument(VesselError):
    category = "invalid"


class Unsupported(InvalidArgument):
    category = "unsupported"


class Unavailable(VesselError):
    category = "unavailable"


class PermissionDenied(VesselError):
    category = "permission denied"
