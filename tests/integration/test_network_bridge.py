"""Bridge networks on the real kernel: veth pairs, nftables DNAT, embedded DNS.

The "containers" are network namespaces held by a busybox process started with
`unshare --net` (their path is /proc/<pid>/ns/net, as the engine will pass);
named ones in /run/netns would be swept away by other test sessions' leak guards.
Commands run inside with nsenter; HTTP clients run in a chroot of the Alpine
minirootfs, whose musl busybox wget reads /etc/resolv.conf (Debian's static
glibc busybox wget crashes in getaddrinfo).
"""

import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request

import pytest

from vessel.errors import Conflict, InvalidArgument, NotFound, Unavailable
from vessel.network import Networks
from vessel.network.firewall import firewall

from helpers import ALPINE  # noqa: E402

BUSYBOX = "/usr/bin/busybox"
STUB_ANSWER = "192.0.2.55"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# -- fixtures ----------------------------------------------------------------------

class Sandbox:
    """A network namespace held by a sleeping busybox; commands run inside with nsenter."""

    def __init__(self, name, alpine):
        self.name = name
        self.alpine = alpine
        self.holder = subprocess.Popen(["unshare", "--net", "--", BUSYBOX, "sh", "-c", "sleep 3600; :", name],
                                       start_new_session=True)
        self.netns = f"/proc/{self.holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(self.netns) == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare did not enter a new namespace"
            time.sleep(0.01)
        self.servers = []

    def run(self, *argv, timeout=20):
        return subprocess.run(["nsenter", f"--net={self.netns}", "--", *argv],
                              capture_output=True, text=True, timeout=timeout)

    def serve(self, *argv):
        proc = subprocess.Popen(["nsenter", f"--net={self.netns}", "--", *argv], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.servers.append(proc)
        return proc

    def httpd(self, port, docroot):
        self.serve(BUSYBOX, "httpd", "-f", "-p", str(port), "-h", str(docroot))
        deadline = time.monotonic() + 5
        while self.wget(f"http://127.0.0.1:{port}/", timeout=1).returncode:
            assert time.monotonic() < deadline, f"httpd on port {port} did not start"
            time.sleep(0.05)

    def wget(self, url, timeout=5):
        return self.run("chroot", str(self.alpine), "wget", "-q", "-T", str(timeout), "-O-", url)

    def close(self):
        for proc in self.servers + [self.holder]:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture(scope="module")
def alpine(tmp_path_factory):
    """The Alpine minirootfs; tests write its /etc/resolv.conf."""
    root = tmp_path_factory.mktemp("alpine")
    with tarfile.open(ALPINE) as tar:
        # Debian 12's Python 3.11.2 predates extraction filters
        tar.extractall(root, **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))
    return root


@pytest.fixture
def sandboxes(names, alpine):
    made = []

    def make():
        box = Sandbox(names("ns"), alpine)
        made.append(box)
        return box

    try:
        yield make
    finally:
        for box in made:
            box.close()


@pytest.fixture
def ip_forward():
    """Networks switch IPv4 forwarding on (as Docker does); put the host's setting back."""
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        saved = f.read().strip()
    yield
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write(saved)


class StubResolver:
    """A DNS server on 127.0.0.1 answering every A query with STUB_ANSWER (UDP and TCP)."""

    def __init__(self):
        for _ in range(50):  # a UDP port whose TCP twin is free too
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(8)
        for sock in (self.udp, self.tcp):
            sock.settimeout(0.1)
        self.asked = []
        self.stopped = False
        self.threads = [threading.Thread(target=self._udp, daemon=True),
                        threading.Thread(target=self._tcp, daemon=True)]
        for thread in self.threads:
            thread.start()

    def answer(self, query):
        end = 12
        labels = []
        while query[end]:
            labels.append(query[end + 1:end + 1 + query[end]].decode())
            end += 1 + query[end]
        end += 5
        self.asked.append(".".join(labels))
        header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
        record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(STUB_ANSWER)
        return header + query[12:end] + record

    def _udp(self):
        while not self.stopped:
            try:
                query, peer = self.udp.recvfrom(4096)
                self.udp.sendto(self.answer(query), peer)
            except TimeoutError:
                continue
            except OSError:
                return

    def _tcp(self):
        while not self.stopped:
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                size = struct.unpack("!H", conn.recv(2))[0]
                reply = self.answer(conn.recv(size))
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self):
        self.stopped = True
        for thread in self.threads:
            thread.join()
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def stub():
    resolver = StubResolver()
    try:
        yield resolver
    finally:
        resolver.close()


