"""Task rules T1–T10 and T12 (SPEC §1), with the .NET details of the
reference (R1.x, R2.x, R3.x, R5.x, R6.7).

Blocking waits, timeouts and Ctrl-C (T3/T4/T6) are covered in depth in
test_waits.py; unobserved exceptions (T11) in test_unobserved.py.
"""

from __future__ import annotations

import datetime
import threading
import time

import pytest

import sharptask as st
from conftest import (
    MAIN_IDENT,
    Recorder,
    first_cause,
    join_ok,
    make_canceled_token,
    make_cts,
    observe,
    start_thread,
)

TS = st.TaskStatus
TCO = st.TaskContinuationOptions
TCRO = st.TaskCreationOptions


def faulted(*excs):
    tcs = st.TaskCompletionSource()
    tcs.set_exception(list(excs) if len(excs) != 1 else excs[0])
    return tcs.task


def canceled():
    tcs = st.TaskCompletionSource()
    tcs.set_canceled()
    return tcs.task


def completed(value):
    tcs = st.TaskCompletionSource()
    tcs.set_result(value)
    return tcs.task


@st.async_method
async def await_and_return(t):
    return await t


# ---------------------------------------------------------------------------
# T1 statuses
# ---------------------------------------------------------------------------


def test_T1_tcs_task_starts_waiting_for_activation():
    """T1/R1.3: a TaskCompletionSource task starts in WAITING_FOR_ACTIVATION."""
    tcs = st.TaskCompletionSource()
    assert tcs.task.status == TS.WAITING_FOR_ACTIVATION
    assert isinstance(tcs.task.status, st.TaskStatus)
    tcs.set_result(None)
    assert tcs.task.status == TS.RAN_TO_COMPLETION


def test_T1_suspended_async_method_is_waiting_for_activation():
    """T1/R1.3: an async method's task is promise-style: WAITING_FOR_ACTIVATION
    while suspended, RAN_TO_COMPLETION after."""
    tcs = st.TaskCompletionSource()
    t = await_and_return(tcs.task)
    assert t.status == TS.WAITING_FOR_ACTIVATION
    tcs.set_result(3)
    assert t.status == TS.RAN_TO_COMPLETION
    assert t.result == 3


def test_T1_run_task_goes_waiting_to_run_running_ran_to_completion():
    """T1/R1.3: Task.run tasks go WAITING_TO_RUN → RUNNING → final."""
    started, release = threading.Event(), threading.Event()
    seen_inside = []

    def body():
        started.set()
        assert release.wait(10)
        return 5

    t = st.Task.run(body)
    assert t.status in (TS.WAITING_TO_RUN, TS.RUNNING)
    assert started.wait(10)
    seen_inside.append(t.status)
    release.set()
    assert t.result == 5
    assert seen_inside == [TS.RUNNING]
    assert t.status == TS.RAN_TO_COMPLETION


def test_T1_run_task_that_raises_is_faulted():
    """T1/T9: a Task.run delegate that raises ends FAULTED with that exception."""
    err = ValueError("boom")

    def body():
        raise err

    t = st.Task.run(body)
    with pytest.raises(st.AggregateError):
        t.wait()
    assert t.status == TS.FAULTED
    assert first_cause(t) is err


def test_T1_final_states_of_tcs():
    """T1: set_exception → FAULTED, set_canceled → CANCELED."""
    f = faulted(ValueError("x"))
    c = canceled()
    assert f.status == TS.FAULTED
    assert c.status == TS.CANCELED
    observe(f)


def test_T1_precompleted_tasks_are_in_final_state():
    """T1/R1.3: from_result / from_exception / completed_task are created final."""
    assert st.Task.from_result(42).status == TS.RAN_TO_COMPLETION
    e = st.Task.from_exception(KeyError("k"))
    assert e.status == TS.FAULTED
    observe(e)
    assert st.Task.completed_task.status == TS.RAN_TO_COMPLETION


# ---------------------------------------------------------------------------
# T2 properties
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, flags",
    [
        (lambda: st.TaskCompletionSource().task, (False, False, False, False)),
        (lambda: completed(1), (True, True, False, False)),
        (lambda: faulted(ValueError()), (True, False, True, False)),
        (canceled, (True, False, False, True)),
    ],
    ids=["pending", "ran", "faulted", "canceled"],
)
def test_T2_completion_flags(make, flags):
    """T2/R1.4: is_completed, is_completed_successfully, is_faulted,
    is_canceled agree with the status."""
    t = make()
    got = (t.is_completed, t.is_completed_successfully, t.is_faulted, t.is_canceled)
    assert got == flags
    for v in got:
        assert isinstance(v, bool)
    if t.is_faulted:
        observe(t)


def test_T2_id_positive_unique_and_stable():
    """T2: id is > 0, unique, and does not change."""
    tasks = [st.TaskCompletionSource().task for _ in range(200)]
    ids = [t.id for t in tasks]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert [t.id for t in tasks] == ids


def test_T2_id_assigned_lazily_in_query_order():
    """T2/R1.8: ids are assigned on first read, so a task created later but
    queried first gets the smaller id."""
    first = st.TaskCompletionSource().task
    second = st.TaskCompletionSource().task
    id_second = second.id
    id_first = first.id
    assert id_first > id_second


def test_T2_exception_property():
    """T2/R2.4: `exception` is None for pending, successful and canceled
    tasks; an AggregateError holding every exception for a faulted one."""
    e1, e2 = ValueError(1), KeyError(2)
    pending = st.TaskCompletionSource()
    assert pending.task.exception is None
    assert completed(3).exception is None
    assert canceled().exception is None
    f = faulted(e1, e2)
    ae = f.exception
    assert isinstance(ae, st.AggregateError)
    assert ae.inner_exceptions == (e1, e2)
    pending.set_result(None)


def test_T2_async_state_and_creation_options():
    """T2/R4.1: async_state is the state given; creation_options the options."""
    state = object()
    tcs = st.TaskCompletionSource(state, TCRO.RUN_CONTINUATIONS_ASYNCHRONOUSLY)
    assert tcs.task.async_state is state
    assert tcs.task.creation_options == TCRO.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    plain = st.TaskCompletionSource()
    assert plain.task.async_state is None
    assert plain.task.creation_options == TCRO.NONE
    tcs.set_result(None)
    plain.set_result(None)


def test_T2_run_task_creation_options_deny_child_attach():
    """T2/R5.1: Task.run creates its task with DENY_CHILD_ATTACH."""
    t = st.Task.run(lambda: None)
    t.wait()
    assert t.creation_options == TCRO.DENY_CHILD_ATTACH


def test_T1_combinator_tasks_are_waiting_for_activation():
    """T1/R1.3: when_all / when_any / continue_with / wait_async promises
    start in WAITING_FOR_ACTIVATION."""
    p = st.TaskCompletionSource()
    assert st.Task.when_all(p.task).status == TS.WAITING_FOR_ACTIVATION
    assert st.Task.when_any(p.task).status == TS.WAITING_FOR_ACTIVATION
    assert p.task.continue_with(lambda a: None).status == TS.WAITING_FOR_ACTIVATION
    assert p.task.wait_async(30).status == TS.WAITING_FOR_ACTIVATION
    p.set_result(None)


