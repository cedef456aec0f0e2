"""Timers and virtual time: SPEC P5 and P6a (reference section 8).

- ``Timer``: System.Threading.Timer.  Each due time is one native shot
  (``_native._timer_start``: an entry in the C timer thread's heap, O(log n)
  to add or cancel) whose callback is queued to the thread pool; a periodic
  timer arms its next shot before running the callback, drift-compensated.
  ``change()`` and ``dispose()`` make every shot already in flight stale
  (a generation number), so a callback queued before them never runs.
- ``PeriodicTimer``: an auto-reset signal fed by a timer; one waiter at a
  time; ticks that nobody waits for coalesce into one.
- ``TimeProvider`` (.NET 8): ``TimeProvider.system`` and
  ``FakeTimeProvider`` (Microsoft.Extensions.TimeProvider.Testing), whose
  ``advance()`` fires due timers synchronously on the calling thread, so
  timeout tests run in no wall time and the same way every run.
- ``delay`` / ``wait_async``: the ``time_provider=`` forms of
  ``Task.delay`` and ``Task.wait_async`` (the C methods forward here).
"""

from __future__ import annotations

import contextvars
import functools
import math
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, Protocol

from . import _native
from ._enums import TaskContinuationOptions, TaskCreationOptions
from ._errors import InvalidOperationError, ObjectDisposedError
from ._impl import _timeout_error

Task = _native.Task
TaskCompletionSource = _native.TaskCompletionSource

__all__ = ["Timer", "PeriodicTimer", "TimeProvider", "FakeTimeProvider"]

_MAX_SECONDS = 4294967.294  # .NET: 0xFFFFFFFE ms


