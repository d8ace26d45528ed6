"""The benchmark harness's own logic: statistics, ratios, missing and failing contenders,
and the parsing of `-X importtime` output. No timing is asserted."""

import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench")
sys.path.insert(0, BENCH)

import harness  # noqa: E402
import import_time  # noqa: E402


def test_percentile_interpolates_between_ranks():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert harness.percentile(samples, 0) == 1.0
    assert harness.percentile(samples, 50) == 3.0
    assert harness.percentile(samples, 90) == pytest.approx(4.6)
    assert harness.percentile(samples, 100) == 5.0
    assert harness.percentile([7.0], 90) == 7.0
    with pytest.raises(ValueError):
        harness.percentile([], 50)


def test_summarize():
    stats = harness.summarize([0.4, 0.1, 0.3, 0.2])
    assert stats["n"] == 4
    assert stats["median"] == pytest.approx(0.25)
    assert stats["min"] == 0.1
    assert stats["p90"] == pytest.approx(0.37)
    assert stats["mean"] == pytest.approx(0.25)
    assert harness.summarize([])["median"] is None


def test_ratios_against_baseline_and_missing_values():
    rows = [{"name": "a", "median": 0.2}, {"name": "base", "median": 0.1}, {"name": "gone", "median": None}]
    harness.add_ratios(rows, "base")
    assert [r["ratio"] for r in rows] == [pytest.approx(2.0), pytest.approx(1.0), None]
    harness.add_ratios(rows, "not-there")
    assert all(r["ratio"] is None for r in rows)


def test_missing_program_is_not_installed_and_failures_are_reported():
    missing = harness.Contender("ghost", ["/nonexistent/vessel-bench-ghost", "run"])
    failing = harness.Contender("failing", ["sh", "-c", "echo broken >&2; exit 3"])
    working = harness.Contender("working", ["true"])
    assert missing.status == harness.NOT_INSTALLED
    rows = harness.run_interleaved([working, missing, failing], runs=3, warmup=1)
    by_name = {row["name"]: row for row in rows}
    assert by_name["working"]["status"] == harness.OK and by_name["working"]["n"] == 3
    assert by_name["ghost"]["status"] == harness.NOT_INSTALLED and by_name["ghost"]["n"] == 0
    assert by_name["failing"]["status"] == "failed" and "exit 3: broken" in by_name["failing"]["detail"]
    table = harness.format_table(harness.add_ratios(rows, "working"), "working")
    assert "not installed" in table and "failing failed: exit 3: broken" in table
    assert harness.program_version(["/nonexistent/vessel-bench-ghost", "--version"]) == harness.NOT_INSTALLED


def test_interleaving_order_and_prepare_hook():
    order = []
    contenders = [harness.Contender(name, ["true"], prepare=lambda i, name=name: order.append((name, i)))
                  for name in ("a", "b")]
    harness.run_interleaved(contenders, runs=2, warmup=1)
    assert [name for name, _ in order] == ["a", "b", "a", "b", "a", "b"]
    assert len({i for _, i in order}) == 6  # a fresh iteration number (container id) every time


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _json
import time:        50 |        150 | json
import time:        10 |         10 |     sre_x
import time:        20 |         30 |   re._parser
import time:        40 |         70 | re
import time:        30 |         30 | vessel.runtime.cli
"""


def test_parse_importtime_and_forbidden_importers():
    modules = import_time.parse_importtime(IMPORTTIME + "some other stderr line\n")
    assert [m.name for m in modules] == ["_json", "json", "sre_x", "re._parser", "re", "vessel.runtime.cli"]
    importers = {m.name: m.importer for m in modules}
    assert importers == {"_json": "json", "json": None, "sre_x": "re._parser", "re._parser": "re",
                         "re": None, "vessel.runtime.cli": None}
    assert [m.name for m in import_time.forbidden_imports(modules)] == ["json", "re._parser", "re"]
    summary = import_time.summary(modules, top=2)
    assert summary["total_ms"] == pytest.approx(0.25)
    assert [t["name"] for t in summary["top"]] == ["_json", "json"]
