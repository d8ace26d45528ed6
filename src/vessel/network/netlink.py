"""A small rtnetlink client on the standard library: links, addresses and routes.

What the bridge driver needs and nothing more, so that a starting container
pays for neither pyroute2's import (~100 ms) nor its per-socket event loop.
A `Netlink` is one NETLINK_ROUTE socket, of this process's network namespace
or of the namespace an fd names (opened by a short-lived thread that joins it:
the process itself never changes namespace). Kernel errors come back as
OSError with the errno.
"""

import ipaddress
import os
import socket
import struct
import threading

from vessel.runtime import linux

__all__ = ["IFF_UP", "Netlink", "NLM_F_CREATE", "NLM_F_EXCL"]

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLA_F_NESTED = 0x8000
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
IFF_UP = 0x1
IFA_F_NODAD = 0x02
CLONE_NEWNET = 0x40000000

_HEADER = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_ATTR = struct.Struct("=HH")


def attr(kind, value):
    """One netlink attribute (bytes, str (NUL-terminated), int (u32) or a list of attributes (nested))."""
    if isinstance(value, str):
        value = value.encode() + b"\0"
    elif isinstance(value, int):
        value = struct.pack("=I", value)
    elif isinstance(value, list):
        value, kind = b"".join(value), kind | NLA_F_NESTED
    data = _ATTR.pack(_ATTR.size + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def parse_attrs(data, offset=0):
    """{type: raw value} of the attributes in data[offset:] (the last of a repeated type wins)."""
    found = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind & ~NLA_F_NESTED] = data[offset + _ATTR.size:offset + length]
        offset += (length + 3) & ~3
    return found


def ifinfo(index=0, flags=0, change=0, family=socket.AF_UNSPEC):
    return _IFINFO.pack(family, 0, index, flags, change)


def _name(raw):
    return raw.rstrip(b"\0").decode()


class Netlink:
    """One rtnetlink socket; `netns_fd`: of that network namespace instead of ours."""

    def __init__(self, netns_fd=None):
        self.sock = _socket() if netns_fd is None else _socket_in(netns_fd)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, kind, body, flags=0):
        """Send one request and wait for the kernel's acknowledgement (OSError on failure)."""
        self._send(kind, body, flags | NLM_F_ACK)
        self._receive(dump=False)

    def dump(self, kind, body):
        """Send one dump request: [(message type, payload)] of the answers."""
        self._send(kind, body, NLM_F_DUMP)
        return self._receive(dump=True)

    def _send(self, kind, body, flags):
        self.seq += 1
        self.sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags, self.seq, 0) + body)

    def _receive(self, dump):
        answers = []
        while True:
            data = self.sock.recv(1 << 16)
            if not data:
                raise OSError(71, "netlink socket closed")  # EPROTO
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, seq, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + length]
                offset += max((length + 3) & ~3, _HEADER.size)
                if seq != self.seq:
                    continue
                if kind == NLMSG_DONE:
                    return answers
                if kind == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", payload)[0]
                    if error:
                        raise OSError(error, os.strerror(error))
                    if not dump:
                        return answers
                    continue
                answers.append((kind, payload))

    # -- links ------------------------------------------------------------------

    def links(self):
        """{name: index} of every link of the namespace."""
        found = {}
        for _, payload in self.dump(RTM_GETLINK, ifinfo()):
            index = _IFINFO.unpack_from(payload)[2]
            attrs = parse_attrs(payload, _IFINFO.size)
            if IFLA_IFNAME in attrs:
                found[_name(attrs[IFLA_IFNAME])] = index
        return found

    def link_index(self, name):
        """The index of link `name`, or None."""
        try:
            self._send(RTM_GETLINK, ifinfo() + attr(IFLA_IFNAME, name), NLM_F_ACK)
            answers = self._receive(dump=False)
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return None
            raise
        return _IFINFO.unpack_from(answers[0][1])[2] if answers else None

    def add_link(self, header, attrs):
        """RTM_NEWLINK that creates a link (EEXIST when the name is taken)."""
        self.request(RTM_NEWLINK, header + b"".join(attrs), NLM_F_CREATE | NLM_F_EXCL)

    def set_link(self, index, attrs=(), up=None):
        """Change a link: attributes, and up or down when `up` is given."""
        flags = IFF_UP if up else 0
        self.request(RTM_NEWLINK, ifinfo(index, flags, IFF_UP if up is not None else 0) + b"".join(attrs))

    def delete_link(self, index):
        self.request(RTM_DELLINK, ifinfo(index))

    # -- addresses and routes ---------------------------------------------------

    def addresses(self, index):
        """[(address text, prefixlen)] of link `index`."""
        found = []
        for _, payload in self.dump(RTM_GETADDR, _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            family, prefixlen, _, _, owner = _IFADDR.unpack_from(payload)
            attrs = parse_attrs(payload, _IFADDR.size)
            if owner == index and IFA_ADDRESS in attrs:
                found.append((socket.inet_ntop(family, attrs[IFA_ADDRESS]), prefixlen))
        return found

    def add_address(self, index, address, prefixlen):
        """`address` (an ipaddress object) on link `index`; IPv6 without duplicate detection."""
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        attrs = [attr(IFA_LOCAL, address.packed), attr(IFA_ADDRESS, address.packed)]
        if address.version == 6:
            attrs = [attr(IFA_ADDRESS, address.packed), attr(IFA_FLAGS, IFA_F_NODAD)]
        self.request(RTM_NEWADDR, _IFADDR.pack(family, prefixlen, 0, 0, index) + b"".join(attrs),
                     NLM_F_CREATE | NLM_F_EXCL)

    def routes(self, family):
        """[(ipaddress network of the destination, table)] of the namespace's routes of `family`."""
        found = []
        for _, payload in self.dump(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
            route_family, dst_len, _, _, table = _RTMSG.unpack_from(payload)[:5]
            attrs = parse_attrs(payload, _RTMSG.size)
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            zero = "0.0.0.0" if route_family == socket.AF_INET else "::"
            dst = socket.inet_ntop(route_family, attrs[RTA_DST]) if RTA_DST in attrs else zero
            found.append((ipaddress.ip_network(f"{dst}/{dst_len}", strict=False), table))
        return found

    def add_default_route(self, gateway, index):
        """A default route through `gateway` (an ipaddress object) out of link `index`."""
        family = socket.AF_INET if gateway.version == 4 else socket.AF_INET6
        body = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, gateway.packed) + attr(RTA_OIF, index)
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)


def _socket():
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)


def _socket_in(netns_fd):
    """A netlink socket of the namespace `netns_fd`: made by a thread that joined it (and then ends)."""
    made = []

    def make():
        try:
            linux.setns(netns_fd, CLONE_NEWNET)
            made.append(_socket())
        except OSError as exc:
            made.append(exc)

    thread = threading.Thread(target=make, name="netns-socket")
    thread.start()
    thread.join()
    if isinstance(made[0], OSError):
        raise made[0]
    return made[0]