class _TimerItself:
    """The default ``state`` of a Timer: the callback gets the timer."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the timer itself>"


_UNSET: Any = _TimerItself()


class _ITimer(Protocol):
    """What ``TimeProvider.create_timer`` returns (.NET's ``ITimer``): a
    Timer, or a FakeTimeProvider's timer."""

    def change(self, due: Any, period: Any) -> bool:
        """Re-arm from now; False after dispose()."""
        ...

    def dispose(self) -> None:
        """Stop the timer (idempotent)."""
        ...


def _seconds(value: Any, name: str) -> Optional[float]:
    """A due time or period in seconds (float or timedelta, not bool);
    None for infinite (None, -1 or Timeout.InfiniteTimeSpan).  The
    binding's timeout parser, as every entry point (issue 9 item 27):
    TypeError / ValueError name the parameter, as ArgumentException /
    ArgumentOutOfRangeException do."""
    return _native._parse_timeout(value, name)


def _check_provider(provider: Any) -> "TimeProvider":
    if provider is None:
        return TimeProvider.system
    if not isinstance(provider, TimeProvider):
        raise TypeError("time_provider must be a TimeProvider, not "
                        f"{type(provider).__name__}")
    return provider


# ------------------------------------------------------------------ Timer


class Timer:
    """A timer that calls ``callback(state)`` on a thread-pool thread after
    ``due`` seconds and then every ``period`` seconds, like .NET's
    ``System.Threading.Timer`` (SPEC P5, reference 8.1-8.6).

    ``due``/``period`` are seconds (float or timedelta); ``None`` or -1
    means infinite: an infinite due time leaves the timer stopped, a period
    of 0 or infinite makes it one-shot.  A due time of 0 queues the first
    call at once (never inline).  Without a ``state`` the callback gets the
    timer itself.  Callbacks run in the contextvars context captured here;
    they may overlap when one outlasts the period.  With a ``time_provider``
    other than ``TimeProvider.system`` the timer is that provider's (a
    ``FakeTimeProvider`` fires it inside ``advance()``).

    Unlike .NET's Timer, a scheduled timer is kept alive by its schedule
    (as timers made by ``TimeProvider.create_timer`` are): an unreferenced
    periodic timer keeps firing until it is disposed.
    """

    def __init__(self, callback: Callable[[Any], Any], state: Any = _UNSET,
                 due: Any = -1, period: Any = -1,
                 time_provider: Optional["TimeProvider"] = None) -> None:
        if not callable(callback):
            raise TypeError("callback must be callable, not "
                            f"{type(callback).__name__}")
        due_s = _seconds(due, "due")
        period_s = _seconds(period, "period")
        self._callback = callback
        self._state = self if state is _UNSET else state
        self._lock = threading.Lock()
        self._disposed = False
        # True for the timers of TimeProvider.create_timer (ITimer): their
        # change() after dispose() returns False instead of raising
        self._itimer = False
        self._impl: Any = None
        provider = _check_provider(time_provider)
        if provider is not TimeProvider.system:
            # the provider's own timer (ITimer)
            self._impl = provider.create_timer(callback, self._state, due,
                                               period)
            return
        self._ctx = contextvars.copy_context()
        self._gen = 0
        self._shot: Any = None
        self._period: Optional[float] = None
        self._due_at = 0.0
        with self._lock:
            self._arm_locked(due_s, period_s)

    # -- internals (self._lock held) -------------------------------------

    def _arm_locked(self, due_s: Optional[float],
                    period_s: Optional[float]) -> None:
        self._gen += 1  # every shot in flight is stale from now on
        shot, self._shot = self._shot, None
        if shot is not None:
            shot.cancel()
        self._period = period_s if period_s else None  # 0/None: one-shot
        if due_s is not None:
            self._schedule_locked(due_s)

    def _schedule_locked(self, delay: float) -> None:
        self._due_at = time.monotonic() + delay
        self._shot = _native._timer_start(
            delay, functools.partial(self._fire, self._gen))

    def _fire(self, gen: int) -> None:
        """A shot came due (on a pool thread, GIL held)."""
        with self._lock:
            if gen != self._gen or self._disposed:
                return  # changed or disposed since it was queued (8.5)
            period = self._period
            if period is not None:
                # 8.3: next due = period - lateness; a tick later than a
                # whole period comes 1 ms later (no catch-up burst)
                late = time.monotonic() - self._due_at
                self._schedule_locked(period - late if late < period
                                      else 0.001)
            else:
                self._shot = None
            ctx = self._ctx
        # a copy per call: overlapping callbacks cannot share one
        ctx.copy().run(self._callback, self._state)

    # -- the API ---------------------------------------------------------

    def change(self, due: Any, period: Any) -> bool:
        """Re-arm the timer from now with a new due time and period (like
        ``Timer.Change``): returns True; ObjectDisposedError after
        dispose()."""
        due_s = _seconds(due, "due")
        period_s = _seconds(period, "period")
        if self._impl is not None:
            if self._disposed:
                raise ObjectDisposedError("Timer: change() after dispose()")
            return bool(self._impl.change(due, period))
        with self._lock:
            if self._disposed:
                if self._itimer:
                    return False  # ITimer.Change: false, no throw (8.13)
                raise ObjectDisposedError("Timer: change() after dispose()")
            self._arm_locked(due_s, period_s)
        return True

    def dispose(self) -> None:
        """Stop the timer (idempotent).  A callback already queued but not
        started is skipped; one already running keeps running."""
        if self._impl is not None:
            if not self._disposed:
                self._disposed = True
                self._impl.dispose()
            return
        with self._lock:
            if self._disposed:
                return
            self._disposed = True
            self._gen += 1
            shot, self._shot = self._shot, None
        if shot is not None:
            shot.cancel()

    close = dispose

    def __enter__(self) -> "Timer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.dispose()

    def __repr__(self) -> str:
        if self._disposed:
            what = "disposed"
        elif self._impl is not None:
            what = f"on {self._impl!r}"
        elif self._shot is None:
            what = "stopped"
        else:
            what = "armed" + (f", period {self._period} s"
                              if self._period else ", one-shot")
        return f"<Timer {what}>"


# ---------------------------------------------------------- TimeProvider


class TimeProvider:
    """An abstraction of time (.NET 8's ``TimeProvider``, SPEC P6a).
    ``TimeProvider.system`` is the real clock; ``FakeTimeProvider`` is a
    manual one for tests.  Every sharptask API that takes a time
    (``Task.delay``, ``wait_async``, ``CancellationTokenSource``,
    ``Timer``, ``PeriodicTimer``) accepts ``time_provider=``."""

    system: "TimeProvider"

    def get_utc_now(self) -> datetime:
        """The current UTC date and time (an aware datetime)."""
        return datetime.now(timezone.utc)

    @property
    def local_time_zone(self) -> Any:
        """The local time zone (a tzinfo)."""
        return datetime.now().astimezone().tzinfo

    def get_local_now(self) -> datetime:
        """get_utc_now() in local_time_zone."""
        tz = self.local_time_zone
        if tz is None:
            raise InvalidOperationError("local_time_zone is None")
        return self.get_utc_now().astimezone(tz)

    @property
    def timestamp_frequency(self) -> int:
        """Ticks per second of get_timestamp()."""
        return 1_000_000_000

    def get_timestamp(self) -> int:
        """A high-resolution monotonic timestamp, in
        timestamp_frequency units."""
        return time.perf_counter_ns()

    def get_elapsed_time(self, start: int,
                         end: Optional[int] = None) -> timedelta:
        """The time between two timestamps (end defaults to now)."""
        freq = self.timestamp_frequency
        if freq <= 0:
            raise InvalidOperationError("timestamp_frequency must be > 0")
        if end is None:
            end = self.get_timestamp()
        try:
            return timedelta(seconds=(end - start) / freq)
        except OverflowError:  # H2: a wrong value is a ValueError
            raise ValueError(
                f"get_elapsed_time(): the time from start={start!r} to "
                f"end={end!r} is out of timedelta's range") from None

    def create_timer(self, callback: Callable[[Any], Any], state: Any,
                     due: Any, period: Any) -> _ITimer:
        """A timer on this provider's clock (``CreateTimer``): it has
        change(due, period) (False after dispose) and dispose()."""
        timer = Timer(callback, state, due, period)
        timer._itimer = True
        return timer

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class _SystemTimeProvider(TimeProvider):
    """The system clock (TimeProvider.System)."""

    def __repr__(self) -> str:
        return "<TimeProvider.system>"


TimeProvider.system = _SystemTimeProvider()


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not "
                        f"{type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # naive: UTC
    return value


def _delta(value: Any, name: str) -> timedelta:
    if isinstance(value, timedelta):
        d = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # H2: NaN, inf and huge values are wrong values, not wrong types
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{name} must be a finite number of seconds, "
                             f"not {value!r}")
        try:
            d = timedelta(seconds=value)
        except OverflowError:
            raise ValueError(f"{name} is too large: {value!r}") from None
    else:
        raise TypeError(f"{name} must be a number of seconds or a "
                        f"timedelta, not {type(value).__name__}")
    if d < timedelta(0):
        raise ValueError(f"{name} must not be negative, not {value!r}")
    return d


