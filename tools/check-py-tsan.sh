#!/usr/bin/env bash
# The race run of the binding (issue 9, "Make it provable: races"): build
# the extension with ThreadSanitizer in a scratch copy of the tree and run
# the concurrency tests against it with the TSan runtime preloaded.
#
#   tools/check-py-tsan.sh [pytest args...]      (make check-py-tsan)
#
# What runs: tests/python/test_tsan_stress.py (the bounded stress suite
# written for this run: completion, cancellation racing registration and
# disposal, GC from other threads, the pool's first use, timers) and the
# files whose tests race the pool, tokens, timers, semaphores and contexts
# from several threads (TSAN_TESTS overrides the list).
#
# - CPython is not instrumented: TSan sees its locks (the GIL is a pthread
#   mutex and condvar, intercepted), so Python code run under the GIL is
#   ordered, and every access the extension makes is checked;
# - PYTHONMALLOC=malloc so that TSan's allocator sees every free (a block
#   pymalloc reuses would look like one object touched by two threads);
# - halt_on_error=1: the first report fails the run (exit code 66);
# - report_thread_leaks=0: the pool's and the timer's threads are never
#   joined at exit on purpose (H5: exit promptly even with a worker
#   blocked in user code), which TSan would report as a "thread leak";
# - tools/tsan.supp: suppressions for CPython's own internals only, each
#   one explained there;
# - the fork tests are left out: TSan does not support fork() in a process
#   that has threads ("starting new threads after multi-threaded fork is
#   not supported"); the plain and ASan runs keep them;
# - TSan maps its shadow at fixed addresses; on a kernel with a high
#   vm.mmap_rnd_bits it dies with "unexpected memory mapping": the import
#   is probed once and, on that message, the run uses setarch -R (ASLR off
#   for this process only), as the Makefile's check-c-tsan does.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-"$here/.venv/bin/python"}
tests=${TSAN_TESTS:-"tests/python/test_tsan_stress.py tests/python/test_stress.py
    tests/python/test_pool.py tests/python/test_cancel.py
    tests/python/test_timers.py tests/python/test_semaphore.py
    tests/python/test_context.py tests/python/test_valuetask.py"}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# only what the build and the tests need (the metadata files that
# pyproject.toml names must be there for setuptools to read it)
for entry in csrc python tests setup.py pyproject.toml README.md LICENSE \
             MANIFEST.in CHANGELOG.md; do
    if [ -e "$here/$entry" ]; then cp -r "$here/$entry" "$scratch/"; fi
done
rm -f "$scratch"/python/sharptask/*.so
tsan_flags="-fsanitize=thread -O1 -g -fno-omit-frame-pointer"
(cd "$scratch" && CFLAGS="$tsan_flags" LDFLAGS="-fsanitize=thread" \
     "$py" setup.py -q build_ext --inplace >"$scratch/build.log" 2>&1) \
    || { cat "$scratch/build.log"; exit 1; }
tsan=$(gcc -print-file-name=libtsan.so)
cd "$scratch"
export LD_PRELOAD="$tsan" PYTHONMALLOC=malloc PYTHONPATH=python
# log_path: pytest captures fd 2 while a test runs, and a halted process
# never gives it back; the reports go to files, printed at the end
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 report_thread_leaks=0 suppressions=$here/tools/tsan.supp log_path=$scratch/tsan-report ${TSAN_EXTRA:-}"
run=""
if ! TSAN_OPTIONS="${TSAN_OPTIONS/log_path=*/}" "$py" -c 'import sharptask' \
        >"$scratch/probe.log" 2>&1; then
    if grep -q 'unexpected memory mapping' "$scratch/probe.log"; then
        echo "TSan cannot map its shadow with ASLR on: using setarch -R"
        run="setarch $(uname -m) -R"
    else
        cat "$scratch/probe.log"
        exit 1
    fi
fi
status=0
# shellcheck disable=SC2086  # $run and $tests are word lists
$run "$py" -m pytest $tests -q -p no:cacheprovider -k "not fork" "$@" \
    || status=$?
reports=$(find "$scratch" -maxdepth 1 -name 'tsan-report.*' | sort)
if [ -n "$reports" ]; then
    for f in $reports; do
        echo "== ThreadSanitizer report (pid ${f##*.})"
        cat "$f"
    done
    echo "check-py-tsan: ThreadSanitizer reported races (above)"
    [ "$status" -ne 0 ] || status=1
fi
exit "$status"
