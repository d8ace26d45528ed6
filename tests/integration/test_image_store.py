"""ImageStore: registering unpacks layers once, lookups, Docker's removal rules, prune."""

import os

import pytest

from image_fixtures import build_image, directory, file, make_tar
from vessel.errors import Conflict, InvalidArgument, NotFound
from vessel.image.reference import parse
from vessel.image.store import ImageStore

BASE = make_tar(directory("etc"), file("etc/os-release", b"base"), file("bin/sh", b"#!", 0o755))
APP = make_tar(file("app/run", b"app" * 1000, 0o755))
OTHER = make_tar(file("other", os.urandom(50_000)))


@pytest.fixture
def store(tmp_path):
    with ImageStore(str(tmp_path)) as store:
        yield store


def test_register_and_lookup(store):
    image = build_image(store, [BASE, APP], "example/app:1", ['CMD ["run"]', "ENV X=1"])
    assert image.repo_tags == ["example/app:1"] and image.repo_digests == []
    assert image.config.config.cmd == ["run"] and image.config.config.env == ["X=1"]
    assert len(image.layers) == 2 and image.size == len(b"base") + 2 + 3000
    for name in ("example/app:1", "docker.io/example/app:1", image.id, image.id[7:], image.id[7:19],
                 image.id[:15]):
        assert store.get(name).id == image.id
    with pytest.raises(NotFound, match="No such image: example/app:latest"):
        store.get("example/app")
    with pytest.raises(NotFound, match="No such image"):
        store.get("sha256:" + "0" * 64)
    assert [i.id for i in store.list()] == [image.id]


def test_layers_shared_and_unpacked_once(store):
    first = build_image(store, [BASE, APP], "a:1")
    second = build_image(store, [BASE, OTHER], "b:1")
    assert first.layers[0].chain_id == second.layers[0].chain_id
    assert len(store.snapshots.committed()) == 3


def test_tag_moves(store):
    old = build_image(store, [BASE], "app:latest")
    new = build_image(store, [APP], "app:latest")
    assert store.get("app").id == new.id
    assert store.get(old.id).repo_tags == []
    store.tag(old.id, "app:old")
    assert store.get("app:old").id == old.id
    with pytest.raises(InvalidArgument, match="digest"):
        store.tag(old.id, "app@sha256:" + "a" * 64)
    with pytest.raises(InvalidArgument, match="invalid reference"):
        store.tag(old.id, "UPPER")


def test_repo_digest_recorded_for_pulls(store):
    image = build_image(store, [BASE], None)
    registered = store.register(parse("localhost:5000/x:1"), image.manifest_digest)
    assert registered.repo_digests == [f"localhost:5000/x@{image.manifest_digest}"]
    assert store.get(f"localhost:5000/x@{image.manifest_digest}").id == image.id


def test_remove_by_tag_untags_then_deletes(store, tmp_path):
    image = build_image(store, [BASE, APP], "app:1")
    store.tag("app:1", "app:2")
    assert store.remove("app:1") == [("Untagged", "app:1")]
    events = store.remove("app:2")
    assert events[:2] == [("Untagged", "app:2"), ("Deleted", image.id)]
    assert {kind for kind, _ in events[2:]} == {"Deleted"} and len(events) == 4  # both layers
    assert store.list() == [] and store.snapshots.committed() == []
    assert list(store.content.digests()) == []


def test_remove_by_id_multiple_repositories_needs_force(store):
    image = build_image(store, [BASE], "one:1")
    store.tag("one:1", "two:1")
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        store.remove(image.short_id)
    events = store.remove(image.short_id, force=True)
    assert ("Untagged", "one:1") in events and ("Untagged", "two:1") in events and ("Deleted", image.id) in events


def test_remove_by_id_same_repository(store):
    image = build_image(store, [BASE], "one:1")
    store.tag("one:1", "one:2")
    events = store.remove(image.id)
    assert events[:3] == [("Untagged", "one:1"), ("Untagged", "one:2"), ("Deleted", image.id)]


