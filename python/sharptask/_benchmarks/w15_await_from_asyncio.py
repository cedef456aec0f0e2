"""W15: `await sharptask_task` in an asyncio coroutine, the task completed
from another thread, against `await asyncio_future` completed the same
way (BENCHMARKS.md, issue 11).

A helper thread completes what the coroutine awaits: sharptask side, a
TaskCompletionSource's `set_result` (the awaiter hands asyncio a future
that a continuation completes through `loop.call_soon_threadsafe`); peer,
`loop.call_soon_threadsafe(fut.set_result, i)`.  One operation is one
await, request to resumption.  Target: ≤ 1.5×.
"""

import asyncio
import queue
import threading
from time import perf_counter_ns
from typing import Callable

from . import _harness as h

ID = "W15"
TITLE = "await from asyncio, completed on another thread"


def run(ctx):
    import sharptask as st

    n = ctx.n(full=20_000, quick=1_000)
    # jobs for the completer thread; None stops it
    requests: queue.SimpleQueue[Callable[..., object] | None] = \
        queue.SimpleQueue()

    def helper():
        while True:
            job = requests.get()
            if job is None:
                return
            job()

    thread = threading.Thread(target=helper, name="W15 completer",
                              daemon=True)
    thread.start()
    loop = h.new_asyncio_loop()

    async def ours_main():
        put = requests.put
        TCS = st.TaskCompletionSource
        t0 = perf_counter_ns()
        for i in range(n):
            tcs: st.TaskCompletionSource[int] = TCS()
            put(lambda tcs=tcs, i=i: tcs.set_result(i))
            if await tcs.task != i:
                raise AssertionError("W15: wrong value")
        return (perf_counter_ns() - t0) / n

    async def peer_main():
        put = requests.put
        lp = asyncio.get_running_loop()
        t0 = perf_counter_ns()
        for i in range(n):
            fut = lp.create_future()
            put(lambda fut=fut, i=i:
                lp.call_soon_threadsafe(fut.set_result, i))
            if await fut != i:
                raise AssertionError("W15 peer: wrong value")
        return (perf_counter_ns() - t0) / n

    try:
        a, b = h.alternate(ctx, [lambda: loop.run_until_complete(ours_main()),
                                 lambda: loop.run_until_complete(peer_main())])
    finally:
        requests.put(None)
        thread.join(5)
        loop.close()
    return [h.Comparison(
        ID, f"{TITLE} (×{n:,})", "ns/await",
        h.Series("await sharptask Task", a),
        h.Series("await asyncio future (call_soon_threadsafe)", b),
        target_ratio=1.5, target_text="≤ 1.5×",
        short="await Task from asyncio")]
