"""A6: contextvars are the ExecutionContext (SPEC §3 A6, reference R6.6,
R7.3)."""

from __future__ import annotations

import contextvars
import threading

import pytest

import sharptask as st
from conftest import Recorder, join_ok, start_thread

var = contextvars.ContextVar("sharptask_test_var", default="default")
other = contextvars.ContextVar("sharptask_test_other", default="default")

TCO = st.TaskContinuationOptions


@pytest.fixture(autouse=True)
def _reset_vars():
    """Each test starts from the default values in the main thread's context."""
    tok1, tok2 = var.set("default"), other.set("default")
    yield
    var.reset(tok1)
    other.reset(tok2)


def test_A6_change_before_first_await_invisible_to_caller():
    """A6/R6.6: a change made by an async method that completes synchronously
    is not visible to the caller after the call returns."""

    @st.async_method
    async def m():
        var.set("inside")
        return var.get()

    var.set("caller")
    t = m()
    assert t.result == "inside"
    assert var.get() == "caller"


def test_A6_change_invisible_to_caller_when_method_raises():
    """A6/R6.6: the caller's context is restored when the synchronous part
    ends with an exception too."""

    @st.async_method
    async def m():
        var.set("inside")
        raise ValueError("x")

    var.set("caller")
    t = m()
    assert var.get() == "caller"
    assert t.is_faulted
    _ = t.exception


def test_A6_change_invisible_to_caller_after_suspension():
    """A6/R6.6: a change made before the first suspension does not leak to the
    caller when the call returns the incomplete task."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def m():
        var.set("inside")
        await src.task
        return var.get()

    var.set("caller")
    t = m()
    assert var.get() == "caller"
    src.set_result(None)  # resumes inline on this thread (T7) ...
    assert var.get() == "caller"  # ... and still does not leak
    assert t.result == "inside"


def test_A6_caller_values_flow_into_method():
    """A6: the caller's values are visible inside the method."""

    @st.async_method
    async def m():
        return var.get()

    var.set("from-caller")
    assert m().result == "from-caller"


@pytest.mark.parametrize("completer", ["main", "thread", "pool"])
def test_A6_change_persists_across_own_awaits(completer):
    """A6/R6.6/R7.3: a change persists across the method's own awaits, whatever
    thread resumes it, and the completing thread's own values do not leak in."""
    src = st.TaskCompletionSource()
    seen = []

    @st.async_method
    async def m():
        var.set("mine")
        await src.task
        seen.append(var.get())
        other.set("after-first-await")
        await st.Task.yield_()
        seen.append((var.get(), other.get()))
        await st.Task.delay(0.005)
        seen.append((var.get(), other.get()))
        return "done"

    t = m()

    def complete():
        var.set("completer")
        src.set_result(None)
        # the resumed method's set of `other` must not leak into the completer
        return (var.get(), other.get())

    if completer == "main":
        assert complete() == ("completer", "default")
    elif completer == "thread":
        out = []
        join_ok(start_thread(lambda: out.append(contextvars.Context().run(complete))))
        assert out == [("completer", "default")]
    else:
        assert st.Task.run(complete).result == ("completer", "default")
    assert t.result == "done"
    assert seen == ["mine", ("mine", "after-first-await"), ("mine", "after-first-await")]


