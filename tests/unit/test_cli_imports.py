"""The `vessel` command's container paths stay lean: no registry client, HTTP stack or archive code.

The installed command is the -IS launcher (vessel.runtime.entrypoint.write_cli_launcher);
these run the CLI the same way, isolated and without site, on a state root of their own.
"""

import os
import subprocess
import sys
import sysconfig

from helpers import SRC

# modules only pulls, pushes, logins, save/load/import and networks with bridges need
SLOW = ("httpx", "httpcore", "h11", "anyio", "sniffio", "certifi", "ssl", "http", "urllib", "email", "tarfile",
        "gzip", "zstandard", "pyroute2", "asyncio", "logging", "argparse", "xml", "vessel.image.registry",
        "vessel.image.archive", "vessel.image.unpack", "vessel.network")

# what `run` uses besides what the command itself imports: attach, start and the monitor
RUN_MODULES = ("vessel.api", "vessel.engine.core", "vessel.engine.attach", "vessel.engine.monitor",
               "vessel.image.store")


def cli_modules(tmp_path, *argv, extra=(), code=None):
    """sys.modules after `vessel ARGV` (its exit code checked if `code` is given), run as the launcher runs it."""
    paths = [SRC, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    script = (f"import sys, importlib; sys.path[:0] = {paths!r}\n"
              "from vessel.cli.main import main\n"
              f"code = main(['--root', {str(tmp_path / 'root')!r}, '--runroot', {str(tmp_path / 'run')!r}, "
              f"*{list(argv)!r}])\n"
              f"for name in {list(extra)!r}:\n"
              "    importlib.import_module(name)\n"
              "print(code, ' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    exit_code, *modules = out.stderr.splitlines()[-1].split()
    assert code is None or int(exit_code) == code, out.stderr
    return set(modules)


def slow_ones(modules):
    return sorted(m for m in modules if any(m == s or m.startswith(s + ".") for s in SLOW))


def test_run_path_is_lean(tmp_path):
    # the image is missing (and not pulled): option parsing, the API and the image lookup run
    modules = cli_modules(tmp_path, "run", "--rm", "--pull", "never", "--network", "none", "nosuchimage", "true",
                          extra=RUN_MODULES)
    assert "vessel.cli.runner" in modules and "vessel.image.store" in modules
    assert slow_ones(modules) == []
    assert "click" not in modules  # a plain `run` is parsed by vessel.cli.runflags
    assert {"dataclasses", "inspect", "typing"}.isdisjoint(modules)  # records are vessel.records ones


def test_run_help_and_errors_still_go_through_click(tmp_path):
    for argv, code in ((["run", "--help"], 0), (["run", "--bogus", "busybox"], 125), (["create"], 125)):
        modules = cli_modules(tmp_path, *argv, code=code)
        assert "click" in modules and "vessel.cli.containers" in modules, argv


def test_a_real_run_is_lean(tmp_path, names):
    from peers import busybox_tar, remove_cgroup_tree

    tarball = busybox_tar(str(tmp_path / "busybox.tar"))
    modules = cli_modules(tmp_path, "import", tarball, "busybox")
    assert "tarfile" in modules  # import itself needs the archive code
    cgroup = names("cg")
    try:
        modules = cli_modules(tmp_path, "run", "--rm", "--network", "none", "--cgroup-parent", cgroup, "busybox",
                              "true", code=0)
    finally:
        remove_cgroup_tree(cgroup)
    assert slow_ones(modules) == []
    assert "click" not in modules


def test_ps_rm_start_stop_paths_are_lean(tmp_path):
    for argv in (["ps", "-a"], ["rm", "-f", "nosuch"], ["start", "nosuch"], ["stop", "nosuch"],
                 ["inspect", "nosuch"]):
        modules = cli_modules(tmp_path, *argv)
        assert "vessel.engine.core" in modules, argv
        assert slow_ones(modules) == [], argv


def test_installed_launcher_runs_the_cli(tmp_path):
    from vessel.runtime.entrypoint import write_cli_launcher

    launcher = str(tmp_path / "vessel")
    write_cli_launcher(launcher)
    with open(launcher) as f:
        assert f.readline() == f"#!{sys.executable} -IS\n"
    env = {k: v for k, v in os.environ.items() if k not in ("VESSEL_ROOT", "VESSEL_RUNROOT")}
    proc = subprocess.run([launcher, "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"),
                           "ps", "-a"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    proc = subprocess.run([launcher, "--root", str(tmp_path / "root"), "rm", "nosuch"], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL)
    assert (proc.returncode, proc.stderr) == (125, "Error: No such container: nosuch\n")
