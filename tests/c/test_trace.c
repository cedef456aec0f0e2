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

/* ------------------------------------------------ the core's event sites */

#include "st_pool.h"      /* pool.item.*, pool.thread.* */
#include "st_semaphore.h" /* wait.* on a semaphore */
#include "st_task.h"      /* task.completed, wait.* on a task */
#include "st_timer.h"     /* timer.fired */

#define MS_NS 1000000ull

/* The index of the first event named `name` at or after `from` (and with
 * arg == want_arg unless want_arg is UINT64_MAX), or d->count. */
static size_t
find_event(const st_trace_dump_t *d, size_t from, int name,
           uint64_t want_arg)
{
    size_t i;

    for (i = from; i < d->count; i++) {
        if ((int)d->events[i].name == name
            && (want_arg == UINT64_MAX || d->events[i].arg == want_arg)) {
            return i;
        }
    }
    return d->count;
}

static const char *
thread_of(const st_trace_dump_t *d, size_t i)
{
    return d->threads[d->events[i].thread].name;
}

static int
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

typedef struct counted_item {
    st_work_t work;
    st_pool_t *pool;
    struct counted_item *child; /* queued locally from run, if set */
    ST_ATOMIC(int) *done;
} counted_item;

static void
counted_run(st_work_t *w)
{
    counted_item *c = (counted_item *)w; /* work is the first member */

    if (c->child != NULL) {
        ASSERT_OK(st_pool_submit_local(c->pool, &c->child->work));
    }
    /* relaxed: a counter polled by the test */
    st_atomic_fetch_add(c->done, 1, ST_RELAXED);
}

/* D2: pool.item.queued on the submitting thread, before pool.item.start
 * and pool.item.end on a worker, for the same item; the queue kinds. */
TEST(trace_d2_pool_item_events)
{
    enum { N = 8 };
    counted_item items[N], child, dedicated;
    ST_ATOMIC(int) done;
    st_trace_dump_t d;
    st_pool_t *p;
    size_t q, s, e;
    uint64_t me = st_thread_id();
    int i;

    st_atomic_init(&done, 0);
    memset(items, 0, sizeof(items));
    memset(&child, 0, sizeof(child));
    memset(&dedicated, 0, sizeof(dedicated));
    ASSERT_OK(st_pool_create(&p, 2, 2, NULL));
    for (i = 0; i < N; i++) {
        items[i].work.run = counted_run;
        items[i].pool = p;
        items[i].done = &done;
    }
    items[0].child = &child;
    child.work.run = counted_run;
    child.pool = p;
    child.done = &done;
    dedicated.work.run = counted_run;
    dedicated.pool = p;
    dedicated.done = &done;
    ASSERT_OK(st_trace_start(1024));
    for (i = 0; i < N; i++) {
        ASSERT_OK(st_pool_submit(p, &items[i].work));
    }
    ASSERT_OK(st_pool_submit_dedicated(p, &dedicated.work));
    ASSERT_EVENTUALLY(st_atomic_load(&done, ST_RELAXED) == N + 2, 5000);
    st_pool_shutdown(p); /* joins: every end is recorded */
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    ASSERT_EQ(d.dropped, 0);
    for (i = 0; i < N + 2; i++) {
        counted_item *c = i < N ? &items[i] : i == N ? &child : &dedicated;
        uint64_t id = (uint64_t)(uintptr_t)&c->work;
        q = find_event(&d, 0, ST_TRACE_POOL_ITEM_QUEUED, id);
        s = find_event(&d, 0, ST_TRACE_POOL_ITEM_START, id);
        e = find_event(&d, 0, ST_TRACE_POOL_ITEM_END, id);
        ASSERT_LT(q, s); /* queued, then started, then ended */
        ASSERT_LT(s, e);
        ASSERT_LT(e, d.count);
        ASSERT_EQ(d.events[s].thread, d.events[e].thread);
        if (i < N) {
            ASSERT_EQ(d.threads[d.events[q].thread].tid, me);
            ASSERT_EQ(d.events[q].arg2, ST_TRACE_QUEUE_GLOBAL);
            ASSERT(starts_with(thread_of(&d, s), "sharptask-worker-"));
        }
        else if (i == N) { /* queued by item 0, on its worker */
            ASSERT_EQ(d.events[q].arg2, ST_TRACE_QUEUE_LOCAL);
            ASSERT(starts_with(thread_of(&d, q), "sharptask-worker-"));
        }
        else {
            ASSERT_EQ(d.events[q].arg2, ST_TRACE_QUEUE_DEDICATED);
            ASSERT(strcmp(thread_of(&d, s), "sharptask-long-running") == 0);
        }
    }
    st_trace_dump_free(&d);
    st_pool_destroy(p);
}

typedef struct gated_item {
    st_work_t work;
    st_pool_t *pool;
    st_event_t *gate;    /* waited for (blocking: announced) */
    st_event_t *opens;   /* set when run, if set */
    int announce;        /* enter/leave_blocking around the wait */
    ST_ATOMIC(int) *done;
} gated_item;

