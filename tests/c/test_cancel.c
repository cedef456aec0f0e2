/* test_cancel.c - tests of st_cancel.h: LIFO order on the canceling
 * thread, registration after a request, unregister and dispose (which
 * waits for a callback running on another thread, but not on its own),
 * abandon after a first failure, try_reset and close, and stress tests in
 * which every callback runs exactly once or never under races between
 * cancel, register, unregister and concurrent cancels.  Rules: SPEC K2,
 * reference 5.1-5.4, 5.6, 5.11, 5.12, 5.15, 5.16. */
#include <string.h> /* memset */

#include "st_alloc.h"  /* st_calloc for the big race state */
#include "st_atomic.h"
#include "st_cancel.h"
#include "st_list.h" /* st_container_of */
#include "test.h"

/* ------------------------------------------------------------- helpers */

#define LOG_MAX 64

/* A registration that records the order in which callbacks ran. */
typedef struct logged_reg {
    st_cancel_reg_t reg;
    int id;
    struct call_log *log;
} logged_reg;

typedef struct call_log {
    int id[LOG_MAX];
    uint64_t thread[LOG_MAX];
    int n;
} call_log;

static void
log_fn(st_cancel_reg_t *reg)
{
    logged_reg *lr = st_container_of(reg, logged_reg, reg);
    ASSERT_LT(lr->log->n, LOG_MAX);
    lr->log->id[lr->log->n] = lr->id;
    lr->log->thread[lr->log->n] = st_thread_id();
    lr->log->n++;
}

static void
logged_init(logged_reg *lr, int id, call_log *log)
{
    st_cancel_reg_init(&lr->reg, log_fn);
    lr->id = id;
    lr->log = log;
}

/* ----------------------------------------------------------- ordering */

TEST(cancel_lifo_on_canceling_thread)
{
    st_cancel_t s;
    call_log log;
    logged_reg r[5];
    int i;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&s);
    ASSERT_EQ(st_cancel_state(&s), ST_CANCEL_NOT_CANCELED);
    ASSERT(!st_cancel_is_requested(&s));
    for (i = 0; i < 5; i++) {
        logged_init(&r[i], i, &log);
        ASSERT_OK(st_cancel_register(&s, &r[i].reg));
    }
    ASSERT_EQ(st_cancel_count(&s), 5);
    ASSERT_EQ(st_cancel_cancel(&s), 1);
    ASSERT(st_cancel_is_requested(&s));
    ASSERT_EQ(st_cancel_state(&s), ST_CANCEL_NOTIFIED);
    ASSERT_EQ(st_cancel_count(&s), 0);
    /* K2 / 5.3 (CallbacksOrderIsLifo): newest first, on this thread */
    ASSERT_EQ(log.n, 5);
    for (i = 0; i < 5; i++) {
        ASSERT_EQ(log.id[i], 4 - i);
        ASSERT_EQ(log.thread[i], st_thread_id());
    }
    /* 5.1: a second cancel returns at once and runs nothing */
    ASSERT_EQ(st_cancel_cancel(&s), 0);
    ASSERT_EQ(st_cancel_request(&s), 0);
    ASSERT_EQ(log.n, 5);
    st_cancel_destroy(&s);
}

/* The state is NOTIFYING (requested) while callbacks run, NOTIFIED after. */
typedef struct state_probe {
    st_cancel_reg_t reg;
    st_cancel_t *src;
    int seen;
} state_probe;

static void
probe_fn(st_cancel_reg_t *reg)
{
    state_probe *p = st_container_of(reg, state_probe, reg);
    p->seen = st_cancel_state(p->src);
}

TEST(cancel_state_word)
{
    st_cancel_t s;
    state_probe p;

    st_cancel_init(&s);
    st_cancel_reg_init(&p.reg, probe_fn);
    p.src = &s;
    p.seen = -1;
    ASSERT_OK(st_cancel_register(&s, &p.reg));
    ASSERT_EQ(st_cancel_request(&s), 1);
    ASSERT_EQ(st_cancel_state(&s), ST_CANCEL_NOTIFYING);
    ASSERT(st_cancel_is_requested(&s));
    ASSERT(st_cancel_take(&s) == &p.reg);
    p.reg.fn(&p.reg);
    ASSERT_EQ(p.seen, ST_CANCEL_NOTIFYING);
    ASSERT_NULL(st_cancel_take(&s));
    ASSERT_EQ(st_cancel_state(&s), ST_CANCEL_NOTIFIED);
    st_cancel_destroy(&s);
}

