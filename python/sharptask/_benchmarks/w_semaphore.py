"""WSEM: SemaphoreSlim(1) as the async lock of async methods, against
asyncio.Lock (issue 6, SPEC K4).

Two comparisons, one operation = one acquire + release:

- WSEM/uncontended: one async method takes and releases the lock N times
  (`await sem.wait_async()` ... `sem.release()`); the lock is always free,
  so neither side ever suspends. Peer: `async with lock:` in one asyncio
  task. This is the path an async lock takes almost always.
- WSEM/contended: four async methods take turns, each holding the lock
  across one suspension (`await Task.yield_()` in sharptask, `await
  asyncio.sleep(0)` in asyncio), so every acquisition but the first waits in
  the FIFO queue and every release hands the lock to the next waiter. In
  sharptask the waiter's task runs its continuation asynchronously (9.5), so
  a hand-off resumes the next method on a pool thread; asyncio's stays on
  its one event-loop thread.
"""

import asyncio
from time import perf_counter_ns

from . import _harness as h

ID = "WSEM"
TITLE = "SemaphoreSlim.wait_async/release as an async lock"

CONTENDERS = 4


def run(ctx):
    import sharptask as st

    n = ctx.n(full=200_000, quick=20_000)
    n_contended = ctx.n(full=20_000, quick=2_000)

    # ------------------------------------------------------- uncontended

    @st.async_method
    async def st_uncontended(count):
        sem = st.SemaphoreSlim(1)
        wait_async = sem.wait_async
        release = sem.release
        t0 = perf_counter_ns()
        for _ in range(count):
            await wait_async()
            release()
        return perf_counter_ns() - t0

    async def aio_uncontended(count):
        lock = asyncio.Lock()
        t0 = perf_counter_ns()
        for _ in range(count):
            async with lock:
                pass
        return perf_counter_ns() - t0

    # --------------------------------------------------------- contended

    @st.async_method
    async def st_worker(sem, count, box):
        for _ in range(count):
            await sem.wait_async()
            try:
                box[0] += 1
                await st.Task.yield_()
            finally:
                sem.release()

    @st.async_method
    async def st_contended(count):
        sem = st.SemaphoreSlim(1)
        box = [0]
        per = count // CONTENDERS
        t0 = perf_counter_ns()
        await st.Task.when_all(
            [st_worker(sem, per, box) for _ in range(CONTENDERS)])
        elapsed = perf_counter_ns() - t0
        if box[0] != per * CONTENDERS:
            raise AssertionError(f"WSEM: {box[0]} != {per * CONTENDERS}")
        return elapsed

    async def aio_worker(lock, count, box):
        for _ in range(count):
            async with lock:
                box[0] += 1
                await asyncio.sleep(0)

    async def aio_contended(count):
        lock = asyncio.Lock()
        box = [0]
        per = count // CONTENDERS
        t0 = perf_counter_ns()
        await asyncio.gather(
            *[aio_worker(lock, per, box) for _ in range(CONTENDERS)])
        elapsed = perf_counter_ns() - t0
        if box[0] != per * CONTENDERS:
            raise AssertionError(f"WSEM peer: {box[0]} != {per * CONTENDERS}")
        return elapsed

    loop = h.new_asyncio_loop()

    def ours_u():
        return st.run(st_uncontended, n) / n

    def peer_u():
        return loop.run_until_complete(aio_uncontended(n)) / n

    def ours_c():
        return st.run(st_contended, n_contended) / n_contended

    def peer_c():
        return loop.run_until_complete(aio_contended(n_contended)) / \
            n_contended

    try:
        a, b, c, d = h.alternate(ctx, [ours_u, peer_u, ours_c, peer_c])
    finally:
        loop.close()
    return [
        h.Comparison(
            f"{ID}/uncontended",
            f"{TITLE}, lock always free (×{n:,})", "ns/acquire+release",
            h.Series("sharptask", a),
            h.Series("asyncio.Lock `async with`", b),
            target_ratio=1.0, target_text="≤ 1.0 (no slower than asyncio)",
            short="SemaphoreSlim lock, free"),
        h.Comparison(
            f"{ID}/contended",
            f"{TITLE}, {CONTENDERS} methods taking turns across a "
            f"suspension (×{n_contended:,})", "ns/hand-off",
            h.Series("sharptask (resumes on pool threads)", c),
            h.Series("asyncio.Lock + sleep(0), one loop", d),
            short="SemaphoreSlim lock, contended"),
    ]
