"""SPEC V1-V5: ValueTask, IValueTaskSource, ManualResetValueTaskSourceCore,
@async_value_method and the pooling builder.

Scenarios are ported from dotnet/runtime (reference/dotnet-semantics-vt-pool.md
§10): VT = ValueTaskTests.cs (S1.x), MR = ManualResetValueTaskSourceTests.cs
(S3.x), PB = PoolingAsyncValueTaskMethodBuilderTests.cs (S4.x); the rule
numbers 1.x-4.x are the reference's (written R1_5 etc. in test names).
"""

from __future__ import annotations

import contextvars
import gc
import sys
import threading
import tracemalloc
import weakref

import pytest

import sharptask as st
from conftest import join_ok, make_canceled_token, start_thread, wait_until

SC = st.SynchronizationContext
MRVTSC = st.ManualResetValueTaskSourceCore
Status = st.ValueTaskSourceStatus
Flags = st.ValueTaskSourceOnCompletedFlags
IOE = st.InvalidOperationError


@pytest.fixture
def lax():
    """set_strict_value_task(False) for the test (.NET's exact rules)."""
    prev = st.set_strict_value_task(False)
    try:
        yield
    finally:
        st.set_strict_value_task(prev)


@pytest.fixture(autouse=True)
def _strict_by_default():
    assert st.get_strict_value_task() is True
    yield
    st.set_strict_value_task(True)


class CountingContext(SC):
    """A SynchronizationContext that counts posts and runs them on the pool."""

    def __init__(self):
        super().__init__()
        self.posts = 0
        self.done = threading.Event()

    def post(self, callback, state=None):
        self.posts += 1
        super().post(callback, state)


class CountingScheduler(st.TaskScheduler):
    """A custom TaskScheduler that counts queue_task calls (C7)."""

    def __init__(self):
        super().__init__()
        self.queued = 0

    def queue_task(self, task):
        self.queued += 1
        st.ThreadPool.queue_user_work_item(lambda: self.try_execute_task(task))

    def try_execute_task_inline(self, task, task_was_previously_queued):
        return False

    def get_scheduled_tasks(self):
        return []


class Recorder:
    """A continuation that records (state, thread, context value) once."""

    def __init__(self, var=None):
        self.calls = []
        self.event = threading.Event()
        self.var = var

    def __call__(self, state):
        value = self.var.get() if self.var is not None else None
        self.calls.append((state, threading.get_ident(), value))
        self.event.set()

    def wait(self, timeout=10):
        assert self.event.wait(timeout), "continuation never ran"
        return self.calls[0]


class CoreSource:
    """A Python IValueTaskSource over ManualResetValueTaskSourceCore (V3),
    recording the flags each on_completed receives."""

    def __init__(self):
        self.core = MRVTSC()
        self.flags = []
        self.status_calls = 0

    def start(self):
        return st.ValueTask(self, self.core.version)

    def get_status(self, token):
        self.status_calls += 1
        return self.core.get_status(token)

    def get_result(self, token):
        return self.core.get_result(token)

    def on_completed(self, continuation, state, token, flags):
        self.flags.append(flags)
        self.core.on_completed(continuation, state, token, flags)


class PlainSource:
    """A hand-written IValueTaskSource with no core at all (V3)."""

    def __init__(self):
        self.status = Status.PENDING
        self.value = None
        self.error = None
        self.continuation = None
        self.lock = threading.Lock()

    def get_status(self, token):
        assert token == 7
        return self.status

    def get_result(self, token):
        assert token == 7
        if self.error is not None:
            raise self.error
        return self.value

    def on_completed(self, continuation, state, token, flags):
        with self.lock:
            if self.status == Status.PENDING:
                self.continuation = (continuation, state)
                return
        st.ThreadPool.queue_user_work_item(lambda: continuation(state))

    def complete(self, value=None, error=None, status=Status.SUCCEEDED):
        with self.lock:
            self.value, self.error, self.status = value, error, status
            cont, self.continuation = self.continuation, None
        if cont is not None:
            cont[0](cont[1])


def observe(t):
    _ = t.exception


# ------------------------------------------------------------------- V1


def test_V1_R1_2_result_backed_is_completed_successfully():
    """V1/1.2/1.4: a result-backed ValueTask is completed and successful."""
    vt = st.ValueTask(42)
    assert vt.is_completed and vt.is_completed_successfully
    assert not vt.is_faulted and not vt.is_canceled
    assert vt.result == 42


def test_V1_S1_1_default_value_task_is_completed_with_none():
    """S1.1 Generic_DefaultValueTask_DefaultValue: ValueTask() is completed
    with None; completed_task is a class attribute, reusable."""
    assert st.ValueTask().result is None
    ct = st.ValueTask.completed_task
    assert ct is st.ValueTask.completed_task
    assert ct.is_completed_successfully
    assert ct.result is None and ct.result is None  # preserved: reusable

    async def main():
        await st.ValueTask.completed_task
        await st.ValueTask.completed_task
        return 1
    assert st.run(main) == 1


def test_V1_S1_2_task_backed_pending_then_fault_raises_the_exception_itself():
    """S1.2 Generic_CreateFromNotCompleted_ThenFault (Task mode): flags all
    false while pending; then faulted, and result / get_result raise the
    same exception instance, not an AggregateError (V1: unlike Task.result)."""
    tcs = st.TaskCompletionSource()
    vt = st.ValueTask(tcs.task)
    assert not (vt.is_completed or vt.is_completed_successfully
                or vt.is_faulted or vt.is_canceled)
    e = KeyError("boom")
    tcs.set_exception(e)
    assert vt.is_completed and vt.is_faulted and not vt.is_canceled
    with pytest.raises(KeyError) as info:
        vt.result
    assert info.value is e
    with pytest.raises(KeyError) as info:
        st.ValueTask(tcs.task).get_awaiter().get_result()
    assert info.value is e
    with pytest.raises(st.AggregateError):
        tcs.task.result  # the Task itself aggregates (T3)


def test_V1_S1_2_source_backed_pending_then_fault():
    """S1.2 (source mode): the status comes from get_status(token) each
    time (1.4), and the fault is the stored exception itself."""
    src = CoreSource()
    vt = src.start()
    assert not (vt.is_completed or vt.is_faulted or vt.is_canceled)
    assert src.status_calls == 3
    e = ValueError("source fault")
    src.core.set_exception(e)
    assert vt.is_faulted and vt.is_completed and not vt.is_completed_successfully
    with pytest.raises(ValueError) as info:
        vt.result
    assert info.value is e


