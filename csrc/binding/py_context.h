/* py_context.h - what py_context.c exports: the single-threaded
 * synchronization context (C5, C8).
 */
#ifndef ST_PY_CONTEXT_H
#define ST_PY_CONTEXT_H

#include "binding.h"

/* The STContext type, for module.c (static data; Refs: none). */
extern PyType_Spec STContext_spec;
/* Posts a box's resumption to a SingleThreadSynchronizationContext
 * without allocating.  0 or -1 (closed; error set).  Refs: steals one
 * reference to box on success only (the queue owns it); on -1 it stays
 * the caller's.  Borrows ctx. */
int stcontext_post_box(st_state *st, PyObject *ctx, TaskObject *box);

#endif /* ST_PY_CONTEXT_H */
