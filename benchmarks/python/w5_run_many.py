#!/usr/bin/env python3
"""W5: Task.run(trivial) x N then when_all, 1/2/4 workers, against its peer (BENCHMARKS.md).

    python benchmarks/python/w5_run_many.py [--quick] [--out DIR]

The workload itself is sharptask._benchmarks.w5_run_many.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main_single  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_single("W5", prog="benchmarks/python/w5_run_many.py"))
