"""WT: the cost of tracing (SPEC D2, issue 12): W5 (`Task.run(trivial)` × N,
then `Task.when_all(tasks).result`, ns per item, the default pool) with
tracing on (inside `sharptask.trace()`) against the same with tracing off,
alternating in one run. W5 is the busiest workload for the recorder: four
events or more per item (queued, start, end, task completed) from the
calling thread and the workers at once. Target: on ≤ 3× off.

Only the recording is timed: the collect at the end of each traced round
(turning the buffers into TraceEvent objects) runs after the clock stops.
BENCHMARKS.md's other WT column, tracing off against a build without the
recorder, needs two builds and is not measured here; W2 and W4a on/off
wait for the binding's method event sites (until then they record almost
nothing).
"""

from __future__ import annotations

from time import perf_counter_ns

from . import _harness as h

ID = "WT"
TITLE = "tracing on vs off (W5)"


def _trivial():
    return None


def run(ctx):
    import sharptask as st

    n = ctx.n(full=100_000, quick=5_000)
    Task = st.Task
    recorded = []

    def w5():
        t0 = perf_counter_ns()
        tasks = [Task.run(_trivial) for _ in range(n)]
        results = Task.when_all(tasks).result
        elapsed = perf_counter_ns() - t0
        if len(results) != n:
            raise AssertionError(f"WT: when_all gave {len(results)} results")
        return elapsed / n

    def on():
        with st.trace() as tr:
            cost = w5()
        recorded.append(len(tr.events) + tr.dropped)
        return cost

    on_values, off_values = h.alternate(ctx, [on, w5])
    per_item = recorded[-1] / n if recorded else 0.0
    comp = h.Comparison(
        ID, f"W5 with tracing on vs tracing off (×{n:,})", "ns/item",
        h.Series("sharptask, tracing on", on_values),
        h.Series("tracing off", off_values),
        target_ratio=3.0, target_text="≤ 3×",
        notes=[f"{per_item:.1f} events recorded per item while on"],
        short="W5, tracing on / off")
    return [comp]
