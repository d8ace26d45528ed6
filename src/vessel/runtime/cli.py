"""vessel-runtime's command line: runc's verbs, flags, JSON output and exit codes.

Arguments are parsed by a small table-driven parser rather than argparse:
argparse costs about 5 ms to import, a fifth of the whole start-up budget, and
runc's flag syntax (urfave/cli: `-flag`, `--flag`, `--flag=value`, booleans
given as `--flag=false`) is not argparse's anyway.
"""

import os
import sys

from vessel.errors import VesselError

__all__ = ["main", "run"]

DEFAULT_ROOT = "/run/vessel-runtime"
VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"

# Option kinds
FLAG, VALUE, MULTI = "flag", "value", "multi"

GLOBAL_OPTIONS = {
    "root": VALUE, "log": VALUE, "log-format": VALUE, "debug": FLAG, "systemd-cgroup": FLAG,
    "criu": VALUE, "rootless": VALUE, "version": FLAG, "v": "version", "help": FLAG, "h": "help",
}

_CREATE = {"bundle": VALUE, "b": "bundle", "console-socket": VALUE, "pid-file": VALUE,
           "no-pivot": FLAG, "no-new-keyring": FLAG, "preserve-fds": VALUE}
_EXEC = {"process": VALUE, "p": "process", "tty": FLAG, "t": "tty", "console-socket": VALUE,
         "detach": FLAG, "d": "detach", "pid-file": VALUE, "env": MULTI, "e": "env", "cwd": VALUE,
         "user": VALUE, "u": "user", "additional-gids": MULTI, "g": "additional-gids",
         "cap": MULTI, "c": "cap", "no-new-privs": FLAG, "preserve-fds": VALUE, "cgroup": MULTI,
         "process-label": VALUE, "apparmor": VALUE, "ignore-paused": FLAG}
_UPDATE = {"resources": VALUE, "r": "resources"} | {name: VALUE for name in (
    "blkio-weight", "cpu-period", "cpu-quota", "cpu-burst", "cpu-share", "cpu-rt-period",
    "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems", "memory", "memory-reservation",
    "memory-swap", "pids-limit", "l3-cache-schema", "mem-bw-schema")}

# verb -> (module, options, (min positional, max positional or None), usage)
VERBS = {
    "create": ("create", _CREATE, (1, 1), "create [--bundle DIR] [--console-socket PATH] [--pid-file PATH] ID"),
    "start": ("start", {}, (1, 1), "start ID"),
    "run": ("run", _CREATE | {"detach": FLAG, "d": "detach", "keep": FLAG}, (1, 1), "run [-d] [--bundle DIR] ID"),
    "state": ("state", {}, (1, 1), "state ID"),
    "kill": ("kill", {"all": FLAG, "a": "all"}, (1, 2), "kill [--all] ID [SIGNAL]"),
    "delete": ("delete", {"force": FLAG, "f": "force"}, (1, None), "delete [--force] ID..."),
    "exec": ("exec", _EXEC, (1, None), "exec [OPTIONS] ID [COMMAND ARGS...]"),
    "ps": ("ps", {"format": VALUE, "f": "format"}, (1, None), "ps [-f table|json] ID [PS ARGS...]"),
    "list": ("list", {"quiet": FLAG, "q": "quiet", "format": VALUE, "f": "format"}, (0, 0), "list [-q] [-f table|json]"),
    "pause": ("pause", {}, (1, 1), "pause ID"),
    "resume": ("pause", {}, (1, 1), "resume ID"),
    "update": ("update", _UPDATE, (1, 1), "update [--resources FILE|-] [flags] ID"),
    "features": ("features", {}, (0, 0), "features"),
    "spec": ("spec", {"bundle": VALUE, "b": "bundle", "rootless": FLAG}, (0, 0), "spec [--bundle DIR] [--rootless]"),
    "events": ("events", {"stats": FLAG, "interval": VALUE}, (1, 1), "events [--stats] [--interval 5s] ID"),
}

# runc's verbs with long options that stop option parsing at the first positional
_INTERSPERSED_STOP = {"exec", "ps"}


class UsageError(VesselError):
    category = "usage"


class Context:
    """Global options every verb receives."""

    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup", "verb")

    def __init__(self, opts):
        self.root = os.path.abspath(opts.get("root") or DEFAULT_ROOT)
        self.log = opts.get("log")
        self.log_format = opts.get("log-format") or "text"
        self.debug = bool(opts.get("debug"))
        self.systemd_cgroup = bool(opts.get("systemd-cgroup"))
        self.verb = None


