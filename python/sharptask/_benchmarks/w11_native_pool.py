"""W11: the core pool's throughput with native (C) work items, no Python.

The measurement is the C program benchmarks/c/w11_pool_throughput.c: 2
workers, items that queue themselves again either on the global queue or
on the running worker's own work-stealing deque, G and L rounds
alternating. It is built with `make bench-c` (this workload runs make when
the binary is missing) and reports items/s. Here both sides are shown as ns
per item: "sharptask" is the local-queue path, the "peer" row is the same
pool through its global queue; the target is BENCHMARKS.md's >= 5M items/s
on the local queues with 2 cores (<= 200 ns per item). .NET's published
figures (12 cores: ~9M/s global, ~53M/s local) are in the notes.

From an installed package without the source tree (no Makefile, no C
sources) the workload is skipped with a note.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from . import _harness as h

ID = "W11"
TITLE = "pure-C pool throughput, native items, 2 workers"
BINARY = "w11_pool_throughput"


def _repo():
    """The source checkout this package lives in, or None."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "Makefile").is_file() and \
                (parent / "benchmarks" / "c" / f"{BINARY}.c").is_file():
            return parent
    return None


def _binary(ctx):
    repo = _repo()
    if repo is None:
        ctx.note("W11 needs the source checkout (benchmarks/c and the "
                 "Makefile): skipped")
        return None
    exe = repo / "build" / "plain" / BINARY
    src = repo / "benchmarks" / "c" / f"{BINARY}.c"
    stale = not exe.is_file() or any(
        p.stat().st_mtime > exe.stat().st_mtime
        for p in [src, *(repo / "csrc" / "core").glob("*.[ch]")])
    if stale:
        if shutil.which("make") is None:
            ctx.note("W11: `make` not found, cannot build "
                     f"build/plain/{BINARY}: skipped")
            return None
        proc = subprocess.run(["make", "--no-print-directory", "bench-c"],
                              cwd=repo, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0 or not exe.is_file():
            raise RuntimeError("W11: `make bench-c` failed:\n"
                               + proc.stdout + proc.stderr)
    return exe


def run(ctx):
    exe = _binary(ctx)
    if exe is None:
        return []
    args = [str(exe), "--workers", "2", "--rounds", str(ctx.rounds)]
    if ctx.quick:
        args.append("--quick")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"W11: {exe.name} failed:\n{proc.stderr}")
    data = json.loads(proc.stdout)
    local = [1e9 / v for v in data["local_items_per_s"]]
    glob = [1e9 / v for v in data["global_items_per_s"]]
    for _ in local:
        ctx.tick()
    comp = h.Comparison(
        ID, f"{TITLE} (×{data['items']:,} per round)", "ns/item",
        h.Series("sharptask local queues (work stealing)", local),
        h.Series("sharptask global queue", glob),
        target_abs_ns=200.0, target_text="local ≥ 5M items/s (≤ 200 ns)",
        short="native pool items, local vs global")
    med_l = 1e9 / comp.ours.median
    med_g = 1e9 / comp.peer.median
    comp.notes.append(f"items/s: local {med_l / 1e6:.1f}M, global "
                      f"{med_g / 1e6:.1f}M (medians of {ctx.rounds} "
                      f"rounds, {data['workers']} workers, "
                      f"{data['cpus']} CPUs)")
    comp.notes.append(".NET on 12 cores (reference 11): ~9M/s global, "
                      "~53M/s local, ~3M/s through the whole pool")
    return [comp]
