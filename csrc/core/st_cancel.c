/* st_cancel.c - cancellation: a state word and a LIFO list of intrusive
 * registrations, run by the thread that cancels.
 *
 * This is the core of .NET's CancellationTokenSource and
 * CancellationTokenRegistration (CancellationTokenSource.cs): the binding
 * adds the Python objects, the callbacks' exceptions and contexts, the
 * CancelAfter timer and linked sources on top of it.
 *
 * DESIGN
 *
 * State word.  `state` goes NOT_CANCELED -> NOTIFYING -> NOTIFIED, one way
 * (.NET's three states).  It is written only under mu (a release store, so
 * st_cancel_is_requested can read it with one acquire load and no lock).
 * st_cancel_request moves it to NOTIFYING; the canceller's st_cancel_take
 * (or abandon) that finds the list empty moves it to NOTIFIED.
 *
 * The registrations are a shared waiter queue (st_waitq.h), guarded by mu
 * and used as a LIFO: register pushes at the front, the canceller pops
 * from the front.
 *
 * Invariants (all under mu):
 *   - st_waitq_contains(&s->regs, reg)  <=>  reg is in s's list.
 *   - Once state != NOT_CANCELED, nothing is ever linked again:
 *     st_cancel_register checks the state under mu and refuses with
 *     ST_ECANCELED.  So the registrations a canceller must run are exactly
 *     those linked when it requested plus none later, and its take loop,
 *     which ends only when it finds the list empty under mu, runs each of
 *     them unless an unregister removed it first.  Each node is therefore
 *     run once, removed once, or refused once: exactly one of the three.
 *   - executing_id is the id of the node the canceller took last and whose
 *     fn has not been reported returned (the next take or abandon reports
 *     it), else 0.  Ids come from the queue and are never reused, so a node
 *     that is registered again gets a new id and a waiter can never
 *     mistake its new registration for the old one (the queue hands out
 *     the ids and keeps a node's owner and id after it is unlinked).
 *
 * Ordering of a callback and its unregistration.  The canceller unlinks a
 * node and sets executing_id in one critical section.  An unregister that
 * runs after it finds the node unlinked and, if the callback still runs,
 * executing_id == id (ST_EBUSY): st_cancel_dispose then waits on cv until
 * the canceller's next take (or abandon) clears executing_id.  The
 * canceller never touches the node after calling fn (fn may free it), so
 * reporting "returned" needs only the id in the source.  A dispose on the
 * canceller's own thread (cancel_thread) does not wait: the callback that
 * runs is the caller itself or one of its callers (.NET's
 * DeregisterFromWithinACallbackIsSafe).
 *
 * Threads.  Every function is "any thread"; st_cancel_take and
 * st_cancel_abandon are for the canceller (the caller that won
 * st_cancel_request) only.  No function calls out while holding mu except
 * st_cancel_foreach, whose visitor is documented to be lock-safe (the
 * binding's GC traversal, which only reports pointers).
 *
 * Lock order.  mu is a leaf: nothing else is locked under it, and no
 * allocation happens under it.  The global order is written in st_pool.c.
 *
 * Memory ordering.  Only `state` is read outside mu (st_cancel_is_requested
 * and st_cancel_state: acquire, paired with the release stores here).
 * Everything else is guarded by mu, which also orders a registration (and
 * what the registering thread stored before it) before the canceller's
 * call of its fn.
 *
 * Why a mutex and not a spin bit in the state word (as st_task.c does):
 * st_cancel_dispose must sleep until another thread's callback returns,
 * which needs a condition variable, and that needs a mutex.  A source is
 * not on a per-await hot path, so its 80 bytes of mutex and condvar are
 * affordable; registration costs one uncontended lock.
 *
 * Alternatives rejected:
 *   - a lock-free stack of nodes: removal from the middle (unregister)
 *     then needs deferred reclamation, and the nodes are embedded in their
 *     owners, which free them as soon as unregister succeeds;
 *   - spin-waiting in dispose, as .NET does: with the interpreter lock
 *     released it burns a core and looks like a livelock under TSan
 *     (STYLE.md pitfall 14); the condvar is woken only when someone waits;
 *   - detaching the whole list at request time and running it from a
 *     private copy: an unregister during the run could not remove a node
 *     the canceller has not reached yet, which .NET allows (5.7);
 *   - running the callbacks inside the core with a callback: the binding
 *     must stop after the first exception (Cancel(true)) and must collect
 *     the others, so it drives the loop itself through take/abandon.
 */
