"""The thread pool: SPEC P1-P4 and D3 (reference sections 7.1-7.15).

Tests that change the pool's limits or tuning, or that starve it, run in a
fresh interpreter (STYLE.md 35): the pool is process-wide.  Thread counts
are measured through the pool's counters, not inferred from sleeps alone.
Performance is never asserted here (BENCHMARKS.md: ratios live in the
benchmarks).
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
import textwrap
import threading

import pytest

import sharptask as st
from conftest import run_script, wait_until

TP = st.ThreadPool
CPUS = os.cpu_count() or 1


def _run(code: str, timeout: float = 40.0) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last."""
    r = run_script(textwrap.dedent(code), timeout=timeout)
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Fatal Python error" not in r.stderr, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------- P1


@pytest.mark.timeout(30)
def test_P1_api_names_and_counters_are_ints():
    """P1/D3: the ThreadPool object has .NET's members (snake_case) and its
    counters are plain int attributes."""
    for name in ("queue_user_work_item", "unsafe_queue_user_work_item",
                 "set_min_threads", "set_max_threads", "get_min_threads",
                 "get_max_threads", "get_available_threads"):
        assert callable(getattr(TP, name)), name
    for name in ("thread_count", "pending_work_item_count",
                 "completed_work_item_count", "starvation_events",
                 "threads_injected"):
        value = getattr(TP, name)
        assert isinstance(value, int) and value >= 0, (name, value)
    assert TP.get_min_threads() >= 1
    assert TP.get_max_threads() >= TP.get_min_threads()
    assert 0 <= TP.get_available_threads() <= TP.get_max_threads()
    assert "ThreadPool" in repr(TP)


@pytest.mark.timeout(60)
def test_P1_set_min_max_threads_validation_as_dotnet():
    """P1 / reference 7.8, S7.1, S7.2 (SetMinMaxThreadsTest and its .NET
    Core changes): invalid values return False and change nothing; 0 is
    stored as 1 for the minimum; the maximum is clamped to 32767; there is
    no processor-count floor; raising the minimum starts threads at once."""
    out = _run("""
        import json, os, sharptask as st
        tp = st.ThreadPool
        P = os.cpu_count() or 1
        r = {}
        r["setmax"] = tp.set_max_threads(2 * P + 1)
        r["setmin"] = tp.set_min_threads(2 * P)
        r["threads_after_min"] = tp.thread_count
        r["min_above_max"] = tp.set_min_threads(2 * P + 2)
        r["min_neg"] = tp.set_min_threads(-1)
        r["max_below_min"] = tp.set_max_threads(2 * P - 1)
        r["limits"] = [tp.get_min_threads(), tp.get_max_threads()]
        r["max_huge"] = tp.set_max_threads(32768)
        r["max_clamped"] = tp.get_max_threads()
        r["max_neg"] = tp.set_max_threads(-1)
        r["max_zero"] = tp.set_max_threads(0)
        r["min_zero"] = tp.set_min_threads(0)
        r["min_after_zero"] = tp.get_min_threads()
        r["max_one"] = tp.set_max_threads(1)
        r["after_one"] = [tp.get_min_threads(), tp.get_max_threads()]
        try:
            tp.set_min_threads(1.5)
            r["type"] = "no error"
        except TypeError as e:
            r["type"] = str(e)
        r["P"] = P
        print(json.dumps(r))
    """)
    P = out["P"]
    assert out["setmax"] is True and out["setmin"] is True
    assert out["threads_after_min"] >= 2 * P  # created up to the minimum
    assert out["min_above_max"] is False
    assert out["min_neg"] is False
    assert out["max_below_min"] is False
    assert out["limits"] == [2 * P, 2 * P + 1]  # nothing changed
    assert out["max_huge"] is True and out["max_clamped"] == 32767
    assert out["max_neg"] is False and out["max_zero"] is False
    assert out["min_zero"] is True and out["min_after_zero"] == 1
    assert out["max_one"] is True and out["after_one"] == [1, 1]
    assert "must be an int" in out["type"]


@pytest.mark.timeout(30)
def test_P1_queue_user_work_item_runs_on_a_pool_thread_never_inline():
    """P1 / reference 7.1, S7.4: the callback runs asynchronously on a pool
    thread, with the state when one is given and without any otherwise;
    it returns True."""
    done = threading.Event()
    seen = []

    def with_state(state):
        seen.append(("state", state, threading.get_ident()))

    def without_state():
        seen.append(("none", None, threading.get_ident()))
        done.set()

    assert TP.queue_user_work_item(with_state, 42) is True
    assert TP.queue_user_work_item(with_state, state=None) is True
    assert TP.queue_user_work_item(without_state) is True
    assert done.wait(10)
    wait_until(lambda: len(seen) == 3)
    main = threading.get_ident()
    assert sorted(((k, s) for k, s, _ in seen), key=repr) == [
        ("none", None), ("state", 42), ("state", None)]
    assert all(ident != main for _, _, ident in seen)


