"""Bad-input fuzzing of every public callable and constructor of sharptask
(SPEC H2; issue 9, "Make it provable: bad input").

The targets are enumerated, not listed: every name in ``sharptask.__all__``
(the constructor of a class, a function) and every public attribute that a
sharptask class defines (a method is called, a property read and, when it
has a setter, written).  ``test_H2_fuzz_targets_cover_the_public_api``
checks that the enumeration and this file's tables agree, so a new public
name fails here until it is given a receiver (an instance to call it on) or
a reason why it is not called.

Each example calls one target with arguments drawn from a pool of bad and
edge values: wrong types, None, NaN, infinities, huge and negative numbers,
objects whose ``__eq__`` / ``__hash__`` / ``__bool__`` / ``__index__`` /
``__float__`` / ``__del__`` / attribute access raise, exception classes and
instances, and callables that raise (Exception and BaseException
subclasses: KeyboardInterrupt, SystemExit, GeneratorExit, a custom one).
Expected from the call: a result, or TypeError / ValueError, or one of
sharptask's documented errors, or the exception that the bad argument
itself raised.  Never SystemError (or any other exception), never a crash,
never a hang (a watchdog interrupts a call after a few seconds), and the
library still works afterwards (a smoke check after every example).
Exceptions reported through ``sys.unraisablehook`` during an example
(a callback's exception on a pool thread, an ``__del__`` that raises, an
unobserved faulted task) must be the injected ones, never SystemError or a
TypeError from the report itself (issue 9 item 11).

Where the parameter's kind is known from its name, oracles check what H2
and issue 9 ask of it: a bool timeout, a non-token cancellation token and
a wrong-typed sole argument are TypeErrors, out-of-range options and
maximum counts are refused, an options enum given to TaskCompletionSource
is taken as the options (items 13, 14, 27); send() with no pump checks its
callback instead of blocking (item 21).

Values that make a valid call block or hold resources for long are left
out of the pool on purpose: no pending task (a valid infinite wait on it
blocks), no token that can still be canceled (only canceled ones and
tokens that can never be), no valid delay longer than 10 ms.  Methods that
block until their receiver completes are called on completed receivers
only.

Deterministic in CI: the ``sharptask-fuzz`` hypothesis profile derandomizes
(the same examples every run) and keeps no database; ST_FUZZ_EXAMPLES sets
the examples per target (default 15).
"""

from __future__ import annotations

import _thread
import contextlib
import datetime
import decimal
import enum
import fractions
import gc
import inspect
import math
import os
import signal
import sys
import threading
import time
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402

import sharptask  # noqa: E402
import sharptask as st  # noqa: E402

EXAMPLES = int(os.environ.get("ST_FUZZ_EXAMPLES", "15"))
# no shrinking and the first failure only: the values are named, so a
# failing example reads as it is, and a hang is not waited for again and
# again while shrinking
settings.register_profile(
    "sharptask-fuzz", max_examples=EXAMPLES, deadline=None,
    derandomize=True, database=None, print_blob=False,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=list(HealthCheck))
FUZZ = settings.get_profile("sharptask-fuzz")

WATCHDOG_S = 5.0  # a single call that takes longer is a hang


# ------------------------------------------------------------ the bad values


class FuzzError(Exception):
    """What the evil objects and raising callbacks raise."""


class FuzzBaseError(BaseException):
    """A BaseException that is not an Exception, raised by callbacks."""


INJECTED = (FuzzError, FuzzBaseError, KeyboardInterrupt, SystemExit,
            GeneratorExit)


def _boom(*args, **kwargs):
    raise FuzzError("boom")


class Evil:
    """Every protocol raises FuzzError: comparison, hashing, truth,
    conversion to int/float/index/str, length, iteration, attribute
    access, calls, await."""

    def __eq__(self, other):
        raise FuzzError("__eq__")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__

    def __hash__(self):
        raise FuzzError("__hash__")

    def __bool__(self):
        raise FuzzError("__bool__")

    def __index__(self):
        raise FuzzError("__index__")

    __int__ = __index__

    def __float__(self):
        raise FuzzError("__float__")

    def __len__(self):
        raise FuzzError("__len__")

    def __iter__(self):
        raise FuzzError("__iter__")

    def __getattr__(self, name):
        raise FuzzError(f"__getattr__({name})")

    __call__ = _boom

    def __await__(self):
        raise FuzzError("__await__")


_IN_EXAMPLE = threading.Event()


class EvilDel:
    """An otherwise plain object whose finalizer raises (while an example
    runs: one that the library keeps alive past its example, e.g. as a
    pending task's state, dies quietly later)."""

    def __del__(self):
        if _IN_EXAMPLE.is_set():
            raise FuzzError("__del__")


class EvilInt(int):
    """An int whose __index__, __eq__ and __hash__ raise."""

    def __index__(self):
        raise FuzzError("EvilInt.__index__")

    def __eq__(self, other):
        raise FuzzError("EvilInt.__eq__")

    def __hash__(self):
        raise FuzzError("EvilInt.__hash__")


class EvilFloat(float):
    """A float whose __float__ raises."""

    def __float__(self):
        raise FuzzError("EvilFloat.__float__")


