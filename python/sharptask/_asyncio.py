"""asyncio interop (SPEC I1, I2).

Two drivers can run a coroutine that awaits a sharptask Task: sharptask's
own builder (an ``@async_method``), which registers a continuation node on
the Task the awaiter yields, and asyncio's Task, which only understands
asyncio futures.  The awaiters (C: ``await_yield`` in py_builder.c) tell
them apart and, for asyncio, call ``asyncio_wait`` here: it yields an
asyncio future of the running loop that a continuation on the sharptask
Task completes through ``loop.call_soon_threadsafe``; asyncio then resumes
the coroutine on the loop's thread, and the awaiter's next step returns the
Task's value or raises its exception (the object itself) or
TaskCanceledError, exactly as under the builder.

The other way round, an ``@async_method`` may await asyncio futures, tasks
and coroutines: the builder hands what they yield to
``builder_await_foreign``, which resumes the method from the future's loop.

Also here: ``Task.as_asyncio_future``, ``Task.from_future`` for asyncio
futures and ``AsyncioSynchronizationContext``.
"""
from __future__ import annotations

import asyncio
from asyncio import events as _events
from typing import Any, Callable

from . import _native
from ._errors import TaskCanceledError

__all__ = ["AsyncioSynchronizationContext"]

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource
SynchronizationContext = _native.SynchronizationContext
_YieldAwaitable = _native.YieldAwaitable
_get_running_loop = _events._get_running_loop


# ------------------------------------------------- asyncio drives (await)

def _wake(fut: asyncio.Future) -> None:
    """On the loop: let the awaiting asyncio task run its next step.  A
    future cancelled meanwhile (the await was abandoned) is left alone, so
    that a late completion logs nothing (I2)."""
    if not fut.done():
        fut.set_result(None)


def _waker(loop: asyncio.AbstractEventLoop, fut: asyncio.Future) -> Callable:
    """The continuation registered on the sharptask side: it runs on
    whichever thread completes the task."""
    def done() -> None:
        if _get_running_loop() is loop:
            loop.call_soon(_wake, fut)  # completed on the loop's own thread
            return
        try:
            loop.call_soon_threadsafe(_wake, fut)
        except RuntimeError:
            pass  # the loop is closed: nobody can be waiting any more
    return done


def asyncio_wait(waiting: Any) -> Any:
    """What an awaiter yields to a driver that is not the builder (C:
    await_yield): an asyncio future of the running loop, done when
    ``waiting`` (a pending Task, a task or ValueTask awaiter) completes;
    None (asyncio's bare yield) for ``Task.yield_()``; ``waiting`` itself
    when no asyncio loop runs on this thread."""
    loop = _get_running_loop()
    if loop is None:
        return waiting
    if type(waiting) is _YieldAwaitable:
        return None  # asyncio runs the task's next step on a later turn
    register: Callable[[Callable[[], object]], None] | None
    if isinstance(waiting, Task):
        register = waiting.configure_await(False).unsafe_on_completed
    else:
        register = getattr(waiting, "unsafe_on_completed", None)
        if register is None:
            return waiting
    fut = loop.create_future()
    register(_waker(loop, fut))
    fut._asyncio_future_blocking = True
    return fut


# ------------------------------------------- the builder drives (asyncio)

def builder_await_foreign(yielded: Any, action: Callable) -> bool:
    """An ``@async_method`` awaits something asyncio's own awaitables
    yielded (C: box_await): an asyncio future, or a bare ``yield``
    (``asyncio.sleep(0)``).  Registers ``action`` (it resumes the method
    once) to run on the future's loop; False if ``yielded`` is neither."""
    if yielded is None:
        loop = _get_running_loop()
        if loop is None:
            return False
        loop.call_soon(action)
        return True
    if getattr(yielded, "_asyncio_future_blocking", None) is None:
        return False
    yielded._asyncio_future_blocking = False
    loop = yielded.get_loop()
    resume = _resumer(action, loop)
    if _get_running_loop() is loop:
        yielded.add_done_callback(resume)
    else:
        # futures are not thread-safe: register from the loop's thread
        loop.call_soon_threadsafe(yielded.add_done_callback, resume)
    return True


def _resumer(action: Callable, loop: Any) -> Callable:
    """What resumes the method once the future is done: the action itself
    on the loop's thread, or, when the await captured a
    SynchronizationContext (C3), the action posted to it (run at once when
    it is this loop's AsyncioSynchronizationContext)."""
    ctx = SynchronizationContext.current()
    if ctx is None or type(ctx) is SynchronizationContext:
        return action
    if isinstance(ctx, AsyncioSynchronizationContext) and ctx.loop is loop:
        return lambda _fut: ctx._run(action, None)
    return lambda _fut: ctx.post(action, None)


# ------------------------------------------------------- Task <-> future

