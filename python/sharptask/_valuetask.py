"""ValueTask's Python-facing parts (SPEC V1-V5): ``@async_value_method``,
the ``IValueTaskSource`` protocol, and the rare source-backed paths the C
type forwards to by name (``as_task()`` of a source-backed ValueTask).

The ValueTask type itself, its awaiters, ManualResetValueTaskSourceCore and
the builders live in C (csrc/binding/py_valuetask.c, csrc/core/st_vtsource.c).
"""
from __future__ import annotations

import functools
import inspect
from typing import (Any, Callable, Coroutine, ParamSpec, Protocol, TypeVar,
                    overload, runtime_checkable)

from . import _native
from ._enums import ValueTaskSourceOnCompletedFlags, ValueTaskSourceStatus
from ._errors import OperationCanceledError

_T_co = TypeVar("_T_co", covariant=True)
_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = ["async_value_method", "IValueTaskSource"]


@runtime_checkable
class IValueTaskSource(Protocol[_T_co]):
    """The protocol behind a source-backed ValueTask (SPEC V3), like .NET's
    ``IValueTaskSource<T>``.  Any class with these three methods can back
    ``ValueTask(source, token)``; ``ManualResetValueTaskSourceCore`` does
    the bookkeeping for you::

        class Op:
            def __init__(self):
                self._core = ManualResetValueTaskSourceCore()
            def start(self) -> ValueTask:
                return ValueTask(self, self._core.version)
            def get_status(self, token):
                return self._core.get_status(token)
            def get_result(self, token):
                return self._core.get_result(token)
            def on_completed(self, continuation, state, token, flags):
                self._core.on_completed(continuation, state, token, flags)

    The consumer calls ``on_completed`` at most once per token and
    ``get_result`` once after completion; ``continuation(state)`` must be
    called exactly once.
    """

    def get_status(self, token: int) -> ValueTaskSourceStatus:
        """The status of the operation ``token`` stands for."""
        ...

    def get_result(self, token: int) -> _T_co:
        """Its result, or raise its exception (once completed)."""
        ...

    def on_completed(self, continuation: Callable[[Any], Any], state: Any,
                     token: int,
                     flags: ValueTaskSourceOnCompletedFlags) -> None:
        """Call ``continuation(state)`` once the operation completes."""
        ...


# Typed like @async_method (SPEC §0): for `@async_value_method async def
# f(x: int) -> str`, f(1) is a ValueTask[str], with or without arguments.
# (A plain callable for the checker: see async_method.)
@overload
def async_value_method(
        fn: Callable[_P, Coroutine[Any, Any, _R]], *, pooling: bool = False
) -> Callable[_P, _native.ValueTask[_R]]:
    ...


@overload
def async_value_method(
        fn: None = None, *, pooling: bool = False
) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]],
              Callable[_P, _native.ValueTask[_R]]]:
    ...


def async_value_method(fn: Any = None, *, pooling: bool = False) -> Any:
    """Make an ``async def`` return a :class:`ValueTask` (SPEC V5).

    Like ``async ValueTask<T>`` in C#: calling it runs the body now, up to
    its first ``await`` of something not yet completed.  A body that
    finishes synchronously returns a result-backed ValueTask and allocates
    no Task; one that suspends returns a ValueTask over the method's box.

    ``@async_value_method(pooling=True)`` is the
    PoolingAsyncValueTaskMethodBuilder: the box of a call that suspends is
    rented from a pool (the thread's slot, then a shared cache) and goes
    back when the consumer takes the result, so that in steady state such
    a call allocates nothing beyond its coroutine.  See ``pool_stats()``.
    Works on functions, methods, static and class methods.
    """
    if fn is None:
        return functools.partial(async_value_method, pooling=pooling)
    if isinstance(fn, staticmethod):
        return staticmethod(async_value_method(fn.__func__, pooling=pooling))
    if isinstance(fn, classmethod):
        return classmethod(async_value_method(fn.__func__, pooling=pooling))
    if isinstance(fn, _native.AsyncValueMethod):
        if fn.pooling == bool(pooling):
            return fn
        fn = fn.__func__
    if not callable(fn):
        raise TypeError("async_value_method(): fn must be an async def "
                        f"function, not {type(fn).__name__}")
    if not inspect.iscoroutinefunction(fn):
        raise TypeError("async_value_method(): "
                        f"{getattr(fn, '__qualname__', fn)!s} is not an "
                        "async def function")
    m = _native.AsyncValueMethod(fn, pooling=bool(pooling))
    functools.update_wrapper(m, fn)
    return m


# ------------------------------------------------- source-backed as_task()

_PENDING = ValueTaskSourceStatus.PENDING
_CANCELED = ValueTaskSourceStatus.CANCELED


def _complete_from_source(tcs, source, token) -> None:
    """Complete ``tcs`` as .NET's ValueTaskSourceAsTask does (reference
    1.6): status first, then the result; an exception with status CANCELED
    cancels (keeping an OperationCanceledError), any other faults; a
    get_result that does not raise is a success."""
    status = source.get_status(token)
    try:
        result = source.get_result(token)
    except Exception as exc:  # a BaseException keeps going
        if status == _CANCELED:
            if isinstance(exc, OperationCanceledError):
                tcs._set_canceled_exception(exc)
            else:
                tcs.set_canceled()
        else:
            tcs.set_exception(exc)
        return
    tcs.set_result(result)


def _completed_task(source, token):
    tcs: _native.TaskCompletionSource[Any] = _native.TaskCompletionSource()
    _complete_from_source(tcs, source, token)
    return tcs.task


class _AsTaskState:
    """The state object an as_task() continuation must get back."""

    __slots__ = ("tcs", "source", "token", "called")

    def __init__(self, tcs, source, token):
        self.tcs = tcs
        self.source = source
        self.token = token
        self.called = False


def _as_task_continuation(state) -> None:
    if not isinstance(state, _AsTaskState) or state.called:
        # .NET: ArgumentOutOfRangeException("state") (S1.8)
        raise ValueError("state: the IValueTaskSource passed an invalid "
                         "state to the as_task() continuation, or called "
                         "it more than once")
    state.called = True
    _complete_from_source(state.tcs, state.source, state.token)


def _source_as_task(source, token):
    """ValueTask(source, token).as_task() (reference 1.6)."""
    if source.get_status(token) != _PENDING:
        return _completed_task(source, token)
    tcs: _native.TaskCompletionSource[Any] = _native.TaskCompletionSource()
    state = _AsTaskState(tcs, source, token)
    source.on_completed(_as_task_continuation, state, token,
                        ValueTaskSourceOnCompletedFlags.NONE)
    return tcs.task