def test_T2_current_id_inside_run():
    """T2/R1.8 (§0 static method): Task.current_id() is the running task's id
    inside a Task.run delegate and None outside any task."""
    if not hasattr(st.Task, "current_id"):
        pytest.skip("Task.current_id not provided")
    assert st.Task.current_id() is None
    got = []
    go = threading.Event()

    def body():
        assert go.wait(10)
        got.append(st.Task.current_id())

    t = st.Task.run(body)
    tid = t.id
    go.set()
    t.wait()
    assert got == [tid]


# ---------------------------------------------------------------------------
# T3 result
# ---------------------------------------------------------------------------


def test_T3_result_of_completed_task():
    """T3: result of a completed task is its value (same object)."""
    v = object()
    assert completed(v).result is v


def test_T3_result_blocks_until_completion():
    """T3: result blocks until another thread completes the task."""
    tcs = st.TaskCompletionSource()
    about_to_block = threading.Event()
    sentinel = object()

    def completer():
        assert about_to_block.wait(10)
        time.sleep(0.05)  # give the main thread time to really block
        tcs.set_result(sentinel)

    th = start_thread(completer)
    about_to_block.set()
    assert tcs.task.result is sentinel
    join_ok(th)


def test_T3_result_of_faulted_raises_aggregate_with_all():
    """T3/R2.1: result of a faulted task raises AggregateError holding every
    exception, in order, as the same objects."""
    e1, e2, e3 = ValueError(1), KeyError(2), TypeError(3)
    t = faulted(e1, e2, e3)
    with pytest.raises(st.AggregateError) as ei:
        t.result
    inner = ei.value.inner_exceptions
    assert len(inner) == 3
    assert inner[0] is e1 and inner[1] is e2 and inner[2] is e3


def test_T3_result_of_canceled_raises_aggregate_with_one_task_canceled_error():
    """T3/R2.1: result of a canceled task raises AggregateError with exactly
    one TaskCanceledError whose task is the canceled task."""
    t = canceled()
    with pytest.raises(st.AggregateError) as ei:
        t.result
    inner = ei.value.inner_exceptions
    assert len(inner) == 1
    assert isinstance(inner[0], st.TaskCanceledError)
    assert inner[0].task is t


def test_T3_result_of_canceled_gives_fresh_task_canceled_error_each_time():
    """T3/R2.1: each read manufactures a new TaskCanceledError."""
    t = canceled()
    got = []
    for _ in range(2):
        with pytest.raises(st.AggregateError) as ei:
            t.result
        got.append(ei.value.inner_exceptions[0])
    assert got[0] is not got[1]


def test_T3_result_of_async_method_canceled_by_oce_wraps_new_tce():
    """T3/R2.1/R6.3: an async method canceled by an escaping OCE: result raises
    AggregateError(TaskCanceledError) — not the original OCE."""
    oce = st.OperationCanceledError("stop")

    @st.async_method
    async def m():
        raise oce

    t = m()
    assert t.status == TS.CANCELED
    with pytest.raises(st.AggregateError) as ei:
        t.result
    inner = ei.value.inner_exceptions
    assert len(inner) == 1
    assert isinstance(inner[0], st.TaskCanceledError)
    assert inner[0] is not oce


# ---------------------------------------------------------------------------
# T4 wait / wait_all / wait_any (basic; more in test_waits.py)
# ---------------------------------------------------------------------------


def test_T4_wait_returns_true_when_completed_false_on_timeout():
    """T4: wait() → True when completed, False on timeout."""
    tcs = st.TaskCompletionSource()
    assert tcs.task.wait(0) is False
    assert tcs.task.wait(0.02) is False
    tcs.set_result(1)
    assert tcs.task.wait(0) is True
    assert tcs.task.wait() is True
    assert tcs.task.wait(1.0) is True


def test_T4_wait_raises_like_result():
    """T4: wait() on faulted/canceled raises the same AggregateError as T3,
    with or without a timeout."""
    e = ValueError("w")
    f = faulted(e)
    for kwargs in ({}, {"timeout": 1.0}, {"timeout": 0}):
        with pytest.raises(st.AggregateError) as ei:
            f.wait(**kwargs)
        assert ei.value.inner_exceptions == (e,)
    c = canceled()
    with pytest.raises(st.AggregateError) as ei:
        c.wait(0.5)
    assert isinstance(ei.value.inner_exceptions[0], st.TaskCanceledError)


def test_T4_wait_all_with_timeout_true_and_false():
    """T4: wait_all with a timeout → True when all complete, False otherwise
    (no exception on timeout even if a completed one faulted, R5.10)."""
    a, b = st.TaskCompletionSource(), st.TaskCompletionSource()
    f = faulted(ValueError("x"))
    assert st.Task.wait_all([a.task, f, b.task], timeout=0.02) is False
    a.set_result(1)
    b.set_result(2)
    assert st.Task.wait_all([a.task, b.task], timeout=1.0) is True
    observe(f)


def test_T4_wait_all_empty_returns_true():
    """T4/R5.10: wait_all of an empty list returns True immediately."""
    assert st.Task.wait_all([], timeout=0) is True


def test_T4_wait_all_failure_in_array_order_with_task_canceled_errors():
    """T4/R5.10: wait_all raises one AggregateError with, in array order,
    every faulted task's exceptions and a TaskCanceledError (task = that
    task) for every canceled one."""
    e1, e2, e3 = ValueError(1), KeyError(2), TypeError(3)
    t_f1 = faulted(e1)
    t_ok = completed(0)
    t_c = canceled()
    t_f2 = faulted(e2, e3)
    with pytest.raises(st.AggregateError) as ei:
        st.Task.wait_all([t_f1, t_ok, t_c, t_f2])
    inner = ei.value.inner_exceptions
    assert len(inner) == 4
    assert inner[0] is e1
    assert isinstance(inner[1], st.TaskCanceledError) and inner[1].task is t_c
    assert inner[2] is e2 and inner[3] is e3


def test_T4_wait_all_blocks_until_all_complete():
    """T4: wait_all (no timeout) returns once every task completed."""
    srcs = [st.TaskCompletionSource() for _ in range(5)]

    def completer():
        for i, s in enumerate(reversed(srcs)):
            time.sleep(0.005)
            s.set_result(i)

    th = start_thread(completer)
    st.Task.wait_all([s.task for s in srcs])
    assert all(s.task.is_completed for s in srcs)
    join_ok(th)


def test_T4_wait_any_returns_first_completed_in_array_order():
    """T4/R5.11: wait_any returns the index of the first completed task in
    array order when several already are."""
    p = st.TaskCompletionSource()
    tasks = [p.task, completed(1), completed(2)]
    assert st.Task.wait_any(tasks) == 1
    assert st.Task.wait_any(tasks, timeout=0) == 1
    p.set_result(0)
    assert st.Task.wait_any(tasks) == 0


def test_T4_wait_any_timeout_and_empty_give_minus_one():
    """T4: wait_any → -1 on timeout and for an empty list."""
    p = st.TaskCompletionSource()
    assert st.Task.wait_any([p.task], timeout=0.02) == -1
    assert st.Task.wait_any([]) == -1
    assert st.Task.wait_any([], timeout=0.5) == -1
    p.set_result(None)


def test_T4_wait_any_never_raises_for_faulted_or_canceled():
    """T4/R5.11: wait_any never raises for a faulted or canceled task."""
    f = faulted(ValueError())
    c = canceled()
    assert st.Task.wait_any([f]) == 0
    assert st.Task.wait_any([c, f]) == 0
    observe(f)


