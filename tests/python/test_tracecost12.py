"""Issue 12 / SPEC D2, the cost benchmark's baseline: a build with
-DST_TRACE_DISABLED (setup.py's ST_NO_TRACE=1, used by
tools/bench-trace-baseline.sh as "before the recorder existed") has no
event site at all: ST_TRACE (csrc/core/st_trace.h), the binding's site
macros (csrc/binding/py_trace.h) and the sites behind st_trace_on()
compile to nothing, their arguments never evaluated.

Each test compiles a tiny C file with the C compiler (skipped without one)
and looks at what it calls: an undefined symbol in the object file is a
site left in. The same file without the define does call them, so the
check can tell the two builds apart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "csrc", "core")
BINDING = os.path.join(ROOT, "csrc", "binding")
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
NM = shutil.which("nm")

pytestmark = [
    pytest.mark.skipif(CC is None or NM is None,
                       reason="needs a C compiler and nm"),
    pytest.mark.timeout(60),
]

# ST_TRACE with arguments that have a side effect (and would call
# st_trace_emit), and a site behind st_trace_on() as py_builder.c and
# st_task.c write them.
CORE_SNIPPET = r"""
#include "st_trace.h"

static int evaluated;

static uint64_t
side_effect(void)
{
    evaluated++;
    return 1;
}

int
main(void)
{
    ST_TRACE(ST_TRACE_TASK_COMPLETED, side_effect(), side_effect(),
             (uint32_t)side_effect());
    if (ST_UNLIKELY(st_trace_on())) {
        st_trace_emit(ST_TRACE_METHOD_START, side_effect(), 0, 0);
    }
    return evaluated;
}
"""

# The binding's site macros; the helpers they call are only declared here,
# so a site left in shows as an undefined symbol of the object file.
BINDING_SNIPPET = r"""
#include "py_trace.h"

extern uint32_t site_task_id(void);

void
sites(TaskObject *t, PyObject *ctx)
{
    TRACE_TASK_CREATED(t);
    TRACE_CONTEXT_POST(site_task_id(), ctx);
    ST_TRACE(ST_TRACE_TASK_COMPLETED, trace_task_id(t), 0, 0);
}
"""


def _compile(tmp_path, name, source, defines, includes, link=False):
    # -O2 as the extension is built: a site behind a constant-false
    # st_trace_on() is removed by the optimizer, not the preprocessor
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / (name if link else f"{name}.o")
    cmd = [CC, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
           "-Wno-unused-parameter", "-pthread"]
    cmd += [f"-D{d}" for d in defines]
    cmd += [f"-I{i}" for i in includes]
    cmd += [str(src), "-o", str(out)]
    if not link:
        cmd.insert(1, "-c")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return done, out


def _undefined(obj):
    out = subprocess.run([NM, "-u", str(obj)], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_D2_issue12_disabled_core_site_is_gone_arguments_not_evaluated(
        tmp_path):
    """Issue 12 (D2's cost baseline): with -DST_TRACE_DISABLED, ST_TRACE
    and a site behind st_trace_on() leave no call to the recorder (the
    program links without the core) and never evaluate their arguments."""
    done, exe = _compile(tmp_path, "core_off", CORE_SNIPPET,
                         ["ST_TRACE_DISABLED"], [CORE], link=True)
    assert done.returncode == 0, done.stderr
    run = subprocess.run([str(exe)], timeout=30)
    assert run.returncode == 0, (
        f"{run.returncode} site argument(s) evaluated in the disabled build")


def test_D2_issue12_default_core_site_is_still_there(tmp_path):
    """Issue 12 (D2): the default build keeps the sites: the same code
    calls st_trace_emit and reads the on/off flag."""
    done, obj = _compile(tmp_path, "core_on", CORE_SNIPPET, [], [CORE])
    assert done.returncode == 0, done.stderr
    undefined = _undefined(obj)
    assert "st_trace_emit" in undefined
    assert "st__trace_on" in undefined


def _python_include():
    include = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(include, "Python.h")):
        pytest.skip("no Python.h")
    return include


BINDING_HELPERS = {"trace_task_created", "trace_type_name", "trace_task_id",
                   "site_task_id", "st_trace_emit", "st__trace_on"}


def test_D2_issue12_disabled_binding_site_macros_are_empty(tmp_path):
    """Issue 12 (D2): with -DST_TRACE_DISABLED, py_trace.h's
    TRACE_TASK_CREATED and TRACE_CONTEXT_POST (and ST_TRACE with a
    binding helper in its arguments) call nothing: no trace helper, no
    recorder, not even the flag."""
    include = _python_include()
    done, obj = _compile(tmp_path, "binding_off", BINDING_SNIPPET,
                         ["ST_TRACE_DISABLED"], [include, CORE, BINDING])
    assert done.returncode == 0, done.stderr
    assert not (_undefined(obj) & BINDING_HELPERS)


def test_D2_issue12_default_binding_site_macros_record(tmp_path):
    """Issue 12 (D2): the default build's binding sites do call the
    helpers (behind the flag)."""
    include = _python_include()
    done, obj = _compile(tmp_path, "binding_on", BINDING_SNIPPET, [],
                         [include, CORE, BINDING])
    assert done.returncode == 0, done.stderr
    undefined = _undefined(obj)
    assert {"trace_task_created", "trace_type_name", "site_task_id",
            "st_trace_emit", "st__trace_on"} <= undefined


@pytest.mark.timeout(120)
def test_D2_issue12_baseline_driver_reports_each_workload(tmp_path):
    """Issue 12 (D2's cost benchmark): tools/bench_trace_baseline.py, the
    driver of tools/bench-trace-baseline.sh, runs W2, W4a and W5 in child
    processes against two builds and prints both medians and their ratio
    for each (here both "builds" are the installed package, one quick
    round, no callgrind: only that it runs and reports)."""
    import sys
    import sharptask
    here = os.path.dirname(os.path.dirname(os.path.abspath(
        sharptask.__file__)))
    driver = os.path.join(ROOT, "tools", "bench_trace_baseline.py")
    if not os.path.exists(driver):
        # the ASan run and an installed copy of the tests have no tools/
        pytest.skip("tools/ is not beside the tests")
    done = subprocess.run(
        [sys.executable, driver, "--off", here, "--norec", here, "--quick",
         "--rounds", "1", "--no-callgrind"],
        capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr
    for which in ("W2", "W4a", "W5"):
        lines = [line for line in done.stdout.splitlines()
                 if line.startswith(which + " ")]
        assert len(lines) == 1, done.stdout
        assert "off" in lines[0] and "norec" in lines[0]
        assert "ratio off/norec" in lines[0]
