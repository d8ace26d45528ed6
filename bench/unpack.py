"""Layer unpacking: vessel's apply_layer vs GNU tar, on a tmpfs.

The layer is generated: 20 000 regular files of random size (0-4 KiB, seeded,
so every run unpacks the same bytes) in nested directories, written once as
an uncompressed tar and as a gzip-ed copy. Each sample unpacks it into a
fresh, empty directory on a tmpfs mounted for the run (so the disk is out of
the picture); the previous sample's directory is removed, untimed, before.

vessel runs as a process too (`python -I -c "apply_layer(...)"`: interpreter
start and imports are in its time), with overlay whiteouts as the overlay
snapshotter uses it, checking the diff_id; `tar -xf` / `tar -xzf` run as root,
so both restore owners and modes.

    /opt/vessel/venv/bin/python bench/unpack.py --runs 15 [--files 20000] [--json out.json]
"""

import argparse
import gzip
import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile

import harness

VESSEL_CODE = ("import sys; from vessel.image.unpack import apply_layer; "
               "apply_layer(sys.argv[1], sys.argv[2], expected_diff_id=sys.argv[3])")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="samples per contender (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--files", type=int, default=20000, help="files in the layer (default 20000)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.files < 1:
        parser.error("--runs and --files must be >= 1, --warmup >= 0")
    return args


def make_layer(path, files, seed=20000):
    """Write a tar of `files` small files in nested dirs to `path`; returns its sha256 diff_id.

    Members come in directory-walk order (a directory, its files, its subdirectories), as
    `tar -c` or an image builder writes them.
    """
    rng = random.Random(seed)
    tree = {}  # directory -> [(name, data, mode)]
    for index in range(files):
        directory = "/".join(f"d{rng.randint(0, 5)}" for _ in range(rng.randint(1, 4)))
        data = rng.randbytes(rng.randint(0, 4096) // 2) * 2  # half random: gzip has work to do
        tree.setdefault(directory, []).append((f"file{index:05d}.dat", data, rng.choice((0o644, 0o755, 0o600))))
        while "/" in directory:
            directory = directory.rpartition("/")[0]
            tree.setdefault(directory, [])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(tree, key=lambda d: d.split("/")):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tar.addfile(info)
            for name, data, mode in tree[directory]:
                info = tarfile.TarInfo(f"{directory}/{name}")
                info.size, info.mode, info.mtime = len(data), mode, 1700000000
                tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    with open(path, "wb") as out:
        out.write(data)
    with open(path + ".gz", "wb") as out:
        out.write(gzip.compress(data, compresslevel=6, mtime=0))
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Workspace:
    """A temp dir with a tmpfs mounted on it; unmounted and removed on exit."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="vessel-bench-unpack-")
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,mode=0700", "tmpfs", self.path], check=True)
        except BaseException:
            os.rmdir(self.path)
            raise
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", self.path], check=False)
        os.rmdir(self.path)


def contenders(space, layer, diff_id):
    """vessel and GNU tar, for the plain and the gzip-ed layer."""
    def fresh(name):
        def prepare(iteration):
            target = os.path.join(space, name)
            shutil.rmtree(target, ignore_errors=True)
            os.mkdir(target, 0o755)
        return prepare

    def target(name):
        return os.path.join(space, name)

    python = sys.executable
    result = []
    for suffix, source, tar_flags in (("", layer, "-xf"), ("+gzip", layer + ".gz", "-xzf")):
        result.append(harness.Contender(
            "vessel" + suffix, [python, "-I", "-c", VESSEL_CODE, source, target("vessel" + suffix), diff_id],
            prepare=fresh("vessel" + suffix)))
        result.append(harness.Contender(
            "tar" + suffix, ["tar", "--same-owner", "-p", "-C", target("tar" + suffix), tar_flags, source],
            prepare=fresh("tar" + suffix)))
    return result


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    harness.terminate_as_interrupt()
    try:
        with Workspace() as space:
            layer = os.path.join(space.path, "layer.tar")
            diff_id = make_layer(layer, args.files)
            sizes = os.path.getsize(layer), os.path.getsize(layer + ".gz")
            info = harness.machine_info({"tar": harness.program_version(["tar", "--version"]),
                                         "gzip": harness.program_version(["gzip", "--version"])})
            rows = harness.run_interleaved(contenders(space.path, layer, diff_id), args.runs, args.warmup,
                                           progress=_progress)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    for baseline in ("tar", "tar+gzip"):
        suffix = baseline[3:]
        pair = [row for row in rows if row["name"] in ("vessel" + suffix, baseline)]
        harness.add_ratios(pair, baseline)
    print(harness.format_machine(info))
    print(f"unpack of {args.files} files (0-4 KiB, nested dirs) on tmpfs: layer {sizes[0] / 1e6:.1f} MB, "
          f"gzip {sizes[1] / 1e6:.1f} MB; {args.runs} samples each after {args.warmup} warm-up rounds, "
          "interleaved; ratio against tar of the same input")
    print(harness.format_table(rows, "tar"))
    if args.json:
        harness.write_json(args.json, {"benchmark": "unpack", "machine": info, "runs": args.runs,
                                       "warmup": args.warmup, "files": args.files, "layer_bytes": sizes[0],
                                       "gzip_bytes": sizes[1], "results": rows})
    return 0


def _progress(done, total):
    if sys.stderr.isatty():
        print(f"\rround {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