def test_T4_wait_any_wakes_when_one_completes():
    """T4: wait_any blocks until one task completes and returns its index."""
    srcs = [st.TaskCompletionSource() for _ in range(4)]

    def completer():
        time.sleep(0.02)
        srcs[2].set_result("x")

    th = start_thread(completer)
    assert st.Task.wait_any([s.task for s in srcs]) == 2
    join_ok(th)
    for i in (0, 1, 3):
        srcs[i].set_result(None)


def test_T4_wait_token_fires_first_raises_operation_canceled():
    """T4/R2.3: wait(cancellation_token=...) raises OperationCanceledError when
    the token fires first; the task is unaffected."""
    cts = make_cts()
    tcs = st.TaskCompletionSource()
    timer = threading.Timer(0.05, cts.cancel)
    timer.start()
    with pytest.raises(st.OperationCanceledError) as ei:
        tcs.task.wait(cancellation_token=cts.token)
    assert not isinstance(ei.value, st.AggregateError)
    assert not tcs.task.is_completed
    timer.join()
    tcs.set_result(None)


# ---------------------------------------------------------------------------
# T5 awaiter
# ---------------------------------------------------------------------------


def test_T5_awaiter_members():
    """T5: get_awaiter() has is_completed, on_completed, unsafe_on_completed,
    get_result."""
    tcs = st.TaskCompletionSource()
    aw = tcs.task.get_awaiter()
    for name in ("is_completed", "on_completed", "unsafe_on_completed", "get_result"):
        assert hasattr(aw, name), name
    assert aw.is_completed is False
    tcs.set_result(7)
    assert aw.is_completed is True
    assert aw.get_result() == 7


def test_T5_get_result_raises_first_exception_unwrapped():
    """T5/R2.2/S2.1: get_result raises the first inner exception itself."""
    e1, e2 = ValueError("first"), KeyError("second")
    t = faulted(e1, e2)
    with pytest.raises(ValueError) as ei:
        t.get_awaiter().get_result()
    assert ei.value is e1
    # the other one stays visible through `exception`
    assert t.exception.inner_exceptions == (e1, e2)


def test_T5_get_result_of_canceled_raises_task_canceled_error():
    """T5/S2.2: get_result of a canceled task raises TaskCanceledError."""
    t = canceled()
    with pytest.raises(st.TaskCanceledError) as ei:
        t.get_awaiter().get_result()
    assert ei.value.task is t  # R2.2: a new TaskCanceledError(task)


def test_T5_await_raises_first_exception_unwrapped():
    """T5: `await task` raises the first inner exception itself."""
    e1, e2 = ValueError("first"), KeyError("second")
    src = st.TaskCompletionSource()
    caught = []

    @st.async_method
    async def m():
        try:
            await src.task
        except BaseException as e:  # noqa: BLE001
            caught.append(e)

    t = m()
    src.set_exception([e1, e2])
    assert t.wait(10)
    assert caught == [e1] and caught[0] is e1
    observe(src.task)


def test_T5_await_canceled_raises_task_canceled_error():
    """T5: awaiting a canceled task raises TaskCanceledError."""
    caught = []

    @st.async_method
    async def m(t):
        try:
            await t
        except st.TaskCanceledError as e:
            caught.append(e)

    m(canceled()).wait(10)
    assert len(caught) == 1


def test_T5_get_result_rethrows_same_oce_of_canceled_async_method():
    """T5/R2.2/S2.2: a task canceled by an OCE escaping an async method:
    get_result and await rethrow that same OCE object."""
    oce = st.OperationCanceledError("mine")

    @st.async_method
    async def m():
        raise oce

    t = m()
    with pytest.raises(st.OperationCanceledError) as ei:
        t.get_awaiter().get_result()
    assert ei.value is oce


def _tb_len(e):
    n, tb = 0, e.__traceback__
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


def _rethrow(t, how):
    if how == "get_result":
        try:
            t.get_awaiter().get_result()
        except ValueError as e:
            return e
    elif how == "result":
        try:
            t.result
        except st.AggregateError as ae:
            return ae.inner_exceptions[0]
    else:

        @st.async_method
        async def aw():
            try:
                await t
            except ValueError as e:
                return e

        return aw().result
    raise AssertionError("did not raise")


@pytest.mark.parametrize("how", ["get_result", "result", "await"])
@pytest.mark.parametrize("origin", ["async-method", "set_exception"])
def test_T5_rethrow_does_not_accumulate_traceback(how, origin):
    """T5/R2.2/D3a: a stored exception is rethrown with its original
    traceback (ExceptionDispatchInfo semantics): rethrowing it again and again
    (get_result / result / await) must not append entries to its
    __traceback__ every time (that keeps every rethrow's frames alive)."""
    if origin == "async-method":

        @st.async_method
        async def boom():
            raise ValueError("stored")

        t = boom()
    else:
        t = faulted(ValueError("stored"))
    first = _tb_len(_rethrow(t, how))
    for _ in range(20):
        _rethrow(t, how)
    later = _tb_len(_rethrow(t, how))
    assert later == first, f"traceback grew from {first} to {later} entries after 21 rethrows via {how}"


def test_T3_T5_tracebacks_show_the_async_chain():
    """T3/T5 with D3a: the inner exception of `result`'s AggregateError keeps
    the original traceback through every async frame, and `await` shows the
    awaiting frame followed by the chain."""
    import traceback

    @st.async_method
    async def deepest():
        await st.Task.yield_()
        raise ValueError("deep")

    @st.async_method
    async def middle():
        return await deepest()

    @st.async_method
    async def top():
        return await middle()

    t = top()
    with pytest.raises(st.AggregateError) as ei:
        t.result
    names = [f.name for f in traceback.extract_tb(ei.value.inner_exceptions[0].__traceback__)]
    assert names[-3:] == ["top", "middle", "deepest"], names

    async def main():
        try:
            await top()
        except ValueError as e:
            return [f.name for f in traceback.extract_tb(e.__traceback__)]

    names = st.run(main)
    assert names[0] == "main" and names[-3:] == ["top", "middle", "deepest"], names


def test_T5_get_result_blocks_until_completion():
    """T5/S2.3: get_result on an incomplete task blocks until it completes."""
    tcs = st.TaskCompletionSource()
    results = []

    def waiter():
        results.append(tcs.task.get_awaiter().get_result())

    th = start_thread(waiter)
    th.join(0.1)
    assert th.is_alive() and results == []
    tcs.set_result("done")
    join_ok(th)
    assert results == ["done"]


@pytest.mark.parametrize("method", ["on_completed", "unsafe_on_completed"])
def test_T5_on_completed_runs_action_once(method):
    """T5/T7: an action registered with on_completed runs exactly once when
    the task completes (and not before)."""
    tcs = st.TaskCompletionSource()
    rec = Recorder()
    getattr(tcs.task.get_awaiter(), method)(lambda: rec.add(1))
    assert len(rec) == 0
    tcs.set_result(None)
    assert rec.wait_for(1)
    st.Task.delay(0.02).wait()
    assert rec.items == [1]


@pytest.mark.parametrize("method", ["on_completed", "unsafe_on_completed"])
def test_T5_on_completed_on_completed_task_runs_action(method):
    """T5/R3.1: registering on an already-completed task still runs the action."""
    rec = Recorder()
    getattr(completed(1).get_awaiter(), method)(lambda: rec.add(threading.get_ident()))
    assert rec.wait_for(1)
    assert len(rec.items) == 1