class EvilStr(str):
    """A str whose comparisons and hash raise (a mode name, a key)."""

    def __eq__(self, other):
        raise FuzzError("EvilStr.__eq__")

    def __hash__(self):
        raise FuzzError("EvilStr.__hash__")


class EvilToken:
    """A duck-typed cancellation token whose members raise."""

    @property
    def is_cancellation_requested(self):
        raise FuzzError("is_cancellation_requested")

    can_be_canceled = True

    def register(self, *args, **kwargs):
        raise FuzzBaseError("register")


def _raiser(exc_type):
    def raise_it(*args, **kwargs):
        raise exc_type("raised by a fuzz callback")
    raise_it.__qualname__ = f"raise_{exc_type.__name__}"
    return raise_it


async def _acoro(*args, **kwargs):
    return None


def _gen(*args, **kwargs):
    yield 1


def _faulted():
    t = st.Task.from_exception(FuzzError("faulted"))
    _ = t.exception  # observed: no unobserved report
    return t


def _canceled_cts():
    cts = st.CancellationTokenSource()
    cts.cancel()
    return cts


def _canceled_token():
    return _canceled_cts().token


# name -> factory; each example builds its values fresh
VALUES = {
    "None": lambda: None,
    "True": lambda: True,
    "False": lambda: False,
    "0": lambda: 0,
    "1": lambda: 1,
    "-1": lambda: -1,
    "-2": lambda: -2,
    "2**31-1": lambda: 2**31 - 1,
    "2**31": lambda: 2**31,
    "2**32": lambda: 2**32,
    "2**63-1": lambda: 2**63 - 1,
    "2**63": lambda: 2**63,
    "2**64": lambda: 2**64,
    "2**70": lambda: 2**70,
    "-2**63-1": lambda: -2**63 - 1,
    "-2**70": lambda: -2**70,
    "0.0": lambda: 0.0,
    "-0.0": lambda: -0.0,
    "0.001": lambda: 0.001,
    "0.01": lambda: 0.01,
    "-0.001": lambda: -0.001,
    "-1.0": lambda: -1.0,
    "nan": lambda: math.nan,
    "inf": lambda: math.inf,
    "-inf": lambda: -math.inf,
    "1e308": lambda: 1e308,
    "-1e308": lambda: -1e308,
    "5e-324": lambda: 5e-324,
    "1j": lambda: 1j,
    "Decimal(NaN)": lambda: decimal.Decimal("NaN"),
    "Fraction(1,3)": lambda: fractions.Fraction(1, 3),
    "timedelta(ms=1)": lambda: datetime.timedelta(milliseconds=1),
    "timedelta(-1)": lambda: datetime.timedelta(-1),
    "timedelta(days=10**8)": lambda: datetime.timedelta(days=10**8),
    "timedelta.max": lambda: datetime.timedelta.max,
    "datetime.now": lambda: datetime.datetime.now(datetime.timezone.utc),
    "''": lambda: "",
    "'x'": lambda: "x",
    "'raise'": lambda: "raise",
    "'crash'": lambda: "crash",
    "'report'": lambda: "report",
    "'off'": lambda: "off",
    "b'x'": lambda: b"x",
    "[]": lambda: [],
    "[1]": lambda: [1],
    "{}": lambda: {},
    "()": lambda: (),
    "set()": lambda: set(),
    "object()": lambda: object(),
    "int": lambda: int,
    "Exception": lambda: Exception,
    "FuzzBaseError (class)": lambda: FuzzBaseError,
    "ValueError()": lambda: ValueError("v"),
    "FuzzBaseError()": lambda: FuzzBaseError("b"),
    "KeyboardInterrupt()": lambda: KeyboardInterrupt(),
    "lambda: None": lambda: (lambda *a, **k: None),
    "raises FuzzError": lambda: _raiser(FuzzError),
    "raises FuzzBaseError": lambda: _raiser(FuzzBaseError),
    "raises KeyboardInterrupt": lambda: _raiser(KeyboardInterrupt),
    "raises SystemExit": lambda: _raiser(SystemExit),
    "raises GeneratorExit": lambda: _raiser(GeneratorExit),
    "async def": lambda: _acoro,
    "generator function": lambda: _gen,
    "len": lambda: len,
    "Evil()": Evil,
    "EvilDel()": EvilDel,
    "EvilInt(1)": lambda: EvilInt(1),
    "EvilFloat(0.001)": lambda: EvilFloat(0.001),
    "EvilStr('raise')": lambda: EvilStr("raise"),
    "EvilToken()": EvilToken,
    "Task.from_result(1)": lambda: st.Task.from_result(1),
    "faulted task": _faulted,
    "canceled task": lambda: st.Task.from_canceled(_canceled_token()),
    "Task.completed_task": lambda: st.Task.completed_task,
    "CancellationToken(True)": lambda: st.CancellationToken(True),
    "CancellationToken(False)": lambda: st.CancellationToken(False),
    "CancellationToken.none": lambda: st.CancellationToken.none,
    "canceled token": _canceled_token,
    "canceled source": _canceled_cts,
    "TaskCompletionSource()": st.TaskCompletionSource,
    "ValueTask.from_result(1)": lambda: st.ValueTask.from_result(1),
    "RUN_CONTINUATIONS_ASYNCHRONOUSLY":
        lambda: st.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY,
    "EXECUTE_SYNCHRONOUSLY":
        lambda: st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY,
    "FORCE_YIELDING": lambda: st.ConfigureAwaitOptions.FORCE_YIELDING,
    "TaskStatus.FAULTED": lambda: st.TaskStatus.FAULTED,
    "SynchronizationContext()": st.SynchronizationContext,
    "TimeProvider.system": lambda: st.TimeProvider.system,
    "FakeTimeProvider()": st.FakeTimeProvider,
    "TaskScheduler.default": lambda: st.TaskScheduler.default,
}
VALUE_NAMES = sorted(VALUES)
FD_FREE_NAMES = [n for n in VALUE_NAMES
                 if not isinstance(VALUES[n](), int)]  # (bool is an int)


