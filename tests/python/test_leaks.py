"""Leak checks (STYLE 34, greenlet leakcheck / msgspec style).

Each test repeats one create/await/complete cycle 10,000 times (after a
warm-up) and checks that
- the refcount of a sentinel result object is flat (sys.getrefcount),
- the number of GC-tracked objects is flat (len(gc.get_objects())),
- per-iteration sentinels are all dead afterwards (weakref liveness),
- RSS (/proc/self/statm) is flat, with a small slack for allocator noise.

Rules exercised: T3/T5/T7/T8/T9/T10/S2/A1/A5 – each cycle must release every
reference it took.
"""

from __future__ import annotations

import gc
import os
import sys
import weakref

import pytest

import sharptask as st
from conftest import observe, wait_until

REPS = 10_000
WARMUP = 1_000
RC_SLACK = 2
GC_SLACK = 300
RSS_SLACK = 3 * 1024 * 1024

TCO = st.TaskContinuationOptions


class Sentinel:
    __slots__ = ("__weakref__",)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def check_flat(op, reps=REPS, warmup=WARMUP):
    """Run op(sentinel, fresh) `reps` times; assert no growth."""
    sentinel = Sentinel()
    refs = []

    def one(track):
        fresh = Sentinel()
        if track:
            refs.append(weakref.ref(fresh))
        op(sentinel, fresh)

    for _ in range(warmup):
        one(False)
    gc.collect()
    rc0 = sys.getrefcount(sentinel)
    objs0 = len(gc.get_objects())
    rss0 = rss_bytes()
    for i in range(reps):
        one(i % 10 == 0)
    gc.collect()
    # work finishing on pool threads may drop its last references just after
    # the task completed: give it a moment to settle.
    wait_until(lambda: sys.getrefcount(sentinel) <= rc0 + RC_SLACK, timeout=5)
    gc.collect()
    rc1 = sys.getrefcount(sentinel)
    objs1 = len(gc.get_objects()) - len(refs)  # the weakrefs are tracked too
    alive = sum(1 for r in refs if r() is not None)
    rss1 = rss_bytes()
    print(
        f"refcount {rc0}->{rc1}, gc objects {objs0}->{objs1}, "
        f"alive {alive}/{len(refs)}, rss {rss0 >> 10}->{rss1 >> 10} KiB"
    )
    assert rc1 - rc0 <= RC_SLACK, f"sentinel refcount grew {rc0} -> {rc1} over {reps} reps"
    assert alive <= 2, f"{alive} of {len(refs)} per-iteration results still alive"
    assert objs1 - objs0 < GC_SLACK, f"gc objects grew {objs0} -> {objs1} over {reps} reps"
    if "ASAN_OPTIONS" not in os.environ:
        # ASan's quarantine keeps freed memory, so RSS grows under it (the
        # check-py-asan run, where other files' tests call this): the
        # plain run keeps the bound, the sanitized one the checks above
        assert rss1 - rss0 < RSS_SLACK, f"RSS grew {(rss1 - rss0) >> 10} KiB over {reps} reps"


@st.async_method
async def _await_it(t):
    return await t


@st.async_method
async def _await_and_raise(t):
    await t
    raise ValueError("leak-check")


def op_tcs_result(sentinel, fresh):
    """S2/T3: create, complete, read."""
    tcs = st.TaskCompletionSource()
    tcs.set_result((sentinel, fresh))
    assert tcs.task.result[0] is sentinel


def op_async_method_suspend_resume(sentinel, fresh):
    """A1/T7: an async method suspends on a TCS and is resumed inline."""
    tcs = st.TaskCompletionSource()
    t = _await_it(tcs.task)
    tcs.set_result((sentinel, fresh))
    assert t.result[0] is sentinel


def op_async_method_sync_path(sentinel, fresh):
    """A4: awaiting a completed task."""
    t = _await_it(st.Task.from_result((sentinel, fresh)))
    assert t.result[0] is sentinel


def op_async_method_fault(sentinel, fresh):
    """A2/T5: fault after resumption, observed by get_result."""
    tcs = st.TaskCompletionSource()
    t = _await_and_raise(tcs.task)
    tcs.set_result((sentinel, fresh))
    try:
        t.get_awaiter().get_result()
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


def op_tcs_exception(sentinel, fresh):
    """S2/T3: set_exception and AggregateError from result."""
    tcs = st.TaskCompletionSource()
    tcs.set_exception(ValueError(sentinel, fresh))
    try:
        tcs.task.result
    except st.AggregateError as e:
        assert e.inner_exceptions[0].args[0] is sentinel


