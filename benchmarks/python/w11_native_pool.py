#!/usr/bin/env python3
"""W11: pure-C pool throughput, local vs global queues, 2 workers (BENCHMARKS.md).

    python benchmarks/python/w11_native_pool.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w11_native_pool.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W11", prog="benchmarks/python/w11_native_pool.py"))
