#!/usr/bin/env python3
"""W8: await Task.yield_() on a SingleThreadSynchronizationContext, against
its peer (BENCHMARKS.md).

    python benchmarks/python/w8_yield.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w8_yield.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W8", prog="benchmarks/python/w8_yield.py"))
