"""Issue 10 ("Speed must not suffer: the W1–W12 ratios stay within 5 % of
today's, measured side by side before and after in one run"):
tools/bench_before_after.py, the driver of tools/bench-before-after.sh.

The table is checked on synthetic results.json payloads (the format
`python -m sharptask bench` writes), never on a timed run: which workloads
it picks, how it reads the runs, the medians, the change in %, the flag on
a row that moved more than 5 % the bad way (and only then, in either
direction of "better"), "—" for a row that one variant lacks. One test runs
the child side against a tree that has no build, to check that it refuses
to measure an installed sharptask in its place.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "tools", "bench_before_after.py")

pytestmark = [
    # the ASan run and an installed copy of the tests have no tools/
    pytest.mark.skipif(not os.path.exists(DRIVER),
                       reason="tools/ is not beside the tests"),
    pytest.mark.timeout(60),
]


@pytest.fixture(scope="module")
def bba():
    sys.path.insert(0, os.path.dirname(DRIVER))
    try:
        spec = importlib.util.spec_from_file_location("bench_before_after",
                                                      DRIVER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.dirname(DRIVER))
    return module


def _row(rid, ratio, unit="ns/call", short=None, peer="asyncio", **extra):
    """One entry of results.json's "results", as Comparison.as_dict()."""
    row = {"id": rid, "workload": f"{rid} workload", "unit": unit,
           "sharptask": {"label": "sharptask", "median_ns": ratio * 100.0},
           "peer": {"label": peer, "median_ns": 100.0},
           "ratio": ratio, "target": "", "target_met": None, "notes": [],
           "short": short or f"{rid} short"}
    row.update(extra)
    return row


def _payload(*rows, errors=()):
    return {"generated": "2026-12-07T00:00:00+00:00",
            "environment": {"python": "3.11.7", "implementation": "CPython",
                            "cpu_count": 2, "uvloop": False,
                            "sharptask_path": "/nowhere"},
            "quick": True, "rounds": 5, "results": list(rows),
            "notes": {}, "errors": list(errors)}


def _write(tmp_path, name, payload):
    path = tmp_path / name / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload), encoding="utf-8")
    return str(path)


def test_issue10_default_workloads_are_W1_to_W12_of_either_variant(bba):
    """Issue 10 measures "the W1–W12 ratios": by default every W1..W12 id
    that either variant knows, a lettered one (W2b, W4a) and one only the
    after variant has (W9) included, WSEM, W13+ and WT left out; --only is
    case-insensitive and refuses an id neither variant knows."""
    before = ["W1", "W2", "W3", "W4a", "W4b", "W5", "W6", "W7", "W8", "W10",
              "W11", "W12", "WSEM"]
    after = before[:2] + ["W2b"] + before[2:9] + ["W9"] + before[9:] + [
        "W13", "W14", "W15", "W16", "WT"]
    assert bba.default_ids(before, after) == [
        "W1", "W2", "W2b", "W3", "W4a", "W4b", "W5", "W6", "W7", "W8", "W9",
        "W10", "W11", "W12"]
    assert bba.select_ids("w9, W1", before, after) == ["W9", "W1"]
    with pytest.raises(SystemExit, match="--only.*W99"):
        bba.select_ids("W1,W99", before, after)


