"""Issue 9 items 5 and 16, SPEC H1: the supported interpreters.

- The binding uses only the public (or documented unstable) C API; what
  differs between 3.11, 3.12 and 3.13 sits in csrc/binding/st_compat.h
  alone (item 16: the module did not import on 3.13).
- The module refuses subinterpreters (item 5): an import in one raises
  ImportError, and the main interpreter's import keeps working whichever
  imported first.

The whole suite also runs on 3.12 and 3.13 (tools/check-py-versions.sh,
`make check-py-versions`), each build with -Werror.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

import sharptask as st
from conftest import PACKAGE_ROOT, run_script

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINDING = ROOT / "csrc" / "binding"
COMPAT = "st_compat.h"

requires_sources = pytest.mark.skipif(
    not BINDING.is_dir(), reason="the C sources are not beside the tests"
)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"),
                  text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


# --------------------------------------------------- item 16: public API

# Outside st_compat.h: no private name, no internal header, no API that
# 3.12 deprecated, and no version test (one compatibility header, H1).
_FORBIDDEN = [
    (re.compile(r"\b_Py[A-Za-z0-9_]*"), "a private CPython name"),
    (re.compile(r"\bPy_BUILD_CORE\b"), "CPython's internal build switch"),
    (re.compile(r'#\s*include\s*[<"]internal/'), "an internal header"),
    (re.compile(r"\bPyErr_(Fetch|Restore|NormalizeException)\b"),
     "PyErr_Fetch/Restore (deprecated in 3.12: use "
     "PyErr_GetRaisedException/SetRaisedException)"),
    (re.compile(r"\bPY_VERSION_HEX\b"), "a version test"),
]


@requires_sources
def test_issue9_item16_H1_binding_sources_use_only_the_public_api():
    """Issue 9 item 16 / H1: every binding file but st_compat.h names only
    public API; version-specific code sits in that one header."""
    assert (BINDING / COMPAT).is_file()
    bad = []
    for path in sorted(BINDING.glob("*.[ch]")):
        if path.name == COMPAT:
            continue
        text = _strip_comments(path.read_text())
        for lineno, line in enumerate(text.splitlines(), 1):
            for pattern, what in _FORBIDDEN:
                m = pattern.search(line)
                if m:
                    bad.append(f"{path.name}:{lineno}: {m.group()} ({what})")
    assert not bad, "\n".join(bad)


def _undefined_symbols(path):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--undefined-only", path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {line.split()[-1].split("@")[0]
            for line in out.stdout.splitlines() if line.strip()}


def test_issue9_item16_H1_extension_links_no_private_symbol():
    """Issue 9 item 16 / H1: the built extension does not reference the
    private symbols that made it fail to import on 3.13 (nor the GIL word
    in _PyRuntime); on 3.13 not even _Py_IsFinalizing, which st_compat.h
    calls only on 3.11/3.12 (the public Py_IsFinalizing's old name); on
    3.12+ no PyErr_Fetch/Restore."""
    undefined = _undefined_symbols(st._native.__file__)
    forbidden = {"_PyObject_LookupAttr", "_PyUnicode_EqualToASCIIString",
                 "_Py_HashPointer", "_PyRuntime"}
    if sys.version_info >= (3, 13):
        forbidden |= {"_Py_IsFinalizing"}
    if sys.version_info >= (3, 12):
        forbidden |= {"PyErr_Fetch", "PyErr_Restore",
                      "PyErr_NormalizeException"}
    assert not (undefined & forbidden), sorted(undefined & forbidden)
    # the public names it does use are there (the test reads the right file)
    assert "PyObject_GetAttr" in undefined


# ------------------------------------------ ownership in the headers

# A prototype at column 0 in a header: `type name(` (not typedef, extern,
# static, preprocessor or an indented struct field).
_PROTO = re.compile(
    r"^(?!typedef\b|extern\b|static\b|#|\s)"
    r"[A-Za-z_][\w \*]*?\b([A-Za-z_]\w*)\s*\(", re.M)


@requires_sources
def test_issue9_ownership_every_cross_file_function_states_its_references():
    """Issue 9 "Ownership in the code" (HELPER_RULES standards): every
    function declared in a binding header says, in the comment just above
    it (or above its group of declarations), what it does with references:
    a "Refs:" note (new / borrowed / borrows / steals / none)."""
    missing = []
    for path in sorted(BINDING.glob("*.h")):
        if path.name == COMPAT:
            continue  # only static inline stand-ins for CPython's own API
        text = path.read_text()
        for m in _PROTO.finditer(text):
            end = text.rfind("*/", 0, m.start())
            begin = text.rfind("/*", 0, end)
            between = text[end + 2:m.start()] if end >= 0 else text
            covered = (end >= 0 and "Refs:" in text[begin:end]
                       and not any(c in between for c in "{}")
                       and "/*" not in between)
            if not covered:
                line = text.count("\n", 0, m.start()) + 1
                missing.append(f"{path.name}:{line}: {m.group(1)}")
    assert not missing, "no Refs: note for\n" + "\n".join(missing)


# ----------------------------------------- item 5: no subinterpreters

# Run in a subinterpreter: imports sharptask and writes what happened to
# the pipe fd {fd} (file descriptors are per process).
_SUB_CODE = """
import os
try:
    import sharptask
    msg = 'imported'
except ImportError as e:
    msg = 'ImportError: ' + str(e)
os.write({fd}, msg.encode())
"""

# Runs the main interpreter's import and a pool round trip.
_MAIN_WORKS = """
import sharptask
assert sharptask.Task.run(lambda: 41 + 1).result == 42
assert sharptask.Task.run(lambda: sharptask.Task.delay(0.01)).wait(10)
print('main ok')
"""


def _run_sub(kind):
    """Code that runs _SUB_CODE in a subinterpreter of `kind` and prints
    what the subinterpreter reported."""
    return f"""
import os
r, w = os.pipe()
code = {_SUB_CODE!r}.format(fd=w)
if {kind!r} == 'legacy':
    import _testcapi
    rc = _testcapi.run_in_subinterp(code)
    assert rc == 0, rc
else:
    try:
        import _interpreters as xi           # 3.13
    except ImportError:
        import _xxsubinterpreters as xi      # 3.11, 3.12
    iid = xi.create()
    try:
        res = xi.run_string(iid, code)
        assert res is None, res
    finally:
        xi.destroy(iid)
print('sub:', os.read(r, 4096).decode())
"""


def _have(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


_legacy = pytest.mark.skipif(
    not (_have("_testcapi") and hasattr(sys.modules.get("_testcapi"),
                                        "run_in_subinterp")),
    reason="_testcapi.run_in_subinterp is not available in this build")
_isolated = pytest.mark.skipif(
    not (_have("_interpreters") or _have("_xxsubinterpreters")),
    reason="no _interpreters/_xxsubinterpreters module in this build")


def _check_refused(out):
    assert out.returncode == 0, out.stdout + out.stderr
    sub = [line for line in out.stdout.splitlines()
           if line.startswith("sub:")]
    assert len(sub) == 1, out.stdout
    assert "ImportError" in sub[0], sub[0]
    assert "subinterpreters" in sub[0], sub[0]


@_legacy
@pytest.mark.timeout(90)
def test_issue9_item5_H1_legacy_subinterpreter_first_is_refused_and_main_imports():
    """Issue 9 item 5 / H1: a legacy subinterpreter (Py_NewInterpreter,
    which CPython lets load any module) that imports first gets
    ImportError, and the main interpreter's import afterwards works (it
    used to fail with "cannot be loaded twice")."""
    out = run_script(_run_sub("legacy") + _MAIN_WORKS, timeout=60)
    _check_refused(out)
    assert "main ok" in out.stdout, out.stdout + out.stderr


@_isolated
@pytest.mark.timeout(90)
def test_issue9_item5_H1_isolated_subinterpreter_first_is_refused_and_main_imports():
    """Issue 9 item 5 / H1: an interpreter made by the subinterpreters
    module gets ImportError (3.12+: Py_mod_multiple_interpreters; 3.11:
    module_exec), and the main interpreter's import afterwards works."""
    out = run_script(_run_sub("isolated") + _MAIN_WORKS, timeout=60)
    _check_refused(out)
    assert "main ok" in out.stdout, out.stdout + out.stderr


