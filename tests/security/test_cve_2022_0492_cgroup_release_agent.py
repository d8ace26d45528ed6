"""CVE-2022-0492: cgroup v1 release_agent reached through unshare + mount.

A process with no capability could `unshare -Urm`, become root of a new user
namespace, mount a cgroup v1 hierarchy and set release_agent, which the
kernel runs as host root. A default container (Docker's seccomp profile and
capabilities) cannot take the first steps: unshare and mount fail, and no
release_agent it can see is writable.
"""

import json
import os

from helpers import runtime

STEPS = """
unshare -Urm true 2>/dev/null && echo unshare-urm-ok
unshare -m true 2>/dev/null && echo unshare-m-ok
mkdir -p /tmp/cg
mount -t cgroup -o rdma cgroup /tmp/cg 2>/dev/null && echo mount-cgroup-ok
mount -t cgroup -o memory cgroup /tmp/cg 2>/dev/null && echo mount-memory-ok
mount -t proc proc /tmp/cg 2>/dev/null && echo mount-proc-ok
for agent in $(find /sys/fs/cgroup -maxdepth 2 -name release_agent 2>/dev/null); do
    echo x > "$agent" 2>/dev/null && echo "wrote $agent"
done
cat /sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj 2>/dev/null && echo powercap-readable
echo END
"""


def test_default_container_cannot_reach_release_agent(root, names, tmp_path):
    from helpers import make_busybox_rootfs

    b = str(tmp_path / "bundle")
    os.makedirs(b)
    runtime(root, "spec", "--bundle", b, check=True)
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", STEPS]
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    make_busybox_rootfs(os.path.join(b, "rootfs"))
    out = runtime(root, "run", "--bundle", b, names(), check=True).stdout.decode()
    assert out.strip() == "END", out
