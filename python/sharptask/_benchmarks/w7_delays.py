"""W7: 100k `Task.delay` at random delays in [0, 10 ms], all awaited.

sharptask: `Task.delay(d)` for each of N random delays (one timer thread,
one heap, O(log n) each; a due delay is completed by a pool worker), then
one async method awaits `Task.when_all` of them; ns per timer from the
first delay to the end of the await. Peer: asyncio, `loop.call_later(d,
cb)` for the same delays, each callback counting, run until the last one
fired (BENCHMARKS.md: 5-7 µs per timer). The same delays are used by both
sides in a round. Target: <= 1/8 of the peer.
"""

import random
from time import perf_counter_ns

from . import _harness as h

ID = "W7"
TITLE = "Task.delay × N at random delays in [0, 10 ms], all awaited"


def run(ctx):
    import sharptask as st

    n = ctx.n(full=100_000, quick=10_000)
    rng = random.Random(7)
    delays = [rng.uniform(0.0, 0.010) for _ in range(n)]
    Task = st.Task

    @st.async_method
    async def await_all(tasks):
        await Task.when_all(tasks)

    def ours():
        t0 = perf_counter_ns()
        delay = Task.delay
        tasks = [delay(d) for d in delays]
        await_all(tasks).result
        return (perf_counter_ns() - t0) / n

    loop = h.new_asyncio_loop()

    def peer():
        fut = loop.create_future()
        left = [n]

        def fired():
            left[0] -= 1
            if left[0] == 0:
                fut.set_result(None)

        async def main():
            call_later = loop.call_later
            for d in delays:
                call_later(d, fired)
            await fut

        t0 = perf_counter_ns()
        loop.run_until_complete(main())
        return (perf_counter_ns() - t0) / n

    try:
        a, b = h.alternate(ctx, [ours, peer])
    finally:
        loop.close()
    peer_label = "asyncio call_later + fire" + (
        " (uvloop)" if h.uvloop_available() else "")
    return [h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/timer", h.Series("sharptask", a),
        h.Series(peer_label, b), target_ratio=1 / 8, target_text="≤ 1/8",
        short="Task.delay × N, random ≤ 10 ms, awaited")]