static void
gated_run(st_work_t *w)
{
    gated_item *g = (gated_item *)w; /* work is the first member */

    if (g->opens != NULL) {
        st_event_set(g->opens);
    }
    if (g->gate != NULL) {
        if (g->announce) {
            st_pool_enter_blocking(g->pool);
        }
        ASSERT_OK(st_event_wait(g->gate, 20000 * MS_NS));
        if (g->announce) {
            st_pool_leave_blocking(g->pool);
        }
    }
    /* relaxed: a counter polled by the test */
    st_atomic_fetch_add(g->done, 1, ST_RELAXED);
}

static void
run_injection(int announce, int why)
{
    st_pool_tuning_t t;
    st_event_t gate;
    gated_item blocker, opener;
    ST_ATOMIC(int) done;
    st_trace_dump_t d;
    st_pool_stats_t s;
    st_pool_t *p;
    size_t i, r;

    st_atomic_init(&done, 0);
    st_event_init(&gate);
    ASSERT_OK(st_pool_create(&p, 1, 2, NULL));
    st_pool_tuning_default(&t);
    t.gate_period_ns = 50 * MS_NS;     /* starvation seen quickly */
    t.thread_timeout_ns = 100 * MS_NS; /* the extra thread retires */
    ASSERT_OK(st_pool_set_tuning(p, &t));
    memset(&blocker, 0, sizeof(blocker));
    memset(&opener, 0, sizeof(opener));
    blocker.work.run = gated_run;
    blocker.pool = p;
    blocker.gate = &gate;
    blocker.announce = announce;
    blocker.done = &done;
    opener.work.run = gated_run;
    opener.pool = p;
    opener.opens = &gate;
    opener.done = &done;
    ASSERT_OK(st_trace_start(1024));
    ASSERT_OK(st_pool_submit(p, &blocker.work));
    /* the one worker blocks in `blocker`: only an added thread runs the
     * opener (starvation injection, or blocking compensation) */
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.blocked_count == announce
                       && s.pending == 0), 5000);
    ASSERT_OK(st_pool_submit(p, &opener.work));
    ASSERT_EVENTUALLY(st_atomic_load(&done, ST_RELAXED) == 2, 5000);
    ASSERT_EVENTUALLY((st_pool_get_stats(p, &s), s.retired == 1), 5000);
    st_pool_shutdown(p);
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    i = find_event(&d, 0, ST_TRACE_POOL_THREAD_INJECTED, UINT64_MAX);
    ASSERT_LT(i, d.count);
    ASSERT_EQ(d.events[i].arg2, why);
    ASSERT_EQ(d.events[i].arg, 2); /* the thread count with it */
    if (why == ST_TRACE_WHY_STARVATION) {
        ASSERT(strcmp(thread_of(&d, i), "sharptask-gate") == 0);
    }
    /* before the opener starts on the new thread */
    ASSERT_LT(i, find_event(&d, 0, ST_TRACE_POOL_ITEM_START,
                            (uint64_t)(uintptr_t)&opener.work));
    ASSERT_EQ(find_event(&d, i + 1, ST_TRACE_POOL_THREAD_INJECTED,
                         UINT64_MAX), d.count); /* once */
    r = find_event(&d, 0, ST_TRACE_POOL_THREAD_RETIRED, UINT64_MAX);
    ASSERT_LT(r, d.count);
    ASSERT(starts_with(thread_of(&d, r), "sharptask-worker-"));
    ASSERT_EQ(d.threads[d.events[r].thread].exited, 1);
    st_trace_dump_free(&d);
    st_pool_destroy(p);
    st_event_destroy(&gate);
}

/* D2: pool.thread.injected (reason: starvation) on the gate thread, then
 * pool.thread.retired on the worker that retires. */
TEST(trace_d2_pool_thread_injected_starvation_and_retired)
{
    run_injection(0, ST_TRACE_WHY_STARVATION);
}

/* D2: pool.thread.injected (reason: blocking) for a worker that announced
 * a blocking wait. */
TEST(trace_d2_pool_thread_injected_blocking)
{
    run_injection(1, ST_TRACE_WHY_BLOCKING);
}

typedef struct fired_entry {
    st_timer_entry_t entry; /* first member */
    st_event_t fired;
} fired_entry;

static void
fired_fire(st_timer_entry_t *e)
{
    st_event_set(&((fired_entry *)e)->fired);
}

/* D2: timer.fired on the timer thread, with the entry's deadline. */
TEST(trace_d2_timer_fired)
{
    fired_entry f;
    st_timer_t *t;
    st_trace_dump_t d;
    uint64_t deadline;
    size_t i;

    memset(&f, 0, sizeof(f));
    f.entry.fire = fired_fire;
    st_event_init(&f.fired);
    ASSERT_OK(st_timer_create(&t));
    ASSERT_OK(st_trace_start(64));
    deadline = st_now_ns() + 2 * MS_NS;
    ASSERT_OK(st_timer_add(t, &f.entry, deadline));
    ASSERT_OK(st_event_wait(&f.fired, 5000 * MS_NS));
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    i = find_event(&d, 0, ST_TRACE_TIMER_FIRED, UINT64_MAX);
    ASSERT_LT(i, d.count);
    ASSERT(d.events[i].arg == deadline);
    ASSERT(d.events[i].ts_ns >= deadline);
    ASSERT(strcmp(thread_of(&d, i), "sharptask-timer") == 0);
    st_trace_dump_free(&d);
    st_timer_shutdown(t);
    st_timer_destroy(t);
    st_event_destroy(&f.fired);
}

