#!/usr/bin/env bash
# check-py-versions.sh - build with -Werror and run the whole pytest suite
# on every other supported CPython the machine has (SPEC H1, issue 9).
#
#   tools/check-py-versions.sh            # 3.12 and 3.13, those present
#   ST_PY_VERSIONS="3.11 3.12" tools/check-py-versions.sh
#   make check-py-versions                # the same as the first
#
# For each minor version: the newest pyenv CPython of it (`pyenv versions
# --bare`, so any patch level; a free-threaded "t" build is not taken),
# else a working pythonX.Y on PATH (a pyenv shim that cannot run counts
# as absent).  For each one found: a venv under build/py-versions/, pytest
# and pytest-timeout, the package built with ST_WERROR=1 (a compiler
# warning fails the build), then `pytest tests/python` with the venv's
# interpreter.  Prints what it found, what it skipped and how long each
# run took; exits non-zero if any interpreter that is present failed.
# 3.11 is the interpreter of `make venv` / `make test` and is not run
# here unless asked for.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
versions=${ST_PY_VERSIONS:-"3.12 3.13"}
out=build/py-versions
mkdir -p "$out"

# The interpreter for minor version $1 ("3.12"), or nothing.
find_python() {
    local minor=$1 best="" v exe
    if command -v pyenv >/dev/null 2>&1; then
        # numeric sort on the patch level: 3.12.10 after 3.12.9
        best=$(pyenv versions --bare 2>/dev/null \
               | sed 's/^[* ]*//; s/ .*//' \
               | grep -E "^${minor//./\\.}\.[0-9]+$" \
               | sort -t. -k3,3n | tail -n 1)
        if [ -n "$best" ]; then
            exe="$(pyenv prefix "$best" 2>/dev/null)/bin/python${minor}"
            if [ -x "$exe" ]; then
                echo "$exe"
                return
            fi
        fi
    fi
    exe=$(command -v "python${minor}" 2>/dev/null) || return 0
    v=$("$exe" -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
        2>/dev/null) || return 0
    if [ "$v" = "$minor" ]; then
        echo "$exe"
    fi
}

found=()
skipped=()
failed=()
report=()

for minor in $versions; do
    py=$(find_python "$minor")
    if [ -z "$py" ]; then
        echo "== CPython $minor: not found, skipped"
        skipped+=("$minor")
        continue
    fi
    full=$("$py" -c 'import sys; print(sys.version.split()[0])')
    found+=("$full")
    venv="$out/venv-$minor"
    log="$out/$minor.log"
    echo "== CPython $full ($py): venv $venv, log $log"
    start=$(date +%s)
    ok=1
    {
        if [ ! -x "$venv/bin/python" ] \
           || [ "$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" != "$full" ]; then
            rm -rf "$venv"
            "$py" -m venv "$venv"
        fi &&
        "$venv/bin/python" -m pip install -q pytest pytest-timeout &&
        ST_WERROR=1 "$venv/bin/python" -m pip install -q . &&
        "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
    } >"$log" 2>&1 || ok=0
    secs=$(( $(date +%s) - start ))
    tail -n 3 "$log" | sed 's/^/   /'
    if [ "$ok" = 1 ]; then
        echo "== CPython $full: passed in ${secs}s"
        report+=("$full passed (${secs}s)")
    else
        echo "== CPython $full: FAILED in ${secs}s (see $log)"
        report+=("$full FAILED (${secs}s)")
        failed+=("$full")
    fi
done

echo "check-py-versions: found: ${found[*]:-none}; skipped (absent):" \
     "${skipped[*]:-none}"
for line in "${report[@]}"; do
    echo "  $line"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-py-versions: FAILED on ${failed[*]}"
    exit 1
fi
echo "check-py-versions: every interpreter found passed"
