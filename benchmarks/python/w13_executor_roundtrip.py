#!/usr/bin/env python3
"""W13: Executor.submit(f).result() round trip against ThreadPoolExecutor(2) (BENCHMARKS.md, issue 11).

    python benchmarks/python/w13_executor_roundtrip.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w13_executor_roundtrip.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W13", prog="benchmarks/python/w13_executor_roundtrip.py"))
