"""concurrent.futures interop (SPEC I2, I3).

``Executor``: a ``concurrent.futures.Executor`` whose items run on the
sharptask thread pool.  It subclasses ``ThreadPoolExecutor`` because
asyncio's ``loop.set_default_executor`` accepts nothing else, but it has no
threads of its own: ``submit`` queues one pool work item per call (no
contextvars flow, like ThreadPoolExecutor).  Its futures are
``concurrent.futures.Future`` objects whose ``result()`` and
``exception()`` first wait the sharptask way (a short spin without the
GIL, then a sleep), which is what makes a round trip several times faster
than ThreadPoolExecutor's condition-variable hand-off.

``ExecutorTaskScheduler``: a TaskScheduler (C7) that hands each task's
delegate to any ``concurrent.futures.Executor`` (a ProcessPoolExecutor, a
Dask cluster's ``client.get_executor()`` ...) and completes the task with
the remote outcome.
"""
from __future__ import annotations

import collections
import concurrent.futures as _cf
import itertools
import threading
import time
import weakref
from concurrent.futures import _base
from typing import Any, Callable, Iterable, Iterator

from . import _native
from ._scheduling import TaskScheduler

__all__ = ["Executor", "ExecutorTaskScheduler"]

_queue_item = _native._unsafe_queue_user_work_item
_FINISHED = _base.FINISHED


class _Future(_native._FutureCore, _cf.Future):  # type: ignore[override]
    """A ``concurrent.futures.Future`` made for the pool's hand-offs.

    Same state machine and attributes as the base class (so that
    ``concurrent.futures.wait``, ``as_completed`` and asyncio's
    ``wrap_future`` work on it), kept in C (csrc/binding/py_executor.c):
    a pool worker runs the submitted call and completes the future in one
    C function, ``result()`` / ``exception()`` poll the state briefly
    without the GIL and then sleep on an event (not a condition
    variable's sleep/wake, 19-25 us here), and ``_condition`` is a plain
    lock made only when something reads it (wait(), as_completed(),
    repr).  Per item nothing else is allocated (W14: with 100k futures
    alive, every object the garbage collector tracks brings its next
    collection closer): asyncio's ``wrap_future`` callback is two fields
    delivered in batches (_LoopDelivery), not a callback object."""

    __slots__ = ()

    def add_done_callback(self, fn: Callable) -> None:
        """As Future.add_done_callback; asyncio's own callback (from
        ``wrap_future``: ``run_in_executor``, ``to_thread``) is replaced
        by a batched delivery to its loop (see _LoopDelivery)."""
        target = _asyncio_chain_target(fn)
        if target is not None:
            delivery = _LoopDelivery.for_loop(target[1])
            if self._add_delivery(target[0], delivery):
                return
            fn = _Deliver(delivery, target[0])
        _native._FutureCore.add_done_callback(self, fn)


# ------------------------------------------- asyncio's wrap_future, batched

#: asyncio's _call_set_state code object once seen, and where its
#: destination, dest_loop and source_loop cells are
_chain_code: Any = None
_chain_cells: tuple = ()


def _asyncio_chain_target(fn: Any) -> tuple | None:
    """(destination, loop) if fn is the callback that asyncio's
    ``wrap_future`` puts on a concurrent future to copy its outcome into an
    asyncio future of a loop (``_chain_future``'s ``_call_set_state``, the
    same in 3.11-3.13), else None: any other shape keeps asyncio's own
    callback."""
    global _chain_code, _chain_cells
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    if code is not _chain_code:
        if code.co_name != "_call_set_state" or \
                getattr(fn, "__module__", None) != "asyncio.futures":
            return None
        names = code.co_freevars
        try:
            cells = tuple(names.index(n) for n in
                          ("destination", "dest_loop", "source_loop"))
        except ValueError:
            return None
        _chain_code, _chain_cells = code, cells
    try:
        closure = fn.__closure__
        dest = closure[_chain_cells[0]].cell_contents
        dest_loop = closure[_chain_cells[1]].cell_contents
        source_loop = closure[_chain_cells[2]].cell_contents
    except (IndexError, TypeError, ValueError):
        return None
    if dest_loop is None or source_loop is not None:
        return None
    return dest, dest_loop


