/* py_context.h - what py_context.c exports: single-threaded
 * contexts, thread records, deadlock detection (C6), the pending-box
 * registry (D1), schedulers (C7).
 */
#ifndef ST_PY_CONTEXT_H
#define ST_PY_CONTEXT_H

#include "binding.h"

/* py_context.c: single-threaded contexts, thread records, deadlock
 * detection (C6), the pending-box registry (D1), schedulers (C7) */
/* The STContext type and the module functions, for module.c (static
 * data; Refs: none). */
extern PyType_Spec STContext_spec;
extern PyMethodDef context_methods[];
/* Box registry: link a box that suspends, unlink one that completes.
 * Refs: none: the list links borrowed pointers (a box is unlinked when
 * it completes and when it is deallocated). */
void box_registry_add(TaskObject *box);
void box_registry_remove(TaskObject *box);
/* Posts a box's resumption to a SingleThreadSynchronizationContext
 * without allocating.  0 or -1 (closed; error set).  Refs: steals one
 * reference to box on success only (the queue owns it); on -1 it stays
 * the caller's.  Borrows ctx. */
int stcontext_post_box(st_state *st, PyObject *ctx, TaskObject *box);
/* Deadlock detection around a blocking wait (C6).  before: returns -1
 * with DeadlockError set if blocking on t would never end (mode raise);
 * marks the thread blocked.  after: unmarks it.  Refs: none: the thread
 * record points at t and w (borrowed) only between before and after,
 * while the waiting caller keeps both alive. */
int deadlock_before_wait(st_state *st, TaskObject *t, st_waiter_t *w,
                         int infinite);
void deadlock_after_wait(st_state *st);
/* 1 if this thread's wait was found deadlocked by another thread's
 * re-check (then -1 with the error set in raise mode, 0 in warn mode).
 * Refs: borrows t. */
int deadlock_check_woken(st_state *st, TaskObject *t);
/* Something changed the wait-for graph (a box suspended, a post): if a
 * context's owner is blocked, re-check it.  Cheap when none is.  Refs:
 * none. */
void deadlock_graph_changed(st_state *st);
/* The thread runs task t's code now (delegate, continuation, box step).
 * Refs: none: the thread record points at t (borrowed) from push to the
 * matching pop, while the caller keeps t alive. */
void thread_running_push(TaskObject *t);
void thread_running_pop(TaskObject *t);

#endif /* ST_PY_CONTEXT_H */
