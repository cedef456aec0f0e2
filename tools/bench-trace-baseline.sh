#!/usr/bin/env bash
# Issue 12 / SPEC D2: the cost of the tracing event sites when tracing is
# OFF, against a build without them ("before the recorder existed").
#
# Builds the extension twice, each in a scratch copy of the tree under
# build/trace-baseline/: "off" (the default build) and "norec"
# (ST_NO_TRACE=1, i.e. -DST_TRACE_DISABLED: every ST_TRACE site and every
# site behind st_trace_on() compiles to nothing). Then
# tools/bench_trace_baseline.py runs the sharptask side of W2, W4a and W5
# alternately against both builds, one child process per measurement, and
# prints per workload the two medians and their ratio off / norec (target:
# no measurable change). With valgrind installed it also counts W2's and
# W4a's instructions per operation under callgrind (PYTHONHASHSEED=0), which does not
# depend on the machine's load.
#
#   tools/bench-trace-baseline.sh [--rounds N] [--quick] [--no-callgrind]
#
# PYTHON (default .venv/bin/python) is the interpreter used for both.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-"$here/.venv/bin/python"}
out="$here/build/trace-baseline"
mkdir -p "$out"
. "$here/tools/bench-lib.sh"
for variant in off norec; do
    dest="$out/$variant"
    rm -rf "$dest"
    mkdir -p "$dest"
    cp -r "$here/csrc" "$here/python" "$here/setup.py" "$here/pyproject.toml" \
          "$here/README.md" "$here/LICENSE" "$dest/"
    if [ "$variant" = norec ]; then flag=1; else flag=0; fi
    bench_build_inplace "$dest" "$py" "ST_NO_TRACE=$flag"
done
exec "$py" "$here/tools/bench_trace_baseline.py" \
    --off "$out/off/python" --norec "$out/norec/python" "$@"
