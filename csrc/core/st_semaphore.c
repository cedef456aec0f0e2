/* st_semaphore.c - SemaphoreSlim's count and waiter queues (reference
 * section 9): an atomic count word for the uncontended paths and a mutex
 * for the waiters.
 *
 * DESIGN
 *
 * The word.  One 64-bit atomic holds the count (low 32 bits, never above
 * max <= INT32_MAX, so it never carries into the flags) and two flags:
 *   WAITERS  set while a queue is not empty;
 *   CLOSED   set by st_sem_close, never cleared.
 * Invariant: WAITERS set => count == 0.  A waiter queues only after it
 * saw count == 0 under mu and set WAITERS in the same critical section;
 * while WAITERS is set the lock-free paths cannot change the word (a wait
 * needs count > 0, a release needs WAITERS clear), so only mu holders do,
 * and they hand released counts to waiters before any goes to the count.
 * The flag is cleared, in the same critical section, by whoever empties
 * the queues (a release, a cancel, a close).
 *
 * Uncontended paths (no lock):
 *   try_wait: CAS count -> count - 1 while count > 0 (acquire);
 *   release:  CAS count -> count + n while WAITERS and CLOSED are clear
 *             (release), after checking n against max - count.
 * A release that sees WAITERS takes mu and grants: it pops blocking
 * waiters first, then the async FIFO, marks each GRANTED, stores the
 * remainder (and WAITERS cleared, if it emptied the queues), unlocks, and
 * only then calls the async waiters' fn in FIFO order (STYLE point 16: no
 * callback under a core mutex; a fn may call back into the semaphore).
 * Blocking waiters sleep on the one condvar `cv` and check their own
 * state; a grant or cancel of a blocking waiter broadcasts when one
 * sleeps.
 *
 * Exactly once.  A queued waiter leaves its queue only under mu, through
 * st_waitq_pop_front (grant), st_waitq_remove (cancel) or a close; the
 * queue answers "was it still linked", so the first of a racing release
 * and cancel wins and the second sees it gone: a count is never lost
 * (the waiter that was granted holds it) and never created.
 *
 * Memory ordering.  The acquire CAS of a wait reads from the release CAS
 * (or the release store under mu) of the release that made the count, so
 * what the releasing holder wrote before release() is visible to the next
 * holder - the semaphore is a lock for its holders.  A granted waiter
 * learns of its grant under mu (blocking) or on the releaser's own thread
 * (fn), so the mutex orders those.  Every relaxed load below is a
 * pre-check that a CAS or the lock confirms.
 *
 * Lock order.  mu is a leaf: nothing else is locked under it and nothing
 * allocates under it (the nodes are the caller's).
 *
 * Alternatives rejected:
 *   - a mutex on every call (the binding's GIL did this job): the
 *     uncontended wait_async + release pair, the lock of async methods,
 *     would pay two lock/unlock pairs instead of two CASes;
 *   - one condvar per blocking waiter: signals only the granted ones, but
 *     adds a condvar to every node, async ones included; blocking waiters
 *     are few (threads), so a broadcast to them is cheap;
 *   - completing async waiters inside the critical section: a completion
 *     may run code that calls release() again (9.4's test releases from a
 *     waiter), which would self-deadlock;
 *   - .NET's Monitor with a count of sync waiters and a separate async
 *     list: the same behaviour, but the two kinds could not share the
 *     waiter queue with cancellation (issue 10).
 */
#include "st_semaphore.h"

#include <stddef.h> /* NULL */
#include <stdint.h> /* UINT64_MAX */

#include "st_error.h"  /* ST_E* codes, ST_ASSERT */
#include "st_thread.h" /* mutex, condvar, clock */
#include "st_trace.h"  /* wait.block, wait.wake (D2) */
#include "st_waitq.h"  /* the queues */

#define SEM_COUNT_MASK 0xFFFFFFFFull
#define SEM_WAITERS (1ull << 32)
#define SEM_CLOSED (1ull << 33)

/* Spins of st_sem_wait before it queues (a holder that releases within a
 * few hundred nanoseconds saves the sleep; .NET's SpinWait is similar). */
#define SEM_SPINS 64

/* ------------------------------------------------------------ helpers */

static int32_t
word_count(uint64_t w)
{
    return (int32_t)(w & SEM_COUNT_MASK);
}

/* Caller holds s->mu.  Both queues are empty now: clear WAITERS, keep
 * CLOSED, set the count to `count` (0 unless a release has a remainder).
 * A plain store is enough: while WAITERS is set no lock-free path can
 * change the word (see DESIGN). */
