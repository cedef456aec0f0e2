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
def test_issue9_item6_watch_drop_runs_after_waiters_are_signalled():
    """issue 9 item 6: the token watch's SIGNAL node runs no Python code:
    the source's weakref callback (run by the deferred drop) starts only
    after every waiter was signalled, so the blocked .result returns while
    that callback still sleeps (the waiter never has to wait for it)."""
    p = run_ok("""
        import time, weakref, threading
        import sharptask as st
        events = []
        def cb(_):
            events.append("callback starts")
            time.sleep(0.5)
            events.append("callback ends")
        cts = st.CancellationTokenSource()
        wr = weakref.ref(cts, cb)
        t = st.Task.delay(0.05, cancellation_token=cts.token)
        del cts
        t.result
        events.append("result returned")
        deadline = time.monotonic() + 10
        while "callback ends" not in events and time.monotonic() < deadline:
            time.sleep(0.01)
        print(events)
    """, timeout=20)
    assert p.stdout.strip() == str(["callback starts", "result returned",
                                    "callback ends"])


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


def test_issue9_item20_own_token_check_runs_no_python_with_error_set():
    """issue 9 item 20 sweep (R1.6, K3): a delegate that acknowledges its own
    foreign token object (an OperationCanceledError carrying it) ends
    canceled: the token's is_cancellation_requested (Python code) is read
    with the delegate's exception kept aside, not while it is set (which
    used to fault the task instead)."""
    cts = CTS()

    class Foreign:
        is_cancellation_requested = property(
            lambda self: cts.is_cancellation_requested)
        can_be_canceled = True

        def register(self, cb):
            return cts.token.register(cb)
    f = Foreign()

    def body():
        cts.cancel()
        raise st.OperationCanceledError(cancellation_token=f)
    t = Task.run(body, cancellation_token=f)
    with pytest.raises(st.AggregateError):
        t.wait(10)
    assert t.is_canceled, t.exception


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


# ---------------------------------------------------------------------------
# item 13: TaskCompletionSource(TaskCreationOptions) is the options overload
# ---------------------------------------------------------------------------

def test_issue9_item13_tcs_options_overload_S1():
    """issue 9 item 13 (S1, S3): TaskCompletionSource(TaskCreationOptions.
    RUN_CONTINUATIONS_ASYNCHRONOUSLY) takes the options, as .NET's overload
    resolution does for an argument of the enum type, instead of storing
    them as the state; continuations then never run inside set_result."""
    rca = st.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    tcs = st.TaskCompletionSource(rca)
    assert tcs.task.async_state is None
    assert tcs.task.creation_options == rca
    ran_on = []
    c = tcs.task.continue_with(
        lambda a: ran_on.append(threading.get_ident()),
        options=st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY)
    tcs.set_result(1)
    assert c.wait(10)
    assert ran_on and ran_on[0] != threading.get_ident()  # S3
    tcs = st.TaskCompletionSource(st.TaskCreationOptions.ATTACHED_TO_PARENT)
    assert tcs.task.async_state is None
    assert tcs.task.creation_options == \
        st.TaskCreationOptions.ATTACHED_TO_PARENT


def test_issue9_item13_tcs_state_forms_are_unchanged_S1():
    """issue 9 item 13 (S1): a plain int, any other object, state= by
    keyword, and (state, options) stay what they were; an enum member not
    valid for a TCS is refused as options, like .NET's
    ArgumentOutOfRangeException."""
    assert st.TaskCompletionSource(4).task.async_state == 4
    obj = object()
    assert st.TaskCompletionSource(obj).task.async_state is obj
    rca = st.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    t = st.TaskCompletionSource(state=rca).task
    assert t.async_state is rca and t.creation_options == 0
    t = st.TaskCompletionSource(rca, rca).task
    assert t.async_state is rca and t.creation_options == rca
    with pytest.raises(ValueError, match="options"):
        st.TaskCompletionSource(st.TaskCreationOptions.LONG_RUNNING)


# ---------------------------------------------------------------------------
# item 14: a non-exception is a TypeError (H2, as asyncio)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["x", b"x", bytearray(b"x"), [1], ("x",),
                                 [ValueError()] + ["y"], ValueError, 1,
                                 object()],
                         ids=repr)
