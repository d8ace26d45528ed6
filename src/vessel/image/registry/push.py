"""Push an image: layers (skipping those the registry has, mounting those another
repository of the same registry has), then the config, then the manifest."""

import functools
import threading

from vessel.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from vessel.image import manifest as manifests
from vessel.image import reference as references
from vessel.image.registry.client import push_scope
from vessel.image.registry.progress import make_progress
from vessel.image.registry.pull import close_all, open_clients, run_all

__all__ = ["push"]

_MOUNT_ATTEMPTS = 3
_UPLOAD_ATTEMPTS = 3


def _manifest_blobs(store, manifest_digest):
    try:
        document = manifests.parse_manifest(store.content.read(manifest_digest))
    except (NotFound, InvalidArgument):
        return set()
    if not isinstance(document, manifests.Manifest):
        return set()
    return {document.config.digest} | {layer.digest for layer in document.layers}


def mount_sources(store, ref):
    """blob digest -> repositories of ref's registry (other than ref's) known to hold it.

    Learned from the local images' names: an image pulled from or pushed to
    registry/x holds its blobs in x.
    """
    sources = {}
    for image in store.list():
        repositories = set()
        for name in list(image.repo_tags) + list(image.repo_digests):
            try:
                other = references.parse(name)
            except InvalidArgument:
                continue
            if other.registry == ref.registry and other.repository != ref.repository:
                repositories.add(other.repository)
        if not repositories:
            continue
        for digest in _manifest_blobs(store, image.manifest_digest):
            sources.setdefault(digest, set()).update(repositories)
    return {digest: sorted(repos) for digest, repos in sources.items()}


class _Uploader:
    def __init__(self, store, client, repository, progress, sources, chunk_size):
        self.content = store.content
        self.client = client
        self.repository = repository
        self.progress = progress
        self.sources = sources
        self.chunk_size = chunk_size
        self.stop = threading.Event()

    def push_blob(self, descriptor, show):
        if self.stop.is_set():
            return
        digest, size = descriptor.digest, descriptor.size
        say = self.progress.status if show else (lambda key, text: None)
        if self.client.blob_size(self.repository, digest, [push_scope(self.repository)]) is not None:
            say(digest, "Layer already exists")
            return
        location = None
        for source in self.sources.get(digest, [])[:_MOUNT_ATTEMPTS]:
            try:
                mounted = self.client.mount_blob(self.repository, digest, source)
            except (NotFound, Unavailable, PermissionDenied):
                continue  # no access to the source repository: upload instead
            if mounted is True:
                say(digest, f"Mounted from {source}")
                return
            location = mounted
        pushed = [0]

        def on_bytes(count):
            pushed[0] += count
            if show:
                self.progress.bytes(digest, "Pushing", pushed[0], size)

        for attempt in range(_UPLOAD_ATTEMPTS):
            pushed[0] = 0
            try:
                with self.content.open(digest) as handle:
                    self.client.upload_blob(self.repository, digest, handle, size, location,
                                            self.chunk_size, on_bytes)
                break
            except Unavailable:
                if attempt + 1 == _UPLOAD_ATTEMPTS or self.stop.is_set():
                    raise
                location = None  # the session is in an unknown state: start a new one
        say(digest, "Pushed")


def push(store, ref, progress=None, concurrency=3, chunk_size=8 << 20, registries=None,
         config_path=None, **client_options):
    """Push the local image `ref` (str or Reference) to its registry; returns the manifest digest."""
    if not isinstance(ref, references.Reference):
        ref = references.parse(ref)
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {ref.familiar}")
    out = make_progress(progress)
    image = store.get(str(ref))
    body = store.content.read(image.manifest_digest)
    document = manifests.parse_manifest(body)
    if not isinstance(document, manifests.Manifest):
        raise InvalidArgument(f"{ref.familiar}: only single-platform images can be pushed")
    missing = [d.digest for d in [document.config] + document.layers if not store.content.has(d.digest)]
    if missing:
        raise NotFound(f"{ref.familiar}: blob {missing[0]} is missing from the local store")

    out.line(f"The push refers to repository [{ref.name}]")
    (client,) = open_clients(ref.registry, registries, getattr(store, "root", None), config_path,
                             push=True, **client_options)
    try:
        layers = list({d.digest: d for d in reversed(document.layers)}.values())  # a layer may repeat
        for layer in layers:
            out.status(layer.digest, "Preparing")
        uploader = _Uploader(store, client, ref.repository, out, mount_sources(store, ref), chunk_size)
        calls = [functools.partial(uploader.push_blob, layer, True) for layer in layers]
        calls.append(functools.partial(uploader.push_blob, document.config, False))
        run_all(calls, concurrency, uploader.stop)
        what = f"manifest for {ref.familiar}"
        media_type = document.media_type or manifests.OCI_MANIFEST
        reported = client.put_manifest(ref.repository, ref.tag, body, media_type, what)
    finally:
        close_all([client])
    if reported and reported != image.manifest_digest:
        raise InvalidArgument(f"{what}: registry reported digest {reported}, "
                              f"expected {image.manifest_digest}")
    out.line(f"{ref.tag}: digest: {image.manifest_digest} size: {len(body)}")
    return image.manifest_digest
