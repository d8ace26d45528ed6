"""Where a registry is reached: scheme, TLS checking and mirrors.

Configured by a small JSON file, looked up as `<root>/registries.json`, then
`/etc/vessel/registries.json` (the first that exists wins)::

    {"registries": {
        "docker.io":      {"mirrors": ["http://127.0.0.1:5001", "mirror.example.com"]},
        "quay.io":        {"mirrors": ["https://quay-cache.example.com/v2-prefix"]},
        "build.lan:5000": {"insecure": true}
    }}

`mirrors` (any registry, not only Docker Hub) are tried in order for pulls,
then the registry itself; pushes always go to the registry. A mirror without
a scheme uses HTTPS (plain HTTP for loopback hosts and hosts marked insecure).
`insecure: true` means HTTPS without certificate checks, falling back to
plain HTTP. Loopback registries (localhost, 127.0.0.0/8, ::1) always use plain
HTTP.
"""

import ipaddress
import json
import os
import urllib.parse

from vessel.errors import InvalidArgument

__all__ = ["Endpoint", "RegistryConfig", "is_loopback", "normalize_host", "DOCKER_HUB"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "https://registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
SYSTEM_CONFIG = "/etc/vessel/registries.json"


def normalize_host(text):
    """`https://index.docker.io/v1/` -> `docker.io`; `HTTP://Reg:5000/` -> `reg:5000`."""
    text = (text or "").strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc
    host = text.split("/", 1)[0].rpartition("@")[2].lower()  # never keep user:password@
    if not host:
        raise InvalidArgument("invalid registry address: empty")
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _hostname(host):
    if host.startswith("["):
        return host[1:host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host):
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Endpoint:
    """One base URL serving the /v2/ API for `registry`."""

    __slots__ = ("url", "host", "verify_tls", "http_fallback", "mirror")

    def __init__(self, url, verify_tls=True, http_fallback=False, mirror=False):
        self.url = url.rstrip("/")
        self.host = normalize_host(url)
        self.verify_tls = verify_tls
        self.http_fallback = http_fallback
        self.mirror = mirror

    def __repr__(self):
        return f"Endpoint({self.url!r})"


class RegistryConfig:
    """Mirrors and insecure flags per registry host."""

    def __init__(self, registries=None):
        self.registries = registries or {}

    @classmethod
    def load(cls, root=None, path=None):
        """Read `path`, else `<root>/registries.json`, else the system file; empty when none exists."""
        candidates = [path] if path else [os.path.join(root, "registries.json")] if root else []
        if not path:
            candidates.append(SYSTEM_CONFIG)
        for candidate in candidates:
            try:
                with open(candidate, "rb") as handle:
                    raw = handle.read()
            except FileNotFoundError:
                continue
            return cls.parse(raw, candidate)
        return cls()

    @classmethod
    def parse(cls, raw, source="registries.json"):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"{source}: invalid JSON: {exc}") from None
        entries = data.get("registries", {}) if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise InvalidArgument(f'{source}: expected {{"registries": {{host: {{...}}}}}}')
        registries = {}
        for host, entry in entries.items():
            if not isinstance(entry, dict):
                raise InvalidArgument(f"{source}: registry {host!r}: expected an object")
            mirrors = entry.get("mirrors", [])
            insecure = entry.get("insecure", False)
            if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
                raise InvalidArgument(f"{source}: registry {host!r}: mirrors must be a list of URLs")
            if not isinstance(insecure, bool):
                raise InvalidArgument(f"{source}: registry {host!r}: insecure must be true or false")
            unknown = set(entry) - {"mirrors", "insecure"}
            if unknown:
                raise InvalidArgument(f"{source}: registry {host!r}: unknown key {sorted(unknown)[0]!r}")
            registries[normalize_host(host)] = {"mirrors": mirrors, "insecure": insecure}
        return cls(registries)

    def insecure(self, host):
        return self.registries.get(normalize_host(host), {}).get("insecure", False)

    def endpoint(self, registry):
        """The registry's own endpoint."""
        host = normalize_host(registry)
        if host == DOCKER_HUB:
            return Endpoint(DOCKER_HUB_API)
        if is_loopback(host):
            return Endpoint("http://" + host)
        if self.insecure(host):
            return Endpoint("https://" + host, verify_tls=False, http_fallback=True)
        return Endpoint("https://" + host)

    def _mirror_endpoint(self, text):
        if "://" in text:
            scheme = urllib.parse.urlsplit(text).scheme
            if scheme not in ("http", "https"):
                raise InvalidArgument(f"mirror {text!r}: only http and https are supported")
            insecure = self.insecure(normalize_host(text))
            return Endpoint(text, verify_tls=not insecure, mirror=True)
        endpoint = self.endpoint(text)
        endpoint.mirror = True
        return endpoint

    def endpoints(self, registry, push=False):
        """Endpoints to try in order: mirrors (pulls only), then the registry."""
        own = self.endpoint(registry)
        if push:
            return [own]
        mirrors = self.registries.get(normalize_host(registry), {}).get("mirrors", [])
        return [self._mirror_endpoint(m) for m in mirrors] + [own]
