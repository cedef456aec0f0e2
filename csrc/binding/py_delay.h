/* py_delay.h - what py_delay.c exports: Task.delay's tasks.
 */
#ifndef ST_PY_DELAY_H
#define ST_PY_DELAY_H

#include "binding.h"

/* Task.delay(ns) without a token: a promise the timer completes.  Refs:
 * new. */
PyObject *delay_start(st_state *st, uint64_t ns);
/* Like delay_start, and *node gets a claim on the delay's timer node that
 * the caller gives back with delay_release (GIL held for both); with
 * disarm, a timer that has not fired yet is taken out at once (the task
 * then never completes).  So a timeout that lost its race holds no timer
 * and no task until its deadline (issue 9 item 10).  Refs: new (the
 * task); *node is a native claim, not a reference, that delay_release
 * gives back (Refs: none). */
struct delay_node;
PyObject *delay_start_owned(st_state *st, uint64_t ns,
                            struct delay_node **node);
void delay_release(struct delay_node *node, int disarm);
/* Task.delay(seconds, cancellation_token=token) (K3, R5.4): a canceled
 * token gives a canceled task; a native token that fires first disarms
 * the timer at once; other token objects go through sharptask._impl.
 * Refs: new; borrows seconds and token. */
PyObject *delay_start_token(st_state *st, PyObject *seconds, uint64_t ns,
                            int infinite, PyObject *token);

#endif /* ST_PY_DELAY_H */
