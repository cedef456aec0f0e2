"""Issue 9 (hardening) after the merge of its branches: what the item
owners left and what only shows with all of them together (SPEC H2-H5).

- the deadlock detector's wake-up racing a completion (the race hard-args
  reported; the core half is the C test task_remove_waiter_woken_early);
- items 2 / 19 (H4): deep chains through the types that had no trashcan;
- hard-args' leftover: the pool's lifecycle hooks are not reachable from
  user code;
- hard-pool's leftover (item 10, H3): wait_async(time_provider=) leaves
  nothing on the source when the timeout wins.

Crash-prone scenarios run in a child process with a timeout, so that a
crash or a hang fails the test instead of taking pytest down.
"""

from __future__ import annotations

import gc
import pathlib
import random
import re
import textwrap
import threading
import weakref

import pytest

import sharptask as st
from conftest import join_ok, run_script, start_thread, wait_until


def _run_ok(body: str, timeout: float = 120.0):
    r = run_script(textwrap.dedent(body), timeout=timeout)
    assert r.returncode == 0 and "ok" in r.stdout, (
        f"exit {r.returncode}\nstdout: {r.stdout[-2000:]}\n"
        f"stderr: {r.stderr[-4000:]}")
    return r


# ---------------------------------------------------------------------------
# the detector's wake-up racing a completion
# ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_issue9_C6_detector_wakeup_racing_completion_stress():
    """Issue 9 (hard-args' open race, C6): a thread pumping a
    SingleThreadSynchronizationContext blocks on a task; one thread closes
    a cycle through the context (so the detector sets the waiter's event)
    while another completes the task, in many rounds at random offsets.
    Each wait ends with the result or a DeadlockError, never a hang or a
    crash.  (Every completion
    publishes its status and signals its waiters within one GIL hold, so
    from Python the waiter cannot free its node early; the core's wait for
    the completer's own signal is checked by the C test
    task_remove_waiter_woken_early, which failed before the fix.)"""
    prev = st.set_deadlock_detection("raise")
    rng = random.Random(9)
    outcomes = {"ok": 0, "deadlock": 0}
    try:
        for i in range(150):
            ctx = st.SingleThreadSynchronizationContext()
            tcs = st.TaskCompletionSource()
            blocked = threading.Event()
            go = threading.Barrier(2)
            out = []
            d1 = rng.random() * 0.0005
            d2 = rng.random() * 0.0005

            def body(tcs=tcs, blocked=blocked, out=out):
                blocked.set()
                try:
                    out.append(("ok", tcs.task.wait()))
                except st.DeadlockError:
                    out.append(("deadlock", None))

            def closer(tcs=tcs, ctx=ctx, blocked=blocked, go=go, d=d1):
                blocked.wait(10)
                go.wait(10)
                st.Task.delay(d).wait() if d > 0.0004 else None
                st._native._completed_by(tcs.task, ctx)

            def completer(tcs=tcs, blocked=blocked, go=go, d=d2, i=i):
                blocked.wait(10)
                go.wait(10)
                st.Task.delay(d).wait() if d > 0.0004 else None
                tcs.set_result(i)

            a = start_thread(ctx.run, body)
            b = start_thread(closer)
            c = start_thread(completer)
            for th in (a, b, c):
                join_ok(th, 20)
            assert len(out) == 1, out
            outcomes[out[0][0]] += 1
            assert tcs.task.result == i
            if out[0][0] == "ok":
                assert out[0][1] is True
    finally:
        st.set_deadlock_detection(prev)
    assert sum(outcomes.values()) == 150


# ---------------------------------------------------------------------------
# item 10 (hard-pool's leftover): wait_async(time_provider=) on the source
# ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("winner", ["timeout", "token"])
def test_issue9_item10_H3_wait_async_time_provider_leaves_nothing_on_source(
        winner):
    """Issue 9 item 10 (H3), the time_provider= form (_timers.wait_async):
    when the timeout (on the provider's clock) or the token wins, the
    continuation on the still-pending source goes with it, so a
    long-pending source keeps none of 2,000 finished waits alive (before:
    each wait's promise, timer and closure stayed on the source until it
    completed)."""
    source = st.TaskCompletionSource()
    fake = st.FakeTimeProvider()
    waits = []
    for _ in range(2_000):
        cts = st.CancellationTokenSource()
        w = source.task.wait_async(5, cts.token, time_provider=fake)
        waits.append(w)
        if winner == "token":
            cts.cancel()
        del w, cts
    if winner == "timeout":
        fake.advance(10)
    for w in waits:
        assert wait_until(lambda: w.is_completed, 10)
        if winner == "timeout":
            assert isinstance(w.exception.inner_exceptions[0], TimeoutError)
        else:
            assert w.is_canceled
    refs = [weakref.ref(w) for w in waits]
    del waits, w

    def alive():
        gc.collect()
        return sum(r() is not None for r in refs)
    assert wait_until(lambda: alive() == 0, 10), \
        f"{alive()} of {len(refs)} waits still alive"
    # the source still works afterwards, and completes no stale wait
    w = source.task.wait_async(5, time_provider=fake)
    source.set_result(7)
    assert w.result == 7


