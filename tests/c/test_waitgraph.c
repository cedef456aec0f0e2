/* test_waitgraph.c - tests of st_waitgraph.h, the deadlock detector's
 * waits-for graph and cycle search (issue 10; SPEC C5, C6, C8): the
 * expansion rules (blocked thread -> task, context -> owner, running task
 * -> its thread, the caller's task edges), paths, rechecks that wake the
 * deadlocked, growable stacks (no depth limit, no fixed array: the
 * binding's running[16] and depth 64 are gone), and a stress test in which
 * a ring of context-owning threads blocks on each other round after round
 * while other threads push, pop, own, block and search: every closed ring
 * is detected, a broken ring never is. */
#include <string.h> /* memset */

#include "st_alloc.h"
#include "st_atomic.h"
#include "st_waitgraph.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

/* A test task: up to MAXE edges to tasks or contexts. */
#define MAXE 4

typedef struct tg_task {
    ST_ATOMIC(int) nedges; /* atomic: the stress test changes it */
    st_wg_node_t edge[MAXE];
    int completed; /* a completed task has no edges */
} tg_task;

/* A context is any address; these are the test's. */
typedef struct tg_ctx {
    int unused;
} tg_ctx;

static void
task_init(tg_task *t)
{
    memset(t, 0, sizeof(*t));
    st_atomic_init(&t->nedges, 0);
}

static void
task_edge(tg_task *t, int kind, const void *ptr)
{
    /* relaxed: single-threaded set-up, or the stress test's flag */
    int n = st_atomic_load(&t->nedges, ST_RELAXED);
    ASSERT_LT(n, MAXE);
    t->edge[n].kind = kind;
    t->edge[n].ptr = ptr;
    st_atomic_store(&t->nedges, n + 1, ST_RELAXED);
}

static int g_edges_calls;

static int
tg_edges(void *arg, const void *task, st_wg_sink_t *sink)
{
    const tg_task *t = task;
    int i, n, rc;
    (void)arg;
    g_edges_calls++;
    if (t->completed) {
        return 0;
    }
    /* relaxed: the stress test flips it between rounds (see there) */
    n = st_atomic_load(&((tg_task *)t)->nedges, ST_RELAXED);
    for (i = 0; i < n; i++) {
        rc = st_waitgraph_edge(sink, t->edge[i].kind, t->edge[i].ptr);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void
wake_count(st_wg_thread_t *rec, void *arg)
{
    (void)rec;
    (*(int *)arg)++;
}

static void
expect_node(const st_wg_path_t *p, size_t i, int kind, const void *ptr)
{
    ASSERT_LT(i, p->len);
    ASSERT_EQ(p->nodes[i].kind, kind);
    ASSERT(p->nodes[i].ptr == ptr);
}

/* ----------------------------------------------------- expansion rules */

TEST(wg_issue10_context_owner_closes_cycle_c6)
{
    st_waitgraph_t g;
    st_wg_thread_t t;
    tg_task x;
    tg_ctx c;
    st_wg_path_t path;

    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 101);
    st_waitgraph_attach(&g, &t);
    st_wg_path_init(&path);
    task_init(&x);
    task_edge(&x, ST_WG_CONTEXT, &c); /* x resumes on c */
    /* nobody runs c: anyone could later, so no deadlock */
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &x, tg_edges, NULL, &path), 0);
    ASSERT_NULL(st_waitgraph_owner_of(&g, &c));
    /* t runs c and blocks on x: x needs c, c needs t (the UI deadlock) */
    ASSERT_OK(st_waitgraph_own(&g, &t, &c));
    ASSERT(st_waitgraph_owner_of(&g, &c) == &t);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &x, tg_edges, NULL, &path), 1);
    ASSERT_EQ(path.len, 3);
    expect_node(&path, 0, ST_WG_TASK, &x);
    expect_node(&path, 1, ST_WG_CONTEXT, &c);
    expect_node(&path, 2, ST_WG_THREAD, &t);
    /* a completed task ends the path */
    x.completed = 1;
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &x, tg_edges, NULL, NULL), 0);
    ASSERT_OK(st_waitgraph_disown(&g, &t, &c));
    ASSERT_RC(st_waitgraph_disown(&g, &t, &c), ST_EINVAL);
    st_wg_path_free(&path);
    st_waitgraph_detach(&g, &t);
    st_waitgraph_destroy(&g);
}

/* The binding relies on these two facts to build DeadlockError's message
 * from a path: edges are followed in the order the callback reports them
 * (a box's context before the task it awaits), and a blocked thread
 * inside a path is followed by the task it is blocked on. */
