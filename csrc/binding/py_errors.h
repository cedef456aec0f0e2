/* py_errors.h - bottom layer (py_errors.c): error mapping
 * (core codes to exceptions), the exiting flag (H5), and reports of
 * exceptions nobody can catch.
 */
#ifndef ST_PY_ERRORS_H
#define ST_PY_ERRORS_H

#include "binding.h"

/* Raises the Python error for a core ST_E* code (ST_EFULL:
 * SemaphoreFullError); returns -1.  Refs: none. */
int st_raise_from_code(st_state *st, int rc);
/* Reports exc, an exception instance that nobody can catch, about obj
 * (may be NULL), through sys.unraisablehook with a real
 * UnraisableHookArgs (PyErr_WriteUnraisable); with CPython's default hook
 * it prints the default hook's layout itself, but the whole exception as
 * the traceback module formats it (groups' inner exceptions, chains).
 * Refs: borrows both.  GIL held; keeps a pending exception; never
 * fails. */
void report_unraisable(PyObject *exc, PyObject *obj);
/* Exit (H5): an exception raised because the interpreter is exiting (a
 * wait abandoned, the pool or timer shut down) carries a flag, and
 * nothing reports it: the program is ending, not failing.
 * raise_exiting: sets an InvalidOperationError(msg) with the flag,
 * returns -1.  is_exiting_error: 1 if exc (borrowed) has the flag, or is
 * a group of such exceptions; never sets an error.
 * write_unraisable: PyErr_WriteUnraisable(obj) for the pending error
 * (which it clears) unless it is an exiting one.  Refs: none taken or
 * given; all borrow their arguments. */
int raise_exiting(st_state *st, const char *msg);
int is_exiting_error(PyObject *exc);
void write_unraisable(PyObject *obj);
/* At shutdown: 1 if a wait or pump on this thread should give up with
 * raise_exiting (a pool worker, the exiting thread, any non-daemon
 * thread), 0 if it should go on quietly (a daemon thread: CPython stops
 * it at finalization).  GIL held; never sets an error.  Refs: none. */
int exit_should_abandon(void);
/* Once per slice of a blocking wait or pump, GIL held: -1 with an
 * exception set when the wait must end - a signal handler raised (Ctrl-C)
 * or, at exit (H5), this thread gives up (raise_exiting(st, msg)) - else
 * 0 to wait on.  *abandon caches exit_should_abandon() for the wait's
 * life: start it at -1.  Refs: none. */
int wait_slice_check(st_state *st, int *abandon, const char *msg);

#endif /* ST_PY_ERRORS_H */
