"""Synchronization contexts, capture at await and ConfigureAwait: SPEC C1–C4,
C8 and Task.yield_() (T9); reference §3 (R3.4), §7 (R7.2–R7.6), §9 (R9.1,
R9.2) and the dotnet/runtime scenarios S7.1–S7.4 and S9.1 (TaskAwaiterTests,
YieldAwaitableTests).

The custom TaskScheduler half of C3/S7.2/S7.4/S9.1 needs C7 (Python
subclasses with ``queue_task``); those cases skip while TaskScheduler has no
``queue_task``.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import threading
import time

import pytest

import sharptask as st
from conftest import MAIN_IDENT, join_ok, run_script, start_thread, wait_until

SC = st.SynchronizationContext
CAO = st.ConfigureAwaitOptions
TCO = st.TaskCreationOptions
TS = st.TaskStatus

HAS_CUSTOM_SCHEDULER = hasattr(st.TaskScheduler, "queue_task")
requires_custom_scheduler = pytest.mark.skipif(
    not HAS_CUSTOM_SCHEDULER,
    reason="C7: custom TaskScheduler subclasses (TaskScheduler.queue_task) "
    "are not implemented yet",
)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class PostCountingContext(SC):
    """A Python subclass (C1), like dotnet/runtime's
    TrackOperationsSynchronizationContext used by S7.1/S7.4/S9.1: counts
    posts, sends and operations; ``post`` queues to the pool (the base
    behaviour) with itself current while the callback runs."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self.post_count = 0
        self.send_count = 0
        self.started = 0
        self.completed = 0

    def post(self, callback, state=None):
        with self._lock:
            self.post_count += 1

        def run(s):
            prev = SC.current()
            SC.set_synchronization_context(self)
            try:
                callback(s)
            finally:
                SC.set_synchronization_context(prev)

        super().post(run, state)

    def send(self, callback, state=None):
        with self._lock:
            self.send_count += 1
        return super().send(callback, state)

    def operation_started(self):
        with self._lock:
            self.started += 1

    def operation_completed(self):
        with self._lock:
            self.completed += 1


class QueueUserWorkItemScheduler(st.TaskScheduler):
    """A custom scheduler (C7) like dotnet/runtime's QUWITaskScheduler:
    queue_task runs the task on a pool thread through try_execute_task;
    inline execution is allowed (try_execute_task_inline runs it)."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self.queued = 0

    def queue_task(self, task):
        with self._lock:
            self.queued += 1
        st.ThreadPool.queue_user_work_item(lambda: self.try_execute_task(task))

    def try_execute_task_inline(self, task, task_was_previously_queued):
        return self.try_execute_task(task)

    def get_scheduled_tasks(self):
        return []


@contextlib.contextmanager
def installed(ctx):
    """``ctx`` current on the calling thread for the block (C1)."""
    prev = SC.current()
    SC.set_synchronization_context(ctx)
    try:
        yield ctx
    finally:
        SC.set_synchronization_context(prev)


_completing = threading.local()


def complete_on_new_thread(fn, ctx=None):
    """Call ``fn()`` (e.g. ``tcs.set_result``) on a fresh thread with ``ctx``
    current there, flagging the thread while the call runs, so that a
    continuation can tell whether it ran *inside* the completing call."""

    def body():
        with installed(ctx):
            _completing.inside = True
            try:
                fn()
            finally:
                _completing.inside = False

    t = start_thread(body)
    join_ok(t)
    return t


def inside_completing_call():
    return getattr(_completing, "inside", False)


def snapshot():
    """(thread ident, current context, inside the completing call)."""
    return threading.get_ident(), SC.current(), inside_completing_call()


# ---------------------------------------------------------------------------
# C1 SynchronizationContext: the base class, per-thread current, subclasses
# ---------------------------------------------------------------------------


def test_C1_main_thread_and_pool_threads_have_no_context():
    """C1/R9.2: no context by default on the main thread, a new thread, or a
    pool thread."""
    assert SC.current() is None
    seen = []
    join_ok(start_thread(lambda: seen.append(SC.current())))
    assert seen == [None]
    assert st.Task.run(SC.current).result is None


def test_C1_current_is_per_thread():
    """C1/R9.2: set_synchronization_context sets the calling thread's only."""
    ctx = SC()
    with installed(ctx):
        assert SC.current() is ctx
        seen = []
        join_ok(start_thread(lambda: seen.append(SC.current())))
        assert seen == [None]
        assert st.Task.run(SC.current).result is None
    assert SC.current() is None


def test_C1_set_none_clears_and_rejects_non_contexts():
    """C1: None is allowed; anything that is not a context is a TypeError."""
    ctx = SC()
    SC.set_synchronization_context(ctx)
    try:
        assert SC.current() is ctx
    finally:
        SC.set_synchronization_context(None)
    assert SC.current() is None
    with pytest.raises(TypeError):
        SC.set_synchronization_context(42)
    assert SC.current() is None


