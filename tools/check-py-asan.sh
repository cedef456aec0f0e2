#!/usr/bin/env bash
# The sanitized Python run (STYLE.md point 37): build the extension with
# ASan+UBSan (ST_SANITIZE=1) in a scratch copy of the tree and run the
# pytest suite against it with the sanitizer runtimes preloaded.
#
# - PYTHONMALLOC=malloc so that ASan sees every Python allocation;
# - detect_leaks=0: CPython leaks on purpose at exit;
# - halt_on_error=1: the first report fails the run;
# - test_leaks.py is left out: ASan's quarantine keeps freed memory, so
#   its RSS checks mean nothing here (the plain run keeps them);
# - the benchmark smoke tests are left out: timing under ASan says
#   nothing and they are the slowest;
# - the fork tests (names with "fork") are left out: a forked child of an
#   ASan process with live threads can hang in ASan's own allocator locks
#   (a known limitation of fork under ASan); the plain run keeps them;
# - the static checks are left out: they read files and never call the
#   extension (mypy and stubtest: test_typing.py; the analyzer on source
#   text: test_lint.py; the C lint: test_cpylint.py; the rule ids and the
#   packaging metadata: test_docs_rules.py, test_docs_packaging.py), so a
#   sanitizer has nothing to check there and they are slow under it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-"$here/.venv/bin/python"}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# only what the build and the tests need
cp -r "$here/csrc" "$here/python" "$here/tests" "$here/benchmarks" \
      "$here/docs" "$here/setup.py" "$here/pyproject.toml" "$here/README.md" \
      "$here/LICENSE" "$here/CHANGELOG.md" "$here/MANIFEST.in" "$scratch/"
rm -f "$scratch"/python/sharptask/*.so
(cd "$scratch" && ST_SANITIZE=1 "$py" setup.py -q build_ext --inplace \
     >"$scratch/build.log" 2>&1) || { cat "$scratch/build.log"; exit 1; }
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
cd "$scratch"
LD_PRELOAD="$asan:$ubsan" PYTHONMALLOC=malloc \
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
PYTHONPATH=python "$py" -m pytest tests/python -q -p no:cacheprovider \
    --ignore=tests/python/test_leaks.py \
    --ignore=tests/python/test_benchmarks_smoke.py \
    --ignore=tests/python/test_typing.py \
    --ignore=tests/python/test_lint.py \
    --ignore=tests/python/test_cpylint.py \
    --ignore=tests/python/test_docs_rules.py \
    --ignore=tests/python/test_docs_packaging.py \
    -k "not fork"
