"""Concurrency stress: T7 (each continuation exactly once), S2 (one winner),
T10 (when_all over tasks completed by many threads), T3/T4 (many waiters).

Threads start together on a barrier and every item is tagged
(producer, seq) so the check is "each exactly once" (STYLE 32).
"""

from __future__ import annotations

import collections
import threading

import pytest

import sharptask as st
from conftest import Recorder, observe, run_script

TCO = st.TaskContinuationOptions
RCA = st.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY


def _run_threads(n, body, timeout=30):
    """Run body(i, barrier) in n threads started together; re-raise errors."""
    barrier = threading.Barrier(n)
    errors = []

    def wrap(i):
        try:
            body(i, barrier)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "stress threads hung"
    if errors:
        raise errors[0]


def _exactly_once(items, expected):
    counts = collections.Counter(items)
    dup = {k: v for k, v in counts.items() if v != 1}
    missing = set(expected) - set(counts)
    extra = set(counts) - set(expected)
    assert not dup and not missing and not extra, (
        f"dup={list(dup.items())[:5]} missing={sorted(missing)[:5]} extra={sorted(extra)[:5]}"
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("options", [st.TaskCreationOptions.NONE, RCA], ids=["inline", "rca"])
def test_T7_S2_completion_raced_by_several_threads(options):
    """T7/S2: several threads race to complete one TCS that has continuations
    of every kind registered; exactly one completion wins and each
    continuation runs exactly once."""
    for it in range(60):
        tcs = st.TaskCompletionSource(None, options)
        rec = Recorder()
        conts = []
        for k in range(5):
            conts.append(tcs.task.continue_with(lambda a, k=k: rec.add(("cw", k))))
            conts.append(
                tcs.task.continue_with(lambda a, k=k: rec.add(("es", k)), options=TCO.EXECUTE_SYNCHRONOUSLY)
            )
            tcs.task.get_awaiter().on_completed(lambda k=k: rec.add(("oc", k)))

        @st.async_method
        async def m(k):
            await tcs.task
            rec.add(("aw", k))

        methods = [m(k) for k in range(5)]
        wins = []

        def body(i, barrier):
            barrier.wait()
            if tcs.try_set_result(i):
                wins.append(i)

        _run_threads(6, body)
        assert len(wins) == 1, (it, wins)
        assert tcs.task.result == wins[0]
        assert rec.wait_for(20), (it, len(rec))
        st.Task.wait_all(conts + methods, timeout=30)
        _exactly_once(rec.items, [(kind, k) for kind in ("cw", "es", "oc", "aw") for k in range(5)])


@pytest.mark.timeout(120)
def test_T7_continuations_registered_while_completing():
    """T7/R3.1: continuations registered concurrently with the completion
    (before, during, after) each run exactly once."""
    for it in range(30):
        tcs = st.TaskCompletionSource()
        rec = Recorder()
        n_reg, per = 4, 60
        tasks = []
        tasks_lock = threading.Lock()

        @st.async_method
        async def m(tag):
            await tcs.task
            rec.add(tag)

        def body(i, barrier):
            barrier.wait()
            if i == n_reg:  # the completer
                for _ in range(50):
                    pass
                tcs.set_result(it)
                return
            mine = []
            for s in range(per):
                tag = (i, s)
                kind = s % 4
                if kind == 0:
                    mine.append(tcs.task.continue_with(lambda a, tag=tag: rec.add(tag)))
                elif kind == 1:
                    mine.append(
                        tcs.task.continue_with(lambda a, tag=tag: rec.add(tag), options=TCO.EXECUTE_SYNCHRONOUSLY)
                    )
                elif kind == 2:
                    tcs.task.get_awaiter().on_completed(lambda tag=tag: rec.add(tag))
                else:
                    mine.append(m(tag))
            with tasks_lock:
                tasks.extend(mine)

        _run_threads(n_reg + 1, body)
        expected = [(i, s) for i in range(n_reg) for s in range(per)]
        assert rec.wait_for(len(expected), 30), (it, len(rec))
        st.Task.wait_all(tasks, timeout=30)
        _exactly_once(rec.items, expected)


@pytest.mark.timeout(120)
def test_T10_when_all_over_tasks_completed_by_many_threads():
    """T10: when_all over tasks completed concurrently by many threads gives
    the results in argument order, once all are done."""
    for it in range(10):
        n, n_threads = 400, 8
        srcs = [st.TaskCompletionSource() for _ in range(n)]
        w = st.Task.when_all([s.task for s in srcs])
        fired = Recorder()
        w.continue_with(lambda a: fired.add(1), options=TCO.EXECUTE_SYNCHRONOUSLY)

        def body(i, barrier):
            barrier.wait()
            for k in range(i, n, n_threads):
                srcs[k].set_result(k * 3)

        _run_threads(n_threads, body)
        assert w.result == [k * 3 for k in range(n)]
        assert fired.wait_for(1)
        assert fired.items == [1]


@pytest.mark.timeout(120)
def test_T10_when_all_with_faults_completed_by_many_threads():
    """T10: concurrent completion with some faults: the when_all faults with
    every exception, in argument order."""
    n, n_threads = 200, 8
    srcs = [st.TaskCompletionSource() for _ in range(n)]
    errs = {k: ValueError(k) for k in range(0, n, 7)}
    w = st.Task.when_all([s.task for s in srcs])

    def body(i, barrier):
        barrier.wait()
        for k in range(i, n, n_threads):
            if k in errs:
                srcs[k].set_exception(errs[k])
            else:
                srcs[k].set_result(k)

    _run_threads(n_threads, body)
    with pytest.raises(st.AggregateError):
        w.wait(30)
    assert w.exception.inner_exceptions == tuple(errs[k] for k in sorted(errs))
    observe(*[srcs[k].task for k in errs])


@pytest.mark.timeout(120)
def test_T10_when_any_under_racing_completions():
    """T10: when_any under racing completions completes once, with a task that
    was completed first (it is complete, and when_any never faults)."""
    for it in range(50):
        srcs = [st.TaskCompletionSource() for _ in range(8)]
        w = st.Task.when_any([s.task for s in srcs])

        def body(i, barrier):
            barrier.wait()
            srcs[i].set_result(i)

        _run_threads(8, body)
        winner = w.result
        assert winner in [s.task for s in srcs]
        assert winner.is_completed
        assert w.status == st.TaskStatus.RAN_TO_COMPLETION


@pytest.mark.timeout(120)
def test_T9_many_run_items_each_once():
    """T9/T10: thousands of Task.run items each run exactly once and their
    results come back in order."""
    n = 3000
    rec = Recorder()

    def item(i):
        rec.add(i)
        return i

    tasks = [st.Task.run(item, i) for i in range(n)]
    assert st.Task.when_all(tasks).result == list(range(n))
    _exactly_once(rec.items, range(n))


@pytest.mark.timeout(120)
def test_A1_T7_async_methods_resumed_by_many_threads():
    """A1/T7: many suspended async methods resumed from many threads at once
    each finish exactly once with their own value."""
    n, n_threads = 600, 8
    srcs = [st.TaskCompletionSource() for _ in range(n)]
    rec = Recorder()

    @st.async_method
    async def m(i):
        v = await srcs[i].task
        await st.Task.yield_()
        rec.add(i)
        return v + i

    tasks = [m(i) for i in range(n)]

    def body(t, barrier):
        barrier.wait()
        for k in range(t, n, n_threads):
            srcs[k].set_result(k)

    _run_threads(n_threads, body)
    assert st.Task.when_all(tasks).result == [2 * i for i in range(n)]
    _exactly_once(rec.items, range(n))


@pytest.mark.timeout(120)
def test_T3_many_threads_blocked_on_one_task_all_wake():
    """T3/T4: many threads blocked in result / wait / get_result on one task
    all wake with the result."""
    for it in range(20):
        tcs = st.TaskCompletionSource()
        got = Recorder()
        ready = threading.Barrier(13)

        def body(i, barrier):
            if i == 12:
                ready.wait()
                tcs.set_result(it)
                return
            ready.wait()
            kind = i % 4
            if kind == 0:
                got.add(tcs.task.result)
            elif kind == 1:
                got.add(tcs.task.wait() and tcs.task.result)
            elif kind == 2:
                got.add(tcs.task.get_awaiter().get_result())
            else:
                got.add(st.Task.wait_any([tcs.task]) == 0 and it)

        _run_threads(13, body)
        assert got.items == [it] * 12


@pytest.mark.timeout(120)
def test_T7_rca_continuations_concurrent_completion_chain():
    """T7/S3: a chain where each async method awaits the previous one, under
    RUN_CONTINUATIONS_ASYNCHRONOUSLY roots, completed from many threads."""
    n_chains, depth = 50, 20
    roots = [st.TaskCompletionSource(None, RCA) for _ in range(n_chains)]

    @st.async_method
    async def link(prev):
        return (await prev) + 1

    tails = []
    for r in roots:
        t = r.task
        for _ in range(depth):
            t = link(t)
        tails.append(t)

    def body(i, barrier):
        barrier.wait()
        for k in range(i, n_chains, 5):
            roots[k].set_result(k)

    _run_threads(5, body)
    assert st.Task.when_all(tails).result == [k + depth for k in range(n_chains)]


DEEP_SCRIPT = r"""
import sys
import sharptask as st
N, KIND = {n}, {kind!r}
root = st.TaskCompletionSource()
if KIND == "await":
    @st.async_method
    async def link(prev):
        return (await prev) + 1
    t = root.task
    for _ in range(N):
        t = link(t)
else:
    t = root.task
    for _ in range(N):
        t = t.continue_with(lambda a: a.result + 1,
                            options=st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY)
root.set_result(0)
assert t.result == N, t.result
print("MARKER deep-ok", flush=True)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["await", "execute-synchronously"])
def test_T7_deep_inline_chain_does_not_overflow(kind):
    """T7/R3.2/R3.9: inlining is allowed only with enough stack: completing
    the root of a 20,000-deep chain of awaiting async methods (or of
    EXECUTE_SYNCHRONOUSLY continuations) completes every link with the right
    value, with no RecursionError, crash or hang (run in a subprocess)."""
    proc = run_script(DEEP_SCRIPT.format(n=20000, kind="await" if kind == "await" else "es"), timeout=50)
    out = proc.stdout + proc.stderr
    assert "Fatal Python error" not in out, out[-3000:]
    assert "MARKER deep-ok" in proc.stdout, out[-3000:]
    assert proc.returncode == 0, out[-3000:]


@pytest.mark.timeout(60)
def test_T2_id_assignment_is_thread_safe():
    """T2/R1.8: ids assigned lazily from many threads at once are unique and
    every thread sees the same id for a task."""
    tasks = [st.TaskCompletionSource().task for _ in range(3000)]
    seen = [None] * 8

    def body(i, barrier):
        barrier.wait()
        order = tasks if i % 2 == 0 else list(reversed(tasks))
        ids = {id(t): t.id for t in order}
        seen[i] = [ids[id(t)] for t in tasks]

    _run_threads(8, body)
    assert all(s == seen[0] for s in seen)
    assert len(set(seen[0])) == len(tasks)


@pytest.mark.timeout(60)
def test_A3_R3_5_awaiter_completing_during_registration_from_other_thread():
    """A3/R3.5: an INotifyCompletion awaiter whose action is invoked by another
    thread while on_completed is still running resumes the method exactly
    once, without 'coroutine already executing' errors."""

    class Racing:
        def on_completed(self, action):
            threading.Thread(target=action).start()
            for _ in range(50):  # still inside the registration call
                pass

    class Aw:
        def __await__(self):
            yield Racing()
            return 1

    rec = Recorder()

    @st.async_method
    async def m(i, n):
        total = 0
        for _ in range(n):
            total += await Aw()
        rec.add(i)
        return total

    tasks = [m(i, 10) for i in range(50)]
    assert [t.result for t in tasks] == [10] * 50
    _exactly_once(rec.items, range(50))
