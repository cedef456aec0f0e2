"""TaskCompletionSource rules S1–S3 (SPEC §2) with reference R4.x / S4.x."""

from __future__ import annotations

import threading

import pytest

import sharptask as st
from conftest import MAIN_IDENT, make_cts, observe

TS = st.TaskStatus
TCRO = st.TaskCreationOptions
TCO = st.TaskContinuationOptions
RCA = TCRO.RUN_CONTINUATIONS_ASYNCHRONOUSLY


# ---------------------------------------------------------------------------
# S1 construction
# ---------------------------------------------------------------------------


def test_S1_task_is_same_object_each_read():
    """S1/S4.1: `.task` is the same object on every read."""
    tcs = st.TaskCompletionSource()
    assert tcs.task is tcs.task
    assert isinstance(tcs.task, st.Task)
    tcs.set_result(None)
    assert tcs.task is tcs.task


def test_S1_constructor_roundtrips_state_and_options():
    """S1/S4.1: TaskCompletionSource(state, options): WAITING_FOR_ACTIVATION,
    async_state is state, creation_options reports the options, keywords too."""
    state = {"k": 1}
    tcs = st.TaskCompletionSource(state=state, options=RCA)
    assert tcs.task.status == TS.WAITING_FOR_ACTIVATION
    assert tcs.task.async_state is state
    assert tcs.task.creation_options == RCA
    tcs2 = st.TaskCompletionSource(state)
    assert tcs2.task.async_state is state
    assert tcs2.task.creation_options == TCRO.NONE
    tcs.set_result(None)
    tcs2.set_result(None)


def test_S1_attached_to_parent_allowed():
    """S1/R4.1: ATTACHED_TO_PARENT is an allowed TCS option."""
    tcs = st.TaskCompletionSource(None, TCRO.ATTACHED_TO_PARENT)
    assert tcs.task.creation_options & TCRO.ATTACHED_TO_PARENT
    tcs.set_result(None)


@pytest.mark.parametrize(
    "options",
    [TCRO.LONG_RUNNING, TCRO.PREFER_FAIRNESS, TCRO.DENY_CHILD_ATTACH, TCRO.HIDE_SCHEDULER],
)
def test_S1_invalid_options_raise_value_error(options):
    """S1/R4.1: a TCS accepts only ATTACHED_TO_PARENT and
    RUN_CONTINUATIONS_ASYNCHRONOUSLY; anything else raises ValueError."""
    with pytest.raises(ValueError):
        st.TaskCompletionSource(None, options)


# ---------------------------------------------------------------------------
# S2 set / try_set
# ---------------------------------------------------------------------------


def test_S2_set_result():
    """S2/R4.6: set_result → RAN_TO_COMPLETION with that value."""
    tcs = st.TaskCompletionSource()
    v = object()
    assert tcs.set_result(v) is None
    assert tcs.task.status == TS.RAN_TO_COMPLETION
    assert tcs.task.result is v


def test_S2_set_exception_single():
    """S2/S4.4: set_exception(e) → FAULTED with inner_exceptions == (e,)."""
    tcs = st.TaskCompletionSource()
    e = ValueError("x")
    tcs.set_exception(e)
    assert tcs.task.status == TS.FAULTED
    assert tcs.task.exception.inner_exceptions == (e,)
    assert tcs.task.exception.inner_exceptions[0] is e


@pytest.mark.parametrize("kind", ["list", "tuple", "generator"])
def test_S2_set_exception_iterable_in_order(kind):
    """S2/S4.4/R4.4: set_exception(iterable) → FAULTED with all of them in
    order (same objects)."""
    excs = [ValueError(1), OSError(2), KeyError(3)]
    arg = {"list": list(excs), "tuple": tuple(excs), "generator": (e for e in excs)}[kind]
    tcs = st.TaskCompletionSource()
    tcs.set_exception(arg)
    inner = tcs.task.exception.inner_exceptions
    assert len(inner) == 3 and all(a is b for a, b in zip(inner, excs))


def test_S2_set_exception_takes_defensive_copy():
    """S2/R4.4: mutating the list afterwards has no effect."""
    excs = [ValueError(1)]
    tcs = st.TaskCompletionSource()
    tcs.set_exception(excs)
    excs.append(KeyError(2))
    assert len(tcs.task.exception.inner_exceptions) == 1


