"""The sync-over-async deadlock and its detector: SPEC C5, C6 (with C2, C8
and T6); reference §9 (R9.4, R9.5) and issue 4 ("no false positives: test
the near-misses").

The classic deadlock (R9.4): code on a thread that pumps a single-threaded
context blocks (.result / wait() / get_awaiter().get_result()) on an async
method that awaits an incomplete task with the context captured.  With
``set_deadlock_detection("raise")`` (the default) that wait raises
DeadlockError; "warn" warns and keeps waiting; "off" hangs (Ctrl-C still
works).  Waits that would complete are never reported.

Tests that must hang ("warn", "off") run in a subprocess with a timeout and
are ended by SIGINT from a timer thread.
"""

from __future__ import annotations

import sys
import threading

import pytest

import sharptask as st
from conftest import join_ok, make_cts, run_script, start_thread

SC = st.SynchronizationContext


@pytest.fixture(autouse=True)
def _restore_detection_mode():
    prev = st.get_deadlock_detection()
    yield
    st.set_deadlock_detection(prev)


def find_deadlock(exc):
    """The DeadlockError in exc or among its inner exceptions, or None."""
    if isinstance(exc, st.DeadlockError):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = find_deadlock(inner)
        if found is not None:
            return found
    return None


def assert_fix_advice(msg):
    """C6: the message names the fixes."""
    low = msg.lower()
    assert "await" in low, msg  # await all the way up
    assert "configure_await(false)" in low, msg
    assert "no context" in low or "without a context" in low, msg


def pump_on_named_thread(ctx, fn, name):
    """Run ctx.run(fn) on a new thread called ``name``; returns the outcome
    as ("ok", value) or ("raised", exc)."""
    out = []

    def body():
        try:
            out.append(("ok", ctx.run(fn)))
        except BaseException as e:  # noqa: BLE001 - inspected by the test
            out.append(("raised", e))

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), f"{name} is still blocked: the deadlock was not detected"
    return out[0]


# ---------------------------------------------------------------------------
# C6 the switch
# ---------------------------------------------------------------------------


