"""OCI and Docker schema2 manifests, indexes and image configs as typed records.

Parsing is strict where confusion is dangerous: schema1 is refused, and a
document that could be read as both an index and a manifest, or whose
`mediaType` disagrees with the type the registry served, is rejected
(CVE-2021-41190).  Every descriptor digest is validated on the way in.
"""

import json

from vessel.errors import InvalidArgument, NotFound, Unsupported
from vessel.image.reference import validate_digest
from vessel.records import field, record

__all__ = [
    "ContainerConfig", "Descriptor", "History", "ImageConfig", "Index", "Manifest", "Platform",
    "DOCKER_CONFIG", "DOCKER_LAYER", "DOCKER_LAYER_FOREIGN", "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST",
    "OCI_CONFIG", "OCI_INDEX", "OCI_LAYER", "OCI_LAYER_GZIP", "OCI_LAYER_ZSTD", "OCI_MANIFEST",
    "INDEX_TYPES", "MANIFEST_TYPES", "LAYER_TYPES",
    "parse_config", "parse_manifest", "parse_platform", "select_platform",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
LAYER_TYPES = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_NONDIST_GZIP,
               "application/vnd.oci.image.layer.nondistributable.v1.tar",
               DOCKER_LAYER, DOCKER_LAYER_FOREIGN, "application/vnd.docker.image.rootfs.diff.tar")
# Types a registry may serve without saying anything about the document.
_GENERIC_TYPES = ("", "application/json", "application/octet-stream", "text/plain")


def _load_json(data, what):
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"malformed {what}: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"malformed {what}: not a JSON object")
    return value


def _typed(value, kind, what, default=None):
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArgument(f"malformed {what}: expected {kind.__name__}")
    return value


def _required(value, kind, what):
    if value is None:
        raise InvalidArgument(f"malformed {what}: missing")
    return _typed(value, kind, what)


def _strings(value, what):
    value = _typed(value, list, what, [])
    if not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"malformed {what}: expected a list of strings")
    return value


def _string_map(value, what):
    value = _typed(value, dict, what, {})
    if not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"malformed {what}: values must be strings")
    return value


@record
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: list = field(default_factory=list)

    def __str__(self):
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_json(self):
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = self.os_features
        return out

    @classmethod
    def from_json(cls, raw):
        raw = _required(raw, dict, "platform")
        return cls(os=_typed(raw.get("os"), str, "platform.os", ""),
                   architecture=_typed(raw.get("architecture"), str, "platform.architecture", ""),
                   variant=_typed(raw.get("variant"), str, "platform.variant", ""),
                   os_version=_typed(raw.get("os.version"), str, "platform.os.version", ""),
                   os_features=_strings(raw.get("os.features"), "platform.os.features"))


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386", "i686": "386"}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def parse_platform(text):
    """`linux/arm64/v8`, `linux/amd64`, `linux` -> Platform (architecture defaults to amd64)."""
    parts = (text or "").lower().split("/")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    arch = _ARCH_ALIASES.get(parts[1], parts[1]) if len(parts) > 1 else "amd64"
    variant = parts[2] if len(parts) > 2 else ""
    if (parts[1] if len(parts) > 1 else "") == "armel" and not variant:
        variant = "v6"
    return Platform(os=parts[0], architecture=arch, variant=variant)


@record
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: list = field(default_factory=list)
    annotations: dict = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str = ""

    @classmethod
    def from_json(cls, raw, what="descriptor"):
        raw = _required(raw, dict, what)
        size = _typed(raw.get("size"), int, f"{what}.size")
        if size is None or size < 0:
            raise InvalidArgument(f"malformed {what}: size must be a non-negative integer")
        try:
            digest = validate_digest(raw.get("digest"))
        except InvalidArgument as exc:
            raise InvalidArgument(f"malformed {what}: {exc}") from None
        platform = raw.get("platform")
        return cls(media_type=_typed(raw.get("mediaType"), str, f"{what}.mediaType", ""),
                   digest=digest, size=size,
                   urls=_strings(raw.get("urls"), f"{what}.urls"),
                   annotations=_string_map(raw.get("annotations"), f"{what}.annotations"),
                   platform=None if platform is None else Platform.from_json(platform),
                   artifact_type=_typed(raw.get("artifactType"), str, f"{what}.artifactType", ""))

    def to_json(self):
        out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = self.urls
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


@record
class Manifest:
    media_type: str
    config: Descriptor
    layers: list
    annotations: dict = field(default_factory=dict)
    subject: Descriptor | None = None

    def to_json(self):
        out = {"schemaVersion": 2, "mediaType": self.media_type, "config": self.config.to_json(),
               "layers": [layer.to_json() for layer in self.layers]}
        if self.annotations:
            out["annotations"] = self.annotations
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        return out

    def to_bytes(self):
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


