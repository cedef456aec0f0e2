"""TaskScheduler, TaskFactory and the ThreadPool object (SPEC C7, T9,
T11, P1).  The scheduler here is the default (the pool) with the
unobserved-exception event; custom schedulers arrive with issue 4."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

from . import _native
from ._enums import TaskCreationOptions
from ._errors import InvalidOperationError

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource

_S = TypeVar("_S")

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
    """Where tasks run, like ``System.Threading.Tasks.TaskScheduler`` (SPEC
    C7).

    ``TaskScheduler.default`` is the thread pool.  Subclass it and override
    ``queue_task(task)``, ``try_execute_task_inline(task,
    previously_queued)`` and ``get_scheduled_tasks()``; run a task with
    ``self.try_execute_task(task)``.  Tasks started with
    ``Task.factory.start_new(..., scheduler=s)`` or
    ``continue_with(..., scheduler=s)`` go to ``s.queue_task``; code running
    in such a task sees ``TaskScheduler.current() is s``, and an ``await``
    there resumes on ``s`` (R7.2).
    """

    default: "TaskScheduler"
    _next_id = 0
    _id_lock = threading.Lock()

    @staticmethod
    def current() -> "TaskScheduler":
        """The scheduler of the task running now; ``default`` outside any
        task (like ``TaskScheduler.Current``)."""
        s = _native._current_scheduler()
        return s if s is not None else TaskScheduler.default

    @staticmethod
    def from_current_synchronization_context() -> "TaskScheduler":
        """A scheduler that posts its tasks to the current
        SynchronizationContext (like
        ``TaskScheduler.FromCurrentSynchronizationContext``)."""
        ctx = _native.SynchronizationContext.current()
        if ctx is None:
            raise InvalidOperationError(
                "The current SynchronizationContext may not be used as a "
                "TaskScheduler: there is none on this thread.")
        return _SyncContextTaskScheduler(ctx)

    @property
    def id(self) -> int:
        """A unique id, assigned on first read."""
        i = getattr(self, "_id", None)
        if i is None:
            with TaskScheduler._id_lock:
                TaskScheduler._next_id += 1
                i = self._id = TaskScheduler._next_id
        return i

    @property
    def maximum_concurrency_level(self) -> int:
        """How many tasks it may run at once (default: unbounded)."""
        return 2**31 - 1

    def queue_task(self, task: Task) -> None:
        """Queue ``task``; the scheduler must later run it with
        ``try_execute_task`` (abstract)."""
        raise NotImplementedError("a TaskScheduler subclass must implement "
                                  "queue_task(task)")

    def try_execute_task_inline(self, task: Task,
                                task_was_previously_queued: bool) -> bool:
        """Run ``task`` on the calling thread now if allowed, returning
        True only after running it with ``try_execute_task``."""
        return False

    def get_scheduled_tasks(self):
        """The tasks queued and not yet run (for debuggers)."""
        raise NotImplementedError

    def try_dequeue(self, task: Task) -> bool:
        """Remove a queued task (default: cannot)."""
        return False

    def try_execute_task(self, task: Task) -> bool:
        """Run ``task`` on the calling thread (protected
        ``TryExecuteTask``): False if it already ran; InvalidOperationError
        if it belongs to another scheduler."""
        return _native._try_execute_task(task, self)

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


class _ThreadPoolTaskScheduler(TaskScheduler):
    """The default scheduler: the thread pool (tasks on it are queued by
    the C core directly, never through queue_task)."""

    def queue_task(self, task: Task) -> None:
        raise InvalidOperationError("the default scheduler's tasks are "
                                    "queued to the pool directly")

    def get_scheduled_tasks(self):
        return []

    def __repr__(self) -> str:
        return "<TaskScheduler.default (thread pool)>"


class _SyncContextTaskScheduler(TaskScheduler):
    """Posts each task to a SynchronizationContext (R10.4)."""

    def __init__(self, ctx: Any) -> None:
        self.context = ctx

    @property
    def maximum_concurrency_level(self) -> int:
        return 1

    def queue_task(self, task: Task) -> None:
        self.context.post(lambda _state: self.try_execute_task(task), None)

    def try_execute_task_inline(self, task: Task,
                                task_was_previously_queued: bool) -> bool:
        if _native.SynchronizationContext.current() is self.context:
            return self.try_execute_task(task)
        return False

    def get_scheduled_tasks(self):
        return None

    def __repr__(self) -> str:
        return f"<TaskScheduler for {self.context!r}>"


TaskScheduler.default = _ThreadPoolTaskScheduler()


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
        # the binding's parsers, as every entry point (issue 9 item 27)
        opts = _native._parse_options(options, "options",
                                      "TaskCreationOptions", _VALID_CREATION)
        cancellation_token = _native._parse_token(cancellation_token)
        if scheduler is not None and not isinstance(scheduler, TaskScheduler):
            raise TypeError("start_new(): scheduler must be a TaskScheduler, "
                            f"not {type(scheduler).__name__}")
        if cancellation_token is not None and \
                cancellation_token.is_cancellation_requested:
            return Task.from_canceled(cancellation_token)
        if scheduler is None:
            scheduler = TaskScheduler.current()  # R5.3: not the default!
        # LONG_RUNNING on the default scheduler: the native start_new runs
        # the task on a dedicated C thread that is not a pool thread (.NET
        # 7.15: no pool thread is tied up, no blocking compensation).
        return Task._start_new(fn, tuple(args), opts, scheduler,
                               cancellation_token)


_native._install(factory=TaskFactory())


_MAX_THREADS = 32767  # .NET's maximum worker count on 64-bit


def _check_count(name: str, n: Any) -> int:
    """An int (not bool), or the binding's count parser's TypeError (issue
    9 item 27); the range is the caller's (.NET returns False out of
    range, and the maximum is clamped)."""
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    return _native._parse_count(n, name)  # raises TypeError


class _ThreadPool:
    """The process-wide thread pool (like the static
    ``System.Threading.ThreadPool``), SPEC P1-P3 and D3.  Its counters are
    attributes; the pool starts on first use, and reading a counter does
    not start it."""

    # Native (no Python frame, no GC object per item: the hot path of
    # W12); their docstrings are in csrc/binding/py_pool.c.  The checker
    # sees their signatures (fn() without a state, fn(state) with one).
    if TYPE_CHECKING:
        @overload
        @staticmethod
        def queue_user_work_item(fn: Callable[[], object], *,
                                 prefer_local: bool = False) -> bool:
            ...

        @overload
        @staticmethod
        def queue_user_work_item(fn: Callable[[_S], object], state: _S,
                                 prefer_local: bool = False) -> bool:
            ...

        @staticmethod
        def queue_user_work_item(fn: Callable[..., object],
                                 state: Any = ...,
                                 prefer_local: bool = False) -> bool:
            ...

        @overload
        @staticmethod
        def unsafe_queue_user_work_item(fn: Callable[[], object], *,
                                        prefer_local: bool = False) -> bool:
            ...

        @overload
        @staticmethod
        def unsafe_queue_user_work_item(fn: Callable[[_S], object],
                                        state: _S,
                                        prefer_local: bool = False) -> bool:
            ...

        @staticmethod
        def unsafe_queue_user_work_item(fn: Callable[..., object],
                                        state: Any = ...,
                                        prefer_local: bool = False) -> bool:
            ...
    else:
        queue_user_work_item = staticmethod(_native._queue_user_work_item)
        unsafe_queue_user_work_item = staticmethod(
            _native._unsafe_queue_user_work_item)

    def set_min_threads(self, n: int) -> bool:
        """Set the minimum worker count, like ``SetMinThreads``: False
        (and nothing changes) if ``n`` is negative or above the maximum;
        0 is stored as 1.  Raising the minimum starts threads at once."""
        n = _check_count("n", n)
        if n < 0 or n > self.get_max_threads():
            return False
        return _native._pool_set_threads(0, max(n, 1))

    def set_max_threads(self, n: int) -> bool:
        """Set the maximum worker count, like ``SetMaxThreads``: False (and
        nothing changes) if ``n`` is 0 or negative, or below the minimum;
        values above 32767 are clamped to 32767.  There is no
        processor-count floor (that was the .NET Framework pool's rule)."""
        n = _check_count("n", n)
        if n <= 0 or n < self.get_min_threads():
            return False
        return _native._pool_set_threads(1, min(n, _MAX_THREADS))

    def get_min_threads(self) -> int:
        """The minimum worker count (the processor count by default)."""
        return _native._pool_stats()["min_threads"]

    def get_max_threads(self) -> int:
        """The maximum worker count."""
        return _native._pool_stats()["max_threads"]

    def get_available_threads(self) -> int:
        """The maximum minus the workers processing work now (never
        negative), like ``GetAvailableThreads``."""
        s = _native._pool_stats()
        busy = s["thread_count"] - s["idle_count"]
        return max(0, s["max_threads"] - busy)

    @property
    def thread_count(self) -> int:
        """Worker threads alive, idle ones included (``ThreadCount``)."""
        return _native._pool_stats()["thread_count"]

    @property
    def pending_work_item_count(self) -> int:
        """Work items queued, not yet started, in the global queue and the
        workers' own queues (``PendingWorkItemCount``)."""
        return _native._pool_stats()["pending"]

    @property
    def completed_work_item_count(self) -> int:
        """Work items run since the pool started
        (``CompletedWorkItemCount``)."""
        return _native._pool_stats()["completed"]

    @property
    def starvation_events(self) -> int:
        """Times the pool's gate found work waiting with nothing completed
        for 500 ms and injected a thread (D3; each also issues a
        RuntimeWarning)."""
        return _native._pool_stats()["starvation_events"]

    @property
    def threads_injected(self) -> int:
        """Workers started beyond the minimum: by starvation detection, or
        to replace workers blocked in a sharptask wait (P3)."""
        return _native._pool_stats()["injected"]

    def __repr__(self) -> str:
        s = _native._pool_stats()
        return (f"<ThreadPool threads={s['thread_count']} "
                f"idle={s['idle_count']} pending={s['pending']} "
                f"completed={s['completed']} "
                f"injected={s['injected']} "
                f"starvation_events={s['starvation_events']}>")


ThreadPool = _ThreadPool()
