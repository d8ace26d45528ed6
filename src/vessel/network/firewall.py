"""Packet filtering and NAT for vessel networks.

Everything lives in vessel's own nftables table `inet vessel`, driven through
`nft -j` (JSON in and out, so rules are found by their comment tag and deleted
by handle, never by re-parsing text); other tables are never touched.  Each
rule's comment names its owner: `vessel-net:<network id>` for a network's
masquerade and isolation rules, `vessel-port:<endpoint id>:...` for a published
port.  The table goes away with its last rule.  Hosts without `nft` get the
same rules from iptables/ip6tables in VESSEL-* chains.

Published ports are DNAT rules reached from prerouting (traffic from other
namespaces) and from output (the host itself, 127.0.0.1 included: the bridge
has route_localnet=1 and the 127.0.0.0/8 source is masqueraded to the gateway).
"""

import json
import shlex
import shutil
import subprocess

from vessel.errors import Unavailable

__all__ = ["firewall"]

TABLE = "vessel"
FAMILY = "inet"


def firewall():
    """The backend this host supports: nftables, else iptables."""
    if shutil.which("nft"):
        return Nftables()
    if shutil.which("iptables"):
        return Iptables()
    raise Unavailable("neither nft nor iptables is installed: cannot configure vessel networks")


def network_tag(network_id):
    return f"vessel-net:{network_id[:16]}"


def port_tag(endpoint_id, port=None):
    tag = f"vessel-port:{endpoint_id[:16]}:"
    if port is not None:
        tag += f"{port['proto']}/{port['host_ip']}/{port['host_port']}"
    return tag


# -- nftables ---------------------------------------------------------------------

def _match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key):
    return {"meta": {"key": key}}


def _payload(protocol, field):
    return {"payload": {"protocol": protocol, "field": field}}


def _prefix(network):
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


