/* test_task.c - tests of st_task.h: the state word, the two-phase
 * completion, the continuation passes, removal and sync waiters. */
#include <string.h> /* memset */

#include "st_alloc.h"
#include "st_atomic.h"
#include "st_list.h" /* st_container_of */
#include "st_task.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

#define LOG_MAX 64

/* Calls observed by rec_fn, in order (finish runs on one thread). */
typedef struct call_log {
    int id[LOG_MAX];
    int how[LOG_MAX];
    int n;
} call_log;

typedef struct rec_cont {
    st_cont_t cont;
    int id;
    call_log *log;
    ST_ATOMIC(int) calls;
    st_task_t *task_seen;
} rec_cont;

static void
rec_fn(st_cont_t *c, st_task_t *t, int how)
{
    rec_cont *r = st_container_of(c, rec_cont, cont);

    /* relaxed: counted; read after a join or barrier */
    st_atomic_fetch_add(&r->calls, 1, ST_RELAXED);
    r->task_seen = t;
    if (r->log != NULL) {
        ASSERT_LT(r->log->n, LOG_MAX);
        r->log->id[r->log->n] = r->id;
        r->log->how[r->log->n] = how;
        r->log->n++;
    }
}

static void
rec_init(rec_cont *r, int id, int kind, call_log *log)
{
    memset(r, 0, sizeof(*r));
    r->cont.fn = rec_fn;
    r->cont.kind = kind;
    r->id = id;
    r->log = log;
    st_atomic_init(&r->calls, 0);
}

static int
rec_calls(rec_cont *r)
{
    /* relaxed: the caller synchronised with the completer */
    return st_atomic_load(&r->calls, ST_RELAXED);
}

static void
complete(st_task_t *t, int status)
{
    ASSERT_EQ(st_task_try_reserve(t), 1);
    ASSERT_OK(st_task_finish(t, status));
}

/* Checks that log holds exactly the ASYNC calls `async` (in order), then
 * exactly the INLINE calls `inl` (in order).  Lists end with -1. */
static void
check_passes(const call_log *log, const int *async, const int *inl)
{
    int i = 0, k;

    for (k = 0; async[k] >= 0; k++, i++) {
        ASSERT_LT(i, log->n);
        ASSERT_EQ(log->id[i], async[k]);
        ASSERT_EQ(log->how[i], ST_RUN_ASYNC);
    }
    for (k = 0; inl[k] >= 0; k++, i++) {
        ASSERT_LT(i, log->n);
        ASSERT_EQ(log->id[i], inl[k]);
        ASSERT_EQ(log->how[i], ST_RUN_INLINE);
    }
    ASSERT_EQ(log->n, i);
}

/* --------------------------------------------------------------- state */

TEST(task_init_status)
{
    st_task_t t;
    uint32_t user = 1u << ST_TASK_USER_SHIFT;

    st_task_init(&t, ST_STATUS_CREATED, ST_TASK_RUN_CONT_ASYNC | user);
    ASSERT_EQ(st_task_status(&t), ST_STATUS_CREATED);
    ASSERT(!st_task_is_completed(&t));
    ASSERT(st_task_flags(&t) & ST_TASK_RUN_CONT_ASYNC);
    ASSERT(st_task_flags(&t) & user);
    st_task_set_user_bits(&t, user << 1);
    ASSERT(st_task_flags(&t) & (user << 1));
    st_task_clear_user_bits(&t, user);
    ASSERT(!(st_task_flags(&t) & user));
    ASSERT(st_task_flags(&t) & (user << 1));
    ASSERT_EQ(st_task_status(&t), ST_STATUS_CREATED);

    /* transitions: only from the current status */
    ASSERT_RC(st_task_transition(&t, ST_STATUS_WAITING_TO_RUN,
                                 ST_STATUS_RUNNING),
              ST_ECLOSED);
    ASSERT_OK(st_task_transition(&t, ST_STATUS_CREATED,
                                 ST_STATUS_WAITING_TO_RUN));
    ASSERT_OK(st_task_transition(&t, ST_STATUS_WAITING_TO_RUN,
                                 ST_STATUS_RUNNING));
    ASSERT_EQ(st_task_status(&t), ST_STATUS_RUNNING);
    ASSERT(st_task_flags(&t) & (user << 1)); /* flags survive */

    /* reserved: no transition, status unchanged until finish */
    ASSERT_EQ(st_task_try_reserve(&t), 1);
    ASSERT_EQ(st_task_status(&t), ST_STATUS_RUNNING);
    ASSERT(!st_task_is_completed(&t));
    ASSERT_RC(st_task_transition(&t, ST_STATUS_RUNNING,
                                 ST_STATUS_WAITING_TO_RUN),
              ST_ECLOSED);
    ASSERT_OK(st_task_finish(&t, ST_STATUS_FAULTED));
    ASSERT_EQ(st_task_status(&t), ST_STATUS_FAULTED);
    ASSERT(st_task_is_completed(&t));
    ASSERT(st_task_flags(&t) & (user << 1));
    ASSERT(!(st_task_flags(&t) & (ST_TASK_RESERVED | ST_TASK_LOCKED)));
    ASSERT_EQ(st_task_try_reserve(&t), 0);
    ASSERT_RC(st_task_transition(&t, ST_STATUS_FAULTED,
                                 ST_STATUS_RUNNING),
              ST_ECLOSED);
}

