"""Issue 9, H3: cycles through the core's own lists are visible to the
garbage collector.

The refleak run (make check-refleaks) found both: every detected deadlock
leaked its async method, coroutine and context (C6's tests, about 33
references and 11 memory blocks each), because

- a SingleThreadSynchronizationContext's queue owned the box resumptions
  and actions posted to it without the collector seeing them, and a queued
  box holds the context it captured (context -> queue -> box -> context);
- a when_all / when_any core, shared by the nodes registered on the
  inputs' continuation lists, owned the promise without the collector
  seeing it, and the promise holds its inputs (input -> node -> core ->
  promise -> inputs).

Each test builds one such cycle, drops every outside reference and checks
that a collection frees it: a weak reference to an object only the cycle
holds must die.
"""
import gc
import weakref

import pytest

import sharptask as st


class Marker:
    """An object only the cycle refers to."""


def _collected(ref):
    for _ in range(3):
        gc.collect()
    return ref() is None


def _context_with_queued_resumption():
    """A context no thread pumps any more, with an async method's
    resumption queued on it; returns a weak reference to a local of the
    method's coroutine."""
    request = st.TaskCompletionSource()
    refs = []

    @st.async_method
    async def get_json_async():
        marker = Marker()
        refs.append(weakref.ref(marker))
        await request.task  # captures the context
        return marker

    ctx = st.SingleThreadSynchronizationContext()

    def handler():
        get_json_async()  # starts on ctx and suspends there
        return st.Task.completed_task  # the pump ends at once

    ctx.run(handler)
    request.set_result(None)  # the resumption is posted to ctx, never run
    assert ctx.pending == 1
    return refs[0]


@pytest.mark.timeout(30)
def test_issue9_H3_context_dropped_with_a_queued_box_resumption_is_collected():
    """H3 (issue 9, the C6 tests' leak): context -> queue -> box ->
    context is a cycle the collector frees."""
    ref = _context_with_queued_resumption()
    assert _collected(ref)


@pytest.mark.timeout(30)
def test_issue9_H3_context_dropped_with_a_queued_action_is_collected():
    """H3: a posted callback whose state refers to the context, never
    run: context -> queue -> action -> state -> context."""
    ctx = st.SingleThreadSynchronizationContext()
    marker = Marker()
    ref = weakref.ref(marker)
    ctx.post(lambda state: None, [ctx, marker])
    assert ctx.pending == 1
    del ctx, marker
    assert _collected(ref)


@pytest.mark.timeout(30)
def test_issue9_H3_collected_context_releases_queued_work_at_once():
    """H3: the queued items of a collected context are released, not run
    (what dealloc of a context with work queued did already)."""
    ran = []
    ctx = st.SingleThreadSynchronizationContext()
    marker = Marker()
    ref = weakref.ref(marker)
    for _ in range(100):
        ctx.post(lambda state: ran.append(state), [ctx, marker])
    del ctx, marker
    assert _collected(ref)
    assert ran == []


@pytest.mark.parametrize("combinator", ["when_all", "when_any"])
@pytest.mark.timeout(30)
def test_issue9_H3_pending_when_all_and_when_any_cycles_are_collected(
        combinator):
    """H3 (the deadlock through when_all's leak): input -> node -> core ->
    promise -> inputs is a cycle the collector frees; the marker hangs
    from a continuation of the promise."""
    tcs = st.TaskCompletionSource()
    other = st.TaskCompletionSource()
    promise = getattr(st.Task, combinator)(tcs.task, other.task)
    marker = Marker()
    ref = weakref.ref(marker)
    promise.continue_with(lambda t, m=marker: None)
    del tcs, other, promise, marker
    assert _collected(ref)


@pytest.mark.timeout(60)
def test_issue9_H3_when_all_core_visited_once_as_inputs_complete_in_any_order():
    """H3: the core's references are visited from one node only, the
    lowest still registered, whatever order the inputs complete in: a
    collection while a when_all is pending must neither free what is still
    reachable (the promise completes with every result) nor keep what is
    not.  Inputs complete in a shuffled order with collections between."""
    import random
    rng = random.Random(9)
    for round_ in range(50):
        n = rng.randint(1, 12)
        sources = [st.TaskCompletionSource() for _ in range(n)]
        promise = st.Task.when_all(*[s.task for s in sources])
        order = list(range(n))
        rng.shuffle(order)
        for k, i in enumerate(order):
            if k % 3 == 0:
                gc.collect()
            sources[i].set_result(i)
        assert promise.result == list(range(n)), round_
    # and a dropped pending one, half completed, is freed
    for _ in range(20):
        n = rng.randint(2, 12)
        sources = [st.TaskCompletionSource() for _ in range(n)]
        promise = st.Task.when_all(*[s.task for s in sources])
        marker = Marker()
        ref = weakref.ref(marker)
        promise.continue_with(lambda t, m=marker: None)
        for i in rng.sample(range(n), n // 2):
            sources[i].set_result(i)
        del sources, promise, marker
        assert _collected(ref)


@pytest.mark.timeout(30)
def test_issue9_H3_when_any_kept_alive_by_a_reachable_input_still_completes():
    """H3: the collector must see the combinator's core as held by every
    pending input's node.  One input is unreachable, the other is still
    held: a collection must not take the promise (nor the continuation on
    it) for garbage, so completing the held input completes the promise
    and runs its continuation.  (Visiting the core's references from one
    node only - the unreachable input's - made the collector clear them.)"""
    keep = st.TaskCompletionSource()
    ran = []

    def make():
        lost = st.TaskCompletionSource()  # dropped with this frame
        promise = st.Task.when_any(lost.task, keep.task)
        promise.continue_with(
            lambda t: ran.append(t.result is keep.task),
            options=st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY)

    make()
    for _ in range(3):
        gc.collect()
    keep.set_result(1)
    assert ran == [True]
