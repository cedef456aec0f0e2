"""W1: `await` of an already-completed Task inside an async method.

sharptask: inside an `@async_method` body, `await t` on `Task.from_result(1)`
N times (A4: never suspends, no scheduling). Peer: an asyncio coroutine
awaiting a done Future N times. The loop is timed inside the coroutine, so
neither `sharptask.run` nor `run_until_complete` is counted.
"""

from time import perf_counter_ns

from . import _harness as h

ID = "W1"
TITLE = "await of an already-completed Task"


def run(ctx):
    import sharptask as st

    n = ctx.n(full=1_000_000, quick=100_000)
    done_task = st.Task.from_result(1)

    @st.async_method
    async def st_main(count):
        t = done_task
        total = 0
        t0 = perf_counter_ns()
        for _ in range(count):
            total += await t
        elapsed = perf_counter_ns() - t0
        if total != count:
            raise AssertionError(f"W1: awaited sum {total} != {count}")
        return elapsed

    loop = h.new_asyncio_loop()
    fut = loop.create_future()
    fut.set_result(1)

    async def aio_main(count):
        f = fut
        total = 0
        t0 = perf_counter_ns()
        for _ in range(count):
            total += await f
        elapsed = perf_counter_ns() - t0
        if total != count:
            raise AssertionError(f"W1 peer: awaited sum {total} != {count}")
        return elapsed

    def ours():
        return st.run(st_main, n) / n

    def peer():
        return loop.run_until_complete(aio_main(n)) / n

    try:
        a, b = h.alternate(ctx, [ours, peer])
    finally:
        loop.close()
    return [h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/await",
        h.Series("sharptask", a), h.Series("asyncio await done Future", b),
        target_ratio=0.75, target_text="≤ 0.75",
        short="await completed Task")]