def test_A6_callee_changes_do_not_flow_back_to_awaiting_caller():
    """A6/R6.6: changes made in a callee async method never flow back up to
    the awaiting caller (before or after suspension)."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def callee():
        var.set("callee")
        await src.task
        var.set("callee-after")
        return 1

    @st.async_method
    async def caller():
        var.set("caller")
        await callee()
        return var.get()

    t = caller()
    src.set_result(None)
    assert t.result == "caller"
    assert var.get() == "default"


def test_A6_flows_into_task_run():
    """A6: the context flows into Task.run work on a pool thread."""
    var.set("to-pool")
    assert st.Task.run(var.get).result == "to-pool"


def test_A6_task_run_changes_do_not_leak_back_or_between_items():
    """A6: a change inside a Task.run item is not visible to the caller nor to
    a later item."""
    var.set("base")

    def change():
        var.set("changed-in-pool")
        return var.get()

    assert st.Task.run(change).result == "changed-in-pool"
    assert var.get() == "base"
    results = [st.Task.run(var.get) for _ in range(20)]
    assert [r.result for r in results] == ["base"] * 20


def test_A6_flows_into_continue_with():
    """A6: continue_with continuations run in the context captured when they
    were registered, not the completing thread's."""
    src = st.TaskCompletionSource()
    var.set("registrar")
    c1 = src.task.continue_with(lambda a: var.get())
    c2 = src.task.continue_with(lambda a: var.get(), options=TCO.EXECUTE_SYNCHRONOUSLY)
    var.set("registrar-later")

    def complete():
        var.set("completer")
        src.set_result(None)
        return var.get()

    out = []
    join_ok(start_thread(lambda: out.append(contextvars.Context().run(complete))))
    assert out == ["completer"]
    assert c1.result == "registrar"
    assert c2.result == "registrar"


def test_A6_execute_synchronously_continuation_does_not_leak_into_completer():
    """A6: an inline (EXECUTE_SYNCHRONOUSLY) continuation's changes stay out of
    the completing thread's context."""
    src = st.TaskCompletionSource()

    def cont(a):
        var.set("continuation")

    src.task.continue_with(cont, options=TCO.EXECUTE_SYNCHRONOUSLY)
    var.set("completer")
    src.set_result(None)
    assert var.get() == "completer"


def test_A6_flows_into_awaiter_on_completed():
    """A6: awaiter.on_completed flows the context; unsafe_on_completed is the
    unsafe_ form and need not (only on_completed is checked here)."""
    src = st.TaskCompletionSource()
    rec = Recorder()
    var.set("registrar")
    src.task.get_awaiter().on_completed(lambda: rec.add(var.get()))
    var.set("after")

    def complete():
        var.set("completer")
        src.set_result(None)

    join_ok(start_thread(lambda: contextvars.Context().run(complete)))
    assert rec.wait_for(1)
    assert rec.items == ["registrar"]


def test_A6_flows_into_thread_pool_work_items():
    """A6/P1: ThreadPool.queue_user_work_item flows the context."""
    rec = Recorder()
    var.set("queued")
    st.ThreadPool.queue_user_work_item(lambda s: rec.add((s, var.get())), "st")
    assert rec.wait_for(1)
    assert rec.items == [("st", "queued")]


def test_A6_unsafe_queue_user_work_item_does_not_flow():
    """A6/P1: unsafe_queue_user_work_item does not flow the context."""
    if not hasattr(st.ThreadPool, "unsafe_queue_user_work_item"):
        pytest.skip("unsafe_queue_user_work_item not provided yet")
    rec = Recorder()
    var.set("queued")
    st.ThreadPool.unsafe_queue_user_work_item(lambda s: rec.add(var.get()), None)
    assert rec.wait_for(1)
    assert rec.items == ["default"]


def test_A6_flows_into_run_async_method():
    """A6: Task.run of an async method: the method sees the caller's values
    across its awaits on pool threads."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def m():
        before = var.get()
        await src.task
        return (before, var.get())

    var.set("caller")
    t = st.Task.run(m)
    threading.Timer(0.02, src.set_result, (None,)).start()
    assert t.result == ("caller", "caller")


def test_A6_concurrent_methods_keep_their_own_values():
    """A6: many concurrent async methods, resumed on pool threads, each keep
    their own value."""
    n = 50
    srcs = [st.TaskCompletionSource() for _ in range(n)]

    @st.async_method
    async def m(i):
        var.set(i)
        await srcs[i].task
        await st.Task.yield_()
        return var.get()

    tasks = [m(i) for i in range(n)]
    assert var.get() == "default"
    for s in reversed(srcs):
        st.Task.run(s.set_result, None)
    assert [t.result for t in tasks] == list(range(n))
