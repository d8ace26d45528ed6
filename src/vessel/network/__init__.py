"""Bridge networks for vessel containers: addresses, veth pairs, published ports, embedded DNS.

The engine's entry points (see docs/network.md)::

    nets = Networks(root)
    ep = nets.attach("mynet", container_id, "/proc/<pid>/ns/net", aliases=["web"], name="web")
    nets.publish(ep.ipv4, [("", 8080, 80, "tcp")])
    ...
    nets.detach(ep)          # also drops its published ports

Module-level `attach`, `detach`, `publish` and `unpublish` take the state root
as their first argument for callers that keep no Networks object.
"""

__all__ = ["DEFAULT_NETWORK", "Endpoint", "Networks", "attach", "detach", "publish", "unpublish"]


def __getattr__(name):
    """The manager (firewall, netlink) loads on first use: `vessel.network.store` stays light."""
    if name in ("DEFAULT_NETWORK", "Endpoint", "Networks"):
        from vessel.network import manager

        return getattr(manager, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def attach(root, network, container_id, netns_path, ip=None, aliases=(), mac=None, hostname=None, name=None):
    """Networks(root).attach(...)."""
    from vessel.network.manager import Networks

    with Networks(root) as nets:
        return nets.attach(network, container_id, netns_path, ip=ip, aliases=aliases, mac=mac,
                           hostname=hostname, name=name)


def detach(root, endpoint):
    """Networks(root).detach(endpoint)."""
    from vessel.network.manager import Networks

    with Networks(root) as nets:
        nets.detach(endpoint)


def publish(root, container_ip, ports):
    """Networks(root).publish(container_ip, ports)."""
    from vessel.network.manager import Networks

    with Networks(root) as nets:
        return nets.publish(container_ip, ports)


def unpublish(root, container_ip, ports=None):
    """Networks(root).unpublish(container_ip, ports)."""
    from vessel.network.manager import Networks

    with Networks(root) as nets:
        return nets.unpublish(container_ip, ports)
