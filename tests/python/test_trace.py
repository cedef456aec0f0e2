"""SPEC D2 (issue 12): sharptask.trace() records events from every thread;
save() writes Chrome trace JSON, save_png() a per-thread timeline; the
`python -m sharptask trace` and `demo --trace` command lines.

The core's event sites (pool items, pool threads, timers, task
completion, sync waits) and the binding's (method.*, continuation.*,
context.post, task.created, deadlock.detected: issue 12's second slice)
are checked on real runs; the Chrome JSON and PNG layouts also on
synthetic events (marked so below).  The cost of recording is measured by
the WT benchmark, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import sharptask as st
from sharptask import _native
from sharptask._trace import TraceEvent, _chrome, parse_command, _Usage

PACKAGE_PARENT = str(Path(st.__file__).resolve().parent.parent)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (PACKAGE_PARENT, env.get("PYTHONPATH", "")) if p)
    return env


def _run(*args, cwd=None, timeout=60):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _work(i):
    time.sleep(0.0005)
    return i


def _pool_items(events):
    """{item: {name: event}} of the pool.item.* events."""
    items: dict = {}
    for ev in events:
        if ev.name.startswith("pool.item."):
            items.setdefault(ev.args["item"], {})[ev.name] = ev
    return items


# ---------------------------------------------------------------- recording

@pytest.mark.timeout(30)
def test_D2_trace_records_pool_items_across_threads():
    """D2: Task.run items are queued on the calling thread, then start and
    end on a pool thread, each event with a monotonic timestamp, the OS
    thread id and name; events come in time order; off again after."""
    assert not _native._trace_active()
    before = time.monotonic_ns()
    with st.trace() as tr:
        assert _native._trace_active()
        tasks = [st.Task.run(_work, i) for i in range(20)]
        assert st.Task.when_all(tasks).result == list(range(20))
    after = time.monotonic_ns()
    assert not _native._trace_active()
    events = tr.events
    assert events, "nothing recorded"
    assert [e.ts_ns for e in events] == sorted(e.ts_ns for e in events)
    assert all(before <= e.ts_ns <= after for e in events)  # same clock
    me = threading.get_native_id()
    assert tr.threads[me] == threading.current_thread().name
    for ev in events:
        assert isinstance(ev, TraceEvent)
        assert tr.threads[ev.thread_id] == ev.thread_name
    items = _pool_items(events)
    ran = [v for v in items.values() if "pool.item.start" in v]
    assert len(ran) >= 20
    queued_here = 0
    for v in ran:
        start, end = v["pool.item.start"], v["pool.item.end"]
        assert start.thread_id == end.thread_id != me
        assert start.thread_name.startswith("sharptask-")
        assert start.ts_ns <= end.ts_ns
        if "pool.item.queued" in v:
            q = v["pool.item.queued"]
            assert q.ts_ns <= start.ts_ns  # queued before it could start
            queued_here += q.thread_id == me
    assert queued_here >= 20
    completed = [e for e in events if e.name == "task.completed"]
    assert len(completed) >= 20
    assert {e.args["status"] for e in completed} == {"RAN_TO_COMPLETION"}
    assert tr.dropped == 0


@pytest.mark.timeout(30)
def test_D2_timer_fired_and_wait_events():
    """D2: timer.fired on the timer thread (with its lateness), and a
    blocking wait records wait.block then wait.wake on the waiting
    thread."""
    with st.trace() as tr:
        assert st.Task.delay(0.01).wait(10)
    fired = [e for e in tr.events if e.name == "timer.fired"]
    assert len(fired) == 1
    assert fired[0].thread_name == "sharptask-timer"
    assert fired[0].args["late_ns"] >= 0
    me = threading.get_native_id()
    waits = [e for e in tr.events if e.name.startswith("wait.")
             and e.thread_id == me]
    assert [e.name for e in waits][:2] == ["wait.block", "wait.wake"]
    assert waits[0].args == {"on": "task"}
    assert waits[1].args == {"on": "task", "completed": True}
    assert waits[0].ts_ns <= fired[0].ts_ns <= waits[1].ts_ns


@pytest.mark.timeout(30)
def test_D2_dropped_counted_with_a_tiny_buffer():
    """D2: a full buffer drops its thread's oldest events and counts them
    in tr.dropped; recording never blocks."""
    with st.trace(buffer_size=4) as tr:
        tasks = [st.Task.run(_work, i) for i in range(50)]
        st.Task.when_all(tasks).wait(20)
    per_thread: dict = {}
    for ev in tr.events:
        per_thread[ev.thread_id] = per_thread.get(ev.thread_id, 0) + 1
    assert per_thread and max(per_thread.values()) <= 4
    assert tr.dropped > 0
    # at least 50 queued + 50 started + 50 ended were recorded or dropped
    assert len(tr.events) + tr.dropped >= 150
    # the newest survive: the main thread's last events are its wait
    mine = [e for e in tr.events if e.thread_id == threading.get_native_id()]
    assert mine[-1].name == "wait.wake"


@pytest.mark.timeout(30)
def test_D2_events_readable_while_recording():
    """D2: tr.events inside the block returns what was recorded so far;
    at the end every event is there once."""
    with st.trace() as tr:
        st.Task.run(_work, 1).wait(10)
        first = tr.events
        assert any(e.name == "pool.item.end" for e in first)
        st.Task.run(_work, 2).wait(10)
    final = tr.events
    assert set(map(id, first)) <= set(map(id, final))  # kept, not copied
    assert len([e for e in final if e.name == "pool.item.end"]) >= 2
    keys = [(e.name, e.ts_ns, e.thread_id) for e in final]
    assert len(keys) == len(set(keys))


@pytest.mark.timeout(30)
def test_D2_one_trace_at_a_time_and_bad_buffer_size():
    """D2 / H2: one trace records at a time (InvalidOperationError), a
    Trace records once, an exception in the block still stops recording,
    and a bad buffer_size is a TypeError/ValueError naming it."""
    with st.trace():
        with pytest.raises(st.InvalidOperationError):
            with st.trace():
                pass
        assert _native._trace_active()
    assert not _native._trace_active()
    tr = st.trace()
    with tr:
        pass
    with pytest.raises(st.InvalidOperationError):
        with tr:
            pass
    with pytest.raises(ZeroDivisionError):
        with st.trace():
            1 / 0
    assert not _native._trace_active()
    for bad in (True, "8", 1.5, None):
        with pytest.raises(TypeError, match="buffer_size"):
            st.trace(buffer_size=bad)
    for bad in (0, -1, 1 << 40):
        with pytest.raises(ValueError, match="buffer_size"):
            st.trace(buffer_size=bad)
    with pytest.raises(TypeError, match="buffer_size"):
        _native._trace_start("8")
    with pytest.raises(ValueError, match="buffer_size"):
        _native._trace_start(0)


def test_D2_event_names_are_D2s():
    """D2: the stable dotted names, in D2's order."""
    assert _native._trace_names() == (
        None, "task.created", "task.completed", "method.start",
        "method.suspend", "method.resume", "method.complete",
        "continuation.queued", "continuation.inline", "context.post",
        "pool.item.queued", "pool.item.start", "pool.item.end",
        "pool.thread.injected", "pool.thread.retired", "timer.fired",
        "wait.block", "wait.wake", "deadlock.detected")


