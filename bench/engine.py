"""The engine (issue #5): `vessel run` against podman and containerd, memory per container, scale.

Four parts, each on state of its own in one temp dir (vessel's --root/--runroot,
podman's --root/--runroot/--tmpdir, a containerd daemon with its own root,
state and socket), all with the same busybox image and no network:

  run          `run --rm busybox true`: vessel vs `podman run --rm` (with runc:
               Debian's crun refuses this machine's hybrid cgroups; see
               --podman-runtime) vs `ctr run --rm` (containerd's runc shim),
               interleaved; ratios of medians against podman.
  memory       N sleeping containers per engine; the PSS (/proc/PID/smaps_rollup)
               of the processes that supervise them (vessel: whatever process
               has vessel's state root on its command line or in its environment
               and is not in a container; podman: conmon; containerd: its shims,
               not the daemon) summed and divided by N.
  scale        500 created containers (plus 3 running) in one root: `vessel run
               --rm` there vs in an empty root and in one with the same 3
               running (the difference the 500 rows make), in one with 12
               running (a monitor serving 10 to 39 sheds the engine when
               quiet: the slim case) and in one with 50 running (it keeps
               the engine), interleaved, each run 0.8 s after the last
               command (past the 0.5 s after which it slims);
               `ps -a`, `ps` and `inspect` with the 500.
  concurrency  50 `vessel run --rm busybox echo I` started at once: how many
               exit 0 with their own output, the wall time, what is left.

Everything made is removed at the end (also on Ctrl-C or SIGTERM): containers,
images, podman's storage, the containerd daemon and its shims (by pid), mounts
below the temp dir, cgroups.

    /opt/vessel/venv/bin/python bench/engine.py [--runs 20] [--only run,memory,scale,concurrency] [--json F]

bench/network.py and bench/filesystem.py use its Bench and engines, `arguments` and `run_benchmark`.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import containers  # noqa: F401  (puts src/ and tests/ on sys.path)
import harness
import helpers
from peers import busybox_docker_archive
from vessel.runtime.entrypoint import write_cli_launcher

PARTS = ("run", "memory", "scale", "concurrency")
CTR_IMAGE = "docker.io/library/busybox:latest"
CTR_NAMESPACE = "vessel-bench"


def arguments(description, runs, warmup):
    """An argument parser with what every engine benchmark takes: --runs, --warmup, --podman-runtime, --json."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=runs, help=f"samples per contender (default {runs})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed rounds first (default {warmup})")
    parser.add_argument("--podman-runtime", default="runc",
                        help="podman's --runtime (default runc: Debian's crun refuses this machine's hybrid cgroups)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


def run_benchmark(name, args, measure):
    """`measure(bench, args, report, output)` on a new Bench, which is removed afterwards (also on Ctrl-C or
    SIGTERM); then the report is printed (and written to --json). Returns the exit status."""
    harness.terminate_as_interrupt()
    harness.clear_python_environment()
    report, output = {"benchmark": name, "runs": args.runs, "warmup": args.warmup}, []
    bench = None
    try:
        bench = Bench()
        measure(bench, args, report, output)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if bench is not None:
            bench.close()
    harness.print_report(report, output, args.json)
    return 0


def parse_args(argv):
    parser = arguments(__doc__.splitlines()[0], runs=20, warmup=2)
    parser.add_argument("--sleepers", type=int, default=20, help="running containers per engine for memory")
    parser.add_argument("--containers", type=int, default=500, help="created containers for scale")
    parser.add_argument("--concurrent", type=int, default=50, help="simultaneous runs for concurrency")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts ({', '.join(PARTS)})")
    args = parser.parse_args(argv)
    args.only = [p for p in args.only.split(",") if p]
    if args.runs < 1 or args.warmup < 0 or set(args.only) - set(PARTS):
        parser.error(f"--runs must be >= 1, --warmup >= 0, --only a subset of {','.join(PARTS)}")
    return args


def processes():
    """pid -> (comm, cmdline bytes) of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found[int(entry)] = (comm, f.read())
        except OSError:
            continue
    return found


def environ_has(pid, text):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def in_cgroup_below(pid, name):
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return any(f"/{name}/" in line for line in f)
    except OSError:
        return False


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def unmount_below(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(path.rstrip("/") + "/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


class Engine:
    """One engine's command line on state of its own; `sh(...)` runs a command and checks it."""

    name = ""
    program = ""
    image = ""

    def __init__(self, base, scope):
        self.base = base
        self.scope = scope  # the benchmark's cgroup name; containers go below it
        os.makedirs(base, exist_ok=True)

    def sh(self, *args, check=True, timeout=120):
        """The engine's command with `args`."""
        return self.execute(self.command(*args), check, timeout)

    def execute(self, argv, check=True, timeout=120):
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc

    def version(self):
        return harness.program_version([self.program, "--version"])

    def run_argv(self, *command, detach=False):
        """`run` of the busybox image with no network, below the benchmark's cgroup."""
        return self.command("run", "--rm" if not detach else "-d", "--network", "none",
                            "--cgroup-parent", self.cgroup_parent, self.image, *command)

    def load_image(self, rootfs_tar):
        self.sh("import", "--change", 'CMD ["sh"]', rootfs_tar, self.image)

    @property
    def installed(self):
        return harness.resolve(self.program) is not None


class Vessel(Engine):
    name = "vessel"
    image = "busybox"

    def __init__(self, base, scope, label="vessel"):
        super().__init__(base, scope)
        self.program = os.path.join(base, "vessel")
        write_cli_launcher(self.program, sys.executable)  # the -IS launcher scripts/setup installs
        self.root, self.runroot = os.path.join(base, "root"), os.path.join(base, "run")
        self.cgroup_parent = f"{scope}/{label}"

    def command(self, *args):
        return [self.program, "--root", self.root, "--runroot", self.runroot, *args]

    def supervisors(self):
        """The processes that supervise vessel's containers (not the containers' own processes)."""
        return [pid for pid, (comm, cmdline) in processes().items()
                if pid != os.getpid() and (self.root.encode() in cmdline or environ_has(pid, self.root))
                and not in_cgroup_below(pid, self.cgroup_parent)]

    def remove_containers(self):
        """Remove every container (the image stays)."""
        ids = self.sh("ps", "-aq", "--no-trunc", check=False).stdout.decode().split()
        for start in range(0, len(ids), 100):
            self.sh("rm", "-f", *ids[start:start + 100], check=False, timeout=600)

    def teardown(self):
        if os.path.isdir(self.root):
            self.remove_containers()
            kill_pids(self.supervisors())
        unmount_below(self.base)


class Podman(Engine):
    name = "podman"
    program = "podman"
    image = "localhost/busybox"

    def __init__(self, base, scope, parent_path, runtime):
        super().__init__(base, scope)
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            # the hard RLIMIT_NOFILE here is below podman's default ulimits: ask for what can be set
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
        self.cgroup_parent = f"{parent_path}/podman"
        self.global_args = ["podman", "--root", f"{base}/storage", "--runroot", f"{base}/run",
                            "--tmpdir", f"{base}/tmp", "--cgroup-manager", "cgroupfs",
                            "--events-backend", "file", "--storage-driver", "overlay", "--runtime", runtime]
        self.runtime = runtime
        os.environ["CONTAINERS_CONF"] = conf  # for every podman command, the timed ones too

    def command(self, *args):
        return [*self.global_args, *args]

    def supervisors(self):
        marker = f"{self.base}/storage".encode()
        return [pid for pid, (comm, cmdline) in processes().items() if comm == "conmon" and marker in cmdline]

    def remove_containers(self):
        self.sh("rm", "--all", "--force", "--time", "0", check=False, timeout=600)

    def teardown(self):
        if os.path.isdir(os.path.join(self.base, "storage")):
            self.remove_containers()
            self.sh("system", "reset", "--force", check=False, timeout=600)
        kill_pids(self.supervisors())
        unmount_below(self.base)


class Containerd(Engine):
    name = "containerd"
    program = "ctr"
    image = CTR_IMAGE

    def __init__(self, base, scope, parent_path):
        super().__init__(base, scope)
        self.socket = f"{base}/containerd.sock"
        self.cgroup_prefix = f"{parent_path}/ctr"
        self.daemon = None
        self.iteration = 0

    def start(self):
        config = os.path.join(self.base, "config.toml")
        with open(config, "w") as f:
            f.write("version = 2\n"
                    f'root = "{self.base}/root"\nstate = "{self.base}/state"\n'
                    f'[grpc]\n  address = "{self.socket}"\n[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
                    '[debug]\n  level = "warn"\n[metrics]\n  address = ""\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
        self.log = open(os.path.join(self.base, "containerd.log"), "wb")
        self.daemon = subprocess.Popen(["containerd", "--config", config], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("containerd did not start: " + open(self.log.name).read()[-2000:])
            time.sleep(0.05)

    def command(self, *args):
        return ["ctr", "--address", self.socket, "--namespace", CTR_NAMESPACE, *args]

    def run_argv(self, *command, detach=False):
        self.iteration += 1
        container_id = f"bench-{self.iteration}"
        return self.command("run", "--rm" if not detach else "--detach", "--cgroup",
                            f"{self.cgroup_prefix}/{container_id}", self.image, container_id, *command)

    def load_image(self, archive):
        self.sh("images", "import", archive)

    def supervisors(self):
        marker = self.socket.encode()
        return [pid for pid, (comm, cmdline) in processes().items()
                if comm.startswith("containerd-shim") and marker in cmdline]

    def remove_containers(self):
        for name in self.sh("containers", "list", "-q", check=False).stdout.decode().split():
            self.sh("tasks", "kill", "--signal", "SIGKILL", name, check=False)
            self.sh("tasks", "delete", "--force", name, check=False, timeout=60)
            self.sh("containers", "delete", name, check=False)

    def teardown(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.remove_containers()
            for image in self.sh("images", "list", "-q", check=False).stdout.decode().split():
                self.sh("images", "remove", image, check=False)
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            self.log.close()
        kill_pids(self.supervisors())  # shims outlive the daemon by design; these are ours (our socket)
        unmount_below(self.base)


class Bench:
    """The temp dir, the image files, the cgroup scope and the engines; `close()` removes all of it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vessel-bench-engine-")
        self.engines = []
        self.scope = containers.CgroupScope(f"vessel-bench-{os.getpid()}")
        rootfs = helpers.make_busybox_rootfs(os.path.join(self.dir, "rootfs"))
        self.rootfs_tar = os.path.join(self.dir, "busybox.tar")
        with tarfile.open(self.rootfs_tar, "w") as tar:
            for name in sorted(os.listdir(rootfs)):
                tar.add(os.path.join(rootfs, name), arcname=name)
        shutil.rmtree(rootfs)
        self.parent_path = self.scope.path("", absolute=True).rstrip("/")

    def vessel(self, label):
        return self._add(Vessel(os.path.join(self.dir, label), self.scope.name, label))

    def podman(self, runtime):
        """podman with the busybox image, or None (not installed or not working)."""
        podman = Podman(os.path.join(self.dir, "podman"), self.scope.name, self.parent_path, runtime)
        return self._ready(podman, lambda: podman.load_image(self.rootfs_tar))

    def containerd(self):
        """A containerd daemon of our own with the busybox image, or None (not installed or not working)."""
        ctr = Containerd(os.path.join(self.dir, "containerd"), self.scope.name, self.parent_path)

        def prepare():
            ctr.start()
            ctr.load_image(busybox_docker_archive(os.path.join(self.dir, "busybox-docker.tar"), ctr.image))

        return self._ready(ctr, prepare)

    def peers(self, podman_runtime):
        """podman and containerd, those installed and working."""
        return [engine for engine in (self.podman(podman_runtime), self.containerd()) if engine is not None]

    def _ready(self, engine, prepare):
        if not engine.installed:
            return None
        self._add(engine)  # torn down with the others, also when prepare fails
        try:
            prepare()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"note: {engine.name} left out: {exc}", file=sys.stderr)
            return None
        return engine

    def _add(self, engine):
        self.engines.append(engine)
        return engine

    def close(self):
        for engine in reversed(self.engines):
            try:
                engine.teardown()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                print(f"warning: {engine.name} teardown: {exc}", file=sys.stderr)
        self.scope.close()
        unmount_below(self.dir)
        subprocess.run(["rm", "-rf", "--one-file-system", self.dir], check=False)


# -- the parts ------------------------------------------------------------------------

def start_engines(bench, args):
    """vessel, podman and containerd (those installed and working), each with the busybox image."""
    vessel = bench.vessel("vessel")
    vessel.load_image(bench.rootfs_tar)
    return [vessel] + bench.peers(args.podman_runtime)


def part_run(engines, args):
    contenders = [harness.Contender(e.name, lambda i, e=e: e.run_argv("true"), program=e.program)
                  for e in engines]
    rows = harness.run_interleaved(contenders, args.runs, args.warmup, timeout=120)
    harness.add_ratios(rows, "podman")
    text = [f"`run --rm busybox true`, no network; {args.runs} samples each after {args.warmup} warm-up rounds, "
            "interleaved", harness.format_table(rows, "podman")]
    return {"rows": rows}, text


def part_memory(engines, args):
    rows, notes = [], []
    table = [("engine", "processes", "PSS total", "per container")]
    for engine in engines:
        started = 0
        try:
            for _ in range(args.sleepers):
                engine.execute(engine.run_argv("sleep", "1000", detach=True))
                started += 1
            time.sleep(1)  # let the supervisors settle
            pids = engine.supervisors()
            total = sum(pss_kib(pid) for pid in pids)
            rows.append({"name": engine.name, "containers": started, "processes": len(pids), "pss_kib": total})
            table.append((engine.name, str(len(pids)), f"{total / 1024:.1f} MB",
                          f"{total / 1024 / started:.2f} MB"))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            rows.append({"name": engine.name, "containers": started, "error": str(exc)})
            table.append((engine.name, "failed", "", ""))
            notes.append(f"{engine.name} failed: {exc}")
        finally:
            engine.remove_containers()
    text = [f"PSS (/proc/PID/smaps_rollup) of the supervising processes, {args.sleepers} running `sleep` "
            "containers per engine", harness.plain_table(table)] + notes
    return {"rows": rows}, text


def part_scale(bench, args):
    """`run` in an empty root, in one with 3 running containers, in one with N created + the same 3 running,
    in one with enough running containers for its monitor to go slim, and in one with more than that."""
    from vessel.api import Client
    from vessel.engine.monitor import _SLIM_FROM, _SLIM_UNTIL

    empty, few, full = bench.vessel("empty"), bench.vessel("few"), bench.vessel("full")
    busy, crowded = bench.vessel("busy"), bench.vessel("crowded")
    for engine in (empty, few, full, busy, crowded):
        engine.load_image(bench.rootfs_tar)
    started = time.perf_counter()
    client = Client(full.root, full.runroot)
    try:
        for i in range(args.containers):
            client.containers.create("busybox", ["true"], name=f"created{i}", network_mode="none")
    finally:
        client.close()
    made = time.perf_counter() - started
    for engine, running in ((few, 3), (full, 3), (busy, _SLIM_FROM + 2), (crowded, _SLIM_UNTIL + 10)):
        for _ in range(running):
            engine.execute(engine.run_argv("sleep", "1000", detach=True))
    many = f"{args.containers} + 3 running"

    def pause(_):
        """Untimed: a monitor with running containers sheds the engine after 0.5 s; a run meets it slim, as a user's."""
        time.sleep(0.8)

    contenders = [harness.Contender("run (empty)", lambda i: empty.run_argv("true"), pause, empty.program),
                  harness.Contender("run (3 running)", lambda i: few.run_argv("true"), pause, few.program),
                  harness.Contender(f"run ({many})", lambda i: full.run_argv("true"), pause, full.program),
                  harness.Contender(f"run ({_SLIM_FROM + 2} running, slim)", lambda i: busy.run_argv("true"), pause,
                                    busy.program),
                  harness.Contender(f"run ({_SLIM_UNTIL + 10} running)", lambda i: crowded.run_argv("true"), pause,
                                    crowded.program),
                  harness.Contender(f"ps -a ({many})", full.command("ps", "-a")),
                  harness.Contender(f"ps ({many})", full.command("ps")),
                  harness.Contender(f"inspect ({many})", full.command("inspect", f"created{args.containers // 2}"))]
    rows = harness.run_interleaved(contenders, args.runs, args.warmup, timeout=120)
    harness.add_ratios(rows, "run (empty)")
    listed = len(full.sh("ps", "-aq").stdout.split())
    text = [f"{args.containers} created + 3 running containers in one root ({made:.1f} s to create them through "
            f"the Python API), `ps -a` lists {listed}; the same 3 running in another, none in a third; "
            f"{_SLIM_FROM + 2} running in a fourth (its monitor slim between runs), {_SLIM_UNTIL + 10} in a fifth",
            harness.format_table(rows, "run (empty)")]
    return {"rows": rows, "listed": listed, "create_seconds": made}, text


def part_concurrency(bench, args):
    vessel = bench.vessel("concurrent")
    vessel.load_image(bench.rootfs_tar)
    started = time.perf_counter()
    procs = [subprocess.Popen(vessel.run_argv("echo", str(i)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for i in range(args.concurrent)]
    results = [(i, p.wait(timeout=600), p.stdout.read().decode(), p.stderr.read().decode())
               for i, p in enumerate(procs)]
    wall = time.perf_counter() - started
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    good = [i for i, code, out, _ in results if code == 0 and out == f"{i}\n"]
    failures = [f"#{i}: exit {code}: {err.strip()[:200]}" for i, code, out, err in results if i not in good]
    deadline = time.monotonic() + 30
    left = vessel.sh("ps", "-aq").stdout.split()
    while left and time.monotonic() < deadline:  # --rm removal may finish after the command
        time.sleep(0.2)
        left = vessel.sh("ps", "-aq").stdout.split()
    text = [f"{args.concurrent} concurrent `vessel run --rm busybox echo I`: {len(good)}/{args.concurrent} "
            f"succeeded with their own output in {wall:.2f} s wall; {len(left)} containers left"]
    text += failures[:5]
    return {"ok": len(good), "total": args.concurrent, "wall_seconds": wall, "left": len(left),
            "failures": failures}, text


def measure(bench, args, report, output):
    """The parts of --only, on one Bench."""
    if "run" in args.only or "memory" in args.only:
        engines = start_engines(bench, args)
        if "run" in args.only:
            report["run"], text = part_run(engines, args)
            output += text
        if "memory" in args.only:
            report["memory"], text = part_memory(engines, args)
            output += [""] + text
    if "scale" in args.only:
        report["scale"], text = part_scale(bench, args)
        output += [""] + text
    if "concurrency" in args.only:
        report["concurrency"], text = part_concurrency(bench, args)
        output += [""] + text
    report["machine"] = harness.machine_info({
        "vessel": bench.engines[0].version() if bench.engines else "",
        "podman": harness.program_version(["podman", "--version"]),
        "ctr": harness.program_version(["ctr", "--version"])})


def main(argv=None):
    return run_benchmark("engine", parse_args(sys.argv[1:] if argv is None else argv), measure)


if __name__ == "__main__":
    sys.exit(main())
