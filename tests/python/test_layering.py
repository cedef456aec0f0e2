"""Issue 10: the binding as layers.

The files of csrc/binding form a layered graph: each file includes and
calls only the files below it, in the order LAYERS gives (bottom first).
docs/architecture.md, "The binding's layers", draws the same order; a test
here checks that the two agree.

What the checker reads, from the sources alone (comments and string
literals stripped by a small tokenizer):
- every `#include "X.h"` of a binding file (X.h belongs to the file it
  declares: py_foo.h to py_foo.c, py_task_impl.h to py_task.c, binding.h
  and st_compat.h to the bottom);
- every cross-file call: a function (or exported table) defined, not
  static, in file A and named in file B.
Either one is allowed only downward: to a file earlier in the order, or to
a file of the same unit (a tuple in LAYERS: one concept split in two files
that share a private header).  Anything upward or sideways fails.

KNOWN_PENDING lists the violations that exist today and belong to work in
flight (the async-method merge rewrites py_builder.c and py_valuetask.c).
The list may only shrink: a test fails when an entry no longer occurs, so
whoever fixes one removes it.
"""
from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINDING = ROOT / "csrc" / "binding"
ARCH = ROOT / "docs" / "architecture.md"

requires_sources = pytest.mark.skipif(
    not BINDING.is_dir(), reason="the C sources are not beside the tests"
)

MAX_LINES = 1500  # no binding .c file over this (issue 10)

# The order, bottom first.  Each entry is a layer: its name and its files
# (stems; a tuple is a unit whose files may call each other).  Inside a
# layer the files are ordered too: a file may call the ones before it.
LAYERS = [
    ("state", ["st_compat", "binding", "py_state", "py_errors", "py_args",
               "py_gil", "py_trace"]),
    ("pool and timers", ["py_pool", "py_timer", "py_executor"]),
    ("task", ["py_task", "py_tcs"]),
    ("thread records and deadlock detection", ["py_deadlock"]),
    ("builder", ["py_builder"]),
    ("contexts and schedulers", ["py_context"]),
    ("cancellation", ["py_cancel_reg", "py_cancel"]),
    ("delays, waits, combinators and awaiters",
     ["py_delay", "py_combinators", "py_awaiter", "py_factories"]),
    ("ValueTask and semaphore",
     ["py_vt_source", "py_vt_pool", "py_method", "py_valuetask",
      "py_vt_awaiter", "py_semaphore"]),
    ("module", ["module"]),
]

# Headers that belong to another file's stem.
HEADER_OWNER = {"py_task_impl": "py_task", "py_cancel_types": "py_cancel_reg",
                "py_vt": "py_vt_source"}

# Violations that exist today, as "from.c -> to.c" (calls) or
# "from -> to.h" (includes).  Only shrinks (see the module docstring).
KNOWN_PENDING: set[str] = set()  # none left (issue 10)


# ------------------------------------------------------------ the reader

def strip_c(src: str) -> str:
    """Comments and string/char literals out, line count kept."""
    out = []
    i, n = 0, len(src)
    while i < n:
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * src.count("\n", i, j))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src[i] in "\"'":
            q = src[i]
            j = i + 1
            while j < n and src[j] != q and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            out.append(q + q)
            i = j + 1
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


_KEYWORDS = {"if", "while", "for", "switch", "return", "sizeof", "do"}
# A definition at column 0: `name(...) {` (STYLE.md: the type on the line
# before), or exported data `type name[] = ` / `type name = `.
_FUNC_DEF = re.compile(r"^([A-Za-z_]\w*)\s*\(([^;{}]*?)\)\s*\{", re.M)
_DATA_DEF = re.compile(
    r"^(?!static\b|typedef\b|extern\b|#)[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)"
    r"\s*(?:\[[^\]]*\])?\s*=", re.M)
_INCLUDE = re.compile(r'^\s*#\s*include\s*"([\w.]+)"', re.M)
# An identifier not preceded by "." or "->" (a struct member is no call).
_IDENT = re.compile(r"(?<!\.)(?<!->)\b([A-Za-z_]\w*)\b")


def read_sources(directory: pathlib.Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir())
            if p.suffix in (".c", ".h")}


