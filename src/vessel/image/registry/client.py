"""An HTTP client for one registry endpoint (OCI distribution spec, /v2/ API).

Handles the three ways registries authenticate -- none, Basic, and Docker's
Bearer token flow (WWW-Authenticate realm/service/scope, tokens cached per
scope set) -- and retries 5xx, 429 and connection failures with bounded
exponential backoff. Credentials and tokens are only ever sent to the
endpoint's own host and the token realm; error messages carry the method,
host and path, never query strings or headers.
"""

import base64
import hashlib
import threading
import time
import urllib.parse

import httpx

from vessel.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from vessel.image.reference import validate_digest

__all__ = ["Challenge", "Client", "MANIFEST_ACCEPT", "parse_challenges", "pull_scope", "push_scope"]

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
MANIFEST_MAX_BYTES = 4 << 20
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 10.0
USER_AGENT = "vessel/0.1"


def pull_scope(repository):
    return f"repository:{repository}:pull"


def push_scope(repository):
    return f"repository:{repository}:pull,push"


class Challenge:
    """One WWW-Authenticate challenge: scheme ("bearer"/"basic") and its parameters."""

    __slots__ = ("scheme", "params")

    def __init__(self, scheme, params):
        self.scheme = scheme.lower()
        self.params = params

    def __repr__(self):
        return f"Challenge({self.scheme!r}, {self.params!r})"


def parse_challenges(header):
    """Parse `Bearer realm="x",service="y", Basic realm="z"` into Challenges (RFC 7235)."""
    challenges = []
    text = header or ""
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        start = i
        while i < n and text[i] not in " ,":
            i += 1
        scheme = text[start:i]
        if not scheme:
            break
        params = {}
        while True:
            j = i
            while j < n and text[j] in " ,":
                j += 1
            k = j
            while k < n and text[k] not in "= ,":
                k += 1
            if k >= n or text[k] != "=" or k == j:
                i = j
                break  # next token is a new scheme
            name = text[j:k].lower()
            k += 1
            if k < n and text[k] == '"':
                k += 1
                value = []
                while k < n and text[k] != '"':
                    if text[k] == "\\" and k + 1 < n:
                        k += 1
                    value.append(text[k])
                    k += 1
                k += 1
                params[name] = "".join(value)
            else:
                end = k
                while end < n and text[end] not in " ,":
                    end += 1
                params[name] = text[k:end]
                k = end
            i = k
        challenges.append(Challenge(scheme, params))
    return challenges


_STATUS_MESSAGES = {401: "unauthorized: authentication required",
                    403: "denied: requested access to the resource is denied"}


def registry_message(response):
    """`code: message` from a registry's JSON error body, or the HTTP status text."""
    fallback = _STATUS_MESSAGES.get(response.status_code,
                                    f"{response.status_code} {response.reason_phrase}")
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        code = str(first.get("code", "")).lower().replace("_", " ")
        message = str(first.get("message", "")).strip()
        if code and message:
            return f"{code}: {message}"
        return code or message or fallback
    except Exception:
        return fallback


def describe(exc):
    """A transport failure in a few words (httpx messages carry no URLs or headers)."""
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class _Incomplete(Exception):
    """A blob stream ended before its declared size."""


