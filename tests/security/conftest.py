"""Fixtures of the security suite: state roots, bundles, the static probe, host sentinels."""

import os
import subprocess

import pytest

from sectools import Sentinel, sha256, trusted_files

HERE = os.path.dirname(os.path.abspath(__file__))


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
