"""Async methods and the builder: A1–A5 and A7 (SPEC §3), reference §6/§7
(R6.x, R7.1, S6.x)."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

import sharptask as st
from conftest import MAIN_IDENT, Recorder, first_cause, join_ok, observe, start_thread

TS = st.TaskStatus


# ---------------------------------------------------------------------------
# A1 @async_method
# ---------------------------------------------------------------------------


def test_A1_runs_synchronously_until_first_incomplete_await():
    """A1/R6.1: the body runs on the caller's thread, inside the call, up to
    the first await of something not yet complete; then a Task is returned."""
    src = st.TaskCompletionSource()
    log = []

    @st.async_method
    async def m():
        log.append(("start", threading.get_ident()))
        v = await src.task
        log.append(("resumed", v))
        return v + 1

    t = m()
    assert isinstance(t, st.Task)
    assert log == [("start", MAIN_IDENT)]
    assert not t.is_completed
    src.set_result(1)
    assert t.result == 2
    assert log[-1] == ("resumed", 1)


def test_A1_method_that_never_suspends_returns_completed_task():
    """A1/R6.1: no suspension → an already completed task."""

    @st.async_method
    async def m(a, b=0, *, c=0):
        return a + b + c

    t = m(1, 2, c=3)
    assert t.is_completed_successfully
    assert t.result == 6


class _Host:
    factor = 10

    def __init__(self, src):
        self.src = src

    @st.async_method
    async def method(self, x):
        return self.factor * x + await self.src.task

    @staticmethod
    @st.async_method
    async def static(x):
        return x * 2

    @classmethod
    @st.async_method
    async def klass(cls, x):
        return (cls, x)


class _SubHost(_Host):
    pass


def test_A1_works_on_methods():
    """A1: @async_method on an instance method binds self."""
    src = st.TaskCompletionSource()
    h = _Host(src)
    t = h.method(3)
    assert not t.is_completed
    src.set_result(4)
    assert t.result == 34


def test_A1_works_on_static_methods():
    """A1: @async_method under @staticmethod, called on the class and on an
    instance."""
    assert _Host.static(4).result == 8
    assert _Host(None).static(5).result == 10


def test_A1_works_on_class_methods():
    """A1: @async_method under @classmethod gets the (sub)class."""
    assert _Host.klass(1).result == (_Host, 1)
    assert _SubHost.klass(2).result == (_SubHost, 2)
    assert _SubHost(None).klass(3).result == (_SubHost, 3)


def test_A1_decorated_function_keeps_name_and_doc():
    """A1 (Python expectation; C6 names async methods by __qualname__): the
    decorator keeps __name__, __qualname__ and __doc__."""

    @st.async_method
    async def documented():
        """doc here"""

    assert documented.__name__ == "documented"
    assert documented.__qualname__.endswith("documented")
    assert documented.__doc__ == "doc here"


def test_A1_each_call_is_independent():
    """A1: each call runs its own state machine."""
    srcs = [st.TaskCompletionSource() for _ in range(3)]

    @st.async_method
    async def m(i):
        return i * 100 + await srcs[i].task

    tasks = [m(i) for i in range(3)]
    for i in (2, 0, 1):
        srcs[i].set_result(i)
    assert [t.result for t in tasks] == [0, 101, 202]


# ---------------------------------------------------------------------------
# A2 exceptions
# ---------------------------------------------------------------------------


def test_A2_exception_before_first_await_goes_into_task():
    """A2/R6.2: an exception before the first suspension does not escape the
    call; the task is FAULTED with that exception."""
    err = ValueError("early")

    @st.async_method
    async def m():
        raise err

    t = m()  # must not raise
    assert t.status == TS.FAULTED
    assert first_cause(t) is err


def test_A2_exception_after_suspension_faults_task():
    """A2: an exception after resumption faults the task."""
    src = st.TaskCompletionSource()
    err = KeyError("late")

    @st.async_method
    async def m():
        await src.task
        raise err

    t = m()
    src.set_result(None)
    assert t.is_faulted
    with pytest.raises(KeyError) as ei:
        t.get_awaiter().get_result()
    assert ei.value is err


@pytest.mark.parametrize("exc_type", ["OperationCanceledError", "TaskCanceledError"])
def test_A2_oce_escaping_cancels_task(exc_type):
    """A2/R6.3/S6.3: any OperationCanceledError escaping the body (before or
    after suspension) cancels the task; get_result rethrows that same object;
    `exception` stays None."""
    oce = getattr(st, exc_type)()
    src = st.TaskCompletionSource()

    @st.async_method
    async def early():
        raise oce

    @st.async_method
    async def late():
        await src.task
        raise oce

    t1 = early()
    assert t1.status == TS.CANCELED
    assert t1.exception is None
    with pytest.raises(st.OperationCanceledError) as ei:
        t1.get_awaiter().get_result()
    assert ei.value is oce

    t2 = late()
    src.set_result(None)
    assert t2.status == TS.CANCELED
    with pytest.raises(st.OperationCanceledError) as ei:
        t2.get_awaiter().get_result()
    assert ei.value is oce


def test_A2_awaiting_canceled_task_unhandled_cancels_outer():
    """A2: awaiting a canceled task raises TaskCanceledError, which escaping
    the method cancels its task too."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def m():
        await src.task

    t = m()
    src.set_canceled()
    assert t.status == TS.CANCELED


