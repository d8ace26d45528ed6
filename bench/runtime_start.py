"""Container start-up: `RUNTIME run` of /bin/true, vessel-runtime vs runc vs crun.

Every contender runs the same busybox rootfs under the same config: Docker's
default (capabilities, masked and read-only paths, namespaces, a device
cgroup) without seccomp; --seccomp adds "<runtime>+seccomp" contenders with
Docker's default seccomp profile, so one run shows what the filter costs each
runtime. Samples are wall-clock time of the whole `run` (create, start, wait,
delete), taken in interleaved rounds.

    /opt/vessel/venv/bin/python bench/runtime_start.py --runs 50 [--seccomp] [--json out.json]
"""

import argparse
import sys

import containers
import harness


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="samples per contender (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--baseline", default="runc", help="ratios are against this contender (default runc)")
    parser.add_argument("--seccomp", action="store_true", help="also run each runtime with Docker's seccomp profile")
    parser.add_argument("--mount-hugetlb", action="store_true",
                        help="mount the hugetlb v1 hierarchy for the run, so that crun accepts hybrid cgroups")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


def variants(seccomp):
    """(suffix, seccomp profile) pairs to run; notes about variants that cannot run."""
    plain = [("", None)]
    if not seccomp:
        return plain, []
    profile = containers.seccomp_profile()
    if profile is None:
        return plain, ["--seccomp skipped: src/vessel/runtime/data/seccomp_default.json does not exist yet"]
    return plain + [("+seccomp", profile)], []


def build_contenders(workspace, seccomp):
    """A Contender per runtime and variant; ones that fail their check run are marked failed."""
    pairs, notes = variants(seccomp)
    contenders = []
    for suffix, profile in pairs:
        for runtime in workspace.runtimes:
            config = containers.base_config(workspace.rootfs)
            if profile is not None:
                config["linux"]["seccomp"] = profile
            run = containers.ContainerRun(workspace, runtime, runtime.name + suffix, config)
            contender = run.contender()
            if contender.active:
                reason = run.check()
                if reason:
                    contender.fail(reason)
            contenders.append(contender)
    return contenders, notes


def seccomp_costs(rows):
    """'<runtime>: seccomp adds N ms' for each runtime measured with and without the profile."""
    medians = {row["name"]: row["median"] for row in rows if row["median"] is not None}
    return [f"{name}: seccomp adds {(medians[name + '+seccomp'] - median) * 1000:+.1f} ms (median difference)"
            for name, median in medians.items() if name + "+seccomp" in medians]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    harness.terminate_as_interrupt()
    try:
        with containers.Workspace(mount_hugetlb=args.mount_hugetlb) as workspace:
            info = harness.machine_info({rt.name: rt.version() for rt in workspace.runtimes})
            contenders, notes = build_contenders(workspace, args.seccomp)
            rows = harness.run_interleaved(contenders, args.runs, args.warmup, progress=_progress)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    harness.add_ratios(rows, args.baseline)
    print(harness.format_machine(info))
    print(f"run of /bin/true, busybox rootfs, Docker's default config; "
          f"{args.runs} samples each after {args.warmup} warm-up rounds, interleaved")
    print(harness.format_table(rows, args.baseline))
    for line in seccomp_costs(rows) + notes:
        print(line)
    if args.json:
        harness.write_json(args.json, {"benchmark": "runtime_start", "machine": info, "runs": args.runs,
                                       "warmup": args.warmup, "baseline": args.baseline,
                                       "seccomp": args.seccomp, "notes": notes, "results": rows})
    return 0


def _progress(done, total):
    if sys.stderr.isatty():
        print(f"\rround {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
