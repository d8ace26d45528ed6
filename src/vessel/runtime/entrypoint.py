"""Write the fast `vessel-runtime` launcher.

pip's console-script wrapper runs the interpreter with `site` and imports `re`,
which costs more than everything the runtime does to start a container. This
writes a script that starts the same interpreter isolated and without `site`
(`-IS`), without the cyclic garbage collector (a short-lived process; its
passes cost milliseconds during imports), and puts vessel's own directory on
sys.path by hand; `cli.run` then exits without the interpreter's teardown.

    python -m vessel.runtime.entrypoint /usr/local/bin/vessel-runtime
"""

import os
import sys

__all__ = ["write_launcher"]


def write_launcher(path, interpreter=None):
    import vessel

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(vessel.__file__)))
    interpreter = interpreter or sys.executable
    text = (
        f"#!{interpreter} -IS\n"
        "import gc\n"
        "gc.disable()\n"
        "import sys\n"
        f"sys.path.insert(0, {package_parent!r})\n"
        "from vessel.runtime.cli import run\n"
        "run()\n"
    )
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m vessel.runtime.entrypoint PATH")
    write_launcher(sys.argv[1])
