/* test_semaphore.c - tests of st_semaphore.h, SemaphoreSlim's core
 * (issue 10; SPEC K4; reference 9.1-9.8 and S9.1-S9.6): argument checks,
 * SemaphoreFullError without partial release, timeouts, FIFO order of async
 * waiters, priority of blocked threads, a released count going to a
 * waiter rather than to the count, cancel racing with release (exactly
 * once), close, re-entrant release from a completion, and stress tests in
 * which many threads wait, time out, cancel and release at once: the count
 * is conserved, never more than `maximum` holders at a time, and no wake-up
 * is lost. */
#include <string.h> /* strcmp */

#include "st_alloc.h" /* st_calloc for the big stress state */
#include "st_atomic.h"
#include "st_semaphore.h"
#include "test.h"

#define MS 1000000u /* nanoseconds in a millisecond */

/* ------------------------------------------------------------- helpers */

/* An async waiter that records when it was granted. */
typedef struct rec_waiter {
    st_sem_waiter_t w;
    int id;
    struct grant_log *log;
} rec_waiter;

typedef struct grant_log {
    int id[64];
    int n;
} grant_log;

static void
rec_fn(st_waitq_node_t *node)
{
    rec_waiter *r = (rec_waiter *)st_sem_waiter_of(node);
    ASSERT_EQ(st_sem_waiter_state(&r->w), ST_SEM_GRANTED);
    ASSERT_LT(r->log->n, 64);
    r->log->id[r->log->n++] = r->id;
}

static void
rec_init(rec_waiter *r, int id, grant_log *log)
{
    st_sem_waiter_init(&r->w, rec_fn);
    r->id = id;
    r->log = log;
}

static void
expect_waiters(st_sem_t *s, size_t nsync, size_t nasync)
{
    size_t a, b;
    st_sem_waiters(s, &a, &b);
    ASSERT_EQ(a, nsync);
    ASSERT_EQ(b, nasync);
}

/* ------------------------------------------------------ argument checks */

TEST(sem_issue10_init_checks_9_1)
{
    st_sem_t s;

    /* S9.1: (10,0), (10,-1), (-1,10) are refused; so is a maximum of 0 */
    ASSERT_RC(st_sem_init(&s, 10, 0), ST_EINVAL);
    ASSERT_RC(st_sem_init(&s, 10, -1), ST_EINVAL);
    ASSERT_RC(st_sem_init(&s, -1, 10), ST_EINVAL);
    ASSERT_RC(st_sem_init(&s, 0, 0), ST_EINVAL);
    ASSERT_RC(st_sem_init(&s, 11, 10), ST_EINVAL);
    /* counts are int32: the maximum is at most INT32_MAX */
    ASSERT_RC(st_sem_init(&s, 0, (int64_t)INT32_MAX + 1), ST_EINVAL);
    ASSERT_RC(st_sem_init(&s, (int64_t)INT32_MAX + 1, INT64_MAX),
              ST_EINVAL);
    ASSERT_OK(st_sem_init(&s, INT32_MAX, ST_SEM_MAX));
    ASSERT_EQ(st_sem_count(&s), INT32_MAX);
    ASSERT_EQ(st_sem_max(&s), INT32_MAX);
    st_sem_destroy(&s);
    ASSERT_OK(st_sem_init(&s, 0, 1));
    ASSERT_EQ(st_sem_count(&s), 0);
    ASSERT_EQ(st_sem_max(&s), 1);
    ASSERT(!st_sem_is_closed(&s));
    expect_waiters(&s, 0, 0);
    st_sem_destroy(&s);
    /* the error code of SemaphoreFullError has a name */
    ASSERT(strcmp(st_strerror(ST_EFULL), "unknown error") != 0);
}

