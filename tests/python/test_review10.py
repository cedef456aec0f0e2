"""Issue 10 review leftovers (branch review10).

- the Executor's futures read result()/exception()'s timeout as
  concurrent.futures does (py_args.c's lenient mode): the same answer, and
  the same error types, as ThreadPoolExecutor's futures for every value
  (SPEC I2);
- Executor.shutdown(wait=True) sleeps until the last run ended instead of
  polling, and Ctrl-C still interrupts it (SPEC I2, T6);
- repeated submit/result and shutdowns leave nothing behind;
- an unreferenced PeriodicTimer with no wait pending is collected and its
  timer stopped, as .NET's finalizer does; a pending wait keeps it (SPEC
  P5).
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime
import decimal
import fractions
import math
import threading
import time

import pytest

import sharptask as st
from sharptask import _executor

# ------------------------------------------- result()/exception() timeout

# Values whose answer comes at once on a pending future (no wait, or a
# wait of at most a few milliseconds), each checked against the base
# class, which is what ThreadPoolExecutor's futures are.
TIMEOUT_VALUES = [
    0, -1, -5.5, 0.0, -0.0, False, 5e-324, 0.001, math.nan, -math.inf,
    -10**30, -10**400, math.inf, 1e300, 10**30, 10**400, 9223372037,
    9223372037.0, 2**63, "1", b"1", [], object(), 1j,
    decimal.Decimal("0.01"), decimal.Decimal("-1"), decimal.Decimal("NaN"),
    fractions.Fraction(1, 100), fractions.Fraction(-1, 2),
    datetime.timedelta(seconds=0.01), datetime.timedelta(-1),
]


def _outcome(call):
    try:
        return ("ok", call())
    except BaseException as e:  # compared below, whatever it is
        return (type(e), str(e))


def _check_same(ours, theirs, value, method):
    """Our future's answer matches the base class's for one value."""
    what = f"{method}({value!r})"
    assert ours[0] is theirs[0], f"{what}: {ours} != {theirs}"
    if ours[0] == "ok":
        assert ours[1] == theirs[1], what
    elif ours[0] is TypeError:
        # CPython's own text, after the parameter's name (H2)
        assert ours[1].startswith(f"{method}(): timeout"), what
        assert theirs[1] in ours[1], what
    elif ours[0] is OverflowError:
        assert f"{method}(): timeout" in ours[1], what


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["result", "exception"])
def test_issue10_review_I2_timeout_table_matches_concurrent_futures(method):
    """issue 10 review, SPEC I2: for every timeout value, a pending, a
    finished and a cancelled Executor future answer as a
    ThreadPoolExecutor's future (concurrent.futures.Future) does: the
    same result or exception type (TimeoutError, TypeError with CPython's
    message after the parameter's name, OverflowError), and a future that
    is done never looks at its timeout."""
    values = list(TIMEOUT_VALUES)
    if method == "result":
        values.append(True)  # as an int: a one-second wait, then timeout
    with st.Executor() as ex, cf.ThreadPoolExecutor(1) as tpe:
        done_ours, done_theirs = ex.submit(int, 7), tpe.submit(int, 7)
        err_ours = ex.submit(operator_truediv, 1, 0)
        err_theirs = tpe.submit(operator_truediv, 1, 0)
        for f in (done_ours, done_theirs, err_ours, err_theirs):
            f.exception(10)
        pending_ours, pending_theirs = _executor._Future(), cf.Future()
        gone_ours, gone_theirs = _executor._Future(), cf.Future()
        assert gone_ours.cancel() and gone_theirs.cancel()
        pairs = [(pending_ours, pending_theirs), (done_ours, done_theirs),
                 (err_ours, err_theirs), (gone_ours, gone_theirs)]
        for value in values + [None, 9223372036]:
            for ours, theirs in pairs:
                if ours is pending_ours and (value is None
                                             or value == 9223372036):
                    continue  # no limit (or 292 years): not waited here
                a = _outcome(lambda: getattr(ours, method)(value))
                b = _outcome(lambda: getattr(theirs, method)(value))
                if a[0] is ZeroDivisionError:
                    a, b = (a[0], ""), (b[0], "")
                elif isinstance(a[1], ZeroDivisionError):
                    a, b = ("ok", type(a[1])), ("ok", type(b[1]))
                _check_same(a, b, value, method)
                # and by keyword
                a = _outcome(lambda: getattr(ours, method)(timeout=value))
                b = _outcome(lambda: getattr(theirs, method)(timeout=value))
                if a[0] is ZeroDivisionError:
                    a, b = (a[0], ""), (b[0], "")
                elif isinstance(a[1], ZeroDivisionError):
                    a, b = ("ok", type(a[1])), ("ok", type(b[1]))
                _check_same(a, b, value, method)
        pending_ours.set_result(None)


def operator_truediv(a, b):
    return a / b


@pytest.mark.timeout(30)
def test_issue10_review_I2_timeout_waits_then_times_out_or_finishes():
    """issue 10 review, SPEC I2: a positive timeout on a pending future
    waits (TimeoutError when it passes); a completion during the wait
    ends it with the value."""
    f = _executor._Future()
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        f.result(0.05)
    assert time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, f.set_result, (5,)).start()
    assert f.result(20) == 5 and f.exception(0) is None