def _transfer(task: Any, fut: asyncio.Future) -> None:
    """On the loop: give fut the task's outcome, unless it was cancelled
    (the await was abandoned)."""
    if fut.done():
        return
    if task.is_completed_successfully:
        fut.set_result(task.result)
    elif task.is_faulted:
        fut.set_exception(task.exception.inner_exceptions[0])
    else:
        fut.set_exception(TaskCanceledError(task=task))


def as_asyncio_future(task: Any, loop: Any = None) -> asyncio.Future:
    """Task.as_asyncio_future(loop=None) (I2): an asyncio future of
    ``loop`` (the running loop by default) with the task's value, its
    exception object, or TaskCanceledError.  Cancelling the future does not
    cancel the task."""
    if loop is None:
        loop = _get_running_loop()
        if loop is None:
            raise RuntimeError(
                "as_asyncio_future(): no running event loop in this thread; "
                "pass loop=")
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError("as_asyncio_future(): loop must be an asyncio event "
                        f"loop or None, not {type(loop).__name__}")
    fut = loop.create_future()
    if task.is_completed:
        if _get_running_loop() is loop:
            _transfer(task, fut)
        else:
            loop.call_soon_threadsafe(_transfer, task, fut)
        return fut

    def done() -> None:
        if _get_running_loop() is loop:
            _transfer(task, fut)
            return
        try:
            loop.call_soon_threadsafe(_transfer, task, fut)
        except RuntimeError:
            pass  # the loop is closed
    task.configure_await(False).unsafe_on_completed(done)
    return fut


def _settle(tcs: Any, fut: Any) -> None:
    if fut.cancelled():
        tcs.try_set_canceled()
        return
    exc = fut.exception()
    if exc is not None:
        tcs.try_set_exception(exc)
    else:
        tcs.try_set_result(fut.result())


def task_from_asyncio_future(fut: Any) -> Any:
    """Task.from_future for an asyncio future or task (I1): the Task
    completes when it does, from the future's loop; a future already done
    gives a completed (or canceled) Task at once."""
    tcs: TaskCompletionSource[Any] = TaskCompletionSource()
    if fut.done():
        _settle(tcs, fut)
        return tcs.task
    loop = fut.get_loop()

    def done(f: Any) -> None:
        _settle(tcs, f)
    if _get_running_loop() is loop:
        fut.add_done_callback(done)
    else:
        loop.call_soon_threadsafe(fut.add_done_callback, done)
    return tcs.task


# ------------------------------------------------- the loop as a context

class AsyncioSynchronizationContext(SynchronizationContext):
    """A SynchronizationContext over an asyncio event loop (SPEC I2): the
    loop's thread plays the UI thread.

    ``post(callback, state)`` is ``loop.call_soon_threadsafe``; the
    callback runs on the loop's thread with this context current, so an
    ``@async_method`` that awaits there resumes on the loop after every
    await (C3).  ``send(callback, state)`` runs inline when called on the
    loop's thread, else posts and waits for the loop to run it, returning
    its value or raising its exception."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError("AsyncioSynchronizationContext(): loop must be "
                            "an asyncio event loop, not "
                            f"{type(loop).__name__}")
        self.loop = loop

    def _run(self, callback: Callable, state: Any) -> Any:
        prev = SynchronizationContext.current()
        SynchronizationContext.set_synchronization_context(self)
        _native._context_owner(self, True)
        try:
            return callback(state)
        finally:
            _native._context_owner(self, False)
            SynchronizationContext.set_synchronization_context(prev)

    def post(self, callback: Callable, state: Any = None) -> None:
        """Run callback(state) on the loop's thread, soon (thread-safe)."""
        if not callable(callback):
            raise TypeError("post(): callback must be callable, not "
                            f"{type(callback).__name__}")
        self.loop.call_soon_threadsafe(self._run, callback, state)

    def send(self, callback: Callable, state: Any = None) -> Any:
        """Run callback(state) on the loop's thread and return its value:
        inline there, else posted and waited for."""
        if not callable(callback):
            raise TypeError("send(): callback must be callable, not "
                            f"{type(callback).__name__}")
        if _get_running_loop() is self.loop:
            return self._run(callback, state)
        tcs: TaskCompletionSource[Any] = TaskCompletionSource()

        def call() -> None:
            try:
                r = self._run(callback, state)
            except BaseException as e:  # to the waiting thread
                tcs.try_set_exception(e)
            else:
                tcs.try_set_result(r)
        self.loop.call_soon_threadsafe(call)
        return tcs.task.get_awaiter().get_result()

    def create_copy(self) -> "AsyncioSynchronizationContext":
        """A context over the same loop."""
        return AsyncioSynchronizationContext(self.loop)

    def __repr__(self) -> str:
        return f"<AsyncioSynchronizationContext loop={self.loop!r}>"

