#!/usr/bin/env python3
"""W15: await of a sharptask Task in asyncio against an asyncio future, both completed from another thread (BENCHMARKS.md, issue 11).

    python benchmarks/python/w15_await_from_asyncio.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w15_await_from_asyncio.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W15", prog="benchmarks/python/w15_await_from_asyncio.py"))