# ---------------------------------------------------------------------------
# T7 continuation passes
# ---------------------------------------------------------------------------


def _recording_awaiter(name, t, log):
    @st.async_method
    async def m():
        v = await t
        log.append((name, threading.get_ident(), in_set.is_set()))
        return v

    return m()


in_set = threading.Event()


def _set_in(tcs, value):
    in_set.set()
    try:
        tcs.set_result(value)
    finally:
        in_set.clear()


def test_T7_single_awaiter_resumes_inline_before_set_result_returns():
    """T7/R3.2/R4.8: with one awaiting async method, set_result resumes it on
    the calling thread before set_result returns."""
    tcs = st.TaskCompletionSource()
    log = []
    t = _recording_awaiter("a", tcs.task, log)
    assert log == []
    _set_in(tcs, 1)
    assert log == [("a", MAIN_IDENT, True)]
    assert t.is_completed and t.result == 1


def test_T7_single_awaiter_resumes_inline_on_completing_worker_thread():
    """T7: the inline resumption happens on whichever thread completes."""
    tcs = st.TaskCompletionSource()
    log = []
    t = _recording_awaiter("a", tcs.task, log)
    holder = {}

    def completer():
        holder["ident"] = threading.get_ident()
        _set_in(tcs, 2)
        holder["done_inside"] = list(log)

    join_ok(start_thread(completer))
    assert holder["done_inside"] == [("a", holder["ident"], True)]
    assert t.result == 2


@pytest.mark.timeout(30)
def test_T7_two_awaiters_only_first_resumes_inline():
    """T7/R3.2/S7.4: with two awaiters only the first (in registration order)
    resumes inline; the second is queued to the pool."""
    for _ in range(20):
        tcs = st.TaskCompletionSource()
        log = []
        t1 = _recording_awaiter("first", tcs.task, log)
        t2 = _recording_awaiter("second", tcs.task, log)
        _set_in(tcs, 1)
        assert ("first", MAIN_IDENT, True) in log
        st.Task.wait_all([t1, t2], timeout=10)
        by_name = {name: (ident, inside) for name, ident, inside in log}
        assert by_name["first"] == (MAIN_IDENT, True)
        assert by_name["second"][0] != MAIN_IDENT


def test_T7_rca_no_awaiter_resumes_inline():
    """T7/R3.3/S3: with RUN_CONTINUATIONS_ASYNCHRONOUSLY neither awaiter runs
    inside set_result; both run on pool threads."""
    for _ in range(20):
        tcs = st.TaskCompletionSource(None, TCRO.RUN_CONTINUATIONS_ASYNCHRONOUSLY)
        log = []
        t1 = _recording_awaiter("first", tcs.task, log)
        t2 = _recording_awaiter("second", tcs.task, log)
        _set_in(tcs, 1)
        st.Task.wait_all([t1, t2], timeout=10)
        assert len(log) == 2
        for name, ident, _inside in log:
            assert ident != MAIN_IDENT, f"{name} resumed on the completing thread"


@pytest.mark.parametrize("ctx_kind", ["subclass", "base", "none"])
def test_T7_inline_resume_only_where_completing_thread_has_no_context(ctx_kind):
    """T7/R3.4: an await continuation (that captured no context) is inlined
    only if the completing thread has no SynchronizationContext or exactly
    the base class; a thread with a custom context queues it to the pool."""
    SC = getattr(st, "SynchronizationContext", None)
    if SC is None:
        pytest.skip("SynchronizationContext belongs to a later issue (C1)")

    class CustomContext(SC):
        pass

    tcs = st.TaskCompletionSource()
    log = []
    t = _recording_awaiter("a", tcs.task, log)
    holder = {}

    def completer():
        if ctx_kind != "none":
            SC.set_synchronization_context(CustomContext() if ctx_kind == "subclass" else SC())
        try:
            holder["ident"] = threading.get_ident()
            _set_in(tcs, 1)
            holder["inside"] = list(log)
        finally:
            SC.set_synchronization_context(None)

    join_ok(start_thread(completer))
    t.wait(10)
    assert len(log) == 1
    if ctx_kind == "subclass":
        assert holder["inside"] == []
        assert log[0][1] != holder["ident"]
    else:
        assert holder["inside"] == [("a", holder["ident"], True)]


def test_T7_continue_with_without_execute_synchronously_never_inline():
    """T7/R3.2: a continue_with continuation without EXECUTE_SYNCHRONOUSLY
    never runs inside set_result."""
    for _ in range(20):
        tcs = st.TaskCompletionSource()
        log = []
        c = tcs.task.continue_with(lambda a: log.append((threading.get_ident(), in_set.is_set())))
        _set_in(tcs, 1)
        c.wait(10)
        assert len(log) == 1
        assert log[0][0] != MAIN_IDENT


def test_T7_continue_with_execute_synchronously_runs_inline():
    """T7/R3.9: an EXECUTE_SYNCHRONOUSLY continuation runs on the completing
    thread inside the completing call."""
    tcs = st.TaskCompletionSource()
    log = []
    holder = {}
    c = tcs.task.continue_with(
        lambda a: log.append((threading.get_ident(), in_set.is_set())),
        options=TCO.EXECUTE_SYNCHRONOUSLY,
    )

    def completer():
        holder["ident"] = threading.get_ident()
        _set_in(tcs, 1)
        holder["after"] = list(log)

    join_ok(start_thread(completer))
    assert holder["after"] == [(holder["ident"], True)]
    assert c.is_completed_successfully


def test_T7_rca_beats_execute_synchronously():
    """T7/R3.3: RUN_CONTINUATIONS_ASYNCHRONOUSLY on the antecedent makes even
    EXECUTE_SYNCHRONOUSLY continuations run outside the completing call."""
    tcs = st.TaskCompletionSource(None, TCRO.RUN_CONTINUATIONS_ASYNCHRONOUSLY)
    log = []
    c = tcs.task.continue_with(
        lambda a: log.append(threading.get_ident()), options=TCO.EXECUTE_SYNCHRONOUSLY
    )
    _set_in(tcs, 1)
    c.wait(10)
    assert log and log[0] != MAIN_IDENT


def test_T7_awaiter_on_completed_first_runs_inline():
    """T7/R3.2: a single awaiter.on_completed action (an await continuation)
    runs inline inside set_result."""
    tcs = st.TaskCompletionSource()
    log = []
    tcs.task.get_awaiter().on_completed(lambda: log.append((threading.get_ident(), in_set.is_set())))
    _set_in(tcs, None)
    assert log == [(MAIN_IDENT, True)]


def test_T7_mixed_continuations_each_run_exactly_once():
    """T7: every kind of continuation registered before completion runs
    exactly once."""
    tcs = st.TaskCompletionSource()
    rec = Recorder()
    conts = []
    for i in range(10):
        conts.append(tcs.task.continue_with(lambda a, i=i: rec.add(("cw", i))))
        conts.append(
            tcs.task.continue_with(lambda a, i=i: rec.add(("es", i)), options=TCO.EXECUTE_SYNCHRONOUSLY)
        )
        tcs.task.get_awaiter().on_completed(lambda i=i: rec.add(("oc", i)))

    @st.async_method
    async def m(i):
        await tcs.task
        rec.add(("await", i))

    methods = [m(i) for i in range(10)]
    tcs.set_result(None)
    assert rec.wait_for(40)
    st.Task.wait_all(conts + methods, timeout=10)
    st.Task.delay(0.02).wait()
    assert sorted(rec.items) == sorted(
        [(k, i) for k in ("cw", "es", "oc", "await") for i in range(10)]
    )