TEST(cancel_register_after_request)
{
    st_cancel_t s;
    call_log log;
    logged_reg r;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&s);
    logged_init(&r, 1, &log);
    ASSERT_EQ(st_cancel_cancel(&s), 1);
    /* 5.6: nothing is linked; the caller runs the callback itself */
    ASSERT_RC(st_cancel_register(&s, &r.reg), ST_ECANCELED);
    ASSERT_EQ(st_cancel_count(&s), 0);
    ASSERT_EQ(log.n, 0);
    /* and it is not "registered": unregister says so */
    ASSERT_RC(st_cancel_unregister(&s, &r.reg), ST_ECLOSED);
    ASSERT_RC(st_cancel_dispose(&s, &r.reg, 0), ST_ECLOSED);
    st_cancel_destroy(&s);
}

/* --------------------------------------------------------- unregister */

TEST(cancel_unregister_basic)
{
    st_cancel_t s;
    call_log log;
    logged_reg a, b, c;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&s);
    logged_init(&a, 1, &log);
    logged_init(&b, 2, &log);
    logged_init(&c, 3, &log);
    /* never registered */
    ASSERT_RC(st_cancel_unregister(&s, &a.reg), ST_ECLOSED);
    ASSERT_OK(st_cancel_register(&s, &a.reg));
    ASSERT_OK(st_cancel_register(&s, &b.reg));
    ASSERT_OK(st_cancel_register(&s, &c.reg));
    /* middle, head, then the last one */
    ASSERT_OK(st_cancel_unregister(&s, &b.reg));
    ASSERT_RC(st_cancel_unregister(&s, &b.reg), ST_ECLOSED);
    ASSERT_OK(st_cancel_dispose(&s, &c.reg, UINT64_MAX));
    ASSERT_EQ(st_cancel_count(&s), 1);
    /* a removed node may be registered again */
    ASSERT_OK(st_cancel_register(&s, &b.reg));
    ASSERT_EQ(st_cancel_cancel(&s), 1);
    ASSERT_EQ(log.n, 2);
    ASSERT_EQ(log.id[0], 2);
    ASSERT_EQ(log.id[1], 1);
    /* 5.15: after it ran, unregister is false and dispose does not wait */
    ASSERT_RC(st_cancel_unregister(&s, &a.reg), ST_ECLOSED);
    ASSERT_RC(st_cancel_dispose(&s, &a.reg, UINT64_MAX), ST_ECLOSED);
    st_cancel_destroy(&s);
}

/* 5.7 (UnregisterDuringCancellation_SuccessfullyRemovedIfNotYetInvoked):
 * while callback 2 runs, unregistering 2 fails (running), unregistering 1
 * succeeds (never runs), and 0 still runs. */
typedef struct during {
    st_cancel_reg_t reg[3];
    st_cancel_t *src;
    int ran[3];
    int rc_self;
    int rc_other;
    int rc_dispose_self;
} during;

static during *g_during;

static void
during_fn0(st_cancel_reg_t *reg)
{
    (void)reg;
    g_during->ran[0]++;
}

static void
during_fn1(st_cancel_reg_t *reg)
{
    (void)reg;
    g_during->ran[1]++;
}

static void
during_fn2(st_cancel_reg_t *reg)
{
    during *d = g_during;
    d->ran[2]++;
    d->rc_self = st_cancel_unregister(d->src, reg);
    d->rc_other = st_cancel_unregister(d->src, &d->reg[1]);
    /* 5.15 / 5.8: disposing itself from inside returns at once */
    d->rc_dispose_self = st_cancel_dispose(d->src, reg, UINT64_MAX);
}

