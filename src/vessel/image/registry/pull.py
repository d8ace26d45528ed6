"""Pull an image: resolve the tag, choose the platform, fetch blobs in parallel, register.

Blobs go through the content store's resumable writers: a download cut off
keeps its bytes in the ingest, and the next pull asks only for the rest
(Range). Blobs already present are not fetched again. Nothing is registered
unless every blob was committed with a matching digest.

The first layer still to unpack is unpacked while it downloads: its bytes go
to the content store and, through a bounded hand-over, to apply_layer on a
thread of its own. The snapshot appears only if its diff_id (from the
digest-checked config) matches; if anything goes wrong there the layer is
simply unpacked again from the stored blob by `register`, as without streaming.
"""

import collections
import errno
import functools
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from vessel.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from vessel.image import manifest as manifests
from vessel.image import reference as references
from vessel.image.registry.client import Client
from vessel.image.registry.credentials import lookup
from vessel.image.registry.hosts import RegistryConfig
from vessel.image.registry.progress import make_progress
from vessel.image.snapshots import chain_ids

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


class _Tee:
    """A file object apply_layer reads while a download feeds it (bounded: the download
    waits when the unpacking is behind). Once the reader is closed, feeding is a no-op."""

    _MAX_CHUNKS = 64

    def __init__(self):
        self._chunks = collections.deque()
        self._head = b""
        self._cond = threading.Condition()
        self._ended = False  # the feeder is done (or failed)
        self._error = None
        self._closed = False

    def feed(self, data):
        with self._cond:
            while len(self._chunks) >= self._MAX_CHUNKS and not self._closed:
                self._cond.wait()
            if not self._closed:
                self._chunks.append(bytes(data))
                self._cond.notify_all()

    def end(self, error=None):
        """No more data: the end of the stream, or (with `error`) a failed one. The first call counts."""
        with self._cond:
            if not self._ended:
                self._ended, self._error = True, error
                self._cond.notify_all()

    def close(self):
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._cond.notify_all()

    def read(self, size=-1):
        if not self._head:
            with self._cond:
                while not self._chunks and not self._ended:
                    self._cond.wait()
                if self._chunks:
                    self._head = self._chunks.popleft()
                    self._cond.notify_all()
                elif self._error is not None:
                    raise Unavailable(f"layer download failed: {self._error}")
                else:
                    return b""
        if size < 0 or size >= len(self._head):
            data, self._head = self._head, b""
        else:
            data, self._head = self._head[:size], self._head[size:]
        return data


class _TeeWriter:
    """A content Writer that also feeds a _Tee."""

    def __init__(self, writer, tee):
        self._writer = writer
        self._tee = tee

    @property
    def offset(self):
        return self._writer.offset

    def write(self, data):
        self._writer.write(data)
        self._tee.feed(data)


class _StreamedUnpack:
    """Unpacks one layer into its snapshot from the bytes of its download, on a thread."""

    def __init__(self, snapshots, descriptor, chain_id, parent, diff_id):
        self.digest = descriptor.digest
        self.tee = _Tee()
        self.started = False
        self._args = (chain_id, parent, self.tee, diff_id)
        self._snapshots = snapshots
        self._thread = threading.Thread(target=self._run, name="layer-unpack", daemon=True)

    def start(self):
        self.started = True
        self._thread.start()

    def _run(self):
        try:
            self._snapshots.commit_layer(*self._args)
        except BaseException:  # noqa: BLE001 - register unpacks it again from the blob
            pass
        finally:
            self.tee.close()

    def wait(self):
        if self.started:
            self.tee.end(RuntimeError("pull stopped"))
            self._thread.join()


class _Downloader:
    """Fetches blobs into the content store from the first endpoint that serves them."""

    def __init__(self, store, clients, repository, progress):
        self.content = store.content
        self.clients = clients
        self.repository = repository
        self.progress = progress
        self.stop = threading.Event()
        self.streamed = None  # a _StreamedUnpack for one layer, if any

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
        target = writer
        streamed = None

        def on_bytes(count):
            done[0] += count
            if show:
                self.progress.bytes(digest, "Downloading", done[0], size)

        try:
            if self.content.has(digest):  # another process finished it while we waited
                return True
            # unpack as it arrives: only a download from the first byte (not a resumed one)
            if (self.streamed is not None and self.streamed.digest == digest and not self.streamed.started
                    and not resumed_from):
                streamed = self.streamed
                streamed.start()
                target = _TeeWriter(writer, streamed.tee)
            client.fetch_blob(self.repository, digest, size, target, on_bytes, self.stop.is_set)
            if self.stop.is_set():
                return False
            if streamed is not None:
                streamed.tee.end()
                streamed = None
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
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                writer.abort()  # a full disk: free what this blob took, do not keep it
            raise
        finally:
            if streamed is not None:
                streamed.tee.end(RuntimeError("download failed"))
            writer.close()  # keeps a partial download for the next pull; no-op after commit/abort
        if show:
            self.progress.status(digest, "Download complete")
        return True


def _layer_to_stream(store, document, missing):
    """A _StreamedUnpack for the first layer without a snapshot, if its blob is to be
    downloaded and its parent's snapshot exists (or it has none); else None."""
    try:
        config = manifests.parse_config(store.content.read(document.config.digest))
    except (InvalidArgument, NotFound):
        return None  # register reports it
    if len(config.diff_ids) != len(document.layers):
        return None
    missing = {d.digest for d in missing}
    parent = None
    for descriptor, diff_id, chain_id in zip(document.layers, config.diff_ids, chain_ids(config.diff_ids)):
        if not store.snapshots.exists(chain_id):
            if descriptor.digest not in missing or (descriptor.media_type and
                                                    descriptor.media_type not in manifests.LAYER_TYPES):
                return None
            return _StreamedUnpack(store.snapshots, descriptor, chain_id, parent, diff_id)
        parent = chain_id
    return None


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
        return _pull(store, ref, platform, out, concurrency, all_clients)
    except OSError as exc:  # the local side: a full disk, a read-only root
        reason = exc.strerror or str(exc)
        raise Unavailable(f"pulling {ref.familiar}: {reason[:1].lower()}{reason[1:]}") from None
    except sqlite3.Error as exc:
        raise Unavailable(f"pulling {ref.familiar}: image store: {exc}") from None
    finally:
        close_all(all_clients)


def _pull(store, ref, platform, out, concurrency, all_clients):
    """Resolve, download the missing blobs, register (which unpacks); print Docker's lines."""
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
    wanted = {d.digest: d for d in layers}  # a layer may repeat
    downloader = _Downloader(store, clients, ref.repository, out)
    if not store.content.has(document.config.digest):  # first: it names the diff_ids
        downloader.fetch(document.config, False)
    missing = [d for d in wanted.values() if not store.content.has(d.digest)]
    downloader.streamed = _layer_to_stream(store, document, missing)
    shown = {d.digest for d in layers}
    try:
        run_all([functools.partial(downloader.fetch, d, d.digest in shown) for d in missing],
                concurrency, downloader.stop)
    finally:
        if downloader.streamed is not None:
            downloader.streamed.wait()
    for data, digest in bodies:
        store.content.put(data, digest)

    try:
        previous = store.get(str(ref)).manifest_digest
    except NotFound:
        previous = None
    image = store.register(ref, top_digest, platform=platform)  # repo digest: the index's, as Docker
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
