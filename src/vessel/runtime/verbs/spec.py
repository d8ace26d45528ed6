"""vessel-runtime spec: write a config.json with Docker's defaults."""

import os

from vessel.errors import AlreadyExists
from vessel.runtime import defaults, jsonio

__all__ = ["main"]


def main(ctx, opts, args):
    bundle = opts.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise AlreadyExists(f"File {path} exists. Remove it first")
    text = jsonio.dumps(defaults.default_spec(rootless=bool(opts.get("rootless"))), indent=2) + "\n"
    jsonio.write_atomic(path, text, 0o644)
    return 0
