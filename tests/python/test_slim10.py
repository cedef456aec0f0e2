"""issue 10 W9: the slim Task box.

A pending `@async_method` call costs its coroutine, its Task (the box) and
the contextvars copy it runs in.  The box lost its rare fields (token,
async_state, scheduler, original traceback) to a side block allocated on
first store, its Task id to the core's trace id, and its two intrusive
nodes share one slot (binding.h).  These tests check the sizes (a memory
property, not a timing), that the side block's fields behave as the
fields did (set, read, visited and cleared by the GC, freed), that weak
references still work, and that the shared node slot holds under many
threads (a box resumed through the pool over and over, continuations with
tokens canceled while their antecedents complete).
"""

import gc
import os
import sys
import threading
import tracemalloc
import weakref

import pytest

import sharptask as st
from sharptask._benchmarks.w9_fanout import traced_growth

#: sizeof(TaskObject) + the GC header on a 64-bit build (binding.h):
#: 104 + 16; it was 200 + 16.
BOX_BYTES = 120
#: the contextvars.Context copy a call runs in, with its GC header
CONTEXT_BYTES = sys.getsizeof(__import__("contextvars").copy_context())


def _pending_calls(count):
    """count pending @async_method calls on one source; (tasks, tcs)."""
    tcs = st.TaskCompletionSource()
    gate = tcs.task

    @st.async_method
    async def leaf(g):
        return await g

    return [leaf(gate) for _ in range(count)], tcs


@pytest.mark.skipif(sys.maxsize < 2**32, reason="64-bit layout")
def test_issue10_W9_a_pending_box_is_at_most_120_bytes():
    """issue 10 W9: sys.getsizeof of a pending async-method box (the Task
    with its GC header) is 120 bytes at most (216 before)."""
    tasks, tcs = _pending_calls(3)
    try:
        for t in tasks:
            assert not t.is_completed
            assert sys.getsizeof(t) <= BOX_BYTES, sys.getsizeof(t)
        # a plain promise and a completed task are the same object type
        assert sys.getsizeof(st.TaskCompletionSource().task) <= BOX_BYTES
    finally:
        tcs.set_result(None)


@pytest.mark.skipif(sys.maxsize < 2**32, reason="64-bit layout")
def test_issue10_W9m_traced_bytes_per_pending_call_are_coroutine_box_context():
    """issue 10 W9m: what starting a call leaves allocated while it is
    pending, measured with tracemalloc over many calls, is its coroutine,
    a box of at most 120 bytes and its context copy: nothing else (no
    side block for a call that has no token, state, scheduler or
    traceback)."""
    n = 2_000

    @st.async_method
    async def leaf(g):
        return await g

    async def bare(g):
        return await g

    tcs = st.TaskCompletionSource()
    gate = tcs.task
    coro = bare(gate)
    coro_bytes = sys.getsizeof(coro)
    coro.close()
    tasks = [None] * n
    warm = leaf(gate)  # first-call caches are not per call
    with traced_growth() as g:
        for i in range(n):
            tasks[i] = leaf(gate)
    per_call = g.bytes / n
    try:
        assert not any(t.is_completed for t in tasks)
        # + 4: one-off allocations spread over the calls (a side block
        # would be 32 more per call)
        bound = coro_bytes + BOX_BYTES + CONTEXT_BYTES + 4
        assert per_call <= bound, (per_call, coro_bytes, CONTEXT_BYTES)
    finally:
        tcs.set_result(1)
        assert st.Task.when_all(tasks + [warm]).wait(10)


