"""Pulls that go wrong half-way, against a real docker-registry on loopback.

* `vessel pull` killed with SIGKILL in the middle of a big layer (served slowly
  by a throttling proxy written here): only complete blobs are in the content
  store, no image is listed, and the next pull resumes the big layer with a
  Range request and fetches no finished blob again.
* A disk that fills up during the pull (the state root on a 2 MiB tmpfs): one
  line "Error: ... no space left on device", exit 125, no partial blob, ingest
  or snapshot left; once there is room the same pull works.
"""

import gzip
import hashlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry_fixtures import registry, write_oci_layout  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"), reason="needs docker-registry"),
    pytest.mark.skipif(not os.path.exists("/usr/bin/skopeo"), reason="needs skopeo"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root"),
]

MiB = 1 << 20


def _sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(members):
    """members: [(name, bytes)] -> (gzip blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0), _sha256(raw.getvalue())


def make_image(big_bytes, note, zeros=False, big_first=False):
    """A two-layer image: a small layer and one with a file of `big_bytes` (random, or
    zeros that compress to almost nothing), the big one second unless `big_first`."""
    small, small_diff = _layer([("etc/note", note.encode())])
    big, big_diff = _layer([("data/big.bin", bytes(big_bytes) if zeros else os.urandom(big_bytes))])
    order = [(big, big_diff), (small, small_diff)] if big_first else [(small, small_diff), (big, big_diff)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in order]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _sha256(layer),
                    "size": len(layer)} for layer, _ in order]}).encode()
    return {"blobs": {_sha256(b): b for b in (small, big, config, manifest)}, "manifest": _sha256(manifest),
            "config": _sha256(config), "small": _sha256(small), "big": _sha256(big), "big_size": len(big),
            # a whole snapshot of the small layer may be left when it is the bottom one
            # (whose chain id is its diff_id): it is unpacked as it arrives
            "may_stay": set() if big_first else {small_diff.removeprefix("sha256:")}}


def push(tmp_path, image, registry_host, name):  # noqa: F811
    layout = str(tmp_path / f"layout-{name.replace('/', '-').replace(':', '-')}")
    write_oci_layout(layout, image, "latest")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:latest",
                    f"docker://{registry_host}/{name}"], check=True, capture_output=True)


class ThrottlingProxy:
    """A loopback proxy that streams blobs at `rate` bytes/s (None: full speed) and
    records every request (method, path, Range) and the body bytes sent per path."""

    def __init__(self, upstream_port, rate=None):
        self.upstream_port = upstream_port
        self.rate = rate
        self.requests = []  # (method, path, Range header)
        self.sent = []  # [path, body bytes sent] per GET, in order
        self.finished = set()  # paths whose whole body was sent
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy._forward(self)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def blob_requests(self, digest):
        with self.lock:
            return [(method, rng) for method, path, rng in self.requests
                    if method == "GET" and path.endswith(f"/blobs/{digest}")]

    def blob_bytes(self, digest):
        """Body bytes sent for each GET of blob `digest`, in order."""
        with self.lock:
            return [n for path, n in self.sent if path.endswith(f"/blobs/{digest}")]

    def _forward(self, request):
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("connection", "host")}
        with self.lock:
            self.requests.append((request.command, request.path, headers.get("Range")))
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            upstream.request(request.command, request.path, headers=headers)
            response = upstream.getresponse()
            request.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "date", "server"):
                    request.send_header(name, value)
            request.end_headers()
            if request.command == "HEAD":
                return
            with self.lock:
                counter = [request.path, 0]
                self.sent.append(counter)
            while True:
                chunk = response.read(64 * 1024)
                if not chunk:
                    break
                request.wfile.write(chunk)
                request.wfile.flush()
                with self.lock:
                    counter[1] += len(chunk)
                if self.rate:
                    time.sleep(len(chunk) / self.rate)
            with self.lock:
                self.finished.add(request.path)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            request.close_connection = True
        finally:
            upstream.close()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def vessel(root, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "vessel.cli.main", "--root", str(root), *args],
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def complete_blobs(root):
    """Digests in the content store, each checked to hash to its name."""
    directory = os.path.join(root, "image", "blobs", "sha256")
    found = set()
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == name, f"half-written blob {name}"
        found.add("sha256:" + name)
    return found


def committed_snapshots(root):
    directory = os.path.join(root, "image", "snapshots", "committed")
    return [name for name in os.listdir(directory) if os.path.isdir(os.path.join(directory, name))]


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def slow_proxy(registry):  # noqa: F811
    proxy = ThrottlingProxy(registry.port, rate=1 * MiB)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("big_first", [False, True], ids=["big-on-top", "big-streamed-at-bottom"])
def test_kill_during_big_layer_then_resume(tmp_path, registry, slow_proxy, big_first):  # noqa: F811
    """big-streamed-at-bottom: the big layer is being unpacked as it downloads when killed."""
    image = make_image(6 * MiB, "kill -9", big_first=big_first)
    push(tmp_path, image, registry.host, "faults/killed:v1")
    root = tmp_path / "state"
    name = f"{slow_proxy.host}/faults/killed:v1"
    proc = subprocess.Popen([sys.executable, "-m", "vessel.cli.main", "--root", str(root), "pull", name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: sum(slow_proxy.blob_bytes(image["big"])) >= 2 * MiB or proc.poll() is not None,
                 what="2 MiB of the big layer")
        for digest in (image["small"], image["config"]):
            path = f"/v2/faults/killed/blobs/{digest}"
            wait_for(lambda: path in slow_proxy.finished, what=f"blob {digest}")
        # let vessel write what it has received (the proxy may be a chunk ahead)
        time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()

    blobs = complete_blobs(root)
    assert image["big"] not in blobs
    assert set(committed_snapshots(root)) <= image["may_stay"]
    if big_first:  # the streamed unpack was cut off: it left only a staging dir (image prune removes it)
        assert os.listdir(root / "image" / "snapshots" / "staging")
    assert vessel(root, "images", "-q").stdout == ""

    slow_proxy.rate = None  # full speed now
    vessel(root, "pull", "-q", name)
    assert complete_blobs(root) >= {image["small"], image["big"], image["config"]}
    assert len(committed_snapshots(root)) == 2
    listed = vessel(root, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert listed == [f"{slow_proxy.host}/faults/killed:v1"]
    # finished blobs are not fetched again; the big one resumes from what was kept
    assert len(slow_proxy.blob_requests(image["small"])) == 1
    assert len(slow_proxy.blob_requests(image["config"])) == 1
    big_requests = slow_proxy.blob_requests(image["big"])
    assert len(big_requests) == 2
    resumed_from = int(big_requests[1][1].removeprefix("bytes=").rstrip("-"))
    first_sent, second_sent = slow_proxy.blob_bytes(image["big"])
    assert MiB <= resumed_from <= first_sent
    assert second_sent == image["big_size"] - resumed_from


@pytest.fixture
def tiny_tmpfs(tmp_path):
    path = tmp_path / "tiny"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "vessel-test-tiny", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("stage", ["download", "unpack"])
def test_disk_full_during_pull(tmp_path, registry, tiny_tmpfs, stage):  # noqa: F811
    """`download`: the layer blob does not fit; `unpack`: it fits, its files do not."""
    image = make_image(3 * MiB, "disk full", zeros=stage == "unpack")
    push(tmp_path, image, registry.host, f"faults/full-{stage}:v1")
    root = tiny_tmpfs / "state"
    name = f"{registry.host}/faults/full-{stage}:v1"

    result = vessel(root, "pull", name, check=False)
    assert result.returncode == 125, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "no space left on device" in lines[0]
    # nothing half-made: only whole blobs, no ingest kept, no snapshot, no image
    assert (image["big"] in complete_blobs(root)) == (stage == "unpack")
    assert os.listdir(root / "image" / "ingest") == []
    assert set(committed_snapshots(root)) <= image["may_stay"]
    assert os.listdir(root / "image" / "snapshots" / "staging") == []
    assert vessel(root, "images", "-q").stdout == ""

    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_tmpfs)], check=True)
    vessel(root, "pull", "-q", name)
    assert vessel(root, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == [name]
    assert (root / "image" / "snapshots" / "committed").exists() and len(committed_snapshots(root)) == 2
