"""W4b: ping-pong through TaskCompletionSource on one single-threaded context.

sharptask: the W4a exchange (`pong` awaits a fresh TaskCompletionSource's
task that `ping` sets, then sets a fresh one that `ping` awaits), but both
methods run inside `SingleThreadSynchronizationContext.run`, so every await
captures that context and every resumption goes through its queue: the UI
thread's message loop. The sources are made with
RUN_CONTINUATIONS_ASYNCHRONOUSLY, because a plain `set_result` on the
context's own thread would resume the awaiter inline (as .NET does when the
captured context is the current one, R7.7) and never touch the queue; a
check run before the measurement verifies that each hand-off was posted.

Peer: the same exchange with asyncio Futures between two asyncio tasks (each
hand-off is a `call_soon` through the event loop, the asyncio equivalent of a
post). One operation is one round trip (two posted hand-offs).
"""

import asyncio
from time import perf_counter_ns

from . import _harness as h

ID = "W4b"
TITLE = "ping-pong through TaskCompletionSource, posted to one context"


class _State:
    __slots__ = ("to_ping", "to_pong", "last", "posted")

    def __init__(self):
        self.to_ping = None
        self.to_pong = None
        self.last = -1
        self.posted = 0


def run(ctx):
    import sharptask as st

    n = ctx.n(full=100_000, quick=10_000)
    TCS = st.TaskCompletionSource
    RCA = st.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    context = st.SingleThreadSynchronizationContext()

    @st.async_method
    async def st_pong(s, count):
        for _ in range(count):
            value = await s.to_pong.task
            s.to_pong = TCS(None, RCA)
            s.to_ping.set_result(value)

    @st.async_method
    async def st_ping(s, count):
        for i in range(count):
            s.to_ping = TCS(None, RCA)
            s.to_pong.set_result(i)
            s.last = await s.to_ping.task

    @st.async_method
    async def st_main(count):
        s = _State()
        s.to_pong = TCS(None, RCA)
        t0 = perf_counter_ns()
        pong = st_pong(s, count)
        ping = st_ping(s, count)
        await st.Task.when_all(ping, pong)
        elapsed = perf_counter_ns() - t0
        if s.last != count - 1:
            raise AssertionError(f"W4b: last value {s.last} != {count - 1}")
        return elapsed

    # The check run (not timed): every set_result must have left the
    # awaiter's resumption in the context's queue, on the pumping thread.
    @st.async_method
    async def check_pong(s, count):
        for _ in range(count):
            value = await s.to_pong.task
            if st.SynchronizationContext.current() is not context:
                raise AssertionError("W4b: pong resumed off the context")
            s.to_pong = TCS(None, RCA)
            s.to_ping.set_result(value)
            s.posted += context.pending > 0

    @st.async_method
    async def check_ping(s, count):
        for i in range(count):
            s.to_ping = TCS(None, RCA)
            s.to_pong.set_result(i)
            s.posted += context.pending > 0
            s.last = await s.to_ping.task
            if st.SynchronizationContext.current() is not context:
                raise AssertionError("W4b: ping resumed off the context")

    @st.async_method
    async def check_main(count):
        s = _State()
        s.to_pong = TCS(None, RCA)
        pong = check_pong(s, count)
        ping = check_ping(s, count)
        await st.Task.when_all(ping, pong)
        return s.posted

    checked = 1_000
    posted = context.run(check_main, checked)
    if posted != 2 * checked:
        raise AssertionError(f"W4b: only {posted} of {2 * checked} "
                             "hand-offs were posted to the context")
    ctx.note(f"check run: {posted} of {2 * checked} hand-offs were queued "
             "to the SingleThreadSynchronizationContext and resumed on it")

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
        await asyncio.gather(aio_pong(s, count, loop),
                             aio_ping(s, count, loop))
        elapsed = perf_counter_ns() - t0
        if s.last != count - 1:
            raise AssertionError(
                f"W4b peer: last value {s.last} != {count - 1}")
        return elapsed

    loop = h.new_asyncio_loop()

    def ours():
        return context.run(st_main, n) / n

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
        target_ratio=0.3, target_text="≤ 0.3",
        short="TCS ping-pong, posted to a context")]
