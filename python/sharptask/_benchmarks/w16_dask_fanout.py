"""W16: a fan-out of small remote calls on a Dask `LocalCluster` (worker
processes) through `ExecutorTaskScheduler`, against `client.map` +
`client.gather` on the same cluster (BENCHMARKS.md, issue 11).

sharptask side: N `Task.factory.start_new(f, i, scheduler=sched)` over
`client.get_executor()`, then `Task.when_all(...).result`; peer: one
`client.map(f, range)` and `client.gather`.  Each round uses new arguments
(Dask would reuse results of keys it still holds).  Needs `distributed`
(`pip install sharptask[dask]`): without it the workload reports nothing.
Target: ≤ 1.1× (the scheduler adds almost nothing to the cluster's cost).
"""

from time import perf_counter_ns

from . import _harness as h

ID = "W16"
TITLE = "Dask fan-out through ExecutorTaskScheduler"


def _inc(x):
    return x + 1


def run(ctx):
    try:
        import distributed
    except ImportError:
        ctx.note("W16 skipped: distributed is not installed "
                 "(pip install sharptask[dask])")
        return []
    import sharptask as st

    n = ctx.n(full=1_000, quick=100)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True,
        dashboard_address=None)
    client = distributed.Client(cluster)
    sched = st.ExecutorTaskScheduler(client.get_executor())
    base = [0]

    def next_args():
        base[0] += n
        return range(base[0], base[0] + n)

    def ours():
        args = next_args()
        start_new = st.Task.factory.start_new
        t0 = perf_counter_ns()
        tasks = [start_new(_inc, i, scheduler=sched) for i in args]
        results = st.Task.when_all(tasks).result
        elapsed = perf_counter_ns() - t0
        if results[-1] != args[-1] + 1:
            raise AssertionError("W16: wrong result")
        return elapsed / n

    def peer():
        args = next_args()
        t0 = perf_counter_ns()
        results = client.gather(client.map(_inc, args))
        elapsed = perf_counter_ns() - t0
        if results[-1] != args[-1] + 1:
            raise AssertionError("W16 peer: wrong result")
        return elapsed / n

    try:
        a, b = h.alternate(ctx, [ours, peer])
    finally:
        client.close()
        cluster.close()
    return [h.Comparison(
        ID, f"{TITLE} (×{n:,} calls, 2 worker processes)", "ns/call",
        h.Series("ExecutorTaskScheduler + when_all", a),
        h.Series("client.map + client.gather", b),
        target_ratio=1.1, target_text="≤ 1.1×",
        short="Dask fan-out via scheduler")]
