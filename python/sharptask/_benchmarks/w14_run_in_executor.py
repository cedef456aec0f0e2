"""W14: throughput of `loop.run_in_executor` over many small items, with
`sharptask.Executor` as the loop's default executor against the loop's own
default executor (a ThreadPoolExecutor) (BENCHMARKS.md, issue 11).

One round: N `loop.run_in_executor(None, f, i)` calls, then one
`asyncio.gather` of them all; the figure is the round's time per item.
Both sides pay asyncio's own per-item cost (wrap_future, the loop's
callbacks, gather); the notes give that floor, measured in the same
rounds with two executors that run each call inline at submit: one into
sharptask's futures (their batched delivery to the loop), one into a plain
`concurrent.futures.Future` (asyncio's own path: one
`call_soon_threadsafe`, a self-pipe write, per item).  Target: ≤ 1/5 per
item.
"""

import asyncio
import concurrent.futures as cf
from time import perf_counter_ns

from . import _harness as h

ID = "W14"
TITLE = "loop.run_in_executor, many small items"


def _f(x):
    return x


class _InlineExecutor(cf.ThreadPoolExecutor):
    """The floor: runs each call at submit, on the loop's thread, into
    the same kind of future as sharptask.Executor's (no pool, no thread
    hand-off: what is left is asyncio's own cost and the future's)."""

    def __init__(self):
        super().__init__(1)

    def submit(self, fn, /, *args, **kwargs):
        from sharptask._executor import _Future
        f = _Future()
        f.set_running_or_notify_cancel()
        f.set_result(fn(*args, **kwargs))
        return f


class _NullExecutor(cf.ThreadPoolExecutor):
    """asyncio's floor through the public path: each call run at submit
    into a plain concurrent.futures.Future."""

    def __init__(self):
        super().__init__(1)

    def submit(self, fn, /, *args, **kwargs):
        f: cf.Future = cf.Future()
        f.set_running_or_notify_cancel()
        f.set_result(fn(*args, **kwargs))
        return f


async def _items(n):
    loop = asyncio.get_running_loop()
    t0 = perf_counter_ns()
    results = await asyncio.gather(
        *[loop.run_in_executor(None, _f, i) for i in range(n)])
    elapsed = perf_counter_ns() - t0
    if results[-1] != n - 1:
        raise AssertionError(f"W14: last result {results[-1]} != {n - 1}")
    return elapsed / n


def _side(make, n):
    def fn():
        loop = asyncio.new_event_loop()
        ex = make()
        loop.set_default_executor(ex)
        try:
            return loop.run_until_complete(_items(n))
        finally:
            ex.shutdown(wait=True)
            loop.close()
    return fn


def run(ctx):
    import sharptask as st

    n = ctx.n(full=100_000, quick=5_000)
    ours = _side(st.Executor, n)
    peer = _side(cf.ThreadPoolExecutor, n)
    _side(st.Executor, 2_000)()  # warm-up at a small size
    _side(cf.ThreadPoolExecutor, 2_000)()
    a, b, fl, nul = h.alternate(
        ctx, [ours, peer, _side(_InlineExecutor, n),
              _side(_NullExecutor, n)], warmup=0)
    comp = h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/item",
        h.Series("sharptask.Executor as default executor", a),
        h.Series("the loop's default ThreadPoolExecutor", b),
        target_ratio=0.2, target_text="≤ 1/5",
        short="run_in_executor throughput")
    floor = sorted(fl)[len(fl) // 2]
    null = sorted(nul)[len(nul) // 2]
    comp.notes.append(
        f"floor, same rounds (each call run inline at submit into the same "
        f"futures: asyncio's own cost): {h.fmt_ns(floor)} per item "
        f"(median), {floor / comp.peer.median:.2f} of the peer")
    comp.notes.append(
        f"asyncio's floor with plain concurrent.futures futures done at "
        f"submit: {h.fmt_ns(null)} per item (median), "
        f"{null / comp.peer.median:.2f} of the peer")
    return [comp]
