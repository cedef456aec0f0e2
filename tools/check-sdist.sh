#!/usr/bin/env bash
# Build the sdist and run the test suite from it (issue 14, packaging): the
# sdist must carry the tests and the documentation sources, and a user who
# unpacks it must be able to build, test and document sharptask.
#
#   tools/check-sdist.sh            pytest suite, docs, plain C core tests
#   FULL=1 tools/check-sdist.sh     `make test` instead (adds ASan/TSan runs)
#
# Needs what `make test` needs (a C compiler, make, Python with its headers,
# PyPI for pytest, build and the doc tools). Works in a temporary folder and
# leaves nothing behind but the sdist in build/sdist-check/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
out="$here/build/sdist-check"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== check-sdist: building the sdist"
rm -rf "$out"
mkdir -p "$out"
"$PYTHON" -m venv "$work/tools"
"$work/tools/bin/pip" install -q build
"$work/tools/bin/python" -m build --sdist --outdir "$out" "$here" \
    >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
sdist=$(ls "$out"/sharptask-*.tar.gz)
echo "check-sdist: $(basename "$sdist")"

echo "== check-sdist: what it carries"
listing=$(tar tzf "$sdist")
for required in LICENSE CHANGELOG.md README.md Makefile setup.py \
                pyproject.toml tests/python/conftest.py tests/c/test.h \
                docs/conf.py docs/index.md docs/architecture.md \
                docs/semantics.md docs/benchmarks/results.json \
                tools/check-wheel.sh python/sharptask/_native.pyi \
                python/sharptask/py.typed csrc/core/st_task.c; do
    if ! grep -q "^sharptask-[^/]*/$required\$" <<<"$listing"; then
        echo "check-sdist: FAIL: $required is not in the sdist" >&2
        exit 1
    fi
done
if grep -qE '(__pycache__|\.so$|\.o$|/\.venv/|/build/)' <<<"$listing"; then
    echo "check-sdist: FAIL: build products in the sdist:" >&2
    grep -E '(__pycache__|\.so$|\.o$|/\.venv/|/build/)' <<<"$listing" >&2
    exit 1
fi
echo "check-sdist: $(wc -l <<<"$listing") entries, tests and docs included"

echo "== check-sdist: building and testing from the unpacked sdist"
tar xzf "$sdist" -C "$work"
src=$(ls -d "$work"/sharptask-*/)
cd "$src"
if [ "${FULL:-0}" = 1 ]; then
    make test PYTHON="$PYTHON"
else
    make venv PYTHON="$PYTHON"
    .venv/bin/python -m pytest tests/python -q -p no:cacheprovider
    make docs PYTHON="$PYTHON"
    make build/plain/run_tests
    make check-c-plain
fi
echo "check-sdist: the suite passes when built from $(basename "$sdist")"
