"""The async method builder's Python-facing parts: ``@async_method``,
``run()`` and the manual ``AsyncTaskMethodBuilder`` (SPEC A1, A5, A7)."""
from __future__ import annotations

import contextvars
import functools
import inspect
from typing import Any, Callable, Coroutine, ParamSpec, TypeVar, overload

from . import _native
from ._errors import InvalidOperationError, OperationCanceledError

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource
SynchronizationContext = _native.SynchronizationContext

__all__ = ["async_method", "run", "AsyncTaskMethodBuilder"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


# The decorator keeps the signature and carries the result type (SPEC §0):
# for `@async_method async def f(x: int) -> str`, f(1) is a Task[str].  The
# result is an AsyncMethod; it is typed as a plain callable because that is
# what a checker binds as a method under @classmethod and @staticmethod too
# (in either order).
def async_method(
        fn: Callable[_P, Coroutine[Any, Any, _R]]
) -> Callable[_P, _native.Task[_R]]:
    """Make an ``async def`` an async method (SPEC A1).

    Calling it runs the body synchronously on the caller's thread up to
    the first ``await`` of something not yet completed, then returns a
    :class:`Task` (AsyncTaskMethodBuilder semantics).  An exception raised
    by the body goes into the task; an escaping OperationCanceledError
    cancels it.  Works on functions, methods, static and class methods.
    """
    if isinstance(fn, staticmethod):
        return staticmethod(async_method(fn.__func__))
    if isinstance(fn, classmethod):
        return classmethod(async_method(fn.__func__))
    if isinstance(fn, _native.AsyncMethod):
        return fn
    if not callable(fn):
        raise TypeError(f"async_method(): fn must be an async def function, "
                        f"not {type(fn).__name__}")
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"async_method(): {getattr(fn, '__qualname__', fn)!s}"
                        " is not an async def function")
    m = _native.AsyncMethod(fn)
    functools.update_wrapper(m, fn)
    return m


_start = _native.AsyncMethod(lambda coro: coro)


@overload
def run(fn_or_coroutine: Coroutine[Any, Any, _R]) -> _R:
    ...


@overload
def run(fn_or_coroutine: _native.Task[_R]) -> _R:
    ...


@overload
def run(fn_or_coroutine: Callable[..., Coroutine[Any, Any, _R]],
        *args: Any) -> _R:
    ...


@overload
def run(fn_or_coroutine: Callable[..., _native.Task[_R]], *args: Any) -> _R:
    ...


@overload
def run(fn_or_coroutine: Callable[..., _R], *args: Any) -> _R:
    ...


def run(fn_or_coroutine: Any, *args: Any) -> Any:
    """Run an async function to completion, blocking (SPEC A7): the
    console ``Main``, like ``MainAsync().GetAwaiter().GetResult()``.

    Accepts a coroutine, an async def (called with ``args``), an
    ``@async_method``, or any callable returning a Task.  Returns its
    result or raises its exception itself.
    """
    if inspect.iscoroutine(fn_or_coroutine):
        if args:
            raise TypeError("run(): args are only accepted with a function")
        task = _start(fn_or_coroutine)
    elif callable(fn_or_coroutine):
        r = fn_or_coroutine(*args)
        if inspect.iscoroutine(r):
            task = _start(r)
        elif isinstance(r, Task):
            task = r
        else:
            return r
    elif isinstance(fn_or_coroutine, Task):
        task = fn_or_coroutine
    else:
        raise TypeError("run(): fn_or_coroutine must be a coroutine, a "
                        "callable or a Task, not "
                        f"{type(fn_or_coroutine).__name__}")
    try:
        return task.get_awaiter().get_result()
    except RuntimeError as e:
        interrupt = _interrupt_of(e)
        if interrupt is None:
            raise
    # sys.exit() / KeyboardInterrupt in the body after an await: as the
    # console Main, run() raises it as it is (issue 9 item 26), outside
    # the except block so that the wrapper is not chained to it
    raise interrupt


# The message of the RuntimeError a task faults with when its code is
# ended by a BaseException that is not an Exception (py_task.c,
# task_complete_from_error): the original is its __cause__.
_INTERRUPTED = "the task was interrupted by a BaseException"


def _interrupt_of(e: BaseException) -> BaseException | None:
    cause = e.__cause__
    if (type(e) is RuntimeError and e.args == (_INTERRUPTED,)
            and isinstance(cause, BaseException)
            and not isinstance(cause, Exception)):
        return cause
    return None