# ---------------------------------------------------------------- receivers


class Held:
    """What an example created and must release afterwards."""

    def __init__(self):
        self.cleanups = []

    def add(self, obj, how):
        self.cleanups.append((obj, how))
        return obj

    def release(self):
        for obj, how in reversed(self.cleanups):
            with contextlib.suppress(BaseException):
                getattr(obj, how)()
        self.cleanups.clear()


def _pending_tcs_task(held):
    tcs = st.TaskCompletionSource()
    # released with the example: whatever waits on it then ends
    held.add(tcs, "try_set_canceled")
    return tcs.task


def _ui_context(held):
    ui = held.add(st.UiThread("fuzz-ui"), "close")
    return ui.context


def _builder(held):
    return st.AsyncTaskMethodBuilder.create()


def _registration(held):
    cts = held.add(st.CancellationTokenSource(), "dispose")
    return cts.token.register(lambda: None)


class _Source(st.IValueTaskSource):
    """The least IValueTaskSource: for the protocol's own methods."""


# class name -> receiver factories (each takes the Held of the example)
RECEIVERS = {
    "AggregateError": [lambda h: st.AggregateError([FuzzError("inner")])],
    "AsyncTaskMethodBuilder": [_builder],
    "AsyncValueMethod": [lambda h: st.AsyncValueMethod(_acoro)],
    "CancellationToken": [
        lambda h: st.CancellationToken(True),
        lambda h: st.CancellationToken(False),
        lambda h: h.add(st.CancellationTokenSource(), "dispose").token,
    ],
    "CancellationTokenRegistration": [_registration],
    "CancellationTokenSource": [
        lambda h: h.add(st.CancellationTokenSource(), "dispose"),
        lambda h: h.add(_canceled_cts(), "dispose"),
    ],
    "ConfiguredTaskAwaitable": [
        lambda h: st.Task.from_result(1).configure_await(False)],
    "ConfiguredValueTaskAwaitable": [
        lambda h: st.ValueTask.from_result(1).configure_await(False)],
    "ExclusiveSynchronizationContext": [
        lambda h: st.ExclusiveSynchronizationContext()],
    "FakeTimeProvider": [lambda h: st.FakeTimeProvider()],
    "ManualResetValueTaskSourceCore": [
        lambda h: st.ManualResetValueTaskSourceCore()],
    "PeriodicTimer": [lambda h: h.add(st.PeriodicTimer(0.05), "dispose")],
    "SemaphoreSlim": [lambda h: h.add(st.SemaphoreSlim(1, 4), "dispose")],
    "SingleThreadSynchronizationContext": [
        lambda h: st.SingleThreadSynchronizationContext()],
    "SynchronizationContext": [lambda h: st.SynchronizationContext()],
    "Task": [
        lambda h: st.Task.from_result(1),
        lambda h: _faulted(),
        lambda h: st.Task.from_canceled(_canceled_token()),
    ],
    "TaskAwaiter": [lambda h: st.Task.from_result(1).get_awaiter()],
    "TaskCompletionSource": [
        lambda h: st.TaskCompletionSource(),
        lambda h: st.TaskCompletionSource(
            None, st.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY),
    ],
    "TaskFactory": [lambda h: st.Task.factory],
    "TaskScheduler": [lambda h: st.TaskScheduler.default],
    "ThreadPool": [lambda h: st.ThreadPool],
    "TimeProvider": [lambda h: st.TimeProvider.system],
    "Timer": [lambda h: h.add(st.Timer(lambda s: None), "dispose")],
    "UiThread": [lambda h: h.add(st.UiThread("fuzz-ui"), "close")],
    "UnobservedTaskExceptionEventArgs": [
        lambda h: st.UnobservedTaskExceptionEventArgs(
            st.Task.from_result(1), FuzzError("x"))],
    "ValueTask": [
        lambda h: st.ValueTask.from_result(1),
        lambda h: st.ValueTask(st.Task.from_result(2)),
    ],
    "ValueTaskAwaiter": [lambda h: st.ValueTask.from_result(1).get_awaiter()],
    "YieldAwaitable": [lambda h: st.Task.yield_()],
}

