"""Issue 9 (hardening), the hard-args items: 6, 13, 14, 20, 23 (cancellation
and semaphore parts) and 27, with SPEC H2 (bad input gives TypeError /
ValueError naming the parameter) and K1-K4.

Hang-prone reproductions run in a subprocess with a timeout, so that a
regression fails the test instead of hanging the suite.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

import sharptask as st
from conftest import PACKAGE_ROOT, observe, run_script

CTS = st.CancellationTokenSource
Task = st.Task


def run_ok(code, timeout=30.0):
    """Run code in a fresh interpreter; it must exit 0 within timeout (a
    hang fails here with TimeoutExpired).  Returns the completed process."""
    code = textwrap.dedent(code)
    try:
        p = run_script(code, timeout=timeout)
    except subprocess.TimeoutExpired as e:  # the hang this guards against
        pytest.fail(f"the script hung (> {timeout} s): {e.stdout!r} "
                    f"{e.stderr!r}")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "SystemError" not in p.stderr, p.stderr
    return p


# ---------------------------------------------------------------------------
# item 6: a SIGNAL node never runs Python code; no wait blocks with the GIL
# ---------------------------------------------------------------------------

_ITEM6_PRELUDE = """
    import time, weakref
    import sharptask as st
    def make():
        cts = st.CancellationTokenSource()
        # dropping the source runs Python code that releases the GIL
        wr = weakref.ref(cts, lambda _: time.sleep(0.3))
        t = st.Task.delay(0.1, cancellation_token=cts.token)
        return t, wr
"""


@pytest.mark.timeout(60)
def test_issue9_item6_result_does_not_deadlock_on_token_watch_drop():
    """issue 9 item 6: the token watch of a Task.delay drops the last
    reference to its CancellationTokenSource when the delay completes; a
    thread blocked in .result must not wait for that completer with the GIL
    held (it used to hang every time)."""
    p = run_ok(_ITEM6_PRELUDE + """
    t, wr = make()
    print(t.result, wr() is None)
    """, timeout=20)
    assert p.stdout.split() == ["None", "True"]


@pytest.mark.timeout(60)
def test_issue9_item6_wait_any_does_not_deadlock_on_token_watch_drop():
    """issue 9 item 6: the same shape in Task.wait_any's node removal."""
    p = run_ok(_ITEM6_PRELUDE + """
    t, wr = make()
    print(st.Task.wait_any([t], None), wr() is None)
    """, timeout=20)
    assert p.stdout.split() == ["0", "True"]


@pytest.mark.timeout(60)
def test_issue9_item6_wait_and_wait_all_do_not_deadlock():
    """issue 9 item 6: wait(), wait_all and wait(timeout) go through the same
    blocking wait."""
    p = run_ok(_ITEM6_PRELUDE + """
    t, wr = make()
    print(t.wait(), end=" ")
    t, wr = make()
    print(t.wait(30), end=" ")
    t, wr = make()
    print(st.Task.wait_all([t], timeout=30))
    """, timeout=25)
    assert p.stdout.split() == ["True", "True", "True"]


@pytest.mark.timeout(60)
def test_issue9_item6_stress_token_watch_drops_with_blocked_waiters():
    """issue 9 item 6, stress: several threads each block on delays whose
    token watch frees a source (whose weakref callback releases the GIL),
    many times; every wait returns (bounded, in a subprocess)."""
    p = run_ok("""
    import threading, time, weakref
    import sharptask as st
    errors = []
    def worker(n):
        try:
            for i in range(n):
                cts = st.CancellationTokenSource()
                # longer than a wait slice (50 ms): the waiter wakes and
                # sees the task completed while its node is not signalled
                wr = weakref.ref(cts, lambda _: time.sleep(0.06))
                t = st.Task.delay(0.001, cancellation_token=cts.token)
                del cts
                if i % 3 == 0:
                    t.wait()
                elif i % 3 == 1:
                    st.Task.wait_any([t], None)
                else:
                    t.result
        except BaseException as e:
            errors.append(e)
    ts = [threading.Thread(target=worker, args=(12,)) for _ in range(6)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("ok", errors)
    """, timeout=45)
    assert p.stdout.split()[0] == "ok" and p.stdout.strip() == "ok []"


# ---------------------------------------------------------------------------
# item 20: no Python call with an exception set (SemaphoreSlim.wait + Ctrl-C)
# ---------------------------------------------------------------------------

_SIGINT_SCRIPT = """
import sys, sharptask as st
s = st.SemaphoreSlim(0)
cts = st.CancellationTokenSource()
timeout = None if sys.argv[1] == "None" else float(sys.argv[1])
print("ready", flush=True)
try:
    s.wait(timeout, cts.token)
except KeyboardInterrupt:
    # nothing left behind, and the library still works
    print("KI", s._waiters, cts._registration_count, flush=True)
    s.release()
    print(s.wait(0), flush=True)
"""


