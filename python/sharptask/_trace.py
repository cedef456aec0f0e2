"""`sharptask.trace()`: an event trace of tasks, threads and the pool (SPEC
D2), saved as Chrome trace JSON (Perfetto, chrome://tracing) or drawn as a
per-thread timeline PNG; and the command line
``python -m sharptask trace SCRIPT [ARGS...] -o FILE.json [--png FILE.png]``.

The recorder lives in the C core (csrc/core/st_trace.c): each thread
appends to its own ring buffer without a lock and without the interpreter
lock; this module drains the buffers (through ``_native._trace_collect``)
and turns the events into :class:`TraceEvent` objects.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from . import _native
from ._enums import TaskStatus
from ._errors import InvalidOperationError

__all__ = ["Trace", "TraceEvent", "trace"]

#: Events each thread keeps between two collects (the oldest are dropped
#: and counted beyond it): 64 Ki events, 2 MiB per recording thread.
DEFAULT_BUFFER_SIZE = 1 << 16
_MAX_BUFFER_SIZE = 1 << 24

_NAMES: tuple = _native._trace_names()

_QUEUES = {0: "global", 1: "local", 2: "dedicated"}
_REASONS = {1: "starvation", 2: "blocking"}
_WAIT_ON = {1: "task", 2: "semaphore"}


# ------------------------------------------------------------------ events

@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One recorded event (SPEC D2).

    ``name`` is one of D2's stable dotted names (``"pool.item.start"``),
    ``ts_ns`` a ``time.monotonic_ns()`` timestamp, ``thread_id`` the OS
    thread id (``threading.get_native_id()``), ``thread_name`` its name,
    ``task_id`` the id of the task the event is about (``Task.id``) or
    ``None``, and ``args`` what else the event carries, by name: for
    example ``{"status": "FAULTED"}`` on ``task.completed`` or
    ``{"reason": "starvation", "threads": 3}`` on
    ``pool.thread.injected``.
    """

    name: str
    ts_ns: int
    thread_id: int
    thread_name: str
    task_id: int | None
    args: dict[str, Any]


def _string(sid: int) -> str | None:
    return _native._trace_string(sid) if sid else None


def _args(name: str, ts: int, arg: int, arg2: int) -> dict[str, Any]:
    """The named arguments of one raw event (st_trace.h lists them)."""
    if name.startswith("pool.item."):
        out: dict[str, Any] = {"item": arg}
        if name == "pool.item.queued":
            out["queue"] = _QUEUES.get(arg2, str(arg2))
        return out
    if name == "task.completed":
        try:
            return {"status": TaskStatus(arg2).name}
        except ValueError:
            return {"status": arg2}
    if name == "pool.thread.injected":
        return {"reason": _REASONS.get(arg2, str(arg2)), "threads": arg}
    if name == "timer.fired":
        return {"deadline_ns": arg, "late_ns": max(0, ts - arg)}
    if name in ("wait.block", "wait.wake"):
        out = {"on": _WAIT_ON.get(arg2, str(arg2))}
        if name == "wait.wake":
            out["completed" if arg2 == 1 else "acquired"] = bool(arg)
        return out
    if name == "method.suspend":
        out = {}
        awaits = _string(arg2)
        if awaits is not None:
            out["awaits"] = awaits
        if arg:
            out["awaited_task"] = arg  # the id of the Task it awaits
        return out
    if name == "context.post":
        context = _string(arg2)
        return {"context": context} if context is not None else {}
    if name == "continuation.queued":
        target = _string(arg2)
        return {"target": target} if target is not None else {}
    if arg or arg2:
        return {"arg": arg, "arg2": arg2}
    return {}


