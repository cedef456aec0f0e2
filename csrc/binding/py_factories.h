/* py_factories.h - what py_factories.c exports: the Task static factories
 * and the custom-scheduler glue, bound in py_task.c's method tables.
 */
#ifndef ST_PY_FACTORIES_H
#define ST_PY_FACTORIES_H

#include "binding.h"
#include "py_task.h" /* task_node_kind */

/* Task's static methods: run, _start_new, delay, yield_, from_result,
 * from_exception, from_canceled, from_future.  Refs: new (the Task or
 * awaitable returned); borrow their arguments. */
PyObject *task_run(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames);
PyObject *task_start_new_raw(PyObject *unused, PyObject *args);
PyObject *task_delay(PyObject *unused, PyObject *args, PyObject *kwds);
PyObject *task_yield(PyObject *unused, PyObject *noargs);
PyObject *task_from_result_meth(PyObject *unused, PyObject *value);
PyObject *task_from_exception(PyObject *unused, PyObject *exc);
PyObject *task_from_canceled(PyObject *unused, PyObject *token);
PyObject *task_from_future(PyObject *unused, PyObject *fut);

/* Module functions for TaskScheduler (task_module_methods in py_task.c):
 * _try_execute_task, _task_delegate, _complete_delegate,
 * _current_scheduler.  Refs: new; borrow their arguments. */
PyObject *mod_try_execute_task(PyObject *mod, PyObject *args);
PyObject *mod_task_delegate(PyObject *mod, PyObject *args);
PyObject *mod_complete_delegate(PyObject *mod, PyObject *args);
PyObject *mod_current_scheduler(PyObject *mod, PyObject *unused);


/* For module.c: Task's static factories (task_compose_methods) and the
 * module functions of the scheduler glue.  Static data.  Refs: none. */
extern PyMethodDef factories_task_methods[];
extern PyMethodDef factories_module_methods[];

#endif /* ST_PY_FACTORIES_H */
