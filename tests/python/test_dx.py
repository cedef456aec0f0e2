"""The small things of issue 14 ("a package a Python developer can pick up"),
each named by its item: the version, a CLI that exits quietly on a closed
pipe, demo output within 100 columns, named threads, warnings at the right
line, SemaphoreSlim as a context manager, timeout messages that say what
timed out, and signatures that introspect.
"""
from __future__ import annotations

import importlib.metadata
import inspect
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import sharptask as st
from conftest import run_script, wait_until

PACKAGE_ROOT = str(Path(st.__file__).resolve().parent.parent)


def _cli(*args, env_extra=None, **kwargs):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "sharptask", *args],
                            env=env, **kwargs)


# ------------------------------------------------------------ the version


@pytest.mark.timeout(60)
def test_issue14_version_option_and_dunder_agree_with_metadata():
    """issue 14: `python -m sharptask --version` prints the version, which
    is sharptask.__version__ and the installed distribution's version."""
    proc = _cli("--version", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == f"sharptask {st.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", st.__version__)
    assert importlib.metadata.version("sharptask") == st.__version__


# ------------------------------------------------------------ closed pipe


@pytest.mark.timeout(120)
def test_issue14_cli_exits_quietly_on_a_closed_pipe():
    """issue 14: `python -m sharptask demo valuetask | head -3` ends with no
    BrokenPipeError traceback: the reader goes away after three lines, the
    command stops with status 1 and says nothing on stderr."""
    proc = _cli("demo", "valuetask", stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env_extra={"PYTHONUNBUFFERED": "1"})
    lines = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()  # what `head -3` does once it has its lines
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=90)
    assert lines[2].startswith(b"=====")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert "Exception ignored" not in err, err
    assert proc.returncode == 1


# ----------------------------------------------------- 100-column demo


@pytest.mark.timeout(120)
def test_issue14_demo_lines_fit_in_100_columns():
    """issue 14: the demo's output is wrapped at 100 columns (the deadlock
    demo printed lines of 270 before: the detector's message, dump_async
    chains, a child's output).  tests/python/test_demo.py checks the same
    for every scenario it runs."""
    proc = _cli("demo", "deadlock", stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=100)
    assert proc.returncode == 0, err
    assert len(out.splitlines()) > 50
    wide = [line for line in out.splitlines() if len(line) > 100]
    assert not wide, wide
    # wrapped, not cut: the detector's whole message is still there
    flat = " ".join(out.split())
    assert "Task.run(lambda: fn()).result" in flat


def test_issue14_demo_wrap_keeps_short_lines_and_indents_long_ones():
    """issue 14: the demo's line wrapper leaves a line of 100 columns as it
    is and continues a longer one under itself, after its quote marker."""
    from sharptask.demo import MAX_COLUMNS, _wrap_line
    assert MAX_COLUMNS == 100
    fits = "x" * 100
    assert _wrap_line(fits) == fits
    long = "   | " + " ".join(["word"] * 40)
    wrapped = _wrap_line(long).splitlines()
    assert len(wrapped) > 1 and all(len(line) <= 100 for line in wrapped)
    assert all(line.startswith("   |     word") for line in wrapped[1:])
    assert " ".join(" ".join(wrapped).replace("|", "").split()) == \
        " ".join(["word"] * 40)


# ----------------------------------------------------------- thread names


