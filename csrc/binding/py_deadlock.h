/* py_deadlock.h - what py_deadlock.c exports: the per-thread records,
 * deadlock detection (C6) and the pending boxes for dump_async (D1).
 */
#ifndef ST_PY_DEADLOCK_H
#define ST_PY_DEADLOCK_H

#include "binding.h"

/* The module functions (deadlock detection mode, _context_owner,
 * _completed_by, _pending_boxes, the unraisable-report helpers), for
 * module.c (static data; Refs: none). */
extern PyMethodDef deadlock_methods[];
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

/* A thread's record (opaque outside py_deadlock.c: it embeds the core's
 * st_wg_thread_t, attached to the detector's st_waitgraph while the
 * thread lives).  GIL held for all below.  cur_rec: the calling thread's record or NULL; get_rec: the
 * same, made on first use (NULL with an error).  Refs: none: a record is
 * plain memory owned by a capsule in the thread state dict (borrowed
 * pointer, valid while the thread lives). */
typedef struct thread_rec thread_rec;
thread_rec *cur_rec(void);
thread_rec *get_rec(void);
/* threading.get_ident() of the record's thread.  Refs: none. */
unsigned long thread_rec_ident(const thread_rec *r);
/* The calling thread starts (push) / stops (pop) running context ctx: the
 * search's edge "context C run only by thread T" (st_waitgraph_own; no
 * limit on the nesting).  push: 0, or -1 with an error (MemoryError).
 * Refs: push takes its own strong reference to ctx, pop drops it; both
 * borrow ctx. */
int owner_push(st_state *st, PyObject *ctx);
void owner_pop(PyObject *ctx);

#endif /* ST_PY_DEADLOCK_H */
