"""`container prune --filter until=` through the one time parser."""

from test_engine_cli import busybox_tarball, vessel  # noqa: F401 - fixtures: the CLI on a state of its own


def test_container_prune_until(vessel):  # noqa: F811
    container = vessel("create", "busybox", "true").stdout.strip()
    assert vessel("container", "prune", "-f", "--filter", "until=1h").stdout == "Total reclaimed space: 0B\n"
    assert vessel.ids() == [container]
    err = vessel("container", "prune", "-f", "--filter", "until=2026-12-04T12:00:00.5+0100", code=125).stderr
    assert err == ('Error: invalid value for "until": parsing time "2026-12-04T12:00:00.5+0100" as '
                   '"2006-01-02T15:04:05.999999999Z07:00": cannot parse\n')
    assert vessel("container", "prune", "-f", "--filter", "until=2999-01-01").stdout.startswith(
        f"Deleted Containers:\n{container}\n")
    assert vessel.ids() == []
