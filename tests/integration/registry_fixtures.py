"""Real registries on loopback for the registry tests.

Starts Debian's `docker-registry` (distribution 2.8) three ways -- anonymous,
htpasswd basic auth, and token auth against a small JWT issuer written here --
plus a counting/fault-injecting reverse proxy, and builds a minimal busybox
OCI image by hand. Every process started here is stopped and every directory
removed when the fixture ends.
"""

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"
TOKEN_SERVICE = "vessel-test-registry"
TOKEN_ISSUER = "vessel-test-issuer"
USERNAME = "tester"
PASSWORD = "s3cret-Passw0rd"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(port, proc, log_path, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path) as log:
                raise RuntimeError(f"docker-registry exited: {log.read()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.getheader("Docker-Distribution-Api-Version") and proc.poll() is None:
                return
            raise RuntimeError(f"port {port} is answered by something else")
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("docker-registry did not start")


class Registry:
    """A running docker-registry; `host` is "127.0.0.1:<port>"."""

    def __init__(self, workdir, auth=None, attempts=3):
        self.workdir = workdir
        for attempt in range(attempts):
            try:
                self._start(auth)
                return
            except RuntimeError:
                # the free port may have been taken meanwhile: try another one
                self._terminate()
                if attempt + 1 == attempts:
                    shutil.rmtree(self.workdir, ignore_errors=True)
                    raise

    def _start(self, auth):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.workdir, "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "vessel-test-secret"},
        }
        if auth:
            config["auth"] = auth
        config_path = os.path.join(self.workdir, "config.yml")
        with open(config_path, "w") as out:  # JSON is valid YAML
            json.dump(config, out)
        self.log_path = os.path.join(self.workdir, "registry.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", config_path],
                                         stdout=log, stderr=subprocess.STDOUT)
        _wait_http(self.port, self.proc, self.log_path)

    def _terminate(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _bcrypt(password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))  # cheap: tests only


@pytest.fixture
def registry(tmp_path_factory):
    """An anonymous registry."""
    reg = Registry(str(tmp_path_factory.mktemp("registry")))
    yield reg
    reg.stop()


@pytest.fixture
def basic_registry(tmp_path_factory):
    """A registry behind htpasswd basic auth (USERNAME / PASSWORD)."""
    workdir = str(tmp_path_factory.mktemp("basic-registry"))
    htpasswd = os.path.join(workdir, "htpasswd")
    with open(htpasswd, "w") as out:
        out.write(f"{USERNAME}:{_bcrypt(PASSWORD)}\n")
    reg = Registry(workdir, auth={"htpasswd": {"realm": "basic-realm", "path": htpasswd}})
    yield reg
    reg.stop()


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _libtrust_key_id(der_public_key):
    """The key id distribution derives from a trusted certificate's public key."""
    encoded = base64.b32encode(hashlib.sha256(der_public_key).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


class TokenIssuer:
    """A Docker token server: GET /token?service=&scope= answers a JWT signed with RS256.

    Authenticated users (basic auth, or POST with a refresh token listed in
    `refresh_tokens`) get the actions they ask for; anonymous callers get no
    access at all. Every grant is recorded in `requests`.
    """

    def __init__(self, workdir, users):
        self.users = users
        self.refresh_tokens = {}
        self.denied = set()  # repositories nobody gets access to
        self.requests = []
        self.key_path = os.path.join(workdir, "token.key")
        self.cert_path = os.path.join(workdir, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=vessel-test-token", "-keyout", self.key_path,
                        "-out", self.cert_path], check=True, capture_output=True)
        der = subprocess.run(["openssl", "pkey", "-in", self.key_path, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.key_id = _libtrust_key_id(der)
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                issuer._handle(self)

            def do_POST(self):
                issuer._handle_oauth(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _sign(self, claims):
        header = {"alg": "RS256", "typ": "JWT", "kid": self.key_id}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode())).encode()
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key_path],
                                   input=signing_input, check=True, capture_output=True).stdout
        return signing_input.decode() + "." + _b64url(signature)

    def _handle(self, request):
        url = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(url.query)
        user = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(name) != password:
                self._reply(request, 401, {"details": "incorrect username or password"})
                return
            user = name
        self._grant(request, user, query.get("scope", []), "GET")

    def _handle_oauth(self, request):
        """OAuth2 refresh-token grant (what Docker does with an identity token)."""
        length = int(request.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(request.rfile.read(length).decode())
        user = self.refresh_tokens.get((form.get("refresh_token") or [""])[0])
        if form.get("grant_type") != ["refresh_token"] or user is None:
            self._reply(request, 401, {"details": "invalid refresh token"})
            return
        self._grant(request, user, " ".join(form.get("scope", [])).split(), "POST")

    def _grant(self, request, user, scopes, method):
        self.requests.append({"user": user, "scopes": scopes, "method": method})
        access = []
        if user is not None:
            for scope in scopes:
                kind, name_actions = scope.split(":", 1)
                name, _, actions = name_actions.rpartition(":")
                if name in self.denied:
                    continue
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": TOKEN_ISSUER, "sub": user or "", "aud": TOKEN_SERVICE, "iat": now,
                  "nbf": now - 10, "exp": now + 300, "jti": os.urandom(8).hex(), "access": access}
        token = self._sign(claims)
        self._reply(request, 200, {"token": token, "access_token": token, "expires_in": 300})

    @staticmethod
    def _reply(request, status, body):
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def token_registry(tmp_path_factory):
    """A registry using token auth; yields (registry, issuer)."""
    workdir = str(tmp_path_factory.mktemp("token-registry"))
    issuer = TokenIssuer(workdir, {USERNAME: PASSWORD})
    try:
        reg = Registry(workdir, auth={"token": {
            "realm": issuer.realm, "service": TOKEN_SERVICE, "issuer": TOKEN_ISSUER,
            "rootcertbundle": issuer.cert_path}})
    except Exception:
        issuer.stop()
        raise
    yield reg, issuer
    reg.stop()
    issuer.stop()


