"""Containers on networks: their network namespace, endpoints, published ports and /etc files.

A container in a bridge mode (`bridge`, the default, or user-defined networks)
gets a network namespace made by the engine before the runtime creates the
container: a new namespace bind-mounted on `<runroot>/netns/<id>` (as podman
and CNI do), its endpoints attached to it (vessel.network), and config.json
joining it by that path. `container:<name>` joins another container's
namespace; `host` keeps the host's; `none` gets an empty one from the runtime.

Two databases are involved, so the order matters: the container's row
(engine.db) exists before anything is attached; `setup` makes the namespace
file, then the endpoints (network.db rows owned by the container id), then the
published ports; `teardown` detaches every endpoint of the container id, then
removes the namespace. A failure or crash in between leaves only endpoints of a
container that exists, and its next start, stop or rm removes them.
"""

import ipaddress
import json
import os
import threading

from vessel.engine import specgen
from vessel.engine.model import NetworkAttachment, PortBinding
from vessel.errors import Conflict, InvalidArgument, NotFound, Unavailable
from vessel.runtime import linux

__all__ = ["attach", "connect", "disconnect", "host_address", "is_bridge_mode", "keep_default_bridge", "netns_path",
           "network_settings", "port_bindings", "port_settings", "ports_text", "prepare_config",
           "remove_idle_default_bridge", "rename", "setup", "teardown"]

DEFAULT_NETWORK = "bridge"
DEFAULT_ALIAS = "default"   # Docker's other name of the default network
_keep_default = False       # whether this process leaves an idle default bridge up (see keep_default_bridge)
_defer = None               # call_later(delay, callback) of the monitor, which detaches default endpoints late
_pending = {}               # container id -> ids of its default-bridge endpoints still to detach
_kept = None                # (bridge, network id) of the default network this process left up
_held = None                # the monitor's idle connection to network.db (see keep_default_bridge)


def is_bridge_mode(mode):
    """Whether `mode` puts the container on networks of its own (bridge, user networks)."""
    return mode not in ("none", "host") and not mode.startswith("container:")


def netns_path(engine, container_id):
    return os.path.join(engine.runroot, "netns", container_id)


def _networks(engine):
    """The root's Networks (kernel changes)."""
    from vessel.network.manager import Networks

    return Networks(engine.root, keep_default=_keep_default)


def keep_default_bridge(root, defer):
    """From now on, this process's detaches leave an idle default bridge (and its rules) up.

    For the monitor: Docker keeps docker0 up, and making and removing the
    bridge costs every solo run; the monitor removes it with
    `remove_idle_default_bridge` when it leaves.  `defer(0, callback)` runs
    `callback` from the monitor's loop once the exit is handled: teardown
    leaves a default-bridge endpoint without published ports to it (deleting
    a veth waits for the kernel, ~30 ms, which `run --rm` need not wait for).
    Its address stays taken until its veth is gone.

    It also holds a connection to root's network database open for the
    process's life: SQLite checkpoints and deletes the WAL when the last
    connection closes, and makes it again on the next open, which every
    attach and teardown would pay for otherwise.
    """
    global _keep_default, _defer, _held
    from vessel.network.store import Store

    _keep_default, _defer = True, defer
    if _held is None:
        _held = Store(root)


def remove_idle_default_bridge(root):
    """Remove root's default bridge and its rules unless an endpoint uses them.

    When the root is gone already (a test's or a benchmark's temp dir), the
    bridge this process kept up goes by its name and network id.
    """
    from vessel.network import manager

    if os.path.exists(os.path.join(root, "network", "network.db")):
        with manager.Networks(root) as nets:
            nets.remove_idle_default()
    elif _kept is not None:
        manager.remove_orphan_bridge(*_kept)


def _store(engine):
    """The root's network database alone: lookups without loading the kernel side."""
    import contextlib

    from vessel.network.store import Store

    return contextlib.closing(Store(engine.root))


def _find_network(store, name):
    """A network's row; None for the default network of a root that has not made it yet."""
    try:
        return store.find_network(name)
    except NotFound:
        if name == DEFAULT_NETWORK:
            return None
        raise


