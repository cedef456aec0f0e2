/* test_trace.c - tests of st_trace.h, the event recorder (SPEC D2, issue
 * 12): the stable names, off records nothing, one thread's events in
 * order with their fields, a full ring drops the oldest and counts them,
 * a thread that exited is still collected (with its name), sessions,
 * interned strings, the merge into time order, and a stress: many threads
 * recording at once while the flag toggles and a collector drains, each
 * event collected intact at most once and in order per thread, and, with
 * the flag left on, every event either collected or counted dropped. */
#include "st_trace.h"

#include <string.h> /* strcmp */

#include "test.h"

/* -------------------------------------------------------------- names */

TEST(trace_d2_names_are_stable)
{
    static const char *const want[] = {
        "task.created",        "task.completed",  "method.start",
        "method.suspend",      "method.resume",   "method.complete",
        "continuation.queued", "continuation.inline", "context.post",
        "pool.item.queued",    "pool.item.start", "pool.item.end",
        "pool.thread.injected", "pool.thread.retired", "timer.fired",
        "wait.block",          "wait.wake",       "deadlock.detected",
    };
    int i;

    ASSERT_EQ(sizeof(want) / sizeof(want[0]), ST_TRACE_COUNT - 1);
    for (i = 1; i < ST_TRACE_COUNT; i++) {
        ASSERT_NOT_NULL(st_trace_name(i));
        if (strcmp(st_trace_name(i), want[i - 1]) != 0) {
            st_test_fail(__FILE__, __LINE__, "name %d: %s, wanted %s", i,
                         st_trace_name(i), want[i - 1]);
        }
    }
    ASSERT_NULL(st_trace_name(ST_TRACE_NONE));
    ASSERT_NULL(st_trace_name(ST_TRACE_COUNT));
    ASSERT_NULL(st_trace_name(-1));
    ASSERT_EQ(ST_TRACE_POOL_ITEM_START, 11); /* ids are part of the ABI */
    ASSERT_EQ(ST_TRACE_DEADLOCK_DETECTED, 18);
}

/* ------------------------------------------------------- one thread */

TEST(trace_d2_off_records_nothing)
{
    st_trace_dump_t d;

    ASSERT(!st_trace_on());
    ST_TRACE(ST_TRACE_TIMER_FIRED, 1, 2, 3); /* never started */
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 0);
    ASSERT_EQ(d.nthreads, 0);
    ASSERT_EQ(d.dropped, 0);
    st_trace_dump_free(&d);

    ASSERT_OK(st_trace_start(16));
    ASSERT(st_trace_on());
    st_trace_stop();
    ASSERT(!st_trace_on());
    st_trace_stop(); /* idempotent */
    ST_TRACE(ST_TRACE_TIMER_FIRED, 1, 2, 3);
    st_trace_emit(ST_TRACE_TIMER_FIRED, 1, 2, 3); /* checks the flag too */
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 0);
    st_trace_dump_free(&d);
}

TEST(trace_d2_one_thread_in_order_with_fields)
{
    st_trace_dump_t d;
    uint64_t before, after;
    size_t i;

    st_thread_set_name("trace-test", 7);
    ASSERT_OK(st_trace_start(16));
    before = st_now_ns();
    for (i = 0; i < 5; i++) {
        ST_TRACE(ST_TRACE_POOL_ITEM_QUEUED + (int)(i % 3), 100 + i,
                 (uint64_t)1 << 40 | i, (uint32_t)(0xfffffff0u + i));
    }
    after = st_now_ns();
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 5);
    ASSERT_EQ(d.dropped, 0);
    ASSERT_EQ(d.nthreads, 1);
    ASSERT_EQ(d.threads[0].tid, st_thread_id());
    ASSERT(strcmp(d.threads[0].name, "trace-test-7") == 0);
    ASSERT_EQ(d.threads[0].named, 1);
    ASSERT_EQ(d.threads[0].exited, 0);
    for (i = 0; i < 5; i++) {
        ASSERT_EQ(d.events[i].name, ST_TRACE_POOL_ITEM_QUEUED + (int)(i % 3));
        ASSERT_EQ(d.events[i].task_id, 100 + i);
        ASSERT(d.events[i].arg == ((uint64_t)1 << 40 | i));
        ASSERT(d.events[i].arg2 == 0xfffffff0u + i);
        ASSERT_EQ(d.events[i].thread, 0);
        ASSERT(d.events[i].ts_ns >= before && d.events[i].ts_ns <= after);
        if (i > 0) {
            ASSERT(d.events[i].ts_ns >= d.events[i - 1].ts_ns);
        }
    }
    st_trace_dump_free(&d);
    ASSERT_NULL(d.events);
    /* drained: a second collect finds nothing new */
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 0);
    ASSERT_EQ(d.dropped, 0);
    st_trace_dump_free(&d);
}

