/* test_pool.c - tests of st_pool.h: exactly-once execution, FIFO order,
 * the domain attach/detach protocol and its slice, shutdown with queued
 * items, blocking compensation and the thread limits. */
#include <pthread.h> /* pthread_sigmask */
#include <signal.h>  /* sigset_t: the workers' signal mask */
#include <string.h>  /* memset */

#include "st_alloc.h"
#include "st_atomic.h"
#include "st_list.h" /* st_container_of */
#include "st_pool.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

/* Counts finished items and sets `done` when `target` is reached. */
typedef struct tracker {
    ST_ATOMIC(int) count;
    int target;
    st_event_t done;
} tracker;

static void
tracker_init(tracker *tr, int target)
{
    st_atomic_init(&tr->count, 0);
    tr->target = target;
    st_event_init(&tr->done);
}

static void
tracker_hit(tracker *tr)
{
    /* acq_rel: the last hit sees every earlier item's writes (they are
     * read by the test thread after `done`, whose mutex orders the rest) */
    if (st_atomic_fetch_add(&tr->count, 1, ST_ACQ_REL) + 1 == tr->target) {
        st_event_set(&tr->done);
    }
}

static void
tracker_wait(tracker *tr)
{
    ASSERT_OK(st_event_wait(&tr->done, 20000000000u));
}

static void
tracker_destroy(tracker *tr)
{
    st_event_destroy(&tr->done);
}

/* An item tagged (producer, seq). */
typedef struct tagged_item {
    st_work_t work;
    int producer;
    int seq;
    ST_ATOMIC(int) runs;
    tracker *tr;
    st_pool_t *pool;
} tagged_item;

static void
tagged_run(st_work_t *w)
{
    tagged_item *it = st_container_of(w, tagged_item, work);

    ASSERT(st_pool_current() == it->pool);
    /* relaxed: counted; read after the tracker's event */
    st_atomic_fetch_add(&it->runs, 1, ST_RELAXED);
    tracker_hit(it->tr);
}

/* Sets an event. */
typedef struct setter_item {
    st_work_t work;
    st_event_t *ev;
    tracker *tr;
} setter_item;

static void
setter_run(st_work_t *w)
{
    setter_item *s = st_container_of(w, setter_item, work);

    st_event_set(s->ev);
    tracker_hit(s->tr);
}

/* -------------------------------------------------------------- create */

TEST(pool_create_invalid)
{
    st_pool_t *p = (st_pool_t *)&p;

    ASSERT_RC(st_pool_create(&p, 0, 4, NULL), ST_EINVAL);
    ASSERT_NULL(p);
    ASSERT_RC(st_pool_create(&p, -1, 4, NULL), ST_EINVAL);
    ASSERT_RC(st_pool_create(&p, 3, 2, NULL), ST_EINVAL);
    ASSERT_NULL(p);
}

TEST(pool_create_shutdown)
{
    st_pool_stats_t s;
    st_pool_t *p;

    ASSERT_NULL(st_pool_current());
    ASSERT_OK(st_pool_create(&p, 3, 5, NULL));
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.min_threads, 3);
    ASSERT_EQ(s.max_threads, 5);
    ASSERT_EQ(s.thread_count, 3);
    ASSERT_EQ(s.blocked_count, 0);
    ASSERT_EQ(s.pending, 0);
    ASSERT_EQ(s.completed, 0);
    ASSERT_EQ(s.injected, 0);
    /* all three park once they find nothing to do */
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.idle_count == 3), 5000);
    ASSERT(!st_pool_is_closing(p));
    st_pool_shutdown(p);
    ASSERT(st_pool_is_closing(p));
    st_pool_shutdown(p); /* idempotent */
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.thread_count, 0);
    st_pool_destroy(p);
    ASSERT_NULL(st_pool_current());
}

/* ------------------------------------------------------- exactly once */

#define PRODUCERS 4

typedef struct producer_arg {
    st_test_barrier_t *start;
    st_pool_t *pool;
    tagged_item *items; /* n items of this producer */
    int n;
} producer_arg;

static void
producer(void *arg)
{
    producer_arg *pa = arg;
    int i;

    st_test_barrier_wait(pa->start);
    for (i = 0; i < pa->n; i++) {
        ASSERT_OK(st_pool_submit(pa->pool, &pa->items[i].work));
    }
}

static tagged_item *
make_items(int producers, int n, tracker *tr, st_pool_t *p)
{
    tagged_item *items = st_calloc((size_t)(producers * n), sizeof(*items));
    int i;

    ASSERT_NOT_NULL(items);
    for (i = 0; i < producers * n; i++) {
        items[i].work.run = tagged_run;
        items[i].producer = i / n;
        items[i].seq = i % n;
        items[i].tr = tr;
        items[i].pool = p;
        st_atomic_init(&items[i].runs, 0);
    }
    return items;
}

static void
run_producers(st_pool_t *p, tagged_item *items, int n)
{
    st_thread_t th[PRODUCERS];
    producer_arg pa[PRODUCERS];
    st_test_barrier_t start;
    int i;

    st_test_barrier_init(&start, PRODUCERS);
    for (i = 0; i < PRODUCERS; i++) {
        pa[i].start = &start;
        pa[i].pool = p;
        pa[i].items = items + i * n;
        pa[i].n = n;
        st_test_thread_start(&th[i], producer, &pa[i]);
    }
    for (i = 0; i < PRODUCERS; i++) {
        st_thread_join(&th[i]);
    }
    st_test_barrier_destroy(&start);
}

TEST(pool_exactly_once)
{
    int n = ST_TEST_ITERS(50000);
    st_pool_stats_t s;
    tagged_item *items;
    tracker tr;
    st_pool_t *p;
    int i;

    ASSERT_OK(st_pool_create(&p, 3, 3, NULL));
    tracker_init(&tr, PRODUCERS * n);
    items = make_items(PRODUCERS, n, &tr, p);
    run_producers(p, items, n);
    tracker_wait(&tr);
    for (i = 0; i < PRODUCERS * n; i++) {
        ASSERT_EQ(st_atomic_load(&items[i].runs, ST_RELAXED), 1);
    }
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s),
                       s.completed == (uint64_t)(PRODUCERS * n)),
                      5000);
    ASSERT_EQ(s.pending, 0);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_free(items);
}

/* With one worker the global queue is FIFO: each producer's items run in
 * the order it submitted them. */
static int last_seq[PRODUCERS]; /* written by the single worker only */

static void
fifo_run(st_work_t *w)
{
    tagged_item *it = st_container_of(w, tagged_item, work);

    ASSERT_EQ(it->seq, last_seq[it->producer] + 1);
    last_seq[it->producer] = it->seq;
    st_atomic_fetch_add(&it->runs, 1, ST_RELAXED); /* relaxed: counted */
    tracker_hit(it->tr);
}

TEST(pool_fifo_per_producer)
{
    int n = ST_TEST_ITERS(10000);
    tagged_item *items;
    tracker tr;
    st_pool_t *p;
    int i;

    for (i = 0; i < PRODUCERS; i++) {
        last_seq[i] = -1;
    }
    ASSERT_OK(st_pool_create(&p, 1, 1, NULL));
    tracker_init(&tr, PRODUCERS * n);
    items = make_items(PRODUCERS, n, &tr, p);
    for (i = 0; i < PRODUCERS * n; i++) {
        items[i].work.run = fifo_run;
    }
    run_producers(p, items, n);
    tracker_wait(&tr);
    for (i = 0; i < PRODUCERS; i++) {
        ASSERT_EQ(last_seq[i], n - 1);
    }
    st_pool_shutdown(p);
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_free(items);
}

/* Items that submit items: a chain, and a fan-out. */
typedef struct chain_item {
    st_work_t work;
    st_pool_t *pool;
    int left;
    tracker *tr;
} chain_item;