static void
clear_waiters_locked(st_sem_t *s, int32_t count)
{
    /* relaxed: mu holders are the only writers now (see above) */
    uint64_t w = st_atomic_load(&s->word, ST_RELAXED);
    ST_ASSERT(w & SEM_WAITERS);
    /* release: publishes the releasing holder's writes with the count;
     * pairs with the acquire CAS of st_sem_try_wait */
    st_atomic_store(&s->word, (w & SEM_CLOSED) | (uint64_t)count,
                    ST_RELEASE);
}

static int
queues_empty_locked(st_sem_t *s)
{
    return st_waitq_empty(&s->sync_q) && st_waitq_empty(&s->async_q);
}

/* ---------------------------------------------------------- lifecycle */

int
st_sem_init(st_sem_t *s, int64_t initial, int64_t maximum)
{
    /* 9.1: initial first (it must lie in 0..maximum), then maximum */
    if (maximum > ST_SEM_MAX || initial < 0 || initial > maximum
        || maximum <= 0) {
        return ST_EINVAL;
    }
    st_atomic_init(&s->word, (uint64_t)initial);
    s->max = (int32_t)maximum;
    st_mutex_init(&s->mu);
    st_cond_init(&s->cv);
    st_waitq_init(&s->sync_q);
    st_waitq_init(&s->async_q);
    s->sleepers = 0;
    return 0;
}

void
st_sem_destroy(st_sem_t *s)
{
    ST_ASSERT(queues_empty_locked(s) && s->sleepers == 0);
    st_cond_destroy(&s->cv);
    st_mutex_destroy(&s->mu);
}

void
st_sem_waiter_init(st_sem_waiter_t *w, st_waitq_fn fn)
{
    st_waitq_node_init(&w->node, fn);
    w->state = ST_SEM_IDLE;
}

/* --------------------------------------------------------- inspection */

int32_t
st_sem_count(st_sem_t *s)
{
    /* relaxed: a snapshot for current_count; it orders nothing */
    return word_count(st_atomic_load(&s->word, ST_RELAXED));
}

int
st_sem_is_closed(st_sem_t *s)
{
    /* relaxed: a flag that orders nothing (see st_sem_close) */
    return (st_atomic_load(&s->word, ST_RELAXED) & SEM_CLOSED) != 0;
}

void
st_sem_waiters(st_sem_t *s, size_t *nsync, size_t *nasync)
{
    st_mutex_lock(&s->mu);
    *nsync = st_waitq_count(&s->sync_q);
    *nasync = st_waitq_count(&s->async_q);
    st_mutex_unlock(&s->mu);
}

/* -------------------------------------------------------------- waits */

int
st_sem_try_wait(st_sem_t *s)
{
    /* relaxed: a pre-check; the CAS below orders */
    uint64_t w = st_atomic_load(&s->word, ST_RELAXED);
    for (;;) {
        if (w & SEM_CLOSED) {
            return ST_ECLOSED;
        }
        if (word_count(w) == 0) {
            return ST_EBUSY; /* also when WAITERS: count is 0 then */
        }
        /* acquire: pairs with the release CAS/store of st_sem_release,
         * so this holder sees what the last holder wrote; relaxed on
         * failure: w is refreshed and checked again */
        if (st_atomic_cas_weak(&s->word, &w, w - 1, ST_ACQUIRE,
                               ST_RELAXED)) {
            return 0;
        }
    }
}

/* Takes a count or queues w in q (chosen by the caller under mu). */
static int
take_or_queue(st_sem_t *s, st_sem_waiter_t *w, int blocking)
{
    st_waitq_t *q;
    uint64_t v;

    ST_ASSERT(w->state != ST_SEM_QUEUED && !w->node.linked);
    st_mutex_lock(&s->mu);
    /* relaxed: a pre-check; every change below is a CAS */
    v = st_atomic_load(&s->word, ST_RELAXED);
    for (;;) {
        if (v & SEM_CLOSED) {
            st_mutex_unlock(&s->mu);
            return ST_ECLOSED;
        }
        if (word_count(v) > 0) {
            /* acquire: as in st_sem_try_wait (a lock-free release may
             * race with us, so this is a CAS even under mu) */
            if (st_atomic_cas(&s->word, &v, v - 1, ST_ACQUIRE,
                              ST_RELAXED)) {
                st_mutex_unlock(&s->mu);
                return 0;
            }
            continue;
        }
        if (v & SEM_WAITERS) {
            break; /* already set: the word is stable under mu now */
        }
        /* relaxed: WAITERS publishes nothing; it sends later releases
         * to mu, which orders the queue.  A lock-free release that wins
         * the race makes this CAS fail and we take its count above. */
        if (st_atomic_cas(&s->word, &v, v | SEM_WAITERS, ST_RELAXED,
                          ST_RELAXED)) {
            break;
        }
    }
    /* 9.4: a blocking waiter joins the FIFO when async waiters queue */
    q = blocking && st_waitq_empty(&s->async_q) ? &s->sync_q : &s->async_q;
    w->state = ST_SEM_QUEUED;
    st_waitq_push_back(q, &w->node);
    st_mutex_unlock(&s->mu);
    return ST_SEM_PENDING;
}