def test_V1_R1_4_source_canceled_status():
    """1.4/3.4: an OperationCanceledError makes the source Canceled."""
    src = CoreSource()
    src.core.set_exception(st.OperationCanceledError())
    vt = src.start()
    assert vt.is_canceled and vt.is_completed and not vt.is_faulted


def test_V1_R1_3_constructor_argument_errors():
    """1.3/§0: ArgumentNull → TypeError naming the parameter."""
    with pytest.raises(TypeError, match="task"):
        st.ValueTask(task=5)
    with pytest.raises(TypeError, match="source"):
        st.ValueTask(None, 1)
    with pytest.raises(TypeError, match="token"):
        st.ValueTask(MRVTSC(), "0")
    with pytest.raises(TypeError, match="on_completed"):
        st.ValueTask(object.__new__(type("NoSource", (), {
            "get_status": lambda s, t: 0, "get_result": lambda s, t: 0})), 0)
    with pytest.raises(TypeError):
        st.ValueTask(1, 2, 3)
    # keywords choose the backing explicitly
    t = st.Task.from_result(3)
    assert st.ValueTask(result=t).result is t
    assert st.ValueTask(task=t).result == 3
    core = MRVTSC()
    core.set_result(5)
    assert st.ValueTask(source=core, token=0).result == 5


def test_V1_from_result_from_exception_from_canceled():
    """V1 factories (1.3): from_exception / from_canceled wrap a Task."""
    assert st.ValueTask.from_result("x").result == "x"
    e = OSError("io")
    vt = st.ValueTask.from_exception(e)
    assert vt.is_faulted
    with pytest.raises(OSError) as info:
        vt.result
    assert info.value is e
    token = make_canceled_token()
    vt = st.ValueTask.from_canceled(token)
    assert vt.is_canceled
    with pytest.raises(st.OperationCanceledError):
        vt.result


def test_V1_R1_6_as_task_by_backing(lax):
    """1.6 / S1.3: as_task of a result gives a (cached for small values)
    completed Task, not idempotent for 42; of a Task the Task itself; of a
    completed source a completed Task each time."""
    vt = st.ValueTask(1)
    assert vt.as_task() is st.Task.from_result(1)  # T12 cache
    vt = st.ValueTask(42)
    a, b = vt.as_task(), vt.as_task()
    assert a is not b and a.result == b.result == 42
    t = st.TaskCompletionSource().task
    vt = st.ValueTask(t)
    assert vt.as_task() is t and vt.as_task() is t
    core = MRVTSC()
    core.set_result("done")
    vt = st.ValueTask(core, 0)
    a, b = vt.as_task(), vt.as_task()
    assert a.result == b.result == "done" and a is not b


def test_V1_S1_4_as_task_of_canceled_source_is_canceled():
    """S1.4 *_CreateFromValueTaskSource_Canceled: sync (already canceled)
    and async (canceled later) both give a Canceled task, keeping the
    OperationCanceledError."""
    core = MRVTSC()
    oce = st.OperationCanceledError("stop")
    core.set_exception(oce)
    t = st.ValueTask(core, 0).as_task()
    assert t.is_canceled
    with pytest.raises(st.OperationCanceledError) as info:
        t.get_awaiter().get_result()
    assert info.value is oce

    core2 = MRVTSC()
    t2 = st.ValueTask(core2, 0).as_task()
    assert not t2.is_completed
    oce2 = st.OperationCanceledError("later")
    core2.set_exception(oce2)
    assert wait_until(lambda: t2.is_completed)
    assert t2.is_canceled


def test_V1_R1_6_as_task_of_pending_source_completes_later():
    """1.6: a pending source gets one on_completed (flags NONE) and the
    Task completes with its result, or faults with its exception."""
    src = CoreSource()
    t = src.start().as_task()
    assert src.flags == [Flags.NONE]
    assert not t.is_completed
    src.core.set_result(11)
    assert t.wait(10) and t.result == 11

    src = CoreSource()
    t = src.start().as_task()
    e = RuntimeError("late")
    src.core.set_exception(e)
    assert wait_until(lambda: t.is_completed)
    assert t.is_faulted and t.exception.inner_exceptions[0] is e


def test_V1_S1_8_as_task_source_passing_invalid_state_raises():
    """S1.8 *_AsTask_ValueTaskSourcePassesInvalidStateToOnCompleted_Throws:
    a source that calls the continuation with a foreign state, or twice,
    gets ValueError (.NET's ArgumentOutOfRangeException)."""

    class BadState(PlainSource):
        def on_completed(self, continuation, state, token, flags):
            continuation(object())

    with pytest.raises(ValueError, match="state"):
        st.ValueTask(BadState(), 7).as_task()

    class Twice(PlainSource):
        def on_completed(self, continuation, state, token, flags):
            self.status = Status.SUCCEEDED
            continuation(state)
            continuation(state)

    with pytest.raises(ValueError, match="state"):
        st.ValueTask(Twice(), 7).as_task()


def test_V1_S1_5_preserve_source_backed_becomes_task_backed():
    """S1.5 *_Preserve_FromValueTaskSource_TransitionedToTask: vt2 =
    vt1.preserve() != vt1; vt2.preserve() == vt2; vt2.as_task() is the same
    Task twice; vt2 may be awaited any number of times."""
    core = MRVTSC()
    vt1 = st.ValueTask(core, 0)
    vt2 = vt1.preserve()
    assert vt2 != vt1
    assert vt2.preserve() == vt2
    assert vt2.as_task() is vt2.as_task()
    core.set_result(9)
    assert vt2.as_task().wait(10)

    async def twice():
        return (await vt2) + (await vt2)
    assert st.run(twice) == 18


def test_V1_R1_7_preserve_of_result_and_task():
    """1.7: preserve() of a result is itself; of a Task, an equal
    ValueTask over the same Task."""
    vt = st.ValueTask(5)
    assert vt.preserve() is vt
    assert vt.result == 5 and vt.result == 5
    t = st.Task.from_result(6)
    vt = st.ValueTask(t)
    p = vt.preserve()
    assert p == vt and p.as_task() is t


