"""Interpreter exit and fork: SPEC P6 (STYLE.md 35, greenlet's
test_interpreter_shutdown).

Each scenario runs in a fresh interpreter with a timeout and checks the
exit code, a marker line printed at the end of the script, and that
CPython did not abort ("Fatal Python error").  "No hang" is the
subprocess timeout, far above the pool's exit grace period (1 s).
"""

from __future__ import annotations

import os
import textwrap

import pytest

from conftest import run_script

MARK = "SCRIPT-END"


def _exit_ok(code: str, rc: int = 0, timeout: float = 30.0):
    r = run_script(textwrap.dedent(code), timeout=timeout)
    assert "Fatal Python error" not in r.stderr, r.stderr
    assert "Segmentation fault" not in r.stderr, r.stderr
    assert r.returncode == rc, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    assert MARK in r.stdout, r.stdout + r.stderr
    return r


@pytest.mark.timeout(60)
def test_P6_exit_with_work_queued_behind_a_blocked_worker():
    """P6: exit while thousands of items wait behind a worker stuck in a
    blocking call the pool cannot interrupt."""
    _exit_ok(f"""
        import threading, sharptask as st
        tp = st.ThreadPool
        tp.set_min_threads(1); tp.set_max_threads(1)
        ev = threading.Event()
        tp.queue_user_work_item(lambda: ev.wait(60))
        for i in range(5000):
            tp.queue_user_work_item(print, i)
            st.Task.run(lambda: None)
        print("{MARK}")
    """)


@pytest.mark.timeout(60)
def test_P6_exit_with_python_work_running():
    """P6: exit while pool threads run Python code (busy loops that never
    end by themselves): they are abandoned like daemon threads."""
    _exit_ok(f"""
        import time, sharptask as st
        def spin():
            x = 0
            while True:
                x += 1
        for _ in range(3):
            st.ThreadPool.queue_user_work_item(spin)
        time.sleep(0.2)
        print("{MARK}")
    """)


@pytest.mark.timeout(60)
def test_P6_exit_with_work_blocked_in_sharptask_waits():
    """P6/T3: pool threads blocked in .result / wait() on tasks that never
    complete are released at exit (the waits are abandoned), and the
    interpreter exits cleanly."""
    r = _exit_ok(f"""
        import time, sharptask as st
        never = st.TaskCompletionSource()
        def blocked():
            return never.task.result
        tasks = [st.Task.run(blocked) for _ in range(4)]
        tasks.append(st.Task.run(lambda: never.task.wait()))
        time.sleep(0.3)
        print("{MARK}")
    """)
    assert "Fatal" not in r.stderr


@pytest.mark.timeout(60)
def test_P6_exit_with_timers_armed():
    """P6/P5: exit with periodic Timers, PeriodicTimers, pending delays and
    a timer due at exit time."""
    _exit_ok(f"""
        import sharptask as st
        t1 = st.Timer(lambda s: None, None, 0.0, 0.001)
        t2 = st.Timer(print, "late", 3600, 1)
        pt = st.PeriodicTimer(0.001)
        w = pt.wait_for_next_tick_async()
        delays = [st.Task.delay(i * 0.0001) for i in range(2000)]
        far = [st.Task.delay(3600) for _ in range(2000)]
        print("{MARK}")
    """)


@pytest.mark.timeout(60)
def test_P6_exit_keeps_the_exit_code():
    """P6: the exit code is the script's own, pool busy or not."""
    _exit_ok(f"""
        import sys, threading, sharptask as st
        ev = threading.Event()
        st.ThreadPool.queue_user_work_item(lambda: ev.wait(60))
        st.Timer(lambda s: None, None, 0, 0.001)
        print("{MARK}")
        sys.exit(3)
    """, rc=3)


@pytest.mark.timeout(60)
def test_P6_exit_with_a_long_running_task_stuck():
    """P6/T9: a LONG_RUNNING task blocked forever on its dedicated thread
    does not hold up exit."""
    _exit_ok(f"""
        import threading, sharptask as st
        ev = threading.Event()
        t = st.Task.factory.start_new(
            lambda: ev.wait(60),
            options=st.TaskCreationOptions.LONG_RUNNING)
        print("{MARK}")
    """)


