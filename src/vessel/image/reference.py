"""Image references and digests, normalised the way Docker does.

Grammar (distribution/reference)::

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path-component ["/" path-component]*
    domain    := host [":" port]          host: DNS name, IPv4 or [IPv6]
    tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest    := algorithm ":" hex

`busybox` normalises to `docker.io/library/busybox:latest`; the first
component is a registry only if it contains "." or ":" or is `localhost`
(or has an uppercase letter, which no repository may have).
"""

import re

from vessel.errors import InvalidArgument

__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "Reference", "is_full_id", "parse", "validate_digest"]

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_ANY_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX64_RE = re.compile(r"[a-f0-9]{64}")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX_CHARS = frozenset("0123456789abcdef")


def validate_digest(text):
    """Return `text` if it is `sha256:<64 hex>` (or sha384/sha512); InvalidArgument otherwise.

    Called before any path or URL is built from a digest (CVE-2024-3727).
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid digest {text!r}: not a string")
    algorithm, sep, hexpart = text.partition(":")
    if not sep:
        raise InvalidArgument(f"invalid digest {text!r}: missing algorithm")
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is None:
        raise InvalidArgument(f"invalid digest {text!r}: unsupported algorithm {algorithm!r}")
    if len(hexpart) != expected or not _HEX_CHARS.issuperset(hexpart):
        raise InvalidArgument(
            f"invalid digest {text!r}: expected {expected} lowercase hex characters")
    return text


class Reference:
    """A normalised image reference; immutable."""

    __slots__ = ("registry", "repository", "tag", "digest")

    def __init__(self, registry, repository, tag=None, digest=None):
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest

    @property
    def name(self):
        """`docker.io/library/busybox`: registry and repository, no tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self):
        """Docker's short name: `busybox`, `user/app`, `localhost:5000/a/b`."""
        if self.registry == DEFAULT_REGISTRY:
            if self.repository.startswith(OFFICIAL_PREFIX) and self.repository.count("/") == 1:
                return self.repository[len(OFFICIAL_PREFIX):]
            return self.repository
        return self.name

    @property
    def familiar(self):
        """Docker's display form: `busybox:latest`, `busybox@sha256:...`."""
        return self.familiar_name + self._suffix()

    def _suffix(self):
        text = ""
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag):
        if not _TAG_RE.fullmatch(tag or ""):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest):
        return Reference(self.registry, self.repository, None, validate_digest(digest))

    def __str__(self):
        return self.name + self._suffix()

    def __repr__(self):
        return f"Reference({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))


def _bad(text):
    raise InvalidArgument(f"invalid reference format: {text!r}")


def parse(text, default_tag=True):
    """Parse and normalise an image reference; InvalidArgument on bad input.

    With `default_tag`, a reference without tag or digest gets `latest`.
    """
    if not isinstance(text, str) or not text:
        raise InvalidArgument("invalid reference format: empty reference")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, _, digest = remainder.partition("@")
        if not _ANY_DIGEST_RE.fullmatch(digest):
            _bad(text)
        try:
            validate_digest(digest)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {exc}") from None
    tag = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            _bad(text)
    if not remainder:
        _bad(text)
    if len(remainder) > NAME_TOTAL_MAX:
        raise InvalidArgument(
            f"invalid reference format: repository name must not be more than {NAME_TOTAL_MAX} characters")

    first, sep, rest = remainder.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        registry, path = first, rest
        if not _DOMAIN_RE.fullmatch(registry):
            _bad(text)
    else:
        registry, path = DEFAULT_REGISTRY, remainder
    if registry == LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if path.lower() != path:
        raise InvalidArgument(
            f"invalid reference format: repository name ({path}) must be lowercase")
    if not _PATH_RE.fullmatch(path):
        _bad(text)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        if _HEX64_RE.fullmatch(path):
            raise InvalidArgument(
                f"invalid repository name ({path}), cannot specify 64-byte hexadecimal strings")
        path = OFFICIAL_PREFIX + path
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)


def is_full_id(text):
    """True for `sha256:<64 hex>` or a bare 64-hex image id."""
    return bool(_HEX64_RE.fullmatch(text.removeprefix("sha256:")))