# --------------------------------------------------------------- Chrome JSON

def _check_chrome(data, threads):
    """The required fields of every event of a Chrome trace object; the
    flows as {id: (s, f)}."""
    assert isinstance(data["traceEvents"], list)
    flows: dict = {}
    named = set()
    for ev in data["traceEvents"]:
        assert {"name", "ph", "pid", "tid"} <= set(ev), ev
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        if ev["ph"] == "M":
            if ev["name"] == "thread_name":
                named.add(ev["tid"])
                assert ev["args"]["name"] == threads[ev["tid"]]
            continue
        assert isinstance(ev["ts"], (int, float)) and ev["ts"] >= 0
        if ev["ph"] == "X":
            assert ev["dur"] >= 0
        elif ev["ph"] == "i":
            assert ev["s"] == "t"
        elif ev["ph"] in ("s", "f"):
            pair = flows.setdefault(ev["id"], [None, None])
            slot = 0 if ev["ph"] == "s" else 1
            assert pair[slot] is None, f"flow {ev['id']} twice"
            pair[slot] = ev
            if ev["ph"] == "f":
                assert ev["bp"] == "e"
        else:
            pytest.fail(f"unexpected phase {ev['ph']!r}")
    assert named == set(threads)
    for fid, (s, f) in flows.items():
        assert s is not None and f is not None, f"flow {fid} half"
        assert s["ts"] <= f["ts"]
    return flows


@pytest.mark.timeout(30)
def test_D2_save_writes_valid_chrome_json_with_flows(tmp_path):
    """D2: save() writes {"traceEvents": [...]} with microsecond ts, pid,
    tid, thread-name metadata, pool items as X slices, the rest as
    instants, and flow arrows (s/f, same id) that cross threads: here from
    pool.item.queued to pool.item.start (suspend -> resume flows:
    test_D2_json_resume_flow_pairs_cross_threads)."""
    with st.trace() as tr:
        tasks = [st.Task.run(_work, i) for i in range(10)]
        st.Task.when_all(tasks).wait(20)
    path = tmp_path / "trace.json"
    tr.save(path)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    flows = _check_chrome(data, tr.threads)
    slices = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len(slices) >= 10
    assert all(e["name"] == "pool item" for e in slices)
    # microseconds from the first event
    t0 = tr.events[0].ts_ns
    starts = sorted(e.ts_ns for e in tr.events if e.name == "pool.item.start")
    assert sorted(round(e["ts"] * 1000) for e in slices)[0] == \
        pytest.approx(starts[0] - t0, abs=2)
    names = {e["name"] for e in data["traceEvents"] if e["ph"] == "i"}
    assert "pool.item.queued" in names and "task.completed" in names
    me = threading.get_native_id()
    crossing = [(s, f) for s, f in flows.values()
                if s["tid"] == me and f["tid"] != me]
    assert len(crossing) >= 10
    assert data["otherData"]["dropped"] == 0


