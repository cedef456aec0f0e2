"""Lint of the C sources, run with the tests (STYLE.md point 36, in the
manner of msgspec's test_cpylint.py).

- csrc/core never includes Python.h nor names a Py* identifier (the core
  is pure C: DESIGN.md layers).
- Inside every Py_BEGIN_ALLOW_THREADS block of the binding no Py* API is
  called and nothing returns (the GIL is not held there).
- Every PyGILState_Ensure has its Release in the same function.
- In the core, every function that locks a mutex unlocks it as often.
An escape hatch is a comment "lint-ok: <reason>" on the offending line.
"""
from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ROOT / "csrc" / "core"
BINDING = ROOT / "csrc" / "binding"

pytestmark = pytest.mark.skipif(not CORE.is_dir(),
                                reason="C sources not present")


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"),
                  text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _functions(text: str):
    """Yield (name, body) for each top-level function definition; the body
    text starts with the comment block just above the definition."""
    for m in re.finditer(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\([^;{]*\)\s*\{",
                         text, flags=re.M):
        head = text.rfind("*/", 0, m.start())
        between = text[head + 2:m.start()] if head >= 0 else ""
        # the comment counts when only the return type line separates them
        lead = ""
        if head >= 0 and between.count("\n") <= 3 and ";" not in between \
                and "}" not in between:
            lead = text[text.rfind("/*", 0, head):head]
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        yield m.group(1), lead + text[m.end():i]


def test_layering_core_never_sees_python():
    """DESIGN layers: csrc/core includes no Python.h and calls no Py*."""
    bad = []
    for path in sorted(CORE.glob("*.[ch]")):
        code = _strip_comments(path.read_text())
        if re.search(r'#\s*include\s*[<"]Python\.h', code):
            bad.append(f"{path.name}: includes Python.h")
        for m in re.finditer(r"\bPy[A-Z_][A-Za-z_]*", code):
            bad.append(f"{path.name}: {m.group()}")
    assert not bad, bad


def test_no_python_api_inside_allow_threads():
    """STYLE 36/29: no Py* call and no return while the GIL is released."""
    bad = []
    for path in sorted(BINDING.glob("*.c")):
        lines = path.read_text().splitlines()
        inside = False
        for no, line in enumerate(lines, 1):
            code = _strip_comments(line)
            if "Py_BEGIN_ALLOW_THREADS" in code:
                inside = True
                continue
            if "Py_END_ALLOW_THREADS" in code:
                inside = False
                continue
            if inside and "lint-ok:" not in line:
                if re.search(r"\bPy[A-Za-z_]*\s*\(", code) or \
                        re.search(r"\breturn\b", code):
                    bad.append(f"{path.name}:{no}: {line.strip()}")
        assert not inside, f"{path.name}: unterminated allow-threads block"
    assert not bad, bad


def test_gilstate_pairs():
    """STYLE 36: PyGILState_Ensure and _Release pair up per function."""
    bad = []
    for path in sorted(BINDING.glob("*.c")):
        for name, body in _functions(_strip_comments(path.read_text())):
            if body.count("PyGILState_Ensure(") != \
                    body.count("PyGILState_Release("):
                bad.append(f"{path.name}:{name}")
    assert not bad, bad


def test_core_mutex_lock_unlock_balance():
    """STYLE 36/16: each core function unlocks what it locks."""
    bad = []
    for path in sorted(CORE.glob("*.c")):
        if path.name == "st_thread.c":
            continue  # the wrappers themselves
        for name, raw in _functions(path.read_text()):
            if "lint-ok:" in raw:
                continue  # a reasoned exemption, written in the function
            body = _strip_comments(raw)
            locks = len(re.findall(r"\bst_mutex_lock\s*\(", body))
            unlocks = len(re.findall(r"\bst_mutex_unlock\s*\(", body))
            waits = len(re.findall(r"\bst_cond_(timed)?wait\s*\(", body))
            if locks and unlocks < locks:
                bad.append(f"{path.name}:{name} locks {locks} unlocks "
                           f"{unlocks} (condvar waits {waits})")
    assert not bad, bad
