"""Docker's time arguments and --format templates through the CLI: one clear line and exit 125 when wrong."""

import pytest

from image_fixtures import ALPINE
from test_image_cli import vessel  # noqa: F401 - the fixture: the CLI in-process on a state of its own


@pytest.fixture
def imported(vessel):  # noqa: F811
    vessel("import", ALPINE, "alpine:3.20")
    return vessel


def test_image_filters_by_time_and_by_image(imported):
    assert imported("images", "--filter", "until=2999-01-01", "--format", "{{.Repository}}") == "alpine\n"
    assert imported("images", "--filter", "until=2999-01-01T00:00", "--filter", "until=1h", "-q") == ""
    assert imported("images", "--filter", "until=1700000000", "-q") == ""
    assert imported("images", "--filter", "until=0", "-q") == ""
    assert imported("images", "--filter", "before=alpine:3.20", "-q") == ""
    assert imported("images", "--filter", "since=alpine:3.20", "-q") == ""


@pytest.mark.parametrize("args, message", [
    (["images", "--format", "{{.Nope"], "template parsing error: template: :1: unclosed action"),
    (["images", "--format", "{{.Nope}}"],
     'template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type *formatter.ImageContext'),
    (["image", "inspect", "-f", "{{.Id}} {{foo}}", "alpine:3.20"],
     'template parsing error: template: :1: function "foo" not defined'),
    (["images", "--filter", "until=yesterday"],
     'invalid value for "until": failed to parse value as time or duration: "yesterday"'),
    (["images", "--filter", "since=nothere"], "No such image: nothere:latest"),
    (["events", "--since", "2026-12-04T25:00"], 'invalid value for "since": parsing time "2026-12-04T25:00": '
                                                "hour must be in 0..23"),
    (["events", "--until", "soon"], 'invalid value for "until": failed to parse value as time or duration: "soon"'),
    (["system", "prune", "-f", "--filter", "until=2026-13-01"],
     'invalid value for "until": parsing time "2026-13-01": month must be in 1..12'),
])
def test_errors_are_one_line(imported, args, message):
    assert imported(*args, code=125) == f"Error: {message}\n"
    assert imported("images", "-q") != ""  # nothing was removed


def test_image_prune_until(vessel):  # noqa: F811
    imported = vessel
    imported("import", ALPINE)  # untagged: dangling
    assert imported("image", "prune", "-f", "--filter", "until=1h") == "Total reclaimed space: 0B\n"
    assert imported("images", "-q") != ""
    assert "Deleted Images:" in imported("image", "prune", "-f", "--filter", "until=2999-01-01")
    assert imported("images", "-q") == ""
    assert imported("image", "prune", "-f", "--filter", "until=soon", code=125) == (
        'Error: invalid value for "until": failed to parse value as time or duration: "soon"\n')
