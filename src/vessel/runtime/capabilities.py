"""Capability sets of the container process (OCI `process.capabilities`).

Hand-written on prctl(2) and capget/capset(2) because the runtime may not depend
on libcap.  The order of operations is the one runc (libcontainer/init_linux.go
`finalizeNamespace`) and crun (`set_required_caps`) use:

1. `apply_before_user_switch`: drop the bounding set while we still hold
   CAP_SETPCAP, and set PR_SET_KEEPCAPS so the permitted set survives the
   setresuid() away from uid 0.
2. the caller switches groups, gid and uid (setgroups, setresgid, setresuid);
   this clears the effective set.
3. `apply_after_user_switch`: clear keepcaps, capset() the effective, permitted
   and inheritable sets, then raise the ambient set (the kernel only allows an
   ambient cap that is already permitted and inheritable).

Names unknown to vessel are an error; names the running kernel does not know
(above its last capability) are skipped, as runc does, and listed in
`CapabilitySets.skipped` so the caller can warn.  Ambient capabilities the
kernel refuses to raise (not permitted and inheritable) are skipped too, as in
runc and crun; `apply_after_user_switch` returns their names.
"""

import ctypes  # already loaded by vessel.runtime.linux

from vessel.errors import InvalidArgument, PermissionDenied
from vessel.runtime import linux

__all__ = [
    "ALL_CAPABILITIES", "DOCKER_DEFAULT", "CapabilitySets",
    "apply_after_user_switch", "apply_before_user_switch", "parse",
]

# Index in this tuple == capability number (linux/capability.h).
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

# moby daemon/pkg/oci/caps/defaults.go (containerd's default spec has the same 14).
DOCKER_DEFAULT = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

SET_NAMES = ("bounding", "effective", "inheritable", "permitted", "ambient")

_NUMBERS = {name: number for number, name in enumerate(ALL_CAPABILITIES)}
_EINVAL = 22
_EPERM = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_capset = linux._SYS_capset


class CapabilitySets:
    """The five sets as bit masks (bit n = capability n)."""

    __slots__ = ("bounding", "effective", "inheritable", "permitted", "ambient", "skipped")

    def __init__(self, bounding=0, effective=0, inheritable=0, permitted=0, ambient=0, skipped=()):
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient
        self.skipped = skipped

    def names(self, which):
        """The capability names in one set, e.g. names("ambient")."""
        return mask_names(getattr(self, which))

    def __eq__(self, other):
        if not isinstance(other, CapabilitySets):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in SET_NAMES)

    def __repr__(self):
        sets = ", ".join(f"{s}={self.names(s)}" for s in SET_NAMES)
        return f"CapabilitySets({sets})"


def mask_names(mask):
    """Names of the capabilities whose bits are set in `mask`."""
    return [name for number, name in enumerate(ALL_CAPABILITIES) if mask >> number & 1]


def parse(obj, last_cap=None):
    """Validate a raw OCI process.capabilities object; missing sets are empty.

    `last_cap` is the highest capability the kernel knows (probed when None).
    """
    if obj is None:
        return CapabilitySets()
    if not isinstance(obj, dict):
        raise InvalidArgument("process.capabilities must be an object")
    if last_cap is None:
        last_cap = kernel_last_cap()
    masks = {}
    skipped = []
    for set_name in SET_NAMES:
        names = obj.get(set_name)
        if names is None:
            names = ()
        elif not isinstance(names, list):
            raise InvalidArgument(f"process.capabilities.{set_name} must be a list of names")
        mask = 0
        for name in names:
            number = _NUMBERS.get(name) if isinstance(name, str) else None
            if number is None:
                raise InvalidArgument(f"unknown capability {name}")
            if number > last_cap:
                if name not in skipped:
                    skipped.append(name)
                continue
            mask |= 1 << number
        masks[set_name] = mask
    extra = masks["effective"] & ~masks["permitted"]
    if extra:
        # capset(2) would refuse this with EPERM; say why up front.
        raise InvalidArgument(
            f"process.capabilities: effective {mask_names(extra)[0]} is not in the permitted set")
    return CapabilitySets(skipped=tuple(skipped), **masks)


_last_cap = None


def _kernel_knows(cap):
    try:
        linux.prctl(linux.PR_CAPBSET_READ, cap)
    except OSError as exc:
        if exc.errno == _EINVAL:
            return False
        raise
    return True


def kernel_last_cap():
    """The highest capability number of the running kernel (/proc/sys/kernel/cap_last_cap).

    Probed with PR_CAPBSET_READ, which needs no /proc and usually costs two calls;
    it may be above the names vessel knows if the kernel is newer.
    """
    global _last_cap
    if _last_cap is None:
        cap = len(ALL_CAPABILITIES) - 1
        while cap > 0 and not _kernel_knows(cap):
            cap -= 1
        while _kernel_knows(cap + 1):
            cap += 1
        _last_cap = cap
    return _last_cap


def _cap_name(number):
    return ALL_CAPABILITIES[number] if number < len(ALL_CAPABILITIES) else f"capability {number}"


def apply_before_user_switch(sets):
    """Drop every capability not in `sets.bounding` from the bounding set; set keepcaps.

    Must run while the process still has CAP_SETPCAP in its effective set,
    that is before setresuid() away from root.
    """
    for cap in range(kernel_last_cap() + 1):
        if sets.bounding >> cap & 1:
            continue
        try:
            linux.prctl(linux.PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno == _EPERM and linux.prctl(linux.PR_CAPBSET_READ, cap) == 0:
                continue  # already dropped: nothing to do even without CAP_SETPCAP
            raise PermissionDenied(
                f"cannot drop {_cap_name(cap)} from the bounding set: {exc.strerror}") from None
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)


def apply_after_user_switch(sets):
    """capset() the effective, permitted and inheritable sets, then raise the ambient set.

    Returns the names of ambient capabilities the kernel refused (skipped).
    """
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two struct __user_cap_data_struct: caps 0-31, 32-63
    for word in (0, 1):
        shift = 32 * word
        data[3 * word] = sets.effective >> shift & 0xFFFFFFFF
        data[3 * word + 1] = sets.permitted >> shift & 0xFFFFFFFF
        data[3 * word + 2] = sets.inheritable >> shift & 0xFFFFFFFF
    try:
        linux.syscall(_SYS_capset, header, data)
    except OSError as exc:
        raise PermissionDenied(f"cannot set capabilities: {exc.strerror}") from None
    try:
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno != _EINVAL:  # EINVAL: kernel without ambient capabilities
            raise PermissionDenied(f"cannot clear ambient capabilities: {exc.strerror}") from None
    refused = []
    for cap in range(sets.ambient.bit_length()):
        if sets.ambient >> cap & 1:
            try:
                linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
            except OSError:
                refused.append(_cap_name(cap))
    return refused