def _synthetic_method_events():
    """A method (task 7) that starts on the main thread, suspends awaiting
    a Task, resumes on a pool thread and completes there, while another
    method (task 8) runs inside its first step.  Synthetic, to pin the
    layout exactly (the real events: test_D2_method_events_*)."""
    main, pool = 101, 202

    def ev(name, ts, tid, task, **args):
        return TraceEvent(name, ts, tid, "MainThread" if tid == main
                          else "sharptask-worker-1", task, args)
    return [
        ev("method.start", 1_000, main, 7),
        ev("method.start", 2_000, main, 8),
        ev("method.complete", 3_000, main, 8),
        ev("method.suspend", 4_000, main, 7, awaits="Task"),
        ev("task.completed", 9_000, pool, 3, status="RAN_TO_COMPLETION"),
        ev("method.resume", 10_000, pool, 7),
        ev("method.complete", 12_500, pool, 7),
        ev("task.completed", 12_600, pool, 7, status="RAN_TO_COMPLETION"),
    ], {main: "MainThread", pool: "sharptask-worker-1"}


def test_D2_chrome_json_method_steps_and_resume_flow_synthetic():
    """D2 (synthetic events, an exact layout): method
    steps are X slices (start/resume to suspend/complete, nested calls
    included), and a flow arrow goes from each method.suspend to its
    method.resume on another thread, binding inside both slices."""
    events, threads = _synthetic_method_events()
    data = json.loads(json.dumps(_chrome(events, threads, 0)))
    flows = _check_chrome(data, threads)
    steps = sorted((e for e in data["traceEvents"] if e["ph"] == "X"),
                   key=lambda e: e["ts"])
    assert [(e["tid"], e["args"]["task_id"], e["ts"], e["dur"])
            for e in steps] == [(101, 7, 0.0, 3.0), (101, 8, 1.0, 1.0),
                                (202, 7, 9.0, 2.5)]
    assert steps[0]["args"]["awaits"] == "Task"
    assert steps[0]["args"]["ended_by"] == "suspend"
    assert steps[2]["args"]["ended_by"] == "complete"
    assert len(flows) == 1
    (s, f), = flows.values()
    assert (s["tid"], f["tid"]) == (101, 202)
    assert s["name"] == f["name"] == "resume"
    assert steps[0]["ts"] <= s["ts"] <= steps[0]["ts"] + steps[0]["dur"]
    assert f["ts"] == steps[2]["ts"]
    instants = [e["name"] for e in data["traceEvents"] if e["ph"] == "i"]
    assert instants == ["task.completed", "task.completed"]


#: A test that draws with matplotlib: matplotlib draws with numpy, a
#: release-built extension whose reference counting the debug interpreter's
#: total does not see (about 100,000 per drawing; the binding is not
#: involved; a plain matplotlib drawing without sharptask moves the debug
#: interpreter's total by about 27,000 every run), so the refleak run
#: cannot measure it.  Without the mark such a
#: test was left out only while its first run took over the plugin's time
#: limit, which a quiet machine does not (issue 9, H3: a false leak).
_DRAWS_WITH_NUMPY = pytest.mark.refleaks_unmeasured(
    reason="matplotlib draws with numpy, a release-built extension whose "
           "reference counting the debug interpreter's total does not see "
           "(about 100,000 per drawing); the binding is not involved")


# ---------------------------------------------------------------------- PNG

@pytest.mark.timeout(60)
@_DRAWS_WITH_NUMPY
def test_D2_save_png_draws_a_timeline(tmp_path):
    """D2: save_png() writes a non-empty PNG (lanes per thread, slices by
    kind, arrows, a legend) with matplotlib."""
    pytest.importorskip("matplotlib", reason="matplotlib is not installed "
                        "(make venv installs it; pip install "
                        "sharptask[plot])")
    with st.trace() as tr:
        tasks = [st.Task.run(_work, i) for i in range(10)]
        st.Task.when_all(tasks).wait(20)
        st.Task.delay(0.005).wait(10)
    path = tmp_path / "trace.png"
    tr.save_png(path, title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


@pytest.mark.timeout(60)
@_DRAWS_WITH_NUMPY
def test_D2_save_png_resume_arrows_synthetic(tmp_path):
    """D2 (synthetic events): the
    timeline draws method steps and the suspend -> resume arrow."""
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    from sharptask._trace import _png
    events, threads = _synthetic_method_events()
    path = tmp_path / "steps.png"
    _png(events, threads, 0, path, "synthetic")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.timeout(60)
def test_D2_save_png_without_matplotlib_names_the_extra(tmp_path):
    """D2: without matplotlib, save_png raises ImportError naming
    `pip install sharptask[plot]`."""
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "import sharptask as st\n"
        "with st.trace() as tr:\n"
        "    st.Task.run(abs, -1).wait(10)\n"
        "try:\n"
        f"    tr.save_png({str(tmp_path / 'x.png')!r})\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n")
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "ImportError:" in proc.stdout
    assert "pip install sharptask[plot]" in proc.stdout
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------- command line

