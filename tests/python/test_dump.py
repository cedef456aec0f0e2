"""dump_async() / print_async_dump(): SPEC D1 (like dotnet-dump's
``dumpasync``): every pending async method with its await chain — what each
state machine awaits, where it is suspended, on which context it resumes;
completed methods drop out; identical chains are coalesced with a count.

The dump is process-wide, so each test uses method names of its own and
looks only at the lines that mention them.
"""

from __future__ import annotations

import re
import sys
import threading

import sharptask as st
from conftest import join_ok, start_thread


def lines_with(text, needle):
    return [line for line in text.splitlines() if needle in line]


def chain_blocks(text):
    """Split the dump into blocks: each starts at a line that is a count
    marker ("N x") and holds the lines under it."""
    blocks, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\s*x\s*$", line)
        if m:
            cur = [int(m.group(1)), []]
            blocks.append(cur)
        elif cur is not None and line.strip():
            cur[1].append(line)
    return blocks


def block_for(text, needle):
    found = [b for b in chain_blocks(text) if any(needle in l for l in b[1])]
    assert found, f"no chain mentions {needle!r}:\n{text}"
    return found


def here():
    """The caller's line number (to know where a method suspends)."""
    return sys._getframe(1).f_lineno


class DumpService:
    """Three levels of async methods awaiting one pending request."""

    lines = {}

    def __init__(self, request):
        self.request = request

    @st.async_method
    async def d1_leaf(self):
        DumpService.lines["leaf"] = here() + 1
        return await self.request.task

    @st.async_method
    async def d1_middle(self):
        DumpService.lines["middle"] = here() + 1
        return await self.d1_leaf()

    @st.async_method
    async def d1_top(self):
        DumpService.lines["top"] = here() + 1
        return await self.d1_middle()


def test_D1_pending_methods_appear_with_their_await_chain():
    """D1: a pending chain top → middle → leaf appears, outermost first, each
    by its __qualname__, each with what it awaits and where it is suspended
    (file:line of the await)."""
    request = st.TaskCompletionSource()
    svc = DumpService(request)
    t = svc.d1_top()
    try:
        text = str(st.dump_async())
        [block] = block_for(text, "DumpService.d1_top")
        frames = block[1]
        order = [i for name in ("d1_top", "d1_middle", "d1_leaf")
                 for i, line in enumerate(frames) if f"DumpService.{name}" in line]
        assert order == sorted(order) and len(order) == 3, text
        for name, key in (("d1_top", "top"), ("d1_middle", "middle"), ("d1_leaf", "leaf")):
            [line] = [l for l in frames if f"DumpService.{name}" in l]
            assert f"test_dump.py:{DumpService.lines[key]}" in line, line
            assert "awaits" in line, line
        # the leaf awaits the pending request's Task
        [leaf] = [l for l in frames if "DumpService.d1_leaf" in l]
        assert "Task" in leaf and "WAITING_FOR_ACTIVATION" in leaf
    finally:
        request.set_result(1)
    assert t.result == 1


def test_D1_completed_methods_drop_out():
    """D1: once the chain completes, none of its methods is in the dump."""
    request = st.TaskCompletionSource()
    svc = DumpService(request)
    t = svc.d1_top()
    assert "DumpService.d1_leaf" in str(st.dump_async())
    request.set_result(2)
    assert t.result == 2
    text = str(st.dump_async())
    for name in ("d1_top", "d1_middle", "d1_leaf"):
        assert f"DumpService.{name}" not in text, text


def test_D1_partially_completed_chain_shows_only_what_is_pending():
    """D1: a method that already completed drops out while what awaits it
    further is still shown."""
    first = st.TaskCompletionSource()
    second = st.TaskCompletionSource()

    @st.async_method
    async def d1_inner_done():
        return await first.task

    @st.async_method
    async def d1_outer_pending():
        await d1_inner_done()
        return await second.task

    t = d1_outer_pending()
    first.set_result(None)  # inner completes; outer now awaits `second`
    try:
        text = str(st.dump_async())
        assert "d1_outer_pending" in text
        assert "d1_inner_done" not in text
    finally:
        second.set_result(3)
    assert t.result == 3


def test_D1_identical_chains_are_coalesced_with_a_count():
    """D1: N methods suspended in the same chain at the same points are
    shown once with the count N; a different suspension point is a
    different chain."""
    request = st.TaskCompletionSource()
    other = st.TaskCompletionSource()

    @st.async_method
    async def d1_coalesce(wait_other):
        if wait_other:
            await other.task
        return await request.task

    tasks = [d1_coalesce(False) for _ in range(4)] + [d1_coalesce(True) for _ in range(2)]
    try:
        text = str(st.dump_async())
        blocks = block_for(text, "d1_coalesce")
        counts = sorted(n for n, _ in blocks)
        assert counts == [2, 4], text
        dump = st.dump_async()
        mine = [(n, f) for n, f in dump.chains if any("d1_coalesce" in x for x in f)]
        assert sorted(n for n, _ in mine) == [2, 4]
    finally:
        request.set_result(None)
        other.set_result(None)
    st.Task.when_all(tasks).wait(10)
    assert "d1_coalesce" not in str(st.dump_async())


def test_D1_context_the_method_resumes_on_is_shown():
    """D1: a method suspended on a SingleThreadSynchronizationContext says it
    resumes there; one that awaited with configure_await(False) names no
    context."""
    gate = st.TaskCompletionSource()
    ready = threading.Event()
    ctx = st.SingleThreadSynchronizationContext()

    @st.async_method
    async def d1_on_context():
        return await gate.task

    @st.async_method
    async def d1_context_free():
        return await gate.task.configure_await(False)

    free = d1_context_free()

    def pump():
        async def d1_main():
            t = d1_on_context()
            ready.set()
            return await t
        return ctx.run(d1_main)

    th = start_thread(pump)
    assert ready.wait(10)
    try:
        text = str(st.dump_async())
        [on_ctx] = lines_with(text, "d1_on_context")
        assert "SingleThreadSynchronizationContext" in on_ctx, on_ctx
        [main_line] = lines_with(text, "d1_main")
        assert "SingleThreadSynchronizationContext" in main_line, main_line
        [free_line] = lines_with(text, "d1_context_free")
        assert "SynchronizationContext" not in free_line, free_line
    finally:
        gate.set_result(None)
        join_ok(th)
    assert free.wait(10)


def test_D1_print_async_dump_prints_the_dump(capsys):
    """D1: print_async_dump() prints str(dump_async()) to stdout."""
    request = st.TaskCompletionSource()

    @st.async_method
    async def d1_printed():
        return await request.task

    t = d1_printed()
    try:
        expected = lines_with(str(st.dump_async()), "d1_printed")
        st.print_async_dump()
        out = capsys.readouterr().out
        assert lines_with(out, "d1_printed") == expected
        assert len(expected) == 1
    finally:
        request.set_result(None)
    assert t.wait(10)


def test_D1_dump_is_an_object_whose_str_is_the_dump():
    """D1: dump_async() returns an object (AsyncDump) whose str() is the
    text; a process with nothing of ours pending does not mention it."""
    d = st.dump_async()
    assert isinstance(d, st.AsyncDump)
    assert isinstance(str(d), str)
    assert "d1_never_started" not in str(d)
