"""asyncio and concurrent.futures interop, the Executor and scale-out
(SPEC I1-I3, issue 11).

I1: Task.from_future takes asyncio futures and tasks.  I2: `await task`
in asyncio coroutines (Task, ValueTask), as_asyncio_future, async methods
awaiting asyncio awaitables, AsyncioSynchronizationContext,
sharptask.Executor.  I3: ExecutorTaskScheduler over a ProcessPoolExecutor
and a Dask LocalCluster (skipped, with the reason, without `distributed`).
The demos (`demo asyncio`, `demo scale-out`) and docs/interop.md's examples
run here too.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import math
import multiprocessing
import operator
import os
import pickle
import re
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

import pytest

import sharptask as st
from conftest import first_cause

REPO = Path(__file__).resolve().parents[2]


def run_async(coro_fn, *args, timeout=20):
    """Run an asyncio coroutine on a fresh loop; its result."""
    async def bounded():
        return await asyncio.wait_for(coro_fn(*args), timeout)
    return asyncio.run(bounded())


def later(delay, fn, *args):
    """fn(*args) on another (plain) thread after delay seconds."""
    t = threading.Timer(delay, fn, args)
    t.daemon = True
    t.start()
    return t


# ------------------------------------------------------------------ I1

def test_I1_from_future_asyncio_future_completes_with_its_value():
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = st.Task.from_future(fut)
        assert not task.is_completed
        loop.call_later(0.01, fut.set_result, 41)
        return await task, task.status
    assert run_async(main) == (41, st.TaskStatus.RAN_TO_COMPLETION)


def test_I1_from_future_asyncio_same_exception_object():
    err = KeyError("k")

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = st.Task.from_future(fut)
        loop.call_later(0.01, fut.set_exception, err)
        with pytest.raises(KeyError) as info:
            await task
        fut.exception()  # asyncio's own "never retrieved" is not ours
        return info.value
    assert run_async(main) is err


def test_I1_from_future_done_asyncio_future_gives_completed_task():
    async def main():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.set_result("x")
        t1 = st.Task.from_future(done)
        cancelled = loop.create_future()
        cancelled.cancel()
        t2 = st.Task.from_future(cancelled)
        failed = loop.create_future()
        failed.set_exception(ValueError("v"))
        t3 = st.Task.from_future(failed)
        return t1, t2, t3
    t1, t2, t3 = run_async(main)
    assert t1.status == st.TaskStatus.RAN_TO_COMPLETION and t1.result == "x"
    assert t2.status == st.TaskStatus.CANCELED
    assert t3.status == st.TaskStatus.FAULTED
    assert isinstance(first_cause(t3), ValueError)


def test_I1_from_future_asyncio_task_and_cancel_later():
    async def main():
        at = asyncio.ensure_future(asyncio.sleep(0.01, result="slept"))
        t = st.Task.from_future(at)
        value = await t
        blocker = asyncio.ensure_future(asyncio.sleep(10))
        t2 = st.Task.from_future(blocker)
        blocker.cancel()
        with pytest.raises(st.TaskCanceledError):
            await t2
        return value, t2.status
    assert run_async(main) == ("slept", st.TaskStatus.CANCELED)


def test_I1_from_future_asyncio_future_from_another_thread():
    """from_future on a loop's future from a thread that is not the
    loop's, and completion on the loop: the Task completes either way."""
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = await loop.run_in_executor(None, st.Task.from_future, fut)
        loop.call_later(0.01, fut.set_result, 7)
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: task.result)
    assert run_async(main) == 7


def test_I1_from_future_rejects_other_objects_naming_the_parameter():
    with pytest.raises(TypeError, match="future"):
        st.Task.from_future(42)


# ------------------------------------------------------- I2: await task

def test_I2_await_task_in_asyncio_value_and_loop_thread():
    async def main():
        me = threading.get_ident()
        task = st.Task.run(lambda: (time.sleep(0.01), "v")[1])
        value = await task
        return value, threading.get_ident() == me
    assert run_async(main) == ("v", True)


def test_I2_await_task_in_asyncio_exception_object_itself():
    err = ValueError("the one")

    async def main():
        tcs = st.TaskCompletionSource()
        later(0.01, tcs.set_exception, err)
        try:
            await tcs.task
        except ValueError as e:
            return e
    assert run_async(main) is err


def test_I2_await_task_in_asyncio_cancellation_is_TaskCanceledError():
    async def main():
        tcs = st.TaskCompletionSource()
        later(0.01, tcs.set_canceled)
        with pytest.raises(st.TaskCanceledError):
            await tcs.task
        return True
    assert run_async(main)


def test_I2_await_completed_task_in_asyncio_does_not_suspend():
    async def main():
        return await st.Task.from_result(3)
    assert run_async(main) == 3


