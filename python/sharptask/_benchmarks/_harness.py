"""The measuring harness shared by every benchmark workload (BENCHMARKS.md).

A workload compares sharptask with its peer in the same process. Each side is
a *round* function: it runs a fixed number of operations and returns the cost
of one operation in nanoseconds. `alternate()` runs the round functions
A B A B ... (after a warm-up round each), so that drift in a noisy shared
machine hits both sides alike, and returns one value per round per side.
A `Comparison` then holds both series and reports medians, min-max and the
ratio sharptask / peer (lower is better: every workload here measures time).
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

#: Rounds measured per side after the warm-up (BENCHMARKS.md: 5 or more).
ROUNDS = 5


@dataclass
class Series:
    """Per-round costs (ns per operation) of one side of a comparison."""

    label: str
    values: list = field(default_factory=list)
    #: what a value counts: "ns" (the default) or another unit such as
    #: "blocks" (W10 counts allocations), which is printed as is
    unit: str = "ns"

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def as_dict(self) -> dict:
        if self.unit != "ns":
            return {
                "label": self.label,
                "unit": self.unit,
                "median": self.median,
                "min": self.min,
                "max": self.max,
                "rounds": list(self.values),
                # the keys every reader expects, in this series' unit
                "median_ns": self.median,
                "min_ns": self.min,
                "max_ns": self.max,
                "rounds_ns": list(self.values),
            }
        return {
            "label": self.label,
            "median_ns": self.median,
            "min_ns": self.min,
            "max_ns": self.max,
            "rounds_ns": list(self.values),
        }


@dataclass
class Comparison:
    """sharptask against one peer on one workload.

    `target_ratio` is BENCHMARKS.md's target for median(ours)/median(peer);
    `target_abs_ns`, when set, is an absolute bound on ours (W6's p99).
    """

    id: str
    workload: str
    unit: str
    ours: Series
    peer: Series
    target_ratio: Optional[float] = None
    target_abs_ns: Optional[float] = None
    target_text: str = ""
    notes: list = field(default_factory=list)
    short: str = ""  # the workload's name in the table (default: workload)

    @property
    def ratio(self) -> float:
        peer = self.peer.median
        return self.ours.median / peer if peer > 0 else float("inf")

    @property
    def met(self) -> Optional[bool]:
        """Whether the target holds; None when there is no target."""
        checks = []
        if self.target_ratio is not None:
            checks.append(self.ratio <= self.target_ratio)
        if self.target_abs_ns is not None:
            checks.append(self.ours.median <= self.target_abs_ns)
        return all(checks) if checks else None

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "workload": self.workload,
            "unit": self.unit,
            "sharptask": self.ours.as_dict(),
            "peer": self.peer.as_dict(),
            "ratio": self.ratio,
            "target": self.target_text,
            "target_met": self.met,
            "notes": list(self.notes),
            "short": self.short or self.workload,
        }

    def line(self) -> str:
        """One human-readable result line; always contains the ratio."""
        met = {True: "met", False: "NOT met", None: "no target"}[self.met]
        target = f"target {self.target_text}, {met}" if self.target_text else met
        return (
            f"{self.id}: {self.workload}: sharptask {fmt_stats(self.ours)} | "
            f"{self.peer.label} {fmt_stats(self.peer)} | "
            f"ratio sharptask/peer = {self.ratio:.3f} ({target})"
        )


class Context:
    """What a workload gets from the runner: sizes, progress and notes."""

    def __init__(self, quick: bool, tick: Callable[[], None] = lambda: None,
                 rounds: int = ROUNDS):
        self.quick = quick
        self.rounds = rounds
        self.tick = tick
        self.notes: list = []

    def n(self, full: int, quick: int) -> int:
        """Iteration count: `quick` in --quick mode, else `full`."""
        return quick if self.quick else full

    def note(self, text: str) -> None:
        self.notes.append(text)


def alternate(ctx: Context, rounds_fns: Sequence[Callable[[], float]],
              warmup: int = 1) -> list[list[float]]:
    """Run the round functions A B C A B C ...; return each one's values.

    Each function is warmed up `warmup` times first (results dropped). A full
    collection runs before every measured round so that one side does not pay
    for the other's garbage.
    """
    for _ in range(warmup):
        for fn in rounds_fns:
            fn()
    results: list[list[float]] = [[] for _ in rounds_fns]
    for _ in range(ctx.rounds):
        for i, fn in enumerate(rounds_fns):
            gc.collect()
            results[i].append(float(fn()))
            ctx.tick()
    return results


def fmt_ns(ns: float) -> str:
    """Format a duration in ns with a unit that keeps 3 significant digits."""
    if ns < 1_000:
        return f"{ns:.1f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def fmt_stats(series: Series) -> str:
    if series.unit != "ns":
        def fmt(v):
            return f"{v:g} {series.unit}"
    else:
        fmt = fmt_ns
    return f"{fmt(series.median)} [{fmt(series.min)}–{fmt(series.max)}]"


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by nearest rank of sorted values."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    rank = max(0, min(len(data) - 1, int(round(p / 100.0 * len(data))) - 1))
    return data[rank]


# ---------------------------------------------------------------- asyncio peer

def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def new_asyncio_loop():
    """A fresh event loop for the asyncio peer: uvloop's when installed."""
    if uvloop_available():
        import uvloop
        return uvloop.new_event_loop()
    import asyncio
    return asyncio.new_event_loop()


def run_in_loop(loop, coro):
    """Run one coroutine to completion on `loop` and return its result."""
    return loop.run_until_complete(coro)


# ---------------------------------------------------------------- environment

def environment() -> dict:
    """Interpreter, CPU and peer facts printed with every run."""
    try:
        import sharptask
        version = getattr(sharptask, "__version__", "unknown")
        where = os.path.dirname(getattr(sharptask, "__file__", "") or "")
    except Exception as exc:  # reported, not hidden
        version, where = f"import failed: {exc!r}", ""
    cpus: int | None
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": cpus,
        "uvloop": uvloop_available(),
        "sharptask_version": version,
        "sharptask_path": where,
    }


def environment_lines(env: dict) -> list:
    return [
        f"interpreter: {env['implementation']} {env['python']} "
        f"({env['python_build']})",
        f"platform: {env['platform']}, CPUs available: {env['cpu_count']}",
        f"asyncio peer uses uvloop: {'yes' if env['uvloop'] else 'no'}",
        f"sharptask: {env['sharptask_version']} from {env['sharptask_path']}",
    ]