def test_S2_set_exception_empty_raises_value_error():
    """S2/R4.4/§0: an empty collection raises ValueError; the task stays pending."""
    tcs = st.TaskCompletionSource()
    with pytest.raises(ValueError):
        tcs.set_exception([])
    assert not tcs.task.is_completed
    tcs.set_result(None)


def test_S2_set_exception_none_element_raises():
    """S2/R4.4/§0: a None element raises (ArgumentException → ValueError, or
    TypeError); the task stays pending."""
    tcs = st.TaskCompletionSource()
    with pytest.raises((ValueError, TypeError)):
        tcs.set_exception([ValueError(), None])
    assert not tcs.task.is_completed
    tcs.set_result(None)


def test_S2_set_exception_with_oce_is_faulted_not_canceled():
    """S2/R4.4: passing an OperationCanceledError to set_exception faults."""
    tcs = st.TaskCompletionSource()
    oce = st.OperationCanceledError()
    tcs.set_exception(oce)
    assert tcs.task.status == TS.FAULTED
    assert tcs.task.exception.inner_exceptions == (oce,)


def test_S2_set_canceled():
    """S2/S4.3/R4.5: set_canceled() → CANCELED, exception None, get_result
    raises TaskCanceledError (a new one each time)."""
    tcs = st.TaskCompletionSource()
    tcs.set_canceled()
    assert tcs.task.status == TS.CANCELED
    assert tcs.task.exception is None
    got = []
    for _ in range(2):
        with pytest.raises(st.TaskCanceledError) as ei:
            tcs.task.get_awaiter().get_result()
        got.append(ei.value)
    assert got[0] is not got[1]


def test_S2_set_canceled_with_token_records_it():
    """S2/S4.3/R4.5: set_canceled(token) with an uncanceled token → CANCELED
    and the TaskCanceledError carries that token."""
    cts = make_cts()
    tcs = st.TaskCompletionSource()
    tcs.set_canceled(cts.token)
    assert tcs.task.is_canceled
    with pytest.raises(st.TaskCanceledError) as ei:
        tcs.task.get_awaiter().get_result()
    assert ei.value.cancellation_token == cts.token


def _complete(tcs, how):
    if how == "result":
        tcs.set_result(1)
    elif how == "exception":
        tcs.set_exception(ValueError("first"))
    elif how == "exceptions":
        tcs.set_exception([ValueError("first")])
    elif how == "canceled":
        tcs.set_canceled()
    elif how == "try_result":
        assert tcs.try_set_result(1) is True
    elif how == "try_exception":
        assert tcs.try_set_exception(ValueError("first")) is True
    elif how == "try_canceled":
        assert tcs.try_set_canceled() is True
    else:  # pragma: no cover
        raise AssertionError(how)


WAYS = ["result", "exception", "exceptions", "canceled", "try_result", "try_exception", "try_canceled"]


@pytest.mark.parametrize("how", WAYS)
def test_S2_completed_tcs_fails_to_complete_again(how):
    """S2/S4.2/R4.2: after any successful set/try_set, every set_* raises
    InvalidOperationError and every try_* returns False, without changing the
    state, result or exceptions."""
    tcs = st.TaskCompletionSource()
    _complete(tcs, how)
    t = tcs.task
    status = t.status
    before = t.exception.inner_exceptions if t.is_faulted else None
    result_before = t.result if t.is_completed_successfully else None

    with pytest.raises(st.InvalidOperationError):
        tcs.set_result(2)
    with pytest.raises(st.InvalidOperationError):
        tcs.set_exception(KeyError("late"))
    with pytest.raises(st.InvalidOperationError):
        tcs.set_exception([KeyError("late")])
    with pytest.raises(st.InvalidOperationError):
        tcs.set_canceled()
    assert tcs.try_set_result(2) is False
    assert tcs.try_set_exception(KeyError("late")) is False
    assert tcs.try_set_exception([KeyError("late")]) is False
    assert tcs.try_set_canceled() is False

    assert t.status == status
    if before is not None:
        assert t.exception.inner_exceptions == before
    if status == TS.RAN_TO_COMPLETION:
        assert t.result == result_before


