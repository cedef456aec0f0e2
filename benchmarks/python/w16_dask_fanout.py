#!/usr/bin/env python3
"""W16: a Dask fan-out of 1,000 calls through ExecutorTaskScheduler against client.map + gather (BENCHMARKS.md, issue 11).

    python benchmarks/python/w16_dask_fanout.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w16_dask_fanout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W16", prog="benchmarks/python/w16_dask_fanout.py"))