TEST(task_precompleted)
{
    st_task_t t;
    rec_cont r;

    st_task_init(&t, ST_STATUS_RAN_TO_COMPLETION, 0);
    ASSERT(st_task_is_completed(&t));
    ASSERT_EQ(st_task_try_reserve(&t), 0);
    rec_init(&r, 1, ST_CONT_TASK, NULL);
    ASSERT_RC(st_task_add_cont(&t, &r.cont), ST_ECLOSED);
    ASSERT_OK(st_task_wait(&t, 0));
    ASSERT_EQ(rec_calls(&r), 0);

    st_task_init(&t, ST_STATUS_CANCELED, 0);
    ASSERT_EQ(st_task_status(&t), ST_STATUS_CANCELED);
}

/* Eight threads race try_reserve over many tasks; each task has exactly
 * one winner, and a loser returns only once the task is completed. */
#define RACE_THREADS 8

typedef struct reserve_race {
    st_test_barrier_t start;
    st_task_t *tasks;
    ST_ATOMIC(int) * wins;
    int n_tasks;
    int per_round; /* 1: a barrier before every task */
} reserve_race;

static void
reserve_racer(void *arg)
{
    reserve_race *rr = arg;
    int i;

    st_test_barrier_wait(&rr->start);
    for (i = 0; i < rr->n_tasks; i++) {
        if (rr->per_round) {
            st_test_barrier_wait(&rr->start);
        }
        if (st_task_try_reserve(&rr->tasks[i])) {
            /* relaxed: counted; read after the joins */
            st_atomic_fetch_add(&rr->wins[i], 1, ST_RELAXED);
            ASSERT(!st_task_is_completed(&rr->tasks[i]));
            ASSERT_OK(st_task_finish(&rr->tasks[i],
                                     ST_STATUS_RAN_TO_COMPLETION));
        }
        else {
            ASSERT(st_task_is_completed(&rr->tasks[i]));
        }
    }
}

static void
run_reserve_race(int n_tasks, int per_round)
{
    st_thread_t th[RACE_THREADS];
    reserve_race rr;
    int i;

    rr.n_tasks = n_tasks;
    rr.per_round = per_round;
    rr.tasks = st_calloc((size_t)n_tasks, sizeof(*rr.tasks));
    rr.wins = st_calloc((size_t)n_tasks, sizeof(*rr.wins));
    ASSERT_NOT_NULL(rr.tasks);
    ASSERT_NOT_NULL(rr.wins);
    for (i = 0; i < n_tasks; i++) {
        st_task_init(&rr.tasks[i], ST_STATUS_WAITING_FOR_ACTIVATION, 0);
        st_atomic_init(&rr.wins[i], 0);
    }
    st_test_barrier_init(&rr.start, RACE_THREADS);
    for (i = 0; i < RACE_THREADS; i++) {
        st_test_thread_start(&th[i], reserve_racer, &rr);
    }
    for (i = 0; i < RACE_THREADS; i++) {
        st_thread_join(&th[i]);
    }
    for (i = 0; i < n_tasks; i++) {
        ASSERT_EQ(st_atomic_load(&rr.wins[i], ST_RELAXED), 1);
        ASSERT_EQ(st_task_status(&rr.tasks[i]),
                  ST_STATUS_RAN_TO_COMPLETION);
    }
    st_test_barrier_destroy(&rr.start);
    st_free(rr.wins);
    st_free(rr.tasks);
}