TEST(wg_issue10_edges_followed_in_reported_order_c6)
{
    st_waitgraph_t g;
    st_wg_thread_t t, q;
    tg_task x, x2, y, z;
    tg_ctx c, d;
    st_wg_path_t path;

    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 1);
    st_wg_thread_init(&q, 2);
    st_waitgraph_attach(&g, &t);
    st_waitgraph_attach(&g, &q);
    st_wg_path_init(&path);
    task_init(&x);
    task_init(&x2);
    task_init(&y);
    task_init(&z);
    ASSERT_OK(st_waitgraph_own(&g, &t, &c));
    task_edge(&y, ST_WG_CONTEXT, &c);
    task_edge(&x, ST_WG_CONTEXT, &c); /* context first */
    task_edge(&x, ST_WG_TASK, &y);
    task_edge(&x2, ST_WG_TASK, &y); /* awaited task first */
    task_edge(&x2, ST_WG_CONTEXT, &c);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &x, tg_edges, NULL, &path), 1);
    ASSERT_EQ(path.len, 3);
    expect_node(&path, 0, ST_WG_TASK, &x);
    expect_node(&path, 1, ST_WG_CONTEXT, &c);
    expect_node(&path, 2, ST_WG_THREAD, &t);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &x2, tg_edges, NULL, &path),
              1);
    ASSERT_EQ(path.len, 4);
    expect_node(&path, 0, ST_WG_TASK, &x2);
    expect_node(&path, 1, ST_WG_TASK, &y);
    expect_node(&path, 2, ST_WG_CONTEXT, &c);
    expect_node(&path, 3, ST_WG_THREAD, &t);
    /* z needs d, run by q, which is blocked on y: z, d, q, y, c, t */
    ASSERT_OK(st_waitgraph_own(&g, &q, &d));
    task_edge(&z, ST_WG_CONTEXT, &d);
    st_waitgraph_block(&g, &q, &y, NULL, NULL);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &z, tg_edges, NULL, &path), 1);
    ASSERT_EQ(path.len, 6);
    expect_node(&path, 0, ST_WG_TASK, &z);
    expect_node(&path, 1, ST_WG_CONTEXT, &d);
    expect_node(&path, 2, ST_WG_THREAD, &q);
    expect_node(&path, 3, ST_WG_TASK, &y);
    expect_node(&path, 4, ST_WG_CONTEXT, &c);
    expect_node(&path, 5, ST_WG_THREAD, &t);
    st_waitgraph_unblock(&g, &q);
    ASSERT_OK(st_waitgraph_disown(&g, &q, &d));
    ASSERT_OK(st_waitgraph_disown(&g, &t, &c));
    st_wg_path_free(&path);
    st_waitgraph_detach(&g, &q);
    st_waitgraph_detach(&g, &t);
    st_waitgraph_destroy(&g);
}

/* The innermost context a record runs: how the binding drops the
 * references it holds when a thread ends while running contexts (any
 * number of them: the binding's old limit was 8). */
TEST(wg_issue10_owned_top_past_8_c8)
{
    st_waitgraph_t g;
    st_wg_thread_t t;
    tg_ctx c[20];
    const void *top;
    int i, n = 0;

    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 7);
    st_waitgraph_attach(&g, &t);
    ASSERT_NULL(st_waitgraph_owned_top(&g, &t));
    for (i = 0; i < 20; i++) {
        ASSERT_OK(st_waitgraph_own(&g, &t, &c[i]));
        ASSERT(st_waitgraph_owned_top(&g, &t) == &c[i]);
    }
    ASSERT_EQ(st_waitgraph_owner_threads(&g), 1);
    /* out of order: the top stays the innermost */
    ASSERT_OK(st_waitgraph_disown(&g, &t, &c[3]));
    ASSERT(st_waitgraph_owned_top(&g, &t) == &c[19]);
    while ((top = st_waitgraph_owned_top(&g, &t)) != NULL) {
        ASSERT_OK(st_waitgraph_disown(&g, &t, top));
        n++;
    }
    ASSERT_EQ(n, 19);
    ASSERT_EQ(st_waitgraph_owner_threads(&g), 0);
    st_waitgraph_detach(&g, &t);
    st_waitgraph_destroy(&g);
}