# -- create -------------------------------------------------------------------------

def prepare_config(engine, config, image_config):
    """Check the network options of a new container (Docker's messages) and complete them.

    Resolves `container:<name>` to the container's id, makes the attachment of
    the network mode, adds the image's EXPOSE and turns -P into port bindings.
    """
    mode = DEFAULT_NETWORK if config.network_mode == DEFAULT_ALIAS else config.network_mode
    config.network_mode = mode
    config.expose = sorted(set(config.expose) | set(image_config.exposed_ports or {}), key=_port_key)
    if not is_bridge_mode(mode):
        config.networks = []
        if mode.startswith("container:"):
            if config.ports or config.publish_all:
                raise InvalidArgument("conflicting options: port publishing and the container type network mode")
            if config.hostname:
                raise InvalidArgument("conflicting options: hostname and the network mode")
            config.network_mode = "container:" + engine.state.find(mode.split(":", 1)[1]).id
        if mode == "host":
            config.ports, config.publish_all = [], False  # Docker discards them on the host's network
        return config
    if not config.networks:
        config.networks = [NetworkAttachment(mode)]
    for attachment in config.networks:
        if attachment.network == DEFAULT_ALIAS:
            attachment.network = DEFAULT_NETWORK
    with _store(engine) as store:
        seen = set()
        for attachment in config.networks:
            net = _find_network(store, attachment.network)
            key = net["id"] if net else DEFAULT_NETWORK
            if key in seen:
                raise Conflict(f"container cannot be connected to network {attachment.network} twice")
            seen.add(key)
            _check_attachment(net or {"predefined": 1, "name": DEFAULT_NETWORK, "subnet": None, "subnet6": None},
                              attachment)
    if config.publish_all:
        published = {binding.key for binding in config.ports}
        for key in config.expose:
            if key not in published:
                port, proto = key.split("/")
                config.ports.append(PortBinding(int(port), proto))
    return config


def _port_key(key):
    port, _, proto = key.partition("/")
    return int(port) if port.isdigit() else 0, proto


def _check_attachment(net, attachment):
    if net["predefined"]:
        if attachment.ipv4 or attachment.ipv6:
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if attachment.aliases:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
    for text, subnet in ((attachment.ipv4, net["subnet"]), (attachment.ipv6, net["subnet6"])):
        if not text:
            continue
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {text}") from None
        if subnet is None or address not in ipaddress.ip_network(subnet) or address.version != \
                ipaddress.ip_network(subnet).version:
            raise InvalidArgument(f"invalid config for network {net['name']}: invalid endpoint settings: "
                                  f"no configured subnet or ip-range contain the IP address {text}")


# -- start and stop -----------------------------------------------------------------

def setup(engine, record):
    """The network namespace of a start (prepare_bundle); its path for config.json.

    None means the runtime's default (a new empty namespace, or none for `host`).
    A bridge-mode container gets a new namespace here; its endpoints come with
    `attach`, which the monitor calls right before the runtime creates the
    container (the network code is loaded once there, not in every starting command).
    """
    config = record.config
    if config.network_mode.startswith("container:"):
        return _joined_netns(engine, record)
    if not is_bridge_mode(config.network_mode):
        return None
    path = netns_path(engine, record.id)
    _make_netns(path)
    return path


def attach(engine, record):
    """Endpoints, published ports and /etc files of a bridge-mode container whose namespace `setup` made.

    Everything is undone (the namespace too) when a step fails.
    """
    config = record.config
    if not is_bridge_mode(config.network_mode):
        return
    path = netns_path(engine, record.id)
    _detach_pending(engine, record.id)  # a restart gets its last address back
    try:
        endpoints = []
        with _networks(engine) as nets:
            for attachment in config.networks:
                endpoints.append(_attach(nets, record, attachment, path))
            if endpoints and config.ports:
                _publish(engine, nets, record, endpoints[0])
        _write_etc_files(engine, record, endpoints)
        engine.state.update(record.id, config=json.dumps(config.to_json()))
    except BaseException:
        teardown(engine, record)
        raise