def test_V1_S1_6_equality_and_hash():
    """S1.6 Generic_OperatorEquals / 1.8."""
    assert st.ValueTask(42) == st.ValueTask(42)
    assert hash(st.ValueTask(42)) == hash(st.ValueTask(42))
    assert st.ValueTask(42) != st.ValueTask(st.Task.from_result(42))
    src = MRVTSC()
    assert st.ValueTask(src, 17) != st.ValueTask(src, 18)
    assert st.ValueTask(src, 17) == st.ValueTask(src, 17)
    t = st.Task.from_result(1)
    assert st.ValueTask(t) == st.ValueTask(t)
    assert st.ValueTask(42) != 42


def test_V1_R1_10_await_completed_never_suspends():
    """V1/A4: awaiting a completed ValueTask continues on the same thread."""
    async def main():
        ident = threading.get_ident()
        a = await st.ValueTask(1)
        b = await st.ValueTask(st.Task.from_result(2))
        core = MRVTSC()
        core.set_result(3)
        c = await st.ValueTask(core, 0)
        return a + b + c, threading.get_ident() == ident
    assert st.run(main) == (6, True)


def test_V1_await_pending_task_backed_and_configure_await():
    """V1: awaiting a pending Task-backed ValueTask (plain and with
    configure_await(False)) resumes with its result."""
    tcs1, tcs2 = st.TaskCompletionSource(), st.TaskCompletionSource()

    @st.async_method
    async def main():
        a = await st.ValueTask(tcs1.task)
        b = await st.ValueTask(tcs2.task).configure_await(False)
        return a + b
    t = main()
    tcs1.set_result(1)
    tcs2.set_result(2)
    assert t.result == 3


def test_V1_S1_7_configured_awaiter_posts_to_captured_context():
    """S1.7 *_ConfiguredAwaiter_ContinuesOnCapturedContext: with a custom
    context current, configure_await(True) makes exactly one post,
    configure_await(False) none; for a pending Task-backed, a pending
    source-backed and an already completed ValueTask (awaiter's
    on_completed called explicitly)."""

    def run_case(make_vt, complete, flag):
        ctx = CountingContext()
        vt = make_vt()
        aw = vt.configure_await(flag).get_awaiter()
        done = threading.Event()
        prev = SC.current()
        SC.set_synchronization_context(ctx)
        try:
            aw.on_completed(done.set)
        finally:
            SC.set_synchronization_context(prev)
        complete()
        assert done.wait(10)
        return ctx.posts

    for flag, expected in ((True, 1), (False, 0)):
        tcs = st.TaskCompletionSource()
        assert run_case(lambda: st.ValueTask(tcs.task),
                        lambda: tcs.set_result(1), flag) == expected
        core = MRVTSC()
        assert run_case(lambda: st.ValueTask(core, 0),
                        lambda: core.set_result(1), flag) == expected
        assert run_case(lambda: st.ValueTask(1), lambda: None,
                        flag) == expected


def test_V1_C4_configure_await_takes_a_bool_only():
    """C4: ValueTask.configure_await takes a bool (ConfigureAwaitOptions
    are for Task only, as in .NET); the message says what to use."""
    with pytest.raises(TypeError, match="as_task"):
        st.ValueTask(1).configure_await(st.ConfigureAwaitOptions.NONE)
    c = st.ValueTask(1).configure_await(False)
    assert isinstance(c, st.ConfiguredValueTaskAwaitable)


def test_V1_repr_names_the_backing_without_consuming():
    vt = st.ValueTask(42)
    assert "result=42" in repr(vt)
    assert vt.result == 42  # repr did not consume it
    assert "task=" in repr(st.ValueTask(st.Task.from_result(1)))
    assert "source=" in repr(st.ValueTask(MRVTSC(), 0))