def test_C1_pool_thread_context_is_reset_after_each_work_item():
    """C1/R9.2: pool threads have no context: a work item that sets one and
    does not undo it must not leak it to later work items on the same
    worker ("thread-pool threads are reset to a null context after each work
    item").  Run in a subprocess so a leaked context cannot affect other
    tests."""
    code = r"""
import threading, sharptask as st
SC = st.SynchronizationContext
class Leaky(SC):
    pass
def setter():
    SC.set_synchronization_context(Leaky())
    return threading.get_ident()
leakers = {st.Task.run(setter).result for _ in range(8)}
seen = [st.Task.run(lambda: (threading.get_ident(), type(SC.current()).__name__)).result
        for _ in range(200)]
same = [name for ident, name in seen if ident in leakers]
print("REUSED", len(same))
print("LEAKED", sum(1 for n in same if n != "NoneType"))
"""
    r = run_script(code, timeout=20)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split() for line in r.stdout.split("\n") if line)
    assert int(lines["REUSED"]) > 0, "no worker was reused: inconclusive"
    assert int(lines["LEAKED"]) == 0, (
        "a context set by one work item was still current in "
        f"{lines['LEAKED']} later work item(s) on the same pool thread"
    )


def test_C1_R9_1_base_send_runs_inline_with_state():
    """C1/R9.1: the base send calls callback(state) on the calling thread."""
    ctx = SC()
    seen = []
    ctx.send(lambda s: seen.append((s, threading.get_ident())), "st")
    assert seen == [("st", MAIN_IDENT)]


def test_C1_R9_1_base_post_queues_to_the_pool():
    """C1/R9.1: the base post runs callback(state) on a pool thread, where no
    context is current."""
    ctx = SC()
    done = threading.Event()
    seen = []

    def cb(s):
        seen.append((s, threading.get_ident(), SC.current()))
        done.set()

    with installed(ctx):
        ctx.post(cb, "state")
    assert done.wait(10)
    state, ident, cur = seen[0]
    assert state == "state"
    assert ident != MAIN_IDENT
    assert cur is None


def test_C1_R9_1_base_operations_do_nothing_and_create_copy_is_new_base():
    """C1/R9.1: operation_started/completed are no-ops; create_copy returns a
    new base instance."""
    ctx = SC()
    assert ctx.operation_started() is None
    assert ctx.operation_completed() is None
    cp = ctx.create_copy()
    assert type(cp) is SC
    assert cp is not ctx


def test_C1_python_subclass_post_is_what_await_uses():
    """C1/C3: an overriding post in a Python subclass is called to resume an
    async method that awaited with it current."""
    ctx = PostCountingContext()
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await tcs.task
        return snapshot()

    with installed(ctx):
        t = m()
    assert SC.current() is None
    assert ctx.post_count == 0
    complete_on_new_thread(lambda: tcs.set_result(None))
    ident, cur, inside = t.result
    assert ctx.post_count == 1
    assert cur is ctx
    assert not inside


def test_C1_subclass_not_overriding_post_still_counts_as_a_context():
    """R7.2 step 3: a subclass that does not override post counts as a
    context (its post queues to the pool), so the continuation does not run
    inline inside the completing call."""

    class Plain(SC):
        pass

    ctx = Plain()
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await tcs.task
        return snapshot()

    with installed(ctx):
        t = m()
    complete_on_new_thread(lambda: tcs.set_result(None))
    ident, cur, inside = t.result
    assert not inside
    assert ident != MAIN_IDENT


def test_C1_R6_6_context_set_in_sync_part_is_undone_for_the_caller():
    """C1/R9.2 (R6.6): an async method that sets a context in its
    synchronous part does not change its caller's current context."""
    ctx = SC()

    @st.async_method
    async def m():
        SC.set_synchronization_context(ctx)
        return SC.current()

    t = m()
    assert t.result is ctx
    assert SC.current() is None


# ---------------------------------------------------------------------------
# C3 capture at await; S7.1–S7.4
# ---------------------------------------------------------------------------


def _awaitable(task, form):
    return {
        "get_awaiter": lambda: task.get_awaiter(),
        "configure_await(True)": lambda: task.configure_await(True),
        "configure_await(False)": lambda: task.configure_await(False),
        "NONE": lambda: task.configure_await(CAO.NONE),
        "CONTINUE_ON_CAPTURED_CONTEXT":
            lambda: task.configure_await(CAO.CONTINUE_ON_CAPTURED_CONTEXT),
    }[form]()


@pytest.mark.parametrize("method", ["on_completed", "unsafe_on_completed"])
@pytest.mark.parametrize(
    "form, posts",
    [
        ("get_awaiter", 1),
        ("configure_await(True)", 1),
        ("configure_await(False)", 0),
        ("NONE", 0),
        ("CONTINUE_ON_CAPTURED_CONTEXT", 1),
    ],
)
def test_C3_C4_S7_1_post_count_when_completed_on_another_thread(form, posts, method):
    """S7.1 (OnCompleted_CompletesInAnotherSynchronizationContext,
    ConfigureAwaitOptions_ContinueOnCapturedContext_QueuesAccordingly):
    with a Post-counting context current at on_completed and the task
    completed from Task.run, PostCount is 1 and the callback runs inside the
    context iff the context is continued on; else 0 posts."""
    ctx = PostCountingContext()
    tcs = st.TaskCompletionSource()
    ran = threading.Event()
    seen = []

    def cb():
        seen.append(SC.current())
        ran.set()

    with installed(ctx):
        getattr(_awaitable(tcs.task, form), method)(cb)
    st.Task.run(lambda: tcs.set_result(None)).wait()
    assert ran.wait(10)
    assert ctx.post_count == posts
    assert (seen[0] is ctx) == bool(posts)
    if not posts:
        assert seen[0] is None