static void
chain_run(st_work_t *w)
{
    chain_item *c = st_container_of(w, chain_item, work);

    tracker_hit(c->tr);
    if (--c->left > 0) {
        ASSERT_OK(st_pool_submit(c->pool, &c->work)); /* reuse the node */
    }
}

TEST(pool_submit_from_item)
{
    chain_item c[4];
    tracker tr;
    st_pool_t *p;
    int i, n = ST_TEST_ITERS(5000);

    ASSERT_OK(st_pool_create(&p, 2, 2, NULL));
    tracker_init(&tr, 4 * n);
    for (i = 0; i < 4; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].work.run = chain_run;
        c[i].pool = p;
        c[i].left = n;
        c[i].tr = &tr;
        ASSERT_OK(st_pool_submit(p, &c[i].work));
    }
    tracker_wait(&tr);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    tracker_destroy(&tr);
}

/* ------------------------------------------------------------- domain */

/* The domain state of the calling thread, as the hooks see it. */
static _Thread_local int t_attached;
static _Thread_local int t_marker;

typedef struct domain_state {
    st_pool_t *pool; /* set before any domain item is submitted */
    ST_ATOMIC(int) attaches;
    ST_ATOMIC(int) detaches;
    ST_ATOMIC(int) exits;
    ST_ATOMIC(int) drops;
    ST_ATOMIC(int) refusals;
    int refuse_every; /* 0: never refuse */
    /* slice test (one worker only) */
    int track_slice;
    int items_this_attach;
    int max_items_per_attach;
} domain_state;

static void
domain_init(domain_state *d)
{
    memset(d, 0, sizeof(*d));
    st_atomic_init(&d->attaches, 0);
    st_atomic_init(&d->detaches, 0);
    st_atomic_init(&d->exits, 0);
    st_atomic_init(&d->drops, 0);
    st_atomic_init(&d->refusals, 0);
}

/* Proves the pool holds none of its mutexes: get_stats takes it. */
static void
touch_pool(domain_state *d)
{
    st_pool_stats_t s;

    if (d->pool != NULL) {
        st_pool_get_stats(d->pool, &s);
    }
}

static int
hook_attach(void *arg, void **slot)
{
    domain_state *d = arg;
    int n;

    ASSERT(!t_attached); /* never nested */
    ASSERT(*slot == NULL || *slot == &t_marker); /* per-worker slot */
    *slot = &t_marker;
    touch_pool(d);
    /* relaxed: counters, read after shutdown joined the workers */
    n = st_atomic_fetch_add(&d->attaches, 1, ST_RELAXED) + 1;
    if (d->refuse_every != 0 && n % d->refuse_every == 0) {
        st_atomic_fetch_add(&d->refusals, 1, ST_RELAXED);
        st_atomic_fetch_add(&d->detaches, 1, ST_RELAXED); /* balanced */
        return -1;
    }
    t_attached = 1;
    if (d->track_slice) {
        d->items_this_attach = 0;
    }
    return 0;
}

static void
hook_detach(void *arg, void **slot)
{
    domain_state *d = arg;

    ASSERT(t_attached);
    ASSERT(*slot == &t_marker);
    t_attached = 0;
    touch_pool(d);
    st_atomic_fetch_add(&d->detaches, 1, ST_RELAXED); /* relaxed: count */
}

static void
hook_drop(void *arg, st_work_t *w)
{
    domain_state *d = arg;
    tagged_item *it = st_container_of(w, tagged_item, work);

    touch_pool(d);
    st_atomic_fetch_add(&d->drops, 1, ST_RELAXED); /* relaxed: count */
    tracker_hit(it->tr);
}

static void
hook_thread_exit(void *arg, void **slot)
{
    domain_state *d = arg;

    ASSERT(!t_attached);
    ASSERT(*slot == NULL || *slot == &t_marker);
    touch_pool(d);
    st_atomic_fetch_add(&d->exits, 1, ST_RELAXED); /* relaxed: count */
}

static st_pool_hooks_t
make_hooks(domain_state *d, uint64_t slice_ns)
{
    st_pool_hooks_t h;

    memset(&h, 0, sizeof(h));
    h.arg = d;
    h.attach = hook_attach;
    h.detach = hook_detach;
    h.drop = hook_drop;
    h.thread_exit = hook_thread_exit;
    h.slice_ns = slice_ns;
    return h;
}

static void
domain_run(st_work_t *w)
{
    tagged_item *it = st_container_of(w, tagged_item, work);

    if (it->work.flags & ST_WORK_DOMAIN) {
        ASSERT(t_attached);
    }
    else {
        ASSERT(!t_attached);
    }
    st_atomic_fetch_add(&it->runs, 1, ST_RELAXED); /* relaxed: counted */
    tracker_hit(it->tr);
}

static void
run_domain_mix(int refuse_every)
{
    int n = ST_TEST_ITERS(20000);
    st_pool_hooks_t h;
    domain_state d;
    tagged_item *items;
    st_test_rng_t rng;
    tracker tr;
    st_pool_t *p;
    int i, ran = 0, dropped = 0;

    domain_init(&d);
    d.refuse_every = refuse_every;
    h = make_hooks(&d, 0);
    ASSERT_OK(st_pool_create(&p, 2, 2, &h));
    d.pool = p;
    tracker_init(&tr, PRODUCERS * n);
    items = make_items(PRODUCERS, n, &tr, p);
    st_test_rng_init(&rng, 11);
    for (i = 0; i < PRODUCERS * n; i++) {
        items[i].work.run = domain_run;
        /* runs of domain items with a non-domain one now and then */
        items[i].work.flags = st_test_rng_below(&rng, 5) ? ST_WORK_DOMAIN
                                                         : 0;
    }
    run_producers(p, items, n);
    tracker_wait(&tr);
    /* idle workers are detached: they detach before parking */
    ASSERT_EVENTUALLY(st_atomic_load(&d.attaches, ST_RELAXED)
                          == st_atomic_load(&d.detaches, ST_RELAXED),
                      5000);
    st_pool_shutdown(p);
    ASSERT_EQ(st_atomic_load(&d.attaches, ST_RELAXED),
              st_atomic_load(&d.detaches, ST_RELAXED));
    ASSERT_GT(st_atomic_load(&d.attaches, ST_RELAXED), 0);
    ASSERT_EQ(st_atomic_load(&d.exits, ST_RELAXED), 2);
    for (i = 0; i < PRODUCERS * n; i++) {
        int runs = st_atomic_load(&items[i].runs, ST_RELAXED);
        ASSERT(runs == 0 || runs == 1);
        ran += runs;
        dropped += 1 - runs;
        if (runs == 0) {
            ASSERT(items[i].work.flags & ST_WORK_DOMAIN);
        }
    }
    ASSERT_EQ(dropped, st_atomic_load(&d.drops, ST_RELAXED));
    ASSERT_EQ(dropped, st_atomic_load(&d.refusals, ST_RELAXED));
    if (refuse_every == 0) {
        ASSERT_EQ(dropped, 0);
    }
    else {
        ASSERT_GT(dropped, 0);
    }
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_free(items);
}

TEST(pool_domain_hooks)
{
    run_domain_mix(0);
}

TEST(pool_domain_attach_refused)
{
    run_domain_mix(3);
}

/* The slice: with one worker and a full queue of domain items that take
 * at least ITEM_US each, no attach lasts more than slice/ITEM_US + 1
 * items, and the worker does not detach after every item either. */
#define ITEM_US 200

typedef struct slice_item {
    st_work_t work;
    domain_state *d;
    tracker *tr;
    st_event_t *gate; /* the first item waits on it */
} slice_item;

static void
slice_run(st_work_t *w)
{
    slice_item *it = st_container_of(w, slice_item, work);
    domain_state *d = it->d;

    if (it->gate != NULL) {
        ASSERT_OK(st_event_wait(it->gate, 20000000000u));
    }
    else {
        ASSERT(t_attached);
        st_test_sleep_us(ITEM_US);
        d->items_this_attach++;
        if (d->items_this_attach > d->max_items_per_attach) {
            d->max_items_per_attach = d->items_this_attach;
        }
    }
    tracker_hit(it->tr);
}

