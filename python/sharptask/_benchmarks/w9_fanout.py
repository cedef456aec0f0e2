"""W9: 100k fan-out on one shared source, and what a pending call weighs.

sharptask: N `@async_method` calls that each `await` one shared
TaskCompletionSource's task are started from a plain thread (no
synchronization context: like .NET's console Main), the source is
completed, and `Task.when_all(tasks).result` waits for them all; ns per
method.  Peer, in one asyncio loop: `asyncio.create_task` of N coroutines
that each await one shared Future, one `sleep(0)` so that every task runs
to its await, `set_result`, then `gather`; ns per task.  Target ≤ 1/7.

W9m, the memory of one pending call: the same N calls are started with
tracemalloc on and the GC off, and the traced memory growth while all N
are pending (before the source completes), divided by N, is the bytes
per pending method: the coroutine, the Task box and what the call copies
(its contextvars context).  Peer: the same for asyncio's pending Task with
its coroutine (and its entry in the Future's callbacks).  Both sides keep
their tasks in a list made beforehand, so neither pays the list's growth.
Memory is deterministic: a few rounds suffice.  Target ≤ 0.5; lower is
better; the unit is bytes.
"""

import asyncio
import gc
import tracemalloc
from time import perf_counter_ns
from typing import Any

from . import _harness as h

ID = "W9"
TITLE = "100k fan-out on one shared source"


async def _aio_leaf(fut):
    return await fut


def _sharptask_methods(st):
    @st.async_method
    async def leaf(gate):
        return await gate

    return leaf


def sharptask_fanout(st, leaf, count):
    """The sharptask side of W9, ns per method."""
    Task = st.Task
    t0 = perf_counter_ns()
    tcs = st.TaskCompletionSource()
    gate = tcs.task
    tasks = [leaf(gate) for _ in range(count)]
    tcs.set_result(1)
    results = Task.when_all(tasks).result
    elapsed = perf_counter_ns() - t0
    if len(results) != count:
        raise AssertionError(f"W9: when_all gave {len(results)} results")
    return elapsed / count


def asyncio_fanout(loop, count):
    """The asyncio side of W9, ns per task."""

    async def main():
        create_task = asyncio.create_task
        t0 = perf_counter_ns()
        fut = loop.create_future()
        tasks = [create_task(_aio_leaf(fut)) for _ in range(count)]
        await asyncio.sleep(0)  # every task runs to its await
        fut.set_result(1)
        results = await asyncio.gather(*tasks)
        elapsed = perf_counter_ns() - t0
        if len(results) != count:
            raise AssertionError(f"W9: gather gave {len(results)} results")
        return elapsed

    return loop.run_until_complete(main()) / count


class traced_growth:
    """`with traced_growth() as g:` ... then g.bytes: the traced memory the
    block left allocated, measured with tracemalloc and the GC off (a
    plain context manager, so that an async side can await inside it)."""

    bytes = 0

    def __enter__(self):
        self._gc_was_on = gc.isenabled()
        gc.collect()
        gc.disable()
        tracemalloc.start()
        self._m0 = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc):
        try:
            self.bytes = tracemalloc.get_traced_memory()[0] - self._m0
        finally:
            tracemalloc.stop()
            if self._gc_was_on:
                gc.enable()
        return False


def sharptask_pending_bytes(st, leaf, count):
    """W9m, sharptask side: bytes per pending `@async_method` call."""
    tcs = st.TaskCompletionSource()
    gate = tcs.task
    tasks: list[Any] = [None] * count

    with traced_growth() as g:
        for i in range(count):
            tasks[i] = leaf(gate)
    growth = g.bytes
    if any(t.is_completed for t in tasks[:10]):
        raise AssertionError("W9m: a call completed before its source")
    tcs.set_result(1)
    st.Task.when_all(tasks).wait()
    return growth / count


def asyncio_pending_bytes(loop, count):
    """W9m, asyncio side: bytes per pending Task with its coroutine."""
    result: list[int] = []

    async def main():
        fut = loop.create_future()
        tasks: list[Any] = [None] * count
        create_task = asyncio.create_task

        async def start_and_park():
            for i in range(count):
                tasks[i] = create_task(_aio_leaf(fut))
            await asyncio.sleep(0)  # every task runs to its await

        with traced_growth() as g:
            await start_and_park()
        result.append(g.bytes)
        fut.set_result(1)
        await asyncio.gather(*tasks)

    loop.run_until_complete(main())
    return result[0] / count


def run(ctx):
    import sharptask as st

    n = ctx.n(full=100_000, quick=10_000)
    leaf = _sharptask_methods(st)
    loop = h.new_asyncio_loop()

    def ours():
        return sharptask_fanout(st, leaf, n)

    def peer():
        return asyncio_fanout(loop, n)

    def ours_mem():
        return sharptask_pending_bytes(st, leaf, n)

    def peer_mem():
        return asyncio_pending_bytes(loop, n)

    try:
        a, b = h.alternate(ctx, [ours, peer])
        mem_ctx = h.Context(ctx.quick, ctx.tick, rounds=min(ctx.rounds, 3))
        c, d = h.alternate(mem_ctx, [ours_mem, peer_mem], warmup=1)
    finally:
        loop.close()
    return [
        h.Comparison(
            ID, f"{TITLE}: start, complete, when_all (×{n:,})", "ns/method",
            h.Series("sharptask", a),
            h.Series("asyncio create_task + gather", b),
            target_ratio=1 / 7, target_text="≤ 1/7",
            short="100k fan-out, time per method"),
        h.Comparison(
            ID + "m", f"bytes per pending method (×{n:,}, tracemalloc)",
            "bytes/method",
            h.Series("sharptask @async_method", c, unit="B"),
            h.Series("asyncio Task + coroutine", d, unit="B"),
            target_ratio=0.5, target_text="≤ 0.5",
            notes=["traced memory growth while all calls are pending, "
                   "divided by their count; GC off"],
            short="bytes per pending method"),
    ]