def test_C3_S7_2_base_context_counts_as_no_context():
    """S7.2 / R7.2: a base SynchronizationContext current at the await is the
    same as none: nothing is captured, the continuation runs inline on the
    completing thread (which has no context) and sees no context."""
    ctx = SC()
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await tcs.task
        return snapshot()

    with installed(ctx):
        t = m()
    done_on = complete_on_new_thread(lambda: tcs.set_result(None))
    ident, cur, inside = t.result
    assert inside, "should have resumed inline inside set_result (T7)"
    assert ident == done_on.ident
    assert cur is None


@requires_custom_scheduler
def test_C3_S7_2_base_context_inside_custom_scheduler_resumes_on_scheduler():
    """S7.2 (BaseSynchronizationContext_SameAsNoSynchronizationContext):
    with a base context current inside a task running on a custom scheduler
    Q, an awaiter's continuation runs on Q (TaskScheduler.current() is Q)
    with no context: the base context neither counts nor hides Q."""
    q = QueueUserWorkItemScheduler()
    tcs = st.TaskCompletionSource()
    ran = threading.Event()
    seen = []

    def body():
        with installed(SC()):
            tcs.task.get_awaiter().on_completed(
                lambda: (seen.append((st.TaskScheduler.current(), SC.current())),
                         ran.set())
            )
        assert not ran.is_set()

    st.Task.factory.start_new(body, scheduler=q).wait(10)
    complete_on_new_thread(lambda: tcs.set_result(None))
    assert ran.wait(10)
    sched, cur = seen[0]
    assert sched is q
    assert cur is None


def test_C3_resumes_on_the_completing_thread_without_context():
    """C3/T7: with no context the continuation runs on the thread that
    completed the task, inside its set_result."""
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await tcs.task
        return snapshot()

    t = m()
    done_on = complete_on_new_thread(lambda: tcs.set_result(None))
    ident, cur, inside = t.result
    assert ident == done_on.ident
    assert inside
    assert cur is None


def test_C3_R3_4_completion_on_the_same_context_runs_inline():
    """R3.4/T7: a continuation bound to context S runs inline when the
    completing thread has S current (here: the pump thread itself)."""
    ctx = st.SingleThreadSynchronizationContext()

    async def main():
        tcs = st.TaskCompletionSource()

        @st.async_method
        async def waiter():
            await tcs.task
            return inside_completing_call(), threading.get_ident()

        w = waiter()
        _completing.inside = True
        try:
            tcs.set_result(None)
        finally:
            _completing.inside = False
        assert w.is_completed  # resumed inside set_result
        return await w

    assert ctx.run(main) == (True, MAIN_IDENT)


def test_C4_T7_R3_4_context_free_continuation_not_inlined_on_context_thread():
    """R3.4/T7: completing a task on a thread with a (non-base) context never
    runs a configure_await(False) continuation inline there: it goes to the
    pool."""
    ctx = st.SingleThreadSynchronizationContext()

    async def main():
        tcs = st.TaskCompletionSource()

        @st.async_method
        async def waiter():
            await tcs.task.configure_await(False)
            return snapshot()

        w = waiter()
        _completing.inside = True
        try:
            tcs.set_result(None)
        finally:
            _completing.inside = False
        return await w.configure_await(False)

    ident, cur, inside = ctx.run(main)
    assert not inside
    assert ident != MAIN_IDENT
    assert cur is None


def test_C3_context_is_captured_at_the_await_not_at_the_call():
    """R7.2: capture happens at suspension: a context installed by the method
    itself before its await is the one it resumes on."""
    ctx = PostCountingContext()
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        SC.set_synchronization_context(ctx)
        await tcs.task
        return SC.current()

    t = m()
    assert SC.current() is None  # R6.6: undone for the caller
    complete_on_new_thread(lambda: tcs.set_result(None))
    assert t.result is ctx
    assert ctx.post_count == 1


@pytest.mark.parametrize("with_context", [False, True], ids=["none", "custom-context"])
def test_C3_S7_3_task_completed_on_thread_with_custom_context(with_context):
    """S7.3 (Await_TaskCompletesOnNonDefaultSyncCtx_ContinuesOnDefaultSyncCtx)
    with R3.4: awaiting from a context-free thread a task completed by code
    that has a custom context current: after the await no context is
    current, and the continuation was not inlined into that code."""
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await tcs.task
        return snapshot()

    t = m()  # context-free main thread
    completer_ctx = PostCountingContext() if with_context else None
    done_on = complete_on_new_thread(lambda: tcs.set_result(None), completer_ctx)
    ident, cur, inside = t.result
    assert cur is None
    if with_context:
        assert not inside
        assert completer_ctx.post_count == 0
    else:
        assert inside and ident == done_on.ident


