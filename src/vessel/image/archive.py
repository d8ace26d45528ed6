"""Images in and out of tar files: `import` a root filesystem, `save` and `load`.

docker-archive (what `docker save` writes since Docker 25): manifest.json,
repositories, the config and *uncompressed* layers under blobs/sha256/, plus
index.json and oci-layout, so the same file is also an OCI image layout.
oci-archive (podman's `--format oci-archive`): an OCI layout holding the
blobs exactly as stored, so digests and the manifest survive a round trip.
"""

import datetime
import hashlib
import json
import os
import shlex
import tarfile
import tempfile
import zlib

from vessel.errors import InvalidArgument
from vessel.image import manifest as manifests
from vessel.image import reference as references
from vessel.image.reference import validate_digest
from vessel.image.unpack import decompressed, detect_compression

__all__ = ["apply_changes", "import_rootfs", "load", "save", "host_platform"]

_CHUNK = 1 << 20
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}
DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"


def host_platform():
    return "linux", _ARCHES.get(os.uname().machine, os.uname().machine)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- import ----------------------------------------------------------------------

def _json_or_shell(args):
    """Dockerfile exec form (JSON array) or shell form (["/bin/sh", "-c", args])."""
    if args.startswith("["):
        try:
            value = json.loads(args)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", args]


def _pairs(args, instruction):
    """`A=B C="d e"` pairs, or the legacy `A b c` single pair."""
    words = shlex.split(args)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = args.strip().partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{instruction}: expected KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs


def apply_changes(config, changes):
    """Apply Dockerfile-style `--change` lines to a ContainerConfig in place."""
    for change in changes:
        instruction, _, args = change.strip().partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction in ("CMD", "ENTRYPOINT"):
            value = _json_or_shell(args)
            setattr(config, instruction.lower(), value)
        elif instruction == "ENV":
            for key, value in _pairs(args, "ENV"):
                config.env = [e for e in config.env if e.partition("=")[0] != key] + [f"{key}={value}"]
        elif instruction == "LABEL":
            config.labels.update(_pairs(args, "LABEL"))
        elif instruction == "EXPOSE":
            for port in args.split():
                number, _, protocol = port.partition("/")
                if not number.isdigit() or protocol not in ("", "tcp", "udp", "sctp"):
                    raise InvalidArgument(f"EXPOSE: invalid port {port!r}")
                config.exposed_ports[f"{int(number)}/{protocol or 'tcp'}"] = {}
        elif instruction == "VOLUME":
            paths = _json_or_shell(args) if args.startswith("[") else args.split()
            if paths[:2] == ["/bin/sh", "-c"] or not paths:
                raise InvalidArgument(f"VOLUME: invalid argument {args!r}")
            for path in paths:
                config.volumes[path] = {}
        elif instruction == "WORKDIR":
            if not args:
                raise InvalidArgument("WORKDIR requires an argument")
            config.working_dir = os.path.normpath(os.path.join(config.working_dir or "/", args))
        elif instruction == "USER":
            if not args:
                raise InvalidArgument("USER requires an argument")
            config.user = args
        elif instruction == "STOPSIGNAL":
            config.stop_signal = args
        elif instruction == "ONBUILD":
            config.on_build.append(args)
        else:
            raise InvalidArgument(f"{instruction or change!r} is not a valid change command")
    return config


def _compress_into(store, source):
    """Gzip the uncompressed tar stream `source` into the content store; (blob digest, size, diff_id)."""
    diff = hashlib.sha256()
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    key = f"import-{os.getpid()}-{id(source)}"
    with store.writer(key) as writer:
        writer.restart()
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                break
            diff.update(chunk)
            writer.write(compressor.compress(chunk))
        writer.write(compressor.flush())
        size = writer.offset
        digest = writer.commit()
    return digest, size, "sha256:" + diff.hexdigest()


def create_image(store, layers, config, ref=None, record_digest=False):
    """Write config and OCI manifest for already stored `layers` [(descriptor, diff_id)], register.

    If registering fails, the blobs no image uses (layers included) are deleted.
    """
    config.diff_ids = [diff_id for _, diff_id in layers]
    config_bytes = config.to_bytes()
    written = [descriptor.digest for descriptor, _ in layers]
    try:
        config_digest = store.content.put(config_bytes)
        written.append(config_digest)
        manifest = manifests.Manifest(
            manifests.OCI_MANIFEST,
            manifests.Descriptor(manifests.OCI_CONFIG, config_digest, len(config_bytes)),
            [descriptor for descriptor, _ in layers])
        manifest_digest = store.content.put(manifest.to_bytes())
        written.append(manifest_digest)
        return store.register(ref, manifest_digest, record_digest=record_digest)
    except BaseException:
        store.discard_unused(written)
        raise


