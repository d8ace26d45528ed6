"""Container status from persisted state: pid plus start time, so a reused pid is not the init."""

import os

from vessel.runtime import container as ctr


def write_state(root, cid, **data):
    c = ctr.Container.new(str(root), cid, "/bundle", {})
    c.data.update(data)
    c.save()
    return ctr.Container.load(str(root), cid)


def test_live_pid_with_matching_start_time_is_running(tmp_path):
    me = os.getpid()
    c = write_state(tmp_path, "a", status="running", pid=me, startTime=ctr.process_start_time(me))
    assert c.status() == "running"


def test_reused_pid_is_stopped(tmp_path):
    me = os.getpid()
    c = write_state(tmp_path, "b", status="running", pid=me, startTime=ctr.process_start_time(me) - 1)
    assert c.status() == "stopped"
    assert c.oci_state()["pid"] == 0


def test_dead_pid_is_stopped(tmp_path):
    c = write_state(tmp_path, "c", status="created", pid=2**22 + 12345, startTime=1)
    assert c.status() == "stopped"


def test_directory_without_state_is_creating(tmp_path):
    os.mkdir(tmp_path / "d")
    assert ctr.Container.load(str(tmp_path), "d").status() == "creating"


def test_invalid_ids():
    import pytest

    from vessel.errors import InvalidArgument

    for bad in ("", ".", "..", "a/b", "a b", "x" * 1025):
        with pytest.raises(InvalidArgument):
            ctr.validate_id(bad)
