"""The flags of `run` and `create` as plain data, and a fast parser of them for the hot path.

Why this exists: importing click (click.core pulls inspect, typing, enum, uuid, datetime) took about a
quarter of `vessel run --rm busybox true`'s wall time (21 ms of ~90 ms on a quiet
machine, -X importtime; bench/engine.py), and the target is half of podman's time. So `run` and `create`
are parsed without click when the command line is plain: `parse` accepts only what it understands
completely (known flags, values present, integers that convert) and returns None for anything else,
so click still handles `--help` and every error with its own messages and exit codes. The click
commands (vessel.cli.containers) are built from this same table, so each flag is written once, and
tests/unit/test_cli_fast_parse.py checks that both parsers give the same values.

Importable without click: plain classes, no typing, enum or dataclasses.
"""

import os

__all__ = ["Flag", "RUN_FLAGS", "CREATE_FLAGS", "parse", "parse_command_line"]

FLAG, SWITCH, VALUE, INT, MULTIPLE = "flag", "switch", "value", "int", "multiple"


class Flag:
    """One option: its names (a SWITCH's second name turns it off), the parameter it sets, its kind, its
    default (FLAG: False, MULTIPLE: ()) and its help."""

    __slots__ = ("decls", "dest", "kind", "default", "help")

    def __init__(self, *decls, dest, kind, default=None, help=""):
        self.decls = decls
        self.dest = dest
        self.kind = kind
        self.default = False if kind == FLAG else () if kind == MULTIPLE else default
        self.help = help


_RUN_ONLY = (
    Flag("-d", "--detach", dest="detach", kind=FLAG,
         help="Run container in background and print container ID."),
    Flag("--sig-proxy", "--no-sig-proxy", dest="sig_proxy", kind=SWITCH, default=True,
         help="Proxy received signals to the process."),
)