class FaultProxy:
    """A loopback reverse proxy in front of a registry that records and can break requests.

    `fault` is None or a callable (method, path, headers) -> action, one of
    None (forward), "corrupt" (flip a byte of the body), "cut" (send half the
    body, then close), "drop" (close without answering), "ignore-range"
    (forward without the Range header), or an int status code to answer
    instead of forwarding.
    """

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.requests = []
        self.fault = None
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, method, path_part):
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and path_part in p)

    def _handle(self, request):
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "connection"}
        with self.lock:
            self.requests.append((request.command, request.path, dict(headers)))
        action = self.fault(request.command, request.path, headers) if self.fault else None
        if action == "ignore-range":
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
            action = None
        if action == "drop":
            request.close_connection = True
            return
        if isinstance(action, int):
            request.send_response(action)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        conn.request(request.command, request.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if action == "corrupt" and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        request.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length", "date",
                                    "server"):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command == "HEAD":
            return
        if action == "cut":
            request.wfile.write(data[:len(data) // 2])
            request.wfile.flush()
            request.close_connection = True
            request.connection.shutdown(socket.SHUT_RDWR)
            return
        request.wfile.write(data)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fault_proxy(registry):
    proxy = FaultProxy(registry.port)
    yield proxy
    proxy.stop()


# -- a minimal busybox image, built by hand --------------------------------

def _tar_gz(members):
    """members: [(name, bytes | None for dir | str for symlink target, mode)] -> gzip bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = mode
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type = tarfile.SYMTYPE
                info.linkname = content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0), raw.getvalue()


def _sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def busybox_image(note="hello"):
    """Build a two-layer busybox OCI image; returns dict of digest -> bytes and the manifest digest.

    `note` goes into the second layer so each test can make a distinct image.
    """
    with open("/usr/bin/busybox", "rb") as src:
        busybox = src.read()
    layer1, diff1 = _tar_gz([("bin", None, 0o755), ("bin/busybox", busybox, 0o755),
                             ("bin/sh", "busybox", 0o777)])
    layer2, diff2 = _tar_gz([("etc", None, 0o755), ("etc/note", note.encode(), 0o644)])
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(diff1), _sha256(diff2)]},
        "history": [{"created_by": "busybox"}, {"created_by": "note"}],
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha256(layer), "size": len(layer)} for layer in (layer1, layer2)],
    }, sort_keys=True).encode()
    blobs = {_sha256(b): b for b in (layer1, layer2, config, manifest)}
    return {"blobs": blobs, "manifest": _sha256(manifest), "config": _sha256(config),
            "layers": [_sha256(layer1), _sha256(layer2)]}


def write_oci_layout(directory, image, tag):
    """Write `image` as an OCI image layout directory with `tag` as its ref name."""
    os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)
    for digest, data in image["blobs"].items():
        with open(os.path.join(directory, "blobs", "sha256", digest.split(":")[1]), "wb") as out:
            out.write(data)
    with open(os.path.join(directory, "oci-layout"), "w") as out:
        json.dump({"imageLayoutVersion": "1.0.0"}, out)
    manifest = image["blobs"][image["manifest"]]
    with open(os.path.join(directory, "index.json"), "w") as out:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image["manifest"],
            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}, out)
