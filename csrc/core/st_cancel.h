/* st_cancel.h - the core of a CancellationTokenSource: a state word and a
 * LIFO list of intrusive registrations.
 *
 * A source is NOT_CANCELED until one caller wins st_cancel_request(); that
 * caller (the canceller) then takes the registrations one by one with
 * st_cancel_take(), newest first, and calls each one's fn itself, with no
 * core lock held.  Every registration is run by the canceller exactly once,
 * or removed by st_cancel_unregister() before the canceller took it, or
 * refused at registration because cancellation was already requested (the
 * caller then runs its callback itself, as .NET's Register does) - never
 * two of these, never none.
 *
 *     st_cancel_init(&src);
 *     node.fn = on_cancel;
 *     if (st_cancel_register(&src, &node) == ST_ECANCELED) on_cancel(&node);
 *     ...
 *     if (st_cancel_request(&src)) {                  // this call won
 *         st_cancel_reg_t *r;
 *         while ((r = st_cancel_take(&src)) != NULL) {
 *             r->fn(r);                               // no lock held
 *         }
 *     }
 *     (st_cancel_cancel() is that loop.)
 *
 * Unregistering (.NET's CancellationTokenRegistration):
 *   st_cancel_unregister() never waits: 0 if it removed the node (fn will
 *   never be called), otherwise the callback ran, runs now, or was dropped.
 *   st_cancel_dispose() also waits until a callback that runs now on
 *   another thread has returned; it does not wait when called on the
 *   canceller's own thread (a callback disposing itself or another
 *   registration of the same source), so it never deadlocks on itself.
 *
 * The registration memory belongs to the caller.  It must stay valid while
 * it is registered, and until its fn has returned if the canceller took it
 * (st_cancel_dispose returning 0 or ST_ECLOSED guarantees both).  After
 * that it may be registered again, on this source or another.
 */
#ifndef ST_CANCEL_H
#define ST_CANCEL_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint64_t */

#include "st_atomic.h" /* the state word */
#include "st_thread.h" /* the mutex and condvar */
#include "st_waitq.h"  /* the registration list and its nodes */

/* States of a source (.NET's CancellationTokenSource states). */
enum {
    ST_CANCEL_NOT_CANCELED = 0,
    ST_CANCEL_NOTIFYING = 1, /* requested; callbacks are being run */
    ST_CANCEL_NOTIFIED = 2   /* requested; every callback has been run */
};

typedef struct st_cancel st_cancel_t;

/* A registration is a node of the shared waiter queue (st_waitq.h): its
 * prev/next/fn/owner/id/linked fields are the queue's.  `owner` is the
 * queue inside the source of the last registration (&src->regs). */
typedef st_waitq_node_t st_cancel_reg_t;

/* Called by the canceller (see above), with no core lock held. */
typedef st_waitq_fn st_cancel_fn;

struct st_cancel {
    ST_ATOMIC(int) state;   /* ST_CANCEL_*; see st_cancel.c */
    st_mutex_t mu;          /* guards everything below */
    st_cond_t cv;           /* executing_id changed (dispose waits) */
    st_waitq_t regs;        /* registrations, newest at the front */
    uint64_t executing_id;  /* id of the callback running now, or 0 */
    uint64_t cancel_thread; /* st_thread_id() of the canceller */
    int closed;             /* st_cancel_close was called */
    int waiters;            /* dispose calls waiting on cv */
};

/* Not thread safe (reg is not registered).  Prepares a registration node;
 * call it once before the node's first registration. */
void st_cancel_reg_init(st_cancel_reg_t *reg, st_cancel_fn fn);

/* Not thread safe (the source is not shared yet).  Starts NOT_CANCELED. */
void st_cancel_init(st_cancel_t *s);

/* After the last use (no registration linked, no call in progress). */
void st_cancel_destroy(st_cancel_t *s);

/* Any thread.  1 once cancellation was requested (acquire: a caller that
 * sees 1 sees what the canceller did before st_cancel_request). */
static inline int
st_cancel_is_requested(st_cancel_t *s)
{
    /* acquire: pairs with the acq_rel CAS of st_cancel_request */
    return st_atomic_load(&s->state, ST_ACQUIRE) != ST_CANCEL_NOT_CANCELED;
}