def test_S2_invalid_operation_error_is_runtime_error():
    """S2/§0: the 'already completed' error is an InvalidOperationError, a
    RuntimeError."""
    tcs = st.TaskCompletionSource()
    tcs.set_result(None)
    with pytest.raises(RuntimeError):
        tcs.set_result(None)


def test_S2_try_forms_return_true_when_they_win():
    """S2: try_set_result/try_set_exception/try_set_canceled return True when
    they complete the task."""
    a, b, c = st.TaskCompletionSource(), st.TaskCompletionSource(), st.TaskCompletionSource()
    assert a.try_set_result(5) is True and a.task.result == 5
    e = ValueError()
    assert b.try_set_exception(e) is True and b.task.exception.inner_exceptions == (e,)
    assert c.try_set_canceled() is True and c.task.is_canceled


def test_S2_set_from_another_thread_completes_for_every_reader():
    """S2/R4.3: once a set_* call returned, is_completed is True everywhere."""
    tcs = st.TaskCompletionSource()
    done = threading.Event()

    def setter():
        tcs.set_result(9)
        done.set()

    th = threading.Thread(target=setter)
    th.start()
    assert done.wait(10)
    assert tcs.task.is_completed and tcs.task.result == 9
    th.join()


def _race_once(n_threads, barrier, tcs, outcomes, mode):
    """Each thread tries to complete tcs once; records its outcome."""

    def body(i):
        kind = i % 3
        barrier.wait()
        try:
            if mode == "try":
                if kind == 0:
                    won = tcs.try_set_result(i)
                elif kind == 1:
                    won = tcs.try_set_exception(ValueError(i))
                else:
                    won = tcs.try_set_canceled()
            else:
                try:
                    if kind == 0:
                        tcs.set_result(i)
                    elif kind == 1:
                        tcs.set_exception(ValueError(i))
                    else:
                        tcs.set_canceled()
                    won = True
                except st.InvalidOperationError:
                    won = False
            # R4.3: after any set/try_set returned, the task is completed.
            outcomes[i] = (won, kind, tcs.task.is_completed)
        except BaseException as e:  # noqa: BLE001
            outcomes[i] = e

    return body


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["try", "set"])
def test_S2_racing_setters_exactly_one_winner(mode):
    """S2/R4.2/R4.3: of many threads racing set_result / set_exception /
    set_canceled (or the try_ forms), exactly one wins, every time; the final
    state is the winner's; every caller sees the task completed on return."""
    n_threads = 8
    iterations = 300
    barrier = threading.Barrier(n_threads)
    tcs_box = [None]
    outcomes = [None] * n_threads
    round_start = threading.Barrier(n_threads + 1)
    round_end = threading.Barrier(n_threads + 1)
    stop = [False]

    def worker(i):
        while True:
            round_start.wait()
            if stop[0]:
                return
            _race_once(n_threads, barrier, tcs_box[0], outcomes, mode)(i)
            round_end.wait()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_threads)]
    for th in threads:
        th.start()
    failures = []
    try:
        for it in range(iterations):
            tcs = st.TaskCompletionSource()
            tcs_box[0] = tcs
            for i in range(n_threads):
                outcomes[i] = None
            round_start.wait(timeout=30)
            round_end.wait(timeout=30)
            errs = [o for o in outcomes if isinstance(o, BaseException) or o is None]
            if errs:
                failures.append((it, "error", errs))
                observe(tcs.task)
                continue
            winners = [(i, o) for i, o in enumerate(outcomes) if o[0]]
            if not all(o[2] for o in outcomes):
                failures.append((it, "not completed after return", outcomes[:]))
            if len(winners) != 1:
                failures.append((it, "winners", winners))
                observe(tcs.task)
                continue
            wi, (_, kind, _) = winners[0]
            t = tcs.task
            if kind == 0:
                ok = t.status == TS.RAN_TO_COMPLETION and t.result == wi
            elif kind == 1:
                ok = t.status == TS.FAULTED and t.exception.inner_exceptions[0].args == (wi,)
            else:
                ok = t.status == TS.CANCELED
            if not ok:
                failures.append((it, "state", wi, kind, t.status))
            observe(t)
            if len(failures) > 5:
                break
    finally:
        stop[0] = True
        round_start.wait(timeout=30)
        for th in threads:
            th.join(10)
    assert not failures, failures[:5]


