/* py_executor.h - what py_executor.c, the C core of sharptask.Executor's
 * futures (SPEC I2, issue 11: W13/W14), gives module.c.  Nothing else in
 * the binding uses it.
 */
#ifndef ST_PY_EXECUTOR_H
#define ST_PY_EXECUTOR_H

#include "binding.h" /* Python.h, the module state */

/* Creates the type _native._FutureCore and adds it to mod.  Returns 0, or
 * -1 with an exception set.  Refs: borrows mod and st; the module holds
 * the new type. */
int executor_module_exec(PyObject *mod, st_state *st);

#endif /* ST_PY_EXECUTOR_H */