# ---------------------------------------------------------------------------
# item 23 (hard-args' leftover): the pool's lifecycle hooks
# ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_issue9_item23_lifecycle_hooks_not_reachable_from_user_code():
    """Issue 9 item 23 (H2, P6): the pool's atexit shutdown and fork-child
    reset are no module attributes any more (before: _native._shutdown()
    from user code stopped the pool and the timer for good, and every
    later Task.run raised).  Taking them again is a RuntimeError that
    changes nothing; the library keeps working, and the exit still stops
    the pool quietly with work pending."""
    r = _run_ok("""
        import sharptask as st
        from sharptask import _native, _context
        for name in ("_shutdown", "_after_fork_child"):
            assert not hasattr(_native, name), name
        for again in (_native._take_lifecycle_hooks,
                      _context._install_lifecycle_hooks):
            try:
                again()
            except RuntimeError as e:
                assert "taken" in str(e), e
            else:
                raise AssertionError("the hooks were handed out twice")
        assert st.Task.run(lambda: 6 * 7).result == 42
        assert st.Task.delay(0.001).wait(10)
        pending = st.Task.delay(600)            # armed at exit
        blocked = st.Task.run(lambda: st.TaskCompletionSource().task.wait(
            30))                                # a pool item still waiting
        print("ok", flush=True)
    """, timeout=60)
    assert r.stderr == "", r.stderr


@pytest.mark.timeout(60)
def test_issue9_item23_lifecycle_hooks_after_fork():
    """Issue 9 item 23 (P6): with the fork-child reset no longer a module
    attribute, a forked child still gets a fresh pool and timer."""
    import os
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    _run_ok("""
        import os, sharptask as st
        assert st.Task.run(lambda: 1).result == 1   # the parent's pool
        pid = os.fork()
        if pid == 0:
            ok = st.Task.run(lambda: 2).result == 2 \\
                and st.Task.delay(0.001).wait(10)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        print("ok")
    """, timeout=50)


# ---------------------------------------------------------------------------
# items 2 / 19 (H4): the types that had no trashcan
# ---------------------------------------------------------------------------

_BINDING = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "binding"
# deallocs of types that hold no other object (nothing to chain through)
_HOLD_NOTHING = {"SyncContext_dealloc", "Yield_dealloc"}


@pytest.mark.skipif(not _BINDING.is_dir(), reason="no C sources here")
def test_issue9_items2_19_H4_every_holding_dealloc_uses_the_trashcan():
    """Issue 9 items 2 / 19 (H4): every tp_dealloc of a type that holds
    another object uses CPython's trashcan, so that dropping a chain of
    any length through it cannot overflow the C stack (before:
    SingleThreadSynchronizationContext, CancellationTokenSource, its
    token and registration, SemaphoreSlim and its waiter had none)."""
    missing = []
    for path in sorted(_BINDING.glob("*.c")):
        src = path.read_text()
        for m in re.finditer(r"^(\w+_dealloc)\(PyObject \*op\)\n\{\n(.*?)^\}",
                             src, re.M | re.S):
            name, body = m.group(1), m.group(2)
            if name in _HOLD_NOTHING:
                assert "DECREF(" not in body.replace("Py_DECREF(tp)", ""), \
                    f"{name} releases something: give it a trashcan"
                continue
            if f"Py_TRASHCAN_BEGIN(op, {name})" not in body:
                missing.append(f"{path.name}: {name}")
    assert missing == []