def test_issue9_item14_set_exception_non_exception_is_type_error(bad):
    """issue 9 item 14 (H2, S2): set_exception / try_set_exception with
    something that is not an exception instance (or an iterable of them)
    raise TypeError naming the exception, as asyncio's
    Future.set_exception("x") does; the task stays pending and usable."""
    tcs = st.TaskCompletionSource()
    with pytest.raises(TypeError, match="exception"):
        tcs.set_exception(bad)
    with pytest.raises(TypeError, match="exception"):
        tcs.try_set_exception(bad)
    assert not tcs.task.is_completed
    tcs.set_exception(ValueError("ok"))
    assert isinstance(tcs.task.exception.inner_exceptions[0], ValueError)


def test_issue9_item14_empty_exceptions_is_value_error():
    """issue 9 item 14 (H2): an empty iterable is the right type with a
    wrong value: ValueError."""
    tcs = st.TaskCompletionSource()
    with pytest.raises(ValueError, match="empty"):
        tcs.set_exception([])
    assert not tcs.task.is_completed


def test_issue9_item14_sweep_other_exception_entry_points():
    """issue 9 item 14 (H2): the other places that take exceptions answer a
    non-exception with TypeError too: Task.from_exception, ValueTask.
    from_exception, AsyncTaskMethodBuilder.set_exception, AggregateError,
    a ValueTask source whose get_status returns a non-status."""
    with pytest.raises(TypeError):
        Task.from_exception("x")
    with pytest.raises(TypeError):
        st.ValueTask.from_exception("x")
    b = st.AsyncTaskMethodBuilder.create()
    with pytest.raises(TypeError):
        b.set_exception("x")
    with pytest.raises(TypeError, match=r"exceptions\[1\]"):
        st.AggregateError([ValueError(), "x"])
    with pytest.raises(TypeError, match=r"exceptions\[0\]"):
        st.AggregateError("message", [1])
    with pytest.raises(ValueError):
        st.AggregateError([])

    class Source:
        def __init__(self, status):
            self.status = status

        def get_status(self, token):
            return self.status

        def get_result(self, token):
            return 1

        def on_completed(self, continuation, state, token, flags):
            pass
    with pytest.raises(TypeError, match="get_status"):
        st.ValueTask(Source("x"), 0).is_completed
    with pytest.raises(ValueError, match="get_status"):
        st.ValueTask(Source(9), 0).is_completed
    with pytest.raises(ValueError, match="get_status"):
        st.ValueTask(Source(2**80), 0).is_completed


# ---------------------------------------------------------------------------
# item 27: one parser per kind of argument, used by every entry point (H2)
# ---------------------------------------------------------------------------

def _pending():
    return st.TaskCompletionSource().task


def _fake():
    return st.FakeTimeProvider()


def _with_periodic(use):
    """Calls use(timer) on a new PeriodicTimer(1) and disposes it at once:
    an undisposed one stays armed until the collector finds it (as in
    .NET, its finalizer disposes it), and timers left armed meanwhile
    upset the later tests that count them (test_semaphore's K4 tests
    failed on 3.13 after this file)."""
    p = st.PeriodicTimer(1)
    try:
        return use(p)
    finally:
        p.dispose()


_TC = st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY

