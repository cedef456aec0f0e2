"""pytest plugin: find reference and memory-block leaks (SPEC H3), the way
CPython's own test runner does with ``-R 3:3``.

    PYTHONPATH=tools python3.11-dbg -m pytest -p refleak_plugin \\
        --refleaks=3:3 tests/python

Each test runs WARMUPS + RUNS times in a row (setup, call and teardown each
time; fixtures broader than a function stay set up between the runs).
After every run the plugin settles the process (collects garbage, lets the
thread pool and the timers finish what the test left queued, clears the
standard library's caches) and reads ``sys.gettotalrefcount()`` (debug
interpreters only) and ``sys.getallocatedblocks()``.  The warm-up runs
absorb what a test legitimately allocates once: the thread pool and its
threads, the pooled boxes and ValueTask sources, interned strings, the
type attribute cache, imports done on first use, the deadlock detector's
and the contexts' per-thread records.  The test then fails if, in every
one of the RUNS measured runs, the total reference count grew (or, in
every one of them, the number of allocated blocks grew): one-off growth
and noise go up and down, a leak grows every time (CPython's own rule,
Lib/test/libregrtest/refleak.py).  A test that grew in every run of the
first measured round runs RUNS more times, and fails only if it grows in
every one of those too: the allocated blocks alone now and then grow
three times in a row by chance (a free list, a dict resize).

Before a test's first run the plugin collects and freezes what is alive
(gc.freeze), so that the collections between runs walk only what the test
makes (see _freeze_survivors); after each run it drops the finalizers that
pytest adds to a broader fixture at every run of a function fixture over
it (tmp_path over tmp_path_factory: see _trim_broad_fixtures).  A test
marked ``@pytest.mark.refleaks_unmeasured(reason=...)`` runs once,
unmeasured, and the summary counts it (``-v``: with its reason): for
what this process cannot count, such as drawing with matplotlib, whose
numpy is a release build.

Only the last run's reports are shown, so a passing test reads as one
``.``; a test that fails in any run is reported with that run's failure.

Each run happens in a copy of the main thread's ``contextvars`` context,
so that the context variables a test sets do not outlive it.

With ``--refleaks-max-seconds=S``, a test whose first run takes longer
than S seconds runs once and is not measured either: in this suite about
one test in eight takes longer than 0.1 s, nearly always waiting (on a
timeout, a sleep, a stress loop's threads), and those few take nine tenths
of the time; repeating them six times would not fit the budget of
``make test``.  The summary counts them; ``-v`` lists them.

A test that starts a child process (``subprocess``, as ``run_script``
does) runs once and is not measured: what it checks runs in the child,
whose references this process cannot count, and repeating it would only
cost the time of the child runs.  The summary lists how many there were.
(``os.fork`` tests are repeated: the parent's part is in-process.)

Run it with ``-p no:hypothesispytest``: hypothesis's pytest plugin gives a
parametrized hypothesis test a new settings object chained onto the old
one at every call (_hypothesis_pytestplugin.py), about 22 references per
run of each fuzz test that are hypothesis's, not the library's; the
plugin only adds reporting, hypothesis itself runs the same without it.

The pytest-timeout timer covers one run when pytest is started with
``-o timeout_func_only=true`` (the make target does that), so that a test
marked ``timeout(10)`` gets 10 s per run, not for all of them.
"""

from __future__ import annotations

import array
import contextvars
import gc
import sys
import time

import pytest
from _pytest.runner import runtestprotocol

_DEFAULT = "3:3"


def pytest_addoption(parser):
    group = parser.getgroup("refleaks")
    group.addoption(
        "--refleaks-max-seconds", type=float, default=None, metavar="S",
        help="a test whose first (warm-up) run takes longer than S seconds "
             "runs once, unmeasured (the summary counts them, -v lists "
             "them): the budget for the slow few, which wait on timeouts")
    group.addoption(
        "--refleaks", metavar="WARMUPS:RUNS", default=None,
        help="run each test WARMUPS+RUNS times and fail it when the total "
             "reference count (debug interpreter) or the allocated blocks "
             f"grow in every measured run (like CPython's -R; e.g. {_DEFAULT})")