def teardown(engine, record):
    """Detach every endpoint of the container and remove its namespace (idempotent)."""
    if not is_bridge_mode(record.config.network_mode):
        return
    path = netns_path(engine, record.id)
    if not os.path.exists(path):
        with _store(engine) as store:
            if not store.endpoints(container_id=record.id):
                return
    global _kept
    later = set()
    with _networks(engine) as nets:
        if _keep_default:
            default = nets.get(DEFAULT_NETWORK)
            _kept = default["bridge"], default["id"]
        for endpoint in nets.endpoints(container_id=record.id):
            if _defer is not None and endpoint.network == DEFAULT_NETWORK and not nets.ports(endpoint.ipv4):
                later.add(endpoint.id)
            else:
                _detach(nets, endpoint.id)
    _remove_netns(path)
    if later:
        if record.id not in _pending:
            _defer(0, lambda: _detach_pending(engine, record.id))
        _pending.setdefault(record.id, set()).update(later)


def _detach(nets, endpoint_id):
    try:
        nets.detach(endpoint_id)
    except NotFound:
        pass  # detached meanwhile by another process


def _detach_pending(engine, container_id):
    """Detach the endpoints teardown left to the monitor's loop."""
    endpoint_ids = _pending.pop(container_id, ())
    if endpoint_ids:
        with _networks(engine) as nets:
            for endpoint_id in endpoint_ids:
                _detach(nets, endpoint_id)


def _make_netns(path):
    """A new network namespace, kept alive by a bind mount on `path`.

    unshare() changes only the calling thread's namespace: a short-lived thread
    makes it and bind-mounts its own /proc/thread-self/ns/net (the mount is the
    process's), so this process stays in the host's namespace and never forks.
    """
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    _remove_netns(path)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    failure = []

    def make():
        try:
            linux.unshare(linux.CLONE_NEWNET)
            linux.mount("/proc/thread-self/ns/net", path, None, linux.MS_BIND)
        except OSError as exc:
            failure.append(exc)

    thread = threading.Thread(target=make, name="netns")
    thread.start()
    thread.join()
    if failure:
        _remove_netns(path)
        raise Unavailable(f"cannot create a network namespace at {path}: {failure[0].strerror}")


def _remove_netns(path):
    try:
        linux.umount2(path, linux.MNT_DETACH)
    except OSError:
        pass  # not mounted (any more)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _joined_netns(engine, record):
    """The namespace of the container named in `container:<id>`, which must be running."""
    other_id = record.config.network_mode.split(":", 1)[1]
    try:
        other = engine.get(other_id)
    except NotFound:
        raise NotFound(f"No such container: {other_id}") from None
    if other.status not in ("running", "paused") or not other.pid:
        raise Conflict(f"cannot join network namespace of a non running container: {other.id}")
    path = netns_path(engine, other.id)
    if not os.path.ismount(path):
        path = f"/proc/{other.pid}/ns/net"
    private = engine.private_dir(record.id)
    for name in ("hostname", "hosts", "resolv.conf"):
        try:
            with open(os.path.join(engine.private_dir(other.id), name)) as handle:
                _write(os.path.join(private, name), handle.read())
        except FileNotFoundError:
            pass
    return path


def _attach(nets, record, attachment, path):
    """Attach to one network: the fixed addresses, else the last ones when still free, else new ones."""
    config = record.config
    fixed = [a for a in (attachment.ipv4, attachment.ipv6) if a]
    last = [a for a in (attachment.ipv4 or attachment.last_ipv4, attachment.ipv6 or attachment.last_ipv6) if a]

    def attach(addresses):
        return nets.attach(attachment.network, record.id, path, ip=addresses or None, aliases=attachment.aliases,
                           mac=attachment.mac or None, hostname=config.hostname or record.id[:12], name=record.name)

    try:
        endpoint = attach(last)
    except (Conflict, InvalidArgument):
        if last == fixed:
            raise
        endpoint = attach(fixed)
    attachment.last_ipv4, attachment.last_ipv6 = endpoint.ipv4, endpoint.ipv6 or ""
    return endpoint


