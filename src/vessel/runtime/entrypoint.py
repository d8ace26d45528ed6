"""Write the fast launchers of `vessel-runtime` and `vessel`.

pip's console-script wrapper runs the interpreter with `site` and imports `re`,
which costs more than everything the runtime does to start a container. This
writes a script that starts the same interpreter isolated and without `site`
(`-IS`) and puts vessel's own directory on sys.path by hand (for `vessel`, also
the environment's site-packages, where its dependencies are, without reading
any .pth file). The runtime's launcher also turns the cyclic garbage collector
off (a short-lived process; its passes cost milliseconds during imports), and
`cli.run` then exits without the interpreter's teardown.

    python -m vessel.runtime.entrypoint /usr/local/bin/vessel-runtime
    python -m vessel.runtime.entrypoint --cli /usr/local/bin/vessel
"""

import os
import sys

__all__ = ["write_launcher", "write_cli_launcher"]


def write_launcher(path, interpreter=None, entry=("vessel.runtime.cli", "run"), site_packages=False,
                   disable_gc=True):
    """Write the launcher of `entry` (module, function) to `path`, atomically."""
    import vessel

    paths = [os.path.dirname(os.path.dirname(os.path.abspath(vessel.__file__)))]
    if site_packages:
        import sysconfig

        paths += [p for p in dict.fromkeys((sysconfig.get_path("purelib"), sysconfig.get_path("platlib")))
                  if p not in paths]
    interpreter = interpreter or sys.executable
    module, function = entry
    text = (
        f"#!{interpreter} -IS\n"
        + ("import gc\ngc.disable()\n" if disable_gc else "")
        + "import sys\n"
        f"sys.path[:0] = {paths!r}\n"
        f"from {module} import {function}\n"
        f"{function}()\n"
    )
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def write_cli_launcher(path, interpreter=None):
    """The `vessel` command: the CLI (a long-lived process when attached, so the collector stays on)."""
    write_launcher(path, interpreter, entry=("vessel.cli.main", "launch"), site_packages=True, disable_gc=False)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--cli"] and len(arguments) == 2:
        write_cli_launcher(arguments[1])
    elif len(arguments) == 1:
        write_launcher(arguments[0])
    else:
        sys.exit("usage: python -m vessel.runtime.entrypoint [--cli] PATH")