def test_C6_default_mode_is_raise():
    """C6: "raise" is the default (fresh interpreter)."""
    r = run_script("import sharptask as st; print(st.get_deadlock_detection())",
                   timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "raise"


def test_C6_set_returns_previous_and_validates():
    """C6: set_deadlock_detection returns the previous mode; anything but
    "raise" / "warn" / "off" is refused."""
    assert st.set_deadlock_detection("warn") == "raise"
    assert st.get_deadlock_detection() == "warn"
    assert st.set_deadlock_detection("off") == "warn"
    assert st.set_deadlock_detection("raise") == "off"
    with pytest.raises(ValueError):
        st.set_deadlock_detection("loud")
    with pytest.raises(TypeError):
        st.set_deadlock_detection(1)
    assert st.get_deadlock_detection() == "raise"


def test_C6_DeadlockError_is_an_InvalidOperationError():
    """§0: DeadlockError(InvalidOperationError)."""
    assert issubclass(st.DeadlockError, st.InvalidOperationError)
    assert issubclass(st.DeadlockError, RuntimeError)


# ---------------------------------------------------------------------------
# C5/C6 the classic deadlock on a SingleThreadSynchronizationContext
# ---------------------------------------------------------------------------


BLOCKERS = {
    "result": lambda t: t.result,
    "wait": lambda t: t.wait(),
    "get_result": lambda t: t.get_awaiter().get_result(),
}


@pytest.mark.parametrize("block", sorted(BLOCKERS))
def test_C5_C6_classic_deadlock_on_single_thread_context_raises(block):
    """C5/C6 (R9.4): the article's code on a pumping thread: a handler blocks
    on GetJsonAsync, which awaits an incomplete request with the context
    captured → DeadlockError at the block (the request never completes, so
    only the detector can end the wait), naming the blocked thread, the
    context, the async method by __qualname__, and the fixes."""
    request = st.TaskCompletionSource()  # the HTTP response that is pending

    @st.async_method
    async def get_json_async(uri):
        text = await request.task
        return {"uri": uri, "body": text}

    def button1_click():
        return BLOCKERS[block](get_json_async("http://example"))

    ctx = st.SingleThreadSynchronizationContext()
    kind, exc = pump_on_named_thread(ctx, button1_click, "C5-pump-thread")
    request.set_result("{}")
    assert kind == "raised"
    assert isinstance(exc, st.DeadlockError), repr(exc)
    msg = str(exc)
    assert "C5-pump-thread" in msg
    assert "SingleThreadSynchronizationContext" in msg
    assert get_json_async.__qualname__ in msg
    assert_fix_advice(msg)


def test_C6_message_names_every_async_method_of_the_chain():
    """C6: the message names *the chain* of pending async methods that needs
    the blocked thread: with the handler blocking on outer(), which awaits
    middle(), which awaits leaf(), which awaits the request, all three
    resume on the context and all three are named (and the
    configure_await(False) advice must cover all three: fixing only the
    outermost does not end the deadlock)."""
    request = st.TaskCompletionSource()

    class Api:
        @st.async_method
        async def leaf(self):
            return await request.task

        @st.async_method
        async def middle(self):
            return await self.leaf()

        @st.async_method
        async def outer(self):
            return await self.middle()

    api = Api()
    ctx = st.SingleThreadSynchronizationContext()
    kind, exc = pump_on_named_thread(ctx, lambda: api.outer().result, "C6-chain")
    request.set_result(1)
    assert kind == "raised" and isinstance(exc, st.DeadlockError), repr(exc)
    msg = str(exc)
    for name in ("Api.outer", "Api.middle", "Api.leaf"):
        assert name in msg, f"{name} missing from the chain:\n{msg}"


def test_C5_configure_await_false_on_every_await_completes():
    """C5 near-miss #1 (R9.5): the same chain with configure_await(False) on
    every await completes on the pool and the blocked wait returns; no
    DeadlockError."""

    @st.async_method
    async def leaf():
        await st.Task.delay(0.02).configure_await(False)
        return 41

    @st.async_method
    async def get_json_async():
        v = await leaf().configure_await(False)
        return v + 1

    ctx = st.SingleThreadSynchronizationContext()
    kind, value = pump_on_named_thread(ctx, lambda: get_json_async().result,
                                       "C5-fixed")
    assert (kind, value) == ("ok", 42)


def test_C5_C6_R9_5_configure_await_false_on_first_await_only_is_not_enough():
    """R9.5: configure_await(False) on an already-completed task does not
    suspend, so the method is still on the context thread and a later plain
    await captures the context again → still a deadlock, detected."""
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        await st.Task.from_result(None).configure_await(False)  # no effect
        return await request.task  # captures the context again

    ctx = st.SingleThreadSynchronizationContext()
    kind, exc = pump_on_named_thread(ctx, lambda: get_json_async().result,
                                     "C5-first-only")
    request.set_result(1)
    assert kind == "raised" and isinstance(exc, st.DeadlockError), repr(exc)
    assert get_json_async.__qualname__ in str(exc)


def test_C6_run_stays_usable_after_a_detected_deadlock():
    """C6: after the DeadlockError the context can be run again and the
    abandoned async method does not poison it."""
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    ctx = st.SingleThreadSynchronizationContext()
    with pytest.raises(st.DeadlockError):
        ctx.run(lambda: get_json_async().result)
    assert SC.current() is None

    async def main():
        await st.Task.delay(0.01)
        return "pumping again"

    assert ctx.run(main) == "pumping again"
    request.set_result(None)


# ---------------------------------------------------------------------------
# C5/C6 on a UiThread
# ---------------------------------------------------------------------------


def test_C5_C6_classic_deadlock_on_ui_thread_raises():
    """C5/C6 on the dispatcher model: a click handler invoked on a UiThread
    blocks on an async method that awaits with the UI context captured →
    DeadlockError (invoke re-raises it) naming the UI thread, the context
    and the method; the UI thread keeps working afterwards."""
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    def button1_click():
        return get_json_async().result

    with st.UiThread(name="C5-GuiThread") as ui:
        with pytest.raises(st.DeadlockError) as ei:
            ui.invoke(button1_click)
        msg = str(ei.value)
        assert "C5-GuiThread" in msg
        assert "SingleThreadSynchronizationContext" in msg
        assert get_json_async.__qualname__ in msg
        assert_fix_advice(msg)
        request.set_result(1)
        assert ui.invoke(lambda: "responsive") == "responsive"


def test_C5_ui_thread_configure_await_false_completes():
    """C5 near-miss #1 on a UiThread: configure_await(False) everywhere."""

    @st.async_method
    async def get_json_async():
        await st.Task.delay(0.02).configure_await(False)
        return threading.get_ident()

    with st.UiThread(name="C5-ui-fixed") as ui:
        ident = ui.invoke(lambda: get_json_async().result)
        assert ident != ui.ident


def test_C6_cross_thread_ui_blocked_on_task_run_that_invokes_ui():
    """C6: the cross-thread cycle: the UI thread blocks on Task.run(work)
    and work calls ui.invoke (which needs the UI thread) → DeadlockError
    instead of two threads hanging forever.  The cycle closes at work's
    block, so the error surfaces there and reaches the UI handler inside
    the run task's AggregateError; it names the UI thread and its
    context."""
    with st.UiThread(name="C6-GuiThread") as ui:

        def work():
            return ui.invoke(lambda: "from the UI thread")

        def button_click():
            return st.Task.run(work).result

        with pytest.raises(BaseException) as ei:
            ui.invoke(button_click)
        dl = find_deadlock(ei.value)
        assert dl is not None, f"expected a DeadlockError, got {ei.value!r}"
        msg = str(dl)
        assert "C6-GuiThread" in msg
        assert "SingleThreadSynchronizationContext" in msg
        assert_fix_advice(msg)
        assert ui.invoke(lambda: "responsive") == "responsive"


def test_C6_ui_thread_blocking_on_its_own_begin_invoke_raises():
    """C6: the UI thread blocking on work it queued to itself
    (begin_invoke(...).result) can never complete → DeadlockError."""
    with st.UiThread(name="C6-self-GuiThread") as ui:
        with pytest.raises(st.DeadlockError) as ei:
            ui.invoke(lambda: ui.begin_invoke(lambda: 1).result)
        assert "C6-self-GuiThread" in str(ei.value)
        assert ui.invoke(lambda: 2) == 2


def test_C6_cross_thread_via_context_send():
    """C6: the cross-thread cycle through send: the UI thread blocks on
    Task.run(work) and work calls ui.context.send (which runs on, and waits
    for, the UI thread) → DeadlockError somewhere in the chain, not a
    hang."""
    with st.UiThread(name="C6-send-GuiThread") as ui:

        def work():
            return ui.context.send(lambda s: s, "sent")

        with pytest.raises(BaseException) as ei:
            ui.invoke(lambda: st.Task.run(work).result)
        dl = find_deadlock(ei.value)
        assert dl is not None, f"expected a DeadlockError, got {ei.value!r}"
        assert "C6-send-GuiThread" in str(dl)


def test_C6_deadlock_through_when_all_is_detected():
    """C6: when_all waits for every input, so blocking on when_all of an
    async method that needs the blocked thread is the same deadlock."""
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    def handler():
        return st.Task.when_all(get_json_async(), st.Task.from_result(1)).result

    ctx = st.SingleThreadSynchronizationContext()
    kind, exc = pump_on_named_thread(ctx, handler, "C6-when-all")
    request.set_result(0)
    assert kind == "raised" and isinstance(exc, st.DeadlockError), repr(exc)
    assert get_json_async.__qualname__ in str(exc)


def test_C6_near_miss_continuation_with_token_canceled_by_another_thread():
    """C6 near-miss (R3.10): a continue_with continuation with a
    cancellation token is canceled as soon as the token fires, *before* its
    antecedent completes.  Blocking on it on the pump thread while the
    antecedent needs that thread is therefore not a deadlock: another
    thread's cancel() ends the wait (AggregateError of TaskCanceledError).
    It must not be reported as DeadlockError."""
    cts = make_cts()
    request = st.TaskCompletionSource()
    about_to_wait = threading.Event()

    @st.async_method
    async def get_json_async():
        return await request.task

    def canceller():
        about_to_wait.wait(10)
        st.Task.delay(0.1).wait()
        cts.cancel()

    def handler():
        cont = get_json_async().continue_with(lambda t: "ran",
                                              cancellation_token=cts.token)
        about_to_wait.set()
        try:
            return cont.result
        except (st.AggregateError, st.DeadlockError) as e:
            return e

    t = start_thread(canceller)
    ctx = st.SingleThreadSynchronizationContext()
    try:
        outcome = ctx.run(handler)
    finally:
        join_ok(t)
        request.set_result(None)
    assert not isinstance(outcome, st.DeadlockError), (
        "false positive: the wait completed once the token fired\n" + str(outcome)
    )
    assert isinstance(outcome, st.AggregateError), repr(outcome)
    assert isinstance(outcome.inner_exception, st.TaskCanceledError)


def test_C6_lazy_cancellation_continuation_still_deadlocks():
    """C6 (R3.10): with LAZY_CANCELLATION the continuation never completes
    before its antecedent, so the same wait is a real deadlock → detected."""
    cts = make_cts()
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    def handler():
        cont = get_json_async().continue_with(
            lambda t: "ran", cancellation_token=cts.token,
            options=st.TaskContinuationOptions.LAZY_CANCELLATION)
        return cont.result

    ctx = st.SingleThreadSynchronizationContext()
    kind, exc = pump_on_named_thread(ctx, handler, "C6-lazy")
    request.set_result(None)
    assert kind == "raised" and isinstance(exc, st.DeadlockError), repr(exc)


def test_C6_cycle_closed_later_wakes_the_blocked_ui_thread():
    """C6 "at the post that closes it": the UI thread is already blocked on
    Task.run(async work) when work (on the pool, no context) awaits
    ui.begin_invoke(...) — only then does the cycle exist; the blocked UI
    thread is woken and raises DeadlockError naming work."""
    with st.UiThread(name="C6-late-GuiThread") as ui:

        async def work():
            return await ui.begin_invoke(lambda: 7)

        def button_click():
            return st.Task.run(work).result

        with pytest.raises(st.DeadlockError) as ei:
            ui.invoke(button_click)
        msg = str(ei.value)
        assert "C6-late-GuiThread" in msg
        assert work.__qualname__ in msg
        assert ui.invoke(lambda: 1) == 1


# ---------------------------------------------------------------------------
# C8 the ASP.NET request context
# ---------------------------------------------------------------------------


def test_C8_C6_exclusive_context_deadlock_in_send_raises():
    """C8/C6: a request handler holding an ExclusiveSynchronizationContext
    (via send) blocks on an async method whose continuation needs the
    context → DeadlockError naming the context and the method."""
    ctx = st.ExclusiveSynchronizationContext()
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    with pytest.raises(st.DeadlockError) as ei:
        ctx.send(lambda _: get_json_async().result)
    request.set_result(1)
    msg = str(ei.value)
    assert "ExclusiveSynchronizationContext" in msg
    assert get_json_async.__qualname__ in msg
    assert_fix_advice(msg)


def test_C8_C6_exclusive_context_deadlock_in_posted_callback_raises():
    """C8/C6: the same inside a posted callback (running on a pool thread
    that holds the context)."""
    ctx = st.ExclusiveSynchronizationContext()
    request = st.TaskCompletionSource()
    outcome = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    def handler(_):
        try:
            outcome.set_result(get_json_async().result)
        except BaseException as e:  # noqa: BLE001
            outcome.set_result(e)

    ctx.post(handler)
    exc = outcome.task.result
    request.set_result(1)
    assert isinstance(exc, st.DeadlockError), repr(exc)
    assert "ExclusiveSynchronizationContext" in str(exc)


def test_C8_exclusive_context_configure_await_false_completes():
    """C8 near-miss: configure_await(False) in the library code completes
    inside the request context."""
    ctx = st.ExclusiveSynchronizationContext()

    @st.async_method
    async def get_json_async():
        await st.Task.delay(0.02).configure_await(False)
        return "json"

    assert ctx.send(lambda _: get_json_async().result) == "json"


# ---------------------------------------------------------------------------
# C6 no false positives: the near-misses
# ---------------------------------------------------------------------------


def test_C6_near_miss_task_completing_on_the_pool():
    """C6 near-miss #2: blocking on the UI thread on work that completes on
    the pool (Task.run of a plain function, and Task.run of the async method
    — the documented fix: start it on a thread with no context)."""
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    with st.UiThread(name="C6-pool") as ui:
        assert ui.invoke(lambda: st.Task.run(lambda: 6 * 7).result) == 42
        completer = start_thread(lambda: (st.Task.delay(0.05).wait(),
                                          request.set_result("json")))
        assert ui.invoke(lambda: st.Task.run(get_json_async).result) == "json"
        join_ok(completer)


def test_C6_near_miss_tcs_completed_by_another_thread_while_ui_waits():
    """C6 near-miss #3: the UI thread waits on a TaskCompletionSource that
    another thread completes while it waits: never reported."""
    tcs = st.TaskCompletionSource()
    about_to_wait = threading.Event()

    def completer():
        about_to_wait.wait(10)
        st.Task.delay(0.1).wait()  # let the UI thread reach its block
        tcs.set_result("done")

    with st.UiThread(name="C6-tcs") as ui:
        t = start_thread(completer)

        def handler():
            about_to_wait.set()
            return tcs.task.result

        assert ui.invoke(handler) == "done"
        join_ok(t)


def test_C6_near_miss_tcs_through_async_method_with_configure_await_false():
    """C6 near-miss #3 through an async method: it awaits the TCS with
    configure_await(False), another thread completes the TCS."""
    tcs = st.TaskCompletionSource()
    about_to_wait = threading.Event()

    @st.async_method
    async def read():
        v = await tcs.task.configure_await(False)
        return v * 2

    def completer():
        about_to_wait.wait(10)
        st.Task.delay(0.1).wait()
        tcs.set_result(21)

    ctx = st.SingleThreadSynchronizationContext()
    t = start_thread(completer)

    def handler():
        about_to_wait.set()
        return read().get_awaiter().get_result()

    assert ctx.run(handler) == 42
    join_ok(t)


def test_C6_near_miss_wait_with_finite_timeout():
    """C6 near-miss #4: a wait with a finite timeout always ends (it times
    out), so it is never reported; afterwards the pump resumes the method."""
    request = st.TaskCompletionSource()

    @st.async_method
    async def get_json_async():
        return await request.task

    def handler():
        t = get_json_async()
        waited = t.wait(0.1)
        request.set_result("json")  # posted to the context, runs once we pump
        return waited, t

    ctx = st.SingleThreadSynchronizationContext()
    waited, t = ctx.run(handler)
    assert waited is False
    assert t.wait(10)
    assert t.result == "json"


def test_C6_near_miss_finite_timeout_inside_the_cross_thread_chain():
    """C6 near-miss: the UI thread blocks (forever) on Task.run(work) whose
    wait for the UI thread has a finite timeout: the chain can end, so no
    DeadlockError; work times out and the UI thread gets its value."""
    with st.UiThread(name="C6-finite") as ui:

        def work():
            return ui.begin_invoke(lambda: 5).wait(0.2)

        assert ui.invoke(lambda: st.Task.run(work).result) is False
        assert ui.invoke(lambda: "ok") == "ok"


def test_C6_near_miss_base_context_cannot_deadlock():
    """R9.5: a context whose post runs work on any pool thread (the base
    class, or a Python subclass posting to the pool) cannot deadlock this
    way: the blocked wait completes."""

    class PoolPosting(SC):
        def post(self, callback, state=None):
            st.ThreadPool.queue_user_work_item(lambda: callback(state))

    @st.async_method
    async def get_json_async():
        await st.Task.delay(0.02)
        return SC.current()

    for ctx in (SC(), PoolPosting()):
        prev = SC.current()
        SC.set_synchronization_context(ctx)
        try:
            assert get_json_async().result is None  # the blocking wait ends
        finally:
            SC.set_synchronization_context(prev)


def test_C6_near_miss_blocking_on_a_completed_task():
    """C6: blocking on an already completed async method on the pump thread
    is fine."""

    @st.async_method
    async def immediate():
        return 5

    ctx = st.SingleThreadSynchronizationContext()
    assert ctx.run(lambda: immediate().result) == 5


def test_C6_near_miss_waiting_from_another_thread_while_the_pump_runs():
    """C6: a thread with no context blocking on a method that resumes on a
    context pumped by another (free) thread is not a deadlock."""
    gate = st.TaskCompletionSource()
    results = []

    with st.UiThread(name="C6-free-pump") as ui:

        @st.async_method
        async def on_ui():
            await gate.task
            return threading.get_ident()

        t = ui.invoke(on_ui)  # suspended, will resume on the UI thread
        start_thread(lambda: (st.Task.delay(0.05).wait(), gate.set_result(None)))
        results.append(t.result)  # main thread blocks; the UI thread is free
        assert results == [ui.ident]


# ---------------------------------------------------------------------------
# C6 "warn" and "off": in subprocesses, ended by SIGINT
# ---------------------------------------------------------------------------

_SCRIPT_PRELUDE = r"""
import os, signal, sys, threading, time, warnings
import sharptask as st

request = st.TaskCompletionSource()

class Service:
    @st.async_method
    async def get_json_async(self):
        return await request.task

svc = Service()
holder = []
entering = threading.Event()

def button1_click():
    t = svc.get_json_async()
    holder.append(t)
    entering.set()
    try:
        t.result
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        return "interrupted"
    except st.DeadlockError:
        print("DEADLOCKERROR", flush=True)
        return "raised"
    print("RETURNED", flush=True)
    return "returned"
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill")
def test_C6_warn_mode_warns_naming_the_chain_and_keeps_waiting():
    """C6 "warn": a RuntimeWarning whose text names the chain (the method's
    __qualname__) and the context, then the wait goes on (still blocked well
    after the warning), until Ctrl-C ends it (T6)."""
    code = _SCRIPT_PRELUDE + r"""
st.set_deadlock_detection("warn")
warned = threading.Event()
def show(message, category, filename, lineno, file=None, line=None):
    print("WARNING", category.__name__, str(message).replace("\n", " | "), flush=True)
    warned.set()
warnings.showwarning = show
warnings.simplefilter("always")

def killer():
    if not warned.wait(10):
        print("NO WARNING", flush=True)
    for _ in range(6):               # ~0.3 s after the warning: still waiting?
        time.sleep(0.05)
    print("STILL_WAITING", not holder[0].is_completed, flush=True)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=killer, daemon=True).start()
