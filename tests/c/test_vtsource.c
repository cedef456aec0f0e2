/* test_vtsource.c - tests of st_vtsource.h (ManualResetValueTaskSourceCore):
 * versions and token checks, set twice, get_result before completion, one
 * continuation per version (registered before completion: run by the
 * completer, inline unless run_async; registered after: run by the
 * registration, always async), statuses, reset, version wrap-around, and
 * races of on_completed against completion from two and from five threads
 * in which the continuation runs exactly once and sees the result.  Rules:
 * SPEC V4, reference 3.2-3.8 (MR AccessWrongVersion_Fails, SetTwice_Fails,
 * GetResult_BeforeCompleted_Fails, OnCompleted_UsedTwiceBeforeCompletion,
 * OnCompleted_ContinuationAlwaysInvokedAsynchronously,
 * SetResult_RunContinuationsAsynchronously_ContinuationInvokedAccordingly),
 * STYLE point 20. */
#include <string.h> /* memset */

#include "st_alloc.h" /* st_calloc for the race state */
#include "st_atomic.h"
#include "st_list.h" /* st_container_of */
#include "st_vtsource.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

/* A source with the result an embedder would keep beside it, and one
 * continuation node that records how and where it ran. */
typedef struct rec_source {
    st_vtsource_t src;
    int result;            /* the embedder's result, written by the winner */
    st_vts_cont_t node;
    ST_ATOMIC(int) calls;  /* times node.fn ran */
    int how;               /* of the last call */
    uint64_t thread;       /* st_thread_id() of the last call */
    int seen_status;       /* get_result's status inside the call */
    int seen_result;       /* result read inside the call */
} rec_source;

static void
rec_fn(st_vts_cont_t *c, int how)
{
    rec_source *r = st_container_of(c, rec_source, node);
    int status = -1;
    /* the continuation reads the outcome through the token, as a resumed
     * awaiter does */
    ASSERT_OK(st_vtsource_get_result(&r->src, st_vtsource_version(&r->src),
                                     &status));
    r->seen_status = status;
    r->seen_result = r->result;
    r->how = how;
    r->thread = st_thread_id();
    /* relaxed: a count read after the joins (or on this thread) */
    st_atomic_fetch_add(&r->calls, 1, ST_RELAXED);
}

static void
rec_init(rec_source *r)
{
    memset(r, 0, sizeof(*r));
    st_vtsource_init(&r->src);
    r->node.fn = rec_fn;
    st_atomic_init(&r->calls, 0);
    r->how = -1;
    r->seen_status = -1;
    r->seen_result = -1;
}

static int
rec_calls(rec_source *r)
{
    /* relaxed: read on the thread that caused the calls, or after joins */
    return st_atomic_load(&r->calls, ST_RELAXED);
}

/* The producer's side: reserve, store, publish. */
static void
produce(rec_source *r, int value, int status)
{
    ASSERT(st_vtsource_try_reserve(&r->src));
    r->result = value;
    ASSERT_OK(st_vtsource_complete(&r->src, status));
}

/* ---------------------------------------------------------- versions */

TEST(vtsource_version_and_tokens)
{
    rec_source r;
    int status = -1;

    rec_init(&r);
    ASSERT_EQ(st_vtsource_version(&r.src), 0);
    ASSERT_OK(st_vtsource_get_status(&r.src, 0, &status));
    ASSERT_EQ(status, ST_VTS_PENDING);
    /* two resets from new: version 2 (reference 3.2) */
    ASSERT_EQ(st_vtsource_reset(&r.src), 1);
    ASSERT_EQ(st_vtsource_reset(&r.src), 2);
    ASSERT_EQ(st_vtsource_version(&r.src), 2);

    /* AccessWrongVersion_Fails: after one reset, tokens 0 and 2 fail for
     * all three calls, and nothing is registered */
    rec_init(&r);
    st_vtsource_reset(&r.src);
    ASSERT_RC(st_vtsource_get_status(&r.src, 0, &status), ST_EINVAL);
    ASSERT_RC(st_vtsource_get_status(&r.src, 2, &status), ST_EINVAL);
    ASSERT_RC(st_vtsource_get_result(&r.src, 0, &status), ST_EINVAL);
    ASSERT_RC(st_vtsource_get_result(&r.src, 2, &status), ST_EINVAL);
    ASSERT_RC(st_vtsource_on_completed(&r.src, 0, &r.node), ST_EINVAL);
    ASSERT_RC(st_vtsource_on_completed(&r.src, 2, &r.node), ST_EINVAL);
    ASSERT_RC(st_vtsource_can_register(&r.src, 2), ST_EINVAL);
    produce(&r, 7, ST_VTS_SUCCEEDED);
    ASSERT_EQ(rec_calls(&r), 0); /* the refused node was never stored */
    ASSERT_OK(st_vtsource_get_result(&r.src, 1, &status));
    ASSERT_EQ(status, ST_VTS_SUCCEEDED);
    /* a wrong token still fails once completed */
    ASSERT_RC(st_vtsource_get_result(&r.src, 0, &status), ST_EINVAL);
}

