"""W2: call of an async method that completes synchronously.

sharptask: inside an async method, `await m()` where `m` is an
`@async_method` whose body returns at once (no Task box, a cached completed
task, A1/T12). Peers, in one asyncio loop: `await asyncio.create_task(coro())`
(what a task costs in asyncio) and bare `await coro()` (the interpreter's
floor for a coroutine call).
"""

import asyncio
from time import perf_counter_ns

from . import _harness as h

ID = "W2"
TITLE = "call of a synchronously completing async method"


def sharptask_per_op(count):
    """The sharptask side, ns per call (also run alone by
    tools/bench_trace_baseline.py against two builds)."""
    import sharptask as st

    @st.async_method
    async def st_noop():
        return None

    @st.async_method
    async def st_main(count):
        t0 = perf_counter_ns()
        for _ in range(count):
            await st_noop()
        return perf_counter_ns() - t0

    return st.run(st_main, count) / count


def run(ctx):
    n = ctx.n(full=1_000_000, quick=100_000)
    n_task = ctx.n(full=20_000, quick=2_000)  # create_task is ~100× slower

    async def coro():
        return None

    async def aio_create_task(count):
        create_task = asyncio.create_task
        t0 = perf_counter_ns()
        for _ in range(count):
            await create_task(coro())
        return perf_counter_ns() - t0

    async def aio_bare(count):
        t0 = perf_counter_ns()
        for _ in range(count):
            await coro()
        return perf_counter_ns() - t0

    loop = h.new_asyncio_loop()

    def ours():
        return sharptask_per_op(n)

    def peer_task():
        return loop.run_until_complete(aio_create_task(n_task)) / n_task

    def peer_bare():
        return loop.run_until_complete(aio_bare(n)) / n

    try:
        a, b, c = h.alternate(ctx, [ours, peer_task, peer_bare])
    finally:
        loop.close()
    mine = h.Series("sharptask", a)
    return [
        h.Comparison(
            ID + "/task", f"{TITLE} vs asyncio task (×{n:,} / ×{n_task:,})",
            "ns/call", mine,
            h.Series("asyncio await create_task(coro())", b),
            target_ratio=1 / 30, target_text="≤ 1/30",
            short="sync async-method call"),
        h.Comparison(
            ID + "/bare", f"{TITLE} vs bare coroutine (×{n:,})",
            "ns/call", mine, h.Series("bare await coro()", c),
            target_ratio=2.0, target_text="≤ 2.0",
            short="sync async-method call"),
    ]
