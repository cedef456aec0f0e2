#!/usr/bin/env bash
# Check a built wheel the way a user without a compiler would meet it
# (issue 14, packaging): `make wheel` runs it on the repaired wheel.
#
#   tools/check-wheel.sh dist/sharptask-*-manylinux*.whl
#
# 1. The wheel is a manylinux one (auditwheel repair gave it the tag).
# 2. Its metadata carries the SPDX license (License-Expression: MIT), the
#    LICENSE file, and the 3.11-3.13 classifiers.
# 3. A fresh venv (made with the wheel's Python, PYTHON or python3.X from
#    its tag) installs it with PATH reduced to that venv's bin/ (no cc, gcc
#    or make reachable), CC/CXX pointing nowhere, and no index: pip can only
#    take the wheel, never build.
# 4. A smoke test in that venv, from a folder outside the checkout: the
#    package imports from the venv, an async method suspends and resumes,
#    Task.run uses the pool, the deadlock detector fires on a UiThread, and
#    the command line runs a demo.
set -euo pipefail

if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: $0 WHEEL" >&2
    exit 2
fi
wheel=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
name=$(basename "$wheel")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fail() { echo "check-wheel: FAIL: $*" >&2; exit 1; }

# ---- 1. manylinux
case "$name" in
    *manylinux*) ;;
    *) fail "$name is not a manylinux wheel" ;;
esac
# cp311 -> python3.11
tag=$(echo "$name" | sed -n 's/.*-cp\([0-9]\)\([0-9]*\)-cp.*/\1.\2/p')
[ -n "$tag" ] || fail "cannot read the Python tag of $name"
PY=${PYTHON:-python$tag}
command -v "$PY" >/dev/null 2>&1 || fail "$PY (for a cp${tag/./} wheel) not found"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- 2. metadata
"$PY" - "$wheel" <<'PYEOF' || fail "metadata"
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as z:
    names = z.namelist()
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(z.read(meta_name).decode())
    lic = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert lic, "LICENSE is not in the wheel's dist-info/licenses"
    assert b"MIT License" in z.read(lic[0]), "LICENSE is not the MIT text"
    assert any(n.endswith(".pyi") for n in names), "no stubs in the wheel"
    assert any(n.endswith("py.typed") for n in names), "no py.typed"
assert meta["License-Expression"] == "MIT", meta["License-Expression"]
assert meta.get_all("License-File") == ["LICENSE"], meta.get_all("License-File")
classifiers = meta.get_all("Classifier")
for v in ("3.11", "3.12", "3.13"):
    assert f"Programming Language :: Python :: {v}" in classifiers, v
assert not any(c.startswith("License ::") for c in classifiers), \
    "a License classifier beside the SPDX expression"
print("check-wheel: metadata ok:", meta["Name"], meta["Version"],
      "License-Expression:", meta["License-Expression"])
PYEOF

# ---- 3. install with no compiler and no index
"$PY" -m venv "$work/venv"
mkdir -p "$work/empty"
for tool in cc gcc g++ c++ clang make ld; do
    if PATH="$work/venv/bin" command -v "$tool" >/dev/null 2>&1; then
        fail "$tool is reachable with PATH=$work/venv/bin"
    fi
done
env -i HOME="$work" PATH="$work/venv/bin" CC=/nonexistent/cc \
    CXX=/nonexistent/c++ PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$work/venv/bin/python" -m pip install --no-index --only-binary=:all: \
    --no-cache-dir -q "$wheel" || fail "pip could not install the wheel"

# ---- 4. smoke test, outside the checkout
cd "$work/empty"
env -i HOME="$work" PATH="$work/venv/bin" "$work/venv/bin/python" -W error \
    - "$here" <<'PYEOF' || fail "smoke test"
import os, sys, threading
import sharptask as st

checkout = os.path.realpath(sys.argv[1])
where = os.path.realpath(st.__file__)
assert not where.startswith(checkout + os.sep), f"imported from {where}"
assert os.path.realpath(sys.prefix) in where, where
assert st._native.__file__.endswith(".so")

gate = st.TaskCompletionSource()

@st.async_method
async def add_async(a):
    b = await gate.task
    return a + b

task = add_async(40)
assert task.status is st.TaskStatus.WAITING_FOR_ACTIVATION
st.Task.run(gate.set_result, 2)
assert task.result == 42
assert st.Task.run(threading.get_ident).result != threading.get_ident()

@st.async_method
async def get_async():
    await st.Task.delay(0.02)
    return "done"

box = {}

def click():
    box["task"] = get_async()
    return box["task"].result

with st.UiThread() as ui:
    try:
        ui.invoke(click)
        raise AssertionError("no DeadlockError")
    except st.DeadlockError:
        pass
    assert box["task"].wait(5)
print("check-wheel: smoke test ok, sharptask", st.__version__, "from", where)
PYEOF
env -i HOME="$work" PATH="$work/venv/bin" "$work/venv/bin/sharptask" \
    demo state-machine >"$work/demo.out" 2>&1 \
    || { cat "$work/demo.out"; fail "python -m sharptask demo state-machine"; }
grep -q "WAITING_FOR_ACTIVATION" "$work/demo.out" || fail "the demo's output"
echo "check-wheel: $name installs without a compiler and works"
