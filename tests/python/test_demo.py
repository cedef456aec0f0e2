"""`python -m sharptask demo` (SPEC D4): the implemented scenarios run as
experiments and print what they observed.

Each runs in a subprocess with a timeout; the assertions look for the values
the experiment measured (statuses, state fields, thread counts), which only
appear when it really ran.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sharptask
from sharptask import demo

REPO = Path(__file__).resolve().parents[2]


_MARKERS = ("| ", "child> ", "child stderr> ")


def _content(line):
    """A line without its indentation and its quote marker, if any."""
    text = line.strip()
    for marker in _MARKERS:
        if text.startswith(marker):
            return text[len(marker):].strip()
    return text


def _unwrap(out, width=100):
    """The demo's output with the lines it wrapped at `width` columns
    (issue 14) joined again, so that the checks below read what it
    printed whatever the wrap points.  A line continues the one above when
    its words start where the demo puts a continuation (four columns in
    from the line it continues; column 48, the value column, under a
    _show() line) and its first word would not have fitted on the line
    above (textwrap breaks there only)."""
    logical = []  # [text, indent of its first line, last physical line]
    for line in out.split("\n"):
        text = _content(line)
        indent = line.find(text) if text else 0  # where the words start
        if logical and text:
            joined, first_indent, last = logical[-1]
            under = indent == first_indent + 4 or (
                first_indent == 3 and indent == 48)
            if under and len(last.rstrip()) + 1 + len(text.split()[0]) \
                    > width:
                logical[-1] = [joined + " " + text, first_indent, line]
                continue
        logical.append([line, indent, line])
    return "\n".join(entry[0] for entry in logical)


def _run(*args, expect=0):
    env = dict(os.environ)
    package_parent = str(Path(sharptask.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "sharptask", *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=100)
    assert proc.returncode == expect, (
        f"exit code {proc.returncode}\n--- stdout\n{proc.stdout}"
        f"\n--- stderr\n{proc.stderr}")
    if expect == 0:
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    if args[0] == "demo":  # issue 14: every line within 100 columns
        wide = [line for line in proc.stdout.splitlines() if len(line) > 100]
        assert not wide, wide
    return _unwrap(proc.stdout)


def _value(out, label):
    """The value printed after `label` by the demo's _show()."""
    match = re.search(r"^\s*" + re.escape(label) + r"\s+(.+)", out,
                      re.MULTILINE)
    assert match, f"{label!r} not in output:\n{out}"
    return match.group(1).strip()


@pytest.mark.timeout(120)
def test_demo_state_machine_A1_A5():
    out = _run("demo", "state-machine")
    # A1: the body ran synchronously to its first incomplete await and the
    # call returned a promise-style task, later completed by the builder.
    assert _value(out, "status right after the call returned:") == \
        "WAITING_FOR_ACTIVATION"
    assert _value(out, "is_completed right after the call:") == "False"
    assert _value(out, "status after gate.set_result(22):") == \
        "RAN_TO_COMPLETION"
    assert _value(out, "task.result:") == "42"
    assert "body ran on the caller's thread (before the call returned)" in \
        " ".join(out.split())
    assert _value(out, "a method that never suspends returns:") == \
        "RAN_TO_COMPLETION, result 42"
    # A5: the hand-written <GetAsync>d__0 went through state -1 -> 0 -> -2,
    # MoveNext twice, and its fault path gives a FAULTED task.
    assert _value(out, "status of the returned task:") == \
        "WAITING_FOR_ACTIVATION"
    assert _value(out, "state field after start():") == "0"
    assert _value(out, "status after .result:") == "RAN_TO_COMPLETION"
    assert _value(out, "state field at the end:") == "-2"
    assert _value(out, "result:").startswith(
        "<html>20 bytes of https://example.com/")
    assert "move_next ran 2 times" in out
    assert _value(out, "status of its task:") == "FAULTED"
    assert "ValueError" in _value(out, "task.exception.inner_exceptions[0]:")
    assert _value(out, "decorated twin: status after the call:") == \
        "WAITING_FOR_ACTIVATION"
    assert _value(out, "decorated twin: status at the end:") == \
        "RAN_TO_COMPLETION"


