"""W6: `Task.run(f).result` round-trip latency, median and p99.

One sample is one `Task.run(f).result` from the main thread: queue a trivial
callable to the pool, block until a worker ran it. Peer: `submit(f).result()`
on a warm `ThreadPoolExecutor`. Each round takes K samples per side and
reports their median (and p99); the rounds alternate.
"""

import concurrent.futures as cf
import statistics
from time import perf_counter_ns

from . import _harness as h

ID = "W6"
TITLE = "Task.run(f).result round trip"


def _trivial():
    return 1


def run(ctx):
    import sharptask as st

    k = ctx.n(full=5_000, quick=400)
    Task = st.Task
    samples: dict[str, list[list[int]]] = {"ours": [], "peer": []}
    executor = cf.ThreadPoolExecutor(2)

    def measure(key, one_call):
        out = []
        for _ in range(k):
            t0 = perf_counter_ns()
            one_call()
            out.append(perf_counter_ns() - t0)
        samples[key].append(out)
        return statistics.median(out)

    def ours_call():
        if Task.run(_trivial).result != 1:
            raise AssertionError("W6: Task.run(f).result is not f()")

    def peer_call():
        executor.submit(_trivial).result()

    try:
        a, b = h.alternate(
            ctx, [lambda: measure("ours", ours_call),
                  lambda: measure("peer", peer_call)])
    finally:
        executor.shutdown(wait=True)
    # Drop the warm-up round's samples (the first list of each side).
    ours_rounds = samples["ours"][1:]
    peer_rounds = samples["peer"][1:]
    p99_ours = [h.percentile(r, 99) for r in ours_rounds]
    p99_peer = [h.percentile(r, 99) for r in peer_rounds]
    pooled = (h.percentile([x for r in ours_rounds for x in r], 99),
              h.percentile([x for r in peer_rounds for x in r], 99))
    peer_label = "ThreadPoolExecutor(2) submit→result"
    return [
        h.Comparison(
            ID + "/median", f"{TITLE}, median (×{k:,} per round)",
            "ns/round trip", h.Series("sharptask", a),
            h.Series(peer_label, b),
            target_ratio=0.2, target_text="≤ 1/5",
            short="Task.run(f).result, median"),
        h.Comparison(
            ID + "/p99", f"{TITLE}, p99 (×{k:,} per round)",
            "ns/round trip", h.Series("sharptask", p99_ours),
            h.Series(peer_label, p99_peer),
            target_abs_ns=100_000, target_text="sharptask p99 ≤ 100 µs",
            short="Task.run(f).result, p99",
            notes=[f"p99 over all rounds: sharptask {h.fmt_ns(pooled[0])}, "
                   f"peer {h.fmt_ns(pooled[1])}"]),
    ]
