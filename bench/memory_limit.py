"""Memory floor: the smallest memory limit under which each runtime still runs /bin/true.

For vessel-runtime, runc and crun, `run` /bin/true (busybox bundle, Docker's
default config) with linux.resources.memory.limit set to each of 512k, 1M, 2M,
4M and 8M, a few attempts each; a limit passes when every attempt exits 0.
Whatever the runtime puts in the container's cgroup before exec (its init
process, its pages) is charged against that limit.

Each runtime's limit is checked to reach the kernel first: a sleeping container
is started under 8M and its cgroup's memory.limit_in_bytes (or memory.max) read.

Also the peak RSS of the runtime process (GNU time's %M: the largest of the
runtime and the children it waited for), with no memory limit.

The issue's target is vessel-runtime running /bin/true under 2 MiB; the output
says plainly when it does not.

    /opt/vessel/venv/bin/python bench/memory_limit.py [--attempts 3] [--json out.json]
"""

import argparse
import os
import statistics
import subprocess
import sys

import containers
import harness

LIMITS = (("512k", 512 << 10), ("1M", 1 << 20), ("2M", 2 << 20), ("4M", 4 << 20), ("8M", 8 << 20))
TARGET = ("vessel-runtime", "2M")
GNU_TIME = "/usr/bin/time"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=3, help="runs per runtime and limit (default 3)")
    parser.add_argument("--rss-runs", type=int, default=5, help="runs for the peak RSS median (default 5)")
    parser.add_argument("--mount-hugetlb", action="store_true",
                        help="mount the hugetlb v1 hierarchy for the run, so that crun accepts hybrid cgroups")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.attempts < 1 or args.rss_runs < 1:
        parser.error("--attempts and --rss-runs must be >= 1")
    return args


def try_limit(run, limit, attempts, first_iteration):
    """(passed attempts, last failure text) for `attempts` runs under `limit` bytes."""
    run.config["linux"]["resources"]["memory"] = {"limit": limit}
    passed, failure = 0, ""
    for i in range(attempts):
        iteration = first_iteration + i
        run.prepare(iteration)
        proc = subprocess.run(run.argv(iteration), stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if proc.returncode == 0:
            passed += 1
        else:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            failure = f"exit {proc.returncode}: {lines[-1] if lines else '(no stderr)'}"
    return passed, failure


def peak_rss_kib(run, runs, first_iteration):
    """Median of GNU time's %M (KiB) over `runs` unlimited runs, or a reason string."""
    if not os.access(GNU_TIME, os.X_OK):
        return "no /usr/bin/time"
    run.config["linux"]["resources"].pop("memory", None)
    out = os.path.join(run.workspace.dir, "time.out")
    values = []
    for i in range(runs):
        iteration = first_iteration + i
        run.prepare(iteration)
        proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", out, *run.argv(iteration)],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if proc.returncode != 0:
            return f"failed: {proc.stderr.decode(errors='replace').strip()}"
        with open(out) as f:
            values.append(int(f.read().split()[-1]))
    return statistics.median(values)


def applied_limit(run, limit):
    """Start a sleeping container under `limit`; the limit its cgroup really has (None if not found)."""
    config = run.config
    saved_args = config["process"]["args"]
    config["process"]["args"] = ["sleep", "30"]
    config["linux"]["resources"]["memory"] = {"limit": limit}
    run.prepare("limit")
    container_id = run.container_id("limit")
    try:
        proc = subprocess.run(run.runtime.command("run", "--detach", "--bundle", run.bundle, container_id),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=60)
        return run.workspace.cgroups.memory_limit_of(container_id) if proc.returncode == 0 else None
    finally:
        subprocess.run(run.runtime.command("delete", "--force", container_id), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
        config["process"]["args"] = saved_args


def measure(workspace, runtime, attempts, rss_runs):
    """The result row of one runtime: per-limit outcomes, the smallest passing limit, peak RSS."""
    row = {"name": runtime.name, "status": harness.OK, "detail": "", "limits": {}, "smallest": None}
    if not runtime.installed:
        row["status"] = harness.NOT_INSTALLED
        return row
    run = containers.ContainerRun(workspace, runtime, runtime.name, containers.base_config(workspace.rootfs))
    reason = run.check()
    if reason:
        row.update(status="failed", detail=reason)
        return row
    probe = LIMITS[-1][1]
    row["limit_applied"] = applied_limit(run, probe) == probe
    iteration = 0
    for label, limit in LIMITS:
        passed, failure = try_limit(run, limit, attempts, iteration)
        iteration += attempts
        row["limits"][label] = {"passed": passed, "attempts": attempts, "failure": failure}
        if passed == attempts and row["smallest"] is None:
            row["smallest"] = label
    row["peak_rss_kib"] = peak_rss_kib(run, rss_runs, iteration)
    return row


def format_rows(rows):
    header = ("runtime", *[label for label, _ in LIMITS], "smallest ok", "limit set", "peak RSS")
    body, notes = [], []
    for row in rows:
        if row["status"] != harness.OK:
            body.append((row["name"], row["status"], *[""] * (len(header) - 2)))
            if row["detail"]:
                notes.append(f"{row['name']} {row['status']}: {row['detail']}")
            continue
        cells = []
        for label, _ in LIMITS:
            outcome = row["limits"][label]
            cells.append("ok" if outcome["passed"] == outcome["attempts"]
                         else f"FAIL {outcome['passed']}/{outcome['attempts']}")
            if outcome["failure"]:
                notes.append(f"{row['name']} at {label}: {outcome['failure']}")
        rss = row["peak_rss_kib"]
        rss_text = f"{rss / 1024:.1f} MiB" if isinstance(rss, (int, float)) else rss
        body.append((row["name"], *cells, row["smallest"] or "none",
                     "yes" if row["limit_applied"] else "NO", rss_text))
        if not row["limit_applied"]:
            notes.append(f"{row['name']}: the container's cgroup did not hold the {LIMITS[-1][0]} limit "
                         "(its results above mean nothing)")
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + notes)


def target_verdict(rows):
    """One line on the issue's target (vessel-runtime under 2M)."""
    name, label = TARGET
    row = next(r for r in rows if r["name"] == name)
    if row["status"] != harness.OK:
        return f"FINDING: {name} could not be measured ({row['status']})"
    outcome = row["limits"][label]
    if outcome["passed"] == outcome["attempts"]:
        return f"target met: {name} runs /bin/true under a {label} memory limit"
    return (f"FINDING: {name} does NOT run /bin/true under a {label} memory limit "
            f"({outcome['passed']}/{outcome['attempts']} passed; smallest that works: {row['smallest'] or 'none'})")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    harness.terminate_as_interrupt()
    try:
        with containers.Workspace(mount_hugetlb=args.mount_hugetlb) as workspace:
            info = harness.machine_info({rt.name: rt.version() for rt in workspace.runtimes})
            rows = [measure(workspace, rt, args.attempts, args.rss_runs) for rt in workspace.runtimes]
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    print(harness.format_machine(info))
    print(f"run of /bin/true under linux.resources.memory.limit, {args.attempts} attempts per cell; "
          f"peak RSS = median of {args.rss_runs} unlimited runs (/usr/bin/time -f %M)")
    print(format_rows(rows))
    verdict = target_verdict(rows)
    print(verdict)
    if args.json:
        harness.write_json(args.json, {"benchmark": "memory_limit", "machine": info, "attempts": args.attempts,
                                       "limits": dict(LIMITS), "verdict": verdict, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
