/* st_semaphore.h - the core of SemaphoreSlim: a count with a maximum and
 * two queues of waiters (.NET's Threading/SemaphoreSlim.cs; reference
 * section 9, SPEC K4).
 *
 * The count and the queues are language-neutral; the binding adds the
 * Python objects (the waiter's task, its token and timer) on top.
 *
 * Waiters are st_sem_waiter_t nodes in the caller's memory, of two kinds:
 *   - a blocking waiter (node.fn == NULL): a thread that sleeps in
 *     st_sem_wait_block until it is granted, canceled or its slice ends;
 *   - an async waiter (node.fn != NULL): the releasing thread calls fn
 *     once when it grants the waiter, with no lock held (the binding
 *     completes the waiter's task there).
 * Order (reference 9.4): blocking waiters that queued while no async
 * waiter was queued are served first; then the async FIFO, which also
 * holds the blocking waiters that arrived behind an async waiter (they
 * "join the FIFO tail", as .NET's Wait does).
 *
 * A release hands its count to queued waiters before anything goes back
 * to the count (a waiter that queued can never be overtaken by a caller
 * that arrives later and finds the count, except in .NET's own race
 * window of try-then-queue).  Every queued waiter ends exactly once, in
 * one of three ways, decided under the semaphore's lock:
 *   GRANTED   by a release (it holds one count: it must release it);
 *   CANCELED  by st_sem_cancel (a timeout or a token: it holds nothing);
 *   DROPPED   by st_sem_close (async waiters only: never completed, 9.8).
 * When a cancel races with a grant, whichever takes the lock first wins;
 * a cancel that comes second returns ST_ECLOSED and the waiter holds the
 * count (9.2, 9.3: acquisition wins).
 *
 * Ownership of a waiter node: the caller's until it is queued; the
 * semaphore's while it is queued (do not touch or free it); the caller's
 * again once st_sem_cancel returned 0, st_sem_close returned it in the
 * dropped chain, st_sem_wait_block returned anything but ST_ETIMEDOUT, or
 * (async) when fn(node) is called - fn owns it and may free it.  The
 * semaphore never touches an async node after calling its fn.
 *
 *     st_sem_init(&s, 0, 10);
 *     st_sem_waiter_init(&w, on_granted);  // async
 *     if (st_sem_wait_async(&s, &w) == 0) { ...acquired at once... }
 *     ...
 *     st_sem_release(&s, 1, &prev);        // calls on_granted(&w.node)
 *
 *     if (st_sem_wait(&s, 50 * 1000000u) == 0) { ... st_sem_release(...) }
 *
 * Counts are int32 (.NET's int): 0 <= count <= maximum <= ST_SEM_MAX.
 */
#ifndef ST_SEMAPHORE_H
#define ST_SEMAPHORE_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* int32_t, int64_t, uint64_t, INT32_MAX */

#include "st_atomic.h" /* the count word */
#include "st_list.h"   /* st_container_of */
#include "st_thread.h" /* the mutex and condvar */
#include "st_waitq.h"  /* the waiter queues and their nodes */

/* The largest maximum count (.NET's int.MaxValue, its default). */
#define ST_SEM_MAX INT32_MAX

/* st_sem_wait_begin / st_sem_wait_async: the waiter was queued. */
#define ST_SEM_PENDING 1

/* States of a waiter. */
enum {
    ST_SEM_IDLE = 0,     /* initialised, never queued */
    ST_SEM_QUEUED = 1,   /* in a queue of the semaphore */
    ST_SEM_GRANTED = 2,  /* a release handed it one count */
    ST_SEM_CANCELED = 3, /* st_sem_cancel removed it: no count */
    ST_SEM_DROPPED = 4   /* st_sem_close removed it: no count, no fn */
};

typedef struct st_sem st_sem_t;

typedef struct st_sem_waiter {
    st_waitq_node_t node; /* in sync_q or async_q; fn: see above */
    int state;            /* ST_SEM_*; guarded by the semaphore's mu */
} st_sem_waiter_t;

/* The waiter of a node (in fn, or taken off a dropped chain). */
#define st_sem_waiter_of(n) st_container_of((n), st_sem_waiter_t, node)

struct st_sem {
    /* the count (low 32 bits) and the WAITERS and CLOSED flags; see
     * st_semaphore.c.  The uncontended wait and release are one CAS. */
    ST_ATOMIC(uint64_t) word;
    int32_t max;       /* immutable after init */
    st_mutex_t mu;     /* guards everything below, and the waiters */
    st_cond_t cv;      /* a blocking waiter's state changed */
    st_waitq_t sync_q; /* blocking waiters served first (9.4) */
    st_waitq_t async_q; /* the FIFO of async (and late blocking) waiters */
    int sleepers;      /* blocking waiters inside st_cond_wait */
};

/* Not thread safe (the semaphore is not shared yet).  initial in
 * 0..maximum, maximum in 1..ST_SEM_MAX (.NET 9.1); ST_EINVAL otherwise
 * (nothing to destroy then). */
int st_sem_init(st_sem_t *s, int64_t initial, int64_t maximum);

