"""Shared helpers for the sharptask conformance suite.

Helpers are plain functions (importable as ``from conftest import ...``) plus a
few fixtures.  Nothing here asserts a SPEC rule by itself.

Suite hygiene: the project runs pytest with ``filterwarnings = error``, so an
unobserved faulted task reported through ``sys.unraisablehook`` (T11) fails
the run.  Every test that produces a faulted task therefore observes it
(``observe(task)``), and an autouse fixture collects garbage after each test so
that a report lands in the test that caused it.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time

import pytest

import sharptask as st

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(st.__file__)))

HAS_CTS = hasattr(st, "CancellationTokenSource")

requires_cts = pytest.mark.skipif(
    not HAS_CTS, reason="CancellationTokenSource belongs to a later issue (K1)"
)


def make_canceled_token():
    """A token whose source is already canceled (skips the test without K1)."""
    if not HAS_CTS:
        pytest.skip("CancellationTokenSource belongs to a later issue (K1)")
    cts = st.CancellationTokenSource()
    cts.cancel()
    return cts.token


def make_cts():
    if not HAS_CTS:
        pytest.skip("CancellationTokenSource belongs to a later issue (K1)")
    return st.CancellationTokenSource()


def observe(*tasks):
    """Mark each task's exception observed (T11) so no report escapes."""
    for t in tasks:
        _ = t.exception


def first_cause(task):
    """The first inner exception of a faulted task (observes it)."""
    ex = task.exception
    assert ex is not None, f"task {task!r} is not faulted (status {task.status!r})"
    return ex.inner_exceptions[0]


class Recorder:
    """Thread-safe list of events with a condition to wait for a count."""

    def __init__(self):
        self.items = []
        self._cond = threading.Condition()

    def add(self, item):
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, n, timeout=10.0):
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= n, timeout)

    def __len__(self):
        with self._cond:
            return len(self.items)


def thread_info():
    """(thread ident, in-main-thread) of the caller."""
    return threading.get_ident()


MAIN_IDENT = threading.main_thread().ident


def start_thread(fn, *args):
    """Start a daemon thread that records any exception it raises.

    Returns the thread; ``thread.error`` holds the exception (or None) after
    join.  Exceptions never escape into ``threading.excepthook``.
    """

    def body():
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported by join_ok
            t.error = e

    t = threading.Thread(target=body, daemon=True)
    t.error = None
    t.start()
    return t


def join_ok(t, timeout=20.0):
    t.join(timeout)
    assert not t.is_alive(), "helper thread did not finish"
    if t.error is not None:
        raise t.error


def wait_until(pred, timeout=10.0, step=0.005):
    """Poll ``pred`` for conditions that have no event (e.g. GC reports)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def run_script(code, timeout=30.0, env_extra=None):
    """Run ``code`` in a fresh interpreter that can import sharptask (STYLE 35)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("PYTHONFAULTHANDLER", "1")
    if env_extra:
        env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(autouse=True)
def _collect_after_test():
    """Collect after each test so an unobserved-task report (T11) is attributed
    to the test that leaked the faulted task."""
    yield
    gc.collect()


def pytest_collection_modifyitems(session, config, items):
    """Run the leak tests last: when they fail, the objects they leak stay
    alive and would make every later gc.collect() (and so the whole suite)
    slower."""
    items.sort(key=lambda item: item.path.name == "test_leaks.py")


def pytest_collection_finish(session):
    """Move everything that exists after collection (pytest's own objects,
    modules, test items) to the permanent generation, so the per-test
    gc.collect() above only scans what the tests create."""
    gc.collect()
    gc.freeze()