class FakeTimeProvider(TimeProvider):
    """A TimeProvider whose time moves only when told (reference 8.14-8.17,
    Microsoft.Extensions.Time.Testing.FakeTimeProvider).

    Time starts at ``start`` (2000-01-01 00:00 UTC by default).
    ``advance(seconds)`` and ``set_utc_now(t)`` move it forward and then run
    every timer that came due, synchronously on the calling thread, the
    earliest wake time first (ties in the order they were scheduled); a
    periodic timer jumped over by k periods runs k times.  With
    ``auto_advance_amount`` set, every ``get_utc_now()`` returns the time
    and then advances it by that amount.  Timers made here capture no
    contextvars context.
    """

    def __init__(self, start: Optional[datetime] = None) -> None:
        if start is None:
            start = datetime(2000, 1, 1, tzinfo=timezone.utc)
        start = _aware(start, "start")
        self._start = start
        self._now: datetime = start
        self._lock = threading.RLock()
        self._timers: list["_FakeTimer"] = []
        self._next_id = 0
        self._waking = False
        self._auto = timedelta(0)
        self._tz: Any = timezone.utc

    @property
    def start(self) -> datetime:
        """The time this provider started at."""
        return self._start

    @property
    def auto_advance_amount(self) -> timedelta:
        """How far every get_utc_now() moves time after reading it."""
        return self._auto

    @auto_advance_amount.setter
    def auto_advance_amount(self, value: Any) -> None:
        self._auto = _delta(value, "auto_advance_amount")

    @property
    def local_time_zone(self) -> Any:
        return self._tz

    def set_local_time_zone(self, tz: Any) -> None:
        """Set local_time_zone (UTC by default)."""
        self._tz = tz

    def get_utc_now(self) -> datetime:
        with self._lock:
            now = self._now
            if self._auto:
                self._now += self._auto
        if self._auto:
            self._wake_timers()
        return now

    @property
    def timestamp_frequency(self) -> int:
        return 10_000_000  # TimeSpan.TicksPerSecond

    def get_timestamp(self) -> int:
        now = self.get_utc_now()
        epoch = datetime(1, 1, 1, tzinfo=timezone.utc)
        return (now - epoch) // timedelta(microseconds=1) * 10

    def advance(self, delta: Any) -> None:
        """Move time forward by ``delta`` (seconds or timedelta; negative
        raises ValueError) and run the timers that came due."""
        d = _delta(delta, "delta")
        with self._lock:
            self._now += d
        self._wake_timers()

    def set_utc_now(self, value: datetime) -> None:
        """Move time forward to ``value`` (an earlier time raises
        ValueError: time does not go back) and run the due timers."""
        value = _aware(value, "value")
        with self._lock:
            if value < self._now:
                raise ValueError(f"cannot go back in time: {value} is "
                                 f"before {self._now}")
            self._now = value
        self._wake_timers()

    def adjust_time(self, value: datetime) -> None:
        """Set the time, forward or back, without running any timer."""
        value = _aware(value, "value")
        with self._lock:
            self._now = value

    def create_timer(self, callback: Callable[[Any], Any], state: Any,
                     due: Any, period: Any) -> "_FakeTimer":
        if not callable(callback):
            raise TypeError("callback must be callable")
        timer = _FakeTimer(self, callback, state)
        timer.change(due, period)
        return timer

    def _wake_timers(self) -> None:
        with self._lock:
            if self._waking:
                return  # the outer call keeps going (a callback advanced)
            self._waking = True
        try:
            while True:
                with self._lock:
                    due = [t for t in self._timers
                           if t._wake is not None and t._wake <= self._now]
                    if not due:
                        return
                    timer = min(due, key=lambda t: (t._wake, t._id))
                    before = self._now
                    wake = timer._wake
                    assert wake is not None  # only timers with a wake time
                    if timer._period is None:
                        self._timers.remove(timer)
                        timer._wake = None
                timer._callback(timer._state)  # inline, no lock held
                with self._lock:
                    if timer._period is not None and timer._wake == wake \
                            and timer in self._timers:
                        timer._wake = (self._now if self._now != before
                                       else wake) + timer._period
        finally:
            with self._lock:
                self._waking = False

    def __repr__(self) -> str:
        return f"<FakeTimeProvider now={self._now.isoformat()}>"