def definitions(sources: dict[str, str]) -> dict[str, set[str]]:
    """name -> the .c files that define it with external linkage."""
    defs: dict[str, set[str]] = {}
    for name, raw in sources.items():
        if not name.endswith(".c"):
            continue
        src = strip_c(raw)
        for m in _FUNC_DEF.finditer(src):
            fn = m.group(1)
            if fn in _KEYWORDS:
                continue
            line_start = src.rfind("\n", 0, max(m.start() - 1, 0)) + 1
            before = src[line_start:m.start()]
            if re.search(r"\bstatic\b", before):
                continue
            defs.setdefault(fn, set()).add(name)
        for m in _DATA_DEF.finditer(src):
            defs.setdefault(m.group(1), set()).add(name)
    return defs


def cross_calls(sources: dict[str, str]) -> dict[tuple[str, str], set]:
    """(user.c, definer.c) -> names used across that pair."""
    defs = definitions(sources)
    edges: dict[tuple[str, str], set] = {}
    for name, raw in sources.items():
        if not name.endswith(".c"):
            continue
        for ident in set(_IDENT.findall(strip_c(raw))):
            for owner in defs.get(ident, ()):
                if owner != name:
                    edges.setdefault((name, owner), set()).add(ident)
    return edges


def includes(sources: dict[str, str]) -> set[tuple[str, str]]:
    """(file, included binding header)."""
    out = set()
    for name, raw in sources.items():
        for inc in _INCLUDE.findall(strip_c_keep_includes(raw)):
            if inc in sources and inc != name:
                out.add((name, inc))
    return out


def strip_c_keep_includes(src: str) -> str:
    # the include's "name" is a string literal: keep include lines whole
    keep = {i: line for i, line in enumerate(src.split("\n"))
            if re.match(r'\s*#\s*include\s*"', line)}
    lines = strip_c(src).split("\n")
    for i, line in keep.items():
        if i < len(lines):
            lines[i] = line.split("/*")[0]
    return "\n".join(lines)


def ranks(layers) -> dict[str, tuple[int, int]]:
    """stem -> (position, unit id); files of one unit share the position."""
    out = {}
    pos = 0
    for _, files in layers:
        for entry in files:
            unit = entry if isinstance(entry, tuple) else (entry,)
            for stem in unit:
                out[stem] = (pos, pos)
            pos += 1
    return out


def stem_of(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0]
    return HEADER_OWNER.get(stem, stem)


def violations(sources: dict[str, str], layers) -> dict[str, str]:
    """"a -> b" -> why, for every include or call against the order, plus
    "x.c lines" for a file over MAX_LINES, and "x unplaced" for a file the
    order does not name."""
    rank = ranks(layers)
    bad: dict[str, str] = {}
    for name in sources:
        if stem_of(name) not in rank:
            bad[f"{name} unplaced"] = "not in LAYERS"
    for (user, owner), names in cross_calls(sources).items():
        ru, ro = rank.get(stem_of(user)), rank.get(stem_of(owner))
        if ru is None or ro is None or ro[0] < ru[0] or ro[1] == ru[1]:
            continue
        bad[f"{user} -> {owner}"] = "calls " + " ".join(sorted(names))
    for user, header in includes(sources):
        ru, ro = rank.get(stem_of(user)), rank.get(stem_of(header))
        if ru is None or ro is None or ro[0] < ru[0] or ro[1] == ru[1]:
            continue
        bad[f"{user} -> {header}"] = "includes it"
    for name, raw in sources.items():
        if name.endswith(".c") and raw.count("\n") > MAX_LINES:
            bad[f"{name} lines"] = f"{raw.count(chr(10))} lines"
    return bad


# ----------------------------------------------------------------- tests

@requires_sources
def test_issue10_binding_files_include_and_call_only_downward():
    """Issue 10: no include or cross-file call goes up or sideways against
    LAYERS, but the KNOWN_PENDING ones; no .c file over 1,500 lines."""
    found = violations(read_sources(BINDING), LAYERS)
    new = {k: v for k, v in found.items() if k not in KNOWN_PENDING}
    assert not new, "against the layer order (issue 10): " + "; ".join(
        f"{k} ({v})" for k, v in sorted(new.items()))


@requires_sources
def test_issue10_known_pending_only_shrinks():
    """Issue 10: every KNOWN_PENDING entry still occurs (remove the ones
    fixed, so that the list only shrinks)."""
    found = violations(read_sources(BINDING), LAYERS)
    gone = sorted(KNOWN_PENDING - set(found))
    assert not gone, ("fixed, remove from KNOWN_PENDING (issue 10): "
                      + ", ".join(gone))


