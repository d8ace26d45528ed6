"""vessel's registry client against real docker-registry (distribution 2.8) and skopeo."""

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
from registry_fixtures import (  # noqa: F401 - fixtures
    PASSWORD, USERNAME, basic_registry, busybox_image, fault_proxy, registry, token_registry,
    write_oci_layout)

from vessel.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from vessel.image import reference
from vessel.image.registry import auth, pull, push
from vessel.image.registry.client import Client
from vessel.image.registry.hosts import Endpoint
from vessel.image.store import ImageStore

FAST = {"retries": 3, "backoff": 0.01}
VESSEL = os.path.join(os.path.dirname(sys.executable), "vessel")


def new_store(tmp_path, name):
    return ImageStore(str(tmp_path / name))


def store_with(tmp_path, name, ref, image):
    """A store holding `image` (from busybox_image) tagged `ref`."""
    store = new_store(tmp_path, name)
    for digest, data in image["blobs"].items():
        store.content.put(data, digest)
    store.register(reference.parse(ref), image["manifest"])
    return store


def skopeo(*args):
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def ingest_keys(store):
    return os.listdir(os.path.join(store.content.ingest))


def test_push_then_pull_round_trip(registry, tmp_path):
    image = busybox_image("round trip")
    ref = f"{registry.host}/vessel/roundtrip:v1"
    source = store_with(tmp_path, "src", ref, image)
    out = io.StringIO()
    assert push(source, ref, progress=out, chunk_size=256 * 1024) == image["manifest"]
    lines = out.getvalue().splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/vessel/roundtrip]"
    assert f"{image['layers'][0][7:19]}: Pushed" in lines
    assert lines[-1] == f"v1: digest: {image['manifest']} size: {len(image['blobs'][image['manifest']])}"

    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert inspected["Digest"] == image["manifest"]
    assert inspected["Layers"] == image["layers"]
    assert inspected["Architecture"] == "amd64"

    target = new_store(tmp_path, "dst")
    out = io.StringIO()
    pulled = pull(target, ref, progress=out)
    assert pulled.manifest_digest == image["manifest"]
    assert set(image["blobs"]) <= set(target.content.digests())
    lines = out.getvalue().splitlines()
    assert lines[0] == "v1: Pulling from vessel/roundtrip"
    assert f"{image['layers'][1][7:19]}: Pull complete" in lines
    assert lines[-3:] == [f"Digest: {image['manifest']}",
                          f"Status: Downloaded newer image for {registry.host}/vessel/roundtrip:v1",
                          f"{registry.host}/vessel/roundtrip:v1"]
    assert target.get(ref).manifest_digest == image["manifest"]
    assert ingest_keys(target) == []

    out = io.StringIO()
    pull(target, ref, progress=out)
    assert f"Status: Image is up to date for {registry.host}/vessel/roundtrip:v1" in out.getvalue()
    assert "Already exists" in out.getvalue()


def test_pull_by_digest_and_default_tag(registry, tmp_path):
    image = busybox_image("by digest")
    push(store_with(tmp_path, "src", f"{registry.host}/vessel/bydigest", image), f"{registry.host}/vessel/bydigest")
    target = new_store(tmp_path, "dst")
    out = io.StringIO()
    pull(target, f"{registry.host}/vessel/bydigest", progress=out)
    assert out.getvalue().startswith("Using default tag: latest\nlatest: Pulling from vessel/bydigest\n")
    pulled = pull(new_store(tmp_path, "dst2"), f"{registry.host}/vessel/bydigest@{image['manifest']}")
    assert pulled.manifest_digest == image["manifest"]


def test_pull_image_copied_by_skopeo(registry, tmp_path):
    image = busybox_image("from skopeo")
    layout = tmp_path / "layout"
    write_oci_layout(str(layout), image, "t1")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:t1", f"docker://{registry.host}/sk/img:t1")
    target = new_store(tmp_path, "dst")
    pulled = pull(target, f"{registry.host}/sk/img:t1")
    assert pulled.manifest_digest == image["manifest"]
    assert set(image["layers"]) <= set(target.content.digests())


