"""What the container benchmarks share: runtimes, a busybox bundle, cgroup paths, clean-up.

Every runtime gets its own --root in one temporary directory; every
container's cgroup goes below this process's own cgroups, under a directory
named after this process (vessel-bench-<pid>), which `Workspace.close()`
removes with everything else, also after Ctrl-C.

Relative linux.cgroupsPath: vessel-runtime and runc put it below the caller's
own cgroup in every hierarchy. crun 1.8 puts it below the hierarchy's root
(/sys/fs/cgroup/memory/vessel-bench-..., outside our memory cgroup), so crun is
given an absolute path below our deepest own cgroup instead.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "src"))

import helpers  # noqa: E402  (tests/helpers.py: the busybox rootfs and Docker's default config)
from vessel.runtime import defaults  # noqa: E402
from vessel.runtime.entrypoint import write_launcher  # noqa: E402

import harness  # noqa: E402

CRUN_HYBRID_HINT = ("crun refuses hybrid cgroups while cgroup2 still offers a controller; "
                    "mounting the hugetlb v1 hierarchy fixes it: rerun with --mount-hugetlb")
HUGETLB = "/sys/fs/cgroup/hugetlb"


class Runtime:
    """An OCI runtime binary and the --root it uses in this benchmark."""

    __slots__ = ("name", "program", "root", "absolute_cgroups")

    def __init__(self, name, program, root, absolute_cgroups=False):
        self.name, self.program, self.root, self.absolute_cgroups = name, program, root, absolute_cgroups

    def command(self, *args):
        return [self.program, "--root", self.root, *args]

    @property
    def installed(self):
        return harness.resolve(self.program) is not None

    def version(self):
        return harness.program_version([self.program, "--version"])


def seccomp_profile():
    """Docker's default seccomp profile (vessel's copy), or None if vessel does not ship it yet."""
    return defaults.default_seccomp()


def base_config(rootfs, args=("/bin/true",)):
    """Docker's default config without seccomp, for a rootfs given by absolute path."""
    cfg = helpers.default_config(args)
    cfg["ociVersion"] = "1.0.2"  # crun 1.8 refuses any version without "1.0" in it
    cfg["root"]["path"] = rootfs
    return cfg


class CgroupScope:
    """This process's own cgroup in each mounted hierarchy, and the benchmark's cgroups below them."""

    def __init__(self, name):
        self.name = name
        self.own = own_cgroup_dirs()  # [(hierarchy mountpoint, own cgroup path)]
        paths = sorted({path for _, path in self.own}, key=len)
        self.deepest = paths[-1] if paths else "/"
        if any(not _is_ancestor(p, self.deepest) for p in paths):
            raise SystemExit(f"own cgroups are not nested ({', '.join(paths)}): no absolute path fits all")
        self._made_before = {d for d in self._absolute_chain() if os.path.isdir(d)}

    def path(self, container_id, absolute):
        """linux.cgroupsPath for one container: relative, or absolute below our deepest cgroup."""
        relative = f"{self.name}/{container_id}"
        return f"{self.deepest.rstrip('/')}/{relative}" if absolute else relative

    def host_dirs(self, container_id=""):
        """Where `<name>/<container_id>` lands in every hierarchy, given as a relative or an absolute path."""
        relative = os.path.join(self.name, container_id)
        found = {os.path.normpath(os.path.join(mount, base.strip("/"), relative))
                 for mount, own in self.own for base in (own, self.deepest)}
        return sorted(found)

    def memory_limit_of(self, container_id):
        """The memory limit the kernel holds for a running container's cgroup (bytes), or None."""
        for directory in self.host_dirs(container_id):
            for name in ("memory.limit_in_bytes", "memory.max"):
                try:
                    with open(os.path.join(directory, name)) as f:
                        return int(f.read())
                except (OSError, ValueError):
                    continue
        return None

    def _absolute_chain(self):
        """Directories an absolute path below `deepest` may create, in every hierarchy."""
        parts = [p for p in self.deepest.split("/") if p] + [self.name]
        return [os.path.join(mount, *parts[:i]) for mount, _ in self.own for i in range(1, len(parts) + 1)]

    def close(self):
        """Remove every cgroup of the benchmark (killing what is left inside) and new parents."""
        for top in self.host_dirs():
            remove_cgroup_tree(top)
        for directory in sorted(self._absolute_chain(), key=len, reverse=True):
            if directory not in self._made_before and os.path.isdir(directory):
                try:
                    os.rmdir(directory)
                except OSError:
                    pass  # not empty: someone else uses it


def _is_ancestor(parent, child):
    return parent == "/" or child == parent or child.startswith(parent.rstrip("/") + "/")


def own_cgroup_dirs():
    """[(mountpoint, own path)] for every mounted cgroup hierarchy, from /proc/self/{cgroup,mountinfo}."""
    mounts = []  # (superoptions set or None for cgroup2, mount root, mountpoint)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            tail = fields[fields.index("-") + 1:]
            if tail[0] == "cgroup2":
                mounts.append((None, fields[3], fields[4]))
            elif tail[0] == "cgroup":
                mounts.append((set(tail[2].split(",")), fields[3], fields[4]))
    found = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            wanted = set(controllers.split(",")) if controllers else None
            for options, root, mountpoint in mounts:
                matches = options is None if wanted is None else options is not None and wanted <= options
                if matches and _is_ancestor(root, path):
                    found.append((mountpoint, path))
                    break
    return found