def import_rootfs(store, source, ref=None, changes=(), message="", origin="-", platform=None):
    """`vessel import`: a root filesystem tar (any compression) -> a one-layer image.

    `platform` ("os/arch[/variant]") labels the image; the host's by default.
    """
    config = apply_changes(manifests.ContainerConfig(), changes)
    wanted = manifests.parse_platform(platform or "/".join(host_platform()))
    digest, size, diff_id = _compress_into(store.content, decompressed(source))
    created = _now()
    image_config = manifests.ImageConfig(
        architecture=wanted.architecture, os=wanted.os, variant=wanted.variant, config=config, diff_ids=[],
        created=created, history=[manifests.History(created=created, comment=message or f"Imported from {origin}")])
    layer = manifests.Descriptor(manifests.OCI_LAYER_GZIP, digest, size)
    return create_image(store, [(layer, diff_id)], image_config, ref)


# -- save ------------------------------------------------------------------------

class _Writer:
    """Adds files to an output tar once each, with fixed metadata."""

    def __init__(self, tar):
        self.tar = tar
        self.written = set()

    def add_bytes(self, name, data):
        self.add_file(name, len(data), _BytesReader(data))

    def add_file(self, name, size, handle):
        if name in self.written:
            return
        self.written.add(name)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o444
        info.mtime = 0
        self.tar.addfile(info, handle)

    def add_dir(self, name):
        if name in self.written:
            return
        self.written.add(name)
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        self.tar.addfile(info)


class _BytesReader:
    def __init__(self, data):
        self._view = memoryview(data)

    def read(self, size=-1):
        size = len(self._view) if size < 0 else size
        data, self._view = self._view[:size], self._view[size:]
        return bytes(data)


def _blob_name(digest):
    algorithm, _, hexpart = validate_digest(digest).partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def _add_uncompressed_layer(out, store, layer, scratch):
    """Add a layer to the archive uncompressed (as blobs/sha256/<diff_id>); returns its size."""
    name = _blob_name(layer.diff_id)
    if layer.digest == layer.diff_id:
        size = store.content.size(layer.digest)
        with store.content.open(layer.digest) as handle:
            out.add_file(name, size, handle)
        return size
    with store.content.open(layer.digest) as handle, tempfile.TemporaryFile(dir=scratch) as spool:
        stream = decompressed(handle)
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            spool.write(chunk)
        size = spool.tell()
        spool.seek(0)
        out.add_file(name, size, spool)
    return size