@record
class Index:
    media_type: str
    manifests: list
    annotations: dict = field(default_factory=dict)

    def to_json(self):
        out = {"schemaVersion": 2, "mediaType": self.media_type,
               "manifests": [m.to_json() for m in self.manifests]}
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    def to_bytes(self):
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def _bare_type(media_type):
    return (media_type or "").split(";")[0].strip().lower()


def parse_manifest(data, served_media_type=None):
    """Parse a manifest or index; `served_media_type` is the registry's Content-Type, if any."""
    raw = _load_json(data, "manifest")
    served = _bare_type(served_media_type)
    declared = _typed(raw.get("mediaType"), str, "manifest.mediaType", "")
    if raw.get("schemaVersion") == 1 or declared in DOCKER_SCHEMA1 or served in DOCKER_SCHEMA1:
        raise Unsupported("image manifest schema 1 is not supported: the image must be re-pushed "
                          "with schema 2 or OCI (Docker deprecated schema 1)")
    if raw.get("schemaVersion") != 2:
        raise InvalidArgument(f"malformed manifest: unsupported schemaVersion {raw.get('schemaVersion')!r}")
    if "manifests" in raw and ("layers" in raw or "config" in raw):
        raise InvalidArgument("ambiguous manifest: it has both 'manifests' and 'layers'/'config' "
                              "(CVE-2021-41190)")
    if declared and served not in _GENERIC_TYPES and declared != served:
        raise InvalidArgument(f"manifest media type mismatch: document says {declared!r}, "
                              f"served as {served!r} (CVE-2021-41190)")
    media_type = declared or (served if served not in _GENERIC_TYPES else "")
    if not media_type:
        media_type = OCI_INDEX if "manifests" in raw else OCI_MANIFEST
    if media_type in INDEX_TYPES:
        if "manifests" not in raw:
            raise InvalidArgument(f"malformed index: {media_type} without 'manifests'")
        manifests = [Descriptor.from_json(m, "index entry")
                     for m in _required(raw.get("manifests"), list, "index.manifests")]
        return Index(media_type, manifests, _string_map(raw.get("annotations"), "index.annotations"))
    if media_type in MANIFEST_TYPES:
        if "config" not in raw or "manifests" in raw:
            raise InvalidArgument(f"malformed manifest: {media_type} without 'config'")
        config = Descriptor.from_json(raw.get("config"), "manifest config")
        layers = [Descriptor.from_json(layer, "manifest layer")
                  for layer in _typed(raw.get("layers"), list, "manifest.layers", [])]
        subject = raw.get("subject")
        return Manifest(media_type, config, layers,
                        _string_map(raw.get("annotations"), "manifest.annotations"),
                        None if subject is None else Descriptor.from_json(subject, "manifest subject"))
    raise Unsupported(f"unsupported manifest media type {media_type!r}")


def _is_attestation(descriptor):
    return (descriptor.annotations.get("vnd.docker.reference.type") == "attestation-manifest"
            or (descriptor.platform is not None and descriptor.platform.os == "unknown"))


def select_platform(index, platform="linux/amd64"):
    """The index entry for `platform` (str or Platform); NotFound if none matches.

    Without a wanted variant the entry with no variant (or the default one,
    v8 for arm64, v7 for arm) wins over others; arm64 "" and "v8" are equal.
    """
    wanted = parse_platform(platform) if isinstance(platform, str) else platform
    default_variant = _DEFAULT_VARIANT.get(wanted.architecture, "")
    best, best_rank = None, None
    for entry in index.manifests:
        if entry.platform is None or _is_attestation(entry):
            continue
        have = entry.platform
        if have.os != wanted.os or _ARCH_ALIASES.get(have.architecture, have.architecture) != wanted.architecture:
            continue
        variant = have.variant or default_variant
        if wanted.variant:
            if variant != (wanted.variant or default_variant):
                continue
            rank = 0
        else:
            rank = 0 if variant == default_variant else 1
        if best_rank is None or rank < best_rank:
            best, best_rank = entry, rank
    if best is None:
        raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")
    return best