TEST(vtsource_version_wraps)
{
    rec_source r;
    int status = -1;

    rec_init(&r);
    /* relaxed: a test poking the field, single-threaded */
    st_atomic_store(&r.src.version, UINT32_MAX, ST_RELAXED);
    ASSERT_OK(st_vtsource_get_status(&r.src, UINT32_MAX, &status));
    ASSERT_EQ(st_vtsource_reset(&r.src), 0);
    ASSERT_RC(st_vtsource_get_status(&r.src, UINT32_MAX, &status),
              ST_EINVAL);
    ASSERT_OK(st_vtsource_get_status(&r.src, 0, &status));
}

/* ---------------------------------------------------------- completion */

TEST(vtsource_set_twice_and_get_result_early)
{
    rec_source r;
    int status = -1;

    rec_init(&r);
    /* GetResult_BeforeCompleted_Fails */
    ASSERT_RC(st_vtsource_get_result(&r.src, 0, &status), ST_EBUSY);
    /* SetTwice_Fails: one winner; the loser does not touch the outcome */
    produce(&r, 42, ST_VTS_SUCCEEDED);
    ASSERT(!st_vtsource_try_reserve(&r.src));
    ASSERT_OK(st_vtsource_get_result(&r.src, 0, &status));
    ASSERT_EQ(status, ST_VTS_SUCCEEDED);
    ASSERT_EQ(r.result, 42);
    /* repeatable until reset (ReuseInstanceWithResets_Success) */
    ASSERT_OK(st_vtsource_get_result(&r.src, 0, &status));
    ASSERT_EQ(status, ST_VTS_SUCCEEDED);

    /* after a reset the source can be completed again, once */
    st_vtsource_reset(&r.src);
    ASSERT_RC(st_vtsource_get_result(&r.src, 1, &status), ST_EBUSY);
    produce(&r, 43, ST_VTS_FAULTED);
    ASSERT(!st_vtsource_try_reserve(&r.src));
    ASSERT_OK(st_vtsource_get_status(&r.src, 1, &status));
    ASSERT_EQ(status, ST_VTS_FAULTED);
}

TEST(vtsource_statuses)
{
    static const int statuses[] = {ST_VTS_SUCCEEDED, ST_VTS_FAULTED,
                                   ST_VTS_CANCELED};
    rec_source r;
    uint32_t v;
    int i, status;

    rec_init(&r);
    for (i = 0; i < 3; i++) {
        v = st_vtsource_version(&r.src);
        ASSERT_OK(st_vtsource_get_status(&r.src, v, &status));
        ASSERT_EQ(status, ST_VTS_PENDING);
        produce(&r, i, statuses[i]);
        ASSERT_OK(st_vtsource_get_status(&r.src, v, &status));
        ASSERT_EQ(status, statuses[i]);
        ASSERT_OK(st_vtsource_get_result(&r.src, v, &status));
        ASSERT_EQ(status, statuses[i]);
        st_vtsource_reset(&r.src);
    }
}

/* ------------------------------------------------------- continuations */

TEST(vtsource_registered_first_runs_inline)
{
    rec_source r;

    /* SetResult_RunContinuationsAsynchronously_...: false -> inline */
    rec_init(&r);
    ASSERT_OK(st_vtsource_can_register(&r.src, 0));
    ASSERT_OK(st_vtsource_on_completed(&r.src, 0, &r.node));
    ASSERT_EQ(rec_calls(&r), 0);
    produce(&r, 5, ST_VTS_SUCCEEDED);
    ASSERT_EQ(rec_calls(&r), 1);
    ASSERT_EQ(r.how, ST_VTS_RUN_INLINE);
    ASSERT_EQ(r.thread, st_thread_id());
    ASSERT_EQ(r.seen_status, ST_VTS_SUCCEEDED);
    ASSERT_EQ(r.seen_result, 5);

    /* true -> the completer asks for an asynchronous run */
    rec_init(&r);
    st_vtsource_set_run_async(&r.src, 1);
    ASSERT_EQ(st_vtsource_run_async(&r.src), 1);
    ASSERT_OK(st_vtsource_on_completed(&r.src, 0, &r.node));
    produce(&r, 6, ST_VTS_CANCELED);
    ASSERT_EQ(rec_calls(&r), 1);
    ASSERT_EQ(r.how, ST_VTS_RUN_ASYNC);
    ASSERT_EQ(r.seen_status, ST_VTS_CANCELED);
    /* run_async survives a reset (a property of the source) */
    st_vtsource_reset(&r.src);
    ASSERT_EQ(st_vtsource_run_async(&r.src), 1);
}

