"""Bridges, veth pairs, addresses and routes through netlink (pyroute2).

Netlink rather than one `ip` process per step: one socket per namespace,
errors come back as errno values, and a container's end of a veth pair is
created directly inside its namespace (it never shows up on the host).
"""

import fcntl
import ipaddress
import os
import secrets

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vessel.errors import Conflict, InvalidArgument, Unavailable
from vessel.network.ipam import mac_for, pick_ifname

__all__ = [
    "attach_veth",
    "delete_link",
    "ensure_bridge",
    "host_routes",
    "link_exists",
]

IFA_F_NODAD = 0x02
NS_GET_NSTYPE = 0xB703
CLONE_NEWNET = 0x40000000
AF_INET6 = 10


def _fail(what, exc):
    return Unavailable(f"{what}: {os.strerror(exc.code) if exc.code else exc}")


def _sysctl(path, value):
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def link_exists(name):
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def ensure_bridge(name, mtu, addresses):
    """Create (or complete) bridge `name` with `addresses` [(ip, prefixlen)], up; True if created."""
    with IPRoute() as ipr:
        created = False
        found = ipr.link_lookup(ifname=name)
        try:
            if not found:
                # a MAC of its own: otherwise the bridge takes its ports' lowest one and changes with them
                ipr.link("add", ifname=name, kind="bridge", address=mac_for(addresses[0][0]))
                created = True
                found = ipr.link_lookup(ifname=name)
            index = found[0]
            have = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
            for address, prefixlen in addresses:
                if (str(address), prefixlen) in have:
                    continue
                extra = {"IFA_FLAGS": IFA_F_NODAD} if address.version == 6 else {}
                ipr.addr("add", index=index, address=str(address), prefixlen=prefixlen, **extra)
            ipr.link("set", index=index, mtu=mtu, state="up")
            # 127.0.0.1 -> container after DNAT (published ports), and routing from the bridge
            _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
            _sysctl(f"net/ipv4/conf/{name}/forwarding", "1")
        except (NetlinkError, OSError) as exc:
            if created:
                delete_link(name)
            if isinstance(exc, NetlinkError):
                raise _fail(f"bridge {name}", exc) from None
            raise Unavailable(f"bridge {name}: {exc}") from None
    return created


def delete_link(name):
    """Delete a link by name; a missing one is not an error."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as exc:
                if exc.code != 19:  # ENODEV: gone meanwhile
                    raise _fail(f"delete {name}", exc) from None


def host_routes():
    """Every IPv4/IPv6 destination routed on the host (overlap checks)."""
    found = []
    with IPRoute() as ipr:
        for route in ipr.get_routes(table=254):
            dst = route.get("RTA_DST")
            if dst and route["dst_len"]:
                found.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False))
    return found


def _open_netns(netns_path):
    try:
        fd = os.open(netns_path, os.O_RDONLY)
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


def attach_veth(bridge, host_ifname, netns_path, ifname, mac, mtu, addresses, gateways):
    """A veth pair: `host_ifname` in `bridge`, its peer in the namespace, configured.

    The peer is named `ifname`, or the first free ethN when None. `addresses` is
    [(ip, prefixlen)], `gateways` the default routes to add when the namespace has
    none for that family yet.  Returns the peer's name.
    """
    fd = _open_netns(netns_path)
    peer_tmp = "vp" + secrets.token_hex(5)
    try:
        with IPRoute() as ipr:
            br = ipr.link_lookup(ifname=bridge)
            if not br:
                raise Unavailable(f"bridge {bridge} does not exist")
            try:
                ipr.link("add", ifname=host_ifname, kind="veth", peer={"ifname": peer_tmp, "net_ns_fd": fd})
            except NetlinkError as exc:
                if exc.code == 17:
                    raise Conflict(f"interface {host_ifname} already exists") from None
                raise _fail(f"veth {host_ifname}", exc) from None
        try:
            ifname = _configure_peer(netns_path, peer_tmp, ifname, mac, mtu, addresses, gateways)
            with IPRoute() as ipr:
                index = ipr.link_lookup(ifname=host_ifname)[0]
                ipr.link("set", index=index, master=br[0], mtu=mtu, state="up")
                # hairpin: a container reaching its own published port comes back through its port
                ipr.brport("set", index=index, mode=1)
        except BaseException:
            delete_link(host_ifname)
            raise
    finally:
        os.close(fd)
    return ifname


def _configure_peer(netns_path, peer_tmp, ifname, mac, mtu, addresses, gateways):
    with IPRoute(netns=netns_path, flags=0) as ns:
        try:
            existing = {link.get("IFLA_IFNAME") for link in ns.get_links()}
            ifname = ifname or pick_ifname(existing)
            if ifname in existing:
                raise Conflict(f"interface {ifname} already exists in {netns_path}")
            index = ns.link_lookup(ifname=peer_tmp)[0]
            ns.link("set", index=index, ifname=ifname, address=mac, mtu=mtu)
            for address, prefixlen in addresses:
                extra = {"IFA_FLAGS": IFA_F_NODAD} if address.version == 6 else {}
                ns.addr("add", index=index, address=str(address), prefixlen=prefixlen, **extra)
            ns.link("set", index=index, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            for gateway in gateways:
                family = 2 if gateway.version == 4 else AF_INET6
                if not ns.get_default_routes(family=family):
                    dst = "0.0.0.0/0" if gateway.version == 4 else "::/0"
                    ns.route("add", dst=dst, gateway=str(gateway), oif=index, family=family)
        except NetlinkError as exc:
            raise _fail(f"configure {ifname} in {netns_path}", exc) from None
    return ifname
