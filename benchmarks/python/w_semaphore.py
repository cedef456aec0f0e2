#!/usr/bin/env python3
"""WSEM: SemaphoreSlim as an async lock, against asyncio.Lock (issue 6).

    python benchmarks/python/w_semaphore.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w_semaphore.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("WSEM", prog="benchmarks/python/w_semaphore.py"))