TEST(sem_issue10_release_checks_9_6)
{
    st_sem_t s;
    int32_t prev = -7;

    ASSERT_OK(st_sem_init(&s, 10, 10));
    /* S9.3: release(0) and release(-1) are refused */
    ASSERT_RC(st_sem_release(&s, 0, &prev), ST_EINVAL);
    ASSERT_RC(st_sem_release(&s, -1, &prev), ST_EINVAL);
    /* (10,10).release(1): full, nothing released */
    ASSERT_RC(st_sem_release(&s, 1, &prev), ST_EFULL);
    ASSERT_EQ(prev, -7);
    ASSERT_EQ(st_sem_count(&s), 10);
    st_sem_destroy(&s);

    /* (5,10).release(6): full, no partial release; release(5) fits */
    ASSERT_OK(st_sem_init(&s, 5, 10));
    ASSERT_RC(st_sem_release(&s, 6, &prev), ST_EFULL);
    ASSERT_EQ(st_sem_count(&s), 5);
    ASSERT_OK(st_sem_release(&s, 5, &prev));
    ASSERT_EQ(prev, 5); /* the count before the call */
    ASSERT_EQ(st_sem_count(&s), 10);
    ASSERT_RC(st_sem_release(&s, INT64_MAX, NULL), ST_EFULL);
    st_sem_destroy(&s);

    /* (INT32_MAX-1, INT32_MAX).release(10) */
    ASSERT_OK(st_sem_init(&s, INT32_MAX - 1, INT32_MAX));
    ASSERT_RC(st_sem_release(&s, 10, &prev), ST_EFULL);
    ASSERT_EQ(st_sem_count(&s), INT32_MAX - 1);
    ASSERT_OK(st_sem_release(&s, 1, &prev));
    ASSERT_EQ(prev, INT32_MAX - 1);
    ASSERT_EQ(st_sem_count(&s), INT32_MAX);
    ASSERT_RC(st_sem_release(&s, 1, NULL), ST_EFULL);
    st_sem_destroy(&s);
}

TEST(sem_issue10_wait_and_timeout_9_2)
{
    st_sem_t s;
    uint64_t t0, el;

    ASSERT_OK(st_sem_init(&s, 0, 10));
    /* S9.2: wait(0) on 0 -> false at once; wait(10 ms) -> false later */
    ASSERT_RC(st_sem_try_wait(&s), ST_EBUSY);
    ASSERT_RC(st_sem_wait(&s, 0), ST_ETIMEDOUT);
    t0 = st_now_ns();
    ASSERT_RC(st_sem_wait(&s, 10 * MS), ST_ETIMEDOUT);
    el = st_now_ns() - t0;
    ASSERT_GE(el, 10 * MS); /* never earlier than due */
    /* the timed-out waiter left no trace */
    expect_waiters(&s, 0, 0);
    ASSERT_EQ(st_sem_count(&s), 0);
    /* success decrements */
    ASSERT_OK(st_sem_release(&s, 3, NULL));
    ASSERT_OK(st_sem_wait(&s, 0));
    ASSERT_OK(st_sem_wait(&s, UINT64_MAX));
    ASSERT_OK(st_sem_try_wait(&s));
    ASSERT_EQ(st_sem_count(&s), 0);
    /* and after a timeout, a release goes to the count (nobody queued) */
    ASSERT_RC(st_sem_wait(&s, 1 * MS), ST_ETIMEDOUT);
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    ASSERT_EQ(st_sem_count(&s), 1);
    ASSERT_OK(st_sem_wait(&s, 0));
    st_sem_destroy(&s);
}

/* ------------------------------------------------------------- order */

TEST(sem_issue10_async_fifo_and_count_to_waiter_9_4)
{
    st_sem_t s;
    grant_log log = {{0}, 0};
    rec_waiter r[5];
    int32_t prev = -1;
    int i;

    ASSERT_OK(st_sem_init(&s, 0, 10));
    for (i = 0; i < 3; i++) {
        rec_init(&r[i], i, &log);
        ASSERT_EQ(st_sem_wait_async(&s, &r[i].w), ST_SEM_PENDING);
        ASSERT_EQ(st_sem_waiter_state(&r[i].w), ST_SEM_QUEUED);
    }
    expect_waiters(&s, 0, 3);
    /* S9.6: release(1) three times completes A, B, C in that order, and
     * each released count goes to the waiter, not to the count */
    for (i = 0; i < 3; i++) {
        ASSERT_OK(st_sem_release(&s, 1, &prev));
        ASSERT_EQ(prev, 0);
        ASSERT_EQ(log.n, i + 1);
        ASSERT_EQ(log.id[i], i);
        ASSERT_EQ(st_sem_count(&s), 0);
    }
    expect_waiters(&s, 0, 0);
    /* a free semaphore: acquired at once, fn never called */
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    rec_init(&r[3], 3, &log);
    ASSERT_OK(st_sem_wait_async(&s, &r[3].w));
    ASSERT_EQ(log.n, 3);
    ASSERT_EQ(st_sem_count(&s), 0);
    /* release(n) with fewer waiters: the rest goes to the count */
    rec_init(&r[3], 3, &log);
    rec_init(&r[4], 4, &log);
    ASSERT_EQ(st_sem_wait_async(&s, &r[3].w), ST_SEM_PENDING);
    ASSERT_EQ(st_sem_wait_async(&s, &r[4].w), ST_SEM_PENDING);
    /* beyond the maximum even with waiters: refused, nobody granted */
    ASSERT_RC(st_sem_release(&s, 11, NULL), ST_EFULL);
    ASSERT_EQ(log.n, 3);
    ASSERT_OK(st_sem_release(&s, 5, &prev));
    ASSERT_EQ(prev, 0);
    ASSERT_EQ(log.n, 5);
    ASSERT_EQ(log.id[3], 3);
    ASSERT_EQ(log.id[4], 4);
    ASSERT_EQ(st_sem_count(&s), 3);
    expect_waiters(&s, 0, 0);
    st_sem_destroy(&s);
}