def test_issue10_W9_side_block_fields_read_back():
    """issue 10 W9: async_state, the token of a canceled task and the
    scheduler of a continuation read back from the side block; a task
    with none of them reads None."""
    marker = object()
    tcs = st.TaskCompletionSource(marker)
    assert tcs.task.async_state is marker
    assert st.TaskCompletionSource().task.async_state is None

    cts = st.CancellationTokenSource()
    cts.cancel()
    canceled = st.Task.from_canceled(cts.token)
    with pytest.raises(st.OperationCanceledError) as info:
        canceled.get_awaiter().get_result()
    assert info.value.cancellation_token == cts.token

    state = object()
    seen = []
    ante = st.TaskCompletionSource()
    cont = ante.task.continue_with(lambda a, s: seen.append(s) or 5, state)
    assert cont.async_state is state
    ante.set_result(1)
    assert cont.wait(10)
    assert cont.result == 5 and seen == [state]


def _settle(task, timeout=30):
    """Waits until task completed, whatever its outcome."""
    try:
        task.wait(timeout)
    except (st.AggregateError, st.OperationCanceledError):
        pass
    assert task.is_completed


def _raise_deep():
    raise ValueError("deep")


def test_issue10_W9_faulted_traceback_survives_a_collection():
    """issue 10 W9 (D3a): the original traceback of a faulted task, kept
    in the side block, is restored at each rethrow, also after a full
    collection."""
    t = st.Task.run(_raise_deep)
    _settle(t)
    assert t.is_faulted
    gc.collect()
    names = []
    for _ in range(2):
        try:
            t.get_awaiter().get_result()
        except ValueError as exc:
            tb = exc.__traceback__
            frames = []
            while tb is not None:
                frames.append(tb.tb_frame.f_code.co_name)
                tb = tb.tb_next
            names.append(frames)
        gc.collect()
    assert all("_raise_deep" in f for f in names), names
    assert names[0] == names[1], names


def test_issue10_W9_side_block_fields_in_cycles_are_collected():
    """issue 10 W9 (H3): an async_state, a token and a scheduler that
    refer back to their task (a cycle through the side block) do not
    keep it alive: the collector sees and clears them."""

    class Holder:
        pass

    refs = []
    for _ in range(50):
        h = Holder()
        tcs = st.TaskCompletionSource(h)
        h.task = tcs.task  # task -> side block -> h -> task
        refs.append(weakref.ref(tcs.task))
        refs.append(weakref.ref(h))
        del h, tcs

        sched = _Scheduler()
        ante = st.TaskCompletionSource()
        state = Holder()
        cont = ante.task.continue_with(lambda a, s: None, state,
                                       scheduler=sched)
        state.cont = cont  # cont -> side block -> state -> cont
        sched.keep = cont
        refs.append(weakref.ref(cont))
        refs.append(weakref.ref(sched))
        del ante, state, cont, sched
    gc.collect()
    gc.collect()
    assert [r for r in refs if r() is not None] == []


class _Scheduler(st.TaskScheduler):
    """A scheduler that runs what it is given at once."""

    def queue_task(self, task):
        self.try_execute_task(task)

    def try_execute_task_inline(self, task, task_was_previously_queued):
        return self.try_execute_task(task)

    def get_scheduled_tasks(self):
        return []


def test_issue10_W9_side_block_does_not_leak_under_repetition():
    """issue 10 W9: tasks that allocate the side block (state, token,
    scheduler, traceback) and are dropped leave no memory behind: the
    traced memory after many rounds is what it was after the first."""
    sched = _Scheduler()

    def one_round():
        # a source per round: its registrations go with it (one kept
        # across the rounds keeps a table that grows under ASan)
        cts = st.CancellationTokenSource()
        for i in range(200):
            tcs = st.TaskCompletionSource(i)
            tcs.set_exception(ValueError(i))
            tcs.task.exception  # observed
            c = tcs.task.continue_with(lambda a, s: s, i, scheduler=sched,
                                       cancellation_token=cts.token)
            c.wait(10)
            st.Task.run(lambda: None, cancellation_token=cts.token).wait(10)
        gc.collect()

    def live_tasks():
        return sum(1 for o in gc.get_objects() if isinstance(o, st.Task))

    one_round()
    tasks0 = live_tasks()
    tracemalloc.start()
    try:
        one_round()
        m0 = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            one_round()
        growth = tracemalloc.get_traced_memory()[0] - m0
    finally:
        tracemalloc.stop()
    assert live_tasks() <= tasks0 + 5, (tasks0, live_tasks())
    # 1,000 tasks with side blocks: a leak of one block each is 40 KB.
    # Under tools/check-py-asan.sh (ASAN_OPTIONS set) about 60 KB of
    # small blocks made by continue_with with a token stay traced, the
    # same before this change: the memory bound is for the plain run
    # (the refleak run, make check-refleaks, counts blocks too).
    if "ASAN_OPTIONS" not in os.environ:
        assert growth < 16_000, growth