def op_tcs_canceled(sentinel, fresh):
    """S2/T5: canceled, awaited from an async method."""
    tcs = st.TaskCompletionSource()
    t = _await_it(tcs.task)
    tcs.set_canceled()
    assert t.is_canceled
    try:
        t.result
    except st.AggregateError:
        pass


def op_continue_with_es(sentinel, fresh):
    """T8: an EXECUTE_SYNCHRONOUSLY continuation with state."""
    tcs = st.TaskCompletionSource()
    c = tcs.task.continue_with(lambda a, s: (a.result, s), state=fresh, options=TCO.EXECUTE_SYNCHRONOUSLY)
    tcs.set_result(sentinel)
    assert c.result[0] is sentinel


def op_continue_with_pool(sentinel, fresh):
    """T8: a queued continuation run on the pool."""
    tcs = st.TaskCompletionSource()
    c = tcs.task.continue_with(lambda a: (a.result, fresh))
    tcs.set_result(sentinel)
    assert c.result[0] is sentinel


def op_task_run(sentinel, fresh):
    """T9: Task.run on the pool."""
    t = st.Task.run(lambda: (sentinel, fresh))
    assert t.result[0] is sentinel


def op_when_all(sentinel, fresh):
    """T10: when_all of two TCS tasks."""
    a, b = st.TaskCompletionSource(), st.TaskCompletionSource()
    w = st.Task.when_all(a.task, b.task)
    a.set_result(sentinel)
    b.set_result(fresh)
    assert w.result[0] is sentinel


def op_when_any(sentinel, fresh):
    """T10: when_any, winner and loser both completed."""
    a, b = st.TaskCompletionSource(), st.TaskCompletionSource()
    w = st.Task.when_any(a.task, b.task)
    b.set_result((sentinel, fresh))
    a.set_result(None)
    assert w.result.result[0] is sentinel


def op_awaiter_on_completed(sentinel, fresh):
    """T5: awaiter.on_completed action holding references."""
    tcs = st.TaskCompletionSource()
    box = []
    tcs.task.get_awaiter().on_completed(lambda: box.append((sentinel, fresh)))
    tcs.set_result(None)
    assert box and box[0][0] is sentinel


class _SM:
    __slots__ = ("state", "builder", "awaiter", "source", "payload")

    def __init__(self, source, payload):
        self.state = -1
        self.builder = st.AsyncTaskMethodBuilder.create()
        self.awaiter = None
        self.source = source
        self.payload = payload

    def move_next(self):
        if self.state == 0:
            aw, self.awaiter, self.state = self.awaiter, None, -1
        else:
            aw = self.source.get_awaiter()
            if not aw.is_completed:
                self.state, self.awaiter = 0, aw
                self.builder.await_unsafe_on_completed(aw, self)
                return
        aw.get_result()
        self.state = -2
        self.builder.set_result(self.payload)


def op_manual_builder(sentinel, fresh):
    """A5: the manual builder with a suspension."""
    tcs = st.TaskCompletionSource()
    sm = _SM(tcs.task, (sentinel, fresh))
    sm.builder.start(sm)
    t = sm.builder.task
    tcs.set_result(None)
    assert t.result[0] is sentinel


def op_wait_timeout(sentinel, fresh):
    """T4: a timed-out wait then completion (wait registration released)."""
    tcs = st.TaskCompletionSource()
    assert tcs.task.wait(0) is False
    tcs.set_result((sentinel, fresh))
    assert tcs.task.wait(0) is True


