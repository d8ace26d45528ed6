"""Capability parsing, and the sets a forked child really ends up with (/proc/self/status)."""

import json
import os

import pytest

from helpers import run_in_child

from vessel.errors import InvalidArgument, PermissionDenied
from vessel.runtime import capabilities as caps

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

THREE = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def mask(names):
    return sum(1 << caps.ALL_CAPABILITIES.index(name) for name in names)


def status_caps(text):
    """{'CapInh': int, ...} from /proc/<pid>/status text."""
    return {line.split(":")[0]: int(line.split()[1], 16)
            for line in text.splitlines() if line.startswith("Cap")}


def read_status_caps():
    with open("/proc/self/status") as fh:
        return status_caps(fh.read())


def switch_user(uid, gid):
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


# --- parsing -------------------------------------------------------------------

def test_tables():
    assert len(caps.ALL_CAPABILITIES) == 41
    assert caps.ALL_CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert caps.ALL_CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"
    assert len(set(caps.DOCKER_DEFAULT)) == 14
    assert set(caps.DOCKER_DEFAULT) <= set(caps.ALL_CAPABILITIES)


def test_parse_sets_and_missing_sets_empty():
    sets = caps.parse({"bounding": list(caps.DOCKER_DEFAULT), "effective": THREE,
                       "permitted": THREE + ["CAP_MKNOD"], "ambient": []})
    assert sets.bounding == mask(caps.DOCKER_DEFAULT)
    assert sets.effective == mask(THREE)
    assert sets.permitted == mask(THREE + ["CAP_MKNOD"])
    assert sets.inheritable == sets.ambient == 0
    assert sets.names("effective") == THREE
    assert caps.parse(None) == caps.CapabilitySets()
    assert caps.parse({}) == caps.CapabilitySets()


def test_parse_unknown_name_is_one_line_error():
    with pytest.raises(InvalidArgument, match="^unknown capability CAP_FOO$"):
        caps.parse({"bounding": ["CAP_CHOWN", "CAP_FOO"]})
    with pytest.raises(InvalidArgument, match="unknown capability chown"):
        caps.parse({"effective": ["chown"]})
    with pytest.raises(InvalidArgument, match="must be a list"):
        caps.parse({"permitted": "CAP_CHOWN"})
    with pytest.raises(InvalidArgument, match="must be an object"):
        caps.parse(["CAP_CHOWN"])
    with pytest.raises(InvalidArgument, match="^process.capabilities: effective CAP_KILL is not in the permitted set$"):
        caps.parse({"effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN"]})


def test_names_newer_than_kernel_are_skipped():
    sets = caps.parse({"bounding": ["CAP_CHOWN", "CAP_BPF", "CAP_PERFMON"],
                       "permitted": ["CAP_BPF"]}, last_cap=37)
    assert sets.bounding == mask(["CAP_CHOWN"])
    assert sets.permitted == 0
    assert sets.skipped == ("CAP_BPF", "CAP_PERFMON")


def test_kernel_last_cap_matches_proc():
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        assert caps.kernel_last_cap() == int(fh.read())


# --- applying in a real process ---------------------------------------------------

def docker_like_config():
    return {"bounding": list(caps.DOCKER_DEFAULT), "effective": THREE, "permitted": THREE,
            "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE"]}


@needs_root
def test_apply_as_uid_1000_gives_exactly_the_configured_sets():
    sets = caps.parse(docker_like_config())

    def body():
        caps.apply_before_user_switch(sets)
        switch_user(1000, 1000)
        refused = caps.apply_after_user_switch(sets)
        import ctypes
        keepcaps = ctypes.CDLL(None).prctl(7, 0, 0, 0, 0)  # PR_GET_KEEPCAPS
        return {"refused": refused, "status": read_status_caps(), "keepcaps": keepcaps,
                "uid": os.getresuid()}

    status, result = run_in_child(body)
    assert status == 0, result
    assert result["refused"] == []
    assert result["uid"] == [1000, 1000, 1000]
    assert result["keepcaps"] == 0
    assert result["status"] == {
        "CapInh": mask(["CAP_NET_BIND_SERVICE"]),
        "CapPrm": mask(THREE),
        "CapEff": mask(THREE),
        "CapBnd": mask(caps.DOCKER_DEFAULT),
        "CapAmb": mask(["CAP_NET_BIND_SERVICE"]),
    }


@needs_root
def test_ambient_cap_survives_execve_as_non_root():
    """After execve a non-root process keeps only its ambient caps (permitted = effective = ambient)."""
    sets = caps.parse(docker_like_config())
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            caps.apply_before_user_switch(sets)
            switch_user(1000, 1000)
            caps.apply_after_user_switch(sets)
            os.execv("/usr/bin/busybox", ["cat", "/proc/self/status"])
        finally:
            os._exit(127)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        text = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    net_bind = mask(["CAP_NET_BIND_SERVICE"])
    assert status_caps(text) == {"CapInh": net_bind, "CapPrm": net_bind, "CapEff": net_bind,
                                 "CapBnd": mask(caps.DOCKER_DEFAULT), "CapAmb": net_bind}


@needs_root
def test_apply_as_root_keeps_full_configured_sets():
    config = {"bounding": list(caps.DOCKER_DEFAULT), "effective": list(caps.DOCKER_DEFAULT),
              "permitted": list(caps.DOCKER_DEFAULT)}
    sets = caps.parse(config)

    def body():
        caps.apply_before_user_switch(sets)
        caps.apply_after_user_switch(sets)
        return read_status_caps()

    status, result = run_in_child(body)
    assert status == 0, result
    docker = mask(caps.DOCKER_DEFAULT)
    assert result == {"CapInh": 0, "CapPrm": docker, "CapEff": docker, "CapBnd": docker, "CapAmb": 0}


@needs_root
def test_ambient_not_permitted_and_inheritable_is_skipped():
    sets = caps.parse({"bounding": THREE, "effective": THREE, "permitted": THREE,
                       "ambient": ["CAP_KILL"]})

    def body():
        caps.apply_before_user_switch(sets)
        switch_user(1000, 1000)
        return {"refused": caps.apply_after_user_switch(sets), "status": read_status_caps()}

    status, result = run_in_child(body)
    assert status == 0, result
    assert result["refused"] == ["CAP_KILL"]
    assert result["status"]["CapAmb"] == 0
    assert result["status"]["CapPrm"] == mask(THREE)


@needs_root
def test_empty_sets_leave_nothing():
    sets = caps.parse({})

    def body():
        caps.apply_before_user_switch(sets)
        switch_user(1000, 1000)
        caps.apply_after_user_switch(sets)
        return read_status_caps()

    status, result = run_in_child(body)
    assert status == 0, result
    assert result == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}


@needs_root
def test_bounding_drop_without_setpcap_is_permission_denied():
    sets = caps.parse({"bounding": ["CAP_CHOWN"]})

    def body():
        switch_user(1000, 1000)  # no keepcaps: every capability is gone
        try:
            caps.apply_before_user_switch(sets)
        except PermissionDenied as exc:
            return str(exc)
        return "no error"

    status, result = run_in_child(body)
    assert status == 0, result
    assert result.startswith("cannot drop CAP_DAC_OVERRIDE from the bounding set")
