"""SPEC §0 (naming and conventions), T1 enum values, R1.11/R3.7 flag values.

Exception hierarchy, AggregateError as an ExceptionGroup (inner_exceptions,
inner_exception, flatten, handle, except*), TaskStatus / TaskCreationOptions /
TaskContinuationOptions values, INFINITE, docstrings, stubs.
"""

from __future__ import annotations

import enum
import os

import pytest

import sharptask as st

# ---------------------------------------------------------------------------
# §0 top-level names
# ---------------------------------------------------------------------------

FOUNDATION_NAMES = [
    "Task",
    "TaskCompletionSource",
    "TaskStatus",
    "TaskCreationOptions",
    "TaskContinuationOptions",
    "AggregateError",
    "OperationCanceledError",
    "TaskCanceledError",
    "InvalidOperationError",
    "ObjectDisposedError",
    "SemaphoreFullError",
    "DeadlockError",
    "async_method",
    "AsyncTaskMethodBuilder",
    "run",
    "INFINITE",
    "ThreadPool",
]


@pytest.mark.parametrize("name", FOUNDATION_NAMES)
def test_S0_name_importable_from_top_level(name):
    """§0: everything is importable from the top-level package."""
    assert hasattr(st, name), f"sharptask.{name} is missing"


def test_S0_infinite_is_minus_one():
    """§0: sharptask.INFINITE is -1."""
    assert st.INFINITE == -1


# ---------------------------------------------------------------------------
# §0 exception hierarchy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, base",
    [
        ("OperationCanceledError", Exception),
        ("TaskCanceledError", "OperationCanceledError"),
        ("InvalidOperationError", RuntimeError),
        ("ObjectDisposedError", "InvalidOperationError"),
        ("SemaphoreFullError", ValueError),
        ("DeadlockError", "InvalidOperationError"),
        ("AggregateError", ExceptionGroup),
    ],
)
def test_S0_exception_hierarchy(name, base):
    """§0: each .NET exception maps to the named Python class and base."""
    cls = getattr(st, name)
    if isinstance(base, str):
        base = getattr(st, base)
    assert isinstance(cls, type)
    assert issubclass(cls, base), f"{name} must subclass {base.__name__}"


def test_S0_operation_canceled_error_is_not_a_builtin_cancelled_error():
    """§0: OperationCanceledError derives from Exception (so `except Exception`
    catches it, unlike asyncio.CancelledError which is a BaseException)."""
    assert issubclass(st.OperationCanceledError, Exception)
    e = st.OperationCanceledError()
    assert isinstance(e, Exception)


def test_S0_operation_canceled_error_has_cancellation_token_attribute():
    """§0: OperationCanceledError has `cancellation_token`."""
    e = st.OperationCanceledError()
    assert hasattr(e, "cancellation_token")


def test_S0_task_canceled_error_has_task_attribute():
    """§0/R2.1: TaskCanceledError has `task`; the one raised by `result` on a
    canceled task names that task."""
    tcs = st.TaskCompletionSource()
    tcs.set_canceled()
    with pytest.raises(st.AggregateError) as ei:
        tcs.task.result
    tce = ei.value.inner_exceptions[0]
    assert isinstance(tce, st.TaskCanceledError)
    assert tce.task is tcs.task
    assert hasattr(tce, "cancellation_token")


# ---------------------------------------------------------------------------
# §0 AggregateError
# ---------------------------------------------------------------------------


def _faulted(*excs):
    tcs = st.TaskCompletionSource()
    tcs.set_exception(list(excs))
    return tcs.task


