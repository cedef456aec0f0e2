"""@async_void (AsyncVoidMethodBuilder): SPEC A8, with C1/C2; reference §8
(R8.1–R8.4) and the dotnet/runtime scenarios S8.1, S8.2
(AsyncTaskMethodBuilderTests: VoidMethodBuilder_TrackedContext,
AsyncMethodBuilderCreate_SetExceptionTest2, TrackedSyncContext_ValidateException,
VoidMethodBuilder_NoContext).

Every test that lets an exception escape with no context installs its own
handler or replaces sys.unraisablehook (the suite runs with
filterwarnings=error, so a report reaching pytest's hook would fail it).
"""

from __future__ import annotations

import contextlib
import sys
import threading

import pytest

import sharptask as st
from conftest import MAIN_IDENT, Recorder, run_script

SC = st.SynchronizationContext


class TrackOperationsContext(SC):
    """Port of dotnet/runtime's TrackOperationsSynchronizationContext: counts
    operations (started − completed) and posts; post runs the callback
    inline and collects what it raises."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self.tracked_count = 0
        self.started = 0
        self.completed = 0
        self.post_count = 0
        self.post_exceptions = []
        self.events = []

    def operation_started(self):
        with self._lock:
            self.tracked_count += 1
            self.started += 1
            self.events.append("started")

    def operation_completed(self):
        with self._lock:
            self.tracked_count -= 1
            self.completed += 1
            self.events.append("completed")

    def post(self, callback, state=None):
        with self._lock:
            self.post_count += 1
            self.events.append("post")
        try:
            callback(state)
        except Exception as e:  # noqa: BLE001 - the point of the context
            with self._lock:
                self.post_exceptions.append(e)


@contextlib.contextmanager
def installed(ctx):
    prev = SC.current()
    SC.set_synchronization_context(ctx)
    try:
        yield ctx
    finally:
        SC.set_synchronization_context(prev)


@pytest.fixture
def handler():
    """Install a recording unhandled-exception handler; restore after."""
    rec = Recorder()

    def fn(exc):
        rec.add((exc, threading.get_ident()))

    prev = st.set_unhandled_exception_handler(fn)
    yield rec
    st.set_unhandled_exception_handler(prev)


# ---------------------------------------------------------------------------
# the call
# ---------------------------------------------------------------------------


def test_A8_returns_none_and_runs_synchronously_until_first_suspension():
    """A8/R8.1: the call returns None; the body runs on the caller's thread
    up to its first suspension."""
    gate = st.TaskCompletionSource()
    log = []

    @st.async_void
    async def on_click(x):
        log.append(("start", x, threading.get_ident()))
        await gate.task
        log.append(("end", x))

    assert on_click(1) is None
    assert log == [("start", 1, MAIN_IDENT)]
    gate.set_result(None)
    assert log[-1] == ("end", 1)


def test_A8_rejects_non_async_functions():
    """A8: @async_void needs an async def (TypeError otherwise)."""
    with pytest.raises(TypeError):
        st.async_void(lambda: None)


def test_A8_R8_4_exception_never_reaches_the_caller(handler):
    """R8.4: even an exception raised before the first await does not
    propagate to the caller (with a context or without)."""
    err = KeyError("early")

    @st.async_void
    async def fails_at_once():
        raise err

    ctx = TrackOperationsContext()
    with installed(ctx):
        assert fails_at_once() is None
    assert ctx.post_exceptions == [err]
    assert fails_at_once() is None  # no context: goes to the handler
    assert handler.wait_for(1)
    assert handler.items[0][0] is err


# ---------------------------------------------------------------------------
# operation_started / operation_completed (S8.1)
# ---------------------------------------------------------------------------


def test_A8_S8_1_tracked_context_counts_in_any_completion_order():
    """S8.1 (VoidMethodBuilder_TrackedContext): each call increments the
    count (operation_started at the call, before the body runs) and each
    completion decrements it, whatever the completion order."""
    ctx = TrackOperationsContext()
    gates = [st.TaskCompletionSource() for _ in range(3)]
    seen_at_start = []

    @st.async_void
    async def op(i):
        seen_at_start.append(ctx.tracked_count)
        await gates[i].task

    with installed(ctx):
        for i in range(3):
            op(i)
    assert seen_at_start == [1, 2, 3]  # started before the body ran
    assert ctx.tracked_count == 3
    for i, expected in ((1, 2), (2, 1), (0, 0)):
        gates[i].set_result(None)  # resumes through ctx.post (inline here)
        assert ctx.tracked_count == expected
    assert (ctx.started, ctx.completed) == (3, 3)


def test_A8_S8_1_synchronously_completing_method_balances_counts():
    """R8.1/R8.2: a method that never suspends still calls
    operation_started and operation_completed exactly once each."""
    ctx = TrackOperationsContext()

    @st.async_void
    async def quick():
        return 5

    with installed(ctx):
        quick()
    assert (ctx.started, ctx.completed, ctx.tracked_count) == (1, 1, 0)
    assert ctx.post_count == 0


def test_A8_counts_with_a_python_subclass_posting_to_the_pool():
    """A8/C1: with a Python subclass context whose post goes to the pool, the
    counts still balance once every operation has finished."""

    class Counting(SC):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()
            self.started = 0
            self.completed = Recorder()

        def operation_started(self):
            with self.lock:
                self.started += 1

        def operation_completed(self):
            self.completed.add(threading.get_ident())

    ctx = Counting()

    @st.async_void
    async def op(delay):
        await st.Task.delay(delay)

    with installed(ctx):
        for i in range(5):
            op(0.005 * i)
    assert ctx.started == 5
    assert ctx.completed.wait_for(5)
    assert len(ctx.completed) == 5


def test_A8_single_thread_context_run_pumps_until_async_void_completes():
    """A8/C2: run() keeps pumping until every async void operation started
    on it has completed, and their continuations run on the pump thread."""
    ctx = st.SingleThreadSynchronizationContext()
    log = []

    @st.async_void
    async def on_load(n):
        await st.Task.delay(0.02 * n)
        log.append((n, threading.get_ident(), SC.current() is ctx))

    def main():
        on_load(1)
        on_load(2)
        return "main returned"

    assert ctx.run(main) == "main returned"
    assert sorted(log) == [(1, MAIN_IDENT, True), (2, MAIN_IDENT, True)]


# ---------------------------------------------------------------------------
# exceptions with a context (S8.2)
# ---------------------------------------------------------------------------


def test_A8_S8_2_exceptions_posted_to_context_in_completion_order():
    """S8.2 (AsyncMethodBuilderCreate_SetExceptionTest2,
    TrackedSyncContext_ValidateException): two async void methods started in
    order 1, 2 and failing in order 2 (InvalidOperation), 1 (InvalidCast →
    TypeError): each exception is rethrown inside the context's post
    callback, collected in completion order, and the counts balance."""
    ctx = TrackOperationsContext()
    g1, g2 = st.TaskCompletionSource(), st.TaskCompletionSource()
    ioe = st.InvalidOperationError("second")
    ice = TypeError("first")

    @st.async_void
    async def m1():
        await g1.task
        raise ice

    @st.async_void
    async def m2():
        await g2.task
        raise ioe

    with installed(ctx):
        m1()
        m2()
    assert ctx.tracked_count == 2
    g2.set_result(None)
    g1.set_result(None)
    assert ctx.post_exceptions == [ioe, ice]
    assert [type(e) for e in ctx.post_exceptions] == [st.InvalidOperationError, TypeError]
    assert ctx.tracked_count == 0


def test_A8_R8_3_exception_posted_before_operation_completed():
    """R8.3: the exception is handed to post first, then
    operation_completed is called."""
    ctx = TrackOperationsContext()

    @st.async_void
    async def fails():
        raise ValueError("x")

    with installed(ctx):
        fails()
    assert ctx.events == ["started", "post", "completed"]


def test_A8_S8_2_no_context_successful_completion_reports_nothing(handler):
    """S8.2 (VoidMethodBuilder_NoContext): no context and a normal completion
    → nothing reported.  A failing call made afterwards is the positive
    control: once its report arrives, a spurious one would have too."""
    done = threading.Event()

    @st.async_void
    async def fine():
        await st.Task.delay(0.01)
        done.set()

    marker = LookupError("control")

    @st.async_void
    async def control():
        raise marker

    fine()
    assert done.wait(10)
    control()
    assert handler.wait_for(1)
    assert [e for e, _ in handler.items] == [marker]


def test_A8_single_thread_context_run_raises_the_exception_to_its_caller():
    """A8/C2: the exception is posted to the SingleThreadSynchronizationContext
    and raised by run() to its caller — the same object, after the method
    resumed on the pump thread."""
    ctx = st.SingleThreadSynchronizationContext()
    err = ValueError("from the handler")
    where = []

    @st.async_void
    async def on_click():
        await st.Task.delay(0.01)
        where.append(threading.get_ident())
        raise err

    def main():
        on_click()
        return "main returned"

    with pytest.raises(ValueError) as ei:
        ctx.run(main)
    assert ei.value is err
    assert where == [MAIN_IDENT]
    assert SC.current() is None


def test_A8_R8_3_operation_canceled_error_is_posted_too():
    """R8.3: async void has no Canceled state: an escaping
    OperationCanceledError is posted like any exception, and run() raises
    that same object."""
    ctx = st.SingleThreadSynchronizationContext()
    oce = st.OperationCanceledError()

    @st.async_void
    async def on_click():
        await st.Task.yield_()
        raise oce

    with pytest.raises(st.OperationCanceledError) as ei:
        ctx.run(on_click)
    assert ei.value is oce


def test_A8_ui_thread_raises_it_on_the_ui_thread_and_keeps_pumping(handler):
    """A8/C2: on a UiThread the exception is raised by its message loop (on
    the UI thread), reported there as unhandled, and the UI thread keeps
    working."""
    err = RuntimeError("handler failed")

    @st.async_void
    async def on_click():
        await st.Task.delay(0.01)
        raise err

    with st.UiThread(name="A8-ui") as ui:
        ui.invoke(on_click)
        assert handler.wait_for(1)
        exc, ident = handler.items[0]
        assert exc is err
        assert ident == ui.ident
        assert ui.invoke(lambda: "alive") == "alive"


# ---------------------------------------------------------------------------
# no context: the unhandled-exception handler, sys.unraisablehook, "crash"
# ---------------------------------------------------------------------------


def test_A8_no_context_exception_goes_to_handler_off_the_caller(handler):
    """A8/R8.3: with no context the exception (same object) goes to the
    unhandled-exception handler, on a pool thread as .NET rethrows it
    there — not on the caller."""
    err = KeyError("unhandled")

    @st.async_void
    async def fire_and_forget():
        await st.Task.delay(0.01)
        raise err

    fire_and_forget()
    assert handler.wait_for(1)
    exc, ident = handler.items[0]
    assert exc is err
    assert ident != MAIN_IDENT


def test_A8_R8_3_base_context_exception_reaches_handler_like_no_context(handler, monkeypatch):
    """R8.3: a base-class SynchronizationContext counts as remembered, but
    its post just queues to the pool, so the exception ends up unhandled on
    a pool thread exactly as with no context (.NET: the same crash).  It
    must reach the unhandled-exception handler (same object), not some
    other channel."""
    stray = Recorder()
    monkeypatch.setattr(sys, "unraisablehook", stray.add)
    err = KeyError("base context")

    @st.async_void
    async def on_click():
        await st.Task.delay(0.01)
        raise err

    with installed(SC()):
        on_click()
    arrived = handler.wait_for(1, timeout=5)
    assert arrived, (
        "the handler never got the exception; sys.unraisablehook got "
        f"{[(u.exc_value, u.object) for u in stray.items]!r}"
    )
    assert handler.items[0][0] is err


def test_A8_R8_3_post_that_raises_reports_both_exceptions(handler, monkeypatch):
    """R8.3: if the context's post itself raises, an AggregateError of
    (original, post exception) is reported as unhandled instead."""
    stray = Recorder()
    monkeypatch.setattr(sys, "unraisablehook", stray.add)
    original = KeyError("original")
    post_error = OSError("post failed")

    class BrokenPost(SC):
        def post(self, callback, state=None):
            raise post_error

    @st.async_void
    async def fails():
        raise original

    with installed(BrokenPost()):
        fails()
    arrived = handler.wait_for(1, timeout=5)
    assert arrived, (
        "nothing reached the handler; sys.unraisablehook got "
        f"{[u.exc_value for u in stray.items]!r}"
    )
    exc = handler.items[0][0]
    assert isinstance(exc, st.AggregateError), repr(exc)
    assert exc.inner_exceptions == (original, post_error)


def test_A8_R8_2_operation_completed_raising_does_not_reach_the_caller(handler):
    """R8.2/R8.4: if operation_completed itself raises, that exception is
    rethrown on the pool (→ the unhandled-exception handler), never to the
    caller of the async void method, which gets None."""
    boom = OSError("operation_completed failed")

    class BrokenCompleted(SC):
        def operation_completed(self):
            raise boom

    @st.async_void
    async def quick():
        return 1

    with installed(BrokenCompleted()):
        try:
            r = quick()
        except OSError as e:
            pytest.fail(f"the caller got {e!r}")
    assert r is None
    assert handler.wait_for(1, timeout=5)
    assert handler.items[0][0] is boom


def test_A8_set_unhandled_exception_handler_returns_previous_and_validates():
    """A8: set_unhandled_exception_handler returns the previous handler;
    None restores the default; a non-callable is a TypeError."""

    def h1(e):
        pass

    def h2(e):
        pass

    prev = st.set_unhandled_exception_handler(h1)
    try:
        assert st.set_unhandled_exception_handler(h2) is h1
        assert st.set_unhandled_exception_handler(None) is h2
        with pytest.raises(TypeError):
            st.set_unhandled_exception_handler(42)
    finally:
        st.set_unhandled_exception_handler(prev)


def test_A8_default_reports_through_unraisablehook_with_method_name(monkeypatch):
    """A8: by default (no handler) the exception is reported through
    sys.unraisablehook, with the method's name."""
    prev = st.set_unhandled_exception_handler(None)
    got = Recorder()
    monkeypatch.setattr(sys, "unraisablehook", got.add)
    err = ZeroDivisionError("in async void")

    class Form:
        @st.async_void
        async def button1_click(self):
            await st.Task.delay(0.01)
            raise err

    try:
        Form().button1_click()
        assert got.wait_for(1)
    finally:
        st.set_unhandled_exception_handler(prev)
    u = got.items[0]
    assert u.exc_value is err
    assert u.exc_type is ZeroDivisionError
    text = f"{u.err_msg or ''} {u.object!r}"
    assert "Form.button1_click" in text