@requires_sources
def test_issue10_every_binding_file_is_placed_and_exists():
    """Issue 10: LAYERS names every binding file, and no stale one."""
    sources = read_sources(BINDING)
    stems = {stem_of(n) for n in sources}
    placed = set(ranks(LAYERS))
    assert stems <= placed, f"not in LAYERS: {sorted(stems - placed)}"
    assert placed <= stems, f"LAYERS names no file: {sorted(placed - stems)}"


def _doc_order() -> list[str]:
    text = ARCH.read_text()
    m = re.search(r"^## The binding's layers\n(.*?)(?=^## )", text,
                  re.S | re.M)
    assert m, "docs/architecture.md has no \"The binding's layers\""
    block = re.search(r"```text\n(.*?)```", m.group(1), re.S)
    assert block, "the layers section has no ```text drawing"
    seen: list[str] = []
    # the file column: a name at the start of a line (after indentation)
    for name in re.findall(r"(?m)^[ \t]+((?:py_\w+|module|binding|st_compat)"
                           r"\.[ch])\b", block.group(1)):
        stem = stem_of(name)
        if stem not in seen:
            seen.append(stem)
    return seen


@requires_sources
def test_issue10_docs_draw_the_same_order():
    """Issue 10: docs/architecture.md lists the files in LAYERS' order
    (top first in the drawing, so reversed)."""
    flat = [s for _, files in LAYERS for e in files
            for s in (e if isinstance(e, tuple) else (e,))]
    doc = list(reversed(_doc_order()))
    assert doc == flat


# -------------------------------------------- the checker checks itself

_FAKE = {
    "binding.h": "#include <Python.h>\n",
    "low.h": '#include "binding.h"\nint low_fn(void);\n',
    "low.c": '#include "low.h"\n\nint\nlow_fn(void)\n{\n    return 1;\n}\n',
    "high.h": '#include "binding.h"\nint high_fn(void);\n',
    "high.c": ('#include "high.h"\n#include "low.h"\n\nint\n'
               'high_fn(void)\n{\n    return low_fn();\n}\n'),
}
_FAKE_LAYERS = [("b", ["binding"]), ("l", ["low"]), ("h", ["high"])]


def test_issue10_checker_passes_a_downward_call():
    """Issue 10: the checker's own test: a call down is allowed."""
    assert violations(dict(_FAKE), _FAKE_LAYERS) == {}


def test_issue10_checker_catches_an_injected_upward_call():
    """Issue 10: an upward call (low.c calling high_fn), even one named
    only in a comment elsewhere, is caught; a name in a comment or a
    string alone is not a call."""
    fake = dict(_FAKE)
    fake["low.c"] = ('#include "low.h"\n/* high_fn */\n\nint\nlow_fn(void)'
                     '\n{\n    return high_fn() + (int)sizeof("high_fn");\n}\n')
    assert set(violations(fake, _FAKE_LAYERS)) == {"low.c -> high.c"}
    fake["low.c"] = ('#include "low.h"\n/* high_fn() */\n\nint\nlow_fn(void)'
                     '\n{\n    return (int)sizeof("high_fn()");\n}\n')
    assert violations(fake, _FAKE_LAYERS) == {}


def test_issue10_checker_catches_an_upward_include_and_a_sideways_call():
    """Issue 10: an include of a higher header, and a call between two
    files of one layer that are not a unit, are caught."""
    fake = dict(_FAKE)
    fake["low.c"] = '#include "high.h"\n' + fake["low.c"]
    assert set(violations(fake, _FAKE_LAYERS)) == {"low.c -> high.h"}
    side = [("b", ["binding"]), ("lh", ["low", "high"])]
    fake = dict(_FAKE)
    fake["low.c"] = fake["low.c"].replace("return 1;", "return high_fn();")
    assert "low.c -> high.c" in violations(fake, side)
    unit = [("b", ["binding"]), ("lh", [("low", "high")])]
    assert violations(fake, unit) == {}


def test_issue10_checker_counts_lines():
    """Issue 10: a .c file over 1,500 lines is reported."""
    fake = dict(_FAKE)
    fake["low.c"] += "\n" * (MAX_LINES + 1)
    assert set(violations(fake, _FAKE_LAYERS)) == {"low.c lines"}
