"""A container's persisted state, its status, and the allowed transitions.

State lives in `<root>/<id>/state.json`, written atomically. Liveness is the
pid *and* the process start time (from /proc/<pid>/stat), so a reused pid
never passes for the container's init.
"""

import os
import time

from vessel.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from vessel.runtime import jsonio

__all__ = ["Container", "CREATING", "CREATED", "RUNNING", "PAUSED", "STOPPED", "validate_id"]

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"

OCI_VERSION = "1.2.0"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")

# verb -> statuses in which it is allowed
ALLOWED = {
    "start": (CREATED,),
    "kill": (CREATED, RUNNING, PAUSED),
    "pause": (RUNNING,),
    "resume": (PAUSED,),
    "exec": (CREATED, RUNNING),
    "delete": (STOPPED,),
    "update": (CREATED, RUNNING, PAUSED),
}


def validate_id(container_id):
    if not container_id or container_id in (".", "..") or not _ID_CHARS.issuperset(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits and _+-.")
    if len(container_id) > 1024:
        raise InvalidArgument("invalid container id: longer than 1024 characters")


def process_start_time(pid):
    """Start time of `pid` in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class Container:
    """One container directory under the runtime root."""

    __slots__ = ("root", "id", "dir", "data")

    def __init__(self, root, container_id, data):
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self.data = data

    # -- loading and saving --------------------------------------------------

    @classmethod
    def new(cls, root, container_id, bundle, annotations):
        """Reserve the id by creating its directory; fails if it is taken."""
        validate_id(container_id)
        os.makedirs(root, mode=0o700, exist_ok=True)
        path = os.path.join(root, container_id)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise AlreadyExists(f"container with id {container_id} already exists") from None
        data = {
            "ociVersion": OCI_VERSION, "id": container_id, "status": CREATING, "pid": 0,
            "bundle": bundle, "annotations": annotations, "created": _now(),
            "startTime": None, "owner": "",
        }
        return cls(root, container_id, data)

    @classmethod
    def load(cls, root, container_id):
        validate_id(container_id)
        path = os.path.join(root, container_id, "state.json")
        try:
            with open(path, "rb") as f:
                data = jsonio.loads(f.read())
        except FileNotFoundError:
            if os.path.isdir(os.path.join(root, container_id)):
                # create is still running, or died before saving anything
                return cls(root, container_id, {"id": container_id, "status": CREATING, "pid": 0,
                                                "ociVersion": OCI_VERSION, "bundle": "", "annotations": {}})
            raise NotFound(f"container {container_id} does not exist") from None
        except jsonio.JSONError as exc:
            raise InvalidArgument(f"container {container_id}: corrupt state: {exc}") from None
        return cls(root, container_id, data)

    @classmethod
    def all(cls, root):
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            try:
                found.append(cls.load(root, name))
            except (NotFound, InvalidArgument):
                continue
        return found

    def save(self):
        jsonio.write_atomic(os.path.join(self.dir, "state.json"), jsonio.dumps(self.data))

    def file(self, name):
        return os.path.join(self.dir, name)

    def remove_dir(self):
        """Remove the state directory (it holds only plain files and sockets)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        os.rmdir(self.dir)

    # -- status ----------------------------------------------------------------

    @property
    def pid(self):
        return self.data.get("pid") or 0

    def alive(self):
        pid = self.pid
        if pid <= 0:
            return False
        started = process_start_time(pid)
        return started is not None and started == self.data.get("startTime")

    def status(self):
        recorded = self.data.get("status", CREATING)
        if recorded == CREATING:
            return CREATING
        if not self.alive():
            return STOPPED
        return recorded

    def require(self, verb):
        status = self.status()
        if status not in ALLOWED[verb]:
            raise Conflict(f"cannot {verb} container {self.id} in status {status}")
        return status

    def cgroup_manager(self):
        """The manager of the container's cgroups, or None if it has none."""
        data = self.data.get("cgroup")
        if not data:
            return None
        from vessel.runtime import cgroups

        return cgroups.Manager.from_state(data)

    def set_status(self, status):
        self.data["status"] = status
        self.save()

    def oci_state(self):
        """The state object of the OCI spec (what `state` prints and hooks read)."""
        status = self.status()
        state = {
            "ociVersion": self.data.get("ociVersion", OCI_VERSION),
            "id": self.id,
            "status": status,
            "pid": self.pid if status in (CREATED, RUNNING, PAUSED) else 0,
            "bundle": self.data.get("bundle", ""),
        }
        if self.data.get("annotations"):
            state["annotations"] = self.data["annotations"]
        return state


def _now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
