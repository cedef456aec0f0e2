#!/usr/bin/env python3
"""W9: 100k fan-out on one shared source and bytes per pending method, against asyncio (BENCHMARKS.md).

    python benchmarks/python/w9_fanout.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w9_fanout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W9", prog="benchmarks/python/w9_fanout.py"))
