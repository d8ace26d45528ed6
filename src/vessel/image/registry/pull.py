"""Pull an image: resolve the tag, choose the platform, fetch blobs in parallel, register.

Blobs go through the content store's resumable writers: a download cut off
keeps its bytes in the ingest, and the next pull asks only for the rest
(Range). Blobs already present are not fetched again. Nothing is registered
unless every blob was committed with a matching digest.
"""

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from vessel.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from vessel.image import manifest as manifests
from vessel.image import reference as references
from vessel.image.registry.client import Client
from vessel.image.registry.credentials import lookup
from vessel.image.registry.hosts import RegistryConfig
from vessel.image.registry.progress import make_progress

__all__ = ["close_all", "open_clients", "pull", "run_all"]

# Errors after which the next endpoint (a mirror's upstream) is worth trying.
_FALLBACK_ERRORS = (NotFound, Unavailable, PermissionDenied)


def open_clients(registry, registries=None, root=None, config_path=None, push=False, **options):
    """Clients for the registry's endpoints, in the order to try them (mirrors first)."""
    registries = registries or RegistryConfig.load(root=root)
    return [Client(endpoint, lookup(endpoint.host, config_path), **options)
            for endpoint in registries.endpoints(registry, push=push)]


def close_all(clients):
    for client in clients:
        client.close()


def _parse_ref(ref):
    if isinstance(ref, references.Reference):
        return ref, False
    parsed = references.parse(ref, default_tag=False)
    if parsed.tag is None and parsed.digest is None:
        return parsed.with_tag(references.DEFAULT_TAG), True
    return parsed, False


def _resolve(clients, ref):
    """Fetch the tag's (or digest's) manifest from the first endpoint that has it.

    Returns (index of that endpoint, body, media type, digest).
    """
    what = f"manifest for {ref.familiar}"
    target = ref.digest or ref.tag
    for position, client in enumerate(clients[:-1]):
        try:
            return (position,) + client.get_manifest(ref.repository, target, what)
        except _FALLBACK_ERRORS:
            continue
    return (len(clients) - 1,) + clients[-1].get_manifest(ref.repository, target, what)


class _Downloader:
    """Fetches blobs into the content store from the first endpoint that serves them."""

    def __init__(self, store, clients, repository, progress):
        self.content = store.content
        self.clients = clients
        self.repository = repository
        self.progress = progress
        self.stop = threading.Event()

    def fetch(self, descriptor, show):
        if self.stop.is_set():
            return False
        for position, client in enumerate(self.clients):
            try:
                return self._fetch_from(client, descriptor, show)
            except (NotFound, Unavailable):
                if position + 1 == len(self.clients):
                    raise
        return False

    def _fetch_from(self, client, descriptor, show):
        digest, size = descriptor.digest, descriptor.size
        if self.content.has(digest):
            return True
        writer = self.content.writer(digest, digest, size)
        resumed_from = writer.offset
        done = [writer.offset]

        def on_bytes(count):
            done[0] += count
            if show:
                self.progress.bytes(digest, "Downloading", done[0], size)

        try:
            if self.content.has(digest):  # another process finished it while we waited
                return True
            client.fetch_blob(self.repository, digest, size, writer, on_bytes, self.stop.is_set)
            if self.stop.is_set():
                return False
            if show:
                self.progress.status(digest, "Verifying Checksum")
            try:
                writer.commit()
            except InvalidArgument:
                if not resumed_from:
                    raise
                # the bytes kept from an earlier attempt were bad: start over once
                writer = self.content.writer(digest, digest, size)
                writer.restart()
                done[0] = 0
                client.fetch_blob(self.repository, digest, size, writer, on_bytes, self.stop.is_set)
                if self.stop.is_set():
                    return False
                writer.commit()
        finally:
            writer.close()  # keeps a partial download for the next pull; no-op after commit
        if show:
            self.progress.status(digest, "Download complete")
        return True


def run_all(calls, concurrency, stop):
    """Run the callables on `concurrency` threads; on the first failure set `stop`
    (the others check it and return early), wait for them, and re-raise it."""
    first_error = None
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="registry") as pool:
        futures = [pool.submit(call) for call in calls]
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others stop
                if first_error is None:
                    first_error = exc
                    stop.set()
    if first_error is not None:
        raise first_error


def pull(store, ref, platform="linux/amd64", progress=None, concurrency=3, registries=None,
         config_path=None, **client_options):
    """Pull `ref` (str or Reference) into `store`; returns the registered Image.

    `progress`: None, a text stream (bars on a terminal, plain lines otherwise)
    or a Progress. `registries`: a RegistryConfig (default: loaded from the
    store's root); `config_path`: Docker's config.json for credentials.
    """
    ref, defaulted = _parse_ref(ref)
    out = make_progress(progress)
    if defaulted:
        out.line(f"Using default tag: {references.DEFAULT_TAG}")
    all_clients = open_clients(ref.registry, registries, getattr(store, "root", None), config_path,
                               **client_options)
    try:
        position, body, media_type, top_digest = _resolve(all_clients, ref)
        out.line(f"{ref.digest or ref.tag}: Pulling from {ref.repository}")
        clients = all_clients[position:]
        document = manifests.parse_manifest(body, media_type)
        bodies = [(body, top_digest)]
        manifest_digest = top_digest
        if isinstance(document, manifests.Index):
            entry = manifests.select_platform(document, platform)
            body, media_type, manifest_digest = clients[0].get_manifest(
                ref.repository, entry.digest, f"manifest {entry.digest} for {platform}")
            if manifest_digest != entry.digest:
                raise InvalidArgument(f"manifest for {platform}: digest mismatch")
            document = manifests.parse_manifest(body, media_type)
            if not isinstance(document, manifests.Manifest):
                raise InvalidArgument(f"manifest for {platform} in {ref.familiar} is not an image manifest")
            bodies.append((body, manifest_digest))

        layers = document.layers
        for layer in layers:
            out.status(layer.digest, "Already exists" if store.content.has(layer.digest)
                       else "Pulling fs layer")
        wanted = {d.digest: d for d in [document.config] + layers}  # a layer may repeat
        missing = [d for d in wanted.values() if not store.content.has(d.digest)]
        downloader = _Downloader(store, clients, ref.repository, out)
        shown = {d.digest for d in layers}
        run_all([functools.partial(downloader.fetch, d, d.digest in shown) for d in missing],
                concurrency, downloader.stop)
        for data, digest in bodies:
            store.content.put(data, digest)

        try:
            previous = store.get(str(ref)).manifest_digest
        except NotFound:
            previous = None
        image = store.register(ref, manifest_digest)
    finally:
        close_all(all_clients)
    for layer in layers:
        if layer in missing:
            out.status(layer.digest, "Pull complete")
    out.line(f"Digest: {top_digest}")
    if previous == manifest_digest:
        out.line(f"Status: Image is up to date for {ref.familiar}")
    else:
        out.line(f"Status: Downloaded newer image for {ref.familiar}")
    out.line(str(ref))
    return image