#include "st_cancel.h"

#include <stddef.h> /* NULL */
#include <stdint.h> /* UINT64_MAX */

#include "st_error.h"  /* ST_E* codes, ST_ASSERT */
#include "st_thread.h" /* mutex, condvar, clock, thread id */
#include "st_waitq.h"  /* the registration list */

/* ------------------------------------------------------------ helpers */

/* Caller holds s->mu.  The callback taken last has returned. */
static void
finish_executing_locked(st_cancel_t *s)
{
    if (s->executing_id != 0) {
        s->executing_id = 0;
        if (s->waiters > 0) {
            st_cond_broadcast(&s->cv);
        }
    }
}

/* Caller holds s->mu.  reg's last registration was on s and its
 * callback is the one running now. */
static int
is_executing_locked(st_cancel_t *s, st_cancel_reg_t *reg)
{
    return reg->owner == &s->regs && reg->id != 0
           && s->executing_id == reg->id;
}

/* ---------------------------------------------------------- lifecycle */

void
st_cancel_reg_init(st_cancel_reg_t *reg, st_cancel_fn fn)
{
    st_waitq_node_init(reg, fn);
}

void
st_cancel_init(st_cancel_t *s)
{
    st_atomic_init(&s->state, ST_CANCEL_NOT_CANCELED);
    st_mutex_init(&s->mu);
    st_cond_init(&s->cv);
    st_waitq_init(&s->regs);
    s->executing_id = 0;
    s->cancel_thread = 0;
    s->closed = 0;
    s->waiters = 0;
}

void
st_cancel_destroy(st_cancel_t *s)
{
    ST_ASSERT(st_waitq_empty(&s->regs) && s->waiters == 0);
    st_cond_destroy(&s->cv);
    st_mutex_destroy(&s->mu);
}

/* ------------------------------------------------------- registration */

int
st_cancel_register(st_cancel_t *s, st_cancel_reg_t *reg)
{
    int rc = 0;

    ST_ASSERT(reg->fn != NULL && !reg->linked);
    st_mutex_lock(&s->mu);
    /* relaxed: state is only written under mu, which we hold */
    if (st_atomic_load(&s->state, ST_RELAXED) != ST_CANCEL_NOT_CANCELED) {
        rc = ST_ECANCELED; /* the caller runs the callback itself */
    }
    else if (s->closed) {
        rc = ST_ECLOSED;
    }
    else {
        st_waitq_push_front(&s->regs, reg); /* LIFO: newest first */
    }
    st_mutex_unlock(&s->mu);
    return rc;
}

int
st_cancel_unregister(st_cancel_t *s, st_cancel_reg_t *reg)
{
    int rc;

    st_mutex_lock(&s->mu);
    if (st_waitq_remove(&s->regs, reg)) {
        rc = 0;
    }
    else if (is_executing_locked(s, reg)) {
        rc = ST_EBUSY;
    }
    else {
        rc = ST_ECLOSED;
    }
    st_mutex_unlock(&s->mu);
    return rc;
}

int
st_cancel_dispose(st_cancel_t *s, st_cancel_reg_t *reg, uint64_t timeout_ns)
{
    uint64_t id, deadline, now;
    int rc;

    st_mutex_lock(&s->mu);
    if (st_waitq_remove(&s->regs, reg)) {
        st_mutex_unlock(&s->mu);
        return 0;
    }
    id = reg->id;
    if (!is_executing_locked(s, reg)
        || s->cancel_thread == st_thread_id()) {
        /* not running, or running on this very thread (a callback that
         * disposes itself or is below us on the stack): never wait */
        st_mutex_unlock(&s->mu);
        return ST_ECLOSED;
    }
    deadline = timeout_ns == UINT64_MAX ? UINT64_MAX
                                        : st_now_ns() + timeout_ns;
    rc = ST_ECLOSED;
    s->waiters++;
    while (s->executing_id == id) {
        if (deadline == UINT64_MAX) {
            st_cond_wait(&s->cv, &s->mu);
            continue;
        }
        now = st_now_ns();
        if (now >= deadline) {
            rc = ST_ETIMEDOUT;
            break;
        }
        st_cond_timedwait(&s->cv, &s->mu, deadline - now);
    }
    s->waiters--;
    st_mutex_unlock(&s->mu);
    return rc;
}

