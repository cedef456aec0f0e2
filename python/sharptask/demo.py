"""`python -m sharptask demo [NAME]`: the article's scenarios as experiments.

Each scenario runs a small experiment with sharptask, measures what happened
(statuses, threads, timings: nothing is canned) and explains why, in .NET's
terms. `demo` with no name runs every implemented scenario in turn.

    state-machine   an async method is a state machine driven by a builder
    task-vs-thread  a Task is a promise, not a thread
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import threading
import time
import tracemalloc

WIDTH = 78

# ------------------------------------------------------------------ output


def _title(text: str) -> None:
    print()
    print(text)
    print("=" * len(text))


def _step(text: str) -> None:
    print()
    print(f"-- {text}")


def _say(text: str) -> None:
    """Print an explanation paragraph, wrapped."""
    print(textwrap.fill(textwrap.dedent(text).strip(), WIDTH))


def _show(label: str, value) -> None:
    print(f"   {label:<44} {value}")


def _thread_name(ident: int, main_ident: int) -> str:
    if ident == main_ident:
        return "main thread"
    return f"thread {ident:#x}"


# ---------------------------------------------------------- state-machine


def demo_state_machine() -> None:
    """A1 and A5: an async method runs synchronously to its first incomplete
    await, returns a WAITING_FOR_ACTIVATION task, and is resumed by the
    builder; the hand-written `<GetAsync>d__0` behaves the same."""
    import sharptask as st

    main_ident = threading.get_ident()
    _title("state-machine: an async method is a state machine")
    _say("""
        In C#, `async Task<string> GetAsync()` is compiled into a struct
        <GetAsync>d__0 with a `state` field, an AsyncTaskMethodBuilder and one
        field per pending awaiter; the method itself only creates the struct
        and calls builder.Start, which runs MoveNext() on the caller's thread.
        In sharptask the coroutine of an `async def` plays the struct, and the
        C builder drives it with send() exactly as MoveNext is driven.""")

    # Part 1: the decorated form, step by step.
    _step("1. an @async_method, watched step by step")
    events = []

    def mark(label):
        events.append((time.perf_counter_ns(), label, threading.get_ident()))

    gate = st.TaskCompletionSource()

    @st.async_method
    async def get_async():
        mark("body: started")
        first = await st.Task.from_result(20)
        mark("body: after `await Task.from_result(20)` (already complete)")
        second = await gate.task
        mark("body: resumed after gate.task completed")
        return first + second

    mark("caller: calling get_async()")
    task = get_async()
    mark("caller: get_async() returned a task")
    status_after_call = task.status
    completed_after_call = task.is_completed

    completer = {}

    def complete_gate():
        completer["ident"] = threading.get_ident()
        mark("completer thread: gate.set_result(22)")
        gate.set_result(22)
        mark("completer thread: set_result returned")

    helper = threading.Thread(target=complete_gate, name="completer")
    helper.start()
    helper.join()
    result = task.result
    status_final = task.status

    start = events[0][0]
    for when, label, ident in events:
        who = ("completer thread" if ident == completer.get("ident")
               else _thread_name(ident, main_ident))
        print(f"   {(when - start) / 1000:9.1f} µs  {label:<58} [{who}]")
    _show("status right after the call returned:", status_after_call.name)
    _show("is_completed right after the call:", completed_after_call)
    _show("status after gate.set_result(22):", status_final.name)
    _show("task.result:", result)
    labels = [label for _, label, _ in events]
    ran_before_return = (
        labels.index("body: after `await Task.from_result(20)` "
                     "(already complete)")
        < labels.index("caller: get_async() returned a task"))
    resumed_inside_set = (
        labels.index("body: resumed after gate.task completed")
        < labels.index("completer thread: set_result returned"))
    resumed_on = next(ident for _, label, ident in events
                      if label.startswith("body: resumed"))
    _say(f"""
        What happened: the body ran on the caller's thread
        ({'before' if ran_before_return else 'NOT before'} the call returned)
        through the await of an already-completed task, which did not
        suspend; it stopped at the first await of an incomplete task, and the
        call returned a task in {status_after_call.name}, the status of a
        promise-style task that nothing has completed yet. When another
        thread completed the gate, the method resumed
        {'inside' if resumed_inside_set else 'outside'} that set_result call,
        on the {'completer thread' if resumed_on == completer.get('ident')
        else _thread_name(resumed_on, main_ident)}: with no
        SynchronizationContext captured, the first await continuation runs
        inline on the completing thread, as in .NET.""")

    @st.async_method
    async def add_now(a, b):
        await st.Task.from_result(None)
        return a + b

    quick = add_now(40, 2)
    _show("a method that never suspends returns:",
          f"{quick.status.name}, result {quick.result}")
    _say("""
        A method whose every await is already complete runs to the end inside
        the call and returns a completed task: no box, no continuation.""")

    # Part 2: the hand-written state machine (A5).
    _step("2. the compiler's output, written by hand (SPEC A5)")
    _say("""
        Below, GetAsync_d__0 is the decompiled C# state machine of
        `async Task<string> GetAsync(url) { return await
        GetStringAsync(url); }` transcribed line by line: `state` is
        <>1__state, `builder` is <>t__builder, `awaiter` is <>u__1.
        GetStringAsync here is an async method that awaits Task.delay(0.05),
        standing in for the network.""")

    trace = []

    @st.async_method
    async def get_string_async(url):
        if not url.startswith("https://"):
            raise ValueError(f"not an https URL: {url!r}")
        await st.Task.delay(0.05)
        return f"<html>{len(url)} bytes of {url}</html>"

    class GetAsync_d__0:
        """The compiler-generated <GetAsync>d__0, by hand."""

        def __init__(self):
            self.state = -1       # <>1__state
            self.builder = None   # <>t__builder
            self.awaiter = None   # <>u__1
            self.url = None       # the hoisted parameter

        def move_next(self):
            trace.append(("move_next() entered", self.state,
                          threading.get_ident()))
            num = self.state
            try:
                if num != 0:
                    awaiter = get_string_async(self.url).get_awaiter()
                    if not awaiter.is_completed:
                        self.state = num = 0
                        self.awaiter = awaiter
                        trace.append(("await_unsafe_on_completed(); return",
                                      self.state, threading.get_ident()))
                        self.builder.await_unsafe_on_completed(awaiter, self)
                        return
                else:
                    awaiter = self.awaiter
                    self.awaiter = None
                    self.state = num = -1
                result = awaiter.get_result()
            except Exception as exc:
                self.state = -2
                trace.append(("builder.set_exception()", self.state,
                              threading.get_ident()))
                self.builder.set_exception(exc)
                return
            self.state = -2
            trace.append(("builder.set_result()", self.state,
                          threading.get_ident()))
            self.builder.set_result(result)

        def set_state_machine(self, state_machine):
            pass  # unused since .NET Core 2.1, kept for the interface

    machines = []

    def GetAsync(url):
        """The stub the compiler leaves in place of the method body."""
        state_machine = GetAsync_d__0()
        state_machine.url = url
        state_machine.builder = st.AsyncTaskMethodBuilder.create()
        state_machine.state = -1
        machines.append(state_machine)
        state_machine.builder.start(state_machine)
        return state_machine.builder.task

    t0 = time.perf_counter()
    manual = GetAsync("https://example.com/")
    call_us = (time.perf_counter() - t0) * 1e6
    sm = machines[-1]
    status_after_start = manual.status.name
    state_after_start = sm.state
    _show("GetAsync() returned after:", f"{call_us:.0f} µs")
    _show("status of the returned task:", status_after_start)
    _show("state field after start():", state_after_start)
    _show("awaiter field holds:", type(sm.awaiter).__name__)
    body = manual.result
    _show("status after .result:", manual.status.name)
    _show("state field at the end:", sm.state)
    _show("result:", body)
    for label, state, ident in trace:
        print(f"   {label:<40} state={state:<3} "
              f"[{_thread_name(ident, main_ident)}]")
    resumed = [ident for label, _, ident in trace
               if label == "move_next() entered"]
    _say(f"""
        move_next ran {len(resumed)} times: first inside builder.start() on
        the caller's thread, which found the awaiter incomplete, stored it,
        set state {state_after_start} and registered itself with
        await_unsafe_on_completed before returning (so GetAsync returned a
        task in {status_after_start}); then once more on
        {_thread_name(resumed[-1], main_ident) if resumed else '?'} when the
        delay completed, taking the `state == 0` branch to fetch the result
        and call builder.set_result.""")

    # The fault path: an exception before the first await.
    trace.clear()
    try:
        faulted = GetAsync("ftp://example.com/")
    except Exception as exc:  # A2 says it never does; show it if it did
        _show("GetAsync('ftp://...') raised at the call?", f"yes: {exc!r}")
        raise
    _show("GetAsync('ftp://...') raised at the call?", "no")
    _show("status of its task:", faulted.status.name)
    exc = faulted.exception
    inner = exc.inner_exceptions[0] if exc is not None else None
    _show("task.exception.inner_exceptions[0]:", repr(inner))

    # The decorated twin for comparison.
    @st.async_method
    async def get_async_decorated(url):
        return await get_string_async(url)

    twin = get_async_decorated("https://example.com/")
    twin_status = twin.status.name
    twin.result
    _show("decorated twin: status after the call:", twin_status)
    _show("decorated twin: status at the end:", twin.status.name)
    _say("""
        The exception escaped move_next into builder.set_exception, so the
        call returned a FAULTED task instead of raising (SPEC A2). The
        @async_method twin goes through the same statuses: the decorator is
        this stub plus this state machine, with the coroutine as the
        struct.""")


# --------------------------------------------------------- task-vs-thread


def _os_threads():
    """Threads of this process as the OS counts them (Linux), else None."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _pool_threads(st):
    pool = getattr(st, "ThreadPool", None)
    return getattr(pool, "thread_count", "n/a") if pool else "n/a"


