"""Image pull from a local registry: `vessel pull` vs `podman pull`, with download-only references.

A ~100 MB (gzip) two-layer image is built from this machine's /usr/lib and
/usr/share (layer 1: files copied until the compressed layer reaches --size-mb;
layer 2: a few small files), pushed with skopeo to Debian's docker-registry
started on 127.0.0.1 in a temp dir. Then, interleaved:

  vessel   `vessel --root R pull` into a fresh root: download, verify, unpack
           both layers into snapshots, register
  podman   `podman --root R --runroot RR pull --tls-verify=false` into fresh
           storage: the same work
  skopeo   `skopeo copy docker://... oci:DIR`: download and verify only
  gunzip   `gzip -dc` of both layer blobs to /dev/null: the decompression floor

Everything (registry process, temp dirs, podman storage via `podman system
reset`) is removed at the end, also on Ctrl-C or SIGTERM.

    /opt/vessel/venv/bin/python bench/image_pull.py --runs 5 [--size-mb 100] [--json out.json]
"""

import argparse
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

import harness

REGISTRY_BIN = "/usr/bin/docker-registry"
REPOSITORY = "bench/big"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="samples per contender (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--size-mb", type=int, default=100, help="compressed size of layer 1 (default 100)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.size_mb < 1:
        parser.error("--runs and --size-mb must be >= 1, --warmup >= 0")
    return args


# -- the image -------------------------------------------------------------------

class _Counting:
    """A write-only file object that counts and hashes what goes through it."""

    def __init__(self, out):
        self.out, self.size, self.hash = out, 0, hashlib.sha256()

    def write(self, data):
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self):
        self.out.flush()

    def tell(self):
        return self.size


def _host_files():
    """(path, arcname) of regular files, dirs and symlinks under /usr/lib and /usr/share."""
    for top in ("/usr/lib", "/usr/share"):
        for directory, subdirs, files in os.walk(top):
            subdirs.sort()
            yield directory, directory.lstrip("/")
            for name in sorted(files):
                path = os.path.join(directory, name)
                yield path, path.lstrip("/")


def _write_layer(path, entries_or_limit):
    """Write a gzip-ed tar layer to `path`; returns (digest, size, diff_id)."""
    with open(path, "wb") as raw:
        blob = _Counting(raw)
        with gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=6, mtime=0) as gz:
            tar_stream = _Counting(gz)
            with tarfile.open(fileobj=tar_stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
                if isinstance(entries_or_limit, int):
                    for source, arcname in _host_files():
                        if blob.size >= entries_or_limit:
                            break
                        try:
                            info = tar.gettarinfo(source, arcname)
                        except OSError:
                            continue
                        if info is None or not (info.isreg() or info.isdir() or info.issym()):
                            continue
                        info.uname = info.gname = ""
                        if info.isreg():
                            try:
                                with open(source, "rb") as handle:
                                    tar.addfile(info, handle)
                            except OSError:
                                continue
                        else:
                            tar.addfile(info)
                else:
                    for name, data in entries_or_limit:
                        info = tarfile.TarInfo(name)
                        info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
                        tar.addfile(info, io.BytesIO(data))
    return "sha256:" + blob.hash.hexdigest(), blob.size, "sha256:" + tar_stream.hash.hexdigest()


def build_image(directory, size_mb):
    """An OCI layout in `directory` with tag "latest"; returns the layer blob paths."""
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs)
    layers = []
    for source in (size_mb * 1_000_000, [("etc/bench-note", b"layer two\n"), ("etc/bench-more", b"x" * 4096)]):
        tmp = os.path.join(directory, "layer.tmp")
        digest, size, diff_id = _write_layer(tmp, source)
        os.rename(tmp, os.path.join(blobs, digest[7:]))
        layers.append((digest, size, diff_id))

    def put(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest[7:]), "wb") as out:
            out.write(data)
        return digest, len(data)

    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id for _, _, diff_id in layers]}}).encode()
    config_digest, config_size = put(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}
                   for digest, size, _ in layers]}).encode()
    manifest_digest, manifest_size = put(manifest)
    with open(os.path.join(directory, "oci-layout"), "w") as out:
        json.dump({"imageLayoutVersion": "1.0.0"}, out)
    with open(os.path.join(directory, "index.json"), "w") as out:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
            "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, out)
    return [os.path.join(blobs, digest[7:]) for digest, _, _ in layers], [size for _, size, _ in layers]