class _NameHook:
    """While a trace records, each thread started from the threading module
    tells its native id and name as it starts (threading.setprofile), so
    that a thread that ends before the trace is collected keeps its Python
    name ("UI") rather than the OS's ("python").  Installed only when no
    threading profile function is set; the hook removes itself from each
    thread at its first call."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self.installed = False

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        t = threading.current_thread()
        self.names.setdefault(threading.get_native_id(), t.name)

    def install(self) -> None:
        if threading.getprofile() is None:
            threading.setprofile(self)
            self.installed = True

    def remove(self) -> None:
        if self.installed and threading.getprofile() is self:
            threading.setprofile(None)
        self.installed = False


def _python_thread_names() -> dict[int, str]:
    """{native id: name} of the live Python threads."""
    out = {}
    for t in threading.enumerate():
        native = getattr(t, "native_id", None)
        if native is not None:
            out[native] = t.name
    return out


# ------------------------------------------------------------------- trace

class Trace:
    """A recording of events from every thread (SPEC D2), made by
    :func:`trace`; use it as a context manager::

        with sharptask.trace() as tr:
            sharptask.Task.run(work).wait()
        tr.save("run.json")        # open it in https://ui.perfetto.dev

    After the ``with`` block (or during it, for what was recorded so far):
    ``events`` is the list of :class:`TraceEvent` in time order,
    ``threads`` maps each recording thread's id to its name, and
    ``dropped`` counts the events lost because a thread's buffer was full
    (its oldest events go first; recording never blocks).
    """

    def __init__(self, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int):
            raise TypeError(f"buffer_size must be an int, not "
                            f"{type(buffer_size).__name__}")
        if not 1 <= buffer_size <= _MAX_BUFFER_SIZE:
            raise ValueError(f"buffer_size must be between 1 and "
                             f"{_MAX_BUFFER_SIZE}, not {buffer_size!r}")
        self._buffer_size = buffer_size
        self._events: list[TraceEvent] = []
        self._threads: dict[int, str] = {}
        self._dropped = 0
        self._state = "new"  # new -> recording -> done
        self._lock = threading.Lock()
        self._py_names: dict[int, str] = {}
        self._name_hook = _NameHook(self._py_names)
        self._end_ns = 0  # when the last drain ran: where open spans end

    def __repr__(self) -> str:
        return (f"<sharptask.Trace {self._state}: {len(self._events)} "
                f"events, {len(self._threads)} threads, {self._dropped} "
                "dropped>")

    # -- recording

    def __enter__(self) -> "Trace":
        if self._state != "new":
            raise InvalidOperationError(
                "a Trace records once: call sharptask.trace() again")
        self._py_names.update(_python_thread_names())
        _native._trace_start(self._buffer_size)  # InvalidOperationError
        self._name_hook.install()
        self._state = "recording"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._state != "recording":
            return
        _native._trace_stop()
        self._name_hook.remove()
        self._drain()
        self._state = "done"

    def _drain(self) -> None:
        """Move what the core recorded since the last drain into events."""
        with self._lock:
            self._py_names.update(_python_thread_names())
            raw, threads, dropped = _native._trace_collect()
            self._end_ns = time.monotonic_ns()
            self._dropped += dropped
            for tid, name, named, _exited in threads:
                # the core's name for its own threads ("sharptask-worker-
                # 2"), else Python's ("MainThread"), else the OS's
                if named or tid not in self._py_names:
                    label = name or f"thread {tid}"
                else:
                    label = self._py_names[tid]
                # the first name sticks: every event of a thread, from any
                # drain, carries the same one
                self._threads.setdefault(tid, label)
            names = _NAMES
            fresh = [
                TraceEvent(names[n] if 0 < n < len(names) else f"event.{n}",
                           ts, tid, self._threads.get(tid, f"thread {tid}"),
                           task or None, _args(names[n] if 0 < n < len(names)
                                               else "", ts, arg, arg2))
                for n, ts, tid, task, arg, arg2 in raw]
            if fresh:
                had = bool(self._events)
                self._events.extend(fresh)
                if had:  # a late event of one drain may precede the last
                    self._events.sort(key=lambda e: e.ts_ns)

    def _current(self) -> None:
        if self._state == "recording":
            self._drain()

    @property
    def events(self) -> list[TraceEvent]:
        """Every event recorded, in time order (a new list)."""
        self._current()
        return list(self._events)

    @property
    def threads(self) -> dict[int, str]:
        """{thread id: name} of every thread that recorded an event."""
        self._current()
        return dict(self._threads)

    @property
    def dropped(self) -> int:
        """Events lost to a full buffer (the oldest of their thread)."""
        self._current()
        return self._dropped

    # -- output

    def to_chrome(self) -> dict[str, Any]:
        """The trace as a Chrome trace-event object (what :meth:`save`
        writes)."""
        events = self.events
        return _chrome(events, self.threads, self.dropped,
                       end_ns=self._end_ns)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the trace as Chrome trace-event JSON, which Perfetto
        (https://ui.perfetto.dev) and chrome://tracing open: pool items and
        method steps as complete (``"X"``) slices, the other events as
        instants, a flow arrow from each ``method.suspend`` to its
        ``method.resume`` (and from each ``pool.item.queued`` to its
        ``pool.item.start``), thread names as metadata; timestamps in
        microseconds from the first event."""
        data = self.to_chrome()
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.write("\n")

    def save_png(self, path: str | os.PathLike[str], *,
                 title: str | None = None) -> None:
        """Draw the trace as a per-thread timeline PNG with matplotlib: one
        lane per thread, slices coloured by kind (pool items, method steps,
        blocked waits), markers for the instants, an arrow from each
        suspension to its resumption, a legend.  Without matplotlib it
        raises ImportError naming the extra to install
        (``pip install sharptask[plot]``)."""
        events = self.events
        _png(events, self.threads, self.dropped, path, title,
             end_ns=self._end_ns)


