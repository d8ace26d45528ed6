"""Address management: subnets, gateways, overlap checks and free-address picking.

Pure functions over the `ipaddress` module; the store decides what is taken.
"""

import ipaddress
import re

from vessel.errors import InvalidArgument

__all__ = [
    "first_free",
    "mac_for",
    "parse_gateway",
    "parse_subnet",
    "pick_ifname",
    "validate_name",
]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def validate_name(name):
    """Docker's rule for network names."""
    if not name or len(name) > 128 or not NAME_PATTERN.match(name):
        raise InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def parse_subnet(text, version):
    """'10.1.0.0/24' -> IPv4Network; host bits set, wrong family or a too small subnet is an error."""
    try:
        subnet = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {text!r}: {exc}") from None
    if subnet.version != version:
        kind = "IPv4" if version == 4 else "IPv6"
        raise InvalidArgument(f"invalid subnet {text!r}: not an {kind} subnet")
    if subnet.num_addresses < 4:
        raise InvalidArgument(f"invalid subnet {text!r}: too small for a gateway and an endpoint")
    return subnet


def parse_gateway(text, subnet):
    """The gateway: given (must be a usable host of the subnet) or the subnet's first host."""
    if text is None:
        return subnet.network_address + 1
    try:
        gateway = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid gateway {text!r}: not an IP address") from None
    check_in_subnet(gateway, subnet, "gateway")
    return gateway


def check_in_subnet(address, subnet, what="address"):
    """A usable host address of the subnet, or InvalidArgument."""
    if address.version != subnet.version or address not in subnet:
        raise InvalidArgument(f"{what} {address} is outside the subnet {subnet}")
    if address == subnet.network_address or (subnet.version == 4 and address == subnet.broadcast_address):
        raise InvalidArgument(f"{what} {address} is not a usable host address of {subnet}")


def first_free(subnet, taken):
    """The lowest host address of `subnet` not in `taken` (a set of address strings)."""
    last = subnet.broadcast_address if subnet.version == 4 else subnet.broadcast_address + 1
    address = subnet.network_address + 1
    while address < last:
        if str(address) not in taken:
            return address
        address += 1
    raise InvalidArgument(f"no free address left in {subnet}")


def mac_for(ipv4):
    """Docker's MAC for an IPv4 endpoint: 02:42 followed by the address bytes."""
    return "02:42:" + ":".join(f"{byte:02x}" for byte in ipaddress.IPv4Address(ipv4).packed)


def pick_ifname(existing):
    """The first ethN not among `existing` interface names."""
    n = 0
    while f"eth{n}" in existing:
        n += 1
    return f"eth{n}"
