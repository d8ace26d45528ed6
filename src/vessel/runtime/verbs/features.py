"""vessel-runtime features: what this runtime supports (runtime-spec features.md)."""

import os
import sys

from vessel.runtime import cli, jsonio, linux, rootfs

__all__ = ["main"]


def main(ctx, opts, args):
    features = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": cli.SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(set(rootfs._FLAG_OPTIONS) | set(rootfs._PROPAGATION) | set(rootfs._RECURSIVE)
                               | {"tmpcopyup"}),
        "linux": {
            "namespaces": sorted(linux.NAMESPACE_FLAGS),
            "capabilities": _capabilities(),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": os.path.exists("/sys/kernel/security/apparmor")},
            "selinux": {"enabled": os.path.exists("/sys/fs/selinux/enforce")},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.vessel.version": cli.VERSION},
    }
    sys.stdout.write(jsonio.dumps(features, indent=4) + "\n")
    return 0


def _capabilities():
    try:
        from vessel.runtime import capabilities
    except ImportError:
        return []
    return list(capabilities.ALL_CAPABILITIES)


def _seccomp():
    try:
        from vessel.runtime import seccomp
    except ImportError:
        return {"enabled": False}
    describe = getattr(seccomp, "features", None)
    return describe() if describe is not None else {"enabled": True}