@pytest.mark.timeout(30)
def test_P1_queue_user_work_item_rejects_a_non_callable():
    """P1 / reference 7.1: a null callback is ArgumentNullException; here a
    TypeError that names the parameter."""
    with pytest.raises(TypeError, match="fn"):
        TP.queue_user_work_item(None)
    with pytest.raises(TypeError, match="fn"):
        TP.unsafe_queue_user_work_item(42, None)
    with pytest.raises(TypeError):
        TP.queue_user_work_item(print, 1, 2)
    with pytest.raises(TypeError):
        TP.queue_user_work_item(print, nonsense=True)


VAR = contextvars.ContextVar("test_pool_var", default="default")


@pytest.mark.timeout(30)
def test_P1_A6_safe_flows_context_unsafe_does_not():
    """P1/A6 / S6.5: queue_user_work_item flows the contextvars context
    (with or without prefer_local); unsafe_queue_user_work_item does not."""
    results = {}
    done = threading.Event()

    def record(key):
        results[key] = VAR.get()
        if len(results) == 4:
            done.set()

    token = VAR.set("caller")
    try:
        TP.queue_user_work_item(record, "safe")
        TP.queue_user_work_item(record, "safe_local", prefer_local=True)
        TP.unsafe_queue_user_work_item(record, "unsafe")
        TP.unsafe_queue_user_work_item(record, "unsafe_local",
                                       prefer_local=True)
    finally:
        VAR.reset(token)
    assert done.wait(10)
    assert results == {"safe": "caller", "safe_local": "caller",
                       "unsafe": "default", "unsafe_local": "default"}


@pytest.mark.timeout(30)
def test_P1_exception_in_work_item_goes_to_unraisablehook():
    """P1: an exception escaping a work item has no caller: it is reported
    through sys.unraisablehook (.NET would crash the process), and the
    pool keeps working."""
    reports = []
    done = threading.Event()

    def hook(args):
        reports.append(args.exc_value)
        done.set()

    def boom():
        raise ValueError("from a work item")

    old = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        TP.queue_user_work_item(boom)
        assert done.wait(10)
    finally:
        sys.unraisablehook = old
    assert isinstance(reports[0], ValueError)
    assert st.Task.run(lambda: 7).result == 7


@pytest.mark.timeout(30)
def test_P1_counters_move():
    """P1: completed_work_item_count grows with the work run; pending
    counts what waits; get_available_threads is max minus busy."""
    before = TP.completed_work_item_count
    st.Task.when_all([st.Task.run(lambda: None) for _ in range(50)]).result
    wait_until(lambda: TP.completed_work_item_count >= before + 50)
    assert TP.pending_work_item_count >= 0
    assert TP.get_available_threads() <= TP.get_max_threads()


# --------------------------------------------------------------------- P2


@pytest.mark.timeout(60)
def test_P2_prefer_local_and_tasks_from_a_worker_go_local():
    """P2 / reference 7.2, 7.3: on one worker, items queued from that worker
    with prefer_local (and tasks, which .NET queues locally from a pool
    thread) run newest first before the global queue, which stays FIFO."""
    out = _run("""
        import json, threading, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        order, done = [], threading.Event()
        def outer():
            for i in range(3):
                tp.queue_user_work_item(order.append, "g%d" % i)
            for i in range(3):
                tp.queue_user_work_item(order.append, "l%d" % i,
                                        prefer_local=True)
            for i in range(2):
                st.Task.run(order.append, "t%d" % i)
            tp.queue_user_work_item(lambda: done.set())
        tp.queue_user_work_item(outer)
        done.wait(10)
        print(json.dumps(order))
    """)
    assert out == ["t1", "t0", "l2", "l1", "l0", "g0", "g1", "g2"]


@pytest.mark.timeout(60)
def test_P2_prefer_local_from_a_non_pool_thread_goes_global():
    """P2 / reference 7.2: prefer_local from a thread that is not a pool
    thread still goes to the global FIFO queue."""
    out = _run("""
        import json, threading, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        gate, order, done = threading.Event(), [], threading.Event()
        tp.queue_user_work_item(lambda: gate.wait(10))
        for i in range(5):
            tp.queue_user_work_item(order.append, i, prefer_local=True)
        tp.queue_user_work_item(lambda: done.set())
        gate.set()
        done.wait(10)
        print(json.dumps(order))
    """)
    assert out == [0, 1, 2, 3, 4]


