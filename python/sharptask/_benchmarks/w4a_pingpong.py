"""W4a: ping-pong between two async methods through TaskCompletionSource.

sharptask: `pong` awaits a fresh TaskCompletionSource's task that `ping`
sets, then sets a fresh one that `ping` awaits; N round trips, no
synchronization context, so (T7) `set_result` resumes the single awaiter
inline on the completing thread, as .NET does. Peer: the same exchange with
asyncio Futures between two asyncio tasks (each hand-off goes through the
event loop). One operation is one round trip.
"""

import asyncio
from time import perf_counter_ns

from . import _harness as h

ID = "W4a"
TITLE = "ping-pong through TaskCompletionSource, inline resumption"


class _State:
    __slots__ = ("to_ping", "to_pong", "last")

    def __init__(self):
        self.to_ping = None
        self.to_pong = None
        self.last = -1


def sharptask_per_op(count):
    """The sharptask side, ns per round trip (also run alone by
    tools/bench_trace_baseline.py against two builds)."""
    import sharptask as st

    TCS = st.TaskCompletionSource

    @st.async_method
    async def st_pong(s, count):
        for _ in range(count):
            value = await s.to_pong.task
            s.to_pong = TCS()
            s.to_ping.set_result(value)

    @st.async_method
    async def st_ping(s, count):
        for i in range(count):
            s.to_ping = TCS()
            s.to_pong.set_result(i)
            s.last = await s.to_ping.task

    @st.async_method
    async def st_main(count):
        s = _State()
        s.to_pong = TCS()
        t0 = perf_counter_ns()
        pong = st_pong(s, count)
        ping = st_ping(s, count)
        await st.Task.when_all(ping, pong)
        elapsed = perf_counter_ns() - t0
        if s.last != count - 1:
            raise AssertionError(f"W4a: last value {s.last} != {count - 1}")
        return elapsed

    return st.run(st_main, count) / count


def run(ctx):
    n = ctx.n(full=100_000, quick=10_000)

    async def aio_pong(s, count, loop):
        for _ in range(count):
            value = await s.to_pong
            s.to_pong = loop.create_future()
            s.to_ping.set_result(value)

    async def aio_ping(s, count, loop):
        for i in range(count):
            s.to_ping = loop.create_future()
            s.to_pong.set_result(i)
            s.last = await s.to_ping

    async def aio_main(count):
        loop = asyncio.get_running_loop()
        s = _State()
        s.to_pong = loop.create_future()
        t0 = perf_counter_ns()
        await asyncio.gather(aio_pong(s, count, loop), aio_ping(s, count, loop))
        elapsed = perf_counter_ns() - t0
        if s.last != count - 1:
            raise AssertionError(f"W4a peer: last value {s.last} != {count - 1}")
        return elapsed

    loop = h.new_asyncio_loop()

    def ours():
        return sharptask_per_op(n)

    def peer():
        return loop.run_until_complete(aio_main(n)) / n

    try:
        a, b = h.alternate(ctx, [ours, peer])
    finally:
        loop.close()
    return [h.Comparison(
        ID, f"{TITLE} (×{n:,} round trips)", "ns/round trip",
        h.Series("sharptask", a),
        h.Series("asyncio Future ping-pong between two tasks", b),
        target_ratio=0.1, target_text="≤ 0.1",
        short="TCS ping-pong, inline")]