_CHAINS = {
    # context -> queued action -> its state: the next context
    "context": """
        prev = None
        for _ in range(N):
            c = st.SingleThreadSynchronizationContext()
            c.post(print, prev)
            prev = c
    """,
    # source -> registration -> state: the next token; every other
    # source linked to the previous token
    "cancellation": """
        CTS = st.CancellationTokenSource
        prev = CTS().token
        for i in range(N):
            c = CTS.create_linked_token_source(prev) if i % 2 else CTS()
            c.token.register(print, prev)
            prev = c.token
    """,
    # semaphore -> its waiter -> token -> source -> registration ->
    # state: the next semaphore
    "semaphore": """
        prev = None
        for _ in range(N):
            s = st.SemaphoreSlim(0)
            c = st.CancellationTokenSource()
            c.token.register(print, prev)
            s.wait_async(None, c.token)
            prev = s
    """,
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", sorted(_CHAINS))
def test_issue9_items2_19_H4_deep_chains_dropped(kind):
    """Issue 9 items 2 / 19 (H4): 300,000-deep chains through the
    contexts, the cancellation types and the semaphore are dropped (and
    collected) without overflowing the C stack, in a child process."""
    _run_ok("import gc, sharptask as st\nN = 300_000\n"
            + textwrap.dedent(_CHAINS[kind])
            + "del prev\ngc.collect()\nprint('ok')\n", timeout=200)


# ---------------------------------------------------------------------------
# the sweep (issue 9, "look for the same patterns everywhere")
# ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_issue9_sweep_C6_owned_context_held_no_false_deadlock():
    """Issue 9 sweep (C6, like item 4): a thread's record of the contexts
    it runs held borrowed pointers, so a context pushed by
    _context_owner and dropped without the pop left its address "owned";
    a new context at the same address then closed a cycle that is not
    there and a plain wait raised DeadlockError.  The record now holds
    its contexts: the wait completes.  20 rounds (before: DeadlockError
    in every round where CPython reused the address, which it did)."""
    STC = st.SingleThreadSynchronizationContext
    prev = st.set_deadlock_detection("raise")
    try:
        for _ in range(20):
            tcs = st.TaskCompletionSource()
            ready = threading.Event()
            out = []

            def body(tcs=tcs, ready=ready, out=out):
                c1 = STC()
                st._native._context_owner(c1, True)  # never popped
                del c1
                ready.set()
                try:
                    out.append(tcs.task.wait())
                except st.DeadlockError as e:
                    out.append(e)

            th = start_thread(body)
            assert ready.wait(10)
            st.Task.delay(0.02).wait()  # let it block
            c2 = STC()
            st._native._completed_by(tcs.task, c2)  # c2: nobody runs it
            st.Task.delay(0.02).wait()  # a false report would come now
            tcs.set_result(1)
            join_ok(th, 10)
            assert out == [True], out
    finally:
        st.set_deadlock_detection(prev)


def test_issue9_sweep_T11_task_resurrected_by_handler_stays_tracked():
    """Issue 9 sweep (T11): an unobserved-exception handler that keeps the
    task resurrects it from its finalizer; the task must still be tracked
    by the GC (before: dealloc untracked it first, so a release build
    left it invisible to the GC for good, and the debug interpreter
    aborted in PyObject_CallFinalizerFromDealloc).  Dropped again, it is
    freed without a second report."""
    kept = []

    def handler(args):
        kept.append(args.task)
        args.set_observed()

    TS = st.TaskScheduler
    TS.add_unobserved_task_exception_handler(handler)
    try:
        tcs = st.TaskCompletionSource()
        tcs.set_exception(ValueError("never observed"))
        ref = weakref.ref(tcs.task)
        del tcs
        gc.collect()
        assert len(kept) == 1
        assert kept[0] is ref()
        assert gc.is_tracked(kept[0])
        assert kept[0].is_faulted
    finally:
        TS.remove_unobserved_task_exception_handler(handler)
    kept.clear()
    gc.collect()
    assert ref() is None


class _ForeignToken:
    """A token object that is not a native CancellationToken (K3)."""

    def __init__(self):
        self.cts = st.CancellationTokenSource()

    is_cancellation_requested = property(
        lambda self: self.cts.is_cancellation_requested)
    can_be_canceled = True

    def register(self, cb):
        return self.cts.token.register(cb)


def test_issue9_sweep_item10_H3_delay_with_foreign_token_disarms_its_timer():
    """Issue 9 sweep (item 10's pattern, H3, K3): Task.delay(600) with a
    foreign token object that fires first is canceled, and its timer goes
    with it (before: 200 canceled delays left 200 timers armed for 600 s,
    each holding its wait); a delay that runs out still completes."""
    before = st._native._timer_count()
    delays = []
    for _ in range(200):
        tok = _ForeignToken()
        t = st.Task.delay(600, cancellation_token=tok)
        tok.cts.cancel()
        delays.append(t)
    for t in delays:
        assert t.is_canceled
        with pytest.raises(st.TaskCanceledError):
            t.get_awaiter().get_result()
    assert wait_until(lambda: st._native._timer_count() <= before, 5), \
        st._native._timer_count()
    tok = _ForeignToken()
    assert st.Task.delay(0.01, cancellation_token=tok).wait(10)
    assert tok.cts._registration_count == 0