def _bytes_per_pending(st, waiter, n):
    """Heap bytes per pending `waiter` as tracemalloc sees them (a second,
    separate batch: tracing slows everything down, so it is not timed)."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        sources = [st.TaskCompletionSource() for _ in range(n)]
        tasks = [waiter(s) for s in sources]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for source in sources:
        source.set_result(0)
    st.Task.when_all(tasks).wait()
    return (after - before) / n


def demo_task_vs_thread() -> None:
    """A Task is a promise, not a thread."""
    import sharptask as st

    n = 10_000
    _title("task-vs-thread: a Task is a promise, not a thread")
    _say("""
        A Task is a promise: an object that will hold a result. Awaiting it
        registers a continuation; no thread waits. Only Task.run puts work on
        a thread, and then on a pooled one. Counts below come from
        /proc/self/task (every OS thread, C workers included),
        threading.active_count() (threads Python knows) and
        ThreadPool.thread_count.""")

    _step("0. baseline")
    os_at_start = _os_threads()
    # Start the pool and the timer thread once, so that the counts below
    # show only what pending tasks add, not the lazy start-up.
    st.Task.run(int).wait()
    st.Task.delay(0.001).wait()
    base_os = _os_threads()
    _show("OS threads at start / after one Task.run and one Task.delay:",
          f"{os_at_start} / {base_os}")
    _show("threading.active_count():", threading.active_count())
    _show("ThreadPool.thread_count:", _pool_threads(st))

    _step(f"1. {n:,} pending async methods, each awaiting its own "
          "TaskCompletionSource")

    resumed_on = set()

    @st.async_method
    async def waiter(source):
        value = await source.task
        resumed_on.add(threading.get_ident())
        return value + 1

    t0 = time.perf_counter()
    sources = [st.TaskCompletionSource() for _ in range(n)]
    tasks = [waiter(s) for s in sources]
    create_s = time.perf_counter() - t0
    pending = sum(1 for t in tasks if not t.is_completed)
    statuses = sorted({t.status.name for t in tasks})
    during_os = _os_threads()
    _show("pending tasks:", f"{pending:,}")
    _show("their statuses:", ", ".join(statuses))
    _show("time to create them all:",
          f"{create_s * 1e3:.1f} ms ({create_s / n * 1e6:.2f} µs each)")
    _show("Python heap per pending method (tracemalloc):",
          f"{_bytes_per_pending(st, waiter, n):.0f} bytes")
    _show("OS threads now:", during_os)
    extra = (during_os - base_os) if None not in (during_os, base_os) else "?"
    print(f"   extra OS threads while {n:,} tasks were pending: {extra}")
    resumed_on.clear()  # the tracemalloc batch above resumed too
    main_ident = threading.get_ident()
    inline = 0
    t0 = time.perf_counter()
    for i, source in enumerate(sources):
        source.set_result(i)
        inline += tasks[i].is_completed
    results = st.Task.when_all(tasks).result
    complete_s = time.perf_counter() - t0
    ok = results == [i + 1 for i in range(n)]
    _show("completed them all, results correct:", ok)
    _show("time to complete them all:",
          f"{complete_s * 1e3:.1f} ms ({complete_s / n * 1e6:.2f} µs each)")
    _show("waiters done when their set_result returned:", f"{inline:,}")
    where = ", ".join(sorted(_thread_name(i, main_ident) for i in resumed_on))
    _show("waiters resumed on:", where)
    _say(f"""
        {n:,} async methods were suspended at once and the process gained
        {extra} threads: a pending method is a small heap object (its
        coroutine and its task) hooked onto the task it awaits, not a thread
        blocked in a wait. {inline:,} of the {n:,} waiters had finished by the
        time set_result returned, resumed on: {where}. With no
        SynchronizationContext, set_result runs the single await continuation
        inline on the completing thread (SPEC T7).""")

    _step(f"2. {n:,} pending Task.delay(0.2) timers")
    before = _os_threads()
    t0 = time.perf_counter()
    delays = [st.Task.delay(0.2) for _ in range(n)]
    made = time.perf_counter() - t0
    during = _os_threads()
    pending = sum(1 for d in delays if not d.is_completed)
    st.Task.when_all(delays).wait()
    total = time.perf_counter() - t0
    _show("delays pending right after creation:", f"{pending:,}")
    _show("OS threads before / while pending:", f"{before} / {during}")
    _show("time to create them:", f"{made * 1e3:.1f} ms")
    _show("wall time until all had fired:", f"{total:.3f} s")
    _say(f"""
        Each Task.delay is an entry in one timer heap served by a single
        timer thread, not a sleeping thread: the {n:,} delays of 0.2 s all
        ended after about {total:.2f} s of wall time, and the OS thread count
        went from {before} to {during} while they were pending.""")

    _step("3. Task.run puts work on pool threads")
    work_items = 16
    sleep_s = 0.02

    def work(i):
        time.sleep(sleep_s)  # releases the GIL, like real blocking I/O
        return threading.get_ident()

    t0 = time.perf_counter()
    runs = [st.Task.run(work, i) for i in range(work_items)]
    idents = st.Task.when_all(runs).result
    took = time.perf_counter() - t0
    distinct = set(idents)
    _show(f"{work_items} items of time.sleep({sleep_s}) ran on:",
          f"{len(distinct)} distinct thread(s), main thread among them: "
          f"{main_ident in distinct}")
    _show("wall time (serial would be):",
          f"{took:.3f} s ({work_items * sleep_s:.2f} s)")
    _show("ThreadPool.thread_count now:", _pool_threads(st))
    _show("OS threads now:", _os_threads())
    _say("""
        Task.run queued each callable to the thread pool; a few pool threads
        ran them all, reused from item to item. That is the only place a
        Task involves a thread: the work, not the waiting.""")

    _step("4. the same waiting with threading.Thread")
    m = 1_000
    event = threading.Event()
    before = _os_threads()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=event.wait) for _ in range(m)]
    for th in threads:
        th.start()
    start_s = time.perf_counter() - t0
    during = _os_threads()
    event.set()
    for th in threads:
        th.join()
    _show(f"{m:,} threads blocked on an Event:",
          f"OS threads {before} -> {during}")
    _show("time to start them:",
          f"{start_s * 1e3:.1f} ms ({start_s / m * 1e6:.1f} µs each)")
    per_task = create_s / n * 1e6
    per_thread = start_s / m * 1e6
    _say(f"""
        Waiting with threads costs one OS thread (with its stack) per waiter:
        {m:,} waiters made {(during - before) if None not in (during, before)
        else '?'} threads, at {per_thread:.1f} µs each to start, against
        {per_task:.2f} µs and no thread for a pending async method. A Task is
        a promise of a result; a thread is a worker.""")


# -------------------------------------------------------------- registry

#: name -> (function, None) when implemented, or (None, issue number).
SCENARIOS = {
    "state-machine": (demo_state_machine, None),
    "deadlock": (None, 4),
    "configure-await": (None, 4),
    "async-void": (None, 4),
    "valuetask": (None, 5),
    "task-vs-thread": (demo_task_vs_thread, None),
    "fire-and-forget": (None, 4),
    "starvation": (None, 3),
}


def implemented():
    return [name for name, (fn, _) in SCENARIOS.items() if fn is not None]


def run(name: str) -> int:
    """Run one scenario by name; return the exit status."""
    fn, issue = SCENARIOS[name]
    if fn is None:
        print(f"{name}: not implemented yet (issue {issue})")
        return 0
    fn()
    sys.stdout.flush()
    return 0


def main(argv=None, prog="python -m sharptask demo") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the article's scenarios as small explained "
                    "experiments.",
        epilog="scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("name", nargs="?", choices=list(SCENARIOS),
                        metavar="NAME",
                        help="one scenario (default: every implemented one)")
    args = parser.parse_args(argv)
    if args.name:
        return run(args.name)
    for name in implemented():
        run(name)
    missing = [f"{name} (issue {issue})"
               for name, (fn, issue) in SCENARIOS.items() if fn is None]
    if missing:
        print()
        print("not implemented yet: " + ", ".join(missing))
    return 0
