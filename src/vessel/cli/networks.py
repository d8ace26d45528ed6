"""`vessel network` commands: create, ls, inspect, rm, prune, connect, disconnect.

Output follows the Docker CLI's columns and wording.  connect/disconnect need a
container, so they go through the engine (`vessel.engine.network_connect` /
`network_disconnect`).
"""

import ipaddress
import json

import click

from vessel.cli.common import for_each, key_value_pairs
from vessel.cli.images import render, table
from vessel.errors import InvalidArgument, VesselError

LIST_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT", "Labels": "LABELS"}


def _networks(root):
    from vessel.network import Networks

    return Networks(root)


class _AliasedGroup(click.Group):
    """Docker's aliases (`list`, `remove`) work but stay out of the help."""

    ALIASES = {"list": "ls", "remove": "rm"}

    def get_command(self, ctx, name):
        return super().get_command(ctx, self.ALIASES.get(name, name))


@click.group("network", cls=_AliasedGroup)
def network():
    """Manage networks."""


@network.command("create")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the network.")
@click.option("--subnet", "subnets", multiple=True, help="Subnet in CIDR format (IPv4 and/or IPv6).")
@click.option("--gateway", "gateways", multiple=True, help="Gateway for the subnet (IPv4 and/or IPv6).")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("-o", "--opt", "opts", multiple=True, help="Driver options (key=value).")
@click.option("--label", "labels", multiple=True, help="Metadata on the network (key=value).")
@click.argument("name")
@click.pass_obj
def network_create(obj, driver, subnets, gateways, ipv6, internal, opts, labels, name):
    """Create a network."""
    if driver != "bridge":
        raise InvalidArgument(f"driver {driver!r} is not supported: only bridge")
    by_version = {4: [], 6: []}
    for text in subnets:
        try:
            by_version[ipaddress.ip_network(text, strict=False).version].append(text)
        except ValueError:
            raise InvalidArgument(f"invalid subnet {text!r}") from None
    gw_by_version = {4: [], 6: []}
    for text in gateways:
        try:
            gw_by_version[ipaddress.ip_address(text).version].append(text)
        except ValueError:
            raise InvalidArgument(f"invalid gateway {text!r}: not an IP address") from None
    if len(by_version[4]) > 1 or len(by_version[6]) > 1:
        raise InvalidArgument("at most one IPv4 and one IPv6 subnet")
    if len(gw_by_version[4]) > 1 or len(gw_by_version[6]) > 1:
        raise InvalidArgument("at most one IPv4 and one IPv6 gateway")
    with _networks(obj.root) as nets:
        net = nets.create(name, subnet=(by_version[4] or [None])[0], gateway=(gw_by_version[4] or [None])[0],
                          ipv6=ipv6, subnet6=(by_version[6] or [None])[0], gateway6=(gw_by_version[6] or [None])[0],
                          internal=internal, options=key_value_pairs(opts, "option"),
                          labels=key_value_pairs(labels, "label"))
    click.echo(net["id"])


def _record(net, no_trunc):
    return {"ID": net["id"] if no_trunc else net["id"][:12], "Name": net["name"], "Driver": net["driver"],
            "Scope": "local", "IPv6": "true" if net["subnet6"] else "false",
            "Internal": "true" if net["internal"] else "false", "CreatedAt": net["created"],
            "Labels": ",".join(f"{k}={v}" for k, v in net["labels"].items())}


def _filtered(nets, filters):
    from vessel.engine.model import label_matches

    wanted = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or key not in ("name", "id", "driver", "label", "type", "scope"):
            raise InvalidArgument(f"invalid filter {item!r}")
        wanted.setdefault(key, []).append(value)

    def keep(net):
        checks = {
            "name": lambda v: v in net["name"],
            "id": lambda v: net["id"].startswith(v),
            "driver": lambda v: net["driver"] == v,
            "scope": lambda v: v == "local",
            "type": lambda v: v == ("builtin" if net["predefined"] else "custom"),
            "label": lambda v: label_matches(net["labels"], v),
        }
        return all(any(checks[key](v) for v in values) for key, values in wanted.items())

    return [n for n in nets if keep(n)]


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (name=, id=, driver=, label=, type=).")
@click.option("--format", "fmt", help="Format output using a Go template subset.")
@click.pass_obj
def network_ls(obj, quiet, no_trunc, filters, fmt):
    """List networks."""
    with _networks(obj.root) as nets:
        records = [_record(n, no_trunc) for n in _filtered(nets.list(), filters)]
    records.sort(key=lambda r: r["Name"])
    if quiet:
        for record in records:
            click.echo(record["ID"])
        return
    if fmt:
        text = render(fmt, records, LIST_HEADERS)
        if text:
            click.echo(text)
        return
    columns = ("ID", "Name", "Driver", "Scope")
    click.echo(table([[r[c] for c in columns] for r in records], [LIST_HEADERS[c] for c in columns]))



@network.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a Go template subset.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def network_inspect(obj, fmt, names):
    """Display detailed information on one or more networks."""
    documents, errors = [], []
    with _networks(obj.root) as nets:
        for name in names:
            try:
                documents.append(nets.inspect(name))
            except VesselError as exc:
                errors.append(exc)
    if fmt:
        text = render(fmt, documents)
        if text:
            click.echo(text)
    else:
        click.echo(json.dumps(documents, indent=4))
    for exc in errors[:-1]:
        click.echo(f"Error: {exc}", err=True)
    if errors:
        raise errors[-1]


@network.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def network_rm(obj, names):
    """Remove one or more networks."""
    def remove(name):
        nets.remove(name)
        click.echo(name)

    with _networks(obj.root) as nets:
        for_each(names, remove)



@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_obj
def network_prune(obj, force):
    """Remove all unused networks."""
    if not force:
        click.echo("WARNING! This will remove all custom networks not used by at least one container.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    with _networks(obj.root) as nets:
        removed = nets.prune()
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)


@network.command("connect")
@click.option("--ip", help="IPv4 address.")
@click.option("--ip6", help="IPv6 address.")
@click.option("--alias", "aliases", multiple=True, help="Network-scoped alias for the container.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.pass_obj
def network_connect(obj, ip, ip6, aliases, network_name, container):
    """Connect a container to a network."""
    from vessel.engine import network_connect as connect

    connect(obj.root, container, network_name, ipv4=ip, ipv6=ip6, aliases=aliases, runroot=obj.runroot)


@network.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.pass_obj
def network_disconnect(obj, force, network_name, container):
    """Disconnect a container from a network."""
    from vessel.engine import network_disconnect as disconnect

    disconnect(obj.root, container, network_name, force=force, runroot=obj.runroot)
