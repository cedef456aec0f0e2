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