def trace(*, buffer_size: int = DEFAULT_BUFFER_SIZE) -> Trace:
    """Record what tasks, threads and the pool do (SPEC D2)::

        with sharptask.trace() as tr:
            ...
        tr.events, tr.threads, tr.dropped
        tr.save("trace.json"); tr.save_png("trace.png")

    Records, from every thread, D2's events with a nanosecond monotonic
    timestamp, the OS thread id and name, and the task id where there is
    one.  Each thread keeps at most ``buffer_size`` events between two
    collects (the ``with`` block's end collects; reading ``events`` inside
    it too); beyond that its oldest events are dropped and counted in
    ``dropped``, never waited for.  One trace records at a time
    (InvalidOperationError otherwise).  Off, each event site costs one
    predictable branch."""
    return Trace(buffer_size)


# ----------------------------------------------------------- interpretation

@dataclass
class _Span:
    kind: str          # "pool item", "method step", "blocked", "waiting"
    tid: int
    start: int
    end: int
    task_id: int | None
    args: dict[str, Any]
    done: bool = True  # False: still open when the trace ended


@dataclass
class _Flow:
    kind: str  # "resume", "queue", "post"
    src_tid: int
    src_ts: int
    dst_tid: int
    dst_ts: int


_STEP_OPEN = ("method.start", "method.resume")
_STEP_CLOSE = ("method.suspend", "method.complete")


