"""Issue 10 (the binding as layers): the task layer no longer knows the
continuation nodes that the files above it put on a task; module.c
registers their kinds (task_register_node_kind).  These tests check,
through the garbage collector, that each registered kind is still seen:
a cycle through a node of that kind is collected (the GC visits what
the node holds).  Without the registration the cycle leaks and the weak
references below stay alive.  (when_all/when_any cores: main's
test_hardening_gc.py, issue 9 H3.)
"""
from __future__ import annotations

import gc
import weakref

import pytest

import sharptask as st


def _collect():
    for _ in range(3):
        gc.collect()


@pytest.mark.timeout(30)
def test_issue10_awaiter_node_kind_cycle_is_collected():
    """Issue 10: task -> on_completed node -> callback -> source -> task
    is a cycle the GC breaks (the awaiter's node kind visits the
    callback)."""
    def make():
        tcs = st.TaskCompletionSource()
        task = tcs.task
        task.get_awaiter().on_completed(lambda: tcs)  # closes over tcs
        return weakref.ref(task)

    ref = make()
    _collect()
    assert ref() is None


@pytest.mark.timeout(30)
def test_issue10_box_node_kind_cycle_is_collected():
    """Issue 10: a suspended async method awaiting a task that its own
    frame keeps alive is a cycle through the box's registration (the
    builder's node kind, registered by module.c)."""
    def make():
        tcs = st.TaskCompletionSource()

        @st.async_method
        async def body():
            await tcs.task  # the frame holds tcs, tcs holds the task

        box = body()
        assert not box.is_completed
        return weakref.ref(box), weakref.ref(tcs.task)

    ref_box, ref_t = make()
    _collect()
    assert ref_t() is None
    assert ref_box() is None
