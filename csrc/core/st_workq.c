/* st_workq.c - the single-consumer blocking FIFO of st_workq.h.
 *
 * DESIGN
 *
 * One mutex guards the list, the count and the flags; one condvar wakes
 * the consumer, signalled only when it is waiting (`waiting`), so a
 * producer that finds the consumer busy pays one lock and no syscall.
 * Thread rules: push/close from any thread; try_pop/pop_wait from the one
 * consumer.  The consumer never runs an item under the lock (it gets the
 * item and runs it after returning), which is what lets an item push more
 * items to the same queue (Task.yield_() on a single-threaded context).
 * Rejected: a lock-free MPSC list (Vyukov): faster under contention, but
 * a UI queue sees one producer at a time and its consumer must sleep on
 * something anyway.
 */
#include "st_workq.h"

#include <stddef.h> /* NULL */

#include "st_error.h"

void
st_workq_init(st_workq_t *q)
{
    st_mutex_init(&q->mu);
    st_cond_init(&q->cv);
    q->head = NULL;
    q->tail = NULL;
    q->count = 0;
    q->waiting = 0;
    q->closed = 0;
}

void
st_workq_destroy(st_workq_t *q)
{
    st_cond_destroy(&q->cv);
    st_mutex_destroy(&q->mu);
}

int
st_workq_push(st_workq_t *q, st_work_t *w)
{
    st_mutex_lock(&q->mu);
    if (q->closed) {
        st_mutex_unlock(&q->mu);
        return ST_ECLOSED;
    }
    w->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = w;
    }
    else {
        q->head = w;
    }
    q->tail = w;
    q->count++;
    if (q->waiting) {
        st_cond_signal(&q->cv);
    }
    st_mutex_unlock(&q->mu);
    return 0;
}

/* Caller holds q->mu. */
static st_work_t *
pop_locked(st_workq_t *q)
{
    st_work_t *w = q->head;
    if (w != NULL) {
        q->head = w->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        w->next = NULL;
        q->count--;
    }
    return w;
}

st_work_t *
st_workq_try_pop(st_workq_t *q)
{
    st_work_t *w;
    st_mutex_lock(&q->mu);
    w = pop_locked(q);
    st_mutex_unlock(&q->mu);
    return w;
}

st_work_t *
st_workq_pop_wait(st_workq_t *q, uint64_t timeout_ns)
{
    st_work_t *w;
    uint64_t now, deadline;

    st_mutex_lock(&q->mu);
    now = st_now_ns();
    deadline = timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
    while (q->head == NULL && !q->closed && now < deadline) {
        q->waiting = 1;
        st_cond_timedwait(&q->cv, &q->mu, deadline - now);
        q->waiting = 0;
        now = st_now_ns();
    }
    w = pop_locked(q);
    st_mutex_unlock(&q->mu);
    return w;
}

void
st_workq_close(st_workq_t *q)
{
    st_mutex_lock(&q->mu);
    q->closed = 1;
    st_cond_broadcast(&q->cv);
    st_mutex_unlock(&q->mu);
}

uint64_t
st_workq_count(st_workq_t *q)
{
    uint64_t n;
    st_mutex_lock(&q->mu);
    n = q->count;
    st_mutex_unlock(&q->mu);
    return n;
}

int
st_workq_visit(st_workq_t *q, int (*fn)(st_work_t *w, void *arg), void *arg)
{
    st_work_t *w;
    int rc = 0;
    st_mutex_lock(&q->mu);
    for (w = q->head; w != NULL && rc == 0; w = w->next) {
        rc = fn(w, arg);
    }
    st_mutex_unlock(&q->mu);
    return rc;
}
