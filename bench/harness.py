"""A small benchmark harness: interleaved wall-clock samples, statistics, a table.

Contenders run side by side in one process, interleaved per round
(A B C A B C ...), so that machine noise (other jobs, frequency scaling, page
cache) falls on all of them alike. hyperfine (if installed) is not used: it
runs each command's samples back to back and cannot interleave them. Each
sample is time.perf_counter() around one subprocess.run(); the untimed
`prepare` hook of a contender runs before it (e.g. to write a config).

A contender whose program is missing is reported as "not installed"; one that
fails is dropped from the rounds and reported with its stderr, not raised.
"""

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import time

__all__ = ["Contender", "summarize", "percentile", "add_ratios", "run_interleaved", "machine_info",
           "program_version", "format_table", "plain_table", "write_json", "print_report",
           "terminate_as_interrupt", "clear_python_environment"]

NOT_INSTALLED = "not installed"
OK = "ok"


class Contender:
    """One command under test.

    `argv(i)` returns the command of iteration i (a new container id each time);
    `prepare(i)`, if given, runs untimed just before it. `program` is the
    executable whose absence means "not installed" (argv[0] by default).
    """

    __slots__ = ("name", "argv", "prepare", "program", "status", "detail", "samples")

    def __init__(self, name, argv, prepare=None, program=None):
        self.name = name
        self.argv = argv if callable(argv) else (lambda i, fixed=list(argv): fixed)
        self.prepare = prepare
        self.program = program or self.argv(0)[0]
        self.samples = []
        self.detail = ""
        self.status = OK if resolve(self.program) else NOT_INSTALLED

    @property
    def active(self):
        return self.status == OK

    def fail(self, detail):
        self.status, self.detail = "failed", detail.strip()


def resolve(program):
    """The path of `program` (a name looked up in PATH, or a path), or None."""
    if os.sep in program:
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program)


def percentile(samples, q):
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples):
    """median, p90, min, mean and count of a list of seconds (None values if empty)."""
    if not samples:
        return {"n": 0, "median": None, "p90": None, "min": None, "mean": None}
    return {"n": len(samples), "median": statistics.median(samples), "p90": percentile(samples, 90),
            "min": min(samples), "mean": statistics.fmean(samples)}


def add_ratios(rows, baseline, key="median"):
    """Set row["ratio"] = row[key] / baseline's row[key] (None when either is missing)."""
    base = next((row.get(key) for row in rows if row["name"] == baseline), None)
    for row in rows:
        value = row.get(key)
        row["ratio"] = value / base if value is not None and base else None
    return rows


def _run_once(contender, iteration, timeout):
    if contender.prepare is not None:
        contender.prepare(iteration)
    argv = contender.argv(iteration)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=timeout)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip() or "(no stderr)"
        contender.fail(f"exit {proc.returncode}: {stderr}")
        return None
    return elapsed


def run_interleaved(contenders, runs, warmup=3, timeout=60, progress=None):
    """Warm up, then take `runs` samples of each active contender, one per round.

    Returns the rows of `summarize` plus name, status and detail, in order.
    """
    iteration = 0
    for round_ in range(warmup + runs):
        for contender in contenders:
            if not contender.active:
                continue
            try:
                elapsed = _run_once(contender, iteration, timeout)
            except subprocess.TimeoutExpired:
                contender.fail(f"timed out after {timeout}s")
                elapsed = None
            iteration += 1
            if elapsed is not None and round_ >= warmup:
                contender.samples.append(elapsed)
        if progress is not None:
            progress(round_ + 1, warmup + runs)
    return [result_row(c) for c in contenders]


def result_row(contender):
    row = {"name": contender.name, "status": contender.status, "detail": contender.detail}
    row.update(summarize(contender.samples))
    row["samples"] = contender.samples
    return row


def program_version(argv):
    """The first line of `argv` (e.g. `runc --version`), or "not installed"."""
    if not resolve(argv[0]):
        return NOT_INSTALLED
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def machine_info(versions):
    """The machine a result was taken on: CPUs, CPU model, kernel, Python, peers' versions."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": os.cpu_count(),
            "cpu": model, "kernel": platform.release(), "python": platform.python_version(),
            "load": [round(x, 2) for x in os.getloadavg()], "versions": dict(versions)}


def format_machine(info):
    lines = [f"machine: {info['nproc']} CPUs ({info['cpu'] or 'unknown CPU'}), kernel {info['kernel']}, "
             f"Python {info['python']}, load {' '.join(map(str, info['load']))}, {info['date']}"]
    lines += [f"  {name}: {version}" for name, version in info["versions"].items()]
    return "\n".join(lines)


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def format_table(rows, baseline):
    """A plain-text table: name, median, p90, min, ratio vs baseline; failures with their reason."""
    header = ("contender", "median", "p90", "min", f"vs {baseline}")
    body = []
    notes = []
    for row in rows:
        if row["status"] == OK:
            ratio = "-" if row.get("ratio") is None else f"{row['ratio']:.2f}x"
            body.append((row["name"], _ms(row["median"]), _ms(row["p90"]), _ms(row["min"]), ratio))
        else:
            body.append((row["name"], row["status"], "", "", ""))
            if row["detail"]:
                notes.append(f"{row['name']} {row['status']}: {row['detail']}")
    return "\n".join([plain_table([header, *body])] + notes)


def plain_table(rows):
    """Rows of strings (the first a header) as aligned columns: the first left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             .rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path, report):
    """Write `report` as indented JSON (tmp + rename, so a reader never sees half of it)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def print_report(report, output, json_path=None):
    """Print the machine and the lines of `output`; write `report` to `json_path` if given."""
    print(format_machine(report["machine"]))
    print("\n".join(output))
    if json_path:
        write_json(json_path, report)


def clear_python_environment():
    """Drop PYTHON* variables, so that the engines run as from a user's shell (some are Python programs)."""
    for name in [key for key in os.environ if key.startswith("PYTHON")]:
        del os.environ[name]


def terminate_as_interrupt():
    """Make SIGINT (even if inherited as ignored) and SIGTERM raise KeyboardInterrupt, so clean-ups run."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)