def _loop_thread(held):
    """An asyncio event loop running on a daemon thread (stopped, joined
    and closed with the example)."""
    import asyncio
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True,
                              name="fuzz-asyncio")
    thread.start()

    class _Stop:
        def stop(self):
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
    held.add(_Stop(), "stop")
    return loop


def _idle_loop(held):
    import asyncio
    return held.add(asyncio.new_event_loop(), "close")


def _trace(held):
    with st.trace() as tr:
        st.Task.run(lambda: None).wait(10)
    return tr


def _executor(held):
    return held.add(st.Executor(2), "shutdown")


# The classes of newer parts of the API (issue 11's interop, D2's trace),
# where the package has them.
for _name, _factories in {
    "AsyncioSynchronizationContext": [
        lambda h: st.AsyncioSynchronizationContext(_idle_loop(h)),
        lambda h: st.AsyncioSynchronizationContext(_loop_thread(h))],
    "Executor": [_executor],
    "ExecutorTaskScheduler": [
        lambda h: st.ExecutorTaskScheduler(_executor(h))],
    "Trace": [_trace],
    "TraceEvent": [lambda h: st.TraceEvent("fuzz", 0, 1, "t", None, {})],
}.items():
    if hasattr(st, _name):
        RECEIVERS[_name] = _factories

# Methods that need another receiver than their class's: a pending task
# for the methods that do not block (the other Task receivers are all
# completed), a pumped context for send() (an unpumped one blocks).
RECEIVER_OVERRIDES = {
    "Task.continue_with": RECEIVERS["Task"] + [_pending_tcs_task],
    "Task.wait_async": RECEIVERS["Task"] + [_pending_tcs_task],
    "Task.configure_await": RECEIVERS["Task"] + [_pending_tcs_task],
    "Task.get_awaiter": RECEIVERS["Task"] + [_pending_tcs_task],
    "Task.as_future": RECEIVERS["Task"] + [_pending_tcs_task],
    "SingleThreadSynchronizationContext.send": [_ui_context],
}
if hasattr(st, "AsyncioSynchronizationContext"):
    # send() blocks until the loop runs the callback: a running loop only
    RECEIVER_OVERRIDES["AsyncioSynchronizationContext.send"] = [
        lambda h: st.AsyncioSynchronizationContext(_loop_thread(h))]

# Targets that write a file at a path they are given: never an int (or a
# bool), which open() takes as a file descriptor (0, 1 and 2 are the test
# run's own standard streams); the examples run in a scratch directory.
NO_FD_ARGS = {"Trace.save", "Trace.save_png"}

# Errors a target may raise besides the ALLOWED ones, each with its reason.
EXPECTED_ERRORS = {
    # asyncio's own convention when there is no running loop and none given
    "Task.as_asyncio_future": (RuntimeError,),
    # a path the system refuses ('' or a directory) is an OSError, as
    # open() says; the PNG also needs the optional [plot] extra (matplotlib)
    "Trace.save": (OSError,),
    "Trace.save_png": (OSError, ImportError),
}

# Public names that are values, not callables: read, never called.
NOT_CALLED = {
    "INFINITE": "an int constant",
    "Task.completed_task": "a shared completed Task (its methods are "
                           "fuzzed through the Task receivers)",
    "Task.factory": "the shared TaskFactory (fuzzed as TaskFactory)",
    "ValueTask.completed_task": "a shared ValueTask (fuzzed as ValueTask)",
    "CancellationToken.none": "the shared CancellationToken.none (fuzzed "
                              "as a CancellationToken value)",
    "TaskScheduler.default": "the default scheduler (the TaskScheduler "
                             "receiver)",
    "TimeProvider.system": "the system time provider (the TimeProvider "
                           "receiver)",
    "FakeTimeProvider.system": "the same TimeProvider.system",
    "ExecutorTaskScheduler.default": "the same TaskScheduler.default",
}

# Protocol methods the user implements: calling the base class's own
# definitions tests nothing of sharptask.
USER_IMPLEMENTS = {
    "IValueTaskSource.get_result", "IValueTaskSource.get_status",
    "IValueTaskSource.on_completed",
    "TaskScheduler.queue_task", "TaskScheduler.get_scheduled_tasks",
    "TaskScheduler.try_execute_task_inline",
}

# Setters that change process-wide state: each example puts it back.
GLOBAL_STATE = {
    "set_deadlock_detection": (st.get_deadlock_detection,
                               st.set_deadlock_detection),
    "set_strict_value_task": (st.get_strict_value_task,
                              st.set_strict_value_task),
    "set_unhandled_exception_policy": (
        lambda: st.set_unhandled_exception_policy("report"),
        st.set_unhandled_exception_policy),
    "set_unhandled_exception_handler": (
        lambda: st.set_unhandled_exception_handler(None),
        st.set_unhandled_exception_handler),
    "ThreadPool.set_min_threads": (st.ThreadPool.get_min_threads,
                                   st.ThreadPool.set_min_threads),
    "ThreadPool.set_max_threads": (st.ThreadPool.get_max_threads,
                                   st.ThreadPool.set_max_threads),
    "SynchronizationContext.set_synchronization_context": (
        st.SynchronizationContext.current,
        st.SynchronizationContext.set_synchronization_context),
}