@_legacy
@pytest.mark.timeout(90)
def test_issue9_item5_H1_subinterpreter_after_main_is_refused_while_pool_runs():
    """Issue 9 item 5 / H1: with the main interpreter's pool busy, a legacy
    subinterpreter's import is refused, the subinterpreter ends without
    "Py_EndInterpreter: not the last thread", and the main interpreter's
    work finishes; the process exits 0 with nothing on stderr."""
    code = (
        "import sharptask, time\n"
        "t = sharptask.Task.run(lambda: (time.sleep(0.3), 7)[1])\n"
        + _run_sub("legacy")
        + "assert t.result == 7\n"
        + _MAIN_WORKS
    )
    out = run_script(code, timeout=60)
    _check_refused(out)
    assert "main ok" in out.stdout, out.stdout + out.stderr
    assert out.stderr == "", out.stderr


@pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"),
                    reason="not a free-threaded build (3.13t)")
@pytest.mark.timeout(90)
def test_H1_free_threaded_build_keeps_the_gil():
    """H1: on a free-threaded build the module declares Py_mod_gil =
    Py_MOD_GIL_USED, so importing it turns the GIL on."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    env["PYTHONPATH"] = PACKAGE_ROOT
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, sharptask; print(sys._is_gil_enabled())"],
        capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True", out.stdout + out.stderr