def test_T7_continue_with_es_on_completed_antecedent_runs_before_return():
    """T7/R3.9: EXECUTE_SYNCHRONOUSLY on an already-completed antecedent runs
    on the calling thread before continue_with returns."""
    log = []
    c = completed(1).continue_with(
        lambda a: log.append(threading.get_ident()), options=TCO.EXECUTE_SYNCHRONOUSLY
    )
    assert log == [MAIN_IDENT]
    assert c.is_completed_successfully


def test_T7_continue_with_on_completed_antecedent_is_queued():
    """T7/R3.9: without EXECUTE_SYNCHRONOUSLY a continuation is queued even
    when the antecedent is already complete."""
    log = []
    c = completed(1).continue_with(lambda a: log.append(threading.get_ident()))
    c.wait(10)
    assert log and log[0] != MAIN_IDENT


# ---------------------------------------------------------------------------
# T8 continue_with
# ---------------------------------------------------------------------------


def test_T8_continue_with_gets_antecedent_and_returns_task():
    """T8: fn gets the antecedent; continue_with returns a Task of fn's value."""
    tcs = st.TaskCompletionSource()
    c = tcs.task.continue_with(lambda a: (a, a.result * 2))
    assert isinstance(c, st.Task)
    assert c.status == TS.WAITING_FOR_ACTIVATION
    tcs.set_result(21)
    ant, v = c.result
    assert ant is tcs.task and v == 42


def test_T8_continue_with_state():
    """T8/S3.4: with state, fn(antecedent, state); async_state is state;
    without it async_state is None."""
    state = object()
    got = []
    c = completed(1).continue_with(lambda a, s: got.append((a.result, s)), state=state)
    c.wait(10)
    assert got == [(1, state)]
    assert c.async_state is state
    c2 = completed(1).continue_with(lambda a: None)
    c2.wait(10)
    assert c2.async_state is None


def test_T8_continue_with_state_none_is_passed():
    """T8: state=None given explicitly is still passed as the second argument."""
    got = []
    c = completed(1).continue_with(lambda a, s: got.append(s), state=None)
    c.wait(10)
    assert got == [None]


@pytest.mark.parametrize(
    "ante_kind, options, should_run",
    [
        ("ok", TCO.ONLY_ON_RAN_TO_COMPLETION, True),
        ("fault", TCO.ONLY_ON_RAN_TO_COMPLETION, False),
        ("cancel", TCO.ONLY_ON_RAN_TO_COMPLETION, False),
        ("ok", TCO.ONLY_ON_FAULTED, False),
        ("fault", TCO.ONLY_ON_FAULTED, True),
        ("cancel", TCO.ONLY_ON_FAULTED, False),
        ("ok", TCO.ONLY_ON_CANCELED, False),
        ("cancel", TCO.ONLY_ON_CANCELED, True),
        ("fault", TCO.NOT_ON_FAULTED, False),
        ("cancel", TCO.NOT_ON_CANCELED, False),
        ("ok", TCO.NOT_ON_RAN_TO_COMPLETION, False),
        ("cancel", TCO.NONE, True),
        ("fault", TCO.NONE, True),
        ("fault", TCO.NOT_ON_CANCELED, True),
    ],
)
def test_T8_condition_not_met_cancels_continuation(ante_kind, options, should_run):
    """T8/R3.8/S3.3: a continuation whose condition is not met is CANCELED
    without running; otherwise it runs and RAN_TO_COMPLETION."""
    ante = {"ok": lambda: completed(1), "fault": lambda: faulted(ValueError()), "cancel": canceled}[ante_kind]()
    ran = []
    c = ante.continue_with(lambda a: ran.append(1) or "ran", options=options)
    try:
        c.wait(10)
    except st.AggregateError:
        pass
    if should_run:
        assert ran == [1]
        assert c.status == TS.RAN_TO_COMPLETION and c.result == "ran"
    else:
        assert ran == []
        assert c.status == TS.CANCELED
        assert c.exception is None
        with pytest.raises(st.TaskCanceledError):
            c.get_awaiter().get_result()
    if ante_kind == "fault":
        observe(ante)


def test_T8_condition_not_met_on_pending_antecedent():
    """T8/R3.8: ONLY_ON_FAULTED registered before a successful completion →
    CANCELED once the antecedent completes."""
    tcs = st.TaskCompletionSource()
    ran = []
    c = tcs.task.continue_with(lambda a: ran.append(1), options=TCO.ONLY_ON_FAULTED)
    assert not c.is_completed
    tcs.set_result(1)
    with pytest.raises(st.AggregateError):
        c.wait(10)
    assert c.is_canceled and ran == []


@pytest.mark.parametrize(
    "options",
    [
        TCO.NOT_ON_RAN_TO_COMPLETION | TCO.NOT_ON_FAULTED | TCO.NOT_ON_CANCELED,
        TCO.EXECUTE_SYNCHRONOUSLY | TCO.LONG_RUNNING,
    ],
    ids=["all-not-on", "es-longrunning"],
)
def test_T8_invalid_options_raise_value_error(options):
    """T8/R3.7/S3.4: all three NOT_ON_* together, or EXECUTE_SYNCHRONOUSLY with
    LONG_RUNNING, raise ValueError."""
    tcs = st.TaskCompletionSource()
    with pytest.raises(ValueError):
        tcs.task.continue_with(lambda a: None, options=options)
    tcs.set_result(None)


def test_T8_unknown_option_bit_raises_value_error():
    """T8/R3.7/S3.4: an unknown bit (0x1000000) raises ValueError."""
    tcs = st.TaskCompletionSource()
    try:
        bad = TCO(0x1000000)
    except ValueError:  # a STRICT flag type: pass the raw int instead
        bad = 0x1000000
    with pytest.raises(ValueError):
        tcs.task.continue_with(lambda a: None, options=bad)
    tcs.set_result(None)


def test_T8_continuation_exception_faults_only_continuation():
    """T8/R3.6: fn's exception faults the continuation; the antecedent is
    unaffected; an antecedent's fault does not propagate automatically."""
    err = RuntimeError("in continuation")

    def boom(a):
        raise err

    ok = completed(1)
    c = ok.continue_with(boom)
    with pytest.raises(st.AggregateError):
        c.wait(10)
    assert c.is_faulted and first_cause(c) is err
    assert ok.is_completed_successfully

    bad = faulted(ValueError("ante"))
    c2 = bad.continue_with(lambda a: "fine")
    assert c2.result == "fine"
    assert c2.status == TS.RAN_TO_COMPLETION
    observe(bad)


def test_T8_async_fn_gives_task_of_task_and_unwrap():
    """T8: an async (@async_method) fn gives a Task of a Task; unwrap()
    flattens it."""
    inner_src = st.TaskCompletionSource()

    @st.async_method
    async def cont(a):
        return a.result + await inner_src.task

    c = completed(1).continue_with(cont)
    u = c.unwrap()
    inner = c.result
    assert isinstance(inner, st.Task)
    assert not u.is_completed
    inner_src.set_result(41)
    assert u.result == 42