def test_pull_selects_platform_from_index(registry, tmp_path):
    image = busybox_image("multi arch")
    arm_config = json.loads(image["blobs"][image["config"]])
    arm_config["architecture"] = "arm64"
    arm_config = json.dumps(arm_config).encode()
    arm_manifest = json.loads(image["blobs"][image["manifest"]])
    arm_manifest["config"].update(digest="sha256:" + hashlib.sha256(arm_config).hexdigest(),
                                  size=len(arm_config))
    arm_manifest = json.dumps(arm_manifest).encode()
    digest_of = {data: "sha256:" + hashlib.sha256(data).hexdigest() for data in (arm_config, arm_manifest)}
    amd_manifest = image["blobs"][image["manifest"]]
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": digest_of[arm_manifest], "size": len(arm_manifest),
                             "platform": {"os": "linux", "architecture": "arm64"}},
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": image["manifest"], "size": len(amd_manifest),
                             "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    layout = tmp_path / "layout"
    write_oci_layout(str(layout), image, "multi")
    for data in (arm_config, arm_manifest, index):
        (layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest,
        "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi",
           f"docker://{registry.host}/sk/multi:latest")

    target = new_store(tmp_path, "dst")
    out = io.StringIO()
    pulled = pull(target, f"{registry.host}/sk/multi:latest", platform="linux/amd64", progress=out)
    assert pulled.manifest_digest == image["manifest"]
    assert f"Digest: {index_digest}" in out.getvalue()
    assert not target.content.has(digest_of[arm_config])
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        pull(new_store(tmp_path, "dst2"), f"{registry.host}/sk/multi:latest", platform="linux/s390x")


def test_cross_repository_mount(fault_proxy, tmp_path):
    image = busybox_image("mount")
    first = f"{fault_proxy.host}/team/base:v1"
    store = store_with(tmp_path, "src", first, image)
    push(store, first)
    patches_before = fault_proxy.count("PATCH", "/blobs/uploads/")
    second = f"{fault_proxy.host}/team/app:v1"
    store.tag(first, second)
    out = io.StringIO()
    push(store, second, progress=out)
    assert out.getvalue().count("Mounted from team/base") == 2
    assert fault_proxy.count("PATCH", "/blobs/uploads/") == patches_before
    assert fault_proxy.count("POST", "mount=") == 3  # two layers and the config
    pulled = pull(new_store(tmp_path, "dst"), second)
    assert pulled.manifest_digest == image["manifest"]


def test_pull_missing_tag_and_repository(registry, tmp_path):
    push(store_with(tmp_path, "src", f"{registry.host}/vessel/there:v1", busybox_image()),
         f"{registry.host}/vessel/there:v1")
    with pytest.raises(NotFound, match="manifest for .*there:nope not found: manifest unknown"):
        pull(new_store(tmp_path, "dst"), f"{registry.host}/vessel/there:nope")
    with pytest.raises(NotFound):
        pull(new_store(tmp_path, "dst"), f"{registry.host}/vessel/absent:v1")


def test_push_unknown_image_is_not_found(registry, tmp_path):
    with pytest.raises(NotFound):
        push(new_store(tmp_path, "src"), f"{registry.host}/vessel/none:v1")


# -- authentication ----------------------------------------------------------

def test_basic_auth_login_push_pull_logout(basic_registry, tmp_path):
    config = str(tmp_path / "docker" / "config.json")
    image = busybox_image("basic auth")
    ref = f"{basic_registry.host}/private/app:v1"
    store = store_with(tmp_path, "src", ref, image)
    with pytest.raises(PermissionDenied, match="unauthorized"):
        push(store, ref, config_path=config)

    with pytest.raises(PermissionDenied, match="incorrect username or password") as failure:
        auth.login(basic_registry.host, USERNAME, "wrong-password", config_path=config)
    assert "wrong-password" not in str(failure.value)
    assert not os.path.exists(config)

    assert auth.login(basic_registry.host, USERNAME, PASSWORD, config_path=config) == "Login Succeeded"
    saved = json.load(open(config))
    assert saved["auths"][basic_registry.host]["auth"]
    push(store, ref, config_path=config)
    pulled = pull(new_store(tmp_path, "dst"), ref, config_path=config)
    assert pulled.manifest_digest == image["manifest"]

    assert auth.logout(basic_registry.host, config_path=config) is True
    assert auth.logout(basic_registry.host, config_path=config) is False
    with pytest.raises(PermissionDenied):
        pull(new_store(tmp_path, "dst2"), ref, config_path=config)