TEST(cancel_unregister_during_cancel)
{
    st_cancel_t s;
    during d;

    memset(&d, 0, sizeof(d));
    g_during = &d;
    d.src = &s;
    st_cancel_init(&s);
    st_cancel_reg_init(&d.reg[0], during_fn0);
    st_cancel_reg_init(&d.reg[1], during_fn1);
    st_cancel_reg_init(&d.reg[2], during_fn2);
    ASSERT_OK(st_cancel_register(&s, &d.reg[0]));
    ASSERT_OK(st_cancel_register(&s, &d.reg[1]));
    ASSERT_OK(st_cancel_register(&s, &d.reg[2]));
    ASSERT_EQ(st_cancel_cancel(&s), 1);
    ASSERT_EQ(d.ran[2], 1);
    ASSERT_RC(d.rc_self, ST_EBUSY);
    ASSERT_OK(d.rc_other);
    ASSERT_RC(d.rc_dispose_self, ST_ECLOSED);
    ASSERT_EQ(d.ran[1], 0);
    ASSERT_EQ(d.ran[0], 1);
    st_cancel_destroy(&s);
}

/* ------------------------------------------------------------ dispose */

/* A callback that blocks until released, on a canceling thread. */
typedef struct blocker {
    st_cancel_reg_t reg;
    st_cancel_t src;
    st_event_t entered;
    st_event_t release;
    ST_ATOMIC(int) returned;
    ST_ATOMIC(int) disposed;
    int dispose_rc;
    int saw_returned;
} blocker;

static void
blocker_fn(st_cancel_reg_t *reg)
{
    blocker *b = st_container_of(reg, blocker, reg);
    st_event_set(&b->entered);
    ASSERT_OK(st_event_wait(&b->release, 20000000000u));
    /* the disposer must still be waiting */
    /* relaxed: a test flag; the dispose's mutex orders the rest */
    ASSERT_EQ(st_atomic_load(&b->disposed, ST_RELAXED), 0);
    /* release: read by the disposer after dispose returns (which is
     * ordered after this by the source's mutex anyway) */
    st_atomic_store(&b->returned, 1, ST_RELEASE);
}

static void
blocker_canceller(void *arg)
{
    blocker *b = arg;
    ASSERT_EQ(st_cancel_cancel(&b->src), 1);
}

static void
blocker_disposer(void *arg)
{
    blocker *b = arg;
    b->dispose_rc = st_cancel_dispose(&b->src, &b->reg, UINT64_MAX);
    /* acquire: pairs with the release in blocker_fn */
    b->saw_returned = st_atomic_load(&b->returned, ST_ACQUIRE);
    /* relaxed: a test flag */
    st_atomic_store(&b->disposed, 1, ST_RELAXED);
}

TEST(cancel_dispose_waits_for_running_callback)
{
    blocker b;
    st_thread_t canceller, disposer;

    st_cancel_init(&b.src);
    st_event_init(&b.entered);
    st_event_init(&b.release);
    st_atomic_init(&b.returned, 0);
    st_atomic_init(&b.disposed, 0);
    b.dispose_rc = -1;
    b.saw_returned = 0;
    st_cancel_reg_init(&b.reg, blocker_fn);
    ASSERT_OK(st_cancel_register(&b.src, &b.reg));
    st_test_thread_start(&canceller, blocker_canceller, &b);
    ASSERT_OK(st_event_wait(&b.entered, 20000000000u));
    /* unregister never waits: the callback runs now */
    ASSERT_RC(st_cancel_unregister(&b.src, &b.reg), ST_EBUSY);
    /* a bounded dispose times out while it runs */
    ASSERT_RC(st_cancel_dispose(&b.src, &b.reg, 20000000u), ST_ETIMEDOUT);
    st_test_thread_start(&disposer, blocker_disposer, &b);
    st_test_sleep_us(20000); /* let the disposer block */
    /* relaxed: a test flag */
    ASSERT_EQ(st_atomic_load(&b.disposed, ST_RELAXED), 0);
    st_event_set(&b.release);
    st_thread_join(&disposer);
    st_thread_join(&canceller);
    /* 5.15: dispose returned only after the callback returned */
    ASSERT_RC(b.dispose_rc, ST_ECLOSED);
    ASSERT_EQ(b.saw_returned, 1);
    ASSERT_RC(st_cancel_unregister(&b.src, &b.reg), ST_ECLOSED);
    st_event_destroy(&b.entered);
    st_event_destroy(&b.release);
    st_cancel_destroy(&b.src);
}

