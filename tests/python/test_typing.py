"""The static types of sharptask (SPEC §0, issue 14): mypy finds nothing
wrong in the package and in tests/typing/typing_ok.py, reports every wrong
use in tests/typing/typing_errors.py, and mypy's stubtest finds no
difference between the stubs and the runtime.

mypy is a test dependency (`make venv` installs it; CI does too); without it
these tests are skipped.  They read the package the tests import, whichever
copy that is (the installed one, or the tree on PYTHONPATH).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sharptask

pytest.importorskip("mypy", reason="mypy is not installed (make venv "
                    "installs it): the static checks are skipped")

REPO = Path(__file__).resolve().parents[2]
TYPING = REPO / "tests" / "typing"
CONFIG = REPO / "mypy.ini"
ALLOWLIST = TYPING / "stubtest-allowlist.txt"
PACKAGE_PARENT = Path(sharptask.__file__).resolve().parent.parent

if "libasan" in os.environ.get("LD_PRELOAD", ""):
    pytest.skip("the static checks do not depend on how the extension is "
                "built: the plain run does them, not the ASan one",
                allow_module_level=True)


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    # mypy reads the package the tests import: the tree on the path, unless
    # that is site-packages, which mypy finds by itself (and refuses in
    # MYPYPATH)
    if "site-packages" not in PACKAGE_PARENT.parts and \
            "dist-packages" not in PACKAGE_PARENT.parts:
        env["MYPYPATH"] = str(PACKAGE_PARENT)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    env["MYPY_CACHE_DIR"] = str(tmp / "mypy-cache")
    return env


def _mypy(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess,
                                             dict[str, list]]:
    """Run mypy with mypy.ini: the process and {file name: [(line, code,
    message)]} of its errors."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(CONFIG),
         "--show-error-codes", *args],
        cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1) and not proc.stderr.strip(), \
        proc.stdout + proc.stderr  # 2: mypy itself failed
    assert re.search(r"^(Success: no issues found|Found \d+ errors?) ",
                     proc.stdout, re.MULTILINE), proc.stdout
    errors: dict[str, list] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(.+?):(\d+): error: (.*?)\s+\[([\w-]+)\]$", line)
        if m:
            errors.setdefault(Path(m.group(1)).name, []).append(
                (int(m.group(2)), m.group(4), m.group(3)))
        elif ": error:" in line:  # an error without a code: keep it
            errors.setdefault(line.split(":")[0], []).append((0, "?", line))
    return proc, errors


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory):
    """mypy over the package (-p sharptask), then over both typing files
    (one cache): the processes' output and the errors by file name."""
    tmp = tmp_path_factory.mktemp("mypy")
    package, package_errors = _mypy(tmp, "-p", "sharptask")
    files, file_errors = _mypy(tmp, str(TYPING / "typing_ok.py"),
                               str(TYPING / "typing_errors.py"))
    assert "typing_errors.py" in file_errors, files.stdout  # it did check
    return package.stdout + files.stdout, {**package_errors, **file_errors}


@pytest.mark.timeout(900)
def test_S0_mypy_clean_on_the_package_and_typing_ok(mypy_report):
    """SPEC §0 / issue 14: mypy (mypy.ini) finds no error in sharptask's
    own code and stubs, nor in the typed uses of tests/typing/typing_ok.py
    (whose assert_type lines pin the types a user sees: f(1) is Task[str]
    for an @async_method, ValueTask[str] for @async_value_method, None for
    @async_void, ...)."""
    output, errors = mypy_report
    unexpected = {name: errs for name, errs in errors.items()
                  if name != "typing_errors.py"}
    assert not unexpected, output


@pytest.mark.timeout(900)
def test_S0_mypy_reports_every_wrong_use(mypy_report):
    """SPEC §0 / issue 14: each line of tests/typing/typing_errors.py
    marked `# E: code` gets exactly those error codes, and no other line
    gets any: wrong arguments to a decorated method, a wrong result type,
    a plain def under @async_method ... are all caught."""
    output, errors = mypy_report
    expected: dict[int, set[str]] = {}
    source = (TYPING / "typing_errors.py").read_text().splitlines()
    for number, text in enumerate(source, 1):
        m = re.search(r"# E: ([\w, -]+)$", text)
        if m:
            expected[number] = {c.strip() for c in m.group(1).split(",")}
    assert len(expected) >= 15
    got: dict[int, set[str]] = {}
    for line, code, _ in errors.get("typing_errors.py", []):
        got.setdefault(line, set()).add(code)
    assert got == expected, output


@pytest.mark.timeout(120)
def test_S0_typing_ok_runs():
    """The typed uses are real code: typing_ok.py runs to the end (its
    asserted types are what the calls return at run time)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, str(TYPING / "typing_ok.py")],
                          env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "typing_ok: ran" in proc.stdout


@pytest.mark.timeout(900)
def test_S0_stubtest_finds_no_difference(tmp_path):
    """SPEC §0 / issue 14: `python -m mypy.stubtest sharptask` finds no
    difference between the stubs (_native.pyi and the inline types) and
    the runtime, with an allowlist of what cannot be expressed."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "sharptask",
         "--mypy-config-file", str(CONFIG), "--allowlist", str(ALLOWLIST)],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_S0_stubtest_allowlist_explains_every_entry():
    """issue 14: the allowlist holds only what cannot be expressed, each
    entry under a comment that says why."""
    lines = ALLOWLIST.read_text().splitlines()
    entries = [i for i, line in enumerate(lines)
               if line.strip() and not line.startswith("#")]
    assert entries
    for i in entries:
        assert i > 0 and lines[i - 1].startswith("# "), \
            f"allowlist entry {lines[i]!r} has no explanation just above it"


def test_S0_every_public_name_is_in_the_stubs():
    """SPEC §0: every name of sharptask.__all__ exists at run time and in
    the stubs (the names issue 14 found missing among them)."""
    stub = (PACKAGE_PARENT / "sharptask" / "_native.pyi").read_text()
    for name in ("set_deadlock_detection", "get_deadlock_detection",
                 "SingleThreadSynchronizationContext", "current_id"):
        assert re.search(rf"\b(def|class) {name}\b", stub), name
    for name in sharptask.__all__:
        assert hasattr(sharptask, name), name