class _FakeTimer:
    """A timer of a FakeTimeProvider (ITimer): change() and dispose()."""

    def __init__(self, owner: FakeTimeProvider, callback: Callable,
                 state: Any) -> None:
        self._owner = owner
        self._callback = callback
        self._state = state
        self._wake: Optional[datetime] = None
        self._period: Optional[timedelta] = None
        self._id = 0
        self._disposed = False

    def change(self, due: Any, period: Any) -> bool:
        """Re-base from the provider's now; False after dispose()."""
        due_s = _seconds(due, "due")
        period_s = _seconds(period, "period")
        owner = self._owner
        with owner._lock:
            if self._disposed:
                return False
            if self in owner._timers:
                owner._timers.remove(self)
            self._wake = None
            self._period = (timedelta(seconds=period_s) if period_s
                            else None)
            if due_s is not None:
                self._wake = owner._now + timedelta(seconds=due_s)
                self._id = owner._next_id
                owner._next_id += 1
                owner._timers.append(self)
        if due_s == 0:
            owner._wake_timers()  # due now: fires inside change/create
        return True

    def dispose(self) -> None:
        owner = self._owner
        with owner._lock:
            self._disposed = True
            if self in owner._timers:
                owner._timers.remove(self)
            self._wake = None

    def __repr__(self) -> str:
        return (f"<FakeTimeProvider timer wake={self._wake} "
                f"period={self._period}>")


# -------------------------------------------------------- PeriodicTimer


