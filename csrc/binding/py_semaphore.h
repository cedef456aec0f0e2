/* py_semaphore.h - what py_semaphore.c exports: SemaphoreSlim's
 * part of module exec / traverse / clear.
 */
#ifndef ST_PY_SEMAPHORE_H
#define ST_PY_SEMAPHORE_H

#include "binding.h"

/* py_semaphore.c: SemaphoreSlim (K4); called by module.c.  Refs:
 * as valuetask_module_*. */
int semaphore_module_exec(PyObject *mod, st_state *st);
int semaphore_module_traverse(st_state *st, visitproc visit, void *arg);
void semaphore_module_clear(st_state *st);

#endif /* ST_PY_SEMAPHORE_H */