def _analyse(events: Sequence[TraceEvent], end_ns: int = 0):
    """Spans (pool items, method steps, blocked waits, continuations
    waiting in a context's queue), instants, flows.

    A continuation posted to a context (context.post with a task id) waits
    from the post to its method.resume; one never resumed waits to the end
    of the trace, drawn on the lane of the thread where the method
    suspended (the context's thread, for a context that has one)."""
    spans: list[_Span] = []
    instants: list[TraceEvent] = []
    flows: list[_Flow] = []
    # what is still open ends where the recording was last collected
    end_ts = max(events[-1].ts_ns if events else 0, end_ns)
    items: dict[tuple[int, int], TraceEvent] = {}
    steps: dict[int, list[TraceEvent]] = {}
    blocks: dict[int, list[TraceEvent]] = {}
    queued: dict[int, TraceEvent] = {}
    suspended: dict[int, TraceEvent] = {}
    posted: dict[int, TraceEvent] = {}
    for ev in events:
        name, tid = ev.name, ev.thread_id
        if name == "context.post" and ev.task_id is not None:
            posted[ev.task_id] = ev
            instants.append(ev)
        elif name == "pool.item.queued":
            queued[ev.args.get("item", 0)] = ev
            instants.append(ev)
        elif name == "pool.item.start":
            item = ev.args.get("item", 0)
            items[(tid, item)] = ev
            src = queued.pop(item, None)
            if src is not None:
                flows.append(_Flow("queue", src.thread_id, src.ts_ns, tid,
                                   ev.ts_ns))
        elif name == "pool.item.end":
            start = items.pop((tid, ev.args.get("item", 0)), None)
            if start is None:
                instants.append(ev)  # its start was dropped
            else:
                spans.append(_Span("pool item", tid, start.ts_ns, ev.ts_ns,
                                   None, dict(start.args)))
        elif name in _STEP_OPEN:
            steps.setdefault(tid, []).append(ev)
            if name == "method.resume" and ev.task_id is not None:
                src = suspended.pop(ev.task_id, None)
                if src is not None:
                    flows.append(_Flow("resume", src.thread_id, src.ts_ns,
                                       tid, ev.ts_ns))
                post = posted.pop(ev.task_id, None)
                if post is not None:
                    spans.append(_Span("waiting", tid, post.ts_ns, ev.ts_ns,
                                       ev.task_id, dict(post.args)))
        elif name in _STEP_CLOSE:
            stack = steps.get(tid, [])
            for i in range(len(stack) - 1, -1, -1):
                if stack[i].task_id == ev.task_id:
                    start = stack.pop(i)
                    args = dict(ev.args)
                    args["ended_by"] = name.rsplit(".", 1)[1]
                    spans.append(_Span("method step", tid, start.ts_ns,
                                       ev.ts_ns, ev.task_id, args))
                    break
            else:
                instants.append(ev)
            if name == "method.suspend" and ev.task_id is not None:
                suspended[ev.task_id] = ev
        elif name == "wait.block":
            blocks.setdefault(tid, []).append(ev)
            instants.append(ev)
        elif name == "wait.wake":
            stack = blocks.get(tid, [])
            if stack:
                start = stack.pop()
                spans.append(_Span("blocked", tid, start.ts_ns, ev.ts_ns,
                                   ev.task_id, dict(ev.args)))
            instants.append(ev)
        else:
            instants.append(ev)
    for (tid, _item), start in items.items():
        spans.append(_Span("pool item", tid, start.ts_ns, end_ts, None,
                           dict(start.args), done=False))
    for tid, stack in steps.items():
        for start in stack:
            spans.append(_Span("method step", tid, start.ts_ns, end_ts,
                               start.task_id, {}, done=False))
    for tid, stack in blocks.items():
        for start in stack:
            spans.append(_Span("blocked", tid, start.ts_ns, end_ts,
                               start.task_id, dict(start.args), done=False))
    for task_id, post in posted.items():
        src = suspended.get(task_id)
        if src is not None:  # posted, never resumed: it waits still
            spans.append(_Span("waiting", src.thread_id, post.ts_ns, end_ts,
                               task_id, dict(post.args), done=False))
            flows.append(_Flow("post", post.thread_id, post.ts_ns,
                               src.thread_id, post.ts_ns))
    return spans, instants, flows


def _lanes(events: Sequence[TraceEvent], threads: dict[int, str]):
    """Thread ids in the order of their first event."""
    order: dict[int, None] = {}
    for ev in events:
        order.setdefault(ev.thread_id, None)
    for tid in threads:
        order.setdefault(tid, None)
    return list(order)


# -------------------------------------------------------------- Chrome JSON

