"""Every rule id that the package cites has an entry a user can read
(issue 14 docs item "the semantics reference: every rule id the code and
error messages cite ... a test that every rule id cited in python/sharptask
and csrc has an entry").

The code, its docstrings and its error messages cite SPEC rules (`T7`, `A3`,
`C6`, `P6a`), .NET behaviour notes (`R3.10`) and dotnet/runtime scenarios
(`S3.5`); docs/semantics.md has one heading per id, with a stable anchor
(`#spec-a3`, `#r3-10`, `#s3-5`). Benchmark workload ids (`W4a`) are
explained on docs/benchmarks.md.
"""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SEMANTICS = os.path.join(ROOT, "docs", "semantics.md")
BENCHMARKS = os.path.join(ROOT, "docs", "benchmarks.md")

SPEC_ID = re.compile(r"(?<![\w.])([TSACVKPDHI]\d{1,2}a?)(?![\w.]|\.\d)")
NOTE_ID = re.compile(r"(?<![\w.])([RS]\d{1,2}\.\d{1,2})(?!\d)")
WORKLOAD_ID = re.compile(r"(?<![\w.])(W\d{1,2}[a-z]?)(?!\w)")

# Look like rule ids but are not: the C standard the core is written in.
NOT_RULES = {"C11", "C99", "C17"}


def _sources():
    for sub in ("python/sharptask", "csrc"):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, sub)):
            for name in files:
                if name.endswith((".py", ".pyi", ".c", ".h")):
                    yield os.path.join(folder, name)


def _cited(pattern):
    found = {}
    for path in _sources():
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                for rid in pattern.findall(line):
                    if rid not in NOT_RULES:
                        found.setdefault(
                            rid, f"{os.path.relpath(path, ROOT)}:{lineno}")
    return found


def _entries():
    """id -> the label line above its heading, from semantics.md."""
    with open(SEMANTICS, encoding="utf-8") as f:
        lines = f.read().splitlines()
    entries = {}
    for i, line in enumerate(lines):
        m = re.match(r"^#{3,4} (\S+) · \S", line)
        if m:
            label = lines[i - 1] if i else ""
            entries[m.group(1)] = label
    return entries


ENTRIES = _entries()
CITED = {**_cited(SPEC_ID), **_cited(NOTE_ID)}


def _anchor(rid):
    if "." in rid:
        return rid.lower().replace(".", "-")
    return "spec-" + rid.lower()


def test_docs_rules_found():
    """Issue 14 docs item: the scan finds the ids (a broken pattern would
    make the checks below vacuous)."""
    assert {"T7", "A1", "C6", "P6a", "R3.10", "S3.5"} <= set(CITED)
    assert len(ENTRIES) > 100


@pytest.mark.parametrize("rid", sorted(CITED))
def test_docs_rule_cited_in_code_has_entry(rid):
    """Issue 14 docs item: a rule id cited in python/sharptask or csrc has
    an entry in the semantics reference."""
    assert rid in ENTRIES, (f"{rid} (cited at {CITED[rid]}) has no entry "
                            "in docs/semantics.md")


@pytest.mark.parametrize("rid", sorted(ENTRIES))
def test_docs_rule_entry_has_stable_anchor(rid):
    """Issue 14 docs item: each entry carries the anchor that "see SPEC A3"
    links use (#spec-a3, #r3-10)."""
    if rid.startswith("§"):
        return
    assert ENTRIES[rid] == f"({_anchor(rid)})=", (rid, ENTRIES[rid])


def test_docs_every_spec_rule_has_entry():
    """Issue 14 docs item: the reference covers every rule family of the
    contract, not only the cited ones."""
    expected = ([f"T{i}" for i in range(1, 13)] + ["S1", "S2", "S3"]
                + [f"A{i}" for i in range(1, 9)]
                + [f"C{i}" for i in range(1, 9)]
                + [f"V{i}" for i in range(1, 6)]
                + [f"K{i}" for i in range(1, 5)]
                + ["P1", "P2", "P3", "P4", "P5", "P6", "P6a"]
                + ["D1", "D2", "D3", "D3a", "D4", "D5"]
                + ["I1", "I2", "I3"] + [f"H{i}" for i in range(1, 6)])
    missing = [r for r in expected if r not in ENTRIES]
    assert not missing, missing


@pytest.mark.parametrize("wid", sorted(_cited(WORKLOAD_ID)))
def test_docs_workload_cited_in_code_is_on_benchmark_page(wid):
    """Issue 14 docs item: a benchmark workload id cited in the package is
    explained on the benchmarks page."""
    with open(BENCHMARKS, encoding="utf-8") as f:
        text = f.read()
    assert re.search(rf"^\| {re.escape(wid)} \|", text, re.M), wid
