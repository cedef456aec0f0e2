"""Issue 10 (wgraph10): the deadlock detector on the core's waits-for graph
(csrc/core/st_waitgraph.c), SPEC C5, C6, C8.

The binding kept its own thread records (at most 8 contexts per thread)
and its own walk (depth 64, 128 visited tasks); it now keeps the thread
side in st_waitgraph and asks the Task objects for their edges during the
core's search, which has no depth limit and no fixed array.  These tests
check what the old limits cut off, that many threads owning contexts and
blocking get no false report, and that repetition leaks nothing.
"""

from __future__ import annotations

import gc
import sys
import threading
import weakref

import pytest

import sharptask as st
from sharptask import _native


@pytest.fixture(autouse=True)
def _raise_mode():
    prev = st.set_deadlock_detection("raise")
    yield
    st.set_deadlock_detection(prev)


def run_on_thread(fn, name, timeout=20.0):
    """fn() on a new daemon thread: ("ok", value) or ("raised", exc)."""
    out = []

    def body():
        try:
            out.append(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - inspected by the test
            out.append(("raised", e))

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{name} is still blocked: no deadlock detected"
    return out[0]


def nested_runs(contexts, innermost):
    """contexts[0].run(... contexts[-1].run(innermost) ...)."""
    def level(i):
        if i == len(contexts):
            return innermost()
        return contexts[i].run(lambda: level(i + 1))
    return level(0)


def _deadlock_through_nested_contexts(n, request, name, contexts=None):
    """A thread runs n nested contexts; inside the outermost a method
    starts and suspends on `request` with that context captured; inside
    the innermost the thread blocks on it: a deadlock through the
    outermost context, found past the n - 1 inner ones."""
    if contexts is None:
        contexts = [st.SingleThreadSynchronizationContext()
                    for _ in range(n)]

    @st.async_method
    async def needs_outer_context():
        return await request.task

    def outermost():
        box = needs_outer_context()  # captures contexts[0]
        return nested_runs(contexts[1:], lambda: box.result)

    return run_on_thread(lambda: contexts[0].run(outermost), name), contexts


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [9, 12, 40])
def test_issue10_C8_C6_deadlock_through_more_than_8_owned_contexts(n):
    """issue 10, C8/C6: one thread runs more than 8 nested contexts (the old
    MAX_OWNED: the 9th run() raised InvalidOperationError "too many nested
    synchronization contexts") and blocks, inside the innermost, on a
    method that needs the outermost: DeadlockError naming the method."""
    request = st.TaskCompletionSource()
    (kind, exc), _ = _deadlock_through_nested_contexts(
        n, request, f"wg10-nested-{n}")
    request.set_result(None)
    assert kind == "raised" and isinstance(exc, st.DeadlockError), repr(exc)
    msg = str(exc)
    assert f"wg10-nested-{n}" in msg, msg
    assert "needs_outer_context" in msg, msg
    assert "SingleThreadSynchronizationContext" in msg, msg


@pytest.mark.timeout(60)
def test_issue10_C8_nested_contexts_past_8_without_a_cycle_complete():
    """issue 10, C8 near-miss: 20 nested contexts on one thread, a wait in
    the innermost on work that needs none of them completes (no false
    report; the old code refused the 9th context)."""
    contexts = [st.SingleThreadSynchronizationContext() for _ in range(20)]

    @st.async_method
    async def free_of_contexts():
        await st.Task.delay(0.01).configure_await(False)
        return 7

    kind, value = run_on_thread(
        lambda: nested_runs(contexts, lambda: free_of_contexts().result),
        "wg10-nested-free")
    assert (kind, value) == ("ok", 7), value


def _deep_chain(depth, request):
    """depth methods m0 -> m1 -> ... each awaiting the next with
    configure_await(False); only the innermost captures the context."""
    @st.async_method
    async def innermost():
        return await request.task  # captures the context

    @st.async_method
    async def link(i):
        if i == depth - 1:
            return await innermost().configure_await(False)
        return await link(i + 1).configure_await(False)

    return link


@pytest.mark.timeout(60)
@pytest.mark.parametrize("depth", [70, 300])
def test_issue10_C6_chain_deeper_than_64_is_found(depth):
    """issue 10, C6: a blocked wait on the head of a chain of `depth` async
    methods (more than the old walk's depth 64), where only the innermost
    needs the blocked thread's context: DeadlockError at the block, the
    innermost method named."""
    request = st.TaskCompletionSource()
    link = _deep_chain(depth, request)
    ctx = st.SingleThreadSynchronizationContext()
    kind, exc = run_on_thread(lambda: ctx.run(lambda: link(0).result),
                              f"wg10-deep-{depth}")
    request.set_result(1)
    assert kind == "raised" and isinstance(exc, st.DeadlockError), repr(exc)
    msg = str(exc)
    assert "innermost" in msg, msg
    assert f"wg10-deep-{depth}" in msg, msg