/* A thread that blocks in wait_begin/wait_block and reports. */
typedef struct blocker {
    st_sem_t *s;
    st_sem_waiter_t w;
    uint64_t timeout;
    ST_ATOMIC(int) queued; /* 1 once wait_begin queued it */
    ST_ATOMIC(int) rc;     /* 1 while running, then the result */
} blocker;

static void
blocker_main(void *arg)
{
    blocker *b = arg;
    int rc;
    st_sem_waiter_init(&b->w, NULL);
    rc = st_sem_wait_begin(b->s, &b->w);
    /* release: the test reads the waiter counts after this */
    st_atomic_store(&b->queued, 1, ST_RELEASE);
    if (rc == ST_SEM_PENDING) {
        rc = st_sem_wait_block(b->s, &b->w, b->timeout);
    }
    /* release: pairs with the test's acquire load */
    st_atomic_store(&b->rc, rc, ST_RELEASE);
}

static void
blocker_start(blocker *b, st_sem_t *s, uint64_t timeout, st_thread_t *t)
{
    b->s = s;
    b->timeout = timeout;
    st_atomic_init(&b->queued, 0);
    st_atomic_init(&b->rc, 1);
    st_test_thread_start(t, blocker_main, b);
    /* acquire: pairs with blocker_main's release store */
    ASSERT_EVENTUALLY(st_atomic_load(&b->queued, ST_ACQUIRE), 2000);
}

static int
blocker_rc(blocker *b)
{
    /* acquire: pairs with blocker_main's release store */
    return st_atomic_load(&b->rc, ST_ACQUIRE);
}

TEST(sem_issue10_blocked_threads_first_then_fifo_9_4)
{
    st_sem_t s;
    grant_log log = {{0}, 0};
    rec_waiter a;
    blocker t1, t2;
    st_thread_t th1, th2;

    ASSERT_OK(st_sem_init(&s, 0, 10));
    /* a blocked thread queues first (no async waiter yet) */
    blocker_start(&t1, &s, UINT64_MAX, &th1);
    expect_waiters(&s, 1, 0);
    /* an async waiter, then a blocking wait that arrives behind it:
     * that one joins the FIFO tail */
    rec_init(&a, 7, &log);
    ASSERT_EQ(st_sem_wait_async(&s, &a.w), ST_SEM_PENDING);
    blocker_start(&t2, &s, UINT64_MAX, &th2);
    expect_waiters(&s, 1, 2);
    /* release(1): the blocked thread has priority over the FIFO */
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    st_thread_join(&th1);
    ASSERT_EQ(blocker_rc(&t1), 0);
    ASSERT_EQ(log.n, 0);
    ASSERT_EQ(blocker_rc(&t2), 1); /* still waiting */
    /* then the FIFO: the async waiter, then the late blocking one */
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    ASSERT_EQ(log.n, 1);
    ASSERT_EQ(blocker_rc(&t2), 1);
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    st_thread_join(&th2);
    ASSERT_EQ(blocker_rc(&t2), 0);
    ASSERT_EQ(st_sem_count(&s), 0);
    expect_waiters(&s, 0, 0);
    st_sem_destroy(&s);
}

/* ------------------------------------------------- cancel and timeout */

