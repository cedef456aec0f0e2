"""Issue 10 (methods10): one async-method type with a mode, and the
ValueTask code split by concept.

- AsyncMethod and AsyncValueMethod are two Python classes over one C
  implementation (py_method.c): one layout, one vectorcall; the mode
  (Task, ValueTask, pooled ValueTask) decides what a call returns (SPEC A1,
  V5), for a body that completes at once, one that suspends, one that
  raises, and a callable that returns no coroutine.
- No binding .c file is over 1,500 lines (issue 10 "Done when").
"""
from __future__ import annotations

import pathlib

import pytest

import sharptask as st

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINDING = ROOT / "csrc" / "binding"

requires_sources = pytest.mark.skipif(
    not BINDING.is_dir(), reason="the C sources are not beside the tests"
)


def _modes():
    async def body(gate, fail):
        if gate is not None:
            await gate
        if fail:
            raise ValueError("boom")
        return 7

    return {
        "task": st.async_method(body),
        "value": st.async_value_method(body),
        "pooled": st.async_value_method(body, pooling=True),
    }


def _outcome(result):
    """A Task or ValueTask as ("task" | "value", its result or error)."""
    kind = "task" if isinstance(result, st.Task) else "value"
    task = result if kind == "task" else result.as_task()
    try:
        return kind, task.get_awaiter().get_result()
    except ValueError as e:
        return kind, f"ValueError({e})"


def test_issue10_item1_one_layout_for_both_method_classes():
    """Issue 10 item "one async-method type with a mode": the two classes
    share one C layout and one vectorcall (before the merge,
    AsyncValueMethod had a layout of its own)."""
    modes = _modes()
    assert st.AsyncMethod.__basicsize__ == st.AsyncValueMethod.__basicsize__
    assert (modes["task"].__vectorcalloffset__
            == modes["pooled"].__vectorcalloffset__)
    assert st.AsyncMethod.__dictoffset__ == st.AsyncValueMethod.__dictoffset__
    # still two classes: isinstance tells a Task method from a ValueTask one
    assert isinstance(modes["task"], st.AsyncMethod)
    assert not isinstance(modes["task"], st.AsyncValueMethod)
    assert isinstance(modes["pooled"], st.AsyncValueMethod)
    assert not isinstance(modes["pooled"], st.AsyncMethod)


def test_issue10_item1_mode_attributes_and_repr():
    """Issue 10 item 1 (A1, V5): pooling and repr follow the mode."""
    modes = _modes()
    assert not hasattr(modes["task"], "pooling")
    assert modes["value"].pooling is False
    assert modes["pooled"].pooling is True
    assert repr(modes["task"]).startswith("<async_method ")
    assert repr(modes["value"]).startswith("<async_value_method <")
    assert repr(modes["pooled"]).startswith(
        "<async_value_method(pooling=True) ")
    for m in modes.values():
        assert m.__func__.__name__ == "body"


@pytest.mark.parametrize("mode", ["task", "value", "pooled"])
def test_issue10_item1_each_mode_returns_its_kind(mode):
    """Issue 10 item 1 (A1, V5): a Task method returns Tasks, a ValueTask
    method ValueTasks, for a synchronous return, a suspension and a
    raise."""
    m = _modes()[mode]
    want = "task" if mode == "task" else "value"
    assert _outcome(m(None, False)) == (want, 7)
    assert _outcome(m(None, True)) == (want, "ValueError(boom)")
    tcs = st.TaskCompletionSource()
    pending = m(tcs.task, False)
    assert not pending.is_completed
    tcs.set_result(None)
    assert _outcome(pending) == (want, 7)
    tcs = st.TaskCompletionSource()
    pending = m(tcs.task, True)
    tcs.set_result(None)
    assert _outcome(pending) == (want, "ValueError(boom)")


@pytest.mark.parametrize("mode", ["task", "value", "pooled"])
def test_issue10_item1_non_coroutine_results_per_mode(mode):
    """Issue 10 item 1 (A1, V5): a callable that returns a Task passes it
    through a Task method and is wrapped by a ValueTask method; a
    ValueTask passes through a ValueTask method; anything else is a
    TypeError naming the decorator."""
    task = st.Task.from_result(3)
    m = (st.AsyncMethod if mode == "task" else st.AsyncValueMethod)(
        lambda: task, **({"pooling": True} if mode == "pooled" else {}))
    out = m()
    if mode == "task":
        assert out is task
    else:
        assert isinstance(out, st.ValueTask) and out.result == 3
        vt = st.ValueTask(5)
        assert st.AsyncValueMethod(lambda: vt)().result == 5
    bad = (st.AsyncMethod if mode == "task" else st.AsyncValueMethod)(
        lambda: 42)
    name = "@async_method" if mode == "task" else "@async_value_method"
    with pytest.raises(TypeError, match=name):
        bad()


@requires_sources
def test_issue10_no_binding_file_over_1500_lines():
    """Issue 10 "Done when": no binding file over 1,500 lines (py_valuetask.c
    had 2,542)."""
    long = {p.name: n for p in sorted(BINDING.glob("*.[ch]"))
            if (n := len(p.read_text().splitlines())) > 1500}
    assert not long, long