@pytest.mark.timeout(120)
def test_demo_task_vs_thread():
    out = _run("demo", "task-vs-thread")
    assert _value(out, "pending tasks:") == "10,000"
    assert _value(out, "their statuses:") == "WAITING_FOR_ACTIVATION"
    assert _value(out, "completed them all, results correct:") == "True"
    if os.path.isdir("/proc/self/task"):
        extra = re.search(
            r"extra OS threads while 10,000 tasks were pending: (-?\d+)", out)
        assert extra, out
        assert int(extra.group(1)) <= 0, "pending tasks must not add threads"
    # Task.run work ran on pool threads, never on the main thread.
    ran_on = _value(out, "16 items of time.sleep(0.02) ran on:")
    assert ran_on.endswith("main thread among them: False"), ran_on
    assert "1,000 threads blocked on an Event:" in out


def _after(out, heading, label):
    """The text after `label` on the first line that has it, below the
    line `heading` (for the nested `before:` / `after:` rows)."""
    rest = out[out.index(heading):]
    match = re.search(re.escape(label) + r"\s*(.+)", rest)
    assert match, f"{label!r} not under {heading!r}:\n{out}"
    return match.group(1).strip()


@pytest.mark.timeout(120)
def test_demo_deadlock_C5_C6():
    out = _run("demo", "deadlock")
    flat = " ".join(out.split())
    # 1. the article's deadlock, raised by the detector on the UI thread
    assert _value(out, "set_deadlock_detection mode:") == "raise"
    assert _value(out, ".result raised:") == "DeadlockError"
    assert _value(out, "raised on:") == "UI thread"
    assert _value(out, "get_json_async's task at that moment:") == \
        "WAITING_FOR_ACTIVATION"
    assert "| deadlock: thread 'UI' is blocked in a synchronous wait" in out
    assert "Pending async methods that need it: " \
        "demo_deadlock.<locals>.get_json_async" in out
    assert "configure_await(False) on every await" in out
    assert _value(out, "the two abandoned tasks, later:").startswith(
        "RAN_TO_COMPLETION, RAN_TO_COMPLETION")
    # 2. configure_await(False) on every await completes, off the UI thread
    assert _value(out, ".result returned:") == '{"answer": 42}'
    assert _value(out, "its code after the await ran on:").startswith(
        "pool thread")
    # 2b. on the outer await only: the chain of both methods is named
    assert "get_json_async_half -> demo_deadlock.<locals>.read_body_async" \
        in out
    # 3. async all the way: the UI kept pumping, the handler resumed on it
    repaint = out.index("UI processes a repaint message meanwhile")
    resumed = out.index("click handler resumes, label.text")
    assert repaint < resumed
    assert re.search(r"click handler resumes, label\.text = .*"
                     r"\[UI thread\]", out)
    assert _value(out, "get_json_async started on:").startswith("pool")
    # 4. "off" and "warn" really hang: the children were killed
    assert re.search(r'mode "off": child still running after\s+[\d.]+ s: '
                     r"yes, killed it", out)
    assert re.search(r'mode "warn": child still running after\s+[\d.]+ s: '
                     r"yes, killed it", out)
    assert out.count("callbacks waiting in the UI queue: 1") == 2
    assert "child stderr> " in out and "RuntimeWarning: deadlock" in out
    assert "child> ui: .result returned" not in out
    assert "resumes on SingleThreadSynchronizationContext" in flat


