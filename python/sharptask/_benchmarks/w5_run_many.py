"""W5: `Task.run(trivial)` × N, then `Task.when_all(tasks).result`.

sharptask: queue N trivial Python callables to the C thread pool with
`Task.run`, then block on `when_all(...).result`; ns per item, with 1, 2 and
4 pool threads when `ThreadPool.set_min_threads`/`set_max_threads` exist
(else with the default pool). Peer: `concurrent.futures.ThreadPoolExecutor(2)`
`submit` × N then `wait`. The target is ≤ 1/20 of the peer and no slowdown
from 1 to 4 workers.
"""

import concurrent.futures as cf
from time import perf_counter_ns

from . import _harness as h

ID = "W5"
TITLE = "Task.run(trivial) then when_all"
WORKER_COUNTS = (1, 2, 4)


def _trivial():
    return None


def _first(value):
    """get_min_threads() may return an int or a (workers, io) pair."""
    if isinstance(value, tuple):
        return value[0]
    return value


def sharptask_per_op(count):
    """The sharptask side, ns per item (also run alone by
    tools/bench_trace_baseline.py against two builds)."""
    import sharptask as st

    Task = st.Task
    t0 = perf_counter_ns()
    tasks = [Task.run(_trivial) for _ in range(count)]
    results = Task.when_all(tasks).result
    elapsed = perf_counter_ns() - t0
    if len(results) != count:
        raise AssertionError(f"W5: when_all gave {len(results)} results")
    return elapsed / count


def _set_workers(pool, n):
    """Make the pool use exactly `n` threads; return what it refused."""
    problems = []
    # Lower the minimum before the maximum when shrinking, and raise the
    # maximum first when growing, since each setter refuses to cross the other.
    if n < _first(pool.get_min_threads()):
        order = (("set_min_threads", n), ("set_max_threads", n))
    else:
        order = (("set_max_threads", n), ("set_min_threads", n))
    for name, value in order:
        ok = getattr(pool, name)(value)
        if ok is False:
            problems.append(f"{name}({value}) returned False")
    return problems


def _restore(pool, saved_min, saved_max):
    if saved_max >= _first(pool.get_min_threads()):
        pool.set_max_threads(saved_max)
        pool.set_min_threads(saved_min)
    else:
        pool.set_min_threads(saved_min)
        pool.set_max_threads(saved_max)


def run(ctx):
    import sharptask as st

    n = ctx.n(full=100_000, quick=5_000)

    def ours():
        return sharptask_per_op(n)

    executor = cf.ThreadPoolExecutor(2)

    def peer():
        submit = executor.submit
        t0 = perf_counter_ns()
        futures = [submit(_trivial) for _ in range(n)]
        cf.wait(futures)
        return (perf_counter_ns() - t0) / n

    pool = getattr(st, "ThreadPool", None)
    can_set = pool is not None and all(
        hasattr(pool, name) for name in
        ("set_min_threads", "set_max_threads", "get_min_threads",
         "get_max_threads"))
    comparisons = []
    try:
        if not can_set or pool is None:
            ctx.note("sharptask.ThreadPool.set_min_threads/set_max_threads "
                     "missing: W5 ran with the default pool only")
            a, b = h.alternate(ctx, [ours, peer])
            comparisons.append(_comparison("default pool", n, a, b, []))
            return comparisons
        saved = (_first(pool.get_min_threads()),
                 _first(pool.get_max_threads()))
        try:
            for workers in WORKER_COUNTS:
                problems = _set_workers(pool, workers)
                a, b = h.alternate(ctx, [ours, peer])
                count = getattr(pool, "thread_count", None)
                notes = list(problems)
                notes.append(f"requested {workers} worker(s); "
                             f"min={_first(pool.get_min_threads())}, "
                             f"max={_first(pool.get_max_threads())}, "
                             f"thread_count after={count}")
                if isinstance(count, int) and count != workers:
                    notes.append(f"the pool ran {count} threads, not "
                                 f"{workers}: this row is not a {workers}-"
                                 "worker measurement")
                comparisons.append(
                    _comparison(f"{workers} worker(s)", n, a, b, notes))
        finally:
            _restore(pool, *saved)
    finally:
        executor.shutdown(wait=True)
    _check_scaling(comparisons)
    return comparisons


def _comparison(label, n, ours, peer, notes):
    return h.Comparison(
        f"{ID}/{label.split()[0]}", f"{TITLE}, {label} (×{n:,})", "ns/item",
        h.Series("sharptask", ours),
        h.Series("ThreadPoolExecutor(2) submit + wait", peer),
        target_ratio=1 / 20, target_text="≤ 1/20", notes=notes,
        short=f"Task.run + when_all, {label}")


def _check_scaling(comparisons):
    """Note whether 4 workers are slower than 1 (the other W5 target)."""
    if len(comparisons) < 2:
        return
    first, last = comparisons[0], comparisons[-1]
    slow = last.ours.median / first.ours.median
    last.notes.append(
        f"4 workers vs 1 worker: {slow:.2f}× the cost per item "
        f"({'within 10%' if slow <= 1.1 else 'SLOWER by more than 10%'}; "
        "target: no slowdown)")