TEST(sem_issue10_cancel_races_release_exactly_once_9_3)
{
    st_sem_t s;
    grant_log log = {{0}, 0};
    rec_waiter a, b, c;

    ASSERT_OK(st_sem_init(&s, 0, 10));
    rec_init(&a, 1, &log);
    rec_init(&b, 2, &log);
    rec_init(&c, 3, &log);
    ASSERT_EQ(st_sem_wait_async(&s, &a.w), ST_SEM_PENDING);
    ASSERT_EQ(st_sem_wait_async(&s, &b.w), ST_SEM_PENDING);
    ASSERT_EQ(st_sem_wait_async(&s, &c.w), ST_SEM_PENDING);
    /* b times out: removed once; a second cancel finds it gone */
    ASSERT_OK(st_sem_cancel(&s, &b.w));
    ASSERT_EQ(st_sem_waiter_state(&b.w), ST_SEM_CANCELED);
    ASSERT_RC(st_sem_cancel(&s, &b.w), ST_ECLOSED);
    /* release(1) skips it: a */
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    ASSERT_EQ(log.n, 1);
    ASSERT_EQ(log.id[0], 1);
    /* a was granted first: its late cancel loses, it holds the count */
    ASSERT_RC(st_sem_cancel(&s, &a.w), ST_ECLOSED);
    ASSERT_EQ(st_sem_waiter_state(&a.w), ST_SEM_GRANTED);
    /* the last waiter canceled: the next release goes to the count */
    ASSERT_OK(st_sem_cancel(&s, &c.w));
    expect_waiters(&s, 0, 0);
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    ASSERT_EQ(log.n, 1);
    ASSERT_EQ(st_sem_count(&s), 1);
    /* a node that was never queued */
    rec_init(&b, 2, &log);
    ASSERT_RC(st_sem_cancel(&s, &b.w), ST_ECLOSED);
    st_sem_destroy(&s);
}

TEST(sem_issue10_cancel_wakes_blocked_thread)
{
    st_sem_t s;
    blocker b;
    st_thread_t th;

    ASSERT_OK(st_sem_init(&s, 0, 1));
    blocker_start(&b, &s, UINT64_MAX, &th);
    expect_waiters(&s, 1, 0);
    /* a token fires on another thread: the blocked thread leaves */
    ASSERT_OK(st_sem_cancel(&s, &b.w));
    st_thread_join(&th);
    ASSERT_EQ(blocker_rc(&b), ST_ECANCELED);
    ASSERT_EQ(st_sem_waiter_state(&b.w), ST_SEM_CANCELED);
    expect_waiters(&s, 0, 0);
    /* nothing was taken: the count is whole */
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    ASSERT_EQ(st_sem_count(&s), 1);
    st_sem_destroy(&s);
}

TEST(sem_issue10_block_in_slices_then_granted)
{
    st_sem_t s;
    st_sem_waiter_t w;
    int i;

    ASSERT_OK(st_sem_init(&s, 0, 1));
    st_sem_waiter_init(&w, NULL);
    ASSERT_EQ(st_sem_wait_begin(&s, &w), ST_SEM_PENDING);
    /* the binding waits in slices (Ctrl-C): still queued after each */
    for (i = 0; i < 3; i++) {
        ASSERT_RC(st_sem_wait_block(&s, &w, 1 * MS), ST_ETIMEDOUT);
        ASSERT_EQ(st_sem_waiter_state(&w), ST_SEM_QUEUED);
    }
    /* granted between two slices: the next slice returns at once */
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    ASSERT_OK(st_sem_wait_block(&s, &w, 0));
    /* the caller gives up now (Ctrl-C): too late, it holds the count */
    ASSERT_RC(st_sem_cancel(&s, &w), ST_ECLOSED);
    ASSERT_EQ(st_sem_waiter_state(&w), ST_SEM_GRANTED);
    ASSERT_OK(st_sem_release(&s, 1, NULL)); /* gives it back */
    ASSERT_EQ(st_sem_count(&s), 1);
    st_sem_destroy(&s);
}

/* --------------------------------------------------------------- close */