/* Any thread.  ST_CANCEL_* now (acquire, as above). */
static inline int
st_cancel_state(st_cancel_t *s)
{
    /* acquire: as in st_cancel_is_requested */
    return st_atomic_load(&s->state, ST_ACQUIRE);
}

/* Any thread.  Links reg (initialised; not linked anywhere) as the newest
 * registration.  Returns 0 when linked (the source now refers to reg);
 * ST_ECANCELED when cancellation was already requested: nothing is linked
 * and the caller runs the callback itself; ST_ECLOSED when the source was
 * closed (and not canceled): nothing is linked and the callback must never
 * run.  A request has precedence over a close. */
int st_cancel_register(st_cancel_t *s, st_cancel_reg_t *reg);

/* Any thread.  Removes reg if it is still linked, without ever waiting.
 * Returns 0 when removed (fn will not be called; the caller owns reg
 * again); ST_EBUSY when its callback is running now; ST_ECLOSED
 * otherwise (it ran, was dropped by try_reset/close, was removed before,
 * or was never registered here). */
int st_cancel_unregister(st_cancel_t *s, st_cancel_reg_t *reg);

/* Any thread.  st_cancel_unregister, then, if the callback runs now on a
 * thread other than the caller's, waits at most timeout_ns (UINT64_MAX: no
 * limit) for it to return.  Returns 0 when removed, ST_ECLOSED when the
 * callback is not running (or runs on this very thread), ST_ETIMEDOUT when
 * it still runs: call again to keep waiting (the binding waits in slices
 * that answer Ctrl-C). */
int st_cancel_dispose(st_cancel_t *s, st_cancel_reg_t *reg,
                      uint64_t timeout_ns);

/* Any thread.  Requests cancellation.  Returns 1 if this call moved the
 * source from NOT_CANCELED to NOTIFYING: the caller is the canceller and
 * must then call st_cancel_take until it returns NULL (or st_cancel_abandon
 * once).  Returns 0 if cancellation had already been requested. */
int st_cancel_request(st_cancel_t *s);

/* The canceller only, on any thread (the thread may change between calls:
 * CancelAsync hands the callbacks to a pool thread).  Marks the previous
 * callback returned (waking dispose calls waiting for it), then unlinks the
 * newest registration, marks it running on the calling thread and returns
 * it; the caller calls reg->fn(reg) with no lock held.  Returns NULL when
 * none is left: the source is then NOTIFIED. */
st_cancel_reg_t *st_cancel_take(st_cancel_t *s);

/* The canceller only, instead of the next st_cancel_take: stops running
 * callbacks (.NET's Cancel(true) after the first exception).  Marks the
 * previous callback returned, unlinks every registration left (they will
 * never run), makes the source NOTIFIED, and returns them as a chain linked
 * by `next` (NULL if none); the caller owns each node again. */
st_cancel_reg_t *st_cancel_abandon(st_cancel_t *s);

/* Any thread.  Requests cancellation and, if this call won, runs every
 * callback (LIFO) on the calling thread.  Returns 1 if it ran them. */
int st_cancel_cancel(st_cancel_t *s);

/* Any thread (.NET's TryReset; not meant to race with a request).  When
 * cancellation was not requested: drops every registration (they will
 * never run; st_cancel_unregister answers ST_ECLOSED for them), returns
 * them through *dropped as a chain linked by `next`, and returns 0.
 * Otherwise returns ST_EBUSY and changes nothing. */
int st_cancel_try_reset(st_cancel_t *s, st_cancel_reg_t **dropped);

/* Any thread (.NET's Dispose of the source; idempotent).  Later
 * registrations get ST_ECLOSED unless cancellation is requested.  When
 * cancellation was not requested, drops every registration as
 * st_cancel_try_reset does (through *dropped); while a canceller runs,
 * they are left to it.  Returns 0. */
int st_cancel_close(st_cancel_t *s, st_cancel_reg_t **dropped);

/* Any thread.  Registrations linked now. */
size_t st_cancel_count(st_cancel_t *s);

/* Any thread.  Calls visit(reg, arg) for every linked registration,
 * newest first, with the source's mutex HELD: visit must not call into
 * this source, block, or run user code (it is for the binding's garbage
 * collector support, which only reports references).  Stops and returns
 * the first non-zero value visit returns; 0 otherwise. */
int st_cancel_foreach(st_cancel_t *s,
                      int (*visit)(st_cancel_reg_t *reg, void *arg),
                      void *arg);

#endif /* ST_CANCEL_H */