def save(store, names, output, archive_format=DOCKER_ARCHIVE):
    """Write the images `names` to the binary file object `output`."""
    if archive_format not in (DOCKER_ARCHIVE, OCI_ARCHIVE):
        raise InvalidArgument(f"unknown archive format {archive_format!r} (docker-archive or oci-archive)")
    if not names:
        raise InvalidArgument("save needs at least one image")
    selected = {}
    for name in names:
        image, matched = store._resolve(name)
        tags = selected.setdefault(image.id, (image, []))[1]
        if matched is not None and "@" not in matched:
            tags.append(matched)
        elif matched is None:
            tags.extend(t for t in image.tag_refs if t not in tags)
    scratch = os.path.join(store.root, "image", "ingest")
    with tarfile.open(fileobj=output, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        out = _Writer(tar)
        out.add_dir("blobs")
        out.add_dir("blobs/sha256")
        if archive_format == DOCKER_ARCHIVE:
            _save_docker(out, store, selected.values(), scratch)
        else:
            _save_oci(out, store, selected.values())


def _index_entry(descriptor, tag, oci_style):
    annotations = {}
    if tag is not None:
        ref = references.parse(tag)
        annotations["io.containerd.image.name"] = str(ref)
        annotations["org.opencontainers.image.ref.name"] = str(ref) if oci_style else ref.tag
    return manifests.Descriptor(descriptor.media_type, descriptor.digest, descriptor.size,
                                annotations=annotations).to_json()


def _save_docker(out, store, selected, scratch):
    manifest_json, repositories, index = [], {}, []
    for image, tags in selected:
        config_bytes = store.content.read(image.id)
        out.add_bytes(_blob_name(image.id), config_bytes)
        layer_names, descriptors = [], []
        for layer in image.layers:
            size = _add_uncompressed_layer(out, store, layer, scratch)
            layer_names.append(_blob_name(layer.diff_id))
            descriptors.append(manifests.Descriptor(manifests.OCI_LAYER, layer.diff_id, size))
        manifest = manifests.Manifest(manifests.OCI_MANIFEST,
                                      manifests.Descriptor(manifests.OCI_CONFIG, image.id, len(config_bytes)),
                                      descriptors)
        manifest_bytes = manifest.to_bytes()
        manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        out.add_bytes(_blob_name(manifest_digest), manifest_bytes)
        descriptor = manifests.Descriptor(manifests.OCI_MANIFEST, manifest_digest, len(manifest_bytes))
        # full names: podman reads a bare "alpine:3.20" as localhost/alpine
        manifest_json.append({"Config": _blob_name(image.id), "RepoTags": list(tags) or None,
                              "Layers": layer_names})
        for tag in tags:
            ref = references.parse(tag)
            top = image.layers[-1].diff_id.partition(":")[2] if image.layers else ""
            repositories.setdefault(ref.familiar_name, {})[ref.tag] = top
            index.append(_index_entry(descriptor, tag, oci_style=False))
        if not tags:
            index.append(_index_entry(descriptor, None, oci_style=False))
    out.add_bytes("index.json", json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_INDEX,
                                            "manifests": index}).encode())
    out.add_bytes("manifest.json", json.dumps(manifest_json).encode())
    out.add_bytes("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    if repositories:
        out.add_bytes("repositories", json.dumps(repositories).encode())


def _save_oci(out, store, selected):
    index = []
    for image, tags in selected:
        for digest in [image.id] + [layer.digest for layer in image.layers]:
            with store.content.open(digest) as handle:
                out.add_file(_blob_name(digest), store.content.size(digest), handle)
        manifest_bytes = store.content.read(image.manifest_digest)
        out.add_bytes(_blob_name(image.manifest_digest), manifest_bytes)
        media_type = manifests.parse_manifest(manifest_bytes).media_type
        descriptor = manifests.Descriptor(media_type, image.manifest_digest, len(manifest_bytes))
        for tag in tags or [None]:
            index.append(_index_entry(descriptor, tag, oci_style=True))
    out.add_bytes("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    out.add_bytes("index.json", json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_INDEX,
                                            "manifests": index}).encode())


# -- load ------------------------------------------------------------------------

class _Archive:
    """Random access to the members of a (maybe compressed) image archive."""

    def __init__(self, source, scratch):
        self._spool = tempfile.TemporaryFile(dir=scratch)
        try:
            stream = decompressed(source)
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                self._spool.write(chunk)
            self._spool.seek(0)
            self.tar = tarfile.open(fileobj=self._spool, mode="r:")
            self.members = {}
            for member in self.tar.getmembers():
                self.members[os.path.normpath(member.name).lstrip("/")] = member
        except tarfile.TarError as exc:
            self._spool.close()
            raise InvalidArgument(f"invalid image archive: {exc}") from None
        except BaseException:
            self._spool.close()
            raise

    def has(self, name):
        return os.path.normpath(name).lstrip("/") in self.members

    def open(self, name):
        member = self.members.get(os.path.normpath(name).lstrip("/"))
        handle = None
        if member is not None:
            try:
                handle = self.tar.extractfile(member)
            except (tarfile.TarError, KeyError) as exc:
                raise InvalidArgument(f"invalid image archive: {name}: {exc}") from None
        if handle is None:
            raise InvalidArgument(f"invalid image archive: {name} is missing or not a file")
        return handle

    def read_json(self, name):
        with self.open(name) as handle:
            try:
                return json.loads(handle.read())
            except ValueError as exc:
                raise InvalidArgument(f"invalid image archive: {name}: {exc}") from None

    def close(self):
        self.tar.close()
        self._spool.close()


