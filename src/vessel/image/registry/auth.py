"""`vessel login` / `vessel logout`: check credentials against a registry, then keep
them where Docker keeps them (see credentials.py for the format)."""

from vessel.errors import PermissionDenied
from vessel.image.registry import credentials
from vessel.image.registry.client import Client
from vessel.image.registry.hosts import RegistryConfig, normalize_host

__all__ = ["login", "logout"]


def login(registry, username, password, config_path=None, registries=None, **client_options):
    """Verify username/password with `registry`, then store them; returns "Login Succeeded"."""
    host = normalize_host(registry)
    if not username:
        raise PermissionDenied(f"login to {host}: username is required")
    if not password:
        raise PermissionDenied(f"login to {host}: password is required")
    creds = credentials.Credentials(username, password)
    endpoint = (registries or RegistryConfig.load()).endpoint(host)
    with Client(endpoint, creds, **client_options) as client:
        try:
            client.request("GET", "/v2/", [], f"login to {host}")
        except PermissionDenied:
            raise PermissionDenied(
                f"login to {host} failed: unauthorized: incorrect username or password") from None
    credentials.store(host, creds, config_path)
    return "Login Succeeded"


def logout(registry, config_path=None):
    """Forget the credentials for `registry`; returns False if none were stored."""
    return credentials.erase(normalize_host(registry), config_path)
