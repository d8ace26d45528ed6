"""The fast parser of `run` and `create` (vessel.cli.runflags) against click's parsing of the same table."""

import click
import pytest

from vessel.cli import runflags
from vessel.cli.containers import create, run
from vessel.cli.main import DEFAULT_ROOT, DEFAULT_RUNROOT, _click_group

SAMPLE_VALUE = {runflags.VALUE: "x=1", runflags.INT: "-7", runflags.MULTIPLE: "a:b"}


def click_params(command, args):
    """What click passes to the command's function for `args`, or None if click refuses them."""
    try:
        with command.make_context(command.name, list(args), resilient_parsing=False) as ctx:
            return ctx.params
    except (click.exceptions.ClickException, click.exceptions.Exit):
        return None


def assert_same(command, flags, args):
    fast = runflags.parse(flags, list(args))
    assert fast is not None, args
    assert fast == click_params(command, args), args


def flag_arguments(flag, name):
    """Command-line arguments giving `flag` by `name`, every way click accepts."""
    if flag.kind in (runflags.FLAG, runflags.SWITCH):
        return [[name]]
    value = SAMPLE_VALUE[flag.kind]
    forms = [[name, value], [name, value, name, "2"]]
    if name.startswith("--"):
        forms.append([f"{name}={value}"])
    else:
        forms.append([f"{name}{value}"])
    return forms


@pytest.mark.parametrize("command,flags", [(run, runflags.RUN_FLAGS), (create, runflags.CREATE_FLAGS)],
                         ids=["run", "create"])
def test_every_flag_parses_as_click_parses_it(command, flags):
    assert_same(command, flags, ["busybox"])
    for flag in flags:
        for name in flag.decls:
            for args in flag_arguments(flag, name):
                assert_same(command, flags, [*args, "busybox", "true"])


def test_the_click_command_has_exactly_the_table():
    params = {p.name for p in run.params if isinstance(p, click.Option)}
    assert params == {flag.dest for flag in runflags.RUN_FLAGS}
    assert [p.name for p in run.params if isinstance(p, click.Argument)] == ["image", "command"]


@pytest.mark.parametrize("args", [
    ["--rm", "--network", "none", "busybox", "true"],
    ["-it", "--rm", "busybox", "sh", "-c", "echo hi", "--rm"],
    ["-dit", "-eA=1", "-e", "B=2", "--env=C=3", "busybox"],
    ["-e=X", "-hhost", "-u0:0", "busybox", "-d"],
    ["--name", "--rm", "busybox"],
    ["--", "busybox", "--help"],
    ["--no-sig-proxy", "--sig-proxy", "--no-sig-proxy", "-", "x"],
    ["-c", " 12", "--pids-limit=+3", "busybox"],
    ["", "true"],
    ["-p", "80:80", "-P", "--publish=81", "-v/a:/b", "busybox", "--", "x"],
])
def test_command_lines_parse_as_click_parses_them(args):
    assert_same(run, runflags.RUN_FLAGS, args)


@pytest.mark.parametrize("args", [
    [], ["--rm"], ["--help", "busybox"], ["--bogus", "busybox"], ["-x", "busybox"], ["-iX", "busybox"],
    ["--rm=yes", "busybox"], ["--name"], ["-e"], ["--pids-limit", "many", "busybox"], ["-c1.5", "busybox"],
    ["--no-sig-proxy=1", "busybox"],
])
def test_what_click_must_handle_is_left_to_it(args):
    assert runflags.parse(runflags.RUN_FLAGS, args) is None
    if args != ["--help", "busybox"]:
        assert click_params(run, args) is None, args


@pytest.mark.parametrize("argv", [
    ["run", "busybox"], ["--root", "/r", "run", "busybox"], ["--root=/r", "--runroot", "/x", "create", "busybox"],
    ["--runroot=", "run", "busybox"],
])
@pytest.mark.parametrize("environment", [{}, {"VESSEL_ROOT": "/env/root", "VESSEL_RUNROOT": "/env/run"},
                                         {"VESSEL_ROOT": ""}])
def test_root_options_and_environment_as_click_reads_them(argv, environment, monkeypatch):
    for name in ("VESSEL_ROOT", "VESSEL_RUNROOT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _, root, runroot, params = runflags.parse_command_line(argv, DEFAULT_ROOT, DEFAULT_RUNROOT)
    with _click_group().make_context("vessel", list(argv)) as ctx:
        assert (root, runroot) == (ctx.params["root"], ctx.params["runroot"])
    assert params["image"] == "busybox"


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["-h", "run", "busybox"], ["--version"], ["ps"], ["--root"], ["--bogus", "run", "busybox"],
    ["container", "run", "busybox"], ["run", "--help"], ["run"],
])
def test_other_command_lines_go_to_click(argv):
    assert runflags.parse_command_line(argv, DEFAULT_ROOT, DEFAULT_RUNROOT) is None
