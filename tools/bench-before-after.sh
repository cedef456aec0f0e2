#!/usr/bin/env bash
# Issue 10: "Speed must not suffer: the W1–W12 ratios stay within 5 % of
# today's, measured side by side before and after in one run"; BENCHMARKS.md:
# "A change that moves code (the binding restructure) reruns W1–W12 before
# and after in one run and reports both columns."
#
# Builds the extension of two variants of the source, each in its own scratch
# tree under build/before-after/:
#   before  `git archive REF`; default 22abaff, the last commit before issue
#           10's first commit (8e5b148)
#   after   a copy of a git working tree's files (tracked and untracked, not
#           ignored; uncommitted changes included): default this one; or
#           `git archive REF` when REF is not a directory
# A REF's build is kept and reused while the commit and the interpreter stay
# the same; a working tree is copied and built afresh every time.
# Then tools/bench_before_after.py runs `python -m sharptask bench --only ID
# --out DIR --no-progress` (with --quick when asked), each variant with its own
# package and benchmarks (PYTHONPATH=<tree>/python, checked in the child), one
# child per workload and variant, the variants alternating, for N rounds; and
# prints a Markdown table: per result row the median over the rounds of each
# variant's ratio sharptask/peer, the change in %, and a flag on every row
# that moved more than 5 % the bad way.
#
#   tools/bench-before-after.sh [--before REF] [--after REF|WORKTREE]
#       [--rounds N] [--quick] [--only IDS] [--tolerance PCT] [--out DIR]
#
# --only defaults to every workload W1..W12 either variant has (W2b, W4a,
# W9 ... included). PYTHON (default .venv/bin/python) builds and runs both.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-"$here/.venv/bin/python"}
root="$here/build/before-after"
. "$here/tools/bench-lib.sh"

die() { echo "bench-before-after: $*" >&2; exit 2; }

before=22abaff
after=$here
rest=()
while [ $# -gt 0 ]; do
    case $1 in
        --before|--after)
            [ $# -ge 2 ] || die "$1 needs a value"
            if [ "$1" = --before ]; then before=$2; else after=$2; fi
            shift 2 ;;
        --before=*) before=${1#*=}; shift ;;
        --after=*) after=${1#*=}; shift ;;
        -h|--help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0 ;;
        *) rest+=("$1"); shift ;;
    esac
done
[ -x "$py" ] || die "no interpreter at $py (run make venv, or set PYTHON)"
# what a build depends on besides the source: the interpreter and its ABI
abi=$("$py" -c 'import sys, sysconfig
print(sys.executable, sysconfig.get_config_var("EXT_SUFFIX"))')

# stage NAME SOURCE: fill $root/NAME from SOURCE and build it there; sets
# label (the variant's description for the table).
stage() {
    local name=$1 source=$2 dest="$root/$1" top sha dirty
    if [ -d "$source" ]; then
        top=$(git -C "$source" rev-parse --show-toplevel 2>/dev/null) ||
            die "--$name: $source is not inside a git working tree"
        dirty=""
        if [ -n "$(git -C "$top" status --porcelain)" ]; then
            dirty=" + uncommitted changes"
        fi
        label="working tree $top at $(git -C "$top" rev-parse --short HEAD)$dirty"
        rm -rf "$dest"
        mkdir -p "$dest"
        echo "$name: copying $top" >&2
        (cd "$top" && git ls-files -z -co --exclude-standard |
            while IFS= read -r -d '' f; do
                # a tracked file deleted in the tree is not copied
                if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
            done | tar --null -T - -cf -) | tar -C "$dest" -xf -
        bench_build_inplace "$dest" "$py"
        return
    fi
    sha=$(git -C "$here" rev-parse --verify --quiet "$source^{commit}") ||
        die "--$name: $source is neither a directory nor a commit of $here"
    label="$(git -C "$here" log -1 --format='%h "%<(50,trunc)%s' "$sha" |
        sed 's/ *$//')\""
    local stamp="$sha $abi"
    if [ -f "$dest/.bench-variant" ] &&
            [ "$(cat "$dest/.bench-variant")" = "$stamp" ] &&
            compgen -G "$dest/python/sharptask/*.so" >/dev/null; then
        echo "$name: $source already built in $dest" >&2
        return
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    echo "$name: git archive $source" >&2
    git -C "$here" archive --format=tar "$sha" | tar -C "$dest" -xf -
    bench_build_inplace "$dest" "$py"
    echo "$stamp" >"$dest/.bench-variant"
}

mkdir -p "$root"
stage before "$before"
before_label=$label
stage after "$after"
after_label=$label
exec "$py" "$here/tools/bench_before_after.py" \
    --before-tree "$root/before" --before-label "$before_label" \
    --after-tree "$root/after" --after-label "$after_label" \
    ${rest[@]+"${rest[@]}"}