@pytest.mark.timeout(60)
def test_issue14_pool_threads_are_named_for_python_and_the_os():
    """issue 14: a pool item sees threading.current_thread().name ==
    "sharptask-worker-N" (not "Dummy-N"), a LONG_RUNNING task
    "sharptask-long-running"; the OS names (/proc/self/task/*/comm, what
    top -H and gdb show) are st-worker-N, sharptask-timer and
    sharptask-gate.  A finished long-running thread leaves no entry in
    threading.enumerate()."""
    names = st.Task.when_all(
        [st.Task.run(lambda: threading.current_thread().name)
         for _ in range(50)]).result
    assert all(re.fullmatch(r"sharptask-worker-\d+", n) for n in names), \
        set(names)

    long = st.Task.factory.start_new(
        lambda: (threading.current_thread().name, threading.get_ident()),
        options=st.TaskCreationOptions.LONG_RUNNING)
    name, ident = long.result
    assert name == "sharptask-long-running"
    assert wait_until(lambda: all(t.ident != ident
                                  for t in threading.enumerate()))

    @st.async_method
    async def resumed_on():
        await st.Task.delay(0.01)  # the timer thread, then a worker
        return threading.current_thread().name

    assert re.fullmatch(r"sharptask-worker-\d+", resumed_on().result)
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc: the OS names cannot be read here")

    def os_names():
        out = set()
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    out.add(f.read().strip())
            except OSError:  # the thread ended meanwhile
                pass
        return out

    assert wait_until(lambda: {"sharptask-timer", "sharptask-gate"}
                      <= os_names()), os_names()
    assert any(re.fullmatch(r"st-worker-\d+", n) for n in os_names()), \
        os_names()


@pytest.mark.timeout(60)
def test_issue14_thread_names_under_worker_churn_stress():
    """issue 14, stress: workers started and retired over and over (a short
    thread_timeout) while many items read their thread's name: every item
    sees sharptask-worker-N, and once the pool has shrunk back no retired
    worker is left in threading.enumerate() (each one drops its entry when
    it ends)."""
    proc = run_script(textwrap.dedent("""
        import re, threading, time, sharptask as st
        tp = st.ThreadPool
        st._native._pool_set_tuning({"thread_timeout": 0.05})
        bad = []
        def item():
            name = threading.current_thread().name
            if not re.fullmatch(r"sharptask-worker-\\d+", name):
                bad.append(name)
            time.sleep(0.001)
        deadline = time.monotonic() + 4
        rounds = 0
        while time.monotonic() < deadline and rounds < 6:
            tp.set_max_threads(16); tp.set_min_threads(8)
            st.Task.wait_all([st.Task.run(item) for _ in range(400)])
            tp.set_min_threads(1)
            t0 = time.monotonic()
            while tp.thread_count > 1 and time.monotonic() - t0 < 5:
                time.sleep(0.01)
            rounds += 1
        time.sleep(0.1)
        listed = [t.name for t in threading.enumerate()
                  if t.name.startswith("sharptask-worker-")]
        print(rounds, len(bad), tp.thread_count, len(listed))
        assert not bad, bad[:5]
        assert len(listed) <= tp.thread_count, (listed, tp.thread_count)
    """), timeout=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rounds, bad, threads, listed = map(int, proc.stdout.split())
    assert rounds >= 2 and bad == 0 and listed <= threads


# --------------------------------------------------------------- warnings


@pytest.mark.timeout(60)
def test_issue14_starvation_warning_names_the_pool_not_sys():
    """issue 14 / D3: the starvation RuntimeWarning is issued on a pool
    thread, where no user line is on the stack: it is attributed to
    "<sharptask thread pool>", not to "sys:1"."""
    proc = run_script(textwrap.dedent("""
        import threading, time, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        while tp.thread_count != 1:
            time.sleep(0.005)
        tp.set_max_threads(4)
        ev, ran = threading.Event(), threading.Event()
        tp.queue_user_work_item(lambda: ev.wait(30))
        time.sleep(0.05)
        tp.queue_user_work_item(lambda: ran.set())
        assert ran.wait(10)
        deadline = time.monotonic() + 5
        while tp.starvation_events == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the warning is issued by the next attach
        ev.set()
    """), timeout=50)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines()
              if "RuntimeWarning" in line and "starvation" in line]
    assert warned, proc.stderr
    assert warned[0].startswith("<sharptask thread pool>:0: RuntimeWarning:"
                                " sharptask.ThreadPool starvation"), warned
    assert "sys:1" not in proc.stderr