TEST(vtsource_late_registration_runs_async_once)
{
    rec_source r;
    int run_async;

    /* OnCompleted_ContinuationAlwaysInvokedAsynchronously, for both
     * values of run_async */
    for (run_async = 0; run_async <= 1; run_async++) {
        rec_init(&r);
        st_vtsource_set_run_async(&r.src, run_async);
        produce(&r, 9, ST_VTS_SUCCEEDED);
        ASSERT_OK(st_vtsource_can_register(&r.src, 0));
        ASSERT_OK(st_vtsource_on_completed(&r.src, 0, &r.node));
        ASSERT_EQ(rec_calls(&r), 1);
        ASSERT_EQ(r.how, ST_VTS_RUN_ASYNC);
        ASSERT_EQ(r.seen_result, 9);
        /* the sentinel was taken: a second registration is refused and
         * nothing runs twice */
        ASSERT_RC(st_vtsource_can_register(&r.src, 0), ST_EBUSY);
        ASSERT_RC(st_vtsource_on_completed(&r.src, 0, &r.node), ST_EBUSY);
        ASSERT_EQ(rec_calls(&r), 1);
    }
}

TEST(vtsource_second_registration_refused)
{
    rec_source a, b;

    /* OnCompleted_UsedTwiceBeforeCompletion_Throws */
    rec_init(&a);
    rec_init(&b);
    ASSERT_OK(st_vtsource_on_completed(&a.src, 0, &a.node));
    ASSERT_RC(st_vtsource_can_register(&a.src, 0), ST_EBUSY);
    ASSERT_RC(st_vtsource_on_completed(&a.src, 0, &b.node), ST_EBUSY);
    produce(&a, 1, ST_VTS_SUCCEEDED);
    ASSERT_EQ(rec_calls(&a), 1);
    ASSERT_EQ(rec_calls(&b), 0);
    /* after it ran, still refused for this version */
    ASSERT_RC(st_vtsource_on_completed(&a.src, 0, &b.node), ST_EBUSY);
    ASSERT_EQ(rec_calls(&b), 0);
    /* the next version takes one again */
    st_vtsource_reset(&a.src);
    ASSERT_OK(st_vtsource_on_completed(&a.src, 1, &a.node));
    produce(&a, 2, ST_VTS_SUCCEEDED);
    ASSERT_EQ(rec_calls(&a), 2);
    ASSERT_EQ(a.seen_result, 2);
    ASSERT_EQ(rec_calls(&b), 0);
}

TEST(vtsource_reset_clears_registration)
{
    rec_source r;
    int status;

    rec_init(&r);
    ASSERT_OK(st_vtsource_on_completed(&r.src, 0, &r.node));
    /* Reset does not check for a waiter (.NET neither): the node is
     * forgotten and never called */
    st_vtsource_reset(&r.src);
    ASSERT_OK(st_vtsource_get_status(&r.src, 1, &status));
    ASSERT_EQ(status, ST_VTS_PENDING);
    produce(&r, 3, ST_VTS_SUCCEEDED);
    ASSERT_EQ(rec_calls(&r), 0);
    ASSERT_OK(st_vtsource_on_completed(&r.src, 1, &r.node));
    ASSERT_EQ(rec_calls(&r), 1);
    ASSERT_EQ(r.how, ST_VTS_RUN_ASYNC);
}

/* --------------------------------------------------------------- races */

/* Threads race on_completed (consumers, each with its own node) against
 * try_reserve + complete (the producer) over many sources.  Per source:
 * exactly one registration is accepted, its continuation runs exactly
 * once and sees the producer's result, INLINE on the producer's thread if
 * the registration came first (ASYNC there under run_async), else ASYNC
 * on the accepted consumer's own thread. */
#define RACE_MAX_CONSUMERS 4

struct race_slot;

typedef struct race_node {
    st_vts_cont_t cont;
    struct race_slot *slot;
    int id;
} race_node;

typedef struct race_slot {
    st_vtsource_t src;
    int result; /* the embedder's result */
    race_node nodes[RACE_MAX_CONSUMERS];
    ST_ATOMIC(int) calls;
    ST_ATOMIC(int) accepted;
    int winner;              /* id of the accepted consumer */
    uint64_t winner_thread;  /* its thread */
    uint64_t producer;       /* the producer's thread */
    int how, who, seen_status, seen_result;
    uint64_t thread;         /* where the continuation ran */
} race_slot;

typedef struct race {
    st_test_barrier_t start;
    race_slot *slots;
    int n;
    int lockstep;
} race;

typedef struct racer_arg {
    race *rc;
    int index; /* 0: producer; 1..: consumer index + 1 */
} racer_arg;