int
st_sem_wait_begin(st_sem_t *s, st_sem_waiter_t *w)
{
    ST_ASSERT(w->node.fn == NULL);
    return take_or_queue(s, w, 1);
}

int
st_sem_wait_async(st_sem_t *s, st_sem_waiter_t *w)
{
    ST_ASSERT(w->node.fn != NULL);
    return take_or_queue(s, w, 0);
}

int
st_sem_wait_block(st_sem_t *s, st_sem_waiter_t *w, uint64_t timeout_ns)
{
    uint64_t deadline, now;
    int rc;

    ST_ASSERT(w->node.fn == NULL);
    ST_TRACE(ST_TRACE_WAIT_BLOCK, 0, 0, ST_TRACE_ON_SEMAPHORE);
    now = st_now_ns();
    /* saturate: a huge timeout must not wrap into the past */
    deadline = timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
    st_mutex_lock(&s->mu);
    while (w->state == ST_SEM_QUEUED) {
        if (deadline == UINT64_MAX) {
            s->sleepers++;
            st_cond_wait(&s->cv, &s->mu);
            s->sleepers--;
            continue;
        }
        now = st_now_ns();
        if (now >= deadline) {
            break;
        }
        s->sleepers++;
        st_cond_timedwait(&s->cv, &s->mu, deadline - now);
        s->sleepers--;
    }
    switch (w->state) {
    case ST_SEM_QUEUED:
        rc = ST_ETIMEDOUT;
        break;
    case ST_SEM_GRANTED:
        rc = 0;
        break;
    default:
        rc = ST_ECANCELED; /* CANCELED (DROPPED is for async only) */
        break;
    }
    st_mutex_unlock(&s->mu);
    ST_TRACE(ST_TRACE_WAIT_WAKE, 0, (uint64_t)(rc == 0),
             ST_TRACE_ON_SEMAPHORE);
    return rc;
}

int
st_sem_wait(st_sem_t *s, uint64_t timeout_ns)
{
    st_sem_waiter_t w;
    uint64_t v;
    int rc, i;

    rc = st_sem_try_wait(s);
    if (rc != ST_EBUSY) {
        return rc;
    }
    if (timeout_ns == 0) {
        return ST_ETIMEDOUT; /* 9.2: Wait(0) with no count */
    }
    for (i = 0; i < SEM_SPINS; i++) {
        st_cpu_relax();
        /* relaxed: a pre-check; try_wait's CAS orders */
        v = st_atomic_load(&s->word, ST_RELAXED);
        if (v & (SEM_WAITERS | SEM_CLOSED)) {
            break; /* queue behind them at once (FIFO), or fail */
        }
        if (word_count(v) > 0 && st_sem_try_wait(s) == 0) {
            return 0;
        }
    }
    st_sem_waiter_init(&w, NULL);
    rc = st_sem_wait_begin(s, &w);
    if (rc != ST_SEM_PENDING) {
        return rc; /* 0 or ST_ECLOSED */
    }
    rc = st_sem_wait_block(s, &w, timeout_ns);
    if (rc == ST_ETIMEDOUT && st_sem_cancel(s, &w) != 0) {
        /* granted as the time ran out: acquisition wins (9.2) */
        ST_ASSERT(w.state == ST_SEM_GRANTED);
        rc = 0;
    }
    return rc;
}

int
st_sem_cancel(st_sem_t *s, st_sem_waiter_t *w)
{
    int rc = ST_ECLOSED;

    st_mutex_lock(&s->mu);
    if (st_waitq_remove(&s->sync_q, &w->node)
        || st_waitq_remove(&s->async_q, &w->node)) {
        w->state = ST_SEM_CANCELED;
        if (queues_empty_locked(s)) {
            clear_waiters_locked(s, 0);
        }
        if (w->node.fn == NULL && s->sleepers > 0) {
            st_cond_broadcast(&s->cv); /* its thread wakes: ECANCELED */
        }
        rc = 0;
    }
    st_mutex_unlock(&s->mu);
    return rc;
}