def _parse(value):
    try:
        warm, runs = (int(x) for x in value.split(":"))
    except ValueError:
        raise pytest.UsageError(
            f"--refleaks wants WARMUPS:RUNS (e.g. {_DEFAULT}), got {value!r}")
    if warm < 1 or runs < 2:
        raise pytest.UsageError("--refleaks: WARMUPS >= 1 and RUNS >= 2")
    return warm, runs


def pytest_configure(config):
    value = config.getoption("refleaks")
    if value is None:
        return
    if not hasattr(sys, "gettotalrefcount"):
        raise pytest.UsageError(
            "--refleaks needs a debug interpreter (sys.gettotalrefcount), "
            "e.g. Debian's python3.11-dbg")
    _keep_hypothesis_off_numpy()
    config.pluginmanager.register(
        _RefleakRunner(*_parse(value),
                       max_seconds=config.getoption("refleaks_max_seconds")),
        "refleak-runner")


def _keep_hypothesis_off_numpy():
    """Stop hypothesis from saving and restoring numpy's global random
    state around every example once numpy is imported (matplotlib imports
    it: the trace's PNG).  numpy is a release build: its own increfs and
    decrefs do not count in the debug interpreter's total, so a reference
    the interpreter takes (counted) and numpy drops (not counted) reads as
    a leak: each get_state/set_state pair adds about 3,800 to
    sys.gettotalrefcount() with no memory block kept (seen
    here: every fuzz test after the first PNG "leaked" 18,923 references
    per run).  No test here draws from numpy's random; hypothesis still
    seeds Python's own.  hypothesis makes its numpy wrapper once, when
    ``entropy.NP_RANDOM`` is None: a placeholder there means it never
    does."""
    try:
        from hypothesis.internal import entropy
    except ImportError:
        return
    if hasattr(entropy, "NP_RANDOM") and entropy.NP_RANDOM is None:
        entropy.NP_RANDOM = object()


def _settle_pool(timeout=1.0):
    """Wait (bounded) until the sharptask pool has nothing queued and no
    worker busy, so that a reference a worker still holds for the test's
    last item is not counted as a leak of the next run."""
    native = sys.modules.get("sharptask._native")
    if native is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = native._pool_stats()
        busy = s["thread_count"] - s["idle_count"] - s["blocked_count"]
        if s["pending"] == 0 and busy <= 0:
            return
        time.sleep(0.002)


def _clear_caches():
    """The standard library's caches that a test fills as a side effect
    (CPython's dash_R_cleanup clears the same kind): they are not leaks."""
    import collections.abc
    import copyreg
    import inspect
    import linecache
    import re

    sys._clear_type_cache()
    re.purge()
    linecache.clearcache()
    copyreg.clear_extension_cache()
    typing = sys.modules.get("typing")
    if typing is not None:
        for cleanup in typing._cleanups:
            cleanup()
    # isinstance() against an ABC caches the answer per class
    for name in collections.abc.__all__:
        abc_cls = getattr(collections.abc, name)
        if inspect.isabstract(abc_cls):
            for cls in [abc_cls, *abc_cls.__subclasses__()]:
                cls._abc_caches_clear()
    # a module's __warningregistry__ remembers each warning location shown;
    # read from the module's globals, never getattr(): a missing attribute
    # of a module goes to its __getattr__, which in a release-built
    # extension (matplotlib.ft2font) moves the debug total by 6 per read
    for mod in list(sys.modules.values()):
        globs = getattr(mod, "__dict__", None)
        reg = globs.get("__warningregistry__") if isinstance(globs, dict) \
            else None
        if isinstance(reg, dict):
            reg.clear()