def _chrome(events: Sequence[TraceEvent], threads: dict[int, str],
            dropped: int, end_ns: int = 0) -> dict[str, Any]:
    pid = os.getpid()
    t0 = events[0].ts_ns if events else 0

    def us(ns: int) -> float:
        return (ns - t0) / 1000.0

    out: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
         "args": {"name": "sharptask"}}]
    for index, tid in enumerate(_lanes(events, threads)):
        out.append({"name": "thread_name", "ph": "M", "pid": pid,
                    "tid": tid,
                    "args": {"name": threads.get(tid, f"thread {tid}")}})
        out.append({"name": "thread_sort_index", "ph": "M", "pid": pid,
                    "tid": tid, "args": {"sort_index": index}})
    spans, instants, flows = _analyse(events, end_ns)
    for span in spans:
        if span.kind in ("blocked", "waiting"):
            continue  # D2: waits are instants (wait.*, context.post)
        if span.kind == "pool item":
            name, cat = "pool item", "pool"
        else:
            name, cat = f"method (task {span.task_id})", "method"
        args = dict(span.args)
        if span.task_id is not None:
            args["task_id"] = span.task_id
        if not span.done:
            args["unfinished"] = True
        out.append({"name": name, "cat": cat, "ph": "X", "pid": pid,
                    "tid": span.tid, "ts": us(span.start),
                    "dur": (span.end - span.start) / 1000.0, "args": args})
    for ev in instants:
        args = dict(ev.args)
        if ev.task_id is not None:
            args["task_id"] = ev.task_id
        out.append({"name": ev.name, "cat": ev.name.split(".", 1)[0],
                    "ph": "i", "s": "t", "pid": pid, "tid": ev.thread_id,
                    "ts": us(ev.ts_ns), "args": args})
    for fid, flow in enumerate((f for f in flows if f.kind != "post"), 1):
        # The start binds to the slice that encloses it on its thread: a
        # suspension ends its slice, so the arrow leaves just before.
        src_ts = us(flow.src_ts) - (0.001 if flow.kind == "resume" else 0)
        out.append({"name": flow.kind, "cat": "flow", "ph": "s",
                    "id": fid, "pid": pid, "tid": flow.src_tid,
                    "ts": max(src_ts, 0.0)})
        out.append({"name": flow.kind, "cat": "flow", "ph": "f", "bp": "e",
                    "id": fid, "pid": pid, "tid": flow.dst_tid,
                    "ts": us(flow.dst_ts)})
    return {
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {
            "producer": "sharptask.trace (SPEC D2)",
            "clock": "CLOCK_MONOTONIC",
            "t0_ns": t0,
            "events": len(events),
            "dropped": dropped,
        },
    }


# ---------------------------------------------------------------------- PNG

_COLOURS = {
    "pool item": "#4C78A8",
    "method step": "#F58518",
    "blocked": "#BAB0AC",
    "waiting": "#F4A6A6",
}
_MARKERS = {
    # name: (marker, colour, legend label)
    "task.completed": ("o", "#54A24B", "task completed"),
    "timer.fired": ("v", "#B279A2", "timer fired"),
    "context.post": ("D", "#9D755D", "posted to a context"),
    "continuation.queued": ("^", "#72B7B2", "continuation queued"),
    "continuation.inline": ("s", "#72B7B2", "continuation inline"),
    "pool.thread.injected": ("*", "#E45756", "thread injected"),
    "pool.thread.retired": ("x", "#E45756", "thread retired"),
    "deadlock.detected": ("X", "#D62728", "deadlock detected"),
    "task.created": (".", "#54A24B", "task created"),
}
_MAX_QUEUE_ARROWS = 300
_MAX_MARKERS_PER_KIND = 5000


