"""`python -m sharptask demo [NAME]`: the tutorial's scenarios as experiments.

Each scenario has a page in the documentation's tutorial
(docs/tutorial/NAME.md); the rule ids in the text (A5, T7, R7.4) are
entries of its semantics reference (docs/semantics.md).

Each scenario runs a small experiment with sharptask, measures what happened
(statuses, threads, timings: nothing is canned) and explains why, in .NET's
terms. `demo` with no name runs every implemented scenario in turn.

    state-machine    an async method is a state machine driven by a builder
    deadlock         .result on a UI thread: the deadlock, detected, and fixed
    configure-await  where the code after an await runs, and the pitfalls
    async-void       where an async void method's exception goes
    valuetask        the synchronous fast path, the double await, pooling
    task-vs-thread   a Task is a promise, not a thread
    fire-and-forget  a dropped Task hides its exception; dump_async
    starvation       blocking inside pool work starves the thread pool
    asyncio          a sharptask pipeline awaited from asyncio and back
    scale-out        the same fan-out on the pool, processes and Dask
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import threading
import time
import tracemalloc
from typing import Any, Callable

WIDTH = 78
#: No line of a demo's output is wider than this (issue 14).
MAX_COLUMNS = 100

# ------------------------------------------------------------------ output


def _wrap_line(line: str, indent: str | None = None) -> str:
    """``line`` as it is if it fits in MAX_COLUMNS, else wrapped there with
    a hanging indent: ``indent``, or by default the line's own leading
    whitespace (and ``| `` or ``child> `` marker) plus four spaces."""
    if len(line) <= MAX_COLUMNS:
        return line
    if indent is None:
        stripped = line.lstrip(" ")
        lead = line[:len(line) - len(stripped)]
        for marker in ("| ", "child> ", "child stderr> "):
            if stripped.startswith(marker):
                lead += marker
                break
        indent = lead + "    "
    return textwrap.fill(line, MAX_COLUMNS, subsequent_indent=indent,
                         drop_whitespace=True, break_on_hyphens=False)


class _WrappedOutput:
    """What sys.stdout is while a demo runs: it passes every complete line
    through _wrap_line, so that whatever a demo prints (measured values,
    exception messages, a child's output) stays within MAX_COLUMNS.  Pool
    threads may print too: a lock keeps lines whole."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._out.write(_wrap_line(line) + "\n")
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def close_line(self) -> None:
        """Write out a last line that has no newline yet."""
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self._out.write(_wrap_line(pending))

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty ...
        return getattr(self._out, name)


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
    """Print ``label`` and a measured ``value`` in two columns; a long
    value goes on under itself."""
    head = f"   {label:<44} "
    print(_wrap_line(head + str(value), " " * min(len(head), 48)))


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

    gate: st.TaskCompletionSource[int] = st.TaskCompletionSource()

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
            self.builder: Any = None   # <>t__builder
            self.awaiter: Any = None   # <>u__1
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
    agg = faulted.exception
    inner = agg.inner_exceptions[0] if agg is not None else None
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
    sources: list[st.TaskCompletionSource[int]] = [
        st.TaskCompletionSource() for _ in range(n)]
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


# --------------------------------------------- helpers of issue 4's demos


def _quote(text, prefix: str = "   | ") -> None:
    """Print a multi-line text (an exception's message) as it is, each
    line wrapped at MAX_COLUMNS, four columns in."""
    for line in str(text).splitlines():
        body = line.lstrip(" ")
        lead = prefix + line[:len(line) - len(body)]
        print(_wrap_line(lead + body, lead + "    "))


def _ms(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.1f} ms"


class _Threads:
    """Names the threads a demo sees: main, UI, or another (pool) one."""

    def __init__(self, ui_ident=None):
        self.main = threading.get_ident()
        self.ui = ui_ident

    def name(self, ident) -> str:
        if ident is None:
            return "?"
        if ident == self.ui:
            return "UI thread"
        if ident == self.main:
            return "main thread"
        return f"pool thread {ident:#x}"


def _context_name(st) -> str:
    ctx = st.SynchronizationContext.current()
    return type(ctx).__name__ if ctx is not None else "no context"


def _child_env():
    """The environment of a child process that imports this sharptask."""
    import sharptask
    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(
        sharptask.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (parent, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------- deadlock

# The child of part 4: the classic deadlock with the detector set to
# sys.argv[1] ("off" or "warn"). A watchdog thread only *looks* (it posts
# nothing and completes nothing) and reports what it sees, then the parent
# kills the child.  Under `demo deadlock --trace/--png` the "off" child
# records itself too (SPEC D2) and its watchdog saves what it recorded
# before it reports done (the child is killed, so nothing runs after).
_HANG_CHILD = r'''
import os, sys, threading, time
import sharptask as st

st.set_deadlock_detection(sys.argv[1])
seen = {}
_out = os.environ.get("SHARPTASK_DEMO_HANG_TRACE")
tr = st.trace().__enter__() if _out else None

@st.async_method
async def get_json_async(uri):
    seen["delay"] = st.Task.delay(0.05)   # the HTTP request
    await seen["delay"]                   # captures the UI context
    return "{...}"

def watchdog(ctx, t0):
    while not seen["delay"].is_completed:
        time.sleep(0.005)
    fired = time.perf_counter() - t0
    time.sleep(0.4)
    print(f"watchdog: the request (Task.delay) completed "
          f"{fired * 1e3:.0f} ms after the UI thread blocked")
    print(f"watchdog: {time.perf_counter() - t0:.2f} s after the block: "
          f"get_json_async's task is {seen['task'].status.name}, "
          f"callbacks waiting in the UI queue: {ctx.pending}")
    for line in str(st.dump_async()).splitlines():
        print("dump_async: " + line)
    if tr is not None:
        json_path, png_path = _out.split("\n")
        if json_path:
            tr.save(json_path)
            print("watchdog: trace saved to " + json_path)
        if png_path:
            try:
                tr.save_png(png_path, title="demo deadlock, detector off: "
                            "the UI thread (MainThread) hangs in .result")
                print("watchdog: timeline drawn to " + png_path)
            except ImportError as exc:
                print("watchdog: " + str(exc))
    print("watchdog: done")

def button1_click(ctx):
    seen["task"] = get_json_async("https://example.com/api")
    t0 = time.perf_counter()
    threading.Thread(target=watchdog, args=(ctx, t0), daemon=True).start()
    print("ui: blocking in get_json_async(uri).result")
    text = seen["task"].result
    print("ui: .result returned " + text)

ctx = st.SingleThreadSynchronizationContext()
ctx.run(button1_click, ctx)
print("ui: the message loop ended normally")
'''


# (json path, png path) for the hanging "off" child to save its own trace
# to, each "" for none; set by main() under --trace/--png.
_HANG_TRACE: tuple[str, str] | None = None


def _hang_paths(json_path: str | None,
                png_path: str | None) -> tuple[str, str]:
    """FILE.json -> FILE-hang.json (and the same for the PNG)."""
    def derive(path: str | None) -> str:
        if not path:
            return ""
        root, ext = os.path.splitext(path)
        return os.path.abspath(f"{root}-hang{ext}")
    return derive(json_path), derive(png_path)


class _HangingChild:
    """Runs _HANG_CHILD in a subprocess and collects its output."""

    def __init__(self, mode: str) -> None:
        import subprocess
        env = _child_env()
        if mode == "off" and _HANG_TRACE is not None:
            env["SHARPTASK_DEMO_HANG_TRACE"] = "\n".join(_HANG_TRACE)
        self.mode = mode
        self.lines: list[str] = []
        self.done = threading.Event()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HANG_CHILD, mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None  # stdout=PIPE
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("watchdog: done"):
                self.done.set()
        self.done.set()

    def finish(self, limit: float = 10.0, grace: float = 0.3):
        """Wait for the watchdog's report (at most `limit` s), give the
        child `grace` more seconds, then kill it if it still runs.
        Returns (was still running, seconds it ran)."""
        self.done.wait(limit)
        time.sleep(grace)
        alive = self.proc.poll() is None
        ran = time.perf_counter() - self.started
        if alive:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(2)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        self.proc.stdout.close()
        return alive, ran


def demo_deadlock() -> None:
    """C5/C6: the sync-over-async deadlock, the detector's
    DeadlockError, and the three fixes."""
    import sharptask as st

    delay = 0.05
    uri = "https://example.com/api"
    _title("deadlock: blocking on async code from a UI thread")
    _say("""
        The classic example: a WinForms button handler calls
        GetJsonAsync(uri).Result. GetJsonAsync awaits
        HttpClient.GetStringAsync with the UI context captured, so the rest
        of it must run on the UI thread, and the UI thread is blocked in
        .Result waiting for exactly that. In .NET (as in asyncio or trio)
        the window just freezes. Here UiThread is the dispatcher: a thread
        pumping a SingleThreadSynchronizationContext; Task.delay(0.05)
        stands in for the HTTP request.""")
    st.Task.delay(0.001).wait()  # start the timer thread once, untimed

    with st.UiThread(name="UI") as ui:
        th = _Threads(ui.ident)
        where = {}

        @st.async_method
        async def get_json_async(uri):
            where["body"] = threading.get_ident()
            await st.Task.delay(delay)        # the UI context is captured
            where["after await"] = threading.get_ident()
            return '{"answer": 42}'

        # ---- 1. the deadlock, detected
        _step("1. button1_click blocks on get_json_async(uri).result")

        def button1_click(box):
            task = get_json_async(uri)
            box["task"] = task
            t0 = time.perf_counter()
            try:
                return task.result
            except st.DeadlockError:
                box["raised after"] = time.perf_counter() - t0
                box["raised on"] = threading.get_ident()
                box["status then"] = task.status.name
                raise

        impl_before = "sharptask._impl" in sys.modules
        clicks = []
        for _ in range(2):  # the same click twice
            box: dict[str, Any] = {"error": None}
            try:
                ui.invoke(button1_click, box)
            except st.DeadlockError as exc:
                box["error"] = exc
            clicks.append(box)
        impl_imported = not impl_before and "sharptask._impl" in sys.modules
        error = clicks[0]["error"]
        _show("set_deadlock_detection mode:", st.get_deadlock_detection())
        if error is None:
            _show("DeadlockError raised:", "NO: .result returned")
            return
        box = clicks[0]
        _show(".result raised:", type(error).__name__)
        _show("raised on:", th.name(box["raised on"]))
        _show("raised after blocking for:",
              f"{_ms(box['raised after'])}, and "
              f"{_ms(clicks[1].get('raised after', float('nan')))} on a "
              f"second click (the request takes {_ms(delay)})")
        if impl_imported:
            print("   (sharptask._impl was imported during these clicks: "
                  "a one-time cost, paid by the first)")
        _show("get_json_async's task at that moment:", box["status then"])
        print("   the detector's message:")
        _quote(error)
        for click in clicks:
            click["task"].wait(5)
        _show("the two abandoned tasks, later:",
              ", ".join(c["task"].status.name for c in clicks)
              + f"; code after their await ran on the "
              f"{th.name(where.get('after await'))}")
        _say(f"""
            The detector raised {_ms(clicks[1].get('raised after', 0))}
            after the block, long before the request completed: the cycle
            already existed at the block (the UI thread waits for
            get_json_async, whose continuation is bound to the UI context,
            which only the UI thread can run). Because it raised instead of
            hanging, the UI thread went back to its message loop, and when
            the request completed, the posted continuation ran there and the
            abandoned task completed after all.""")
        # Part 4 runs in child processes; start them now so they overlap.
        children = [_HangingChild("off"), _HangingChild("warn")]

        # ---- 2. configure_await(False) on every await
        _step("2. the same handler, with configure_await(False) on every "
              "await")

        @st.async_method
        async def get_json_async_ca(uri):
            where["body ca"] = threading.get_ident()
            await st.Task.delay(delay).configure_await(False)
            where["after ca"] = threading.get_ident()
            return '{"answer": 42}'

        def button1_click_ca():
            t0 = time.perf_counter()
            text = get_json_async_ca(uri).result
            return text, time.perf_counter() - t0

        text, blocked = ui.invoke(button1_click_ca)
        _show(".result returned:", text)
        _show("the UI thread was blocked (frozen) for:", _ms(blocked))
        _show("get_json_async_ca's body started on:",
              th.name(where["body ca"]))
        _show("its code after the await ran on:", th.name(where["after ca"]))
        _say("""
            With configure_await(False) the await captured nothing, so the
            continuation ran on the pool thread that completed the request
            and completed the task there; the blocked UI thread was not
            needed. It works, but the window was still frozen while it
            waited.""")

        _step("2b. configure_await(False) in the outer method only")

        @st.async_method
        async def read_body_async():
            await st.Task.delay(delay)        # no configure_await(False)
            return '{"answer": 42}'

        @st.async_method
        async def get_json_async_half(uri):
            return await read_body_async().configure_await(False)

        try:
            ui.invoke(lambda: get_json_async_half(uri).result)
            _show(".result:", "returned (no deadlock)")
        except st.DeadlockError as exc:
            _show(".result raised:", type(exc).__name__)
            for line in str(exc).splitlines():
                if line.startswith("Pending async methods"):
                    _quote(line)
        _say("""
            Every await that really suspends, transitively, must opt out
            (R9.5): the inner read_body_async still captured the UI context,
            and the detector names the whole chain that needs the blocked
            thread.""")

        # ---- 3. async all the way
        _step("3. async all the way: an async void handler that awaits")
        done: st.TaskCompletionSource[str] = st.TaskCompletionSource()
        events = []
        t0 = time.perf_counter()

        def mark(label):
            events.append((time.perf_counter() - t0, label,
                           threading.get_ident()))

        @st.async_void
        async def button1_click_async(sender, e):
            mark("click handler starts, calls get_json_async")
            text = await get_json_async(uri)
            mark(f"click handler resumes, label.text = {text}")
            done.set_result(text)

        ui.invoke(button1_click_async, "button1", None)
        mark("main: click delivered, ui.invoke returned")
        repaint = ui.begin_invoke(mark, "UI processes a repaint message "
                                        "meanwhile")
        repaint.wait(5)
        text = done.task.result
        for when, label, ident in events:
            print(f"   {when * 1e3:7.1f} ms  {label:<52} [{th.name(ident)}]")
        resumed = next(i for _, l, i in events if "resumes" in l)
        _say(f"""
            Nothing blocks: the handler returned to the message loop at its
            await, the UI thread went on processing messages (the repaint
            ran while the request was in flight), and the rest of the
            handler ran on the {th.name(resumed)} when the request
            completed, where touching controls is safe. This is the fix the
            .NET guidance recommends.""")

        _step("3b. or block on a thread with no context: "
              "Task.run(get_json_async, uri).result")
        where.pop("body", None)

        def button1_click_run():
            t1 = time.perf_counter()
            text = st.Task.run(get_json_async, uri).result
            return text, time.perf_counter() - t1

        text, blocked = ui.invoke(button1_click_run)
        _show(".result returned:", f"{text} after {_ms(blocked)}")
        _show("get_json_async started on:", th.name(where["body"]))
        _show("and resumed on:", th.name(where["after await"]))
        _say("""
            Started on a pool thread, get_json_async captured no context, so
            it never needs the UI thread (which still freezes while it
            waits).""")

    # ---- 4. with the detector off, or warning only: a real hang
    _step('4. set_deadlock_detection("off") and ("warn"): the real hang')
    _say("""
        Each mode runs in a child process (the same button1_click, with the
        UI thread's context run by the child's main thread, and a watchdog
        thread that only observes); the child is killed once the watchdog
        has reported.""")
    outcomes = {}
    for child in children:
        alive, ran = child.finish()
        outcomes[child.mode] = (alive, ran)
        print()
        _show(f'mode "{child.mode}": child still running after',
              f"{ran:.2f} s: {'yes, killed it' if alive else 'NO'}")
        for line in child.lines:
            print("   child> " + line)
        warned = [ln for ln in child.stderr.splitlines()
                  if "RuntimeWarning" in ln]
        if warned:
            print("   child stderr> " + warned[0].strip()[:150] + " ...")
        _show("child printed '.result returned':",
              any(".result returned" in ln for ln in child.lines))
    hung = [f'"{mode}" {ran:.2f} s' for mode, (alive, ran)
            in outcomes.items() if alive]
    _say(f"""
        With the detector off the child hangs as .NET does: the request
        completed, get_json_async's continuation sits in the UI queue
        (dump_async shows it still pending, resuming on the
        SingleThreadSynchronizationContext), and the only thread that could
        run it is blocked in .result. \"warn\" prints a RuntimeWarning
        naming the chain, then waits just the same. Nothing here can end
        that wait: the children were still blocked when killed
        ({', '.join(hung) or 'none'} after they started); a real UI
        would stay frozen until the user kills it.""")


# -------------------------------------------------------- configure-await


def demo_configure_await() -> None:
    """C3/C4, R7.4/R9.5: where the code after an await runs, with and
    without configure_await(False); the already-completed-task pitfall;
    FORCE_YIELDING and SUPPRESS_THROWING."""
    import gc

    import sharptask as st

    O = st.ConfigureAwaitOptions
    _title("configure-await: where does the code after `await` run?")
    _say("""
        At an await that suspends, the builder captures
        SynchronizationContext.current() and resumes the method there by
        post(); configure_await(False) skips the capture, so the method goes
        on wherever the awaited task completed. Each probe below records the
        thread and the current context before and after one await, started
        on a UI thread (a UiThread pumping a
        SingleThreadSynchronizationContext); Task.delay(0.02) is the I/O.""")

    with st.UiThread(name="UI") as ui:
        th = _Threads(ui.ident)

        def here():
            return threading.get_ident(), _context_name(st)

        def fmt(rec):
            ident, ctx = rec
            return f"{th.name(ident)} [{ctx}]"

        # ---- 1. capture or not
        _step("1. before and after `await Task.delay(0.02)`")

        @st.async_method
        async def probe(configure):
            before = here()
            if configure is None:
                await st.Task.delay(0.02)
            else:
                await st.Task.delay(0.02).configure_await(configure)
            return before, here()

        rows = [
            ("plain await, from the UI thread", ui.invoke(probe, None)),
            ("configure_await(True), from the UI thread",
             ui.invoke(probe, True)),
            ("configure_await(False), from the UI thread",
             ui.invoke(probe, False)),
            ("plain await, from the main thread (no context)",
             probe(None)),
        ]
        results = {}
        for label, task in rows:
            before, after = task.result
            results[label] = after
            print(f"   {label}:")
            print(f"      before: {fmt(before)}")
            print(f"      after:  {fmt(after)}")
        back_on_ui = results["plain await, from the UI thread"][0] == ui.ident
        ca_off_ui = (results["configure_await(False), from the UI thread"]
                     [0] != ui.ident)
        _say(f"""
            The plain await
            {'came back to' if back_on_ui else 'DID NOT come back to'} the UI
            thread: the context was captured and the continuation
            posted to its queue. configure_await(False)
            {'left' if ca_off_ui else 'DID NOT leave'} it: the continuation ran
            inline on the pool thread that completed the delay, with no
            context. From the main thread there is no context to capture, so
            even a plain await resumes on the completing pool thread: the
            capture is the only thing that brings a method back.""")

        # ---- 2. the pitfall
        _step("2. the pitfall: configure_await(False) on an already-"
              "completed task does nothing")
        _say("""
            load_settings_async puts configure_await(False) on its first
            await only, then awaits again without it (\"we are off the UI
            thread by now\"). When the first task is already complete (a cache
            hit), that await does not suspend (R7.4): nothing is skipped
            because nothing is captured, the method is still on the UI
            thread, and the second await captures the UI context after
            all.""")

        @st.async_method
        async def fetch_async():
            await st.Task.delay(0.02).configure_await(False)
            return "settings"

        @st.async_method
        async def load_settings_async(cached, first_options=False):
            source = (st.Task.from_result("settings") if cached
                      else fetch_async())
            data = await source.configure_await(first_options)
            first = here()
            await st.Task.delay(0.02)      # forgot configure_await(False)
            return data, first, here()

        for cached in (False, True):
            _, first, second = ui.invoke(load_settings_async, cached).result
            print(f"   cache {'hit' if cached else 'miss'}:")
            print(f"      after await source.configure_await(False): "
                  f"{fmt(first)}")
            print(f"      after the plain await that follows:         "
                  f"{fmt(second)}")

        def block_on(cached, first_options=False):
            t0 = time.perf_counter()
            try:
                load_settings_async(cached, first_options).result
            except st.DeadlockError as exc:
                return ("DeadlockError after "
                        f"{_ms(time.perf_counter() - t0)}: "
                        + str(exc).splitlines()[1])
            return f"completed in {_ms(time.perf_counter() - t0)}"

        _show("UI thread blocks on it, cache miss:",
              ui.invoke(block_on, False))
        _show("UI thread blocks on it, cache hit:", ui.invoke(block_on, True))
        _say("""
            So the same library code is deadlock-free or not depending on
            timing: blocking on it from the UI thread works on a cache miss
            and deadlocks on a hit (the detector raises instead of hanging).
            Hence the rule: configure_await(False) on every await, not just
            the first (R9.5).""")

        # ---- 3. FORCE_YIELDING
        _step("3. FORCE_YIELDING: suspend even when the task is complete")

        @st.async_method
        async def yield_probe(make, order):
            ctx = st.SynchronizationContext.current()
            assert ctx is not None  # it runs on the UI thread
            ctx.post(
                lambda _: order.append("a callback posted before the await"),
                None)
            await make()
            order.append("the code after the await")
            return here()

        done_task = st.Task.from_result(1)
        cases = [
            ("await a completed task",
             lambda: done_task),
            ("...configure_await(FORCE_YIELDING)",
             lambda: done_task.configure_await(O.FORCE_YIELDING)),
            ("...configure_await(FORCE_YIELDING | "
             "CONTINUE_ON_CAPTURED_CONTEXT)",
             lambda: done_task.configure_await(
                 O.FORCE_YIELDING | O.CONTINUE_ON_CAPTURED_CONTEXT)),
            ("await Task.yield_()", st.Task.yield_),
        ]

        def start(make):
            order: list[str] = []
            task = yield_probe(make, order)
            return task, task.is_completed, order

        summary = {}
        for label, make in cases:
            task, finished_in_call, order = ui.invoke(start, make)
            after = task.result
            ui.invoke(lambda: None)  # let the posted callback run
            queued_first = (order.index("a callback posted before the await")
                            < order.index("the code after the await"))
            summary[label] = (finished_in_call, after)
            print(f"   {label}:")
            print(f"      finished inside the call (no suspension): "
                  f"{finished_in_call}; resumed on {fmt(after)}")
            if after[0] == ui.ident:
                print("      the code after the await ran "
                      + ("after" if queued_first else "before")
                      + " a callback posted to the UI queue before it")
        _say("""
            A completed task normally never suspends. FORCE_YIELDING makes
            the awaiter report \"not completed\", so the method always
            suspends: alone (no CONTINUE_ON_CAPTURED_CONTEXT) it resumes on
            the pool, which is the configure_await(False) that works even on
            a cache hit; with CONTINUE_ON_CAPTURED_CONTEXT it is posted to the
            back of the UI queue, behind work already waiting there, exactly
            like Task.yield_().""")
        fixed = ui.invoke(block_on, True, O.FORCE_YIELDING)
        print("   part 2's cache hit with FORCE_YIELDING on the first await,")
        _show("   the UI thread blocking on it:", fixed)

        # ---- 4. SUPPRESS_THROWING
        _step("4. SUPPRESS_THROWING: await a task without raising its fault")
        reports = []

        def on_unobserved(event):
            if any(isinstance(e, ConnectionRefusedError)
                   for e in event.exception.inner_exceptions):
                reports.append(event)
                event.set_observed()  # handled: not to sys.unraisablehook

        @st.async_method
        async def ping_async(host):
            await st.Task.delay(0.02)
            raise ConnectionRefusedError(f"{host} refused the connection")

        @st.async_method
        async def best_effort_ping(options):
            task = ping_async("10.0.0.1")
            try:
                value = await task.configure_await(options)
            except ConnectionRefusedError as exc:
                return f"raised {exc!r}", task.status.name, here()
            return f"returned {value!r}", task.status.name, here()

        st.TaskScheduler.add_unobserved_task_exception_handler(on_unobserved)
        try:
            for label, options in (
                    ("plain await (CONTINUE_ON_CAPTURED_CONTEXT)",
                     O.CONTINUE_ON_CAPTURED_CONTEXT),
                    ("SUPPRESS_THROWING", O.SUPPRESS_THROWING),
                    ("SUPPRESS_THROWING | CONTINUE_ON_CAPTURED_CONTEXT",
                     O.SUPPRESS_THROWING | O.CONTINUE_ON_CAPTURED_CONTEXT)):
                outcome, status, after = ui.invoke(best_effort_ping,
                                                   options).result
                print(f"   {label}:")
                print(f"      the await {outcome}; the task is {status}; "
                      f"resumed on {fmt(after)}")
            control = ping_async("10.0.0.2")   # the control: never awaited
            while not control.is_completed:    # (is_completed observes
                time.sleep(0.005)              # nothing)
            del control
            gc.collect()
            time.sleep(0.05)  # the unobserved report comes from a safe point
        finally:
            st.TaskScheduler.remove_unobserved_task_exception_handler(
                on_unobserved)
        hosts = sorted(str(r.exception.inner_exceptions[0]).split()[0]
                       for r in reports)
        _show("unobserved-exception reports after gc.collect():",
              f"{len(reports)} ({', '.join(hosts) or 'none'})")
        try:
            done_task.configure_await(8)  # type: ignore[arg-type]
            invalid = "accepted"
        except (ValueError, TypeError) as exc:
            invalid = f"{type(exc).__name__}: {exc}"
        _show("configure_await(8) (not a flag):", invalid)
    _say(f"""
        SUPPRESS_THROWING turns the await of a faulted task into a plain
        \"wait until it is done\": no exception, None as the value, and the
        fault counts as observed, so nothing is reported when the task is
        collected. Of the four faulted tasks, the reports named
        {', '.join(hosts) or 'none'}: the control (10.0.0.2), faulted and
        never awaited. (.NET rejects SUPPRESS_THROWING on Task<T>, which has
        a result to return; sharptask's Task is untyped and gives None.)
        Options combine with |; anything else is refused.""")


# ------------------------------------------------------------- async-void


class _CountingPump:
    """Factory of a test pump: a Python SynchronizationContext subclass
    (SPEC C1) that queues posted callbacks for the demo to run by hand and
    counts operation_started / operation_completed, like the pumps .NET
    test frameworks install to know when async void work is done."""

    @staticmethod
    def make(st: Any) -> Any:
        import collections

        class CountingPump(st.SynchronizationContext):
            def __init__(self):
                super().__init__()
                self.queue: collections.deque[tuple[Any, Any]] = \
                    collections.deque()
                self.lock = threading.Lock()
                self.started = 0
                self.completed = 0

            def post(self, callback, state=None):
                with self.lock:
                    self.queue.append((callback, state))

            def operation_started(self):
                with self.lock:
                    self.started += 1

            def operation_completed(self):
                with self.lock:
                    self.completed += 1

            def outstanding(self):
                with self.lock:
                    return self.started - self.completed

            def pump_once(self):
                """Run the queued callbacks, as this context's thread;
                return how many ran and what they raised."""
                ran = 0
                raised = []
                prev = st.SynchronizationContext.current()
                st.SynchronizationContext.set_synchronization_context(self)
                try:
                    while True:
                        with self.lock:
                            if not self.queue:
                                break
                            callback, state = self.queue.popleft()
                        ran += 1
                        try:
                            callback(state)
                        except Exception as exc:
                            raised.append(exc)
                finally:
                    st.SynchronizationContext.set_synchronization_context(
                        prev)
                return ran, raised

        return CountingPump()


def demo_async_void() -> None:
    """A8: where an async void method's exception goes, with a context and
    without, how operation_started/completed let a pump wait for it, and
    why async Task is preferred."""
    import subprocess

    import sharptask as st

    delay = 0.03
    th = _Threads()
    _title("async-void: fire-and-forget event handlers and their exceptions")
    _say("""
        An async void method (@async_void) returns nothing to its caller: no
        Task to await, so no way to catch its exception or to know when it
        is done. At its start it calls operation_started() on the current
        SynchronizationContext, at its end operation_completed(); an
        exception that escapes it is posted to that context and raised
        there, or, with no context, goes to the unhandled-exception handler
        (in .NET: the process dies).""")

    class SaveFailed(Exception):
        pass

    @st.async_void  # on purpose: this demo is about async void itself
    async def on_save_clicked(name, fail_before_await=False):  # noqa: ST002
        if fail_before_await:
            raise SaveFailed(f"{name}: failed before its first await")
        await st.Task.delay(delay)
        raise SaveFailed(f"{name}: the disk is full")

    # ---- 1. on a UI context
    _step("1. an @async_void handler on a UI thread "
          "(SingleThreadSynchronizationContext.run)")
    st.Task.delay(0.001).wait()  # start the timer thread once, untimed

    def click(name, early=False):
        """The UI's click dispatch: calls the async void handler."""
        t0 = time.perf_counter()
        try:
            value = on_save_clicked(name, early)
            seen[name] = (f"returned {value!r} after "
                          f"{_ms(time.perf_counter() - t0)}")
        except SaveFailed as exc:  # never happens (R8.4)
            seen[name] = f"raised {exc!r} to the caller"
        seen["returned"] = time.perf_counter()
        return "the click dispatch's result"

    seen: dict[str, Any] = {}
    for name, early in (("report.txt", False), ("early.txt", True)):
        ctx = st.SingleThreadSynchronizationContext()
        t0 = time.perf_counter()
        try:
            value = ctx.run(click, name, early)
            outcome = f"returned {value!r}"
        except SaveFailed as exc:
            outcome = f"raised {type(exc).__name__}({exc})"
        took = time.perf_counter() - t0
        print(f"   on_save_clicked({name!r}"
              + (", fail_before_await=True)" if early else ")"))
        _show("   the call itself:", seen[name])
        _show("   ctx.run(click, ...):", outcome)
        _show("   ctx.run ended after:",
              f"{_ms(took)} (click returned after "
              f"{_ms(seen['returned'] - t0)})")
        if not early:
            pumped = took
    _say(f"""
        Neither call raised to its caller, not even the one that failed
        before its first await (R8.4): the exception was posted to the UI
        context and raised by the pump, on the thread running it (the main
        thread, playing the UI thread), out of ctx.run, as WinForms'
        Application.Run would (a real UI crashes here). And
        ctx.run kept pumping until the async void operation it had been told
        about (operation_started) completed: it ended after {_ms(pumped)},
        with the failing save, not when click returned.""")

    # ---- 2. counting operations with a Python test pump
    _step("2. operation_started / operation_completed, counted by a "
          "Python SynchronizationContext subclass")
    pump = _CountingPump.make(st)

    @st.async_void  # on purpose: the pump below counts async void calls
    async def on_load(n):  # noqa: ST002
        await st.Task.delay(delay)

    prev = st.SynchronizationContext.current()
    st.SynchronizationContext.set_synchronization_context(pump)
    try:
        on_load(1)
        on_load(2)
        on_save_clicked("settings.ini")
    finally:
        st.SynchronizationContext.set_synchronization_context(prev)
    rows: list[tuple[Any, ...]] = [("right after the three calls",
             pump.started, pump.completed, len(pump.queue), [])]
    t0 = time.perf_counter()
    while pump.outstanding() and time.perf_counter() - t0 < 5:
        time.sleep(0.002)
        ran, raised = pump.pump_once()
        if ran:
            rows.append((f"pumped {ran}, {_ms(time.perf_counter() - t0)} "
                         "later", pump.started, pump.completed,
                         len(pump.queue), raised))
    print(f"   {'':<30} {'started':>8} {'completed':>10} {'queued':>7}  "
          "raised by the pump")
    for label, s, c, q, raised in rows:
        print(f"   {label:<30} {s:>8} {c:>10} {q:>7}  "
              + (", ".join(repr(e) for e in raised) or "-"))
    _say("""
        Three async void calls: three operation_started() at once, and
        their continuations posted to the pump (the awaits captured it). The
        pump ran them; each finished method called operation_completed(),
        and the failing one first posted its exception, which the pump
        raised when it ran it. Counting these is how a test pump knows that
        async void work is over, since there is no Task to wait on.""")

    # ---- 3. no context
    _step("3. no SynchronizationContext: the unhandled-exception handler")
    got = []
    arrived = threading.Event()

    def handler(exc):
        got.append((exc, threading.get_ident()))
        arrived.set()

    previous = st.set_unhandled_exception_handler(handler)
    try:
        on_save_clicked("no-context.txt")
        arrived.wait(5)
    finally:
        restored = st.set_unhandled_exception_handler(previous)
    _show("set_unhandled_exception_handler(fn) returned:",
          f"{previous!r} (the previous handler: the default)")
    if got:
        got_exc, ident = got[0]
        _show("the handler received:", repr(got_exc))
        _show("on:", f"{th.name(ident)} (the caller was the main thread)")
    else:
        _show("the handler received:", "NOTHING within 5 s")
    _show("setting the previous one back returned ours:", restored is handler)

    hooked = []
    arrived.clear()
    old_hook = sys.unraisablehook

    def capture(args):
        if isinstance(args.exc_value, SaveFailed):
            hooked.append(args)
            arrived.set()
        else:
            old_hook(args)

    sys.unraisablehook = capture
    try:
        on_save_clicked("default-handler.txt")
        arrived.wait(5)
    finally:
        sys.unraisablehook = old_hook
    if hooked:
        u = hooked[0]  # a real UnraisableHookArgs, as CPython builds it
        _show("with no handler, sys.unraisablehook got:",
              f"{u.err_msg or 'Exception ignored in'}: "
              f"{getattr(u.object, '__qualname__', u.object)}: "
              f"{u.exc_value!r}")

    child = subprocess.run(
        [sys.executable, "-c",
         "import sharptask as st\n"
         "st.set_unhandled_exception_policy('crash')\n"
         "@st.async_void\n"
         "async def on_click():\n"
         "    await st.Task.delay(0.01)\n"
         "    raise RuntimeError('unhandled in async void')\n"
         "on_click()\n"
         "st.Task.delay(2).wait()\n"
         "print('still alive')\n"],
        capture_output=True, text=True, env=_child_env(), timeout=30)
    last = (child.stderr.strip().splitlines() or ["(nothing)"])
    _show('set_unhandled_exception_policy("crash"):',
          f"the child exited with code {child.returncode}, "
          f"printed 'still alive': {'still alive' in child.stdout}")
    _show("  its stderr ends with:", last[-1])
    _say("""
        With no context to post to, the exception is rethrown on a pool
        thread, where nothing can catch it: sharptask hands it to the
        unhandled-exception handler, by default sys.unraisablehook (the
        program goes on); with the policy "crash" it ends the process, as
        .NET does for every unhandled async void exception.""")

    # ---- 4. async Task instead
    _step("4. the same method as async Task (@async_method)")

    @st.async_method
    async def save_async(name):
        await st.Task.delay(delay)
        raise SaveFailed(f"{name}: the disk is full")

    @st.async_method
    async def on_save_clicked_task():
        task = save_async("report.txt")
        status = task.status.name
        t0 = time.perf_counter()
        try:
            await task
        except SaveFailed as exc:
            return (status, f"caught {exc!r} at the await, "
                    f"{_ms(time.perf_counter() - t0)} later, on the "
                    f"{th.name(threading.get_ident())}")
        return status, "no exception?"

    status, caught = st.run(on_save_clicked_task)
    _show("save_async('report.txt') returned a Task:", status)
    _show("the caller:", caught)
    _say("""
        Returning a Task gives the caller the three things async void takes
        away: it can await the method, catch its exception with an ordinary
        try/except, and know when it finished (tests can too). Keep async
        void for event handlers, whose signature the framework imposes, and
        make them thin wrappers that await an async Task method inside a
        try/except.""")


# -------------------------------------------------------- fire-and-forget


def _wait_until(predicate, timeout: float = 3.0) -> float:
    """Poll `predicate` until true; return the seconds it took (or the
    timeout)."""
    t0 = time.perf_counter()
    while not predicate() and time.perf_counter() - t0 < timeout:
        time.sleep(0.001)
    return time.perf_counter() - t0


def demo_fire_and_forget() -> None:
    """T11 and D1: a task-returning call whose result is dropped loses its
    exception until the task is collected; awaiting it, or a helper that
    observes it, does not; dump_async shows what is still pending."""
    import gc

    import sharptask as st

    delay = 0.03
    th = _Threads()
    _title("fire-and-forget: a dropped Task hides its exception")
    _say("""
        Calling an async method without awaiting its Task (\"fire and
        forget\") starts the work, but its exception goes into the Task, and
        nobody looks at the Task. .NET reports such an exception only when
        the faulted Task is finalized by the garbage collector, through
        TaskScheduler.UnobservedTaskException. sharptask does the same (SPEC
        T11): handlers added with
        TaskScheduler.add_unobserved_task_exception_handler, else
        sys.unraisablehook. send_welcome_email_async below fails after
        Task.delay(0.03).""")

    class SmtpError(Exception):
        pass

    faulted_at = {}

    @st.async_method
    async def send_welcome_email_async(user):
        await st.Task.delay(delay)
        faulted_at[user] = time.perf_counter()
        raise SmtpError(f"550 mailbox unavailable: {user}@example.com")

    reports = []

    def on_unobserved(event):
        mine = [e for e in event.exception.inner_exceptions
                if isinstance(e, SmtpError)]
        if mine:
            user = str(mine[0]).split(": ")[1].split("@")[0]
            reports.append((user, time.perf_counter(),
                            threading.get_ident()))
            event.set_observed()  # handled here, not sys.unraisablehook

    def reported(user):
        return [r for r in reports if r[0] == user]

    st.Task.delay(0.001).wait()  # start the timer thread once, untimed
    st.TaskScheduler.add_unobserved_task_exception_handler(on_unobserved)
    try:
        # ---- 1. dropped
        _step("1. the result dropped: send_welcome_email_async('ann')")
        t0 = time.perf_counter()
        send_welcome_email_async("ann")  # noqa: ST003 (dropped on purpose)
        returned = time.perf_counter() - t0
        _wait_until(lambda: reported("ann"))
        _show("the call returned after:",
              f"{_ms(returned)}, no exception (the work goes on)")
        if reported("ann"):
            _, when, ident = reported("ann")[0]
            _show("the handler got SmtpError for ann:",
                  f"{_ms(when - faulted_at['ann'])} after the fault, on "
                  f"the {th.name(ident)}")
        else:
            _show("the handler got SmtpError for ann:", "NO (within 3 s)")
        _say("""
            In CPython the task's last reference went away as soon as it
            faulted (nobody held it), so it was collected at once and the
            report came right away. In .NET it waits for a garbage
            collection and the finalizer thread: seconds, minutes, or never
            in a process that exits first. Either way the caller never
            heard of it.""")

        # ---- 2. kept alive
        _step("2. the Task kept somewhere, never looked at")
        gc.disable()  # no automatic collection during this experiment
        background = [send_welcome_email_async("bob")]
        job: dict[str, Any] = {"task": send_welcome_email_async("cy")}
        job["self"] = job                   # a reference cycle
        _wait_until(lambda: len(faulted_at) >= 3)
        time.sleep(0.2)
        _show("0.2 s after bob's and cy's tasks faulted:",
              f"{background[0].status.name}, reports: bob "
              f"{len(reported('bob'))}, cy {len(reported('cy'))}")
        background.clear()
        _wait_until(lambda: reported("bob"), 1)
        _show("after background.clear():",
              f"reports: bob {len(reported('bob'))}")
        del job
        time.sleep(0.05)
        before_gc = len(reported("cy"))
        collected = gc.collect()
        gc.enable()
        _wait_until(lambda: reported("cy"), 1)
        _show("cy's task, only in a cycle, after del:",
              f"reports: cy {before_gc}")
        _show("after gc.collect():",
              f"reports: cy {len(reported('cy'))} "
              f"({collected} objects collected)")
        _say("""
            While anything holds the faulted Task, its exception stays
            silent: bob's sat in a list nobody read, cy's in a reference
            cycle that only the cyclic collector frees, the case closest to
            .NET's finalizer (automatic collection was paused here, so
            that only the explicit gc.collect() could free it). It surfaces
            only when the Task is collected.""")

        # ---- 3. the default: sys.unraisablehook
        _step("3. with no handler: sys.unraisablehook")
        st.TaskScheduler.remove_unobserved_task_exception_handler(
            on_unobserved)
        hooked = []
        old_hook = sys.unraisablehook

        def capture(args):
            if isinstance(args.exc_value, BaseException) and any(
                    isinstance(e, SmtpError) for e in
                    getattr(args.exc_value, "exceptions", ())):
                hooked.append(args)
            else:
                old_hook(args)

        sys.unraisablehook = capture
        try:
            send_welcome_email_async("dee")  # noqa: ST003 (on purpose)
            _wait_until(lambda: hooked)
        finally:
            sys.unraisablehook = old_hook
            st.TaskScheduler.add_unobserved_task_exception_handler(
                on_unobserved)
        if hooked:
            args = hooked[0]
            _show("sys.unraisablehook got:",
                  f"{type(args.exc_value).__name__}"
                  f"({args.exc_value.exceptions[0]!r})")
            _show("for the object:", repr(args.object))
            _say("""
                The default hook prints \"Exception ignored in: <Task ...>\"
                and a traceback on stderr, and the program goes on: the
                error is visible, not lost, but far from the code that
                dropped the Task.""")
        else:
            _show("sys.unraisablehook got:", "NOTHING within 3 s")

        # ---- 4. awaiting it
        _step("4. awaiting it instead")

        @st.async_method
        async def register_user_async(user):
            try:
                await send_welcome_email_async(user)
            except SmtpError as exc:
                return (f"caught {exc!r} on the "
                        f"{th.name(threading.get_ident())}")
            return "no exception?"

        count = len(reports)
        _show("register_user_async('eve'):",
              st.run(register_user_async, "eve"))
        gc.collect()
        time.sleep(0.05)
        _show("new unobserved reports:", len(reports) - count)

        # ---- 5. a safe fire_and_forget helper
        _step("5. a fire_and_forget helper that observes and logs")
        log = []
        EXEC_SYNC = st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY
        ONLY_FAULTED = st.TaskContinuationOptions.ONLY_ON_FAULTED

        def fire_and_forget(task, what):
            """Let `task` run unawaited, but log its failure."""
            def log_failure(t):
                # reading t.exception observes it: no unobserved report
                for exc in t.exception.inner_exceptions:
                    log.append(f"{what} failed: {exc!r} (logged on the "
                               f"{th.name(threading.get_ident())})")
            task.continue_with(log_failure,
                               options=ONLY_FAULTED | EXEC_SYNC)

        count = len(reports)
        fire_and_forget(send_welcome_email_async("fay"), "welcome email")
        _wait_until(lambda: log)
        gc.collect()
        time.sleep(0.05)
        for line in log:
            print("   log: " + line)
        _show("new unobserved reports:", len(reports) - count)
        _say("""
            When the caller really does not want to wait, the helper keeps
            the fire-and-forget but not the silence: a continuation that
            runs only on a fault reads the exception (which observes it) and
            logs it the moment it happens, not when a collector gets to the
            Task.""")
    finally:
        gc.enable()
        st.TaskScheduler.remove_unobserved_task_exception_handler(
            on_unobserved)

    # ---- 6. dump_async
    _step("6. dump_async(): what fire-and-forget work is still pending")
    gate: st.TaskCompletionSource[list[str]] = st.TaskCompletionSource()

    @st.async_method
    async def fetch_mailbox_async(user):
        return await gate.task           # the server has not answered

    @st.async_method
    async def sync_inbox_async(user):
        messages = await fetch_mailbox_async(user)
        return len(messages)

    push: st.TaskCompletionSource[None] = st.TaskCompletionSource()

    @st.async_method
    async def refresh_badge_async():
        await push.task                  # a push that has not come yet

    def methods(dump):
        """The async methods in a dump: every frame of every chain."""
        return sum(n * len(frames) for n, frames in dump.chains)

    def heads(dump):
        return "; ".join(frames[0].split(" at ")[0].split(".")[-1]
                         for _, frames in dump.chains) or "-"

    tasks = [sync_inbox_async(u) for u in ("gus", "hal", "ida")]
    badge = refresh_badge_async()
    dump = st.dump_async()
    _show("async methods in the dump's chains:",
          f"{methods(dump)} in {len(dump.chains)} distinct chain(s)")
    _quote(str(dump).rstrip("\n"))
    if len(dump) != methods(dump):
        print(f"   (the header's count, len(dump) = {len(dump)}, counts "
              "only the outermost method of each chain)")
    gate.set_result(["hello"] * 3)
    st.Task.when_all(tasks).wait(5)
    after = st.dump_async()
    _show("after the gate completed:",
          f"{methods(after)} pending: {heads(after)}")
    push.set_result(None)
    badge.wait(5)
    _show("after the push came:",
          f"{methods(st.dump_async())} pending")
    _say("""
        Like dotnet-dump's dumpasync, dump_async() lists every async method
        that has not finished, with its await chain (what each one awaits,
        where it is suspended, where it will resume) and identical chains
        coalesced with a count: the way to find work that was fired and
        forgotten and never completed. A method drops out of it when it
        completes: after the gate, only refresh_badge_async was left.""")


# -------------------------------------------------------------- valuetask


def demo_valuetask() -> None:
    import gc

    import sharptask as st
    from sharptask._benchmarks.w10_allocations import _measure

    _title("ValueTask: a Task only when the method really suspends")
    _say("""
        An async method that usually has its answer at hand (a cache hit, a
        buffered read) still pays for a Task on every call when it returns
        Task: the Task is the promise handed to the caller. ValueTask is a
        union: a plain result when the method finished synchronously, or a
        Task (or a reusable source) when it suspended.""")

    cache = {f"key{i}": f"value{i}" for i in range(100)}

    @st.async_method
    async def get_task(key):
        return cache[key]

    @st.async_value_method
    async def get_value(key):
        return cache[key]

    def tasks_in(results):
        # Tasks the calls handed back: a result that is a Task, or a Task
        # inside a ValueTask (what it references).  Counted by walking the
        # results, not the GC's lists: a completed Task holding only
        # atoms is not tracked by the GC at all.
        n = 0
        for r in results:
            if type(r) is st.Task:
                n += 1
            else:
                n += sum(1 for x in gc.get_referents(r) if type(x) is st.Task)
        return n

    _step("1. the synchronous fast path: no Task at all")
    vt = get_value("key1")
    _show("get_value('key1') returned:", repr(vt))
    _show("is_completed_successfully:", vt.is_completed_successfully)
    _show("its result:", vt.result)
    n = 1_000
    keep = [get_value(f"key{i % 100}") for i in range(n)]
    made_vt = tasks_in(keep)
    keep_t = [get_task(f"key{i % 100}") for i in range(n)]
    made_task = len({id(t) for t in keep_t})
    del keep, keep_t
    _show(f"Tasks made by {n:,} ValueTask-method calls:", made_vt)
    _show(f"Tasks made by {n:,} Task-method calls:", made_task)
    _say(f"""
        The body ran to its return on the caller's thread, so the builder
        handed back the value itself: {made_vt} Tasks for {n:,} calls,
        against {made_task} for the Task-returning twin (results outside
        the small cached set of None, booleans and -1..8 need a Task
        each).""")

    _step("2. a ValueTask is consumed once: the double await, caught")
    gate: st.TaskCompletionSource[str] = st.TaskCompletionSource()

    @st.async_value_method(pooling=True)
    async def read_async(source):
        return await source

    @st.async_method
    async def consume_twice(vt):
        first = await vt
        try:
            await vt
        except st.InvalidOperationError as exc:
            return first, exc
        return first, None

    t = consume_twice(read_async(gate.task))
    gate.set_result("payload")
    first, exc = t.result
    _show("first await returned:", repr(first))
    _show("second await raised:", type(exc).__name__ if exc else "nothing")
    print()
    print(textwrap.indent(textwrap.fill(str(exc), WIDTH - 6), "      "))
    print()
    prev = st.set_strict_value_task(False)
    try:
        gate = st.TaskCompletionSource()
        t = consume_twice(read_async(gate.task))
        gate.set_result("payload")
        _, lax_exc = t.result
    finally:
        st.set_strict_value_task(prev)
    _show("with set_strict_value_task(False):",
          type(lax_exc).__name__ if lax_exc else "nothing")
    print()
    print(textwrap.indent(textwrap.fill(str(lax_exc), WIDTH - 6), "      "))
    print()
    _say("""
        In .NET a second await of a ValueTask is undefined behaviour
        (CA2012): for a pooled one the first GetResult already returned the
        box to the pool, and the second can reset a box another call has
        rented since. sharptask's strict mode (the default) refuses any
        second consumption before it touches the backing; without it the
        stale token is still caught and the box is never re-pooled.
        preserve() or as_task() give something that may be awaited many
        times.""")

    _step("3. allocations per awaited call that suspends (W10)")

    async def bare(source):
        return await source

    @st.async_method
    async def task_method(source):
        return await source

    @st.async_value_method
    async def value_method(source):
        return await source

    @st.async_value_method(pooling=True)
    async def pooled_method(source):
        return await source

    calls = 400
    rows = [("bare coroutine (the floor):", bare, True),
            ("@async_method (Task):", task_method, False),
            ("@async_value_method:", value_method, False),
            ("@async_value_method(pooling=True):", pooled_method, False)]
    stats0 = st.pool_stats()
    for label, leaf, is_bare in rows:
        blocks, size = _measure(st, leaf, calls, is_bare)
        _show(label, f"{blocks:g} block{'s' if blocks != 1 else ''}, "
              f"{size:.0f} bytes")
    stats1 = st.pool_stats()
    _show("pool_stats() during the pooled run:",
          f"rented {stats1['rented'] - stats0['rented']}, created "
          f"{stats1['created'] - stats0['created']}, pooled now "
          f"{stats1['pooled']}")
    _say("""
        Counted with tracemalloc while each call was suspended, in steady
        state. A Task method allocates its coroutine and its box, a Task.
        A ValueTask method that suspends does the same: the ValueTask
        wraps that Task (ValueTask objects come from a freelist). With
        pooling=True the box is rented from a pool (the thread's slot, then
        a shared cache) and goes back when the caller takes the result, so
        the call allocates nothing beyond the coroutine, like .NET's
        PoolingAsyncValueTaskMethodBuilder.""")


# ------------------------------------------------------------ starvation


def _pool_snapshot(st):
    s = st._native._pool_stats()
    return {k: s[k] for k in ("thread_count", "injected",
                              "starvation_events", "blocked_count")}


def _settle_pool(st, threads, timeout=10.0):
    """Wait until idle workers above the minimum retired."""
    deadline = time.monotonic() + timeout
    while st.ThreadPool.thread_count > threads and \
            time.monotonic() < deadline:
        time.sleep(0.01)


def demo_starvation() -> None:
    """P3/D3: blocking inside pool work starves the pool.  Blocking the
    pool cannot see (a plain synchronous wait) is only rescued by the
    starvation detector, at .NET's pace of about two threads per second;
    blocking in a sharptask wait (.result) is compensated at once; await
    blocks nothing."""
    import warnings

    import sharptask as st

    tp = st.ThreadPool
    minimum, n = 2, 6
    _title("starvation: blocking inside pool work starves the thread pool")
    _say(f"""
        {n} work items each wait for a signal that only the item queued
        last gives. With {minimum} pool threads, the waiting items hold
        every thread, so the last item can only run on a thread the pool
        adds. How fast the pool adds them depends on whether it can see
        the wait. Thread counts come from ThreadPool's counters
        (thread_count, threads_injected, starvation_events).""")
    if tp.get_min_threads() > minimum:
        tp.set_min_threads(minimum)
        tp.set_max_threads(64)
    else:
        tp.set_max_threads(64)
        tp.set_min_threads(minimum)
    # .NET retires an idle thread after 20 s; 0.3 s keeps the demo short
    st._native._pool_set_tuning({"thread_timeout": 0.3})
    _settle_pool(st, minimum)
    _show("pool: min threads / threads now:",
          f"{tp.get_min_threads()} / {tp.thread_count}")

    def run_case(block):
        """Queue n items; item i < n-1 blocks with block(signal); the last
        one gives the signal.  Returns (seconds, stats delta)."""
        _settle_pool(st, minimum)
        before = _pool_snapshot(st)
        done: st.TaskCompletionSource[None] = st.TaskCompletionSource()
        left = [n]
        lock = threading.Lock()
        signal: st.TaskCompletionSource[None] = st.TaskCompletionSource()

        def finished():
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    done.set_result(None)

        def waiter():
            block(signal)
            finished()

        def releaser():
            signal.try_set_result(None)
            finished()

        t0 = time.perf_counter()
        for _ in range(n - 1):
            tp.queue_user_work_item(waiter)
        tp.queue_user_work_item(releaser)
        done.task.wait(60)
        took = time.perf_counter() - t0
        after = _pool_snapshot(st)
        return took, {k: after[k] - before[k] for k in before}, after

    _step(f"1. the {n - 1} waiting items block in threading.Event-style "
          "waits (the pool cannot see them)")
    event = threading.Event()

    def hidden(signal):
        signal.task.continue_with(lambda _t: event.set())
        event.wait(60)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        took, delta, after = run_case(hidden)
        time.sleep(0.05)  # the warning is issued on a pool thread
    warns = [w for w in caught if issubclass(w.category, RuntimeWarning)
             and "starvation" in str(w.message)]
    _show("time until every item ran:", f"{took:.2f} s")
    _show("threads injected by the gate:", delta["injected"])
    _show("starvation_events:", delta["starvation_events"])
    _show("ThreadPool.thread_count at the end:", after["thread_count"])
    _show("RuntimeWarnings about starvation:", len(warns))
    if warns:
        print("   first warning: " + textwrap.shorten(
            str(warns[0].message), WIDTH - 18))
    _say("""
        Nothing completed for 500 ms while work waited: the pool's gate
        thread saw starvation, injected one thread, counted the event and
        warned; then again, every half second, until a thread was free for
        the item that releases the others. That is .NET's pace ("at most
        two threads per second"), and it is why blocking inside pool work
        is so slow to recover from.""")

    _step(f"2. the same, but the {n - 1} items block in "
          ".result of a sharptask Task (sync over async)")

    def visible(signal):
        signal.task.result  # a sharptask wait: the pool is told

    took, delta, after = run_case(visible)
    _show("time until every item ran:", f"{took:.2f} s")
    _show("threads added by blocking compensation:", delta["injected"])
    _show("starvation_events:", delta["starvation_events"])
    _show("ThreadPool.thread_count at the end:", after["thread_count"])
    _say("""
        A pool thread that blocks in a sharptask wait (.result, wait(),
        get_result()) tells the pool, which adds a replacement at once, up
        to the processor count beyond the minimum and then after short,
        growing delays, as .NET 6+ does. Faster, but every blocked item
        still costs a whole thread.""")

    _step(f"3. the fix: the {n - 1} items await the Task instead")

    @st.async_method
    async def awaiting(signal):
        await signal.task

    def fixed(signal):
        _ = awaiting(signal)  # returns at its first await: nothing blocks

    took, delta, after = run_case(fixed)
    _show("time until every item ran:", f"{took * 1e3:.1f} ms")
    _show("threads added:", delta["injected"])
    _show("starvation_events:", delta["starvation_events"])
    _show("ThreadPool.thread_count at the end:", after["thread_count"])
    _say("""
        An awaiting method holds no thread while it waits: the items
        return at once, the last one runs on a free thread, and the
        continuations resume on the pool. Await all the way up; keep
        blocking waits out of pool work, or give truly blocking work a
        dedicated thread with TaskCreationOptions.LONG_RUNNING.""")
    st._native._pool_set_tuning({"thread_timeout": 20.0})


# ------------------------------------------------ asyncio and scale-out
# (issue 11, SPEC I2 and I3)


def _where(ident: int, loop_ident: int) -> str:
    """Where a step ran: the loop's thread, a sharptask pool thread (the
    core names its workers sharptask-worker-N), or another thread."""
    if ident == loop_ident:
        return "the loop thread"
    for t in threading.enumerate():
        if t.ident == ident:
            if t.name.startswith("sharptask-worker-"):
                return f"pool thread {t.name!r}"
            return f"thread {t.name!r}"
    return f"thread {ident:#x}"


def crunch(n: int) -> tuple[int, int]:
    """CPU-bound work in pure Python (holds the GIL): the sum of squares
    below n, and the process id that computed it."""
    total = 0
    for i in range(n):
        total += i * i
    return total, os.getpid()


# ------------------------------------------------------------ asyncio demo


def demo_asyncio() -> None:
    """I2: sharptask Tasks awaited from asyncio and asyncio awaited from an
    async method, with where each step ran; the Executor as asyncio's
    default executor."""
    import asyncio
    import concurrent.futures as cf

    import sharptask as st

    _title("asyncio: a sharptask pipeline awaited from asyncio and back")
    _say("""
        asyncio runs coroutines on one loop thread; sharptask runs Tasks on
        its thread pool. An asyncio coroutine can await a sharptask Task
        (the awaiter hands asyncio a future of the running loop), and an
        @async_method can await asyncio's futures, tasks and coroutines.""")

    async def pipeline() -> None:
        loop = asyncio.get_running_loop()
        me = threading.get_ident()

        _step("1. await sharptask Task in asyncio")
        seen = {}

        def parse(text):
            seen["parse"] = threading.get_ident()
            time.sleep(0.01)
            return text.split()

        words = await st.Task.run(parse, "the quick brown fox")
        _show("Task.run(parse) ran on:", _where(seen["parse"], me))
        _show("value:", words)
        _show("resumed on the loop thread:", threading.get_ident() == me)
        many = await asyncio.gather(*[st.Task.run(len, w) for w in words])
        _show("asyncio.gather of 4 Tasks:", many)

        _step("2. faults and cancellation come through as in .NET")
        tcs: st.TaskCompletionSource[None] = st.TaskCompletionSource()
        err = KeyError("missing")
        threading.Timer(0.01, tcs.set_exception, (err,)).start()
        try:
            await tcs.task
        except KeyError as e:
            _show("await of a faulted Task raised:", repr(e))
            _show("the very object set on the Task:", e is err)
        tcs2: st.TaskCompletionSource[None] = st.TaskCompletionSource()
        threading.Timer(0.01, tcs2.set_canceled).start()
        try:
            await tcs2.task
        except st.TaskCanceledError as e:
            _show("await of a canceled Task raised:", type(e).__name__)

        _step("3. asyncio gives up waiting; the Task runs on")
        slow: st.TaskCompletionSource[str] = st.TaskCompletionSource()
        try:
            await asyncio.wait_for(slow.task, 0.02)
        except asyncio.TimeoutError:
            _show("wait_for(task, 0.02) raised:", "TimeoutError")
        _show("the Task after the timeout:", slow.task.status.name)
        slow.set_result("finished later")
        _show("its result, awaited again:", await slow.task)
        _say("""
            Cancelling the asyncio side abandons that await only: a .NET
            Task is never cancelled by its awaiter (use a CancellationToken
            for that), and its late completion logs nothing on the loop.""")

        _step("4. an @async_method awaits asyncio, resumes on the loop")
        ctx = st.AsyncioSynchronizationContext(loop)

        @st.async_method
        async def handler():
            steps = []
            await asyncio.sleep(0.01)
            steps.append(("after asyncio.sleep", threading.get_ident()))
            await st.Task.run(time.sleep, 0.01)
            steps.append(("after Task.run", threading.get_ident()))
            await asyncio.ensure_future(asyncio.sleep(0.01))
            steps.append(("after an asyncio task", threading.get_ident()))
            return steps

        st.SynchronizationContext.set_synchronization_context(ctx)
        try:
            method_task = handler()
        finally:
            st.SynchronizationContext.set_synchronization_context(None)
        for label, ident in await method_task:
            _show(label + " ran on:", _where(ident, me))
        _say("""
            asyncio awaitables resume the method on their loop's thread.
            After a sharptask await it resumes where .NET would (C3): on
            the captured SynchronizationContext; here an
            AsyncioSynchronizationContext(loop), whose post is
            loop.call_soon_threadsafe, so every step stays on the loop.""")

        _step("5. sharptask.Executor as asyncio's default executor")
        ex = st.Executor()
        loop.set_default_executor(ex)
        where = await asyncio.to_thread(threading.get_ident)
        _show("asyncio.to_thread ran on:", _where(where, me))
        _show("isinstance ThreadPoolExecutor:",
              isinstance(ex, cf.ThreadPoolExecutor))
        n = 20_000
        t0 = time.perf_counter()
        await asyncio.gather(*[loop.run_in_executor(None, abs, -i)
                               for i in range(n)])
        ours = time.perf_counter() - t0
        tpe = cf.ThreadPoolExecutor()
        t0 = time.perf_counter()
        await asyncio.gather(*[loop.run_in_executor(tpe, abs, -i)
                               for i in range(n)])
        theirs = time.perf_counter() - t0
        tpe.shutdown()
        _show(f"{n:,} run_in_executor items, sharptask:",
              f"{ours * 1e6 / n:.1f} us per item")
        _show(f"{n:,} items, ThreadPoolExecutor():",
              f"{theirs * 1e6 / n:.1f} us per item")

    asyncio.run(pipeline())
    # A blocking result() has no place on the loop's thread: the round
    # trips are timed here, after the loop has finished.
    with st.Executor() as ex:
        t0 = time.perf_counter()
        for _ in range(500):
            ex.submit(int).result()
        rt_ours = (time.perf_counter() - t0) / 500
    with cf.ThreadPoolExecutor(2) as tpe2:
        t0 = time.perf_counter()
        for _ in range(500):
            tpe2.submit(int).result()
        rt_theirs = (time.perf_counter() - t0) / 500
    _show("submit(f).result() round trip, sharptask:",
          f"{rt_ours * 1e6:.1f} us")
    _show("the same on ThreadPoolExecutor(2):",
          f"{rt_theirs * 1e6:.1f} us")
    _say("""
        The Executor has no threads of its own: its items run on the
        sharptask pool, many per GIL acquisition, and its futures wait
        natively (a short spin without the GIL, then a sleep). Both
        sides of the run_in_executor line also pay asyncio's own cost
        per item (wrap_future, the loop's callbacks, gather).""")


# ---------------------------------------------------------- scale-out demo


def demo_scale_out() -> None:
    """I3: the same when_all fan-out on the local pool, on a process pool
    and on a local Dask cluster, through ExecutorTaskScheduler."""
    import concurrent.futures as cf
    import multiprocessing

    import sharptask as st

    _title("scale-out: the same fan-out on the pool, processes and Dask")
    n_items, size = 8, 1_500_000
    _say(f"""
        {n_items} calls of crunch({size:,}), pure-Python CPU work, started
        with Task.factory.start_new(crunch, n, scheduler=s) and awaited with
        Task.when_all: the awaiting code is the same each time; only the
        TaskScheduler changes. ExecutorTaskScheduler(executor) hands each
        task's delegate to a concurrent.futures.Executor.""")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    _show("CPUs here / load average (1 min):",
          f"{os.cpu_count()} / {load:.2f}")

    def fan_out(scheduler) -> tuple[float, set]:
        t0 = time.perf_counter()
        tasks = [st.Task.factory.start_new(crunch, size + i,
                                           scheduler=scheduler)
                 for i in range(n_items)]
        results = st.Task.when_all(tasks).result
        took = time.perf_counter() - t0
        expected = [crunch(size + i)[0] for i in range(2)]
        assert [r for r, _ in results[:2]] == expected
        return took, {pid for _, pid in results}

    def report(label, took, pids):
        _show(f"{label}: time", f"{took * 1000:.0f} ms")
        mine = " (this process)" if pids == {os.getpid()} else ""
        _show(f"{label}: worker pids:",
              ", ".join(str(p) for p in sorted(pids)) + mine)

    _step("1. the local pool (TaskScheduler.default)")
    took, pids = fan_out(st.TaskScheduler.default)
    report("local pool", took, pids)
    _say("""
        Pool threads share one interpreter: pure-Python CPU work runs one
        thread at a time under the GIL.""")

    _step("2. a process pool (ExecutorTaskScheduler(ProcessPoolExecutor))")
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        pool.submit(int).result()  # workers started: time the work only
        sched = st.ExecutorTaskScheduler(pool)
        _show("maximum_concurrency_level:", sched.maximum_concurrency_level)
        took, pids = fan_out(sched)
        report("process pool", took, pids)
        bad = st.Task.factory.start_new(lambda: 1, scheduler=sched)
        try:
            bad.wait(30)
        except st.AggregateError as e:
            _show("a lambda (not picklable) faults its task:",
                  type(e.inner_exceptions[0]).__name__)
            _show("   with:", str(e.inner_exceptions[0])[:50])

    _step("3. a Dask LocalCluster of 2 worker processes")
    try:
        import distributed
    except ImportError:
        _say("""
            Skipped: distributed is not installed (pip install
            sharptask[dask]).""")
        return
    import logging
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.CRITICAL)
        client = distributed.Client(cluster)
    try:
        sched = st.ExecutorTaskScheduler(client.get_executor())
        _show("maximum_concurrency_level:", sched.maximum_concurrency_level)
        client.submit(int).result()
        took, pids = fan_out(sched)
        report("Dask LocalCluster", took, pids)
        t0 = time.perf_counter()
        client.gather(client.map(crunch, [size + 100 + i
                                          for i in range(n_items)]))
        _show("the same with client.map + gather:",
              f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()
            cluster.close()
    _say("""
        Processes run the work in parallel, one per free core, at the
        price of pickling the function, its arguments and its result.
        The tasks are ordinary sharptask Tasks: continuations, when_all,
        contexts and cancellation before start behave as on the local
        pool.""")


# -------------------------------------------------------------- registry

#: name -> (function, None) when implemented, or (None, issue number).
SCENARIOS: dict[str, tuple[Callable[[], None] | None, int | None]] = {
    "state-machine": (demo_state_machine, None),
    "deadlock": (demo_deadlock, None),
    "configure-await": (demo_configure_await, None),
    "async-void": (demo_async_void, None),
    "valuetask": (demo_valuetask, None),
    "task-vs-thread": (demo_task_vs_thread, None),
    "fire-and-forget": (demo_fire_and_forget, None),
    "starvation": (demo_starvation, None),
    "asyncio": (demo_asyncio, None),  # issue 11 (I2)
    "scale-out": (demo_scale_out, None),  # issue 11 (I3)
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
        description="Run the tutorial's scenarios as small explained "
                    "experiments. Each has a page in the documentation's "
                    "tutorial (docs/tutorial/NAME.md); rule ids such as A5 "
                    "or R7.4 are explained in its semantics reference "
                    "(docs/semantics.md).",
        epilog="scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("name", nargs="?", choices=list(SCENARIOS),
                        metavar="NAME",
                        help="one scenario (default: every implemented one)")
    parser.add_argument("--trace", metavar="FILE.json",
                        help="record the run with sharptask.trace() and "
                             "save it as Chrome trace JSON (SPEC D2)")
    parser.add_argument("--png", metavar="FILE.png",
                        help="draw the recorded run as a timeline PNG "
                             "(needs matplotlib)")
    args = parser.parse_args(argv)
    if args.trace or args.png:
        from . import _trace
        global _HANG_TRACE
        _HANG_TRACE = _hang_paths(args.trace, args.png)
        try:
            with _trace.trace() as tr:
                status = main([args.name] if args.name else [], prog)
        finally:
            _HANG_TRACE = None
        title = f"demo {args.name or 'all'}"
        return status or _trace.write_outputs(tr, args.trace, args.png,
                                              title=title)
    real_stdout = sys.stdout
    wrapped = _WrappedOutput(real_stdout)
    sys.stdout = wrapped
    try:
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
    finally:
        sys.stdout = real_stdout
        wrapped.close_line()