_SCRIPT = """\
import sys
import sharptask as st
print("argv", sys.argv[1:])
tasks = [st.Task.run(abs, -i) for i in range(5)]
print("sum", sum(st.Task.when_all(tasks).result))
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


@pytest.mark.timeout(60)
def test_D2_cli_trace_script_writes_json_and_png(tmp_path):
    """D2: `python -m sharptask trace SCRIPT [ARGS...] -o FILE.json --png
    FILE.png` runs the script (its arguments, its exit status) under
    trace() and writes both files."""
    script = tmp_path / "work.py"
    script.write_text(_SCRIPT)
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    args = ["-m", "sharptask", "trace", script, "3", "-o", out]
    have_mpl = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        have_mpl = False
    if have_mpl:
        args += ["--png", png]
    proc = _run(*args, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr  # the script's status
    assert "argv ['3']" in proc.stdout
    assert "sum 10" in proc.stdout
    assert "ui.perfetto.dev" in proc.stderr
    data = json.loads(out.read_text("utf-8"))
    names = {e["name"] for e in data["traceEvents"]}
    assert {"pool item", "pool.item.queued", "thread_name"} <= names
    if have_mpl:
        assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.timeout(60)
def test_D2_cli_trace_options_before_script_and_errors(tmp_path):
    """D2: options before SCRIPT leave every later argument to the script;
    usage errors exit 2 and say why."""
    script = tmp_path / "work.py"
    script.write_text(_SCRIPT)
    out = tmp_path / "o.json"
    proc = _run("-m", "sharptask", "trace", "-o", out, script, "0", "-o",
                "x", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "argv ['0', '-o', 'x']" in proc.stdout
    assert json.loads(out.read_text("utf-8"))["traceEvents"]
    for bad, why in ((["-o", out], "no script"),
                     ([script], "nothing to write"),
                     (["--bogus", script], "unknown option"),
                     ([tmp_path / "missing.py", "-o", out], "no such script"),
                     (["--buffer-size", "x", "-o", out, script],
                      "--buffer-size")):
        proc = _run("-m", "sharptask", "trace", *bad, cwd=tmp_path)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert why in proc.stderr, (bad, proc.stderr)
    assert parse_command(["s.py", "a", "--png", "p.png", "-o", "j.json"]) \
        == ({"png": "p.png", "output": "j.json"}, ["s.py", "a"])
    with pytest.raises(_Usage):
        parse_command(["-o"])


@pytest.mark.timeout(120)
def test_D2_cli_demo_trace(tmp_path):
    """D2: `python -m sharptask demo NAME --trace FILE.json [--png ...]`
    runs the demo under trace() and saves it."""
    out, png = tmp_path / "demo.json", tmp_path / "demo.png"
    args = ["-m", "sharptask", "demo", "state-machine", "--trace", out]
    try:
        import matplotlib  # noqa: F401
        args += ["--png", png]
    except ImportError:
        png = None
    proc = _run(*args, cwd=tmp_path, timeout=100)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text("utf-8"))
    assert any(e["ph"] == "M" and e["name"] == "thread_name"
               for e in data["traceEvents"])
    assert len(data["traceEvents"]) > 5
    if png is not None:
        assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.timeout(120)
def test_D2_bench_WT_reports_trace_on_off_ratio(tmp_path):
    """D2 / BENCHMARKS.md WT: `python -m sharptask bench --only WT` runs
    W5 with tracing on and off side by side and prints the ratio (the
    ratio's value is a benchmark, not a test)."""
    proc = _run("-m", "sharptask", "bench", "--quick", "--no-progress",
                "--only", "WT", "--out", tmp_path, timeout=110)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines()
             if line.startswith("WT") and "ratio sharptask/peer = " in line]
    assert lines, proc.stdout
    assert "tracing on" in lines[0] and "tracing off" in lines[0]