ctx = st.SingleThreadSynchronizationContext()
print("OUTCOME", ctx.run(button1_click), flush=True)
"""
    r = run_script(code, timeout=20)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    warn_lines = [l for l in out.splitlines() if l.startswith("WARNING")]
    assert len(warn_lines) == 1, out
    assert "RuntimeWarning" in warn_lines[0]
    assert "Service.get_json_async" in warn_lines[0]
    assert "SingleThreadSynchronizationContext" in warn_lines[0]
    assert "STILL_WAITING True" in out
    assert "INTERRUPTED" in out
    assert "DEADLOCKERROR" not in out
    assert "OUTCOME interrupted" in out


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill")
def test_C5_C6_off_mode_hangs_and_ctrl_c_ends_it():
    """C5/C6 "off": the classic deadlock just hangs (no error, no warning);
    Ctrl-C (SIGINT) still ends the wait with KeyboardInterrupt (T6)."""
    code = _SCRIPT_PRELUDE + r"""
st.set_deadlock_detection("off")
warnings.simplefilter("error")

def killer():
    entering.wait(10)
    for _ in range(10):              # blocked for ~0.5 s: still hanging?
        time.sleep(0.05)
    print("STILL_WAITING", not holder[0].is_completed, flush=True)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=killer, daemon=True).start()
ctx = st.SingleThreadSynchronizationContext()
print("OUTCOME", ctx.run(button1_click), flush=True)
"""
    r = run_script(code, timeout=20)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "STILL_WAITING True" in out
    assert "INTERRUPTED" in out
    assert "DEADLOCKERROR" not in out and "Warning" not in r.stderr
    assert "OUTCOME interrupted" in out


def test_C2_C5_deadlocked_ui_thread_does_not_hold_up_exit():
    """C2/C5: a UiThread stuck in the deadlock (detection off) never holds up
    interpreter exit; the exit code is kept."""
    code = _SCRIPT_PRELUDE + r"""
st.set_deadlock_detection("off")
ui = st.UiThread(name="stuck")
ui.begin_invoke(button1_click)
entering.wait(10)
print("LEAVING", flush=True)
sys.exit(3)
"""
    r = run_script(code, timeout=20)
    assert "LEAVING" in r.stdout, r.stderr
    assert r.returncode == 3, r.stderr
