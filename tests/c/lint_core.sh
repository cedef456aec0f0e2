#!/bin/sh
# lint_core.sh - STYLE.md point 36: the core stays pure C.
#
#   tests/c/lint_core.sh [DIR]     (DIR defaults to csrc/core)
#
# Fails if any file of DIR mentions "Python.h", or if its code (comments
# stripped by the compiler's own preprocessor, so prose such as
# "PyMem_RawMalloc" in a comment is allowed) names a Py[A-Z_] identifier.
# Prints "lint: ok" on success.
set -eu

dir=${1:-csrc/core}
cc=${CC:-cc}
status=0

if grep -n 'Python\.h' "$dir"/*.c "$dir"/*.h; then
    echo "lint: $dir mentions Python.h" >&2
    status=1
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for f in "$dir"/*.c "$dir"/*.h; do
    # -fpreprocessed: drop comments, expand nothing, follow no #include.
    if ! "$cc" -fpreprocessed -dD -E -P -w -x c "$f" >"$tmp"; then
        echo "lint: cannot strip the comments of $f" >&2
        status=1
    elif grep -nE '(^|[^A-Za-z0-9_])Py[A-Z_]' "$tmp"; then
        echo "lint: $f names a Py* identifier" >&2
        status=1
    fi
done
if [ "$status" -eq 0 ]; then
    echo "lint: ok ($dir has no Python.h and no Py* identifiers)"
fi
exit "$status"
