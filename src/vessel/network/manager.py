"""Bridge networks of one state root: create/remove, attach/detach, published ports, DNS.

The database says what should exist; kernel objects (bridge, veth pairs,
nftables rules, the DNS process) are made from it under one host-wide lock
(/run/lock/vessel-network.lock, like iptables' xtables.lock) so concurrent
vessel processes never interleave half-done changes.  Every operation undoes
what it made when a later step fails.
"""

import contextlib
import datetime
import fcntl
import ipaddress
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time

from vessel.errors import Conflict, InvalidArgument, NotFound, Unavailable
from vessel.network import firewall as fw
from vessel.network import ipam, links
from vessel.network.dns import read_upstreams
from vessel.network.store import Store

__all__ = ["DEFAULT_NETWORK", "Endpoint", "Networks", "remove_orphan_bridge"]

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "vessel0"
DEFAULT_SUBNET = "10.88.0.0/16"
AUTO_SUBNETS = [f"10.89.{n}.0/24" for n in range(256)]
HOST_LOCK = "/run/lock/vessel-network.lock"
MTU_OPTION = "com.docker.network.driver.mtu"
BRIDGE_OPTION = "com.docker.network.bridge.name"
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
PROTOCOLS = ("tcp", "udp", "sctp")


@contextlib.contextmanager
def host_lock():
    """Serialize kernel changes of every vessel process on this host."""
    os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_orphan_bridge(bridge, network_id):
    """Remove a bridge and its network's rules whose state root is gone."""
    with host_lock():
        fw.firewall().remove_network(network_id)
        links.delete_link(bridge)


class Endpoint:
    """A container's interface on one network."""

    __slots__ = ("id", "network", "network_id", "container_id", "name", "ifname", "host_ifname",
                 "netns_path", "mac", "ipv4", "ipv6", "prefixlen", "prefixlen6", "gateway", "gateway6",
                 "aliases", "hostname", "dns")

    def __init__(self, row, net):
        for key in ("id", "network_id", "container_id", "name", "ifname", "host_ifname", "netns_path",
                    "mac", "ipv4", "ipv6", "hostname"):
            setattr(self, key, row[key])
        self.aliases = list(row["aliases"])
        self.network = net["name"]
        self.prefixlen = ipaddress.ip_network(net["subnet"]).prefixlen
        self.prefixlen6 = ipaddress.ip_network(net["subnet6"]).prefixlen if net["subnet6"] else None
        self.gateway, self.gateway6 = net["gateway"], net["gateway6"]
        # user networks: the embedded DNS on the gateway; the default bridge: the host's resolvers
        self.dns = [net["gateway"]] if not net["predefined"] else [
            host for host, _ in read_upstreams() if not ipaddress.ip_address(host).is_loopback]

    def resolv_conf(self):
        """The /etc/resolv.conf the container should get for this endpoint."""
        return "".join(f"nameserver {server}\n" for server in self.dns) + "options ndots:0\n"

    def settings(self):
        """Docker's NetworkSettings.Networks[<name>] entry."""
        return {
            "IPAMConfig": None, "Links": None, "Aliases": self.aliases or None,
            "NetworkID": self.network_id, "EndpointID": self.id,
            "Gateway": self.gateway, "IPAddress": self.ipv4, "IPPrefixLen": self.prefixlen,
            "IPv6Gateway": self.gateway6 or "", "GlobalIPv6Address": self.ipv6 or "",
            "GlobalIPv6PrefixLen": self.prefixlen6 or 0, "MacAddress": self.mac, "DNSNames": self.dns_names(),
        }

    def dns_names(self):
        names = [self.name, self.container_id[:12], self.hostname, *self.aliases]
        return [n for i, n in enumerate(names) if n and n not in names[:i]]

    def __repr__(self):
        return f"<Endpoint {self.id[:12]} {self.network} {self.ifname} {self.ipv4}>"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _with_nets(net):
    net = dict(net)
    net["subnet_net"] = ipaddress.ip_network(net["subnet"])
    net["subnet6_net"] = ipaddress.ip_network(net["subnet6"]) if net["subnet6"] else None
    return net


def _pid_is_dns(pid, network_id):
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    return b"vessel.network.dns" in cmdline and network_id.encode() in cmdline