def test_T8_plain_async_def_fn_gives_task_of_task():
    """T8: a plain `async def` fn is an async fn too: the continuation's
    result is a Task (driven by the builder), and unwrap() flattens it."""

    async def cont(a):
        return a.result * 3

    c = completed(5).continue_with(cont)
    inner = c.result
    assert isinstance(inner, st.Task)
    assert c.unwrap().result == 15


def test_T8_unwrap_of_completed_outer_returns_inner():
    """T8/R3.12: unwrap of an outer task that already RAN_TO_COMPLETION
    returns the inner task itself."""
    inner = st.TaskCompletionSource()
    outer = completed(inner.task)
    assert outer.unwrap() is inner.task
    inner.set_result(None)


def test_T8_unwrap_proxy_mirrors_inner_and_outer():
    """T8/R3.12: the unwrap proxy mirrors a faulted outer, a canceled outer,
    and the inner task's final state."""
    e = ValueError("outer")
    outer_src = st.TaskCompletionSource()
    proxy = outer_src.task.unwrap()
    assert not proxy.is_completed
    outer_src.set_exception(e)
    with pytest.raises(st.AggregateError):
        proxy.wait(10)
    assert proxy.is_faulted and first_cause(proxy) is e
    observe(outer_src.task)

    outer2 = st.TaskCompletionSource()
    proxy2 = outer2.task.unwrap()
    outer2.set_canceled()
    with pytest.raises(st.AggregateError):
        proxy2.wait(10)
    assert proxy2.is_canceled

    outer3 = st.TaskCompletionSource()
    inner3 = st.TaskCompletionSource()
    proxy3 = outer3.task.unwrap()
    outer3.set_result(inner3.task)
    assert not proxy3.is_completed
    e3 = KeyError("inner")
    inner3.set_exception(e3)
    with pytest.raises(st.AggregateError):
        proxy3.wait(10)
    assert first_cause(proxy3) is e3
    observe(inner3.task)


def test_T8_continue_with_precanceled_token_cancels_at_once():
    """T8/R3.10/S3.1: a continuation with an already-canceled token is
    CANCELED before continue_with returns, without running."""
    token = make_canceled_token()
    tcs = st.TaskCompletionSource()
    ran = []
    c = tcs.task.continue_with(lambda a: ran.append(1), cancellation_token=token)
    assert c.is_canceled
    tcs.set_result(None)
    st.Task.delay(0.02).wait()
    assert ran == []


def test_T8_rca_continuation_option_applies_to_continuation_task():
    """T8/R3.7/R3.3: RUN_CONTINUATIONS_ASYNCHRONOUSLY as a continuation option
    becomes the continuation task's creation option: an awaiter of the
    continuation is not resumed inside the completing call."""
    tcs = st.TaskCompletionSource()
    c = tcs.task.continue_with(
        lambda a: 1, options=TCO.EXECUTE_SYNCHRONOUSLY | TCO.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    )
    assert c.creation_options & TCRO.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    log = []
    t = _recording_awaiter("a", c, log)
    _set_in(tcs, 1)
    assert c.is_completed  # ran inline (EXECUTE_SYNCHRONOUSLY) ...
    t.wait(10)
    assert log and log[0][1] != MAIN_IDENT  # ... but its awaiter did not


@pytest.mark.parametrize("method", ["on_completed", "unsafe_on_completed"])
def test_T5_on_completed_none_raises_type_error(method):
    """T5/§0/S9.1: on_completed(None) raises TypeError."""
    with pytest.raises(TypeError):
        getattr(st.Task.completed_task.get_awaiter(), method)(None)


def test_T8_continue_with_none_raises_type_error():
    """T8/R3.6: a None delegate raises TypeError."""
    with pytest.raises(TypeError):
        completed(1).continue_with(None)


def test_T8_chain_runs_in_order():
    """T8: a chain of continuations passes values along."""
    tcs = st.TaskCompletionSource()
    c = tcs.task
    for _ in range(10):
        c = c.continue_with(lambda a: a.result + 1)
    tcs.set_result(0)
    assert c.result == 10


# ---------------------------------------------------------------------------
# T9 factories
# ---------------------------------------------------------------------------


def test_T9_run_passes_args_and_runs_on_pool_thread():
    """T9: Task.run(fn, *args) runs fn(*args) on a pool thread."""
    got = []

    def body(a, b, *, c=None):
        got.append(threading.get_ident())
        return a + b

    t = st.Task.run(body, 2, 3)
    assert t.result == 5
    assert got and got[0] != MAIN_IDENT


def test_T9_run_unwraps_async_method():
    """T9/R5.2: Task.run of an fn that returns a Task (an @async_method) is
    unwrapped: its result is the inner value."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def m(x):
        return x + await src.task

    t = st.Task.run(m, 1)
    threading.Timer(0.02, src.set_result, (10,)).start()
    assert t.result == 11
    assert not isinstance(t.result, st.Task)


def test_T9_run_drives_and_unwraps_plain_async_def():
    """T9: Task.run of a plain `async def` drives it with the builder and
    unwraps."""
    src = st.TaskCompletionSource()

    async def m(x):
        return x * await src.task

    t = st.Task.run(m, 3)
    threading.Timer(0.02, src.set_result, (7,)).start()
    assert t.result == 21


def test_T9_run_unwrap_mirrors_inner_fault_and_cancel():
    """T9/R5.2/S5.5: the Task.run proxy mirrors the inner async method's
    fault; an OCE escaping it makes the proxy CANCELED."""
    err = KeyError("inner")

    @st.async_method
    async def bad():
        await st.Task.yield_()
        raise err

    @st.async_method
    async def cancels():
        await st.Task.yield_()
        raise st.OperationCanceledError()

    t = st.Task.run(bad)
    with pytest.raises(st.AggregateError):
        t.wait(10)
    assert t.is_faulted and first_cause(t) is err

    c = st.Task.run(cancels)
    with pytest.raises(st.AggregateError):
        c.wait(10)
    assert c.is_canceled


def test_T9_run_of_fn_returning_completed_task_mirrors_it():
    """T9/S5.4: Task.run(lambda: already completed / faulted / canceled task)
    gives a proxy in the same state."""
    err = KeyError("k")
    f, c = faulted(err), canceled()
    assert st.Task.run(lambda: st.Task.from_result(5)).result == 5
    tf = st.Task.run(lambda: f)
    with pytest.raises(st.AggregateError) as ei:
        tf.wait(10)
    assert tf.is_faulted and ei.value.inner_exceptions[0] is err
    tc = st.Task.run(lambda: c)
    with pytest.raises(st.AggregateError):
        tc.wait(10)
    assert tc.is_canceled
    observe(f)


def test_T9_run_sync_fn_raising_oce_without_token_is_faulted():
    """T9/R1.6: a (non-async) Task.run delegate that raises an OCE without a
    matching canceled token is FAULTED, not canceled."""
    oce = st.OperationCanceledError()

    def body():
        raise oce

    t = st.Task.run(body)
    with pytest.raises(st.AggregateError):
        t.wait(10)
    assert t.status == TS.FAULTED
    assert first_cause(t) is oce


def test_T9_run_with_precanceled_token_never_runs():
    """T9/R5.1/S5.4: a token already canceled gives a canceled task and fn
    never runs."""
    token = make_canceled_token()
    ran = []
    t = st.Task.run(lambda: ran.append(1), cancellation_token=token)
    with pytest.raises(st.AggregateError):
        t.wait(10)
    assert t.is_canceled and ran == []


def test_T9_delay_completes_later():
    """T9/R5.4: Task.delay(s) is a promise completed by a timer."""
    t0 = time.monotonic()
    t = st.Task.delay(0.05)
    assert t.status == TS.WAITING_FOR_ACTIVATION
    assert t.wait(10)
    assert time.monotonic() - t0 >= 0.045
    assert t.status == TS.RAN_TO_COMPLETION


def test_T9_delay_accepts_timedelta():
    """T9/§0: Task.delay takes a timedelta."""
    assert st.Task.delay(datetime.timedelta(milliseconds=5)).wait(10)


def test_T9_delay_zero_is_completed_task():
    """T9/R5.4: Task.delay(0) returns the completed task at once."""
    t = st.Task.delay(0)
    assert t.is_completed_successfully
    assert t is st.Task.completed_task


@pytest.mark.parametrize("bad", [-2, -0.5, -100])
def test_T9_delay_negative_raises_value_error(bad):
    """T9/§0/R5.4: a negative delay other than INFINITE raises ValueError."""
    with pytest.raises(ValueError):
        st.Task.delay(bad)


def test_T9_delay_infinite_never_completes():
    """T9/R5.4: Task.delay(INFINITE) does not complete."""
    t = st.Task.delay(st.INFINITE)
    assert t.wait(0.05) is False


def test_T9_delay_with_token_canceled_later():
    """T9/R5.4/K3: Task.delay ends CANCELED when its token fires."""
    cts = make_cts()
    t = st.Task.delay(30, cancellation_token=cts.token)
    cts.cancel()
    with pytest.raises(st.AggregateError):
        t.wait(5)
    assert t.is_canceled


def test_T9_yield_always_suspends_and_resumes_on_pool():
    """T9/R7.6: `await Task.yield_()` from the main thread (no context)
    suspends and resumes on a pool thread."""
    log = []

    @st.async_method
    async def m():
        log.append(threading.get_ident())
        await st.Task.yield_()
        log.append(threading.get_ident())
        return "y"

    t = m()
    assert t.result == "y"
    assert log[0] == MAIN_IDENT and log[1] != MAIN_IDENT


def test_T9_yield_awaiter_is_never_completed():
    """T9/R7.6: the yield awaiter's is_completed is False."""
    y = st.Task.yield_()
    if not hasattr(y, "get_awaiter"):
        pytest.skip("yield_() awaitable has no get_awaiter()")
    assert y.get_awaiter().is_completed is False