TEST(wg_issue10_two_threads_cycle_and_recheck_wakes_c6)
{
    st_waitgraph_t g;
    st_wg_thread_t t1, t2, t3;
    tg_task x1, x2;
    tg_ctx c1, c2;
    st_wg_path_t path;
    int woken1 = 0, woken2 = 0;

    st_waitgraph_init(&g);
    st_wg_thread_init(&t1, 1);
    st_wg_thread_init(&t2, 2);
    st_wg_thread_init(&t3, 3);
    st_waitgraph_attach(&g, &t1);
    st_waitgraph_attach(&g, &t2);
    st_waitgraph_attach(&g, &t3);
    st_wg_path_init(&path);
    task_init(&x1);
    task_init(&x2);
    task_edge(&x1, ST_WG_CONTEXT, &c2); /* x1 resumes on t2's context */
    task_edge(&x2, ST_WG_CONTEXT, &c1); /* x2 resumes on t1's */
    ASSERT_OK(st_waitgraph_own(&g, &t1, &c1));
    ASSERT_OK(st_waitgraph_own(&g, &t2, &c2));
    ASSERT_EQ(st_waitgraph_owner_threads(&g), 2);
    ASSERT_EQ(st_waitgraph_blocked_owners(&g), 0);
    /* nobody is blocked: a recheck is one load and finds nothing */
    g_edges_calls = 0;
    ASSERT_EQ(st_waitgraph_recheck(&g, NULL, tg_edges, NULL), 0);
    ASSERT_EQ(g_edges_calls, 0);
    /* t2 blocks on x2 first: no cycle yet (t1 is free) */
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t2, &x2, tg_edges, NULL, NULL),
              0);
    st_waitgraph_block(&g, &t2, &x2, wake_count, &woken2);
    ASSERT_EQ(st_waitgraph_blocked_owners(&g), 1);
    ASSERT_EQ(st_waitgraph_recheck(&g, &t2, tg_edges, NULL), 0);
    /* t1 is about to block on x1: its own search finds the cycle */
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t1, &x1, tg_edges, NULL, &path),
              1);
    ASSERT_EQ(path.len, 6);
    expect_node(&path, 0, ST_WG_TASK, &x1);
    expect_node(&path, 1, ST_WG_CONTEXT, &c2);
    expect_node(&path, 2, ST_WG_THREAD, &t2);
    expect_node(&path, 3, ST_WG_TASK, &x2);
    expect_node(&path, 4, ST_WG_CONTEXT, &c1);
    expect_node(&path, 5, ST_WG_THREAD, &t1);
    ASSERT_EQ(((st_wg_thread_t *)path.nodes[2].ptr)->ident, 2);
    /* it blocks anyway (warn mode): the recheck that follows finds t2
     * deadlocked and wakes it, but not t1 itself (self) */
    st_waitgraph_block(&g, &t1, &x1, wake_count, &woken1);
    st_waitgraph_set_reported(&g, &t1); /* warned once */
    ASSERT_EQ(st_waitgraph_recheck(&g, &t1, tg_edges, NULL), 1);
    ASSERT_EQ(woken2, 1);
    ASSERT_EQ(woken1, 0);
    /* flagged once: another recheck does not wake it again */
    ASSERT_EQ(st_waitgraph_recheck(&g, NULL, tg_edges, NULL), 0);
    ASSERT_EQ(woken2, 1);
    ASSERT_EQ(st_waitgraph_take_deadlocked(&g, &t2), 1);
    ASSERT_EQ(st_waitgraph_take_deadlocked(&g, &t2), 0);
    ASSERT_EQ(st_waitgraph_take_deadlocked(&g, &t1), 0);
    /* a non-owner that blocks is never rechecked (cost: see DESIGN) */
    st_waitgraph_block(&g, &t3, &x1, wake_count, &woken1);
    ASSERT_EQ(st_waitgraph_blocked_owners(&g), 2);
    /* t2's wait was reported after its wake; t1's unblock clears its
     * reported flag, and a recheck from a third party flags it again */
    st_waitgraph_set_reported(&g, &t2);
    st_waitgraph_unblock(&g, &t1);
    st_waitgraph_block(&g, &t1, &x1, wake_count, &woken1);
    ASSERT_EQ(st_waitgraph_recheck(&g, NULL, tg_edges, NULL), 1);
    ASSERT_EQ(woken1, 1);
    ASSERT_EQ(woken2, 1);
    st_waitgraph_unblock(&g, &t1);
    st_waitgraph_unblock(&g, &t2);
    st_waitgraph_unblock(&g, &t3);
    st_waitgraph_unblock(&g, &t3); /* a no-op */
    ASSERT_EQ(st_waitgraph_blocked_owners(&g), 0);
    ASSERT_OK(st_waitgraph_disown(&g, &t1, &c1));
    ASSERT_OK(st_waitgraph_disown(&g, &t2, &c2));
    ASSERT_EQ(st_waitgraph_owner_threads(&g), 0);
    st_wg_path_free(&path);
    st_waitgraph_detach(&g, &t1);
    st_waitgraph_detach(&g, &t2);
    st_waitgraph_detach(&g, &t3);
    st_waitgraph_destroy(&g);
}

