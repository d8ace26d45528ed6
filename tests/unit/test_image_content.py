"""Content store: verified commits, resumable ingests, exclusive writers, GC."""

import hashlib
import os
import threading
import time

import pytest

from vessel.errors import InvalidArgument, NotFound, Unavailable
from vessel.image.content import ContentStore


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    return ContentStore(str(tmp_path))


def test_put_read(store, tmp_path):
    digest = store.put(b"hello")
    assert digest == sha(b"hello")
    assert store.has(digest) and store.read(digest) == b"hello" and store.size(digest) == 5
    assert store.path(digest) == str(tmp_path / "image/blobs/sha256" / digest[7:])
    assert list(store.digests()) == [digest]
    assert store.put(b"hello") == digest


def test_put_mismatch(store):
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.put(b"hello", sha(b"other"))
    assert list(store.digests()) == []


@pytest.mark.parametrize("bad", ["sha256:../../../../etc/passwd", "sha256:" + "A" * 64, "md5:00", "x"])
def test_invalid_digest_never_becomes_a_path(store, bad):
    for call in (store.has, store.path, store.read, store.delete, store.open):
        with pytest.raises(InvalidArgument):
            call(bad)
    with pytest.raises(InvalidArgument):
        store.writer("k", expected_digest=bad)


def test_missing(store):
    digest = sha(b"nothing")
    assert not store.has(digest)
    with pytest.raises(NotFound):
        store.read(digest)
    with pytest.raises(NotFound):
        store.delete(digest)


def test_writer_verifies_digest_and_discards(store):
    writer = store.writer("k1", expected_digest=sha(b"abc"))
    writer.write(b"abd")
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        writer.commit()
    assert os.listdir(store.ingest) == [] and list(store.digests()) == []


def test_writer_verifies_size(store):
    writer = store.writer("k", expected_size=2)
    with pytest.raises(InvalidArgument, match="more data"):
        writer.write(b"abc")
    writer = store.writer("k", expected_size=4)
    writer.write(b"abc")
    with pytest.raises(InvalidArgument, match="size mismatch"):
        writer.commit()
    assert os.listdir(store.ingest) == []


def test_resume(store):
    data = os.urandom(100_000)
    digest = sha(data)
    with store.writer(digest, digest, len(data)) as writer:
        writer.write(data[:30_000])
    with store.writer(digest, digest, len(data)) as writer:
        assert writer.offset == 30_000
        writer.write(data[30_000:])
        assert writer.commit() == digest
    assert store.read(digest) == data
    assert os.listdir(store.ingest) == []
    assert oct(os.stat(store.path(digest)).st_mode & 0o777) == "0o444"


def test_context_manager_aborts_on_error(store):
    with pytest.raises(RuntimeError):
        with store.writer("k") as writer:
            writer.write(b"partial")
            raise RuntimeError("network down")
    assert os.listdir(store.ingest) == []


def test_same_key_writers_are_exclusive(store):
    data = b"x" * 1000
    digest = sha(data)
    first = store.writer(digest, digest)
    with pytest.raises(Unavailable, match="locked"):
        store.writer(digest, digest, wait=False)
    results = []

    def second():
        with store.writer(digest, digest) as writer:
            results.append(writer.offset)
            writer.abort()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()  # waiting for the lock
    first.write(data)
    first.commit()
    thread.join(5)
    assert results == [0]  # got a fresh ingest, not the committed one's bytes
    assert store.read(digest) == data


def test_concurrent_processes_same_key(store, tmp_path):
    data = os.urandom(1 << 20)
    digest = sha(data)
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                if not store.has(digest):
                    store.put(data, digest)
                os._exit(0)
            except BaseException:
                os._exit(1)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0, 0, 0, 0]
    assert store.read(digest) == data
    assert os.listdir(store.ingest) == []


def test_gc_frees_disk(store):
    keep = store.put(b"keep")
    drop = store.put(os.urandom(200_000))
    with store.writer("stale") as writer:
        writer.write(b"left over")
    count, freed = store.gc({keep})
    assert count == 1 and freed >= 200_000
    assert list(store.digests()) == [keep]
    assert os.listdir(store.ingest) == []
    assert not store.has(drop)


def test_gc_grace_keeps_young_blobs(store):
    young = store.put(b"young")
    assert store.gc(set(), grace_seconds=3600) == (0, 0)
    assert store.has(young)
