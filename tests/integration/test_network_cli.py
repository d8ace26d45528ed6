"""`vessel network` on the real kernel: create, ls, inspect, rm, prune and their errors."""

import ipaddress
import json
import os
import subprocess

import pytest

from vessel.cli.main import main
from vessel.network.links import host_routes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def vessel(tmp_path, capsys):
    """vessel(*args) -> (exit code, stdout, stderr) against this test's own root."""
    root = str(tmp_path / "root")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        saved = f.read().strip()

    def run(*args, stdin=None):
        code = main(["--root", root, *args])
        out, err = capsys.readouterr()
        return code, out, err

    try:
        yield run
    finally:
        code, out, _ = run("network", "ls", "-q", "--filter", "type=custom")
        for network_id in out.split():
            run("network", "rm", network_id)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(saved)


def free_subnet(seed):
    routes = host_routes()
    for n in range(seed % 200, 256):
        subnet = ipaddress.ip_network(f"10.{200 + n % 20}.{n}.0/24")
        if not any(r.version == 4 and r.overlaps(subnet) for r in routes):
            return str(subnet)
    pytest.skip("no free test subnet")


def link_exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_create_ls_inspect_rm(vessel, names):
    name = names("net")
    subnet = free_subnet(int.from_bytes(os.urandom(1), "big"))
    code, out, err = vessel("network", "create", "--subnet", subnet, "-o", "com.docker.network.driver.mtu=1400",
                            "--label", "team=a", name)
    assert code == 0, err
    network_id = out.strip()
    assert len(network_id) == 64

    code, out, _ = vessel("network", "ls")
    lines = out.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert any(line.split() == [network_id[:12], name, "bridge", "local"] for line in lines)
    assert any(line.split()[1:] == ["bridge", "bridge", "local"] for line in lines)
    code, out, _ = vessel("network", "ls", "--filter", f"name={name}", "--format", "{{.Name}} {{.Driver}}")
    assert out == f"{name} bridge\n"

    code, out, _ = vessel("network", "inspect", name)
    [document] = json.loads(out)
    assert document["Id"] == network_id and document["Driver"] == "bridge" and document["Scope"] == "local"
    assert document["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": str(ipaddress.ip_network(subnet)[1])}]
    assert document["Labels"] == {"team": "a"}
    bridge = document["Options"]["com.docker.network.bridge.name"]
    assert link_exists(bridge)
    assert "mtu 1400" in subprocess.run(["ip", "link", "show", bridge], capture_output=True, text=True).stdout
    code, out, _ = vessel("network", "inspect", "-f", "{{.Name}}", network_id[:10])
    assert out == f"{name}\n"

    code, out, _ = vessel("network", "rm", name)
    assert (code, out) == (0, f"{name}\n")
    assert not link_exists(bridge)


def test_errors_are_one_line(vessel, names):
    subnet = free_subnet(int.from_bytes(os.urandom(1), "big"))
    name = names("net")
    assert vessel("network", "create", "--subnet", subnet, name)[0] == 0
    wider = str(ipaddress.ip_network(subnet).supernet(new_prefix=20))
    cases = [
        (("network", "create", "--subnet", wider, names("net")), "overlaps"),
        (("network", "create", "--subnet", "10.0.0.0/33", names("net")), "invalid subnet"),
        (("network", "create", "--subnet", subnet, "--gateway", "192.0.2.1", names("net")), "outside the subnet"),
        (("network", "create", name), "already exists"),
        (("network", "create", "bad name"), "invalid network name"),
        (("network", "create", "-d", "overlay", names("net")), "not supported"),
        (("network", "create", "--ipv6", "--subnet", "10.0.0.0/8", "--subnet", "10.1.0.0/16", names("net")),
         "at most one"),
        (("network", "rm", "bridge"), "pre-defined"),
        (("network", "rm", "nope-" + name), "not found"),
        (("network", "inspect", "nope-" + name), "not found"),
        (("network", "connect", "nope-" + name, "ctr"), "not found"),
    ]
    for args, message in cases:
        code, out, err = vessel(*args)
        assert code == 125, args
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    code, out, _ = vessel("network", "ls", "-q")
    assert len(out.split()) == 2


def test_prune_keeps_the_default_network(vessel, names):
    first, second = names("net"), names("net")
    seed = int.from_bytes(os.urandom(1), "big")
    assert vessel("network", "create", "--subnet", free_subnet(seed), first)[0] == 0
    assert vessel("network", "create", second)[0] == 0
    code, out, _ = vessel("network", "prune", "-f")
    assert out.splitlines()[0] == "Deleted Networks:"
    assert set(out.splitlines()[1:]) == {first, second}
    code, out, _ = vessel("network", "ls", "--format", "{{.Name}}")
    assert out == "bridge\n"
