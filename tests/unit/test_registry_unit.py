"""Pure logic of the registry client: challenges, hosts config, credentials, progress."""

import base64
import io
import json
import os
import stat

import pytest

from vessel.errors import InvalidArgument, Unavailable
from vessel.image.registry import credentials
from vessel.image.registry.client import parse_challenges
from vessel.image.registry.hosts import RegistryConfig, is_loopback, normalize_host
from vessel.image.registry.progress import Progress, human_size


def test_parse_bearer_challenge_with_quoted_commas():
    (challenge,) = parse_challenges(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.example/token", "service": "registry.example",
                                "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}


def test_parse_several_challenges():
    found = parse_challenges('Basic realm="x y", Bearer realm="https://t/", service=s')
    assert [(c.scheme, c.params) for c in found] == [
        ("basic", {"realm": "x y"}), ("bearer", {"realm": "https://t/", "service": "s"})]


def test_parse_empty_challenge():
    assert parse_challenges("") == []
    assert parse_challenges(None) == []


@pytest.mark.parametrize("text,host", [
    ("docker.io", "docker.io"), ("https://index.docker.io/v1/", "docker.io"),
    ("registry-1.docker.io", "docker.io"), ("HTTP://Reg.Example:5000/", "reg.example:5000"),
    ("127.0.0.1:5000", "127.0.0.1:5000"), ("https://user:pw@mirror.example/x", "mirror.example")])
def test_normalize_host(text, host):
    assert normalize_host(text) == host


@pytest.mark.parametrize("host,loopback", [
    ("localhost:5000", True), ("127.0.0.1", True), ("127.3.4.5:80", True), ("[::1]:5000", True),
    ("registry.example", False), ("10.0.0.1:5000", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_endpoints_with_mirrors_and_insecure():
    config = RegistryConfig.parse(json.dumps({"registries": {
        "docker.io": {"mirrors": ["http://127.0.0.1:5001", "mirror.lan"]},
        "mirror.lan": {"insecure": True},
        "quay.io": {"mirrors": ["https://cache.example/prefix/"]},
    }}))
    urls = [e.url for e in config.endpoints("docker.io")]
    assert urls == ["http://127.0.0.1:5001", "https://mirror.lan", "https://registry-1.docker.io"]
    insecure_mirror = config.endpoints("docker.io")[1]
    assert not insecure_mirror.verify_tls and insecure_mirror.http_fallback
    assert [e.url for e in config.endpoints("quay.io")] == ["https://cache.example/prefix",
                                                            "https://quay.io"]
    assert [e.url for e in config.endpoints("docker.io", push=True)] == ["https://registry-1.docker.io"]
    assert config.endpoint("localhost:5000").url == "http://localhost:5000"


@pytest.mark.parametrize("raw", [
    "not json", '{"registries": []}', '{"registries": {"a": {"mirrors": "x"}}}',
    '{"registries": {"a": {"insecure": "yes"}}}', '{"registries": {"a": {"mirors": []}}}',
    '{"registries": {"a": {"mirrors": ["ftp://x"]}}}'])
def test_bad_registries_config(raw):
    with pytest.raises(InvalidArgument):
        RegistryConfig.parse(raw).endpoints("a")


def test_registries_config_file_lookup(tmp_path):
    (tmp_path / "registries.json").write_text('{"registries": {"r.example": {"insecure": true}}}')
    assert RegistryConfig.load(root=str(tmp_path)).insecure("r.example")
    assert RegistryConfig.load(path=str(tmp_path / "missing.json")).registries == {}


def test_secrets_are_redacted():
    creds = credentials.Credentials("alice", "hunter2")
    assert "hunter2" not in repr(creds)
    assert "hunter2" not in str(creds.password) and "hunter2" not in repr(creds.password)
    assert creds.password.value == "hunter2"


def test_credentials_roundtrip_in_config_json(tmp_path):
    path = str(tmp_path / "docker" / "config.json")
    credentials.store("docker.io", credentials.Credentials("bob", "pw:with:colons"), path)
    credentials.store("127.0.0.1:5000", credentials.Credentials("eve", "x"), path)
    data = json.loads(open(path).read())
    assert base64.b64decode(data["auths"]["https://index.docker.io/v1/"]["auth"]) == b"bob:pw:with:colons"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    found = credentials.lookup("index.docker.io", path)
    assert (found.username, found.password.value) == ("bob", "pw:with:colons")
    assert credentials.erase("127.0.0.1:5000", path) is True
    assert credentials.erase("127.0.0.1:5000", path) is False
    assert credentials.lookup("127.0.0.1:5000", path) is None


def test_credentials_found_under_url_keys(tmp_path):
    path = tmp_path / "config.json"
    auth = base64.b64encode(b"u:p").decode()
    path.write_text(json.dumps({"auths": {"https://reg.example:5000/v2/": {"auth": auth}}}))
    assert credentials.lookup("reg.example:5000", str(path)).username == "u"


def test_docker_config_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert credentials.default_config_path() == str(tmp_path / "config.json")


HELPER = """#!/bin/sh
# a docker credential helper keeping secrets in $HELPER_STORE (one JSON file per server)
set -e
action="$1"
input=$(cat)
case "$action" in
  store) key=$(printf %s "$input" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ServerURL"].replace("/", "_"))')
         printf %s "$input" > "$HELPER_STORE/$key" ;;
  get)   key=$(printf %s "$input" | tr / _)
         if [ -f "$HELPER_STORE/$key" ]; then cat "$HELPER_STORE/$key"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) key=$(printf %s "$input" | tr / _)
         if [ -f "$HELPER_STORE/$key" ]; then rm "$HELPER_STORE/$key"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  *) echo "unknown action" >&2; exit 2 ;;
esac
"""


def install_helper(tmp_path, monkeypatch, name="vesseltest"):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store"
    store.mkdir()
    helper = bindir / f"docker-credential-{name}"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("HELPER_STORE", str(store))
    return store


def test_credential_helper_protocol(tmp_path, monkeypatch):
    helper_store = install_helper(tmp_path, monkeypatch)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "vesseltest"}))
    credentials.store("reg.example", credentials.Credentials("carol", "s3cret"), str(path))
    assert "s3cret" not in path.read_text()
    assert json.loads(path.read_text())["auths"] == {"reg.example": {}}
    assert json.loads((helper_store / "reg.example").read_text())["Secret"] == "s3cret"
    found = credentials.lookup("reg.example", str(path))
    assert (found.username, found.password.value) == ("carol", "s3cret")
    assert credentials.lookup("other.example", str(path)) is None
    assert credentials.erase("reg.example", str(path)) is True
    assert not (helper_store / "reg.example").exists()


def test_cred_helpers_per_host_and_missing_helper(tmp_path, monkeypatch):
    install_helper(tmp_path, monkeypatch)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credHelpers": {"a.example": "vesseltest", "b.example": "absent"}}))
    assert credentials.lookup("a.example", str(path)) is None
    with pytest.raises(Unavailable, match="docker-credential-absent: not found"):
        credentials.lookup("b.example", str(path))


def test_bad_helper_name_rejected(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "../../bin/sh"}))
    with pytest.raises(InvalidArgument):
        credentials.lookup("a.example", str(path))


def test_human_size():
    assert human_size(532) == "532B"
    assert human_size(1210) == "1.21kB"
    assert human_size(2_200_000) == "2.2MB"


def test_plain_progress_lines():
    stream = io.StringIO()
    progress = Progress(stream)
    digest = "sha256:" + "ab" * 32
    progress.status(digest, "Pulling fs layer")
    progress.bytes(digest, "Downloading", 10, 100)
    progress.status(digest, "Pull complete")
    progress.line("Digest: x")
    assert stream.getvalue() == ("abababababab: Pulling fs layer\n"
                                 "abababababab: Pull complete\nDigest: x\n")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_progress_redraws_in_place():
    stream = _Terminal()
    progress = Progress(stream)
    first, second = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    progress.status(first, "Pulling fs layer")
    progress.status(second, "Pulling fs layer")
    progress.bytes(first, "Downloading", 50, 100)
    text = stream.getvalue()
    assert "\x1b[2A" in text and "111111111111: Downloading [=" in text and "50B/100B" in text