def parse_options(argv, table, stop_at_positional=False):
    """Split argv into (options, positionals) following urfave/cli's rules."""
    opts, positionals = {}, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if len(arg) < 2 or not arg.startswith("-"):
            positionals.append(arg)
            if stop_at_positional:
                positionals.extend(argv[i:])
                break
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        kind = table.get(name)
        if isinstance(kind, str) and kind not in (FLAG, VALUE, MULTI):
            name, kind = kind, table[kind]
        if kind is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if kind == FLAG:
            if eq and value.lower() not in ("true", "false", "1", "0"):
                raise UsageError(f"invalid boolean value {value!r} for -{name}")
            opts[name] = (value.lower() in ("true", "1")) if eq else True
            continue
        if not eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if kind == MULTI:
            opts.setdefault(name, []).append(value)
        else:
            opts[name] = value
    return opts, positionals


def _split_global(argv):
    """Global options come before the verb."""
    for index, arg in enumerate(argv):
        if not arg.startswith("-"):
            return argv[:index], arg, argv[index + 1:]
        name = arg.lstrip("-").partition("=")[0]
        kind = GLOBAL_OPTIONS.get(name)
        if kind == VALUE and "=" not in arg:
            # skip the value too; the verb is the first word after it
            return _split_after_value(argv, index)
    return argv, None, []


def _split_after_value(argv, index):
    head, verb, rest = _split_global(argv[index + 2:])
    return argv[:index + 2] + head, verb, rest


def _usage():
    lines = ["usage: vessel-runtime [global options] COMMAND [options] ARGS", "", "commands:"]
    lines += [f"  {usage}" for _, _, _, usage in VERBS.values()]
    lines += ["", "global options: --root DIR --log FILE --log-format text|json --debug --systemd-cgroup --version"]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ctx = None
    try:
        global_argv, verb, rest = _split_global(argv)
        gopts, extra = parse_options(global_argv, GLOBAL_OPTIONS)
        ctx = Context(gopts)
        if gopts.get("version"):
            sys.stdout.write(f"vessel-runtime version {VERSION}\nspec: {SPEC_VERSION}\n")
            return 0
        if gopts.get("help") or verb in (None, "help"):
            sys.stdout.write(_usage() + "\n")
            return 0 if gopts.get("help") or verb == "help" else 1
        if gopts.get("log-format", "text") not in ("text", "json"):
            raise UsageError(f"invalid log format {gopts['log-format']!r}: use text or json")
        entry = VERBS.get(verb)
        if entry is None:
            raise UsageError(f"unknown command {verb!r}")
        ctx.verb = verb
        module_name, table, (low, high), usage = entry
        opts, args = parse_options(rest, table | {"help": FLAG, "h": "help"}, verb in _INTERSPERSED_STOP)
        if opts.get("help"):
            sys.stdout.write(f"usage: vessel-runtime {usage}\n")
            return 0
        if len(args) < low or (high is not None and len(args) > high):
            raise UsageError(f"{verb}: wrong number of arguments; usage: vessel-runtime {usage}")
        module = __import__(f"vessel.runtime.verbs.{module_name}", fromlist=["main"])
        return module.main(ctx, opts, args)
    except VesselError as exc:
        return _fail(ctx, str(exc))
    except OSError as exc:
        return _fail(ctx, _os_error_text(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line unless debugging
        if ctx is not None and ctx.debug:
            raise
        return _fail(ctx, f"internal error: {type(exc).__name__}: {exc}")


def run():
    """Entry point of the installed command: main(), then exit without teardown.

    The runtime holds no buffered state but stdio, and the interpreter's
    finalisation costs a few milliseconds on every call. The cyclic garbage
    collector is off for the same reason: a short-lived process.
    """
    import gc

    gc.disable()
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        code = code or 1
    os._exit(code)


def _os_error_text(exc):
    text = exc.strerror or str(exc)
    if exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text


def _fail(ctx, message):
    sys.stderr.write(f"vessel-runtime: {message}\n")
    if ctx is not None and ctx.log:
        log_line(ctx, "error", message)
    return 1


def log_line(ctx, level, message):
    """Append one line to --log in the requested format (runc's logrus shapes)."""
    from vessel.runtime import jsonio
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if ctx.log_format == "json":
        line = jsonio.dumps({"level": level, "msg": message, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg={jsonio.dumps(message)}'
    try:
        fd = os.open(ctx.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
