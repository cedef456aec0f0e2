"""Timers and virtual time: SPEC P5 and P6a (reference sections 8.1-8.17,
scenarios S8.1-S8.10).

Wall-clock timers are checked for "not earlier than due" and generous
upper bounds only (reference 12); exact counts come from FakeTimeProvider,
which fires timers synchronously inside advance().
"""

from __future__ import annotations

import contextvars
import json
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

import sharptask as st
from conftest import make_cts, run_script, wait_until

Timer = st.Timer
PeriodicTimer = st.PeriodicTimer
TimeProvider = st.TimeProvider
FakeTimeProvider = st.FakeTimeProvider


def _run(code: str, timeout: float = 40.0) -> dict:
    r = run_script(textwrap.dedent(code), timeout=timeout)
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ Timer


@pytest.mark.timeout(30)
def test_P5_timer_one_shot_calls_callback_with_state_on_a_pool_thread():
    """P5 / reference 8.1, 8.2: callback(state) runs once, on a pool
    thread, not before the due time; period -1 (and 0) is one-shot."""
    for period in (-1, 0, None):
        calls = []
        ev = threading.Event()
        t0 = time.monotonic()

        def cb(state):
            calls.append((state, threading.get_ident(),
                          time.monotonic() - t0))
            ev.set()

        timer = Timer(cb, "s", 0.03, period)
        assert ev.wait(10)
        time.sleep(0.08)
        timer.dispose()
        assert len(calls) == 1, (period, calls)
        state, ident, at = calls[0]
        assert state == "s" and ident != threading.get_ident()
        assert at >= 0.029  # never early (monotonic; 1 ms clock slack)


@pytest.mark.timeout(30)
def test_P5_timer_periodic_fires_until_disposed():
    """P5 / reference 8.3, 8.5: a periodic timer keeps firing; dispose()
    stops it and is idempotent."""
    count = [0]
    timer = Timer(lambda s: count.__setitem__(0, count[0] + 1), None,
                  0.0, 0.01)
    wait_until(lambda: count[0] >= 4, timeout=10)
    timer.dispose()
    timer.dispose()
    time.sleep(0.05)  # a callback already running may finish
    n = count[0]
    time.sleep(0.1)
    assert count[0] == n


@pytest.mark.timeout(30)
def test_P5_timer_due_zero_is_queued_never_inline():
    """Reference 8.1: due 0 fires as soon as possible, queued to the pool,
    never inline in the constructor."""
    seen = []
    ev = threading.Event()
    Timer(lambda s: (seen.append(threading.get_ident()), ev.set()),
          None, 0, -1)
    assert seen == [] or seen[0] != threading.get_ident()
    assert ev.wait(10)
    assert seen[0] != threading.get_ident()


@pytest.mark.timeout(30)
def test_P5_timer_without_state_is_stopped_and_passes_itself():
    """Reference 8.1: Timer(callback) is registered but stopped; its state
    is the timer itself."""
    got = []
    ev = threading.Event()
    timer = Timer(lambda s: (got.append(s), ev.set()))
    time.sleep(0.05)
    assert got == []
    assert timer.change(0.01, -1) is True
    assert ev.wait(10)
    assert got == [timer]
    timer.dispose()


@pytest.mark.timeout(30)
def test_P5_timer_change_rebases_and_dispose_forbids_change():
    """P5 / reference 8.4, S8.2: change(due, period) returns True and
    re-bases from now (a long-pending timer changed to a short due time
    fires at the new time); after dispose() it raises
    ObjectDisposedError."""
    ev = threading.Event()
    timer = Timer(lambda s: ev.set(), None, 3600, -1)
    t0 = time.monotonic()
    assert timer.change(0.02, -1) is True
    assert ev.wait(10)
    assert time.monotonic() - t0 < 5
    timer.dispose()
    with pytest.raises(st.ObjectDisposedError):
        timer.change(1, -1)
    with pytest.raises(st.ObjectDisposedError):
        timer.change(-1, -1)