@pytest.mark.timeout(60)
def test_D2_stress_threads_record_while_traces_start_stop_and_drain():
    """D2 stress: Python threads keep queueing pool work and blocking on
    it while the main thread starts and stops short traces (small buffers,
    read while recording): no crash, no hang, every trace's events in time
    order with their threads named, and recording off at the end."""
    stop = threading.Event()
    errors: list = []

    def producer():
        try:
            while not stop.is_set():
                tasks = [st.Task.run(abs, -i) for i in range(8)]
                st.Task.when_all(tasks).wait(10)
                st.Task.delay(0.0005).wait(10)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=producer, name=f"producer-{i}")
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 2.0
        rounds = 0
        while time.monotonic() < deadline:
            with st.trace(buffer_size=64 if rounds % 2 else 4096) as tr:
                time.sleep(0.01)
                partial = len(tr.events)
                time.sleep(0.01)
            events = tr.events
            assert len(events) >= partial
            ts = [e.ts_ns for e in events]
            assert ts == sorted(ts)
            assert all(tr.threads[e.thread_id] == e.thread_name
                       for e in events)
            assert tr.dropped >= 0
            rounds += 1
        assert rounds >= 5
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert not _native._trace_active()


# ------------------------------------------------- the binding's events

def _of(events, task_id, *names):
    """The events about task_id, only those named (all if none)."""
    return [e for e in events if e.task_id == task_id
            and (not names or e.name in names)]


@st.async_method
async def _suspends_once(delay_box):
    d = st.Task.delay(0.01)
    delay_box.append(d)
    await d
    return threading.get_native_id()


@pytest.mark.timeout(30)
def test_D2_method_events_follow_one_task_across_threads():
    """D2: an async method that suspends on the main thread and resumes on
    a pool thread records method.start and method.suspend (awaiting the
    delay's Task) on the main thread, then method.resume and
    method.complete on the pool thread, all with the id of the Task the
    call returns (assigned at method.start, before the Task existed:
    task.created carries the same id, later); suspend before resume,
    complete before task.completed (cause order)."""
    me = threading.get_native_id()
    box: list = []
    with st.trace() as tr:
        t = _suspends_once(box)
        resumed_on = t.wait(10) and t.result
    events = tr.events
    tid = t.id
    assert tid
    mine = _of(events, tid, "method.start", "method.suspend",
               "method.resume", "method.complete")
    assert [e.name for e in mine] == ["method.start", "method.suspend",
                                      "method.resume", "method.complete"]
    start, suspend, resume, complete = mine
    assert start.thread_id == suspend.thread_id == me
    assert resume.thread_id == complete.thread_id == resumed_on != me
    assert resume.thread_name.startswith("sharptask-")
    assert start.ts_ns <= suspend.ts_ns < resume.ts_ns <= complete.ts_ns
    assert suspend.args["awaits"] == "sharptask.Task"
    assert suspend.args["awaited_task"] == box[0].id
    created = _of(events, tid, "task.created")
    assert len(created) == 1 and created[0].thread_id == me
    assert start.ts_ns <= created[0].ts_ns <= suspend.ts_ns
    done = _of(events, tid, "task.completed")
    assert len(done) == 1 and done[0].ts_ns >= complete.ts_ns
    assert done[0].args["status"] == "RAN_TO_COMPLETION"
    # resumed inline by the thread that completed the delay's Task
    inline = _of(events, tid, "continuation.inline")
    assert inline and inline[0].thread_id == resumed_on
    assert suspend.ts_ns < inline[0].ts_ns <= resume.ts_ns
    # the delay's own Task: created and completed with its id too
    assert _of(events, box[0].id, "task.created")
    assert _of(events, box[0].id, "task.completed")


@pytest.mark.timeout(30)
def test_D2_method_that_completes_synchronously_start_and_complete():
    """D2: a method that never suspends records method.start and
    method.complete with the same (new) id on the calling thread, no
    suspend, no resume."""
    @st.async_method
    async def sync(x):
        return x * 2

    with st.trace() as tr:
        assert sync(21).result == 42
    steps = [e for e in tr.events if e.name.startswith("method.")]
    assert [e.name for e in steps] == ["method.start", "method.complete"]
    assert steps[0].task_id is not None
    assert steps[0].task_id == steps[1].task_id
    assert steps[0].thread_id == threading.get_native_id()


@pytest.mark.timeout(30)
def test_D2_value_task_methods_record_the_same_steps():
    """D2 (V5 modes share the driver): @async_value_method, pooled or not,
    records start/suspend/resume/complete with one id across threads."""
    for pooling in (False, True):
        @st.async_value_method(pooling=pooling)
        async def vm():
            await st.Task.delay(0.005)
            return threading.get_native_id()

        with st.trace() as tr:
            vt = vm()
            other = vt.as_task().result
        steps = [e for e in tr.events if e.name.startswith("method.")]
        assert [e.name for e in steps] == [
            "method.start", "method.suspend", "method.resume",
            "method.complete"], pooling
        assert len({e.task_id for e in steps}) == 1, pooling
        assert steps[0].task_id is not None
        assert steps[2].thread_id == other != threading.get_native_id()


