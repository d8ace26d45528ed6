#!/usr/bin/env python3
"""Regenerate src/vessel/runtime/data/syscalls_<arch>.json from kernel headers.

The seccomp compiler needs syscall name -> number tables per architecture, and
libseccomp's are not available to a stdlib-only runtime, so we derive our own
from the uAPI headers Debian ships:

    apt-get install linux-libc-dev linux-libc-dev-arm64-cross \
        linux-libc-dev-armhf-cross linux-libc-dev-riscv64-cross

Each header is run through `cpp -dM` (so asm-generic's __ARCH_WANT_* choices
and __NR3264_* aliases resolve exactly as for that architecture) and every
`__NR_<name>` / `__ARM_NR_<name>` macro is evaluated.  Syscalls added after
the installed headers (Linux 6.1) share one number on every architecture
since 5.1 ("unified numbering"); they are listed in NEWER_SYSCALLS, numbers
checked against libseccomp's src/syscalls.csv.

Usage: scripts/gen_syscall_tables.py [output-dir]
"""

import json
import os
import re
import subprocess
import sys

# arch -> (include dir, header, extra cpp flags)
HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu", "asm/unistd_64.h", []),
    "x86": ("/usr/include/x86_64-linux-gnu", "asm/unistd_32.h", []),
    "x32": ("/usr/include/x86_64-linux-gnu", "asm/unistd_x32.h", ["-D__X32_SYSCALL_BIT=0x40000000"]),
    "aarch64": ("/usr/aarch64-linux-gnu/include", "asm/unistd.h", ["-D__aarch64__"]),
    "arm": ("/usr/arm-linux-gnueabihf/include", "asm/unistd.h", ["-D__ARM_EABI__"]),
    "riscv64": ("/usr/riscv64-linux-gnu/include", "asm/unistd.h", ["-D__riscv", "-D__riscv_xlen=64"]),
}

X32_SYSCALL_BIT = 0x40000000

# Added after Linux 6.1, same number everywhere (x32 adds X32_SYSCALL_BIT).
NEWER_SYSCALLS = {
    "cachestat": 451, "fchmodat2": 452, "map_shadow_stack": 453, "futex_wake": 454,
    "futex_wait": 455, "futex_requeue": 456, "statmount": 457, "listmount": 458,
    "lsm_get_self_attr": 459, "lsm_set_self_attr": 460, "lsm_list_modules": 461,
    "mseal": 462, "setxattrat": 463, "getxattrat": 464, "listxattrat": 465,
    "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468, "file_setattr": 469,
    "listns": 470,
}

# Added after Linux 6.1 for x86_64 (and x32) only.
NEWER_X86_64_SYSCALLS = {"uretprobe": 335, "uprobe": 336}

# Macros that look like syscalls but are counts or placeholders.
NOT_SYSCALLS = {"syscalls", "arch_specific_syscall", "BASE", "SYSCALL_BASE", "SYSCALL_MASK", "OABI_SYSCALL_BASE"}

_DEFINE = re.compile(r"#define\s+(\w+)\s+(.*)")
_NAME = re.compile(r"__(?:ARM_)?NR_(\w+)$")
_TOKEN = re.compile(r"[A-Za-z_]\w*")


def _macros(include, header, flags):
    text = subprocess.run(
        ["cpp", "-dM", "-nostdinc", "-I", include, *flags, "-"],
        input=f"#include <{header}>\n", capture_output=True, text=True, check=True,
    ).stdout
    return dict(m.groups() for m in map(_DEFINE.match, text.splitlines()) if m)


def _evaluate(expr, macros, depth=0):
    if depth > 20:
        raise ValueError(f"macro recursion in {expr!r}")
    expanded = _TOKEN.sub(lambda m: f"({_evaluate(macros[m.group()], macros, depth + 1)})"
                          if m.group() in macros else m.group(), expr)
    if not re.fullmatch(r"[\s0-9xXa-fA-F+()<|]*", expanded):
        raise ValueError(f"cannot evaluate {expr!r} -> {expanded!r}")
    return eval(expanded)  # digits and + ( ) < | only, checked above


def table(arch):
    include, header, flags = HEADERS[arch]
    macros = _macros(include, header, flags)
    numbers = {}
    for macro, expr in macros.items():
        match = _NAME.match(macro)
        if not match or match.group(1) in NOT_SYSCALLS or not expr.strip():
            continue
        try:
            numbers[match.group(1)] = _evaluate(expr, macros)
        except (KeyError, ValueError, SyntaxError):
            continue  # e.g. a macro defined to a name that is not a number
    offset = X32_SYSCALL_BIT if arch == "x32" else 0
    newer = dict(NEWER_SYSCALLS)
    if arch in ("x86_64", "x32"):
        newer.update(NEWER_X86_64_SYSCALLS)
    for name, number in newer.items():
        numbers.setdefault(name, number + offset)
    return dict(sorted(numbers.items(), key=lambda item: (item[1], item[0])))


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "src", "vessel", "runtime", "data")
    for arch in HEADERS:
        numbers = table(arch)
        path = os.path.join(out, f"syscalls_{arch}.json")
        with open(path, "w") as fh:
            json.dump(numbers, fh, indent=0, separators=(",", ":"))
            fh.write("\n")
        print(f"{path}: {len(numbers)} syscalls, highest {max(numbers.values()):#x}")


if __name__ == "__main__":
    main(sys.argv)