CREATE_FLAGS = (
    Flag("--name", dest="name", kind=VALUE,
         help="Assign a name to the container."),
    Flag("-e", "--env", dest="env", kind=MULTIPLE,
         help="Set environment variables."),
    Flag("--env-file", dest="env_file", kind=MULTIPLE,
         help="Read in a file of environment variables."),
    Flag("-l", "--label", dest="labels", kind=MULTIPLE,
         help="Set meta data on a container."),
    Flag("-v", "--volume", dest="volumes", kind=MULTIPLE,
         help="Bind mount a volume (host-path|name:container-path[:options], or container-path)."),
    Flag("--mount", dest="mounts", kind=MULTIPLE,
         help="Attach a filesystem mount to the container."),
    Flag("--volumes-from", dest="volumes_from", kind=MULTIPLE,
         help="Mount volumes from the specified container(s)."),
    Flag("--tmpfs", dest="tmpfs", kind=MULTIPLE,
         help="Mount a tmpfs directory."),
    Flag("-w", "--workdir", dest="workdir", kind=VALUE, default="",
         help="Working directory inside the container."),
    Flag("-u", "--user", dest="user", kind=VALUE, default="",
         help="Username or UID (format: <name|uid>[:<group|gid>])."),
    Flag("--entrypoint", dest="entrypoint", kind=VALUE,
         help="Overwrite the default ENTRYPOINT of the image."),
    Flag("-h", "--hostname", dest="hostname", kind=VALUE, default="",
         help="Container host name."),
    Flag("--domainname", dest="domainname", kind=VALUE, default="",
         help="Container NIS domain name."),
    Flag("--add-host", dest="add_hosts", kind=MULTIPLE,
         help="Add a custom host-to-IP mapping (host:ip)."),
    Flag("--dns", dest="dns", kind=MULTIPLE,
         help="Set custom DNS servers."),
    Flag("--network", "--net", dest="networks", kind=MULTIPLE,
         help="Connect a container to a network (bridge, host, none, container:NAME, a network)."),
    Flag("--ip", dest="ip", kind=VALUE,
         help="IPv4 address (e.g., 172.30.100.104)."),
    Flag("--ip6", dest="ip6", kind=VALUE,
         help="IPv6 address (e.g., 2001:db8::33)."),
    Flag("--network-alias", dest="network_aliases", kind=MULTIPLE,
         help="Add network-scoped alias."),
    Flag("--mac-address", dest="mac_address", kind=VALUE,
         help="Container MAC address (e.g., 92:d0:c6:0a:29:33)."),
    Flag("-p", "--publish", dest="publish", kind=MULTIPLE,
         help="Publish a container's port(s) to the host."),
    Flag("-P", "--publish-all", dest="publish_all", kind=FLAG,
         help="Publish all exposed ports to random ports."),
    Flag("--expose", dest="expose", kind=MULTIPLE,
         help="Expose a port or a range of ports."),
    Flag("-m", "--memory", dest="memory", kind=VALUE,
         help="Memory limit."),
    Flag("--cpus", dest="cpus", kind=VALUE,
         help="Number of CPUs."),
    Flag("--pids-limit", dest="pids_limit", kind=INT, default=0,
         help="Tune container pids limit."),
    Flag("--ulimit", dest="ulimits", kind=MULTIPLE,
         help="Ulimit options (name=soft[:hard])."),
    Flag("--read-only", dest="read_only", kind=FLAG,
         help="Mount the container's root filesystem as read only."),
    Flag("--cap-add", dest="cap_add", kind=MULTIPLE,
         help="Add Linux capabilities."),
    Flag("--cap-drop", dest="cap_drop", kind=MULTIPLE,
         help="Drop Linux capabilities."),
    Flag("--privileged", dest="privileged", kind=FLAG,
         help="Give extended privileges to this container."),
    Flag("--security-opt", dest="security_opt", kind=MULTIPLE,
         help="Security options."),
    Flag("--stop-signal", dest="stop_signal", kind=VALUE,
         help="Signal to stop the container."),
    Flag("--stop-timeout", dest="stop_timeout", kind=INT,
         help="Timeout (in seconds) to stop a container."),
    Flag("--runtime", dest="runtime", kind=VALUE,
         help="Runtime to use for this container (runc, crun, a path)."),
    Flag("--restart", dest="restart", kind=VALUE, default="no",
         help="Restart policy: no, on-failure[:max-retries], always, unless-stopped."),
    Flag("--health-cmd", dest="health_cmd", kind=VALUE,
         help="Command to run to check health."),
    Flag("--health-interval", dest="health_interval", kind=VALUE,
         help="Time between running the check (ms|s|m|h)."),
    Flag("--health-retries", dest="health_retries", kind=VALUE,
         help="Consecutive failures needed to report unhealthy."),
    Flag("--health-timeout", dest="health_timeout", kind=VALUE,
         help="Maximum time to allow one check to run (ms|s|m|h)."),
    Flag("--health-start-period", dest="health_start_period", kind=VALUE,
         help="Start period for the container to initialize before counting retries (ms|s|m|h)."),
    Flag("--health-start-interval", dest="health_start_interval", kind=VALUE,
         help="Time between running the check during the start period (ms|s|m|h)."),
    Flag("--no-healthcheck", dest="no_healthcheck", kind=FLAG,
         help="Disable any container-specified HEALTHCHECK."),
    Flag("--cgroup-parent", dest="cgroup_parent", kind=VALUE, default="",
         help="Optional parent cgroup for the container."),
    Flag("--log-driver", dest="log_driver", kind=VALUE, default="json-file",
         help="Logging driver (json-file)."),
    Flag("--log-opt", dest="log_opts", kind=MULTIPLE,
         help="Log driver options (max-size, max-file)."),
    Flag("--rm", dest="remove", kind=FLAG,
         help="Automatically remove the container when it exits."),
    Flag("-i", "--interactive", dest="interactive", kind=FLAG,
         help="Keep STDIN open even if not attached."),
    Flag("-t", "--tty", dest="tty", kind=FLAG,
         help="Allocate a pseudo-TTY."),
    Flag("--memory-swap", dest="memory_swap", kind=VALUE,
         help="Swap limit equal to memory plus swap: -1 for unlimited."),
    Flag("--memory-reservation", dest="memory_reservation", kind=VALUE,
         help="Memory soft limit."),
    Flag("-c", "--cpu-shares", dest="cpu_shares", kind=INT, default=0,
         help="CPU shares (relative weight)."),
    Flag("--cpu-period", dest="cpu_period", kind=INT, default=0,
         help="Limit CPU CFS (Completely Fair Scheduler) period."),
    Flag("--cpu-quota", dest="cpu_quota", kind=INT, default=0,
         help="Limit CPU CFS (Completely Fair Scheduler) quota."),
    Flag("--cpuset-cpus", dest="cpuset_cpus", kind=VALUE, default="",
         help="CPUs in which to allow execution (0-3, 0,1)."),
    Flag("--cpuset-mems", dest="cpuset_mems", kind=VALUE, default="",
         help="MEMs in which to allow execution (0-3, 0,1)."),
    Flag("--device", dest="devices", kind=MULTIPLE,
         help="Add a host device to the container."),
    Flag("--device-cgroup-rule", dest="device_cgroup_rules", kind=MULTIPLE,
         help="Add a rule to the cgroup allowed devices list."),
    Flag("--shm-size", dest="shm_size", kind=VALUE,
         help="Size of /dev/shm."),
    Flag("--group-add", dest="group_add", kind=MULTIPLE,
         help="Add additional groups to join."),
    Flag("--oom-score-adj", dest="oom_score_adj", kind=INT, default=0,
         help="Tune host's OOM preferences (-1000 to 1000)."),
    Flag("--pid", dest="pid_mode", kind=VALUE, default="",
         help="PID namespace to use."),
    Flag("--ipc", dest="ipc_mode", kind=VALUE, default="",
         help="IPC mode to use."),
    Flag("--uts", dest="uts_mode", kind=VALUE, default="",
         help="UTS namespace to use."),
    Flag("--sysctl", dest="sysctls", kind=MULTIPLE,
         help="Sysctl options."),
    Flag("--init", dest="init", kind=FLAG,
         help="Run an init inside the container that forwards signals and reaps processes."),
    Flag("--pull", dest="pull", kind=VALUE, default="missing",
         help='Pull image before running ("always", "missing", "never").'),
    Flag("--platform", dest="platform", kind=VALUE,
         help="Set platform if server is multi-platform capable."),
    Flag("--cidfile", dest="cidfile", kind=VALUE,
         help="Write the container ID to the file."),
    Flag("--label-file", dest="label_file", kind=MULTIPLE,
         help="Read in a line delimited file of labels."),
    Flag("-a", "--attach", dest="attach_streams", kind=MULTIPLE,
         help="Attach to STDIN, STDOUT or STDERR."),
    Flag("--detach-keys", dest="detach_keys", kind=VALUE,
         help="Override the key sequence for detaching a container."),
)