static void
run_slice(uint64_t slice_ns, int items_per_slice)
{
    enum { N = 40 };
    slice_item items[N + 1];
    st_pool_hooks_t h;
    domain_state d;
    st_event_t gate;
    tracker tr;
    st_pool_t *p;
    int i, attaches;

    domain_init(&d);
    d.track_slice = 1;
    h = make_hooks(&d, slice_ns);
    ASSERT_OK(st_pool_create(&p, 1, 1, &h));
    d.pool = p;
    tracker_init(&tr, N + 1);
    st_event_init(&gate);
    memset(items, 0, sizeof(items));
    for (i = 0; i <= N; i++) {
        items[i].work.run = slice_run;
        items[i].work.flags = i == 0 ? 0 : ST_WORK_DOMAIN;
        items[i].d = &d;
        items[i].tr = &tr;
        items[i].gate = i == 0 ? &gate : NULL;
        ASSERT_OK(st_pool_submit(p, &items[i].work));
    }
    st_event_set(&gate); /* the whole queue is there: drain it */
    tracker_wait(&tr);
    /* the queue ran dry: the worker detached before parking */
    ASSERT_EVENTUALLY(st_atomic_load(&d.attaches, ST_RELAXED)
                          == st_atomic_load(&d.detaches, ST_RELAXED),
                      5000);
    st_pool_shutdown(p);
    attaches = st_atomic_load(&d.attaches, ST_RELAXED);
    ASSERT_EQ(attaches, st_atomic_load(&d.detaches, ST_RELAXED));
    /* never longer than the slice (sleeps never undershoot) */
    ASSERT_LE(d.max_items_per_attach, items_per_slice + 1);
    /* and not one item per attach: on average at least a third of the
     * slice is used, unless every sleep overshoots threefold */
    if (items_per_slice >= 3) {
        ASSERT_LE(attaches, N * 3 / items_per_slice + 1);
    }
    ASSERT_GE(attaches, N / (items_per_slice + 1));
    st_pool_destroy(p);
    st_event_destroy(&gate);
    tracker_destroy(&tr);
}

TEST(pool_domain_slice)
{
    run_slice(2000000u, 2000 / ITEM_US);
}

TEST(pool_domain_slice_default)
{
    run_slice(0, 500 / ITEM_US); /* 0: the default, 500 us */
}

/* ----------------------------------------------------------- shutdown */

typedef struct blocker_item {
    st_work_t work;
    st_event_t started;
    st_event_t release;
    ST_ATOMIC(int) runs;
} blocker_item;

static void
blocker_run(st_work_t *w)
{
    blocker_item *b = st_container_of(w, blocker_item, work);

    st_event_set(&b->started);
    ASSERT_OK(st_event_wait(&b->release, 20000000000u));
    st_atomic_fetch_add(&b->runs, 1, ST_RELAXED); /* relaxed: counted */
}

static void
blocker_init(blocker_item *b)
{
    memset(b, 0, sizeof(*b));
    b->work.run = blocker_run;
    st_event_init(&b->started);
    st_event_init(&b->release);
    st_atomic_init(&b->runs, 0);
}

static void
blocker_destroy(blocker_item *b)
{
    st_event_destroy(&b->started);
    st_event_destroy(&b->release);
}

static void
shutdown_thread(void *arg)
{
    st_pool_shutdown(arg);
}

TEST(pool_shutdown_drops_queued)
{
    enum { N = 100 };
    tagged_item *items;
    st_pool_hooks_t h;
    domain_state d;
    blocker_item b;
    setter_item extra;
    st_pool_stats_t s;
    st_thread_t th[2];
    tracker tr;
    st_pool_t *p;
    int i;

    domain_init(&d);
    h = make_hooks(&d, 0);
    ASSERT_OK(st_pool_create(&p, 1, 1, &h));
    d.pool = p; /* drop proves it runs without the pool's mutex */
    blocker_init(&b);
    ASSERT_OK(st_pool_submit(p, &b.work));
    ASSERT_OK(st_event_wait(&b.started, 20000000000u));
    tracker_init(&tr, N);
    memset(&extra, 0, sizeof(extra));
    extra.work.run = setter_run;
    items = make_items(1, N, &tr, p);
    for (i = 0; i < N; i++) {
        items[i].work.flags = (i & 1) ? ST_WORK_DOMAIN : 0;
        ASSERT_OK(st_pool_submit(p, &items[i].work));
    }
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.pending, N);
    /* two concurrent shutdowns: both return only once it is done */
    st_test_thread_start(&th[0], shutdown_thread, p);
    st_test_thread_start(&th[1], shutdown_thread, p);
    ASSERT_EVENTUALLY(st_pool_is_closing(p), 5000);
    ASSERT_RC(st_pool_submit(p, &extra.work), ST_ECLOSED);
    st_test_sleep_us(2000);
    st_event_set(&b.release); /* the running item finishes first */
    st_thread_join(&th[0]);
    st_thread_join(&th[1]);
    ASSERT_EQ(st_atomic_load(&b.runs, ST_RELAXED), 1);
    ASSERT_EQ(st_atomic_load(&d.drops, ST_RELAXED), N);
    for (i = 0; i < N; i++) {
        ASSERT_EQ(st_atomic_load(&items[i].runs, ST_RELAXED), 0);
    }
    ASSERT_EQ(st_atomic_load(&tr.count, ST_RELAXED), N);
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.pending, 0);
    ASSERT_EQ(s.completed, 1);
    ASSERT_EQ(s.thread_count, 0);
    ASSERT_EQ(st_atomic_load(&d.exits, ST_RELAXED), 1);
    /* after shutdown: refused, and not dropped */
    ASSERT_RC(st_pool_submit(p, &items[0].work), ST_ECLOSED);
    ASSERT_EQ(st_atomic_load(&d.drops, ST_RELAXED), N);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    blocker_destroy(&b);
    tracker_destroy(&tr);
    st_free(items);
}

/* ----------------------------------------------------------- blocking */

typedef struct blocking_item {
    st_work_t work;
    st_pool_t *pool;
    st_event_t *entered;
    st_event_t *wait_for;
    uint64_t timeout_ns;
    int rc;
    tracker *tr;
} blocking_item;

static void
blocking_run(st_work_t *w)
{
    blocking_item *b = st_container_of(w, blocking_item, work);

    st_pool_enter_blocking(b->pool);
    st_pool_enter_blocking(b->pool); /* nested: counted once */
    st_event_set(b->entered);
    b->rc = st_event_wait(b->wait_for, b->timeout_ns);
    st_pool_leave_blocking(b->pool);
    st_pool_leave_blocking(b->pool);
    tracker_hit(b->tr);
}

static void
run_blocking(int max_threads, uint64_t timeout_ns, int expect_rc)
{
    st_event_t entered, released;
    blocking_item b;
    setter_item s;
    st_pool_stats_t st;
    tracker tr;
    st_pool_t *p;

    ASSERT_OK(st_pool_create(&p, 1, max_threads, NULL));
    st_event_init(&entered);
    st_event_init(&released);
    tracker_init(&tr, 2);
    memset(&b, 0, sizeof(b));
    b.work.run = blocking_run;
    b.pool = p;
    b.entered = &entered;
    b.wait_for = &released;
    b.timeout_ns = timeout_ns;
    b.tr = &tr;
    memset(&s, 0, sizeof(s));
    s.work.run = setter_run;
    s.ev = &released;
    s.tr = &tr;
    ASSERT_OK(st_pool_submit(p, &b.work));
    ASSERT_OK(st_event_wait(&entered, 20000000000u));
    st_pool_get_stats(p, &st);
    ASSERT_EQ(st.blocked_count, 1);
    /* the only worker blocks until s runs: only a replacement runs it */
    ASSERT_OK(st_pool_submit(p, &s.work));
    tracker_wait(&tr);
    ASSERT_RC(b.rc, expect_rc);
    st_pool_get_stats(p, &st);
    ASSERT_EQ(st.blocked_count, 0);
    if (expect_rc == 0) {
        ASSERT_EQ(st.thread_count, 2);
        ASSERT_EQ(st.injected, 1);
    }
    else {
        ASSERT_EQ(st.thread_count, 1);
        ASSERT_EQ(st.injected, 0);
    }
    st_pool_shutdown(p);
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_event_destroy(&released);
    st_event_destroy(&entered);
}