def remove_cgroup_tree(top):
    """rmdir a cgroup and its children, bottom up, SIGKILLing processes still inside."""
    if not os.path.isdir(top):
        return
    for directory, _, _ in sorted(os.walk(top), key=lambda entry: len(entry[0]), reverse=True):
        for attempt in range(50):
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError:
                _kill_members(directory)
                time.sleep(0.02)
        else:
            print(f"warning: could not remove cgroup {directory}", file=sys.stderr)


def _kill_members(directory):
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            pids = [int(line) for line in f if line.strip()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Workspace:
    """A temp dir with the busybox rootfs, the vessel launcher, the runtimes and the cgroup scope.

    Use as a context manager: leaving it deletes leftover containers, the
    cgroups, the temp dir and (if this run mounted it) the hugetlb hierarchy.
    """

    def __init__(self, mount_hugetlb=False):
        self.mounted_hugetlb = False
        self.dir = tempfile.mkdtemp(prefix="vessel-bench-")
        # the runtimes' state goes where it lives in production (runc's default is
        # /run/runc): on tmpfs, not on the disk under /tmp
        self.state_dir = tempfile.mkdtemp(prefix="vessel-bench-", dir="/run")
        try:
            if mount_hugetlb:
                self._mount_hugetlb()
            self.rootfs = helpers.make_busybox_rootfs(os.path.join(self.dir, "rootfs"))
            launcher = os.path.join(self.dir, "vessel-runtime")
            write_launcher(launcher, sys.executable)
            self.runtimes = [Runtime("vessel-runtime", launcher, self._root("vessel-runtime")),
                             Runtime("runc", "runc", self._root("runc")),
                             Runtime("crun", "crun", self._root("crun"), absolute_cgroups=True)]
            self.cgroups = CgroupScope(f"vessel-bench-{os.getpid()}")
        except BaseException:
            self.close()
            raise

    def _root(self, name):
        path = os.path.join(self.state_dir, "root-" + name)
        os.mkdir(path)
        return path

    def _mount_hugetlb(self):
        if os.path.ismount(HUGETLB):
            return
        os.makedirs(HUGETLB, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", HUGETLB],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"warning: could not mount {HUGETLB}: {proc.stderr.strip()}", file=sys.stderr)
            try:
                os.rmdir(HUGETLB)
            except OSError:
                pass
            return
        self.mounted_hugetlb = True

    def bundle(self, name, config):
        """A bundle dir holding only config.json (root.path points at the shared rootfs)."""
        path = os.path.join(self.dir, "bundle-" + name)
        os.makedirs(path, exist_ok=True)
        write_config(path, config)
        return path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for runtime in getattr(self, "runtimes", ()):
            delete_all(runtime)
        if getattr(self, "cgroups", None) is not None:
            self.cgroups.close()
        subprocess.run(["rm", "-rf", "--one-file-system", self.dir, self.state_dir], check=False)
        if self.mounted_hugetlb:
            self._unmount_hugetlb()

    def _unmount_hugetlb(self):
        """Undo --mount-hugetlb, unless others have made cgroups in it meanwhile."""
        self.mounted_hugetlb = False
        if any(entry.is_dir() for entry in os.scandir(HUGETLB)):
            print(f"note: {HUGETLB} left mounted: other cgroups now live in it", file=sys.stderr)
            return
        subprocess.run(["umount", HUGETLB], check=False)
        try:
            os.rmdir(HUGETLB)
        except OSError:
            pass


def write_config(bundle, config):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)


def delete_all(runtime):
    """Force-delete whatever containers are left in this runtime's --root."""
    if not runtime.installed or not os.path.isdir(runtime.root):
        return
    for container_id in os.listdir(runtime.root):
        subprocess.run(runtime.command("delete", "--force", container_id),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)


class ContainerRun:
    """`RUNTIME run` of a bundle whose config gets a new container id and cgroup every iteration."""

    def __init__(self, workspace, runtime, label, config):
        self.workspace, self.runtime, self.label = workspace, runtime, label
        self.config = copy.deepcopy(config)
        self.bundle = workspace.bundle(label, self.config)

    def container_id(self, iteration):
        return f"{self.label}-{iteration}"

    def prepare(self, iteration):
        cgroups = self.workspace.cgroups
        self.config["linux"]["cgroupsPath"] = cgroups.path(self.container_id(iteration),
                                                           self.runtime.absolute_cgroups)
        write_config(self.bundle, self.config)

    def argv(self, iteration):
        return self.runtime.command("run", "--bundle", self.bundle, self.container_id(iteration))

    def contender(self):
        return harness.Contender(self.label, self.argv, self.prepare, program=self.runtime.program)

    def check(self):
        """Run once; None if it works, else the reason (stderr, with a hint for crun's cgroup refusal)."""
        self.prepare("check")
        proc = subprocess.run(self.argv("check"), stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if proc.returncode == 0:
            return None
        reason = f"exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip() or '(no stderr)'}"
        if "hybrid mode not supported" in reason:
            reason += f" [{CRUN_HYBRID_HINT}]"
        return reason