TEST(sem_issue10_close_drops_async_waiters_9_8)
{
    st_sem_t s;
    grant_log log = {{0}, 0};
    rec_waiter a, b;
    blocker t;
    st_thread_t th;
    st_waitq_node_t *chain, *n;
    int32_t prev;

    ASSERT_OK(st_sem_init(&s, 0, 5));
    rec_init(&a, 1, &log);
    rec_init(&b, 2, &log);
    ASSERT_EQ(st_sem_wait_async(&s, &a.w), ST_SEM_PENDING);
    /* a blocking wait behind a: in the FIFO, with a 30 ms timeout */
    blocker_start(&t, &s, 30 * MS, &th);
    ASSERT_EQ(st_sem_wait_async(&s, &b.w), ST_SEM_PENDING);
    expect_waiters(&s, 0, 3);
    ASSERT_OK(st_sem_close(&s, &chain));
    ASSERT(st_sem_is_closed(&s));
    /* both async waiters, in FIFO order, never completed */
    n = st_waitq_chain_pop(&chain);
    ASSERT(n == &a.w.node);
    n = st_waitq_chain_pop(&chain);
    ASSERT(n == &b.w.node);
    ASSERT_NULL(st_waitq_chain_pop(&chain));
    ASSERT_EQ(st_sem_waiter_state(&a.w), ST_SEM_DROPPED);
    ASSERT_EQ(st_sem_waiter_state(&b.w), ST_SEM_DROPPED);
    ASSERT_EQ(log.n, 0);
    /* the blocked thread keeps waiting until its own timeout */
    expect_waiters(&s, 0, 1);
    st_thread_join(&th);
    ASSERT_EQ(blocker_rc(&t), ST_ETIMEDOUT);
    ASSERT_OK(st_sem_cancel(&s, &t.w)); /* it leaves the queue */
    expect_waiters(&s, 0, 0);
    /* afterwards: waits and releases are refused; the count reads */
    ASSERT_RC(st_sem_try_wait(&s), ST_ECLOSED);
    ASSERT_RC(st_sem_wait(&s, 0), ST_ECLOSED);
    ASSERT_RC(st_sem_wait(&s, 1 * MS), ST_ECLOSED);
    rec_init(&a, 1, &log);
    ASSERT_RC(st_sem_wait_async(&s, &a.w), ST_ECLOSED);
    ASSERT_RC(st_sem_release(&s, 1, &prev), ST_ECLOSED);
    ASSERT_EQ(st_sem_count(&s), 0);
    /* idempotent */
    ASSERT_OK(st_sem_close(&s, &chain));
    ASSERT_NULL(chain);
    st_sem_destroy(&s);

    /* a closed semaphore with a count keeps it readable */
    ASSERT_OK(st_sem_init(&s, 3, 5));
    ASSERT_OK(st_sem_close(&s, &chain));
    ASSERT_NULL(chain);
    ASSERT_EQ(st_sem_count(&s), 3);
    ASSERT_RC(st_sem_try_wait(&s), ST_ECLOSED);
    st_sem_destroy(&s);
}

/* ------------------------------------------------------- re-entrancy */

/* S9.4: 20 async waiters; each completion releases again.  The release
 * must call fn with no lock held (else this self-deadlocks), and the
 * waiters still end in FIFO order. */
typedef struct chain_waiter {
    st_sem_waiter_t w;
    st_sem_t *s;
    int id;
    grant_log *log;
} chain_waiter;

static void
chain_fn(st_waitq_node_t *node)
{
    chain_waiter *c = (chain_waiter *)st_sem_waiter_of(node);
    c->log->id[c->log->n++] = c->id;
    ASSERT_OK(st_sem_release(c->s, 1, NULL)); /* re-entrant */
}

TEST(sem_issue10_release_from_completion_9_5)
{
    st_sem_t s;
    grant_log log = {{0}, 0};
    chain_waiter c[20];
    int i;

    ASSERT_OK(st_sem_init(&s, 0, 1));
    for (i = 0; i < 20; i++) {
        st_sem_waiter_init(&c[i].w, chain_fn);
        c[i].s = &s;
        c[i].id = i;
        c[i].log = &log;
        ASSERT_EQ(st_sem_wait_async(&s, &c[i].w), ST_SEM_PENDING);
    }
    ASSERT_OK(st_sem_release(&s, 1, NULL));
    ASSERT_EQ(log.n, 20);
    for (i = 0; i < 20; i++) {
        ASSERT_EQ(log.id[i], i);
    }
    ASSERT_EQ(st_sem_count(&s), 1); /* the last one's release */
    expect_waiters(&s, 0, 0);
    st_sem_destroy(&s);
}

/* -------------------------------------------------------------- stress */

/* Ping-pong: one thread releases, the other waits forever, many times.
 * A lost wake-up hangs the test (the runner's timeout fails it). */
typedef struct pingpong {
    st_sem_t ping, pong;
    int iters;
} pingpong;

static void
pong_main(void *arg)
{
    pingpong *p = arg;
    int i;
    for (i = 0; i < p->iters; i++) {
        ASSERT_OK(st_sem_wait(&p->ping, UINT64_MAX));
        ASSERT_OK(st_sem_release(&p->pong, 1, NULL));
    }
}

TEST(sem_issue10_pingpong_no_lost_wakeup)
{
    pingpong p;
    st_thread_t t;
    int i;

    p.iters = ST_TEST_ITERS(20000);
    ASSERT_OK(st_sem_init(&p.ping, 0, 1));
    ASSERT_OK(st_sem_init(&p.pong, 0, 1));
    st_test_thread_start(&t, pong_main, &p);
    for (i = 0; i < p.iters; i++) {
        ASSERT_OK(st_sem_release(&p.ping, 1, NULL));
        ASSERT_OK(st_sem_wait(&p.pong, UINT64_MAX));
    }
    st_thread_join(&t);
    ASSERT_EQ(st_sem_count(&p.ping), 0);
    ASSERT_EQ(st_sem_count(&p.pong), 0);
    st_sem_destroy(&p.ping);
    st_sem_destroy(&p.pong);
}