class _ChildWatch:
    """Counts the child processes started (subprocess.Popen) while on."""

    def __init__(self):
        import subprocess

        self.count = 0
        self._popen_init = subprocess.Popen.__init__
        watch = self

        def init(popen, *args, **kwargs):
            watch.count += 1
            return watch._popen_init(popen, *args, **kwargs)

        subprocess.Popen.__init__ = init


def _broad_fixture_marks(item):
    """The fixtures broader than a function that the item uses, each with
    how many finalizers it holds now (after the item's first run)."""
    marks = []
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        for fd in defs:
            fins = getattr(fd, "_finalizers", None)
            if fd.scope != "function" and isinstance(fins, list):
                marks.append((fins, len(fins)))
    return marks


def _trim_broad_fixtures(marks):
    """pytest gives a broader fixture one more finalizer at every run of a
    function-scoped fixture that depends on it (the dependent's finish,
    FixtureDef.execute), kept until the broader one is torn down: about 30
    references and 10 memory blocks per run of every test using tmp_path
    (over tmp_path_factory), which would read as the test's leak.  The
    dependent is finished by then (its teardown ran), so the entries a run
    added are dropped."""
    for fins, n in marks:
        del fins[n:]


def _freeze_survivors():
    """Before a test's first run: collect, then move every object still
    alive (the imports, the earlier tests' survivors) into the collector's
    permanent generation (gc.freeze), so that the collections between the
    runs walk only what this test makes.  Those walks were most of the
    run's time (9 runs x 3 full collections of a heap that matplotlib,
    hypothesis and dask make large).  It cannot hide a leak of the test:
    a leak grows in every run, and what the test makes is never frozen
    while it is measured; a frozen object that becomes cyclic garbage
    later is only never freed, which at most lowers one run's count.
    (Frozen objects are also left out of gc.get_objects(): a test that
    searches it finds what it made itself, not what earlier tests left.)"""
    gc.collect()
    gc.freeze()


def _measure():
    _settle_pool()
    _clear_caches()
    for _ in range(3):
        gc.collect()
    return sys.gettotalrefcount(), sys.getallocatedblocks()


