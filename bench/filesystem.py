"""A container's filesystem (issue #5): `cp` in and out and `commit`, vessel against podman.

Each engine gets the busybox image and two created (never started)
containers, `box` and `snap`, each with a copy of a tree of --files small files
(sizes 0..--file-kb KiB, in 10 directories) made once on the host. Timed,
interleaved, ratios of medians against podman:

  cp in     `cp TREE box:/inI`        (a new target each time: Docker's "missing target" rule)
  cp out    `cp box:/in0 OUT/I`       (the tree copied in before)
  commit    `commit snap imageI`      (its only change: the tree)

Everything made is removed at the end (also on Ctrl-C or SIGTERM): containers,
images, podman's storage, mounts below the temp dir, cgroups.

    /opt/vessel/venv/bin/python bench/filesystem.py [--runs 10] [--files 2000] [--json F]
"""

import os
import sys

import engine as engines  # its Bench and engines (and it puts src/ and tests/ on sys.path)
import harness


def parse_args(argv):
    parser = engines.arguments(__doc__.splitlines()[0], runs=10, warmup=1)
    parser.add_argument("--files", type=int, default=2000, help="files in the copied tree (default 2000)")
    parser.add_argument("--file-kb", type=int, default=16, help="largest file size in KiB (default 16)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.files < 1 or args.file_kb < 0:
        parser.error("--runs and --files must be >= 1, --warmup and --file-kb >= 0")
    return args


def make_tree(path, files, file_kb):
    """`files` files of 0..file_kb KiB (a fixed pattern) in 10 directories; returns the total bytes."""
    total = 0
    for i in range(files):
        directory = os.path.join(path, f"d{i % 10}")
        os.makedirs(directory, exist_ok=True)
        data = bytes([i % 251]) * ((i * 997) % (file_kb * 1024 + 1))
        with open(os.path.join(directory, f"f{i}"), "wb") as handle:
            handle.write(data)
        total += len(data)
    return total


def contenders(vessel, podman, tree, out):
    """(title, [Contender]) for each part; podman's are left out when it is not working."""
    present = [vessel] + ([podman] if podman is not None else [])

    def cp_in(e):
        return lambda i: e.command("cp", tree, f"box:/in{i + 1}")

    def cp_out(e):
        return lambda i: e.command("cp", "box:/in0", os.path.join(out, e.name, str(i)))

    def commit(e):
        return lambda i: e.command("commit", "snap", f"bench-commit-{i}")

    return [(title, [harness.Contender(e.name, make(e), program=e.program) for e in present])
            for title, make in (("cp in", cp_in), ("cp out", cp_out), ("commit", commit))]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return engines.run_benchmark("filesystem", args, measure)


def measure(bench, args, report, output):
    """Both engines with `box` and `snap` made, then the three parts, interleaved."""
    vessel = bench.vessel("vessel")
    vessel.load_image(bench.rootfs_tar)
    podman = bench.podman(args.podman_runtime)
    tree = os.path.join(bench.dir, "tree")
    size = make_tree(tree, args.files, args.file_kb)
    out = os.path.join(bench.dir, "out")
    for engine in filter(None, (vessel, podman)):
        os.makedirs(os.path.join(out, engine.name))
        for name in ("box", "snap"):
            engine.sh("create", "--name", name, "--network", "none", engine.image, "true")
            engine.sh("cp", tree, f"{name}:/in0")
    output.append(f"a tree of {args.files} files, {size / 1e6:.1f} MB, into and out of a created container; "
                  f"{args.runs} samples each after {args.warmup} warm-up rounds, interleaved")
    report["tree"] = {"files": args.files, "bytes": size}
    baseline = "podman" if podman is not None else "vessel"
    for title, group in contenders(vessel, podman, tree, out):
        rows = harness.run_interleaved(group, args.runs, args.warmup, timeout=300)
        harness.add_ratios(rows, baseline)
        report[title] = {"rows": rows}
        output += ["", f"`{title}`", harness.format_table(rows, baseline)]
    versions = {"vessel": vessel.version(), "podman": harness.program_version(["podman", "--version"])}
    report["machine"] = harness.machine_info(versions)


if __name__ == "__main__":
    sys.exit(main())