/* ------------------------------------------------------- cancellation */

int
st_cancel_request(st_cancel_t *s)
{
    int won = 0;

    /* acquire pre-check: an already canceled source needs no lock */
    if (st_atomic_load(&s->state, ST_ACQUIRE) != ST_CANCEL_NOT_CANCELED) {
        return 0;
    }
    st_mutex_lock(&s->mu);
    /* relaxed: written only under mu */
    if (st_atomic_load(&s->state, ST_RELAXED) == ST_CANCEL_NOT_CANCELED) {
        /* release: pairs with the acquire of st_cancel_is_requested */
        st_atomic_store(&s->state, ST_CANCEL_NOTIFYING, ST_RELEASE);
        won = 1;
    }
    st_mutex_unlock(&s->mu);
    return won;
}

st_cancel_reg_t *
st_cancel_take(st_cancel_t *s)
{
    uint64_t self = st_thread_id();
    st_cancel_reg_t *reg;

    st_mutex_lock(&s->mu);
    ST_ASSERT(st_atomic_load(&s->state, ST_RELAXED) == ST_CANCEL_NOTIFYING);
    finish_executing_locked(s);
    reg = st_waitq_pop_front(&s->regs); /* the newest */
    if (reg == NULL) {
        /* release: the last state change; pairs with st_cancel_state */
        st_atomic_store(&s->state, ST_CANCEL_NOTIFIED, ST_RELEASE);
    }
    else {
        s->executing_id = reg->id;
        s->cancel_thread = self;
    }
    st_mutex_unlock(&s->mu);
    return reg;
}

st_cancel_reg_t *
st_cancel_abandon(st_cancel_t *s)
{
    st_cancel_reg_t *chain;

    st_mutex_lock(&s->mu);
    ST_ASSERT(st_atomic_load(&s->state, ST_RELAXED) == ST_CANCEL_NOTIFYING);
    finish_executing_locked(s);
    chain = st_waitq_detach_all(&s->regs);
    /* release: as in st_cancel_take */
    st_atomic_store(&s->state, ST_CANCEL_NOTIFIED, ST_RELEASE);
    st_mutex_unlock(&s->mu);
    return chain;
}

int
st_cancel_cancel(st_cancel_t *s)
{
    st_cancel_reg_t *reg;

    if (!st_cancel_request(s)) {
        return 0;
    }
    while ((reg = st_cancel_take(s)) != NULL) {
        st_cancel_fn fn = reg->fn;
        fn(reg); /* reg belongs to fn from here on */
    }
    return 1;
}

int
st_cancel_try_reset(st_cancel_t *s, st_cancel_reg_t **dropped)
{
    int rc = 0;

    *dropped = NULL;
    st_mutex_lock(&s->mu);
    /* relaxed: written only under mu */
    if (st_atomic_load(&s->state, ST_RELAXED) != ST_CANCEL_NOT_CANCELED) {
        rc = ST_EBUSY;
    }
    else {
        *dropped = st_waitq_detach_all(&s->regs);
    }
    st_mutex_unlock(&s->mu);
    return rc;
}

int
st_cancel_close(st_cancel_t *s, st_cancel_reg_t **dropped)
{
    *dropped = NULL;
    st_mutex_lock(&s->mu);
    s->closed = 1;
    /* relaxed: written only under mu.  A canceller that runs now keeps
     * its registrations: they still run (.NET lets a Dispose that races
     * a Cancel leave the notification to finish). */
    if (st_atomic_load(&s->state, ST_RELAXED) == ST_CANCEL_NOT_CANCELED) {
        *dropped = st_waitq_detach_all(&s->regs);
    }
    st_mutex_unlock(&s->mu);
    return 0;
}

/* ---------------------------------------------------------- inspection */

size_t
st_cancel_count(st_cancel_t *s)
{
    size_t n;
    st_mutex_lock(&s->mu);
    n = st_waitq_count(&s->regs);
    st_mutex_unlock(&s->mu);
    return n;
}

int
st_cancel_foreach(st_cancel_t *s,
                  int (*visit)(st_cancel_reg_t *reg, void *arg), void *arg)
{
    st_cancel_reg_t *r;
    int rc = 0;

    st_mutex_lock(&s->mu);
    for (r = st_waitq_front(&s->regs); r != NULL && rc == 0; r = r->next) {
        rc = visit(r, arg);
    }
    st_mutex_unlock(&s->mu);
    return rc;
}
