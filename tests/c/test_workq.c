/* test_workq.c - tests of st_workq.h, a single-threaded context's message
 * queue: FIFO order, close, and st_workq_visit, which the binding's garbage
 * collector traversal uses to see what a context's queue holds (issue 9,
 * H3: a dropped context with queued work leaked it) - in order, stopping
 * early, and consistent while other threads push and the consumer pops. */
#include <stddef.h> /* NULL */

#include "st_atomic.h"
#include "st_workq.h"
#include "test.h"

#define NW 8

static void
noop_run(st_work_t *w)
{
    (void)w;
}

typedef struct {
    st_work_t *seen[NW];
    int n;
    int stop_at; /* return nonzero from the call with this index */
} visit_rec_t;

static int
record_visit(st_work_t *w, void *arg)
{
    visit_rec_t *r = arg;
    ASSERT_LT(r->n, NW); /* never more items than queued */
    r->seen[r->n++] = w;
    return r->n - 1 == r->stop_at ? 7 : 0;
}

TEST(workq_fifo_close_and_count)
{
    st_workq_t q;
    st_work_t w[NW];
    int i;

    st_workq_init(&q);
    ASSERT_NULL(st_workq_try_pop(&q));
    ASSERT_NULL(st_workq_pop_wait(&q, 1000000)); /* 1 ms, empty */
    for (i = 0; i < NW; i++) {
        w[i].run = noop_run;
        ASSERT_OK(st_workq_push(&q, &w[i]));
    }
    ASSERT_EQ(st_workq_count(&q), NW);
    for (i = 0; i < NW / 2; i++) {
        ASSERT(st_workq_try_pop(&q) == &w[i]);
    }
    st_workq_close(&q);
    ASSERT_RC(st_workq_push(&q, &w[0]), ST_ECLOSED);
    for (i = NW / 2; i < NW; i++) { /* closed: what is queued still pops */
        ASSERT(st_workq_pop_wait(&q, 1000000) == &w[i]);
    }
    ASSERT_NULL(st_workq_pop_wait(&q, UINT64_MAX)); /* closed and empty */
    ASSERT_EQ(st_workq_count(&q), 0);
    st_workq_destroy(&q);
}

TEST(workq_visit_issue9_in_order_and_stops_early)
{
    st_workq_t q;
    st_work_t w[NW];
    visit_rec_t r;
    int i;

    st_workq_init(&q);
    r.n = 0;
    r.stop_at = -1;
    ASSERT_EQ(st_workq_visit(&q, record_visit, &r), 0);
    ASSERT_EQ(r.n, 0); /* empty: no call */
    for (i = 0; i < NW; i++) {
        w[i].run = noop_run;
        ASSERT_OK(st_workq_push(&q, &w[i]));
    }
    ASSERT(st_workq_try_pop(&q) == &w[0]);
    ASSERT_EQ(st_workq_visit(&q, record_visit, &r), 0);
    ASSERT_EQ(r.n, NW - 1); /* each queued item once, first to last */
    for (i = 1; i < NW; i++) {
        ASSERT(r.seen[i - 1] == &w[i]);
    }
    r.n = 0;
    r.stop_at = 2;
    ASSERT_EQ(st_workq_visit(&q, record_visit, &r), 7);
    ASSERT_EQ(r.n, 3); /* stopped at the call that returned nonzero */
    ASSERT_EQ(st_workq_count(&q), NW - 1); /* visiting took nothing */
    while (st_workq_try_pop(&q) != NULL) {
    }
    st_workq_destroy(&q);
}

/* Stress: producers push items that carry a "live" flag, the consumer pops
 * them and clears the flag only after popping; a visitor walks the queue
 * meanwhile and must only ever see live items, each at most once per walk
 * (a walk that raced a pop or a push would see a freed or half-linked one:
 * TSan and ASan report the race, the flag check the logic). */