def test_T9_from_result_and_from_exception():
    """T9/R5.8: from_result → completed with the value; from_exception →
    faulted with that exception (even an OCE)."""
    v = object()
    assert st.Task.from_result(v).result is v
    e = ValueError("fe")
    t = st.Task.from_exception(e)
    assert t.is_faulted and first_cause(t) is e
    oce = st.OperationCanceledError()
    t2 = st.Task.from_exception(oce)
    assert t2.is_faulted and not t2.is_canceled
    observe(t2)


def test_T9_from_exception_none_raises_type_error():
    """T9/R5.8/§0: from_exception(None) raises TypeError."""
    with pytest.raises(TypeError):
        st.Task.from_exception(None)


def test_T9_from_canceled():
    """T9/R5.8: from_canceled(token) with a canceled token → CANCELED; an
    uncanceled token raises ValueError."""
    token = make_canceled_token()
    t = st.Task.from_canceled(token)
    assert t.is_canceled
    with pytest.raises(st.TaskCanceledError):
        t.get_awaiter().get_result()
    with pytest.raises(ValueError):
        st.Task.from_canceled(make_cts().token)


def test_T9_wait_async_same_instance_when_complete():
    """T9/R5.9: wait_async on a completed task (or with no timeout and no
    token) returns the same task."""
    t = completed(1)
    assert t.wait_async(1.0) is t
    p = st.TaskCompletionSource()
    assert p.task.wait_async() is p.task
    p.set_result(None)


def test_T9_wait_async_times_out_with_timeout_error():
    """T9/R5.9: wait_async(timeout) on a pending task faults with the builtin
    TimeoutError; the source is unaffected."""
    p = st.TaskCompletionSource()
    w = p.task.wait_async(0.02)
    with pytest.raises(st.AggregateError):
        w.wait(10)
    assert isinstance(first_cause(w), TimeoutError)
    assert not p.task.is_completed
    p.set_result(None)


def test_T9_wait_async_mirrors_source():
    """T9/R5.9: wait_async mirrors the source when it finishes first."""
    p = st.TaskCompletionSource()
    w = p.task.wait_async(30)
    p.set_result("v")
    assert w.result == "v"


def test_T9_wait_async_negative_timeout_raises_value_error():
    """T9/§0/R5.9: an invalid timeout raises ValueError even on a completed task."""
    with pytest.raises(ValueError):
        completed(1).wait_async(-2)


def test_T9_factory_start_new_runs_fn_with_args():
    """T9: Task.factory.start_new(fn, *args) runs fn and gives its result."""
    t = st.Task.factory.start_new(lambda a, b: a * b, 6, 7)
    assert t.result == 42


def test_T9_factory_start_new_does_not_unwrap():
    """T9/R5.3: start_new of an async method returns a Task of a Task."""

    @st.async_method
    async def m():
        await st.Task.yield_()
        return 1

    t = st.Task.factory.start_new(m)
    inner = t.result
    assert isinstance(inner, st.Task)
    assert inner.result == 1


def test_T9_factory_start_new_long_running():
    """T9/R5.3: LONG_RUNNING work runs (on a thread other than the caller's)."""
    got = []
    t = st.Task.factory.start_new(lambda: got.append(threading.get_ident()), options=TCRO.LONG_RUNNING)
    t.wait(10)
    assert got and got[0] != MAIN_IDENT


def test_T9_completed_task_singleton():
    """T9: Task.completed_task is completed successfully and always the same."""
    assert st.Task.completed_task.is_completed_successfully
    assert st.Task.completed_task is st.Task.completed_task


# ---------------------------------------------------------------------------
# T10 when_all / when_any
# ---------------------------------------------------------------------------


def test_T10_when_all_result_in_argument_order():
    """T10/R5.6: when_all's result is a list in argument order, independent of
    completion order."""
    srcs = [st.TaskCompletionSource() for _ in range(5)]
    w = st.Task.when_all(*[s.task for s in srcs])
    for i in reversed(range(5)):
        assert not w.is_completed
        srcs[i].set_result(i * 10)
    assert w.result == [0, 10, 20, 30, 40]


@pytest.mark.parametrize("form", ["varargs", "list", "tuple", "generator"])
def test_T10_when_all_accepts_varargs_and_iterables(form):
    """T10: when_all(*tasks) and when_all(iterable)."""
    tasks = [completed(1), completed(2), completed(3)]
    arg = {
        "varargs": None,
        "list": list(tasks),
        "tuple": tuple(tasks),
        "generator": (t for t in tasks),
    }[form]
    w = st.Task.when_all(*tasks) if arg is None else st.Task.when_all(arg)
    assert w.result == [1, 2, 3]


@pytest.mark.parametrize("form", ["no-args", "empty-list", "empty-generator"])
def test_T10_when_all_empty_completes_with_empty_list(form):
    """T10/R5.6: empty input → completed at once with []."""
    w = {
        "no-args": lambda: st.Task.when_all(),
        "empty-list": lambda: st.Task.when_all([]),
        "empty-generator": lambda: st.Task.when_all(x for x in ()),
    }[form]()
    assert w.is_completed_successfully
    assert w.result == []