/* The mixed stress: NTHREADS threads on one semaphore (initial = max = K)
 * for about STRESS_MS, each choosing at random:
 *   - a blocking wait (st_sem_wait) with no, a tiny or no timeout;
 *   - a blocking wait in slices (begin/block), exposed in a registry so
 *     that the canceller thread may cancel it (a token firing);
 *   - an async wait that the thread either waits out or cancels at once
 *     (a timeout racing with a release).
 * A thread that acquired holds the count briefly and releases it.
 * Checked: never more than K holders at once; every release succeeds
 * (never FULL: the count is conserved); every async waiter ends exactly
 * once (its fn once, or a successful cancel, never both); at the end the
 * count is K and no waiter is left; every wait returned (no lost wake-up:
 * a lost one hangs until the runner's timeout). */
#define NTHREADS 8
#define K 3
#define STRESS_MS 700

typedef struct stress {
    st_sem_t s;
    ST_ATOMIC(int) inside;   /* holders now */
    ST_ATOMIC(int) max_inside;
    ST_ATOMIC(long) acquired;
    ST_ATOMIC(long) timeouts;
    ST_ATOMIC(long) canceled;
    ST_ATOMIC(long) fn_calls;
    ST_ATOMIC(int) stop;
    st_mutex_t reg_mu;        /* guards reg[] */
    st_sem_waiter_t *reg[NTHREADS];
    st_test_barrier_t start;
} stress;

typedef struct stress_async {
    st_sem_waiter_t w;
    stress *st;
    ST_ATOMIC(int) calls; /* fn calls on this waiter */
} stress_async;

typedef struct stress_arg {
    stress *st;
    int index;
} stress_arg;

static void
hold(stress *st)
{
    /* relaxed: counters checked after the joins; the max is a CAS loop
     * on one variable */
    int now = st_atomic_fetch_add(&st->inside, 1, ST_RELAXED) + 1;
    int m = st_atomic_load(&st->max_inside, ST_RELAXED);
    while (now > m && !st_atomic_cas_weak(&st->max_inside, &m, now,
                                          ST_RELAXED, ST_RELAXED)) {
    }
    ASSERT_LE(now, K);
    st_atomic_fetch_add(&st->acquired, 1, ST_RELAXED);
    st_cpu_relax();
    st_atomic_fetch_sub(&st->inside, 1, ST_RELAXED);
    ASSERT_OK(st_sem_release(&st->s, 1, NULL)); /* never FULL */
}

static void
stress_async_fn(st_waitq_node_t *node)
{
    stress_async *a = (stress_async *)st_sem_waiter_of(node);
    /* relaxed: counted; the calls check is read after the release store
     * below by the same waiter's thread */
    st_atomic_fetch_add(&a->st->fn_calls, 1, ST_RELAXED);
    /* release: hands the node back to its thread (pairs with the
     * acquire load in stress_main); the last touch of a */
    st_atomic_fetch_add(&a->calls, 1, ST_RELEASE);
}