_DEADLOCK_WARN = """
import os, sys, threading, time
import sharptask as st

st.set_deadlock_detection("warn")
gate = st.TaskCompletionSource()

@st.async_method
async def needs_the_ui():
    await gate.task             # resumes on the UI context
    return 1

def watchdog():
    time.sleep(1.0)             # the UI thread is hung by then
    sys.stderr.flush()
    os._exit(0)

def button_click():
    threading.Thread(target=watchdog, daemon=True).start()
    threading.Timer(0.05, gate.set_result, (None,)).start()
    return st.run(needs_the_ui())  # THE USER'S LINE

st.SingleThreadSynchronizationContext().run(button_click)
"""


@pytest.mark.timeout(60)
def test_issue14_deadlock_warning_points_at_the_users_line():
    """issue 14 / C6: set_deadlock_detection("warn") attributes its
    RuntimeWarning to the user's line (here the st.run(...) call), not to
    sharptask's own code that does the blocking wait (_builder.py)."""
    lines = _DEADLOCK_WARN.splitlines()
    user_line = next(i for i, line in enumerate(lines, 1)
                     if "THE USER'S LINE" in line)
    proc = run_script(_DEADLOCK_WARN, timeout=50)
    warned = [line for line in proc.stderr.splitlines()
              if "RuntimeWarning: deadlock" in line]
    assert warned, proc.stderr
    assert warned[0].startswith(f"<string>:{user_line}: RuntimeWarning"), \
        warned[0][:200]
    assert "_builder.py" not in proc.stderr


def test_issue14_warn_helper_attributes_past_the_package(recwarn):
    """issue 14: sharptask._impl._warn skips sharptask's own frames: called
    from this test (through sharptask code or not), the warning's filename
    is this file."""
    import warnings

    from sharptask import _impl
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _impl._warn("a test warning")
        line = inspect.currentframe().f_lineno - 1
    assert len(caught) == 1
    assert caught[0].filename == __file__ and caught[0].lineno == line
    assert caught[0].category is RuntimeWarning


# ----------------------------------------------------- SemaphoreSlim `with`


def test_issue14_semaphore_with_block_waits_and_releases():
    """issue 14: `with sem:` is wait() then release() (.NET has no such
    thing; Python users expect it), also when the block raises."""
    sem = st.SemaphoreSlim(2)
    with sem as entered:
        assert entered is True
        assert sem.current_count == 1
        with sem:
            assert sem.current_count == 0
        assert sem.current_count == 1
    assert sem.current_count == 2
    with pytest.raises(KeyError):
        with sem:
            raise KeyError("inside")
    assert sem.current_count == 2
    with pytest.raises(TypeError, match="3 arguments"):
        sem.__exit__()
    with pytest.raises(TypeError, match="3 arguments"):
        sem.__aexit__(None)
    sem.dispose()
    with pytest.raises(st.ObjectDisposedError):
        with sem:
            pass


@pytest.mark.timeout(30)
def test_issue14_semaphore_async_with_awaits_wait_async():
    """issue 14: `async with sem:` awaits wait_async(): a second holder
    waits (FIFO) until the first leaves the block; an exception leaves it
    too and propagates."""
    sem = st.SemaphoreSlim(1)
    order = []
    gate = st.TaskCompletionSource()

    @st.async_method
    async def holder(name, wait_for=None):
        async with sem as entered:
            order.append((name, "in", entered, sem.current_count))
            if wait_for is not None:
                await wait_for
            order.append((name, "out"))
        return sem.current_count

    first = holder("first", gate.task)
    second = holder("second")
    assert not second.is_completed        # queued behind the first
    assert sem._waiters == (0, 1)
    gate.set_result(None)
    assert first.wait(10) and second.wait(10)
    assert order == [("first", "in", True, 0), ("first", "out"),
                     ("second", "in", True, 0), ("second", "out")]
    assert sem.current_count == 1

    @st.async_method
    async def failing():
        async with sem:
            raise ValueError("in the block")

    with pytest.raises(ValueError):
        st.run(failing())
    assert sem.current_count == 1