@pytest.mark.timeout(60)
def test_issue10_C6_chain_deeper_than_64_found_by_a_recheck():
    """issue 10, C6 (the recheck path): a thread running a context blocks on
    a method that waits for a promise (no cycle yet); another thread then
    hands it a 200-deep chain of methods ending in one that needs the
    context, which closes the cycle: the blocked owner is woken with
    DeadlockError (the old walk stopped at depth 64 and it hung)."""
    request = st.TaskCompletionSource()
    late = st.TaskCompletionSource()
    ctx = st.SingleThreadSynchronizationContext()
    depth = 200
    holder = {}
    started = threading.Event()

    @st.async_method
    async def resumes_on_ctx():
        return await request.task  # captures ctx

    @st.async_method
    async def head_of_chain():
        inner = await late.task.configure_await(False)  # a Task
        return await inner.configure_await(False)

    def block_on_head():
        holder["ctx_box"] = resumes_on_ctx()
        head = head_of_chain()
        started.set()
        return head.result  # no cycle yet: head waits for `late`

    @st.async_method
    async def chain(i):
        if i == depth:
            return await holder["ctx_box"].configure_await(False)
        return await chain(i + 1).configure_await(False)

    out = []

    def body():
        try:
            out.append(("ok", ctx.run(block_on_head)))
        except BaseException as e:  # noqa: BLE001 - inspected below
            out.append(("raised", e))

    t = threading.Thread(target=body, name="wg10-late", daemon=True)
    t.start()
    assert started.wait(10)
    late.set_result(chain(0))  # head now awaits the chain: a cycle
    t.join(20)
    alive = t.is_alive()
    request.set_result(1)
    assert not alive, "the recheck did not find the late deadlock"
    kind, exc = out[0]
    assert kind == "raised" and isinstance(exc, st.DeadlockError), repr(exc)
    msg = str(exc)
    assert "resumes_on_ctx" in msg and "wg10-late" in msg, msg


@pytest.mark.timeout(60)
def test_issue10_C5_many_threads_owning_and_blocking_no_false_positive():
    """issue 10, C5 (no false positive) stress: 6 threads, each running its
    own context, block 40 times each on work that needs no blocked
    thread (a pool delegate, a method off the context, a promise another
    thread completes) while the others block and suspend beside them (each
    suspension rechecks the blocked owners)."""
    nthreads, rounds = 6, 40
    errors = []
    done = []

    @st.async_method
    async def off_context(i):
        await st.Task.delay(0.0005).configure_await(False)
        return i

    def worker(k):
        ctx = st.SingleThreadSynchronizationContext()

        def body():
            total = 0
            for i in range(rounds):
                total += st.Task.run(lambda i=i: i).result
                total += off_context(i).result
                tcs = st.TaskCompletionSource()
                threading.Timer(0.0005, tcs.set_result, (i,)).start()
                total += tcs.task.result
            return total

        try:
            done.append(ctx.run(body))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True)
               for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors == [], errors
    assert done == [3 * sum(range(rounds))] * nthreads, done


def _refcounts(objs):
    return [sys.getrefcount(o) for o in objs]


@pytest.mark.timeout(60)
def test_issue10_C8_owner_push_pop_past_8_balances_references():
    """issue 10, C8: a thread marked as running 50 nested contexts (past the
    old 8) holds one reference to each and drops it when it stops (no
    leak, by repetition)."""
    contexts = [st.SingleThreadSynchronizationContext() for _ in range(50)]
    before = _refcounts(contexts)
    for _ in range(20):
        for i in range(len(contexts)):
            _native._context_owner(contexts[i], True)
        assert _refcounts(contexts) == [n + 1 for n in before]
        for i in reversed(range(len(contexts))):
            _native._context_owner(contexts[i], False)
    assert _refcounts(contexts) == before


class _Marker:
    """A weakly referable stand-in for a context (_context_owner takes
    any object)."""


@pytest.mark.timeout(60)
def test_issue10_C8_thread_ending_while_owning_many_contexts_drops_them():
    """issue 10, C8 (no leak): threads that end while marked as running 12
    contexts (never unmarked) drop them with their record, every time."""
    refs = []
    for _ in range(10):
        contexts = [_Marker() for _ in range(12)]
        refs += [weakref.ref(c) for c in contexts]

        def mark(cs=contexts):
            for c in cs:
                _native._context_owner(c, True)

        t = threading.Thread(target=mark, daemon=True)
        t.start()
        t.join(10)
        assert not t.is_alive()
        del contexts, mark
    gc.collect()
    assert [r for r in refs if r() is not None] == []


@pytest.mark.timeout(120)
def test_issue10_C6_repeated_detection_leaks_nothing():
    """issue 10, C6 (no leak by repetition): the deadlock through 10 nested
    contexts, 30 times: once each blocked method is dropped (its request
    with it), every context is back to the references it had before."""
    contexts = [st.SingleThreadSynchronizationContext() for _ in range(10)]
    before = _refcounts(contexts)
    for i in range(30):
        request = st.TaskCompletionSource()
        (kind, exc), _ = _deadlock_through_nested_contexts(
            10, request, f"wg10-rep-{i}", contexts)
        assert kind == "raised" and isinstance(exc, st.DeadlockError)
        del request, exc
        gc.collect()
    gc.collect()
    assert _refcounts(contexts) == before