def _publish(engine, nets, record, endpoint):
    """Publish the container's ports on its first endpoint; random ports come back as before when free."""
    bindings = record.config.ports

    def publish(reuse):
        return nets.publish(endpoint.ipv4, [
            (b.host_ip, b.host_port or (b.last_host_port if reuse else 0), b.container_port, b.proto)
            for b in bindings])

    try:
        try:
            mappings = publish(True)
        except Conflict:
            if not any(b.last_host_port and not b.host_port for b in bindings):
                raise
            mappings = publish(False)
    except Conflict as exc:
        raise Conflict(f"driver failed programming external connectivity on endpoint {record.name} "
                       f"({endpoint.id}): {exc}") from None
    for binding, mapping in zip(bindings, mappings):
        binding.last_host_port = mapping["host_port"]


def _write_etc_files(engine, record, endpoints):
    """hosts with the container's addresses; resolv.conf naming the embedded DNS on user networks."""
    config = record.config
    private = engine.private_dir(record.id)
    specgen.write_etc_files(private, config, record.id)
    hostname = config.hostname or record.id[:12]
    if config.domainname:
        hostname = f"{hostname}.{config.domainname} {hostname}"
    lines = [f"{address}\t{hostname}" for ep in endpoints for address in (ep.ipv4, ep.ipv6) if address]
    if lines:
        with open(os.path.join(private, "hosts"), "a") as handle:
            handle.write("\n".join(lines) + "\n")
    if endpoints and not config.dns and endpoints[0].network != DEFAULT_NETWORK:
        _write(os.path.join(private, "resolv.conf"), endpoints[0].resolv_conf())


def _write(path, text):
    """Replace a file's content in place: a running container has it bind-mounted by inode."""
    with open(path, "w") as handle:
        handle.write(text)


# -- connect and disconnect ---------------------------------------------------------

def connect(engine, name_or_id, network, ipv4=None, ipv6=None, aliases=()):
    """`network connect`: recorded for the next start, attached now when the container runs."""
    attachment = NetworkAttachment(network, aliases=list(aliases), ipv4=ipv4 or "", ipv6=ipv6 or "")
    with _networks(engine) as nets:
        net = nets.get(network)
        record = engine.get(name_or_id)
        config = record.config
        if not is_bridge_mode(config.network_mode):
            raise Conflict("container sharing network namespace with another container or host cannot be "
                           "connected to any other network")
        if any(_network_id(nets, other.network) == net["id"] for other in config.networks):
            raise Conflict(f"endpoint with name {record.name} already exists in network {net['name']}")
        _check_attachment(net, attachment)
        if record.status in ("running", "paused"):
            path = netns_path(engine, record.id)
            endpoint = _attach(nets, record, attachment, path)
            try:
                _append_hosts(engine, record, endpoint)
            except OSError:
                nets.detach(endpoint)
                raise
    config.networks.append(attachment)
    engine.state.update(record.id, config=json.dumps(config.to_json()))


def _network_id(nets, network):
    """The id of a network by name or id; None when it is gone."""
    try:
        return nets.get(network)["id"]
    except NotFound:
        return None


def _append_hosts(engine, record, endpoint):
    hostname = record.config.hostname or record.id[:12]
    lines = [f"{address}\t{hostname}" for address in (endpoint.ipv4, endpoint.ipv6) if address]
    with open(os.path.join(engine.private_dir(record.id), "hosts"), "a") as handle:
        handle.write("\n".join(lines) + "\n")


def disconnect(engine, name_or_id, network, force=False):
    """`network disconnect`: the endpoint goes now, the network from the container's config."""
    record = engine.get(name_or_id)
    config = record.config
    with _networks(engine) as nets:
        try:
            net = nets.get(network)
        except NotFound:
            if not force:
                raise
            net = None
        if net is None:
            kept = [a for a in config.networks if a.network != network]
        else:
            kept = [a for a in config.networks if _network_id(nets, a.network) != net["id"]]
        if len(kept) == len(config.networks):
            raise NotFound(f"container {record.id} is not connected to network {network}")
        if net is not None:
            for endpoint in nets.endpoints(container_id=record.id, network=net["id"]):
                nets.detach(endpoint)
                _drop_hosts(engine, record, endpoint)
    config.networks = kept
    engine.state.update(record.id, config=json.dumps(config.to_json()))


