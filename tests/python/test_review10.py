"""Issue 10 review leftovers (branch review10).

- the Executor's futures read result()/exception()'s timeout as
  concurrent.futures does (py_args.c's lenient mode): the same answer, and
  the same error types, as ThreadPoolExecutor's futures for every value
  (SPEC I2);
- Executor.shutdown(wait=True) sleeps until the last run ended instead of
  polling, and Ctrl-C still interrupts it (SPEC I2, T6);
- repeated submit/result and shutdowns leave nothing behind;
- an unreferenced PeriodicTimer with no wait pending is collected and its
  timer stopped, as .NET's finalizer does; a pending wait keeps it (SPEC
  P5).
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime
import decimal
import fractions
import gc
import math
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

import sharptask as st
from sharptask import _executor

# ------------------------------------------- result()/exception() timeout

# Values whose answer comes at once on a pending future (no wait, or a
# wait of at most a few milliseconds), each checked against the base
# class, which is what ThreadPoolExecutor's futures are.
TIMEOUT_VALUES = [
    0, -1, -5.5, 0.0, -0.0, False, 5e-324, 0.001, math.nan, -math.inf,
    -10**30, -10**400, math.inf, 1e300, 10**30, 10**400, 9223372037,
    9223372037.0, 2**63, "1", b"1", [], object(), 1j,
    decimal.Decimal("0.01"), decimal.Decimal("-1"), decimal.Decimal("NaN"),
    fractions.Fraction(1, 100), fractions.Fraction(-1, 2),
    datetime.timedelta(seconds=0.01), datetime.timedelta(-1),
]


def _outcome(call):
    try:
        return ("ok", call())
    except BaseException as e:  # compared below, whatever it is
        return (type(e), str(e))


def _check_same(ours, theirs, value, method):
    """Our future's answer matches the base class's for one value."""
    what = f"{method}({value!r})"
    assert ours[0] is theirs[0], f"{what}: {ours} != {theirs}"
    if ours[0] == "ok":
        assert ours[1] == theirs[1], what
    elif ours[0] is TypeError:
        # CPython's own text, after the parameter's name (H2)
        assert ours[1].startswith(f"{method}(): timeout"), what
        assert theirs[1] in ours[1], what
    elif ours[0] is OverflowError:
        assert f"{method}(): timeout" in ours[1], what


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["result", "exception"])
def test_issue10_review_I2_timeout_table_matches_concurrent_futures(method):
    """issue 10 review, SPEC I2: for every timeout value, a pending, a
    finished and a cancelled Executor future answer as a
    ThreadPoolExecutor's future (concurrent.futures.Future) does: the
    same result or exception type (TimeoutError, TypeError with CPython's
    message after the parameter's name, OverflowError), and a future that
    is done never looks at its timeout."""
    values = list(TIMEOUT_VALUES)
    if method == "result":
        values.append(True)  # as an int: a one-second wait, then timeout
    with st.Executor() as ex, cf.ThreadPoolExecutor(1) as tpe:
        done_ours, done_theirs = ex.submit(int, 7), tpe.submit(int, 7)
        err_ours = ex.submit(operator_truediv, 1, 0)
        err_theirs = tpe.submit(operator_truediv, 1, 0)
        for f in (done_ours, done_theirs, err_ours, err_theirs):
            f.exception(10)
        pending_ours, pending_theirs = _executor._Future(), cf.Future()
        gone_ours, gone_theirs = _executor._Future(), cf.Future()
        assert gone_ours.cancel() and gone_theirs.cancel()
        pairs = [(pending_ours, pending_theirs), (done_ours, done_theirs),
                 (err_ours, err_theirs), (gone_ours, gone_theirs)]
        for value in values + [None, 9223372036]:
            for ours, theirs in pairs:
                if ours is pending_ours and (value is None
                                             or value == 9223372036):
                    continue  # no limit (or 292 years): not waited here
                a = _outcome(lambda: getattr(ours, method)(value))
                b = _outcome(lambda: getattr(theirs, method)(value))
                if a[0] is ZeroDivisionError:
                    a, b = (a[0], ""), (b[0], "")
                elif isinstance(a[1], ZeroDivisionError):
                    a, b = ("ok", type(a[1])), ("ok", type(b[1]))
                _check_same(a, b, value, method)
                # and by keyword
                a = _outcome(lambda: getattr(ours, method)(timeout=value))
                b = _outcome(lambda: getattr(theirs, method)(timeout=value))
                if a[0] is ZeroDivisionError:
                    a, b = (a[0], ""), (b[0], "")
                elif isinstance(a[1], ZeroDivisionError):
                    a, b = ("ok", type(a[1])), ("ok", type(b[1]))
                _check_same(a, b, value, method)
        pending_ours.set_result(None)


def operator_truediv(a, b):
    return a / b


@pytest.mark.timeout(30)
def test_issue10_review_I2_timeout_waits_then_times_out_or_finishes():
    """issue 10 review, SPEC I2: a positive timeout on a pending future
    waits (TimeoutError when it passes); a completion during the wait
    ends it with the value."""
    f = _executor._Future()
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        f.result(0.05)
    assert time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, f.set_result, (5,)).start()
    assert f.result(20) == 5 and f.exception(0) is None


@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout", [True, 5, 2.5, None])
def test_issue10_review_I2_map_timeout_accepts_what_concurrent_futures_does(
        timeout):
    """issue 10 review, SPEC I2: Executor.map's timeout takes what
    ThreadPoolExecutor.map's does (a bool counts as an int, as in the
    futures' result(timeout)); the results come back in order."""
    with cf.ThreadPoolExecutor(1) as peer:
        want = list(peer.map(abs, [-1, -2, -3], timeout=timeout))
    with st.Executor() as ex:
        assert list(ex.map(abs, [-1, -2, -3], timeout=timeout)) == want


@pytest.mark.parametrize("timeout", ["1", b"1", [1]])
def test_issue10_review_I2_map_bad_timeout_type_names_it(timeout):
    """issue 10 review, SPEC I2: a timeout that is not a number is a
    TypeError naming the parameter, raised by the call to map."""
    with st.Executor() as ex:
        with pytest.raises(TypeError, match="timeout"):
            ex.map(abs, [1], timeout=timeout)


# ------------------------------------------------------ shutdown(wait=True)


@pytest.mark.timeout(60)
def test_issue10_review_I2_shutdown_wait_sleeps_until_the_last_run_ends():
    """issue 10 review, SPEC I2: shutdown(wait=True) returns once every
    run has ended (its done callbacks too, and the executor has forgotten
    the future), and sleeps meanwhile: no polling loop while a finished
    future's run is still ending (it called time.sleep, list and _wait
    about 2,000 times in 0.3 s before)."""
    ex = st.Executor()
    gate = threading.Event()
    ended = threading.Event()

    def slow_callback(_f):
        time.sleep(0.3)  # the future is done, its run not ended
        ended.set()
    f = ex.submit(gate.wait, 20)
    f.add_done_callback(slow_callback)
    calls = [0]

    def profile(_frame, event, _arg):
        if event == "c_call":
            calls[0] += 1
    opener = threading.Timer(0.05, gate.set)
    opener.start()
    sys.setprofile(profile)
    try:
        ex.shutdown(wait=True)
    finally:
        sys.setprofile(None)
    opener.join(10)
    assert f.done() and f.result() is True
    assert ended.is_set()
    assert ex._items == {}
    assert calls[0] < 50, f"{calls[0]} C calls while waiting: polling"


@pytest.mark.timeout(60)
def test_issue10_review_I2_shutdown_wait_with_max_workers_and_many_items():
    """issue 10 review, SPEC I2 (stress, bounded): shutdown(wait=True)
    from several threads at once, with a bounded executor whose items
    queue each other: all return, after every item ran."""
    ex = st.Executor(max_workers=2)
    ran = []
    lock = threading.Lock()

    def item(i):
        time.sleep(0.0005)
        with lock:
            ran.append(i)
    fs = [ex.submit(item, i) for i in range(300)]
    errors = []

    def closer():
        try:
            ex.shutdown(wait=True)
            assert all(f.done() for f in fs)
        except BaseException as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=closer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(ran) == list(range(300))
    assert ex._items == {}


@pytest.mark.timeout(60)
def test_issue10_review_I2_ctrl_c_interrupts_shutdown_wait():
    """issue 10 review, SPEC I2/T6: SIGINT during shutdown(wait=True) with
    an item still running raises KeyboardInterrupt at once; a second
    shutdown(wait=True) after the item was let go returns."""
    code = textwrap.dedent("""
        import threading, sharptask as st
        ex = st.Executor()
        gate = threading.Event()
        f = ex.submit(gate.wait, 60)
        print("waiting", flush=True)
        try:
            ex.shutdown(wait=True)
            print("not interrupted", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        gate.set()
        ex.shutdown(wait=True)
        print("drained", f.result(), ex._items == {}, flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "waiting"
        time.sleep(0.3)  # into the wait
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert p.returncode == 0, err
    assert out.split("\n")[:2] == ["interrupted", "drained True True"], \
        (out, err)
    assert took < 20


# ------------------------------------------------------------------ leaks


_LEAK_EX = None


def _leak_executor():
    global _LEAK_EX
    if _LEAK_EX is None:
        _LEAK_EX = st.Executor()
    return _LEAK_EX


def _pair(a, b):
    return (a, b)


def _raise_with(a, b):
    raise KeyError(a, b)


def op_submit_result(sentinel, fresh):
    r = _leak_executor().submit(_pair, sentinel, fresh).result(10)
    assert r[0] is sentinel


def op_submit_exception(sentinel, fresh):
    e = _leak_executor().submit(_raise_with, sentinel, fresh).exception(10)
    assert isinstance(e, KeyError)


def op_timeout_then_set(sentinel, fresh):
    f = _executor._Future()
    try:
        f.result(0)
    except cf.TimeoutError:
        pass
    try:
        f.exception(-1)
    except cf.TimeoutError:
        pass
    f.set_result((sentinel, fresh))
    assert f.result("any")[0] is sentinel  # done: timeout unread


def op_bad_timeout(sentinel, fresh):
    f = _executor._Future()
    try:
        f.result(fresh)
    except TypeError:
        pass
    f.set_result(sentinel)


def op_wait_and_shutdown(sentinel, fresh):
    ex = st.Executor(max_workers=1)
    fs = [ex.submit(_pair, sentinel, fresh) for _ in range(2)]
    cf.wait(fs, timeout=10)
    ex.shutdown(wait=True)
    assert fs[1].result()[0] is sentinel


LEAK_OPS = [op_submit_result, op_submit_exception, op_timeout_then_set,
            op_bad_timeout, op_wait_and_shutdown]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("op", LEAK_OPS,
                         ids=[o.__name__[3:] for o in LEAK_OPS])
def test_issue10_review_I2_repeated_submit_result_is_flat(op):
    """issue 10 review, SPEC I2: repeated submit/result, exception(),
    timeouts (good and bad) and shutdown waits leave no reference, object
    or memory behind."""
    from test_leaks import check_flat
    check_flat(op, reps=3000, warmup=300)


# ---------------------------------------------------------- PeriodicTimer


def _collect():
    for _ in range(3):
        gc.collect()


@pytest.mark.timeout(30)
def test_issue10_review_P5_unreferenced_periodic_timer_is_collected():
    """issue 10 review, SPEC P5: as .NET's (its timer's callback refers to
    the state only, and ~PeriodicTimer() disposes), a PeriodicTimer that
    nobody refers to and nobody awaits is collected, and its timer is
    disposed: it stops ticking.  Before, its timer kept it alive and
    armed for good."""
    t = st.PeriodicTimer(0.002)
    inner = t._timer
    ref = weakref.ref(t)
    del t
    _collect()
    assert ref() is None
    assert inner._disposed and inner._shot is None


@pytest.mark.timeout(30)
def test_issue10_review_P5_unreferenced_fake_periodic_timer_leaves_provider():
    """issue 10 review, SPEC P5: with a FakeTimeProvider, dropping an idle
    PeriodicTimer disposes its provider timer (the provider no longer
    lists it); a tick not consumed before does not keep it either."""
    fake = st.FakeTimeProvider()
    t = st.PeriodicTimer(1, time_provider=fake)
    fake.advance(1)  # a pending tick
    ref = weakref.ref(t)
    assert len(fake._timers) == 1
    del t
    _collect()
    assert ref() is None
    assert fake._timers == []
    fake.advance(5)  # nothing left to run


@pytest.mark.timeout(30)
def test_issue10_review_P5_pending_wait_keeps_the_periodic_timer():
    """issue 10 review, SPEC P5: while a wait is pending, the armed timer
    keeps the PeriodicTimer (and so the awaiting code) alive, as .NET's
    State._owner does; the tick completes the wait with True, and then
    the timer is free to go."""
    fake = st.FakeTimeProvider()
    t = st.PeriodicTimer(1, time_provider=fake)
    vt = t.wait_for_next_tick_async().as_task()
    ref = weakref.ref(t)
    del t
    _collect()
    assert ref() is not None and len(fake._timers) == 1
    fake.advance(1)
    assert vt.wait(10) and vt.result is True
    _collect()
    assert ref() is None
    assert fake._timers == []


@pytest.mark.timeout(30)
def test_issue10_review_P5_awaiting_loop_ticks_while_unreferenced():
    """issue 10 review, SPEC P5: an async method that awaits ticks of a
    timer only it knows keeps ticking (the pending wait roots it), and
    stops when it leaves the loop and disposes."""
    got = []

    @st.async_method
    async def ticker():
        with st.PeriodicTimer(0.005) as timer:
            while await timer.wait_for_next_tick_async():
                got.append(1)
                if len(got) == 3:
                    return len(got)
    task = ticker()
    _collect()
    assert task.wait(20) and task.result == 3