/* ------------------------------------------------ abandon, reset, close */

TEST(cancel_abandon_after_first_failure)
{
    st_cancel_t s;
    call_log log;
    logged_reg r[4];
    st_cancel_reg_t *first, *chain, *c;
    int i, n = 0;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&s);
    for (i = 0; i < 4; i++) {
        logged_init(&r[i], i, &log);
        ASSERT_OK(st_cancel_register(&s, &r[i].reg));
    }
    ASSERT_EQ(st_cancel_request(&s), 1);
    first = st_cancel_take(&s);
    ASSERT(first == &r[3].reg);
    first->fn(first); /* "throws": the binding stops here (5.4) */
    chain = st_cancel_abandon(&s);
    for (c = chain; c != NULL; c = c->next) {
        ASSERT(!c->linked);
        n++;
    }
    ASSERT_EQ(n, 3);
    ASSERT(chain == &r[2].reg); /* newest first */
    ASSERT_EQ(st_cancel_state(&s), ST_CANCEL_NOTIFIED);
    ASSERT_EQ(log.n, 1);
    /* the dropped ones never run; unregister says they are gone */
    for (i = 0; i < 3; i++) {
        ASSERT_RC(st_cancel_unregister(&s, &r[i].reg), ST_ECLOSED);
        ASSERT_RC(st_cancel_dispose(&s, &r[i].reg, 0), ST_ECLOSED);
    }
    ASSERT_RC(st_cancel_register(&s, &r[0].reg), ST_ECANCELED);
    st_cancel_destroy(&s);
}

TEST(cancel_try_reset)
{
    st_cancel_t s;
    call_log log;
    logged_reg r1, r2;
    st_cancel_reg_t *dropped;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&s);
    logged_init(&r1, 1, &log);
    logged_init(&r2, 2, &log);
    /* 5.11 / S5.6: try_reset drops r1; only r2 runs at cancel */
    ASSERT_OK(st_cancel_register(&s, &r1.reg));
    ASSERT_OK(st_cancel_try_reset(&s, &dropped));
    ASSERT(dropped == &r1.reg && dropped->next == NULL);
    ASSERT_OK(st_cancel_try_reset(&s, &dropped)); /* repeatable */
    ASSERT_NULL(dropped);
    ASSERT_OK(st_cancel_register(&s, &r2.reg));
    ASSERT_RC(st_cancel_unregister(&s, &r1.reg), ST_ECLOSED);
    ASSERT_EQ(st_cancel_cancel(&s), 1);
    ASSERT_EQ(log.n, 1);
    ASSERT_EQ(log.id[0], 2);
    ASSERT_RC(st_cancel_unregister(&s, &r2.reg), ST_ECLOSED);
    /* after a request: refused, nothing changes */
    ASSERT_RC(st_cancel_try_reset(&s, &dropped), ST_EBUSY);
    ASSERT_NULL(dropped);
    ASSERT(st_cancel_is_requested(&s));
    st_cancel_destroy(&s);
}

TEST(cancel_close)
{
    st_cancel_t s, t;
    call_log log;
    logged_reg r1, r2;
    st_cancel_reg_t *dropped;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&s);
    logged_init(&r1, 1, &log);
    logged_init(&r2, 2, &log);
    ASSERT_OK(st_cancel_register(&s, &r1.reg));
    ASSERT_OK(st_cancel_close(&s, &dropped));
    ASSERT(dropped == &r1.reg);
    /* 5.12: registering after dispose: nothing happens, ever */
    ASSERT_RC(st_cancel_register(&s, &r2.reg), ST_ECLOSED);
    ASSERT_OK(st_cancel_close(&s, &dropped)); /* idempotent */
    ASSERT_NULL(dropped);
    ASSERT(!st_cancel_is_requested(&s));
    /* the core still cancels (the binding refuses Cancel after dispose) */
    ASSERT_EQ(st_cancel_cancel(&s), 1);
    ASSERT_EQ(log.n, 0);
    /* canceled then closed: registering runs the callback (5.12) */
    ASSERT_RC(st_cancel_register(&s, &r2.reg), ST_ECANCELED);
    st_cancel_destroy(&s);

    /* closed while notifying: the canceller keeps its registrations */
    st_cancel_init(&t);
    ASSERT_OK(st_cancel_register(&t, &r1.reg));
    ASSERT_OK(st_cancel_register(&t, &r2.reg));
    ASSERT_EQ(st_cancel_request(&t), 1);
    ASSERT_OK(st_cancel_close(&t, &dropped));
    ASSERT_NULL(dropped);
    ASSERT(st_cancel_take(&t) == &r2.reg);
    ASSERT(st_cancel_take(&t) == &r1.reg);
    ASSERT_NULL(st_cancel_take(&t));
    st_cancel_destroy(&t);
}

