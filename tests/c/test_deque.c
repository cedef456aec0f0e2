/* test_deque.c - tests of st_deque.h: LIFO for the owner and FIFO for
 * thieves, the full and empty cases, index wrap-around, and a stress run
 * of one owner against many thieves (under TSan in `make check-c`) in
 * which every item must be taken exactly once, with each thief seeing
 * its items in push order. */
#include <string.h> /* memset */

#include "st_alloc.h"
#include "st_atomic.h"
#include "st_deque.h"
#include "st_list.h" /* st_container_of */
#include "test.h"

/* ------------------------------------------------------------- helpers */

typedef struct ditem {
    st_work_t work;
    int seq;
    ST_ATOMIC(int) taken; /* 1 once taken by anyone */
} ditem;

static int
seq_of(st_work_t *w)
{
    return st_container_of(w, ditem, work)->seq;
}

static void
items_init(ditem *items, int n)
{
    int i;

    memset(items, 0, (size_t)n * sizeof(*items));
    for (i = 0; i < n; i++) {
        items[i].seq = i;
        st_atomic_init(&items[i].taken, 0);
    }
}

/* --------------------------------------------------------------- basic */

static void
check_basic(uint64_t start)
{
    enum { CAP = 8 };
    ditem items[CAP + 1];
    st_deque_t d;
    st_work_t *w;
    int i;

    items_init(items, CAP + 1);
    ASSERT_RC(st_deque_init(&d, 6, start), ST_EINVAL); /* not a power */
    ASSERT_RC(st_deque_init(&d, 1, start), ST_EINVAL);
    ASSERT_OK(st_deque_init(&d, CAP, start));
    ASSERT_NULL(st_deque_pop(&d));
    ASSERT_RC(st_deque_steal(&d, &w), ST_ECLOSED);
    ASSERT_NULL(w);
    ASSERT_EQ(st_deque_size(&d), 0);

    for (i = 0; i < CAP; i++) {
        ASSERT_OK(st_deque_push(&d, &items[i].work));
    }
    ASSERT_EQ(st_deque_size(&d), CAP);
    ASSERT_EQ(st_deque_size_sc(&d), CAP);
    ASSERT_RC(st_deque_push(&d, &items[CAP].work), ST_EBUSY); /* full */
    /* thieves take the oldest, the owner the newest */
    ASSERT_OK(st_deque_steal(&d, &w));
    ASSERT_EQ(seq_of(w), 0);
    ASSERT_OK(st_deque_steal(&d, &w));
    ASSERT_EQ(seq_of(w), 1);
    ASSERT_EQ(seq_of(st_deque_pop(&d)), CAP - 1);
    ASSERT_EQ(seq_of(st_deque_pop(&d)), CAP - 2);
    /* room again: the ring reuses the stolen slots */
    ASSERT_OK(st_deque_push(&d, &items[CAP].work));
    ASSERT_EQ(seq_of(st_deque_pop(&d)), CAP);
    for (i = 2; i < CAP - 2; i++) {
        ASSERT_OK(st_deque_steal(&d, &w));
        ASSERT_EQ(seq_of(w), i);
    }
    ASSERT_NULL(st_deque_pop(&d));
    ASSERT_RC(st_deque_steal(&d, &w), ST_ECLOSED);
    ASSERT_EQ(st_deque_size(&d), 0);
    /* one item: the owner's pop and a steal both see it */
    ASSERT_OK(st_deque_push(&d, &items[0].work));
    ASSERT_EQ(seq_of(st_deque_pop(&d)), 0);
    ASSERT_OK(st_deque_push(&d, &items[1].work));
    ASSERT_OK(st_deque_steal(&d, &w));
    ASSERT_EQ(seq_of(w), 1);
    ASSERT_NULL(st_deque_pop(&d));
    st_deque_destroy(&d);
}

TEST(deque_lifo_fifo_full_empty)
{
    check_basic(0);
}

/* The same with the indices crossing UINT64_MAX mid-way, many times. */
TEST(deque_wraparound)
{
    enum { CAP = 4, ROUNDS = 64 };
    ditem items[CAP];
    st_deque_t d;
    st_work_t *w;
    int r, i;

    check_basic(UINT64_MAX - 3);
    check_basic(UINT64_MAX);
    items_init(items, CAP);
    ASSERT_OK(st_deque_init(&d, CAP, UINT64_MAX - 40));
    for (r = 0; r < ROUNDS; r++) {
        /* fill, steal one, pop the rest: indices advance by CAP a round */
        for (i = 0; i < CAP; i++) {
            ASSERT_OK(st_deque_push(&d, &items[i].work));
        }
        ASSERT_RC(st_deque_push(&d, &items[0].work), ST_EBUSY);
        ASSERT_EQ(st_deque_size(&d), CAP);
        ASSERT_OK(st_deque_steal(&d, &w));
        ASSERT_EQ(seq_of(w), 0);
        for (i = CAP - 1; i >= 1; i--) {
            ASSERT_EQ(seq_of(st_deque_pop(&d)), i);
        }
        ASSERT_NULL(st_deque_pop(&d));
        ASSERT_EQ(st_deque_size(&d), 0);
    }
    st_deque_destroy(&d);
}