def _subnet(run_token, n):
    """A /24 of 10.224.0.0/11 picked from the run token, so parallel runs rarely meet."""
    base = int(run_token[2:], 16) % 4096
    return f"10.{224 + (base + n) // 256 % 32}.{(base + n) % 256}.0/24"


@pytest.fixture
def subnets(run_token, tmp_path):
    """subnets() -> a fresh IPv4 /24 not routed on this host."""
    counter = [int.from_bytes(os.urandom(2), "big") % 1000]

    def make():
        from vessel.network.links import host_routes

        routes = host_routes()
        while True:
            counter[0] += 1
            subnet = _subnet(run_token, counter[0])
            if not any(r.overlaps(ipaddress.ip_network(subnet)) for r in routes if r.version == 4):
                return subnet

    return make


@pytest.fixture
def nets(tmp_path, ip_forward, stub):
    """A Networks of this test's own root whose DNS forwards to the stub resolver."""
    manager = Networks(str(tmp_path / "root"), dns_upstreams=[f"127.0.0.1:{stub.port}"])
    try:
        yield manager
    finally:
        try:
            for ep in manager.endpoints():
                manager.detach(ep)
            for net in manager.list():
                if not net["predefined"]:
                    manager.remove(net["id"])
        finally:
            manager.close()


def _links():
    """Names of the host's interfaces."""
    listing = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in listing.splitlines()}


def _link_exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _tags():
    return firewall().tagged()


def _docroot(tmp_path, name, text):
    path = tmp_path / name
    path.mkdir()
    (path / "index.html").write_text(text)
    return path


