/* py_args.h - bottom layer (py_args.c): one parser per kind
 * of argument.
 */
#ifndef ST_PY_ARGS_H
#define ST_PY_ARGS_H

#include "binding.h"

/* ---- py_args.c: one parser per kind of argument (issue 9 item 27, H2).
 * Every entry point that takes one of these kinds, C or Python (through
 * _native._parse_timeout/_token/_options/_count), checks it here.  Each
 * returns 0, or -1 with TypeError (wrong type: bool counts as one) or
 * ValueError (wrong value) set, the message naming `name`. */
/* A time in seconds: int or float (not bool), a timedelta (anything with
 * total_seconds()), or None.  None, -1 and Timeout.InfiniteTimeSpan
 * (-1 ms) set *infinite; NaN, other negatives, and more than 4294967.294
 * s (.NET's limit; inf, huge ints) are ValueError.  *out_secs >= 0.
 * Refs: borrows obj (as every parser here). */
int parse_seconds(PyObject *obj, const char *name, double *out_secs,
                  int *infinite);
/* parse_seconds in nanoseconds.  Refs: borrows obj. */
int parse_timeout(PyObject *obj, const char *name, uint64_t *out_ns,
                  int *infinite);
/* The lenient mode of parse_timeout: a timeout as concurrent.futures'
 * Future.result()/exception() take it (issue 10 review), for the
 * Executor's futures, which must answer as ThreadPoolExecutor's do.
 * None: no limit (*out_ns = UINT64_MAX).  A float, or an int or any
 * object with __index__ (bool too): that many seconds; zero, negative and
 * NaN mean "do not wait" (*out_ns = 0), as Condition.wait takes them.
 * More than the seconds a 64-bit count of nanoseconds holds (inf, huge
 * ints): OverflowError.  Another object that compares with 0 as <= 0 is
 * "do not wait" too; anything else is a TypeError with the message
 * CPython gives (the failed comparison's, or "... cannot be interpreted
 * as an integer").  Every message starts with `name`.  Refs: borrows
 * obj. */
int parse_timeout_lenient(PyObject *obj, const char *name,
                          uint64_t *out_ns);
/* A cancellation token: None (*out = NULL), a CancellationToken, or any
 * object with is_cancellation_requested, can_be_canceled and register()
 * (K3 accepts such token objects).  Refs: borrows obj; *out is
 * borrowed (obj itself, or NULL). */
int parse_token(st_state *st, PyObject *obj, const char *name,
                PyObject **out);
/* An options value (TaskCreationOptions, TaskContinuationOptions ...):
 * an int (an enum member; not bool, not None) whose bits are all in
 * `valid`; `what` names the enum in messages.  Out of range (negative,
 * above 32 bits) or unknown bits: ValueError.  Refs: borrows obj. */
int parse_options(PyObject *obj, const char *name, const char *what,
                  uint32_t valid, uint32_t *out);
/* A count: an int (not bool) in [lo, hi]; else ValueError.  Refs:
 * borrows obj. */
int parse_count(PyObject *obj, const char *name, Py_ssize_t lo,
                Py_ssize_t hi, Py_ssize_t *out);

#endif /* ST_PY_ARGS_H */
