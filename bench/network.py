"""Networking (issue #6): what a bridge costs `run`, and container-to-container throughput, vs podman.

Two parts, on the state of bench/engine.py's engines (one temp dir, removed at the end):

  run         `run --rm busybox true` on the default bridge and with `--network none`,
              vessel and podman (its default runtime runc, CNI), interleaved; the bridge's
              cost is the difference of medians, and vessel's bridge run is compared with
              podman's (ratio of medians). Targets: the bridge adds at most 20 ms to vessel;
              vessel's bridge run takes at most 0.35x of podman's.
  throughput  a server and a client container on one bridge per engine: the client
              downloads a sparse file of --megabytes from the server's busybox httpd
              (`wget -O /dev/null`, timed inside the container with busybox `time`), rounds
              interleaved between the engines; MB/s, medians.

vessel's default bridge is one of its own (VESSEL_DEFAULT_BRIDGE/VESSEL_DEFAULT_SUBNET, see
docs/network.md), podman's a network of its own (--network-config-dir in the temp dir, a free
subnet), so the benchmark meets no other bridge on the machine; both are removed at the end.

    /opt/vessel/venv/bin/python bench/network.py [--runs 20] [--only run,throughput] [--json F]
"""

import json
import os
import re
import subprocess
import sys

import containers  # noqa: F401  (puts src/ and tests/ on sys.path)
import engine as engines
import harness
import helpers
from vessel.engine import networking

PARTS = ("run", "throughput")
PODMAN_NETWORK = "vessel-bench"


def parse_args(argv):
    parser = engines.arguments(__doc__.splitlines()[0], runs=20, warmup=2)
    parser.add_argument("--transfers", type=int, default=7, help="downloads per engine for throughput (default 7)")
    # ~1 s a download: busybox `time` prints hundredths, so a 0.25 s one would be read to +-4 %
    parser.add_argument("--megabytes", type=int, default=2048, help="size of one download (default 2048)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts ({', '.join(PARTS)})")
    args = parser.parse_args(argv)
    args.only = [p for p in args.only.split(",") if p]
    if args.runs < 1 or args.warmup < 0 or args.transfers < 1 or set(args.only) - set(PARTS):
        parser.error(f"--runs and --transfers must be >= 1, --warmup >= 0, --only a subset of {','.join(PARTS)}")
    return args


class PodmanNetwork:
    """A podman network of the benchmark's own (its CNI config in the temp dir, a free subnet)."""

    def __init__(self, podman):
        self.podman = podman
        podman.global_args += ["--network-config-dir", os.path.join(podman.base, "cni")]
        subnet = helpers.default_bridge_env()["VESSEL_DEFAULT_SUBNET"]
        podman.sh("network", "create", "--subnet", subnet, PODMAN_NETWORK)
        inspect = json.loads(podman.sh("network", "inspect", PODMAN_NETWORK).stdout)
        self.bridge = inspect[0]["network_interface"]

    def remove(self):
        self.podman.sh("network", "rm", "--force", PODMAN_NETWORK, check=False)
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode == 0:
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)


def run_argv(engine, network, *command, detach=False, name=None):
    """`run` of busybox on `network` ("bridge": the engine's default bridge for vessel, ours for podman)."""
    if isinstance(engine, engines.Podman) and network == "bridge":
        network = PODMAN_NETWORK
    return engine.command("run", "-d" if detach else "--rm", *(["--name", name] if name else []),
                          "--network", network, "--cgroup-parent", engine.cgroup_parent, engine.image, *command)


def part_run(vessel, podman, args):
    contenders = []
    for engine in filter(None, (vessel, podman)):
        for network in ("bridge", "none"):
            contenders.append(harness.Contender(f"{engine.name} {network}",
                                                lambda i, e=engine, n=network: run_argv(e, n, "true"),
                                                program=engine.program))
    rows = harness.run_interleaved(contenders, args.runs, args.warmup, timeout=120)
    baseline = "podman bridge" if podman else "vessel none"
    harness.add_ratios(rows, baseline)
    medians = {row["name"]: row.get("median") for row in rows}
    text = [f"`run --rm busybox true`, default bridge vs --network none; {args.runs} samples each after "
            f"{args.warmup} warm-up rounds, interleaved", harness.format_table(rows, baseline)]
    costs = {}
    for name in ("vessel", "podman"):
        bridge, none = medians.get(f"{name} bridge"), medians.get(f"{name} none")
        if bridge is not None and none is not None:
            costs[name] = bridge - none
            text.append(f"{name}: the bridge adds {costs[name] * 1000:.1f} ms (difference of medians)")
    if medians.get("vessel bridge") and medians.get("podman bridge"):
        text.append(f"vessel bridge / podman bridge: {medians['vessel bridge'] / medians['podman bridge']:.2f}x "
                    "(target <= 0.35x); vessel's bridge cost target <= 20 ms")
    return {"rows": rows, "bridge_cost_seconds": costs}, text


