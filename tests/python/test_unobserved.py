"""T11: unobserved task exceptions (SPEC §1 T11; reference R2.6–R2.8, R10.5,
S6.7).

Every test replaces sys.unraisablehook with a recorder (pytest runs with
filterwarnings=error, so a report reaching pytest's own hook would fail the
run) and waits for the reports it expects before it ends. Negative checks
("this is not reported") use a positive control dropped afterwards: once the
control's report has arrived, a spurious report of the observed task would
have arrived too.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

import pytest

import sharptask as st


class Marker(Exception):
    """A recognisable exception; `tag` tells instances apart."""

    def __init__(self, tag):
        super().__init__(tag)
        self.tag = tag


def _contains(exc, marker):
    if exc is marker:
        return True
    for inner in getattr(exc, "exceptions", ()) or ():
        if _contains(inner, marker):
            return True
    return False


class Reports:
    """Collects what reaches sys.unraisablehook and the TaskScheduler handler."""

    def __init__(self):
        self.hook = []
        self.handler = []
        self.lock = threading.Lock()

    def unraisable(self, u):
        with self.lock:
            self.hook.append(u.exc_value)

    def event(self, *args):
        ev = args[-1]
        with self.lock:
            self.handler.append(ev)

    def hook_has(self, marker):
        with self.lock:
            return any(_contains(e, marker) for e in self.hook)

    def handler_has(self, marker):
        with self.lock:
            return any(_contains(ev.exception, marker) for ev in self.handler)

    def anywhere(self, marker):
        return self.hook_has(marker) or self.handler_has(marker)


@pytest.fixture
def reports(monkeypatch):
    r = Reports()
    monkeypatch.setattr(sys, "unraisablehook", r.unraisable)
    yield r
    # anything still in flight for this test lands here, not in pytest's hook
    pump(lambda: False, timeout=0.05)


def pump(pred, timeout=5.0):
    """Collect garbage and give safe points a chance until pred() holds.
    (There is no event to wait on: a report may come from a pending call at
    the next safe point of the main thread, so poll in small slices.)"""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
        for _ in range(100):  # a little bytecode: eval-breaker safe points
            pass


def flush(reports):
    """Let reports of earlier tests' garbage arrive, then forget them."""
    pump(lambda: False, timeout=0.05)
    with reports.lock:
        reports.hook.clear()
        reports.handler.clear()


def drop_faulted(exc):
    """Create a faulted task nobody observes, and drop it."""
    tcs = st.TaskCompletionSource()
    tcs.set_exception(exc)
    del tcs


def scheduler():
    ts = getattr(st, "TaskScheduler", None)
    assert ts is not None, "T11 needs sharptask.TaskScheduler"
    return ts


# ---------------------------------------------------------------------------
# default reporting
# ---------------------------------------------------------------------------


def test_T11_unobserved_fault_reported_through_unraisablehook(reports):
    """T11/R2.8: a faulted task never observed is reported when collected, by
    default through sys.unraisablehook."""
    m = Marker("default")
    drop_faulted(m)
    assert pump(lambda: reports.hook_has(m)), "unobserved exception was lost silently"


def test_T11_report_carries_aggregate_error(reports):
    """T11/R2.8: the reported exception is the task's AggregateError, holding
    every exception of the task."""
    m1, m2 = Marker("agg-1"), Marker("agg-2")
    drop_faulted([m1, m2])
    assert pump(lambda: reports.hook_has(m1))
    with reports.lock:
        exc = next(e for e in reports.hook if _contains(e, m1))
    assert isinstance(exc, st.AggregateError)
    assert exc.inner_exceptions == (m1, m2)


def test_T11_unobserved_async_method_fault_reported(reports):
    """T11: an async method's fault (with its traceback) unobserved → reported."""
    m = Marker("async")
    src = st.TaskCompletionSource()

    @st.async_method
    async def fails():
        await src.task
        raise m

    t = fails()
    src.set_result(None)
    assert t.is_faulted
    del t
    assert pump(lambda: reports.hook_has(m))


def test_T11_unobserved_run_fault_reported(reports):
    """T11: a Task.run delegate's fault, task dropped unobserved → reported."""
    m = Marker("run")
    done = threading.Event()

    def body():
        try:
            raise m
        finally:
            done.set()

    t = st.Task.run(body)
    assert done.wait(10)
    assert st.Task.wait_any([t], timeout=10) == 0  # does not observe (R5.11)
    del t
    assert pump(lambda: reports.hook_has(m))


def test_T11_task_dropped_on_another_thread_still_reported(reports):
    """T11: the last reference dropped on a pool thread: the report still
    arrives (possibly later, from a safe point); nothing is lost."""
    m = Marker("pool-drop")
    st.Task.run(drop_faulted, m).wait(10)
    assert pump(lambda: reports.hook_has(m))


def test_T11_many_unobserved_all_reported(reports):
    """T11: nothing is ever lost: 200 dropped faulted tasks → 200 reports."""
    markers = [Marker(i) for i in range(200)]
    for mk in markers:
        drop_faulted(mk)
    assert pump(lambda: all(reports.anywhere(mk) for mk in markers), timeout=10)


# ---------------------------------------------------------------------------
# TaskScheduler.unobserved_task_exception handlers
# ---------------------------------------------------------------------------


def test_T11_handler_receives_event_with_exception_and_set_observed(reports):
    """T11/R10.5: a handler added with add_unobserved_task_exception_handler
    gets an event whose `exception` is the AggregateError and which has
    set_observed()."""
    ts = scheduler()
    m = Marker("handler")
    seen = []

    def handler(*args):
        ev = args[-1]
        if _contains(ev.exception, m):
            seen.append(ev)
            ev.set_observed()

    ts.add_unobserved_task_exception_handler(handler)
    try:
        drop_faulted(m)
        assert pump(lambda: bool(seen))
    finally:
        ts.remove_unobserved_task_exception_handler(handler)
    ev = seen[0]
    assert isinstance(ev.exception, st.AggregateError)
    assert ev.exception.inner_exceptions == (m,)
    assert len(seen) == 1