# --------------------------------------------------------------- P3 / D3


@pytest.mark.timeout(60)
def test_P3_D3_starvation_injects_a_thread_counts_and_warns():
    """P3/D3 / reference 7.11, S7.5: with the only worker stuck in a
    blocking call the pool does not know about, a queued item still runs:
    the gate injects a thread after about 500 ms with no completion,
    counts a starvation event and issues a RuntimeWarning."""
    out = _run("""
        import json, threading, time, warnings, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        while tp.thread_count != 1:      # the surplus worker retires
            time.sleep(0.005)
        tp.set_max_threads(4)
        ev, ran = threading.Event(), threading.Event()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tp.queue_user_work_item(lambda: ev.wait(30))
            time.sleep(0.05)
            t0 = time.monotonic()
            tp.queue_user_work_item(lambda: ran.set())
            ok = ran.wait(10)
            waited = time.monotonic() - t0
            threads = tp.thread_count
            events, injected = tp.starvation_events, tp.threads_injected
            deadline = time.monotonic() + 5
            while not any("starvation" in str(w.message) for w in caught) \\
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            warns = [(w.category.__name__, str(w.message)) for w in caught]
        ev.set()
        print(json.dumps(dict(ok=ok, waited=waited, threads=threads,
                              events=events, injected=injected,
                              warns=warns)))
    """)
    assert out["ok"]
    assert out["waited"] >= 0.3          # not before a gate period
    assert out["threads"] == 2           # exactly one thread injected
    assert out["events"] >= 1 and out["injected"] >= 1
    assert any(cat == "RuntimeWarning" and "starvation" in msg
               for cat, msg in out["warns"]), out["warns"]


@pytest.mark.timeout(60)
def test_P3_P4_python_item_blocked_in_user_code_does_not_hold_the_others():
    """P3/P4: one worker at a time runs Python items (rule 3), but a worker
    stuck inside a Python item (a plain blocking call the pool cannot see)
    gives way within milliseconds to an idle worker, long before the
    500 ms starvation period, and no thread is injected for it."""
    out = _run("""
        import json, threading, time, sharptask as st
        tp = st.ThreadPool
        tp.set_max_threads(2); tp.set_min_threads(2)
        ev, started = threading.Event(), threading.Event()
        def blocked():
            started.set()
            ev.wait(30)
        tp.queue_user_work_item(blocked)
        started.wait(10)
        t0 = time.monotonic()
        ran = threading.Event()
        tp.queue_user_work_item(lambda: ran.set())
        ok = ran.wait(10)
        took = time.monotonic() - t0
        s = st._native._pool_stats()
        ev.set()
        print(json.dumps(dict(ok=ok, took=took, injected=s["injected"],
                              threads=s["thread_count"])))
    """)
    assert out["ok"]
    assert out["took"] < 0.4          # not the starvation detector
    assert out["injected"] == 0 and out["threads"] == 2


@pytest.mark.timeout(60)
def test_P3_starvation_injects_at_most_one_thread_per_period():
    """P3 / reference 7.11: beyond the minimum a starved pool grows slowly,
    at most one thread per 500 ms ("at most 2 per second")."""
    out = _run("""
        import json, threading, time, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        while tp.thread_count != 1:      # the surplus worker retires
            time.sleep(0.005)
        tp.set_max_threads(16)
        ev = threading.Event()
        for _ in range(8):
            tp.queue_user_work_item(lambda: ev.wait(30))
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < 1.7:
            samples.append((time.monotonic() - t0, tp.thread_count))
            time.sleep(0.02)
        ev.set()
        print(json.dumps(samples))
    """)
    for at, threads in out:
        # at most one injection per started 500 ms period
        assert threads <= 1 + int(at / 0.5) + 1, (at, threads)
    assert out[-1][1] >= 2  # and it did grow