def test_A8_set_unhandled_exception_policy_validates_and_returns_previous():
    """A8: the policy is "report" (default) or "crash"; returns the
    previous one."""
    prev = st.set_unhandled_exception_policy("report")
    try:
        assert prev == "report"
        assert st.set_unhandled_exception_policy("report") == "report"
        with pytest.raises(ValueError):
            st.set_unhandled_exception_policy("explode")
    finally:
        st.set_unhandled_exception_policy(prev)


@pytest.mark.parametrize("context", ["none", "base"])
def test_A8_crash_policy_ends_the_process_with_the_traceback(context):
    """A8/R8.3: set_unhandled_exception_policy("crash") ends the process as
    .NET does: non-zero exit code, the traceback printed, and the main
    thread never gets to finish — with no context, and with a base-class
    context (its post goes to the pool: R8.3, "the same crash")."""
    code = f"CONTEXT = {context!r}\n" + r"""
import threading, sharptask as st
st.set_unhandled_exception_policy("crash")
if CONTEXT == "base":
    st.SynchronizationContext.set_synchronization_context(st.SynchronizationContext())

class Form:
    @st.async_void
    async def button1_click(self):
        await st.Task.delay(0.01)
        raise KeyError("crash-marker")

Form().button1_click()
threading.Event().wait(5)
print("SURVIVED", flush=True)
"""
    r = run_script(code, timeout=20)
    assert r.returncode != 0
    assert "SURVIVED" not in r.stdout
    assert "Traceback (most recent call last)" in r.stderr
    assert "KeyError" in r.stderr and "crash-marker" in r.stderr
    assert "button1_click" in r.stderr