TEST(task_try_reserve_race)
{
    run_reserve_race(ST_TEST_ITERS(100000), 0);
}

TEST(task_try_reserve_race_lockstep)
{
    run_reserve_race(ST_TEST_ITERS(4000), 1);
}

/* ---------------------------------------------------- continuation order */

TEST(task_finish_order)
{
    /* Registration order and expected pass of each node (no SIGNAL: see
     * task_finish_order_signal). */
    static const int kinds[] = {
        ST_CONT_TASK,      /* 0: async */
        ST_CONT_TASK_SYNC, /* 1: inline */
        ST_CONT_AWAIT,     /* 2: first await: inline */
        ST_CONT_ACTION,    /* 3: inline */
        ST_CONT_AWAIT,     /* 4: later await: async */
        ST_CONT_TASK,      /* 5: async */
        ST_CONT_TASK_SYNC, /* 6: inline */
        ST_CONT_AWAIT,     /* 7: later await: async */
    };
    static const int async_ids[] = {0, 4, 5, 7, -1};
    static const int inline_ids[] = {1, 2, 3, 6, -1};
    rec_cont r[8];
    call_log log;
    st_task_t t;
    int i;

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    for (i = 0; i < 8; i++) {
        rec_init(&r[i], i, kinds[i], &log);
        ASSERT_OK(st_task_add_cont(&t, &r[i].cont));
    }
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    check_passes(&log, async_ids, inline_ids);
    for (i = 0; i < 8; i++) {
        ASSERT_EQ(rec_calls(&r[i]), 1);
        ASSERT(r[i].task_seen == &t);
    }
}

TEST(task_finish_order_first_await_first)
{
    /* The first await registered first of all runs inline; later awaits
     * and TASK continuations go async. */
    static const int kinds[] = {ST_CONT_AWAIT, ST_CONT_AWAIT, ST_CONT_TASK};
    static const int async_ids[] = {1, 2, -1};
    static const int inline_ids[] = {0, -1};
    rec_cont r[3];
    call_log log;
    st_task_t t;
    int i;

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_RUNNING, 0);
    for (i = 0; i < 3; i++) {
        rec_init(&r[i], i, kinds[i], &log);
        ASSERT_OK(st_task_add_cont(&t, &r[i].cont));
    }
    complete(&t, ST_STATUS_CANCELED);
    check_passes(&log, async_ids, inline_ids);
}

TEST(task_finish_order_run_cont_async)
{
    /* Under RUN_CONT_ASYNC everything but SIGNAL is async. */
    static const int kinds[] = {
        ST_CONT_TASK_SYNC, ST_CONT_AWAIT, ST_CONT_TASK,
        ST_CONT_ACTION,    ST_CONT_AWAIT,
    };
    static const int async_ids[] = {0, 1, 2, 3, 4, -1};
    static const int inline_ids[] = {-1};
    rec_cont r[5];
    call_log log;
    st_task_t t;
    int i;

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION,
                 ST_TASK_RUN_CONT_ASYNC);
    for (i = 0; i < 5; i++) {
        rec_init(&r[i], i, kinds[i], &log);
        ASSERT_OK(st_task_add_cont(&t, &r[i].cont));
    }
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    check_passes(&log, async_ids, inline_ids);
}

/* Checks the exact call sequence: ids[i] was called with hows[i]. */
static void
check_sequence(const call_log *log, const int *ids, const int *hows)
{
    int i;
    for (i = 0; ids[i] >= 0; i++) {
        ASSERT_LT(i, log->n);
        ASSERT_EQ(log->id[i], ids[i]);
        ASSERT_EQ(log->how[i], hows[i]);
    }
    ASSERT_EQ(log->n, i);
}

