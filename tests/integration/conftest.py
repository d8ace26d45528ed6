import os

import pytest

from helpers import make_bundle, runtime


@pytest.fixture
def root(tmp_path):
    """A runtime state root of this test's own."""
    path = tmp_path / "state"
    yield path
    # whatever a failed test left: delete it through the runtime itself
    if path.exists():
        for cid in os.listdir(path):
            runtime(path, "delete", "--force", cid)


@pytest.fixture
def bundle(tmp_path):
    """make(args, edit=None) -> a busybox bundle dir."""
    counter = [0]

    def make(args=("true",), edit=None, config=None):
        counter[0] += 1
        return make_bundle(str(tmp_path / f"bundle{counter[0]}"), args=args, edit=edit, config=config)

    return make