def test_S0_aggregate_error_from_task_is_exception_group():
    """§0/T2: `task.exception` is an AggregateError, an ExceptionGroup whose
    `exceptions`, `inner_exceptions` and `inner_exception` agree."""
    e1, e2 = ValueError("a"), KeyError("b")
    t = _faulted(e1, e2)
    ae = t.exception
    assert isinstance(ae, st.AggregateError)
    assert isinstance(ae, ExceptionGroup)
    assert isinstance(ae.inner_exceptions, tuple)
    assert ae.inner_exceptions == (e1, e2)
    assert ae.inner_exceptions[0] is e1 and ae.inner_exceptions[1] is e2
    assert ae.inner_exception is e1
    assert tuple(ae.exceptions) == (e1, e2)


def test_S0_aggregate_error_except_star_splits_by_type():
    """§0: `except*` works on the AggregateError raised by `result` (T3)."""
    e1, e2, e3 = ValueError("a"), KeyError("b"), ValueError("c")
    t = _faulted(e1, e2, e3)
    caught_value = caught_key = None
    try:
        t.result
    except* ValueError as eg:
        caught_value = eg
    except* KeyError as eg:
        caught_key = eg
    assert caught_value is not None and caught_key is not None
    assert list(caught_value.exceptions) == [e1, e3]
    assert list(caught_key.exceptions) == [e2]


def test_S0_aggregate_error_flatten_removes_nesting():
    """§0: flatten() returns an AggregateError with nested AggregateErrors
    replaced by their inner exceptions, depth-first in order (.NET Flatten)."""
    e1, e2, e3, e4 = ValueError(1), KeyError(2), TypeError(3), OSError(4)
    inner = _faulted(e1, e2).exception
    inner2 = _faulted(e4).exception
    outer_task = _faulted(inner, e3, inner2)
    flat = outer_task.exception.flatten()
    assert isinstance(flat, st.AggregateError)
    assert flat.inner_exceptions == (e1, e2, e3, e4)
    assert all(a is b for a, b in zip(flat.inner_exceptions, (e1, e2, e3, e4)))


def test_S0_aggregate_error_flatten_without_nesting_keeps_items():
    """§0: flatten() of a flat AggregateError has the same inner exceptions."""
    e1, e2 = ValueError(1), KeyError(2)
    flat = _faulted(e1, e2).exception.flatten()
    assert flat.inner_exceptions == (e1, e2)


def test_S0_aggregate_error_handle_all_handled_returns():
    """§0: handle(pred) returns normally when pred is true for every inner
    exception, and calls pred once per inner exception in order."""
    e1, e2 = ValueError(1), KeyError(2)
    ae = _faulted(e1, e2).exception
    seen = []

    def pred(e):
        seen.append(e)
        return True

    assert ae.handle(pred) is None
    assert seen == [e1, e2]


def test_S0_aggregate_error_handle_raises_unhandled_ones():
    """§0: handle(pred) raises a new AggregateError of exactly the inner
    exceptions for which pred returned false (.NET Handle)."""
    e1, e2, e3 = ValueError(1), KeyError(2), ValueError(3)
    ae = _faulted(e1, e2, e3).exception
    with pytest.raises(st.AggregateError) as ei:
        ae.handle(lambda e: isinstance(e, ValueError))
    assert ei.value.inner_exceptions == (e2,)
    assert ei.value.inner_exceptions[0] is e2


# ---------------------------------------------------------------------------
# T1 TaskStatus
# ---------------------------------------------------------------------------

STATUS_VALUES = {
    "CREATED": 0,
    "WAITING_FOR_ACTIVATION": 1,
    "WAITING_TO_RUN": 2,
    "RUNNING": 3,
    "WAITING_FOR_CHILDREN_TO_COMPLETE": 4,
    "RAN_TO_COMPLETION": 5,
    "CANCELED": 6,
    "FAULTED": 7,
}


def test_T1_task_status_is_int_enum():
    """T1: TaskStatus is an IntEnum."""
    assert issubclass(st.TaskStatus, enum.IntEnum)


@pytest.mark.parametrize("name, value", sorted(STATUS_VALUES.items(), key=lambda kv: kv[1]))
def test_T1_task_status_values(name, value):
    """T1: TaskStatus has the .NET values."""
    member = st.TaskStatus[name]
    assert int(member) == value
    assert st.TaskStatus(value) is member