@pytest.mark.timeout(30)
def test_D2_task_run_of_an_async_def_carries_the_run_tasks_id():
    """D2: Task.run(async def): the method's events carry the id of the
    Task that Task.run returned (the box is that Task), created on the
    calling thread, started on a pool thread."""
    async def body():
        await st.Task.delay(0.005)
        return 1

    with st.trace() as tr:
        t = st.Task.run(body)
        assert t.result == 1
    mine = _of(tr.events, t.id)
    names = [e.name for e in mine]
    assert names[0] == "task.created"
    assert mine[0].thread_id == threading.get_native_id()
    for n in ("method.start", "method.suspend", "method.resume",
              "method.complete", "task.completed"):
        assert n in names, names
    assert _of(tr.events, t.id, "method.start")[0].thread_name.startswith(
        "sharptask-")


@pytest.mark.timeout(30)
def test_D2_context_post_for_a_single_thread_context():
    """D2: a method started on a UiThread's SingleThreadSynchronizationContext
    suspends there; the pool thread that completes what it awaited
    records continuation.queued then context.post (args: the context's
    type, the method's task id), before the UI thread records
    method.resume."""
    with st.UiThread(name="ui-trace") as ui:
        with st.trace() as tr:
            box: list = []
            t = ui.invoke(_suspends_once, box)
            ran_on = t.result
    ui_tid = ran_on
    events = tr.events
    assert tr.threads[ui_tid] == "ui-trace"  # named even though it ended
    posts = _of(events, t.id, "context.post")
    assert len(posts) == 1
    post = posts[0]
    assert post.args == {
        "context": "sharptask.SingleThreadSynchronizationContext"}
    assert post.thread_id != ui_tid
    queued = _of(events, t.id, "continuation.queued")
    assert queued and queued[0].ts_ns <= post.ts_ns
    assert queued[0].args["target"] == \
        "sharptask.SingleThreadSynchronizationContext"
    resume = _of(events, t.id, "method.resume")
    assert len(resume) == 1 and resume[0].thread_id == ui_tid
    assert post.ts_ns < resume[0].ts_ns
    suspend = _of(events, t.id, "method.suspend")[0]
    assert suspend.thread_id == ui_tid
    # UiThread.invoke posts its callback: context.post without a task
    assert any(e.name == "context.post" and e.task_id is None
               and e.thread_id == threading.get_native_id()
               for e in events)


@pytest.mark.timeout(30)
def test_D2_deadlock_detected_recorded_on_the_blocked_thread():
    """D2 / C6: the sync-over-async deadlock on a UI thread records
    wait.block then deadlock.detected (with the id of the method's task)
    on the UI thread, before DeadlockError is raised there."""
    assert st.get_deadlock_detection() == "raise"

    def click(box):
        box.append(None)
        t = _suspends_once([])
        box[0] = t
        return t.result

    box: list = []
    with st.UiThread(name="ui-deadlock") as ui:
        with st.trace() as tr:
            with pytest.raises(st.DeadlockError):
                ui.invoke(click, box)
            box[0].wait(10)  # its continuation ran on the UI later
    t = box[0]
    found = _of(tr.events, t.id, "deadlock.detected")
    assert len(found) == 1
    ui_tid = found[0].thread_id
    assert tr.threads[ui_tid] == "ui-deadlock"
    block = _of(tr.events, t.id, "wait.block")
    assert block and block[0].thread_id == ui_tid
    assert block[0].ts_ns <= found[0].ts_ns
    suspend = _of(tr.events, t.id, "method.suspend")[0]
    resume = _of(tr.events, t.id, "method.resume")[0]
    assert suspend.thread_id == resume.thread_id == ui_tid
    assert found[0].ts_ns < resume.ts_ns


@pytest.mark.timeout(30)
def test_D2_yield_and_custom_awaiter_suspend_and_resume():
    """D2: Task.yield_() suspends (awaits the YieldAwaitable) and queues
    its continuation; an awaiter with on_completed records its type."""
    class Later:
        def __await__(self):
            return (yield self)

        def on_completed(self, action):
            threading.Timer(0.005, action).start()

    @st.async_method
    async def m():
        await st.Task.yield_()
        await Later()
        return 3

    with st.trace() as tr:
        t = m()
        assert t.result == 3
    mine = _of(tr.events, t.id)
    suspends = [e for e in mine if e.name == "method.suspend"]
    assert [e.args["awaits"] for e in suspends] == [
        "sharptask.YieldAwaitable", "Later"]
    assert [e.name for e in mine if e.name.startswith("method.")] == [
        "method.start", "method.suspend", "method.resume",
        "method.suspend", "method.resume", "method.complete"]
    assert _of(tr.events, t.id, "continuation.queued")