def _sigint_while_waiting(timeout_arg):
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.Popen([sys.executable, "-c", _SIGINT_SCRIPT, timeout_arg],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # blocked in wait() by now
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p.returncode, out, err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("timeout_arg", ["None", "30"])
def test_issue9_item20_ctrl_c_in_semaphore_wait_with_token(timeout_arg):
    """issue 9 item 20 (T6, K4): Ctrl-C during SemaphoreSlim.wait(timeout,
    token) raises KeyboardInterrupt, not SystemError ('returned NULL
    without setting an exception'): the waiter's cleanup calls Python with
    the interrupt kept aside.  The waiter and its registration are gone."""
    rc, out, err = _sigint_while_waiting(timeout_arg)
    assert "SystemError" not in err, err
    assert "exception set" not in err, err
    assert rc == 0, (out, err)
    assert out.split("\n")[:2] == ["KI (0, 0) 0", "True"], (out, err)


@pytest.mark.timeout(60)
def test_issue9_item20_pool_items_blocked_in_semaphore_wait_at_exit():
    """issue 9 item 20 (H5): pool items blocked in SemaphoreSlim.wait with a
    token when the interpreter exits: their abandoned wait cleans up
    without a SystemError."""
    p = run_script(textwrap.dedent("""
        import time, sharptask as st
        s = st.SemaphoreSlim(0)
        cts = st.CancellationTokenSource()
        ts = [st.Task.run(lambda: s.wait(None, cts.token)) for _ in range(2)]
        ts.append(st.Task.run(lambda: s.wait(100, cts.token)))
        time.sleep(0.3)
        print("exiting", flush=True)
    """), timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "exiting"
    assert "SystemError" not in p.stderr, p.stderr
    assert "exception set" not in p.stderr, p.stderr


# ---------------------------------------------------------------------------
# item 23: internal methods validate their arguments or are not exposed
# ---------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_issue9_item23_notify_into_is_not_reachable():
    """issue 9 item 23 (H2): CancellationTokenSource()._notify_into(task)
    used to fail an assertion in st_cancel.c (abort): cancel_async's pool
    work is not a method any more, and the source still works."""
    p = run_ok("""
        import sharptask as st
        cts = st.CancellationTokenSource()
        for name in ("_notify_into", "_on_timer"):
            assert not hasattr(cts, name), name
        fn = getattr(cts, "_notify_into", None)
        if fn is not None:       # the old build: this aborts
            fn(st.Task.from_result(1))
        seen = []
        cts.token.register(lambda: seen.append(1))
        t = cts.cancel_async()
        assert t.wait(10) and seen == [1]
        print("ok")
    """, timeout=20)
    assert p.stdout.strip() == "ok"


def test_issue9_item23_cancel_async_and_time_provider_still_work():
    """issue 9 item 23 (K1, P6a): with their internals hidden, cancel_async
    runs the callbacks on the pool (faulted with their exceptions) and a
    time provider's timer still cancels the source."""
    cts = CTS()
    cts.token.register(lambda: 1 / 0)
    t = cts.cancel_async()
    with pytest.raises(st.AggregateError):
        t.wait(10)
    assert isinstance(t.exception.inner_exceptions[0], ZeroDivisionError)
    fake = st.FakeTimeProvider()
    cts = CTS(5, time_provider=fake)
    assert not cts.is_cancellation_requested
    fake.advance(__import__("datetime").timedelta(seconds=6))
    assert cts.is_cancellation_requested


def _capture_waiters(monkeypatch):
    """Captures the waiter objects that SemaphoreSlim hands to
    sharptask._semaphore._arm (the only way Python sees them)."""
    import sharptask._semaphore as sm
    captured = []
    orig = sm._arm

    def arm(sem, w, timeout, token):
        captured.append(w)
        return orig(sem, w, timeout, token)
    monkeypatch.setattr(sm, "_arm", arm)
    return captured


@pytest.mark.timeout(60)
def test_issue9_item23_semaphore_expire_with_another_semaphores_waiter():
    """issue 9 item 23 (K4, H2): SemaphoreSlim._expire with a waiter queued
    on another semaphore used to corrupt both queues and abort
    (assertion in py_semaphore.c): it is a ValueError; both semaphores
    keep working."""
    p = run_ok("""
        import sharptask as st, sharptask._semaphore as sm
        cap = []
        orig = sm._arm
        def arm(sem, w, timeout, token):
            cap.append(w)
            return orig(sem, w, timeout, token)
        sm._arm = arm
        a, b = st.SemaphoreSlim(0), st.SemaphoreSlim(0)
        cts = st.CancellationTokenSource()
        t = a.wait_async(None, cts.token)
        try:
            b._expire(cap[0])
        except ValueError as e:
            print("ValueError", e)
        assert a._waiters == (0, 1) and b._waiters == (0, 0), \\
            (a._waiters, b._waiters)
        a.release()
        assert t.wait(10) and t.result is True
        b.release()
        assert b.wait(0) is True
        print("ok")
    """, timeout=20)
    assert p.stdout.split("\n")[0].startswith("ValueError")
    assert "another SemaphoreSlim" in p.stdout
    assert p.stdout.split("\n")[1] == "ok"


def test_issue9_item23_semaphore_expire_bad_arguments(monkeypatch):
    """issue 9 item 23 (H2): _expire with a non-waiter is a TypeError; with
    its own waiter it still expires it (the timeout/token path)."""
    captured = _capture_waiters(monkeypatch)
    s = st.SemaphoreSlim(0)
    for bad in (None, 1, "x", s, Task.from_result(1)):
        with pytest.raises(TypeError, match="waiter"):
            s._expire(bad)
    cts = CTS()
    t = s.wait_async(None, cts.token)
    assert s._expire(captured[0]) is True
    assert t.wait(10) and t.result is False
    assert s._expire(captured[0]) is False  # not queued any more
    assert s._waiters == (0, 0)