TEST(pool_blocking_compensation)
{
    run_blocking(4, 20000000000u, 0);
}

TEST(pool_blocking_at_max)
{
    /* max reached: no replacement, the wait times out */
    run_blocking(1, 50000000u, ST_ETIMEDOUT);
}

TEST(pool_blocking_foreign_thread)
{
    st_pool_stats_t s;
    st_pool_t *p, *q;

    ASSERT_OK(st_pool_create(&p, 1, 4, NULL));
    ASSERT_OK(st_pool_create(&q, 1, 4, NULL));
    /* not a worker of p: no-ops */
    st_pool_enter_blocking(p);
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.blocked_count, 0);
    ASSERT_EQ(s.thread_count, 1);
    st_pool_leave_blocking(p);
    st_pool_shutdown(q);
    st_pool_destroy(q);
    st_pool_shutdown(p);
    st_pool_destroy(p);
}

/* ------------------------------------------------------------- limits */

typedef struct barrier_item {
    st_work_t work;
    st_test_barrier_t *barrier;
    tracker *tr;
} barrier_item;

static void
barrier_run(st_work_t *w)
{
    barrier_item *b = st_container_of(w, barrier_item, work);

    st_test_barrier_wait(b->barrier); /* needs 3 workers at once */
    tracker_hit(b->tr);
}

TEST(pool_set_limits)
{
    barrier_item items[3];
    st_test_barrier_t barrier;
    st_pool_stats_t s;
    tracker tr;
    st_pool_t *p;
    int i;

    ASSERT_OK(st_pool_create(&p, 1, 2, NULL));
    ASSERT_RC(st_pool_set_min_threads(p, 0), ST_EINVAL);
    ASSERT_RC(st_pool_set_min_threads(p, -3), ST_EINVAL);
    ASSERT_RC(st_pool_set_min_threads(p, 3), ST_EINVAL); /* > max */
    ASSERT_RC(st_pool_set_max_threads(p, 0), ST_EINVAL);
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.min_threads, 1);
    ASSERT_EQ(s.max_threads, 2);
    ASSERT_EQ(s.thread_count, 1);

    ASSERT_OK(st_pool_set_max_threads(p, 4));
    ASSERT_OK(st_pool_set_min_threads(p, 3)); /* starts two workers */
    ASSERT_RC(st_pool_set_max_threads(p, 2), ST_EINVAL); /* < min */
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.min_threads, 3);
    ASSERT_EQ(s.max_threads, 4);
    ASSERT_EQ(s.thread_count, 3);
    ASSERT_EQ(s.injected, 0);

    /* three items that can only finish together */
    st_test_barrier_init(&barrier, 3);
    tracker_init(&tr, 3);
    for (i = 0; i < 3; i++) {
        memset(&items[i], 0, sizeof(items[i]));
        items[i].work.run = barrier_run;
        items[i].barrier = &barrier;
        items[i].tr = &tr;
        ASSERT_OK(st_pool_submit(p, &items[i].work));
    }
    tracker_wait(&tr);

    ASSERT_OK(st_pool_set_min_threads(p, 1)); /* lowering starts nothing */
    ASSERT_OK(st_pool_set_max_threads(p, 1));
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.min_threads, 1);
    ASSERT_EQ(s.max_threads, 1);
    st_pool_shutdown(p);
    ASSERT_OK(st_pool_set_min_threads(p, 1)); /* after shutdown: harmless */
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.thread_count, 0);
    st_pool_destroy(p);
    st_test_barrier_destroy(&barrier);
    tracker_destroy(&tr);
}

/* ==================================================== issue 3 additions */

/* A tuning for tests: the defaults with overrides. */
static st_pool_tuning_t
tuning(uint64_t gate_period_ns, uint64_t thread_timeout_ns)
{
    st_pool_tuning_t t;

    st_pool_tuning_default(&t);
    t.gate_period_ns = gate_period_ns;
    t.thread_timeout_ns = thread_timeout_ns;
    return t;
}

#define MS_NS 1000000ull

/* ------------------------------------------------------ local queues */

/* An item that, run on a worker, queues `fan` children on that worker's
 * own deque (P2), then waits for `gate` (so that only a thief can run
 * the children before it returns). */
typedef struct fan_item {
    st_work_t work;
    st_pool_t *pool;
    tagged_item *children;
    int fan;
    st_event_t *gate;
    st_event_t *queued;
} fan_item;

static _Thread_local int t_worker_mark; /* address identifies a thread */

typedef struct order_log {
    ST_ATOMIC(int) n;
    int seq[64];
    void *thread[64];
} order_log;

static order_log g_order;

static void
logged_run(st_work_t *w)
{
    tagged_item *it = st_container_of(w, tagged_item, work);
    int i = st_atomic_fetch_add(&g_order.n, 1, ST_RELAXED); /* relaxed */

    ASSERT_LT(i, 64);
    g_order.seq[i] = it->seq;
    g_order.thread[i] = &t_worker_mark;
    st_atomic_fetch_add(&it->runs, 1, ST_RELAXED); /* relaxed: counted */
    tracker_hit(it->tr);
}

static void
fan_run(st_work_t *w)
{
    fan_item *f = st_container_of(w, fan_item, work);
    int i;

    for (i = 0; i < f->fan; i++) {
        ASSERT_OK(st_pool_submit_local(f->pool, &f->children[i].work));
    }
    st_event_set(f->queued);
    if (f->gate != NULL) {
        ASSERT_OK(st_event_wait(f->gate, 20000000000u));
    }
}

/* P2: with one worker, local items run newest first (LIFO) once the
 * queuing item returns. */
TEST(pool_local_queue_is_lifo)
{
    enum { FAN = 8 };
    st_event_t queued;
    tagged_item *children;
    fan_item f;
    tracker tr;
    st_pool_t *p;
    int i;

    st_atomic_init(&g_order.n, 0);
    ASSERT_OK(st_pool_create(&p, 1, 1, NULL));
    tracker_init(&tr, FAN);
    st_event_init(&queued);
    children = make_items(1, FAN, &tr, p);
    for (i = 0; i < FAN; i++) {
        children[i].work.run = logged_run;
    }
    memset(&f, 0, sizeof(f));
    f.work.run = fan_run;
    f.pool = p;
    f.children = children;
    f.fan = FAN;
    f.queued = &queued;
    ASSERT_OK(st_pool_submit(p, &f.work));
    tracker_wait(&tr);
    ASSERT_EQ(st_atomic_load(&g_order.n, ST_RELAXED), FAN);
    for (i = 0; i < FAN; i++) {
        ASSERT_EQ(g_order.seq[i], FAN - 1 - i);
    }
    st_pool_shutdown(p);
    st_pool_destroy(p);
    st_event_destroy(&queued);
    tracker_destroy(&tr);
    st_free(children);
}

/* P2: while the owner is busy, another worker steals its local items,
 * oldest first (FIFO). */