TEST(task_finish_order_signal)
{
    /* st_task.h: "SIGNAL nodes first (waking sync waiters, as .NET
     * signals its wait event before running continuations), then every
     * ASYNC call, then every INLINE call; each group in registration
     * order".  SIGNAL is inline even under RUN_CONT_ASYNC. */
    static const int kinds[] = {
        ST_CONT_SIGNAL, ST_CONT_TASK, ST_CONT_TASK_SYNC,
        ST_CONT_SIGNAL, ST_CONT_TASK,
    };
    static const int ids[] = {0, 3, 1, 4, 2, -1};
    static const int hows[] = {ST_RUN_INLINE, ST_RUN_INLINE, ST_RUN_ASYNC,
                               ST_RUN_ASYNC, ST_RUN_INLINE};
    static const int ids2[] = {0, 3, 1, 2, 4, -1};
    static const int hows2[] = {ST_RUN_INLINE, ST_RUN_INLINE, ST_RUN_ASYNC,
                                ST_RUN_ASYNC, ST_RUN_ASYNC};
    rec_cont r[5];
    call_log log;
    st_task_t t;
    int i;

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    for (i = 0; i < 5; i++) {
        rec_init(&r[i], i, kinds[i], &log);
        ASSERT_OK(st_task_add_cont(&t, &r[i].cont));
    }
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    check_sequence(&log, ids, hows);

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION,
                 ST_TASK_RUN_CONT_ASYNC);
    for (i = 0; i < 5; i++) {
        rec_init(&r[i], i, kinds[i], &log);
        ASSERT_OK(st_task_add_cont(&t, &r[i].cont));
    }
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    check_sequence(&log, ids2, hows2);
}

TEST(task_signal_inline_under_run_cont_async)
{
    /* The "how" of each kind alone, whatever the relative order. */
    rec_cont r;
    call_log log;
    st_task_t t;

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION,
                 ST_TASK_RUN_CONT_ASYNC);
    rec_init(&r, 7, ST_CONT_SIGNAL, &log);
    ASSERT_OK(st_task_add_cont(&t, &r.cont));
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    ASSERT_EQ(log.n, 1);
    ASSERT_EQ(log.how[0], ST_RUN_INLINE);
}

/* ------------------------------------------------------ add and remove */

TEST(task_add_after_completion)
{
    rec_cont a, b;
    st_task_t t;

    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    rec_init(&a, 1, ST_CONT_TASK_SYNC, NULL);
    rec_init(&b, 2, ST_CONT_TASK_SYNC, NULL);
    ASSERT_OK(st_task_add_cont(&t, &a.cont));
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    ASSERT_EQ(rec_calls(&a), 1);
    ASSERT_RC(st_task_add_cont(&t, &b.cont), ST_ECLOSED);
    ASSERT_EQ(rec_calls(&b), 0);
    ASSERT_EQ(rec_calls(&a), 1);
}

TEST(task_remove_cont)
{
    rec_cont r[5];
    call_log log;
    st_task_t t;
    int i;
    static const int none[] = {-1};
    static const int inl[] = {0, 3, 4, -1};

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    for (i = 0; i < 5; i++) {
        rec_init(&r[i], i, ST_CONT_TASK_SYNC, &log);
    }
    /* never registered */
    ASSERT_RC(st_task_remove_cont(&t, &r[0].cont), ST_EINVAL);
    /* middle, then tail: the list (and its tail) must stay consistent */
    ASSERT_OK(st_task_add_cont(&t, &r[0].cont));
    ASSERT_OK(st_task_add_cont(&t, &r[1].cont));
    ASSERT_OK(st_task_add_cont(&t, &r[2].cont));
    ASSERT_OK(st_task_remove_cont(&t, &r[1].cont));
    ASSERT_RC(st_task_remove_cont(&t, &r[1].cont), ST_EINVAL);
    ASSERT_OK(st_task_add_cont(&t, &r[3].cont));
    ASSERT_OK(st_task_remove_cont(&t, &r[2].cont));
    ASSERT_OK(st_task_add_cont(&t, &r[4].cont));
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    check_passes(&log, none, inl);
    ASSERT_EQ(rec_calls(&r[1]), 0);
    ASSERT_EQ(rec_calls(&r[2]), 0);
    /* after completion */
    ASSERT_RC(st_task_remove_cont(&t, &r[0].cont), ST_EBUSY);
    ASSERT_EQ(rec_calls(&r[0]), 1);

    /* the only node, then the list is reusable */
    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    rec_init(&r[0], 0, ST_CONT_TASK, &log);
    ASSERT_OK(st_task_add_cont(&t, &r[0].cont));
    ASSERT_OK(st_task_remove_cont(&t, &r[0].cont));
    rec_init(&r[1], 1, ST_CONT_TASK, &log);
    ASSERT_OK(st_task_add_cont(&t, &r[1].cont));
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    ASSERT_EQ(rec_calls(&r[0]), 0);
    ASSERT_EQ(rec_calls(&r[1]), 1);
}

/* issue 10 W9: the list is a ring through its last node (one pointer in
 * the task): removing the first, the last and a middle node keeps the
 * order that visit, detach and finish see. */