def test_remove_keeps_shared_layers(store):
    first = build_image(store, [BASE, APP], "a:1")
    build_image(store, [BASE, OTHER], "b:1")
    store.remove("a:1")
    assert sorted(store.snapshots.committed()) == sorted(l.chain_id for l in store.get("b:1").layers)
    assert not store.content.has(first.layers[1].digest) and store.content.has(first.layers[0].digest)


def test_images_in_use(tmp_path):
    users = {}
    with ImageStore(str(tmp_path), users=lambda image_id: users.get(image_id, [])) as store:
        image = build_image(store, [BASE], "app:1")
        users[image.id] = [("c" * 64, False)]
        with pytest.raises(Conflict, match="must force.*cccccccccccc"):
            store.remove("app:1")
        with pytest.raises(Conflict, match="stopped container"):
            store.remove(image.id)
        users[image.id] = [("d" * 64, True)]
        with pytest.raises(Conflict, match="cannot be forced.*running container"):
            store.remove(image.id, force=True)
        assert store.remove("app:1", force=True) == [("Untagged", "app:1")]
        assert store.get(image.id).repo_tags == []  # dangling but kept
        assert store.prune(all_images=True, grace_seconds=0)[0] == []


def test_prune(store):
    dangling = build_image(store, [OTHER], "x:1")
    build_image(store, [APP], "x:1")  # takes the tag; the first image dangles
    kept = build_image(store, [BASE], "keep:1")
    orphan = store.content.put(os.urandom(100_000))
    events, reclaimed = store.prune(grace_seconds=0)
    assert ("Deleted", dangling.id) in events and reclaimed >= 150_000
    assert not store.content.has(orphan)
    assert {i.id for i in store.list()} == {kept.id, store.get("x:1").id}
    events, _ = store.prune(all_images=True, grace_seconds=0)
    assert store.list() == [] and store.snapshots.committed() == []
    assert list(store.content.digests()) == []


def test_register_bad_layer_leaves_no_snapshot(store):
    with pytest.raises(InvalidArgument):
        build_image(store, [BASE[:1500]], "broken:1")
    assert store.snapshots.committed() == [] and store.list() == []
    assert os.listdir(os.path.join(store.snapshots.staging)) == []


def test_register_diff_id_mismatch(store):
    from vessel.image import manifest as manifests
    from vessel.image.archive import create_image

    digest = store.content.put(BASE)
    config = manifests.ImageConfig("amd64", "linux", manifests.ContainerConfig(), [])
    with pytest.raises(InvalidArgument, match="diff_id mismatch"):
        create_image(store, [(manifests.Descriptor(manifests.OCI_LAYER, digest, len(BASE)), "sha256:" + "0" * 64)],
                     config)
    assert store.snapshots.committed() == []


def test_reopen_persists(tmp_path):
    with ImageStore(str(tmp_path)) as store:
        image = build_image(store, [BASE], "persist:1")
    with ImageStore(str(tmp_path)) as store:
        assert store.get("persist:1").id == image.id
        assert os.path.exists(tmp_path / "image/images.db")


def test_remove_digest_reference_only_untags(store):
    image = build_image(store, [BASE], None)
    store.register("localhost:5000/x:1", image.manifest_digest)
    digest_ref = f"localhost:5000/x@{image.manifest_digest}"
    assert store.remove(digest_ref) == [("Untagged", digest_ref)]
    assert store.get("localhost:5000/x:1").repo_digests == []
    events = store.remove("localhost:5000/x:1")
    assert events[:2] == [("Untagged", "localhost:5000/x:1"), ("Deleted", image.id)]


def test_register_index_picks_platform(store):
    from vessel.image import manifest as manifests

    image = build_image(store, [BASE], None)
    size = store.content.size(image.manifest_digest)
    index = manifests.Index(manifests.OCI_INDEX, [
        manifests.Descriptor(manifests.OCI_MANIFEST, image.manifest_digest, size,
                             platform=manifests.Platform("linux", "amd64"))])
    index_digest = store.content.put(index.to_bytes())
    registered = store.register("multi:1", index_digest)
    assert registered.manifest_digest == image.manifest_digest
    assert registered.repo_digests == [f"multi@{index_digest}"]
    with pytest.raises(NotFound, match="no matching manifest for linux/arm64"):
        store.register("multi:1", index_digest, platform="linux/arm64")