@pytest.mark.parametrize("kind", [None, "sync", "scheduler"])
@pytest.mark.parametrize("rca", [False, True], ids=["sync-cont", "RCA"])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_C3_T7_S7_4_multiple_awaiters_first_inline_rest_async(n, rca, kind):
    """S7.4 (Await_MultipleAwaits_FirstCompletesAccordingToOptions_Rest
    CompleteAsynchronously): N awaiters on one TCS; a thread-local is 42
    around set_result: only the first awaiter, and only without
    RUN_CONTINUATIONS_ASYNCHRONOUSLY, sees 42; every awaiter resumes in its
    captured context."""
    if kind == "scheduler" and not HAS_CUSTOM_SCHEDULER:
        pytest.skip("C7: custom TaskScheduler (queue_task) not implemented yet")
    tl = threading.local()
    q = QueueUserWorkItemScheduler() if kind == "scheduler" else None

    def in_captured():
        if kind == "scheduler":
            return st.TaskScheduler.current() is q
        return SC.current() is ctx_box[0]

    ctx_box = [None]

    def body():
        ctx_box[0] = PostCountingContext() if kind == "sync" else None
        SC.set_synchronization_context(ctx_box[0])
        try:
            tcs = st.TaskCompletionSource(
                options=TCO.RUN_CONTINUATIONS_ASYNCHRONOUSLY if rca else TCO.NONE
            )

            @st.async_method
            async def then(i):
                await tcs.task
                return i, getattr(tl, "value", 0), in_captured()

            tasks = [then(i) for i in range(1, n + 1)]
            statuses = [t.status for t in tasks]
            tl.value = 42
            tcs.set_result(None)
            tl.value = 0
        finally:
            SC.set_synchronization_context(None)
        return tasks, statuses

    if kind == "scheduler":
        tasks, statuses = st.Task.factory.start_new(body, scheduler=q).result
    else:
        tasks, statuses = st.Task.run(body).result
    assert statuses == [TS.WAITING_FOR_ACTIVATION] * n
    results = st.Task.when_all(tasks).result
    for i, value, in_ctx in results:
        expected_sync = i == 1 and not rca
        assert value == (42 if expected_sync else 0), f"awaiter {i}"
        assert in_ctx, f"awaiter {i} did not resume in its captured context"


# ---------------------------------------------------------------------------
# C2 SingleThreadSynchronizationContext and UiThread
# ---------------------------------------------------------------------------


def test_C2_run_installs_context_pumps_and_returns_result():
    """C2: run(fn, *args) installs the context on the calling thread, pumps
    until the async function's task completes, returns its result, and
    restores the previous context; every await resumes on that thread."""
    ctx = st.SingleThreadSynchronizationContext()

    async def main(a, b):
        seen = [(threading.get_ident(), SC.current() is ctx)]
        await st.Task.delay(0.01)
        seen.append((threading.get_ident(), SC.current() is ctx))
        await st.Task.run(lambda: None)
        seen.append((threading.get_ident(), SC.current() is ctx))
        await st.Task.yield_()
        seen.append((threading.get_ident(), SC.current() is ctx))
        return a + b, seen

    value, seen = ctx.run(main, 20, 22)
    assert value == 42
    assert seen == [(MAIN_IDENT, True)] * 4
    assert SC.current() is None


def test_C2_run_accepts_plain_functions_and_coroutine_objects():
    """C2: run(fn, *args) also takes a plain function (its value is
    returned) or a coroutine object."""
    ctx = st.SingleThreadSynchronizationContext()

    async def add(a, b):
        await st.Task.yield_()
        return a + b

    assert ctx.run(lambda a, b: a * b, 6, 7) == 42
    assert ctx.run(add(1, 2)) == 3


def test_C2_run_raises_the_exception_itself():
    """C2: a faulted async function makes run raise its exception (not an
    AggregateError), with the same object."""
    ctx = st.SingleThreadSynchronizationContext()
    err = KeyError("boom")

    async def main():
        await st.Task.delay(0.01)
        raise err

    with pytest.raises(KeyError) as ei:
        ctx.run(main)
    assert ei.value is err
    assert SC.current() is None


def test_C2_run_while_already_running_raises():
    """C2: one context, one pumping thread: a nested run is refused."""
    ctx = st.SingleThreadSynchronizationContext()

    def nested():
        with pytest.raises(st.InvalidOperationError):
            ctx.run(lambda: 1)
        return "ok"

    assert ctx.run(nested) == "ok"


def test_C2_post_from_other_threads_runs_on_pump_thread_in_order():
    """C2: posts from another thread run on the pumping thread, FIFO."""
    ctx = st.SingleThreadSynchronizationContext()
    tcs = st.TaskCompletionSource()
    log = []

    def poster():
        for i in range(50):
            ctx.post(lambda s: log.append((s, threading.get_ident())), i)
        ctx.post(lambda s: tcs.set_result(None), None)

    async def main():
        start_thread(poster)
        await tcs.task

    ctx.run(main)
    assert [s for s, _ in log] == list(range(50))
    assert {ident for _, ident in log} == {MAIN_IDENT}