/* -------------------------------------------------------------- stress */

#define THIEVES 4

typedef struct stress {
    st_deque_t d;
    ditem *items;
    int n;
    st_test_barrier_t start;
    ST_ATOMIC(int) done;        /* the owner pushed and popped its last */
    ST_ATOMIC(int) taken_total; /* items taken by anyone */
    int thief_taken[THIEVES];   /* per thief, read after the join */
} stress;

typedef struct thief_arg {
    stress *s;
    int id;
} thief_arg;

static void
take(stress *s, st_work_t *w)
{
    ditem *it = st_container_of(w, ditem, work);

    /* relaxed: an exactly-once check; the join orders the final read */
    ASSERT_EQ(st_atomic_fetch_add(&it->taken, 1, ST_RELAXED), 0);
    st_atomic_fetch_add(&s->taken_total, 1, ST_RELAXED);
}

static void
thief(void *arg)
{
    thief_arg *ta = arg;
    stress *s = ta->s;
    st_work_t *w;
    int last = -1, rc;

    st_test_barrier_wait(&s->start);
    for (;;) {
        rc = st_deque_steal(&s->d, &w);
        if (rc == 0) {
            /* FIFO for thieves: a thief's own steals come in push order */
            ASSERT_GT(seq_of(w), last);
            last = seq_of(w);
            take(s, w);
            ta->s->thief_taken[ta->id]++;
            continue;
        }
        /* acquire: pairs with the owner's release of done */
        if (rc == ST_ECLOSED && st_atomic_load(&s->done, ST_ACQUIRE)) {
            break;
        }
    }
}

static void
run_stress(uint64_t start_index, size_t capacity)
{
    stress s;
    thief_arg ta[THIEVES];
    st_thread_t th[THIEVES];
    st_test_rng_t rng;
    st_work_t *w;
    int i, pushed = 0, owner_taken = 0, thieves_taken = 0;

    s.n = ST_TEST_ITERS(200000);
    s.items = st_calloc((size_t)s.n, sizeof(ditem));
    ASSERT_NOT_NULL(s.items);
    items_init(s.items, s.n);
    ASSERT_OK(st_deque_init(&s.d, capacity, start_index));
    st_atomic_init(&s.done, 0);
    st_atomic_init(&s.taken_total, 0);
    memset(s.thief_taken, 0, sizeof(s.thief_taken));
    st_test_barrier_init(&s.start, THIEVES + 1);
    for (i = 0; i < THIEVES; i++) {
        ta[i].s = &s;
        ta[i].id = i;
        st_test_thread_start(&th[i], thief, &ta[i]);
    }
    st_test_rng_init(&rng, start_index ^ capacity);
    st_test_barrier_wait(&s.start);
    /* The owner: bursts of pushes, random pops, sometimes a full ring. */
    while (pushed < s.n) {
        int burst = 1 + (int)st_test_rng_below(&rng, 2 * capacity);
        for (i = 0; i < burst && pushed < s.n; i++) {
            if (st_deque_push(&s.d, &s.items[pushed].work) != 0) {
                break; /* full: pop some below */
            }
            pushed++;
        }
        burst = (int)st_test_rng_below(&rng, capacity);
        for (i = 0; i < burst; i++) {
            w = st_deque_pop(&s.d);
            if (w == NULL) {
                break;
            }
            take(&s, w);
            owner_taken++;
        }
    }
    while ((w = st_deque_pop(&s.d)) != NULL) {
        take(&s, w);
        owner_taken++;
    }
    /* release: the thieves' last failed steal may stop after this */
    st_atomic_store(&s.done, 1, ST_RELEASE);
    for (i = 0; i < THIEVES; i++) {
        st_thread_join(&th[i]);
        thieves_taken += s.thief_taken[i];
    }
    ASSERT_EQ(owner_taken + thieves_taken, s.n);
    ASSERT_EQ(st_atomic_load(&s.taken_total, ST_RELAXED), s.n);
    for (i = 0; i < s.n; i++) {
        ASSERT_EQ(st_atomic_load(&s.items[i].taken, ST_RELAXED), 1);
    }
    ASSERT_EQ(st_deque_size(&s.d), 0);
    st_test_barrier_destroy(&s.start);
    st_deque_destroy(&s.d);
    st_free(s.items);
}

TEST(deque_stress_owner_and_thieves)
{
    run_stress(0, 64);
}

/* The stress again with the indices wrapping around during the run, and
 * a tiny ring so that the last-item race and full rings are frequent. */
TEST(deque_stress_wraparound)
{
    run_stress(UINT64_MAX - 1000, 4);
    run_stress(UINT64_MAX - 50000, 256);
}