static void
stress_main(void *arg)
{
    stress_arg *sa = arg;
    stress *st = sa->st;
    st_test_rng_t rng;
    stress_async a;
    st_sem_waiter_t w;
    int rc, spins;

    st_test_rng_init(&rng, (uint64_t)sa->index + 17);
    st_test_barrier_wait(&st->start);
    /* relaxed: a stop flag polled once per round */
    while (!st_atomic_load(&st->stop, ST_RELAXED)) {
        switch (st_test_rng_below(&rng, 4)) {
        case 0: /* blocking, no limit */
            ASSERT_OK(st_sem_wait(&st->s, UINT64_MAX));
            hold(st);
            break;
        case 1: /* blocking with a tiny timeout (or none at all) */
            rc = st_sem_wait(&st->s, st_test_rng_below(&rng, 3) * 20000u);
            if (rc == 0) {
                hold(st);
            }
            else {
                ASSERT_RC(rc, ST_ETIMEDOUT);
                st_atomic_fetch_add(&st->timeouts, 1, ST_RELAXED);
            }
            break;
        case 2: /* blocking in slices, cancelable by the canceller */
            st_sem_waiter_init(&w, NULL);
            st_mutex_lock(&st->reg_mu);
            rc = st_sem_wait_begin(&st->s, &w);
            if (rc == ST_SEM_PENDING) {
                st->reg[sa->index] = &w; /* the canceller may see it */
            }
            st_mutex_unlock(&st->reg_mu);
            while (rc == ST_SEM_PENDING) {
                rc = st_sem_wait_block(&st->s, &w, 200000u);
                if (rc == ST_ETIMEDOUT) {
                    rc = ST_SEM_PENDING; /* next slice */
                }
            }
            st_mutex_lock(&st->reg_mu);
            st->reg[sa->index] = NULL; /* w is ours alone again */
            st_mutex_unlock(&st->reg_mu);
            if (rc == 0) {
                hold(st);
            }
            else {
                ASSERT_RC(rc, ST_ECANCELED);
                ASSERT_EQ(st_sem_waiter_state(&w), ST_SEM_CANCELED);
            }
            break;
        default: /* async, waited out or canceled at once */
            st_sem_waiter_init(&a.w, stress_async_fn);
            a.st = st;
            st_atomic_init(&a.calls, 0);
            rc = st_sem_wait_async(&st->s, &a.w);
            if (rc == 0) {
                hold(st);
                break;
            }
            ASSERT_EQ(rc, ST_SEM_PENDING);
            spins = (int)st_test_rng_below(&rng, 200);
            /* acquire: pairs with stress_async_fn's release */
            while (spins-- > 0
                   && st_atomic_load(&a.calls, ST_ACQUIRE) == 0) {
                st_cpu_relax();
            }
            if (st_sem_cancel(&st->s, &a.w) == 0) {
                /* removed before any grant: fn never runs */
                st_atomic_fetch_add(&st->timeouts, 1, ST_RELAXED);
                ASSERT_EQ(st_atomic_load(&a.calls, ST_ACQUIRE), 0);
                ASSERT_EQ(st_sem_waiter_state(&a.w), ST_SEM_CANCELED);
                break;
            }
            /* granted (acquisition wins): fn runs once on the releaser;
             * wait for it before the node goes out of scope */
            while (st_atomic_load(&a.calls, ST_ACQUIRE) == 0) {
                st_cpu_relax();
            }
            ASSERT_EQ(st_sem_waiter_state(&a.w), ST_SEM_GRANTED);
            hold(st);
            ASSERT_EQ(st_atomic_load(&a.calls, ST_ACQUIRE), 1);
            break;
        }
    }
}

/* Cancels blocked waiters from outside (a token firing on its thread). */
static void
canceller_main(void *arg)
{
    stress *st = arg;
    st_test_rng_t rng;
    int i;

    st_test_rng_init(&rng, 99);
    st_test_barrier_wait(&st->start);
    /* relaxed: a stop flag */
    while (!st_atomic_load(&st->stop, ST_RELAXED)) {
        i = (int)st_test_rng_below(&rng, NTHREADS);
        st_mutex_lock(&st->reg_mu);
        if (st->reg[i] != NULL && st_sem_cancel(&st->s, st->reg[i]) == 0) {
            st_atomic_fetch_add(&st->canceled, 1, ST_RELAXED);
        }
        st_mutex_unlock(&st->reg_mu);
        st_test_sleep_us(50);
    }
}

TEST(sem_issue10_stress_wait_release_timeout_cancel)
{
    stress *st = st_calloc(1, sizeof(*st));
    stress_arg args[NTHREADS];
    st_thread_t t[NTHREADS + 1];
    int i;

    ASSERT_NOT_NULL(st);
    ASSERT_OK(st_sem_init(&st->s, K, K));
    st_mutex_init(&st->reg_mu);
    st_test_barrier_init(&st->start, NTHREADS + 2);
    for (i = 0; i < NTHREADS; i++) {
        args[i].st = st;
        args[i].index = i;
        st_test_thread_start(&t[i], stress_main, &args[i]);
    }
    st_test_thread_start(&t[NTHREADS], canceller_main, st);
    st_test_barrier_wait(&st->start);
    st_test_sleep_us(STRESS_MS * 1000u);
    /* relaxed: the joins below order everything */
    st_atomic_store(&st->stop, 1, ST_RELAXED);
    for (i = 0; i <= NTHREADS; i++) {
        st_thread_join(&t[i]);
    }
    /* conserved: every count is back, nobody is queued */
    ASSERT_EQ(st_sem_count(&st->s), K);
    expect_waiters(&st->s, 0, 0);
    ASSERT_LE(st_atomic_load(&st->max_inside, ST_RELAXED), K);
    ASSERT_EQ(st_atomic_load(&st->inside, ST_RELAXED), 0);
    ASSERT_GT(st_atomic_load(&st->acquired, ST_RELAXED), 100);
    /* the exercise reached the racy paths */
    ASSERT_GT(st_atomic_load(&st->fn_calls, ST_RELAXED)
                  + st_atomic_load(&st->timeouts, ST_RELAXED),
              0);
    st_sem_destroy(&st->s);
    st_mutex_destroy(&st->reg_mu);
    st_test_barrier_destroy(&st->start);
    st_free(st);
}

