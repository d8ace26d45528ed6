"""Fixtures of the security suite: state roots, bundles, the static probe, host sentinels."""

import os
import subprocess

import pytest

from helpers import make_bundle, runtime
from sectools import Sentinel, sha256, trusted_files

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def root(tmp_path):
    """A runtime state root of this test's own, emptied through the runtime afterwards."""
    path = tmp_path / "state"
    yield path
    if path.exists():
        for cid in os.listdir(path):
            runtime(path, "delete", "--force", cid)


@pytest.fixture
def bundle(tmp_path):
    """make(args, edit=None, config=None) -> a busybox bundle dir."""
    counter = [0]

    def make(args=("true",), edit=None, config=None):
        counter[0] += 1
        return make_bundle(str(tmp_path / f"bundle{counter[0]}"), args=args, edit=edit, config=config)

    return make


@pytest.fixture(scope="session")
def probe(tmp_path_factory):
    """Path of the static probe binary (tests/security/probe.c), built once per run."""
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), os.path.join(HERE, "probe.c")], check=True)
    return str(out)


@pytest.fixture
def trusted_unchanged():
    """Asserts after the test that the interpreter and the runtime's files are byte-identical."""
    before = {path: sha256(path) for path in trusted_files()}
    yield
    after = {path: sha256(path) for path in before}
    changed = [path for path in before if before[path] != after[path]]
    assert not changed, f"host files changed: {changed}"


@pytest.fixture
def sentinel(tmp_path):
    """A host directory an escape would write into (see Sentinel)."""
    s = Sentinel(tmp_path / "host-sentinel")
    yield s
    s.assert_untouched()
