"""W13: `sharptask.Executor().submit(f).result()` round trip, against
`ThreadPoolExecutor(2)` doing the same (BENCHMARKS.md, issue 11).

One operation is one submit of a trivial function from the main thread and
the blocking `result()` that waits for it: the hand-off to a worker and the
hand-off back.  sharptask's futures wait natively (a short spin without the
GIL, then a sleep) instead of a condition variable.  Target: ≤ 1/5.
"""

import concurrent.futures as cf
from time import perf_counter_ns

from . import _harness as h

ID = "W13"
TITLE = "Executor.submit(f).result() round trip"


def _f():
    return 1


def run(ctx):
    import sharptask as st

    n = ctx.n(full=20_000, quick=1_000)
    ours_ex = st.Executor()
    peer_ex = cf.ThreadPoolExecutor(2)

    def rounds(ex):
        def fn():
            submit = ex.submit
            t0 = perf_counter_ns()
            for _ in range(n):
                submit(_f).result()
            return (perf_counter_ns() - t0) / n
        return fn

    def task_rounds():
        run = st.Task.run
        t0 = perf_counter_ns()
        for _ in range(n):
            run(_f).result
        return (perf_counter_ns() - t0) / n

    try:
        a, b, floor = h.alternate(
            ctx, [rounds(ours_ex), rounds(peer_ex), task_rounds])
    finally:
        ours_ex.shutdown()
        peer_ex.shutdown()
    comp = h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/round trip",
        h.Series("sharptask.Executor", a),
        h.Series("ThreadPoolExecutor(2) submit(f).result()", b),
        target_ratio=0.2, target_text="≤ 1/5",
        short="Executor submit→result")
    f = sorted(floor)[len(floor) // 2]
    comp.notes.append(
        f"the pool's own round trip, Task.run(f).result, same rounds: "
        f"{h.fmt_ns(f)} (median), {f / comp.peer.median:.2f} of the peer")
    return [comp]