def _drop_hosts(engine, record, endpoint):
    path = os.path.join(engine.private_dir(record.id), "hosts")
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return
    gone = {endpoint.ipv4, endpoint.ipv6} - {None}
    _write(path, "".join(f"{line}\n" for line in lines if line.split("\t", 1)[0] not in gone))


def rename(engine, record, new_name):
    """The container's endpoints answer to its new name in the embedded DNS."""
    if not is_bridge_mode(record.config.network_mode):
        return
    with _store(engine) as store:
        with store.transaction() as db:
            db.execute("UPDATE endpoints SET name = ? WHERE container_id = ?", (new_name, record.id))


# -- what inspect, ps and port show -------------------------------------------------

def port_settings(config, running):
    """Docker's NetworkSettings.Ports of a running container: {"80/tcp": [{"HostIp", "HostPort"}] or None
    (exposed only)}; {} when it is not running."""
    if not running:
        return {}
    ports = {key: None for key in config.expose}
    for binding in config.ports:
        ports.setdefault(binding.key, None)
        if binding.last_host_port:
            ports[binding.key] = (ports[binding.key] or []) + [
                {"HostIp": binding.host_ip or "0.0.0.0", "HostPort": str(binding.last_host_port)}]
    return ports


def ports_text(config, running):
    """The PORTS column of `ps`: "0.0.0.0:8080->80/tcp, 53/udp"."""
    items = []
    for key, bindings in port_settings(config, running).items():
        if not bindings:
            items.append(key)
        items += [f"{host_address(binding)}->{key}" for binding in bindings or []]
    return ", ".join(items)


def host_address(binding):
    """"0.0.0.0:8080" or "[::1]:8080" of a NetworkSettings.Ports entry."""
    host_ip = f"[{binding['HostIp']}]" if ":" in binding["HostIp"] else binding["HostIp"]
    return f"{host_ip}:{binding['HostPort']}"


def network_settings(engine, record):
    """Docker's NetworkSettings of a container (addresses while it runs)."""
    config = record.config
    running = record.status in ("running", "paused")
    networks = {}
    if is_bridge_mode(config.network_mode):
        endpoints = {}
        if running and config.networks:
            with _networks(engine) as nets:
                endpoints = {ep.network: ep for ep in nets.endpoints(container_id=record.id)}
        for attachment in config.networks:
            networks[attachment.network] = _empty_settings(attachment.aliases)
        for name, endpoint in endpoints.items():
            networks[name] = endpoint.settings()
    elif not config.network_mode.startswith("container:"):
        networks[config.network_mode] = _empty_settings([])
    default = networks.get(DEFAULT_NETWORK, _empty_settings([]))
    netns = netns_path(engine, record.id)
    return {
        "Bridge": "", "SandboxID": record.id if running and os.path.exists(netns) else "",
        "SandboxKey": netns if running and os.path.exists(netns) else "",
        "Ports": port_settings(config, running), "HairpinMode": False,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "EndpointID": default["EndpointID"], "Gateway": default["Gateway"],
        "GlobalIPv6Address": default["GlobalIPv6Address"], "GlobalIPv6PrefixLen": default["GlobalIPv6PrefixLen"],
        "IPAddress": default["IPAddress"], "IPPrefixLen": default["IPPrefixLen"],
        "IPv6Gateway": default["IPv6Gateway"], "MacAddress": default["MacAddress"],
        "Networks": networks,
    }


def _empty_settings(aliases):
    return {"IPAMConfig": None, "Links": None, "Aliases": list(aliases) or None, "NetworkID": "", "EndpointID": "",
            "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DNSNames": None}


def port_bindings(config):
    """Docker's HostConfig.PortBindings: what was asked for (-p), host ports "" when any."""
    bindings = {}
    for binding in config.ports:
        bindings.setdefault(binding.key, []).append(
            {"HostIp": binding.host_ip, "HostPort": str(binding.host_port) if binding.host_port else ""})
    return bindings
