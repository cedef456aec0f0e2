"""Issue 10 W2b: the call of an async method that completes synchronously
takes a fast path (py_builder.c start_steps: the first send is made there;
no box, no running mark, no step loop unless the body suspends).  These
tests pin the semantics that fast path must keep, for the three method
kinds (Task, ValueTask, pooled ValueTask):

- R6.6 / A6: a context variable set inside a synchronously completing
  method does not leak to the caller (the body runs in a copy of the
  caller's context), also when the body raises, also nested;
- R7.2: a SynchronizationContext the body sets is put back after the call;
- A-rules (A1, A3): an exception raised synchronously faults the returned
  task instead of escaping; a BaseException (KeyboardInterrupt) goes to
  the caller; the value is returned through a completed task;
- D2: with tracing on, a synchronous call still records method.start and
  method.complete (with one id, no suspension in between).

The cost itself is measured by tools/callgrind-w2b.sh and the W2b
benchmark row, never here.
"""

from __future__ import annotations

import contextvars

import pytest

import sharptask as st
from sharptask import _native

var = contextvars.ContextVar("w2b10_var", default="default")

KINDS = {
    "task": st.async_method,
    "value": st.async_value_method,
    "pooled": st.async_value_method(pooling=True),
}


def _result(r):
    """The result of what a call returned (Task or ValueTask)."""
    return r.result if isinstance(r, st.Task) else r.as_task().result


def _faulted(r):
    """(faulted?, the task), the task's exception observed."""
    t = r if isinstance(r, st.Task) else r.as_task()
    _ = t.exception  # observed: no unobserved-exception report at dealloc
    return t.status == st.TaskStatus.FAULTED, t