def test_V1_generic_alias_and_names():
    """§0: ValueTask is generic in the stubs and at runtime."""
    assert st.ValueTask[int] is not None
    assert st.ManualResetValueTaskSourceCore[str] is not None
    for name in ("ValueTask", "ValueTaskAwaiter", "ConfiguredValueTaskAwaitable",
                 "ManualResetValueTaskSourceCore", "ValueTaskSourceStatus",
                 "ValueTaskSourceOnCompletedFlags", "IValueTaskSource",
                 "async_value_method", "pool_stats", "set_strict_value_task"):
        obj = getattr(st, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
    for name in dir(st.ValueTask) + dir(MRVTSC):
        if name.startswith("_"):
            continue
        member = getattr(st.ValueTask, name, None) or getattr(MRVTSC, name)
        if isinstance(member, st.ValueTask):
            continue
        assert member.__doc__, name


# ------------------------------------------------------------------- V2


@pytest.mark.parametrize("how", ["await", "result", "as_task",
                                 "get_awaiter", "configured", "preserve"])
def test_V2_strict_second_consumption_raises_with_the_fix(how):
    """V2: in strict mode (the default) any second consumption raises
    InvalidOperationError saying it was consumed and naming preserve() and
    as_task()."""
    def consume(vt):
        if how == "await":
            async def main():
                return await vt
            return st.run(main)
        if how == "result":
            return vt.result
        if how == "as_task":
            return vt.as_task().result
        if how == "get_awaiter":
            return vt.get_awaiter().get_result()
        if how == "configured":
            async def main():
                return await vt.configure_await(False)
            return st.run(main)
        return vt.preserve().result

    makes = [lambda: st.ValueTask(st.Task.from_result(3))]
    if how != "preserve":  # preserve() of a result makes that one reusable
        makes.append(lambda: st.ValueTask(3))
    for make in makes:
        vt = make()
        assert consume(vt) == 3
        with pytest.raises(IOE) as info:
            consume(vt)
        msg = str(info.value)
        assert "already consumed" in msg
        assert "preserve()" in msg and "as_task()" in msg


def test_V2_strict_mixed_consumptions_and_status_reads():
    """V2: status properties and repr do not consume; await after result
    does."""
    vt = st.ValueTask(st.Task.from_result(1))
    for _ in range(3):
        assert vt.is_completed and vt.is_completed_successfully
    assert vt.result == 1
    assert vt.is_completed  # still readable

    async def again():
        return await vt
    with pytest.raises(IOE, match="already consumed"):
        st.run(again)
    with pytest.raises(IOE):
        vt.get_awaiter()
    with pytest.raises(IOE):
        vt.configure_await(True).get_awaiter()


def test_V2_strict_awaiter_get_result_twice_raises():
    """V2: the one consumption takes the result once."""
    aw = st.ValueTask(4).get_awaiter()
    assert aw.is_completed and aw.get_result() == 4
    with pytest.raises(IOE, match="already consumed"):
        aw.get_result()


def test_V2_preserved_and_completed_task_are_reusable():
    """V2: preserve() and completed_task give reusable ValueTasks."""
    p = st.ValueTask(st.Task.from_result(8)).preserve()

    async def main():
        return [await p for _ in range(3)] + [p.result, p.as_task().result]
    assert st.run(main) == [8] * 5


def test_V2_non_strict_result_and_task_backed_may_be_consumed_again(lax):
    """V2/1.11: set_strict_value_task(False): .NET's exact behaviour: result
    and Task backings are harmless to consume again."""
    vt = st.ValueTask(5)
    t = st.ValueTask(st.Task.from_result(6))

    async def main():
        return [await vt, await vt, vt.result, await t, await t, t.result]
    assert st.run(main) == [5, 5, 5, 6, 6, 6]
    assert t.as_task() is t.as_task()


def test_V2_non_strict_source_backed_fails_token_check_after_reset(lax):
    """V2/1.11/3.5: a source-backed ValueTask may be read again until its
    source is reset, then fails with InvalidOperationError from the token
    check."""
    core = MRVTSC()
    core.set_result(1)
    vt = st.ValueTask(core, core.version)
    assert vt.result == 1 and vt.result == 1
    core.reset()
    with pytest.raises(IOE, match="token"):
        vt.result
    with pytest.raises(IOE, match="token"):
        vt.is_completed


def test_V2_set_strict_returns_previous_setting():
    assert st.set_strict_value_task(False) is True
    assert st.get_strict_value_task() is False
    assert st.set_strict_value_task(True) is False


# ------------------------------------------------------------------- V3


def test_V3_python_class_implementing_the_source_protocol():
    """V3: a Python class over ManualResetValueTaskSourceCore backs an
    awaited ValueTask, completed from another thread; the builder's
    awaiter registers with USE_SCHEDULING_CONTEXT and no
    FLOW_EXECUTION_CONTEXT (the unsafe path, 1.10)."""
    src = CoreSource()
    assert isinstance(src, st.IValueTaskSource)

    @st.async_method
    async def main():
        first = await src.start()
        src.core.reset()
        vt = src.start()
        st.Task.run(lambda: src.core.set_result(first + 1))
        return first, await vt

    t = main()
    assert not t.is_completed
    th = start_thread(src.core.set_result, 41)
    join_ok(th)
    assert t.result == (41, 42)
    assert src.flags[0] == Flags.USE_SCHEDULING_CONTEXT
    assert isinstance(src.flags[0], Flags)


def test_V3_plain_python_source_without_core():
    """V3: any object with get_status/get_result/on_completed works,
    including a fault and a cancel (the OperationCanceledError itself)."""
    src = PlainSource()

    async def main():
        return await st.ValueTask(src, 7)
    t = st.Task.run(main)
    assert wait_until(lambda: src.continuation is not None)
    src.complete(value="ok")
    assert t.result == "ok"

    src = PlainSource()
    e = LookupError("fault")
    src.complete(error=e, status=Status.FAULTED)
    with pytest.raises(LookupError) as info:
        st.run(main)
    assert info.value is e

    src = PlainSource()
    t = st.ValueTask(src, 7).as_task()
    oce = st.OperationCanceledError()
    src.complete(error=oce, status=Status.CANCELED)
    assert wait_until(lambda: t.is_completed)
    assert t.is_canceled


def test_V3_awaiter_flags_safe_unsafe_and_configured():
    """V3/1.10: on_completed passes FLOW_EXECUTION_CONTEXT, unsafe does
    not; USE_SCHEDULING_CONTEXT iff continue_on_captured_context."""
    cases = [
        (lambda vt: vt.get_awaiter(), "on_completed",
         Flags.USE_SCHEDULING_CONTEXT | Flags.FLOW_EXECUTION_CONTEXT),
        (lambda vt: vt.get_awaiter(), "unsafe_on_completed",
         Flags.USE_SCHEDULING_CONTEXT),
        (lambda vt: vt.configure_await(False).get_awaiter(), "on_completed",
         Flags.FLOW_EXECUTION_CONTEXT),
        (lambda vt: vt.configure_await(False), "unsafe_on_completed",
         Flags.NONE),
    ]
    for get, method, expected in cases:
        src = CoreSource()
        aw = get(src.start())
        assert not aw.is_completed
        done = threading.Event()
        getattr(aw, method)(done.set)
        src.core.set_result(None)
        assert done.wait(10)
        assert src.flags == [expected]
        assert aw.get_result() is None


def test_V3_enums_have_dotnet_values():
    """V3/2.2/2.3: ValueTaskSourceStatus is an IntEnum, the flags an
    IntFlag (C4), with .NET's values."""
    import enum
    assert issubclass(Status, enum.IntEnum)
    assert [int(s) for s in (Status.PENDING, Status.SUCCEEDED,
                             Status.FAULTED, Status.CANCELED)] == [0, 1, 2, 3]
    assert issubclass(Flags, enum.IntFlag)
    assert int(Flags.NONE) == 0
    assert int(Flags.USE_SCHEDULING_CONTEXT) == 1
    assert int(Flags.FLOW_EXECUTION_CONTEXT) == 2
    assert isinstance(Flags.USE_SCHEDULING_CONTEXT
                      | Flags.FLOW_EXECUTION_CONTEXT, Flags)


# ------------------------------------------------------------------- V4


def test_V4_R3_2_version_starts_at_zero_and_reset_increments():
    """3.2: Version starts at 0; two resets from new give 2."""
    core = MRVTSC()
    assert core.version == 0
    core.reset()
    core.reset()
    assert core.version == 2
    assert "version=2" in repr(core)


def test_V4_S3_1_access_wrong_version_fails():
    """S3.1 AccessWrongVersion_Fails: after one reset, tokens 0 and 2 fail
    for get_status, get_result and on_completed."""
    core = MRVTSC()
    core.reset()
    for token in (0, 2, -1, 2**40):
        with pytest.raises(IOE, match="token"):
            core.get_status(token)
        with pytest.raises(IOE, match="token"):
            core.get_result(token)
        with pytest.raises(IOE, match="token"):
            core.on_completed(lambda s: None, None, token, Flags.NONE)
    assert core.get_status(1) == Status.PENDING
    with pytest.raises(TypeError):
        core.get_status("1")


def test_V4_S3_2_set_twice_fails():
    """S3.2 SetTwice_Fails: set_result then set_result/set_exception raise;
    after reset, set_exception then either raises.  The stored outcome is
    not overwritten (deviation: .NET overwrites before throwing)."""
    core = MRVTSC()
    core.set_result(42)
    with pytest.raises(IOE):
        core.set_result(43)
    with pytest.raises(IOE):
        core.set_exception(ValueError())
    assert core.get_result(0) == 42
    core.reset()
    core.set_exception(ValueError("first"))
    with pytest.raises(IOE):
        core.set_result(1)
    with pytest.raises(IOE):
        core.set_exception(KeyError())
    with pytest.raises(ValueError, match="first"):
        core.get_result(1)


def test_V4_S3_3_get_result_before_completed_fails():
    """S3.3 GetResult_BeforeCompleted_Fails."""
    with pytest.raises(IOE, match="not completed"):
        MRVTSC().get_result(0)


def test_V4_S3_4_reuse_instance_with_resets():
    """S3.4 ReuseInstanceWithResets_Success: get_result is repeatable until
    reset; two ValueTasks over one (source, version) both get the value;
    the source serves many operations one after another."""
    core = MRVTSC()

    async def main():
        total = 0
        for i in range(5):
            core.set_result(i)
            total += await st.ValueTask(core, core.version)
            total += await st.ValueTask(core, core.version)
            core.reset()
        return total
    assert st.run(main) == 2 * sum(range(5))
    assert core.version == 5


def test_V4_S3_5_on_completed_twice_fails():
    """S3.5 OnCompleted_UsedTwiceBeforeCompletion_Throws; and (V4) a second
    on_completed after completion for one version raises too; the first
    continuation still runs exactly once."""
    core = MRVTSC()
    rec = Recorder()
    core.on_completed(rec, "s", 0, Flags.NONE)
    with pytest.raises(IOE, match="already called"):
        core.on_completed(rec, "t", 0, Flags.NONE)
    core.set_result(1)
    assert rec.wait() [0] == "s"
    with pytest.raises(IOE):
        core.on_completed(rec, "u", 0, Flags.NONE)
    assert len(rec.calls) == 1

    core2 = MRVTSC()
    core2.set_result(1)
    rec2 = Recorder()
    core2.on_completed(rec2, 1, 0, Flags.NONE)
    with pytest.raises(IOE):
        core2.on_completed(rec2, 2, 0, Flags.NONE)
    rec2.wait()
    assert len(rec2.calls) == 1
    # the next version accepts one again
    core2.reset()
    core2.on_completed(rec2, 3, 1, Flags.NONE)


@pytest.mark.parametrize("run_async", [False, True])
def test_V4_S3_6_late_continuation_always_runs_asynchronously(run_async):
    """S3.6 OnCompleted_ContinuationAlwaysInvokedAsynchronously: set_result
    then on_completed: the continuation runs on another thread."""
    core = MRVTSC()
    core.run_continuations_asynchronously = run_async
    core.set_result(1)
    rec = Recorder()
    core.on_completed(rec, "state", 0, Flags.NONE)
    state, ident, _ = rec.wait()
    assert state == "state"
    assert ident != threading.get_ident()


@pytest.mark.parametrize("run_async", [False, True])
def test_V4_S3_7_continuation_inline_iff_not_run_async(run_async):
    """S3.7 SetResult_RunContinuationsAsynchronously_ContinuationInvoked
    Accordingly: on_completed then set_result: inline on the setter's
    thread iff run_continuations_asynchronously is False."""
    core = MRVTSC()
    assert core.run_continuations_asynchronously is False
    core.run_continuations_asynchronously = run_async
    assert core.run_continuations_asynchronously is run_async
    rec = Recorder()
    core.on_completed(rec, None, 0, Flags.NONE)
    core.set_result(1)
    if not run_async:
        assert rec.calls and rec.calls[0][1] == threading.get_ident()
    else:
        _, ident, _ = rec.wait()
        assert ident != threading.get_ident()
    core.reset()
    assert core.run_continuations_asynchronously is run_async  # kept


def test_V4_S3_8_operation_canceled_exception_is_canceled():
    """S3.8 SetException_OperationCanceledException_StatusIsCanceled."""
    core = MRVTSC()
    oce = st.TaskCanceledError()
    core.set_exception(oce)
    assert core.get_status(0) == Status.CANCELED
    with pytest.raises(st.OperationCanceledError) as info:
        core.get_result(0)
    assert info.value is oce
    core.reset()
    core.set_exception(ValueError)  # a class is instantiated
    assert core.get_status(1) == Status.FAULTED


def test_V4_R3_5_same_exception_and_traceback_on_every_get_result():
    """3.5: get_result rethrows the same object, and its traceback does
    not grow with each rethrow (ExceptionDispatchInfo)."""
    def fail():
        raise KeyError("k")
    try:
        fail()
    except KeyError as e:
        exc = e
    core = MRVTSC()
    core.set_exception(exc)
    depths = []
    for _ in range(3):
        try:
            core.get_result(0)
        except KeyError as e:
            assert e is exc
            depth, tb = 0, e.__traceback__
            while tb is not None:
                depth, tb = depth + 1, tb.tb_next
            depths.append(depth)
    assert depths[0] == depths[1] == depths[2]


@pytest.mark.parametrize("run_async", [False, True])
@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize("set_before", [False, True])
def test_V4_R3_9_synchronization_context_captured_if_requested(
        run_async, capture, set_before):
    """3.9 SynchronizationContext_CaptureIfRequested: for all 8
    combinations the captured context receives exactly one post iff
    USE_SCHEDULING_CONTEXT was passed."""
    core = MRVTSC()
    core.run_continuations_asynchronously = run_async
    ctx = CountingContext()
    rec = Recorder()
    if set_before:
        core.set_result(1)
    prev = SC.current()
    SC.set_synchronization_context(ctx)
    try:
        core.on_completed(rec, None, 0, Flags.USE_SCHEDULING_CONTEXT
                          if capture else Flags.NONE)
    finally:
        SC.set_synchronization_context(prev)
    if not set_before:
        core.set_result(1)
    rec.wait()
    assert ctx.posts == (1 if capture else 0)


@pytest.mark.parametrize("capture", [False, True])
def test_V4_R3_9_task_scheduler_captured_if_requested(capture):
    """3.9 TaskScheduler_CaptureIfRequested: inside a task running on a
    custom scheduler, USE_SCHEDULING_CONTEXT makes the continuation one
    more task queued to that scheduler."""
    sched = CountingScheduler()
    core = MRVTSC()
    rec = Recorder()

    def register():
        assert st.TaskScheduler.current() is sched
        core.on_completed(rec, None, 0, Flags.USE_SCHEDULING_CONTEXT
                          if capture else Flags.NONE)
    st.Task.factory.start_new(register, scheduler=sched).wait(10)
    assert sched.queued == 1
    core.set_result(1)
    rec.wait()
    assert wait_until(lambda: sched.queued == (2 if capture else 1))


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("set_before", [False, True])
def test_V4_R3_10_flow_execution_context(flow, set_before):
    """3.10 FlowContext_Set{Before,After}OnCompleted_FlowsIfExpected: with
    FLOW_EXECUTION_CONTEXT the continuation sees the context variable as it
    was at on_completed (42); without, the pool thread's default (0)."""
    var = contextvars.ContextVar("vt_flow", default=0)
    core = MRVTSC()
    core.run_continuations_asynchronously = True  # run it on the pool
    rec = Recorder(var)
    if set_before:
        core.set_result(1)

    def register():
        var.set(42)
        core.on_completed(rec, None, 0, Flags.FLOW_EXECUTION_CONTEXT
                          if flow else Flags.NONE)
    contextvars.copy_context().run(register)
    if not set_before:
        core.set_result(1)
    _, _, seen = rec.wait()
    assert seen == (42 if flow else 0)


def test_V4_R2_3_unknown_flags_ignored():
    """2.3 OnCompleted_UnknownFlagsIgnored (int.MaxValue)."""
    for flags in (2**31 - 1, 2**70 + 4, -1):
        core = MRVTSC()
        rec = Recorder()
        core.on_completed(rec, None, 0, flags)
        core.set_result(None)
        rec.wait()
    with pytest.raises(TypeError):
        MRVTSC().on_completed(rec, None, 0, "flags")


def test_V4_R3_7_inline_continuation_exception_propagates_from_set_result():
    """3.7: an exception from an inline continuation propagates out of
    set_result (after the outcome was published)."""
    core = MRVTSC()

    def bad(state):
        raise ZeroDivisionError("in continuation")
    core.on_completed(bad, None, 0, Flags.NONE)
    with pytest.raises(ZeroDivisionError):
        core.set_result(5)
    assert core.get_result(0) == 5


def test_V4_R3_8_argument_errors():
    """3.8/§0: on_completed(None) and set_exception(None) are TypeErrors."""
    core = MRVTSC()
    with pytest.raises(TypeError, match="continuation"):
        core.on_completed(None, None, 0, Flags.NONE)
    with pytest.raises(TypeError, match="exception"):
        core.set_exception(None)
    with pytest.raises(TypeError):
        core.set_exception(42)
    with pytest.raises(TypeError):
        MRVTSC(1)
    core.on_completed(lambda s: None, None, 0, Flags.NONE)  # still free


def test_V4_reset_while_a_continuation_waits_drops_it():
    """3.2: reset does not check for a waiter: the continuation is
    forgotten (its references released) and never runs."""
    core = MRVTSC()

    class Cont:
        ran = False

        def __call__(self, state):
            Cont.ran = True
    c = Cont()
    ref = weakref.ref(c)
    core.on_completed(c, None, 0, Flags.NONE)
    del c
    core.reset()
    gc.collect()
    assert ref() is None
    core.set_result(1)
    assert not Cont.ran


def test_V4_subclass_is_a_source():
    """V4: ManualResetValueTaskSourceCore may be subclassed; the subclass is
    an IValueTaskSource itself."""
    class Op(MRVTSC):
        def __init__(self, name):
            super().__init__()
            self.name = name

    op = Op("x")
    assert isinstance(op, st.IValueTaskSource)

    async def main():
        return await st.ValueTask(op, op.version)
    t = st.Task.run(main)
    op.set_result("via subclass")
    assert t.result == "via subclass"
    assert weakref.ref(op)() is op


# ------------------------------------------------------------------- V5


@st.async_value_method
async def value_add(a, b):
    return a + b


@st.async_value_method
async def value_wait(t):
    return await t


@st.async_value_method(pooling=True)
async def pooled_wait(t):
    return await t


@st.async_value_method(pooling=True)
async def pooled_add(a, b):
    return a + b


def _count_tasks():
    return sum(1 for o in gc.get_objects() if type(o) is st.Task)


def test_V5_sync_completion_allocates_no_task():
    """V5/4.1/4.2: a body that completes synchronously returns a
    result-backed ValueTask and allocates no Task (plain and pooling)."""
    gc.collect()
    before = _count_tasks()
    vts = [value_add(i, 1000) for i in range(50)]
    vts += [pooled_add(i, 1000) for i in range(50)]
    assert _count_tasks() == before
    assert all("result=" in repr(v) for v in vts)
    assert [v.result for v in vts[:3]] == [1000, 1001, 1002]


def test_V5_S4_1_set_result_before_task_is_a_result_value_task():
    """S4.1/S4.2: the synchronous result equals ValueTask(42) /
    ValueTask(None)."""
    @st.async_value_method(pooling=True)
    async def forty_two():
        return 42

    @st.async_value_method
    async def nothing():
        pass
    assert forty_two() == st.ValueTask(42)
    assert nothing() == st.ValueTask()


def test_V5_suspending_default_builder_is_task_backed():
    """4.1: a call that suspends returns a Task-backed ValueTask (the box
    is a Task): as_task gives that Task, and non-strict reads repeat."""
    tcs = st.TaskCompletionSource()
    vt = value_wait(tcs.task)
    assert "task=" in repr(vt)
    t = vt.as_task()
    assert isinstance(t, st.Task) and not t.is_completed
    tcs.set_result(3)
    assert t.result == 3


def test_V5_exception_before_suspension_goes_into_the_value_task():
    """V5/A2: the call never raises; the ValueTask is faulted (or canceled
    for an OperationCanceledError, S4.3) and gives the same exception."""
    e = ArithmeticError("sync")

    @st.async_value_method(pooling=True)
    async def fails():
        raise e

    @st.async_value_method
    async def cancels():
        raise st.OperationCanceledError()
    vt = fails()
    assert vt.is_faulted

    async def main():
        try:
            await vt
        except ArithmeticError as got:
            return got
    assert st.run(main) is e
    c = cancels()
    assert c.is_canceled
    with pytest.raises(st.OperationCanceledError):
        c.result


def test_V5_S4_3_pooled_oce_after_suspension_cancels():
    """S4.3 Generic_SetException_OperationCanceledException_CancelsTask:
    the pooled ValueTask is canceled and rethrows the same error."""
    oce = st.OperationCanceledError("x")

    @st.async_value_method(pooling=True)
    async def later(t):
        await t
        raise oce
    tcs = st.TaskCompletionSource()
    vt = later(tcs.task)
    assert "pooled" in repr(vt) and not vt.is_completed
    tcs.set_result(None)
    assert vt.is_canceled and not vt.is_faulted
    with pytest.raises(st.OperationCanceledError) as info:
        vt.get_awaiter().get_result()
    assert info.value is oce


def test_V5_S4_4_context_changes_in_sync_part_do_not_flow_out():
    """S4.4 *_Start_ExecutionContextChangesInMoveNextDontFlowOut."""
    var = contextvars.ContextVar("pb_var", default=1)

    @st.async_value_method(pooling=True)
    async def bump():
        var.set(var.get() + 1)
        return var.get()
    assert bump().result == 2
    assert var.get() == 1


def test_V5_pooling_reuses_boxes_and_counts():
    """V5/4.4/4.5: sequential awaited calls that suspend reuse one box:
    pool_stats counts every rent and return, creates almost nothing."""
    keys = {"rented", "returned", "created", "pooled"}
    assert keys <= set(st.pool_stats())
    n = 200
    gates = [st.TaskCompletionSource() for _ in range(n)]

    @st.async_method
    async def driver():
        total = 0
        for g in gates:
            total += await pooled_wait(g.task)
        return total

    # warm the pool
    g = st.TaskCompletionSource()
    w = pooled_wait(g.task)
    g.set_result(0)
    assert w.result == 0
    before = st.pool_stats()
    d = driver()
    for i, g in enumerate(gates):
        g.set_result(i)
    assert d.result == sum(range(n))
    after = st.pool_stats()
    assert after["rented"] - before["rented"] == n
    assert after["returned"] - before["returned"] == n
    assert after["created"] - before["created"] == 0
    assert after["pooled"] >= 1


def test_V5_S4_5_objects_pooled_with_concurrency():
    """S4.5 PoolingAsyncValueTasksBuilder_ObjectsPooled: 3 reps x 10
    concurrent pooled calls, each recursing with a short delay: the total
    is right and fewer boxes are created than rented (some reuse)."""
    @st.async_value_method(pooling=True)
    async def recurse(depth):
        await st.Task.delay(0.001)
        if depth == 0:
            return 1
        return 1 + await recurse(depth - 1)

    @st.async_method
    async def rep():
        vts = [recurse(10).as_task() for _ in range(10)]
        return sum(await st.Task.when_all(vts))

    before = st.pool_stats()
    total = sum(st.run(rep) for _ in range(3))
    after = st.pool_stats()
    assert total == 330
    rented = after["rented"] - before["rented"]
    created = after["created"] - before["created"]
    assert rented == 330
    assert created < rented
    assert after["returned"] - before["returned"] == 330


def _blocks():
    return len(tracemalloc.take_snapshot().traces)


def _allocations_per_suspending_call(leaf, n=120):
    """Blocks allocated by one awaited call that suspends, in steady state
    (W10): counted while the call is pending, so nothing freed hides it."""
    gates = [st.TaskCompletionSource() for _ in range(n)]
    counts = [0] * n

    @st.async_method
    async def driver():
        for i in range(n):
            g = gates[i].task
            b0 = _blocks()
            x = leaf(g)
            counts[i] = _blocks() - b0
            if leaf is _plain_leaf:
                x.send(None)  # step the coroutine to its suspension
                x.close()
            else:
                await x
            x = g = None

    was = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        d = driver()
        for g in gates:
            g.set_result(1)
        d.wait(30)
    finally:
        tracemalloc.stop()
        if was:
            gc.enable()
    return sorted(set(counts[n // 2:]))


async def _plain_leaf(t):
    return await t


@st.async_method
async def _task_leaf(t):
    return await t


def test_V5_W10_pooled_suspending_call_allocates_only_its_coroutine():
    """V5/W10: in steady state an awaited pooled call that suspends
    allocates nothing beyond the coroutine object; a Task method and a
    plain ValueTask method allocate one block more (their box)."""
    coroutine = _allocations_per_suspending_call(_plain_leaf)
    pooled = _allocations_per_suspending_call(pooled_wait)
    plain = _allocations_per_suspending_call(value_wait)
    task = _allocations_per_suspending_call(_task_leaf)
    assert coroutine == [1]
    assert pooled == coroutine, (pooled, coroutine)
    assert plain == [2] and task == [2]


def test_V5_pooled_second_await_strict_and_lax_never_repools(lax):
    """V5/1.11/4.7, the stale second get_result: a second await of a pooled
    ValueTask raises InvalidOperationError (token check) and leaves the box
    alone, even after another call rented it (.NET would re-pool it and
    corrupt that call)."""
    tcs1 = st.TaskCompletionSource()
    vt1 = pooled_wait(tcs1.task)
    tcs1.set_result("first")

    async def take(vt):
        return await vt
    assert st.run(take, vt1) == "first"
    tcs2 = st.TaskCompletionSource()
    vt2 = pooled_wait(tcs2.task)  # rents the box vt1 used
    stats = st.pool_stats()
    for _ in range(3):
        with pytest.raises(IOE, match="token"):
            st.run(take, vt1)
        with pytest.raises(IOE, match="token"):
            vt1.get_awaiter().get_result()
    assert st.pool_stats()["returned"] == stats["returned"]
    assert not vt2.is_completed
    tcs2.set_result("second")
    assert st.run(take, vt2) == "second"


def test_V5_pooled_strict_second_consumption_caught_before_the_box():
    """V2+V5: strict mode stops a second consumption before it reaches the
    box, so it can never disturb the box's next rental."""
    tcs = st.TaskCompletionSource()
    vt = pooled_wait(tcs.task)
    tcs.set_result(1)
    assert vt.result == 1
    nxt = st.TaskCompletionSource()
    vt2 = pooled_wait(nxt.task)
    with pytest.raises(IOE, match="already consumed"):
        vt.result
    with pytest.raises(IOE, match="already consumed"):
        vt.as_task()
    nxt.set_result(2)
    assert vt2.result == 2


def test_V5_pooled_result_before_completion_raises_without_consuming():
    """1.5/4.7: .result of a pending pooled ValueTask raises (it is a
    source, it does not block) and does not consume it."""
    tcs = st.TaskCompletionSource()
    vt = pooled_wait(tcs.task)
    with pytest.raises(IOE, match="not completed"):
        vt.result
    tcs.set_result(5)
    assert vt.result == 5


def test_V5_pooled_as_task_pending_and_completed():
    """1.6: as_task of a pooled ValueTask copies its outcome into a new Task
    (the box goes back to the pool)."""
    tcs = st.TaskCompletionSource()
    vt = pooled_wait(tcs.task)
    t = vt.as_task()
    before = st.pool_stats()["returned"]
    tcs.set_exception(ValueError("v"))
    assert wait_until(lambda: t.is_completed)
    assert t.is_faulted
    assert isinstance(t.exception.inner_exceptions[0], ValueError)
    assert st.pool_stats()["returned"] == before + 1
    tcs = st.TaskCompletionSource()
    vt = pooled_wait(tcs.task)
    tcs.set_result(4)
    assert vt.as_task().result == 4


def test_V5_nested_async_method_does_not_take_the_pooled_box():
    """V5: a plain @async_method called (and suspending) before the pooled
    body's own first suspension gets its own Task, not the pooled box."""
    inner_gate = st.TaskCompletionSource()
    outer_gate = st.TaskCompletionSource()

    @st.async_method
    async def inner():
        return await inner_gate.task

    @st.async_value_method(pooling=True)
    async def outer():
        t = inner()
        v = await outer_gate.task
        return v + await t
    before = st.pool_stats()["rented"]
    vt = outer()
    assert "pooled" in repr(vt)
    assert st.pool_stats()["rented"] == before + 1
    outer_gate.set_result(1)
    inner_gate.set_result(2)
    assert vt.result == 3


def test_V5_decorator_forms():
    """V5/A1: functions, methods, static and class methods; the decorator
    refuses a plain function."""
    class C:
        @st.async_value_method
        async def m(self, x):
            return (self, x)

        @st.async_value_method(pooling=True)
        @staticmethod
        async def s(x):
            return x

        @st.async_value_method
        @classmethod
        async def c(cls, x):
            return (cls, x)

    o = C()
    assert o.m(1).result == (o, 1)
    assert C.s(2).result == 2
    assert C.c(3).result == (C, 3)
    assert isinstance(C.__dict__["m"], st.AsyncValueMethod)
    assert C.__dict__["s"].__func__.pooling is True
    assert value_add.__name__ == "value_add"
    with pytest.raises(TypeError, match="async def"):
        st.async_value_method(lambda: 1)


def test_V5_pooled_calls_from_many_threads():
    """V5: pooled calls from several threads at once (per-thread slots and
    the shared cache) all get their own results; every box rented comes
    back once consumed."""
    before = st.pool_stats()

    @st.async_method
    async def worker(k):
        total = 0
        for i in range(100):
            total += await pooled_yield(k * 1000 + i)
        return total

    ts = [st.Task.run(worker, k) for k in range(4)]
    results = [t.result for t in ts]
    assert results == [sum(k * 1000 + i for i in range(100)) for k in range(4)]
    after = st.pool_stats()
    assert after["rented"] - before["rented"] == 400
    assert after["returned"] - before["returned"] == 400


@st.async_value_method(pooling=True)
async def pooled_yield(v):
    await st.Task.yield_()
    return v


def test_V5_no_leak_by_repetition():
    """STYLE 34: repeating pooled, plain and source-backed ValueTask work
    leaves no objects behind (GC counts, refcounts, weakrefs)."""
    sentinel = object()

    class Res:
        pass

    def cycle():
        tcs = st.TaskCompletionSource()
        vt = pooled_wait(tcs.task)
        tcs.set_result(sentinel)
        assert vt.result is sentinel
        tcs = st.TaskCompletionSource()
        vt = value_wait(tcs.task)
        tcs.set_result(sentinel)
        assert vt.result is sentinel
        core = MRVTSC()
        r = Res()
        core.set_result(r)
        assert st.ValueTask(core, 0).result is r
        core.reset()
        e = KeyError()
        core.set_exception(e)
        vt = st.ValueTask(core, 1)
        try:
            vt.result
        except KeyError:
            pass
        v = value_add(1, 2)
        assert v.result == 3
        return weakref.ref(r)

    for _ in range(50):
        cycle()
    gc.collect()
    base_objects = len(gc.get_objects())
    base_ref = sys.getrefcount(sentinel)
    refs = [cycle() for _ in range(1000)]
    gc.collect()
    assert sys.getrefcount(sentinel) == base_ref
    assert all(r() is None for r in refs)
    del refs
    gc.collect()
    assert len(gc.get_objects()) - base_objects < 50


def test_V3_C3_source_backed_await_resumes_on_the_captured_context():
    """V3/C3/1.10: awaiting a source-backed ValueTask on a single-threaded
    context resumes there (USE_SCHEDULING_CONTEXT); with
    configure_await(False) it resumes where the source completed it."""
    ctx = st.SingleThreadSynchronizationContext()

    def complete_once_registered(src, value):
        assert wait_until(lambda: src.flags)
        src.core.set_result(value)

    async def main():
        here = threading.get_ident()
        src = CoreSource()
        th = start_thread(complete_once_registered, src, 1)
        await src.start()
        on_context = threading.get_ident() == here
        join_ok(th)
        src2 = CoreSource()
        th2 = start_thread(complete_once_registered, src2, 2)
        await src2.start().configure_await(False)
        # resumed inline on th2, the thread that completed the source
        off_context = threading.get_ident() == th2.ident
        return on_context, off_context, src.flags, src2.flags, th2

    on_context, off_context, flags1, flags2, th2 = ctx.run(main)
    join_ok(th2)
    assert on_context and off_context
    assert flags1 == [Flags.USE_SCHEDULING_CONTEXT]
    assert flags2 == [Flags.NONE]


def test_V5_pooled_methods_on_a_single_threaded_context():
    """V5/C2: pooled methods that suspend on a single-threaded context
    (resumptions posted to it) reuse their boxes and give right results."""
    ctx = st.SingleThreadSynchronizationContext()

    @st.async_value_method(pooling=True)
    async def step(i):
        await st.Task.yield_()
        return i

    async def main():
        here = threading.get_ident()
        total = 0
        for i in range(50):
            total += await step(i)
            assert threading.get_ident() == here
        return total

    before = st.pool_stats()
    assert ctx.run(main) == sum(range(50))
    after = st.pool_stats()
    assert after["rented"] - before["rented"] == 50
    assert after["returned"] - before["returned"] == 50
    assert after["created"] - before["created"] <= 1
