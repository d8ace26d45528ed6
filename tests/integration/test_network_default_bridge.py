"""The default bridge kept up between runs by the monitor, and the stdlib netlink client.

The monitor leaves an idle default bridge (and its rules) up, deletes a
finished container's default-bridge veth after its exit is handled, and
removes the idle bridge when it leaves, also when the state root is gone by
then. Real bridges, namespaces and monitors; every root has a bridge of its own.
"""

import ipaddress
import os
import shutil
import subprocess

from test_engine_cli import Vessel
from test_engine_network import _eventually, _leftovers, _links, exposing_tarball, vessel  # noqa: F401

from vessel.engine import networking
from vessel.network import links
from vessel.network.netlink import Netlink


def test_back_to_back_runs_keep_the_bridge_and_its_leaving_monitor_removes_it(vessel):
    bridge = vessel.env["VESSEL_DEFAULT_BRIDGE"]
    prefix = vessel.env["VESSEL_DEFAULT_SUBNET"].rsplit(".", 1)[0]
    vessel("run", "-d", "--name", "long", "busybox", "sleep", "60")
    first = vessel("run", "--rm", "busybox", "sh", "-c", "ip -4 -o addr show eth0").stdout
    assert f"{prefix}.3/24" in first and bridge in _links()
    vessel("rm", "-f", "long")
    vessel("run", "--rm", "busybox", "true")
    assert bridge in _links()  # idle, kept up by the monitor
    # no address is handed out twice: a container holds its own while an earlier one's veth goes
    vessel("run", "-d", "--name", "one", "busybox", "sleep", "60")
    vessel("run", "-d", "--name", "two", "busybox", "sleep", "60")
    addresses = {vessel("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()
                 for name in ("one", "two")}
    assert len(addresses) == 2
    vessel("rm", "-f", "one", "two")
    _eventually(lambda: _leftovers(vessel) == {})  # bridge and rules gone with the monitor


def test_a_root_removed_before_its_monitor_leaves_leaves_no_bridge(tmp_path, names, exposing_tarball):  # noqa: F811
    cli = Vessel(str(tmp_path / "gone"), names("cg"))
    cli("import", exposing_tarball, "busybox")
    bridge = cli.env["VESSEL_DEFAULT_BRIDGE"]
    cli("run", "--rm", "busybox", "true")
    assert bridge in _links()
    cli.teardown()
    shutil.rmtree(cli.root)  # as a test's or benchmark's temp dir goes
    _eventually(lambda: bridge not in _links())
    nft = subprocess.run(["nft", "list", "table", "inet", "vessel"], capture_output=True, text=True).stdout
    assert bridge not in nft


def test_netlink_veth_in_a_namespace(tmp_path, names):
    netns = str(tmp_path / "ns")
    host_ifname = names("v")[:15]
    networking._make_netns(netns)
    try:
        with Netlink() as nl:
            assert nl.link_index("lo") == 1 and nl.link_index("no-such-link0") is None
        gateway = ipaddress.ip_address("192.0.2.1")
        bridge = names("b")[:15]
        links.ensure_bridge(bridge, 1500, [(gateway, 24)])
        try:
            ifname = links.attach_veth(bridge, host_ifname, netns, None, "02:42:c0:00:02:05", 1400,
                                       [(ipaddress.ip_address("192.0.2.5"), 24)], [gateway])
            assert ifname == "eth0"
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                with Netlink(fd) as ns:
                    index = ns.link_index("eth0")
                    assert ("192.0.2.5", 24) in ns.addresses(index)
                    assert any(dst.prefixlen == 0 for dst, _ in ns.routes(2))
                    assert set(ns.links()) == {"lo", "eth0"}
            finally:
                os.close(fd)
            with open(f"/sys/class/net/{host_ifname}/brport/hairpin_mode") as f:
                assert f.read().strip() == "1"
            with open(f"/sys/class/net/{host_ifname}/mtu") as f:
                assert f.read().strip() == "1400"
        finally:
            links.delete_link(host_ifname)
            links.delete_link(bridge)
        assert host_ifname not in _links() and bridge not in _links()
    finally:
        networking._remove_netns(netns)