TEST(pool_local_items_are_stolen_fifo)
{
    enum { FAN = 16 };
    st_event_t queued, gate;
    tagged_item *children;
    fan_item f;
    tracker tr;
    st_pool_t *p;
    int i;

    st_atomic_init(&g_order.n, 0);
    ASSERT_OK(st_pool_create(&p, 2, 2, NULL));
    tracker_init(&tr, FAN);
    st_event_init(&queued);
    st_event_init(&gate);
    children = make_items(1, FAN, &tr, p);
    for (i = 0; i < FAN; i++) {
        children[i].work.run = logged_run;
    }
    memset(&f, 0, sizeof(f));
    f.work.run = fan_run;
    f.pool = p;
    f.children = children;
    f.fan = FAN;
    f.gate = &gate; /* the owner stays inside fan_run */
    f.queued = &queued;
    ASSERT_OK(st_pool_submit(p, &f.work));
    tracker_wait(&tr); /* only the other worker can have run them */
    for (i = 0; i < FAN; i++) {
        ASSERT_EQ(g_order.seq[i], i); /* one thief: FIFO */
        ASSERT(g_order.thread[i] == g_order.thread[0]);
    }
    st_event_set(&gate);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    st_event_destroy(&gate);
    st_event_destroy(&queued);
    tracker_destroy(&tr);
    st_free(children);
}

/* From a thread that is not a worker, submit_local is a global submit;
 * with one worker the global queue stays FIFO. */
TEST(pool_submit_local_from_foreign_thread)
{
    enum { N = 16 };
    tagged_item *items;
    tracker tr;
    st_pool_t *p;
    int i;

    st_atomic_init(&g_order.n, 0);
    ASSERT_OK(st_pool_create(&p, 1, 1, NULL));
    tracker_init(&tr, N);
    items = make_items(1, N, &tr, p);
    for (i = 0; i < N; i++) {
        items[i].work.run = logged_run;
        ASSERT_OK(st_pool_submit_local(p, &items[i].work));
    }
    tracker_wait(&tr);
    for (i = 0; i < N; i++) {
        ASSERT_EQ(g_order.seq[i], i);
    }
    st_pool_shutdown(p);
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_free(items);
}

/* The stress suite (STYLE.md 32): external producers on the global queue
 * and items that fan out on their worker's deque, four workers stealing
 * from each other, every item exactly once.  In the test builds the
 * deques' indices start just below the wrap (Makefile), so the run
 * crosses it. */
typedef struct tree_item {
    st_work_t work;
    st_pool_t *pool;
    struct tree_item *kids; /* FANOUT children, or NULL for a leaf */
    ST_ATOMIC(int) runs;
    tracker *tr;
} tree_item;

#define FANOUT 8

static void
tree_run(st_work_t *w)
{
    tree_item *t = st_container_of(w, tree_item, work);
    int i;

    st_atomic_fetch_add(&t->runs, 1, ST_RELAXED); /* relaxed: counted */
    if (t->kids != NULL) {
        for (i = 0; i < FANOUT; i++) {
            ASSERT_OK(st_pool_submit_local(t->pool, &t->kids[i].work));
        }
    }
    tracker_hit(t->tr);
}

typedef struct tree_producer_arg {
    st_test_barrier_t *start;
    st_pool_t *pool;
    tree_item *roots;
    int n;
} tree_producer_arg;

static void
tree_producer(void *arg)
{
    tree_producer_arg *a = arg;
    int i;

    st_test_barrier_wait(a->start);
    for (i = 0; i < a->n; i++) {
        ASSERT_OK(st_pool_submit(a->pool, &a->roots[i].work));
    }
}

TEST(pool_stress_producers_and_thieves)
{
    int roots_per = ST_TEST_ITERS(2000);
    int nroots = PRODUCERS * roots_per;
    int total = nroots * (1 + FANOUT);
    tree_producer_arg pa[PRODUCERS];
    st_thread_t th[PRODUCERS];
    st_test_barrier_t start;
    tree_item *roots, *kids;
    st_pool_stats_t s;
    tracker tr;
    st_pool_t *p;
    int i, k;

    ASSERT_OK(st_pool_create(&p, 4, 4, NULL));
    tracker_init(&tr, total);
    roots = st_calloc((size_t)nroots, sizeof(*roots));
    kids = st_calloc((size_t)nroots * FANOUT, sizeof(*kids));
    ASSERT_NOT_NULL(roots);
    ASSERT_NOT_NULL(kids);
    for (i = 0; i < nroots; i++) {
        roots[i].work.run = tree_run;
        roots[i].pool = p;
        roots[i].kids = &kids[i * FANOUT];
        roots[i].tr = &tr;
        st_atomic_init(&roots[i].runs, 0);
        for (k = 0; k < FANOUT; k++) {
            tree_item *c = &kids[i * FANOUT + k];
            c->work.run = tree_run;
            c->pool = p;
            c->tr = &tr;
            st_atomic_init(&c->runs, 0);
        }
    }
    st_test_barrier_init(&start, PRODUCERS);
    for (i = 0; i < PRODUCERS; i++) {
        pa[i].start = &start;
        pa[i].pool = p;
        pa[i].roots = roots + i * roots_per;
        pa[i].n = roots_per;
        st_test_thread_start(&th[i], tree_producer, &pa[i]);
    }
    for (i = 0; i < PRODUCERS; i++) {
        st_thread_join(&th[i]);
    }
    tracker_wait(&tr);
    for (i = 0; i < nroots; i++) {
        ASSERT_EQ(st_atomic_load(&roots[i].runs, ST_RELAXED), 1);
    }
    for (i = 0; i < nroots * FANOUT; i++) {
        ASSERT_EQ(st_atomic_load(&kids[i].runs, ST_RELAXED), 1);
    }
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s),
                       s.completed == (uint64_t)total),
                      5000);
    ASSERT_EQ(s.pending, 0);
    ASSERT_LE(s.spinning, 1);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    st_test_barrier_destroy(&start);
    tracker_destroy(&tr);
    st_free(kids);
    st_free(roots);
}

/* ------------------------------------------------------------- waking */

/* Rule 5: one submit wakes at most one parked worker, and no worker stays
 * spinning: with four idle workers, a lone item never takes more than one
 * of them out of the idle stack at a time. */
TEST(pool_one_wake_per_submit)
{
    int rounds = ST_TEST_ITERS(200);
    st_pool_stats_t s;
    tagged_item *items;
    tracker tr;
    st_pool_t *p;
    int i, min_idle = 4;

    ASSERT_OK(st_pool_create(&p, 4, 4, NULL));
    tracker_init(&tr, rounds);
    items = make_items(1, rounds, &tr, p);
    for (i = 0; i < rounds; i++) {
        /* all parked, nobody spinning */
        ASSERT_EVENTUALLY((st_pool_get_stats(p, &s),
                           s.idle_count == 4 && s.spinning == 0),
                          5000);
        ASSERT_OK(st_pool_submit(p, &items[i].work));
        while (st_atomic_load(&items[i].runs, ST_RELAXED) == 0) {
            st_pool_get_stats(p, &s);
            if (s.idle_count < min_idle) {
                min_idle = s.idle_count;
            }
            ASSERT_LE(s.spinning, 1);
        }
    }
    tracker_wait(&tr);
    ASSERT_GE(min_idle, 3);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_free(items);
}

/* ---------------------------------------------------------- starvation */

/* P3 / reference 7.11: a pool whose only worker is stuck in an item that
 * does not announce it (no enter_blocking) gets one more thread from the
 * gate, after about one gate period, and never more than one per period;
 * each injection is a starvation event. */