def test_I2_await_value_task_in_asyncio():
    @st.async_value_method
    async def vm(x):
        await st.Task.delay(0.01)
        return x * 2

    @st.async_value_method(pooling=True)
    async def pooled(x):
        await st.Task.delay(0.01)
        return x + 1

    async def main():
        me = threading.get_ident()
        a = await vm(4)
        b = await pooled(4)
        c = await st.ValueTask(st.Task.delay(0.01).continue_with(
            lambda _: "t"))
        return a, b, c, threading.get_ident() == me
    assert run_async(main) == (8, 5, "t", True)


def test_I2_await_configured_task_and_yield_in_asyncio():
    async def main():
        me = threading.get_ident()
        v = await st.Task.delay(0.01).continue_with(
            lambda _: 1).configure_await(False)
        await st.Task.yield_()
        return v, threading.get_ident() == me
    assert run_async(main) == (1, True)


def test_I2_asyncio_gather_and_wait_for_take_tasks():
    async def main():
        ts = [st.Task.run(operator.mul, i, i) for i in range(5)]
        return await asyncio.gather(*ts, asyncio.wait_for(
            st.Task.delay(0.01).continue_with(lambda _: "w"), 5))
    assert run_async(main) == [0, 1, 4, 9, 16, "w"]


def test_I2_wait_for_timeout_abandons_the_await_only():
    """Cancelling the asyncio side (wait_for timing out) leaves the Task
    running; its later completion logs nothing on the loop."""
    errors = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        tcs = st.TaskCompletionSource()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(tcs.task, 0.02)
        assert not tcs.task.is_completed
        later(0.01, tcs.set_result, "late")
        await asyncio.sleep(0.1)  # the late completion reaches the loop
        return tcs.task.status, tcs.task.result
    assert run_async(main) == (st.TaskStatus.RAN_TO_COMPLETION, "late")
    gc.collect()
    assert errors == []


def test_I2_late_completion_after_loop_closed_is_silent():
    holder = {}

    async def main():
        holder["tcs"] = tcs = st.TaskCompletionSource()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(tcs.task, 0.01)
    asyncio.run(main())  # the loop is closed now
    holder["tcs"].set_result(1)  # no RuntimeError, nothing raised
    assert holder["tcs"].task.result == 1


def test_I2_as_asyncio_future_value_exception_cancel():
    err = RuntimeError("e")

    async def main():
        f1 = st.Task.delay(0.01).continue_with(lambda _: 5).as_asyncio_future()
        tcs = st.TaskCompletionSource()
        f2 = tcs.task.as_asyncio_future()
        later(0.01, tcs.set_exception, err)
        tcs3 = st.TaskCompletionSource()
        f3 = tcs3.task.as_asyncio_future(asyncio.get_running_loop())
        later(0.01, tcs3.set_canceled)
        v = await f1
        with pytest.raises(RuntimeError) as info:
            await f2
        with pytest.raises(st.TaskCanceledError):
            await f3
        # cancelling the asyncio future does not cancel the task
        tcs4 = st.TaskCompletionSource()
        f4 = tcs4.task.as_asyncio_future()
        f4.cancel()
        tcs4.set_result(9)
        await asyncio.sleep(0.01)
        return v, info.value, isinstance(f1, asyncio.Future), tcs4.task.result
    v, e, is_future, r4 = run_async(main)
    assert (v, is_future, r4) == (5, True, 9) and e is err


def test_I2_as_asyncio_future_needs_a_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        st.Task.from_result(1).as_asyncio_future()
    with pytest.raises(TypeError, match="loop"):
        st.Task.from_result(1).as_asyncio_future(loop=3)


def test_I2_asyncio_run_inside_async_method_step():
    """An asyncio loop run inside an async method's step drives its own
    coroutines (the awaiter cannot tell; asyncio's bad-yield error is
    answered with a future)."""
    async def inner():
        a = await st.Task.delay(0.01).continue_with(lambda _: 1)
        b = await asyncio.wait_for(st.Task.run(lambda: 2), 5)
        await st.Task.yield_()
        return a + b

    @st.async_method
    async def outer():
        await st.Task.delay(0.01)
        return asyncio.run(inner())
    assert outer().wait(20) is True
    assert outer().result == 3


# ------------------------------------- I2: async methods await asyncio

def test_I2_async_method_awaits_asyncio_sleep_and_task_on_loop_thread():
    async def main():
        me = threading.get_ident()

        @st.async_method
        async def method():
            seen = [threading.get_ident() == me]
            await asyncio.sleep(0.01)
            seen.append(threading.get_ident() == me)
            r = await asyncio.ensure_future(asyncio.sleep(0.01, result=4))
            seen.append(threading.get_ident() == me)
            await asyncio.sleep(0)  # asyncio's bare yield
            seen.append(threading.get_ident() == me)
            return r, seen
        return await method()
    assert run_async(main) == (4, [True, True, True, True])