def _store_member(archive, content, name, expected_digest=None):
    """Copy an archive member into the content store; returns (digest, size, head bytes)."""
    with archive.open(name) as handle:
        key = expected_digest or f"load-{os.getpid()}-{name}"
        with content.writer(key, expected_digest) as writer:
            writer.restart()
            head = b""
            while True:
                chunk = handle.read(_CHUNK)
                if not chunk:
                    break
                if not head:
                    head = chunk[:8]
                writer.write(chunk)
            size = writer.offset
            return writer.commit(), size, head


_LAYER_TYPE = {None: manifests.OCI_LAYER, "gzip": manifests.OCI_LAYER_GZIP, "zstd": manifests.OCI_LAYER_ZSTD}


def load(store, source):
    """`vessel load`: returns [(Image, [familiar names])] for each image in the archive."""
    scratch = os.path.join(store.root, "image", "ingest")
    before = set(store.content.digests())
    archive = _Archive(source, scratch)
    try:
        if archive.has("manifest.json"):
            return _load_docker(store, archive)
        if archive.has("index.json"):
            return _load_oci(store, archive)
        raise InvalidArgument("invalid image archive: neither manifest.json nor index.json found")
    except BaseException:
        store.discard_unused(set(store.content.digests()) - before)
        raise
    finally:
        archive.close()


def _load_docker(store, archive):
    entries = archive.read_json("manifest.json")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidArgument("invalid image archive: manifest.json is not a list of objects")
    loaded = []
    for entry in entries:
        config_name, layer_names = entry.get("Config"), entry.get("Layers") or []
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise InvalidArgument("invalid image archive: manifest.json entry without Config/Layers")
        tags = [references.parse(t) for t in entry.get("RepoTags") or []]
        config_digest, _, _ = _store_member(archive, store.content, config_name)
        config = manifests.parse_config(store.content.read(config_digest))
        if len(config.diff_ids) != len(layer_names):
            raise InvalidArgument(f"invalid image archive: {len(layer_names)} layers but "
                                  f"{len(config.diff_ids)} diff_ids in {config_name}")
        layers = []
        for name in layer_names:
            digest, size, head = _store_member(archive, store.content, name)
            compression = detect_compression(head)
            if compression not in _LAYER_TYPE:
                raise InvalidArgument(f"invalid image archive: layer {name} is {compression}-compressed")
            layers.append(manifests.Descriptor(_LAYER_TYPE[compression], digest, size))
        config_bytes = store.content.read(config_digest)
        manifest = manifests.Manifest(manifests.OCI_MANIFEST,
                                      manifests.Descriptor(manifests.OCI_CONFIG, config_digest, len(config_bytes)),
                                      layers)
        manifest_digest = store.content.put(manifest.to_bytes())
        image = store.register(tags[0] if tags else None, manifest_digest, record_digest=False)
        for tag in tags[1:]:
            store.tag(image.id, tag)
        loaded.append((image, [t.familiar for t in tags]))
    return loaded


def _copy_blob(store, archive, descriptor):
    if not store.content.has(descriptor.digest):
        _store_member(archive, store.content, _blob_name(descriptor.digest), descriptor.digest)


def _load_oci(store, archive):
    index = manifests.parse_manifest(json.dumps(archive.read_json("index.json")).encode(), manifests.OCI_INDEX)
    if not isinstance(index, manifests.Index):
        raise InvalidArgument("invalid image archive: index.json is not an image index")
    loaded = []
    for entry in index.manifests:
        _copy_blob(store, archive, entry)
        document = manifests.parse_manifest(store.content.read(entry.digest), entry.media_type or None)
        manifest_digest = entry.digest
        if isinstance(document, manifests.Index):
            chosen = manifests.select_platform(document, "/".join(host_platform()))
            _copy_blob(store, archive, chosen)
            manifest_digest = chosen.digest
            document = manifests.parse_manifest(store.content.read(chosen.digest), chosen.media_type or None)
        for blob in [document.config] + document.layers:
            _copy_blob(store, archive, blob)
        name = (entry.annotations.get("io.containerd.image.name")
                or entry.annotations.get("org.opencontainers.image.ref.name"))
        ref = None
        if name:
            try:
                ref = references.parse(name)
            except InvalidArgument:
                ref = None  # a bare tag such as "latest" names no repository
            if ref is not None and "/" not in name and ":" not in name:
                ref = None
        image = store.register(ref, manifest_digest, record_digest=False)
        loaded.append((image, [ref.familiar] if ref is not None else []))
    return loaded