static void
ring_visit(st_cont_t *c, void *arg)
{
    int *ids = arg;
    int n = ids[0]++;
    ids[1 + n] = st_container_of(c, rec_cont, cont)->id;
}

TEST(task_cont_ring_order)
{
    rec_cont r[6];
    call_log log;
    st_task_t t;
    int ids[8];
    int i;
    st_cont_t *list;
    static const int none[] = {-1};
    static const int inl[] = {2, 4, 5, -1};

    memset(&log, 0, sizeof(log));
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    for (i = 0; i < 6; i++) {
        rec_init(&r[i], i, ST_CONT_TASK_SYNC, &log);
        ASSERT_OK(st_task_add_cont(&t, &r[i].cont));
    }
    ASSERT_OK(st_task_remove_cont(&t, &r[0].cont)); /* the first */
    ASSERT_OK(st_task_remove_cont(&t, &r[3].cont)); /* a middle one */
    ASSERT_OK(st_task_remove_cont(&t, &r[1].cont)); /* the new first */
    ids[0] = 0;
    st_task_visit_conts(&t, ring_visit, ids);
    ASSERT_EQ(ids[0], 3);
    ASSERT_EQ(ids[1], 2);
    ASSERT_EQ(ids[2], 4);
    ASSERT_EQ(ids[3], 5);
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    check_passes(&log, none, inl);

    /* detach: a NULL-terminated list in order; removing the last first */
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    for (i = 0; i < 4; i++) {
        ASSERT_OK(st_task_add_cont(&t, &r[i].cont));
    }
    ASSERT_OK(st_task_remove_cont(&t, &r[3].cont)); /* the last */
    ASSERT_OK(st_task_add_cont(&t, &r[5].cont));
    list = st_task_detach_conts(&t);
    for (i = 0; list != NULL; list = list->next, i++) {
        static const int want[] = {0, 1, 2, 5};
        ASSERT(i < 4);
        ASSERT_EQ(st_container_of(list, rec_cont, cont)->id, want[i]);
    }
    ASSERT_EQ(i, 4);
    ASSERT(st_task_detach_conts(&t) == NULL);
    ids[0] = 0;
    st_task_visit_conts(&t, ring_visit, ids);
    ASSERT_EQ(ids[0], 0);
}

/* Adders register (and sometimes remove) nodes while a completer
 * finishes: every node added runs exactly once unless its removal
 * succeeded; a refused add (ST_ECLOSED) never runs. */
#define ADDERS 3
#define NODES_PER_ADDER 48

typedef struct add_race {
    st_test_barrier_t barrier;
    st_task_t task;
    rec_cont nodes[ADDERS][NODES_PER_ADDER];
    int add_rc[ADDERS][NODES_PER_ADDER];
    int rm_rc[ADDERS][NODES_PER_ADDER]; /* 1: not attempted */
    int rounds;
} add_race;

typedef struct adder_arg {
    add_race *ar;
    int index; /* ADDERS: the completer */
} adder_arg;

static void
add_race_thread(void *arg)
{
    adder_arg *a = arg;
    add_race *ar = a->ar;
    st_test_rng_t rng;
    int round, k;

    st_test_rng_init(&rng, (uint64_t)a->index + 1);
    for (round = 0; round < ar->rounds; round++) {
        st_test_barrier_wait(&ar->barrier); /* main set the round up */
        if (a->index == ADDERS) {
            st_test_sleep_us(st_test_rng_below(&rng, 30));
            complete(&ar->task, ST_STATUS_RAN_TO_COMPLETION);
        }
        else {
            for (k = 0; k < NODES_PER_ADDER; k++) {
                rec_cont *r = &ar->nodes[a->index][k];
                ar->add_rc[a->index][k] = st_task_add_cont(&ar->task,
                                                           &r->cont);
                if (ar->add_rc[a->index][k] == 0
                    && st_test_rng_below(&rng, 4) == 0) {
                    ar->rm_rc[a->index][k] = st_task_remove_cont(&ar->task,
                                                                 &r->cont);
                }
            }
        }
        st_test_barrier_wait(&ar->barrier); /* main checks */
    }
}