/* ------------------------------------------------------------ release */

int
st_sem_release(st_sem_t *s, int64_t n, int32_t *previous)
{
    st_waitq_node_t *first = NULL, *last = NULL, *node;
    int64_t remaining;
    int wake = 0;
    uint64_t v;

    if (n < 1) {
        return ST_EINVAL;
    }
    /* relaxed: a pre-check; the CAS below orders */
    v = st_atomic_load(&s->word, ST_RELAXED);
    for (;;) {
        int32_t c;
        if (v & SEM_CLOSED) {
            return ST_ECLOSED;
        }
        if (v & SEM_WAITERS) {
            st_mutex_lock(&s->mu);
            /* relaxed: stable while WAITERS is set and we hold mu */
            v = st_atomic_load(&s->word, ST_RELAXED);
            if ((v & SEM_WAITERS) && !(v & SEM_CLOSED)) {
                break; /* mu held: grant below */
            }
            /* the queues emptied (or it closed) meanwhile: start over */
            st_mutex_unlock(&s->mu);
            continue;
        }
        c = word_count(v);
        /* 9.6: beyond the maximum: refuse, releasing nothing */
        if (n > (int64_t)s->max - c) {
            return ST_EFULL;
        }
        /* release: publishes this holder's writes to the next holder;
         * pairs with the acquire CAS of st_sem_try_wait.  relaxed on
         * failure: v is refreshed and checked again */
        if (st_atomic_cas_weak(&s->word, &v, v + (uint64_t)n, ST_RELEASE,
                               ST_RELAXED)) {
            if (previous != NULL) {
                *previous = c;
            }
            return 0;
        }
    }
    /* mu held, WAITERS set, so the count is 0 */
    ST_ASSERT(word_count(v) == 0);
    if (n > (int64_t)s->max) {
        st_mutex_unlock(&s->mu);
        return ST_EFULL;
    }
    remaining = n;
    while (remaining > 0) {
        /* 9.4: blocking waiters first, then the FIFO */
        node = st_waitq_pop_front(&s->sync_q);
        if (node == NULL) {
            node = st_waitq_pop_front(&s->async_q);
        }
        if (node == NULL) {
            break;
        }
        st_sem_waiter_of(node)->state = ST_SEM_GRANTED;
        remaining--;
        if (node->fn == NULL) {
            wake = 1;
        }
        else if (last != NULL) {
            last->next = node; /* unlinked: next is ours for the chain */
            last = node;
        }
        else {
            first = last = node;
        }
    }
    if (queues_empty_locked(s)) {
        clear_waiters_locked(s, (int32_t)remaining);
    }
    else {
        ST_ASSERT(remaining == 0);
    }
    if (wake && s->sleepers > 0) {
        st_cond_broadcast(&s->cv);
    }
    st_mutex_unlock(&s->mu);
    if (previous != NULL) {
        *previous = 0;
    }
    /* no lock held: each fn may release, wait, or free its node */
    while ((node = st_waitq_chain_pop(&first)) != NULL) {
        st_waitq_fn fn = node->fn;
        fn(node); /* the node belongs to fn from here on */
    }
    return 0;
}

/* -------------------------------------------------------------- close */

int
st_sem_close(st_sem_t *s, st_waitq_node_t **dropped)
{
    st_waitq_node_t *first = NULL, *last = NULL, *node, *next;
    uint64_t v;

    st_mutex_lock(&s->mu);
    /* relaxed: CLOSED publishes no data; it only makes later calls fail.
     * A RMW, because lock-free waits and releases may CAS the word now. */
    v = st_atomic_fetch_or(&s->word, SEM_CLOSED, ST_RELAXED);
    if (!(v & SEM_CLOSED)) {
        /* 9.8: async waiters are dropped, never completed */
        for (node = st_waitq_front(&s->async_q); node != NULL;
             node = next) {
            next = node->next;
            if (node->fn == NULL) {
                continue; /* a blocking waiter keeps its own timeout */
            }
            (void)st_waitq_remove(&s->async_q, node);
            st_sem_waiter_of(node)->state = ST_SEM_DROPPED;
            if (last != NULL) {
                last->next = node;
                last = node;
            }
            else {
                first = last = node;
            }
        }
        if ((v & SEM_WAITERS) && queues_empty_locked(s)) {
            clear_waiters_locked(s, 0);
        }
    }
    st_mutex_unlock(&s->mu);
    *dropped = first;
    return 0;
}
