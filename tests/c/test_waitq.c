/* test_waitq.c - tests of st_waitq.h, the waiter queue shared by
 * cancellation and the semaphore (issue 10 item "one waiter-queue
 * implementation shared by cancellation and the semaphore"): FIFO and
 * LIFO order, removal from the middle exactly once, fresh ids per link,
 * detached chains in order, and a node that moves between queues. */
#include "st_waitq.h"
#include "test.h"

#define NQ 6

TEST(waitq_issue10_fifo_and_lifo_order)
{
    st_waitq_t q;
    st_waitq_node_t n[NQ];
    int i;

    st_waitq_init(&q);
    ASSERT(st_waitq_empty(&q));
    ASSERT_NULL(st_waitq_pop_front(&q));
    ASSERT_NULL(st_waitq_front(&q));
    for (i = 0; i < NQ; i++) {
        st_waitq_node_init(&n[i], NULL);
        st_waitq_push_back(&q, &n[i]);
    }
    ASSERT_EQ(st_waitq_count(&q), NQ);
    ASSERT(st_waitq_front(&q) == &n[0]);
    for (i = 0; i < NQ; i++) {
        ASSERT(st_waitq_pop_front(&q) == &n[i]); /* FIFO */
        ASSERT(!n[i].linked);
    }
    ASSERT(st_waitq_empty(&q));
    ASSERT_EQ(st_waitq_count(&q), 0);
    for (i = 0; i < NQ; i++) {
        st_waitq_push_front(&q, &n[i]);
    }
    for (i = NQ - 1; i >= 0; i--) {
        ASSERT(st_waitq_pop_front(&q) == &n[i]); /* LIFO */
    }
    ASSERT_NULL(st_waitq_pop_front(&q));
    /* mixing both ends */
    st_waitq_push_back(&q, &n[1]);
    st_waitq_push_front(&q, &n[0]);
    st_waitq_push_back(&q, &n[2]);
    ASSERT(st_waitq_pop_front(&q) == &n[0]);
    ASSERT(st_waitq_pop_front(&q) == &n[1]);
    ASSERT(st_waitq_pop_front(&q) == &n[2]);
    ASSERT(st_waitq_empty(&q));
}

TEST(waitq_issue10_remove_exactly_once)
{
    st_waitq_t q, other;
    st_waitq_node_t n[NQ];
    int i;

    st_waitq_init(&q);
    st_waitq_init(&other);
    for (i = 0; i < NQ; i++) {
        st_waitq_node_init(&n[i], NULL);
        st_waitq_push_back(&q, &n[i]);
    }
    /* middle, head and tail */
    ASSERT_EQ(st_waitq_remove(&q, &n[2]), 1);
    ASSERT_EQ(st_waitq_remove(&q, &n[2]), 0); /* a second time: no */
    ASSERT_EQ(st_waitq_remove(&q, &n[0]), 1);
    ASSERT_EQ(st_waitq_remove(&q, &n[NQ - 1]), 1);
    ASSERT_EQ(st_waitq_count(&q), NQ - 3);
    /* not linked in `other`: nothing changes there or here */
    ASSERT(!st_waitq_contains(&other, &n[1]));
    ASSERT_EQ(st_waitq_remove(&other, &n[1]), 0);
    ASSERT(st_waitq_contains(&q, &n[1]));
    /* the rest keeps its order */
    ASSERT(st_waitq_pop_front(&q) == &n[1]);
    ASSERT(st_waitq_pop_front(&q) == &n[3]);
    ASSERT(st_waitq_pop_front(&q) == &n[4]);
    ASSERT(st_waitq_empty(&q));
    /* popped: remove answers 0 */
    ASSERT_EQ(st_waitq_remove(&q, &n[3]), 0);
    /* the last node alone */
    st_waitq_push_back(&q, &n[5]);
    ASSERT_EQ(st_waitq_remove(&q, &n[5]), 1);
    ASSERT(st_waitq_empty(&q));
    ASSERT_NULL(st_waitq_front(&q));
    st_waitq_push_back(&q, &n[4]); /* head and tail were reset */
    ASSERT(st_waitq_pop_front(&q) == &n[4]);
}

TEST(waitq_issue10_ids_owner_and_requeue)
{
    st_waitq_t a, b;
    st_waitq_node_t n, m;
    uint64_t first;

    st_waitq_init(&a);
    st_waitq_init(&b);
    st_waitq_node_init(&n, NULL);
    st_waitq_node_init(&m, NULL);
    ASSERT_EQ(n.id, 0);
    ASSERT_NULL(n.owner);
    st_waitq_push_back(&a, &n);
    st_waitq_push_back(&a, &m);
    first = n.id;
    ASSERT_GT(first, 0);
    ASSERT_GT(m.id, first);
    ASSERT(n.owner == &a);
    ASSERT_EQ(st_waitq_remove(&a, &n), 1);
    /* owner and id survive the unlink */
    ASSERT(n.owner == &a);
    ASSERT_EQ(n.id, first);
    /* linked again here: a fresh id, never the old one */
    st_waitq_push_front(&a, &n);
    ASSERT_GT(n.id, m.id);
    ASSERT(st_waitq_pop_front(&a) == &n);
    /* and in another queue */
    st_waitq_push_back(&b, &n);
    ASSERT(n.owner == &b);
    ASSERT(st_waitq_contains(&b, &n));
    ASSERT(!st_waitq_contains(&a, &n));
    ASSERT_EQ(st_waitq_remove(&a, &n), 0);
    ASSERT_EQ(st_waitq_remove(&b, &n), 1);
    ASSERT(st_waitq_pop_front(&a) == &m);
}

static int g_called[NQ];

static void
count_fn(st_waitq_node_t *node)
{
    g_called[node->id % NQ]++;
}

TEST(waitq_issue10_detach_all_chain)
{
    st_waitq_t q;
    st_waitq_node_t n[NQ], *chain, *c;
    int i;

    st_waitq_init(&q);
    ASSERT_NULL(st_waitq_detach_all(&q));
    for (i = 0; i < NQ; i++) {
        st_waitq_node_init(&n[i], count_fn);
        st_waitq_push_back(&q, &n[i]);
        g_called[i] = 0;
    }
    chain = st_waitq_detach_all(&q);
    ASSERT(st_waitq_empty(&q));
    ASSERT_EQ(st_waitq_count(&q), 0);
    for (i = 0; i < NQ; i++) {
        c = st_waitq_chain_pop(&chain);
        ASSERT(c == &n[i]); /* front first */
        ASSERT(!c->linked);
        ASSERT_NULL(c->next);
        ASSERT(!st_waitq_contains(&q, c));
        c->fn(c);
    }
    ASSERT_NULL(st_waitq_chain_pop(&chain));
    for (i = 0; i < NQ; i++) {
        ASSERT_EQ(g_called[i], 1);
    }
    /* a detached node links again */
    st_waitq_push_back(&q, &n[3]);
    ASSERT(st_waitq_pop_front(&q) == &n[3]);
}
