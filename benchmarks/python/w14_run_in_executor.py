#!/usr/bin/env python3
"""W14: loop.run_in_executor over 100k small items, sharptask.Executor against the default executor (BENCHMARKS.md, issue 11).

    python benchmarks/python/w14_run_in_executor.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w14_run_in_executor.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W14", prog="benchmarks/python/w14_run_in_executor.py"))