# (id, callable taking the value, the parameter name the error must name)
TIMEOUT_ENTRY_POINTS = [
    ("Task.wait", lambda v: _pending().wait(v), "timeout"),
    ("Task.wait(done)", lambda v: Task.from_result(1).wait(v), "timeout"),
    ("Task.wait+token", lambda v: _pending().wait(v, CTS().token),
     "timeout"),
    ("Task.delay", lambda v: Task.delay(v), "seconds"),
    ("Task.delay+token", lambda v: Task.delay(v, cancellation_token=CTS()
                                              .token), "seconds"),
    ("Task.delay+provider", lambda v: Task.delay(v, time_provider=_fake()),
     "seconds"),
    ("Task.wait_async", lambda v: _pending().wait_async(v), "timeout"),
    ("Task.wait_async(done)", lambda v: Task.from_result(1).wait_async(v),
     "timeout"),
    ("Task.wait_async+provider",
     lambda v: _pending().wait_async(v, time_provider=_fake()), "timeout"),
    ("Task.wait_all", lambda v: Task.wait_all([_pending()], timeout=v),
     "timeout"),
    ("Task.wait_any", lambda v: Task.wait_any([_pending()], timeout=v),
     "timeout"),
    ("CancellationTokenSource", lambda v: CTS(v), "delay"),
    ("CancellationTokenSource+provider",
     lambda v: CTS(v, time_provider=_fake()), "delay"),
    ("cancel_after", lambda v: CTS().cancel_after(v), "delay"),
    ("SemaphoreSlim.wait", lambda v: st.SemaphoreSlim(0).wait(v),
     "timeout"),
    ("SemaphoreSlim.wait+token",
     lambda v: st.SemaphoreSlim(0).wait(v, CTS().token), "timeout"),
    ("SemaphoreSlim.wait_async", lambda v: st.SemaphoreSlim(0).wait_async(v),
     "timeout"),
    ("Timer(due)", lambda v: st.Timer(lambda s: None, None, v, -1), "due"),
    ("Timer(period)", lambda v: st.Timer(lambda s: None, None, -1, v),
     "period"),
    ("Timer.change", lambda v: st.Timer(lambda s: None).change(v, -1),
     "due"),
    ("TimeProvider.create_timer",
     lambda v: st.TimeProvider.system.create_timer(lambda s: None, None, v,
                                                   -1), "due"),
    ("FakeTimeProvider.create_timer",
     lambda v: _fake().create_timer(lambda s: None, None, -1, v), "period"),
    ("PeriodicTimer", lambda v: st.PeriodicTimer(v), "period"),
    ("PeriodicTimer.period",
     lambda v: _with_periodic(lambda p: setattr(p, "period", v)), "value"),
]

# (value, expected exception)
BAD_TIMEOUTS = [
    ("x", TypeError), (object(), TypeError), ([1], TypeError),
    (True, TypeError), (False, TypeError),
    (math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError),
    (-2, ValueError), (-0.5, ValueError), (2**70, ValueError),
    (-2**70, ValueError), (10**400, ValueError), (1e300, ValueError),
    (4294968, ValueError),
]


def _library_still_works():
    """H2: after a refused call, the library keeps working."""
    assert Task.run(lambda: 5).result == 5
    assert Task.delay(0.001).wait(10)
    cts = CTS()
    t = Task.delay(30, cancellation_token=cts.token)
    cts.cancel()
    with pytest.raises(st.AggregateError):
        t.wait(10)
    s = st.SemaphoreSlim(0)
    s.release()
    assert s.wait(0) is True


@pytest.mark.parametrize("value,exc", BAD_TIMEOUTS,
                         ids=[repr(v)[:20] for v, _ in BAD_TIMEOUTS])
@pytest.mark.parametrize("name,call,param", TIMEOUT_ENTRY_POINTS,
                         ids=[e[0] for e in TIMEOUT_ENTRY_POINTS])
def test_issue9_item27_bad_timeouts(name, call, param, value, exc):
    """issue 9 item 27 (H2, SPEC 0): every entry point that takes a time
    checks it with the one parser: a wrong type (bool included: a bool is
    not a timeout) is TypeError, NaN, infinities, negatives other than -1
    and values beyond 4294967.294 s are ValueError, each naming the
    parameter; nothing is left behind and the library keeps working."""
    with pytest.raises(exc, match=param):
        call(value)


def test_issue9_item27_timeouts_still_accepted():
    """issue 9 item 27 (SPEC 0): the valid forms still work everywhere:
    int, float, timedelta, None / -1 / INFINITE / Timeout.InfiniteTimeSpan,
    and int subclasses that are not bool."""
    import datetime
    t = Task.from_result(1)
    for v in (0, 0.0, 1, 2.5, datetime.timedelta(seconds=1), None, -1,
              -1.0, st.INFINITE, datetime.timedelta(milliseconds=-1),
              st.TaskStatus.RUNNING, 4294967.294):
        assert t.wait(v) is True
    assert st._native._parse_timeout(datetime.timedelta(milliseconds=-1)) \
        is None
    assert st._native._parse_timeout(-1) is None
    assert st._native._parse_timeout(2) == 2.0
    sem = st.SemaphoreSlim(0)
    with pytest.raises(ValueError, match="timeout"):  # its int-ms cap
        sem.wait(2147484.0)
    _library_still_works()