class _PeriodicState:
    """Everything of a PeriodicTimer but its timer (.NET's
    ``PeriodicTimer.State``).  The timer's callback refers to this object,
    never to the PeriodicTimer, so that the armed timer (which its
    schedule keeps alive) does not keep the PeriodicTimer alive: one that
    nobody refers to is collected, and its finalizer disposes the timer.
    While a wait is pending, ``owner`` refers to the PeriodicTimer, so
    that the timer keeps it and the code awaiting it alive until the
    wait completes."""

    __slots__ = ("lock", "signaled", "waiter", "registration", "disposed",
                 "owner")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signaled = False
        self.waiter: Any = None
        self.registration: Any = None
        self.disposed = False
        self.owner: Any = None

    def tick(self, _state: Any) -> None:
        """The timer's callback."""
        with self.lock:
            if self.disposed:
                return
            tcs, self.waiter = self.waiter, None
            if tcs is None:
                self.signaled = True  # coalesce: one pending tick
                return
            reg, self.registration = self.registration, None
            owner, self.owner = self.owner, None
        # (the last reference to the PeriodicTimer may go with owner: its
        # finalizer takes the lock, so never under it)
        del owner
        if reg is not None:
            reg.dispose()
        tcs.try_set_result(True)

    def canceled(self, tcs: Any, token: Any) -> None:
        with self.lock:
            if self.waiter is not tcs:
                return
            self.waiter = None
            self.registration = None
            owner, self.owner = self.owner, None
        del owner  # not under the lock (see tick)
        tcs.try_set_canceled(token)


class PeriodicTimer:
    """Ticks every ``period`` seconds for one awaiter at a time, like .NET's
    ``PeriodicTimer`` (SPEC P5, reference 8.10-8.12)::

        with PeriodicTimer(0.1) as timer:
            while await timer.wait_for_next_tick_async():
                ...

    ``period`` must be > 0 (or -1 / None: infinite).  Ticks that happen
    while nobody waits coalesce into one pending tick.  A second wait while
    one is pending raises InvalidOperationError; after ``dispose()`` a
    pending wait completes with False, and every later wait returns False
    at once.

    As .NET's, a PeriodicTimer that nobody refers to any more, with no
    wait pending, is collected and its timer disposed (it stops ticking);
    while a wait is pending, the timer keeps it alive.
    """

    def __init__(self, period: Any,
                 time_provider: Optional[TimeProvider] = None) -> None:
        secs = self._check_period(period, "period")
        provider = _check_provider(time_provider)
        self._st = _PeriodicState()
        self._period = secs
        arg = -1 if secs is None else secs
        self._timer = provider.create_timer(self._st.tick, None, arg, arg)

    @staticmethod
    def _check_period(period: Any, name: str) -> Optional[float]:
        secs = _seconds(period, name)
        if secs == 0:
            raise ValueError(f"{name} must be > 0 (or -1 / None for "
                             f"infinite), not {period!r}")
        return secs

    @property
    def period(self) -> float:
        """The period in seconds (-1: infinite).  Setting it affects the
        next ticks (.NET 8)."""
        return -1.0 if self._period is None else self._period

    @period.setter
    def period(self, value: Any) -> None:
        secs = self._check_period(value, "value")
        if self._st.disposed:
            raise ObjectDisposedError("PeriodicTimer is disposed")
        self._period = secs
        arg = -1 if secs is None else secs
        self._timer.change(arg, arg)

    def wait_for_next_tick_async(self, cancellation_token: Any = None
                                 ) -> Any:
        """A ValueTask[bool]: True at the next tick (at once if a tick is
        pending), False once disposed; canceled if the token fires first
        (the timer keeps running)."""
        vt = _native_value_task()
        token = _native._parse_token(cancellation_token)  # H2
        st = self._st
        with st.lock:
            if st.waiter is not None:
                raise InvalidOperationError(
                    "wait_for_next_tick_async: a wait is already pending "
                    "(one waiter at a time)")
            if st.disposed:
                return vt(False)
            if token is not None and token.is_cancellation_requested:
                return vt.from_canceled(token)
            if st.signaled:
                st.signaled = False
                return vt(True)
            tcs: TaskCompletionSource[bool] = TaskCompletionSource(
                None, TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY)
            st.waiter = tcs
            st.owner = self  # the armed timer keeps us while awaited
        if token is not None and token.can_be_canceled:
            reg = token.register(functools.partial(st.canceled, tcs, token))
            with st.lock:
                if st.waiter is tcs:
                    st.registration = reg
                    reg = None
            if reg is not None:
                reg.dispose()
        return vt(tcs.task)

    def dispose(self) -> None:
        """Stop ticking (idempotent): a pending wait completes with
        False."""
        st = self._st
        with st.lock:
            if st.disposed:
                return
            st.disposed = True
            tcs, st.waiter = st.waiter, None
            reg, st.registration = st.registration, None
            owner, st.owner = st.owner, None  # self: the caller holds it
        del owner
        self._timer.dispose()
        if reg is not None:
            reg.dispose()
        if tcs is not None:
            tcs.try_set_result(False)

    close = dispose

    def __del__(self) -> None:
        # .NET's ~PeriodicTimer() => Dispose(): nobody refers to this
        # timer and nobody waits on it (a wait would keep it): stop it.
        # (Not after a failed __init__: nothing was armed.)
        if "_timer" in self.__dict__:
            self.dispose()

    def __enter__(self) -> "PeriodicTimer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.dispose()

    def __repr__(self) -> str:
        state = "disposed" if self._st.disposed else f"period={self.period}"
        return f"<PeriodicTimer {state}>"