@pytest.mark.timeout(120)
def test_demo_configure_await_C3_C4():
    out = _run("demo", "configure-await")
    ui = "UI thread [SingleThreadSynchronizationContext]"
    # 1. plain await returns to the UI thread, configure_await(False) not
    assert _after(out, "plain await, from the UI thread:", "after:") == ui
    assert _after(out, "configure_await(True), from the UI thread:",
                  "after:") == ui
    assert _after(out, "configure_await(False), from the UI thread:",
                  "after:").endswith("[no context]")
    assert _after(out, "configure_await(False), from the UI thread:",
                  "after:").startswith("pool thread")
    # 2. the pitfall (R7.4/R9.5): a completed first await changes nothing
    assert _after(out, "cache hit:", "configure_await(False):") == ui
    assert _after(out, "cache hit:", "the plain await that follows:") == ui
    assert _after(out, "cache miss:", "configure_await(False):") \
        .startswith("pool thread")
    assert _value(out, "UI thread blocks on it, cache miss:").startswith(
        "completed in")
    assert _value(out, "UI thread blocks on it, cache hit:").startswith(
        "DeadlockError after")
    # 3. FORCE_YIELDING suspends on a completed task
    assert _after(out, "await a completed task:", "(no suspension):") \
        .startswith("True; resumed on UI thread")
    assert _after(out, "...configure_await(FORCE_YIELDING):",
                  "(no suspension):").startswith(
        "False; resumed on pool thread")
    fy_ccc = "...configure_await(FORCE_YIELDING | " \
        "CONTINUE_ON_CAPTURED_CONTEXT):"
    assert _after(out, fy_ccc, "(no suspension):") == f"False; resumed on {ui}"
    assert _after(out, fy_ccc, "the code after the await ran") \
        .startswith("after a callback posted")
    assert _after(out, "await Task.yield_():", "(no suspension):") == \
        f"False; resumed on {ui}"
    assert _value(out, "the UI thread blocking on it:").startswith(
        "completed in")
    # 4. SUPPRESS_THROWING
    assert _after(out, "plain await (CONTINUE_ON_CAPTURED_CONTEXT):",
                  "the await").startswith("raised ConnectionRefusedError")
    assert _after(out, "   SUPPRESS_THROWING:", "the await").startswith(
        "returned None; the task is FAULTED")
    assert _value(out, "unobserved-exception reports after gc.collect():") \
        == "1 (10.0.0.2)"
    assert _value(out, "configure_await(8) (not a flag):").startswith(
        "ValueError")


@pytest.mark.timeout(120)
def test_demo_async_void_A8():
    out = _run("demo", "async-void")
    # 1. the caller never sees the exception; the pump raises it
    assert _after(out, "on_save_clicked('report.txt')",
                  "the call itself:").startswith("returned None")
    assert _after(out, "on_save_clicked('report.txt')",
                  "ctx.run(click, ...):") == \
        "raised SaveFailed(report.txt: the disk is full)"
    assert _after(out, "fail_before_await=True)", "the call itself:") \
        .startswith("returned None")
    assert _after(out, "fail_before_await=True)", "ctx.run(click, ...):") \
        .startswith("raised SaveFailed(early.txt")
    ended = _after(out, "on_save_clicked('report.txt')",
                   "ctx.run ended after:")
    assert re.match(r"[\d.]+ ms \(click returned after", ended), ended
    # 2. operation_started / operation_completed balanced by the pump
    assert re.search(r"right after the three calls\s+3\s+0\s", out)
    rows = re.findall(r"^\s+pumped \d+, .* later\s+(\d+)\s+(\d+)\s+(\d+)"
                      r"\s+(.*)$", out, re.MULTILINE)
    assert rows, out
    assert rows[-1][:3] == ("3", "3", "0"), rows
    assert any(r[3].startswith("SaveFailed('settings.ini") for r in rows)
    # 3. no context: the handler, then sys.unraisablehook, then "crash"
    assert _value(out, "the handler received:") == \
        "SaveFailed('no-context.txt: the disk is full')"
    assert _value(out, "on:").startswith("pool thread")
    assert _value(out, "setting the previous one back returned ours:") == \
        "True"
    assert _value(out, "with no handler, sys.unraisablehook got:") \
        .startswith("Exception ignored in: demo_async_void.<locals>."
                    "on_save_clicked: SaveFailed('default-handler.txt")
    assert _value(out, 'set_unhandled_exception_policy("crash"):') == \
        "the child exited with code 1, printed 'still alive': False"
    # 4. async Task: the caller catches it
    assert _value(out, "the caller:").startswith(
        "caught SaveFailed('report.txt: the disk is full') at the await")