class _NotAToken:
    is_cancellation_requested = False  # no can_be_canceled, no register


TOKEN_ENTRY_POINTS = [
    ("Task.wait", lambda v: Task.from_result(1).wait(cancellation_token=v),
     "cancellation_token"),
    ("Task.wait(pending)", lambda v: _pending().wait(0, v),
     "cancellation_token"),
    ("Task.wait_async", lambda v: _pending().wait_async(1, v),
     "cancellation_token"),
    ("Task.wait_async(done)",
     lambda v: Task.from_result(1).wait_async(cancellation_token=v),
     "cancellation_token"),
    ("Task.wait_async+provider",
     lambda v: _pending().wait_async(1, v, time_provider=_fake()),
     "cancellation_token"),
    ("Task.delay", lambda v: Task.delay(1, cancellation_token=v),
     "cancellation_token"),
    ("Task.delay+provider",
     lambda v: Task.delay(1, cancellation_token=v, time_provider=_fake()),
     "cancellation_token"),
    ("Task.run", lambda v: Task.run(lambda: 1, cancellation_token=v),
     "cancellation_token"),
    ("Task.factory.start_new",
     lambda v: Task.factory.start_new(lambda: 1, cancellation_token=v),
     "cancellation_token"),
    ("Task.continue_with",
     lambda v: _pending().continue_with(lambda a: 1, cancellation_token=v),
     "cancellation_token"),
    ("SemaphoreSlim.wait", lambda v: st.SemaphoreSlim(1).wait(0, v),
     "cancellation_token"),
    ("SemaphoreSlim.wait(blocked)", lambda v: st.SemaphoreSlim(0).wait(0, v),
     "cancellation_token"),
    ("SemaphoreSlim.wait_async",
     lambda v: st.SemaphoreSlim(1).wait_async(None, v),
     "cancellation_token"),
    ("SemaphoreSlim.wait_async(blocked)",
     lambda v: st.SemaphoreSlim(0).wait_async(1, cancellation_token=v),
     "cancellation_token"),
    ("TaskCompletionSource.set_canceled",
     lambda v: st.TaskCompletionSource().set_canceled(v), "token"),
    ("TaskCompletionSource.try_set_canceled",
     lambda v: st.TaskCompletionSource().try_set_canceled(token=v), "token"),
    ("Task.from_canceled", lambda v: Task.from_canceled(v), "token"),
    ("ValueTask.from_canceled", lambda v: st.ValueTask.from_canceled(v),
     "token"),
    ("PeriodicTimer.wait_for_next_tick_async",
     lambda v: _with_periodic(lambda p: p.wait_for_next_tick_async(v)),
     "cancellation_token"),
    ("create_linked_token_source",
     lambda v: CTS.create_linked_token_source(v), "tokens"),
    ("OperationCanceledError",
     lambda v: st.OperationCanceledError(cancellation_token=v),
     "cancellation_token"),
    ("TaskCanceledError",
     lambda v: st.TaskCanceledError(cancellation_token=v),
     "cancellation_token"),
]

BAD_TOKENS = [("garbage", TypeError), (1, TypeError), (True, TypeError),
              (1.5, TypeError), (object(), TypeError), (CTS(), TypeError),
              (_NotAToken(), TypeError)]


@pytest.mark.parametrize("value,exc", BAD_TOKENS,
                         ids=[type(v).__name__ for v, _ in BAD_TOKENS])
@pytest.mark.parametrize("name,call,param", TOKEN_ENTRY_POINTS,
                         ids=[e[0] for e in TOKEN_ENTRY_POINTS])
def test_issue9_item27_bad_tokens(name, call, param, value, exc):
    """issue 9 item 27 (H2, K3): a cancellation token that is not one is a
    TypeError naming the parameter everywhere: never an AttributeError,
    never silently ignored (SemaphoreSlim(1).wait(0, "garbage") used to
    return True, tcs.set_canceled("x") used to cancel)."""
    with pytest.raises(exc, match=param):
        call(value)


