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

from vessel.network.manager import DEFAULT_NETWORK, Endpoint, Networks

__all__ = ["DEFAULT_NETWORK", "Endpoint", "Networks", "attach", "detach", "publish", "unpublish"]


def attach(root, network, container_id, netns_path, ip=None, aliases=(), mac=None, hostname=None, name=None):
    """Networks(root).attach(...)."""
    with Networks(root) as nets:
        return nets.attach(network, container_id, netns_path, ip=ip, aliases=aliases, mac=mac,
                           hostname=hostname, name=name)


def detach(root, endpoint):
    """Networks(root).detach(endpoint)."""
    with Networks(root) as nets:
        nets.detach(endpoint)


def publish(root, container_ip, ports):
    """Networks(root).publish(container_ip, ports)."""
    with Networks(root) as nets:
        return nets.publish(container_ip, ports)


def unpublish(root, container_ip, ports=None):
    """Networks(root).unpublish(container_ip, ports)."""
    with Networks(root) as nets:
        return nets.unpublish(container_ip, ports)