SERVER = ("mkdir -p /www && dd if=/dev/zero of=/www/blob bs=1 count=0 seek={size} 2>/dev/null && "
          "exec httpd -f -p 80 -h /www")
_REAL = re.compile(r"real\s+(\d+)m\s*([\d.]+)s")


def part_throughput(vessel, podman, args):
    size = args.megabytes << 20
    pairs = []
    for engine in filter(None, (vessel, podman)):
        engine.execute(run_argv(engine, "bridge", "sh", "-c", SERVER.format(size=size), detach=True,
                                name="server"))
        engine.execute(run_argv(engine, "bridge", "sleep", "3600", detach=True, name="client"))
        address = server_address(engine)
        pairs.append((engine, address))
    samples = {engine.name: [] for engine, _ in pairs}
    notes = []
    for round_number in range(args.transfers + 1):  # the first round warms the page cache up
        for engine, address in pairs:
            proc = engine.execute(engine.command("exec", "client", "sh", "-c",
                                                 f"time wget -q -O /dev/null http://{address}/blob"),
                                  check=False, timeout=300)
            match = _REAL.search(proc.stderr.decode(errors="replace"))
            if proc.returncode != 0 or not match:
                notes.append(f"{engine.name}: transfer failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
                continue
            seconds = int(match.group(1)) * 60 + float(match.group(2))
            if round_number and seconds > 0:
                samples[engine.name].append(args.megabytes / seconds)
    rows = []
    for name, values in samples.items():
        stats = harness.summarize(values)
        rows.append({"name": name, "mb_per_s": values, **stats})
    table = [("engine", "median MB/s", "min MB/s", "n")]
    for row in rows:
        table.append((row["name"], f"{row['median']:.0f}" if row["median"] else "-",
                      f"{row['min']:.0f}" if row["min"] else "-", str(row["n"])))
    text = [f"container-to-container download of {args.megabytes} MB over one bridge (busybox httpd -> wget), "
            f"{args.transfers} transfers each after one warm-up, interleaved", harness.plain_table(table)]
    by_name = {row["name"]: row["median"] for row in rows}
    if by_name.get("vessel") and by_name.get("podman"):
        text.append(f"vessel / podman throughput: {by_name['vessel'] / by_name['podman']:.2f}x")
    for engine, _ in pairs:
        engine.remove_containers()
    return {"rows": rows}, text + notes[:5]


def server_address(engine):
    if isinstance(engine, engines.Podman):
        template = "{{(index .NetworkSettings.Networks \"" + PODMAN_NETWORK + "\").IPAddress}}"
    else:
        template = "{{.NetworkSettings.IPAddress}}"
    return engine.sh("inspect", "--format", template, "server").stdout.decode().strip()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.update(helpers.default_bridge_env())  # vessel's default bridge: one of the benchmark's own
    return engines.run_benchmark("network", args, measure)


def measure(bench, args, report, output):
    """vessel and podman (on a network of the benchmark's own), then the parts; the containers removed after."""
    network = vessel = None
    try:
        vessel = bench.vessel("vessel")
        vessel.load_image(bench.rootfs_tar)
        podman = bench.podman(args.podman_runtime)
        if podman is not None:
            try:
                network = PodmanNetwork(podman)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"note: podman left out: {exc}", file=sys.stderr)
                podman = None
        if "run" in args.only:
            report["run"], text = part_run(vessel, podman, args)
            output += text
        if "throughput" in args.only:
            report["throughput"], text = part_throughput(vessel, podman, args)
            output += [""] + text
        report["machine"] = harness.machine_info({
            "vessel": vessel.version(), "podman": harness.program_version(["podman", "--version"])})
    finally:  # the containers first: the podman network goes only when none is on it
        for engine in bench.engines:
            engine.remove_containers()
        if vessel is not None:  # its monitor keeps the default bridge up until it leaves; the clean-up kills it
            networking.remove_idle_default_bridge(vessel.root)
        if network is not None:
            network.remove()


if __name__ == "__main__":
    sys.exit(main())
