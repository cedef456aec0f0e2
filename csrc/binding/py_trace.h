/* py_trace.h - what py_trace.c, the event recorder's Python face (SPEC D2,
 * issue 12), gives the binding: the module functions (module.c) and the
 * helpers of the binding's event sites, which record with the core's
 * ST_TRACE (st_trace.h).  Every helper below is called only while a trace
 * records (inside ST_TRACE's arguments or behind st_trace_on()), with the
 * GIL held: off, a site costs its one branch and nothing else.
 */
#ifndef ST_PY_TRACE_H
#define ST_PY_TRACE_H

#include "binding.h" /* Python.h, the module state */

#include "st_trace.h" /* ST_TRACE, st_trace_on */

/* The module functions _trace_start, _trace_stop, _trace_active,
 * _trace_collect, _trace_names and _trace_string, for
 * PyModule_AddFunctions in module.c.  A static table.  Refs: none. */
extern PyMethodDef trace_methods[];

/* GIL held.  A new task id from the counter Task.id draws from (never
 * 0): the id of an async method's call, assigned at method.start before
 * any Task exists (D2).  Refs: none. */
uint32_t trace_new_id(st_state *st);

/* GIL held.  t's id (Task.id), assigned now if it had none, and copied
 * to its core (st_task_set_trace_id) so that the core's events about t
 * (task.completed, wait.*) carry it.  Refs: borrows t. */
uint32_t trace_task_id(TaskObject *t);

/* GIL held.  The next task whose task.created this thread records (the
 * box of an async method that suspends) takes `id` instead of a new one;
 * 0 cancels a claim that no creation took.  Refs: none. */
void trace_claim_id(uint32_t id);

/* GIL held.  Records task.created for t (just allocated), giving it an id
 * (a claimed one, see trace_claim_id, or a new one).  Refs: borrows t. */
void trace_task_created(TaskObject *t);

/* GIL held.  The interned name of obj's type (st_trace_intern; 0 if the
 * table is full).  Refs: borrows obj. */
uint32_t trace_type_name(PyObject *obj);

#if defined(ST_TRACE_DISABLED)
/* A build without event sites (st_trace.h, setup.py's ST_NO_TRACE=1):
 * the sites are empty, their arguments never evaluated (sizeof). */
#define TRACE_TASK_CREATED(t) ((void)sizeof(t))
#define TRACE_CONTEXT_POST(task_id, ctx)                                    \
    do {                                                                    \
        (void)sizeof(task_id);                                              \
        (void)sizeof(ctx);                                                  \
    } while (0)
#else
/* The task.created site (task_alloc): one branch when off. */
#define TRACE_TASK_CREATED(t)                                               \
    do {                                                                    \
        if (ST_UNLIKELY(st_trace_on())) {                                   \
            trace_task_created(t);                                          \
        }                                                                   \
    } while (0)

/* The context.post site: before the callback is queued on ctx; task_id
 * is evaluated only when on. */
#define TRACE_CONTEXT_POST(task_id, ctx)                                    \
    ST_TRACE(ST_TRACE_CONTEXT_POST, (task_id), 0, trace_type_name(ctx))
#endif

#endif /* ST_PY_TRACE_H */
