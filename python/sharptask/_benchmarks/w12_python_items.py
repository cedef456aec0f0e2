"""W12: 100k tiny Python work items on 2 pool threads while the main thread
keeps running Python; items/s (shown as ns per item).

sharptask: `ThreadPool.queue_user_work_item(item)` N times, then the main
thread runs a pure-Python loop until every item ran. The pool lets one
worker at a time hold the GIL and run many items per acquisition
(BENCHMARKS.md rules 1-4). Peer: a 2-thread ThreadPoolExecutor, `submit`
N times, the same main-thread loop. Time runs from the first submit to
the main loop seeing the last item. Target: sharptask >= 1M items/s
(<= 1 us per item); BENCHMARKS.md's floors: one GIL acquisition per item
17-34k items/s, 64 items per acquisition 91-132k items/s.
"""

from __future__ import annotations

import concurrent.futures as cf
from time import perf_counter_ns

from . import _harness as h

ID = "W12"
TITLE = "tiny Python items, 2 workers, main thread busy in Python"


def _main_loop(sink, n):
    """The main thread's own Python work while the items run."""
    x = 0
    while len(sink) < n:
        x += 1
    return x


def run(ctx):
    import sharptask as st

    n = ctx.n(full=100_000, quick=10_000)
    pool = st.ThreadPool
    saved = (pool.get_min_threads(), pool.get_max_threads())
    executor = cf.ThreadPoolExecutor(2)

    def ours():
        sink: list[None] = []
        item = sink.append
        queue = pool.queue_user_work_item
        t0 = perf_counter_ns()
        for _ in range(n):
            queue(item, None)
        _main_loop(sink, n)
        return (perf_counter_ns() - t0) / n

    def peer():
        sink: list[None] = []
        item = sink.append
        submit = executor.submit
        t0 = perf_counter_ns()
        for _ in range(n):
            submit(item, None)
        _main_loop(sink, n)
        return (perf_counter_ns() - t0) / n

    try:
        # exactly 2 workers (.NET's validation: lower min first if needed)
        if pool.get_min_threads() > 2:
            pool.set_min_threads(2)
            pool.set_max_threads(2)
        else:
            pool.set_max_threads(2)
            pool.set_min_threads(2)
        a, b = h.alternate(ctx, [ours, peer])
        threads = pool.thread_count
    finally:
        executor.shutdown(wait=True)
        if saved[1] >= pool.get_min_threads():
            pool.set_max_threads(saved[1])
            pool.set_min_threads(saved[0])
        else:
            pool.set_min_threads(saved[0])
            pool.set_max_threads(saved[1])
    comp = h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/item", h.Series("sharptask", a),
        h.Series("ThreadPoolExecutor(2) submit", b),
        target_abs_ns=1000.0,
        target_text="sharptask ≥ 1M items/s (≤ 1 µs)",
        short="tiny Python items while main runs Python")
    comp.notes.append(f"items/s: sharptask {1e9 / comp.ours.median:,.0f}, "
                      f"peer {1e9 / comp.peer.median:,.0f} "
                      f"(pool threads: {threads})")
    return [comp]
