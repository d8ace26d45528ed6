"""The local image store: content blobs + layer snapshots + names, in SQLite (WAL).

<root>/image/images.db holds one row per image (id = config digest), the tags
(`docker.io/library/busybox:latest` -> id) and repo digests
(`docker.io/library/busybox@sha256:...` -> id).  Removal follows Docker's
rules: a reference only untags; an id deletes, unless several repositories
name the image (needs force) or a container uses it.
"""

import json
import os
import sqlite3
import time

from vessel.errors import Conflict, InvalidArgument, NotFound, Unsupported
from vessel.image import manifest as manifests
from vessel.image import reference as references
from vessel.image.content import ContentStore
from vessel.image.snapshots import Snapshotter, chain_ids

__all__ = ["Image", "ImageStore", "Layer"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    layers TEXT NOT NULL,
    size INTEGER NOT NULL,
    registered REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX IF NOT EXISTS refs_image ON refs(image_id);
"""


class Layer:
    """One layer of an image: blob, diff id, chain id and unpacked size."""

    __slots__ = ("digest", "media_type", "blob_size", "diff_id", "chain_id", "size")

    def __init__(self, digest, media_type, blob_size, diff_id, chain_id, size):
        self.digest = digest
        self.media_type = media_type
        self.blob_size = blob_size
        self.diff_id = diff_id
        self.chain_id = chain_id
        self.size = size

    def to_json(self):
        return {name: getattr(self, name) for name in self.__slots__}


class Image:
    """A registered image, as read from the store."""

    def __init__(self, image_id, manifest_digest, config, layers, size, registered, tags, digests):
        self.id = image_id
        self.manifest_digest = manifest_digest
        self.config = config
        self.layers = layers
        self.size = size
        self.registered = registered
        self.tag_refs = tags
        self.digest_refs = digests

    @property
    def repo_tags(self):
        """Docker's familiar forms: ["busybox:latest"]."""
        return [references.parse(name).familiar for name in self.tag_refs]

    @property
    def repo_digests(self):
        return [references.parse(name).familiar for name in self.digest_refs]

    @property
    def created(self):
        return self.config.created

    @property
    def chain_id(self):
        return self.layers[-1].chain_id if self.layers else None

    @property
    def short_id(self):
        return self.id.partition(":")[2][:12]

    def __repr__(self):
        return f"Image({self.short_id}, {self.repo_tags})"


class ImageStore:
    """Images under <root>/image/.

    `users`, if given, maps an image id to the containers using it, as a list
    of (container_id, running) pairs; the engine supplies it so removal can
    refuse images in use.
    """

    def __init__(self, root, users=None, driver=None):
        self.root = root
        self.content = ContentStore(root)
        self.snapshots = Snapshotter(root, driver)
        self.users = users or (lambda image_id: [])
        self._db = sqlite3.connect(os.path.join(root, "image", "images.db"), timeout=30,
                                   isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self):
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # registering

    def _image_manifest(self, manifest_digest, platform="linux/amd64"):
        document = manifests.parse_manifest(self.content.read(manifest_digest))
        if isinstance(document, manifests.Index):
            entry = manifests.select_platform(document, platform)
            return self._image_manifest(entry.digest, platform)
        return manifest_digest, document

    def register(self, ref, manifest_digest, record_digest=True, platform="linux/amd64"):
        """Record the image whose manifest (and blobs) are in .content; unpack its layers.

        `manifest_digest` may name an index: the `platform` entry is used, and
        the index digest is the repo digest (as Docker records it).  `ref`
        (Reference, str or None) names the image: its tag moves here, its digest
        (or, with `record_digest`, name@manifest_digest) becomes a repo digest.
        """
        if isinstance(ref, str):
            ref = references.parse(ref)
        top_digest = manifest_digest
        manifest_digest, document = self._image_manifest(manifest_digest, platform)
        config = manifests.parse_config(self.content.read(document.config.digest))
        if len(config.diff_ids) != len(document.layers):
            raise InvalidArgument(f"image {manifest_digest}: {len(document.layers)} layers but "
                                  f"{len(config.diff_ids)} diff_ids in its config")
        layers = []
        parent = None
        for descriptor, diff_id, chain_id in zip(document.layers, config.diff_ids, chain_ids(config.diff_ids)):
            if descriptor.media_type and descriptor.media_type not in manifests.LAYER_TYPES:
                raise Unsupported(f"layer {descriptor.digest}: unsupported media type {descriptor.media_type}")
            if self.snapshots.exists(chain_id):
                info = self.snapshots.info(chain_id)
            else:
                info = self.snapshots.commit_layer(chain_id, parent, self.content.path(descriptor.digest), diff_id)
            layers.append(Layer(descriptor.digest, descriptor.media_type, descriptor.size, diff_id,
                                chain_id, info["size"]))
            parent = chain_id
        image_id = document.config.digest
        size = sum(layer.size for layer in layers)
        with self._transaction() as db:
            db.execute("INSERT INTO images VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                       "manifest_digest=excluded.manifest_digest, layers=excluded.layers, size=excluded.size",
                       (image_id, manifest_digest, json.dumps([layer.to_json() for layer in layers]),
                        size, time.time()))
            if ref is not None:
                if ref.tag is not None:
                    self._set_ref(db, str(ref.with_tag(ref.tag)), "tag", image_id)
                if ref.digest is not None:
                    self._set_ref(db, f"{ref.name}@{ref.digest}", "digest", image_id)
                elif record_digest:
                    self._set_ref(db, f"{ref.name}@{top_digest}", "digest", image_id)
        return self.get(image_id)

    @staticmethod
    def _set_ref(db, name, kind, image_id):
        db.execute("INSERT INTO refs VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id",
                   (name, kind, image_id))

    def _transaction(self):
        store = self

        class _Tx:
            def __enter__(self):
                store._db.execute("BEGIN IMMEDIATE")
                return store._db

            def __exit__(self, exc_type, exc, tb):
                store._db.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()

    # reading

    def _load(self, row):
        image_id, manifest_digest, layers, size, registered = row
        refs = self._db.execute("SELECT name, kind FROM refs WHERE image_id = ? ORDER BY name",
                                (image_id,)).fetchall()
        config = manifests.parse_config(self.content.read(image_id))
        return Image(image_id, manifest_digest, config, [Layer(**layer) for layer in json.loads(layers)],
                     size, registered, [n for n, k in refs if k == "tag"], [n for n, k in refs if k == "digest"])

    def _by_id(self, image_id):
        row = self._db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        return None if row is None else self._load(row)

    def _resolve(self, name_or_id):
        """(image, matched reference or None); NotFound if nothing matches."""
        text = name_or_id.strip() if isinstance(name_or_id, str) else str(name_or_id)
        if references.is_full_id(text):
            image = self._by_id(text if text.startswith("sha256:") else "sha256:" + text)
            if image is not None:
                return image, None
        try:
            ref = name_or_id if isinstance(name_or_id, references.Reference) else references.parse(text)
        except InvalidArgument:
            ref = None
        if ref is not None:
            names = []
            if ref.digest is not None:
                names.append(f"{ref.name}@{ref.digest}")
            if ref.tag is not None:
                names.append(str(ref.with_tag(ref.tag)))
            for name in names:
                row = self._db.execute("SELECT image_id FROM refs WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    return self._by_id(row[0]), name
        prefix = text.removeprefix("sha256:")
        if prefix and all(c in "0123456789abcdef" for c in prefix):
            rows = self._db.execute("SELECT id FROM images WHERE id LIKE ?", (f"sha256:{prefix}%",)).fetchall()
            if len(rows) > 1:
                raise Conflict(f"multiple images found with prefix {prefix!r}; use more characters")
            if rows:
                return self._by_id(rows[0][0]), None
        raise NotFound(f"No such image: {ref.familiar if ref is not None else text}")

    def get(self, name_or_id):
        """The image named by a reference, a full id or an id prefix; NotFound otherwise."""
        return self._resolve(name_or_id)[0]

    def list(self):
        """All images, newest first."""
        rows = self._db.execute("SELECT * FROM images").fetchall()
        images = [self._load(row) for row in rows]
        images.sort(key=lambda image: (image.created or "", image.registered), reverse=True)
        return images

    # naming

    def tag(self, source, target):
        """Point tag `target` (str or Reference) at the image `source` names."""
        image = self.get(source)
        ref = target if isinstance(target, references.Reference) else references.parse(target)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref.familiar}")
        with self._transaction() as db:
            self._set_ref(db, str(ref), "tag", image.id)
        return image

    def untag(self, name):
        """Remove one tag or digest reference; returns its familiar form."""
        image, matched = self._resolve(name)
        if matched is None:
            raise InvalidArgument(f"{name} is an image id, not a reference")
        with self._transaction() as db:
            db.execute("DELETE FROM refs WHERE name = ?", (matched,))
        return references.parse(matched).familiar

    # removing

    def remove(self, name_or_id, force=False):
        """Docker's `rmi`: returns [("Untagged", name) | ("Deleted", id), ...]."""
        image, matched = self._resolve(name_or_id)
        users = self.users(image.id)
        events = []
        if matched is not None:
            remaining_tags = [t for t in image.tag_refs if t != matched]
            if users and not force and not remaining_tags and image.tag_refs:
                container, _ = users[0]
                raise Conflict(f"conflict: unable to remove repository reference \"{name_or_id}\" "
                               f"(must force) - container {container[:12]} is using its referenced "
                               f"image {image.short_id}")
            doomed = [matched]
            if not remaining_tags:
                doomed += [d for d in image.digest_refs if d != matched]
            with self._transaction() as db:
                for name in doomed:
                    db.execute("DELETE FROM refs WHERE name = ?", (name,))
            events += [("Untagged", references.parse(name).familiar) for name in doomed]
            if remaining_tags or users:
                return events
        else:
            running = [c for c, is_running in users if is_running]
            if running:
                raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                               f"image is being used by running container {running[0][:12]}")
            if users and not force:
                raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                               f"image is being used by stopped container {users[0][0][:12]}")
            repositories = {references.parse(t).name for t in image.tag_refs}
            if len(repositories) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                               f"image is referenced in multiple repositories")
            with self._transaction() as db:
                db.execute("DELETE FROM refs WHERE image_id = ?", (image.id,))
            events += [("Untagged", references.parse(n).familiar) for n in image.tag_refs + image.digest_refs]
            if users:
                return events
        return events + self._delete(image)

    def _delete(self, image):
        """Drop the record, then the blobs and snapshots no other image uses."""
        with self._transaction() as db:
            db.execute("DELETE FROM refs WHERE image_id = ?", (image.id,))
            db.execute("DELETE FROM images WHERE id = ?", (image.id,))
        events = [("Deleted", image.id)]
        blobs_in_use, chains_in_use = self._in_use()
        for layer in reversed(image.layers):
            if layer.chain_id in chains_in_use or not self.snapshots.exists(layer.chain_id):
                continue
            try:
                self.snapshots.remove_committed(layer.chain_id)
            except Conflict:
                break  # a container's snapshot sits on it; gc takes it later
            events.append(("Deleted", layer.chain_id))
        for digest in [image.manifest_digest, image.id] + [layer.digest for layer in image.layers]:
            if digest not in blobs_in_use and self.content.has(digest):
                self.content.delete(digest)
        return events

    def discard_unused(self, digests):
        """Delete those of `digests` no image references (clean-up after a failed import or load)."""
        in_use, _ = self._in_use()
        for digest in digests:
            if digest not in in_use and self.content.has(digest):
                self.content.delete(digest)

    def _in_use(self):
        blobs, chains = set(), set()
        for manifest_digest, image_id, layers in self._db.execute(
                "SELECT manifest_digest, id, layers FROM images"):
            blobs.update((manifest_digest, image_id))
            for layer in json.loads(layers):
                blobs.add(layer["digest"])
                chains.add(layer["chain_id"])
        return blobs, chains

    def prune(self, all_images=False, grace_seconds=600, select=None):
        """Remove dangling (or, with all_images, unused) images and unreferenced data.

        `select(image)`, if given, must also accept an image for it to go.
        Returns (events, bytes reclaimed).  Blobs no image references are
        deleted when older than `grace_seconds` (a pull may be writing them).
        """
        events = []
        before = sum(self.disk_usage())
        for image in self.list():
            if (image.tag_refs and not all_images) or self.users(image.id) or (select and not select(image)):
                continue
            with self._transaction() as db:
                db.execute("DELETE FROM refs WHERE image_id = ?", (image.id,))
            events += [("Untagged", references.parse(n).familiar) for n in image.tag_refs + image.digest_refs]
            events += self._delete(image)
        blobs, chains = self._in_use()
        self.content.gc(blobs, grace_seconds)
        self.snapshots.gc(chains, grace_seconds)
        return events, max(0, before - sum(self.disk_usage()))

    def disk_usage(self):
        """(bytes of blobs, bytes of snapshots) on disk."""
        blob_bytes = sum(os.stat(self.content.path(d)).st_blocks * 512 for d in self.content.digests())
        snapshot_bytes = sum(self.snapshots.usage(c)[0] for c in self.snapshots.committed())
        return blob_bytes, snapshot_bytes