# ---------------------------------------------------------------------------
# S3 RUN_CONTINUATIONS_ASYNCHRONOUSLY
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["result", "exception", "canceled"])
def test_S3_rca_no_continuation_runs_inside_set(how):
    """S3/R3.3: with RUN_CONTINUATIONS_ASYNCHRONOUSLY no continuation — an
    awaiting async method, an EXECUTE_SYNCHRONOUSLY continue_with, an
    awaiter.on_completed action — runs inside set_*."""
    inside = threading.Event()
    log = []
    lock = threading.Lock()

    def note(kind):
        with lock:
            log.append((kind, threading.get_ident(), inside.is_set()))

    tcs = st.TaskCompletionSource(None, RCA)

    @st.async_method
    async def m():
        try:
            await tcs.task
        except BaseException:  # noqa: BLE001
            pass
        note("await")

    mt = m()
    c = tcs.task.continue_with(lambda a: note("es"), options=TCO.EXECUTE_SYNCHRONOUSLY)
    oc_done = threading.Event()
    tcs.task.get_awaiter().on_completed(lambda: (note("oc"), oc_done.set()))

    inside.set()
    if how == "result":
        tcs.set_result(1)
    elif how == "exception":
        tcs.set_exception(ValueError("x"))
    else:
        tcs.set_canceled()
    ran_inside = [k for k, ident, ins in list(log) if ident == MAIN_IDENT]
    inside.clear()

    assert ran_inside == [], f"ran inside set_*: {ran_inside}"
    st.Task.wait_all([mt, c], timeout=10)
    assert oc_done.wait(10)
    assert sorted(k for k, _, _ in log) == ["await", "es", "oc"]
    assert all(ident != MAIN_IDENT for _, ident, _ in log)
    if how == "exception":
        observe(tcs.task)


def test_S3_without_rca_await_continuation_runs_inside_set():
    """S3/R4.8 (control for the test above): without the option, a single
    awaiting method resumes inside set_result."""
    tcs = st.TaskCompletionSource()
    log = []

    @st.async_method
    async def m():
        await tcs.task
        log.append(threading.get_ident())

    m()
    tcs.set_result(None)
    assert log == [MAIN_IDENT]


@pytest.mark.parametrize("rca", [False, True], ids=["no-rca", "rca"])
@pytest.mark.parametrize("via", ["direct", "unwrap", "when_all", "when_any"])
def test_S3_rca_also_makes_unwrap_when_all_when_any_propagation_async(via, rca):
    """S3/R3.3/S3.5 (Task/RunContinuationsAsynchronouslyTests.cs): an
    EXECUTE_SYNCHRONOUSLY continuation registered on tcs.task, on an unwrap()
    of it, on when_all(it) or on when_any(it) runs on the thread calling
    set_result (inside it) iff the TCS has no RUN_CONTINUATIONS_ASYNCHRONOUSLY;
    with it, even the internal propagation is asynchronous, so no user code
    runs inside set_result."""
    tcs = st.TaskCompletionSource(None, RCA if rca else TCRO.NONE)
    target = {
        "direct": lambda: tcs.task,
        "unwrap": lambda: tcs.task.unwrap(),
        "when_all": lambda: st.Task.when_all(tcs.task),
        "when_any": lambda: st.Task.when_any(tcs.task),
    }[via]()
    where = []
    c = target.continue_with(lambda a: where.append(threading.get_ident()), options=TCO.EXECUTE_SYNCHRONOUSLY)
    setter = {}

    def complete():
        setter["ident"] = threading.get_ident()
        tcs.set_result(st.Task.completed_task if via == "unwrap" else 1)
        setter["inside"] = list(where)

    th = threading.Thread(target=complete)
    th.start()
    th.join(10)
    c.wait(10)
    assert len(where) == 1
    if rca:
        assert setter["inside"] == [], f"continuation on {via} ran inside set_result despite RCA"
        assert where[0] != setter["ident"]
    else:
        assert setter["inside"] == [setter["ident"]]
