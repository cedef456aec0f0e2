#!/usr/bin/env bash
# Issue 10, W2b: the call of a synchronously completing @async_method,
# awaited in an async method, against a bare `await coro()`, counted in
# instructions under callgrind (PYTHONHASHSEED=0, a fixed iteration count,
# start-up and the loop itself subtracted).  Prints both counts per call
# and the ratio (target ≤ 1.3).  Unlike wall-clock time, the count does
# not move with the machine's load.
#
#   tools/callgrind-w2b.sh [--small N] [--large N] [--keep DIR]
#
# --keep DIR keeps each side's callgrind output for callgrind_annotate.
# PYTHON (default .venv/bin/python) is the interpreter; the sharptask it
# imports is the one installed in it (make venv).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-"$here/.venv/bin/python"}
path=$(cd / && "$py" -c \
    'import os, sharptask; print(os.path.dirname(os.path.dirname(sharptask.__file__)))')
exec "$py" "$here/tools/callgrind_w2b.py" --path "$path" "$@"
