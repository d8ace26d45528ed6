"""Bridges, veth pairs, addresses and routes through netlink (vessel.network.netlink).

Netlink rather than one `ip` process per step: one socket per namespace,
errors come back as errno values, and a container's end of a veth pair is
created directly inside its namespace, named, addressed and up (it never shows
up on the host).
"""

import fcntl
import os
import socket

from vessel.errors import Conflict, InvalidArgument, Unavailable
from vessel.network.ipam import mac_for, pick_ifname
from vessel.network.netlink import (IFF_UP, IFLA_ADDRESS, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND,
                                    IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD, VETH_INFO_PEER,
                                    Netlink, attr, ifinfo)

__all__ = [
    "attach_veth",
    "delete_link",
    "ensure_bridge",
    "free_ifname",
    "host_routes",
    "link_exists",
]

NS_GET_NSTYPE = 0xB703
CLONE_NEWNET = 0x40000000
RT_TABLE_MAIN = 254


def _fail(what, exc):
    return Unavailable(f"{what}: {exc.strerror or exc}")


def _sysctl(path, value):
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def _mac(text):
    return bytes(int(part, 16) for part in text.split(":"))


def link_exists(name):
    with Netlink() as nl:
        return nl.link_index(name) is not None


def ensure_bridge(name, mtu, addresses):
    """Create (or complete) bridge `name` with `addresses` [(ip, prefixlen)], up; True if created."""
    with Netlink() as nl:
        created = False
        try:
            index = nl.link_index(name)
            if index is None:
                # a MAC of its own: otherwise the bridge takes its ports' lowest one and changes with them
                nl.add_link(ifinfo(), [attr(IFLA_IFNAME, name), attr(IFLA_ADDRESS, _mac(mac_for(addresses[0][0]))),
                                       attr(IFLA_LINKINFO, [attr(IFLA_INFO_KIND, "bridge")])])
                created = True
                index = nl.link_index(name)
            have = set(nl.addresses(index))
            for address, prefixlen in addresses:
                if (str(address), prefixlen) not in have:
                    nl.add_address(index, address, prefixlen)
            nl.set_link(index, [attr(IFLA_MTU, mtu)], up=True)
            # 127.0.0.1 -> container after DNAT (published ports), and routing from the bridge
            _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
            _sysctl(f"net/ipv4/conf/{name}/forwarding", "1")
        except OSError as exc:
            if created:
                delete_link(name)
            raise _fail(f"bridge {name}", exc) from None
    return created


def delete_link(name):
    """Delete a link by name; a missing one is not an error."""
    with Netlink() as nl:
        index = nl.link_index(name)
        if index is not None:
            try:
                nl.delete_link(index)
            except OSError as exc:
                if exc.errno != 19:  # ENODEV: gone meanwhile
                    raise _fail(f"delete {name}", exc) from None


def host_routes():
    """Every IPv4/IPv6 destination routed on the host (overlap checks)."""
    with Netlink() as nl:
        return [dst for family in (socket.AF_INET, socket.AF_INET6) for dst, table in nl.routes(family)
                if table == RT_TABLE_MAIN and dst.prefixlen]


def _open_netns(netns_path):
    try:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidArgument(f"network namespace {netns_path}: {exc.strerror}") from None
    try:
        is_netns = fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET  # also for a namespace bind-mounted on a file
    except OSError:
        is_netns = False
    if not is_netns:
        os.close(fd)
        raise InvalidArgument(f"{netns_path} is not a network namespace")
    return fd


def free_ifname(netns_path):
    """The first ethN the namespace at `netns_path` does not have."""
    fd = _open_netns(netns_path)
    try:
        with Netlink(fd) as ns:
            return pick_ifname(ns.links())
    except OSError as exc:
        raise _fail(f"network namespace {netns_path}", exc) from None
    finally:
        os.close(fd)


def attach_veth(bridge, host_ifname, netns_path, ifname, mac, mtu, addresses, gateways):
    """A veth pair: `host_ifname` in `bridge`, its peer in the namespace, configured.

    The peer is named `ifname`, or the first free ethN when None. `addresses` is
    [(ip, prefixlen)], `gateways` the default routes to add when the namespace has
    none for that family yet.  Returns the peer's name.
    """
    fd = _open_netns(netns_path)
    try:
        with Netlink() as host, Netlink(fd) as ns:
            br = host.link_index(bridge)
            if br is None:
                raise Unavailable(f"bridge {bridge} does not exist")
            existing = ns.links()
            ifname = ifname or pick_ifname(existing)
            if ifname in existing:
                raise Conflict(f"interface {ifname} already exists in {netns_path}")
            peer = ifinfo() + b"".join([
                attr(IFLA_IFNAME, ifname), attr(IFLA_ADDRESS, _mac(mac)), attr(IFLA_MTU, mtu),
                attr(IFLA_NET_NS_FD, fd)])
            try:
                # one request: the pair, the host end in the bridge and up, the peer named in the namespace
                # (up later: the kernel cannot open it before the pair is linked)
                host.add_link(ifinfo(flags=IFF_UP, change=IFF_UP), [
                    attr(IFLA_IFNAME, host_ifname), attr(IFLA_MTU, mtu), attr(IFLA_MASTER, br),
                    attr(IFLA_LINKINFO, [attr(IFLA_INFO_KIND, "veth"),
                                         attr(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, peer)])])])
            except OSError as exc:
                if exc.errno == 17:
                    raise Conflict(f"interface {host_ifname} already exists") from None
                raise _fail(f"veth {host_ifname}", exc) from None
            try:
                # hairpin: a container reaching its own published port comes back through its port
                with open(f"/sys/class/net/{host_ifname}/brport/hairpin_mode", "w") as f:
                    f.write("1")
                _configure_peer(ns, ifname, addresses, gateways)
            except OSError as exc:
                delete_link(host_ifname)
                raise _fail(f"configure {ifname} in {netns_path}", exc) from None
            except BaseException:
                delete_link(host_ifname)
                raise
    finally:
        os.close(fd)
    return ifname


def _configure_peer(ns, ifname, addresses, gateways):
    index = ns.link_index(ifname)
    for address, prefixlen in addresses:
        ns.add_address(index, address, prefixlen)
    ns.set_link(index, up=True)
    ns.set_link(ns.link_index("lo"), up=True)
    for gateway in gateways:
        family = socket.AF_INET if gateway.version == 4 else socket.AF_INET6
        if not any(dst.prefixlen == 0 and table == RT_TABLE_MAIN for dst, table in ns.routes(family)):
            ns.add_default_route(gateway, index)
