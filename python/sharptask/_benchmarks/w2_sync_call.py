"""W2: call of an async method that completes synchronously.

sharptask: inside an async method, `await m()` where `m` is an
`@async_method` whose body returns at once (no Task box, a cached completed
task, A1/T12). Peers, in one asyncio loop: `await asyncio.create_task(coro())`
(what a task costs in asyncio, W2/task) and bare `await coro()` (the
interpreter's floor for a coroutine call, W2b: issue 10 asks for ≤ 1.3×).

tools/callgrind-w2b.sh counts W2b in instructions instead of time: it runs
sharptask_per_op, bare_per_op and loop_per_op (the same loop with no call)
under callgrind and prints (ours - loop) / (bare - loop).
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


def _drive(coro):
    """Runs a coroutine that never suspends to its end, no event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the W2b loop suspended")


def bare_per_op(count):
    """W2b's peer alone, ns per call: `await coro()` in a coroutine (driven
    without an event loop: nothing in it suspends)."""
    async def coro():
        return None

    async def main(count):
        t0 = perf_counter_ns()
        for _ in range(count):
            await coro()
        return perf_counter_ns() - t0

    return _drive(main(count)) / count


def loop_per_op(count):
    """W2b's loop with no call in it, ns per iteration: what
    tools/callgrind-w2b.sh subtracts from both sides."""
    async def main(count):
        t0 = perf_counter_ns()
        for _ in range(count):
            pass
        return perf_counter_ns() - t0

    return _drive(main(count)) / count


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
            "W2b", f"{TITLE} vs bare coroutine (×{n:,})",
            "ns/call", mine, h.Series("bare await coro()", c),
            target_ratio=1.3, target_text="≤ 1.3",
            short="sync async-method call vs bare coroutine"),
    ]