# -------------------------------------------------------------- enumeration


def _is_sharptask_class(cls):
    return getattr(cls, "__module__", "").startswith("sharptask")


def _own_public_attrs(cls):
    """The public attributes defined by cls or another sharptask class it
    derives from (not the ones of int, Enum or BaseException)."""
    names = set()
    for base in cls.__mro__:
        if _is_sharptask_class(base):
            names.update(a for a in vars(base) if not a.startswith("_"))
    return sorted(names)


class Target:
    """One thing to fuzz: ``kind`` is "ctor", "call" (a function or a
    static method: no receiver), "method", "get" or "set"."""

    def __init__(self, name, kind, cls=None, attr=None, fn=None):
        self.name, self.kind, self.cls, self.attr, self.fn = (
            name, kind, cls, attr, fn)

    def __repr__(self):
        return f"{self.name}[{self.kind}]"


def _class_of(name, obj):
    return obj if isinstance(obj, type) else type(obj)


def enumerate_targets():
    """Every public name of sharptask, each as one or more Targets; the
    names in NOT_CALLED and USER_IMPLEMENTS and the enum members are
    returned apart, and so are public values with no reason yet (which
    the coverage test reports)."""
    targets, skipped, unknown = [], set(), []
    for name in sorted(set(sharptask.__all__)):
        obj = getattr(sharptask, name)
        if name in NOT_CALLED:
            skipped.add(name)
            continue
        if isinstance(obj, type) or name == "ThreadPool":
            cls = _class_of(name, obj)
            if isinstance(obj, type):
                targets.append(Target(name, "ctor", cls, fn=obj))
            else:
                skipped.add(name)  # an instance: its methods are fuzzed
            for attr in _own_public_attrs(cls):
                full = f"{name}.{attr}"
                if full in NOT_CALLED or full in USER_IMPLEMENTS or (
                        isinstance(cls, enum.EnumMeta)
                        and attr in cls.__members__):
                    skipped.add(full)  # an enum member is a value
                    continue
                raw = inspect.getattr_static(cls, attr)
                if isinstance(raw, (staticmethod, classmethod)):
                    targets.append(Target(full, "call", cls, attr,
                                          fn=getattr(obj, attr)))
                elif isinstance(raw, (property,)) or inspect.isdatadescriptor(
                        raw) or inspect.isgetsetdescriptor(raw) or \
                        inspect.ismemberdescriptor(raw):
                    targets.append(Target(full, "get", cls, attr))
                    if _settable(raw):
                        targets.append(Target(full, "set", cls, attr))
                elif callable(raw):
                    targets.append(Target(full, "method", cls, attr))
                else:
                    unknown.append(full)
        elif callable(obj):
            targets.append(Target(name, "call", fn=obj))
        else:
            unknown.append(name)
    return targets, skipped, unknown


def _settable(raw):
    if isinstance(raw, property):
        return raw.fset is not None
    if inspect.ismemberdescriptor(raw):
        return True
    if inspect.isgetsetdescriptor(raw):
        return True  # setting a read-only one must raise AttributeError
    return False


TARGETS, SKIPPED, UNKNOWN = enumerate_targets()


def test_H2_fuzz_targets_cover_the_public_api():
    """H2 (issue 9, bad input): the fuzzing covers every public name: each
    name in sharptask.__all__ and every public attribute of its classes is
    a target or has a written reason not to be called; every class with a
    method or property to fuzz has a receiver; and __all__ is the whole
    public namespace (a public name missing from __all__ would escape the
    enumeration)."""
    public = {n for n in dir(sharptask) if not n.startswith("_")}
    assert public - {"annotations"} <= set(sharptask.__all__) | {
        n for n in public if inspect.ismodule(getattr(sharptask, n))}, (
        sorted(public - set(sharptask.__all__)))
    assert not UNKNOWN, (f"public values with no reason not to be called:"
                         f" {UNKNOWN}; add them to NOT_CALLED")
    names = {t.name for t in TARGETS} | SKIPPED
    for n in sharptask.__all__:
        assert n in names, n
    needing = {t.name.split(".")[0] for t in TARGETS
               if t.kind in ("method", "get", "set")}
    missing = sorted(needing - set(RECEIVERS))
    assert not missing, f"add receivers (instances to fuzz) for {missing}"
    stale = sorted(set(RECEIVERS) - needing)
    assert not stale, f"RECEIVERS has classes with nothing to fuzz: {stale}"
    for key in list(RECEIVER_OVERRIDES) + list(GLOBAL_STATE):
        assert key in names, f"{key} is no longer a public name"


# --------------------------------------------------------------- the harness


ALLOWED = (TypeError, ValueError, st.InvalidOperationError,
           st.ObjectDisposedError, st.OperationCanceledError,
           st.SemaphoreFullError, st.AggregateError, st.DeadlockError,
           TimeoutError, NotImplementedError) + INJECTED


class Hang(Exception):
    """Raised in the main thread by the watchdog."""