TEST(pool_starvation_injects_at_most_one_per_period)
{
    enum { N = 6 };
    blocker_item b[N];
    st_pool_tuning_t t = tuning(200 * MS_NS, UINT64_MAX);
    st_pool_stats_t s;
    st_pool_t *p;
    uint64_t t0, first = 0, now;
    int i, seen = 1;

    ASSERT_OK(st_pool_create(&p, 1, N, NULL));
    ASSERT_OK(st_pool_set_tuning(p, &t));
    for (i = 0; i < N; i++) {
        blocker_init(&b[i]);
    }
    t0 = st_now_ns();
    for (i = 0; i < N; i++) {
        ASSERT_OK(st_pool_submit(p, &b[i].work));
    }
    /* Watch the thread count grow for ~900 ms. */
    while ((now = st_now_ns()) - t0 < 900 * MS_NS) {
        st_pool_get_stats(p, &s);
        if (s.thread_count > seen) {
            if (first == 0) {
                first = now - t0;
            }
            seen = s.thread_count;
        }
        st_test_sleep_us(2000);
    }
    st_pool_get_stats(p, &s);
    /* the first injection waits for a whole period with no completion */
    ASSERT_GE(first, 150 * MS_NS);
    /* one per 200 ms at most: 900 ms allow 4 (first after >= 200 ms) */
    ASSERT_GE(s.thread_count, 3);
    ASSERT_LE(s.thread_count, 1 + 4);
    ASSERT_EQ(s.injected, (uint64_t)(s.thread_count - 1));
    ASSERT_EQ(s.starvation_events, s.injected);
    ASSERT_EQ(st_pool_take_starvation_notices(p), s.starvation_events);
    ASSERT_EQ(st_pool_take_starvation_notices(p), 0);
    for (i = 0; i < N; i++) {
        st_event_set(&b[i].release);
    }
    for (i = 0; i < N; i++) {
        ASSERT_EVENTUALLY(st_atomic_load(&b[i].runs, ST_RELAXED) == 1,
                          5000);
    }
    st_pool_shutdown(p);
    for (i = 0; i < N; i++) {
        blocker_destroy(&b[i]);
    }
    st_pool_destroy(p);
}

/* With the default period (.NET's 500 ms) nothing is injected within the
 * first 300 ms, and work that completes is never starvation. */
TEST(pool_starvation_default_period)
{
    blocker_item b[2];
    st_pool_stats_t s;
    st_pool_t *p;
    int i;

    ASSERT_OK(st_pool_create(&p, 1, 4, NULL));
    for (i = 0; i < 2; i++) {
        blocker_init(&b[i]);
        ASSERT_OK(st_pool_submit(p, &b[i].work));
    }
    st_test_sleep_us(300000);
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.thread_count, 1);
    ASSERT_EQ(s.starvation_events, 0);
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.thread_count == 2),
                      3000);
    ASSERT_OK(st_event_wait(&b[1].started, 20000000000u));
    ASSERT_EQ(s.starvation_events, 1);
    for (i = 0; i < 2; i++) {
        st_event_set(&b[i].release);
    }
    st_pool_shutdown(p);
    for (i = 0; i < 2; i++) {
        blocker_destroy(&b[i]);
    }
    st_pool_destroy(p);
}

/* ----------------------------------------------- blocking compensation */

/* .NET 6+ (reference 7.12): each worker that blocks raises the goal; the
 * first no_delay threads beyond the minimum come at once, later ones one
 * per growing delay.  Here min 1, no_delay 2, delay step 150 ms: blocked
 * items that each need a new thread get threads 2 and 3 at once, and
 * thread 4 only after a delay. */
typedef struct block_chain {
    st_work_t work;
    st_pool_t *pool;
    st_event_t *release;
    ST_ATOMIC(uint64_t) started_at;
} block_chain;

static void
block_chain_run(st_work_t *w)
{
    block_chain *b = st_container_of(w, block_chain, work);

    /* relaxed: read by the test after polling it */
    st_atomic_store(&b->started_at, st_now_ns(), ST_RELAXED);
    st_pool_enter_blocking(b->pool);
    ASSERT_OK(st_event_wait(b->release, 20000000000u));
    st_pool_leave_blocking(b->pool);
}

TEST(pool_blocking_compensation_delays)
{
    enum { N = 4 };
    block_chain b[N];
    st_event_t release;
    st_pool_tuning_t t = tuning(0, UINT64_MAX); /* no starvation help */
    st_pool_stats_t s;
    st_pool_t *p;
    uint64_t t0, at;
    int i;

    t.blocking_no_delay = 2;
    t.blocking_delay_step_ns = 150 * MS_NS;
    t.blocking_delay_max_ns = 400 * MS_NS;
    ASSERT_OK(st_pool_create(&p, 1, 16, NULL));
    ASSERT_OK(st_pool_set_tuning(p, &t));
    st_event_init(&release);
    memset(b, 0, sizeof(b));
    t0 = st_now_ns();
    for (i = 0; i < N; i++) {
        b[i].work.run = block_chain_run;
        b[i].pool = p;
        b[i].release = &release;
        st_atomic_init(&b[i].started_at, 0);
        ASSERT_OK(st_pool_submit(p, &b[i].work));
    }
    /* items 0..2 start at once: one worker plus two compensations */
    for (i = 0; i < 3; i++) {
        ASSERT_EVENTUALLY(st_atomic_load(&b[i].started_at, ST_RELAXED) != 0,
                          2000);
    }
    for (i = 0; i < 3; i++) {
        at = st_atomic_load(&b[i].started_at, ST_RELAXED) - t0;
        ASSERT_LT(at, 100 * MS_NS);
    }
    /* item 3 waits for the delay (150 ms after the last compensation) */
    ASSERT_EVENTUALLY(st_atomic_load(&b[3].started_at, ST_RELAXED) != 0,
                      3000);
    at = st_atomic_load(&b[3].started_at, ST_RELAXED) - t0;
    ASSERT_GE(at, 120 * MS_NS);
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.thread_count, 4);
    ASSERT_EQ(s.injected, 3);
    ASSERT_EQ(s.blocked_count, 4);
    ASSERT_EQ(s.starvation_events, 0);
    st_event_set(&release);
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.blocked_count == 0),
                      5000);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    st_event_destroy(&release);
}

/* ---------------------------------------------------------- retirement */

/* Reference 7.14: idle workers above the minimum exit after the thread
 * timeout (20 s in .NET; 100 ms here); the minimum stays. */
TEST(pool_idle_workers_retire)
{
    st_pool_tuning_t t = tuning(500 * MS_NS, 100 * MS_NS);
    domain_state d;
    st_pool_hooks_t h;
    st_pool_stats_t s;
    st_pool_t *p;

    domain_init(&d);
    h = make_hooks(&d, 0);
    ASSERT_OK(st_pool_create(&p, 4, 8, &h));
    d.pool = p;
    ASSERT_OK(st_pool_set_tuning(p, &t));
    ASSERT_OK(st_pool_set_min_threads(p, 1));
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.thread_count == 1),
                      3000);
    st_test_sleep_us(300000); /* the minimum never retires */
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.thread_count, 1);
    ASSERT_EQ(s.retired, 3);
    /* the retired threads said goodbye to the hooks, and were joined */
    ASSERT_EVENTUALLY(st_atomic_load(&d.exits, ST_RELAXED) == 3, 3000);
    /* raising the minimum again reuses the records */
    ASSERT_OK(st_pool_set_min_threads(p, 3));
    st_pool_get_stats(p, &s);
    ASSERT_EQ(s.thread_count, 3);
    st_pool_shutdown(p);
    ASSERT_EQ(st_atomic_load(&d.exits, ST_RELAXED), 6);
    st_pool_destroy(p);
}

/* Lowering the maximum below the thread count lets surplus workers exit
 * when they are idle. */
TEST(pool_lower_max_retires_surplus)
{
    st_pool_stats_t s;
    st_pool_t *p;

    ASSERT_OK(st_pool_create(&p, 4, 8, NULL));
    ASSERT_OK(st_pool_set_min_threads(p, 1));
    ASSERT_OK(st_pool_set_max_threads(p, 2));
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.thread_count == 2),
                      3000);
    ASSERT_EQ(s.retired, 2);
    st_pool_shutdown(p);
    st_pool_destroy(p);
}

/* ------------------------------------------------------- domain token */

/* Rule 3: one worker at a time is attached, however many workers and
 * domain items there are. */
static ST_ATOMIC(int) g_attached_now;
static ST_ATOMIC(int) g_attached_max;

static int
count_attach(void *arg, void **slot)
{
    int n = st_atomic_fetch_add(&g_attached_now, 1, ST_RELAXED) + 1;
    int m = st_atomic_load(&g_attached_max, ST_RELAXED);

    (void)arg;
    *slot = &t_marker;
    while (n > m && !st_atomic_cas_weak(&g_attached_max, &m, n, ST_RELAXED,
                                        ST_RELAXED)) {
    }
    return 0;
}

