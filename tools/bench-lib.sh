# Shell helpers shared by the scripts that build sharptask variants side by
# side in scratch trees under build/ (tools/bench-trace-baseline.sh,
# tools/bench-before-after.sh). Sourced, not run.

# bench_build_inplace DEST PYTHON [VAR=VALUE ...]
#
# Builds the extension sharptask._native in place in the scratch source tree
# DEST (into DEST/python/sharptask/, after removing any old one) with PYTHON,
# the given variables set in the build's environment. The compiler's output
# goes to DEST/build.log, which is printed when the build fails (status 1).
bench_build_inplace() {
    local dest=$1 py=$2
    shift 2
    case $py in /*) ;; */*) py="$PWD/$py" ;; esac  # the build runs in $dest
    rm -f "$dest"/python/sharptask/*.so
    echo "building $(basename "$dest")${*:+ ($*)} in $dest" >&2
    (cd "$dest" && env "$@" "$py" setup.py -q build_ext --inplace \
         >"$dest/build.log" 2>&1) || { cat "$dest/build.log" >&2; return 1; }
}
