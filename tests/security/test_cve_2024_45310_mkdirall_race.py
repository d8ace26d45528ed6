"""CVE-2024-45310: creating a mount target's missing parents follows a swapped symlink.

runc's MkdirAll created the missing directories of a mount destination by
path; a container sharing the volume swapped a parent for a symlink to a host
directory, and runc created directories (and files) on the host. Every round
here asks for new parents below the raced directory; the host sentinel
directory must never get an entry.
"""

import os

from helpers import runtime, write_config
from sectools import ExchangeRacer, mount_roots, one_line_error, race_rounds


def test_missing_parents_created_under_a_swapped_directory(root, bundle, names, tmp_path, sentinel):
    volume = tmp_path / "volume"
    (volume / "a").mkdir(parents=True)
    os.symlink(sentinel.path, volume / "evil")
    b = bundle(("cat", "/proc/self/mountinfo"))
    config_path = os.path.join(b, "config.json")
    import json

    base = json.load(open(config_path))
    made = 0
    errors = set()
    with ExchangeRacer(volume / "a", volume / "evil"):
        rounds = race_rounds()
        # most creates lose the race (and fail cleanly); go on until some won, to prove something
        for round_ in range(4 * rounds):
            if round_ >= rounds and made:
                break
            cfg = json.loads(json.dumps(base))
            cfg["mounts"] += [
                {"destination": "/vol", "type": "bind", "source": str(volume), "options": ["rbind"]},
                {"destination": f"/vol/a/new{round_}/deep/dir", "type": "tmpfs", "source": "tmpfs",
                 "options": ["size=1m"]},
                {"destination": f"/vol/a/file{round_}/deep/file", "type": "bind", "source": "/etc/hostname",
                 "options": ["bind", "ro"]},
            ]
            write_config(b, cfg)
            proc = runtime(root, "run", "--bundle", b, names())
            if proc.returncode != 0:
                errors.add(one_line_error(proc))
                continue
            made += 1
            for fs_root, point in mount_roots(proc.stdout.decode()):
                assert "host-sentinel" not in fs_root, (fs_root, point)
            sentinel.assert_untouched()
    assert made > 0, f"no create succeeded: the race test proves nothing; errors: {sorted(errors)[:3]}"