def test_issue14_semaphore_documents_the_context_managers():
    """issue 14: the docstring says what `with` and `async with` do."""
    doc = st.SemaphoreSlim.__doc__
    assert "async with sem:" in doc and "with sem:" in doc


# ------------------------------------------------------ timeout messages


def _timeout_message(task):
    with pytest.raises(TimeoutError) as info:
        st.run(task)
    return str(info.value)


@pytest.mark.timeout(30)
def test_issue14_every_timeout_error_says_what_and_how_long():
    """issue 14: each TimeoutError sharptask raises says what timed out and
    after how long (it was a bare TimeoutError()): wait_async with a
    timeout (native path), with a timeout and a token, with a timeout of 0,
    and on a TimeProvider's clock."""
    pending = st.TaskCompletionSource().task
    pattern = (r"wait_async\(\): <Task id=\d+ status=WAITING_FOR_ACTIVATION>"
               r" did not complete within the timeout of {} s")

    msg = _timeout_message(pending.wait_async(0.05))
    assert re.fullmatch(pattern.format(r"0\.05"), msg), msg

    cts = st.CancellationTokenSource()
    msg = _timeout_message(pending.wait_async(0.05, cts.token))
    assert re.fullmatch(pattern.format(r"0\.05"), msg), msg
    cts.dispose()

    msg = _timeout_message(pending.wait_async(0))
    assert re.fullmatch(pattern.format("0"), msg), msg

    clock = st.FakeTimeProvider()
    waiting = pending.wait_async(2.5, time_provider=clock)
    clock.advance(3)
    msg = _timeout_message(waiting)
    assert re.fullmatch(pattern.format(r"2\.5") + r" on <FakeTimeProvider "
                        r"now=[^>]+>", msg), msg
    msg = _timeout_message(pending.wait_async(0, time_provider=clock))
    assert re.fullmatch(pattern.format("0") + " on <FakeTimeProvider.*", msg)


# ------------------------------------------------------ signatures


def test_issue14_signatures_introspect():
    """issue 14: inspect.signature(ValueTask) no longer raises
    AssertionError (a bad text signature in C); Timer shows no private
    parameter and no `<object object at ...>` default; every public class
    and function either has a signature or (a C static method) says it has
    none with ValueError, never another error."""
    vt = inspect.signature(st.ValueTask)
    assert list(vt.parameters)[:2] == ["value", "token"]
    assert st.ValueTask(5).result == 5
    assert st.ValueTask(result=6).result == 6

    timer = inspect.signature(st.Timer)
    assert list(timer.parameters) == ["callback", "state", "due", "period",
                                      "time_provider"]
    assert "object at" not in str(timer)
    assert repr(timer.parameters["state"].default) == "<the timer itself>"

    for name in st.__all__:
        obj = getattr(st, name)
        if callable(obj):
            try:
                inspect.signature(obj)
            except ValueError:
                pass  # "no signature found": allowed, not a crash


@pytest.mark.timeout(30)
def test_issue14_timer_default_state_is_the_timer_itself():
    """P5 still holds with the new default: without a state the callback
    gets the timer itself; TimeProvider.create_timer's timers still answer
    change() after dispose() with False (ITimer)."""
    got = []
    ran = threading.Event()
    timer = st.Timer(lambda s: (got.append(s), ran.set()), due=0)
    assert ran.wait(10)
    assert got == [timer]
    timer.dispose()
    with pytest.raises(st.ObjectDisposedError):
        timer.change(1, -1)
    itimer = st.TimeProvider.system.create_timer(lambda s: None, None, -1,
                                                 -1)
    itimer.dispose()
    assert itimer.change(1, -1) is False