TEST(trace_d2_full_ring_drops_oldest_and_counts)
{
    st_trace_dump_t d;
    size_t i;

    ASSERT_OK(st_trace_start(8));
    for (i = 0; i < 20; i++) {
        st_trace_emit(ST_TRACE_WAIT_BLOCK, 0, i, 0);
    }
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 8);
    ASSERT_EQ(d.dropped, 12);
    for (i = 0; i < 8; i++) {
        ASSERT_EQ(d.events[i].arg, 12 + i); /* the newest 8 */
    }
    st_trace_dump_free(&d);
    /* a partial refill after a drain: nothing dropped */
    for (i = 0; i < 5; i++) {
        st_trace_emit(ST_TRACE_WAIT_WAKE, 0, 100 + i, 0);
    }
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 5);
    ASSERT_EQ(d.dropped, 0);
    ASSERT_EQ(d.events[0].arg, 100);
    st_trace_dump_free(&d);
    /* exactly full: nothing dropped either */
    for (i = 0; i < 8; i++) {
        st_trace_emit(ST_TRACE_WAIT_WAKE, 0, 200 + i, 0);
    }
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 8);
    ASSERT_EQ(d.dropped, 0);
    ASSERT_EQ(d.events[0].arg, 200);
    st_trace_dump_free(&d);
    st_trace_stop();
}

/* ------------------------------------------------------ other threads */

typedef struct exiter {
    int index;
    int events;
    uint64_t tid;
} exiter;

static void
exiter_main(void *arg)
{
    exiter *e = arg;
    int i;

    st_thread_set_name("trace-exiter", e->index);
    e->tid = st_thread_id();
    for (i = 0; i < e->events; i++) {
        st_trace_emit(ST_TRACE_POOL_ITEM_START, 0, (uint64_t)e->index, 0);
    }
}

TEST(trace_d2_exited_threads_are_collected)
{
    exiter e[3];
    st_thread_t t[3];
    st_trace_dump_t d;
    size_t i, j, seen[3] = {0, 0, 0};
    char want[32];

    ASSERT_OK(st_trace_start(64));
    for (i = 0; i < 3; i++) {
        e[i].index = (int)i;
        e[i].events = 5 + (int)i;
        st_test_thread_start(&t[i], exiter_main, &e[i]);
    }
    for (i = 0; i < 3; i++) {
        st_thread_join(&t[i]); /* exited before the collect */
    }
    st_trace_emit(ST_TRACE_TIMER_FIRED, 0, 99, 0); /* this thread too */
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 5 + 6 + 7 + 1);
    ASSERT_EQ(d.nthreads, 4);
    ASSERT_EQ(d.dropped, 0);
    for (i = 0; i < d.count; i++) {
        const st_trace_thread_t *th = &d.threads[d.events[i].thread];
        if (d.events[i].name == ST_TRACE_TIMER_FIRED) {
            ASSERT_EQ(th->tid, st_thread_id());
            ASSERT_EQ(th->exited, 0);
            continue;
        }
        j = (size_t)d.events[i].arg;
        ASSERT_LT(j, 3);
        ASSERT_EQ(th->tid, e[j].tid);
        ASSERT_EQ(th->exited, 1);
        snprintf(want, sizeof(want), "trace-exiter-%d", (int)j);
        ASSERT(strcmp(th->name, want) == 0);
        seen[j]++;
        if (i > 0) {
            ASSERT(d.events[i].ts_ns >= d.events[i - 1].ts_ns);
        }
    }
    for (j = 0; j < 3; j++) {
        ASSERT_EQ(seen[j], 5 + j);
    }
    st_trace_dump_free(&d);
    /* their buffers were freed with that collect: nothing is left */
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 0);
    ASSERT_EQ(d.nthreads, 1); /* this thread's buffer lives on */
    st_trace_dump_free(&d);
}

