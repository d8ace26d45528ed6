"""Reference parsing follows Docker's normalisation (distribution/reference)."""

import pytest

from vessel.errors import InvalidArgument
from vessel.image.reference import is_full_id, parse, validate_digest

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
    ("user/app/sub", "docker.io/user/app/sub:latest", "user/app/sub:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"),
    ("quay.io/podman/stable", "quay.io/podman/stable:latest", "quay.io/podman/stable:latest"),
    ("[::1]:5000/img:tag", "[::1]:5000/img:tag", "[::1]:5000/img:tag"),
    ("Registry.Example.com/app", "Registry.Example.com/app:latest", "Registry.Example.com/app:latest"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
    (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}", f"busybox:1@{D}"),
    (f"localhost:5000/x@{D}", f"localhost:5000/x@{D}", f"localhost:5000/x@{D}"),
    ("a_b.c-d__e", "docker.io/library/a_b.c-d__e:latest", "a_b.c-d__e:latest"),
    ("a---b", "docker.io/library/a---b:latest", "a---b:latest"),
    ("x:" + "T" * 128, "docker.io/library/x:" + "T" * 128, "x:" + "T" * 128),
    ("x:_tag.1-2", "docker.io/library/x:_tag.1-2", "x:_tag.1-2"),
])
def test_normalisation(text, full, familiar):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


def test_fields():
    ref = parse("localhost:5000/a/b:t")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == ("localhost:5000", "a/b", "t", None)
    assert ref.name == "localhost:5000/a/b"
    ref = parse(f"busybox@{D}")
    assert ref.tag is None and ref.digest == D
    assert parse("busybox", default_tag=False).tag is None


def test_with_tag_and_digest():
    ref = parse("busybox:1")
    assert str(ref.with_tag("2")) == "docker.io/library/busybox:2"
    assert str(ref.with_digest(D)) == f"docker.io/library/busybox@{D}"
    with pytest.raises(InvalidArgument):
        ref.with_tag("-bad")
    with pytest.raises(InvalidArgument):
        ref.with_digest("sha256:abc")


def test_equality_and_hash():
    assert parse("busybox") == parse("docker.io/library/busybox:latest")
    assert len({parse("busybox"), parse("library/busybox:latest")}) == 1


@pytest.mark.parametrize("text", [
    "",
    "Busybox",
    "library/Busybox",
    "user/App:tag",
    "busybox:",
    "busybox:-tag",
    "busybox:.tag",
    "busybox:" + "t" * 129,
    "busybox:tag:tag",
    ":tag",
    "/busybox",
    "busybox/",
    "a//b",
    "-busybox",
    "busybox-",
    "a_-b",
    "a..b",
    "busy box",
    "busybox@sha256:abc",
    "busybox@sha256:" + "A" * 64,
    "busybox@md5:" + "a" * 32,
    "busybox@",
    "@" + D,
    "localhost:port/x",
    "-host.com/x",
    "host-.com/x",
    "a" * 64,
    "x" * 256,
    "ex%ample.com/x",
])
def test_rejected(text):
    with pytest.raises(InvalidArgument, match="invalid"):
        parse(text)


def test_uppercase_message():
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        parse("Busybox")


@pytest.mark.parametrize("text", [D, "sha512:" + "0" * 128, "sha384:" + "f" * 96])
def test_digest_valid(text):
    assert validate_digest(text) == text


@pytest.mark.parametrize("text", [
    "sha256:../../../../etc/passwd",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "g" * 64,
    "sha256",
    "md5:" + "a" * 32,
    "sha256:" + "a" * 63 + "/",
    None,
    "",
])
def test_digest_invalid(text):
    with pytest.raises(InvalidArgument, match="invalid digest"):
        validate_digest(text)


def test_is_full_id():
    assert is_full_id(D) and is_full_id("a" * 64)
    assert not is_full_id("abc") and not is_full_id("busybox")
