#!/usr/bin/env bash
# `make test`: every check of the project, within the budget of a CI run
# on two cores (issue 9: under 25 minutes from a fresh clone).
#
#   tools/make-test.sh            (what `make test` runs; MAKE is the make)
#   TEST_JOBS=1 make test         the two lanes one after the other
#
# 1. check-c first (it builds and tests the C core), then the venvs, one
#    after the other (pip must not run twice in one venv at once);
# 2. then two lanes at once, each running its stages one after the other,
#    each stage with SKIP_VENV=1 (the venvs are ready) and its output in
#    build/test-logs/STAGE.log:
#      lane 1: pytest, docs, check-py-asan
#      lane 2: check-py-tsan, check-refleaks, check-py-versions
#    Most of these runs wait (timeouts, sleeps, child processes) more than
#    they compute, so two lanes on two cores take about the time of the
#    longer lane.
# Every stage runs even when another failed; at the end each stage's time
# and result is printed, with the end of the log of each one that failed,
# and the exit status is 1 if any failed.  A stage whose target the
# Makefile does not have fails (a check that is not there has not passed).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make=${MAKE:-make}
jobs=${TEST_JOBS:-2}
logs=build/test-logs
rm -rf "$logs"
mkdir -p "$logs"
begin=$(date +%s)

has_target() {
    grep -q "^$1:" Makefile
}

# run STAGE [make args...]: its output to its log, its time and status to
# STAGE.result ("<seconds> <status>")
run() {
    local stage=$1 start status
    shift
    if ! has_target "$stage"; then
        echo "0 missing" >"$logs/$stage.result"
        echo "== make test: no $stage target here: FAILED"
        return 1
    fi
    echo "== make test: $stage started"
    start=$(date +%s)
    "$make" --no-print-directory "$stage" "$@" >"$logs/$stage.log" 2>&1
    status=$?
    echo "$(( $(date +%s) - start )) $status" >"$logs/$stage.result"
    echo "== make test: $stage $( [ $status -eq 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s"
}

lane() {
    for stage in "$@"; do
        run "$stage" SKIP_VENV=1
    done
}

run check-c
run venv
run venv-dbg
# balanced by their times from a fresh clone on two busy cores (pytest
# 480 s, docs 20, ASan 545 | TSan 70, refleaks 695, 3.12+3.13 315)
lane1=(pytest docs check-py-asan)
lane2=(check-py-tsan check-refleaks check-py-versions)
if [ "$jobs" -ge 2 ]; then
    lane "${lane1[@]}" &
    pid1=$!
    lane "${lane2[@]}" &
    pid2=$!
    wait "$pid1" "$pid2"
else
    lane "${lane1[@]}" "${lane2[@]}"
fi

echo
echo "== make test: summary"
failed=()
for f in "$logs"/*.result; do
    stage=$(basename "$f" .result)
    read -r secs status <"$f" || true
    if [ "$status" = missing ]; then
        printf '  %-18s FAILED  (no such target)\n' "$stage"
        failed+=("$stage")
    elif [ "$status" = 0 ]; then
        printf '  %-18s passed  %5s s\n' "$stage" "$secs"
    else
        printf '  %-18s FAILED  %5s s  (%s)\n' "$stage" "$secs" "$logs/$stage.log"
        failed+=("$stage")
    fi
done
echo "  (all of make test: $(( $(date +%s) - begin )) s)"
for stage in "${failed[@]}"; do
    echo
    echo "== $stage: the end of $logs/$stage.log"
    tail -n 80 "$logs/$stage.log"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "make test: FAILED in: ${failed[*]}"
    exit 1
fi
echo "make test: all passed"