TEST(wg_issue10_running_task_edge_c5)
{
    st_waitgraph_t g;
    st_wg_thread_t t, u;
    tg_task x, y, z;
    tg_ctx cu;
    st_wg_path_t path;

    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 1);
    st_wg_thread_init(&u, 2);
    st_waitgraph_attach(&g, &t);
    st_waitgraph_attach(&g, &u);
    st_wg_path_init(&path);
    task_init(&x);
    task_init(&y);
    task_init(&z);
    task_edge(&y, ST_WG_TASK, &x); /* y awaits x */
    task_edge(&x, ST_WG_TASK, &z); /* x's own edge: used only when idle */
    /* x's code runs on t (t is inside x's step) and t blocks on y: y
     * needs x, x needs t */
    ASSERT_OK(st_waitgraph_running_push(&g, &t, &x));
    ASSERT_EQ(st_waitgraph_running_depth(&t), 1);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &y, tg_edges, NULL, &path), 1);
    ASSERT_EQ(path.len, 3);
    expect_node(&path, 0, ST_WG_TASK, &y);
    expect_node(&path, 1, ST_WG_TASK, &x);
    expect_node(&path, 2, ST_WG_THREAD, &t);
    /* running on another, free thread: x needs u, which may progress */
    ASSERT_OK(st_waitgraph_running_pop(&g, &t, &x));
    ASSERT_OK(st_waitgraph_running_push(&g, &u, &x));
    task_edge(&z, ST_WG_CONTEXT, &cu);
    ASSERT_OK(st_waitgraph_own(&g, &u, &cu));
    g_edges_calls = 0;
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &y, tg_edges, NULL, NULL), 0);
    ASSERT_EQ(g_edges_calls, 1); /* y only: x's edges were not asked */
    /* x's code done: its own edges count again (x -> z -> cu -> u) */
    ASSERT_OK(st_waitgraph_running_pop(&g, &u, &x));
    ASSERT_RC(st_waitgraph_running_pop(&g, &u, &x), ST_EINVAL);
    st_waitgraph_block(&g, &u, &y, NULL, NULL);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &y, tg_edges, NULL, NULL), 0);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &u, &y, tg_edges, NULL, &path),
              1);
    ASSERT_EQ(path.len, 5);
    expect_node(&path, 3, ST_WG_CONTEXT, &cu);
    st_waitgraph_unblock(&g, &u);
    ASSERT_OK(st_waitgraph_disown(&g, &u, &cu));
    st_wg_path_free(&path);
    st_waitgraph_detach(&g, &t);
    st_waitgraph_detach(&g, &u);
    st_waitgraph_destroy(&g);
}

/* ----------------------------------------------------- growth and size */

TEST(wg_issue10_long_chain_no_depth_limit)
{
    enum { N = 10000 };
    st_waitgraph_t g;
    st_wg_thread_t t;
    tg_task *chain = st_calloc(N, sizeof(*chain));
    tg_ctx c;
    st_wg_path_t path;
    int i;

    ASSERT_NOT_NULL(chain);
    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 1);
    st_waitgraph_attach(&g, &t);
    st_wg_path_init(&path);
    for (i = 0; i < N; i++) {
        task_init(&chain[i]);
        if (i + 1 < N) {
            task_edge(&chain[i], ST_WG_TASK, &chain[i + 1]);
        }
    }
    task_edge(&chain[N - 1], ST_WG_CONTEXT, &c);
    ASSERT_OK(st_waitgraph_own(&g, &t, &c));
    /* 10000 awaits deep (the binding stopped at 64 and missed it) */
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &chain[0], tg_edges, NULL,
                                      &path),
              1);
    ASSERT_EQ(path.len, N + 2);
    expect_node(&path, 0, ST_WG_TASK, &chain[0]);
    expect_node(&path, N - 1, ST_WG_TASK, &chain[N - 1]);
    expect_node(&path, N, ST_WG_CONTEXT, &c);
    expect_node(&path, N + 1, ST_WG_THREAD, &t);
    ASSERT_OK(st_waitgraph_disown(&g, &t, &c));
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &chain[0], tg_edges, NULL,
                                      NULL),
              0);
    st_wg_path_free(&path);
    st_waitgraph_detach(&g, &t);
    st_waitgraph_destroy(&g);
    st_free(chain);
}

/* A ladder of L levels, each of two tasks that both await both tasks of
 * the next level: 2^L paths, L*2 nodes.  Each node is expanded once. */