@pytest.mark.timeout(60)
def test_P6_exit_while_items_keep_queuing_items():
    """P6: exit while work items keep queuing more work (a chain that never
    ends) and a starved pool's gate is injecting threads."""
    _exit_ok(f"""
        import threading, time, sharptask as st
        tp = st.ThreadPool
        def again():
            tp.queue_user_work_item(again)
        tp.queue_user_work_item(again)
        ev = threading.Event()
        for _ in range(8):
            tp.queue_user_work_item(lambda: ev.wait(60))
        time.sleep(0.7)
        print("{MARK}")
    """)


# ------------------------------------------------------------------ fork


fork_only = pytest.mark.skipif(not hasattr(os, "fork"),
                               reason="no os.fork on this platform")


@fork_only
@pytest.mark.timeout(60)
def test_P6_fork_child_gets_a_fresh_working_pool():
    """P6: after os.fork() the child has a fresh pool (the parent's threads
    do not exist there) that runs work, timers included; the parent's pool
    is unaffected."""
    _exit_ok(f"""
        import os, sys, time, warnings, sharptask as st
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12 fork
        assert st.Task.run(lambda: 1).result == 1
        busy = [st.Task.run(time.sleep, 0.05) for _ in range(4)]
        pid = os.fork()
        if pid == 0:
            try:
                ok = st.Task.run(lambda: 41 + 1).result == 42
                ok = ok and st.Task.when_all(
                    [st.Task.run(lambda i=i: i) for i in range(100)]
                ).result == list(range(100))
                ok = ok and st.Task.delay(0.01).wait(5)
                hits = []
                t = st.Timer(lambda s: hits.append(s), 1, 0.0, -1)
                deadline = time.monotonic() + 5
                while not hits and time.monotonic() < deadline:
                    time.sleep(0.005)
                ok = ok and hits == [1]
                ok = ok and st.ThreadPool.thread_count >= 1
            except BaseException as e:
                print("child failed:", repr(e), file=sys.stderr)
                ok = False
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        st.Task.when_all(busy).result
        assert st.Task.run(lambda: 2).result == 2
        print("{MARK}")
    """)


@fork_only
@pytest.mark.timeout(60)
def test_P6_fork_from_a_pool_thread():
    """P6: a work item that forks: in the child the forking thread is not a
    pool worker any more, and the child's fresh pool works."""
    _exit_ok(f"""
        import os, sys, warnings, sharptask as st
        warnings.simplefilter("ignore", DeprecationWarning)
        def forker():
            pid = os.fork()
            if pid == 0:
                try:
                    ok = st.Task.run(lambda: 5).result == 5
                    # a blocking wait here must not touch the parent's pool
                    t = st.TaskCompletionSource()
                    ok = ok and t.task.wait(0.01) is False
                except BaseException as e:
                    print("child failed:", repr(e), file=sys.stderr)
                    ok = False
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            return os.WIFEXITED(status) and os.WEXITSTATUS(status)
        assert st.Task.run(forker).result == 0
        print("{MARK}")
    """)


@fork_only
@pytest.mark.timeout(60)
def test_P6_fork_child_can_dispose_timers_armed_by_the_parent():
    """P6/P5: timers armed before the fork belong to the parent's timer
    thread; in the child, change()/dispose() of them is harmless and new
    timers work."""
    _exit_ok(f"""
        import os, sys, time, warnings, sharptask as st
        warnings.simplefilter("ignore", DeprecationWarning)
        t = st.Timer(lambda s: None, None, 3600, 3600)
        pt = st.PeriodicTimer(3600)
        pid = os.fork()
        if pid == 0:
            try:
                t.change(3600, -1)
                t.dispose()
                pt.dispose()
                hits = []
                t2 = st.Timer(lambda s: hits.append(1), None, 0.01, -1)
                deadline = time.monotonic() + 5
                while not hits and time.monotonic() < deadline:
                    time.sleep(0.005)
                ok = hits == [1]
            except BaseException as e:
                print("child failed:", repr(e), file=sys.stderr)
                ok = False
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        t.dispose()
        pt.dispose()
        print("{MARK}")
    """)