def _enable_forwarding():
    with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1")


class Networks:
    """The networks of the state root `root`.

    `dns_upstreams` ("host[:port]" strings) replaces the host's resolvers as the
    embedded DNS servers' forwarders; it is remembered in the root's database, so
    every later process of this root uses it too.  `dns_port` is where the
    servers listen (53).
    """

    def __init__(self, root, dns_upstreams=None, dns_port=53, keep_default=False):
        self.root = root
        self.keep_default = keep_default  # an idle default bridge stays up (remove_idle_default later)
        self.store = Store(root)
        self.firewall = fw.firewall()
        if dns_upstreams is not None:
            self.store.set_setting("dns_upstreams", list(dns_upstreams))
        self.dns_upstreams = self.store.setting("dns_upstreams", [])
        self.dns_port = dns_port
        self._ensure_default()

    def close(self):
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- networks ---------------------------------------------------------------

    def _ensure_default(self):
        if self.store.db.execute("SELECT 1 FROM networks WHERE predefined = 1").fetchone():
            return  # the common case takes no write lock
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM networks WHERE predefined = 1").fetchone():
                return
            # a root's default bridge is chosen once, when its database is made (tests: one per root)
            bridge = os.environ.get("VESSEL_DEFAULT_BRIDGE") or DEFAULT_BRIDGE
            subnet = ipam.parse_subnet(os.environ.get("VESSEL_DEFAULT_SUBNET") or DEFAULT_SUBNET, 4)
            self.store.add_network(db, {
                "id": secrets.token_hex(32), "name": DEFAULT_NETWORK, "driver": "bridge",
                "bridge": bridge, "subnet": str(subnet), "gateway": str(subnet.network_address + 1),
                "subnet6": None, "gateway6": None, "internal": 0, "mtu": 1500,
                "options": {BRIDGE_OPTION: bridge, "com.docker.network.bridge.default_bridge": "true"},
                "labels": {}, "predefined": 1, "created": _now(), "dns_pid": None})

    def list(self):
        return self.store.networks()

    def get(self, ref):
        return self.store.find_network(ref)

    def create(self, name, subnet=None, gateway=None, ipv6=False, subnet6=None, gateway6=None,
               internal=False, options=None, labels=None):
        """A user-defined bridge network; its bridge and rules exist when this returns."""
        ipam.validate_name(name)
        options = dict(options or {})
        mtu = self._mtu(options)
        if gateway is not None and subnet is None:
            raise InvalidArgument("a gateway needs a subnet (--subnet)")
        if (subnet6 or gateway6) and not ipv6:
            raise InvalidArgument("an IPv6 subnet needs IPv6 enabled (--ipv6)")
        if gateway6 is not None and subnet6 is None:
            raise InvalidArgument("an IPv6 gateway needs an IPv6 subnet")
        net_id = secrets.token_hex(32)
        bridge = options.get(BRIDGE_OPTION) or f"br-{net_id[:12]}"
        if len(bridge) > 15 or not re.match(r"^[a-zA-Z0-9_.-]+$", bridge):
            raise InvalidArgument(f"invalid bridge name {bridge!r}: at most 15 of [a-zA-Z0-9_.-]")
        v4 = ipam.parse_subnet(subnet, 4) if subnet else None
        v6 = ipam.parse_subnet(subnet6, 6) if subnet6 else None
        if ipv6 and v6 is None:
            v6 = ipaddress.ip_network(f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}::/64")
        gw4 = ipam.parse_gateway(gateway, v4) if v4 else None
        gw6 = ipam.parse_gateway(gateway6, v6) if v6 else None
        routes = links.host_routes()
        with self.store.transaction() as db:
            used = [ipaddress.ip_network(n["subnet"]) for n in self.store.networks()]
            used += [ipaddress.ip_network(n["subnet6"]) for n in self.store.networks() if n["subnet6"]]
            if v4 is None:
                v4 = next((s for s in map(ipaddress.ip_network, AUTO_SUBNETS)
                           if not any(s.overlaps(u) for u in used + routes if u.version == 4)), None)
                if v4 is None:
                    raise Unavailable("no free subnet left for a new network: give one with --subnet")
                gw4 = v4.network_address + 1
            for mine in filter(None, (v4, v6)):
                for other in used + routes:
                    if other.version == mine.version and mine.overlaps(other):
                        raise Conflict(f"subnet {mine} overlaps with {other}, already in use on this host")
            if any(n["bridge"] == bridge for n in self.store.networks()) or links.link_exists(bridge):
                raise Conflict(f"interface {bridge} already exists")
            net = {"id": net_id, "name": name, "driver": "bridge", "bridge": bridge,
                   "subnet": str(v4), "gateway": str(gw4), "subnet6": str(v6) if v6 else None,
                   "gateway6": str(gw6) if gw6 else None, "internal": int(bool(internal)), "mtu": mtu,
                   "options": options, "labels": dict(labels or {}), "predefined": 0, "created": _now(),
                   "dns_pid": None}
            self.store.add_network(db, net)
        try:
            with host_lock():
                self._bring_up(net)
        except BaseException:
            with self.store.transaction() as db:
                self.store.delete_network(db, net_id)
            raise
        return self.store.find_network(net_id)

    @staticmethod
    def _mtu(options):
        text = options.get(MTU_OPTION)
        if text is None:
            return 1500
        try:
            mtu = int(text)
        except ValueError:
            mtu = 0
        if not 68 <= mtu <= 65535:
            raise InvalidArgument(f"invalid MTU {text!r}: must be a number between 68 and 65535")
        return mtu

    def _bring_up(self, net):
        """Bridge and rules of a network (idempotent); removes what it made on failure."""
        net = _with_nets(net)
        if net["predefined"] and not links.link_exists(net["bridge"]):
            for route in links.host_routes():
                if route.version == 4 and route.overlaps(net["subnet_net"]):
                    raise Conflict(f"subnet {net['subnet']} of the default network overlaps with {route}, "
                                   "already routed on this host")
        addresses = [(ipaddress.ip_address(net["gateway"]), net["subnet_net"].prefixlen)]
        if net["subnet6_net"]:
            addresses.append((ipaddress.ip_address(net["gateway6"]), net["subnet6_net"].prefixlen))
        created = links.ensure_bridge(net["bridge"], net["mtu"], addresses)
        try:
            if created:  # rules come and go with the bridge: an attach to a present bridge needs no nft call
                self.firewall.add_network(net)
            if not net["internal"]:
                _enable_forwarding()
        except BaseException:
            if created:
                self.firewall.remove_network(net["id"])
                links.delete_link(net["bridge"])
            raise

    def _bring_down(self, net):
        self._stop_dns(net)
        self.firewall.remove_network(net["id"])
        links.delete_link(net["bridge"])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._dns_log(net))

    def _dns_log(self, net):
        return os.path.join(self.store.dir, f"dns-{net['id'][:12]}.log")

    def remove(self, ref):
        """Remove a network without endpoints; the predefined one stays."""
        net = self.store.find_network(ref)
        if net["predefined"]:
            raise Conflict(f"{net['name']} is a pre-defined network and cannot be removed")
        with host_lock():
            net = self.store.find_network(net["id"])
            with self.store.transaction() as db:
                if self.store.endpoints(net["id"]):
                    raise Conflict(f"error while removing network: network {net['name']} id {net['id']} "
                                   "has active endpoints")
                self.store.delete_network(db, net["id"])
            self._bring_down(net)
        return net

    def prune(self, select=None):
        """Remove every user-defined network without endpoints (that `select(network)` accepts); their names."""
        removed = []
        for net in self.store.networks():
            if not net["predefined"] and not self.store.endpoints(net["id"]) and (select is None or select(net)):
                try:
                    removed.append(self.remove(net["id"])["name"])
                except (Conflict, NotFound):
                    continue
        return removed

    def inspect(self, ref):
        """Docker's `network inspect` object."""
        net = self.store.find_network(ref)
        config = [{"Subnet": net["subnet"], "Gateway": net["gateway"]}]
        if net["subnet6"]:
            config.append({"Subnet": net["subnet6"], "Gateway": net["gateway6"]})
        containers = {}
        for row in self.store.endpoints(net["id"]):
            ep = Endpoint(row, net)
            containers[ep.container_id] = {
                "Name": ep.name or "", "EndpointID": ep.id, "MacAddress": ep.mac,
                "IPv4Address": f"{ep.ipv4}/{ep.prefixlen}",
                "IPv6Address": f"{ep.ipv6}/{ep.prefixlen6}" if ep.ipv6 else ""}
        options = dict(net["options"])
        options.setdefault(BRIDGE_OPTION, net["bridge"])
        return {
            "Name": net["name"], "Id": net["id"], "Created": net["created"], "Scope": "local",
            "Driver": net["driver"], "EnableIPv4": True, "EnableIPv6": bool(net["subnet6"]),
            "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Internal": bool(net["internal"]), "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": options, "Labels": net["labels"],
        }

    # -- endpoints --------------------------------------------------------------

    def endpoints(self, container_id=None, network=None):
        """Endpoints, optionally of one container and/or one network."""
        net_id = self.store.find_network(network)["id"] if network else None
        nets = {n["id"]: n for n in self.store.networks()}
        return [Endpoint(row, nets[row["network_id"]])
                for row in self.store.endpoints(net_id, container_id)]

    def attach(self, network, container_id, netns_path, ip=None, aliases=(), mac=None, hostname=None,
               name=None):
        """Connect the namespace at `netns_path` to `network`: veth, address, routes, DNS names."""
        net = self.store.find_network(network)
        if not container_id or not isinstance(container_id, str):
            raise InvalidArgument("a container id is required")
        if mac is not None and not MAC_PATTERN.match(mac.lower()):
            raise InvalidArgument(f"invalid MAC address {mac!r}")
        if not os.path.exists(netns_path):
            raise NotFound(f"network namespace {netns_path} does not exist")
        subnet4 = ipaddress.ip_network(net["subnet"])
        subnet6 = ipaddress.ip_network(net["subnet6"]) if net["subnet6"] else None
        want4 = want6 = None
        for text in ([ip] if isinstance(ip, str) else list(ip or ())):
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise InvalidArgument(f"invalid IP address {text!r}") from None
            if address.version == 4:
                want4 = address
            else:
                want6 = address
        if want4 is not None:
            ipam.check_in_subnet(want4, subnet4)
        if want6 is not None:
            if subnet6 is None:
                raise InvalidArgument(f"network {net['name']} has no IPv6 subnet for {want6}")
            ipam.check_in_subnet(want6, subnet6)
        endpoint_id = secrets.token_hex(32)
        with host_lock():
            ifname = links.free_ifname(netns_path)
            with self.store.transaction() as db:
                taken = self.store.taken(db, net["id"])
                ipv4 = want4 or ipam.first_free(subnet4, taken)
                self.store.claim(db, net["id"], ipv4, endpoint_id)
                ipv6 = None
                if subnet6 is not None:
                    ipv6 = want6 or ipam.first_free(subnet6, taken)
                    self.store.claim(db, net["id"], ipv6, endpoint_id)
                row = {"id": endpoint_id, "network_id": net["id"], "container_id": container_id, "name": name,
                       "ifname": ifname, "host_ifname": f"veth{endpoint_id[:11]}", "netns_path": netns_path,
                       "mac": (mac or ipam.mac_for(ipv4)).lower(), "ipv4": str(ipv4),
                       "ipv6": str(ipv6) if ipv6 else None, "aliases": [str(a) for a in aliases],
                       "hostname": hostname}
                self.store.add_endpoint(db, row)
            try:
                self._bring_up(net)
                addresses = [(ipv4, subnet4.prefixlen)] + ([(ipv6, subnet6.prefixlen)] if ipv6 else [])
                gateways = [ipaddress.ip_address(net["gateway"])]
                if net["gateway6"]:
                    gateways.append(ipaddress.ip_address(net["gateway6"]))
                links.attach_veth(net["bridge"], row["host_ifname"], netns_path, ifname, row["mac"], net["mtu"],
                                  addresses, gateways)
                if not net["predefined"]:
                    self._ensure_dns(net)
            except BaseException:
                links.delete_link(row["host_ifname"])
                self._forget_endpoint(net, endpoint_id)
                raise
        return Endpoint(row, net)

    def detach(self, endpoint):
        """Remove an endpoint (an Endpoint or its id): ports, veth pair, address."""
        endpoint_id = endpoint.id if isinstance(endpoint, Endpoint) else endpoint
        row = self.store.endpoint(endpoint_id)
        if row is None:
            raise NotFound(f"endpoint {endpoint_id} not found")
        net = self.store.find_network(row["network_id"])
        with host_lock():
            if self.store.ports(endpoint_id):  # rows come before rules and go after them
                self.firewall.remove_ports(endpoint_id)
            links.delete_link(row["host_ifname"])
            self._forget_endpoint(net, endpoint_id)

    def _forget_endpoint(self, net, endpoint_id):
        """Drop the endpoint's rows; the last one out stops DNS (and the default bridge). Host lock held."""
        with self.store.transaction() as db:
            self.store.delete_endpoint(db, endpoint_id)
            idle = not self.store.endpoints(net["id"])
        if idle:
            if not net["predefined"]:
                self._stop_dns(net)
            elif not self.keep_default:
                self._bring_down(net)

    def remove_idle_default(self):
        """Remove the default network's bridge and rules when no endpoint uses them (kept up by keep_default)."""
        with host_lock():
            net = self.store.find_network(DEFAULT_NETWORK)
            if not self.store.endpoints(net["id"]) and links.link_exists(net["bridge"]):
                self._bring_down(net)

    # -- embedded DNS -----------------------------------------------------------

    def _ensure_dns(self, net):
        """Start the network's DNS server unless it runs. Host lock held."""
        pid = self.store.find_network(net["id"])["dns_pid"]
        if _pid_is_dns(pid, net["id"]):
            return
        command = [sys.executable, "-m", "vessel.network.dns", "--db", self.store.path, "--network", net["id"],
                   "--listen", net["gateway"], "--port", str(self.dns_port),
                   "--log", self._dns_log(net)]
        for upstream in self.dns_upstreams:
            command += ["--upstream", upstream]
        with self.store.transaction() as db:
            self.store.set_dns_pid(db, net["id"], None)
        result = subprocess.run(command, capture_output=True, text=True, cwd="/", timeout=30)
        if result.returncode or not result.stdout.strip().isdigit():
            message = (result.stderr.strip().splitlines() or ["failed to start"])[-1]
            raise Unavailable(f"DNS server of network {net['name']}: {message}")
        with self.store.transaction() as db:
            self.store.set_dns_pid(db, net["id"], int(result.stdout.strip()))

    def _stop_dns(self, net):
        pid = net["dns_pid"]
        row = self.store.db.execute("SELECT dns_pid FROM networks WHERE id = ?", (net["id"],)).fetchone()
        if row is not None:
            pid = row[0]
            with self.store.transaction() as db:
                self.store.set_dns_pid(db, net["id"], None)
        if not _pid_is_dns(pid, net["id"]):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _pid_is_dns(pid, net["id"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _pid_is_dns(pid, net["id"]):
            os.kill(pid, signal.SIGKILL)

    def dns_pid(self, network):
        """The pid of a network's DNS server, or None."""
        net = self.store.find_network(network)
        return net["dns_pid"] if _pid_is_dns(net["dns_pid"], net["id"]) else None

    # -- published ports --------------------------------------------------------

    def publish(self, container_ip, ports):
        """DNAT host ports to `container_ip`: ports = [(host_ip, host_port, container_port, proto)].

        host_port/container_port are numbers or "first-last" ranges of equal length;
        an empty host_ip means every host address, host_port 0/None a free one.
        Returns the mappings made (dicts).
        """
        row = self.store.endpoint_by_ip(str(container_ip))
        if row is None:
            raise NotFound(f"no endpoint has the address {container_ip}")
        mappings = [m for spec in ports for m in _expand(spec, row)]
        with host_lock():
            with self.store.transaction() as db:
                existing = self.store.ports()
                for mapping in mappings:
                    for other in existing:
                        if _same_socket(mapping, other):
                            raise Conflict(f"Bind for {_where(mapping)} failed: port is already allocated")
                    if mapping["host_port"] == 0:
                        mapping["host_port"] = _free_port(mapping)
                    else:
                        _check_free(mapping)
                    existing.append(mapping)
                    self.store.add_port(db, mapping)
            try:
                self.firewall.add_ports(row["id"], mappings)
            except BaseException:
                with self.store.transaction() as db:
                    for mapping in mappings:
                        self.store.delete_port(db, mapping)
                self.firewall.remove_ports(row["id"], mappings)
                raise
        return mappings

    def unpublish(self, container_ip, ports=None):
        """Remove published ports of `container_ip`: the given ones, or all."""
        row = self.store.endpoint_by_ip(str(container_ip))
        if row is None:
            raise NotFound(f"no endpoint has the address {container_ip}")
        current = self.store.ports(row["id"])
        if ports is not None:
            wanted = [m for spec in ports for m in _expand(spec, row)]
            current = [p for p in current if any(_same_socket(p, w) and p["host_port"] == w["host_port"]
                                                 for w in wanted)]
        with host_lock():
            self.firewall.remove_ports(row["id"], current)
            with self.store.transaction() as db:
                for port in current:
                    self.store.delete_port(db, port)
        return current

    def ports(self, container_ip=None):
        """Published ports, of one container address or all."""
        if container_ip is None:
            return self.store.ports()
        row = self.store.endpoint_by_ip(str(container_ip))
        return self.store.ports(row["id"]) if row else []


def _port_range(value, what):
    if value in (None, "", 0):
        return [0]
    text = str(value)
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}") from None
    if not (1 <= low <= high <= 65535):
        raise InvalidArgument(f"invalid {what} {text!r}: ports are 1-65535")
    return list(range(low, high + 1))


def _expand(spec, endpoint):
    """One (host_ip, host_port, container_port, proto) -> mapping dicts, one per port."""
    try:
        host_ip, host_port, container_port, proto = spec
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid port mapping {spec!r}: want (host_ip, host_port, container_port, proto)") \
            from None
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r}: one of {', '.join(PROTOCOLS)}")
    container_ports = _port_range(container_port, "container port")
    if container_ports == [0]:
        raise InvalidArgument("a container port is required")
    host_ports = _port_range(host_port, "host port")
    if host_ports == [0]:
        host_ports = [0] * len(container_ports)
    if len(host_ports) != len(container_ports):
        raise InvalidArgument(f"invalid ranges {host_port}:{container_port}: host and container ranges "
                              "must have the same length")
    try:
        host = ipaddress.ip_address(host_ip or "0.0.0.0")
    except ValueError:
        raise InvalidArgument(f"invalid host IP {host_ip!r}") from None
    container_ip = endpoint["ipv4"]
    if host.version == 6:
        if not endpoint["ipv6"]:
            raise InvalidArgument(f"cannot publish on {host}: the endpoint has no IPv6 address")
        container_ip = endpoint["ipv6"]
    return [{"endpoint_id": endpoint["id"], "host_ip": str(host), "host_port": hp, "container_ip": container_ip,
             "container_port": cp, "proto": proto} for hp, cp in zip(host_ports, container_ports)]


