/* st_workq.h - a blocking FIFO of work items for one consumer thread: the
 * message queue of a single-threaded synchronization context (a UI
 * thread's dispatcher queue).
 *
 * Producers push from any thread; the consumer pops without blocking, or
 * waits with a timeout.  Items are the pool's intrusive st_work_t, so
 * posting never allocates.
 */
#ifndef ST_WORKQ_H
#define ST_WORKQ_H

#include <stdint.h> /* uint64_t */

#include "st_pool.h"   /* st_work_t */
#include "st_thread.h" /* st_mutex_t, st_cond_t */

typedef struct st_workq {
    st_mutex_t mu;
    st_cond_t cv;
    st_work_t *head; /* guarded by mu */
    st_work_t *tail; /* guarded by mu */
    uint64_t count;  /* guarded by mu */
    int waiting;     /* guarded by mu: the consumer sleeps on cv */
    int closed;      /* guarded by mu */
} st_workq_t;

/* Not thread safe (before sharing). */
void st_workq_init(st_workq_t *q);
/* No thread may use q any more. */
void st_workq_destroy(st_workq_t *q);

/* Any thread.  Appends w (q owns w->next until popped).  Returns 0, or
 * ST_ECLOSED after st_workq_close (w was not queued). */
int st_workq_push(st_workq_t *q, st_work_t *w);

/* Consumer.  The first item, or NULL at once if empty. */
st_work_t *st_workq_try_pop(st_workq_t *q);

/* Consumer.  The first item, waiting at most timeout_ns for one; NULL on
 * timeout or once closed and empty. */
st_work_t *st_workq_pop_wait(st_workq_t *q, uint64_t timeout_ns);

/* Any thread.  Refuses further pushes and wakes the consumer. */
void st_workq_close(st_workq_t *q);

/* Any thread.  Calls fn(w, arg) for each item queued now, first to last,
 * under the queue's lock, and stops at the first call that returns
 * nonzero, returning that value (0 when every call returned 0 or the
 * queue is empty).  The lock is held through the calls: fn must not use
 * q, must not block, and must take no lock that a thread may hold while
 * pushing to q.  It is what a garbage collector's traversal needs (the
 * binding visits the objects a context's queue holds: issue 9, H3). */
int st_workq_visit(st_workq_t *q, int (*fn)(st_work_t *w, void *arg),
                   void *arg);

/* Any thread.  Items queued now (relaxed snapshot under the lock). */
uint64_t st_workq_count(st_workq_t *q);

#endif /* ST_WORKQ_H */