def test_T10_when_all_duplicates():
    """T10/S5.1: (t1, t1) → [1, 1]; (t2, t1) → [2, 1]."""
    t1, t2 = completed(1), completed(2)
    assert st.Task.when_all(t1, t1).result == [1, 1]
    assert st.Task.when_all(t2, t1).result == [2, 1]


def test_T10_when_all_completes_only_after_last():
    """T10/S5.1: one incomplete input keeps when_all incomplete, even when
    another input already faulted."""
    p = st.TaskCompletionSource()
    f = faulted(ValueError())
    w = st.Task.when_all(f, p.task)
    assert not w.is_completed
    p.set_result(1)
    with pytest.raises(st.AggregateError):
        w.wait(10)
    assert w.is_faulted
    observe(f)


def test_T10_when_all_faults_in_argument_order():
    """T10/R5.6/S5.2: a faulted when_all holds every inner exception in
    argument order, regardless of completion order."""
    e1, e2, e3 = ValueError(1), KeyError(2), TypeError(3)
    s1, s2, s3 = (st.TaskCompletionSource() for _ in range(3))
    w = st.Task.when_all(s2.task, s1.task, s3.task)
    s1.set_exception(e1)
    s3.set_result(None)
    s2.set_exception([e2, e3])
    with pytest.raises(st.AggregateError):
        w.wait(10)
    assert w.is_faulted
    assert w.exception.inner_exceptions == (e2, e3, e1)
    observe(s1.task, s2.task)


def test_T10_when_all_prefaulted_order():
    """T10/S5.2: pre-faulted (e1, e2) → [e1, e2]; (t2, t1) → [e2, e1]."""
    e1, e2 = ValueError(1), KeyError(2)
    t1, t2 = faulted(e1), faulted(e2)
    assert st.Task.when_all(t1, t2).exception.inner_exceptions == (e1, e2)
    assert st.Task.when_all(t2, t1).exception.inner_exceptions == (e2, e1)
    observe(t1, t2)


def test_T10_when_all_fault_beats_cancel():
    """T10/S5.2: fault + cancel → FAULTED with only the fault."""
    e1 = ValueError(1)
    f = faulted(e1)
    w = st.Task.when_all(canceled(), f)
    assert w.is_faulted
    assert w.exception.inner_exceptions == (e1,)
    observe(f)


def test_T10_when_all_cancel_only_is_canceled():
    """T10/S5.2: canceled inputs only → CANCELED."""
    w = st.Task.when_all(completed(1), canceled(), canceled())
    assert w.is_canceled
    assert w.exception is None


def test_T10_await_when_all_raises_first_exception():
    """T10/R5.6: `await when_all(...)` raises only the first exception."""
    e1, e2 = ValueError(1), KeyError(2)
    f1, f2 = faulted(e1), faulted(e2)
    caught = []

    @st.async_method
    async def m():
        try:
            await st.Task.when_all(f1, f2)
        except BaseException as e:  # noqa: BLE001
            caught.append(e)

    m().wait(10)
    assert caught == [e1]
    observe(f1, f2)


def test_T10_when_any_first_to_complete():
    """T10/R5.7: when_any completes with the first task to complete."""
    srcs = [st.TaskCompletionSource() for _ in range(3)]
    w = st.Task.when_any(*[s.task for s in srcs])
    assert not w.is_completed
    srcs[1].set_result("b")
    assert w.result is srcs[1].task
    srcs[0].set_result("a")
    assert w.result is srcs[1].task
    srcs[2].set_result("c")


def test_T10_when_any_already_completed_first_in_argument_order():
    """T10/S5.3: when several are complete, the first in argument order wins."""
    t1, t2 = completed(1), completed(2)
    p = st.TaskCompletionSource()
    assert st.Task.when_any(p.task, t2, t1).result is t2
    assert st.Task.when_any(t1, t1).result is t1
    assert st.Task.when_any([t1, t2]).result is t1
    p.set_result(None)


def test_T10_when_any_never_faults():
    """T10/R5.7: a faulted or canceled winner still gives a RAN_TO_COMPLETION
    when_any whose result is that task."""
    f = faulted(ValueError())
    w = st.Task.when_any(f)
    assert w.status == TS.RAN_TO_COMPLETION
    assert w.result is f
    c = canceled()
    w2 = st.Task.when_any(c)
    assert w2.status == TS.RAN_TO_COMPLETION and w2.result is c
    observe(f)


@pytest.mark.parametrize("form", ["no-args", "empty-list"])
def test_T10_when_any_of_nothing_raises_value_error(form):
    """T10/R5.7: when_any of nothing raises ValueError."""
    with pytest.raises(ValueError):
        if form == "no-args":
            st.Task.when_any()
        else:
            st.Task.when_any([])


# ---------------------------------------------------------------------------
# T12 cached results
# ---------------------------------------------------------------------------

CACHED = [None, True, False, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("value", CACHED, ids=repr)
def test_T12_from_result_cached(value):
    """T12/R6.7: from_result of None, True, False and -1..8 is the same object
    every time, with the right result."""
    a = st.Task.from_result(value)
    b = st.Task.from_result(value)
    assert a is b
    assert a.result is value or (a.result == value and type(a.result) is type(value))


@pytest.mark.parametrize("value", [9, -2, 100, 1.0, 0.0, "x", ()], ids=repr)
def test_T12_from_result_not_cached_for_other_values(value):
    """T12/R6.7: other values (ints outside -1..8, floats, strings...) are not
    cached: two live tasks are distinct objects."""
    a = st.Task.from_result(value)
    b = st.Task.from_result(value)
    assert a is not b
    assert a.result == value


def test_T12_cache_distinguishes_bool_and_int():
    """T12/R6.7: False and 0, True and 1 are different cached tasks (the
    result keeps its type), and 1.0 is not the int 1 task."""
    assert st.Task.from_result(False).result is False
    assert st.Task.from_result(0).result == 0 and type(st.Task.from_result(0).result) is int
    assert st.Task.from_result(True).result is True
    assert type(st.Task.from_result(1).result) is int
    assert type(st.Task.from_result(1.0).result) is float
    assert st.Task.from_result(False) is not st.Task.from_result(0)
    assert st.Task.from_result(True) is not st.Task.from_result(1)


@pytest.mark.parametrize("value", [None, True, False, -1, 3, 8], ids=repr)
def test_T12_sync_async_method_returns_cached_task(value):
    """T12/R6.7/S6.4: a synchronously completing async method returning a
    cacheable value returns the same task every call, shared with from_result."""

    @st.async_method
    async def m():
        return value

    a, b = m(), m()
    assert a is b
    assert a is st.Task.from_result(value)
    assert a.result is value or a.result == value


@pytest.mark.parametrize("value", [9, -2, 42], ids=repr)
def test_T12_sync_async_method_other_values_not_cached(value):
    """T12/R6.7/S6.4: -5 / 42 style values are not cached."""

    @st.async_method
    async def m():
        return value

    a, b = m(), m()
    assert a is not b
    assert a.result == value


def test_T12_suspended_async_method_task_is_not_cached():
    """T12/R6.7: a task completed after suspension is never the cached one."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await src.task
        return 3

    a = m()
    src.set_result(None)
    assert a.result == 3
    assert a is not st.Task.from_result(3)