@pytest.mark.timeout(60)
def test_P3_blocking_compensation_adds_threads_without_waiting_for_gate():
    """P3 / reference 7.12, S7.6 (CooperativeBlockingCanCreateThreadsFaster):
    pool threads blocked in a sharptask wait tell the pool, which adds
    threads at once (up to the processor count beyond the minimum, then
    at a growing but short delay), far faster than starvation injection
    (one per 500 ms)."""
    out = _run("""
        import json, time, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(64)
        P = st._native._pool_stats()["cpu_count"]
        n = P + 4
        tcs = st.TaskCompletionSource()
        def blocker(i):
            if i == n - 1:
                tcs.set_result(None)   # the last one releases everybody
            else:
                tcs.task.wait()
        t0 = time.monotonic()
        tasks = [st.Task.run(blocker, i) for i in range(n)]
        st.Task.wait_all(tasks, 30)
        took = time.monotonic() - t0
        s = st._native._pool_stats()
        print(json.dumps(dict(took=took, n=n, injected=s["injected"],
                              threads=s["thread_count"],
                              starvation=s["starvation_events"],
                              blocked=s["blocked_count"])))
    """)
    # n - 1 items block at the same time: they needed n - 1 extra threads
    assert out["injected"] >= out["n"] - 2
    assert out["threads"] >= out["n"] - 1
    assert out["blocked"] == 0
    # starvation alone would need ~0.5 s per thread
    assert out["took"] < 0.5 * (out["n"] - 2)


@pytest.mark.timeout(60)
def test_P3_idle_threads_above_the_minimum_retire():
    """P3 / reference 7.14: idle workers above the minimum exit after the
    thread timeout (20 s in .NET; shortened here through the pool's test
    tuning); the minimum stays."""
    out = _run("""
        import json, time, sharptask as st
        tp = st.ThreadPool
        st._native._pool_set_tuning({"thread_timeout": 0.2})
        tp.set_max_threads(8); tp.set_min_threads(5)
        before = tp.thread_count
        tp.set_min_threads(2)
        t0 = time.monotonic()
        while tp.thread_count > 2 and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        after = tp.thread_count
        time.sleep(0.5)
        print(json.dumps(dict(before=before, after=after,
                              later=tp.thread_count,
                              retired=st._native._pool_stats()["retired"],
                              default=st._native._pool_get_tuning())))
    """)
    assert out["before"] == 5
    assert out["after"] == 2 and out["later"] == 2
    assert out["retired"] == 3


@pytest.mark.timeout(30)
def test_P3_default_thread_timeout_is_dotnet_20_seconds():
    """Reference 7.14 and 7.11: .NET's constants are the defaults."""
    out = _run("""
        import json, sharptask as st
        print(json.dumps(st._native._pool_get_tuning()))
    """)
    assert out["thread_timeout"] == 20.0
    assert out["gate_period"] == 0.5
    assert out["blocking_delay_step"] == 0.025
    assert out["blocking_delay_max"] == 0.25


@pytest.mark.timeout(60)
def test_T9_P3_long_running_gets_a_dedicated_thread():
    """T9/P3 / reference 7.15: a LONG_RUNNING task runs on a dedicated
    thread, not a pool thread: it starts at once even when every pool
    thread is blocked, it is not counted in thread_count, and a wait on it
    causes no blocking compensation."""
    out = _run("""
        import json, threading, time, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        while tp.thread_count != 1:      # the surplus worker retires
            time.sleep(0.005)
        ev = threading.Event()
        tp.queue_user_work_item(lambda: ev.wait(30))
        time.sleep(0.05)
        inner = st.TaskCompletionSource()
        def long_job():
            threads = tp.thread_count
            inner.task.wait(0.05)          # a sharptask wait, times out
            return threading.current_thread().name, threads
        t0 = time.monotonic()
        t = st.Task.factory.start_new(
            long_job, options=st.TaskCreationOptions.LONG_RUNNING)
        name, threads = t.result
        took = time.monotonic() - t0
        s = st._native._pool_stats()
        ev.set()
        print(json.dumps(dict(took=took, threads=threads,
                              injected=s["injected"],
                              status=t.status.name,
                              opts=int(t.creation_options))))
    """)
    assert out["took"] < 0.45   # before any starvation injection
    assert out["threads"] == 1  # the dedicated thread is not a pool thread
    assert out["injected"] == 0
    assert out["status"] == "RAN_TO_COMPLETION"
    assert out["opts"] & int(st.TaskCreationOptions.LONG_RUNNING)


# --------------------------------------------------------------------- P4


@pytest.mark.timeout(60)
def test_P4_many_small_python_items_all_run_exactly_once():
    """P4: a long queue of small Python items (run many per GIL hold by one
    worker at a time) runs every item exactly once, on pool threads, while
    the main thread keeps running Python."""
    out = _run("""
        import json, threading, sharptask as st
        tp = st.ThreadPool
        n = 20000
        sink, idents = [], set()
        def item(i):
            sink.append(i)
        for i in range(n):
            tp.queue_user_work_item(item, i)
        x = 0
        while len(sink) < n:
            x += 1
        print(json.dumps(dict(ok=sorted(sink) == list(range(n)))))
    """)
    assert out["ok"]