def test_T11_removed_handler_not_called(reports):
    """T11: remove_unobserved_task_exception_handler stops the calls; the
    default report still happens."""
    ts = scheduler()
    calls = []

    def handler(*args):
        calls.append(args[-1])

    ts.add_unobserved_task_exception_handler(handler)
    ts.remove_unobserved_task_exception_handler(handler)
    m = Marker("removed")
    drop_faulted(m)
    assert pump(lambda: reports.hook_has(m))
    assert not any(_contains(ev.exception, m) for ev in calls)


def test_T11_multiple_handlers_all_called(reports):
    """T11: every registered handler gets the event."""
    ts = scheduler()
    m = Marker("multi")
    a, b = [], []

    def ha(*args):
        if _contains(args[-1].exception, m):
            a.append(1)

    def hb(*args):
        if _contains(args[-1].exception, m):
            b.append(1)

    ts.add_unobserved_task_exception_handler(ha)
    ts.add_unobserved_task_exception_handler(hb)
    try:
        drop_faulted(m)
        assert pump(lambda: a and b)
    finally:
        ts.remove_unobserved_task_exception_handler(ha)
        ts.remove_unobserved_task_exception_handler(hb)
    assert a == [1] and b == [1]


# ---------------------------------------------------------------------------
# what observes (R2.6) and what does not
# ---------------------------------------------------------------------------


def _observe_exception(t):
    _ = t.exception


def _observe_result(t):
    try:
        t.result
    except st.AggregateError:
        pass


def _observe_wait(t):
    try:
        t.wait()
    except st.AggregateError:
        pass


def _observe_wait_all(t):
    try:
        st.Task.wait_all([t])
    except st.AggregateError:
        pass


def _observe_get_result(t):
    try:
        t.get_awaiter().get_result()
    except Marker:
        pass


def _observe_await(t):
    @st.async_method
    async def m():
        try:
            await t
        except Marker:
            return "caught"

    assert m().result == "caught"


def _observe_when_all(t):
    w = st.Task.when_all(t, st.Task.from_result(1))
    _ = w.exception  # observe the combinator itself


OBSERVERS = {
    "exception": _observe_exception,
    "result": _observe_result,
    "wait": _observe_wait,
    "wait_all": _observe_wait_all,
    "get_result": _observe_get_result,
    "await": _observe_await,
    "when_all": _observe_when_all,
}


@pytest.mark.parametrize("how", list(OBSERVERS))
def test_T11_observed_fault_is_not_reported(reports, how):
    """T11/R2.6: a fault observed through `exception`, `result`, `wait`,
    `wait_all`, `get_result`, `await` or being a when_all constituent is not
    reported."""
    observed = Marker(f"observed-{how}")
    tcs = st.TaskCompletionSource()
    tcs.set_exception(observed)
    OBSERVERS[how](tcs.task)
    del tcs
    control = Marker(f"control-{how}")
    drop_faulted(control)
    assert pump(lambda: reports.anywhere(control)), "control was not reported"
    pump(lambda: False, timeout=0.05)
    assert not reports.anywhere(observed), f"fault observed via {how} was reported"


NON_OBSERVERS = {
    "is_faulted": lambda t: t.is_faulted,
    "status": lambda t: t.status,
    "when_any": lambda t: st.Task.when_any(t).result,
    "continue_with": lambda t: t.continue_with(lambda a: a.status).wait(10),
    "wait_any": lambda t: st.Task.wait_any([t]),
}


@pytest.mark.parametrize("how", list(NON_OBSERVERS))
def test_T11_non_observing_access_still_reported(reports, how):
    """T11/R2.6: is_faulted, status, when_any, wait_any, or a continue_with
    that does not touch antecedent.exception do not observe: still reported."""
    m = Marker(f"unobserved-{how}")
    tcs = st.TaskCompletionSource()
    tcs.set_exception(m)
    NON_OBSERVERS[how](tcs.task)
    del tcs
    assert pump(lambda: reports.anywhere(m)), f"{how} wrongly counted as observing"


def test_T11_canceled_task_never_reported(reports):
    """T11/R2.7/S6.7: cancellation never produces an unobserved report (also
    an async method canceled by an OCE)."""
    flush(reports)
    tcs = st.TaskCompletionSource()
    tcs.set_canceled()
    del tcs

    oce = st.OperationCanceledError("never reported")

    @st.async_method
    async def cancels():
        raise oce

    t = cancels()
    assert t.is_canceled
    del t
    control = Marker("control-cancel")
    drop_faulted(control)
    assert pump(lambda: reports.anywhere(control))
    pump(lambda: False, timeout=0.05)
    with reports.lock:
        bad = [e for e in reports.hook if _contains(e, oce) or isinstance(e, st.OperationCanceledError)]
        bad += [ev for ev in reports.handler if _contains(ev.exception, oce)]
    assert not bad


def test_T11_successful_task_never_reported(reports):
    """T11 (control sanity): dropping successful and pending tasks reports
    nothing; only the faulted control is reported."""
    flush(reports)
    for _ in range(50):
        tcs = st.TaskCompletionSource()
        tcs.set_result(1)
        st.TaskCompletionSource()
    control = Marker("control-ok")
    drop_faulted(control)
    assert pump(lambda: reports.anywhere(control))
    pump(lambda: False, timeout=0.05)
    with reports.lock:
        others = [e for e in reports.hook if not _contains(e, control)]
    assert others == []
