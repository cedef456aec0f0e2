"""Build the one extension module, sharptask._native (STYLE.md point 6).

The metadata lives in pyproject.toml; this file only describes the C
extension, built from the pure-C core (csrc/core) and the CPython binding
(csrc/binding) in a single Extension, so `pip install .` needs nothing but a
C compiler and the Python headers.

Environment switches (as msgspec does):

    ST_DEBUG=1     -O0 -g and assertions on (-UNDEBUG)
    ST_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer; run the
                   result with LD_PRELOAD=$(gcc -print-file-name=libasan.so),
                   PYTHONMALLOC=malloc and ASAN_OPTIONS=detect_leaks=0
    ST_COVERAGE=1  gcov instrumentation (--coverage)
    ST_NO_TRACE=1  -DST_TRACE_DISABLED: no tracing event site at all
                   (st_trace.h; trace() records nothing): the "before the
                   recorder existed" baseline of issue 12's cost benchmark,
                   tools/bench-trace-baseline.sh
    ST_WERROR=1    -Werror: any compiler warning fails the build (SPEC H1;
                   used by the make targets, CI and
                   tools/check-py-versions.sh on 3.11, 3.12 and 3.13)
"""

import glob
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    """True when the environment variable `name` is set to a true value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _sources():
    """Every .c file of the core and of the binding, in a stable order.

    Paths are relative to this directory, as setuptools requires. The binding
    may not exist yet while the core is being written; the glob then simply
    finds nothing there.
    """
    found = []
    for sub in ("csrc/core", "csrc/binding"):
        found.extend(
            os.path.relpath(path, HERE)
            for path in glob.glob(os.path.join(HERE, sub, "*.c"))
        )
    return sorted(found)


# The warning set is -Wall -Wextra with one exception:
#   -Wno-unused-parameter  CPython fixes the parameter lists of every slot
#                          and method (METH_NOARGS's ignored argument, a
#                          getter's closure, tp_traverse's arg, the
#                          pool's hook signatures): about 130 parameters
#                          that are unused by design, not by mistake.
compile_args = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-pthread",
]
link_args = ["-pthread"]
undef_macros = []
define_macros = []

if _flag("ST_DEBUG"):
    compile_args += ["-O0", "-g"]
    undef_macros.append("NDEBUG")  # -UNDEBUG: keep assert() on

if _flag("ST_SANITIZE"):
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    compile_args += sanitize
    link_args += sanitize

if _flag("ST_NO_TRACE"):
    define_macros.append(("ST_TRACE_DISABLED", "1"))

if _flag("ST_WERROR"):
    compile_args.append("-Werror")

if _flag("ST_COVERAGE"):
    compile_args.append("--coverage")
    link_args.append("--coverage")

native = Extension(
    "sharptask._native",
    sources=_sources(),
    # setuptools does not track headers: list them so that a changed
    # header rebuilds every source (a stale struct layout is a crash)
    depends=sorted(
        os.path.relpath(path, HERE)
        for sub in ("csrc/core", "csrc/binding")
        for path in glob.glob(os.path.join(HERE, sub, "*.h"))
    ),
    include_dirs=["csrc/core", "csrc/binding"],
    undef_macros=undef_macros,
    define_macros=define_macros,
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    libraries=["pthread"],
)

setup(
    package_dir={"": "python"},
    ext_modules=[native],
)