def test_issue9_item27_refused_token_leaves_nothing_behind():
    """issue 9 item 27 (H2): a refused token takes nothing: the semaphore
    keeps its count, the source's task stays pending."""
    s = st.SemaphoreSlim(1)
    with pytest.raises(TypeError):
        s.wait(0, "garbage")
    with pytest.raises(TypeError):
        s.wait_async(None, "garbage")
    assert s.current_count == 1
    tcs = st.TaskCompletionSource()
    with pytest.raises(TypeError):
        tcs.set_canceled("x")
    assert not tcs.task.is_completed
    tcs.set_canceled(CTS().token)
    assert tcs.task.is_canceled
    _library_still_works()


def test_issue9_item27_token_objects_still_accepted():
    """issue 9 item 27 (K3): None, CancellationToken.none, native tokens and
    foreign token objects (is_cancellation_requested, can_be_canceled,
    register) are still accepted."""
    cts = CTS()

    class Foreign:
        is_cancellation_requested = property(
            lambda self: cts.is_cancellation_requested)
        can_be_canceled = True

        def register(self, cb):
            return cts.token.register(cb)
    for tok in (None, st.CancellationToken.none, cts.token, Foreign()):
        assert Task.from_result(1).wait(1, tok) is True
        assert st.SemaphoreSlim(1).wait(0, tok) is True
        assert Task.run(lambda: 2, cancellation_token=tok).result == 2
        assert st._native._parse_token(tok) is tok
    t = st.TaskCompletionSource()
    t.set_canceled(None)
    assert t.task.is_canceled


OPTIONS_ENTRY_POINTS = [
    ("TaskCompletionSource", lambda v: st.TaskCompletionSource(None, v)),
    ("TaskCompletionSource(options=)",
     lambda v: st.TaskCompletionSource(options=v)),
    ("Task.continue_with",
     lambda v: _pending().continue_with(lambda a: 1, options=v)),
    ("Task.factory.start_new",
     lambda v: Task.factory.start_new(lambda: 1, options=v)),
    ("Task.configure_await", lambda v: _pending().configure_await(v)),
]

BAD_OPTIONS = [("x", TypeError), (1.5, TypeError), (None, TypeError),
               (math.nan, TypeError), (True, TypeError), (object(), TypeError),
               (-1, ValueError), (2**32, ValueError), (2**64, ValueError),
               (2**70, ValueError), (-2**70, ValueError),
               (0x100, ValueError), (2**31, ValueError)]


@pytest.mark.parametrize("value,exc", BAD_OPTIONS,
                         ids=[repr(v)[:20] for v, _ in BAD_OPTIONS])
@pytest.mark.parametrize("name,call", OPTIONS_ENTRY_POINTS,
                         ids=[e[0] for e in OPTIONS_ENTRY_POINTS])
def test_issue9_item27_bad_options(name, call, value, exc):
    """issue 9 item 27 (H2): options are checked by one parser: a wrong
    type is TypeError, a negative, out-of-range (no more silent truncation
    of 2**70 or 2**64) or unknown bit is ValueError, naming options.
    (configure_await's bool form is its other overload.)"""
    if name == "Task.configure_await" and isinstance(value, bool):
        assert _pending().configure_await(value) is not None
        return
    with pytest.raises(exc, match="options"):
        call(value)


def test_issue9_item27_options_still_accepted():
    """issue 9 item 27: enum members, their combinations and plain ints in
    range still work."""
    TCO = st.TaskCreationOptions
    assert st.TaskCompletionSource(None, 0x40).task.creation_options == 0x40
    assert st.TaskCompletionSource(
        None, TCO.ATTACHED_TO_PARENT | TCO.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    ).task.creation_options == 0x44
    t = Task.from_result(1).continue_with(lambda a: 2, options=_TC)
    assert t.result == 2
    t = Task.factory.start_new(lambda: 3, options=TCO.LONG_RUNNING)
    assert t.result == 3
    assert Task.from_result(1).configure_await(
        st.ConfigureAwaitOptions.SUPPRESS_THROWING) is not None


COUNT_ENTRY_POINTS = [
    ("SemaphoreSlim(initial_count)", lambda v: st.SemaphoreSlim(v),
     "initial_count", 0),
    ("SemaphoreSlim(maximum_count)", lambda v: st.SemaphoreSlim(0, v),
     "maximum_count", 1),
    ("SemaphoreSlim.release", lambda v: st.SemaphoreSlim(0).release(v),
     "release_count", 1),
]

