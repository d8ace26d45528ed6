"""Docker's -p/--expose syntax and the API's network arguments, parsed into typed records."""

import pytest

from vessel.api import _attachments, _port_bindings
from vessel.engine.model import PortBinding, parse_expose, parse_publish
from vessel.errors import InvalidArgument


def test_publish_forms():
    assert parse_publish("8080:80") == [PortBinding(80, "tcp", "", 8080)]
    assert parse_publish("53/udp") == [PortBinding(53, "udp", "", 0)]
    assert parse_publish("127.0.0.1::80") == [PortBinding(80, "tcp", "127.0.0.1", 0)]
    assert parse_publish("[::1]:8080:80/sctp") == [PortBinding(80, "sctp", "::1", 8080)]
    assert parse_publish("1.2.3.4:8000-8001:80-81") == [PortBinding(80, "tcp", "1.2.3.4", 8000),
                                                        PortBinding(81, "tcp", "1.2.3.4", 8001)]
    assert parse_publish("80-81") == [PortBinding(80), PortBinding(81)]


@pytest.mark.parametrize("spec, message", [
    ("abc", "invalid containerPort: abc"),
    ("70000", "invalid containerPort: 70000"),
    ("80/xx", "invalid proto: xx"),
    ("1-3:1-2", "invalid ranges specified for container and host Ports: 1-2 and 1-3"),
    ("x.y:80:80", "invalid IP address: x.y"),
    ("8080:", "no port specified: 8080:<empty>"),
])
def test_publish_errors(spec, message):
    with pytest.raises(InvalidArgument, match=f"^{message}$"):
        parse_publish(spec)


def test_expose():
    assert parse_expose("80") == ["80/tcp"]
    assert parse_expose("53-54/udp") == ["53/udp", "54/udp"]
    with pytest.raises(InvalidArgument):
        parse_expose("http")


def test_api_ports_dict():
    bindings = _port_bindings({"80/tcp": 8080, 53: [None, ("127.0.0.1", 5353)], "81/udp": ("::1", 81)}, ["90"])
    assert bindings == [PortBinding(90), PortBinding(80, "tcp", "", 8080), PortBinding(53, "tcp", "", 0),
                        PortBinding(53, "tcp", "127.0.0.1", 5353), PortBinding(81, "udp", "::1", 81)]


def test_api_network_arguments():
    mode, attachments = _attachments(None, None, ["net1", "net2"], "10.1.0.5", None, ["db"], "02:42:AA:BB:CC:DD")
    assert mode == "net1" and [a.network for a in attachments] == ["net1", "net2"]
    assert (attachments[0].ipv4, attachments[0].aliases, attachments[0].mac) == ("10.1.0.5", ["db"],
                                                                                 "02:42:aa:bb:cc:dd")
    assert _attachments("host", None, None, None, None, None, None) == ("host", [])
    assert _attachments(None, None, None, None, None, None, None)[0] == "bridge"
    with pytest.raises(InvalidArgument, match="conflicting options"):
        _attachments(None, None, ["host", "net1"], None, None, None, None)
    with pytest.raises(InvalidArgument, match="conflicting options"):
        _attachments("none", None, None, "10.1.0.5", None, None, None)