class _RefleakRunner:
    def __init__(self, warmups, runs, max_seconds=None, freeze=True):
        self.freeze = freeze
        self.warmups = warmups
        self.runs = runs
        self.max_seconds = max_seconds
        self.leaks = []
        self.once = []
        self.slow = []
        self.noise = []
        self.marked = []
        self.children = _ChildWatch()

    def pytest_report_header(self, config):
        return (f"refleaks: each test runs {self.warmups} warm-up + "
                f"{self.runs} measured times (sys.gettotalrefcount, "
                "sys.getallocatedblocks)")

    def _run_once(self, item):
        """One run (setup, call, teardown) of item; its reports.  The
        fixtures broader than a function stay: the teardown is the one
        before a sibling of item (the protocol's last step tears them
        down for the real next item)."""
        item._report_sections = []
        # in a copy of the runner's contextvars context: a ContextVar a test
        # creates and sets would otherwise stay in the main thread's
        # context for good (the test's own state, not a leak)
        return contextvars.copy_context().run(
            runtestprotocol, item, log=False, nextitem=item.parent)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid,
                                      location=item.location)
        try:
            reports = self._protocol(item)
        finally:
            item.session._setupstate.teardown_exact(nextitem)
        for r in reports:
            ihook.pytest_runtest_logreport(report=r)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid,
                                       location=item.location)
        return True

    def _protocol(self, item):
        """Warm-ups, a measured round and, when that round grew every time,
        a second one to confirm (one round of 3 now and then mistakes the
        noise of the memory blocks for a leak): a leak grows in both."""
        runs = self.runs
        # arrays of C longs: storing a delta keeps no int object alive (a
        # list would, and count as a leak of its own)
        rc = array.array("q", [0] * (2 * runs))
        blocks = array.array("q", [0] * (2 * runs))
        rc_before = blocks_before = measured = 0
        mark = item.get_closest_marker("refleaks_unmeasured")
        if mark is not None:
            # the test says why its references cannot be counted
            self.marked.append((item.nodeid, mark.kwargs.get(
                "reason", mark.args[0] if mark.args else "")))
            return self._run_once(item)
        if self.freeze:
            _freeze_survivors()
        for i in range(self.warmups + 2 * runs):
            children = self.children.count
            started = time.monotonic()
            reports = self._run_once(item)
            if i == 0 and self.children.count != children:
                # a child-process test: once, unmeasured (module doc)
                self.once.append(item.nodeid)
                return reports
            if i == 0 and self.max_seconds is not None and \
                    time.monotonic() - started > self.max_seconds:
                self.slow.append(item.nodeid)
                return reports
            if any(r.failed or r.skipped for r in reports):
                if i > 0 and any(r.failed for r in reports):
                    for r in reports:
                        if r.failed:
                            r.sections.append((
                                "refleaks", f"failed in run {i + 1} (the "
                                "earlier runs passed)"))
                return reports
            if i == 0:
                marks = _broad_fixture_marks(item)
            else:
                _trim_broad_fixtures(marks)
            rc_after, blocks_after = _measure()
            if i >= self.warmups:
                rc[measured] = rc_after - rc_before
                blocks[measured] = blocks_after - blocks_before
                measured += 1
                if measured == runs and not self._leaked(rc, blocks, 0):
                    return reports
            rc_before, blocks_before = rc_after, blocks_after
        if not self._leaked(rc, blocks, runs):
            self.noise.append(item.nodeid)
            return reports
        what = []
        if self._grew(rc, 0) and self._grew(rc, runs):
            what.append(f"references {rc.tolist()} (sum {sum(rc)})")
        if self._grew(blocks, 0) and self._grew(blocks, runs):
            what.append(f"memory blocks {blocks.tolist()} "
                        f"(sum {sum(blocks)})")
        if not what:  # refs grew in one round, blocks in the other
            self.noise.append(item.nodeid)
            return reports
        msg = (f"{item.nodeid} leaked " + " and ".join(what)
               + f" in {2 * runs} runs after {self.warmups} warm-ups")
        self.leaks.append(msg)
        for r in reports:
            if r.when == "call":
                r.outcome = "failed"
                r.longrepr = msg
        return reports

    def _grew(self, deltas, start):
        return all(d >= 1 for d in deltas[start:start + self.runs])

    def _leaked(self, rc, blocks, start):
        return self._grew(rc, start) or self._grew(blocks, start)

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        tr.section("refleaks")
        if not self.leaks:
            tr.write_line(f"no test leaked ({self.warmups} warm-ups, then "
                          f"{self.runs} measured runs)")
        for msg in self.leaks:
            tr.write_line(msg)
        if self.noise:
            tr.write_line(f"{len(self.noise)} tests grew in their first "
                          f"{self.runs} measured runs but not in the "
                          "next ones (noise, not a leak)")
        if self.marked:
            tr.write_line(f"{len(self.marked)} tests ran once, unmeasured: "
                          "marked refleaks_unmeasured (-v lists them and "
                          "why)")
            if tr.verbosity > 0:
                for nodeid, why in self.marked:
                    tr.write_line(f"  {nodeid}: {why}")
        for nodeids, why in (
                (self.once, "they start a child process"),
                (self.slow, f"their first run took more than "
                            f"{self.max_seconds} s")):
            if not nodeids:
                continue
            tr.write_line(f"{len(nodeids)} tests ran once, unmeasured: {why}"
                          " (-v lists them)")
            if tr.verbosity > 0:
                for nodeid in nodeids:
                    tr.write_line(f"  {nodeid}")
