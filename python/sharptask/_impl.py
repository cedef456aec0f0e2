"""Python-level parts of Task's API that the C type forwards to.

These are the rarer paths (cancellation tokens on waits, wait_all,
as_future ...): correct and simple here, with the hot paths in C.  The
C methods call the functions of this module by name.
"""
from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
import warnings
from typing import Any

from . import _native
from ._errors import (AggregateError, InvalidOperationError,
                      OperationCanceledError, TaskCanceledError)

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource


def _timeout_seconds(timeout: Any, name: str = "timeout") -> float | None:
    """Validate a timeout with the C parser every entry point uses (issue
    9 item 27, H2); seconds, or None for no limit."""
    return _native._parse_timeout(timeout, name)


def _split_wait_args(args: tuple, timeout: Any, fname: str):
    """wait_all/wait_any take (tasks, timeout=None) as in .NET; a plain
    list of Task arguments is accepted too."""
    if args and not isinstance(args[0], Task) and len(args) == 2:
        if timeout is not None:
            raise TypeError(f"{fname}() got multiple values for 'timeout'")
        return args[:1], args[1]
    if len(args) > 2 and not isinstance(args[0], Task):
        raise TypeError(f"{fname}() takes tasks and an optional timeout")
    return args, timeout


def _collect(tasks: tuple, fname: str) -> list:
    if len(tasks) == 1 and not isinstance(tasks[0], Task):
        if tasks[0] is None:
            raise TypeError(f"{fname}(): tasks must not be None")
        tasks = tuple(tasks[0])
    for i, t in enumerate(tasks):
        if not isinstance(t, Task):
            exc = ValueError if t is None else TypeError
            raise exc(f"{fname}(): tasks[{i}] must be a Task, not "
                      f"{type(t).__name__}")
    return list(tasks)


def _dispose(reg: Any) -> None:
    if reg is not None:
        dispose = getattr(reg, "dispose", None)
        if dispose is not None:
            dispose()


_EXEC_SYNC = 0x80000  # TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY
_ONLY_ON_RAN = 0x60000  # TaskContinuationOptions.ONLY_ON_RAN_TO_COMPLETION


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# The registry of the warnings issued on pool threads (as a module's
# __warningregistry__: the "default" action shows each one once).
_POOL_WARNING_REGISTRY: dict[Any, Any] = {}