@pytest.mark.timeout(30)
def test_P5_timer_argument_validation():
    """Reference 8.1, S8.1: a non-callable is a TypeError; a due time or a
    period below -1, NaN or above 4294967.294 s is a ValueError naming the
    parameter; -1 / None / INFINITE mean infinite; timedelta works."""
    with pytest.raises(TypeError):
        Timer(None)
    for bad in (-2, -0.5, float("nan"), 4294967.295):
        with pytest.raises(ValueError, match="due"):
            Timer(print, None, bad, -1)
        with pytest.raises(ValueError, match="period"):
            Timer(print, None, -1, bad)
    timer = Timer(print, None, st.INFINITE, None)
    with pytest.raises(ValueError, match="due"):
        timer.change(-2, 1)
    with pytest.raises(ValueError, match="period"):
        timer.change(1, 4294967.295)
    assert timer.change(timedelta(hours=1), timedelta(milliseconds=-1))
    assert timer.change(4294967.294, -1)
    timer.dispose()


VAR = contextvars.ContextVar("timer_var", default="none")


@pytest.mark.timeout(30)
def test_A6_P5_timer_callback_runs_in_the_captured_context():
    """A6 / reference 8.2: callbacks run in the contextvars context captured
    when the timer was made."""
    got = []
    ev = threading.Event()
    token = VAR.set("captured")
    try:
        timer = Timer(lambda s: (got.append(VAR.get()), ev.set()),
                      None, 0.01, -1)
    finally:
        VAR.reset(token)
    assert ev.wait(10)
    assert got == ["captured"]
    timer.dispose()


@pytest.mark.timeout(30)
def test_P5_timer_callback_exception_goes_to_unraisablehook():
    """Reference 8.2: an exception in a callback is unhandled (.NET
    crashes); here it is reported through sys.unraisablehook and the
    timer keeps going."""
    reports = []
    ev = threading.Event()
    count = [0]

    def cb(_):
        count[0] += 1
        raise KeyError("from a timer")

    old = sys.unraisablehook
    sys.unraisablehook = lambda a: (reports.append(a.exc_value), ev.set())
    try:
        timer = Timer(cb, None, 0.0, 0.01)
        assert ev.wait(10)
        wait_until(lambda: count[0] >= 2, timeout=10)
        timer.dispose()
        time.sleep(0.05)
    finally:
        sys.unraisablehook = old
    assert isinstance(reports[0], KeyError)


@pytest.mark.timeout(60)
def test_P5_disposed_timer_skips_callbacks_already_queued():
    """Reference 8.5: dispose() skips a callback that was queued to the
    pool but has not started (checked at fire time)."""
    out = _run("""
        import json, threading, time, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        while tp.thread_count != 1:
            time.sleep(0.005)
        gate, ran = threading.Event(), []
        tp.queue_user_work_item(lambda: gate.wait(10))  # the only worker
        timer = st.Timer(lambda s: ran.append(1), None, 0.0, -1)
        time.sleep(0.1)          # it fired: its callback waits in the queue
        timer.dispose()
        gate.set()
        time.sleep(0.2)
        print(json.dumps(dict(ran=len(ran))))
    """)
    assert out["ran"] == 0


@pytest.mark.timeout(30)
def test_P5_timer_context_manager():
    """Timer is a context manager that disposes on exit."""
    with Timer(print, None, -1, -1) as timer:
        pass
    with pytest.raises(st.ObjectDisposedError):
        timer.change(1, 1)


@pytest.mark.timeout(60)
def test_P5_many_pending_timers_cost_no_thread():
    """P5: one timer thread for everything: 100k pending delays and 1000
    pending Timers add no thread, and the interpreter still exits cleanly
    (no crash, no hang, rc 0) with all of them armed."""
    out = _run("""
        import json, threading, sharptask as st
        before = threading.active_count()
        delays = [st.Task.delay(3600 + i * 1e-3) for i in range(100_000)]
        timers = [st.Timer(print, None, 3600, 1) for _ in range(1000)]
        import os
        tasks = len(os.listdir("/proc/self/task"))
        print(json.dumps(dict(pending=sum(not d.is_completed
                                          for d in delays),
                              tasks=tasks)))
    """)
    assert out["pending"] == 100_000
    # main + pool workers + gate + one timer thread; never one per timer
    assert out["tasks"] < 64


# --------------------------------------------------------- TimeProvider