def test_token_auth_login_push_pull(token_registry, tmp_path):
    reg, issuer = token_registry
    config = str(tmp_path / "config.json")
    image = busybox_image("token auth")
    ref = f"{reg.host}/secure/app:v1"
    store = store_with(tmp_path, "src", ref, image)
    with pytest.raises(PermissionDenied):
        push(store, ref, config_path=config)
    with pytest.raises(PermissionDenied, match="incorrect username or password"):
        auth.login(reg.host, USERNAME, "nope", config_path=config)
    auth.login(reg.host, USERNAME, PASSWORD, config_path=config)

    issuer.requests.clear()
    push(store, ref, config_path=config)
    assert {tuple(r["scopes"]) for r in issuer.requests} == {("repository:secure/app:pull,push",)}
    assert len(issuer.requests) == 1  # one token, cached across every request of the push
    assert all(r["user"] == USERNAME for r in issuer.requests)

    issuer.requests.clear()
    target = new_store(tmp_path, "dst")
    assert pull(target, ref, config_path=config).manifest_digest == image["manifest"]
    assert [r["scopes"] for r in issuer.requests] == [["repository:secure/app:pull"]]

    with pytest.raises(PermissionDenied):
        pull(new_store(tmp_path, "anon"), ref, config_path=str(tmp_path / "empty.json"))


def test_token_auth_mount_asks_for_both_scopes(token_registry, tmp_path):
    reg, issuer = token_registry
    config = str(tmp_path / "config.json")
    auth.login(reg.host, USERNAME, PASSWORD, config_path=config)
    image = busybox_image("token mount")
    store = store_with(tmp_path, "src", f"{reg.host}/team/base:v1", image)
    push(store, f"{reg.host}/team/base:v1", config_path=config)
    store.tag(f"{reg.host}/team/base:v1", f"{reg.host}/team/app:v1")
    out = io.StringIO()
    push(store, f"{reg.host}/team/app:v1", progress=out, config_path=config)
    assert "Mounted from team/base" in out.getvalue()
    assert ["repository:team/app:pull,push", "repository:team/base:pull"] in [
        sorted(r["scopes"]) for r in issuer.requests]


def test_mount_without_access_to_source_falls_back_to_upload(token_registry, tmp_path):
    reg, issuer = token_registry
    config = str(tmp_path / "config.json")
    auth.login(reg.host, USERNAME, PASSWORD, config_path=config)
    image = busybox_image("no mount")
    store = store_with(tmp_path, "src", f"{reg.host}/hidden/base:v1", image)
    push(store, f"{reg.host}/hidden/base:v1", config_path=config)
    issuer.denied.add("hidden/base")
    store.tag(f"{reg.host}/hidden/base:v1", f"{reg.host}/open/app:v1")
    out = io.StringIO()
    push(store, f"{reg.host}/open/app:v1", progress=out, config_path=config)
    assert "Mounted" not in out.getvalue() and out.getvalue().count(": Pushed") == 2


def test_identity_token_uses_oauth_refresh_grant(token_registry, tmp_path):
    reg, issuer = token_registry
    issuer.refresh_tokens["vessel-refresh-token"] = USERNAME
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {reg.host: {"identitytoken": "vessel-refresh-token"}}}))
    ref = f"{reg.host}/oauth/app:v1"
    image = busybox_image("oauth")
    push(store_with(tmp_path, "src", ref, image), ref, config_path=str(config))
    assert pull(new_store(tmp_path, "dst"), ref, config_path=str(config)).manifest_digest == image["manifest"]
    assert {(r["method"], r["user"]) for r in issuer.requests} == {("POST", USERNAME)}