TEST(task_add_race_completion)
{
    static const int kinds[] = {ST_CONT_TASK, ST_CONT_TASK_SYNC,
                                ST_CONT_AWAIT, ST_CONT_ACTION,
                                ST_CONT_SIGNAL};
    st_thread_t th[ADDERS + 1];
    adder_arg args[ADDERS + 1];
    add_race *ar;
    int round, i, k, ran = 0, refused = 0, removed = 0;

    ar = st_calloc(1, sizeof(*ar));
    ASSERT_NOT_NULL(ar);
    ar->rounds = ST_TEST_ITERS(2000);
    st_test_barrier_init(&ar->barrier, ADDERS + 2);
    for (i = 0; i <= ADDERS; i++) {
        args[i].ar = ar;
        args[i].index = i;
        st_test_thread_start(&th[i], add_race_thread, &args[i]);
    }
    for (round = 0; round < ar->rounds; round++) {
        st_task_init(&ar->task, ST_STATUS_WAITING_FOR_ACTIVATION,
                     (round & 1) ? ST_TASK_RUN_CONT_ASYNC : 0);
        for (i = 0; i < ADDERS; i++) {
            for (k = 0; k < NODES_PER_ADDER; k++) {
                rec_init(&ar->nodes[i][k], k, kinds[(i + k) % 5], NULL);
                ar->add_rc[i][k] = 1;
                ar->rm_rc[i][k] = 1;
            }
        }
        st_test_barrier_wait(&ar->barrier);
        st_test_barrier_wait(&ar->barrier);
        ASSERT(st_task_is_completed(&ar->task));
        for (i = 0; i < ADDERS; i++) {
            for (k = 0; k < NODES_PER_ADDER; k++) {
                int add = ar->add_rc[i][k], rm = ar->rm_rc[i][k];
                int calls = rec_calls(&ar->nodes[i][k]);
                if (add == ST_ECLOSED) {
                    ASSERT_EQ(calls, 0);
                    refused++;
                }
                else if (rm == 0) {
                    ASSERT_EQ(add, 0);
                    ASSERT_EQ(calls, 0);
                    removed++;
                }
                else {
                    ASSERT_EQ(add, 0);
                    ASSERT(rm == 1 || rm == ST_EBUSY);
                    ASSERT_EQ(calls, 1);
                    ran++;
                }
            }
        }
    }
    for (i = 0; i <= ADDERS; i++) {
        st_thread_join(&th[i]);
    }
    ASSERT_EQ(ran + refused + removed,
              ar->rounds * ADDERS * NODES_PER_ADDER);
    st_test_barrier_destroy(&ar->barrier);
    st_free(ar);
}

/* A continuation owns its node from the call on: it may register it on
 * another task or free it, and the core must not touch it again. */
typedef struct hop_cont {
    st_cont_t cont;
    st_task_t *from;
    st_task_t *to;
    int calls_from;
    int calls_to;
} hop_cont;

static void
hop_fn(st_cont_t *c, st_task_t *t, int how)
{
    hop_cont *h = st_container_of(c, hop_cont, cont);

    (void)how;
    if (t == h->from) {
        h->calls_from++;
        ASSERT_OK(st_task_add_cont(h->to, c));
    }
    else {
        ASSERT(t == h->to);
        h->calls_to++;
    }
}

typedef struct free_cont {
    st_cont_t cont;
    int *freed;
} free_cont;

static void
free_fn(st_cont_t *c, st_task_t *t, int how)
{
    free_cont *f = st_container_of(c, free_cont, cont);

    (void)t;
    (void)how;
    (*f->freed)++;
    memset(f, 0xA5, sizeof(*f));
    st_free(f);
}