# -- the registry ----------------------------------------------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry:
    """docker-registry serving from `workdir` on 127.0.0.1; stop() ends it."""

    def __init__(self, workdir):
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                  "storage": {"filesystem": {"rootdirectory": os.path.join(workdir, "data")}},
                  "http": {"addr": self.host, "secret": "vessel-bench-secret"}}
        config_path = os.path.join(workdir, "config.yml")
        with open(config_path, "w") as out:  # JSON is valid YAML
            json.dump(config, out)
        self.log_path = os.path.join(workdir, "registry.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", config_path], stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path) as log:
                    raise RuntimeError(f"docker-registry exited: {log.read()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/v2/")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.getheader("Docker-Distribution-Api-Version"):
                    return
                raise RuntimeError(f"port {self.port} is answered by something else")
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- contenders ------------------------------------------------------------------

class Fresh:
    """A directory made new (removed and recreated) before each sample of one contender."""

    def __init__(self, base, name, reset=None):
        self.path = os.path.join(base, name)
        self.reset = reset

    def __call__(self, iteration):
        self.clean()
        os.makedirs(self.path)

    def clean(self):
        if self.reset is not None and os.path.isdir(self.path):
            subprocess.run(self.reset, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def build_contenders(workspace, image, layer_paths):
    vessel_root = Fresh(workspace, "vessel")
    podman_root = Fresh(workspace, "podman")
    podman_dirs = ["--root", os.path.join(podman_root.path, "root"),
                   "--runroot", os.path.join(podman_root.path, "run")]
    podman_root.reset = ["podman", *podman_dirs, "system", "reset", "-f"]
    skopeo_dir = Fresh(workspace, "skopeo")
    vessel = [sys.executable, "-m", "vessel.cli.main", "--root", vessel_root.path, "pull", "-q", image]
    podman = ["podman", *podman_dirs, "pull", "-q", "--tls-verify=false", image]
    skopeo = ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{image}",
              f"oci:{os.path.join(skopeo_dir.path, 'layout')}:latest"]
    gunzip = ["sh", "-c", 'exec gzip -dc "$@" >/dev/null', "gunzip", *layer_paths]
    contenders = [harness.Contender("vessel", vessel, prepare=vessel_root, program=sys.executable),
                  harness.Contender("podman", podman, prepare=podman_root),
                  harness.Contender("skopeo", skopeo, prepare=skopeo_dir),
                  harness.Contender("gunzip", gunzip, program="gzip")]
    return contenders, [vessel_root, podman_root, skopeo_dir]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    harness.terminate_as_interrupt()
    workspace = tempfile.mkdtemp(prefix="vessel-bench-pull-")
    registry = None
    fresh_dirs = []
    try:
        layout = os.path.join(workspace, "layout")
        print(f"building a {args.size_mb} MB image from /usr/lib and /usr/share ...", file=sys.stderr)
        layer_paths, layer_sizes = build_image(layout, args.size_mb)
        os.makedirs(os.path.join(workspace, "registry"))
        registry = Registry(os.path.join(workspace, "registry"))
        image = f"{registry.host}/{REPOSITORY}:latest"
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:latest",
                        f"docker://{image}"], check=True)
        info = harness.machine_info({
            "vessel": harness.program_version([sys.executable, "-m", "vessel.cli.main", "--version"]),
            "podman": harness.program_version(["podman", "--version"]),
            "skopeo": harness.program_version(["skopeo", "--version"]),
            "gzip": harness.program_version(["gzip", "--version"])})
        contenders, fresh_dirs = build_contenders(workspace, image, layer_paths)
        rows = harness.run_interleaved(contenders, args.runs, args.warmup, timeout=600, progress=_progress)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        for fresh in fresh_dirs:
            fresh.clean()
        if registry is not None:
            registry.stop()
        shutil.rmtree(workspace, ignore_errors=True)
    harness.add_ratios(rows, "podman")
    print(harness.format_machine(info))
    print(f"pull of a two-layer image ({layer_sizes[0] / 1e6:.1f} MB + {layer_sizes[1] / 1e3:.1f} kB gzip) "
          f"from docker-registry on 127.0.0.1 into a fresh root on {_fs_type(workspace)}; "
          f"{args.runs} samples each after {args.warmup} warm-up rounds, interleaved")
    print(harness.format_table(rows, "podman"))
    if args.json:
        harness.write_json(args.json, {"benchmark": "image_pull", "machine": info, "runs": args.runs,
                                       "warmup": args.warmup, "layer_bytes": layer_sizes, "results": rows})
    return 0


def _fs_type(path):
    """The file system type holding `path` (from /proc/self/mounts), e.g. "ext4"."""
    best = ("", "unknown")
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point = fields[1]
            if (path + "/").startswith(mount_point.rstrip("/") + "/") and len(mount_point) >= len(best[0]):
                best = (mount_point, fields[2])
    return best[1]


def _progress(done, total):
    if sys.stderr.isatty():
        print(f"\rround {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
