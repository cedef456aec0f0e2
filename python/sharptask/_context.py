"""Synchronization contexts and async void (SPEC C2, C8, A8), the
deadlock detector's switch (C6) and the async dump (D1)."""
from __future__ import annotations

import atexit
import collections
import functools
import inspect
import os
import sys
import threading
import traceback
import types
from typing import Any, Callable, Coroutine, ParamSpec

from . import _native
from ._builder import async_method
from ._enums import TaskContinuationOptions
from ._errors import AggregateError, InvalidOperationError

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource
SynchronizationContext = _native.SynchronizationContext
SingleThreadSynchronizationContext = _native.SingleThreadSynchronizationContext

__all__ = [
    "UiThread", "ExclusiveSynchronizationContext", "async_void",
    "set_unhandled_exception_handler", "set_unhandled_exception_policy",
    "set_deadlock_detection", "get_deadlock_detection", "dump_async",
    "print_async_dump", "AsyncDump",
]

set_deadlock_detection = _native.set_deadlock_detection
get_deadlock_detection = _native.get_deadlock_detection

_EXEC_SYNC = TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY


# ------------------------------------------------------------- UiThread

class UiThread:
    """A dedicated thread pumping one SingleThreadSynchronizationContext:
    the WinForms/WPF dispatcher (SPEC C2).

    ``invoke(fn, *args)`` runs fn there and blocks for its value;
    ``begin_invoke(fn, *args)`` returns a Task.  Use ``close()`` or a
    ``with`` block.  The thread is a daemon: a UiThread never closed, even
    one stuck in a deadlock, does not hold up interpreter exit.
    """

    def __init__(self, name: str = "UiThread") -> None:
        self.context = SingleThreadSynchronizationContext()
        self._closed: TaskCompletionSource[None] = TaskCompletionSource()
        self._started = threading.Event()
        self._ident: int | None = None
        self._thread = threading.Thread(target=self._main, name=name,
                                        daemon=True)
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        self._ident = threading.get_ident()
        self._started.set()
        while not self._closed.task.is_completed:
            try:
                self.context.run(lambda: self._closed.task)
            except BaseException as e:  # an exception raised on the UI
                # thread by a posted callback (async void): report it and
                # go on pumping (issue 9 item 18)
                if isinstance(e, InvalidOperationError) and \
                        self._closed.task.is_completed:
                    break
                if _native._is_exiting_error(e):
                    break  # the interpreter is exiting: end quietly (H5)
                _report_unhandled(e, "UiThread message loop", self)

    @property
    def ident(self) -> int | None:
        """The thread's ``threading.get_ident()``."""
        return self._ident

    def _check_open(self) -> None:
        if self._closed.task.is_completed:
            raise InvalidOperationError("the UiThread is closed")

    def begin_invoke(self, fn: Callable, *args: Any) -> Task:
        """Queue ``fn(*args)`` to the UI thread; a Task of its value,
        faulted with its exception (like ``Control.BeginInvoke``)."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        self._check_open()
        tcs: TaskCompletionSource[Any] = TaskCompletionSource()
        _native._completed_by(tcs.task, self.context)

        def call(_state: Any) -> None:
            try:
                r = fn(*args)
            except BaseException as e:
                tcs.try_set_exception(e)
            else:
                tcs.try_set_result(r)
        self.context.post(call, None)
        return tcs.task

    def invoke(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on the UI thread, wait, and return its value as
        it is (an async method's Task is returned, not awaited) or raise
        its exception itself (like ``Control.Invoke``)."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        if threading.get_ident() == self._ident:
            return fn(*args)
        return self.begin_invoke(fn, *args).get_awaiter().get_result()

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the message loop and join the thread (at most ``timeout``
        seconds: a thread stuck in a deadlock is left behind, as a daemon)."""
        timeout = _native._parse_timeout(timeout)  # H2 (issue 9 item 27)
        self._closed.try_set_result(None)
        if threading.get_ident() != self._ident:
            # wake the pump: it exits once the closing task completed
            try:
                self.context.post(lambda _: None, None)
            except InvalidOperationError:
                pass
            self._thread.join(timeout)

    def __enter__(self) -> "UiThread":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed.task.is_completed else "running"
        return f"<UiThread {self._thread.name!r} {state}>"