TEST(task_cont_reuses_node)
{
    static const int kinds[] = {ST_CONT_TASK_SYNC, ST_CONT_TASK,
                                ST_CONT_AWAIT, ST_CONT_SIGNAL,
                                ST_CONT_ACTION, ST_CONT_AWAIT};
    hop_cont h[6];
    rec_cont plain[6];
    st_task_t a, b;
    int i, freed = 0;

    st_task_init(&a, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    st_task_init(&b, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    /* interleave hopping nodes, plain nodes and self-freeing nodes */
    for (i = 0; i < 6; i++) {
        free_cont *f;
        memset(&h[i], 0, sizeof(h[i]));
        h[i].cont.fn = hop_fn;
        h[i].cont.kind = kinds[i];
        h[i].from = &a;
        h[i].to = &b;
        ASSERT_OK(st_task_add_cont(&a, &h[i].cont));
        rec_init(&plain[i], i, kinds[5 - i], NULL);
        ASSERT_OK(st_task_add_cont(&a, &plain[i].cont));
        f = st_malloc(sizeof(*f));
        ASSERT_NOT_NULL(f);
        memset(f, 0, sizeof(*f));
        f->cont.fn = free_fn;
        f->cont.kind = kinds[i];
        f->freed = &freed;
        ASSERT_OK(st_task_add_cont(&a, &f->cont));
    }
    complete(&a, ST_STATUS_RAN_TO_COMPLETION);
    ASSERT_EQ(freed, 6);
    for (i = 0; i < 6; i++) {
        ASSERT_EQ(h[i].calls_from, 1);
        ASSERT_EQ(h[i].calls_to, 0);
        ASSERT_EQ(rec_calls(&plain[i]), 1);
    }
    complete(&b, ST_STATUS_RAN_TO_COMPLETION);
    for (i = 0; i < 6; i++) {
        ASSERT_EQ(h[i].calls_from, 1);
        ASSERT_EQ(h[i].calls_to, 1);
    }
}

/* ------------------------------------------------------------- waiters */

TEST(task_wait_timeout)
{
    st_task_t t;
    uint64_t start;

    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    start = st_now_ns();
    ASSERT_RC(st_task_wait(&t, 20000000u), ST_ETIMEDOUT);
    ASSERT_GE(st_now_ns() - start, 20000000u);
    ASSERT_RC(st_task_wait(&t, 0), ST_ETIMEDOUT);
    /* the waiter left nothing behind: completion runs no stale node */
    complete(&t, ST_STATUS_RAN_TO_COMPLETION);
    ASSERT_OK(st_task_wait(&t, 0));
}

typedef struct delayed_completion {
    st_task_t *task;
    uint64_t delay_us;
} delayed_completion;

static void
complete_later(void *arg)
{
    delayed_completion *d = arg;

    st_test_sleep_us(d->delay_us);
    complete(d->task, ST_STATUS_RAN_TO_COMPLETION);
}

TEST(task_wait_woken)
{
    delayed_completion d;
    st_thread_t th;
    st_task_t t;

    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    d.task = &t;
    d.delay_us = 20000;
    st_test_thread_start(&th, complete_later, &d);
    ASSERT_OK(st_task_wait(&t, UINT64_MAX));
    ASSERT_EQ(st_task_status(&t), ST_STATUS_RAN_TO_COMPLETION);
    st_thread_join(&th);

    /* the same through the waiter API, waiting in slices */
    st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    st_test_thread_start(&th, complete_later, &d);
    {
        st_waiter_t w;
        int slices = 0;

        st_waiter_init(&w);
        ASSERT_OK(st_task_add_waiter(&t, &w));
        while (st_waiter_wait(&w, 2000000u) == ST_ETIMEDOUT) {
            slices++;
            ASSERT_LT(slices, 10000);
        }
        ASSERT(st_task_is_completed(&t));
        st_task_remove_waiter(&t, &w);
        st_waiter_destroy(&w);
    }
    st_thread_join(&th);

    /* several waiters on one task, woken by one completion */
    {
        st_waiter_t w[4];
        int i;

        st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
        for (i = 0; i < 4; i++) {
            st_waiter_init(&w[i]);
            ASSERT_OK(st_task_add_waiter(&t, &w[i]));
        }
        st_test_thread_start(&th, complete_later, &d);
        for (i = 0; i < 4; i++) {
            ASSERT_OK(st_waiter_wait(&w[i], UINT64_MAX));
            st_task_remove_waiter(&t, &w[i]);
            st_waiter_destroy(&w[i]);
        }
        st_thread_join(&th);
    }

    /* a completed task refuses waiters */
    {
        st_waiter_t w;
        st_waiter_init(&w);
        ASSERT_RC(st_task_add_waiter(&t, &w), ST_ECLOSED);
        st_waiter_destroy(&w);
    }
}

/* remove_waiter racing completion: the heap waiter is freed right after
 * st_task_remove_waiter returns, so a completer still touching it is a
 * use after free (ASan) or a race (TSan). */
typedef struct waiter_race {
    st_test_barrier_t barrier;
    st_task_t task;
    int rounds;
} waiter_race;

static void
waiter_race_completer(void *arg)
{
    waiter_race *wr = arg;
    st_test_rng_t rng;
    int round;

    st_test_rng_init(&rng, 7);
    for (round = 0; round < wr->rounds; round++) {
        st_test_barrier_wait(&wr->barrier);
        if (st_test_rng_below(&rng, 2)) {
            st_test_sleep_us(st_test_rng_below(&rng, 20));
        }
        complete(&wr->task, ST_STATUS_RAN_TO_COMPLETION);
        st_test_barrier_wait(&wr->barrier);
    }
}

TEST(task_remove_waiter_race)
{
    waiter_race wr;
    st_thread_t th;
    st_test_rng_t rng;
    int round, early = 0;

    wr.rounds = ST_TEST_ITERS(5000);
    st_test_rng_init(&rng, 3);
    st_test_barrier_init(&wr.barrier, 2);
    st_test_thread_start(&th, waiter_race_completer, &wr);
    for (round = 0; round < wr.rounds; round++) {
        st_waiter_t *w = st_malloc(sizeof(*w));
        ASSERT_NOT_NULL(w);
        st_task_init(&wr.task, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
        st_waiter_init(w);
        ASSERT_OK(st_task_add_waiter(&wr.task, w));
        st_test_barrier_wait(&wr.barrier);
        if (st_test_rng_below(&rng, 2)) {
            (void)st_waiter_wait(w, st_test_rng_below(&rng, 20000));
        }
        if (!st_task_is_completed(&wr.task)) {
            early++;
        }
        st_task_remove_waiter(&wr.task, w);
        st_waiter_destroy(w);
        memset(w, 0xA5, sizeof(*w));
        st_free(w);
        st_test_barrier_wait(&wr.barrier);
    }
    st_thread_join(&th);
    st_test_barrier_destroy(&wr.barrier);
    (void)early; /* how often removal won is up to the scheduler */
}

/* issue 9 (hard-args' open race): a waiter woken early by a third party
 * (the binding's deadlock detector sets its event) while the task
 * completes.  The completer publishes the status, then runs the SIGNAL
 * nodes ahead of the waiter's; st_task_remove_waiter must wait for the
 * completer's own signal, not return on the early-set event, or the
 * caller frees the waiter while the completer is still to touch it. */
typedef struct slow_signal {
    st_cont_t cont;
    ST_ATOMIC(int) started;
    ST_ATOMIC(int) finished;
} slow_signal;

static void
slow_signal_fn(st_cont_t *c, st_task_t *t, int how)
{
    slow_signal *s = st_container_of(c, slow_signal, cont);
    (void)t;
    (void)how;
    st_atomic_store(&s->started, 1, ST_RELEASE);
    st_test_sleep_us(30000);
    st_atomic_store(&s->finished, 1, ST_RELEASE);
}

static void
complete_now(void *arg)
{
    complete(arg, ST_STATUS_RAN_TO_COMPLETION);
}

TEST(task_remove_waiter_woken_early)
{
    int round;
    for (round = 0; round < 3; round++) {
        slow_signal slow;
        st_thread_t th;
        st_task_t t;
        st_waiter_t *w = st_malloc(sizeof(*w));
        ASSERT_NOT_NULL(w);
        memset(&slow, 0, sizeof(slow));
        slow.cont.fn = slow_signal_fn;
        slow.cont.kind = ST_CONT_SIGNAL;
        st_atomic_init(&slow.started, 0);
        st_atomic_init(&slow.finished, 0);
        st_task_init(&t, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
        ASSERT_OK(st_task_add_cont(&t, &slow.cont)); /* runs first */
        st_waiter_init(w);
        ASSERT_OK(st_task_add_waiter(&t, w));
        st_event_set(&w->ev); /* the early wake-up */
        ASSERT_OK(st_waiter_wait(w, 0));
        st_test_thread_start(&th, complete_now, &t);
        while (!st_atomic_load(&slow.started, ST_ACQUIRE)) {
            st_test_sleep_us(100);
        }
        ASSERT(st_task_is_completed(&t));
        if (round == 0) {
            st_task_remove_waiter(&t, w);
        }
        else {
            /* the two-step form the binding uses */
            if (st_task_remove_waiter_nowait(&t, w) == ST_EBUSY) {
                st_waiter_wait_signalled(w);
            }
        }
        /* the completer is past the slow node: it signalled w */
        ASSERT_EQ(st_atomic_load(&slow.finished, ST_ACQUIRE), 1);
        st_waiter_destroy(w);
        memset(w, 0xA5, sizeof(*w));
        st_free(w);
        st_thread_join(&th);
    }
}