class _Deliver:
    """A source future's done callback: hand it to the loop's batch."""

    __slots__ = ("delivery", "dest")

    def __init__(self, delivery: "_LoopDelivery", dest: Any) -> None:
        self.delivery = delivery
        self.dest = dest

    def __call__(self, source: _cf.Future) -> None:
        self.delivery.add(self.dest, source)


def _copy_state(dest: Any, source: _cf.Future) -> None:
    """On dest's loop: dest gets source's outcome (asyncio's _set_state);
    source is done."""
    if dest.cancelled():
        return
    if source._state is not _FINISHED:
        dest.cancel()
        return
    exc = source._exception
    if exc is None:
        dest.set_result(source._result)
        return
    if type(exc) is _cf.CancelledError:
        import asyncio
        exc = asyncio.CancelledError(*exc.args)
    elif (type(exc) is _cf.TimeoutError
          and _cf.TimeoutError is not TimeoutError):
        exc = TimeoutError(*exc.args)
    dest.set_exception(exc)


class _LoopDelivery:
    """Copies finished futures' outcomes into asyncio futures of one loop
    in batches: one ``call_soon_threadsafe`` (a syscall that lets the GIL
    go) per batch instead of one per item, which is what asyncio's own
    callback does and what makes ``run_in_executor`` over many small items
    a GIL convoy (BENCHMARKS.md rule 4)."""

    # id(loop) -> its delivery, which refers to the loop weakly: nothing
    # here keeps a loop alive, and the entry goes with the loop (before its
    # id can name another object).  A strong key or value kept every loop
    # that ever used an Executor alive for good (the refleak run: 78
    # references and 48 memory blocks per asyncio.run).
    _by_loop: "dict[int, _LoopDelivery]" = {}
    _lock = threading.Lock()

    def __init__(self, loop: Any) -> None:
        self._loop = weakref.ref(loop)
        self.items: list = []
        self.scheduled = False
        self.lock = threading.Lock()

    @classmethod
    def for_loop(cls, loop: Any) -> "_LoopDelivery":
        key = id(loop)
        d = cls._by_loop.get(key)
        if d is None or d._loop() is not loop:
            with cls._lock:
                d = cls._by_loop.get(key)
                if d is None or d._loop() is not loop:
                    d = cls._by_loop[key] = cls(loop)
                    weakref.finalize(loop, cls._forget, key, d)
        return d

    @classmethod
    def _forget(cls, key: int, d: "_LoopDelivery") -> None:
        with cls._lock:
            if cls._by_loop.get(key) is d:
                del cls._by_loop[key]

    def add(self, dest: Any, source: _cf.Future) -> None:
        loop = self._loop()
        if loop is None or loop.is_closed():
            return  # as asyncio: nobody can be waiting any more
        with self.lock:
            self.items.append((dest, source))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # closed meanwhile
            with self.lock:
                self.items.clear()
                self.scheduled = False

    def drain(self) -> None:
        with self.lock:
            items, self.items = self.items, []
            self.scheduled = False
        for dest, source in items:
            _copy_state(dest, source)