TEST(wg_issue10_visited_set_bounds_the_work)
{
    enum { L = 60 };
    st_waitgraph_t g;
    st_wg_thread_t t;
    tg_task *lad = st_calloc(2 * L, sizeof(*lad));
    tg_ctx c;
    int i;

    ASSERT_NOT_NULL(lad);
    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 1);
    st_waitgraph_attach(&g, &t);
    for (i = 0; i < 2 * L; i++) {
        task_init(&lad[i]);
    }
    for (i = 0; i + 1 < L; i++) {
        task_edge(&lad[2 * i], ST_WG_TASK, &lad[2 * i + 2]);
        task_edge(&lad[2 * i], ST_WG_TASK, &lad[2 * i + 3]);
        task_edge(&lad[2 * i + 1], ST_WG_TASK, &lad[2 * i + 2]);
        task_edge(&lad[2 * i + 1], ST_WG_TASK, &lad[2 * i + 3]);
    }
    ASSERT_OK(st_waitgraph_own(&g, &t, &c));
    g_edges_calls = 0;
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &lad[0], tg_edges, NULL,
                                      NULL),
              0);
    ASSERT_LE(g_edges_calls, 2 * L); /* once per node, not per path */
    /* the bottom reaches t's context: found through the ladder */
    task_edge(&lad[2 * L - 1], ST_WG_CONTEXT, &c);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &lad[0], tg_edges, NULL,
                                      NULL),
              1);
    ASSERT_OK(st_waitgraph_disown(&g, &t, &c));
    st_waitgraph_detach(&g, &t);
    st_waitgraph_destroy(&g);
    st_free(lad);
}

/* A when_all over FAN inputs: its callback reports every input; only one
 * leads back.  The pending edges and the visited set grow. */
typedef struct fan_root {
    tg_task *inputs;
    int n;
} fan_root;

static int
fan_edges(void *arg, const void *task, st_wg_sink_t *sink)
{
    fan_root *root = arg;
    int i, rc;
    if (task == root) {
        for (i = 0; i < root->n; i++) {
            rc = st_waitgraph_edge(sink, ST_WG_TASK, &root->inputs[i]);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    return tg_edges(NULL, task, sink);
}

TEST(wg_issue10_wide_fan_out_grows)
{
    enum { FAN = 5000 };
    st_waitgraph_t g;
    st_wg_thread_t t;
    fan_root root;
    tg_ctx c;
    st_wg_path_t path;
    int i;

    root.inputs = st_calloc(FAN, sizeof(*root.inputs));
    root.n = FAN;
    ASSERT_NOT_NULL(root.inputs);
    for (i = 0; i < FAN; i++) {
        task_init(&root.inputs[i]);
    }
    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 1);
    st_waitgraph_attach(&g, &t);
    st_wg_path_init(&path);
    ASSERT_OK(st_waitgraph_own(&g, &t, &c));
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &root, fan_edges, &root,
                                      NULL),
              0);
    task_edge(&root.inputs[FAN / 2], ST_WG_CONTEXT, &c);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &root, fan_edges, &root,
                                      &path),
              1);
    ASSERT_EQ(path.len, 4);
    expect_node(&path, 1, ST_WG_TASK, &root.inputs[FAN / 2]);
    st_wg_path_free(&path);
    st_waitgraph_detach(&g, &t);
    st_waitgraph_destroy(&g);
    st_free(root.inputs);
}

TEST(wg_issue10_running_stack_grows_past_16)
{
    enum { N = 5000 };
    st_waitgraph_t g;
    st_wg_thread_t t, u;
    tg_task *tasks = st_calloc(N, sizeof(*tasks));
    tg_task y;
    int i;

    ASSERT_NOT_NULL(tasks);
    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 1);
    st_wg_thread_init(&u, 2);
    st_waitgraph_attach(&g, &t);
    st_waitgraph_attach(&g, &u);
    task_init(&y);
    for (i = 0; i < N; i++) {
        task_init(&tasks[i]);
        ASSERT_OK(st_waitgraph_running_push(&g, &t, &tasks[i]));
    }
    ASSERT_EQ(st_waitgraph_running_depth(&t), N);
    /* a task deep in the stack (the binding kept 16 and lost the rest,
     * and read past its array when asked for more) is still t's */
    task_edge(&y, ST_WG_TASK, &tasks[N - 1]);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &y, tg_edges, NULL, NULL), 1);
    task_init(&y);
    task_edge(&y, ST_WG_TASK, &tasks[17]);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &y, tg_edges, NULL, NULL), 1);
    /* from u's point of view t is free: no cycle through u */
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &u, &y, tg_edges, NULL, NULL), 0);
    /* an out-of-order pop removes just that entry */
    ASSERT_OK(st_waitgraph_running_pop(&g, &t, &tasks[17]));
    ASSERT_EQ(st_waitgraph_running_depth(&t), N - 1);
    ASSERT_EQ(st_waitgraph_find_cycle(&g, &t, &y, tg_edges, NULL, NULL), 0);
    ASSERT_RC(st_waitgraph_running_pop(&g, &t, &y), ST_EINVAL);
    for (i = N - 1; i >= 0; i--) {
        if (i != 17) {
            ASSERT_OK(st_waitgraph_running_pop(&g, &t, &tasks[i]));
        }
    }
    ASSERT_EQ(st_waitgraph_running_depth(&t), 0);
    /* many nested contexts (the binding refused a 9th) */
    for (i = 0; i < 100; i++) {
        ASSERT_OK(st_waitgraph_own(&g, &u, &tasks[i]));
    }
    ASSERT(st_waitgraph_owner_of(&g, &tasks[0]) == &u);
    ASSERT(st_waitgraph_owner_of(&g, &tasks[99]) == &u);
    ASSERT_EQ(st_waitgraph_owner_threads(&g), 1);
    for (i = 99; i >= 0; i--) {
        ASSERT_OK(st_waitgraph_disown(&g, &u, &tasks[i]));
    }
    ASSERT_EQ(st_waitgraph_owner_threads(&g), 0);
    ASSERT_NULL(st_waitgraph_owner_of(&g, &tasks[0]));
    /* detaching frees the arrays (ASan: no leak) */
    st_waitgraph_detach(&g, &t);
    st_waitgraph_detach(&g, &u);
    st_waitgraph_destroy(&g);
    st_free(tasks);
}