def test_issue10_table_from_results_json_medians_change_and_flags(
        bba, tmp_path):
    """Issue 10's 5 % bound: per row the median over the rounds of each
    variant's ratio, the change after/before - 1, and a flag only where it
    moved more than 5 % the bad way: up for a lower-is-better ratio (time,
    blocks), down for a rate ("items/s", or "better": "higher"); an
    improvement of any size and a 4 % worsening are not flagged. A row one
    variant lacks (W9, W2b) shows "—" and no change."""
    rounds_before = [
        _payload(_row("W1", 0.80), _row("W2/bare", 1.50), _row("W2/old", 1.0),
                 _row("W3", 1.60), _row("W10/task", 2.0, unit="blocks/call"),
                 _row("W11", 0.40, unit="items/s"),
                 _row("W12", 0.50, better="higher")),
        _payload(_row("W1", 0.82), _row("W2/bare", 1.52), _row("W2/old", 1.0),
                 _row("W3", 1.62), _row("W10/task", 2.0, unit="blocks/call"),
                 _row("W11", 0.40, unit="items/s"),
                 _row("W12", 0.50, better="higher")),
        _payload(_row("W1", 0.81), _row("W2/bare", 1.51), _row("W2/old", 1.0),
                 _row("W3", 1.61), _row("W10/task", 2.0, unit="blocks/call"),
                 _row("W11", 0.40, unit="items/s"),
                 _row("W12", 0.50, better="higher")),
    ]
    rounds_after = [
        _payload(_row("W1", 0.84), _row("W2/bare", 1.20), _row("W2b", 1.25),
                 _row("W3", 1.69), _row("W9", 0.45),
                 _row("W10/task", 1.0, unit="blocks/call"),
                 _row("W11", 0.37, unit="items/s"),
                 _row("W12", 0.60, better="higher")),
        _payload(_row("W1", 0.85), _row("W2/bare", 1.21), _row("W2b", 1.27),
                 _row("W3", 1.70), _row("W9", 0.46),
                 _row("W10/task", 1.0, unit="blocks/call"),
                 _row("W11", 0.37, unit="items/s"),
                 _row("W12", 0.60, better="higher")),
        _payload(_row("W1", 0.83), _row("W2/bare", 1.22), _row("W2b", 1.26),
                 _row("W3", 1.71), _row("W9", 0.47),
                 _row("W10/task", 1.0, unit="blocks/call"),
                 _row("W11", 0.37, unit="items/s"),
                 _row("W12", 0.60, better="higher")),
    ]
    before = bba.collect([bba.read_results(_write(tmp_path, f"b{i}", p))
                          for i, p in enumerate(rounds_before)])
    after = bba.collect([bba.read_results(_write(tmp_path, f"a{i}", p))
                         for i, p in enumerate(rounds_after)])
    rows = {r["id"]: r for r in bba.table_rows(before, after)}
    order = [r["id"] for r in bba.table_rows(before, after)]
    # the after variant's order; the before-only row after its predecessor
    assert order == ["W1", "W2/bare", "W2/old", "W2b", "W3", "W9",
                     "W10/task", "W11", "W12"]

    # W1: 0.81 -> 0.84, +3.7 %: worse, but within 5 %
    assert rows["W1"]["before"] == pytest.approx(0.81)
    assert rows["W1"]["after"] == pytest.approx(0.84)
    assert rows["W1"]["change"] == pytest.approx((0.84 / 0.81 - 1) * 100)
    assert not rows["W1"]["regression"]
    # W3: 1.61 -> 1.70, +5.6 %: flagged
    assert rows["W3"]["change"] == pytest.approx((1.70 / 1.61 - 1) * 100)
    assert rows["W3"]["regression"]
    # W2/bare and W10: big improvements, not flagged
    assert rows["W2/bare"]["change"] < -19
    assert not rows["W2/bare"]["regression"]
    assert rows["W10/task"]["change"] == pytest.approx(-50.0)
    assert not rows["W10/task"]["regression"]
    # W11 is a rate: down 7.5 % is the bad way
    assert not rows["W11"]["lower_is_better"]
    assert rows["W11"]["regression"]
    # W12 says higher is better: up 20 % is an improvement
    assert not rows["W12"]["lower_is_better"]
    assert not rows["W12"]["regression"]
    # rows of one variant only
    for rid in ("W9", "W2b"):
        assert rows[rid]["before"] is None and rows[rid]["change"] is None
        assert rows[rid]["before_cell"] == "—"
        assert not rows[rid]["regression"]
    assert rows["W2/old"]["after_cell"] == "—"

    table = bba.format_table(bba.table_rows(before, after))
    lines = table.splitlines()
    assert lines[0].startswith("| id | workload | peer | unit | better | "
                               "before | after | change |")
    line = {ln.split("|")[1].strip(): ln for ln in lines[2:]}
    assert "| 0.810 [0.800–0.820] | 0.840 [0.830–0.850] | +3.7 % |  |" \
        in line["W1"]
    assert "+5.6 %" in line["W3"] and "**worse by more than 5 %**" \
        in line["W3"]
    assert "| — | 1.260 [1.250–1.270] | — |  |" in line["W2b"]
    assert "**worse" in line["W11"] and "| higher |" in line["W11"]
    assert sum("**worse" in ln for ln in lines) == 2
    assert bba.summary_line(bba.table_rows(before, after)) == \
        "2 row(s) moved more than 5 % the bad way: W3, W11"
    # a looser tolerance flags nothing
    loose = bba.table_rows(before, after, tolerance=10.0)
    assert not any(r["regression"] for r in loose)


def test_issue10_read_results_refuses_a_file_that_is_not_bench_output(
        bba, tmp_path):
    """Issue 10's table reads each run's results.json: a file without the
    "results" list is refused with ValueError naming it."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="results.json"):
        bba.read_results(str(path))


def test_issue10_child_refuses_a_sharptask_not_from_its_variant(
        bba, tmp_path):
    """Issue 10's before/after runs each variant's own build: given a tree
    without one (so that the import falls through to the installed
    package), the child stops before measuring, naming where sharptask came
    from, and the driver raises ChildError."""
    with pytest.raises(bba.ChildError, match="was imported from"):
        bba.workload_ids_of(str(tmp_path), timeout=50)
