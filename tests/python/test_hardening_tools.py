"""Regression tests for defects found by the hardening tools of issue 9
("Make it provable": the debug-interpreter refleak run, the TSan stress run
and the input fuzzing) that were not in the issue's list.  Each test names
the tool that found the defect and the SPEC rule it breaks.
"""

import gc
import weakref

import pytest

import sharptask as st
from conftest import wait_until


class _Holder:
    """A GC-tracked object that can sit in a cycle and be weakly referenced."""

    def __init__(self):
        self.ev = None


def test_H3_T11_task_resurrected_by_unobserved_handler_stays_gc_tracked():
    """H3, T11: found by the debug interpreter (check-refleaks), which aborted
    in PyObject_CallFinalizerFromDealloc ("object not tracked"): Task_dealloc
    untracked the task before running its finalizer, so a task resurrected
    by an unobserved-exception handler (which keeps the event, and so the
    task) was no longer tracked by the GC: a cycle through it was never
    collected.  Here: holder -> event -> task -> state=holder."""
    seen = []

    def handler(ev):
        if isinstance(ev.exception.inner_exceptions[0], LookupError):
            seen.append(ev)
            ev.set_observed()

    st.TaskScheduler.add_unobserved_task_exception_handler(handler)
    try:
        holder = _Holder()
        tcs = st.TaskCompletionSource(holder)
        tcs.set_exception(LookupError("resurrected"))
        del tcs
        gc.collect()
        assert len(seen) == 1
        ev = seen.pop()
        task = ev.task
        assert task.async_state is holder
        assert gc.is_tracked(task), "a resurrected task must stay GC-tracked"
        holder.ev = ev
        ref = weakref.ref(holder)
        del holder, ev, task
        gc.collect()
        assert ref() is None, "the cycle through the resurrected task leaked"
    finally:
        st.TaskScheduler.remove_unobserved_task_exception_handler(handler)


def test_H3_K3_delay_canceled_by_a_foreign_token_frees_everything_at_once():
    """H3, K3: found by check-refleaks (test_K3_delay_with_foreign_token_object
    grew by 81 references every run): Task.delay with a token object that is
    not a native CancellationToken left its inner delay armed after the
    token fired, so the timer kept the continuation, the source, the
    registration and the token itself alive until the delay would have
    expired (here 600 s).  Canceled, it must disarm its timer at once, as a
    delay with a native token does."""
    cts = st.CancellationTokenSource()

    class Foreign:
        can_be_canceled = True

        @property
        def is_cancellation_requested(self):
            return cts.is_cancellation_requested

        def register(self, cb):
            return cts.token.register(cb)

    timers_before = st._native._timer_count()
    token = Foreign()
    ref = weakref.ref(token)
    d = st.Task.delay(600, cancellation_token=token)
    assert st._native._timer_count() == timers_before + 1
    cts.cancel()
    assert d.is_canceled
    del token, d
    # the inner delay's continuation runs on the pool, never inside
    # cancel() (K3): give it the time to run
    assert wait_until(lambda: gc.collect() >= 0 and ref() is None,
                      timeout=5.0), "the canceled delay keeps the token"
    assert st._native._timer_count() == timers_before, "the timer is armed"


@pytest.mark.parametrize("start, end", [(0, 2**100), (2**100, 0),
                                        (-2**1100, 2**1100)],
                         ids=["late-end", "late-start", "beyond-float"])
def test_H2_get_elapsed_time_out_of_range_is_a_value_error(start, end):
    """H2: found by the input fuzzing (test_fuzz_inputs.py): an elapsed time
    beyond timedelta's range raised OverflowError ("Python int too large to
    convert to C int"); a wrong value is a ValueError naming the
    parameters."""
    for provider in (st.TimeProvider.system, st.FakeTimeProvider()):
        with pytest.raises(ValueError, match="start"):
            provider.get_elapsed_time(start, end)
