"""The driver of tools/callgrind-w2b.sh (issue 10, W2b).

Counts, under callgrind (PYTHONHASHSEED=0), the instructions per call of
W2b's two sides and of their loop alone (sharptask._benchmarks.w2_sync_call):

    ours   `await m()` in an @async_method, m an @async_method whose body
           returns at once (sharptask_per_op)
    bare   `await coro()` in a coroutine (bare_per_op)
    loop   the same loop with no call in it (loop_per_op)

Each is run twice, `--small` and `--large` iterations, one child process
each; (I(large) - I(small)) / (large - small) is the count per iteration
with start-up cancelled out.  The loop's count is subtracted from both
sides, and the ratio (ours - loop) / (bare - loop) is printed against
W2b's target (≤ 1.3).  The callgrind code is tools/bench_trace_baseline.py's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_trace_baseline import callgrind_per_op  # noqa: E402

TARGET = 1.3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True,
                        help="PYTHONPATH under which sharptask is imported")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=60_000)
    parser.add_argument("--keep", metavar="DIR",
                        help="keep each side's large callgrind output in "
                             "DIR (callgrind.w2b-<side>.out, for "
                             "callgrind_annotate)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)",
              file=sys.stderr)
        return 2
    if not 0 < args.small < args.large:
        parser.error("need 0 < --small < --large")
    sides = {"ours": "W2", "bare": "W2b/bare", "loop": "W2b/loop"}
    per = {}
    for side, which in sides.items():
        keep = None
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            keep = os.path.join(args.keep, f"callgrind.w2b-{side}.out")
        per[side] = callgrind_per_op(args.path, which, args.small,
                                     args.large, keep)
    ours, bare = per["ours"] - per["loop"], per["bare"] - per["loop"]
    ratio = ours / bare
    print(f"W2b callgrind, PYTHONHASHSEED=0, ({args.small:,} / "
          f"{args.large:,}): instructions per call")
    print(f"  loop alone            {per['loop']:9.1f}")
    print(f"  ours  (minus loop)    {ours:9.1f}   ({per['ours']:.1f} with it)")
    print(f"  bare  (minus loop)    {bare:9.1f}   ({per['bare']:.1f} with it)")
    met = "met" if ratio <= TARGET else "MISSED"
    print(f"W2b ratio ours/bare {ratio:.3f} (target ≤ {TARGET}: {met})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