typedef struct waiter_arg {
    st_task_t *task;
    st_event_t ready;
    uint64_t tid;
    int rc;
} waiter_arg;

static void
task_waiter_main(void *arg)
{
    waiter_arg *a = arg;

    a->tid = st_thread_id();
    st_event_set(&a->ready);
    a->rc = st_task_wait(a->task, 20000 * MS_NS);
}

/* D2: wait.block on the waiting thread, task.completed on the completing
 * one, wait.wake back on the waiter, in that (cause) order, each with the
 * task's trace id. */
TEST(trace_d2_task_completed_and_waits)
{
    st_task_t task, done;
    st_waiter_t w;
    waiter_arg a;
    st_thread_t th;
    st_trace_dump_t d;
    size_t b, c, k;

    st_task_init(&task, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    ASSERT_EQ(st_task_trace_id(&task), 0);
    st_task_set_trace_id(&task, 42);
    ASSERT_EQ(st_task_trace_id(&task), 42);
    a.task = &task;
    st_event_init(&a.ready);
    ASSERT_OK(st_trace_start(64));
    st_test_thread_start(&th, task_waiter_main, &a);
    ASSERT_OK(st_event_wait(&a.ready, 5000 * MS_NS));
    st_test_sleep_us(20000); /* let it block */
    ASSERT(st_task_try_reserve(&task));
    ASSERT_OK(st_task_finish(&task, ST_STATUS_FAULTED));
    st_thread_join(&th);
    ASSERT_OK(a.rc);
    /* a completed task: block and wake at once */
    st_task_init(&done, ST_STATUS_RAN_TO_COMPLETION, 0);
    st_task_set_trace_id(&done, 7);
    st_waiter_init(&w);
    ASSERT_RC(st_task_add_waiter(&done, &w), ST_ECLOSED);
    st_waiter_destroy(&w);
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    b = find_event(&d, 0, ST_TRACE_WAIT_BLOCK, UINT64_MAX);
    c = find_event(&d, 0, ST_TRACE_TASK_COMPLETED, UINT64_MAX);
    k = find_event(&d, 0, ST_TRACE_WAIT_WAKE, UINT64_MAX);
    ASSERT_LT(b, c);
    ASSERT_LT(c, k);
    ASSERT_LT(k, d.count);
    ASSERT_EQ(d.events[b].task_id, 42);
    ASSERT_EQ(d.events[b].arg2, ST_TRACE_ON_TASK);
    ASSERT_EQ(d.threads[d.events[b].thread].tid, a.tid);
    ASSERT_EQ(d.events[c].task_id, 42);
    ASSERT_EQ(d.events[c].arg2, ST_STATUS_FAULTED);
    ASSERT_EQ(d.threads[d.events[c].thread].tid, st_thread_id());
    ASSERT_EQ(d.events[k].task_id, 42);
    ASSERT_EQ(d.events[k].arg, 1); /* woken by the completion */
    ASSERT_EQ(d.threads[d.events[k].thread].tid, a.tid);
    b = find_event(&d, k + 1, ST_TRACE_WAIT_BLOCK, UINT64_MAX);
    k = find_event(&d, k + 1, ST_TRACE_WAIT_WAKE, UINT64_MAX);
    ASSERT_LT(b, k);
    ASSERT_LT(k, d.count);
    ASSERT_EQ(d.events[b].task_id, 7);
    ASSERT_EQ(d.events[k].task_id, 7);
    st_trace_dump_free(&d);
    st_event_destroy(&a.ready);
}

/* D2: a semaphore's blocking wait records wait.block and wait.wake (arg:
 * 0 when it timed out). */
TEST(trace_d2_semaphore_wait_block_and_wake)
{
    st_sem_t s;
    st_trace_dump_t d;
    size_t b, k;

    ASSERT_OK(st_sem_init(&s, 0, 1));
    ASSERT_OK(st_trace_start(64));
    ASSERT_RC(st_sem_wait(&s, 5 * MS_NS), ST_ETIMEDOUT);
    st_trace_stop();
    ASSERT_OK(st_trace_collect(&d));
    b = find_event(&d, 0, ST_TRACE_WAIT_BLOCK, UINT64_MAX);
    k = find_event(&d, 0, ST_TRACE_WAIT_WAKE, UINT64_MAX);
    ASSERT_LT(b, k);
    ASSERT_LT(k, d.count);
    ASSERT_EQ(d.events[b].arg2, ST_TRACE_ON_SEMAPHORE);
    ASSERT_EQ(d.events[k].arg, 0);
    ASSERT_GE(d.events[k].ts_ns - d.events[b].ts_ns, 4 * MS_NS);
    st_trace_dump_free(&d);
    st_sem_destroy(&s);
}