static void
count_detach(void *arg, void **slot)
{
    (void)arg;
    (void)slot;
    st_atomic_fetch_sub(&g_attached_now, 1, ST_RELAXED);
}

TEST(pool_token_one_worker_attached)
{
    int n = ST_TEST_ITERS(20000);
    st_pool_hooks_t h;
    tagged_item *items;
    tracker tr;
    st_pool_t *p;
    int i;

    st_atomic_init(&g_attached_now, 0);
    st_atomic_init(&g_attached_max, 0);
    memset(&h, 0, sizeof(h));
    h.attach = count_attach;
    h.detach = count_detach;
    ASSERT_OK(st_pool_create(&p, 4, 4, &h));
    tracker_init(&tr, PRODUCERS * n);
    items = make_items(PRODUCERS, n, &tr, p);
    for (i = 0; i < PRODUCERS * n; i++) {
        items[i].work.flags = ST_WORK_DOMAIN;
    }
    run_producers(p, items, n);
    tracker_wait(&tr);
    st_pool_shutdown(p);
    ASSERT_EQ(st_atomic_load(&g_attached_max, ST_RELAXED), 1);
    ASSERT_EQ(st_atomic_load(&g_attached_now, ST_RELAXED), 0);
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_free(items);
}

/* A token holder stuck inside an item (a sleep in user code) loses the
 * token after token_stall_ns, and another worker runs the domain items
 * queued behind it: they finish long before the sleeper. */
typedef struct sleeper_item {
    st_work_t work;
    st_event_t *release;
    st_event_t *started;
} sleeper_item;

static void
sleeper_run(st_work_t *w)
{
    sleeper_item *s = st_container_of(w, sleeper_item, work);

    st_event_set(s->started);
    ASSERT_OK(st_event_wait(s->release, 20000000000u));
}

TEST(pool_token_revoked_from_stalled_holder)
{
    enum { N = 20 };
    st_pool_tuning_t t = tuning(0, UINT64_MAX);
    st_event_t release, started;
    sleeper_item sl;
    tagged_item *items;
    st_pool_hooks_t h;
    domain_state d;
    st_pool_stats_t s;
    tracker tr;
    st_pool_t *p;
    int i;

    t.token_stall_ns = 20 * MS_NS;
    domain_init(&d);
    h = make_hooks(&d, 0);
    ASSERT_OK(st_pool_create(&p, 2, 2, &h));
    d.pool = p;
    ASSERT_OK(st_pool_set_tuning(p, &t));
    st_event_init(&release);
    st_event_init(&started);
    memset(&sl, 0, sizeof(sl));
    sl.work.run = sleeper_run;
    sl.work.flags = ST_WORK_DOMAIN;
    sl.release = &release;
    sl.started = &started;
    ASSERT_OK(st_pool_submit(p, &sl.work));
    ASSERT_OK(st_event_wait(&started, 20000000000u));
    tracker_init(&tr, N);
    items = make_items(1, N, &tr, p);
    for (i = 0; i < N; i++) {
        items[i].work.run = domain_run;
        items[i].work.flags = ST_WORK_DOMAIN;
        ASSERT_OK(st_pool_submit(p, &items[i].work));
    }
    tracker_wait(&tr); /* the sleeper still holds its item */
    st_pool_get_stats(p, &s);
    ASSERT_GE(s.token_revocations, 1);
    st_event_set(&release);
    st_pool_shutdown(p);
    ASSERT_EQ(st_atomic_load(&d.attaches, ST_RELAXED),
              st_atomic_load(&d.detaches, ST_RELAXED));
    st_pool_destroy(p);
    st_event_destroy(&release);
    st_event_destroy(&started);
    tracker_destroy(&tr);
    st_free(items);
}

/* A domain item that blocks with enter_blocking gives the token up at
 * once: a second domain item, which the first waits for, runs (no stall
 * detection needed: the gate is off). */
typedef struct waiter_item {
    st_work_t work;
    st_pool_t *pool;
    st_event_t *ev;
    tracker *tr;
} waiter_item;

static void
waiter_run(st_work_t *w)
{
    waiter_item *it = st_container_of(w, waiter_item, work);

    ASSERT(t_attached);
    st_pool_enter_blocking(it->pool);
    ASSERT_OK(st_event_wait(it->ev, 20000000000u));
    st_pool_leave_blocking(it->pool);
    tracker_hit(it->tr);
}

static void
setter_domain_run(st_work_t *w)
{
    waiter_item *it = st_container_of(w, waiter_item, work);

    ASSERT(t_attached);
    st_event_set(it->ev);
    tracker_hit(it->tr);
}

TEST(pool_token_released_by_enter_blocking)
{
    st_pool_tuning_t t = tuning(0, UINT64_MAX);
    waiter_item a, b;
    st_pool_hooks_t h;
    domain_state d;
    st_event_t ev;
    tracker tr;
    st_pool_t *p;

    t.token_stall_ns = 60000 * MS_NS; /* never, within this test */
    domain_init(&d);
    h = make_hooks(&d, 0);
    ASSERT_OK(st_pool_create(&p, 2, 2, &h));
    d.pool = p;
    ASSERT_OK(st_pool_set_tuning(p, &t));
    st_event_init(&ev);
    tracker_init(&tr, 2);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.work.run = waiter_run;
    b.work.run = setter_domain_run;
    a.work.flags = b.work.flags = ST_WORK_DOMAIN;
    a.pool = b.pool = p;
    a.ev = b.ev = &ev;
    a.tr = b.tr = &tr;
    ASSERT_OK(st_pool_submit(p, &a.work));
    ASSERT_OK(st_pool_submit(p, &b.work));
    tracker_wait(&tr);
    st_pool_shutdown(p);
    st_pool_destroy(p);
    st_event_destroy(&ev);
    tracker_destroy(&tr);
}

/* ----------------------------------------------------------- dedicated */

/* LongRunning (reference 7.15): a dedicated thread, not a worker; a
 * domain item attaches with that thread's own slot. */
static ST_ATOMIC(int) g_dedicated_ok;

static void
dedicated_run(st_work_t *w)
{
    tagged_item *it = st_container_of(w, tagged_item, work);

    ASSERT_NULL(st_pool_current()); /* not a pool thread */
    if (it->work.flags & ST_WORK_DOMAIN) {
        ASSERT(t_attached);
    }
    st_atomic_fetch_add(&g_dedicated_ok, 1, ST_RELAXED); /* relaxed */
    tracker_hit(it->tr);
}

TEST(pool_dedicated_threads)
{
    enum { N = 3 };
    tagged_item *items;
    st_pool_hooks_t h;
    domain_state d;
    st_pool_stats_t s;
    tracker tr;
    st_pool_t *p;
    int i;

    st_atomic_init(&g_dedicated_ok, 0);
    domain_init(&d);
    h = make_hooks(&d, 0);
    ASSERT_OK(st_pool_create(&p, 1, 1, &h));
    d.pool = p;
    tracker_init(&tr, N);
    items = make_items(1, N, &tr, p);
    for (i = 0; i < N; i++) {
        items[i].work.run = dedicated_run;
        items[i].work.flags = i == 0 ? 0 : ST_WORK_DOMAIN;
        ASSERT_OK(st_pool_submit_dedicated(p, &items[i].work));
    }
    tracker_wait(&tr);
    ASSERT_EQ(st_atomic_load(&g_dedicated_ok, ST_RELAXED), N);
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.dedicated_count == 0),
                      3000);
    ASSERT_EQ(s.thread_count, 1); /* not pool threads */
    ASSERT_EQ(s.completed, 0);
    st_pool_shutdown(p);
    /* each dedicated thread and the worker said goodbye */
    ASSERT_EQ(st_atomic_load(&d.exits, ST_RELAXED), N + 1);
    ASSERT_RC(st_pool_submit_dedicated(p, &items[0].work), ST_ECLOSED);
    st_pool_destroy(p);
    tracker_destroy(&tr);
    st_free(items);
}

