#!/usr/bin/env python3
"""WT: W5 with tracing on against tracing off (BENCHMARKS.md, SPEC D2).

    python benchmarks/python/wt_trace_cost.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.wt_trace_cost.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("WT", prog="benchmarks/python/wt_trace_cost.py"))