static int
failing_edges(void *arg, const void *task, st_wg_sink_t *sink)
{
    (void)arg;
    (void)task;
    /* a bad edge is refused; the callback's own error stops the walk */
    ASSERT_RC(st_waitgraph_edge(sink, ST_WG_THREAD, task), ST_EINVAL);
    ASSERT_RC(st_waitgraph_edge(sink, ST_WG_TASK, NULL), ST_EINVAL);
    return ST_ECANCELED;
}

TEST(wg_issue10_edges_error_stops_search)
{
    st_waitgraph_t g;
    st_wg_thread_t t;
    tg_task x;
    tg_ctx c;
    int woken = 0;

    st_waitgraph_init(&g);
    st_wg_thread_init(&t, 1);
    st_waitgraph_attach(&g, &t);
    task_init(&x);
    ASSERT_RC(st_waitgraph_find_cycle(&g, &t, &x, failing_edges, NULL,
                                      NULL),
              ST_ECANCELED);
    ASSERT_OK(st_waitgraph_own(&g, &t, &c));
    st_waitgraph_block(&g, &t, &x, wake_count, &woken);
    ASSERT_RC(st_waitgraph_recheck(&g, NULL, failing_edges, NULL),
              ST_ECANCELED);
    ASSERT_EQ(woken, 0);
    ASSERT_EQ(st_waitgraph_take_deadlocked(&g, &t), 0);
    st_waitgraph_unblock(&g, &t);
    ASSERT_OK(st_waitgraph_disown(&g, &t, &c));
    st_waitgraph_detach(&g, &t);
    st_waitgraph_destroy(&g);
}

/* -------------------------------------------------------------- stress */

/* RING threads each own a context ctx[i] and, every round, block on
 * rt[i], whose edge is ctx[(i+1) % RING]: once all of them block, the
 * ring is a cycle.  In "broken" rounds rt[RING-1] has no edge: never a
 * cycle.  Each ring thread searches before blocking (a hit counts as a
 * detection and it does not block), else blocks, rechecks the others, and
 * waits until the round is over; a recheck that flags it wakes it, and it
 * counts the flag.  NOISE threads meanwhile own, disown, push and pop
 * (past the initial stack size), block briefly on tasks that lead into
 * the ring, and search and recheck; they never close a cycle, so they are
 * never flagged and never find one.  Checked: every closed round has a
 * detection (no lost one, whatever the interleaving), no broken round has
 * one (no false positive), noise threads see none. */
#define RING 4
#define NOISE 3
#define WG_ROUNDS 120

typedef struct ring_state {
    st_waitgraph_t g;
    st_wg_thread_t rec[RING];
    st_event_t ev[RING];
    tg_task rt[RING];
    tg_ctx ctx[RING];
    tg_task nt[NOISE][48]; /* noise tasks: nt[j][0] leads into the ring */
    tg_ctx nctx[NOISE][2];
    st_test_barrier_t round_start, round_end;
    ST_ATOMIC(int) settled;    /* ring threads done or blocked */
    ST_ATOMIC(int) detections; /* in this round */
    ST_ATOMIC(int) round_over;
    ST_ATOMIC(int) stop;
    ST_ATOMIC(int) noise_hits; /* must stay 0 */
    ST_ATOMIC(long) noise_ops;
    int rounds;
} ring_state;