def test_I2_async_method_awaits_loop_future_from_a_pool_thread():
    """After a sharptask await resumed it on the pool, the method awaits a
    future of the loop: it is registered from the loop's thread and the
    method resumes there."""
    async def main():
        loop = asyncio.get_running_loop()
        me = threading.get_ident()
        fut = loop.create_future()

        @st.async_method
        async def method():
            await st.Task.run(lambda: time.sleep(0.01))
            away = threading.get_ident() != me
            v = await fut
            return v, away, threading.get_ident() == me
        task = method()
        loop.call_later(0.05, fut.set_result, "f")
        return await task
    assert run_async(main) == ("f", True, True)


def test_I2_async_method_awaiting_cancelled_asyncio_task_is_canceled():
    async def main():
        at = asyncio.ensure_future(asyncio.sleep(10))

        @st.async_method
        async def method():
            await at
        task = method()
        at.cancel()
        with pytest.raises(st.OperationCanceledError) as info:
            await task
        return task.status, info.value.__cause__
    status, cause = run_async(main)
    assert status == st.TaskStatus.CANCELED
    assert isinstance(cause, asyncio.CancelledError)


def test_I2_async_method_bare_yield_without_loop_is_a_type_error():
    import types

    @types.coroutine
    def bare():
        yield

    @st.async_method
    async def method():
        await bare()
    t = method()
    with pytest.raises(TypeError, match="cannot await"):
        t.get_awaiter().get_result()


# --------------------------------------- I2: AsyncioSynchronizationContext

def test_I2_asyncio_context_post_and_send():
    async def main():
        loop = asyncio.get_running_loop()
        ctx = st.AsyncioSynchronizationContext(loop)
        me = threading.get_ident()
        posted = loop.create_future()
        ctx.post(lambda s: posted.set_result(
            (s, threading.get_ident() == me,
             st.SynchronizationContext.current() is ctx)), "state")
        inline = ctx.send(lambda s: (s, threading.get_ident()), "x")

        def from_thread():
            return ctx.send(lambda s: (s * 2, threading.get_ident() == me), 21)
        sent = await loop.run_in_executor(None, from_thread)

        def raising_from_thread():
            ctx.send(lambda s: 1 / 0, None)
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(None, raising_from_thread)
        return await posted, inline, sent, me
    posted, inline, sent, me = run_async(main)
    assert posted == ("state", True, True)
    assert inline == ("x", me)
    assert sent == (42, True)


def test_I2_asyncio_context_async_method_resumes_on_loop():
    async def main():
        loop = asyncio.get_running_loop()
        me = threading.get_ident()
        ctx = st.AsyncioSynchronizationContext(loop)

        @st.async_method
        async def method():
            seen = []
            for _ in range(3):
                await st.Task.run(lambda: time.sleep(0.005))
                seen.append(threading.get_ident() == me)
                await asyncio.sleep(0.001)  # needs the loop: works
            return seen

        def start():
            st.SynchronizationContext.set_synchronization_context(ctx)
            try:
                return method()
            finally:
                st.SynchronizationContext.set_synchronization_context(None)
        return await start()
    assert run_async(main) == [True, True, True]


def test_I2_asyncio_context_rejects_non_loops():
    with pytest.raises(TypeError, match="loop"):
        st.AsyncioSynchronizationContext(object())
    loop = asyncio.new_event_loop()
    try:
        ctx = st.AsyncioSynchronizationContext(loop)
        with pytest.raises(TypeError, match="callback"):
            ctx.post(3, None)
        assert ctx.create_copy().loop is loop
    finally:
        loop.close()


# -------------------------------------------------------- I2: Executor

def test_I2_executor_is_a_thread_pool_executor_on_the_pool():
    ex = st.Executor()
    assert isinstance(ex, cf.ThreadPoolExecutor)
    before = st.ThreadPool.completed_work_item_count
    names = {ex.submit(lambda: threading.current_thread().ident).result()
             for _ in range(20)}
    assert threading.get_ident() not in names
    assert st.ThreadPool.completed_work_item_count >= before + 20
    assert ex._threads == set()  # none of its own
    ex.shutdown()


def test_I2_executor_submit_result_exception_and_wait_helpers():
    with st.Executor() as ex:
        f = ex.submit(pow, 2, 10)
        assert f.result(5) == 1024
        err = ValueError("x")

        def boom():
            raise err
        g = ex.submit(boom)
        assert g.exception(5) is err
        with pytest.raises(ValueError):
            g.result()
        fs = [ex.submit(time.sleep, 0.001) for _ in range(20)]
        done, not_done = cf.wait(fs, timeout=10)
        assert len(done) == 20 and not not_done
        assert sorted(f.result() for f in cf.as_completed(
            [ex.submit(operator.add, i, 1) for i in range(10)])) == \
            list(range(1, 11))
        slow = ex.submit(time.sleep, 0.5)
        with pytest.raises(cf.TimeoutError):
            slow.result(timeout=0.01)


def test_I2_executor_map_order_chunksize_timeout():
    with st.Executor() as ex:
        assert list(ex.map(operator.mul, range(10), range(10))) == \
            [i * i for i in range(10)]
        assert list(ex.map(abs, range(-50, 50), chunksize=7)) == \
            [abs(i) for i in range(-50, 50)]
        it = ex.map(time.sleep, [0.5, 0.5], timeout=0.01)
        with pytest.raises(cf.TimeoutError):
            list(it)
        with pytest.raises(ValueError, match="chunksize"):
            ex.map(abs, [1], chunksize=0)


