"""TaskScheduler, TaskFactory and the ThreadPool object (SPEC C7, T9,
T11, P1).  The scheduler here is the default (the pool) with the
unobserved-exception event; custom schedulers arrive with issue 4."""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

from . import _native
from ._enums import TaskCreationOptions

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource

__all__ = ["TaskScheduler", "TaskFactory", "ThreadPool",
           "UnobservedTaskExceptionEventArgs"]


class UnobservedTaskExceptionEventArgs:
    """What an unobserved-exception handler receives (like .NET's
    ``UnobservedTaskExceptionEventArgs``)."""

    __slots__ = ("exception", "task", "observed")

    def __init__(self, task: Any, exception: BaseException) -> None:
        self.task = task
        self.exception = exception
        self.observed = False

    def set_observed(self) -> None:
        """Mark the exception observed: it is then not reported through
        ``sys.unraisablehook``."""
        self.observed = True


_handlers: list[Callable[[UnobservedTaskExceptionEventArgs], Any]] = []
_handlers_lock = threading.Lock()


def _unobserved_hook(task: Any, exception: BaseException) -> bool:
    """Called by the C finalizer of a faulted, unobserved task (T11).
    Returns True if a handler called set_observed()."""
    with _handlers_lock:
        handlers = list(_handlers)
    args = UnobservedTaskExceptionEventArgs(task, exception)
    for h in handlers:
        h(args)
    return args.observed


_native._install(unobserved_hook=_unobserved_hook)


class TaskScheduler:
    """Where tasks run, like ``System.Threading.Tasks.TaskScheduler``.

    ``TaskScheduler.default`` is the thread pool.
    """

    default: "TaskScheduler"

    @staticmethod
    def current() -> "TaskScheduler":
        """The scheduler of the task running now; the default outside any
        task (custom schedulers arrive with issue 4)."""
        return TaskScheduler.default

    @staticmethod
    def add_unobserved_task_exception_handler(
            fn: Callable[[UnobservedTaskExceptionEventArgs], Any]) -> None:
        """Add a handler of ``TaskScheduler.UnobservedTaskException``: it
        gets an event with ``exception`` (the AggregateError) and
        ``set_observed()`` when a faulted task whose exception nobody
        observed is collected."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        with _handlers_lock:
            _handlers.append(fn)

    @staticmethod
    def remove_unobserved_task_exception_handler(fn: Callable) -> None:
        """Remove a handler added before (no error if absent)."""
        with _handlers_lock:
            try:
                _handlers.remove(fn)
            except ValueError:
                pass

    def __repr__(self) -> str:
        return "<TaskScheduler default (thread pool)>"


TaskScheduler.default = TaskScheduler()


_VALID_CREATION = 0x5F


class TaskFactory:
    """``Task.factory``: like .NET's ``TaskFactory``."""

    def start_new(self, fn: Callable, *args: Any,
                  cancellation_token: Any = None,
                  options: int = TaskCreationOptions.NONE,
                  scheduler: Any = None) -> Task:
        """Start ``fn(*args)`` and return its Task, without unwrapping: an
        async ``fn`` gives a Task of a Task (R5.3).  LONG_RUNNING runs it
        on a dedicated thread."""
        if not callable(fn):
            raise TypeError("start_new(): fn must be callable, not "
                            f"{type(fn).__name__}")
        opts = int(options)
        if opts & ~_VALID_CREATION:
            raise ValueError(f"options: {opts:#x} is not a valid "
                             "combination of TaskCreationOptions")
        if scheduler is not None and scheduler is not TaskScheduler.default:
            raise NotImplementedError(
                "start_new(scheduler=...) with a custom TaskScheduler "
                "arrives with issue 4")
        if cancellation_token is not None and \
                cancellation_token.is_cancellation_requested:
            return Task.from_canceled(cancellation_token)
        if opts & TaskCreationOptions.LONG_RUNNING:
            return _long_running(fn, args)
        return Task._start_new(fn, tuple(args), opts)


def _long_running(fn: Callable, args: tuple) -> Task:
    tcs = TaskCompletionSource(None, 0)

    def body() -> None:
        try:
            r = fn(*args)
        except BaseException as e:  # the task carries it
            tcs.set_exception(e)
        else:
            tcs.set_result(r)
    threading.Thread(target=body, name="sharptask long-running task",
                     daemon=True).start()
    return tcs.task


_native._install(factory=TaskFactory())


class _ThreadPool:
    """The process-wide thread pool (like the static
    ``System.Threading.ThreadPool``).  Its counters are attributes."""

    def queue_user_work_item(self, fn: Callable, state: Any = ...,
                             prefer_local: bool = False) -> bool:
        """Queue ``fn(state)`` (or ``fn()`` without a state) to the pool,
        flowing the contextvars context."""
        if state is ...:
            return _native._pool_queue(fn)
        return _native._pool_queue(fn, state)

    def unsafe_queue_user_work_item(self, fn: Callable, state: Any = ...,
                                    prefer_local: bool = False) -> bool:
        """Like queue_user_work_item, without flowing the context."""
        if state is ...:
            return _native._pool_queue(fn, flow=False)
        return _native._pool_queue(fn, state, flow=False)

    def set_min_threads(self, n: int) -> bool:
        """Set the minimum thread count; False for an invalid value."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1 or \
                n > self.get_max_threads():
            return False
        return _native._pool_set_threads(0, n)

    def set_max_threads(self, n: int) -> bool:
        """Set the maximum thread count; False for an invalid value (below
        the processor count or the minimum, as .NET refuses)."""
        if not isinstance(n, int) or isinstance(n, bool) or \
                n < self.get_min_threads() or n < (os.cpu_count() or 1):
            return False
        return _native._pool_set_threads(1, n)

    def get_min_threads(self) -> int:
        """The minimum thread count."""
        return _native._pool_stats()["min_threads"]

    def get_max_threads(self) -> int:
        """The maximum thread count."""
        return _native._pool_stats()["max_threads"]

    def get_available_threads(self) -> int:
        """Maximum minus the threads busy now."""
        s = _native._pool_stats()
        return s["max_threads"] - (s["thread_count"] - s["idle_count"])

    @property
    def thread_count(self) -> int:
        """Worker threads alive."""
        return _native._pool_stats()["thread_count"]

    @property
    def pending_work_item_count(self) -> int:
        """Work items queued, not yet started."""
        return _native._pool_stats()["pending"]

    @property
    def completed_work_item_count(self) -> int:
        """Work items run since start."""
        return _native._pool_stats()["completed"]

    @property
    def threads_injected(self) -> int:
        """Workers started beyond the minimum."""
        return _native._pool_stats()["injected"]

    def __repr__(self) -> str:
        s = _native._pool_stats()
        return (f"<ThreadPool threads={s['thread_count']} "
                f"pending={s['pending']} completed={s['completed']}>")


ThreadPool = _ThreadPool()