#define WQ_PRODUCERS 3
#define WQ_PER_PRODUCER 4000

typedef struct {
    st_work_t work;
    ST_ATOMIC(int) live; /* release by the producer before its push; cleared by the consumer after its pop */
    int visits; /* guarded by the queue's lock (only the visitor writes) */
} wq_item_t;

typedef struct {
    st_workq_t q;
    wq_item_t *items;
    int next_item[WQ_PRODUCERS];
    ST_ATOMIC(int) producers_done;
    st_test_barrier_t start;
} wq_stress_t;

typedef struct {
    wq_stress_t *s;
    int index;
} wq_producer_arg_t;

static void
wq_producer(void *p)
{
    wq_producer_arg_t *a = p;
    wq_stress_t *s = a->s;
    int i, n = ST_TEST_ITERS(WQ_PER_PRODUCER);
    st_test_barrier_wait(&s->start);
    for (i = 0; i < n; i++) {
        wq_item_t *it = &s->items[a->index * WQ_PER_PRODUCER + i];
        it->work.run = noop_run;
        st_atomic_store(&it->live, 1, ST_RELAXED); /* published by the push's lock */
        ASSERT_OK(st_workq_push(&s->q, &it->work));
    }
    st_atomic_fetch_add(&s->producers_done, 1, ST_RELEASE); /* pairs with the visitor's acquire */
}

static int
wq_check_visit(st_work_t *w, void *arg)
{
    wq_item_t *it = (wq_item_t *)w; /* work is the first member */
    int *count = arg;
    ASSERT_EQ(st_atomic_load(&it->live, ST_RELAXED), 1); /* the queue lock orders it */
    it->visits++;
    (*count)++;
    return 0;
}

static void
wq_visitor(void *p)
{
    wq_stress_t *s = p;
    st_test_barrier_wait(&s->start);
    while (st_atomic_load(&s->producers_done, ST_ACQUIRE) < WQ_PRODUCERS ||
           st_workq_count(&s->q) > 0) {
        int count = 0;
        ASSERT_EQ(st_workq_visit(&s->q, wq_check_visit, &count), 0);
        ASSERT_LE(count, WQ_PRODUCERS * WQ_PER_PRODUCER);
    }
}

TEST(workq_visit_issue9_stress_with_pushers_and_consumer)
{
    static wq_item_t items[WQ_PRODUCERS * WQ_PER_PRODUCER];
    wq_stress_t s;
    wq_producer_arg_t args[WQ_PRODUCERS];
    st_thread_t producers[WQ_PRODUCERS], visitor;
    int i, popped = 0, total = WQ_PRODUCERS * ST_TEST_ITERS(WQ_PER_PRODUCER);

    st_workq_init(&s.q);
    s.items = items;
    st_atomic_init(&s.producers_done, 0);
    st_test_barrier_init(&s.start, WQ_PRODUCERS + 2);
    for (i = 0; i < WQ_PRODUCERS; i++) {
        args[i].s = &s;
        args[i].index = i;
        ASSERT_OK(st_thread_create(&producers[i], wq_producer, &args[i]));
    }
    ASSERT_OK(st_thread_create(&visitor, wq_visitor, &s));
    st_test_barrier_wait(&s.start);
    while (popped < total) { /* this thread is the one consumer */
        st_work_t *w = st_workq_pop_wait(&s.q, 1000000000u);
        ASSERT_NOT_NULL(w); /* a second without an item: lost */
        st_atomic_store(&((wq_item_t *)w)->live, 0, ST_RELAXED); /* after the pop: no walk sees it now */
        popped++;
    }
    for (i = 0; i < WQ_PRODUCERS; i++) {
        st_thread_join(&producers[i]);
    }
    st_thread_join(&visitor);
    ASSERT_NULL(st_workq_try_pop(&s.q));
    st_test_barrier_destroy(&s.start);
    st_workq_destroy(&s.q);
}
