"""Containers on networks end to end: `vessel run --network/-p/-P`, `network connect`, `port`, inspect.

Real bridges, veth pairs, nftables rules and embedded DNS servers. Every test
has its own state root whose default `bridge` network is a `vsl<hex>` bridge on
a subnet of its own (test_engine_cli's Vessel: helpers.default_bridge_env), so
concurrent runs never share one; teardown checks that nothing is left.
"""

import json
import os
import socket
import sqlite3
import subprocess
import time

import pytest

from peers import busybox_tar
from test_engine_cli import Vessel

HTTPD = ["sh", "-c", "echo hello from $(hostname) > /index.html && exec httpd -f -p 80 -h /"]


@pytest.fixture(scope="module")
def exposing_tarball(tmp_path_factory):
    return busybox_tar(str(tmp_path_factory.mktemp("network-image") / "busybox.tar"))


@pytest.fixture
def vessel(tmp_path, names, exposing_tarball):
    cli = Vessel(str(tmp_path), names("cg"))
    cli.endpoints = set()  # every endpoint id inspect showed: their veths and rules must go
    cli("import", exposing_tarball, "busybox", "--change", 'CMD ["sh"]', "--change", "EXPOSE 80")
    yield cli
    cli.teardown()
    networks = _network_rows(cli)
    for _, name, _, predefined in networks:
        if not predefined:
            cli("network", "rm", name, code=None)
    _eventually(lambda: _leftovers(cli, networks) == {})


def _links():
    listing = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in listing.splitlines()}


def _nft_comments():
    result = subprocess.run(["nft", "-j", "list", "table", "inet", "vessel"], capture_output=True, text=True)
    if result.returncode != 0:
        return set()
    return {item["rule"].get("comment") for item in json.loads(result.stdout)["nftables"] if "rule" in item}


def _network_rows(cli):
    """(id, name, bridge, predefined) of the root's networks."""
    if not os.path.exists(os.path.join(cli.root, "network", "network.db")):
        return []
    db = sqlite3.connect(os.path.join(cli.root, "network", "network.db"))
    try:
        return db.execute("SELECT id, name, bridge, predefined FROM networks").fetchall()
    finally:
        db.close()


def _leftovers(cli, removed=()):
    """What the root still has of containers on networks: rows, netns files, veths, port rules; and
    of the networks `removed` (rows of _network_rows) and the idle default one: bridges and rules."""
    found = {}
    if not os.path.exists(os.path.join(cli.root, "network", "network.db")):
        return found
    db = sqlite3.connect(os.path.join(cli.root, "network", "network.db"))
    try:
        for table, where in (("endpoints", ""), ("addresses", " WHERE owner != 'gateway'"), ("ports", "")):
            count = db.execute(f"SELECT count(*) FROM {table}{where}").fetchone()[0]
            if count:
                found[table] = count
    finally:
        db.close()
    gone = [row for row in _network_rows(cli) if row[3]] + list(removed)
    links = _links()
    bridges = [bridge for _, _, bridge, _ in gone if bridge in links]
    if bridges:
        found["bridges"] = bridges
    tags = {tag for tag in _nft_comments()
            if tag and (tag.startswith("vessel-port:") and tag.split(":")[1] in {e[:16] for e in cli.endpoints}
                        or any(tag == f"vessel-net:{net_id[:16]}" for net_id, _, _, _ in gone))}
    if tags:
        found["nft rules"] = sorted(tags)
    veths = [f"veth{endpoint[:11]}" for endpoint in cli.endpoints if f"veth{endpoint[:11]}" in links]
    if veths:
        found["veths"] = veths
    netns = os.path.join(cli.runroot, "netns")
    if os.path.isdir(netns) and os.listdir(netns):
        found["netns"] = os.listdir(netns)
    return found