class Watchdog:
    """Interrupts the main thread (SIGUSR1, whose handler raises Hang) when
    a call runs longer than WATCHDOG_S: sharptask's blocking waits poll for
    signals, so a hang becomes a failure instead of a stuck suite.  One
    daemon thread serves every example (a thread per example would leave
    short-lived thread objects behind at each refleak measurement)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._deadline = None
        self._thread = None
        self.fired = False

    def _run(self):
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline = None
                self.fired = True
                _thread.interrupt_main(signal.SIGUSR1)

    def _handler(self, signum, frame):
        if self.fired:
            raise Hang(f"a call took more than {WATCHDOG_S} s")

    @contextlib.contextmanager
    def guard(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="fuzz-watchdog")
            self._thread.start()
        prev = signal.signal(signal.SIGUSR1, self._handler)
        with self._cond:
            self.fired = False
            self._deadline = time.monotonic() + WATCHDOG_S
            self._cond.notify()
        try:
            yield self
        finally:
            with self._cond:
                self._deadline = None
                self._cond.notify()
            signal.signal(signal.SIGUSR1, prev)


WATCHDOG = Watchdog()


class Reports:
    """sys.unraisablehook and threading.excepthook while an example runs."""

    def __init__(self):
        self.items = []
        self._lock = threading.Lock()

    def unraisable(self, args):
        with self._lock:
            self.items.append(("unraisable", args.exc_value, args.object))

    def thread(self, args):
        with self._lock:
            self.items.append(("thread", args.exc_value, args.thread))

    @contextlib.contextmanager
    def installed(self):
        prev_u, prev_t = sys.unraisablehook, threading.excepthook
        sys.unraisablehook, threading.excepthook = (self.unraisable,
                                                    self.thread)
        try:
            yield self
        finally:
            sys.unraisablehook, threading.excepthook = prev_u, prev_t


def _leaves(exc):
    if isinstance(exc, st.AggregateError):
        for inner in exc.inner_exceptions:
            yield from _leaves(inner)
    elif isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _acceptable_report(exc, obj, drawn):
    """Is a report made during an example one the example asked for?

    - never a SystemError, nor the TypeError of a report that could not be
      made (issue 9 item 11: "sys.unraisablehook argument type must be");
    - an unobserved faulted task (T11: an AggregateError about a Task): the
      fault of a task the example made, whatever it is;
    - an exception raised by a callable the example passed (the report
      names it), or one of the injected exceptions, or a task body's
      "interrupted by a BaseException", or a fuzz coroutine never run.
    """
    if exc is None:
        return False
    leaves = list(_leaves(exc))
    if any(isinstance(leaf, SystemError) for leaf in leaves) or \
            "unraisablehook" in str(exc):
        return False
    if isinstance(exc, st.AggregateError) and isinstance(obj, st.Task):
        return True
    if any(obj is v for v in drawn):
        return True
    for leaf in leaves:
        if isinstance(leaf, INJECTED):
            continue
        if isinstance(leaf, RuntimeError) and \
                "interrupted by a BaseException" in str(leaf):
            continue
        if isinstance(leaf, RuntimeWarning) and "never awaited" in str(leaf):
            continue
        return False
    return True


def _library_works():
    """The smoke check after every example: the pool, sources, async
    methods, tokens and the timers still work."""
    t = st.Task.run(lambda: 41 + 1)
    assert t.wait(10) and t.result == 42
    tcs = st.TaskCompletionSource()
    tcs.set_result(7)
    assert tcs.task.result == 7

    @st.async_method
    async def method():
        await st.Task.yield_()
        await st.Task.delay(0.0001)
        return 5

    m = method()
    assert m.wait(10) and m.result == 5
    cts = st.CancellationTokenSource()
    hit = []
    cts.token.register(lambda: hit.append(1))
    cts.cancel()
    assert hit == [1]


def _outcome(fn, args, kwargs):
    with WATCHDOG.guard():
        try:
            result = fn(*args, **kwargs)
        except Hang:
            raise
        except BaseException as e:  # noqa: BLE001 - classified below
            return None, e
    return result, None


def _observe_result(result, held):
    """Mark a returned task observed and close what the call opened."""
    if isinstance(result, st.Task):
        _ = result.exception if result.is_completed else None
    for how in ("dispose", "close"):
        if hasattr(type(result), how) and isinstance(
                result, (st.Timer, st.PeriodicTimer, st.UiThread,
                         st.CancellationTokenSource, st.SemaphoreSlim)):
            held.add(result, how)
            break
    if inspect.iscoroutine(result):
        result.close()


def _check_exception(target, exc, drawn):
    __tracebackhide__ = True
    if isinstance(exc, SystemError):
        raise AssertionError(f"{target.name}: SystemError: {exc}") from exc
    own = any(exc is v or (isinstance(v, type) and type(exc) is v)
              for v in drawn)  # an exception given to it (throw(), ...)
    if not isinstance(exc, ALLOWED + EXPECTED_ERRORS.get(target.name, ())) \
            and not own:
        raise AssertionError(
            f"{target.name}: {type(exc).__name__}: {exc} (expected a "
            "TypeError, a ValueError, a documented sharptask error or the "
            "argument's own exception)") from exc


# ------------------------------------------------------------------ oracles
#
# Beyond "no crash": what H2 and issue 9 say a bad argument must give, where
# the parameter's kind is known from its name (one parser per kind, issue 9
# item 27).

TIMEOUT_PARAMS = {"timeout", "seconds", "delay", "due", "period"}
TOKEN_PARAMS = {"cancellation_token"}
# "token" is a cancellation token in these (a version number elsewhere)
TOKEN_PARAM_TARGETS = {"TaskCompletionSource.set_canceled",
                       "TaskCompletionSource.try_set_canceled",
                       "Task.from_canceled", "ValueTask.from_canceled"}
OPTIONS_PARAMS = {"options"}
# plainly not a token (a CancellationTokenSource and duck-typed tokens are
# left out: whether they are accepted is not H2's business)
NOT_TOKENS = (str, bytes, int, float, complex, decimal.Decimal,
              fractions.Fraction, list, dict, tuple, set, datetime.timedelta,
              datetime.datetime, type)
# plainly the wrong type for any parameter that checks its type
WRONG_TYPE_NAMES = {"object()", "b'x'", "1j"}


def _bound(fn, args, kwargs):
    """The call's arguments by parameter name, or None if unknown."""
    try:
        sig = inspect.signature(fn)
        return sig.bind_partial(*args, **kwargs).arguments
    except Exception:  # noqa: BLE001 - no signature, or does not bind
        return None