OPS = [
    op_tcs_result,
    op_async_method_suspend_resume,
    op_async_method_sync_path,
    op_async_method_fault,
    op_tcs_exception,
    op_tcs_canceled,
    op_continue_with_es,
    op_continue_with_pool,
    op_task_run,
    op_when_all,
    op_when_any,
    op_awaiter_on_completed,
    op_manual_builder,
    op_wait_timeout,
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("op", OPS, ids=[o.__name__[3:] for o in OPS])
def test_leak_repeated_cycle_is_flat(op):
    """STYLE 34: 10,000 create/await/complete cycles leave refcounts, GC
    object counts, sentinel liveness and RSS flat (rule named in each op's
    docstring)."""
    check_flat(op)


@pytest.mark.timeout(120)
def test_leak_observed_faulted_tasks_are_released_T11():
    """T11/STYLE 34: faulted tasks that are dropped after observation are
    freed (their exceptions too)."""

    def op(sentinel, fresh):
        t = st.Task.from_exception(KeyError(sentinel, fresh))
        observe(t)

    check_flat(op)


# ---------------------------------------------------------------------------
# Abandoned pending tasks and timed-out waits
# ---------------------------------------------------------------------------


def _collect_all():
    for _ in range(3):
        gc.collect()


@st.async_method
async def _await_forever(t, payload):
    await t
    return payload


def _abandon_continue_with(payload):
    tcs = st.TaskCompletionSource()
    tcs.task.continue_with(lambda a, p=payload: p)


def _abandon_on_completed(payload):
    tcs = st.TaskCompletionSource()
    tcs.task.get_awaiter().on_completed(lambda p=payload: p)


def _abandon_async_method(payload):
    tcs = st.TaskCompletionSource()
    _await_forever(tcs.task, payload)


def _abandon_plain_state(payload):
    st.TaskCompletionSource(payload)


ABANDON = {
    "state-only": _abandon_plain_state,
    "continue_with": _abandon_continue_with,
    "on_completed": _abandon_on_completed,
    "suspended-async-method": _abandon_async_method,
}


@pytest.mark.parametrize("how", list(ABANDON))
def test_leak_abandoned_pending_task_is_collected(how):
    """STYLE 34 (.NET and asyncio behaviour): a pending TaskCompletionSource
    that nobody can reach any more is garbage, together with the
    continuations registered on it (a continue_with closure, an on_completed
    action, a suspended async method and its coroutine): they can never run.
    Keeping them alive leaks every abandoned operation forever."""
    payload = Sentinel()
    ref = weakref.ref(payload)
    ABANDON[how](payload)
    del payload
    _collect_all()
    assert ref() is None, f"abandoned pending task with {how} is never collected"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["continue_with", "suspended-async-method"])
def test_leak_abandoned_pending_tasks_repeated_are_flat(how):
    """STYLE 34: 2,000 abandoned pending tasks with continuations leave GC
    counts and RSS flat (2,000 keeps a failing run from slowing every later
    gc.collect() of the suite)."""
    fn = ABANDON[how]
    check_flat(lambda sentinel, fresh: fn(fresh), reps=2000, warmup=200)


_forever = st.TaskCompletionSource()


def op_wait_any_timeout_on_pending(sentinel, fresh):
    """T4/R5.11: wait_any timing out on a task that stays pending."""
    assert st.Task.wait_any([_forever.task], timeout=0.0001) == -1


def op_wait_all_timeout_on_pending(sentinel, fresh):
    """T4/R5.10: wait_all timing out on a task that stays pending."""
    assert st.Task.wait_all([_forever.task, st.Task.completed_task], timeout=0.0001) is False


def op_wait_timeout_on_pending(sentinel, fresh):
    """T4: wait timing out on a task that stays pending."""
    assert _forever.task.wait(0.0001) is False


def op_wait_async_timeout_on_pending(sentinel, fresh):
    """T9/R5.9: a wait_async that times out on a task that stays pending
    must unregister from the source (the timeout path leaves the source
    untouched)."""
    w = _forever.task.wait_async(0.0001)
    try:
        w.wait()
    except st.AggregateError:
        pass


def op_when_any_with_pending_loser(sentinel, fresh):
    """T10/R5.7: when_any unregisters from the losers once it completed."""
    w = st.Task.when_any(_forever.task, st.Task.from_result((sentinel, fresh)))
    assert w.result.result[0] is sentinel


TIMED = [
    op_wait_any_timeout_on_pending,
    op_wait_all_timeout_on_pending,
    op_wait_timeout_on_pending,
    op_wait_async_timeout_on_pending,
    op_when_any_with_pending_loser,
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("op", TIMED, ids=[o.__name__[3:] for o in TIMED])
def test_leak_timed_out_waits_on_long_pending_task_are_flat(op):
    """STYLE 34/T4/T9/T10: a polling loop of timed-out waits on one task that
    stays pending (`while Task.wait_any([t], timeout=...) == -1: ...`) must
    not grow the task's continuation list: each timed-out wait removes its
    registration (.NET RemoveContinuation)."""
    check_flat(op, reps=1000, warmup=100)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["get_result", "await"])
def test_leak_rethrowing_same_faulted_task_is_flat(how):
    """STYLE 34/T5/R2.2: get_result / await of the same faulted task, again
    and again, keeps nothing alive (a rethrow must not chain the raising
    frame onto the stored exception's traceback)."""
    stored = st.TaskCompletionSource()
    stored.set_exception(ValueError("stored once"))

    @st.async_method
    async def aw(t):
        try:
            await t
        except ValueError:
            pass

    def op(sentinel, fresh):
        if how == "get_result":
            try:
                stored.task.get_awaiter().get_result()
            except ValueError:
                pass
        else:
            aw(stored.task)

    try:
        check_flat(op)
    finally:
        stored = None
