#!/usr/bin/env python3
"""W4b: ping-pong through TaskCompletionSource posted to one
SingleThreadSynchronizationContext, against its peer (BENCHMARKS.md).

    python benchmarks/python/w4b_pingpong_context.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w4b_pingpong_context.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W4b", prog="benchmarks/python/w4b_pingpong_context.py"))