/* After the last use: no waiter queued, no call in progress. */
void st_sem_destroy(st_sem_t *s);

/* Not thread safe (w is not queued).  fn NULL: a blocking waiter; else an
 * async waiter completed by fn(&w->node).  Call before each wait (a waiter
 * may be reused once it is the caller's again). */
void st_sem_waiter_init(st_sem_waiter_t *w, st_waitq_fn fn);

/* The owner of w, once w is not queued (see "Ownership" above):
 * ST_SEM_GRANTED, ST_SEM_CANCELED, ST_SEM_DROPPED or ST_SEM_IDLE. */
static inline int
st_sem_waiter_state(const st_sem_waiter_t *w)
{
    return w->state;
}

/* Any thread.  The count now (a snapshot; readable after close). */
int32_t st_sem_count(st_sem_t *s);

/* Any thread.  The maximum count given to st_sem_init. */
static inline int32_t
st_sem_max(const st_sem_t *s)
{
    return s->max;
}

/* Any thread.  1 once st_sem_close was called. */
int st_sem_is_closed(st_sem_t *s);

/* Any thread.  Waiters queued now: blocking waiters served first, and
 * the async FIFO (with the blocking waiters that joined it). */
void st_sem_waiters(st_sem_t *s, size_t *nsync, size_t *nasync);

/* Any thread; never blocks.  Takes one count: 0 when taken, ST_EBUSY
 * when the count is 0, ST_ECLOSED after close. */
int st_sem_try_wait(st_sem_t *s);

/* Any thread.  A blocking waiter w (fn NULL) takes one count or queues:
 * 0 when it took one at once (w stays the caller's), ST_SEM_PENDING when
 * w is queued (then call st_sem_wait_block, or st_sem_cancel), ST_ECLOSED
 * after close. */
int st_sem_wait_begin(st_sem_t *s, st_sem_waiter_t *w);

/* The thread that queued w (blocking) only.  Sleeps until w is granted
 * (0) or canceled (ST_ECANCELED), or timeout_ns passed (UINT64_MAX: no
 * limit) while w is still queued (ST_ETIMEDOUT: call again to go on
 * waiting - the binding waits in slices that answer Ctrl-C - or
 * st_sem_cancel to leave; a cancel that returns ST_ECLOSED then means w
 * was granted meanwhile and holds a count). */
int st_sem_wait_block(st_sem_t *s, st_sem_waiter_t *w, uint64_t timeout_ns);

/* Any thread.  st_sem_try_wait, a short spin while the count is held and
 * nobody is queued, then st_sem_wait_begin and st_sem_wait_block until
 * timeout_ns (UINT64_MAX: no limit; 0: never blocks).  0 when a count was
 * taken (acquisition wins over a timeout at the same moment),
 * ST_ETIMEDOUT, or ST_ECLOSED. */
int st_sem_wait(st_sem_t *s, uint64_t timeout_ns);

/* Any thread.  An async waiter w (fn set) takes one count or queues at
 * the tail of the FIFO: 0 when it took one at once (fn will not be
 * called; w stays the caller's), ST_SEM_PENDING when queued (fn is called
 * once when a release grants it, unless st_sem_cancel or st_sem_close
 * takes it out first), ST_ECLOSED after close. */
int st_sem_wait_async(st_sem_t *s, st_sem_waiter_t *w);

/* Any thread (a timeout, a token, Ctrl-C).  Takes a queued w out:
 * returns 0 when this call removed it (state CANCELED; no count; fn will
 * not be called; a thread blocked on it wakes with ST_ECANCELED), or
 * ST_ECLOSED when w is not queued: granted (it holds a count), canceled
 * or dropped before, or never queued here.  w must be valid memory (the
 * caller keeps it alive, e.g. the binding's reference). */
int st_sem_cancel(st_sem_t *s, st_sem_waiter_t *w);

/* Any thread.  Releases n counts (.NET's Release(n), 9.6): ST_EINVAL when
 * n < 1; ST_EFULL when count + n would pass the maximum (nothing is
 * released); ST_ECLOSED after close.  Otherwise the counts go to queued
 * waiters first (blocking ones first, then the FIFO), the rest to the
 * count; *previous (may be NULL) gets the count before the call, and the
 * fn of every async waiter granted is called on this thread, in FIFO
 * order, after the semaphore's lock is released.  Returns 0. */
int st_sem_release(st_sem_t *s, int64_t n, int32_t *previous);

/* Any thread (.NET's Dispose, 9.8; idempotent).  Later waits and releases
 * get ST_ECLOSED; the count stays readable.  Takes every queued async
 * waiter out without completing it (state DROPPED) and returns them in
 * *dropped as a chain linked by node.next in FIFO order (walk it with
 * st_waitq_chain_pop; the caller owns each).  Blocking waiters stay
 * queued until they time out or are canceled (.NET's blocked Wait calls
 * are not woken by Dispose either).  Returns 0. */
int st_sem_close(st_sem_t *s, st_waitq_node_t **dropped);

#endif /* ST_SEMAPHORE_H */