/* A node that ran on one source and was registered on another is not
 * touched by unregistering it from the first. */
TEST(cancel_reuse_node_on_other_source)
{
    st_cancel_t a, b;
    call_log log;
    logged_reg r;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&a);
    st_cancel_init(&b);
    logged_init(&r, 7, &log);
    ASSERT_OK(st_cancel_register(&a, &r.reg));
    ASSERT_EQ(st_cancel_cancel(&a), 1);
    ASSERT_OK(st_cancel_register(&b, &r.reg));
    ASSERT_RC(st_cancel_unregister(&a, &r.reg), ST_ECLOSED);
    ASSERT_RC(st_cancel_dispose(&a, &r.reg, 0), ST_ECLOSED);
    ASSERT_EQ(st_cancel_count(&b), 1);
    ASSERT_EQ(st_cancel_cancel(&b), 1);
    ASSERT_EQ(log.n, 2);
    st_cancel_destroy(&a);
    st_cancel_destroy(&b);
}

static int
count_visit(st_cancel_reg_t *reg, void *arg)
{
    (void)reg;
    return ++*(int *)arg == 2 ? 5 : 0; /* stop at the second */
}

TEST(cancel_foreach)
{
    st_cancel_t s;
    call_log log;
    logged_reg r[3];
    int i, seen = 0;

    memset(&log, 0, sizeof(log));
    st_cancel_init(&s);
    for (i = 0; i < 3; i++) {
        logged_init(&r[i], i, &log);
        ASSERT_OK(st_cancel_register(&s, &r[i].reg));
    }
    ASSERT_EQ(st_cancel_foreach(&s, count_visit, &seen), 5);
    ASSERT_EQ(seen, 2);
    ASSERT_EQ(st_cancel_cancel(&s), 1);
    seen = 0;
    ASSERT_EQ(st_cancel_foreach(&s, count_visit, &seen), 0);
    ASSERT_EQ(seen, 0);
    st_cancel_destroy(&s);
}

/* ------------------------------------------------------------- stress */

#define RACE_THREADS 4
#define RACE_NODES 16

/* Each node: its callback counts runs; after the round, exactly one of
 * {ran, removed by unregister, refused at registration} holds (5.16). */
typedef struct race_node {
    st_cancel_reg_t reg;
    ST_ATOMIC(int) runs;
    int removed;
    int refused;
    int disposed_after_run;
} race_node;

typedef struct race {
    st_test_barrier_t start;
    st_cancel_t src;
    race_node nodes[RACE_THREADS][RACE_NODES];
    ST_ATOMIC(int) winners;
    int rounds;
    uint64_t seed;
} race;

static void
race_fn(st_cancel_reg_t *reg)
{
    race_node *n = st_container_of(reg, race_node, reg);
    int i;
    /* relaxed: counted; the source's mutex orders it before the checks */
    st_atomic_fetch_add(&n->runs, 1, ST_RELAXED);
    for (i = 0; i < 50; i++) {
        st_cpu_relax(); /* widen the window in which dispose must wait */
    }
}

/* Registrars register their nodes, then unregister or dispose a random
 * half of them, while the canceller cancels at a random moment. */
typedef struct race_arg {
    race *r;
    int index; /* 0..RACE_THREADS-1 registrars, RACE_THREADS: cancellers */
} race_arg;