def _dns_query(server, name, qtype=1, tcp=False, port=53):
    """Addresses in the answer of one query (A=1, AAAA=28) sent from the host."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    message = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)
    if tcp:
        with socket.create_connection((server, port), timeout=5) as sock:
            sock.sendall(struct.pack("!H", len(message)) + message)
            size = struct.unpack("!H", sock.recv(2))[0]
            reply = b""
            while len(reply) < size:
                reply += sock.recv(size - len(reply))
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(message, (server, port))
            reply = sock.recv(4096)
    count = struct.unpack("!H", reply[6:8])[0]
    offset = 12 + len(question) + 4
    found = []
    for _ in range(count):
        rtype, _, _, size = struct.unpack("!HHIH", reply[offset + 2:offset + 12])
        data = reply[offset + 12:offset + 12 + size]
        found.append(str(ipaddress.ip_address(data)) if rtype in (1, 28) else None)
        offset += 12 + size
    return found


# -- tests -------------------------------------------------------------------------

def test_two_endpoints_reach_each_other_by_ip_and_name(nets, sandboxes, subnets, names, tmp_path):
    net = nets.create(names("net"), subnet=subnets())
    web, client = sandboxes(), sandboxes()
    web_ep = nets.attach(net["name"], "a" * 64, web.netns, name="web", aliases=["www"])
    client_ep = nets.attach(net["name"], "b" * 64, client.netns, name="client")
    assert web_ep.ifname == client_ep.ifname == "eth0"
    assert ipaddress.ip_address(web_ep.ipv4) in ipaddress.ip_network(net["subnet"])
    assert web_ep.ipv4 != client_ep.ipv4

    web.httpd(8080, _docroot(tmp_path, "www", "hello from web\n"))
    assert client.wget(f"http://{web_ep.ipv4}:8080/").stdout == "hello from web\n"

    (client.alpine / "etc" / "resolv.conf").write_text(client_ep.resolv_conf())
    for name in ("web", "www", "a" * 12):
        result = client.wget(f"http://{name}:8080/")
        assert result.stdout == "hello from web\n", result.stderr
    route = client.run(BUSYBOX, "ip", "route").stdout
    assert f"default via {net['gateway']}" in route

    # a second network: eth1, and the default route stays on the first
    second = nets.create(names("net"), subnet=subnets())
    assert nets.attach(second["name"], "b" * 64, client.netns).ifname == "eth1"
    assert client.run(BUSYBOX, "ip", "route").stdout.count("default") == 1


def test_published_port_from_localhost_and_from_other_netns(nets, sandboxes, subnets, names, tmp_path):
    net = nets.create(names("net"), subnet=subnets())
    other_net = nets.create(names("net"), subnet=subnets())
    web, outsider = sandboxes(), sandboxes()
    ep = nets.attach(net["name"], "c" * 64, web.netns)
    outsider_ep = nets.attach(other_net["name"], "d" * 64, outsider.netns)
    web.httpd(8080, _docroot(tmp_path, "a", "port a\n"))
    web.httpd(8081, _docroot(tmp_path, "b", "port b\n"))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host_port = probe.getsockname()[1]
    # a range of two ports, on every host address
    mappings = nets.publish(ep.ipv4, [("", f"{host_port}-{host_port + 1}", "8080-8081", "tcp")])
    assert [(m["host_port"], m["container_port"]) for m in mappings] == [(host_port, 8080), (host_port + 1, 8081)]

    for port, text in ((host_port, "port a\n"), (host_port + 1, "port b\n")):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read().decode() == text
    # from a namespace on another network, through its gateway (a host address)
    assert outsider.wget(f"http://{outsider_ep.gateway}:{host_port}/").stdout == "port a\n"
    # a container reaching its own published port through the host (hairpin)
    assert web.wget(f"http://{ep.gateway}:{host_port}/").stdout == "port a\n"
    # networks are isolated from each other otherwise
    assert outsider.wget(f"http://{ep.ipv4}:8080/", timeout=2).returncode != 0

    removed = nets.unpublish(ep.ipv4, [("", host_port + 1, 8081, "tcp")])
    assert [p["host_port"] for p in removed] == [host_port + 1]
    assert [p["host_port"] for p in nets.ports(ep.ipv4)] == [host_port]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{host_port + 1}/", timeout=2)

    nets.detach(ep)
    assert not [t for t in _tags() if t.startswith(f"vessel-port:{ep.id[:16]}")]
    assert nets.ports() == []


def test_port_in_use_is_rejected(nets, sandboxes, subnets, names):
    net = nets.create(names("net"), subnet=subnets())
    box = sandboxes()
    ep = nets.attach(net["name"], "e" * 64, box.netns)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        busy = listener.getsockname()[1]
        with pytest.raises(Conflict, match="port is already allocated"):
            nets.publish(ep.ipv4, [("127.0.0.1", busy, 80, "tcp")])
    assert nets.ports() == []

    free = nets.publish(ep.ipv4, [("127.0.0.1", None, 80, "tcp")])[0]["host_port"]
    with pytest.raises(Conflict, match="port is already allocated"):
        nets.publish(ep.ipv4, [("", free, 81, "tcp")])
    with pytest.raises(InvalidArgument, match="same length"):
        nets.publish(ep.ipv4, [("", "9000-9002", "80-81", "tcp")])
    with pytest.raises(InvalidArgument, match="protocol"):
        nets.publish(ep.ipv4, [("", 9000, 80, "icmp")])
    with pytest.raises(NotFound):
        nets.publish("192.0.2.1", [("", 9000, 80, "tcp")])
    assert len(nets.ports()) == 1


def test_dns_round_robin_over_a_shared_alias(nets, sandboxes, subnets, names):
    net = nets.create(names("net"), subnet=subnets())
    one, two, client = sandboxes(), sandboxes(), sandboxes()
    first = nets.attach(net["name"], "1" * 64, one.netns, aliases=["svc"])
    second = nets.attach(net["name"], "2" * 64, two.netns, aliases=["svc"])
    nets.attach(net["name"], "3" * 64, client.netns)

    # from inside a container, through the gateway
    answer = client.run(BUSYBOX, "nslookup", "svc", net["gateway"]).stdout
    assert first.ipv4 in answer and second.ipv4 in answer
    leaders = set()
    for _ in range(4):
        found = _dns_query(net["gateway"], "svc")
        assert sorted(found) == sorted([first.ipv4, second.ipv4])
        leaders.add(found[0])
    assert leaders == {first.ipv4, second.ipv4}
    assert _dns_query(net["gateway"], "SVC", tcp=True)
    # a known name without IPv6: no AAAA records, no forwarding
    assert _dns_query(net["gateway"], "svc", qtype=28) == []


def test_dns_forwards_other_names_to_the_stub(nets, sandboxes, subnets, names, stub):
    net = nets.create(names("net"), subnet=subnets())
    box = sandboxes()
    nets.attach(net["name"], "f" * 64, box.netns)
    answer = box.run(BUSYBOX, "nslookup", "outside.example", net["gateway"]).stdout
    assert STUB_ANSWER in answer
    assert _dns_query(net["gateway"], "tcp.example", tcp=True) == [STUB_ANSWER]
    assert "outside.example" in stub.asked and "tcp.example" in stub.asked


def test_nothing_left_after_detach_and_rm(nets, sandboxes, subnets, names, tmp_path):
    net = nets.create(names("net"), subnet=subnets(), options={"com.docker.network.driver.mtu": "1400"})
    box = sandboxes()
    ep = nets.attach(net["name"], "9" * 64, box.netns, ip=str(ipaddress.ip_network(net["subnet"])[50]))
    assert ep.ipv4.endswith(".50")
    assert "mtu 1400" in box.run(BUSYBOX, "ip", "link", "show", "eth0").stdout
    nets.publish(ep.ipv4, [("127.0.0.1", None, 80, "tcp")])
    dns_pid = nets.dns_pid(net["name"])
    assert dns_pid and os.path.exists(f"/proc/{dns_pid}")
    assert _link_exists(net["bridge"]) and _link_exists(ep.host_ifname)
    tags = _tags()
    assert f"vessel-net:{net['id'][:16]}" in tags

    nets.detach(ep)
    assert not _link_exists(ep.host_ifname)
    assert "eth0" not in box.run(BUSYBOX, "ip", "link").stdout
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{dns_pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{dns_pid}")

    nets.remove(net["name"])
    assert not _link_exists(net["bridge"])
    assert not [t for t in _tags() if net["id"][:16] in t or ep.id[:16] in t]
    tables = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True).stdout
    if not _tags():
        assert not [t for t in json.loads(tables)["nftables"] if t.get("table", {}).get("name") == "vessel"]
    db = nets.store.db
    assert db.execute("SELECT COUNT(*) FROM addresses WHERE network_id = ?", (net["id"],)).fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0] == 0
    assert os.listdir(tmp_path / "root" / "network") == ["network.db"] or \
        set(os.listdir(tmp_path / "root" / "network")) <= {"network.db", "network.db-wal", "network.db-shm"}


def test_bad_input_is_rejected_without_leftovers(nets, sandboxes, subnets, names):
    subnet = subnets()
    net = nets.create(names("net"), subnet=subnet)
    before = _links()
    overlapping = str(ipaddress.ip_network(subnet).supernet(new_prefix=16))
    with pytest.raises(Conflict, match="overlaps"):
        nets.create(names("net"), subnet=overlapping)
    with pytest.raises(InvalidArgument, match="outside the subnet"):
        nets.create(names("net"), subnet=subnets(), gateway="192.0.2.1")
    with pytest.raises(InvalidArgument):
        nets.create(names("net"), subnet="10.1.2.3/24")
    with pytest.raises(InvalidArgument, match="MTU"):
        nets.create(names("net"), subnet=subnets(), options={"com.docker.network.driver.mtu": "9"})
    assert _links() - before == set()
    assert [n["name"] for n in nets.list() if not n["predefined"]] == [net["name"]]

    box, other = sandboxes(), sandboxes()
    with pytest.raises(InvalidArgument, match="outside the subnet"):
        nets.attach(net["name"], "7" * 64, box.netns, ip="192.0.2.9")
    taken = nets.attach(net["name"], "7" * 64, box.netns)
    with pytest.raises(Conflict, match="already in use"):
        nets.attach(net["name"], "8" * 64, other.netns, ip=taken.ipv4)
    with pytest.raises(NotFound):
        nets.attach(net["name"], "8" * 64, "/proc/999999999/ns/net")
    with pytest.raises(NotFound):
        nets.attach("no-such-network", "8" * 64, other.netns)
    with pytest.raises(Conflict, match="active endpoints"):
        nets.remove(net["name"])
    assert len(nets.endpoints()) == 1
    count = nets.store.db.execute("SELECT COUNT(*) FROM addresses WHERE network_id = ?", (net["id"],))
    assert count.fetchone()[0] == 2  # gateway + endpoint


def test_allocations_are_unique_across_processes_and_restarts(nets, sandboxes, subnets, names, tmp_path):
    net = nets.create(names("net"), subnet=subnets())
    boxes = [sandboxes() for _ in range(6)]
    script = ("import sys; from vessel.network import attach; "
              "print(attach(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]).ipv4)")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "root"), net["name"], f"{i}" * 64,
                               box.netns], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, box in enumerate(boxes)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    addresses = [out.strip() for out, _ in results]
    assert len(set(addresses)) == 6

    # a fresh Networks (a restart) sees them and the forwarder setting; a freed address is handed out again
    with Networks(str(tmp_path / "root")) as again:
        assert again.dns_upstreams == nets.dns_upstreams
        assert sorted(ep.ipv4 for ep in again.endpoints(network=net["name"])) == sorted(addresses)
        freed = again.endpoints(container_id="0" * 64)[0]
        again.detach(freed)
    replacement = nets.attach(net["name"], "z" * 64, boxes[0].netns)
    assert replacement.ipv4 == min(addresses, key=lambda a: ipaddress.ip_address(a)) or \
        replacement.ipv4 == freed.ipv4


def test_default_bridge_comes_and_goes_with_its_endpoints(nets, sandboxes):
    from vessel.network.links import host_routes

    if _link_exists("vessel0") or any(r.overlaps(ipaddress.ip_network("10.88.0.0/16")) for r in host_routes()):
        pytest.skip("vessel0 or 10.88.0.0/16 is already in use on this host")
    box = sandboxes()
    ep = nets.attach("bridge", "d" * 64, box.netns)
    try:
        assert _link_exists("vessel0")
        assert ep.ipv4 == "10.88.0.2" and ep.gateway == "10.88.0.1"
        assert box.run(BUSYBOX, "ping", "-c1", "-W2", "10.88.0.1").returncode == 0
        assert nets.dns_pid("bridge") is None
    finally:
        nets.detach(ep)
    assert not _link_exists("vessel0")


def test_ipv6_dual_stack(nets, sandboxes, subnets, names, tmp_path):
    if not os.path.exists("/proc/sys/net/ipv6") or open("/proc/sys/net/ipv6/conf/all/disable_ipv6").read() != "0\n":
        pytest.skip("IPv6 is disabled on this host")
    subnet6 = f"fd{os.urandom(1).hex()}:{os.urandom(2).hex()}:{os.urandom(2).hex()}::/64"
    net = nets.create(names("net"), subnet=subnets(), ipv6=True, subnet6=subnet6)
    assert ipaddress.ip_network(net["subnet6"]) == ipaddress.ip_network(subnet6)
    web, client = sandboxes(), sandboxes()
    web_ep = nets.attach(net["name"], "6" * 64, web.netns, name="web6")
    nets.attach(net["name"], "5" * 64, client.netns)
    assert web_ep.ipv6 and ipaddress.ip_address(web_ep.ipv6) in ipaddress.ip_network(subnet6)
    web.httpd(8080, _docroot(tmp_path, "v6", "over ipv6\n"))
    assert client.wget(f"http://[{web_ep.ipv6}]:8080/").stdout == "over ipv6\n"
    assert _dns_query(net["gateway"], "web6", qtype=28) == [web_ep.ipv6]
    assert _dns_query(net["gateway"], "web6") == [web_ep.ipv4]
    document = nets.inspect(net["name"])
    assert document["EnableIPv6"] is True
    assert {c["Subnet"] for c in document["IPAM"]["Config"]} == {net["subnet"], net["subnet6"]}


def _nft_tables():
    listing = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True).stdout
    return {(t["table"]["family"], t["table"]["name"]) for t in json.loads(listing)["nftables"] if "table" in t}


def test_iptables_fallback(nets, sandboxes, subnets, names, tmp_path):
    import shutil

    from vessel.network.firewall import Iptables

    if not shutil.which("iptables") or not shutil.which("ip6tables"):
        pytest.skip("iptables is not installed")
    tables_before = _nft_tables()
    nets.firewall = Iptables()
    try:
        net = nets.create(names("net"), subnet=subnets())
        box = sandboxes()
        ep = nets.attach(net["name"], "4" * 64, box.netns)
        box.httpd(8080, _docroot(tmp_path, "ipt", "via iptables\n"))
        port = nets.publish(ep.ipv4, [("127.0.0.1", None, 8080, "tcp")])[0]["host_port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read().decode() == "via iptables\n"
        assert any(t.startswith("vessel-port:") for t in nets.firewall.tagged())
        nets.detach(ep)
        nets.remove(net["name"])
        assert nets.firewall.tagged() == []
        chains = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert "VESSEL" not in chains
    finally:
        # iptables-nft leaves its (now empty) base tables behind: drop those this test made
        for family, name in _nft_tables() - tables_before:
            listing = subprocess.run(["nft", "-j", "list", "table", family, name], capture_output=True, text=True)
            if not [i for i in json.loads(listing.stdout)["nftables"] if "rule" in i]:
                subprocess.run(["nft", "delete", "table", family, name], capture_output=True)


def test_internal_network_and_a_container_that_died_first(nets, sandboxes, subnets, names):
    net = nets.create(names("net"), subnet=subnets(), internal=True)
    assert nets.inspect(net["name"])["Internal"] is True
    ruleset = subprocess.run(["nft", "list", "table", "inet", "vessel"], capture_output=True, text=True).stdout
    mine = [line.strip() for line in ruleset.splitlines() if net["id"][:16] in line]
    assert not [r for r in mine if "oifname !=" in r and "masquerade" in r]  # no way out
    assert f'iifname "{net["bridge"]}" drop comment "vessel-net:{net["id"][:16]}"' in mine

    box = sandboxes()
    ep = nets.attach(net["name"], "8" * 64, box.netns)
    box.close()  # the container exits: its namespace and veth pair vanish with it
    deadline = time.monotonic() + 5
    while _link_exists(ep.host_ifname) and time.monotonic() < deadline:
        time.sleep(0.05)
    nets.detach(ep)
    assert nets.endpoints() == []
    nets.remove(net["name"])
    assert not _link_exists(net["bridge"])


def test_attach_is_undone_when_the_dns_server_cannot_start(nets, sandboxes, subnets, names):
    net = nets.create(names("net"), subnet=subnets())
    box = sandboxes()
    links_before = _links()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((net["gateway"], 53))
        with pytest.raises(Unavailable, match="DNS server"):
            nets.attach(net["name"], "5" * 64, box.netns)
    assert _links() - links_before == set()  # nothing of ours; other roots' bridges may come and go
    assert nets.endpoints() == []
    assert "eth0" not in box.run(BUSYBOX, "ip", "link").stdout
    count = nets.store.db.execute("SELECT COUNT(*) FROM addresses WHERE network_id = ?", (net["id"],))
    assert count.fetchone()[0] == 1  # the gateway only
    # and it works once the port is free
    assert nets.attach(net["name"], "5" * 64, box.netns).ifname == "eth0"


def test_containers_cannot_reach_host_loopback_services(nets, sandboxes, subnets, names):
    """route_localnet on the bridge must not open 127.0.0.1 to containers (CVE-2020-8558).

    Passes the datagram through when the input rule is removed: the attack is real here.
    """
    net = nets.create(names("net"), subnet=subnets())
    box = sandboxes()
    nets.attach(net["name"], "3" * 64, box.netns)
    # the container routes 127.0.0.1 to its gateway, as an attacker would
    for command in (["ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
                    ["ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"],
                    ["sysctl", "-w", "net.ipv4.conf.eth0.route_localnet=1"],
                    ["ip", "route", "add", "127.0.0.1/32", "via", net["gateway"], "dev", "eth0"]):
        box.run(BUSYBOX, *command)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:
        service.bind(("127.0.0.1", 0))
        service.settimeout(1)
        send = ("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                f".sendto(b'hi', ('127.0.0.1', {service.getsockname()[1]}))")
        assert box.run(sys.executable, "-c", send).returncode == 0
        with pytest.raises(TimeoutError):
            service.recvfrom(16)