class Executor(_cf.ThreadPoolExecutor):
    """A ``concurrent.futures.Executor`` over the sharptask thread pool
    (SPEC I2).

    ``max_workers`` bounds the items running at once (None: no bound
    beyond the pool's own).  ``submit``, ``map`` (with ``timeout`` and
    ``chunksize``), ``shutdown(wait=True, cancel_futures=False)`` and use as
    a context manager behave as ThreadPoolExecutor's; submitting after
    shutdown raises RuntimeError.  ``loop.set_default_executor(Executor())``
    moves ``asyncio.to_thread`` and ``loop.run_in_executor(None, ...)``
    onto the pool."""

    def __init__(self, max_workers: int | None = None,
                 thread_name_prefix: str = "", initializer: Any = None,
                 initargs: tuple = ()) -> None:
        # No ThreadPoolExecutor.__init__: this executor has no threads
        # (its thread machinery is never used); only what its public
        # methods and asyncio read is set.
        if max_workers is not None:
            if not isinstance(max_workers, int) or \
                    isinstance(max_workers, bool):
                raise TypeError("Executor(): max_workers must be an int or "
                                f"None, not {type(max_workers).__name__}")
            if max_workers <= 0:
                raise ValueError("Executor(): max_workers must be greater "
                                 "than 0")
        if initializer is not None:
            raise ValueError("Executor(): initializer is not supported: "
                             "the pool's threads are shared")
        # None: no bound of its own (ThreadPoolExecutor always has one)
        self._max_workers = max_workers  # type: ignore[assignment]
        self._thread_name_prefix = thread_name_prefix
        self._shutdown = False
        self._broken = False
        self._shutdown_lock = threading.Lock()
        self._threads: set = set()  # none of its own (read by some tools)
        #: futures submitted and not finished (for shutdown)
        self._items: dict = {}
        #: max_workers: items waiting for a slot, and the running count
        self._waiting: collections.deque = collections.deque()
        self._running = 0

    # ------------------------------------------------------------ running

    def _release(self) -> None:
        with self._shutdown_lock:
            if self._waiting:
                nxt = self._waiting.popleft()
            else:
                self._running -= 1
                return
        nxt._queue()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> _Future:
        """Queue fn(*args, **kwargs) to the pool; its Future."""
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if not callable(fn):
            raise TypeError(f"submit(): fn must be callable, not "
                            f"{type(fn).__name__}")
        f = _Future()
        if self._max_workers is None:
            f._submit(fn, args, kwargs, self._items)
            return f
        f._prepare(fn, args, kwargs, self._items, self._release)
        self._items[f] = None
        with self._shutdown_lock:
            if self._shutdown:
                del self._items[f]
                f.cancel()
                raise RuntimeError("cannot schedule new futures after "
                                   "shutdown")
            if self._running >= self._max_workers:
                self._waiting.append(f)
                return f
            self._running += 1
        f._queue()
        return f

    # ---------------------------------------------------------------- map

    def map(self, fn: Callable, *iterables: Iterable,
            timeout: float | None = None, chunksize: int = 1) -> Iterator:
        """Like ``map(fn, *iterables)``, the calls running on the pool;
        results in order.  ``timeout`` (seconds, from this call) raises
        TimeoutError from the iterator; ``chunksize`` > 1 runs that many
        calls per work item."""
        if not callable(fn):
            raise TypeError(f"map(): fn must be callable, not "
                            f"{type(fn).__name__}")
        if not isinstance(chunksize, int) or isinstance(chunksize, bool):
            raise TypeError("map(): chunksize must be an int, not "
                            f"{type(chunksize).__name__}")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if timeout is not None:
            # as the futures' result(timeout): a bool counts as an int,
            # as in concurrent.futures
            if not isinstance(timeout, (int, float)):
                raise TypeError("map(): timeout must be a number of seconds "
                                f"or None, not {type(timeout).__name__}")
            end_time = timeout + time.monotonic()
        if chunksize == 1:
            fs = [self.submit(fn, *args) for args in zip(*iterables)]
        else:
            it = zip(*iterables)
            fs = []
            while True:
                chunk = tuple(itertools.islice(it, chunksize))
                if not chunk:
                    break
                fs.append(self.submit(_run_chunk, fn, chunk))

        def result_iterator() -> Iterator:
            try:
                fs.reverse()  # pop from the end: results in order
                while fs:
                    f = fs.pop()
                    if timeout is None:
                        r = f.result()
                    else:
                        r = f.result(end_time - time.monotonic())
                    if chunksize == 1:
                        yield r
                    else:
                        yield from r
            finally:
                for f in fs:
                    f.cancel()
        return result_iterator()

    # ----------------------------------------------------------- shutdown

    def shutdown(self, wait: bool = True, *,
                 cancel_futures: bool = False) -> None:
        """No new submissions from now on.  ``cancel_futures``: cancel the
        items not started yet.  ``wait``: return when every submitted
        item has finished.  Calling it again is harmless."""
        with self._shutdown_lock:
            self._shutdown = True
            waiting = []
            if cancel_futures:
                waiting = list(self._waiting)
                self._waiting.clear()
        for f in waiting:  # never queued: finish them here
            f.cancel()
            f.set_running_or_notify_cancel()
            self._items.pop(f, None)
        if cancel_futures:
            for f in list(self._items):
                f.cancel()  # the queued ones never run
        if wait:
            # asleep (GIL released, Ctrl-C works) until the last run has
            # ended and left _items: its future done, its callbacks run
            _native._FutureCore._wait_drained(self._items)

    def __repr__(self) -> str:
        bound = "None" if self._max_workers is None else self._max_workers
        state = "shut down" if self._shutdown else "running"
        return (f"<sharptask.Executor max_workers={bound} {state}, "
                f"{len(self._items)} pending>")