@pytest.mark.timeout(120)
def test_demo_fire_and_forget_T11_D1():
    out = _run("demo", "fire-and-forget")
    # 1. dropped: reported through the handler once collected
    assert "after the fault, on the" in \
        _value(out, "the handler got SmtpError for ann:")
    # 2. silent while referenced, reported when collected
    assert _value(out, "0.2 s after bob's and cy's tasks faulted:") == \
        "FAULTED, reports: bob 0, cy 0"
    assert _value(out, "after background.clear():") == "reports: bob 1"
    assert _value(out, "cy's task, only in a cycle, after del:") == \
        "reports: cy 0"
    assert _value(out, "after gc.collect():").startswith("reports: cy 1")
    # 3. the default: sys.unraisablehook with the Task
    assert _value(out, "sys.unraisablehook got:") == \
        "AggregateError(SmtpError('550 mailbox unavailable: " \
        "dee@example.com'))"
    assert _value(out, "for the object:").startswith("<Task")
    # 4. and 5. awaited, or observed by the helper: nothing unobserved
    assert _value(out, "register_user_async('eve'):").startswith(
        "caught SmtpError")
    assert re.findall(r"new unobserved reports:\s+(\d+)", out) == ["0", "0"]
    assert "log: welcome email failed: SmtpError('550 mailbox " \
        "unavailable: fay@example.com')" in out
    # 6. dump_async shows the pending chains, coalesced, then nothing
    assert "|   3 x" in out
    assert re.search(r"sync_inbox_async at .*\n.*fetch_mailbox_async at",
                     out)
    assert _value(out, "async methods in the dump's chains:") == \
        "7 in 2 distinct chain(s)"
    assert _value(out, "after the gate completed:") == \
        "1 pending: refresh_badge_async"
    assert _value(out, "after the push came:") == "0 pending"


@pytest.mark.timeout(120)
def test_demo_valuetask_V1_V2_V5():
    """D4 valuetask: the synchronous fast path makes no Task, the double
    await is caught with its message, and the allocation counts (W10)."""
    out = _run("demo", "valuetask")
    assert _value(out, "Tasks made by 1,000 ValueTask-method calls:") == "0"
    assert int(_value(out, "Tasks made by 1,000 Task-method calls:")) >= 900
    assert _value(out, "second await raised:") == "InvalidOperationError"
    assert "already consumed" in out and "preserve()" in out
    assert _value(out, "with set_strict_value_task(False):") == \
        "InvalidOperationError"
    floor = _value(out, "bare coroutine (the floor):")
    pooled = _value(out, "@async_value_method(pooling=True):")
    assert floor.startswith("1 block")
    assert pooled.split(",")[0] == floor.split(",")[0]
    assert _value(out, "@async_method (Task):").startswith("2 blocks")


@pytest.mark.timeout(120)
def test_demo_starvation_P3_D3():
    """D4/P3/D3: the starvation demo measures thread counts: hidden
    blocking is rescued by the gate (injections, starvation events,
    warnings), .result by blocking compensation (no starvation event),
    await needs no extra thread."""
    out = _run("demo", "starvation")
    steps = out.split("\n-- ")
    hidden, visible, fixed = steps[1], steps[2], steps[3]
    assert int(_value(hidden, "threads injected by the gate:")) >= 1
    assert int(_value(hidden, "starvation_events:")) >= 1
    assert int(_value(hidden, "RuntimeWarnings about starvation:")) >= 1
    assert float(_value(hidden, "time until every item ran:").split()[0]) \
        >= 0.4
    assert int(_value(visible,
                      "threads added by blocking compensation:")) >= 1
    assert int(_value(visible, "starvation_events:")) == 0
    assert int(_value(fixed, "threads added:")) == 0
    assert int(_value(fixed, "starvation_events:")) == 0


@pytest.mark.timeout(60)
def test_demo_scenarios_not_yet_implemented_exit_0():
    pending = [n for n, (fn, _) in demo.SCENARIOS.items() if fn is None]
    if not pending:
        pytest.skip("every scenario is implemented")
    out = _run("demo", pending[0])
    assert "not implemented yet (issue " in out


@pytest.mark.timeout(60)
def test_demo_unknown_name_is_a_usage_error():
    _run("demo", "no-such-scenario", expect=2)


@pytest.mark.timeout(60)
def test_demo_lists_every_D4_scenario():
    out = _run("demo", "--help")
    for name in ("state-machine", "deadlock", "configure-await",
                 "async-void", "valuetask", "task-vs-thread",
                 "fire-and-forget", "starvation"):
        assert name in out