TEST(trace_d2_sessions_start_stop)
{
    st_trace_dump_t d;

    ASSERT_RC(st_trace_start(0), ST_EINVAL);
    ASSERT_RC(st_trace_start(ST_TRACE_MAX_CAPACITY + 1), ST_EINVAL);
    ASSERT(!st_trace_on());
    ASSERT_OK(st_trace_start(4));
    ASSERT_RC(st_trace_start(4), ST_EBUSY);
    st_trace_emit(ST_TRACE_TASK_CREATED, 1, 0, 0);
    st_trace_stop();
    /* a new session discards what the previous one left uncollected */
    ASSERT_OK(st_trace_start(4));
    st_trace_emit(ST_TRACE_TASK_CREATED, 2, 0, 0);
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.count, 1);
    ASSERT_EQ(d.events[0].task_id, 2);
    ASSERT_EQ(d.nthreads, 1);
    st_trace_dump_free(&d);
}

TEST(trace_d2_interned_strings)
{
    uint32_t a, b, c;
    char name[32];
    int i;

    ASSERT_EQ(st_trace_intern(NULL), 0);
    ASSERT_NULL(st_trace_string(0));
    ASSERT_NULL(st_trace_string(ST_TRACE_MAX_STRINGS + 1));
    a = st_trace_intern("SingleThreadSynchronizationContext");
    b = st_trace_intern("Task");
    c = st_trace_intern("SingleThreadSynchronizationContext");
    ASSERT_NE(a, 0);
    ASSERT_NE(b, 0);
    ASSERT_NE(a, b);
    ASSERT_EQ(a, c);
    ASSERT(strcmp(st_trace_string(a),
                  "SingleThreadSynchronizationContext") == 0);
    ASSERT(strcmp(st_trace_string(b), "Task") == 0);
    /* the table is bounded: past it, 0 */
    for (i = 0; i < ST_TRACE_MAX_STRINGS + 10; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        c = st_trace_intern(name);
        if (c != 0) {
            ASSERT(strcmp(st_trace_string(c), name) == 0);
        }
    }
    ASSERT_EQ(st_trace_intern("one more"), 0);
    ASSERT_EQ(st_trace_intern("Task"), b); /* still found */
}

/* ------------------------------------------------------------ stress */

#define NPROD 6

typedef struct stress {
    st_test_barrier_t start;
    ST_ATOMIC(int) stop;
    ST_ATOMIC(int) producers_left;
    int toggle;       /* phase A: a thread flips the flag */
    uint64_t per_producer;
    uint64_t tids[NPROD];
    /* collector's view, per producer */
    uint64_t last_seq[NPROD]; /* 1 + the last seq collected, 0: none */
    uint64_t collected[NPROD];
    uint64_t dropped;
    size_t max_threads_seen;
} stress;

typedef struct prod_arg {
    stress *s;
    int index;
} prod_arg;

#define MAGIC 0x5bd1e9955bd1e995u

static void
producer_main(void *arg)
{
    prod_arg *a = arg;
    stress *s = a->s;
    uint64_t seq;

    s->tids[a->index] = st_thread_id();
    st_test_barrier_wait(&s->start);
    for (seq = 0; seq < s->per_producer; seq++) {
        /* (producer, seq) in arg, checks in task id and arg2: a torn
         * event would not match */
        ST_TRACE(ST_TRACE_POOL_ITEM_QUEUED, seq ^ MAGIC,
                 ((uint64_t)a->index << 40) | seq,
                 (uint32_t)(seq * 2654435761u) ^ (uint32_t)a->index);
        if ((seq & 127) == 127) {
            st_test_sleep_us(20); /* let the toggler and collector in */
        }
    }
    /* relaxed: a counter; the joins order the rest */
    st_atomic_fetch_sub(&s->producers_left, 1, ST_RELAXED);
}

