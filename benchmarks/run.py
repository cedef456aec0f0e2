#!/usr/bin/env python3
"""Run every benchmark (BENCHMARKS.md W1-W12 as implemented: see
sharptask._benchmarks.WORKLOADS).

    python benchmarks/run.py [--quick] [--only W1,W4a] [--out DIR]

Prints the table and writes benchmarks/results.json and
benchmarks/results.md. The workloads live in the package
(sharptask._benchmarks) so that `python -m sharptask bench` runs the same.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _path import ensure_sharptask  # noqa: E402

ensure_sharptask()

from sharptask.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="benchmarks/run.py", default_out=HERE))
