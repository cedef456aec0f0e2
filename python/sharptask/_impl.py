"""Python-level parts of Task's API that the C type forwards to.

These are the rarer paths (cancellation tokens on waits, wait_all,
as_future ...): correct and simple here, with the hot paths in C.  The
C methods call the functions of this module by name.
"""
from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from . import _native
from ._errors import (AggregateError, InvalidOperationError,
                      OperationCanceledError, TaskCanceledError)

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource


def _timeout_seconds(timeout: Any, name: str = "timeout") -> float | None:
    """Validate a timeout like the C parser; None means no limit."""
    import datetime
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        secs = timeout.total_seconds()
        if secs == -0.001:
            return None
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        secs = float(timeout)
    else:
        raise TypeError(f"{name} must be a number of seconds, a timedelta "
                        f"or None, not {type(timeout).__name__}")
    if secs != secs:
        raise ValueError(f"{name} must not be NaN")
    if secs == -1:
        return None
    if secs < 0:
        raise ValueError(f"{name} must be >= 0, or -1 / None for no limit, "
                         f"not {timeout!r}")
    return secs


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

    __slots__ = ("tcs", "inner", "reg", "token", "mirror")

    def __init__(self, task, secs, token, mirror):
        self.tcs = TaskCompletionSource()
        self.inner = _native.CancellationTokenSource()
        self.token = token
        self.mirror = mirror
        self.reg = None
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
        self.tcs.try_set_exception(TimeoutError())
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
        return Task.from_exception(TimeoutError())
    if token is None or not token.can_be_canceled:
        return _native._wait_async_timeout(task, secs)
    # K3: the token, the timeout and the task race; the first one wins and
    # the others' continuation, timer and registration go at once
    return _TokenWait(task, secs, token, True).tcs.task


def delay_token(seconds, token):
    """Task.delay with a token object that is not a native
    CancellationToken (native ones are handled in C: py_pool.c)."""
    if token.is_cancellation_requested:
        return Task.from_canceled(token)
    if not token.can_be_canceled:
        return Task.delay(seconds)
    # The delay itself gets a native token that the foreign one cancels:
    # so a canceled delay disarms its timer at once (as in C, K3) instead
    # of keeping the timer, this source, the registration and the foreign
    # token alive until the delay would have expired (H3).
    inner = _native.CancellationTokenSource()
    d = Task.delay(seconds, cancellation_token=inner.token)
    if d.is_completed:
        return d
    tcs = TaskCompletionSource()

    def canceled():
        if tcs.try_set_canceled(token):
            inner.cancel()
    reg = token.register(canceled)

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
        raise TypeError("from_future(): future must be a "
                        f"concurrent.futures.Future, not {type(fut).__name__}")
    tcs = TaskCompletionSource()

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
    tcs = TaskCompletionSource()
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