BAD_COUNTS = [("x", TypeError), (1.5, TypeError), (math.nan, TypeError),
              (True, TypeError), (False, TypeError), (object(), TypeError),
              (-2, ValueError), (2**31, ValueError), (2**63 - 1, ValueError),
              (2**70, ValueError), (-2**70, ValueError)]


@pytest.mark.parametrize("value,exc", BAD_COUNTS,
                         ids=[repr(v)[:20] for v, _ in BAD_COUNTS])
@pytest.mark.parametrize("name,call,param,low", COUNT_ENTRY_POINTS,
                         ids=[e[0] for e in COUNT_ENTRY_POINTS])
def test_issue9_item27_bad_counts(name, call, param, low, value, exc):
    """issue 9 item 27 (H2, K4): counts are .NET ints: a wrong type (bool
    included) is TypeError; below the minimum or beyond 2**31-1 is
    ValueError (maximum_count used to reach 2**63-1), naming the
    parameter."""
    with pytest.raises(exc, match=param):
        call(value)
    with pytest.raises(ValueError, match=param):
        call(low - 1)


def test_issue9_item27_counts_still_accepted():
    """issue 9 item 27 (K4): in-range counts, None as maximum_count, and
    ThreadPool's counts (type-checked by the same parser; out of range
    is False, as .NET)."""
    s = st.SemaphoreSlim(2**31 - 1, 2**31 - 1)
    assert s.current_count == 2**31 - 1
    assert st.SemaphoreSlim(0, None).release(2**31 - 1) == 0
    for bad in ("x", 1.5, True, None):
        with pytest.raises(TypeError, match="n"):
            st.ThreadPool.set_min_threads(bad)
        with pytest.raises(TypeError, match="n"):
            st.ThreadPool.set_max_threads(bad)
    assert st.ThreadPool.set_min_threads(-1) is False
    assert st.ThreadPool.set_min_threads(2**70) is False  # above the max
    assert st.ThreadPool.set_min_threads(-2**70) is False
    _library_still_works()


def test_issue9_item27_time_provider_and_fake_clock_arguments():
    """issue 9 item 27 (H2, P6a): CancellationTokenSource's time_provider
    is checked at once (it used to fail with AttributeError at the first
    cancel_after); FakeTimeProvider.advance refuses bool (TypeError) and
    NaN / inf / huge amounts (ValueError) instead of OverflowError."""
    with pytest.raises(TypeError, match="time_provider"):
        CTS(time_provider="x")
    with pytest.raises(TypeError, match="time_provider"):
        CTS(5, time_provider=1)
    fake = _fake()
    for bad, exc in ((True, TypeError), ("1", TypeError),
                     (math.nan, ValueError), (math.inf, ValueError),
                     (1e300, ValueError), (-1, ValueError)):
        with pytest.raises(exc, match="delta"):
            fake.advance(bad)
    fake.advance(1)
    _library_still_works()


def test_issue9_item27_python_parsers_are_the_c_parsers():
    """issue 9 item 27: the thin Python wrappers answer exactly as the C
    entry points do, and validate their own arguments."""
    for v, exc in BAD_TIMEOUTS:
        with pytest.raises(exc, match="xyz"):
            st._native._parse_timeout(v, "xyz")
    with pytest.raises(TypeError):
        st._native._parse_timeout()
    with pytest.raises(TypeError, match="tok"):
        st._native._parse_token("garbage", "tok")
    with pytest.raises(ValueError, match="opt"):
        st._native._parse_options(0x8, "opt", "X", 0x7)
    assert st._native._parse_options(0x5, "opt", "X", 0x7) == 5
    with pytest.raises(ValueError, match="cnt"):
        st._native._parse_count(11, "cnt", 0, 10)
    assert st._native._parse_count(10, "cnt", 0, 10) == 10
    with pytest.raises(TypeError):
        st._native._parse_count(1)  # the name is required


def test_issue9_item23_install_validates_its_hook():
    """issue 9 item 23 sweep (H2): _native._install refuses a hook that is
    not callable (it would fail at every unobserved report)."""
    with pytest.raises(TypeError, match="unobserved_hook"):
        st._native._install(unobserved_hook=5)