BASE_CHAINS = (
    ("prerouting", "nat", "prerouting", -100),
    ("output", "nat", "output", -100),
    ("postrouting", "nat", "postrouting", 100),
    ("forward", "filter", "forward", 0),
    ("input", "filter", "input", 0),
)
TO_PORTS = [_match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"), {"jump": {"target": "ports"}}]


class Nftables:
    """Rules in table `inet vessel`."""

    def _run(self, commands):
        result = subprocess.run(["nft", "-j", "-f", "-"], input=json.dumps({"nftables": commands}),
                                capture_output=True, text=True)
        if result.returncode:
            message = result.stderr.strip().splitlines()
            raise Unavailable(f"nft: {message[0] if message else 'failed'}")

    def _rules(self):
        result = subprocess.run(["nft", "-j", "list", "table", FAMILY, TABLE], capture_output=True, text=True)
        if result.returncode:
            return None
        return [item["rule"] for item in json.loads(result.stdout)["nftables"] if "rule" in item]

    def _skeleton(self):
        commands = [{"add": {"table": {"family": FAMILY, "name": TABLE}}},
                    {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": "ports"}}}]
        for name, kind, hook, prio in BASE_CHAINS:
            commands.append({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name, "type": kind,
                                               "hook": hook, "prio": prio, "policy": "accept"}}})
        rules = self._rules() or []
        for chain in ("prerouting", "output"):
            if not any(r["chain"] == chain and r["expr"] == TO_PORTS for r in rules):
                commands.append(self._rule(chain, TO_PORTS, None))
        return commands, rules

    def _rule(self, chain, expr, comment):
        rule = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
        if comment:
            rule["comment"] = comment
        return {"add": {"rule": rule}}

    def _delete(self, rules, tag, exact=False):
        return [{"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": r["chain"], "handle": r["handle"]}}}
                for r in rules
                if r.get("comment") and (r["comment"] == tag if exact else r["comment"].startswith(tag))]

    def _apply(self, tag, additions, exact=False):
        commands, rules = self._skeleton()
        self._run(commands + self._delete(rules, tag, exact) + additions)

    def _remove(self, tag, exact=False):
        rules = self._rules()
        if rules is None:
            return
        commands = self._delete(rules, tag, exact)
        owned = [r for r in rules if r.get("comment")]
        if len(commands) == len(owned):
            commands = [{"delete": {"table": {"family": FAMILY, "name": TABLE}}}]
        if commands:
            self._run(commands)

    def add_network(self, net):
        """(Re)install a network's masquerade, hairpin and isolation rules."""
        tag, br = network_tag(net["id"]), net["bridge"]
        rules = []
        for subnet, proto in ((net["subnet_net"], "ip"), (net.get("subnet6_net"), "ip6")):
            if subnet is None:
                continue
            if not net["internal"]:
                rules.append(("postrouting", [_match(_payload(proto, "saddr"), _prefix(subnet)),
                                              _match(_meta("oifname"), br, "!="), {"masquerade": None}]))
            # hairpin: a container reaching a published port of its own network through a host address
            rules.append(("postrouting", [_match(_meta("oifname"), br),
                                          _match(_payload(proto, "saddr"), _prefix(subnet)),
                                          _match({"ct": {"key": "status"}}, "dnat", "in"), {"masquerade": None}]))
        rules += [
            ("postrouting", [_match(_meta("oifname"), br),
                             _match(_payload("ip", "saddr"), {"prefix": {"addr": "127.0.0.0", "len": 8}}),
                             {"masquerade": None}]),
            # route_localnet lets 127.0.0.0/8 in from the bridge: only as replies (CVE-2020-8558)
            ("input", [_match(_meta("iifname"), br),
                       _match(_payload("ip", "daddr"), {"prefix": {"addr": "127.0.0.0", "len": 8}}),
                       _match({"ct": {"key": "state"}}, ["new", "invalid"], "in"), {"drop": None}]),
            ("forward", [_match(_meta("iifname"), br), _match(_meta("oifname"), br), {"accept": None}]),
            ("forward", [_match(_meta("oifname"), br),
                         _match({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None}]),
        ]
        if net["internal"]:
            rules.append(("forward", [_match(_meta("iifname"), br), {"drop": None}]))
        else:
            rules.append(("forward", [_match(_meta("oifname"), br),
                                      _match({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}]))
        rules.append(("forward", [_match(_meta("oifname"), br), {"drop": None}]))
        self._apply(tag, [self._rule(chain, expr, tag) for chain, expr in rules], exact=True)

    def remove_network(self, network_id):
        self._remove(network_tag(network_id), exact=True)

    def add_ports(self, endpoint_id, ports):
        """DNAT rules for `ports` (dicts of host_ip, host_port, container_ip, container_port, proto)."""
        additions = []
        for port in ports:
            v6 = ":" in port["container_ip"]
            proto, family = ("ip6", "ipv6") if v6 else ("ip", "ipv4")
            expr = [_match(_meta("nfproto"), family)]
            if port["host_ip"] not in ("0.0.0.0", "::"):
                expr = [_match(_payload(proto, "daddr"), port["host_ip"])]
            expr += [_match(_payload(port["proto"], "dport"), port["host_port"]),
                     {"dnat": {"family": proto, "addr": port["container_ip"], "port": port["container_port"]}}]
            additions.append(self._rule("ports", expr, port_tag(endpoint_id, port)))
        commands, _ = self._skeleton()
        self._run(commands + additions)

    def remove_ports(self, endpoint_id, ports=None):
        """Remove the given published ports of an endpoint, or all of them."""
        if ports is None:
            self._remove(port_tag(endpoint_id))
            return
        for port in ports:
            self._remove(port_tag(endpoint_id, port), exact=True)

    def tagged(self, prefix="vessel-"):
        """Comments of the rules present (tests and diagnostics)."""
        return [r["comment"] for r in self._rules() or [] if r.get("comment", "").startswith(prefix)]


# -- iptables ---------------------------------------------------------------------

IPT_CHAINS = (("nat", "VESSEL-PORTS", ("PREROUTING", "OUTPUT")),
              ("nat", "VESSEL-POSTROUTING", ("POSTROUTING",)),
              ("filter", "VESSEL-FORWARD", ("FORWARD",)),
              ("filter", "VESSEL-INPUT", ("INPUT",)))


class Iptables:
    """The same rules in VESSEL-* chains of iptables and ip6tables."""

    def _ipt(self, tool, *args, check=True):
        result = subprocess.run([tool, "-w", *args], capture_output=True, text=True)
        if check and result.returncode:
            raise Unavailable(f"{tool} {' '.join(args)}: {result.stderr.strip()}")
        return result

    @staticmethod
    def _jump(chain):
        if chain == "VESSEL-PORTS":
            return ["-m", "addrtype", "--dst-type", "LOCAL", "-j", chain]
        return ["-j", chain]

    def _skeleton(self, tool):
        for table, chain, parents in IPT_CHAINS:
            self._ipt(tool, "-t", table, "-N", chain, check=False)
            for parent in parents:
                if self._ipt(tool, "-t", table, "-C", parent, *self._jump(chain), check=False).returncode:
                    self._ipt(tool, "-t", table, "-A", parent, *self._jump(chain))

    def _teardown(self):
        """Remove the VESSEL-* chains and their jumps once no rule of vessel is left."""
        for tool in ("iptables", "ip6tables"):
            for table, chain, parents in IPT_CHAINS:
                for parent in parents:
                    self._ipt(tool, "-t", table, "-D", parent, *self._jump(chain), check=False)
                self._ipt(tool, "-t", table, "-F", chain, check=False)
                self._ipt(tool, "-t", table, "-X", chain, check=False)

    def _add(self, tool, table, chain, spec, tag):
        self._skeleton(tool)
        self._ipt(tool, "-t", table, "-A", chain, *spec, "-m", "comment", "--comment", tag)

    def _remove(self, tag, exact):
        for tool in ("iptables", "ip6tables"):
            for table, chain, _ in IPT_CHAINS:
                listing = self._ipt(tool, "-t", table, "-S", chain, check=False)
                for line in listing.stdout.splitlines():
                    words = shlex.split(line)
                    if "--comment" not in words:
                        continue
                    comment = words[words.index("--comment") + 1]
                    if comment == tag or (not exact and comment.startswith(tag)):
                        self._ipt(tool, "-t", table, "-D", *words[1:])
        if not self.tagged():
            self._teardown()

    def add_network(self, net):
        tag, br = network_tag(net["id"]), net["bridge"]
        self._remove(tag, exact=True)
        for tool, subnet in (("iptables", net["subnet_net"]), ("ip6tables", net.get("subnet6_net"))):
            if subnet is None:
                continue
            if not net["internal"]:
                self._add(tool, "nat", "VESSEL-POSTROUTING",
                          ["-s", str(subnet), "!", "-o", br, "-j", "MASQUERADE"], tag)
            if tool == "iptables":
                self._add(tool, "nat", "VESSEL-POSTROUTING", ["-o", br, "-s", "127.0.0.0/8", "-j", "MASQUERADE"], tag)
                self._add(tool, "filter", "VESSEL-INPUT", ["-i", br, "-d", "127.0.0.0/8", "-m", "conntrack",
                                                           "--ctstate", "NEW,INVALID", "-j", "DROP"], tag)
            self._add(tool, "nat", "VESSEL-POSTROUTING",
                      ["-o", br, "-s", str(subnet), "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"], tag)
            self._add(tool, "filter", "VESSEL-FORWARD", ["-i", br, "-o", br, "-j", "ACCEPT"], tag)
            self._add(tool, "filter", "VESSEL-FORWARD",
                      ["-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"], tag)
            if net["internal"]:
                self._add(tool, "filter", "VESSEL-FORWARD", ["-i", br, "-j", "DROP"], tag)
            else:
                self._add(tool, "filter", "VESSEL-FORWARD",
                          ["-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"], tag)
            self._add(tool, "filter", "VESSEL-FORWARD", ["-o", br, "-j", "DROP"], tag)

    def remove_network(self, network_id):
        self._remove(network_tag(network_id), exact=True)

    def add_ports(self, endpoint_id, ports):
        for port in ports:
            v6 = ":" in port["container_ip"]
            tool = "ip6tables" if v6 else "iptables"
            spec = [] if port["host_ip"] in ("0.0.0.0", "::") else ["-d", port["host_ip"]]
            target = f"[{port['container_ip']}]" if v6 else port["container_ip"]
            spec += ["-p", port["proto"], "--dport", str(port["host_port"]),
                     "-j", "DNAT", "--to-destination", f"{target}:{port['container_port']}"]
            self._add(tool, "nat", "VESSEL-PORTS", spec, port_tag(endpoint_id, port))

    def remove_ports(self, endpoint_id, ports=None):
        if ports is None:
            self._remove(port_tag(endpoint_id), exact=False)
            return
        for port in ports:
            self._remove(port_tag(endpoint_id, port), exact=True)

    def tagged(self, prefix="vessel-"):
        found = []
        for tool in ("iptables", "ip6tables"):
            for table, chain, _ in IPT_CHAINS:
                for line in self._ipt(tool, "-t", table, "-S", chain, check=False).stdout.splitlines():
                    words = shlex.split(line)
                    if "--comment" in words and words[words.index("--comment") + 1].startswith(prefix):
                        found.append(words[words.index("--comment") + 1])
        return found
