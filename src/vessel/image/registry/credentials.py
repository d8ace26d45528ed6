"""Registry credentials kept the way Docker keeps them.

`$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`)::

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 user:password>"}},
     "credsStore": "pass",                      # optional: default helper
     "credHelpers": {"ghcr.io": "gh"}}          # optional: helper per host

A helper is the program `docker-credential-<name>` speaking Docker's protocol
(`get`/`store`/`erase` on stdin/stdout). Docker Hub is keyed as
`https://index.docker.io/v1/`. Secrets are wrapped in `Secret` so they never
show up in reprs, logs or error messages.
"""

import base64
import json
import os
import re
import subprocess
import tempfile

from vessel.errors import InvalidArgument, Unavailable
from vessel.image.registry.hosts import DOCKER_HUB, normalize_host

__all__ = ["Credentials", "Secret", "default_config_path", "erase", "lookup", "server_key", "store"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NOT_FOUND = "credentials not found"


class Secret:
    """A string that prints as asterisks."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self):
        return bool(self.value)


class Credentials:
    """A username with a password, or an identity (refresh) token."""

    __slots__ = ("username", "password", "identity_token")

    def __init__(self, username, password=None, identity_token=None):
        self.username = username
        self.password = password if isinstance(password, Secret) else Secret(password or "")
        self.identity_token = (identity_token if isinstance(identity_token, Secret)
                               else Secret(identity_token) if identity_token else None)

    def __repr__(self):
        return f"Credentials(username={self.username!r}, password=********)"


def default_config_path():
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def server_key(registry):
    """The key Docker files a registry's credentials under."""
    host = normalize_host(registry)
    return DOCKER_HUB_KEY if host == DOCKER_HUB else host


def _load(path):
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise InvalidArgument(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: expected a JSON object")
    return data


def _save(path, data):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent="\t")
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _helper_for(data, key):
    helpers = data.get("credHelpers") or {}
    name = helpers.get(key) or helpers.get(normalize_host(key)) or data.get("credsStore")
    if name and not _HELPER_NAME.fullmatch(name):
        raise InvalidArgument(f"invalid credential helper name {name!r}")
    return name


def _run_helper(name, action, payload):
    program = f"docker-credential-{name}"
    try:
        done = subprocess.run([program, action], input=payload.encode(), capture_output=True,
                              timeout=60)
    except FileNotFoundError:
        raise Unavailable(f"credential helper {program}: not found in PATH") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"credential helper {program} {action}: timed out") from None
    output = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0:
        message = output or done.stderr.decode(errors="replace").strip()
        if _NOT_FOUND in message.lower():
            return None
        first_line = message.splitlines()[0] if message else f"exit status {done.returncode}"
        raise Unavailable(f"credential helper {program} {action} failed: {first_line}")
    return output


def _find_entry(auths, key):
    if key in auths:
        return auths[key]
    for stored, entry in auths.items():
        try:
            if normalize_host(stored) == normalize_host(key):
                return entry
        except InvalidArgument:
            continue
    return None


def lookup(registry, config_path=None):
    """Credentials stored for `registry`, or None."""
    data = _load(config_path or default_config_path())
    key = server_key(registry)
    helper = _helper_for(data, key)
    if helper:
        output = _run_helper(helper, "get", key)
        if not output:
            return None
        try:
            reply = json.loads(output)
            username, secret = reply["Username"], reply["Secret"]
        except (ValueError, KeyError, TypeError):
            raise Unavailable(f"credential helper docker-credential-{helper}: malformed reply") from None
        if username == "<token>":
            return Credentials(None, identity_token=secret)
        return Credentials(username, secret)
    entry = _find_entry(data.get("auths") or {}, key)
    if not isinstance(entry, dict):
        return None
    username, password = entry.get("username"), entry.get("password")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(f"invalid auth entry for {key} in docker config") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid auth entry for {key} in docker config")
    if entry.get("identitytoken"):
        return Credentials(username, password, identity_token=entry["identitytoken"])
    if not username:
        return None
    return Credentials(username, password)


def store(registry, credentials, config_path=None):
    """Save credentials for `registry` (in its helper, or base64 in config.json)."""
    path = config_path or default_config_path()
    data = _load(path)
    key = server_key(registry)
    auths = data.setdefault("auths", {})
    helper = _helper_for(data, key)
    if helper:
        _run_helper(helper, "store", json.dumps({
            "ServerURL": key, "Username": credentials.username,
            "Secret": credentials.password.value}))
        auths[key] = {}
    else:
        pair = f"{credentials.username}:{credentials.password.value}".encode()
        auths[key] = {"auth": base64.b64encode(pair).decode()}
    _save(path, data)


def erase(registry, config_path=None):
    """Forget `registry`'s credentials; False if there were none."""
    path = config_path or default_config_path()
    data = _load(path)
    key = server_key(registry)
    auths = data.get("auths") or {}
    found = False
    for stored in list(auths):
        try:
            same = normalize_host(stored) == normalize_host(key)
        except InvalidArgument:
            same = False
        if stored == key or same:
            del auths[stored]
            found = True
    helper = _helper_for(data, key)
    if helper:
        found = _run_helper(helper, "erase", key) is not None or found
    if found:
        _save(path, data)
    return found