def _run_chunk(fn: Callable, chunk: tuple) -> list:
    return [fn(*args) for args in chunk]


# --------------------------------------------------------------- scale-out

class ExecutorTaskScheduler(TaskScheduler):
    """A TaskScheduler that runs each task's delegate on a
    ``concurrent.futures.Executor`` (SPEC I3): a ProcessPoolExecutor, a
    Dask cluster's ``distributed.Client(...).get_executor()``, a
    ThreadPoolExecutor ...

    ``Task.factory.start_new(fn, *args, scheduler=sched)`` returns a
    sharptask Task that completes with the remote result or exception, so
    continuations, contexts, ``when_all`` and cancellation before start
    keep .NET's semantics while the work runs elsewhere.  For a process or
    cluster executor the function and its arguments must be picklable; a
    pickling error faults the task with that error.  A task whose token is
    canceled while it waits in the executor's queue is canceled, and its
    executor item cancelled if it has not started.
    """

    def __init__(self, executor: _cf.Executor) -> None:
        if not isinstance(executor, _cf.Executor) and \
                not callable(getattr(executor, "submit", None)):
            raise TypeError("ExecutorTaskScheduler(): executor must be a "
                            "concurrent.futures.Executor, not "
                            f"{type(executor).__name__}")
        self.executor = executor
        # A Dask cluster's executor: batched submission and gathering
        # through its client (one graph update and one gather per batch
        # instead of one each per task)
        self._dask = None
        if type(executor).__module__ == "distributed.cfexecutor" and \
                getattr(executor, "_client", None) is not None:
            self._dask = _DaskBatcher(self, executor)

    @property
    def maximum_concurrency_level(self) -> int:
        """The executor's worker count when known (ThreadPoolExecutor,
        ProcessPoolExecutor, sharptask.Executor with max_workers, a Dask
        client's threads), else unbounded."""
        n = getattr(self.executor, "_max_workers", None)
        if isinstance(n, int) and n > 0:
            return n
        client = getattr(self.executor, "_client", None)
        if client is not None:
            try:
                threads = client.nthreads()
            except Exception:
                threads = None
            if threads:
                return sum(threads.values())
        return 2**31 - 1

    def queue_task(self, task: Any) -> None:
        """Hand the task's delegate to the executor (C7)."""
        delegate = _native._task_delegate(task, self)
        if delegate is None:
            return  # ran or was canceled already
        fn, args = delegate
        if self._dask is not None:
            self._dask.add(task, fn, args)
            return
        try:
            fut = self.executor.submit(fn, *args)
        except Exception as exc:  # e.g. pickling at submit (Dask)
            _native._complete_delegate(task, self, False, exc)
            return

        def finish(f: _cf.Future) -> None:
            # on the executor's own thread (a process pool's manager, a
            # client's loop): the task's continuations, which run where it
            # completes, go to the sharptask pool instead
            if not f.cancelled():  # cancelled: the task was canceled first
                _queue_item(self._finish, (task, f))
        fut.add_done_callback(finish)

        def canceled() -> None:
            if task.is_canceled:
                fut.cancel()  # not started yet: it never runs
        task.configure_await(False).unsafe_on_completed(canceled)

    def get_scheduled_tasks(self) -> None:
        """Not available: the executor holds them."""
        return None

    def _finish(self, item: tuple) -> None:
        """A pool work item: complete a task with its future's outcome."""
        task, f = item
        exc = f.exception()
        if exc is None:
            self._outcome(task, True, f.result())
        else:
            self._outcome(task, False, exc)

    def _outcome(self, task: Any, ok: bool, value: Any) -> None:
        """Complete a task with its remote outcome."""
        if not ok and not isinstance(value, Exception):
            wrapped = RuntimeError("the remote call was interrupted by a "
                                   "BaseException")
            wrapped.__cause__ = value
            value = wrapped
        _native._complete_delegate(task, self, ok, value)

    def __repr__(self) -> str:
        return f"<ExecutorTaskScheduler over {self.executor!r}>"