RUN_FLAGS = _RUN_ONLY + CREATE_FLAGS


def parse(flags, args):
    """`args` (after the command's name) parsed as click parses them, as the command's parameters (with
    `image` and `command`), or None when click must handle them (help, an unknown or malformed flag, a
    missing image)."""
    by_name = {name: flag for flag in flags for name in flag.decls}
    values = {flag.dest: flag.default for flag in flags}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg[:1] != "-" or len(arg) == 1:
            i -= 1  # options end at the image: the rest is the command
            break
        if arg[:2] == "--":
            name, eq, attached = arg.partition("=")
            flag = by_name.get(name)
            if flag is None or (eq and flag.kind in (FLAG, SWITCH)):
                return None
            if flag.kind in (FLAG, SWITCH):
                values[flag.dest] = flag.kind == FLAG or name == flag.decls[0]
                continue
            if not eq:
                if i == len(args):
                    return None
                attached = args[i]
                i += 1
            if not _store(flag, attached, values):
                return None
            continue
        for at in range(1, len(arg)):  # a cluster of short flags, the last may take a value
            flag = by_name.get("-" + arg[at])
            if flag is None:
                return None
            if flag.kind == FLAG:
                values[flag.dest] = True
                continue
            value = arg[at + 1:]
            if not value:
                if i == len(args):
                    return None
                value = args[i]
                i += 1
            if not _store(flag, value, values):
                return None
            break
    if i == len(args):
        return None  # no image: click says so
    values["image"] = args[i]
    values["command"] = tuple(args[i + 1:])
    return values


def _store(flag, value, values):
    """Set a flag's value (a MULTIPLE one adds it); False if click would refuse it."""
    if flag.kind == MULTIPLE:
        value = values[flag.dest] + (value,)
    elif flag.kind == INT:
        try:
            value = int(value)  # what click's INT does
        except ValueError:
            return False
    values[flag.dest] = value
    return True


def parse_command_line(argv, default_root, default_runroot):
    """`vessel [--root R] [--runroot R] run|create ...` without click: (command, root, runroot, parameters),
    or None when click must handle the command line."""
    root = runroot = None
    i = 0
    while i < len(argv) and argv[i][:2] == "--":
        name, eq, value = argv[i].partition("=")
        if name not in ("--root", "--runroot"):
            return None
        if not eq:
            if i + 1 == len(argv):
                return None
            i += 1
            value = argv[i]
        if name == "--root":
            root = value
        else:
            runroot = value
        i += 1
    if i == len(argv) or argv[i] not in ("run", "create"):
        return None
    command = argv[i]
    params = parse(RUN_FLAGS if command == "run" else CREATE_FLAGS, argv[i + 1:])
    if params is None:
        return None
    root = root if root is not None else os.environ.get("VESSEL_ROOT") or default_root
    runroot = runroot if runroot is not None else os.environ.get("VESSEL_RUNROOT") or default_runroot
    return command, root, runroot, params
