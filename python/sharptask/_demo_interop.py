"""The interop demos (issue 11): `python -m sharptask demo asyncio` and
`python -m sharptask demo scale-out`, registered in demo.py's SCENARIOS.

Each runs as an experiment and prints what it observed: which thread each
step ran on, values, statuses, timings and worker process ids.
"""
from __future__ import annotations

import os
import threading
import time

# --------------------------------------------------------------- helpers


def _out():
    from . import demo
    return demo._title, demo._step, demo._say, demo._show


def _where(ident: int, loop_ident: int) -> str:
    if ident == loop_ident:
        return "the loop thread"
    name = threading._active.get(ident)
    return f"pool thread {ident:#x}" if name is None or \
        name.name.startswith("Dummy") else f"thread {name.name!r}"


def crunch(n: int) -> tuple[int, int]:
    """CPU-bound work in pure Python (holds the GIL): the sum of squares
    below n, and the process id that computed it."""
    total = 0
    for i in range(n):
        total += i * i
    return total, os.getpid()


# ------------------------------------------------------------ asyncio demo


def demo_asyncio() -> None:
    """I2: sharptask Tasks awaited from asyncio and asyncio awaited from an
    async method, with where each step ran; the Executor as asyncio's
    default executor."""
    import asyncio
    import concurrent.futures as cf

    import sharptask as st

    _title, _step, _say, _show = _out()
    _title("asyncio: a sharptask pipeline awaited from asyncio and back")
    _say("""
        asyncio runs coroutines on one loop thread; sharptask runs Tasks on
        its thread pool. An asyncio coroutine can await a sharptask Task
        (the awaiter hands asyncio a future of the running loop), and an
        @async_method can await asyncio's futures, tasks and coroutines.""")

    async def pipeline() -> None:
        loop = asyncio.get_running_loop()
        me = threading.get_ident()

        _step("1. await sharptask Task in asyncio")
        seen = {}

        def parse(text):
            seen["parse"] = threading.get_ident()
            time.sleep(0.01)
            return text.split()

        words = await st.Task.run(parse, "the quick brown fox")
        _show("Task.run(parse) ran on:", _where(seen["parse"], me))
        _show("value:", words)
        _show("resumed on the loop thread:", threading.get_ident() == me)
        many = await asyncio.gather(*[st.Task.run(len, w) for w in words])
        _show("asyncio.gather of 4 Tasks:", many)

        _step("2. faults and cancellation come through as in .NET")
        tcs = st.TaskCompletionSource()
        err = KeyError("missing")
        threading.Timer(0.01, tcs.set_exception, (err,)).start()
        try:
            await tcs.task
        except KeyError as e:
            _show("await of a faulted Task raised:", repr(e))
            _show("the very object set on the Task:", e is err)
        tcs2 = st.TaskCompletionSource()
        threading.Timer(0.01, tcs2.set_canceled).start()
        try:
            await tcs2.task
        except st.TaskCanceledError as e:
            _show("await of a canceled Task raised:", type(e).__name__)

        _step("3. asyncio gives up waiting; the Task runs on")
        slow = st.TaskCompletionSource()
        try:
            await asyncio.wait_for(slow.task, 0.02)
        except asyncio.TimeoutError:
            _show("wait_for(task, 0.02) raised:", "TimeoutError")
        _show("the Task after the timeout:", slow.task.status.name)
        slow.set_result("finished later")
        _show("its result, awaited again:", await slow.task)
        _say("""
            Cancelling the asyncio side abandons that await only: a .NET
            Task is never cancelled by its awaiter (use a CancellationToken
            for that), and its late completion logs nothing on the loop.""")

        _step("4. an @async_method awaits asyncio, resumes on the loop")
        ctx = st.AsyncioSynchronizationContext(loop)

        @st.async_method
        async def handler():
            steps = []
            await asyncio.sleep(0.01)
            steps.append(("after asyncio.sleep", threading.get_ident()))
            await st.Task.run(time.sleep, 0.01)
            steps.append(("after Task.run", threading.get_ident()))
            await asyncio.ensure_future(asyncio.sleep(0.01))
            steps.append(("after an asyncio task", threading.get_ident()))
            return steps

        st.SynchronizationContext.set_synchronization_context(ctx)
        try:
            method_task = handler()
        finally:
            st.SynchronizationContext.set_synchronization_context(None)
        for label, ident in await method_task:
            _show(label + " ran on:", _where(ident, me))
        _say("""
            asyncio awaitables resume the method on their loop's thread.
            After a sharptask await it resumes where .NET would (C3): on
            the captured SynchronizationContext; here an
            AsyncioSynchronizationContext(loop), whose post is
            loop.call_soon_threadsafe, so every step stays on the loop.""")

        _step("5. sharptask.Executor as asyncio's default executor")
        ex = st.Executor()
        loop.set_default_executor(ex)
        where = await asyncio.to_thread(threading.get_ident)
        _show("asyncio.to_thread ran on:", _where(where, me))
        _show("isinstance ThreadPoolExecutor:",
              isinstance(ex, cf.ThreadPoolExecutor))
        n = 20_000
        t0 = time.perf_counter()
        await asyncio.gather(*[loop.run_in_executor(None, abs, -i)
                               for i in range(n)])
        ours = time.perf_counter() - t0
        tpe = cf.ThreadPoolExecutor()
        t0 = time.perf_counter()
        await asyncio.gather(*[loop.run_in_executor(tpe, abs, -i)
                               for i in range(n)])
        theirs = time.perf_counter() - t0
        tpe.shutdown()
        _show(f"{n:,} run_in_executor items, sharptask:",
              f"{ours * 1e6 / n:.1f} us per item")
        _show(f"{n:,} items, ThreadPoolExecutor():",
              f"{theirs * 1e6 / n:.1f} us per item")
        t0 = time.perf_counter()
        for _ in range(500):
            ex.submit(int).result()
        rt_ours = (time.perf_counter() - t0) / 500
        with cf.ThreadPoolExecutor(2) as tpe2:
            t0 = time.perf_counter()
            for _ in range(500):
                tpe2.submit(int).result()
            rt_theirs = (time.perf_counter() - t0) / 500
        _show("submit(f).result() round trip, sharptask:",
              f"{rt_ours * 1e6:.1f} us")
        _show("the same on ThreadPoolExecutor(2):",
              f"{rt_theirs * 1e6:.1f} us")
        _say("""
            The Executor has no threads of its own: its items run on the
            sharptask pool, many per GIL acquisition, and its futures wait
            natively (a short spin without the GIL, then a sleep). Both
            sides of the run_in_executor line also pay asyncio's own cost
            per item (wrap_future, the loop's callbacks, gather).""")

    asyncio.run(pipeline())