@pytest.mark.timeout(120)
def test_issue9_item23_underscore_callables_survive_bad_arguments():
    """issue 9 item 23 sweep (H2): every underscore callable of the module
    and of its types (from the method tables), called with wrong
    arguments, raises an ordinary exception or does something harmless:
    never an abort, a crash or a SystemError, and the library works
    afterwards (in a subprocess: an abort fails the test).  Left out: the
    pool's tuning (another helper's item) and _install (tested above).
    The lifecycle hooks are no attributes any more (test_hardening_integ);
    _take_lifecycle_hooks, already used by the import, only raises."""
    p = run_ok("""
        import sharptask as st
        from sharptask import _native as n
        T = st.Task
        skip = {"_pool_set_tuning", "_pool_set_threads", "_install",
                "_TimerHandle"}
        owners = [n, T, st.TaskCompletionSource(),
                  st.CancellationTokenSource(), st.CancellationToken(),
                  st.SemaphoreSlim(1), st.ValueTask.from_result(1),
                  st.ManualResetValueTaskSourceCore(),
                  st.SingleThreadSynchronizationContext(),
                  st.SynchronizationContext()]
        def bad_args():
            p = st.TaskCompletionSource().task
            return [(), (None,), ("x",), (-1,), (2**70,), (float("nan"),),
                    (True,), (object(), object()), (T.from_result(1),),
                    (p,), (p, p), (p, "x"), (p, -2), (lambda: 1, (), 2**70),
                    (lambda: 1, "x", 0), (None, None, None, None)]
        calls = errors = 0
        for owner in owners:
            for name in dir(owner):
                if not name.startswith("_") or name.startswith("__") \\
                        or name in skip:
                    continue
                fn = getattr(owner, name)
                if not callable(fn):
                    continue
                for args in bad_args():
                    if name == "_context_owner" and len(args) == 2:
                        args = (args[0], False)  # leave no stale owner
                    calls += 1
                    try:
                        r = fn(*args)
                    except SystemError as e:
                        raise AssertionError((name, args, e))
                    except Exception:
                        errors += 1
                    else:
                        if isinstance(r, T) and r.is_completed:
                            try:
                                r.exception
                            except Exception:
                                pass
        assert T.run(lambda: 5).result == 5
        assert T.delay(0.001).wait(10)
        s = st.SemaphoreSlim(0); s.release(); assert s.wait(0)
        print("ok", calls, errors)
    """, timeout=90)
    assert p.stdout.startswith("ok"), p.stdout


def test_issue9_item14_sweep_messages_and_policy():
    """issue 9 item 14 sweep (H2): the option errors show the value (the
    '%#x' format, unknown to PyErr_Format, used to print itself), and
    set_unhandled_exception_policy with a non-str is a TypeError (it was a
    ValueError)."""
    with pytest.raises(ValueError) as ei:
        st.TaskCompletionSource(None, 1)
    assert "0x1 " in str(ei.value) and "%" not in str(ei.value)
    TC = st.TaskContinuationOptions
    bad = TC.NOT_ON_RAN_TO_COMPLETION | TC.NOT_ON_FAULTED | TC.NOT_ON_CANCELED
    with pytest.raises(ValueError) as ei:
        _pending().continue_with(lambda a: 1, options=bad)
    assert "0x70000" in str(ei.value) and "%" not in str(ei.value)
    with pytest.raises(ValueError) as ei:
        _pending().continue_with(lambda a: 1, options=0x100)
    assert "256" in str(ei.value) and "%" not in str(ei.value)
    with pytest.raises(TypeError, match="policy"):
        st.set_unhandled_exception_policy(5)
    with pytest.raises(ValueError, match="policy"):
        st.set_unhandled_exception_policy("explode")


def test_issue9_item14_builder_awaiter_without_on_completed():
    """issue 9 item 14 sweep (H2): AsyncTaskMethodBuilder.await_on_completed
    / await_unsafe_on_completed with something that is not an awaiter are
    TypeErrors naming the awaiter (they were AttributeErrors)."""
    b = st.AsyncTaskMethodBuilder.create()

    class SM:
        def move_next(self):
            pass
    for meth in (b.await_on_completed, b.await_unsafe_on_completed):
        for bad in (object(), 1, None):
            with pytest.raises(TypeError, match="awaiter"):
                meth(bad, SM())
