"""Bad input gets one clear error line, runc's exit code (1), and leaves nothing behind."""

import json
import os

import pytest

from helpers import runtime, write_config


def assert_clean_failure(proc, root, expected):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0], lines[0]
    assert b"Traceback" not in proc.stderr
    assert not os.path.exists(root) or os.listdir(root) == []


def config_of(bundle_dir):
    with open(os.path.join(bundle_dir, "config.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("text, expected", [
    ("{", "config.json"),
    ("[]", "expected an object"),
    ('{"ociVersion": "1.0.0"}', "root is required"),
    ('{"ociVersion": "2.0.0", "root": {"path": "rootfs"}}', "unsupported ociVersion"),
])
def test_malformed_config(root, bundle, names, text, expected):
    b = bundle()
    with open(os.path.join(b, "config.json"), "w") as f:
        f.write(text)
    assert_clean_failure(runtime(root, "create", "--bundle", b, names()), root, expected)


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "unknown namespace type 'bogus'"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "listed twice"),
    (lambda c: c["root"].update(path="no-such-dir"), "does not exist"),
    (lambda c: c["process"].update(args=[]), "process.args must not be empty"),
    (lambda c: c["process"].update(cwd="relative"), "not an absolute path"),
    (lambda c: c["process"].update(args=["no-such-binary"]), "executable file not found"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}), "unknown rlimit"),
    (lambda c: c["linux"].update(resources={"memory": {"limit": "lots"}}), "memory.limit"),
    (lambda c: c["mounts"].append({"destination": "rel", "type": "tmpfs"}), "not an absolute path"),
    (lambda c: c["mounts"].append({"destination": "/b", "type": "bind", "source": "/no/such/path",
                                   "options": ["bind"]}), "does not exist"),
    (lambda c: c["process"].update(terminal=True), "console-socket"),
])
def test_invalid_config(root, bundle, names, edit, expected):
    b = bundle(edit=edit)
    assert_clean_failure(runtime(root, "create", "--bundle", b, names()), root, expected)


def test_missing_bundle(root, tmp_path, names):
    proc = runtime(root, "create", "--bundle", tmp_path / "nothing", names())
    assert_clean_failure(proc, root, "config.json not found")


def test_duplicate_id(root, bundle, names):
    cid = names()
    b = bundle(("sleep", "100"))
    runtime(root, "create", "--bundle", b, cid, check=True)
    try:
        proc = runtime(root, "create", "--bundle", b, cid)
        assert proc.returncode == 1
        assert b"already exists" in proc.stderr
        assert json.loads(runtime(root, "state", cid, check=True).stdout)["status"] == "created"
    finally:
        runtime(root, "delete", "--force", cid)


def test_wrong_state_operations(root, bundle, names):
    cid = names()
    runtime(root, "create", "--bundle", bundle(("sleep", "100")), cid, check=True)
    try:
        assert b"cannot resume" in runtime(root, "resume", cid).stderr
        runtime(root, "start", cid, check=True)
        proc = runtime(root, "start", cid)
        assert proc.returncode == 1 and b"cannot start" in proc.stderr
        proc = runtime(root, "delete", cid)
        assert proc.returncode == 1 and b"not stopped" in proc.stderr
        proc = runtime(root, "kill", cid, "SIGBOGUS")
        assert proc.returncode == 1 and b"unknown signal" in proc.stderr
        proc = runtime(root, "kill", cid, "99")
        assert proc.returncode == 1 and b"invalid signal" in proc.stderr
    finally:
        runtime(root, "delete", "--force", cid)
    assert os.listdir(root) == []


def test_bad_flags(root):
    proc = runtime(root, "create", "--bogus", "x")
    assert proc.returncode == 1 and b"flag provided but not defined" in proc.stderr
    proc = runtime(root, "state")
    assert proc.returncode == 1 and b"wrong number of arguments" in proc.stderr
    proc = runtime(root, "frobnicate")
    assert proc.returncode == 1 and b"unknown command" in proc.stderr
    proc = runtime(root, "--log-format", "xml", "list")
    assert proc.returncode == 1 and b"invalid log format" in proc.stderr


def test_invalid_id(root, bundle):
    proc = runtime(root, "create", "--bundle", bundle(), "../escape")
    assert_clean_failure(proc, root, "invalid container id")


def test_error_goes_to_log_in_text_format(root, bundle, names, tmp_path):
    log = tmp_path / "runtime.log"
    b = bundle(edit=lambda c: c["linux"]["namespaces"].append({"type": "bogus"}))
    proc = runtime(root, "--log", log, "create", "--bundle", b, names())
    assert proc.returncode == 1
    line = log.read_text().splitlines()[-1]
    assert "level=error" in line and "unknown namespace type" in line