@pytest.fixture(autouse=True)
def _reset_var():
    tok = var.set("default")
    yield
    var.reset(tok)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_R6_6_var_set_in_sync_method_does_not_leak(kind):
    """issue 10 W2b, R6.6/A6: the body sees the caller's value, its own
    set is visible inside, and the caller still sees its value after the
    synchronous call returns."""
    deco = KINDS[kind]

    @deco
    async def m():
        seen = var.get()
        var.set("inside")
        return seen, var.get()

    var.set("caller")
    assert _result(m()) == ("caller", "inside")
    assert var.get() == "caller"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_R6_6_no_leak_when_the_sync_body_raises(kind):
    """issue 10 W2b, R6.6 and A3: a body that sets a variable and then
    raises synchronously faults its task, and its set does not leak."""
    deco = KINDS[kind]

    @deco
    async def m():
        var.set("inside")
        raise ValueError("boom")

    var.set("caller")
    faulted, t = _faulted(m())
    assert faulted
    assert isinstance(t.exception, BaseException)
    assert "boom" in repr(t.exception)
    assert var.get() == "caller"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_R6_6_nested_sync_calls_in_an_async_method(kind):
    """issue 10 W2b, R6.6: inside an async method (the W2 loop), each
    awaited synchronous call runs in a copy of the outer step's context:
    what the inner sets never reaches the outer method, what the outer set
    before the call is seen inside."""
    deco = KINDS[kind]

    @deco
    async def inner(i):
        seen = var.get()
        var.set(f"inner{i}")
        return seen

    @st.async_method
    async def outer():
        seen = []
        for i in range(5):
            var.set(f"outer{i}")
            seen.append(await inner(i))
            seen.append(var.get())
        return seen

    assert outer().result == [x for i in range(5)
                              for x in (f"outer{i}", f"outer{i}")]
    assert var.get() == "default"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_R7_2_sync_context_set_in_body_is_restored(kind):
    """issue 10 W2b, R7.2: a SynchronizationContext set by a body that
    completes synchronously (or raises) is replaced by the caller's when
    the call returns, as .NET's Start restores it after MoveNext."""
    deco = KINDS[kind]
    mine = st.SynchronizationContext()

    @deco
    async def sets(fail):
        st.SynchronizationContext.set_synchronization_context(mine)
        if fail:
            raise RuntimeError("after set")
        return st.SynchronizationContext.current() is mine

    before = st.SynchronizationContext.current()
    try:
        assert _result(sets(False)) is True
        assert st.SynchronizationContext.current() is before
        faulted, _ = _faulted(sets(True))
        assert faulted
        assert st.SynchronizationContext.current() is before
    finally:
        st.SynchronizationContext.set_synchronization_context(before)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_A1_sync_result_is_a_completed_task(kind):
    """issue 10 W2b, A1/T12: a body that returns at once gives a completed
    task with its value (cached or not), awaitable in another method."""
    deco = KINDS[kind]

    @deco
    async def value(x):
        return x

    big = object()
    for x in (None, True, 3, big, "s"):
        r = value(x)
        t = r if isinstance(r, st.Task) else r.as_task()
        assert t.status == st.TaskStatus.RAN_TO_COMPLETION
        assert t.result is x

    @st.async_method
    async def caller():
        return [await value(x) for x in (None, 7, big)]

    assert caller().result == [None, 7, big]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_A3_base_exception_goes_to_the_caller(kind):
    """issue 10 W2b, A3: a KeyboardInterrupt raised synchronously by the
    body is not captured in the task: it propagates from the call, and the
    caller's context variable is intact."""
    deco = KINDS[kind]

    @deco
    async def m():
        var.set("inside")
        raise KeyboardInterrupt

    var.set("caller")
    with pytest.raises(KeyboardInterrupt):
        m()
    assert var.get() == "caller"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_D2_sync_call_still_traced(kind):
    """issue 10 W2b, D2: with tracing on, a call that completes
    synchronously records method.start then method.complete with one id
    and nothing suspended between them, on the calling thread."""
    deco = KINDS[kind]

    @deco
    async def m():
        return 1

    with st.trace() as tr:
        assert _result(m()) == 1
    mine = [e for e in tr.events if e.name.startswith("method.")]
    assert [e.name for e in mine] == ["method.start", "method.complete"]
    start, complete = mine
    assert start.task_id and start.task_id == complete.task_id
    assert start.thread_id == complete.thread_id
    assert start.ts_ns <= complete.ts_ns


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_D2_sync_raise_still_traced(kind):
    """issue 10 W2b, D2: the same for a body that raises synchronously."""
    deco = KINDS[kind]

    @deco
    async def m():
        raise ValueError("x")

    with st.trace() as tr:
        faulted, _ = _faulted(m())
    assert faulted
    names = [e.name for e in tr.events if e.name.startswith("method.")]
    assert names == ["method.start", "method.complete"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_issue10_W2b_suspending_call_still_takes_the_slow_path(kind):
    """issue 10 W2b, A1/R6.6: a body that awaits something incomplete after
    the fast first send still gets its box (a pending task that completes
    later with the value) and keeps its own context across the suspension
    while the caller's stays untouched."""
    deco = KINDS[kind]
    tcs = st.TaskCompletionSource()

    @deco
    async def m():
        var.set("inside")
        v = await tcs.task
        return v, var.get()

    var.set("caller")
    r = m()
    t = r if isinstance(r, st.Task) else r.as_task()
    assert not t.is_completed
    assert var.get() == "caller"
    tcs.set_result(5)
    assert t.wait(10)
    assert t.result == (5, "inside")
    assert var.get() == "caller"


def test_issue10_W2b_body_returning_a_task_is_passed_through():
    """issue 10 W2b, A1: the plain-function fast call keeps the check of
    what the body returned: an @async_method around a non-async function
    that returns a Task passes it through; anything else is a TypeError.
    (AsyncMethod itself: @async_method refuses a non-async def earlier.)"""
    done = st.Task.from_result(4)

    def not_async():
        return done

    assert _native.AsyncMethod(not_async)() is done

    def bad():
        return 3

    with pytest.raises(TypeError, match="must return a coroutine"):
        _native.AsyncMethod(bad)()


def test_issue10_W2b_callable_object_method_still_called():
    """issue 10 W2b: an @async_method around a callable that is not a plain
    function (a functools.partial, a bound method) is called the general
    way and works the same."""
    import functools

    async def add(a, b):
        return a + b

    assert st.async_method(functools.partial(add, 1))(2).result == 3

    class C:
        async def m(self, x):
            return x * 2

    assert st.async_method(C().m)(4).result == 8