@pytest.mark.timeout(30)
def test_P6a_time_provider_system():
    """P6a / reference 8.13: TimeProvider.system reads the real clock and
    its timers are real timers (change() is False after dispose())."""
    sysp = TimeProvider.system
    assert isinstance(sysp, TimeProvider)
    now = sysp.get_utc_now()
    assert now.tzinfo is not None
    assert abs((now - datetime.now(timezone.utc)).total_seconds()) < 5
    assert sysp.get_local_now().tzinfo is not None
    t0 = sysp.get_timestamp()
    time.sleep(0.01)
    el = sysp.get_elapsed_time(t0)
    assert timedelta(milliseconds=5) <= el < timedelta(seconds=5)
    ev = threading.Event()
    timer = sysp.create_timer(lambda s: ev.set(), None, 0.01, -1)
    assert ev.wait(10)
    timer.dispose()
    assert timer.change(1, -1) is False


@pytest.mark.timeout(30)
def test_P6a_fake_time_provider_defaults_and_validation():
    """Reference 8.14-8.16: starts at 2000-01-01 UTC (start), UTC local zone,
    10^7 ticks per second; advance(negative), set_utc_now(earlier) and a
    negative auto_advance_amount raise ValueError."""
    fake = FakeTimeProvider()
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert fake.start == start and fake.get_utc_now() == start
    assert fake.local_time_zone == timezone.utc
    assert fake.timestamp_frequency == 10_000_000
    ts = fake.get_timestamp()
    fake.advance(timedelta(seconds=2))
    assert fake.get_elapsed_time(ts) == timedelta(seconds=2)
    assert fake.get_utc_now() == start + timedelta(seconds=2)
    with pytest.raises(ValueError):
        fake.advance(-1)
    with pytest.raises(ValueError, match="back in time"):
        fake.set_utc_now(start)
    fake.set_utc_now(start + timedelta(days=1))
    assert fake.get_utc_now() == start + timedelta(days=1)
    with pytest.raises(ValueError):
        fake.auto_advance_amount = -1
    other = FakeTimeProvider(datetime(2020, 5, 5, tzinfo=timezone.utc))
    assert other.get_utc_now().year == 2020


@pytest.mark.timeout(30)
def test_P6a_S8_10_fake_advance_fires_periodic_timer_k_times():
    """S8.10: a timer due at 10 s with a 5 s period runs 3 times,
    synchronously inside advance(21 s), on the advancing thread."""
    fake = FakeTimeProvider()
    calls = []
    timer = fake.create_timer(
        lambda s: calls.append((s, threading.get_ident(),
                                fake.get_utc_now())), "x", 10, 5)
    fake.advance(21)
    assert len(calls) == 3
    assert all(s == "x" and ident == threading.get_ident()
               for s, ident, _ in calls)
    fake.advance(4)  # 25 s: the fourth tick
    assert len(calls) == 4
    timer.dispose()
    fake.advance(100)
    assert len(calls) == 4


@pytest.mark.timeout(30)
def test_P6a_fake_timers_order_earliest_then_scheduled_first():
    """Reference 8.15: earliest wake time first; ties in the order the
    timers were scheduled."""
    fake = FakeTimeProvider()
    order = []
    for name, due in (("b", 2), ("a", 1), ("c", 2), ("d", 1)):
        fake.create_timer(lambda s: order.append(s), name, due, -1)
    fake.advance(5)
    assert order == ["a", "d", "b", "c"]


@pytest.mark.timeout(30)
def test_P6a_fake_timer_due_zero_change_and_dispose():
    """Reference 8.17: due 0 fires synchronously inside create_timer and
    change(); change() re-bases from the fake now; after dispose() change
    returns False; -1 disarms."""
    fake = FakeTimeProvider()
    calls = []
    timer = fake.create_timer(lambda s: calls.append(fake.get_utc_now()),
                              None, 0, -1)
    assert len(calls) == 1
    fake.advance(10)
    assert timer.change(5, -1) is True
    fake.advance(4.5)
    assert len(calls) == 1
    fake.advance(0.5)
    assert len(calls) == 2
    assert timer.change(0, -1) and len(calls) == 3
    assert timer.change(-1, -1)
    fake.advance(1000)
    assert len(calls) == 3
    timer.dispose()
    assert timer.change(1, 1) is False