def _oracle(target, fn, names, args, kwargs, result, exc):
    """Issue 9 items 13, 14 and 27 (H2), as properties of any call."""
    __tracebackhide__ = True
    sole = len(args) + len(kwargs) == 1
    where = f"{target.name}({', '.join(names)}{', ' if kwargs else ''}" \
            f"{', '.join(f'{k}=...' for k in kwargs)})"
    # item 14: a wrong type is a TypeError, never a ValueError (but an
    # enum's constructor is the standard library's value lookup, which
    # says ValueError for anything that is not a member's value)
    if sole and names and names[0] in WRONG_TYPE_NAMES and \
            type(exc) is ValueError and not isinstance(target.cls,
                                                       enum.EnumMeta):
        raise AssertionError(f"{where}: ValueError for a wrong type "
                             f"(H2 wants TypeError): {exc}")
    bound = _bound(fn, args, kwargs) if fn is not None else None
    if not bound:
        return
    for param, value in bound.items():
        if param in TIMEOUT_PARAMS and isinstance(value, bool):
            # item 27: bool timeouts refused everywhere alike
            if exc is None or (sole and not isinstance(exc, TypeError)):
                raise AssertionError(f"{where}: a bool {param} must be a "
                                     f"TypeError, got {exc!r}")
        is_token_param = param in TOKEN_PARAMS or (
            param == "token" and target.name in TOKEN_PARAM_TARGETS)
        if is_token_param and isinstance(value, NOT_TOKENS):
            # item 27: a non-token is a TypeError (not AttributeError, not
            # silently ignored)
            if exc is None or (sole and not isinstance(exc, TypeError)):
                raise AssertionError(f"{where}: {param}={value!r} is not a "
                                     f"token: TypeError expected, got "
                                     f"{exc!r}")
        if param in OPTIONS_PARAMS and isinstance(value, int) and \
                not isinstance(value, bool) and not 0 <= value < 2**32:
            # item 27: out-of-range options are refused, not truncated
            if exc is None:
                raise AssertionError(f"{where}: options={value} accepted")
    if target.name == "SemaphoreSlim":
        m = bound.get("maximum_count")
        if isinstance(m, int) and not isinstance(m, bool) and m >= 2**31 \
                and exc is None:
            # item 27: maximum_count capped like initial_count
            raise AssertionError(f"{where}: maximum_count={m} accepted")
    if target.name == "TaskCompletionSource" and sole and args and \
            isinstance(args[0], st.TaskCreationOptions) and exc is None:
        # item 13: an options enum takes the options overload, as in .NET
        assert result.task.creation_options == args[0], where
        assert result.task.async_state is None, where