class Client:
    """The /v2/ API of one endpoint, for any number of repositories; thread-safe."""

    def __init__(self, endpoint, credentials=None, retries=4, backoff=0.5, timeout=60.0):
        self.endpoint = endpoint
        self.credentials = credentials
        self.retries = max(1, retries)
        self.backoff = backoff
        self.base = endpoint.url
        self._http = httpx.Client(verify=endpoint.verify_tls, headers={"User-Agent": USER_AGENT},
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)))
        self._lock = threading.Lock()
        self._pinged = False
        self._challenge = None
        self._tokens = {}

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def host(self):
        return self.endpoint.host

    def _where(self, method, url):
        url = httpx.URL(url)
        return f"{method} {url.scheme}://{url.host}{':' + str(url.port) if url.port else ''}{url.path}"

    def _sleep(self, attempt, retry_after=None):
        """Exponential backoff, or the server's Retry-After (seconds), capped at MAX_BACKOFF."""
        delay = self.backoff * (2 ** attempt)
        if retry_after and retry_after.isdigit():
            delay = max(delay, int(retry_after))
        time.sleep(min(delay, MAX_BACKOFF))

    # -- authentication --------------------------------------------------

    def ping(self):
        """GET /v2/ once: learn how the endpoint authenticates (and fall back to HTTP if allowed)."""
        with self._lock:
            if self._pinged:
                return
            try:
                response = self._send_with_retries("GET", self.base + "/v2/", {}, None)
            except Unavailable:
                if not (self.endpoint.http_fallback and self.base.startswith("https://")):
                    raise
                self.base = "http://" + self.base[len("https://"):]
                response = self._send_with_retries("GET", self.base + "/v2/", {}, None)
            if response.status_code == 401:
                challenges = parse_challenges(response.headers.get("WWW-Authenticate"))
                by_scheme = {c.scheme: c for c in challenges}
                self._challenge = by_scheme.get("bearer") or by_scheme.get("basic")
                if self._challenge is None:
                    raise Unavailable(f"{self.host}: unsupported authentication scheme")
            elif response.status_code != 200:
                raise Unavailable(
                    f"{self.host}: not a registry (GET /v2/ answered {response.status_code})")
            self._pinged = True

    def _authorization(self, scopes):
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if self.credentials is None or self.credentials.username is None:
                return None
            pair = f"{self.credentials.username}:{self.credentials.password.value}"
            return "Basic " + base64.b64encode(pair.encode()).decode()
        token = self._token(tuple(sorted(set(scopes))), challenge)
        return f"Bearer {token}" if token else None

    def _token(self, scopes, challenge, refresh=False):
        with self._lock:
            cached = self._tokens.get(scopes)
            if cached and not refresh and cached[1] > time.monotonic():
                return cached[0]
            token, lifetime = self._fetch_token(challenge, scopes)
            self._tokens[scopes] = (token, time.monotonic() + max(lifetime - 10, 0))
            return token

    def _fetch_token(self, challenge, scopes):
        realm = challenge.params.get("realm", "")
        if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise Unavailable(f"{self.host}: token realm is not an http(s) URL")
        service = challenge.params.get("service")
        creds = self.credentials
        try:
            response = None
            if creds is not None and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token.value,
                        "client_id": "vessel", "scope": " ".join(scopes)}
                if service:
                    form["service"] = service
                response = self._http.post(realm, data=form)
                if response.status_code in (404, 405):
                    response = None  # the realm does not speak OAuth2: plain GET below
            if response is None:
                params = [("scope", s) for s in scopes]
                if service:
                    params.append(("service", service))
                auth = None
                if creds is not None and creds.username and creds.password:
                    params.append(("account", creds.username))
                    auth = (creds.username, creds.password.value)
                response = self._http.get(realm, params=params, auth=auth)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{self.host}: token server unreachable: {describe(exc)}") from None
        if response.status_code in (401, 403):
            if self.credentials is not None:
                raise PermissionDenied(f"{self.host}: unauthorized: incorrect username or password")
            raise PermissionDenied(f"{self.host}: unauthorized: authentication required")
        if response.status_code != 200:
            raise Unavailable(f"{self.host}: token server answered {response.status_code}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = int(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not token:
            raise Unavailable(f"{self.host}: token server sent no token")
        return token, lifetime

    # -- requests --------------------------------------------------------

    def _same_origin(self, url):
        base = httpx.URL(self.base)
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def _send_with_retries(self, method, url, headers, content, stream=False, retry=True,
                           follow=False):
        attempts = self.retries if retry else 1
        last = retry_after = None
        for attempt in range(attempts):
            if attempt:
                self._sleep(attempt - 1, retry_after)
            try:
                request = self._http.build_request(method, url, headers=headers, content=content)
                response = self._http.send(request, stream=stream, follow_redirects=follow)
            except httpx.TransportError as exc:
                last = describe(exc)
                continue
            if response.status_code in RETRY_STATUSES and retry:
                response.read()
                response.close()
                last = registry_message(response)
                retry_after = response.headers.get("Retry-After")
                continue
            return response
        where = self._where(method, url)
        raise Unavailable(f"{where}: {last} (gave up after {attempts} attempt{'s' * (attempts > 1)})")

    def request(self, method, url, scopes, what, expect=(200,), headers=None, content=None,
                stream=False, retry=True, follow=False):
        """Send an authorised request; map unexpected answers to vessel errors.

        `url` is a path below the endpoint or an absolute URL (an upload Location);
        `what` names the object in error messages ("manifest for x:y").
        """
        self.ping()
        url = httpx.URL(self.base + "/").join(url)
        headers = dict(headers or {})
        send_auth = self._same_origin(url)
        for refreshed in (False, True):
            if send_auth:
                authorization = self._authorization(scopes)
                if authorization:
                    headers["Authorization"] = authorization
            response = self._send_with_retries(method, url, headers, content, stream, retry, follow)
            if response.status_code in expect:
                return response
            if stream:
                response.read()
            response.close()
            if (response.status_code == 401 and not refreshed and send_auth
                    and self._challenge is not None and self._challenge.scheme == "bearer"):
                challenge = next((c for c in parse_challenges(response.headers.get("WWW-Authenticate"))
                                  if c.scheme == "bearer"), None)
                if challenge is not None and challenge.params.get("scope"):
                    scopes = list(scopes) + challenge.params["scope"].split(" ")
                self._token(tuple(sorted(set(scopes))), self._challenge, refresh=True)
                continue
            break
        self._raise_for(response, what)

    def _raise_for(self, response, what):
        status = response.status_code
        message = registry_message(response)
        if status == 404:
            raise NotFound(f"{what} not found: {message}")
        if status in (401, 403):
            raise PermissionDenied(f"{what}: {message}")
        if status in RETRY_STATUSES:
            raise Unavailable(f"{what}: registry {self.host} answered {message}")
        raise InvalidArgument(f"{what}: registry {self.host} answered {message}")

    # -- the API ---------------------------------------------------------

    def get_manifest(self, repository, reference, what):
        """Fetch a manifest or index by tag or digest; returns (bytes, media type, digest).

        The body is checked against the digest asked for, or against the
        Docker-Content-Digest header when asked by tag.
        """
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                                [pull_scope(repository)], what,
                                headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        try:
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > MANIFEST_MAX_BYTES:
                raise InvalidArgument(f"{what}: manifest larger than {MANIFEST_MAX_BYTES} bytes")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MANIFEST_MAX_BYTES:
                    raise InvalidArgument(f"{what}: manifest larger than {MANIFEST_MAX_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise Unavailable(f"{what}: connection failed: {describe(exc)}") from None
        finally:
            response.close()
        body = bytes(body)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        expected = reference if ":" in reference else response.headers.get("Docker-Content-Digest")
        algorithm = "sha256"
        if expected:
            validate_digest(expected)
            algorithm = expected.split(":")[0]
        digest = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
        if expected and digest != expected:
            raise InvalidArgument(f"{what}: digest mismatch: expected {expected}, got {digest}")
        return body, media_type, digest

    def blob_size(self, repository, digest, scopes=None):
        """HEAD a blob: its size, or None when the repository does not have it."""
        validate_digest(digest)
        try:
            response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                                    scopes or [pull_scope(repository)], f"blob {digest}",
                                    follow=True)
        except NotFound:
            return None
        return int(response.headers.get("Content-Length") or 0)

    def fetch_blob(self, repository, digest, size, writer, on_bytes=None, cancelled=None):
        """Stream a blob into `writer`, resuming from writer.offset with Range requests.

        Retries broken streams (bounded), each time resuming where the data
        stopped. Does not commit. `cancelled()` returning True stops early.
        """
        validate_digest(digest)
        what = f"blob {digest}"
        failures = 0
        while True:
            if size is not None and writer.offset >= size:
                return
            headers = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
            try:
                response = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                                        [pull_scope(repository)], what, expect=(200, 206, 416),
                                        headers=headers, stream=True, follow=True)
                try:
                    self._receive(response, writer, size, on_bytes, cancelled)
                finally:
                    response.close()
                return
            except (httpx.TransportError, _Incomplete) as exc:
                failures += 1
                if failures >= self.retries:
                    reason = "stream ended early" if isinstance(exc, _Incomplete) else describe(exc)
                    raise Unavailable(f"{what}: download failed after {failures} attempts "
                                      f"({reason}, {writer.offset} bytes kept for resuming)") from None
                self._sleep(failures - 1)

    @staticmethod
    def _receive(response, writer, size, on_bytes, cancelled):
        skip = 0
        if response.status_code == 416:
            return  # nothing past our offset: the commit will check what we have
        if response.status_code == 206:
            first = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if first != str(writer.offset):
                raise InvalidArgument(f"registry answered range {first or '?'}, asked {writer.offset}")
        elif writer.offset:
            skip = writer.offset  # the server ignored Range: drop what we already have
        for chunk in response.iter_raw():
            if cancelled is not None and cancelled():
                return
            if skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
                if not chunk:
                    continue
            writer.write(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        if size is not None and writer.offset < size:
            raise _Incomplete()

    def mount_blob(self, repository, digest, source):
        """Try a cross-repository mount; True if mounted, else an upload Location to use."""
        validate_digest(digest)
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/?{query}",
                                [push_scope(repository), pull_scope(source)],
                                f"mount of blob {digest}", expect=(201, 202))
        if response.status_code == 201:
            return True
        return response.headers.get("Location") or self.start_upload(repository)

    def start_upload(self, repository):
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/",
                                [push_scope(repository)], f"upload to {repository}", expect=(202,))
        location = response.headers.get("Location")
        if not location:
            raise InvalidArgument(f"upload to {repository}: registry {self.host} sent no Location")
        return location

    def upload_blob(self, repository, digest, handle, size, location=None, chunk_size=8 << 20,
                    on_bytes=None):
        """Chunked upload: PATCH with Content-Range per chunk, then PUT ?digest=."""
        validate_digest(digest)
        scopes = [push_scope(repository)]
        what = f"upload of blob {digest}"
        location = location or self.start_upload(repository)
        offset = 0
        while offset < size:
            chunk = handle.read(min(chunk_size, size - offset))
            if not chunk:
                raise InvalidArgument(f"{what}: local blob shorter than {size} bytes")
            response = self.request("PATCH", location, scopes, what, expect=(202,), retry=False,
                                    content=chunk, headers={
                                        "Content-Type": "application/octet-stream",
                                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                                        "Content-Length": str(len(chunk))})
            location = response.headers.get("Location") or location
            offset += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        url = httpx.URL(self.base + "/").join(location).copy_merge_params({"digest": digest})
        self.request("PUT", str(url), scopes, what, expect=(201,), retry=False, content=b"",
                     headers={"Content-Length": "0"})

    def put_manifest(self, repository, reference, body, media_type, what):
        """PUT a manifest under a tag or digest; returns the digest the registry reports."""
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}",
                                [push_scope(repository)], what, expect=(201,), content=body,
                                headers={"Content-Type": media_type})
        return response.headers.get("Docker-Content-Digest")