# ---------------------------------------------------------------------------
# A3 what can be awaited
# ---------------------------------------------------------------------------


def test_A3_await_configure_await_false():
    """A3/C4: `await t.configure_await(False)` works and gives the result."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def m():
        return await src.task.configure_await(False)

    t = m()
    src.set_result(5)
    assert t.result == 5
    done = completed_method_with_configure_await()
    assert done.result == 6


@st.async_method
async def completed_method_with_configure_await():
    return await st.Task.from_result(6).configure_await(False)


def test_A3_plain_coroutine_awaited_inline():
    """A3: a plain coroutine is awaited inline, as part of the same state
    machine: its body runs synchronously inside the outer call, and its
    value/exception flows to the awaiting code."""
    src = st.TaskCompletionSource()
    log = []

    async def helper(x):
        log.append(("helper", threading.get_ident()))
        return x + await src.task

    async def failing():
        raise LookupError("from helper")

    @st.async_method
    async def m():
        v = await helper(1)
        try:
            await failing()
        except LookupError as e:
            return (v, e.args[0])

    t = m()
    assert log == [("helper", MAIN_IDENT)]
    src.set_result(10)
    assert t.result == (11, "from helper")


class _Completion:
    """INotifyCompletion-style awaiter: only on_completed (or only
    unsafe_on_completed) – no is_completed, no get_result."""

    def __init__(self, unsafe=False):
        self.actions = []
        self.value = None
        self.registered = threading.Event()
        name = "unsafe_on_completed" if unsafe else "on_completed"
        setattr(self, name, self._register)

    def _register(self, action):
        self.actions.append(action)
        self.registered.set()

    def complete(self, value):
        self.value = value
        for a in self.actions:
            a()


class _Awaitable:
    def __init__(self, completion):
        self.completion = completion

    def __await__(self):
        yield self.completion
        return self.completion.value


@pytest.mark.parametrize("unsafe", [False, True], ids=["on_completed", "unsafe_on_completed"])
def test_A3_inotifycompletion_awaitable(unsafe):
    """A3: an object whose __await__ yields an object with on_completed(action)
    (or unsafe_on_completed) suspends the method; calling the action resumes
    it, and __await__'s return value is the await's value."""
    comp = _Completion(unsafe)

    @st.async_method
    async def m():
        v = await _Awaitable(comp)
        return v * 2

    t = m()
    assert comp.registered.is_set()
    assert len(comp.actions) == 1
    assert not t.is_completed
    comp.complete(21)
    assert t.wait(10)
    assert t.result == 42


def test_A3_inotifycompletion_resumed_from_other_thread():
    """A3: the action may be called from another thread."""
    comp = _Completion()

    @st.async_method
    async def m():
        a = await _Awaitable(comp)
        b = await _Awaitable(comp2)
        return a + b

    comp2 = _Completion()
    t = m()
    join_ok(start_thread(comp.complete, 1))
    assert comp2.registered.wait(10)
    join_ok(start_thread(comp2.complete, 2))
    assert t.result == 3


def test_A3_inotifycompletion_action_called_during_registration():
    """A3/R3.5: an awaiter that completes while on_completed is being called
    (action invoked inside on_completed) still resumes the method once."""

    class Immediate:
        def on_completed(self, action):
            action()

    class Aw:
        def __await__(self):
            yield Immediate()
            return "ok"

    @st.async_method
    async def m():
        return await Aw()

    assert m().result == "ok"


class Bogus:
    pass


def test_A3_awaiting_unsupported_yield_raises_type_error_naming_type():
    """A3: an awaitable that yields something that is not a supported awaiter
    raises TypeError naming the type, inside the task (the call does not raise)."""

    class Weird:
        def __await__(self):
            yield Bogus()

    @st.async_method
    async def m():
        await Weird()

    t = m()
    assert t.is_faulted
    e = first_cause(t)
    assert isinstance(e, TypeError)
    assert "Bogus" in str(e)


def test_A3_unsupported_yield_type_error_is_catchable_in_method():
    """A3: the TypeError is raised at the await, inside the coroutine, so the
    method can catch it (like asyncio's 'bad yield')."""

    class Weird:
        def __await__(self):
            yield Bogus()
            return "unreachable"

    @st.async_method
    async def m():
        try:
            await Weird()
        except TypeError as e:
            return "caught " + ("Bogus" if "Bogus" in str(e) else str(e))

    assert m().result == "caught Bogus"


def test_A3_awaiting_non_awaitable_raises_type_error_in_task():
    """A3: `await 42` → TypeError naming int, inside the task."""

    @st.async_method
    async def m():
        await 42

    t = m()
    e = first_cause(t)
    assert isinstance(e, TypeError) and "int" in str(e)


def test_A3_concurrent_future_is_not_awaitable():
    """A3: a concurrent.futures.Future has no __await__: TypeError naming it,
    inside the task."""
    f = concurrent.futures.Future()

    @st.async_method
    async def m():
        await f

    t = m()
    e = first_cause(t)
    assert isinstance(e, TypeError) and "Future" in str(e)


def test_A3_await_task_returned_by_async_method():
    """A3: async methods await each other's tasks."""
    src = st.TaskCompletionSource()

    @st.async_method
    async def inner():
        return await src.task

    @st.async_method
    async def outer():
        return (await inner()) + 1

    t = outer()
    src.set_result(1)
    assert t.result == 2


# ---------------------------------------------------------------------------
# A4 completed awaits never suspend
# ---------------------------------------------------------------------------


def test_A4_completed_awaits_do_not_suspend():
    """A4/R6.1/R7.1: awaiting already-completed awaitables (from_result,
    completed_task, completed TCS, completed async method, configure_await
    forms, a faulted task) never suspends: the whole body runs on the calling
    thread and the task is complete when the call returns."""
    done = st.TaskCompletionSource()
    done.set_result(3)
    err = ValueError("sync")
    failed = st.Task.from_exception(err)
    idents = []

    @st.async_method
    async def sync_inner():
        return 4

    @st.async_method
    async def m():
        idents.append(threading.get_ident())
        a = await st.Task.from_result(1)
        idents.append(threading.get_ident())
        b = await st.Task.completed_task
        idents.append(threading.get_ident())
        c = await done.task
        d = await sync_inner()
        e = await done.task.configure_await(False)
        try:
            await failed
        except ValueError as x:
            f = x
        idents.append(threading.get_ident())
        return (a, b, c, d, e, f)

    t = m()
    assert t.is_completed_successfully
    assert t.result == (1, None, 3, 4, 3, err)
    assert set(idents) == {MAIN_IDENT}


def test_A4_many_completed_awaits_in_a_loop():
    """A4: a long loop of completed awaits neither suspends nor overflows."""

    @st.async_method
    async def m(n):
        total = 0
        for i in range(n):
            total += await st.Task.from_result(i % 5)
        return total

    t = m(20000)
    assert t.is_completed
    assert t.result == sum(i % 5 for i in range(20000))


# ---------------------------------------------------------------------------
# A5 the manual builder
# ---------------------------------------------------------------------------


class GetAsyncStateMachine:
    """Hand-written `<GetAsync>d__0`, the C# compiler's output for

        async Task<int> GetAsync(Task<int> source) {
            int v = await source;
            return v * 2;
        }
    """

    def __init__(self, source, unsafe=True, log=None):
        self.state = -1
        self.builder = None
        self.awaiter = None
        self.source = source
        self.unsafe = unsafe
        self.log = log if log is not None else []

    def move_next(self):
        self.log.append(("move_next", self.state, threading.get_ident()))
        try:
            if self.state == 0:
                awaiter = self.awaiter
                self.awaiter = None
                self.state = -1
            else:
                awaiter = self.source.get_awaiter()
                if not awaiter.is_completed:
                    self.state = 0
                    self.awaiter = awaiter
                    if self.unsafe:
                        self.builder.await_unsafe_on_completed(awaiter, self)
                    else:
                        self.builder.await_on_completed(awaiter, self)
                    return
            v = awaiter.get_result()
            result = v * 2
        except BaseException as e:  # noqa: BLE001 - the compiler's catch
            self.state = -2
            self.builder.set_exception(e)
            return
        self.state = -2
        self.builder.set_result(result)

    def set_state_machine(self, sm):
        pass


def GetAsync(source, unsafe=True, log=None):
    """The compiler's stub method."""
    sm = GetAsyncStateMachine(source, unsafe, log)
    sm.builder = st.AsyncTaskMethodBuilder.create()
    sm.state = -1
    sm.builder.start(sm)
    return sm.builder.task


@pytest.mark.parametrize("unsafe", [True, False], ids=["await_unsafe_on_completed", "await_on_completed"])
def test_A5_handwritten_state_machine_suspends_and_resumes(unsafe):
    """A5: the decompiled state machine written by hand: start runs move_next
    synchronously; an incomplete await registers via the builder; completion
    calls move_next again in state 0; the task gets the result."""
    src = st.TaskCompletionSource()
    log = []
    t = GetAsync(src.task, unsafe, log)
    assert isinstance(t, st.Task)
    assert log == [("move_next", -1, MAIN_IDENT)]
    assert t.status == TS.WAITING_FOR_ACTIVATION
    src.set_result(21)
    assert t.wait(10)
    assert t.result == 42
    assert [entry[1] for entry in log] == [-1, 0]


def test_A5_handwritten_state_machine_completed_source_is_synchronous():
    """A5/A4: a completed source → one move_next, task complete on return."""
    log = []
    t = GetAsync(st.Task.from_result(5), log=log)
    assert t.is_completed and t.result == 10
    assert len(log) == 1


def test_A5_handwritten_state_machine_exception_path():
    """A5: builder.set_exception faults the task with that exception."""
    src = st.TaskCompletionSource()
    t = GetAsync(src.task)
    err = ValueError("src")
    src.set_exception(err)
    with pytest.raises(st.AggregateError):
        t.wait(10)
    assert t.is_faulted and first_cause(t) is err
    observe(src.task)


def test_A5_handwritten_behaves_like_decorated_form():
    """A5: the manual form and @async_method agree on result, status and
    resume thread."""
    src1, src2 = st.TaskCompletionSource(), st.TaskCompletionSource()
    log = []
    manual = GetAsync(src1.task, log=log)

    @st.async_method
    async def decorated(source):
        v = await source
        return v * 2

    deco = decorated(src2.task)
    assert manual.status == deco.status == TS.WAITING_FOR_ACTIVATION
    src1.set_result(4)
    src2.set_result(4)
    assert manual.result == deco.result == 8
    assert log[-1][2] == MAIN_IDENT  # resumed inline by set_result (T7)


def test_A5_builder_task_same_object_and_waiting_for_activation():
    """A5/S6.1: builder.task read before completion is WAITING_FOR_ACTIVATION
    and the same object on every read; then set_result → RAN_TO_COMPLETION."""
    b = st.AsyncTaskMethodBuilder.create()
    t = b.task
    assert t is b.task
    assert t.status == TS.WAITING_FOR_ACTIVATION
    b.set_result(43)
    assert b.task is t
    assert t.status == TS.RAN_TO_COMPLETION and t.result == 43


@pytest.mark.parametrize("read_task_first", [False, True])
def test_A5_builder_cannot_be_completed_twice(read_task_first):
    """A5/S6.2: after set_result or set_exception, another set_result or
    set_exception raises InvalidOperationError."""
    b = st.AsyncTaskMethodBuilder.create()
    if read_task_first:
        _ = b.task
    b.set_result(1)
    with pytest.raises(st.InvalidOperationError):
        b.set_result(2)
    with pytest.raises(st.InvalidOperationError):
        b.set_exception(ValueError())
    assert b.task.result == 1

    b2 = st.AsyncTaskMethodBuilder.create()
    if read_task_first:
        _ = b2.task
    b2.set_exception(KeyError())
    with pytest.raises(st.InvalidOperationError):
        b2.set_result(2)
    with pytest.raises(st.InvalidOperationError):
        b2.set_exception(ValueError())
    assert b2.task.is_faulted
    observe(b2.task)


def test_A5_builder_set_exception_none_raises_type_error():
    """A5/S6.2: set_exception(None) raises TypeError."""
    b = st.AsyncTaskMethodBuilder.create()
    with pytest.raises(TypeError):
        b.set_exception(None)
    b.set_result(None)


def test_A5_builder_set_exception_oce_cancels():
    """A5/S6.3: set_exception(OperationCanceledError()) → CANCELED; get_result
    rethrows the same OCE."""
    b = st.AsyncTaskMethodBuilder.create()
    oce = st.OperationCanceledError()
    b.set_exception(oce)
    assert b.task.status == TS.CANCELED
    with pytest.raises(st.OperationCanceledError) as ei:
        b.task.get_awaiter().get_result()
    assert ei.value is oce


@pytest.mark.parametrize("value, cached", [(True, True), (False, True), (0, True), (5, True), (None, True), (-5, False), (42, False)])
def test_A5_builder_uses_completed_cache(value, cached):
    """A5/S6.4/T12: two builders that set_result before the task is read give
    the same task for cacheable values, different ones otherwise."""
    b1, b2 = st.AsyncTaskMethodBuilder.create(), st.AsyncTaskMethodBuilder.create()
    b1.set_result(value)
    b2.set_result(value)
    if cached:
        assert b1.task is b2.task
    else:
        assert b1.task is not b2.task
    assert b1.task.result == value


class _CustomAwaiter:
    """A user-written awaiter (INotifyCompletion + ICriticalNotifyCompletion)."""

    def __init__(self):
        self.registrations = []
        self.done = False
        self.value = None

    @property
    def is_completed(self):
        return self.done

    def on_completed(self, action):
        self.registrations.append(("on_completed", action))

    def unsafe_on_completed(self, action):
        self.registrations.append(("unsafe_on_completed", action))

    def get_result(self):
        return self.value

    def complete(self, value):
        self.value, self.done = value, True
        for _, action in self.registrations:
            action()


@pytest.mark.parametrize(
    "method, expected",
    [("await_on_completed", "on_completed"), ("await_unsafe_on_completed", "unsafe_on_completed")],
)
def test_A5_builder_registers_through_the_matching_awaiter_method(method, expected):
    """A5: builder.await_on_completed uses awaiter.on_completed and
    await_unsafe_on_completed uses awaiter.unsafe_on_completed, for any
    awaiter object; completing it calls move_next once more."""
    aw = _CustomAwaiter()

    class SM:
        def __init__(self):
            self.state = -1
            self.builder = st.AsyncTaskMethodBuilder.create()
            self.awaiter = None
            self.calls = 0

        def move_next(self):
            self.calls += 1
            if self.state == -1:
                self.state, self.awaiter = 0, aw
                getattr(self.builder, method)(aw, self)
                return
            self.state = -2
            self.builder.set_result(self.awaiter.get_result() + 1)

    sm = SM()
    sm.builder.start(sm)
    assert [kind for kind, _ in aw.registrations] == [expected]
    assert not sm.builder.task.is_completed
    aw.complete(41)
    assert sm.builder.task.result == 42
    assert sm.calls == 2


def test_A5_set_state_machine_optional():
    """A5: a state machine without set_state_machine works."""

    class Minimal:
        def __init__(self):
            self.builder = st.AsyncTaskMethodBuilder.create()

        def move_next(self):
            self.builder.set_result("m")

    sm = Minimal()
    sm.builder.start(sm)
    assert sm.builder.task.result == "m"


def test_A5_start_runs_move_next_on_calling_thread_in_callers_context():
    """A5/R6.6: start() runs move_next synchronously on the calling thread."""
    got = []

    class SM:
        def __init__(self):
            self.builder = st.AsyncTaskMethodBuilder.create()

        def move_next(self):
            got.append(threading.get_ident())
            self.builder.set_result(None)

    sm = SM()
    sm.builder.start(sm)
    assert got == [MAIN_IDENT]


# ---------------------------------------------------------------------------
# A7 sharptask.run
# ---------------------------------------------------------------------------


def test_A7_run_async_function():
    """A7: run(async_fn, *args) drives it and returns its result."""
    src = st.TaskCompletionSource()

    async def main(a, b):
        return a + b + await src.task

    threading.Timer(0.02, src.set_result, (100,)).start()
    assert st.run(main, 1, 2) == 103


def test_A7_run_coroutine_object():
    """A7: run(coroutine) drives it."""

    async def main():
        await st.Task.yield_()
        return "main"

    assert st.run(main()) == "main"


def test_A7_run_async_method():
    """A7: run(@async_method fn, *args) blocks for the task's result."""

    @st.async_method
    async def main(x):
        await st.Task.delay(0.01)
        return x

    assert st.run(main, 9) == 9


def test_A7_run_raises_exception_itself():
    """A7: like get_awaiter().get_result(): the exception itself, not an
    AggregateError."""
    err = ValueError("main failed")

    async def main():
        await st.Task.yield_()
        raise err

    with pytest.raises(ValueError) as ei:
        st.run(main)
    assert ei.value is err


def test_A7_run_canceled_raises_the_oce():
    """A7/R2.2: an OCE escaping main is raised by run as that same object."""
    oce = st.OperationCanceledError()

    async def main():
        raise oce

    with pytest.raises(st.OperationCanceledError) as ei:
        st.run(main)
    assert ei.value is oce


def test_A7_run_with_work_completed_elsewhere():
    """A7: main awaiting work on other threads (Task.run + when_all)."""

    async def main():
        parts = [st.Task.run(lambda i=i: i * i) for i in range(10)]
        squares = await st.Task.when_all(parts)
        return sum(squares)

    assert st.run(main) == sum(i * i for i in range(10))


def test_A1_resumed_on_completing_thread_after_suspension():
    """A1/T7/C3: with no context, the method resumes on the thread that
    completed the awaited task."""
    src = st.TaskCompletionSource()
    rec = Recorder()

    @st.async_method
    async def m():
        await src.task
        rec.add(threading.get_ident())

    t = m()
    holder = {}

    def completer():
        holder["id"] = threading.get_ident()
        src.set_result(None)

    join_ok(start_thread(completer))
    assert rec.wait_for(1)
    assert rec.items == [holder["id"]]
    assert t.is_completed