def test_C2_send_from_another_thread_runs_on_pump_thread_and_returns():
    """C2: send from another thread runs on the pump thread and waits; on the
    pump thread it runs inline."""
    ctx = st.SingleThreadSynchronizationContext()
    seen = []
    sent = st.TaskCompletionSource()

    def sender():
        try:
            seen.append(ctx.send(lambda s: (s, threading.get_ident()), "x"))
        finally:
            sent.set_result(None)

    async def main():
        t = start_thread(sender)
        await sent.task  # the send is served by this pump meanwhile
        join_ok(t)
        seen.append(ctx.send(lambda s: (s, threading.get_ident()), "inline"))

    ctx.run(main)
    assert seen == [("x", MAIN_IDENT), ("inline", MAIN_IDENT)]


def test_C2_uithread_invoke_runs_there_and_returns_value():
    """C2: invoke runs fn(*args) on the UI thread, with the UI context
    current, and returns its value."""
    with st.UiThread(name="C2-ui") as ui:
        ident, name, cur, total = ui.invoke(
            lambda a, b: (threading.get_ident(), threading.current_thread().name,
                          SC.current(), a + b),
            1, 2,
        )
        assert ident == ui.ident != MAIN_IDENT
        assert name == "C2-ui"
        assert cur is ui.context
        assert isinstance(ui.context, st.SingleThreadSynchronizationContext)
        assert total == 3


def test_C2_uithread_invoke_returns_an_async_methods_task_unawaited():
    """C2: invoke returns fn's value as it is: an async method's Task is
    returned, not awaited; its continuations run on the UI thread."""
    gate = st.TaskCompletionSource()
    with st.UiThread(name="C2-ui-task") as ui:

        @st.async_method
        async def on_ui():
            await gate.task
            return threading.get_ident(), SC.current() is ui.context

        t = ui.invoke(on_ui)
        assert isinstance(t, st.Task)
        assert not t.is_completed
        gate.set_result(None)
        assert t.result == (ui.ident, True)


def test_C2_uithread_invoke_reraises_the_exception_itself():
    """C2: invoke re-raises fn's exception itself (same object)."""
    err = ValueError("from the UI thread")

    def fail():
        raise err

    with st.UiThread() as ui:
        with pytest.raises(ValueError) as ei:
            ui.invoke(fail)
        assert ei.value is err
        assert ui.invoke(lambda: "still alive") == "still alive"


def test_C2_uithread_begin_invoke_returns_task():
    """C2: begin_invoke returns a Task of fn's value, faulted with fn's
    exception."""
    err = KeyError("k")

    def fail():
        raise err

    with st.UiThread() as ui:
        ok = ui.begin_invoke(lambda x: (x, threading.get_ident()), 5)
        assert isinstance(ok, st.Task)
        assert ok.result == (5, ui.ident)
        bad = ui.begin_invoke(fail)
        with pytest.raises(st.AggregateError):
            bad.wait(10)
        assert bad.is_faulted
        assert bad.exception.inner_exceptions == (err,)


def test_C2_uithread_close_and_with_stop_the_thread():
    """C2: close() (and leaving a with block) stops the message loop and the
    thread ends."""
    ui = st.UiThread(name="C2-close")
    ident = ui.ident
    assert ui.invoke(lambda: 1) == 1
    ui.close()
    assert all(t.ident != ident for t in threading.enumerate())
    with st.UiThread(name="C2-with") as ui2:
        ident2 = ui2.ident
        assert ui2.invoke(lambda: 2) == 2
    assert all(t.ident != ident2 for t in threading.enumerate())


def test_C2_uithread_refuses_work_after_close():
    """C2: a closed UiThread refuses invoke/begin_invoke (like a disposed
    dispatcher) instead of hanging."""
    ui = st.UiThread(name="C2-closed")
    ui.close()
    with pytest.raises(st.InvalidOperationError):
        ui.invoke(lambda: 1)
    with pytest.raises(st.InvalidOperationError):
        ui.begin_invoke(lambda: 1)