@pytest.mark.timeout(30)
def test_D2_off_records_nothing_and_assigns_no_id():
    """D2: with no trace active the event sites record nothing, and a
    method's Task gets no id until it is read (ids stay lazy); while
    tracing, the id is assigned at method.start."""
    with st.trace():
        pass
    assert _native._trace_collect()[0] == []
    box: list = []
    t1 = _suspends_once(box)          # off: no id drawn
    t2 = st.Task.delay(0.001)
    id2 = t2.id
    assert t1.id > id2                # drawn only now, lazily
    t1.wait(10)
    raw, _threads, dropped = _native._trace_collect()
    assert raw == [] and dropped == 0
    with st.trace():
        t3 = _suspends_once(box)      # on: drawn at method.start
        t4 = st.Task.delay(0.001)
        id4 = t4.id                   # read first, drawn before t3's?
        assert t3.id < id4            # no: t3's was drawn at its start
        t3.wait(10)


@pytest.mark.timeout(30)
def test_D2_json_resume_flow_pairs_cross_threads(tmp_path):
    """D2: save() draws a flow ("s" then "f", same id, named "resume")
    from the method.suspend on the main thread to its method.resume on a
    pool thread, each binding to the method-step slice around it."""
    with st.trace() as tr:
        t = _suspends_once([])
        resumed_on = t.result
    path = tmp_path / "m.json"
    tr.save(path)
    data = json.loads(path.read_text("utf-8"))
    flows = _check_chrome(data, tr.threads)
    me = threading.get_native_id()
    resumes = [(s, f) for s, f in flows.values() if s["name"] == "resume"]
    assert len(resumes) == 1
    s, f = resumes[0]
    assert s["id"] == f["id"]
    assert (s["tid"], f["tid"]) == (me, resumed_on)
    steps = [e for e in data["traceEvents"] if e["ph"] == "X"
             and e["args"].get("task_id") == t.id]
    assert len(steps) == 2
    first, second = sorted(steps, key=lambda e: e["ts"])
    assert first["tid"] == me and first["args"]["ended_by"] == "suspend"
    assert second["tid"] == resumed_on
    assert first["ts"] <= s["ts"] <= first["ts"] + first["dur"]
    assert f["ts"] == second["ts"]


@pytest.mark.timeout(120)
def test_D2_demo_deadlock_trace_shows_the_hang(tmp_path):
    """D2 / issue 12: `demo deadlock --trace F.json --png F.png` also saves
    the hanging child's own trace (F-hang.json, F-hang.png): its UI thread
    blocks in .result and never wakes, and the method's continuation is
    posted to the UI context and never resumes; the timeline draws it
    waiting in the queue to the end of the recording."""
    out, png = tmp_path / "d.json", tmp_path / "d.png"
    args = ["-m", "sharptask", "demo", "deadlock", "--trace", out]
    try:
        import matplotlib  # noqa: F401
        args += ["--png", png]
    except ImportError:
        png = None
    proc = _run(*args, cwd=tmp_path, timeout=110)
    assert proc.returncode == 0, proc.stderr
    main = json.loads(out.read_text("utf-8"))["traceEvents"]
    assert any(e["name"] == "deadlock.detected" for e in main)  # part 1
    hang = json.loads((tmp_path / "d-hang.json").read_text("utf-8"))
    evs = hang["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in evs
             if e["name"] == "thread_name"}
    ui = [tid for tid, n in names.items() if n == "MainThread"]
    assert len(ui) == 1
    ui = ui[0]
    on_ui = [e["name"] for e in evs if e["tid"] == ui and e["ph"] == "i"]
    assert "wait.block" in on_ui and "wait.wake" not in on_ui
    posts = [e for e in evs if e["name"] == "context.post"
             and "task_id" in e["args"]]
    assert len(posts) == 1 and posts[0]["tid"] != ui
    task = posts[0]["args"]["task_id"]
    steps = [e for e in evs if e["ph"] == "X"
             and e["args"].get("task_id") == task]
    assert [s["args"]["ended_by"] for s in steps] == ["suspend"]
    assert steps[0]["tid"] == ui
    assert not [e for e in evs if e["ph"] == "f"
                and e["name"] == "resume"]
    if png is not None:
        assert (tmp_path / "d-hang.png").read_bytes()[:4] == b"\x89PNG"
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_D2_unresumed_post_is_a_waiting_span_synthetic():
    """D2 (synthetic): a continuation posted to a context and never resumed
    is drawn as waiting on the suspended thread's lane from the post to
    the end of the recording (with a post arrow); one that resumes waits
    from its post to its resume, on the resuming thread."""
    from sharptask._trace import _analyse
    ui, pool = 1, 2

    def ev(name, ts, tid, task, **args):
        return TraceEvent(name, ts, tid, "t", task, args)
    events = [
        ev("method.start", 0, ui, 5),
        ev("method.suspend", 10, ui, 5, awaits="sharptask.Task"),
        ev("method.start", 11, ui, 6),
        ev("method.suspend", 12, ui, 6, awaits="sharptask.Task"),
        ev("wait.block", 20, ui, 5, on="task"),
        ev("context.post", 50, pool, 6, context="C"),
        ev("method.resume", 60, ui, 6),
        ev("method.complete", 61, ui, 6),
        ev("context.post", 70, pool, 5, context="C"),
    ]
    spans, _instants, flows = _analyse(events, end_ns=500)
    waiting = sorted((s.task_id, s.tid, s.start, s.end, s.done)
                     for s in spans if s.kind == "waiting")
    assert waiting == [(5, ui, 70, 500, False), (6, ui, 50, 60, True)]
    blocked = [s for s in spans if s.kind == "blocked"]
    assert [(b.start, b.end, b.done) for b in blocked] == [(20, 500, False)]
    posts = [(f.src_tid, f.dst_tid) for f in flows if f.kind == "post"]
    assert posts == [(pool, ui)]
    data = _chrome(events, {ui: "UI", pool: "w"}, 0, end_ns=500)
    assert not [e for e in data["traceEvents"]
                if e.get("name") == "post"]  # PNG only