def test_I2_executor_max_workers_bounds_concurrency_stress():
    """max_workers bounds the items running at once: 4 threads submit
    400 items to a 3-wide executor; never more than 3 run together."""
    ex = st.Executor(max_workers=3)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def item():
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.0005)
        with lock:
            state["now"] -= 1
        return 1
    results = []

    def producer():
        fs = [ex.submit(item) for _ in range(100)]
        results.append(sum(f.result(20) for f in fs))
    threads = [threading.Thread(target=producer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ex.shutdown()
    assert results == [100] * 4
    assert 1 <= state["peak"] <= 3


def test_I2_executor_shutdown_cancel_futures_and_after_shutdown():
    ex = st.Executor(max_workers=1)
    gate = threading.Event()
    first = ex.submit(gate.wait, 10)
    deadline = time.monotonic() + 10
    while not first.running() and time.monotonic() < deadline:
        time.sleep(0.001)
    queued = [ex.submit(pow, 2, i) for i in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(pow, 2, 2)
    gate.set()
    assert first.result(5) is True
    ex.shutdown(wait=True)  # again: harmless, returns once all finished
    assert first.done()


def test_I2_executor_shutdown_wait_waits_for_items():
    ex = st.Executor()
    fs = [ex.submit(time.sleep, 0.02) for _ in range(4)]
    ex.shutdown(wait=True)
    assert all(f.done() for f in fs)


def test_I2_executor_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="max_workers"):
        st.Executor(0)
    with pytest.raises(TypeError, match="max_workers"):
        st.Executor("2")
    with st.Executor() as ex:
        with pytest.raises(TypeError, match="fn"):
            ex.submit(3)


def test_I2_executor_submit_stress_many_threads():
    """Many threads submit and wait at once (a concurrency stress test,
    bounded to a few seconds)."""
    ex = st.Executor()
    errors = []

    def worker(k):
        try:
            for i in range(300):
                assert ex.submit(operator.add, i, k).result(10) == i + k
        except BaseException as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ex.shutdown()
    assert errors == []


def test_I2_executor_as_default_executor_to_thread_and_run_in_executor():
    async def main():
        loop = asyncio.get_running_loop()
        ex = st.Executor()
        loop.set_default_executor(ex)
        a = await asyncio.to_thread(operator.add, 1, 2)
        rs = await asyncio.gather(*[loop.run_in_executor(None, abs, -i)
                                    for i in range(2000)])
        me = threading.get_ident()
        where = await loop.run_in_executor(None, threading.get_ident)
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(None, operator.truediv, 1, 0)
        return a, rs == list(range(2000)), where != me, ex._items
    a, ok, away, pending = run_async(main)
    assert (a, ok, away, pending) == (3, True, True, {})


# ---------------------------------- issue 11: the Executor's C futures

def _gated(ex, gate):
    """A submitted item that waits for gate, and when it has started."""
    f = ex.submit(gate.wait, 20)
    deadline = time.monotonic() + 10
    while not f.running() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert f.running()
    return f


def _bare_futures():
    from sharptask._executor import _Future
    return [_Future, cf.Future]


@pytest.mark.parametrize("make", _bare_futures(),
                         ids=["sharptask", "concurrent.futures"])
def test_I2_issue11_future_state_machine_as_concurrent_futures(make, caplog):
    """SPEC I2, issue 11: the Executor's future (state in C) follows
    concurrent.futures.Future's state machine step by step; the same
    assertions run on the base class itself."""
    f = make()
    assert isinstance(f, cf.Future)
    assert not f.done() and not f.running() and not f.cancelled()
    assert f._state == "PENDING"
    seen = []
    f.add_done_callback(seen.append)
    assert f.cancel() is True and f.cancel() is True
    assert f.cancelled() and f.done() and seen == [f]
    with pytest.raises(cf.CancelledError):
        f.result(0)
    with pytest.raises(cf.CancelledError):
        f.exception(0)
    assert f.set_running_or_notify_cancel() is False
    assert f._state == "CANCELLED_AND_NOTIFIED"
    with pytest.raises(cf.InvalidStateError):
        f.set_result(1)

    g = make()
    assert g.set_running_or_notify_cancel() is True
    assert g.running() and g.cancel() is False
    with pytest.raises(RuntimeError):
        g.set_running_or_notify_cancel()
    with pytest.raises(cf.TimeoutError):
        g.result(timeout=0.01)
    with pytest.raises(cf.TimeoutError):
        g.exception(timeout=-1)  # negative: no wait, as the base class
    g.set_result([1])
    assert g.result() == [1] and g.exception() is None
    assert g._state == "FINISHED" and g._result == [1]
    assert g.cancel() is False
    with pytest.raises(cf.InvalidStateError):
        g.set_exception(ValueError())
    late = []
    g.add_done_callback(late.append)  # done: runs now
    assert late == [g]

    h = make()
    err = KeyError("k")
    h.set_exception(err)
    assert h.exception() is err and h._exception is err
    with pytest.raises(KeyError) as info:
        h.result()
    assert info.value is err
    odd = make()
    odd.set_exception(5)  # not an exception: what `raise 5` says
    with pytest.raises(TypeError):
        odd.result()

    # a callback that raises is logged, not raised, before and after done
    def bad(_):
        raise ValueError("callback")
    k = make()
    k.add_done_callback(bad)
    k.add_done_callback(seen.append)
    with caplog.at_level("ERROR", logger="concurrent.futures"):
        k.set_result(None)
        k.add_done_callback(bad)
    assert seen[-1] is k
    assert sum("exception calling callback" in r.getMessage()
               for r in caplog.records) == 2
    assert "state=finished" in repr(k)


def test_I2_issue11_result_timeout_argument_names_the_parameter():
    """SPEC I2, issue 11: result()/exception() take timeout positionally
    or by name; a bad one is a TypeError naming it.  Since the issue 10
    review the values are concurrent.futures' (test_review10.py compares
    the whole table): bool is an int, NaN and negatives do not wait, a
    done future never reads its timeout."""
    with st.Executor() as ex:
        f = ex.submit(operator.add, 1, 2)
        assert f.result(10) == 3 and f.result(timeout=10.0) == 3
        assert f.exception(timeout=None) is None
        pending = ex.submit(threading.Event().wait, 0.5)
        for bad, exc in (("1", TypeError), (math.nan, cf.TimeoutError),
                         (-1, cf.TimeoutError), (math.inf, OverflowError)):
            named = None if exc is cf.TimeoutError else "timeout"
            with pytest.raises(exc, match=named):
                pending.result(bad)
            with pytest.raises(exc, match=named):
                pending.exception(timeout=bad)
            assert f.result(bad) == 3 and f.exception(bad) is None
        with pytest.raises(TypeError):
            f.result(1, 2)
        with pytest.raises(TypeError):
            f.result(tmeout=1)
        assert f.result(10**400) == 3  # done: the timeout is not read


@pytest.mark.timeout(30)
def test_I2_issue11_ctrl_c_interrupts_a_blocked_result():
    """SPEC I2, issue 11: Ctrl-C (here interrupt_main) during a blocking
    result() raises KeyboardInterrupt in the waiting thread; the item
    keeps running and its future completes later."""
    import _thread
    ex = st.Executor()
    gate = threading.Event()
    f = _gated(ex, gate)
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        f.result()
    assert time.monotonic() - t0 < 10
    assert not f.done()
    gate.set()
    assert f.result(10) is True
    ex.shutdown()


@pytest.mark.timeout(30)
def test_I2_issue11_wait_and_as_completed_see_later_completions():
    """SPEC I2, issue 11: concurrent.futures.wait and as_completed install
    their waiters on our futures (_condition, _waiters) and are woken by
    completions, exceptions and cancellations that come after the call."""
    ex = st.Executor(max_workers=1)
    gate = threading.Event()
    first = _gated(ex, gate)
    queued = ex.submit(operator.add, 1, 1)
    threading.Timer(0.1, gate.set).start()
    done, not_done = cf.wait([first, queued],
                             return_when=cf.FIRST_COMPLETED, timeout=10)
    assert first in done
    done, not_done = cf.wait([first, queued], timeout=10)
    assert not not_done and queued.result() == 2

    gate2 = threading.Event()
    blocker = _gated(ex, gate2)

    def boom():
        raise ValueError("x")
    failing = ex.submit(boom)
    later = ex.submit(time.sleep, 0)
    cancelled = ex.submit(time.sleep, 0)
    assert cancelled.cancel()
    done, not_done = cf.wait([failing, later], timeout=0.05)
    assert not done  # all waiting behind the blocker
    threading.Timer(0.1, gate2.set).start()
    done, not_done = cf.wait([failing, later, cancelled],
                             return_when=cf.FIRST_EXCEPTION, timeout=10)
    assert failing in done
    order = list(cf.as_completed([blocker, later, cancelled], timeout=10))
    assert set(order) == {blocker, later, cancelled}
    ex.shutdown()
    for f in (first, queued, blocker, failing, later, cancelled):
        assert f._waiters == []  # every waiter took itself off


def test_I2_issue11_wrap_future_value_exception_and_cancel_both_ways():
    """SPEC I2, issue 11: asyncio.wrap_future on our futures: the value,
    the exception object, cancelling the asyncio side cancels a queued
    item, a cancelled item cancels the asyncio side, and two wrappers of
    one future both complete."""
    async def main():
        ex = st.Executor(max_workers=1)
        gate = threading.Event()
        blocker = ex.submit(gate.wait, 20)
        queued = ex.submit(operator.add, 2, 3)
        w1 = asyncio.wrap_future(queued)
        w2 = asyncio.wrap_future(queued)
        doomed = ex.submit(operator.add, 0, 0)
        wd = asyncio.wrap_future(doomed)
        wd.cancel()
        await asyncio.sleep(0)
        source_cancelled = doomed.cancelled()
        other = ex.submit(operator.add, 0, 0)
        wo = asyncio.wrap_future(other)
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wo
        err = ValueError("v")

        def boom():
            raise err
        we = asyncio.wrap_future(ex.submit(boom))
        gate.set()
        values = (await w1, await w2)
        try:
            await we
        except ValueError as e:
            caught = e
        await asyncio.wrap_future(blocker)
        ex.shutdown()
        return values, caught is err, source_cancelled
    assert run_async(main) == ((5, 5), True, True)


def test_I2_issue11_call_and_arguments_released_after_run_or_cancel():
    """Issue 11: the future keeps the call only until it runs or is
    cancelled (C references dropped: no leak of fn or its arguments)."""
    import weakref

    class Arg:
        pass
    with st.Executor(max_workers=1) as ex:
        a, b = Arg(), Arg()
        ra, rb = weakref.ref(a), weakref.ref(b)
        f = ex.submit(lambda x, y=None: 1, a, y=b)
        del a, b
        assert f.result(10) == 1
        gc.collect()
        assert ra() is None and rb() is None
        gate = threading.Event()
        blocker = _gated(ex, gate)
        c = Arg()
        rc = weakref.ref(c)
        g = ex.submit(id, c)
        del c
        assert g.cancel()
        gc.collect()
        assert rc() is None
        gate.set()
        assert blocker.result(10) is True


@pytest.mark.timeout(60)
def test_I2_issue11_stress_submit_cancel_wait_callbacks_many_threads():
    """Issue 11 stress: 6 threads submit, cancel, wait (result, wait(),
    as_completed) and add callbacks on one bounded Executor at once, for
    a bounded time; every future ends cancelled (its call never ran) or
    finished with its value, each callback runs exactly once, and the
    executor forgets every item."""
    ex = st.Executor(max_workers=2)
    ran = set()
    ran_lock = threading.Lock()
    calls = {}
    calls_lock = threading.Lock()
    errors = []

    def item(key):
        with ran_lock:
            ran.add(key)
        return key

    def on_done(f):
        with calls_lock:
            calls[f] = calls.get(f, 0) + 1

    all_futures = []
    all_lock = threading.Lock()

    def worker(k):
        try:
            end = time.monotonic() + 1.5
            i = 0
            while time.monotonic() < end:
                fs = []
                for j in range(20):
                    key = (k, i, j)
                    f = ex.submit(item, key)
                    f.add_done_callback(on_done)
                    fs.append((key, f))
                for key, f in fs[::3]:
                    f.cancel()
                mode = i % 3
                if mode == 0:
                    for key, f in fs:
                        if not f.cancelled():
                            assert f.result(20) == key
                elif mode == 1:
                    done, not_done = cf.wait([f for _, f in fs], timeout=20)
                    assert not not_done
                else:
                    got = list(cf.as_completed([f for _, f in fs],
                                               timeout=20))
                    assert len(got) == len(fs)
                with all_lock:
                    all_futures.extend(fs)
                i += 1
        except BaseException as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    ex.shutdown(wait=True)
    assert errors == []
    assert all_futures
    for key, f in all_futures:
        assert f.done()
        if f.cancelled():
            assert key not in ran
        else:
            assert f.result() == key and key in ran
        assert calls.get(f) == 1
    assert ex._items == {}


# ------------------------------------------------------------------- I3

def _settle(task, timeout=30):
    """Wait for task to complete, whatever its outcome."""
    try:
        task.wait(timeout)
    except st.AggregateError:
        pass
    assert task.is_completed

def _spawn_pool():
    return cf.ProcessPoolExecutor(
        2, mp_context=multiprocessing.get_context("spawn"))


@pytest.fixture(scope="module")
def process_pool():
    pool = _spawn_pool()
    pool.submit(int).result(60)  # started
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.timeout(90)
def test_I3_process_pool_results_exceptions_and_concurrency(process_pool):
    sched = st.ExecutorTaskScheduler(process_pool)
    assert sched.maximum_concurrency_level == 2
    ts = [st.Task.factory.start_new(pow, 3, i, scheduler=sched)
          for i in range(6)]
    assert st.Task.when_all(ts).result == [3 ** i for i in range(6)]
    pids = {st.Task.factory.start_new(os.getpid, scheduler=sched).result
            for _ in range(4)}
    assert os.getpid() not in pids
    bad = st.Task.factory.start_new(math.sqrt, -1, scheduler=sched)
    _settle(bad)
    assert isinstance(first_cause(bad), ValueError)
    # continuations keep .NET semantics on the remote result
    cont = st.Task.factory.start_new(operator.add, 2, 3, scheduler=sched) \
        .continue_with(lambda t: t.result * 10)
    assert cont.result == 50


@pytest.mark.timeout(90)
def test_I3_continuations_run_off_the_executors_own_thread(process_pool):
    """A task completed from the executor's callback thread (the process
    pool's manager) runs its continuations on the sharptask pool, so user
    code never blocks the thread that delivers the executor's results."""
    sched = st.ExecutorTaskScheduler(process_pool)
    sync = st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY
    where = st.Task.factory.start_new(abs, -1, scheduler=sched) \
        .continue_with(lambda t: threading.current_thread(), options=sync) \
        .result
    manager = getattr(process_pool, "_executor_manager_thread", None)
    assert manager is not None and where is not manager
    assert where is not threading.main_thread()


@pytest.mark.timeout(90)
def test_I3_pickling_error_faults_the_task(process_pool):
    sched = st.ExecutorTaskScheduler(process_pool)
    fn = lambda: 1  # noqa: E731 (a local lambda: not picklable)
    try:
        pickle.dumps(fn)
    except Exception as e:  # the error pickling gives on this Python
        expected = type(e)
    t = st.Task.factory.start_new(fn, scheduler=sched)
    _settle(t)
    assert t.status == st.TaskStatus.FAULTED
    assert isinstance(first_cause(t), expected)
    lock_arg = st.Task.factory.start_new(id, threading.Lock(), scheduler=sched)
    _settle(lock_arg)
    assert lock_arg.status == st.TaskStatus.FAULTED
    first_cause(lock_arg)


@pytest.mark.timeout(90)
def test_I3_cancellation_before_start(process_pool):
    sched = st.ExecutorTaskScheduler(process_pool)
    cts = st.CancellationTokenSource()
    cts.cancel()
    t = st.Task.factory.start_new(pow, 2, 2, scheduler=sched,
                                  cancellation_token=cts.token)
    assert t.status == st.TaskStatus.CANCELED
    # canceled while queued behind busy workers: canceled, never run
    cts2 = st.CancellationTokenSource()
    busy = [st.Task.factory.start_new(time.sleep, 0.3, scheduler=sched)
            for _ in range(2)]
    queued = [st.Task.factory.start_new(pow, 2, i, scheduler=sched,
                                        cancellation_token=cts2.token)
              for i in range(4)]
    cts2.cancel()
    assert all(q.status == st.TaskStatus.CANCELED for q in queued)
    st.Task.wait_all(busy)


def test_I3_thread_executors_and_bad_argument():
    with pytest.raises(TypeError, match="executor"):
        st.ExecutorTaskScheduler(42)
    with cf.ThreadPoolExecutor(3) as tpe:
        sched = st.ExecutorTaskScheduler(tpe)
        assert sched.maximum_concurrency_level == 3
        t = st.Task.factory.start_new(operator.neg, 5, scheduler=sched)
        assert t.result == -5
    with st.Executor(max_workers=2) as ex:
        sched = st.ExecutorTaskScheduler(ex)
        assert sched.maximum_concurrency_level == 2
        assert st.Task.factory.start_new(abs, -3, scheduler=sched).result == 3
    assert st.ExecutorTaskScheduler(st.Executor()).maximum_concurrency_level \
        == 2**31 - 1


def test_I3_async_delegate_gives_task_of_task():
    async def coro_fn():
        await st.Task.delay(0.01)
        return "inner"
    with cf.ThreadPoolExecutor(1) as tpe:
        sched = st.ExecutorTaskScheduler(tpe)
        outer = st.Task.factory.start_new(coro_fn, scheduler=sched)
        assert outer.result.result == "inner"


# ------------------------------------------------------------ I3: Dask

try:
    import distributed
except ImportError:  # the optional extra: pip install sharptask[dask]
    distributed = None

requires_dask = pytest.mark.skipif(
    distributed is None,
    reason="distributed is not installed (pip install sharptask[dask])")


@pytest.fixture(scope="module")
def dask_client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=50)
        client = distributed.Client(cluster)
    yield client
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.close()
        cluster.close()


@requires_dask
@pytest.mark.timeout(120)
def test_I3_dask_local_cluster_results_and_workers(dask_client):
    sched = st.ExecutorTaskScheduler(dask_client.get_executor())
    assert sched.maximum_concurrency_level == 2
    ts = [st.Task.factory.start_new(pow, 2, i, scheduler=sched)
          for i in range(40)]
    assert st.Task.when_all(ts).result == [2 ** i for i in range(40)]
    pids = st.Task.when_all(
        [st.Task.factory.start_new(_pid, i, scheduler=sched)
         for i in range(20)]).result
    assert os.getpid() not in pids


def _pid(_):
    return os.getpid()


@requires_dask
@pytest.mark.timeout(120)
def test_I3_dask_remote_exception_and_pickling_error(dask_client):
    sched = st.ExecutorTaskScheduler(dask_client.get_executor())
    bad = st.Task.factory.start_new(math.sqrt, -1, scheduler=sched)
    _settle(bad, 60)
    assert isinstance(first_cause(bad), ValueError)
    unpicklable = st.Task.factory.start_new(id, threading.Lock(),
                                            scheduler=sched)
    _settle(unpicklable, 60)
    assert unpicklable.status == st.TaskStatus.FAULTED
    first_cause(unpicklable)


# --------------------------------------------------------------- demos

def _run_module(*args, timeout=150):
    env = dict(os.environ)
    package_parent = str(Path(st.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"exit code {proc.returncode}\n--- stdout\n{proc.stdout}"
        f"\n--- stderr\n{proc.stderr}")
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc.stdout


@pytest.mark.timeout(180)
def test_I2_demo_asyncio_runs_and_explains_itself():
    out = _run_module("-m", "sharptask", "demo", "asyncio")
    assert max(len(line) for line in out.splitlines()) <= 100
    for needle in (r"await sharptask Task in asyncio",
                   r"resumed on the loop thread:\s+True",
                   r"the very object set on the Task:\s+True",
                   r"canceled Task raised:\s+TaskCanceledError",
                   r"after Task.run ran on:\s+the loop thread",
                   r"asyncio.to_thread ran on:\s+pool thread",
                   r"run_in_executor items, sharptask:\s+[\d.]+ us"):
        assert re.search(needle, out), (needle, out)


@pytest.mark.timeout(180)
def test_I3_demo_scale_out_runs_and_explains_itself():
    out = _run_module("-m", "sharptask", "demo", "scale-out")
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "local pool" in out and "process pool" in out
    assert re.search(r"local pool: worker pids:\s+\d+ \(this process\)",
                     out), out
    assert re.search(r"process pool: worker pids:\s+\d+, \d+", out), out
    if distributed is not None:
        assert "Dask LocalCluster" in out
    else:
        assert "distributed is not installed" in out


# ----------------------------------------------------------------- docs

DOC = REPO / "docs" / "interop.md"


def _doc_blocks():
    if not DOC.exists():  # a copy of the tests without docs/
        return []
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_docs_interop_has_examples_I1_I2_I3():
    if not DOC.exists():
        pytest.skip("docs/interop.md is not in this copy of the tree")
    assert len(_doc_blocks()) >= 4


@pytest.mark.timeout(180)
@pytest.mark.parametrize("index", range(len(_doc_blocks())))
def test_docs_interop_examples_run_I1_I2_I3(index, tmp_path):
    """Every ```python block of docs/interop.md runs as it is written."""
    block = _doc_blocks()[index]
    script = tmp_path / f"example_{index}.py"
    script.write_text(block)
    _run_module(str(script))


# ---------------------------------------------- benchmarks (smoke only)

BENCH_RATIO = re.compile(r"ratio sharptask/peer = \d+\.\d+")

# As tools/check-py-asan.sh leaves test_benchmarks_smoke.py out: timing
# under ASan says nothing and these are among the slowest.
not_under_asan = pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="benchmark smoke runs are left out of the ASan run")


def _bench_quick(wid, script):
    """The workload's script runs in --quick mode and prints its ratio
    line (benchmarks are not tests: no timing is asserted)."""
    out = _run_module(REPO / "benchmarks" / "python" / script, "--quick",
                      "--no-progress", timeout=150)
    assert "interpreter: " in out
    lines = [line for line in out.splitlines()
             if line.startswith(wid) and BENCH_RATIO.search(line)]
    assert lines, f"no ratio line for {wid}:\n{out}"


@not_under_asan
@pytest.mark.timeout(180)
def test_W13_executor_roundtrip_benchmark_runs_quick_I2():
    _bench_quick("W13", "w13_executor_roundtrip.py")


@not_under_asan
@pytest.mark.timeout(180)
def test_W14_run_in_executor_benchmark_runs_quick_I2():
    _bench_quick("W14", "w14_run_in_executor.py")


@not_under_asan
@pytest.mark.timeout(180)
def test_W15_await_from_asyncio_benchmark_runs_quick_I2():
    _bench_quick("W15", "w15_await_from_asyncio.py")


@requires_dask
@not_under_asan
@pytest.mark.timeout(180)
def test_W16_dask_fanout_benchmark_runs_quick_I3():
    _bench_quick("W16", "w16_dask_fanout.py")


@pytest.mark.timeout(30)
def test_I2_H3_issue11_executor_keeps_no_event_loop_alive():
    """SPEC I2, H3 (issue 11, found by the refleak run): a loop whose
    futures went through a sharptask.Executor (wrap_future and
    run_in_executor take the batched delivery) is freed with the loop;
    before, the delivery's registry kept every such loop for good."""
    refs = []

    async def main():
        loop = asyncio.get_running_loop()
        refs.append(weakref.ref(loop))
        with st.Executor(2) as ex:
            assert await asyncio.wrap_future(
                ex.submit(operator.add, 1, 2)) == 3
            assert await loop.run_in_executor(ex, operator.add, 2, 2) == 4

    for _ in range(3):
        asyncio.run(main())
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