def test_C2_unclosed_uithread_does_not_hold_up_exit():
    """C2: a UiThread never closed does not keep the interpreter alive."""
    code = r"""
import sharptask as st
ui = st.UiThread(name="never-closed")
print(ui.invoke(lambda: "pumping"))
"""
    r = run_script(code, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "pumping" in r.stdout


# ---------------------------------------------------------------------------
# C4 configure_await and ConfigureAwaitOptions
# ---------------------------------------------------------------------------


def test_C4_configure_await_false_resumes_without_context():
    """C4/R7.4: configure_await(False) on a pending task: nothing is posted;
    the method resumes inline on the completing thread, with no context."""
    ctx = PostCountingContext()
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await tcs.task.configure_await(False)
        return snapshot()

    with installed(ctx):
        t = m()
    done_on = complete_on_new_thread(lambda: tcs.set_result(None))
    ident, cur, inside = t.result
    assert ctx.post_count == 0
    assert cur is None
    assert inside and ident == done_on.ident


def test_C4_configure_await_false_resumes_without_single_thread_context():
    """C4: inside SingleThreadSynchronizationContext.run, an await with
    configure_await(False) resumes off the pump thread; a plain await after
    it captures nothing (no context is current there)."""
    ctx = st.SingleThreadSynchronizationContext()

    async def main():
        await st.Task.delay(0.01).configure_await(False)
        first = threading.get_ident(), SC.current()
        await st.Task.delay(0.01)
        second = threading.get_ident(), SC.current()
        return first, second

    (i1, c1), (i2, c2) = ctx.run(main)
    assert i1 != MAIN_IDENT and c1 is None
    assert i2 != MAIN_IDENT and c2 is None
    assert SC.current() is None


def test_C4_R7_4_configure_await_false_on_completed_task_has_no_effect():
    """C4/R7.4: on an already completed task, configure_await(False) never
    suspends: the method continues on the same thread, context still set."""
    ctx = PostCountingContext()

    @st.async_method
    async def m():
        await st.Task.from_result(1).configure_await(False)
        return threading.get_ident(), SC.current()

    with installed(ctx):
        t = m()
    assert t.result == (MAIN_IDENT, ctx)
    assert ctx.post_count == 0


def test_C4_option_and_flag_types_are_intflags():
    """C4: ConfigureAwaitOptions, TaskCreationOptions, TaskContinuationOptions
    (and ValueTaskSourceOnCompletedFlags once present) are enum.IntFlag with
    the .NET values, so | combines them."""
    assert issubclass(CAO, enum.IntFlag)
    assert (CAO.NONE, CAO.CONTINUE_ON_CAPTURED_CONTEXT, CAO.SUPPRESS_THROWING,
            CAO.FORCE_YIELDING) == (0, 1, 2, 4)
    both = CAO.CONTINUE_ON_CAPTURED_CONTEXT | CAO.FORCE_YIELDING
    assert isinstance(both, CAO) and int(both) == 5
    assert issubclass(st.TaskCreationOptions, enum.IntFlag)
    assert issubclass(st.TaskContinuationOptions, enum.IntFlag)
    if hasattr(st, "ValueTaskSourceOnCompletedFlags"):
        assert issubclass(st.ValueTaskSourceOnCompletedFlags, enum.IntFlag)


@pytest.mark.parametrize("bad", [8, 0x10, 0xFF, -1])
def test_C4_S7_5_invalid_options_raise_value_error(bad):
    """S7.5 (ConfigureAwaitOptions_Invalid): an unknown bit is
    ArgumentOutOfRange → ValueError."""
    with pytest.raises(ValueError):
        st.Task.completed_task.configure_await(bad)
    with pytest.raises(ValueError):
        st.Task.from_result(1).configure_await(bad)


def test_C4_configure_await_rejects_other_types():
    """C4/§0: configure_await takes a bool or ConfigureAwaitOptions."""
    with pytest.raises(TypeError):
        st.Task.completed_task.configure_await("false")


@pytest.mark.parametrize(
    "options",
    [CAO.FORCE_YIELDING, CAO.FORCE_YIELDING | CAO.CONTINUE_ON_CAPTURED_CONTEXT,
     CAO.FORCE_YIELDING | CAO.SUPPRESS_THROWING],
)
def test_C4_S7_6_force_yielding_is_completed_always_false(options):
    """S7.6 (ConfigureAwaitOptions_ForceYielding_IsCompletedAlwaysFalse)."""
    for task in (st.Task.completed_task, st.Task.from_result(42)):
        aw = task.configure_await(options).get_awaiter()
        assert aw.is_completed is False


def test_C4_force_yielding_alone_resumes_on_pool_not_context():
    """R7.5: FORCE_YIELDING alone is like Task.yield_() without returning to
    the context: always suspends, resumes on the pool, nothing posted."""
    ctx = PostCountingContext()

    @st.async_method
    async def m():
        await st.Task.completed_task.configure_await(CAO.FORCE_YIELDING)
        return snapshot()

    with installed(ctx):
        t = m()
    ident, cur, _ = t.result
    assert ident != MAIN_IDENT
    assert cur is None
    assert ctx.post_count == 0


def test_C4_force_yielding_with_continue_posts_to_context():
    """R7.5: FORCE_YIELDING | CONTINUE_ON_CAPTURED_CONTEXT on a completed task
    posts the continuation to the captured context (never inline)."""
    ctx = PostCountingContext()

    @st.async_method
    async def m():
        await st.Task.completed_task.configure_await(
            CAO.FORCE_YIELDING | CAO.CONTINUE_ON_CAPTURED_CONTEXT
        )
        return snapshot()

    with installed(ctx):
        t = m()
    ident, cur, _ = t.result
    assert cur is ctx
    assert ctx.post_count == 1


def test_C4_force_yielding_on_single_thread_context_keeps_pump_thread():
    """R7.5: a forced yield with the context continued on comes back on the
    pump thread, after callbacks posted before it (it went through the
    queue)."""
    ctx = st.SingleThreadSynchronizationContext()
    log = []

    async def main():
        ctx.post(lambda _: log.append("posted-before"), None)
        await st.Task.completed_task.configure_await(
            CAO.FORCE_YIELDING | CAO.CONTINUE_ON_CAPTURED_CONTEXT
        )
        log.append(("resumed", threading.get_ident()))

    ctx.run(main)
    assert log == ["posted-before", ("resumed", MAIN_IDENT)]


def test_C4_S7_7_suppress_throwing_no_exceptions_are_thrown():
    """S7.7 (ConfigureAwaitOptions_SuppressThrowing_NoExceptionsAreThrown):
    with SUPPRESS_THROWING get_result on a faulted or canceled task returns
    normally; without it, it raises the exception / TaskCanceledError."""
    err = ValueError("format")
    faulted = st.Task.from_exception(err)
    tcs = st.TaskCompletionSource()
    tcs.set_canceled()
    canceled = tcs.task
    for t in (faulted, canceled):
        assert t.configure_await(CAO.SUPPRESS_THROWING).get_awaiter().get_result() is None
    with pytest.raises(ValueError) as ei:
        faulted.configure_await(CAO.NONE).get_awaiter().get_result()
    assert ei.value is err
    with pytest.raises(st.TaskCanceledError):
        canceled.configure_await(CAO.NONE).get_awaiter().get_result()


def test_C4_suppress_throwing_await_of_pending_task_that_faults():
    """R7.5: awaiting with SUPPRESS_THROWING a task that faults later returns
    normally inside the async method."""
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def m():
        r = await tcs.task.configure_await(CAO.SUPPRESS_THROWING)
        return "survived", r

    t = m()
    complete_on_new_thread(lambda: tcs.set_exception(KeyError("late")))
    assert t.result == ("survived", None)
    assert tcs.task.is_faulted


def test_C4_T11_suppress_throwing_marks_exception_observed(monkeypatch):
    """R7.5 + T11: SUPPRESS_THROWING marks the task's exceptions observed:
    no unobserved report when it is collected.  A positive control (an
    unobserved faulted task dropped afterwards) shows when reports would
    have arrived."""
    import gc

    reports = []
    lock = threading.Lock()

    def hook(u):
        with lock:
            reports.append(u.exc_value)

    monkeypatch.setattr(sys, "unraisablehook", hook)

    class Suppressed(Exception):
        pass

    class Control(Exception):
        pass

    @st.async_method
    async def m(t):
        await t.configure_await(CAO.SUPPRESS_THROWING)

    tcs = st.TaskCompletionSource()
    w = m(tcs.task)
    tcs.set_exception(Suppressed())
    w.wait(10)
    del tcs, w
    gc.collect()
    st.Task.from_exception(Control())  # dropped at once: must be reported
    gc.collect()

    def names():
        with lock:
            out = []
            for e in reports:
                out.extend(type(x).__name__ for x in getattr(e, "exceptions", (e,)))
            return out

    # a GC report has no event to wait on: poll (conftest.wait_until)
    assert wait_until(lambda: gc.collect() is not None and "Control" in names()), \
        "positive control never reported"
    assert "Suppressed" not in names()


# ---------------------------------------------------------------------------
# C8 ExclusiveSynchronizationContext
# ---------------------------------------------------------------------------


def test_C8_takes_no_arguments_and_is_a_context():
    """C8: ExclusiveSynchronizationContext() takes no arguments."""
    ctx = st.ExclusiveSynchronizationContext()
    assert isinstance(ctx, SC)
    with pytest.raises(TypeError):
        st.ExclusiveSynchronizationContext(1)


def test_C8_current_inside_its_callbacks_only():
    """C8: the context is current inside its post and send callbacks and
    not after them."""
    ctx = st.ExclusiveSynchronizationContext()
    seen = []
    done = threading.Event()
    ctx.send(lambda s: seen.append((s, SC.current() is ctx, threading.get_ident())),
             "s")
    assert SC.current() is None

    def posted(s):
        seen.append((s, SC.current() is ctx, threading.get_ident()))
        done.set()

    ctx.post(posted, "p")
    assert done.wait(10)
    assert seen[0] == ("s", True, MAIN_IDENT)
    assert seen[1][:2] == ("p", True)


def test_C8_runs_one_callback_at_a_time_post_and_send_alike():
    """C8: callbacks from post and from send (on several threads) never
    overlap."""
    ctx = st.ExclusiveSynchronizationContext()
    lock = threading.Lock()
    state = {"active": 0, "max": 0, "done": 0, "not_current": 0}
    all_done = threading.Event()
    total = 40

    def cb(_):
        with lock:
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
        if SC.current() is not ctx:
            with lock:
                state["not_current"] += 1
        time.sleep(0.002)  # widen the window for an overlap
        with lock:
            state["active"] -= 1
            state["done"] += 1
            if state["done"] == total:
                all_done.set()

    for i in range(total // 2):
        ctx.post(cb, i)
    senders = [start_thread(ctx.send, cb, i) for i in range(total // 2)]
    for t in senders:
        join_ok(t)
    assert all_done.wait(20)
    assert state["max"] == 1
    assert state["not_current"] == 0


def test_C8_async_method_resumes_in_the_exclusive_context():
    """C8/C3: an async method started in a callback captures the exclusive
    context and resumes inside it (on some thread, with it current)."""
    ctx = st.ExclusiveSynchronizationContext()
    tcs = st.TaskCompletionSource()

    @st.async_method
    async def handler():
        await tcs.task
        return SC.current() is ctx

    t = ctx.send(lambda _: handler())
    complete_on_new_thread(lambda: tcs.set_result(None))
    assert t.result is True


# ---------------------------------------------------------------------------
# Task.yield_() (T9, R7.6, S9.1)
# ---------------------------------------------------------------------------


def test_T9_yield_S9_1_posts_to_current_custom_context():
    """S9.1 (YieldAwaitableTests): with a custom context current, the
    awaiter is not completed and the continuation is posted into it (one
    post)."""
    ctx = PostCountingContext()
    ran = threading.Event()
    seen = []
    with installed(ctx):
        aw = st.Task.yield_().get_awaiter()
        assert aw.is_completed is False
        aw.on_completed(lambda: (seen.append(SC.current()), ran.set()))
    assert ran.wait(10)
    assert ctx.post_count == 1
    assert seen == [ctx]
    assert aw.get_result() is None


def test_T9_yield_S9_1_context_is_read_at_on_completed_time():
    """S9.1: the context is read when on_completed is called, not when
    yield_() / get_awaiter() are."""
    ctx = PostCountingContext()
    aw = st.Task.yield_().get_awaiter()  # no context yet
    ran = threading.Event()
    seen = []
    with installed(ctx):
        aw.on_completed(lambda: (seen.append(SC.current()), ran.set()))
    assert ran.wait(10)
    assert ctx.post_count == 1 and seen == [ctx]

    ctx2 = PostCountingContext()
    with installed(ctx2):
        aw2 = st.Task.yield_().get_awaiter()
    ran2 = threading.Event()
    seen2 = []
    aw2.on_completed(lambda: (seen2.append(SC.current()), ran2.set()))
    assert ran2.wait(10)
    assert ctx2.post_count == 0 and seen2 == [None]


def test_T9_yield_S9_1_on_completed_none_raises_type_error():
    """S9.1: OnCompleted(null) → ArgumentNullException → TypeError."""
    with pytest.raises(TypeError):
        st.Task.yield_().get_awaiter().on_completed(None)
    with pytest.raises(TypeError):
        st.Task.yield_().get_awaiter().unsafe_on_completed(None)


@requires_custom_scheduler
@pytest.mark.parametrize("base_context", [False, True])
def test_T9_yield_S9_1_custom_scheduler_current_runs_on_scheduler(base_context):
    """S9.1 (YieldAwaitableTests): with a custom scheduler current (even if
    the current context is the base class) the yield continuation runs as a
    task on that scheduler."""
    q = QueueUserWorkItemScheduler()
    ran = threading.Event()
    seen = []

    def body():
        with installed(SC() if base_context else None):
            aw = st.Task.yield_().get_awaiter()
            assert aw.is_completed is False
            aw.on_completed(lambda: (seen.append(st.TaskScheduler.current()),
                                     ran.set()))

    st.Task.factory.start_new(body, scheduler=q).wait(10)
    assert ran.wait(10)
    assert seen == [q]
    assert q.queued >= 2  # body itself, then the yield continuation


def test_T9_yield_without_context_goes_to_pool_never_inline():
    """R7.6: with no context, yield_ queues to the pool: the method returns to
    its caller first and resumes on a pool thread."""
    resumed = threading.Event()
    release = threading.Event()

    @st.async_method
    async def m():
        await st.Task.yield_()
        release.wait(10)
        resumed.set()
        return threading.get_ident(), SC.current()

    t = m()
    # the call returned before the continuation could finish
    assert not resumed.is_set()
    release.set()
    ident, cur = t.result
    assert ident != MAIN_IDENT
    assert cur is None


def test_T9_yield_base_context_counts_as_none():
    """R7.6: a base-class context is not posted to: the yield goes to the
    pool and resumes with no context."""
    ctx = SC()

    @st.async_method
    async def m():
        await st.Task.yield_()
        return threading.get_ident(), SC.current()

    with installed(ctx):
        t = m()
    ident, cur = t.result
    assert ident != MAIN_IDENT and cur is None


def test_T9_yield_on_single_thread_context_lets_queued_work_run_first():
    """R7.6: on a single-threaded context yield_ posts to it: work already
    queued runs before the continuation, which comes back on the pump
    thread."""
    ctx = st.SingleThreadSynchronizationContext()
    log = []

    async def main():
        ctx.post(lambda _: log.append("queued-before"), None)
        log.append("before-yield")
        await st.Task.yield_()
        log.append(("after-yield", threading.get_ident(), SC.current() is ctx))

    ctx.run(main)
    assert log == ["before-yield", "queued-before", ("after-yield", MAIN_IDENT, True)]


def test_T9_yield_in_async_method_with_custom_context_posts_once():
    """R7.6/C3: await Task.yield_() inside an async method posts once to the
    current custom context and resumes with it current."""
    ctx = PostCountingContext()

    @st.async_method
    async def m():
        await st.Task.yield_()
        return SC.current()

    with installed(ctx):
        t = m()
    assert t.result is ctx
    assert ctx.post_count == 1