@pytest.mark.timeout(30)
def test_P6a_fake_auto_advance_amount():
    """Reference 8.16: every get_utc_now() returns the time, then moves it
    by auto_advance_amount, firing what came due."""
    fake = FakeTimeProvider()
    fired = []
    fake.create_timer(lambda s: fired.append(1), None, 2.5, -1)
    fake.auto_advance_amount = 1
    t1, t2, t3 = fake.get_utc_now(), fake.get_utc_now(), fake.get_utc_now()
    assert (t2 - t1, t3 - t2) == (timedelta(seconds=1),) * 2
    assert fired == [1]
    assert fake.auto_advance_amount == timedelta(seconds=1)


@pytest.mark.timeout(30)
def test_P6a_timer_with_fake_provider_runs_inside_advance():
    """P5/P6a: Timer(time_provider=fake) is the provider's timer: nothing
    happens in wall time; advance() runs it inline."""
    fake = FakeTimeProvider()
    calls = []
    timer = Timer(lambda s: calls.append(s), 7, 1, 1, time_provider=fake)
    time.sleep(0.05)
    assert calls == []
    fake.advance(3)
    assert calls == [7, 7, 7]
    assert timer.change(10, -1)
    fake.advance(9)
    assert calls == [7, 7, 7]
    timer.dispose()
    fake.advance(100)
    assert calls == [7, 7, 7]
    with pytest.raises(TypeError):
        Timer(print, None, 1, 1, time_provider=object())


@pytest.mark.timeout(30)
def test_P6a_task_delay_with_fake_provider():
    """P6a / reference 8.7: Task.delay(s, time_provider=fake) completes when
    the fake clock passes s, and not before, in no wall time; 0 is
    completed at once; a token still cancels it."""
    fake = FakeTimeProvider()
    d = st.Task.delay(5, time_provider=fake)
    time.sleep(0.02)
    assert not d.is_completed
    fake.advance(4.999)
    assert not d.is_completed
    fake.advance(0.001)
    assert d.is_completed_successfully
    assert st.Task.delay(0, time_provider=fake).is_completed
    never = st.Task.delay(-1, time_provider=fake)
    fake.advance(10_000)
    assert not never.is_completed
    cts = make_cts()
    c = st.Task.delay(5, cancellation_token=cts.token, time_provider=fake)
    cts.cancel()
    assert c.is_canceled
    fake.advance(10)
    assert c.is_canceled
    # the system provider is the plain delay
    assert st.Task.delay(0.01, time_provider=TimeProvider.system).wait(10)


@pytest.mark.timeout(30)
def test_P6a_wait_async_with_fake_provider():
    """P6a / T4: wait_async(timeout, time_provider=fake) faults with
    TimeoutError when the fake clock passes the timeout, and completes
    like the task if it finishes first."""
    fake = FakeTimeProvider()
    tcs = st.TaskCompletionSource()
    w = tcs.task.wait_async(3, time_provider=fake)
    fake.advance(2)
    assert not w.is_completed
    fake.advance(1)
    assert w.is_faulted  # inside advance(), synchronously
    assert isinstance(w.exception.inner_exception, TimeoutError)
    tcs2 = st.TaskCompletionSource()
    w2 = tcs2.task.wait_async(3, time_provider=fake)
    tcs2.set_result(42)
    assert w2.result == 42
    fake.advance(10)
    assert w2.result == 42


@pytest.mark.timeout(30)
def test_P6a_cancellation_token_source_with_fake_provider():
    """P6a / K1: CancellationTokenSource(delay, time_provider=fake) cancels
    when the fake clock passes the delay (through the provider's timer)."""
    if not hasattr(st, "CancellationTokenSource"):
        pytest.skip("cancellation arrives with issue 6")
    fake = FakeTimeProvider()
    cts = st.CancellationTokenSource(2, time_provider=fake)
    fake.advance(1.5)
    assert not cts.is_cancellation_requested
    fake.advance(0.5)
    assert cts.is_cancellation_requested


# ------------------------------------------------------- PeriodicTimer


@pytest.mark.timeout(30)
def test_P5_S8_5_periodic_timer_period_validation():
    """S8.5 / reference 8.10: a period of 0, below -1 or above
    4294967.294 s is a ValueError; -1 (infinite), 1 ms and the maximum are
    accepted."""
    for bad in (0, timedelta(0), -2, 4294967.295):
        with pytest.raises(ValueError, match="period"):
            PeriodicTimer(bad)
    for ok in (-1, None, 0.001, 4294967.294):
        PeriodicTimer(ok).dispose()
    with pytest.raises(TypeError):
        PeriodicTimer(1, time_provider="clock")