class _DaskBatcher:
    """ExecutorTaskScheduler's path for a Dask ``ClientExecutor``: tasks
    queued close together go to the cluster as one ``client.map`` per
    function (pure=False: every call runs), and their results come back
    with one ``client.gather`` per group that ``as_completed`` reports
    done, on a collector thread per batch."""

    def __init__(self, sched: ExecutorTaskScheduler, executor: Any) -> None:
        self.sched = sched
        self.executor = executor
        self.client = executor._client
        self.lock = threading.Lock()
        self.pending: list = []
        self.scheduled = False

    def add(self, task: Any, fn: Callable, args: tuple) -> None:
        if getattr(self.executor, "_shutdown", False):
            self.sched._outcome(task, False, RuntimeError(
                "cannot schedule new futures after shutdown"))
            return
        with self.lock:
            self.pending.append((task, fn, args))
            if self.scheduled:
                return
            self.scheduled = True
        _native._pool_queue(self.flush)

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
            self.scheduled = False
        groups: dict = {}
        for item in batch:
            key = (id(item[1]), len(item[2]))
            groups.setdefault(key, []).append(item)
        futures, owners = [], {}
        for items in groups.values():
            fn, nargs = items[0][1], len(items[0][2])
            try:
                if nargs:
                    fs = self.client.map(
                        fn, *zip(*(args for _, _, args in items)),
                        pure=False)
                else:
                    fs = [self.client.submit(fn, pure=False)
                          for _ in items]
            except Exception as exc:  # e.g. a pickling error at submit
                for task, _, _ in items:
                    self.sched._outcome(task, False, exc)
                continue
            for (task, _, _), f in zip(items, fs):
                futures.append(f)
                owners[f.key] = task
                self._watch_cancel(task, f)
        if futures:
            threading.Thread(target=self.collect, args=(futures, owners),
                             name="sharptask dask collector",
                             daemon=True).start()

    def _watch_cancel(self, task: Any, fut: Any) -> None:
        def canceled() -> None:
            if task.is_canceled:
                fut.cancel()
        task.configure_await(False).unsafe_on_completed(canceled)

    def collect(self, futures: list, owners: dict) -> None:
        import distributed
        outcome = self.sched._outcome
        try:
            for group in distributed.as_completed(futures).batches():
                ok = [f for f in group if f.status == "finished"]
                if ok:
                    try:
                        values = self.client.gather(ok)
                    except Exception:  # lost meanwhile: one at a time
                        values = None
                    for i, f in enumerate(ok):
                        if values is not None:
                            outcome(owners[f.key], True, values[i])
                        else:
                            self._one(f, owners[f.key])
                for f in group:
                    if f.status != "finished":
                        self._one(f, owners[f.key])
        except BaseException as exc:  # the client went away: fault the rest
            for f in futures:
                task = owners[f.key]
                if not task.is_completed:
                    outcome(task, False, RuntimeError(
                        f"the Dask client failed: {exc!r}"))

    def _one(self, fut: Any, task: Any) -> None:
        outcome = self.sched._outcome
        if fut.status == "cancelled":
            return  # the task was canceled first
        try:
            outcome(task, True, fut.result())
        except BaseException as exc:
            outcome(task, False, exc)