/* Many releasers against many async waiters: each release(n) hands its
 * counts to the FIFO head first; every waiter is granted exactly once, the
 * total handed out equals the total released, and the waiters each
 * releaser completes come in queue order (the releasers' fn calls may
 * interleave with each other, but each one's grants are taken from the
 * head under the lock, so they only grow). */
#define FIFO_WAITERS 2000
#define FIFO_RELEASERS 4
#define FIFO_ROUNDS 40

typedef struct fifo_stress {
    st_sem_t s;
    stress_async w[FIFO_WAITERS];
    ST_ATOMIC(long) released;
    ST_ATOMIC(int) seeds;
    st_test_barrier_t start;
} fifo_stress;

static fifo_stress *g_fifo;
static ST_THREAD_LOCAL int tls_last_granted = -1;

static void
fifo_fn(st_waitq_node_t *node)
{
    stress_async *a = (stress_async *)st_sem_waiter_of(node);
    fifo_stress *f = g_fifo;
    int idx = (int)(a - f->w);
    /* FIFO per releaser: later grants of this thread are further back */
    ASSERT_GT(idx, tls_last_granted);
    tls_last_granted = idx;
    /* relaxed: read after the joins */
    st_atomic_fetch_add(&a->calls, 1, ST_RELAXED);
}

static void
fifo_releaser(void *arg)
{
    fifo_stress *f = arg;
    st_test_rng_t rng;
    int n;

    /* relaxed: a distinct seed per thread */
    st_test_rng_init(&rng, 5 + st_atomic_fetch_add(&f->seeds, 1,
                                                   ST_RELAXED));
    st_test_barrier_wait(&f->start);
    tls_last_granted = -1;
    for (;;) {
        /* relaxed: a claim on the total; only its sum matters */
        n = 1 + (int)st_test_rng_below(&rng, 3);
        long before = st_atomic_fetch_add(&f->released, n, ST_RELAXED);
        if (before >= FIFO_WAITERS) {
            break;
        }
        if (before + n > FIFO_WAITERS) {
            n = (int)(FIFO_WAITERS - before);
        }
        ASSERT_OK(st_sem_release(&f->s, n, NULL));
    }
}

/* One round: FIFO_WAITERS async waiters queue, the releasers grant them
 * all. */
static void
fifo_round(fifo_stress *f)
{
    st_thread_t t[FIFO_RELEASERS];
    int i;

    /* relaxed: the threads of the previous round were joined */
    st_atomic_store(&f->released, 0, ST_RELAXED);
    for (i = 0; i < FIFO_WAITERS; i++) {
        st_sem_waiter_init(&f->w[i].w, fifo_fn);
        st_atomic_init(&f->w[i].calls, 0);
        ASSERT_EQ(st_sem_wait_async(&f->s, &f->w[i].w), ST_SEM_PENDING);
    }
    for (i = 0; i < FIFO_RELEASERS; i++) {
        st_test_thread_start(&t[i], fifo_releaser, f);
    }
    for (i = 0; i < FIFO_RELEASERS; i++) {
        st_thread_join(&t[i]);
    }
    /* exactly once each, and nothing left over */
    for (i = 0; i < FIFO_WAITERS; i++) {
        ASSERT_EQ(st_atomic_load(&f->w[i].calls, ST_RELAXED), 1);
        ASSERT_EQ(st_sem_waiter_state(&f->w[i].w), ST_SEM_GRANTED);
    }
    ASSERT_EQ(st_sem_count(&f->s), 0);
    expect_waiters(&f->s, 0, 0);
}

TEST(sem_issue10_stress_releasers_fifo_exactly_once)
{
    fifo_stress *f = st_calloc(1, sizeof(*f));
    int round;

    ASSERT_NOT_NULL(f);
    g_fifo = f;
    ASSERT_OK(st_sem_init(&f->s, 0, ST_SEM_MAX));
    st_test_barrier_init(&f->start, FIFO_RELEASERS);
    for (round = 0; round < ST_TEST_ITERS(FIFO_ROUNDS); round++) {
        fifo_round(f);
    }
    st_sem_destroy(&f->s);
    st_test_barrier_destroy(&f->start);
    st_free(f);
}
