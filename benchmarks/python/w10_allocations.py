#!/usr/bin/env python3
"""W10: allocations per awaited call that suspends (Task method, ValueTask
method, pooled ValueTask method), against the bare coroutine (BENCHMARKS.md).

    python benchmarks/python/w10_allocations.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w10_allocations.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W10", prog="benchmarks/python/w10_allocations.py"))