def _warn(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """Issue one of sharptask's own warnings where it belongs (issue 14):
    at the first line outside the sharptask package on the calling
    thread's stack (the user's call, as a right ``stacklevel`` would
    give); on a pool thread with no such line, at ``<sharptask thread
    pool>``, never at ``sys:1``.  May raise, as warnings.warn does, when
    a filter turns the warning into an error."""
    frame = sys._getframe(0).f_back  # None on a pool thread's bare stack
    level = 2  # stacklevel 1 would be this function
    while frame is not None and \
            os.path.abspath(frame.f_code.co_filename).startswith(
                _PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    if frame is not None:
        warnings.warn(message, category, stacklevel=level)
        return
    warnings.warn_explicit(message, category, "<sharptask thread pool>", 0,
                           module="sharptask",
                           registry=_POOL_WARNING_REGISTRY)


def _name_thread(name: str | None) -> None:
    """Called by the binding on a pool, timer or long-running thread
    (issue 14): with the core's name for the thread on its first attach,
    so that ``threading.current_thread().name`` is ``sharptask-worker-3``
    (not ``Dummy-7``); with None when the thread ends, to drop its entry
    (a dummy thread's is otherwise never removed, and
    ``threading.enumerate()`` would list dead workers)."""
    if name is not None:
        threading.current_thread().name = name
        return
    active = getattr(threading, "_active", None)
    lock = getattr(threading, "_active_limbo_lock", None)
    dummy = getattr(threading, "_DummyThread", None)
    if active is None or lock is None or dummy is None:
        return
    with lock:
        ident = threading.get_ident()
        if isinstance(active.get(ident), dummy):
            del active[ident]


def _timeout_error(task: Any, secs: float, provider: Any = None
                   ) -> TimeoutError:
    """The TimeoutError of wait_async: what timed out and after how long
    (issue 14; py_task.c words the native one the same way)."""
    clock = f" on {provider!r}" if provider is not None else ""
    return TimeoutError(f"wait_async(): {task!r} did not complete within "
                        f"the timeout of {secs:g} s{clock}")


def _register_quiet(token: Any, fn) -> Any:
    """Register fn() on token without flowing the context."""
    unsafe = getattr(token, "unsafe_register", None)
    return unsafe(fn) if unsafe is not None else token.register(fn)


class _TokenWait:
    """A promise for a wait with a cancellation token (K3): it completes
    when `task` does (mirroring it with `mirror`, else with None), is
    canceled when `token` fires, or faults with TimeoutError after `secs`,
    whichever comes first.  Then everything it registered is released at
    once: an inner source cancels the continuation on `task` (which takes
    it off the task, R3.10) and the delay (which disarms its timer), and
    the registration on `token` is dropped.  So a long-pending task and a
    long-lived token keep nothing of a finished wait."""

    __slots__ = ("tcs", "inner", "reg", "token", "mirror", "task", "secs")

    def __init__(self, task, secs, token, mirror):
        self.tcs: TaskCompletionSource[Any] = TaskCompletionSource()
        self.inner = _native.CancellationTokenSource()
        self.token = token
        self.mirror = mirror
        self.reg = None
        # for the timeout's message (only a wait with a timeout needs it);
        # dropped by finish()
        self.task = task if secs is not None else None
        self.secs = secs
        inner = self.inner.token
        task.continue_with(self._on_done, cancellation_token=inner,
                           options=_EXEC_SYNC)
        if secs is not None:
            Task.delay(secs, cancellation_token=inner).continue_with(
                self._on_timeout, options=_EXEC_SYNC | _ONLY_ON_RAN)
        if not self.tcs.task.is_completed:
            self.reg = _register_quiet(token, self._on_token)
            if self.tcs.task.is_completed:
                self.finish()  # completed while registering

    def finish(self):
        """Release the continuation, the timer and the registration."""
        self.inner.cancel()
        self.task = None
        reg, self.reg = self.reg, None
        if reg is not None:
            getattr(reg, "unregister", reg.dispose)()

    def _on_done(self, t):
        tcs = self.tcs
        if not self.mirror:
            tcs.try_set_result(None)
        elif t.is_completed_successfully:
            tcs.try_set_result(t.result)
        elif t.is_faulted:
            tcs.try_set_exception(t.exception.inner_exceptions)
        else:
            tcs.try_set_canceled()
        self.finish()

    def _on_timeout(self, _):
        self.tcs.try_set_exception(_timeout_error(self.task, self.secs))
        self.finish()

    def _on_token(self):
        self.tcs.try_set_canceled(self.token)
        self.finish()


def task_wait_token(task, timeout, token):
    """Task.wait with a cancellation token (T4, R2.3, K3): raises
    OperationCanceledError when the token fires first; the task itself is
    unaffected."""
    if token.is_cancellation_requested:
        raise OperationCanceledError(cancellation_token=token)
    if task.is_completed or not token.can_be_canceled:
        return task.wait(timeout)
    _timeout_seconds(timeout)  # validated before anything is registered
    w = _TokenWait(task, None, token, False)
    try:
        done = w.tcs.task.wait(timeout)
    except AggregateError:  # canceled by the token
        done = True
    finally:
        w.finish()  # a timed-out wait leaves nothing behind
    if not done:
        return False
    if token.is_cancellation_requested and not \
            task.is_completed_successfully:
        # R2.3: the wait's token wins over a canceled (or pending) task
        raise OperationCanceledError(cancellation_token=token)
    return task.wait(0)


def wait_all(*tasks, timeout=None):
    """Task.wait_all (T4, R5.10)."""
    tasks, timeout = _split_wait_args(tasks, timeout, "wait_all")
    secs = _timeout_seconds(timeout)
    ts = _collect(tasks, "wait_all")
    if not ts:
        return True
    import time
    deadline = None if secs is None else time.monotonic() + secs
    for t in ts:
        if t.is_completed:
            continue
        remaining = None if deadline is None else \
            max(0.0, deadline - time.monotonic())
        if not _native._wait_quiet(t, remaining):  # observes nothing
            return False
    excs: list[BaseException] = []
    for t in ts:
        if t.is_faulted:
            excs.extend(t.exception.inner_exceptions)
        elif t.is_canceled:
            excs.append(TaskCanceledError(task=t))
    if excs:
        raise AggregateError(excs)
    return True if timeout is not None else None


def wait_any(*tasks, timeout=None):
    """Task.wait_any (T4, R5.11): the index, or -1."""
    tasks, timeout = _split_wait_args(tasks, timeout, "wait_any")
    secs = _timeout_seconds(timeout)
    ts = _collect(tasks, "wait_any")
    if not ts:
        return -1
    return _native._wait_any(tuple(ts), secs)


def task_wait_async(task, timeout=None, cancellation_token=None):
    """Task.wait_async (R5.9)."""
    secs = _timeout_seconds(timeout)
    token = cancellation_token
    if task.is_completed or (secs is None and (
            token is None or not token.can_be_canceled)):
        return task
    if token is not None and token.is_cancellation_requested:
        return Task.from_canceled(token)
    if secs == 0:
        return Task.from_exception(_timeout_error(task, secs))
    if token is None or not token.can_be_canceled:
        return _native._wait_async_timeout(task, secs)
    # K3: the token, the timeout and the task race; the first one wins and
    # the others' continuation, timer and registration go at once
    return _TokenWait(task, secs, token, True).tcs.task


def delay_token(seconds, token):
    """Task.delay with a token object that is not a native
    CancellationToken (native ones are handled in C: py_pool.c).  When the
    token fires first, an inner source cancels the delay too, which
    disarms its timer at once (issue 9 item 10, H3: it stayed armed, with
    this wait's closure, until the delay was over)."""
    if token.is_cancellation_requested:
        return Task.from_canceled(token)
    if not token.can_be_canceled:
        return Task.delay(seconds)
    inner = _native.CancellationTokenSource()
    d = Task.delay(seconds, cancellation_token=inner.token)
    if d.is_completed:
        return d
    tcs: TaskCompletionSource[None] = TaskCompletionSource()

    def fired():
        tcs.try_set_canceled(token)
        inner.cancel()
    reg = token.register(fired)

    def done(t):
        _dispose(reg)
        if t.is_completed_successfully:
            tcs.try_set_result(None)
    d.continue_with(done, options=0x80000)
    return tcs.task


def default_scheduler():
    """TaskScheduler.default, for the C side."""
    from ._scheduling import TaskScheduler
    return TaskScheduler.default


def task_as_future(task):
    """Task.as_future (I1): a concurrent.futures.Future."""
    fut: concurrent.futures.Future = concurrent.futures.Future()
    fut.set_running_or_notify_cancel()

    def done(t):
        if t.is_completed_successfully:
            fut.set_result(t.result)
        elif t.is_faulted:
            fut.set_exception(t.exception.inner_exceptions[0])
        else:
            fut.set_exception(TaskCanceledError(task=t))
    task.continue_with(done, options=0x80000)
    return fut


def task_from_future(fut):
    """Task.from_future (I1)."""
    if not isinstance(fut, concurrent.futures.Future):
        aio = sys.modules.get("asyncio")  # no asyncio loaded: no its futures
        if aio is not None and aio.isfuture(fut):
            from ._asyncio import task_from_asyncio_future
            return task_from_asyncio_future(fut)
        raise TypeError("from_future(): future must be a "
                        "concurrent.futures.Future or an asyncio future, "
                        f"not {type(fut).__name__}")
    tcs: TaskCompletionSource[Any] = TaskCompletionSource()

    def done(f):
        if f.cancelled():
            tcs.try_set_canceled()
        elif f.exception() is not None:
            tcs.try_set_exception(f.exception())
        else:
            tcs.try_set_result(f.result())
    fut.add_done_callback(done)
    return tcs.task


def context_send(ctx, callback, state):
    """SingleThreadSynchronizationContext.send from another thread: post
    and wait (a deadlock-aware wait)."""
    tcs: TaskCompletionSource[Any] = TaskCompletionSource()
    _native._completed_by(tcs.task, ctx)

    def call(_):
        try:
            r = callback(state)
        except BaseException as e:
            tcs.try_set_exception(e)
        else:
            tcs.try_set_result(r)
    ctx.post(call, None)
    return tcs.task.get_awaiter().get_result()


def _thread_name(ident):
    for t in threading.enumerate():
        if t.ident == ident:
            return t.name
    return f"thread-pool thread {ident}"


def _method_name(coro):
    return getattr(coro, "__qualname__", None) or type(coro).__name__


def deadlock_message(ident, task, steps):
    """The text of DeadlockError (SPEC C6): the blocked thread, the
    context, the chain of async methods that need it, and the fixes."""
    me = _thread_name(ident)
    methods = []
    ctx_desc = None
    ctx_owner = None
    lines = []
    for kind, a, b in steps:
        if kind == "box":
            name = _method_name(b)
            methods.append(name)
            lines.append(f"  async method {name} ({a!r})")
        elif kind == "task":
            lines.append(f"  task {a!r}")
        elif kind == "context":
            owner = _thread_name(b)
            if ctx_desc is None:
                ctx_desc = f"{type(a).__name__} run by {owner!r}"
                ctx_owner = b
            lines.append(f"  needs {type(a).__name__} {hex(id(a))}, whose "
                         f"only thread is {owner!r}")
        elif kind == "blocked":
            lines.append(f"  {_thread_name(a)!r} is blocked waiting for "
                         f"{b!r}")
    chain = " -> ".join(dict.fromkeys(methods)) if methods \
        else "(no async method)"
    if ctx_owner == ident:
        why = "that is, on the blocked thread itself"
    else:
        why = ("and that thread is itself blocked, waiting (directly or "
               f"not) for {me!r}")
    text = [
        f"deadlock: thread {me!r} is blocked in a synchronous wait "
        f"(.result / wait() / get_awaiter().get_result()) on {task!r}, "
        f"which can only complete on {ctx_desc or 'a context'} — {why}.",
        f"Pending async methods that need it: {chain}",
        "Wait-for chain:",
        *lines,
        "Fixes:",
        "  - await the task instead of blocking on it (async all the way "
        "up);",
        "  - in library code, use configure_await(False) on every await, so "
        "that continuations do not need the context"
        + (f" (in {', '.join(dict.fromkeys(methods))})" if methods else "")
        + ";",
        "  - or run the blocking wait on a thread with no context, e.g. "
        "Task.run(lambda: fn()).result.",
    ]
    return "\n".join(text)


# ------------------------------------------------ asyncio interop (I1, I2)
# The C awaiters and builder call these by name; the work is in _asyncio
# (imported on first use: only code that runs an asyncio loop needs it).

def asyncio_wait(waiting):
    """What an awaiter yields to a driver that is not the builder (C:
    await_yield): for asyncio, a future; with no asyncio loaded (a
    coroutine driven by hand), the awaiter's own object, as before."""
    if "asyncio.events" not in sys.modules:
        return waiting
    from ._asyncio import asyncio_wait as wait
    return wait(waiting)


def builder_await_foreign(yielded, action):
    """An async method awaits an asyncio future (C: box_await)."""
    if "asyncio.events" not in sys.modules:
        return False  # no asyncio: nothing of it can have been yielded
    from ._asyncio import builder_await_foreign as register
    return register(yielded, action)


def task_as_asyncio_future(task, loop=None):
    """Task.as_asyncio_future (I2)."""
    from ._asyncio import as_asyncio_future
    return as_asyncio_future(task, loop)


def await_iter(awaitable):
    """The iterator of an explicit ``x.__await__()`` (C:
    await_method_iter): a generator over x's steps, for code that needs a
    real iterator (asyncio 3.11's ``yield from x.__await__()``)."""
    while True:
        try:
            waiting = next(awaitable)
        except StopIteration as stop:
            return stop.value
        try:
            yield waiting
        except RuntimeError as exc:
            if not _bad_yield(exc):
                raise
            yield _rewait(awaitable)


def _bad_yield(exc):
    """asyncio's error for a yielded object that is not its future."""
    return (type(exc) is RuntimeError and exc.args
            and isinstance(exc.args[0], str)
            and exc.args[0].startswith("Task got bad yield"))


def _rewait(awaitable):
    """For asyncio, what to yield instead of what it refused: a future
    done when awaitable is (None, a bare yield, if it is done already)."""
    try:
        waiting = next(awaitable)
    except StopIteration:
        return None  # done meanwhile: the next step returns its result
    from ._asyncio import asyncio_wait as wait
    return wait(waiting)


def await_throw(awaitable, typ, value, tb):
    """The ``throw`` of the awaitable types (C: await_throw_method):
    (False, exception) to raise at the await, or, for asyncio's "bad
    yield" of an awaiter that an asyncio loop run inside an async method's
    step drives, (True, the asyncio future to yield instead)."""
    if isinstance(typ, BaseException):
        exc = typ
    elif isinstance(typ, type) and issubclass(typ, BaseException):
        exc = value if isinstance(value, typ) else \
            typ() if value is None else typ(value)
    else:
        raise TypeError("throw(): exceptions must be classes or instances "
                        f"deriving from BaseException, not "
                        f"{type(typ).__name__}")
    if tb is not None:
        exc = exc.with_traceback(tb)
    if _bad_yield(exc) and _get_running_loop() is not None:
        return True, _rewait(awaitable)
    return False, exc


def _get_running_loop():
    aio = sys.modules.get("asyncio.events")
    return None if aio is None else aio._get_running_loop()