def test_T1_task_status_has_exactly_the_net_members():
    """T1/R1.1: no extra states (no 'Blocked')."""
    assert {m.name: int(m) for m in st.TaskStatus} == STATUS_VALUES


# ---------------------------------------------------------------------------
# C4/R1.11 TaskCreationOptions, R3.7 TaskContinuationOptions
# ---------------------------------------------------------------------------

CREATION_VALUES = {
    "NONE": 0,
    "PREFER_FAIRNESS": 0x1,
    "LONG_RUNNING": 0x2,
    "ATTACHED_TO_PARENT": 0x4,
    "DENY_CHILD_ATTACH": 0x8,
    "HIDE_SCHEDULER": 0x10,
    "RUN_CONTINUATIONS_ASYNCHRONOUSLY": 0x40,
}

CONTINUATION_VALUES = {
    "NONE": 0,
    "PREFER_FAIRNESS": 0x1,
    "LONG_RUNNING": 0x2,
    "ATTACHED_TO_PARENT": 0x4,
    "DENY_CHILD_ATTACH": 0x8,
    "HIDE_SCHEDULER": 0x10,
    "LAZY_CANCELLATION": 0x20,
    "RUN_CONTINUATIONS_ASYNCHRONOUSLY": 0x40,
    "NOT_ON_RAN_TO_COMPLETION": 0x10000,
    "NOT_ON_FAULTED": 0x20000,
    "NOT_ON_CANCELED": 0x40000,
    "ONLY_ON_RAN_TO_COMPLETION": 0x20000 | 0x40000,
    "ONLY_ON_FAULTED": 0x10000 | 0x40000,
    "ONLY_ON_CANCELED": 0x10000 | 0x20000,
    "EXECUTE_SYNCHRONOUSLY": 0x80000,
}


def test_C4_task_creation_options_is_int_flag():
    """C4: TaskCreationOptions is an enum.IntFlag."""
    assert issubclass(st.TaskCreationOptions, enum.IntFlag)


@pytest.mark.parametrize("name, value", list(CREATION_VALUES.items()))
def test_R1_11_task_creation_options_values(name, value):
    """R1.11: TaskCreationOptions has the .NET bit values."""
    assert int(getattr(st.TaskCreationOptions, name)) == value


def test_C4_task_continuation_options_is_int_flag():
    """C4: TaskContinuationOptions is an enum.IntFlag."""
    assert issubclass(st.TaskContinuationOptions, enum.IntFlag)


@pytest.mark.parametrize("name, value", list(CONTINUATION_VALUES.items()))
def test_R3_7_task_continuation_options_values(name, value):
    """R3.7: TaskContinuationOptions has the .NET bit values."""
    assert int(getattr(st.TaskContinuationOptions, name)) == value


def test_C4_options_combine_with_or():
    """C4: `|` combines flags and keeps the flag type."""
    o = st.TaskContinuationOptions.NOT_ON_FAULTED | st.TaskContinuationOptions.NOT_ON_CANCELED
    assert isinstance(o, st.TaskContinuationOptions)
    assert o == st.TaskContinuationOptions.ONLY_ON_RAN_TO_COMPLETION
    c = st.TaskCreationOptions.PREFER_FAIRNESS | st.TaskCreationOptions.LONG_RUNNING
    assert isinstance(c, st.TaskCreationOptions)
    assert int(c) == 3


# ---------------------------------------------------------------------------
# §0 docstrings, stubs, py.typed
# ---------------------------------------------------------------------------

DOC_TARGETS = [
    "Task",
    "TaskCompletionSource",
    "AsyncTaskMethodBuilder",
    "async_method",
    "run",
    "AggregateError",
    "OperationCanceledError",
    "TaskCanceledError",
    "InvalidOperationError",
]