# ---------------------------------------------------------- scale-out demo


def demo_scale_out() -> None:
    """I3: the same when_all fan-out on the local pool, on a process pool
    and on a local Dask cluster, through ExecutorTaskScheduler."""
    import concurrent.futures as cf
    import multiprocessing

    import sharptask as st

    _title, _step, _say, _show = _out()
    _title("scale-out: the same fan-out on the pool, processes and Dask")
    n_items, size = 8, 1_500_000
    _say(f"""
        {n_items} calls of crunch({size:,}), pure-Python CPU work, started
        with Task.factory.start_new(crunch, n, scheduler=s) and awaited with
        Task.when_all: the awaiting code is the same each time; only the
        TaskScheduler changes. ExecutorTaskScheduler(executor) hands each
        task's delegate to a concurrent.futures.Executor.""")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    _show("CPUs here / load average (1 min):",
          f"{os.cpu_count()} / {load:.2f}")

    def fan_out(scheduler) -> tuple[float, set]:
        t0 = time.perf_counter()
        tasks = [st.Task.factory.start_new(crunch, size + i,
                                           scheduler=scheduler)
                 for i in range(n_items)]
        results = st.Task.when_all(tasks).result
        took = time.perf_counter() - t0
        expected = [crunch(size + i)[0] for i in range(2)]
        assert [r for r, _ in results[:2]] == expected
        return took, {pid for _, pid in results}

    def report(label, took, pids):
        _show(f"{label}: time", f"{took * 1000:.0f} ms")
        mine = " (this process)" if pids == {os.getpid()} else ""
        _show(f"{label}: worker pids:",
              ", ".join(str(p) for p in sorted(pids)) + mine)

    _step("1. the local pool (TaskScheduler.default)")
    took, pids = fan_out(st.TaskScheduler.default)
    report("local pool", took, pids)
    _say("""
        Pool threads share one interpreter: pure-Python CPU work runs one
        thread at a time under the GIL.""")

    _step("2. a process pool (ExecutorTaskScheduler(ProcessPoolExecutor))")
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        pool.submit(int).result()  # workers started: time the work only
        sched = st.ExecutorTaskScheduler(pool)
        _show("maximum_concurrency_level:", sched.maximum_concurrency_level)
        took, pids = fan_out(sched)
        report("process pool", took, pids)
        bad = st.Task.factory.start_new(lambda: 1, scheduler=sched)
        try:
            bad.wait(30)
        except st.AggregateError as e:
            _show("a lambda (not picklable) faults its task:",
                  type(e.inner_exceptions[0]).__name__)
            _show("   with:", str(e.inner_exceptions[0])[:50])

    _step("3. a Dask LocalCluster of 2 worker processes")
    try:
        import distributed
    except ImportError:
        _say("""
            Skipped: distributed is not installed (pip install
            sharptask[dask]).""")
        return
    import logging
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.CRITICAL)
        client = distributed.Client(cluster)
    try:
        sched = st.ExecutorTaskScheduler(client.get_executor())
        _show("maximum_concurrency_level:", sched.maximum_concurrency_level)
        client.submit(int).result()
        took, pids = fan_out(sched)
        report("Dask LocalCluster", took, pids)
        t0 = time.perf_counter()
        client.gather(client.map(crunch, [size + 100 + i
                                          for i in range(n_items)]))
        _show("the same with client.map + gather:",
              f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()
            cluster.close()
    _say("""
        Processes run the work in parallel, one per free core, at the
        price of pickling the function, its arguments and its result. The tasks are
        ordinary sharptask Tasks: continuations, when_all, contexts and
        cancellation before start behave as on the local pool.""")
