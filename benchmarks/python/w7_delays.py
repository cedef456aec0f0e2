#!/usr/bin/env python3
"""W7: 100k Task.delay at random delays in [0, 10 ms], all awaited, against asyncio call_later (BENCHMARKS.md).

    python benchmarks/python/w7_delays.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w7_delays.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W7", prog="benchmarks/python/w7_delays.py"))
