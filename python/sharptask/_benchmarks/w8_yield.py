"""W8: `await Task.yield_()` on a SingleThreadSynchronizationContext.

sharptask: an `@async_method` run by `SingleThreadSynchronizationContext.run`
awaits `Task.yield_()` N times. Each await always suspends (R7.6) and posts
its resumption to the current context, whose pump runs it on the same
thread: one trip through the UI thread's message queue per yield. A check
run before the measurement verifies that every yield suspended and resumed
on the context. Peer: an asyncio coroutine doing `await asyncio.sleep(0)` N
times (one trip through the event loop's ready queue each). The loop is
timed inside the coroutine, so neither `run` is counted.
"""

import asyncio
from time import perf_counter_ns

from . import _harness as h

ID = "W8"
TITLE = "await Task.yield_() on a single-threaded context"


def run(ctx):
    import sharptask as st

    n = ctx.n(full=200_000, quick=20_000)
    context = st.SingleThreadSynchronizationContext()
    yield_ = st.Task.yield_

    @st.async_method
    async def st_main(count):
        t0 = perf_counter_ns()
        for _ in range(count):
            await yield_()
        return perf_counter_ns() - t0

    # The check run (not timed): each yield left the method suspended (the
    # code after `await` ran in a later pump step, not inside the await).
    @st.async_method
    async def check(count):
        steps: list[int] = []
        for i in range(count):
            context.post(steps.append, i)  # queued before the yield's post
            await yield_()
            if st.SynchronizationContext.current() is not context:
                raise AssertionError("W8: resumed off the context")
            if not steps or steps[-1] != i:
                raise AssertionError("W8: yield_() did not go through the "
                                     "context's queue")
        return len(steps)

    checked = context.run(check, 1_000)
    ctx.note(f"check run: {checked} yields each suspended and resumed on "
             "the SingleThreadSynchronizationContext, after a callback "
             "posted before them")

    async def aio_main(count):
        sleep = asyncio.sleep
        t0 = perf_counter_ns()
        for _ in range(count):
            await sleep(0)
        return perf_counter_ns() - t0

    loop = h.new_asyncio_loop()

    def ours():
        return context.run(st_main, n) / n

    def peer():
        return loop.run_until_complete(aio_main(n)) / n

    try:
        a, b = h.alternate(ctx, [ours, peer])
    finally:
        loop.close()
    return [h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/yield",
        h.Series("sharptask", a), h.Series("asyncio await sleep(0)", b),
        target_ratio=1 / 15, target_text="≤ 1/15",
        short="Task.yield_() on a context")]