def test_issue10_W9_weak_references_to_tasks_still_work():
    """issue 10 W9: weak references to a pending box, a promise and a
    completed task work and die with the task."""
    tasks, tcs = _pending_calls(2)
    box_ref = weakref.ref(tasks[0])
    promise_ref = weakref.ref(tcs.task)
    done = st.TaskCompletionSource()
    done.set_result(object())
    done_ref = weakref.ref(done.task)
    assert box_ref() is tasks[0]
    assert promise_ref() is tcs.task
    tcs.set_result(1)
    assert st.Task.when_all(tasks).wait(10)
    del tasks, tcs, done
    gc.collect()
    assert box_ref() is None
    assert promise_ref() is None
    assert done_ref() is None


def test_issue10_W9_task_id_is_stable_and_unique():
    """issue 10 W9: the Task id, now the core's trace id, is given on
    first read, stays the same and differs between tasks."""
    tasks = [st.TaskCompletionSource().task for _ in range(100)]
    ids = [t.id for t in tasks]
    assert all(i > 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert [t.id for t in tasks] == ids


@pytest.mark.timeout(60)
def test_issue10_W9_stress_box_node_shared_by_await_and_queue():
    """issue 10 W9 (stress): a box's one node slot serves its awaits
    (registered) and its resumptions (queued on the pool) in turn: many
    methods each await sources completed from other threads, many times,
    so that every resumption is queued to the pool and re-registers from
    a worker."""
    rounds, methods = 200, 8
    sources = [[st.TaskCompletionSource() for _ in range(rounds)]
               for _ in range(methods)]

    @st.async_method
    async def worker(row):
        total = 0
        for tcs in row:
            total += await tcs.task
        return total

    tasks = [worker(row) for row in sources]

    def complete(rows):
        for r in range(rounds):
            for row in rows:
                row[r].set_result(1)

    threads = [threading.Thread(target=complete, args=(sources[i::2],))
               for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert st.Task.when_all(tasks).wait(30)
    assert [t.result for t in tasks] == [rounds] * methods


@pytest.mark.timeout(60)
def test_issue10_W9_stress_continuation_canceled_while_antecedent_completes():
    """issue 10 W9 (stress, R3.10): continuations with tokens, whose node
    is first registered on the antecedent and then queued, are canceled
    from one thread while their antecedents complete on another: each
    ends exactly once, canceled or run, and nothing crashes."""
    n = 2_000
    antes = [st.TaskCompletionSource() for _ in range(n)]
    sources = [st.CancellationTokenSource() for _ in range(n)]
    ran = []
    conts = [a.task.continue_with(lambda t, s: ran.append(s), i,
                                  cancellation_token=c.token)
             for i, (a, c) in enumerate(zip(antes, sources))]
    barrier = threading.Barrier(2)

    def complete():
        barrier.wait()
        for a in antes:
            a.set_result(1)

    def cancel():
        barrier.wait()
        for c in sources:
            c.cancel()

    threads = [threading.Thread(target=complete),
               threading.Thread(target=cancel)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    for c in conts:
        _settle(c)
    done = [c for c in conts if c.is_completed_successfully]
    canceled = [c for c in conts if c.is_canceled]
    assert len(done) + len(canceled) == n
    assert len(done) == len(ran)


def test_issue10_W9_pending_boxes_found_without_a_list_newest_first():
    """issue 10 W9 (D1): with no list through the boxes, dump_async's
    source (_pending_boxes) still lists every pending async method once,
    newest first, with what it awaits, and none that completed; also
    after a collection moved them to an older generation."""
    from sharptask import _native

    gates = [st.TaskCompletionSource() for _ in range(5)]

    @st.async_method
    async def slim10_pending(g):
        return await g

    tasks = [slim10_pending(g.task) for g in gates]
    for collect in (False, True):
        if collect:
            gc.collect()
        rows = [r for r in _native._pending_boxes()
                if any(r[0] is t for t in tasks)]
        assert [r[0] for r in rows] == tasks[::-1]
        assert [r[2] for r in rows] == [g.task for g in gates][::-1]
        assert all(r[4] is False for r in rows)
    gates[2].set_result(1)
    rows = [r for r in _native._pending_boxes()
            if any(r[0] is t for t in tasks)]
    assert [r[0] for r in rows] == [tasks[i] for i in (4, 3, 1, 0)]
    assert "slim10_pending" in str(st.dump_async())
    for g in gates:
        g.try_set_result(1)
    assert st.Task.when_all(tasks).wait(10)
    assert not [r for r in _native._pending_boxes()
                if any(r[0] is t for t in tasks)]


class _CountingContext(st.SynchronizationContext):
    """A context whose post counts, then runs the callback on the pool
    (the base class's post)."""

    def __init__(self):
        super().__init__()
        self.posts = 0

    def post(self, callback, state=None):
        self.posts += 1
        super().post(callback, state)


@pytest.mark.timeout(60)
def test_issue10_W9_target_lives_in_the_side_block_beside_a_token():
    """issue 10 W9: a box that has a side block (Task.run of an async def
    with a token) keeps the context it captured at an await there: the
    dump shows it, the resumption is posted to it, and repeating it
    leaves nothing behind."""
    from sharptask import _native

    def one():
        cts = st.CancellationTokenSource()
        gate = st.TaskCompletionSource()
        ctx = _CountingContext()

        async def body():
            st.SynchronizationContext.set_synchronization_context(ctx)
            try:
                return await gate.task
            finally:
                st.SynchronizationContext.set_synchronization_context(None)

        t = st.Task.run(body, cancellation_token=cts.token)
        for _ in range(500):
            rows = [r for r in _native._pending_boxes() if r[0] is t]
            if rows and rows[0][2] is gate.task:
                break
            threading.Event().wait(0.01)
        assert rows and rows[0][3] is ctx, rows
        gate.set_result(7)
        _settle(t)
        assert t.result == 7
        assert ctx.posts == 1
        return weakref.ref(t), weakref.ref(ctx)

    refs = [one() for _ in range(20)]
    gc.collect()
    assert [r for pair in refs for r in pair if r() is not None] == []


def _returns_itself():
    return _returns_itself


def test_issue10_W9_fn_and_outcome_share_one_slot():
    """issue 10 W9: a task's fn (delegate, continuation fn, coroutine)
    and its outcome share one slot: the fn is seen while the task is
    pending (the dump shows a box's coroutine), the outcome once it
    completed, and handing the slot over keeps every reference count
    right (a delegate that returns itself, many times)."""
    from sharptask import _native

    gate = st.TaskCompletionSource()

    @st.async_method
    async def slim10_slot(g):
        return await g

    box = slim10_slot(gate.task)
    row = [r for r in _native._pending_boxes() if r[0] is box][0]
    assert row[1].cr_code.co_name == "slim10_slot"
    gate.set_result("outcome")
    assert box.result == "outcome"
    assert not [r for r in _native._pending_boxes() if r[0] is box]

    before = sys.getrefcount(_returns_itself)
    for _ in range(200):
        t = st.Task.run(_returns_itself)
        _settle(t)
        assert t.result is _returns_itself
        c = t.continue_with(lambda a: a.result)
        _settle(c)
        assert c.result is _returns_itself
        del t, c
    gc.collect()
    assert sys.getrefcount(_returns_itself) == before