@pytest.mark.timeout(60)
def test_D2_stress_method_events_from_many_threads():
    """D2 stress: 4 threads call async methods that suspend (resumed on
    pool threads, some nested) while tracing; every method's events carry
    one id, no two calls share an id, each method's steps are in order
    (start, suspend, resume..., complete) and its task.created (one) and
    task.completed carry the same id."""
    @st.async_method
    async def leaf(i):
        await st.Task.delay(0.0005)
        return i

    @st.async_method
    async def node(i):
        a = await leaf(i)
        await st.Task.yield_()
        return a + 1

    errors: list = []
    tasks: list = []
    lock = threading.Lock()

    def caller(k):
        try:
            mine = [node(k * 1000 + j) for j in range(60)]
            for j, t in enumerate(mine):
                assert t.wait(20) and t.result == k * 1000 + j + 1
            with lock:
                tasks.extend(mine)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with st.trace(buffer_size=1 << 18) as tr:
        threads = [threading.Thread(target=caller, args=(k,))
                   for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
    assert not errors, errors
    assert tr.dropped == 0
    ids = [t.id for t in tasks]
    assert len(set(ids)) == len(ids) == 240
    by_task: dict = {}
    for e in tr.events:
        if e.task_id is not None:
            by_task.setdefault(e.task_id, []).append(e)
    for tid in ids:
        evs = by_task[tid]
        steps = [e.name for e in evs if e.name.startswith("method.")]
        assert steps[0] == "method.start" and steps[-1] == "method.complete"
        assert steps.count("method.suspend") == 2
        assert steps.count("method.resume") == 2
        assert [e.name for e in evs].count("task.created") == 1
        assert [e.name for e in evs].count("task.completed") == 1


@pytest.mark.timeout(30)
def test_D2_continue_with_queued_and_inline_continuations():
    """D2: a continue_with continuation that is scheduled (the default
    options) records continuation.queued with its own task id, before it
    runs; one with EXECUTE_SYNCHRONOUSLY records continuation.inline on the
    completing thread instead."""
    source = st.TaskCompletionSource()
    ran_on = []
    with st.trace() as tr:
        queued = source.task.continue_with(
            lambda t: ran_on.append(threading.get_ident()))
        inline = source.task.continue_with(
            lambda t: None,
            options=st.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY)
        source.set_result(1)
        queued.wait(10)
        inline.wait(10)
    events = tr.events
    me = threading.get_native_id()
    q = _of(events, queued.id, "continuation.queued")
    assert len(q) == 1 and q[0].thread_id == me
    assert not _of(events, queued.id, "continuation.inline")
    done = _of(events, queued.id, "task.completed")
    assert done and q[0].ts_ns <= done[0].ts_ns
    i = _of(events, inline.id, "continuation.inline")
    assert len(i) == 1 and i[0].thread_id == me
    assert not _of(events, inline.id, "continuation.queued")
    assert ran_on and ran_on[0] != threading.get_ident()


@pytest.mark.timeout(30)
def test_D2_task_whose_id_was_read_before_the_trace_keeps_it_in_events():
    """D2: every event about a task carries its id: a task made and whose
    id was read before the trace started, completed while it records, has
    its task.completed (recorded by the core) under that id."""
    source = st.TaskCompletionSource()
    tid = source.task.id
    with st.trace() as tr:
        source.set_result(1)
    done = _of(tr.events, tid, "task.completed")
    assert len(done) == 1
    assert done[0].args["status"] == "RAN_TO_COMPLETION"
