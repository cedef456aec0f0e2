"""sharptask: .NET's async model (tasks, awaiters, the async method builder,
synchronization contexts, the thread pool) implemented in C, driven from
Python.

A Python ``async def`` plays the compiler's state machine; the C builder
drives it the way ``AsyncTaskMethodBuilder`` drives ``MoveNext()``::

    import sharptask as st

    @st.async_method
    async def get_answer():
        await st.Task.delay(0.1)
        return 42

    task = get_answer()          # runs now, up to the first real suspension
    print(task.status)           # TaskStatus.WAITING_FOR_ACTIVATION
    print(task.result)           # 42 (blocks, like .Result)

The documentation (docs/ in the source distribution; `make docs` builds
the site) has the tutorial, the .NET name table, the API reference and the
semantics reference, which explains every rule id the docstrings cite
("SPEC A1" is its entry A1).
"""

import typing as _typing

from ._enums import (ConfigureAwaitOptions, TaskContinuationOptions,
                     TaskCreationOptions, TaskStatus)
from ._errors import (AggregateError, DeadlockError, InvalidOperationError,
                      ObjectDisposedError, OperationCanceledError,
                      SemaphoreFullError, TaskCanceledError)
from . import _native  # noqa: F401 (sharptask._native, the extension)
from ._native import (INFINITE, Action, AsyncMethod, ConfiguredTaskAwaitable,
                      SingleThreadSynchronizationContext,
                      SynchronizationContext, Task, TaskAwaiter,
                      TaskCompletionSource, YieldAwaitable)
from ._builder import (AsyncTaskMethodBuilder, async_method, run)
from ._scheduling import (TaskFactory, TaskScheduler, ThreadPool,
                          UnobservedTaskExceptionEventArgs)
from ._context import (AsyncDump, ExclusiveSynchronizationContext, UiThread,
                       async_void, dump_async, get_deadlock_detection,
                       print_async_dump, set_deadlock_detection,
                       set_unhandled_exception_handler,
                       set_unhandled_exception_policy)
# Cancellation (SPEC K1-K4, issue 6)
from ._native import (CancellationToken, CancellationTokenRegistration,
                      CancellationTokenSource)
from ._semaphore import SemaphoreSlim
# ValueTask, sources and the pooling builder (SPEC V1-V5, issue 5)
from ._enums import ValueTaskSourceOnCompletedFlags, ValueTaskSourceStatus
from ._native import (AsyncValueMethod, ConfiguredValueTaskAwaitable,
                      ManualResetValueTaskSourceCore, ValueTask,
                      ValueTaskAwaiter, get_strict_value_task, pool_stats,
                      set_strict_value_task)
from ._valuetask import IValueTaskSource, async_value_method
# Timers and virtual time (SPEC P5, P6a, issue 3)
from ._timers import FakeTimeProvider, PeriodicTimer, TimeProvider, Timer
# Tracing (SPEC D2, issue 12)
from ._trace import Trace, TraceEvent, trace
# asyncio and concurrent.futures interop, scale-out (SPEC I1-I3, issue 11)
from ._executor import Executor, ExecutorTaskScheduler

if _typing.TYPE_CHECKING:
    from ._asyncio import AsyncioSynchronizationContext
else:
    # Hidden from type checkers: a module __getattr__ would make every
    # unknown name (a typo such as st.no_such_name) type-check as valid.
    def __getattr__(name: str):
        # asyncio is imported only by code that asks for its context
        if name == "AsyncioSynchronizationContext":
            from ._asyncio import AsyncioSynchronizationContext
            return AsyncioSynchronizationContext
        raise AttributeError(
            f"module 'sharptask' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "Action", "AggregateError", "AsyncDump", "AsyncMethod",
    "AsyncTaskMethodBuilder", "ExclusiveSynchronizationContext",
    "SingleThreadSynchronizationContext", "UiThread", "async_void",
    "dump_async", "get_deadlock_detection", "print_async_dump",
    "set_deadlock_detection", "set_unhandled_exception_handler",
    "set_unhandled_exception_policy",
    "ConfigureAwaitOptions", "ConfiguredTaskAwaitable", "DeadlockError",
    "INFINITE", "InvalidOperationError", "ObjectDisposedError",
    "OperationCanceledError", "SemaphoreFullError", "SynchronizationContext",
    "Task", "TaskAwaiter", "TaskCanceledError", "TaskCompletionSource",
    "TaskContinuationOptions", "TaskCreationOptions", "TaskFactory",
    "TaskScheduler", "TaskStatus", "ThreadPool",
    "UnobservedTaskExceptionEventArgs", "YieldAwaitable", "async_method",
    "run",
]
__all__ += [
    "CancellationToken", "CancellationTokenRegistration",
    "CancellationTokenSource", "SemaphoreSlim",
]
__all__ += [
    "AsyncValueMethod", "ConfiguredValueTaskAwaitable", "IValueTaskSource",
    "ManualResetValueTaskSourceCore", "ValueTask", "ValueTaskAwaiter",
    "ValueTaskSourceOnCompletedFlags", "ValueTaskSourceStatus",
    "async_value_method", "get_strict_value_task", "pool_stats",
    "set_strict_value_task",
]
__all__ += ["FakeTimeProvider", "PeriodicTimer", "TimeProvider", "Timer"]
__all__ += ["Trace", "TraceEvent", "trace"]
__all__ += ["AsyncioSynchronizationContext", "Executor",
            "ExecutorTaskScheduler"]

# The pool and the timer are C threads: stop them while the interpreter
# still works fully (before finalization), and start afresh after fork
# (_context._install_lifecycle_hooks: atexit and os.register_at_fork keep
# the native hooks, no name does).
from . import _context  # the module itself, for its hooks
_context._install_lifecycle_hooks()