typedef struct ring_arg {
    ring_state *rs;
    int i;
} ring_arg;

static void
wake_event(st_wg_thread_t *rec, void *arg)
{
    (void)rec;
    st_event_set(arg); /* a leaf lock under the graph's */
}

static void
ring_main(void *arg)
{
    ring_arg *ra = arg;
    ring_state *rs = ra->rs;
    st_wg_thread_t *me = &rs->rec[ra->i];
    int round, rc;

    st_waitgraph_attach(&rs->g, me);
    ASSERT_OK(st_waitgraph_own(&rs->g, me, &rs->ctx[ra->i]));
    for (round = 0; round < rs->rounds; round++) {
        st_test_barrier_wait(&rs->round_start);
        rc = st_waitgraph_find_cycle(&rs->g, me, &rs->rt[ra->i], tg_edges,
                                     NULL, NULL);
        ASSERT_GE(rc, 0);
        if (rc == 1) {
            /* relaxed: counters read after the round's barrier */
            st_atomic_fetch_add(&rs->detections, 1, ST_RELAXED);
            st_atomic_fetch_add(&rs->settled, 1, ST_RELEASE);
        }
        else {
            st_event_reset(&rs->ev[ra->i]);
            st_waitgraph_block(&rs->g, me, &rs->rt[ra->i], wake_event,
                               &rs->ev[ra->i]);
            ASSERT_GE(st_waitgraph_recheck(&rs->g, me, tg_edges, NULL), 0);
            /* release: the coordinator's acquire sees the recheck done */
            st_atomic_fetch_add(&rs->settled, 1, ST_RELEASE);
            /* acquire: pairs with the coordinator's release store */
            while (!st_atomic_load(&rs->round_over, ST_ACQUIRE)) {
                (void)st_event_wait(&rs->ev[ra->i], 2000000u);
            }
            if (st_waitgraph_take_deadlocked(&rs->g, me)) {
                st_atomic_fetch_add(&rs->detections, 1, ST_RELAXED);
            }
            st_waitgraph_unblock(&rs->g, me);
        }
        st_test_barrier_wait(&rs->round_end);
    }
    ASSERT_OK(st_waitgraph_disown(&rs->g, me, &rs->ctx[ra->i]));
    st_waitgraph_detach(&rs->g, me);
}

static void
noise_main(void *arg)
{
    ring_arg *ra = arg;
    ring_state *rs = ra->rs;
    st_wg_thread_t me;
    st_test_rng_t rng;
    int depth, k, rc, woken = 0;

    st_wg_thread_init(&me, 1000 + (uint64_t)ra->i);
    st_waitgraph_attach(&rs->g, &me);
    ASSERT_OK(st_waitgraph_own(&rs->g, &me, &rs->nctx[ra->i][0]));
    st_test_rng_init(&rng, (uint64_t)ra->i + 7);
    /* relaxed: a stop flag */
    while (!st_atomic_load(&rs->stop, ST_RELAXED)) {
        depth = 1 + (int)st_test_rng_below(&rng, 40);
        for (k = 0; k < depth; k++) {
            ASSERT_OK(st_waitgraph_running_push(&rs->g, &me,
                                                &rs->nt[ra->i][k]));
        }
        switch (st_test_rng_below(&rng, 4)) {
        case 0: /* a nested context comes and goes */
            ASSERT_OK(st_waitgraph_own(&rs->g, &me, &rs->nctx[ra->i][1]));
            rc = st_waitgraph_recheck(&rs->g, &me, tg_edges, NULL);
            ASSERT_GE(rc, 0);
            ASSERT_OK(st_waitgraph_disown(&rs->g, &me,
                                          &rs->nctx[ra->i][1]));
            break;
        case 1: /* a search from a task that leads into the ring */
            rc = st_waitgraph_find_cycle(&rs->g, &me, &rs->nt[ra->i][47],
                                         tg_edges, NULL, NULL);
            ASSERT_GE(rc, 0);
            if (rc == 1) {
                st_atomic_fetch_add(&rs->noise_hits, 1, ST_RELAXED);
            }
            break;
        case 2: /* a short block (a timed wait: no search needed) */
            st_waitgraph_block(&rs->g, &me, &rs->nt[ra->i][47], wake_count,
                               &woken);
            ASSERT_GE(st_waitgraph_recheck(&rs->g, &me, tg_edges, NULL), 0);
            st_cpu_relax();
            if (st_waitgraph_take_deadlocked(&rs->g, &me)) {
                st_atomic_fetch_add(&rs->noise_hits, 1, ST_RELAXED);
            }
            st_waitgraph_unblock(&rs->g, &me);
            break;
        default:
            ASSERT_GE(st_waitgraph_recheck(&rs->g, NULL, tg_edges, NULL),
                      0);
            break;
        }
        for (k = depth - 1; k >= 0; k--) {
            ASSERT_OK(st_waitgraph_running_pop(&rs->g, &me,
                                               &rs->nt[ra->i][k]));
        }
        st_atomic_fetch_add(&rs->noise_ops, 1, ST_RELAXED);
    }
    ASSERT_EQ(woken, 0);
    ASSERT_OK(st_waitgraph_disown(&rs->g, &me, &rs->nctx[ra->i][0]));
    st_waitgraph_detach(&rs->g, &me);
}