@pytest.mark.timeout(30)
def test_P5_periodic_timer_ticks_for_an_async_loop():
    """P5: `while await timer.wait_for_next_tick_async()` ticks, and the
    loop ends once the timer is disposed."""
    timer = PeriodicTimer(0.01)

    async def loop():
        n = 0
        while await timer.wait_for_next_tick_async():
            n += 1
            if n == 3:
                timer.dispose()
        return n

    assert st.run(loop) == 3


@pytest.mark.timeout(30)
def test_P5_S8_6_second_wait_raises_and_dispose_completes_first_false():
    """S8.6: a second wait while one is pending raises
    InvalidOperationError (the first is unaffected); dispose() completes
    the pending one with False."""
    fake = FakeTimeProvider()
    timer = PeriodicTimer(1, time_provider=fake)
    first = timer.wait_for_next_tick_async()
    assert not first.is_completed
    with pytest.raises(st.InvalidOperationError):
        timer.wait_for_next_tick_async()
    timer.dispose()
    assert first.is_completed and first.result is False


@pytest.mark.timeout(30)
def test_P5_S8_7_disposed_periodic_timer_returns_false_synchronously():
    """S8.7: dispose() is idempotent; every later wait returns False
    synchronously."""
    timer = PeriodicTimer(0.01)
    timer.dispose()
    timer.dispose()
    for _ in range(3):
        vt = timer.wait_for_next_tick_async()
        assert vt.is_completed and vt.result is False


@pytest.mark.timeout(30)
def test_P5_periodic_timer_coalesces_missed_ticks():
    """Reference 8.11: ticks nobody waited for coalesce into one pending
    signal: after three periods the first wait returns True at once, the
    next one waits."""
    fake = FakeTimeProvider()
    timer = PeriodicTimer(1, time_provider=fake)
    fake.advance(3)
    vt = timer.wait_for_next_tick_async()
    assert vt.is_completed and vt.result is True
    vt2 = timer.wait_for_next_tick_async()
    assert not vt2.is_completed
    fake.advance(1)
    assert vt2.is_completed and vt2.result is True
    timer.dispose()


@pytest.mark.timeout(30)
def test_P5_S8_8_periodic_timer_cancellation():
    """S8.8: a canceled token gives a canceled wait synchronously; a cancel
    during a wait cancels that wait only, and the next wait returns True."""
    fake = FakeTimeProvider()
    timer = PeriodicTimer(1, time_provider=fake)
    cts = make_cts()
    cts.cancel()
    vt = timer.wait_for_next_tick_async(cts.token)
    assert vt.is_completed and vt.is_canceled
    cts2 = make_cts()
    vt2 = timer.wait_for_next_tick_async(cts2.token)
    cts2.cancel()
    assert vt2.is_canceled
    vt3 = timer.wait_for_next_tick_async()
    fake.advance(1)
    assert vt3.is_completed and vt3.result is True
    timer.dispose()


@pytest.mark.timeout(30)
def test_P5_S8_9_period_setter_affects_pending_waits():
    """S8.9 / reference 8.12: setting the period of an infinite timer makes
    a pending wait complete at the new period; invalid values raise
    ValueError (the period is unchanged); after dispose the setter raises
    ObjectDisposedError."""
    fake = FakeTimeProvider()
    timer = PeriodicTimer(-1, time_provider=fake)
    assert timer.period == -1
    vt = timer.wait_for_next_tick_async()
    fake.advance(1000)
    assert not vt.is_completed
    with pytest.raises(ValueError):
        timer.period = 0
    assert timer.period == -1
    timer.period = 0.001
    fake.advance(0.001)
    assert vt.is_completed and vt.result is True
    timer.dispose()
    with pytest.raises(st.ObjectDisposedError):
        timer.period = 1


@pytest.mark.timeout(30)
def test_P5_periodic_timer_context_manager():
    """PeriodicTimer is a context manager that disposes on exit."""
    with PeriodicTimer(1) as timer:
        pass
    vt = timer.wait_for_next_tick_async()
    assert vt.is_completed and vt.result is False