# ------------------------------------------------- exclusive (ASP.NET)

class ExclusiveSynchronizationContext(SynchronizationContext):
    """Runs one callback at a time (post and send alike) on whatever
    thread, and is current inside its callbacks: the model of the old
    ASP.NET request context (SPEC C8).  A blocking wait inside a callback
    that holds it counts, for deadlock detection, like a wait on a UI
    thread."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._queue: collections.deque = collections.deque()
        self._draining = False
        self._guard = threading.Lock()

    def _run_one(self, callback: Callable, state: Any) -> Any:
        with self._lock:
            prev = SynchronizationContext.current()
            SynchronizationContext.set_synchronization_context(self)
            _native._context_owner(self, True)
            try:
                return callback(state)
            finally:
                _native._context_owner(self, False)
                SynchronizationContext.set_synchronization_context(prev)

    def _drain(self, _state: Any = None) -> None:
        try:
            while True:
                with self._guard:
                    if not self._queue:
                        self._draining = False
                        return
                    callback, state = self._queue.popleft()
                try:
                    self._run_one(callback, state)
                except BaseException as e:  # reported; the next one runs
                    _report_unhandled(e, "ExclusiveSynchronizationContext",
                                      self)
        except BaseException:
            # Whatever ends this drain early (an interrupt), the context
            # must not stay marked as draining with nobody draining: every
            # later post would be lost (issue 9 item 18).
            with self._guard:
                self._draining = False
                rest = bool(self._queue)
            if rest:
                self._start_drain()
            raise

    def _start_drain(self) -> None:
        with self._guard:
            if self._draining or not self._queue:
                return
            self._draining = True
        try:
            _native._pool_queue(self._drain)
        except BaseException:
            with self._guard:
                self._draining = False
            raise

    def post(self, callback: Callable, state: Any = None) -> None:
        """Queue callback(state); callbacks run one at a time on pool
        threads."""
        if not callable(callback):
            raise TypeError("post(): callback must be callable, not "
                            f"{type(callback).__name__}")
        with self._guard:
            self._queue.append((callback, state))
        self._start_drain()

    def send(self, callback: Callable, state: Any = None) -> Any:
        """Run callback(state) on the calling thread once no other
        callback of this context runs."""
        if not callable(callback):
            raise TypeError("send(): callback must be callable, not "
                            f"{type(callback).__name__}")
        return self._run_one(callback, state)

    def create_copy(self) -> "ExclusiveSynchronizationContext":
        """The context itself (one request, one context)."""
        return self


# ------------------------------------------------------------ async void

_unhandled_handler: Callable[[BaseException], Any] | None = None
_policy = "report"


def set_unhandled_exception_handler(
        fn: Callable[[BaseException], Any] | None) -> Any:
    """Set what receives an exception escaping an ``@async_void`` method
    with no SynchronizationContext (``fn(exception)``); returns the previous
    handler; None restores the default (``sys.unraisablehook``)."""
    global _unhandled_handler
    if fn is not None and not callable(fn):
        raise TypeError(f"fn must be callable or None, not "
                        f"{type(fn).__name__}")
    prev, _unhandled_handler = _unhandled_handler, fn
    return prev


def set_unhandled_exception_policy(policy: str) -> str:
    """``"report"`` (default: the handler / sys.unraisablehook) or
    ``"crash"`` (print it and end the process with exit code 1, as .NET
    does).  Returns the previous policy."""
    global _policy
    if not isinstance(policy, str):  # H2: a type error (issue 9 item 14)
        raise TypeError(f"policy must be 'report' or 'crash', not "
                        f"{type(policy).__name__}")
    if policy not in ("report", "crash"):
        raise ValueError(f"policy must be 'report' or 'crash', not "
                         f"{policy!r}")
    prev, _policy = _policy, policy
    return prev


def _report_unhandled(exc: BaseException, where: str,
                      obj: Any = None) -> None:
    """Report an exception nobody can catch (SPEC A8): the handler if one
    is set, else ``sys.unraisablehook`` as CPython itself reports (a real
    ``UnraisableHookArgs``; the default hook prints the exception with its
    traceback), about ``obj`` (the async void function, the UiThread, the
    context).  Never raises (issue 9 items 11, 18)."""
    if _native._is_exiting_error(exc):
        return  # raised because the interpreter exits: not a failure (H5)
    if _policy == "crash":
        sys.stderr.write(f"Unhandled exception in {where}:\n")
        traceback.print_exception(exc)
        sys.stderr.flush()
        os._exit(1)
    handler = _unhandled_handler
    if handler is not None:
        try:
            handler(exc)
        except BaseException as e:  # the handler failed: say so
            _native._report_unraisable(e, handler)
        return
    _native._report_unraisable(exc, obj)


def _on_pool(fn: Callable, *args: Any) -> None:
    """Run fn(*args) on a pool thread, as .NET rethrows an unhandled
    exception there."""
    _native._pool_queue(lambda: fn(*args))


def _deliver(exc: BaseException, ctx: Any, name: str, fn: Any) -> None:
    """Where an exception escaping an async void method goes (R8.3)."""
    if ctx is None or type(ctx) is SynchronizationContext:
        # no context, or the base one (whose post queues to the pool):
        # an unhandled exception on a pool thread
        _on_pool(_report_unhandled, exc, name, fn)
        return

    def rethrow(_state: Any) -> None:
        raise exc
    rethrow.__qualname__ = f"{name} (async void: rethrow on its context)"
    try:
        ctx.post(rethrow, None)
    except BaseException as post_error:
        _on_pool(_report_unhandled, AggregateError([exc, post_error]), name,
                 fn)


_P = ParamSpec("_P")


# Typed like @async_method (SPEC §0): for `@async_void async def
# f(x: int) -> None`, f(1) is None and the arguments are checked.
def async_void(fn: Callable[_P, Coroutine[Any, Any, Any]]
               ) -> Callable[_P, None]:
    """An ``async void`` method (AsyncVoidMethodBuilder, SPEC A8).

    Calling it returns None.  It calls ``operation_started()`` on the
    current SynchronizationContext at the start and
    ``operation_completed()`` at the end; an escaping exception is posted
    to that context, which raises it there (a pumping
    ``SingleThreadSynchronizationContext.run`` raises it to its caller);
    with no context it goes to the unhandled-exception handler, on a pool
    thread, as .NET rethrows it on the thread pool.
    """
    if isinstance(fn, staticmethod):
        return staticmethod(async_void(fn.__func__))
    if isinstance(fn, classmethod):
        return classmethod(async_void(fn.__func__))
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"async_void(): "
                        f"{getattr(fn, '__qualname__', fn)!s} is not an "
                        "async def function")
    method = async_method(fn)
    name = getattr(fn, "__qualname__", repr(fn))

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> None:
        ctx = SynchronizationContext.current()
        if ctx is not None:
            ctx.operation_started()
        task = method(*args, **kwargs)

        def done(t: Task) -> None:
            exc = None
            if not t.is_completed_successfully:
                try:
                    t.get_awaiter().get_result()
                except BaseException as e:
                    exc = e
            if exc is not None:
                _deliver(exc, ctx, name, fn)
            if ctx is not None:
                try:
                    ctx.operation_completed()
                except BaseException as e:  # R8.2: rethrown on the pool
                    _on_pool(_report_unhandled, e, name, fn)

        if task.is_completed:
            done(task)
        else:
            task.continue_with(done, options=_EXEC_SYNC)
        return None

    return call


# ----------------------------------------------------------------- exit

def _exit_hook(stop: Callable[[], None]) -> Callable[[], None]:
    """The atexit handler (H5): stop the pool and the timer (``stop``, the
    native hook), after making ``threading.excepthook`` leave out the
    errors that the exit itself raises in daemon threads (a wait or a
    ``Task.delay`` given up because the interpreter is exiting): the
    program is ending, not failing, and CPython would print such a
    traceback cut short by its own finalization (issue 9 item 24)."""

    def shutdown() -> None:
        previous = threading.excepthook

        def excepthook(args: Any) -> None:
            try:
                quiet = args.exc_value is not None and \
                    _native._is_exiting_error(args.exc_value)
            except BaseException:  # the interpreter is going away
                quiet = False
            if not quiet:
                previous(args)

        if not getattr(previous, "_sharptask_exit_filter", False):
            setattr(excepthook, "_sharptask_exit_filter", True)
            threading.excepthook = excepthook
        stop()

    return shutdown


def _install_lifecycle_hooks() -> None:
    """At the package's import, once: the native pool's shutdown goes to
    atexit (behind :func:`_exit_hook`), its fork-child reset to
    ``os.register_at_fork``.  They are taken from the extension once and
    kept by those two only, so user code cannot reach them and stop the
    pool mid-program (issue 9 item 23); a second call raises
    RuntimeError."""
    shutdown, after_fork_child = _native._take_lifecycle_hooks()
    atexit.register(_exit_hook(shutdown))
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork_child)


# ----------------------------------------------------------- dump_async

class AsyncDump:
    """What :func:`dump_async` returns: ``str()`` is the dump; ``chains``
    holds ``(count, [frames...])`` with the coalesced await chains."""

    def __init__(self, chains: list[tuple[int, list[str]]]) -> None:
        self.chains = chains

    def __len__(self) -> int:
        """The number of pending async methods (every frame of every
        chain)."""
        return sum(n * len(frames) for n, frames in self.chains)

    def __str__(self) -> str:
        if not self.chains:
            return "no pending async methods\n"
        out = [f"{len(self)} pending async method(s) in "
               f"{sum(n for n, _ in self.chains)} chain(s), "
               f"{len(self.chains)} distinct:"]
        for n, frames in self.chains:
            out.append("")
            out.append(f"  {n} x" if n > 1 else "  1 x")
            for i, f in enumerate(frames):
                out.append("    " + ("  " * i) + f)
        return "\n".join(out) + "\n"

    __repr__ = __str__


def _describe(box: Any, coro: Any, awaiting: Any, target: Any,
              running: bool = False) -> str:
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    where = ""
    if frame is not None:
        where = f" at {os.path.basename(frame.f_code.co_filename)}" \
                f":{frame.f_lineno}"
    if running:
        what = "running now"
    elif isinstance(awaiting, Task) and awaiting.is_completed:
        what = f"{awaiting!r} completed; queued to resume"
    elif isinstance(awaiting, Task):
        what = f"awaits {awaiting!r}"
    elif awaiting is None:
        what = "queued to resume"
    else:
        what = f"awaits {type(awaiting).__name__}"
    on = f", resumes on {type(target).__name__}" if target is not None \
        else ""
    return f"{name}{where} [{box!r}] {what}{on}"


def dump_async() -> AsyncDump:
    """Every pending async method with its await chain: what each awaits,
    where it is suspended, and which context it resumes on, like
    ``dumpasync`` in dotnet-dump (SPEC D1).  Identical chains are
    coalesced with a count.

    Like ``dumpasync``, which walks the GC heap, it finds the pending
    methods among the objects Python's collector tracks; methods that
    were already pending when ``gc.freeze()`` ran are left out until
    ``gc.unfreeze()``."""
    rows = _native._pending_boxes()
    by_box = {id(r[0]): r for r in rows}
    awaited_by_box = {id(r[2]) for r in rows if isinstance(r[2], Task)}
    chains: dict[tuple[str, ...], int] = {}
    for box, coro, awaiting, target, running in rows:
        if id(box) in awaited_by_box:
            continue  # shown inside the chain of what awaits it
        frames = []
        cur = by_box.get(id(box))
        seen = set()
        while cur is not None and id(cur[0]) not in seen:
            seen.add(id(cur[0]))
            frames.append(_describe(*cur))
            nxt = cur[2]
            cur = by_box.get(id(nxt)) if isinstance(nxt, Task) else None
        # the ids in reprs differ per instance: coalesce on the shape
        key = tuple(_shape(f) for f in frames)
        chains[key] = chains.get(key, 0) + 1
    result = sorted(((n, list(k)) for k, n in chains.items()),
                    key=lambda x: -x[0])
    return AsyncDump(result)


def _shape(frame: str) -> str:
    import re
    return re.sub(r"<Task id=\d+ ", "<Task ", frame)


def print_async_dump() -> None:
    """Print :func:`dump_async` to stdout."""
    print(dump_async(), end="")
