"""The driver of tools/bench-trace-baseline.sh (issue 12, SPEC D2).

Runs the sharptask side of W2, W4a and W5 (sharptask._benchmarks's own
sharptask_per_op) with tracing off, alternately against two builds
given by their PYTHONPATH: --off (the default build, event sites present)
and --norec (ST_NO_TRACE=1, no event site). One child process per
measurement; each child warms up once and times one round. Prints per
workload the median of each build and the ratio off / norec.

With valgrind, W2 and W4a are also counted under callgrind: instructions
per operation, from two runs of different lengths (the difference divided
by the difference in calls, so that start-up cancels out).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

# Child side: one measurement, printed as ns per operation.
_CHILD = r'''
import importlib
import sys

which, n = sys.argv[1], int(sys.argv[2])
warm = len(sys.argv) < 4 or sys.argv[3] != "nowarm"
module, name = {"W2": ("w2_sync_call", "sharptask_per_op"),
                "W2b/bare": ("w2_sync_call", "bare_per_op"),
                "W2b/loop": ("w2_sync_call", "loop_per_op"),
                "W4a": ("w4a_pingpong", "sharptask_per_op"),
                "W5": ("w5_run_many", "sharptask_per_op")}[which]
fn = getattr(importlib.import_module("sharptask._benchmarks." + module),
             name)
if warm:
    fn(max(1, n // 5))
print(fn(n))
'''

SIZES = {"W2": 1_000_000, "W4a": 100_000, "W5": 100_000}
QUICK = {"W2": 100_000, "W4a": 10_000, "W5": 5_000}


def _env(path, **extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = path
    env.update(extra)
    return env


def measure(path, which, n):
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, which, str(n)], env=_env(path),
        capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def callgrind_total(path, which, n, keep=None):
    """Instructions of one child run of `which` (×n, no warm-up) under
    callgrind, PYTHONHASHSEED=0.  keep: a file to copy callgrind's output
    to (for callgrind_annotate), or None."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "cg.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-instr=no",
             f"--callgrind-out-file={out_file}",
             sys.executable, "-c", _CHILD, which, str(n), "nowarm"],
            env=_env(path, PYTHONHASHSEED="0"), capture_output=True,
            text=True, timeout=1200, check=True)
        if keep is not None:
            shutil.copyfile(out_file, keep)
        with open(out_file) as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    raise RuntimeError("no instruction total in callgrind's output")


def callgrind_per_op(path, which, small, large, keep=None):
    """Instructions per operation of `which`: (I(large) - I(small)) /
    (large - small), so that start-up cancels out.  keep: where to copy
    the large run's callgrind output, or None."""
    i_small = callgrind_total(path, which, small)
    i_large = callgrind_total(path, which, large, keep)
    return (i_large - i_small) / (large - small)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--off", required=True,
                        help="PYTHONPATH of the default build")
    parser.add_argument("--norec", required=True,
                        help="PYTHONPATH of the ST_NO_TRACE=1 build")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-callgrind", action="store_true")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else SIZES
    builds = {"off": args.off, "norec": args.norec}
    values = {(w, b): [] for w in sizes for b in builds}
    for r in range(args.rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for which, n in sizes.items():
            for b in order:
                values[which, b].append(measure(builds[b], which, n))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"tracing off (default build) vs no event sites (ST_NO_TRACE=1), "
          f"{args.rounds} rounds, medians [min-max]")
    for which, n in sizes.items():
        off, norec = values[which, "off"], values[which, "norec"]
        mo, mn = statistics.median(off), statistics.median(norec)
        print(f"{which:4} ×{n:>9,}  off {mo:9.1f} ns [{min(off):.1f}-"
              f"{max(off):.1f}]  norec {mn:9.1f} ns [{min(norec):.1f}-"
              f"{max(norec):.1f}]  ratio off/norec {mo / mn:.3f}")
    if args.no_callgrind or shutil.which("valgrind") is None:
        return 0
    # W2 and W4a run on one thread (W5's pool threads make its count vary)
    counted = {"W2": (2_000, 12_000) if args.quick else (10_000, 60_000),
               "W4a": (1_000, 6_000) if args.quick else (5_000, 30_000)}
    print("callgrind, PYTHONHASHSEED=0: instructions per operation, "
          "(I(large) - I(small)) / (large - small), start-up cancels out")
    for which, (small, large) in counted.items():
        per = {b: callgrind_per_op(path, which, small, large)
               for b, path in builds.items()}
        print(f"{which:4} ({small:,} / {large:,})  off {per['off']:9.1f}  "
              f"norec {per['norec']:9.1f}  ratio off/norec "
              f"{per['off'] / per['norec']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
