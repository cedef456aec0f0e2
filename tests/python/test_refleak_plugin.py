"""H3 (issue 9): make check-refleaks's plugin (tools/refleak_plugin.py)
finds a leak and stays quiet about what is not one.

It runs a small pytest session of its own in a child process, on the
debug interpreter this test runs on: so it runs in the refleak stage of
make test (python3.11-dbg), and is skipped on a release interpreter,
which has no sys.gettotalrefcount.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(sys, "gettotalrefcount"),
    reason="needs a debug interpreter (make check-refleaks runs it)")

TOOLS = Path(__file__).resolve().parents[2] / "tools"

SESSION = textwrap.dedent('''
    import pytest

    KEPT = []

    def test_leaks_one_list_per_run():
        KEPT.append([object() for _ in range(3)])

    def test_clean():
        x = [object() for _ in range(3)]
        del x

    def test_uses_tmp_path(tmp_path):
        (tmp_path / "f").write_text("x")

    @pytest.mark.refleaks_unmeasured(reason="the reason given")
    def test_marked():
        KEPT.append(object())
''')


@pytest.mark.timeout(120)
def test_H3_refleak_plugin_reports_a_leak_and_only_the_leak(tmp_path):
    """H3: the leaking test fails with its growth, the clean one and the
    one using tmp_path (pytest's own bookkeeping grows per run) pass, the
    marked one runs once, unmeasured, with its reason listed."""
    if not TOOLS.joinpath("refleak_plugin.py").exists():
        pytest.skip("tools/ is not beside the tests (installed copy)")
    (tmp_path / "test_session.py").write_text(SESSION)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    refleaks_unmeasured(reason): x\n")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "refleak_plugin",
         "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
         "--refleaks=3:3", "-v", "-rA", "test_session.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=100,
        env={**__import__("os").environ, "PYTHONPATH": str(TOOLS)})
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "test_session.py::test_leaks_one_list_per_run leaked " \
        "references" in out, out
    assert "FAILED test_session.py::test_leaks_one_list_per_run" in out
    for name in ("test_clean", "test_uses_tmp_path", "test_marked"):
        assert f"PASSED test_session.py::{name}" in out, out
    assert "1 tests ran once, unmeasured: marked refleaks_unmeasured" in out
    assert "test_session.py::test_marked: the reason given" in out
