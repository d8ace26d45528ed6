"""Registries: pull, push, login/logout over the OCI distribution API (httpx).

    pull(store, ref, platform="linux/amd64", progress=None, concurrency=3) -> Image
    push(store, ref, progress=None) -> manifest digest
    auth.login(registry, username, password, config_path=None); auth.logout(registry)

Mirrors and insecure registries: see hosts.py; credentials: see credentials.py.
"""

from vessel.image.registry.auth import login, logout
from vessel.image.registry.pull import pull
from vessel.image.registry.push import push

__all__ = ["login", "logout", "pull", "push"]
