/* py_timer.h - what py_timer.c exports.
 */
#ifndef ST_PY_TIMER_H
#define ST_PY_TIMER_H

#include "binding.h"

/* py_timer.c: the one-shot timer handle under Timer, PeriodicTimer and
 * TimeProvider.system (P5), and the time_provider= forms of Task.delay
 * and wait_async (P6a), which go to sharptask._timers.  Refs: the
 * module parts as valuetask_module_*; timers_*: new (the result of the
 * Python function); borrow every argument. */
int timer_module_exec(PyObject *mod, st_state *st);
int timer_module_traverse(st_state *st, visitproc visit, void *arg);
void timer_module_clear(st_state *st);
PyObject *timers_delay(st_state *st, PyObject *seconds, PyObject *token,
                       PyObject *provider);
PyObject *timers_wait_async(st_state *st, PyObject *task, PyObject *timeout,
                            PyObject *token, PyObject *provider);

#endif /* ST_PY_TIMER_H */