static void
race_fn(st_vts_cont_t *c, int how)
{
    race_node *rn = st_container_of(c, race_node, cont);
    race_slot *s = rn->slot;
    int status = -1;
    ASSERT_OK(st_vtsource_get_result(&s->src, 0, &status));
    s->seen_status = status;
    s->seen_result = s->result;
    s->how = how;
    s->who = rn->id;
    s->thread = st_thread_id();
    /* relaxed: counted; read after the joins */
    st_atomic_fetch_add(&s->calls, 1, ST_RELAXED);
}

static void
racer(void *p)
{
    racer_arg *a = p;
    race *rc = a->rc;
    int i, rc_on;

    st_test_barrier_wait(&rc->start);
    for (i = 0; i < rc->n; i++) {
        race_slot *s = &rc->slots[i];
        if (rc->lockstep) {
            st_test_barrier_wait(&rc->start);
        }
        if (a->index == 0) {
            s->producer = st_thread_id();
            ASSERT(st_vtsource_try_reserve(&s->src));
            s->result = i;
            ASSERT_OK(st_vtsource_complete(&s->src, ST_VTS_SUCCEEDED));
            continue;
        }
        rc_on = st_vtsource_on_completed(&s->src, 0,
                                         &s->nodes[a->index - 1].cont);
        if (rc_on == 0) {
            s->winner = a->index - 1;
            s->winner_thread = st_thread_id();
            /* relaxed: counted; read after the joins */
            st_atomic_fetch_add(&s->accepted, 1, ST_RELAXED);
        }
        else {
            ASSERT_RC(rc_on, ST_EBUSY);
        }
    }
}

static void
run_race(int n, int consumers, int lockstep, int run_async)
{
    st_thread_t th[RACE_MAX_CONSUMERS + 1];
    racer_arg args[RACE_MAX_CONSUMERS + 1];
    race rc;
    int i, j, by_producer = 0, by_consumer = 0;

    ASSERT(consumers >= 1 && consumers <= RACE_MAX_CONSUMERS);
    rc.n = n;
    rc.lockstep = lockstep;
    rc.slots = st_calloc((size_t)n, sizeof(*rc.slots));
    ASSERT_NOT_NULL(rc.slots);
    for (i = 0; i < n; i++) {
        race_slot *s = &rc.slots[i];
        st_vtsource_init(&s->src);
        st_vtsource_set_run_async(&s->src, run_async);
        for (j = 0; j < RACE_MAX_CONSUMERS; j++) {
            s->nodes[j].cont.fn = race_fn;
            s->nodes[j].slot = s;
            s->nodes[j].id = j;
        }
        st_atomic_init(&s->calls, 0);
        st_atomic_init(&s->accepted, 0);
        s->winner = -1;
        s->who = -1;
    }
    st_test_barrier_init(&rc.start, consumers + 1);
    for (i = 0; i <= consumers; i++) {
        args[i].rc = &rc;
        args[i].index = i;
        st_test_thread_start(&th[i], racer, &args[i]);
    }
    for (i = 0; i <= consumers; i++) {
        st_thread_join(&th[i]);
    }
    for (i = 0; i < n; i++) {
        race_slot *s = &rc.slots[i];
        ASSERT_EQ(st_atomic_load(&s->calls, ST_RELAXED), 1);
        ASSERT_EQ(st_atomic_load(&s->accepted, ST_RELAXED), 1);
        ASSERT_EQ(s->who, s->winner);
        ASSERT_EQ(s->seen_status, ST_VTS_SUCCEEDED);
        ASSERT_EQ(s->seen_result, i);
        if (s->thread == s->producer) {
            /* the registration came first: the completer ran it */
            ASSERT_EQ(s->how,
                      run_async ? ST_VTS_RUN_ASYNC : ST_VTS_RUN_INLINE);
            by_producer++;
        }
        else {
            /* completion came first: the registration ran it itself */
            ASSERT_EQ(s->thread, s->winner_thread);
            ASSERT_EQ(s->how, ST_VTS_RUN_ASYNC);
            by_consumer++;
        }
    }
    ASSERT_EQ(by_producer + by_consumer, n);
    st_test_barrier_destroy(&rc.start);
    st_free(rc.slots);
}

TEST(vtsource_race_on_completed_vs_complete)
{
    run_race(ST_TEST_ITERS(100000), 1, 0, 0);
}

TEST(vtsource_race_on_completed_vs_complete_lockstep)
{
    run_race(ST_TEST_ITERS(4000), 1, 1, 0);
    run_race(ST_TEST_ITERS(2000), 1, 1, 1);
}

TEST(vtsource_race_many_registrations)
{
    run_race(ST_TEST_ITERS(20000), RACE_MAX_CONSUMERS, 0, 0);
    run_race(ST_TEST_ITERS(2000), RACE_MAX_CONSUMERS, 1, 0);
}