static void
race_worker(void *arg)
{
    race_arg *a = arg;
    race *r = a->r;
    st_test_rng_t rng;
    int round, k;

    st_test_rng_init(&rng, r->seed + (uint64_t)a->index);
    for (round = 0; round < r->rounds; round++) {
        st_test_barrier_wait(&r->start); /* round starts */
        if (a->index >= RACE_THREADS) {
            /* two cancellers race: exactly one wins (5.1) */
            int spin = (int)st_test_rng_below(&rng, 2000);
            while (spin-- > 0) {
                st_cpu_relax();
            }
            if (st_cancel_cancel(&r->src)) {
                /* relaxed: counted, read after the barrier */
                st_atomic_fetch_add(&r->winners, 1, ST_RELAXED);
            }
        }
        else {
            race_node *nodes = r->nodes[a->index];
            for (k = 0; k < RACE_NODES; k++) {
                int rc = st_cancel_register(&r->src, &nodes[k].reg);
                if (rc == ST_ECANCELED) {
                    nodes[k].refused = 1;
                }
                else {
                    ASSERT_OK(rc);
                }
            }
            for (k = 0; k < RACE_NODES; k++) {
                if (nodes[k].refused || st_test_rng_below(&rng, 2)) {
                    continue;
                }
                if (st_test_rng_below(&rng, 2)) {
                    if (st_cancel_unregister(&r->src, &nodes[k].reg) == 0) {
                        nodes[k].removed = 1;
                    }
                }
                else {
                    int rc = st_cancel_dispose(&r->src, &nodes[k].reg,
                                               UINT64_MAX);
                    if (rc == 0) {
                        nodes[k].removed = 1;
                    }
                    else {
                        /* 5.15: dispose returned: the callback is done */
                        ASSERT_RC(rc, ST_ECLOSED);
                        /* relaxed: ordered by the source's mutex */
                        nodes[k].disposed_after_run =
                            st_atomic_load(&nodes[k].runs, ST_RELAXED);
                        ASSERT_EQ(nodes[k].disposed_after_run, 1);
                    }
                }
            }
        }
        st_test_barrier_wait(&r->start); /* round ends */
        st_test_barrier_wait(&r->start); /* checked and reset */
    }
}

TEST(cancel_race_register_unregister_cancel)
{
    race *r = st_calloc(1, sizeof(*r));
    race_arg args[RACE_THREADS + 2];
    st_thread_t th[RACE_THREADS + 2];
    int i, k, round, n_threads = RACE_THREADS + 2;
    long ran = 0, removed = 0, refused = 0;

    ASSERT_NOT_NULL(r);
    r->rounds = ST_TEST_ITERS(2000);
    r->seed = 42;
    st_atomic_init(&r->winners, 0);
    st_test_barrier_init(&r->start, n_threads + 1);
    st_cancel_init(&r->src);
    for (i = 0; i < RACE_THREADS; i++) {
        for (k = 0; k < RACE_NODES; k++) {
            st_cancel_reg_init(&r->nodes[i][k].reg, race_fn);
            st_atomic_init(&r->nodes[i][k].runs, 0);
        }
    }
    for (i = 0; i < n_threads; i++) {
        args[i].r = r;
        args[i].index = i;
        st_test_thread_start(&th[i], race_worker, &args[i]);
    }
    for (round = 0; round < r->rounds; round++) {
        st_test_barrier_wait(&r->start);
        st_test_barrier_wait(&r->start);
        /* every thread is between rounds: check, then reset */
        /* relaxed: the barrier's mutex ordered every write before */
        ASSERT_EQ(st_atomic_load(&r->winners, ST_RELAXED), 1);
        ASSERT_EQ(st_cancel_state(&r->src), ST_CANCEL_NOTIFIED);
        ASSERT_EQ(st_cancel_count(&r->src), 0);
        for (i = 0; i < RACE_THREADS; i++) {
            for (k = 0; k < RACE_NODES; k++) {
                race_node *n = &r->nodes[i][k];
                /* relaxed: as above */
                int runs = st_atomic_load(&n->runs, ST_RELAXED);
                ASSERT_EQ(runs + n->removed + n->refused, 1);
                ran += runs;
                removed += n->removed;
                refused += n->refused;
                st_cancel_reg_init(&n->reg, race_fn);
                st_atomic_store(&n->runs, 0, ST_RELAXED);
                n->removed = 0;
                n->refused = 0;
            }
        }
        st_atomic_store(&r->winners, 0, ST_RELAXED);
        st_cancel_destroy(&r->src);
        st_cancel_init(&r->src);
        st_test_barrier_wait(&r->start);
    }
    for (i = 0; i < n_threads; i++) {
        st_thread_join(&th[i]);
    }
    /* the race went every way at least once */
    ASSERT_GT(ran, 0);
    ASSERT_GT(removed, 0);
    ASSERT_GT(refused, 0);
    st_cancel_destroy(&r->src);
    st_test_barrier_destroy(&r->start);
    st_free(r);
}