def test_login_through_credential_helper(basic_registry, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    secrets = tmp_path / "secrets.json"
    helper = bindir / "docker-credential-vesselfile"
    helper.write_text(f"""#!/usr/bin/python3
import json, sys
path = {str(secrets)!r}
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {{}}
action, given = sys.argv[1], sys.stdin.read()
if action == "store":
    entry = json.loads(given)
    data[entry["ServerURL"]] = entry
elif given not in data:
    print("credentials not found in native keychain")
    sys.exit(1)
elif action == "get":
    print(json.dumps(data[given]))
else:
    del data[given]
json.dump(data, open(path, "w"))
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "vesselfile"}))

    auth.login(basic_registry.host, USERNAME, PASSWORD, config_path=str(config))
    assert PASSWORD not in config.read_text()
    assert json.load(open(secrets))[basic_registry.host]["Secret"] == PASSWORD
    ref = f"{basic_registry.host}/helped/app:v1"
    image = busybox_image("helper")
    push(store_with(tmp_path, "src", ref, image), ref, config_path=str(config))
    assert pull(new_store(tmp_path, "dst"), ref, config_path=str(config)).manifest_digest == image["manifest"]
    assert auth.logout(basic_registry.host, config_path=str(config)) is True
    assert json.load(open(secrets)) == {}


# -- mirrors -----------------------------------------------------------------

def test_mirror_serves_docker_hub_names(registry, tmp_path):
    image = busybox_image("mirrored")
    push(store_with(tmp_path, "src", f"{registry.host}/library/mirrored:v1", image),
         f"{registry.host}/library/mirrored:v1")
    dead = f"http://127.0.0.1:{_closed_port()}"
    target = new_store(tmp_path, "dst")
    (tmp_path / "dst" / "registries.json").write_text(json.dumps(
        {"registries": {"docker.io": {"mirrors": [dead, f"http://{registry.host}"]}}}))
    pulled = pull(target, "mirrored:v1", **FAST)
    assert pulled.manifest_digest == image["manifest"]
    assert target.get("mirrored:v1").manifest_digest == image["manifest"]


def _closed_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- faults ------------------------------------------------------------------

def _blob_path(digest):
    return f"/blobs/{digest}"


def test_corrupt_blob_is_rejected_and_nothing_committed(fault_proxy, tmp_path):
    image = busybox_image("corrupt")
    ref = f"{fault_proxy.host}/faults/corrupt:v1"
    push(store_with(tmp_path, "src", ref, image), ref)
    bad = image["layers"][0]
    fault_proxy.fault = lambda method, path, headers: (
        "corrupt" if method == "GET" and path.endswith(_blob_path(bad)) else None)
    target = new_store(tmp_path, "dst")
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        pull(target, ref, **FAST)
    assert not target.content.has(bad)
    assert hashlib.sha256(bad.encode()).hexdigest() not in ingest_keys(target)  # bad bytes discarded
    with pytest.raises(NotFound):
        target.get(ref)


def test_cut_connection_resumes_on_next_pull(fault_proxy, tmp_path):
    image = busybox_image("resume")
    ref = f"{fault_proxy.host}/faults/resume:v1"
    push(store_with(tmp_path, "src", ref, image), ref)
    big, small = image["layers"]
    seen = []

    def cut_then_refuse(method, path, headers):
        if method == "GET" and path.endswith(_blob_path(big)):
            seen.append(headers.get("Range"))
            return "cut" if len(seen) == 1 else 503
        return None

    fault_proxy.fault = cut_then_refuse
    target = new_store(tmp_path, "dst")
    with pytest.raises(Unavailable, match="gave up after 3 attempts"):
        pull(target, ref, **FAST)
    assert target.content.has(small) and target.content.has(image["config"])
    assert not target.content.has(big)
    assert len(ingest_keys(target)) == 1  # the half-downloaded layer, kept
    with pytest.raises(NotFound):
        target.get(ref)

    fault_proxy.fault = None
    gets_small = fault_proxy.count("GET", _blob_path(small))
    gets_config = fault_proxy.count("GET", _blob_path(image["config"]))
    requests_before = len(fault_proxy.requests)
    assert pull(target, ref).manifest_digest == image["manifest"]
    assert fault_proxy.count("GET", _blob_path(small)) == gets_small
    assert fault_proxy.count("GET", _blob_path(image["config"])) == gets_config
    resumed = [h for m, p, h in fault_proxy.requests[requests_before:]
               if m == "GET" and p.endswith(_blob_path(big))]
    assert len(resumed) == 1
    offset = int(resumed[0]["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset < len(image["blobs"][big])
    assert ingest_keys(target) == []


def test_cut_connection_resumes_within_one_pull(fault_proxy, tmp_path):
    image = busybox_image("resume inline")
    ref = f"{fault_proxy.host}/faults/inline:v1"
    push(store_with(tmp_path, "src", ref, image), ref)
    big = image["layers"][0]
    ranges = []

    def cut_once(method, path, headers):
        if method == "GET" and path.endswith(_blob_path(big)):
            ranges.append(headers.get("Range"))
            return "cut" if len(ranges) == 1 else None
        return None

    fault_proxy.fault = cut_once
    assert pull(new_store(tmp_path, "dst"), ref, **FAST).manifest_digest == image["manifest"]
    assert ranges[0] is None and len(ranges) == 2
    offset = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= len(image["blobs"][big]) // 2


def test_resume_when_server_ignores_range(fault_proxy, tmp_path):
    image = busybox_image("no range")
    ref = f"{fault_proxy.host}/faults/norange:v1"
    push(store_with(tmp_path, "src", ref, image), ref)
    big = image["layers"][0]
    calls = []

    def cut_then_ignore_range(method, path, headers):
        if method == "GET" and path.endswith(_blob_path(big)):
            calls.append(headers.get("Range"))
            return "cut" if len(calls) == 1 else "ignore-range"
        return None

    fault_proxy.fault = cut_then_ignore_range
    target = new_store(tmp_path, "dst")
    assert pull(target, ref, **FAST).manifest_digest == image["manifest"]
    assert len(calls) == 2 and calls[1].startswith("bytes=")  # asked; got the whole blob (200)
    assert target.content.has(big)


def test_server_errors_are_retried_then_reported(fault_proxy, tmp_path):
    image = busybox_image("flaky")
    ref = f"{fault_proxy.host}/faults/flaky:v1"
    push(store_with(tmp_path, "src", ref, image), ref)
    failures = []

    def flaky(method, path, headers):
        if "/manifests/" in path and len(failures) < 2:
            failures.append(path)
            return 503
        return None

    fault_proxy.fault = flaky
    assert pull(new_store(tmp_path, "dst"), ref, **FAST).manifest_digest == image["manifest"]
    assert len(failures) == 2

    fault_proxy.fault = lambda method, path, headers: 500 if "/manifests/" in path else None
    with pytest.raises(Unavailable) as failure:
        pull(new_store(tmp_path, "dst2"), ref, **FAST)
    message = str(failure.value)
    assert "500" in message and "gave up after 3 attempts" in message and "/manifests/v1" in message


def test_insecure_registry_falls_back_to_plain_http(registry, tmp_path):
    image = busybox_image("insecure")
    ref = f"{registry.host}/vessel/insecure:v1"
    push(store_with(tmp_path, "src", ref, image), ref)
    endpoint = Endpoint(f"https://{registry.host}", verify_tls=False, http_fallback=True)
    with Client(endpoint, retries=1) as client:
        _, media_type, digest = client.get_manifest("vessel/insecure", "v1", "manifest")
        assert client.base == f"http://{registry.host}"
    assert (digest, media_type) == (image["manifest"], "application/vnd.oci.image.manifest.v1+json")
    with Client(Endpoint(f"https://{registry.host}"), retries=1) as client:
        with pytest.raises(Unavailable, match="gave up after 1 attempt"):
            client.get_manifest("vessel/insecure", "v1", "manifest")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_pull_draws_bars_on_a_terminal(registry, tmp_path):
    image = busybox_image("terminal")
    ref = f"{registry.host}/vessel/tty:v1"
    push(store_with(tmp_path, "src", ref, image), ref)
    screen = _Terminal()
    pull(new_store(tmp_path, "dst"), ref, progress=screen)
    text = screen.getvalue()
    size = len(image["blobs"][image["layers"][0]])
    assert f"{image['layers'][0][7:19]}: Downloading [" in text and "\x1b[2K" in text
    assert f"/{size / 1e6:.3g}MB" in text
    assert text.endswith(f"Digest: {image['manifest']}\nStatus: Downloaded newer image for {ref}\n{ref}\n")


def test_cli_login_push_pull_logout(basic_registry, tmp_path):
    """The `vessel` commands (defined in cli/images.py) drive this package end to end."""
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker"))
    image = busybox_image("cli")
    ref = f"{basic_registry.host}/cli/app:v1"
    store_with(tmp_path, "src", ref, image).close()

    def vessel(*args, root="src", stdin=None):
        return subprocess.run([VESSEL, "--root", str(tmp_path / root), *args], input=stdin, env=env,
                              capture_output=True, text=True, timeout=120)

    denied = vessel("login", "-u", USERNAME, "--password-stdin", basic_registry.host, stdin="bad\n")
    assert denied.returncode != 0 and "incorrect username or password" in denied.stderr
    assert "bad" not in denied.stderr.replace(basic_registry.host, "")
    done = vessel("login", "-u", USERNAME, "--password-stdin", basic_registry.host, stdin=PASSWORD + "\n")
    assert done.returncode == 0 and "Login Succeeded" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr

    pushed = vessel("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    assert f"v1: digest: {image['manifest']}" in pushed.stdout
    pulled = vessel("pull", ref, root="dst")
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {ref}" in pulled.stdout

    assert "Removing login credentials" in vessel("logout", basic_registry.host).stdout
    again = vessel("pull", ref, root="dst2")
    assert again.returncode != 0 and "unauthorized" in again.stderr
