/* py_pool.h - what py_pool.c exports: the thread pool and
 * the timer thread, made lazily, and the ThreadPool functions.
 */
#ifndef ST_PY_POOL_H
#define ST_PY_POOL_H

#include "binding.h"

/* GIL held.  The pool, made at first use (once per process, whichever
 * thread comes first; the others wait for it with the GIL released), or
 * NULL with an error set.  Refs: none (a native structure owned by the
 * module state, never destroyed while the module lives). */
st_pool_t *get_pool(st_state *st);
/* Any thread, GIL or not (the timer thread's fire functions).  The pool
 * if it was made, else NULL; never makes one.  Refs: none (borrowed
 * native pointer). */
st_pool_t *pool_peek(st_state *st);
/* GIL held.  The timer thread, made on first use, or NULL with an error
 * set.  Refs: none (a native structure owned by the module state). */
st_timer_t *get_timer(st_state *st);
/* Queues the work node w.  0, or -1 with an error set.  Refs: none
 * itself: w is embedded in an object whose reference the caller took for
 * the queue beforehand and drops on -1 (the work fn drops it after). */
int pool_submit(st_state *st, st_work_t *w);
/* atexit and module clear: stops the timer and the pool.  Refs: none. */
void pool_shutdown_all(st_state *st);
/* ---- thread pool and timers (issue 3) ---- */
/* Queues w on the global queue even from a worker (QUWI without
 * prefer_local).  pool_submit itself queues on the calling worker's own
 * deque when called from a worker (tasks, continuations: .NET 7.2).
 * Refs: as pool_submit. */
int pool_submit_global(st_state *st, st_work_t *w);
/* Runs w once on a dedicated thread (TaskCreationOptions.LONG_RUNNING).
 * -1 with an error set.  Refs: as pool_submit. */
int pool_submit_dedicated(st_state *st, st_work_t *w);
/* task_queue_work on a dedicated thread (start_new with LONG_RUNNING on
 * the default scheduler, .NET 7.15).  Refs: borrows t, and on success
 * takes one more reference to it that the work fn drops. */
int task_queue_dedicated(st_state *st, TaskObject *t, st_work_fn fn);
/* For blocking waits: call with the GIL released, just before retaking
 * it; spins briefly while another thread holds it, so that retaking it
 * does not sleep in the kernel (BENCHMARKS.md rule 5).  Refs: none. */
void pool_wait_gil_free(void);
/* Sets what a worker runs after each Python item (GIL held): module.c
 * gives it the reset of the thread's SynchronizationContext (the pool
 * sits below the builder, issue 10).  0, or -1 with an error set (then
 * reported as unraisable).  Call before the pool is made.  Refs: none. */
void pool_set_after_item(int (*after_item)(st_state *st));
/* The module functions of py_pool.c, for module.c (static data; Refs:
 * none). */
extern PyMethodDef pool_methods[];

#endif /* ST_PY_POOL_H */