@record
class ContainerConfig:
    """The runtime defaults an image carries (its config's `config` object)."""

    env: list = field(default_factory=list)
    cmd: list | None = None
    entrypoint: list | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: dict = field(default_factory=dict)
    volumes: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    stop_signal: str = ""
    healthcheck: dict | None = None
    on_build: list = field(default_factory=list)
    shell: list | None = None
    args_escaped: bool = False

    _KEYS = (("env", "Env"), ("cmd", "Cmd"), ("entrypoint", "Entrypoint"), ("working_dir", "WorkingDir"),
             ("user", "User"), ("exposed_ports", "ExposedPorts"), ("volumes", "Volumes"),
             ("labels", "Labels"), ("stop_signal", "StopSignal"), ("healthcheck", "Healthcheck"),
             ("on_build", "OnBuild"), ("shell", "Shell"), ("args_escaped", "ArgsEscaped"))

    @classmethod
    def from_json(cls, raw):
        raw = _typed(raw, dict, "image config.config", {})
        cmd, entrypoint, shell = raw.get("Cmd"), raw.get("Entrypoint"), raw.get("Shell")
        if isinstance(cmd, str):
            cmd = [cmd]
        if isinstance(entrypoint, str):
            entrypoint = [entrypoint]
        return cls(
            env=_strings(raw.get("Env"), "image config.config.Env"),
            cmd=None if cmd is None else _strings(cmd, "image config.config.Cmd"),
            entrypoint=None if entrypoint is None else _strings(entrypoint, "image config.config.Entrypoint"),
            working_dir=_typed(raw.get("WorkingDir"), str, "image config.config.WorkingDir", ""),
            user=_typed(raw.get("User"), str, "image config.config.User", ""),
            exposed_ports=_typed(raw.get("ExposedPorts"), dict, "image config.config.ExposedPorts", {}),
            volumes=_typed(raw.get("Volumes"), dict, "image config.config.Volumes", {}),
            labels=_string_map(raw.get("Labels"), "image config.config.Labels"),
            stop_signal=_typed(raw.get("StopSignal"), str, "image config.config.StopSignal", ""),
            healthcheck=_typed(raw.get("Healthcheck"), dict, "image config.config.Healthcheck"),
            on_build=_strings(raw.get("OnBuild"), "image config.config.OnBuild"),
            shell=None if shell is None else _strings(shell, "image config.config.Shell"),
            args_escaped=_typed(raw.get("ArgsEscaped"), bool, "image config.config.ArgsEscaped", False),
        )

    def to_json(self):
        out = {}
        for attr, key in self._KEYS:
            value = getattr(self, attr)
            if value not in (None, "", [], {}, False):
                out[key] = value
        return out


@record
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_json(cls, raw):
        raw = _required(raw, dict, "image config.history entry")
        return cls(created=_typed(raw.get("created"), str, "image config.history.created", ""),
                   created_by=_typed(raw.get("created_by"), str, "image config.history.created_by", ""),
                   author=_typed(raw.get("author"), str, "image config.history.author", ""),
                   comment=_typed(raw.get("comment"), str, "image config.history.comment", ""),
                   empty_layer=_typed(raw.get("empty_layer"), bool, "image config.history.empty_layer", False))

    def to_json(self):
        out = {}
        for key in ("created", "created_by", "author", "comment", "empty_layer"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@record
class ImageConfig:
    """An image config blob: platform, runtime defaults, history and layer diff ids."""

    architecture: str
    os: str
    config: ContainerConfig
    diff_ids: list
    history: list = field(default_factory=list)
    created: str = ""
    author: str = ""
    variant: str = ""
    raw: dict = field(default_factory=dict)

    def to_json(self):
        out = dict(self.raw)
        out.update({"architecture": self.architecture, "os": self.os, "config": self.config.to_json(),
                    "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
                    "history": [h.to_json() for h in self.history]})
        for key in ("created", "author", "variant"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    def to_bytes(self):
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def parse_config(data):
    """Parse an image config blob."""
    raw = _load_json(data, "image config")
    rootfs = _typed(raw.get("rootfs"), dict, "image config.rootfs")
    if rootfs is None or rootfs.get("type") != "layers":
        raise InvalidArgument("malformed image config: rootfs.type must be 'layers'")
    diff_ids = _strings(rootfs.get("diff_ids"), "image config.rootfs.diff_ids")
    try:
        for diff_id in diff_ids:
            validate_digest(diff_id)
    except InvalidArgument as exc:
        raise InvalidArgument(f"malformed image config: {exc}") from None
    return ImageConfig(
        architecture=_typed(raw.get("architecture"), str, "image config.architecture", ""),
        os=_typed(raw.get("os"), str, "image config.os", ""),
        config=ContainerConfig.from_json(raw.get("config")),
        diff_ids=diff_ids,
        history=[History.from_json(h) for h in _typed(raw.get("history"), list, "image config.history", [])],
        created=_typed(raw.get("created"), str, "image config.created", ""),
        author=_typed(raw.get("author"), str, "image config.author", ""),
        variant=_typed(raw.get("variant"), str, "image config.variant", ""),
        raw=raw,
    )