def _png(events: Sequence[TraceEvent], threads: dict[int, str], dropped: int,
         path: str | os.PathLike[str], title: str | None,
         end_ns: int = 0) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise ImportError(
            "Trace.save_png needs matplotlib: install it with "
            "pip install sharptask[plot]") from exc
    lanes = _lanes(events, threads)
    row = {tid: i for i, tid in enumerate(lanes)}
    t0 = events[0].ts_ns if events else 0

    def ms(ns: int) -> float:
        return (ns - t0) / 1e6

    spans, instants, flows = _analyse(events, end_ns)
    height = 1.5 + 0.55 * max(len(lanes), 1)
    fig = Figure(figsize=(12, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    handles: list[Any] = []
    for kind in ("blocked", "pool item", "method step"):
        bars: dict[int, list[tuple[float, float]]] = {}
        for span in spans:
            if span.kind == kind:
                bars.setdefault(span.tid, []).append(
                    (ms(span.start), max(ms(span.end) - ms(span.start),
                                         1e-4)))
        if not bars:
            continue
        height_k = 0.3 if kind == "blocked" else 0.6
        for tid, ranges in bars.items():
            # a thin white edge keeps back-to-back items apart
            ax.broken_barh(ranges, (row[tid] - height_k / 2, height_k),
                           facecolors=_COLOURS[kind],
                           hatch="//" if kind == "blocked" else None,
                           edgecolor="#666666" if kind == "blocked"
                           else "white", linewidth=0.4)
        label = {"blocked": "blocked (wait)", "pool item": "pool item",
                 "method step": "method step"}[kind]
        handles.append(Patch(facecolor=_COLOURS[kind], label=label,
                             hatch="//" if kind == "blocked" else None))
    for name, (marker, colour, label) in _MARKERS.items():
        xs = [ms(ev.ts_ns) for ev in instants if ev.name == name]
        ys = [row[ev.thread_id] for ev in instants if ev.name == name]
        if not xs:
            continue
        # on the lane's centre line, over its slices
        ax.scatter(xs[:_MAX_MARKERS_PER_KIND], ys[:_MAX_MARKERS_PER_KIND],
                   marker=marker, color=colour, s=30, zorder=4,
                   edgecolors="white", linewidths=0.5)
        handles.append(Line2D([], [], marker=marker, color=colour,
                              linestyle="none", label=label))
    waits: dict[int, list[tuple[float, float]]] = {}
    for span in spans:
        if span.kind == "waiting":
            waits.setdefault(span.tid, []).append(
                (ms(span.start), max(ms(span.end) - ms(span.start), 1e-4)))
    for tid, ranges in waits.items():
        # a strip above the lane: the continuation queued for this thread
        ax.broken_barh(ranges, (row[tid] - 0.46, 0.14),
                       facecolors=_COLOURS["waiting"], edgecolor="#D62728",
                       linewidth=0.6, zorder=3)
    if waits:
        handles.append(Patch(facecolor=_COLOURS["waiting"],
                             edgecolor="#D62728",
                             label="continuation waiting in the\n"
                                   "context's queue"))
    for flow in (f for f in flows if f.kind == "post"):
        ax.annotate("", xy=(ms(flow.dst_ts), row[flow.dst_tid] - 0.39),
                    xytext=(ms(flow.src_ts), row[flow.src_tid]),
                    arrowprops={"arrowstyle": "-|>", "color": "#9D755D",
                                "linewidth": 1.0, "linestyle": "--"},
                    zorder=5)
    if any(f.kind == "post" for f in flows):
        handles.append(Line2D([], [], color="#9D755D", linestyle="--",
                              label="posted, never run"))
    queue_flows = [f for f in flows if f.kind == "queue"]
    drawn_queue = queue_flows if len(queue_flows) <= _MAX_QUEUE_ARROWS else []
    for flow in drawn_queue:
        ax.annotate("", xy=(ms(flow.dst_ts), row[flow.dst_tid]),
                    xytext=(ms(flow.src_ts), row[flow.src_tid]),
                    arrowprops={"arrowstyle": "->", "color": "#4C78A8",
                                "alpha": 0.35, "linewidth": 0.6},
                    zorder=3)
    if drawn_queue:
        handles.append(Line2D([], [], color="#4C78A8", alpha=0.5,
                              label="queued -> started"))
    resumes = [f for f in flows if f.kind == "resume"]
    for flow in resumes:
        ax.annotate("", xy=(ms(flow.dst_ts), row[flow.dst_tid]),
                    xytext=(ms(flow.src_ts), row[flow.src_tid]),
                    arrowprops={"arrowstyle": "-|>", "color": "#D62728",
                                "linewidth": 1.2,
                                "connectionstyle": "arc3,rad=0.15"},
                    zorder=5)
    if resumes:
        handles.append(Line2D([], [], color="#D62728",
                              label="suspend -> resume"))
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"{threads.get(tid, tid)} ({tid})" for tid in lanes],
                       fontsize=8)
    ax.set_ylim(len(lanes) - 0.4, -0.6)  # first thread at the top
    ax.set_xlabel("ms since the first event")
    ax.grid(axis="x", alpha=0.3)
    summary = f"{len(events)} events, {len(lanes)} threads"
    if dropped:
        summary += f", {dropped} dropped"
    ax.set_title(f"{title} ({summary})" if title else
                 f"sharptask trace ({summary})", fontsize=10)
    if handles:
        ax.legend(handles=handles, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")


# ----------------------------------------------------------- command line

_USAGE = """\
usage: python -m sharptask trace SCRIPT [ARGS...] -o FILE.json [--png FILE.png]
       python -m sharptask trace [-o FILE.json] [--png FILE.png] SCRIPT ARGS...

Run a Python script under sharptask.trace() and save what it did: Chrome
trace JSON (-o; open it in https://ui.perfetto.dev or chrome://tracing)
and/or a timeline PNG (--png; needs matplotlib: pip install
sharptask[plot]).  Options after the script's arguments are taken only
when none came before SCRIPT; `--` ends sharptask's options.

options:
  -o, --output FILE.json  write the trace as Chrome trace-event JSON
  --png FILE.png          draw the per-thread timeline
  --buffer-size N         events kept per thread (default 65536)
"""

_OPTS = {"-o": "output", "--output": "output", "--png": "png",
         "--buffer-size": "buffer_size"}


class _Usage(Exception):
    pass


def _take_options(args: list[str], opts: dict[str, str]) -> list[str]:
    """Leading sharptask options out of args (into opts); the rest."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return args[i + 1:]
        key, eq, value = a.partition("=")
        if key in _OPTS:
            if not eq:
                if i + 1 >= len(args):
                    raise _Usage(f"option {key} needs a value")
                value = args[i + 1]
                i += 1
            opts[_OPTS[key]] = value
            i += 1
            continue
        if a.startswith("-") and a != "-":
            raise _Usage(f"unknown option {a!r}")
        return args[i:]
    return []


def _take_trailing(args: list[str], opts: dict[str, str]) -> list[str]:
    """Trailing `-o FILE` / `--png FILE` pairs off the script's args."""
    while len(args) >= 2 and args[-2] in _OPTS:
        opts[_OPTS[args[-2]]] = args[-1]
        args = args[:-2]
    return args


def parse_command(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """(options, [script, args...]) of the trace command; _Usage on a
    usage error."""
    opts: dict[str, str] = {}
    rest = _take_options(list(argv), opts)
    if not rest:
        raise _Usage("no script given")
    if not opts:
        rest = [rest[0]] + _take_trailing(rest[1:], opts)
    if "output" not in opts and "png" not in opts:
        raise _Usage("nothing to write: give -o FILE.json and/or "
                     "--png FILE.png")
    return opts, rest


def _buffer_size(opts: dict[str, str]) -> int:
    text = opts.get("buffer_size")
    if text is None:
        return DEFAULT_BUFFER_SIZE
    try:
        value = int(text)
    except ValueError:
        raise _Usage(f"--buffer-size: not an int: {text!r}") from None
    if not 1 <= value <= _MAX_BUFFER_SIZE:
        raise _Usage(f"--buffer-size must be between 1 and "
                     f"{_MAX_BUFFER_SIZE}")
    return value


def write_outputs(tr: Trace, output: str | None, png: str | None,
                  title: str | None = None,
                  stream: Any = None) -> int:
    """Save tr as asked; report on stream (stderr); the exit status (1 when
    the PNG could not be drawn)."""
    stream = sys.stderr if stream is None else stream
    status = 0
    if output:
        tr.save(output)
        print(f"sharptask trace: {len(tr.events)} events from "
              f"{len(tr.threads)} threads ({tr.dropped} dropped) written "
              f"to {output}; open it in https://ui.perfetto.dev",
              file=stream)
    if png:
        try:
            tr.save_png(png, title=title)
        except ImportError as exc:
            print(f"sharptask trace: {exc}", file=stream)
            status = 1
        else:
            print(f"sharptask trace: timeline drawn to {png}", file=stream)
    return status


def run_script(script: str, args: Iterable[str]) -> int:
    """Run a script as __main__ (as `python SCRIPT ARGS...` would); its
    exit status."""
    import runpy
    import traceback

    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    sys.argv = [script, *args]
    script_dir = os.path.dirname(os.path.abspath(script))
    if sys.path:
        sys.path[0] = script_dir
    else:
        sys.path.append(script_dir)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException:  # the script's error: report it, save the trace
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path:
            sys.path[0] = saved_path0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sharptask trace ...`; the exit status (the script's, or
    2 on a usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_USAGE, end="")
        return 0
    try:
        opts, rest = parse_command(argv)
        size = _buffer_size(opts)
    except _Usage as exc:
        print(f"python -m sharptask trace: {exc}\n\n{_USAGE}", end="",
              file=sys.stderr)
        return 2
    script, args = rest[0], rest[1:]
    if not os.path.isfile(script):
        print(f"python -m sharptask trace: no such script: {script!r}",
              file=sys.stderr)
        return 2
    with trace(buffer_size=size) as tr:
        status = run_script(script, args)
    out = write_outputs(tr, opts.get("output"), opts.get("png"),
                        title=os.path.basename(script))
    return status or out
