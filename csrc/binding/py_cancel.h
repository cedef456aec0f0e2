/* py_cancel.h - what py_cancel.c (CancellationTokenSource and
 * CancellationToken) exports: its part of module exec / traverse /
 * clear.  The layouts are in py_cancel_types.h; what py_cancel_reg.c
 * (below it) exports, to py_cancel.c and to the files above, is in
 * py_cancel_reg.h.
 */
#ifndef ST_PY_CANCEL_H
#define ST_PY_CANCEL_H

#include "binding.h"
#include "py_cancel_reg.h"

/* ---- for module.c: the cancellation part of module exec / traverse /
 * clear.  Refs: borrows mod; exec stores strong references in st, clear
 * drops them. */
int cancel_module_exec(PyObject *mod, st_state *st);
int cancel_module_traverse(st_state *st, visitproc visit, void *arg);
void cancel_module_clear(st_state *st);

#endif /* ST_PY_CANCEL_H */