TEST(wg_issue10_stress_ring_rounds_c6)
{
    ring_state *rs = st_calloc(1, sizeof(*rs));
    ring_arg args[RING + NOISE];
    st_thread_t t[RING + NOISE];
    int i, j, round, closed, det, closed_rounds = 0;
    uint64_t until;

    ASSERT_NOT_NULL(rs);
    rs->rounds = ST_TEST_ITERS(WG_ROUNDS);
    st_waitgraph_init(&rs->g);
    for (i = 0; i < RING; i++) {
        st_wg_thread_init(&rs->rec[i], (uint64_t)i + 1);
        st_event_init(&rs->ev[i]);
        task_init(&rs->rt[i]);
        task_edge(&rs->rt[i], ST_WG_CONTEXT, &rs->ctx[(i + 1) % RING]);
    }
    for (j = 0; j < NOISE; j++) {
        for (i = 0; i < 48; i++) {
            task_init(&rs->nt[j][i]);
        }
        /* the searched task awaits a ring task: searches walk the ring */
        task_edge(&rs->nt[j][47], ST_WG_TASK, &rs->rt[j % RING]);
    }
    st_test_barrier_init(&rs->round_start, RING + 1);
    st_test_barrier_init(&rs->round_end, RING + 1);
    for (i = 0; i < RING + NOISE; i++) {
        args[i].rs = rs;
        args[i].i = i < RING ? i : i - RING;
        st_test_thread_start(&t[i], i < RING ? ring_main : noise_main,
                             &args[i]);
    }
    for (round = 0; round < rs->rounds; round++) {
        /* every third round the ring is broken: rt[RING-1] has no edge.
         * relaxed: read by the edges callback; the ring threads are all
         * outside the graph here (between round_end and round_start), and
         * noise searches may see either value (both are correct) */
        closed = round % 3 != 2;
        st_atomic_store(&rs->rt[RING - 1].nedges, closed ? 1 : 0,
                        ST_RELAXED);
        st_atomic_store(&rs->settled, 0, ST_RELAXED);
        st_atomic_store(&rs->detections, 0, ST_RELAXED);
        st_atomic_store(&rs->round_over, 0, ST_RELAXED);
        st_test_barrier_wait(&rs->round_start);
        until = st_now_ns() + 10000000000u;
        /* acquire: pairs with the ring threads' release increments */
        while (st_atomic_load(&rs->settled, ST_ACQUIRE) < RING) {
            ASSERT_LT(st_now_ns(), until);
            st_test_sleep_us(100);
        }
        /* release: pairs with the ring threads' acquire loads */
        st_atomic_store(&rs->round_over, 1, ST_RELEASE);
        for (i = 0; i < RING; i++) {
            st_event_set(&rs->ev[i]);
        }
        st_test_barrier_wait(&rs->round_end);
        /* relaxed: the barrier ordered the ring threads' increments */
        det = st_atomic_load(&rs->detections, ST_RELAXED);
        if (closed) {
            ASSERT_GE(det, 1); /* no lost detection */
            closed_rounds++;
        }
        else {
            ASSERT_EQ(det, 0); /* no false positive */
        }
    }
    /* relaxed: the joins order the rest */
    st_atomic_store(&rs->stop, 1, ST_RELAXED);
    for (i = 0; i < RING + NOISE; i++) {
        st_thread_join(&t[i]);
    }
    ASSERT_EQ(st_atomic_load(&rs->noise_hits, ST_RELAXED), 0);
    ASSERT_GT(st_atomic_load(&rs->noise_ops, ST_RELAXED), 0);
    ASSERT_GT(closed_rounds, 0);
    ASSERT_EQ(st_waitgraph_owner_threads(&rs->g), 0);
    ASSERT_EQ(st_waitgraph_blocked_owners(&rs->g), 0);
    for (i = 0; i < RING; i++) {
        st_event_destroy(&rs->ev[i]);
    }
    st_test_barrier_destroy(&rs->round_start);
    st_test_barrier_destroy(&rs->round_end);
    st_waitgraph_destroy(&rs->g);
    st_free(rs);
}