def _native_value_task() -> Any:
    from . import ValueTask  # the package's (issue 5)
    return ValueTask


# -------------------------------------- Task.delay / wait_async (P6a)


def _dispose_all(*things: Any) -> None:
    for thing in things:
        if thing is not None:
            thing.dispose()


def delay(seconds: Any, token: Any, provider: Any) -> Any:
    """Task.delay(seconds, cancellation_token, time_provider): the delay on
    the provider's clock (.NET's Task.Delay(TimeSpan, TimeProvider,
    CancellationToken): provider.CreateTimer, no context flow)."""
    provider = _check_provider(provider)
    if provider is TimeProvider.system:
        return Task.delay(seconds, cancellation_token=token)
    secs = _seconds(seconds, "seconds")
    if token is not None and token.is_cancellation_requested:
        return Task.from_canceled(token)
    if secs == 0:
        return Task.completed_task
    tcs: TaskCompletionSource[None] = TaskCompletionSource(
        None, TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY)
    timer = None
    if secs is not None:
        timer = provider.create_timer(
            lambda _s: tcs.try_set_result(None), None, secs, -1)
    reg = None
    if token is not None and token.can_be_canceled:
        reg = token.register(lambda: tcs.try_set_canceled(token))
    if timer is not None or reg is not None:
        tcs.task.continue_with(
            lambda _t: _dispose_all(timer, reg),
            options=TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY)
    return tcs.task


def wait_async(task: Any, timeout: Any, token: Any, provider: Any) -> Any:
    """task.wait_async(timeout, cancellation_token, time_provider): like
    Task.WaitAsync with a TimeProvider: the task's outcome, or TimeoutError
    when the provider's clock passes the timeout, or canceled by the
    token."""
    provider = _check_provider(provider)
    if provider is TimeProvider.system:
        return task.wait_async(timeout, cancellation_token=token)
    secs = _seconds(timeout, "timeout")
    if task.is_completed or (secs is None and (
            token is None or not token.can_be_canceled)):
        return task
    if token is not None and token.is_cancellation_requested:
        return Task.from_canceled(token)
    if secs == 0:
        return Task.from_exception(_timeout_error(task, secs, provider))
    tcs: TaskCompletionSource[Any] = TaskCompletionSource(
        None, TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY)
    timer = None
    if secs is not None:
        timer = provider.create_timer(
            lambda _s: tcs.try_set_exception(
                _timeout_error(task, secs, provider)), None, secs, -1)
    reg = None
    if token is not None and token.can_be_canceled:
        reg = token.register(lambda: tcs.try_set_canceled(token))

    def done(t: Any) -> None:
        if t.is_canceled:
            try:
                t.get_awaiter().get_result()
            except BaseException as e:  # the stored cancellation
                tcs.try_set_canceled(getattr(e, "cancellation_token",
                                             None))
        elif t.is_faulted:
            tcs.try_set_exception(t.exception.inner_exceptions)
        else:
            tcs.try_set_result(t.result)

    # When the timeout or the token wins, the continuation on the source
    # goes too (as .NET's WaitAsync removes its own): canceling `inner`
    # takes it off the still-pending source (R3.10), which would otherwise
    # keep the promise, the timer and this closure alive (issue 9 item 10).
    inner = _native.CancellationTokenSource()
    task.continue_with(done, cancellation_token=inner.token,
                       options=TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY)

    def finished(_t: Any) -> None:
        inner.cancel()
        _dispose_all(timer, reg)
    tcs.task.continue_with(
        finished, options=TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY)
    return tcs.task