@pytest.mark.parametrize("name", DOC_TARGETS)
def test_S0_public_callable_has_docstring(name):
    """§0: every public callable has a docstring."""
    obj = getattr(st, name)
    assert obj.__doc__ and obj.__doc__.strip(), f"sharptask.{name} has no docstring"


@pytest.mark.parametrize("cls_name", ["Task", "TaskCompletionSource", "AsyncTaskMethodBuilder"])
def test_S0_public_members_have_docstrings(cls_name):
    """§0: every public method/property of the core types has a docstring."""
    cls = getattr(st, cls_name)
    missing = []
    for attr in dir(cls):
        if attr.startswith("_"):
            continue
        member = getattr(cls, attr)
        if isinstance(member, (int, str, float, enum.Enum)) or member is None:
            continue
        if isinstance(member, st.Task):  # class attributes such as completed_task
            continue
        if isinstance(member, (property,)) or callable(member) or hasattr(member, "__get__"):
            doc = getattr(member, "__doc__", None)
            if not (doc and doc.strip()):
                missing.append(attr)
    assert not missing, f"{cls_name} members without docstring: {missing}"


def test_S0_package_ships_py_typed_and_stubs():
    """§0: the package ships `py.typed` and `.pyi` stubs."""
    pkg_dir = os.path.dirname(st.__file__)
    files = os.listdir(pkg_dir)
    assert "py.typed" in files
    assert any(f.endswith(".pyi") for f in files), files


def test_S0_task_members_are_snake_case():
    """§0: members are snake_case of the .NET names (spot check of the Task
    surface used throughout this suite)."""
    expected = [
        "status", "id", "is_completed", "is_completed_successfully", "is_faulted",
        "is_canceled", "exception", "async_state", "creation_options", "result",
        "wait", "wait_all", "wait_any", "get_awaiter", "configure_await",
        "continue_with", "run", "delay", "yield_", "from_result", "from_exception",
        "from_canceled", "completed_task", "when_all", "when_any", "wait_async",
        "factory", "unwrap",
    ]
    missing = [n for n in expected if not hasattr(st.Task, n)]
    assert not missing, f"Task lacks {missing}"


def test_S0_completed_task_is_class_attribute():
    """§0: a constant static property becomes a class attribute
    (`Task.completed_task`), the same object on every read."""
    a = st.Task.completed_task
    b = st.Task.completed_task
    assert a is b
    assert isinstance(a, st.Task)
    assert a.status == st.TaskStatus.RAN_TO_COMPLETION


def test_S0_negative_timeout_raises_value_error():
    """§0: a negative time other than INFINITE (-1) raises ValueError."""
    tcs = st.TaskCompletionSource()
    with pytest.raises(ValueError):
        tcs.task.wait(-2)
    with pytest.raises(ValueError):
        tcs.task.wait(-0.5)
    tcs.set_result(1)
    # already completed: still validated
    with pytest.raises(ValueError):
        tcs.task.wait(-2)
    assert tcs.task.wait(st.INFINITE) is True
    assert tcs.task.wait(None) is True


def test_S0_timedelta_accepted_for_times():
    """§0: times may be datetime.timedelta."""
    import datetime

    tcs = st.TaskCompletionSource()
    assert tcs.task.wait(datetime.timedelta(milliseconds=10)) is False
    tcs.set_result(None)
    assert tcs.task.wait(datetime.timedelta(seconds=1)) is True


def test_S0_argument_none_raises_type_error_naming_parameter():
    """§0: ArgumentNull → TypeError naming the parameter (continue_with(None))."""
    t = st.Task.from_result(1)
    with pytest.raises(TypeError):
        t.continue_with(None)


def test_S0_set_exception_none_raises_type_error():
    """§0/R4.4: set_exception(None) → TypeError."""
    tcs = st.TaskCompletionSource()
    with pytest.raises(TypeError):
        tcs.set_exception(None)
    assert not tcs.task.is_completed
    tcs.set_result(0)