/* ------------------------------------------------------ timed shutdown */

/* P6: a shutdown with a deadline returns even if an item never finishes;
 * the stuck thread is left running, and a later call joins it. */
static blocker_item g_stuck;  /* outlives the test function */
static st_pool_t *g_abandoned; /* leaked on purpose, still reachable */

TEST(pool_shutdown_timed_abandons_stuck_item)
{
    blocker_item *bp = &g_stuck;
#define b (*bp)
    uint64_t t0;
    st_pool_t *p;

    ASSERT_OK(st_pool_create(&p, 2, 2, NULL));
    g_abandoned = p;
    blocker_init(&b);
    ASSERT_OK(st_pool_submit(p, &b.work));
    ASSERT_OK(st_event_wait(&b.started, 20000000000u));
    t0 = st_now_ns();
    ASSERT_RC(st_pool_shutdown_timed(p, 100 * MS_NS), ST_ETIMEDOUT);
    ASSERT_LT(st_now_ns() - t0, 2000 * MS_NS);
    ASSERT(st_pool_is_closing(p));
    /* a second call returns at once with the same answer */
    ASSERT_RC(st_pool_shutdown_timed(p, 100 * MS_NS), ST_ETIMEDOUT);
    st_event_set(&b.release); /* the item ends */
    ASSERT_EVENTUALLY(st_atomic_load(&b.runs, ST_RELAXED) == 1, 5000);
    /* a later call joins the thread that was stuck */
    ASSERT_OK(st_pool_shutdown_timed(p, 5000 * MS_NS));
    ASSERT_OK(st_pool_shutdown_timed(p, 0));
    st_pool_destroy(p);
    g_abandoned = NULL;
    blocker_destroy(&b);
#undef b
}

/* A timed shutdown with nothing stuck joins everything. */
TEST(pool_shutdown_timed_clean)
{
    st_pool_t *p;

    ASSERT_OK(st_pool_create(&p, 3, 3, NULL));
    ASSERT_OK(st_pool_shutdown_timed(p, 5000 * MS_NS));
    st_pool_destroy(p);
}

/* ------------------------------------- issue 9 item 1: no read after publish */

/* An item that frees itself when it runs, as the binding's work items do
 * (a Task.delay node, a ThreadPool item): once st_pool_submit or
 * st_pool_submit_local published it, a worker may run and free it at
 * once, so the submitter must never read it again.  Under ASan or TSan a
 * read after the push (the wake-up decision looked at item->flags) is a
 * heap-use-after-free or a race with free. */
typedef struct self_freeing {
    st_work_t work;
    tracker *tr;
    st_pool_t *pool;
    int children; /* items it submits from its worker (local) first */
} self_freeing;

static void self_freeing_run(st_work_t *w);

static void
self_freeing_submit(st_pool_t *p, tracker *tr, int local, int children,
                    uint32_t flags)
{
    self_freeing *it = st_malloc(sizeof(*it));

    ASSERT_NOT_NULL(it);
    it->work.next = NULL;
    it->work.run = self_freeing_run;
    it->work.flags = flags;
    it->tr = tr;
    it->pool = p;
    it->children = children;
    if (local) {
        ASSERT_OK(st_pool_submit_local(p, &it->work));
    }
    else {
        ASSERT_OK(st_pool_submit(p, &it->work));
    }
    /* `it` belongs to the pool now: not one more access */
}

static void
self_freeing_run(st_work_t *w)
{
    self_freeing *it = st_container_of(w, self_freeing, work);
    tracker *tr = it->tr;
    st_pool_t *p = it->pool;
    uint32_t flags = it->work.flags;
    int i, children = it->children;

    st_free(it);
    for (i = 0; i < children; i++) {
        /* alternate plain and domain items */
        self_freeing_submit(p, tr, 1, 0, flags ^ (uint32_t)(i & 1));
    }
    tracker_hit(tr);
}

typedef struct freeing_producer_arg {
    st_test_barrier_t *start;
    st_pool_t *pool;
    tracker *tr;
    int n;
    int id;
} freeing_producer_arg;

static void
freeing_producer(void *arg)
{
    freeing_producer_arg *pa = arg;
    int i;

    st_test_barrier_wait(pa->start);
    for (i = 0; i < pa->n; i++) {
        self_freeing_submit(pa->pool, pa->tr, 0, 2,
                            (uint32_t)((i + pa->id) & 1) ? ST_WORK_DOMAIN
                                                         : 0u);
    }
}

/* Issue 9 item 1: many threads submit items that a worker frees as soon
 * as it ran them, on the global queue (foreign threads) and on the
 * workers' own deques (items submitting from their worker), into a pool
 * with a domain (so the wake-up looks at domain-ness). */
TEST(pool_submitted_item_freed_at_once)
{
    enum { NPROD = 6 };
    int n = ST_TEST_ITERS(6000);
    st_thread_t th[NPROD];
    freeing_producer_arg pa[NPROD];
    st_test_barrier_t start;
    st_pool_hooks_t h;
    domain_state d;
    tracker tr;
    st_pool_t *p;
    int i;

    domain_init(&d);
    h = make_hooks(&d, 0);
    ASSERT_OK(st_pool_create(&p, 2, 4, &h));
    d.pool = p;
    tracker_init(&tr, NPROD * n * 3);
    st_test_barrier_init(&start, NPROD);
    for (i = 0; i < NPROD; i++) {
        pa[i].start = &start;
        pa[i].pool = p;
        pa[i].tr = &tr;
        pa[i].n = n;
        pa[i].id = i;
        st_test_thread_start(&th[i], freeing_producer, &pa[i]);
    }
    for (i = 0; i < NPROD; i++) {
        st_thread_join(&th[i]);
    }
    tracker_wait(&tr);
    st_pool_shutdown(p);
    ASSERT_EQ(st_atomic_load(&d.drops, ST_RELAXED), 0);
    st_pool_destroy(p);
    st_test_barrier_destroy(&start);
    tracker_destroy(&tr);
}

/* ------------------------------------------ issue 9 item 22: signal mask */

typedef struct mask_item {
    st_work_t work;
    sigset_t seen;
    st_event_t done;
} mask_item;

static void
mask_run(st_work_t *w)
{
    mask_item *m = st_container_of(w, mask_item, work);

    (void)pthread_sigmask(SIG_BLOCK, NULL, &m->seen);
    st_event_set(&m->done);
}

/* Issue 9 item 22: items run with the signal mask of the thread that
 * made the pool (not with every signal blocked), on workers and on
 * dedicated threads, whatever thread submits them. */
TEST(pool_items_run_with_creators_signal_mask)
{
    sigset_t mine, old;
    mask_item m[2];
    st_pool_t *p;
    int i;

    sigemptyset(&mine);
    sigaddset(&mine, SIGUSR2); /* blocked here, so it must be there too */
    ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &mine, &old), 0);
    ASSERT_OK(st_pool_create(&p, 1, 2, NULL));
    for (i = 0; i < 2; i++) {
        memset(&m[i], 0, sizeof(m[i]));
        m[i].work.run = mask_run;
        st_event_init(&m[i].done);
    }
    ASSERT_OK(st_pool_submit(p, &m[0].work));
    ASSERT_OK(st_pool_submit_dedicated(p, &m[1].work));
    for (i = 0; i < 2; i++) {
        ASSERT_OK(st_event_wait(&m[i].done, 20000000000u));
        ASSERT_EQ(sigismember(&m[i].seen, SIGUSR2), 1);
        ASSERT_EQ(sigismember(&m[i].seen, SIGINT), 0);
        ASSERT_EQ(sigismember(&m[i].seen, SIGTERM), 0);
        st_event_destroy(&m[i].done);
    }
    st_pool_shutdown(p);
    st_pool_destroy(p);
    ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}