def _eventually(predicate, timeout=10):
    """Wait (bounded) for what a container's monitor does after `run --rm` returned."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _inspect(cli, name):
    document = json.loads(cli("inspect", name).stdout)[0]
    cli.endpoints.update(n["EndpointID"] for n in document["NetworkSettings"]["Networks"].values() if n["EndpointID"])
    return document


def _address(cli, name, network):
    return _inspect(cli, name)["NetworkSettings"]["Networks"][network]["IPAddress"]


def _http_get(port, host="127.0.0.1"):
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
            return reply.split(b"\r\n\r\n", 1)[1].decode()
        except (ConnectionError, IndexError, socket.timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fetch_script(host, port=80):
    """sh: GET /index.html from host:port with nc, retried while the server starts; prints the body."""
    request = r"GET /index.html HTTP/1.0\r\n\r\n"
    return (f"for i in $(seq 50); do printf '{request}' | nc -w 2 {host} {port} > /tmp/reply && "
            "grep -q hello /tmp/reply && exec grep hello /tmp/reply; sleep 0.1; done; exit 1")


def _fetch(cli, *run_args, host, port=80):
    """The page of host:port as a new container (with `run_args`) gets it."""
    return cli("run", "--rm", *run_args, "busybox", "sh", "-c", _fetch_script(host, port)).stdout


# -- tests -------------------------------------------------------------------------

def test_default_bridge_address_route_and_files(vessel):
    out = vessel("run", "--rm", "--hostname", "box", "--add-host", "db.example:192.0.2.9", "busybox", "sh", "-c",
                 "ip -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf; cat /sys/class/net/eth0/mtu").stdout
    subnet = vessel.env["VESSEL_DEFAULT_SUBNET"]
    prefix = subnet.rsplit(".", 1)[0]
    assert f"inet {prefix}.2/24" in out and f"default via {prefix}.1 dev eth0" in out
    assert f"{prefix}.2\tbox" in out and "192.0.2.9\tdb.example" in out
    assert "options ndots:0" not in out  # the default bridge uses the host's resolvers, as Docker's
    assert out.split()[-1] == "1500"
    _eventually(lambda: vessel.env["VESSEL_DEFAULT_BRIDGE"] not in _links())  # gone with its last container


def test_two_containers_on_a_user_network_reach_each_other_by_name(vessel, names):
    net = names("net")
    vessel("network", "create", net)
    vessel("run", "-d", "--name", "web", "--network", net, "busybox", *HTTPD)
    assert _fetch(vessel, "--network", net, host="web").startswith("hello from")
    vessel("rename", "web", "site")  # the embedded DNS follows
    assert _fetch(vessel, "--network", net, host="site").startswith("hello from")
    resolv = vessel("run", "--rm", "--network", net, "busybox", "cat", "/etc/resolv.conf").stdout
    gateway = json.loads(vessel("network", "inspect", net).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"nameserver {gateway}" in resolv
    # the host's view: inspect and network inspect agree
    settings = _inspect(vessel, "site")["NetworkSettings"]["Networks"][net]
    assert settings["Gateway"] == gateway and settings["MacAddress"].startswith("02:42:")
    containers = json.loads(vessel("network", "inspect", net).stdout)[0]["Containers"]
    assert [c["IPv4Address"] for c in containers.values()] == [f"{settings['IPAddress']}/24"]


def test_published_port_answers_on_localhost_and_from_other_namespaces(vessel):
    port = _free_port()
    vessel("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", *HTTPD)
    assert _http_get(port).startswith("hello from")
    assert vessel("port", "web").stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    assert vessel("port", "web", "80").stdout == f"0.0.0.0:{port}\n"
    assert vessel("port", "web", "81/tcp", code=125).stderr.strip() == \
        "Error: No public port '81/tcp' published for web"
    assert f"0.0.0.0:{port}->80/tcp" in vessel("ps").stdout
    document = _inspect(vessel, "web")
    assert document["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert document["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    gateway = document["NetworkSettings"]["Gateway"]
    # another namespace (a container) reaches the port through a host address
    assert _fetch(vessel, host=gateway, port=port).startswith("hello from")


def test_publish_all_publishes_the_image_expose(vessel):
    vessel("run", "-d", "--name", "web", "-P", "--expose", "81/udp", "busybox", *HTTPD)
    ports = _inspect(vessel, "web")["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "81/udp"}
    host_port = int(ports["80/tcp"][0]["HostPort"])
    assert _http_get(host_port).startswith("hello from")
    assert _inspect(vessel, "web")["Config"]["ExposedPorts"] == {"80/tcp": {}, "81/udp": {}}


def test_dns_round_robin_over_a_shared_alias(vessel, names):
    net = names("net")
    vessel("network", "create", net)
    for name in ("one", "two"):
        vessel("run", "-d", "--name", name, "--network", net, "--network-alias", "pool", "busybox", "sleep", "60")
    addresses = {_address(vessel, name, net) for name in ("one", "two")}
    out = vessel("run", "--rm", "--network", net, "busybox", "nslookup", "pool").stdout
    assert addresses <= set(out.split())
    firsts = set()
    for _ in range(4):
        out = vessel("exec", "one", "nslookup", "pool").stdout
        answers = [w for w in out.split() if w in addresses]
        firsts.add(answers[0])
    assert firsts == addresses


def test_network_none_has_only_loopback(vessel):
    out = vessel("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").stdout
    assert out.split() == ["lo"]
    assert _inspect_created(vessel, "--network", "none")["HostConfig"]["NetworkMode"] == "none"


def _inspect_created(vessel, *args):
    container_id = vessel("create", *args, "busybox", "true").stdout.strip()
    try:
        return _inspect(vessel, container_id)
    finally:
        vessel("rm", container_id)


def test_container_mode_shares_the_namespace(vessel):
    vessel("run", "-d", "--name", "web", "busybox", *HTTPD)
    address = _address(vessel, "web", "bridge")
    out = vessel("run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
                 "ip -4 addr show eth0; " + _fetch_script("127.0.0.1")).stdout
    assert f"inet {address}/" in out and "hello from" in out
    vessel("stop", "-t", "0", "web")
    err = vessel("run", "--rm", "--network", "container:web", "busybox", "true", code=125).stderr
    assert "non running container" in err


def test_connect_and_disconnect_a_running_container(vessel, names):
    net = names("net")
    vessel("network", "create", net)
    vessel("run", "-d", "--name", "web", "--network", net, "busybox", *HTTPD)
    vessel("run", "-d", "--name", "box", "busybox", "sleep", "60")
    assert "eth1" not in vessel("exec", "box", "ls", "/sys/class/net").stdout
    vessel("network", "connect", "--alias", "client", net, "box")
    assert vessel("exec", "box", "ls", "/sys/class/net").stdout.split() == ["eth0", "eth1", "lo"]
    web_address = _address(vessel, "web", net)
    assert vessel("exec", "box", "sh", "-c", _fetch_script(web_address)).stdout.startswith("hello from")
    box_address = _address(vessel, "box", net)
    assert box_address in vessel("exec", "web", "nslookup", "client").stdout
    assert f"{box_address}\t" in vessel("exec", "box", "cat", "/etc/hosts").stdout
    assert "already exists" in vessel("network", "connect", net, "box", code=125).stderr
    vessel("network", "disconnect", net, "box")
    assert vessel("exec", "box", "ls", "/sys/class/net").stdout.split() == ["eth0", "lo"]
    assert list(_inspect(vessel, "box")["NetworkSettings"]["Networks"]) == ["bridge"]
    # a created container: recorded, attached when it starts
    vessel("create", "--name", "later", "--network", "none", "busybox", "true")
    assert "cannot be connected" in vessel("network", "connect", net, "later", code=125).stderr


def test_several_networks_and_fixed_addresses(vessel, names):
    first, second = names("net"), names("net")
    vessel("network", "create", "--subnet", "172.29.250.0/24", first)
    vessel("network", "create", "--ipv6", "--subnet", "fd00:5e55:e1::/64", second)
    out = vessel("run", "--rm", "--network", second, "--network", first, "--ip6", "fd00:5e55:e1::99",
                 "--mac-address", "02:42:aa:bb:cc:dd", "busybox", "sh", "-c",
                 "ip addr; cat /sys/class/net/eth0/address; ip route; cat /etc/hosts").stdout
    assert "inet6 fd00:5e55:e1::99/64" in out and "inet 172.29.250." in out and "02:42:aa:bb:cc:dd" in out
    assert "fd00:5e55:e1::99\t" in out
    out = vessel("run", "--rm", "--network", first, "--network", second, "--ip", "172.29.250.9", "busybox",
                 "sh", "-c", "ip -4 addr; ip route").stdout
    assert "inet 172.29.250.9/24" in out and "eth1" in out and "default via 172.29.250.1 dev eth0" in out


def test_nothing_left_after_rm_and_network_rm(vessel, names):
    net = names("net")
    vessel("network", "create", net)
    bridge = json.loads(vessel("network", "inspect", net).stdout)[0]["Options"]["com.docker.network.bridge.name"]
    vessel("run", "-d", "--name", "web", "--network", net, "-p", f"{_free_port()}:80", "busybox", *HTTPD)
    endpoint = _inspect(vessel, "web")["NetworkSettings"]["Networks"][net]["EndpointID"]
    veth = f"veth{endpoint[:11]}"
    assert veth in _links() and bridge in _links()
    assert "rm" and "has active endpoints" in vessel("network", "rm", net, code=125).stderr
    vessel("rm", "-f", "web")
    assert veth not in _links()
    assert not any(endpoint[:16] in (tag or "") for tag in _nft_comments())
    vessel("network", "rm", net)
    assert bridge not in _links()
    assert _leftovers(vessel) == {}


def test_restarted_container_keeps_networks_addresses_and_ports(vessel, names):
    net = names("net")
    vessel("network", "create", net)
    port = _free_port()
    vessel("run", "-d", "--name", "web", "--network", net, "-p", f"{port}:80", "-p", "80", "busybox", *HTTPD)
    before = _inspect(vessel, "web")["NetworkSettings"]
    vessel("stop", "-t", "1", "web")
    assert _inspect(vessel, "web")["NetworkSettings"]["Ports"] == {}
    assert "80/tcp" not in vessel("ps", "-a").stdout
    vessel("start", "web")
    assert _http_get(port).startswith("hello from")
    vessel("restart", "-t", "1", "web")
    assert _http_get(port).startswith("hello from")
    after = _inspect(vessel, "web")["NetworkSettings"]
    assert after["Networks"][net]["IPAddress"] == before["Networks"][net]["IPAddress"]
    assert after["Ports"] == before["Ports"]
    random_port = int([b for b in after["Ports"]["80/tcp"] if b["HostPort"] != str(port)][0]["HostPort"])
    assert _http_get(random_port).startswith("hello from")


def test_bad_input_leaves_nothing(vessel, names):
    net = names("net")
    vessel("network", "create", "--subnet", "172.29.251.0/24", net)
    cases = [
        (("-p", "abc"), "invalid containerPort: abc"),
        (("-p", "1-3:1-2"), "invalid ranges"),
        (("-p", "80/foo"), "invalid proto: foo"),
        (("--network", f"nope-{net}"), f"network nope-{net} not found"),
        (("--network", net, "--ip", "10.9.9.9"), "no configured subnet or ip-range contain the IP address 10.9.9.9"),
        (("--ip", "10.9.9.9"), "user specified IP address is supported on user defined networks only"),
        (("--network-alias", "x"), "network-scoped alias is supported only"),
        (("--network", "container:nosuch"), "No such container: nosuch"),
        (("--network", "host", "--network", net), "conflicting options"),
    ]
    for args, message in cases:
        err = vessel("run", "--rm", *args, "busybox", "true", code=125).stderr
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert vessel.ids() == []
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        err = vessel("run", "--name", "clash", "--network", net, "-p", f"{taken}:80", "busybox", "true",
                     code=125).stderr
    assert f"Bind for 0.0.0.0:{taken} failed: port is already allocated" in err
    assert len(err.strip().splitlines()) == 1
    assert _leftovers(vessel) == {}
    vessel("rm", "clash")


def test_restart_by_policy_keeps_address_and_ports(vessel, names):
    net = names("net")
    vessel("network", "create", net)
    port = _free_port()
    # the first run fails at once, the on-failure policy starts it again, the second serves
    vessel("run", "-d", "--name", "web", "--network", net, "--restart", "on-failure:1", "-p", f"{port}:80",
           "busybox", "sh", "-c", "echo hello > /index.html; [ -e /ran ] && exec httpd -f -p 80 -h /; "
           "touch /ran; sleep 1; exit 3")
    address = _address(vessel, "web", net)
    _eventually(lambda: _inspect(vessel, "web")["RestartCount"] == 1, timeout=30)
    _eventually(lambda: _inspect(vessel, "web")["State"]["Status"] == "running", timeout=30)  # not restarting
    assert _address(vessel, "web", net) == address
    assert _http_get(port) == "hello\n"


def test_python_api_ports_and_networks(tmp_path, names, exposing_tarball):
    from vessel.api import Client

    cli = Vessel(str(tmp_path), names("cg"))
    cli("import", exposing_tarball, "busybox")
    cli.endpoints = set()
    port = _free_port()
    with Client(cli.root, cli.runroot) as client:
        box = client.containers.run("busybox", HTTPD, detach=True, name="web", ports={"80/tcp": port},
                                    cgroup_parent=cli.cgroup_name)
        try:
            assert box.ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
            assert box.attrs["HostConfig"]["NetworkMode"] == "bridge"
            assert _http_get(port).startswith("hello from")
            none = client.containers.create("busybox", "true", network_mode="none", cgroup_parent=cli.cgroup_name)
            assert list(none.attrs["NetworkSettings"]["Networks"]) == ["none"]
            none.remove()
        finally:
            box.remove(force=True)
    cli.teardown()
    _eventually(lambda: _leftovers(cli) == {})  # the idle default bridge goes when the monitor leaves