/* Many sources, each canceled by several threads at once, each with
 * callbacks that unregister their neighbours: exactly one canceller per
 * source, and each callback runs exactly once or was removed. */
typedef struct multi {
    st_test_barrier_t start;
    st_cancel_t src;
    race_node nodes[8];
    ST_ATOMIC(int) winners;
    int rounds;
} multi;

static multi *g_multi;

static void
neighbour_fn(st_cancel_reg_t *reg)
{
    race_node *n = st_container_of(reg, race_node, reg);
    multi *m = g_multi;
    int idx = (int)(n - m->nodes);
    /* relaxed: counted */
    st_atomic_fetch_add(&n->runs, 1, ST_RELAXED);
    if (idx % 2 == 1 && idx > 0) {
        /* runs on the canceller: removing the next older one is safe */
        if (st_cancel_unregister(&m->src, &m->nodes[idx - 1].reg) == 0) {
            m->nodes[idx - 1].removed = 1;
        }
    }
}

static void
multi_canceller(void *arg)
{
    multi *m = arg;
    int round;
    for (round = 0; round < m->rounds; round++) {
        st_test_barrier_wait(&m->start);
        if (st_cancel_cancel(&m->src)) {
            /* relaxed: counted, read after the barrier */
            st_atomic_fetch_add(&m->winners, 1, ST_RELAXED);
        }
        st_test_barrier_wait(&m->start);
        st_test_barrier_wait(&m->start);
    }
}

TEST(cancel_race_concurrent_cancels)
{
    multi *m = st_calloc(1, sizeof(*m));
    st_thread_t th[4];
    int i, round;

    ASSERT_NOT_NULL(m);
    g_multi = m;
    m->rounds = ST_TEST_ITERS(3000);
    st_atomic_init(&m->winners, 0);
    st_test_barrier_init(&m->start, 5);
    for (i = 0; i < 4; i++) {
        st_test_thread_start(&th[i], multi_canceller, m);
    }
    for (round = 0; round < m->rounds; round++) {
        st_cancel_init(&m->src);
        for (i = 0; i < 8; i++) {
            st_cancel_reg_init(&m->nodes[i].reg, neighbour_fn);
            st_atomic_init(&m->nodes[i].runs, 0);
            m->nodes[i].removed = 0;
            ASSERT_OK(st_cancel_register(&m->src, &m->nodes[i].reg));
        }
        st_test_barrier_wait(&m->start);
        st_test_barrier_wait(&m->start);
        /* relaxed: ordered by the barrier */
        ASSERT_EQ(st_atomic_load(&m->winners, ST_RELAXED), 1);
        for (i = 0; i < 8; i++) {
            /* relaxed: as above */
            int runs = st_atomic_load(&m->nodes[i].runs, ST_RELAXED);
            ASSERT_EQ(runs + m->nodes[i].removed, 1);
            /* newest first: 7 runs and removes 6, 5 removes 4, ... */
            ASSERT_EQ(runs, i % 2);
        }
        st_atomic_store(&m->winners, 0, ST_RELAXED);
        st_cancel_destroy(&m->src);
        st_test_barrier_wait(&m->start);
    }
    for (i = 0; i < 4; i++) {
        st_thread_join(&th[i]);
    }
    st_test_barrier_destroy(&m->start);
    st_free(m);
}