def _run_example(target, data):
    held = Held()
    reports = Reports()
    restore = GLOBAL_STATE.get(target.name)
    saved = restore[0]() if restore else None
    coroutines = []
    drawn = []
    _IN_EXAMPLE.set()
    try:
        with reports.installed(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the receiver
            receiver = None
            if target.kind in ("method", "get", "set"):
                cls_name = target.name.split(".")[0]
                factories = RECEIVER_OVERRIDES.get(
                    target.name, RECEIVERS[cls_name])
                index = data.draw(hs.integers(0, len(factories) - 1),
                                  label="receiver")
                receiver = factories[index](held)
            # the arguments (an enum's constructor: the value only; the
            # other parameters are the standard library's functional API)
            is_enum = target.kind == "ctor" and isinstance(target.cls,
                                                           enum.EnumMeta)
            n_args = 1 if is_enum else data.draw(hs.integers(0, 3),
                                                 label="n_args")
            pool = FD_FREE_NAMES if target.name in NO_FD_ARGS else \
                VALUE_NAMES
            names = [data.draw(hs.sampled_from(pool), label="arg")
                     for _ in range(n_args)]
            args = [VALUES[n]() for n in names]
            kwargs = {}
            params = [] if is_enum else _keyword_names(target, receiver)
            if params and data.draw(hs.booleans(), label="use_kw"):
                key = data.draw(hs.sampled_from(params), label="kw")
                kwargs[key] = VALUES[data.draw(hs.sampled_from(pool),
                                               label="kw_value")]()
            drawn = args + list(kwargs.values())
            coroutines = [a for a in drawn if inspect.iscoroutine(a)]
            # the call
            if target.kind == "ctor":
                result, exc = _outcome(target.fn, args, kwargs)
            elif target.kind == "call":
                result, exc = _outcome(target.fn, args, kwargs)
            elif target.kind == "method":
                result, exc = _outcome(getattr(receiver, target.attr),
                                       args, kwargs)
            elif target.kind == "get":
                result, exc = _outcome(getattr, (receiver, target.attr), {})
            else:
                value = args[0] if args else None
                result, exc = _outcome(setattr,
                                       (receiver, target.attr, value), {})
                if isinstance(exc, AttributeError):
                    exc = None  # a read-only attribute says so (a frozen
                    # dataclass's FrozenInstanceError is one too)
            if exc is not None:
                _check_exception(target, exc, drawn)
            call_fn = (target.fn if target.kind in ("ctor", "call") else
                       getattr(receiver, target.attr)
                       if target.kind == "method" else None)
            _oracle(target, call_fn, names, args, kwargs, result, exc)
            if exc is None:
                _observe_result(result, held)
            del result, exc, args, kwargs, receiver
            held.release()

            for c in coroutines:
                c.close()
            coroutines = []
            # the library still works, and reports were the injected ones
            with WATCHDOG.guard():
                _library_works()
                # the young generations only: a full collection per example
                # costs more than the example once the heap is big (the
                # refleak run); the test's teardown collects fully
                gc.collect(1)
        bad = [(kind, e, obj) for kind, e, obj in reports.items
               if not _acceptable_report(e, obj, drawn)]
        assert not bad, f"{target.name}: unexpected reports: {bad!r}"
    finally:
        _IN_EXAMPLE.clear()
        held.release()
        for c in coroutines:
            c.close()
        if restore:
            with contextlib.suppress(BaseException):
                restore[1](saved)


def _keyword_names(target, receiver):
    fn = target.fn
    if target.kind == "method":
        fn = getattr(receiver, target.attr)
    if fn is None or target.kind in ("get", "set"):
        return []
    try:
        sig = inspect.signature(fn)
    except Exception:  # noqa: BLE001 - no usable signature: positional only
        return []
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and not p.name.startswith("_")] + ["no_such_keyword"]


@pytest.fixture(autouse=True)
def _reports_until_collected():
    """What an example dropped may be collected after it, at the end of the
    test: a full collection here, under the same report check."""
    yield
    reports = Reports()
    _IN_EXAMPLE.set()
    try:
        with reports.installed():
            gc.collect()
    finally:
        _IN_EXAMPLE.clear()
    bad = [(kind, e, obj) for kind, e, obj in reports.items
           if not _acceptable_report(e, obj, [])]
    assert not bad, f"unexpected reports: {bad!r}"


@pytest.fixture(scope="module", autouse=True)
def _report_policy(tmp_path_factory):
    """Unhandled async-void exceptions are reported (the default), never
    the process-ending "crash" policy, whatever an example sets; and the
    examples run in a scratch directory (a fuzzed path is a file there)."""
    prev = st.set_unhandled_exception_policy("report")
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("fuzz"))
    yield
    os.chdir(cwd)
    st.set_unhandled_exception_policy(prev)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", TARGETS, ids=repr)
@FUZZ
@given(data=hs.data())
def test_H2_fuzz_public_callable(target, data):
    """H2 (issue 9, bad input): one public callable, constructor, method or
    property called with bad values: a clear error (TypeError, ValueError,
    a documented sharptask error, or the argument's own exception), never
    SystemError, a crash or a hang, only the injected exceptions reported,
    and the library works afterwards."""
    _run_example(target, data)


NON_CALLABLE_NAMES = sorted(n for n in VALUE_NAMES if not callable(VALUES[n]())
                            and "source" not in n)


@pytest.mark.timeout(120)
@FUZZ
@given(name=hs.sampled_from(NON_CALLABLE_NAMES),
       state=hs.sampled_from(VALUE_NAMES))
def test_H2_fuzz_send_without_a_pump_checks_the_callback(name, state):
    """H2, issue 9 item 21: send() on a SingleThreadSynchronizationContext
    that no thread runs would block a valid callback for good, so it must
    check its callback first: a non-callable is a TypeError at once, never
    a wait that does not end (the watchdog turns one into a failure)."""
    ctx = st.SingleThreadSynchronizationContext()
    callback, value = VALUES[name](), VALUES[state]()
    _IN_EXAMPLE.set()
    try:
        with WATCHDOG.guard():
            with pytest.raises(TypeError):
                ctx.send(callback, value)
    finally:
        _IN_EXAMPLE.clear()
    _library_works()