static void
toggler_main(void *arg)
{
    stress *s = arg;
    st_test_rng_t rng;
    int rc;

    st_test_rng_init(&rng, 12);
    st_test_barrier_wait(&s->start);
    /* relaxed: a flag polled in a loop */
    while (st_atomic_load(&s->producers_left, ST_RELAXED) > 0) {
        st_trace_stop();
        st_test_sleep_us(st_test_rng_below(&rng, 200));
        rc = st_trace_start(256);
        ASSERT(rc == 0);
        st_test_sleep_us(st_test_rng_below(&rng, 500));
    }
}

/* Checks one dump against the producers' invariants. */
static void
check_dump(stress *s, const st_trace_dump_t *d)
{
    size_t i;
    uint64_t p, seq;

    s->dropped += d->dropped;
    if (d->nthreads > s->max_threads_seen) {
        s->max_threads_seen = d->nthreads;
    }
    for (i = 0; i < d->count; i++) {
        const st_trace_event_t *e = &d->events[i];
        ASSERT_EQ(e->name, ST_TRACE_POOL_ITEM_QUEUED);
        p = e->arg >> 40;
        seq = e->arg & (((uint64_t)1 << 40) - 1);
        ASSERT_LT(p, NPROD);
        ASSERT(e->task_id == (seq ^ MAGIC));
        ASSERT(e->arg2 == ((uint32_t)(seq * 2654435761u) ^ (uint32_t)p));
        ASSERT_LT(e->thread, d->nthreads);
        ASSERT(d->threads[e->thread].tid == s->tids[p]);
        /* at most once, in order per producer, across every collect */
        ASSERT(seq + 1 > s->last_seq[p]);
        s->last_seq[p] = seq + 1;
        s->collected[p]++;
        if (i > 0) {
            ASSERT(e->ts_ns >= d->events[i - 1].ts_ns); /* time order */
        }
    }
}

static void
run_stress(stress *s)
{
    prod_arg args[NPROD];
    st_thread_t t[NPROD + 1];
    st_trace_dump_t d;
    int i, nthreads = NPROD + (s->toggle ? 1 : 0);

    st_test_barrier_init(&s->start, nthreads + 1);
    st_atomic_init(&s->producers_left, NPROD);
    for (i = 0; i < NPROD; i++) {
        args[i].s = s;
        args[i].index = i;
        st_test_thread_start(&t[i], producer_main, &args[i]);
    }
    if (s->toggle) {
        st_test_thread_start(&t[NPROD], toggler_main, s);
    }
    st_test_barrier_wait(&s->start);
    /* this thread is the collector: drain while they record */
    while (st_atomic_load(&s->producers_left, ST_RELAXED) > 0) {
        ASSERT_OK(st_trace_collect(&d));
        check_dump(s, &d);
        st_trace_dump_free(&d);
        st_test_sleep_us(100);
    }
    for (i = 0; i < nthreads; i++) {
        st_thread_join(&t[i]);
    }
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    check_dump(s, &d);
    st_trace_dump_free(&d);
    st_test_barrier_destroy(&s->start);
}

TEST(trace_d2_stress_record_toggle_collect)
{
    static stress s;
    uint64_t total = 0;
    int i;

    memset(&s, 0, sizeof(s));
    s.per_producer = ST_TEST_ITERS(200000);
    s.toggle = 1;
    ASSERT_OK(st_trace_start(256));
    run_stress(&s);
    for (i = 0; i < NPROD; i++) {
        ASSERT_LE(s.collected[i], s.per_producer);
        total += s.collected[i];
    }
    ASSERT_GT(total, 0); /* sessions were on while they recorded */
}

TEST(trace_d2_stress_every_event_collected_or_dropped)
{
    static stress s;
    uint64_t total = 0;
    int i;

    memset(&s, 0, sizeof(s));
    s.per_producer = ST_TEST_ITERS(200000);
    s.toggle = 0;
    ASSERT_OK(st_trace_start(1024)); /* small: the collector falls behind */
    run_stress(&s);
    for (i = 0; i < NPROD; i++) {
        total += s.collected[i];
        /* the newest events of a producer are never lost */
        ASSERT_EQ(s.last_seq[i], s.per_producer);
    }
    ASSERT_EQ(total + s.dropped, NPROD * s.per_producer);
    ASSERT_LE(s.max_threads_seen, NPROD); /* the collector records none */
}