def _same_socket(a, b):
    wild = ("0.0.0.0", "::")
    same_ip = a["host_ip"] == b["host_ip"] or a["host_ip"] in wild or b["host_ip"] in wild
    return same_ip and a["proto"] == b["proto"] and a["host_port"] and a["host_port"] == b["host_port"]


def _where(mapping):
    return f"{mapping['host_ip']}:{mapping['host_port']}"


def _socket_for(mapping):
    family = socket.AF_INET6 if ":" in mapping["host_ip"] else socket.AF_INET
    kind = socket.SOCK_DGRAM if mapping["proto"] == "udp" else socket.SOCK_STREAM
    proto = socket.IPPROTO_SCTP if mapping["proto"] == "sctp" else 0
    return socket.socket(family, kind, proto)


def _check_free(mapping):
    """Conflict when something on the host already listens on the port."""
    try:
        with _socket_for(mapping) as sock:
            sock.bind((mapping["host_ip"], mapping["host_port"]))
    except OSError as exc:
        if exc.errno == 98:  # EADDRINUSE
            raise Conflict(f"Bind for {_where(mapping)} failed: port is already allocated") from None
        raise Unavailable(f"cannot publish {_where(mapping)}: {exc.strerror}") from None


def _free_port(mapping):
    with _socket_for(mapping) as sock:
        sock.bind((mapping["host_ip"], 0))
        return sock.getsockname()[1]
