"""W10: allocations per awaited call that suspends, in steady state.

Three methods with the same body, `return await gate` on a pending
TaskCompletionSource task, are each called and awaited N times in a row by
one `@async_method`, and the gates completed one by one from outside:

- a Task method (`@async_method`, AsyncTaskMethodBuilder): its box is a
  new Task per suspending call (.NET: one 72-byte Task per call);
- a ValueTask method (`@async_value_method`, AsyncValueTaskMethodBuilder):
  the same, its ValueTask is a Task-backed one (ValueTasks come from a
  freelist);
- a pooled ValueTask method (`@async_value_method(pooling=True)`,
  PoolingAsyncValueTaskMethodBuilder): its box is rented from the pool and
  returned when the awaiting method takes the result.

The floor, the peer of every line, is a bare coroutine stepped by hand to
the same suspension: the coroutine object itself.  Each call is measured
with tracemalloc while it is pending: the number of traced blocks after
the call returned minus before it (nothing is freed in between, so every
allocation the call made is still there), with the GC off.  The rounds
report the median over the second half of the calls (steady state: pools,
freelists and caches warm).  Target: pooled = the coroutine only, i.e. a
ratio pooled / floor of 1.0.  Lower is better; the unit is blocks.
"""

import gc
import statistics
import tracemalloc

from . import _harness as h

ID = "W10"
TITLE = "allocations per awaited call that suspends"


def _blocks():
    return len(tracemalloc.take_snapshot().traces)


def _measure(st, leaf, n, bare):
    """Median blocks and bytes allocated by one suspended call of `leaf`
    over the steady-state half of n calls."""
    gates = [st.TaskCompletionSource() for _ in range(n)]
    blocks = [0] * n
    sizes = [0] * n
    traced = tracemalloc.get_traced_memory

    @st.async_method
    async def driver():
        for i in range(n):
            gate = gates[i].task
            m0 = traced()[0]
            b0 = _blocks()
            x = leaf(gate)
            if bare:
                x.send(None)  # to its first suspension, as the builder does
            blocks[i] = _blocks() - b0
            sizes[i] = traced()[0] - m0
            if bare:
                x.close()
            else:
                await x
            x = gate = None
        return n

    enabled = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        d = driver()
        for g in gates:
            g.set_result(1)
        if d.result != n:
            raise AssertionError(f"W10: driver returned {d.result}")
    finally:
        tracemalloc.stop()
        if enabled:
            gc.enable()
    half = n // 2
    return (statistics.median(blocks[half:]),
            statistics.median(sizes[half:]))


def run(ctx):
    import sharptask as st

    n = ctx.n(full=2_000, quick=200)

    async def bare(gate):
        return await gate

    @st.async_method
    async def task_method(gate):
        return await gate

    @st.async_value_method
    async def value_method(gate):
        return await gate

    @st.async_value_method(pooling=True)
    async def pooled_method(gate):
        return await gate

    sides = [("floor", bare, True), ("task", task_method, False),
             ("valuetask", value_method, False),
             ("pooled", pooled_method, False)]
    sizes: dict[str, list[int]] = {name: [] for name, _, _ in sides}

    def round_fn(name, leaf, is_bare):
        def fn():
            b, size = _measure(st, leaf, n, is_bare)
            sizes[name].append(size)
            return b
        return fn

    stats0 = st.pool_stats()
    floor, task, value, pooled = h.alternate(
        ctx, [round_fn(*side) for side in sides])
    stats1 = st.pool_stats()

    def series(label, values):
        return h.Series(label, values, unit="blocks")

    floor_s = series("bare coroutine (the floor)", floor)

    def note(name):
        return (f"{name}: median {statistics.median(sizes[name]):.0f} bytes "
                "per call (tracemalloc)")

    rented = stats1["rented"] - stats0["rented"]
    created = stats1["created"] - stats0["created"]
    return [
        h.Comparison(
            ID + "/task", f"{TITLE}: Task method (×{n:,})", "blocks/call",
            series("@async_method", task), floor_s,
            notes=[note("task"), note("floor"),
                   ".NET: one Task (72 B) per suspending call"],
            short="allocs/suspending call: Task method"),
        h.Comparison(
            ID + "/valuetask", f"{TITLE}: ValueTask method (×{n:,})",
            "blocks/call", series("@async_value_method", value), floor_s,
            notes=[note("valuetask")],
            short="allocs/suspending call: ValueTask method"),
        h.Comparison(
            ID + "/pooled", f"{TITLE}: pooled ValueTask method (×{n:,})",
            "blocks/call",
            series("@async_value_method(pooling=True)", pooled), floor_s,
            target_ratio=1.0, target_text="= coroutine only (1.0)",
            notes=[note("pooled"),
                   f"pool: {rented:,} boxes rented, {created:,} created "
                   "during the rounds"],
            short="allocs/suspending call: pooled ValueTask"),
    ]
