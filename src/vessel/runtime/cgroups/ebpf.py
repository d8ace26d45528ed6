"""Loading and attaching cgroup v2 device programs with the bpf(2) syscall.

cgroup v2 has no devices.allow; the kernel asks an attached
BPF_PROG_TYPE_CGROUP_DEVICE program instead. The syscall goes through
`vessel.runtime.linux.syscall`; ctypes here only lays out `union bpf_attr`.
Imported only when a v2 cgroup gets device rules.
"""

import ctypes
import os
import struct

from vessel.runtime import linux

__all__ = ["attached_programs", "replace_device_program"]

_SYS_bpf = 321  # x86_64
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_DETACH = 9
_BPF_PROG_GET_FD_BY_ID = 13
_BPF_PROG_QUERY = 16
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2

_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", _u32), ("insn_cnt", _u32), ("insns", _u64), ("license", _u64),
                ("log_level", _u32), ("log_size", _u32), ("log_buf", _u64),
                ("kern_version", _u32), ("prog_flags", _u32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", _u32), ("expected_attach_type", _u32)]


class _Attach(ctypes.Structure):
    _fields_ = [("target_fd", _u32), ("attach_bpf_fd", _u32), ("attach_type", _u32),
                ("attach_flags", _u32), ("replace_bpf_fd", _u32)]


class _Query(ctypes.Structure):
    _fields_ = [("target_fd", _u32), ("attach_type", _u32), ("query_flags", _u32),
                ("attach_flags", _u32), ("prog_ids", _u64), ("prog_cnt", _u32)]


class _GetFdById(ctypes.Structure):
    _fields_ = [("prog_id", _u32), ("next_id", _u32), ("open_flags", _u32)]


def _bpf(cmd, attr, what, path):
    try:
        return linux.syscall(_SYS_bpf, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    except OSError as exc:
        raise OSError(exc.errno, f"bpf {what}: {os.strerror(exc.errno)}", path) from None


def _encode(program):
    return b"".join(struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
                    for code, dst, src, off, imm in program)


def _load(program, path):
    code = _encode(program)
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"Apache")
    attr = _ProgLoad(prog_type=_BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(program),
                     insns=ctypes.addressof(insns), license=ctypes.addressof(license),
                     prog_name=b"vessel_devices", expected_attach_type=_BPF_CGROUP_DEVICE)
    try:
        return _bpf(_BPF_PROG_LOAD, attr, "load device program", path)
    except OSError as exc:
        if exc.errno != 13 and exc.errno != 22:  # only EACCES/EINVAL come with a verifier log
            raise
    log = ctypes.create_string_buffer(1 << 16)
    attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
    try:
        return _bpf(_BPF_PROG_LOAD, attr, "load device program", path)
    except OSError as exc:
        detail = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(exc.errno, f"{exc.strerror}: {detail[-1] if detail else 'no verifier log'}",
                      path) from None


def attached_programs(cgroup_fd, path):
    """Ids of the device programs attached to the cgroup itself."""
    ids = (_u32 * 64)()
    attr = _Query(target_fd=cgroup_fd, attach_type=_BPF_CGROUP_DEVICE,
                  prog_ids=ctypes.addressof(ids), prog_cnt=len(ids))
    _bpf(_BPF_PROG_QUERY, attr, "query device programs", path)
    return list(ids[:attr.prog_cnt])


def replace_device_program(path, program):
    """Attach `program` (None: none) to the cgroup at `path` and detach the ones it replaces.

    The new program is attached before the old ones go (BPF_F_ALLOW_MULTI), so
    there is no moment without a filter.
    """
    cgroup_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old_ids = attached_programs(cgroup_fd, path)
        if program is not None:
            prog_fd = _load(program, path)
            try:
                _bpf(_BPF_PROG_ATTACH, _Attach(target_fd=cgroup_fd, attach_bpf_fd=prog_fd,
                                               attach_type=_BPF_CGROUP_DEVICE,
                                               attach_flags=_BPF_F_ALLOW_MULTI),
                     "attach device program", path)
            finally:
                os.close(prog_fd)
        for prog_id in old_ids:
            old_fd = _bpf(_BPF_PROG_GET_FD_BY_ID, _GetFdById(prog_id=prog_id), "open program", path)
            try:
                _bpf(_BPF_PROG_DETACH, _Attach(target_fd=cgroup_fd, attach_bpf_fd=old_fd,
                                               attach_type=_BPF_CGROUP_DEVICE),
                     "detach old device program", path)
            finally:
                os.close(old_fd)
    finally:
        os.close(cgroup_fd)
