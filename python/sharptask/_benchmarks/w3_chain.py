"""W3: a 10-deep chain of async methods, all completing synchronously.

sharptask: ten `@async_method`s, each awaiting the next, the last returning
at once; one call of the top awaited from an async method is one operation.
Peer: the same chain of bare coroutines in an asyncio loop.
"""

from time import perf_counter_ns

from . import _harness as h

ID = "W3"
TITLE = "10-deep chain of synchronously completing async methods"
DEPTH = 10


def _chain(depth, wrap):
    """Build `depth` nested async functions, each decorated with `wrap`."""
    async def leaf():
        return None

    top = wrap(leaf)
    for _ in range(depth - 1):
        top = _level(top, wrap)
    return top


def _level(inner, wrap):
    async def level():
        return await inner()
    return wrap(level)


def run(ctx):
    import sharptask as st

    n = ctx.n(full=200_000, quick=20_000)
    st_top = _chain(DEPTH, st.async_method)
    aio_top = _chain(DEPTH, lambda fn: fn)

    @st.async_method
    async def st_main(count):
        top = st_top
        t0 = perf_counter_ns()
        for _ in range(count):
            await top()
        return perf_counter_ns() - t0

    async def aio_main(count):
        top = aio_top
        t0 = perf_counter_ns()
        for _ in range(count):
            await top()
        return perf_counter_ns() - t0

    loop = h.new_asyncio_loop()

    def ours():
        return st.run(st_main, n) / n

    def peer():
        return loop.run_until_complete(aio_main(n)) / n

    try:
        a, b = h.alternate(ctx, [ours, peer])
    finally:
        loop.close()
    return [h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/chain",
        h.Series("sharptask", a),
        h.Series("asyncio 10-deep bare coroutine chain", b),
        target_ratio=2.0, target_text="≤ 2.0",
        short="10-deep sync chain")]
