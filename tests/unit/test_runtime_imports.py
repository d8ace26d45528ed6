"""The runtime's start path stays lean: none of the slow standard modules get imported."""

import subprocess
import sys

from helpers import SRC

FORBIDDEN = {"json", "re", "enum", "typing", "dataclasses", "argparse", "subprocess", "shutil",
             "asyncio", "logging", "inspect"}

# everything a `run` with Docker's defaults (caps, seccomp, cgroups) loads
RUN_PATH = ("vessel.runtime.verbs.run", "vessel.runtime.launcher", "vessel.runtime.init",
            "vessel.runtime.cgroups", "vessel.runtime.cgroups.v1", "vessel.runtime.cgroups.v2",
            "vessel.runtime.cgroups.devices", "vessel.runtime.capabilities", "vessel.runtime.seccomp",
            "vessel.runtime.relay", "vessel.runtime.terminal", "vessel.runtime.verbs.exec")


def loaded_modules(code):
    script = f"import sys; sys.path.insert(0, {SRC!r}); {code}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split()[-1000:])


def test_list_path_is_lean(tmp_path):
    modules = loaded_modules(f"from vessel.runtime.cli import main; main(['--root', {str(tmp_path)!r}, 'list'])")
    assert not {m.split(".")[0] for m in modules} & FORBIDDEN


def test_run_path_is_lean():
    modules = loaded_modules("import importlib; [importlib.import_module(m) for m in " + repr(RUN_PATH) + "]")
    assert not {m.split(".")[0] for m in modules} & FORBIDDEN
    assert not any(m.startswith(("vessel.image", "vessel.engine", "vessel.network", "vessel.cli")) for m in modules)
