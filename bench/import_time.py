"""Import cost of vessel-runtime, and a guard against slow modules on its hot paths.

Runs `python -X importtime -IS -c "<the launcher's code>"` for `state` of a
created container, for `run` of /bin/true and for `run` with Docker's seccomp
profile (when vessel ships it), exactly as the installed launcher starts the
interpreter, and reports the total import time (the sum of every module's own
time), the number of modules and the ten slowest ones.

Exits 1, naming the importer, if any of FORBIDDEN is imported on either path:
the runtime's start-up budget has no room for them.

    /opt/vessel/venv/bin/python bench/import_time.py [--repeat 5] [--json out.json]
"""

import argparse
import os
import statistics
import subprocess
import sys

import containers
import harness

FORBIDDEN = ("json", "re", "enum", "typing", "dataclasses", "argparse", "subprocess", "shutil",
             "asyncio", "logging")
LAUNCHER_CODE = ("import sys; sys.path.insert(0, {src!r}); from vessel.runtime.cli import main; "
                 "sys.exit(main({argv!r}))")


class Module:
    """One line of -X importtime: own and cumulative microseconds, nesting depth, importer."""

    __slots__ = ("name", "self_us", "cumulative_us", "depth", "importer")

    def __init__(self, name, self_us, cumulative_us, depth):
        self.name, self.self_us, self.cumulative_us, self.depth = name, self_us, cumulative_us, depth
        self.importer = None


def parse_importtime(stderr):
    """The modules of -X importtime output, in order; each knows the module that imported it.

    Lines look like `import time:  self |  cumulative | <2 spaces per level>name`;
    a module is printed after its imports, so its importer is the next line
    that is one level shallower (None for top-level imports).
    """
    modules = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|", 2)
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        label = fields[2][1:]  # one separator space, then the indentation
        name = label.lstrip(" ")
        modules.append(Module(name, int(fields[0]), int(fields[1]), (len(label) - len(name)) // 2))
    pending = []  # modules waiting for their importer, deepest last
    for module in modules:
        while pending and pending[-1].depth > module.depth:
            pending.pop().importer = module.name
        pending.append(module)
    return modules


def forbidden_imports(modules, forbidden=FORBIDDEN):
    """The modules that are, or are inside, a forbidden package."""
    return [m for m in modules if any(m.name == f or m.name.startswith(f + ".") for f in forbidden)]


def summary(modules, top=10):
    return {"total_ms": sum(m.self_us for m in modules) / 1000, "modules": len(modules),
            "top": [{"name": m.name, "self_ms": m.self_us / 1000, "cumulative_ms": m.cumulative_us / 1000}
                    for m in sorted(modules, key=lambda m: m.self_us, reverse=True)[:top]]}


def import_trace(runtime_argv):
    """(exit status, modules) of one interpreter started the launcher's way with -X importtime."""
    code = LAUNCHER_CODE.format(src=os.path.join(containers.REPO, "src"), argv=runtime_argv)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", code],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return proc, parse_importtime(proc.stderr)


def measure_path(label, make_argv, repeat):
    """Trace one verb `repeat` times; keep the run with the median total; check it for forbidden imports."""
    traces = []
    for i in range(repeat):
        proc, modules = import_trace(make_argv(i))
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
            raise SystemExit(f"{label}: vessel-runtime failed ({proc.returncode}): {' '.join(errors)}")
        traces.append(modules)
    totals = [sum(m.self_us for m in modules) for modules in traces]
    median_trace = traces[totals.index(sorted(totals)[(len(totals) - 1) // 2])]
    bad = {m.name: m.importer for modules in traces for m in forbidden_imports(modules)}
    result = summary(median_trace)
    result.update(path=label, median_total_ms=statistics.median(totals) / 1000,
                  forbidden={name: importer for name, importer in sorted(bad.items())})
    return result


def format_path(result):
    lines = [f"{result['path']}: {result['median_total_ms']:.1f} ms of imports (median), "
             f"{result['modules']} modules; slowest (own time, cumulative):"]
    lines += [f"  {t['self_ms']:7.2f} ms  {t['cumulative_ms']:7.2f} ms  {t['name']}" for t in result["top"]]
    if result["forbidden"]:
        lines += [f"  FORBIDDEN: {name} (imported by {importer or 'the entry itself'})"
                  for name, importer in result["forbidden"].items()]
    else:
        lines.append(f"  none of {', '.join(FORBIDDEN)} imported")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="traces per verb; the median is shown (default 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def trace_verbs(workspace, repeat):
    """Results for `state` of a created container, `run`, and `run` with seccomp (if vessel ships the profile)."""
    vessel = workspace.runtimes[0]
    config = containers.base_config(workspace.rootfs)
    created = containers.ContainerRun(workspace, vessel, "state", config)
    created.prepare(0)
    # the created init keeps its stdio until started: a pipe would never reach EOF, so use a file
    with open(os.path.join(workspace.dir, "create.err"), "w+") as errors:
        proc = subprocess.run(vessel.command("create", "--bundle", created.bundle, created.container_id(0)),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, timeout=60)
        if proc.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"vessel-runtime create failed: {errors.read().strip()}")
    results = [measure_path("state", lambda i: ["--root", vessel.root, "state", created.container_id(0)], repeat)]
    runs = [("run", config)]
    profile = containers.seccomp_profile()
    if profile is not None:
        runs.append(("run+seccomp", {**config, "linux": {**config["linux"], "seccomp": profile}}))
    for label, run_config in runs:
        run = containers.ContainerRun(workspace, vessel, label, run_config)

        def run_argv(i, run=run):
            run.prepare(i)
            return ["--root", vessel.root, "run", "--bundle", run.bundle, run.container_id(i)]

        results.append(measure_path(label, run_argv, repeat))
    return results


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    harness.terminate_as_interrupt()
    try:
        with containers.Workspace() as workspace:
            results = trace_verbs(workspace, args.repeat)
            info = harness.machine_info({"vessel-runtime": workspace.runtimes[0].version()})
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    print(harness.format_machine(info))
    print("python -X importtime -IS, started as the vessel-runtime launcher starts it")
    for result in results:
        print(format_path(result))
    if args.json:
        harness.write_json(args.json, {"benchmark": "import_time", "machine": info, "repeat": args.repeat,
                                       "forbidden": list(FORBIDDEN), "results": results})
    if any(result["forbidden"] for result in results):
        print("FAIL: forbidden modules imported on the runtime's start-up path", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
