"""Address management and port-mapping parsing (pure logic)."""

import ipaddress

import pytest

from vessel.errors import InvalidArgument
from vessel.network import ipam
from vessel.network.manager import _expand, _same_socket

ENDPOINT = {"id": "e" * 64, "ipv4": "10.1.0.2", "ipv6": None}


def test_parse_subnet_rejects_host_bits_wrong_family_and_tiny_subnets():
    assert ipam.parse_subnet("10.1.0.0/24", 4) == ipaddress.ip_network("10.1.0.0/24")
    for text, version, message in (("10.1.0.1/24", 4, "host bits"), ("fd00::/64", 4, "not an IPv4"),
                                   ("10.1.0.0/24", 6, "not an IPv6"), ("10.1.0.0/31", 4, "too small"),
                                   ("nonsense", 4, "invalid subnet")):
        with pytest.raises(InvalidArgument, match=message):
            ipam.parse_subnet(text, version)


def test_gateway_defaults_to_first_host_and_must_be_usable():
    subnet = ipaddress.ip_network("10.1.0.0/24")
    assert str(ipam.parse_gateway(None, subnet)) == "10.1.0.1"
    assert str(ipam.parse_gateway("10.1.0.254", subnet)) == "10.1.0.254"
    for text, message in (("10.2.0.1", "outside"), ("10.1.0.255", "not a usable"), ("10.1.0.0", "not a usable"),
                          ("x", "not an IP")):
        with pytest.raises(InvalidArgument, match=message):
            ipam.parse_gateway(text, subnet)


def test_first_free_skips_taken_and_stops_at_broadcast():
    subnet = ipaddress.ip_network("10.1.0.0/30")
    assert str(ipam.first_free(subnet, {"10.1.0.1"})) == "10.1.0.2"
    with pytest.raises(InvalidArgument, match="no free address"):
        ipam.first_free(subnet, {"10.1.0.1", "10.1.0.2"})
    v6 = ipaddress.ip_network("fd00::/126")
    assert str(ipam.first_free(v6, {"fd00::1", "fd00::2"})) == "fd00::3"


def test_mac_and_interface_names():
    assert ipam.mac_for("10.88.0.2") == "02:42:0a:58:00:02"
    assert ipam.pick_ifname({"lo"}) == "eth0"
    assert ipam.pick_ifname({"lo", "eth0", "eth1"}) == "eth2"


def test_network_names():
    assert ipam.validate_name("my-net_1.x") == "my-net_1.x"
    for bad in ("", "-x", "a b", "a/b", "x" * 129):
        with pytest.raises(InvalidArgument):
            ipam.validate_name(bad)


def test_port_specs_expand_ranges_one_to_one():
    mappings = _expand(("", "8000-8002", "80-82", "TCP"), ENDPOINT)
    assert [(m["host_ip"], m["host_port"], m["container_port"], m["proto"]) for m in mappings] == [
        ("0.0.0.0", 8000, 80, "tcp"), ("0.0.0.0", 8001, 81, "tcp"), ("0.0.0.0", 8002, 82, "tcp")]
    assert _expand(("127.0.0.1", None, 53, "udp"), ENDPOINT)[0]["host_port"] == 0


@pytest.mark.parametrize("spec, message", [
    (("", "1-3", "1-2", "tcp"), "same length"),
    (("", 0, "70000", "tcp"), "1-65535"),
    (("", 80, "x", "tcp"), "invalid container port"),
    (("", 80, None, "tcp"), "container port is required"),
    (("", 80, 80, "gre"), "invalid protocol"),
    (("nohost", 80, 80, "tcp"), "invalid host IP"),
    (("::1", 80, 80, "tcp"), "no IPv6 address"),
    (("", 80), "want"),
])
def test_bad_port_specs(spec, message):
    with pytest.raises(InvalidArgument, match=message):
        _expand(spec, ENDPOINT)


def test_wildcard_host_ip_conflicts_with_specific_ones():
    a = {"host_ip": "0.0.0.0", "host_port": 80, "proto": "tcp"}
    b = {"host_ip": "127.0.0.1", "host_port": 80, "proto": "tcp"}
    assert _same_socket(a, b)
    assert not _same_socket(a, dict(b, proto="udp"))
    assert not _same_socket(dict(a, host_ip="10.0.0.1"), b)