def _awaiter_method(awaiter: Any, name: str, fname: str) -> Any:
    """awaiter.<name>, or H2's TypeError naming the parameter (not an
    AttributeError: issue 9 item 14 sweep)."""
    meth = getattr(awaiter, name, None)
    if meth is None:
        raise TypeError(f"{fname}(): awaiter must have {name}(), "
                        f"{type(awaiter).__name__} has not")
    return meth


class AsyncTaskMethodBuilder:
    """The manual form of the builder (SPEC A5), like .NET's
    ``AsyncTaskMethodBuilder``: what the compiler emits for an ``async Task``
    method, to write the decompiled ``<GetAsync>d__0`` by hand::

        sm = GetAsyncStateMachine()
        sm.builder = AsyncTaskMethodBuilder.create()
        sm.state = -1
        sm.builder.start(sm)
        return sm.builder.task

    The state machine is any object with ``move_next()`` (and optionally
    ``set_state_machine(sm)``).
    """

    __slots__ = ("_tcs", "_task", "_context", "_done")

    def __init__(self) -> None:
        self._tcs: Any = None
        self._task: Any = None
        self._context: contextvars.Context | None = None
        self._done = False

    @staticmethod
    def create() -> "AsyncTaskMethodBuilder":
        """A new builder (``AsyncTaskMethodBuilder.Create()``)."""
        return AsyncTaskMethodBuilder()

    @property
    def task(self) -> Task:
        """The method's task; the same object on every read (S6.1)."""
        if self._task is None:
            self._tcs = TaskCompletionSource()
            self._task = self._tcs.task
        return self._task

    def start(self, state_machine: Any) -> None:
        """Run ``state_machine.move_next()`` now, on this thread, in a copy
        of the caller's contextvars context; context changes made by the
        synchronous part do not leak to the caller (R6.6)."""
        move_next = getattr(state_machine, "move_next", None)
        if move_next is None:
            raise TypeError("start(): state_machine must have move_next(), "
                            f"{type(state_machine).__name__} has not")
        self._context = contextvars.copy_context()
        saved = SynchronizationContext.current()
        try:
            self._context.run(move_next)
        finally:
            if SynchronizationContext.current() is not saved:
                SynchronizationContext.set_synchronization_context(saved)

    def set_state_machine(self, state_machine: Any) -> None:
        """Accepted for parity with .NET; nothing to do (no boxing)."""
        if state_machine is None:
            raise TypeError("set_state_machine(): state_machine is None")

    def _completed_check(self) -> None:
        if self._done:
            raise InvalidOperationError(
                "An attempt was made to transition a task to a final state "
                "when it had already completed.")

    def set_result(self, result: Any = None) -> None:
        """Complete the task with ``result`` (a cached task when nobody
        read ``task`` yet and the value is cacheable, R6.7)."""
        self._completed_check()
        self._done = True
        if self._task is None:
            self._task = Task.from_result(result)
        else:
            self._tcs.set_result(result)

    def set_exception(self, exception: BaseException) -> None:
        """Fault the task, or cancel it for an OperationCanceledError,
        keeping that very exception (R6.3)."""
        if exception is None:
            raise TypeError("set_exception(): exception must not be None")
        if not isinstance(exception, BaseException):
            raise TypeError("set_exception(): exception must be an "
                            f"exception, not {type(exception).__name__}")
        self._completed_check()
        self._done = True
        task = self.task
        if isinstance(exception, OperationCanceledError):
            self._tcs._set_canceled_exception(exception)
        else:
            self._tcs.set_exception(exception)
        del task

    def _continuation(self, state_machine: Any):
        ctx = self._context if self._context is not None else \
            contextvars.copy_context()
        move_next = state_machine.move_next

        def resume() -> None:
            ctx.run(move_next)
        resume.__qualname__ = (f"{type(state_machine).__qualname__}"
                               ".move_next")
        return resume

    def await_on_completed(self, awaiter: Any, state_machine: Any) -> None:
        """Schedule ``state_machine.move_next()`` for when ``awaiter``
        completes, through ``awaiter.on_completed``."""
        self.task  # the box exists from the first suspension on (R6.5)
        _awaiter_method(awaiter, "on_completed", "await_on_completed")(
            self._continuation(state_machine))

    def await_unsafe_on_completed(self, awaiter: Any,
                                  state_machine: Any) -> None:
        """Like await_on_completed, through ``unsafe_on_completed`` when the
        awaiter has it."""
        self.task
        register = getattr(awaiter, "unsafe_on_completed", None) or \
            _awaiter_method(awaiter, "on_completed",
                            "await_unsafe_on_completed")
        register(self._continuation(state_machine))
