#!/usr/bin/env python3
"""W12: 100k tiny Python items on 2 workers while the main thread runs Python, against ThreadPoolExecutor (BENCHMARKS.md).

    python benchmarks/python/w12_python_items.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w12_python_items.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W12", prog="benchmarks/python/w12_python_items.py"))
