/* test_timer.c - tests of st_heap.h and st_timer.h: ordering by deadline
 * and FIFO among equal deadlines, cancel before/while/after firing, heap
 * integrity under 100k random adds and cancels, re-arming from fire, and
 * shutdown with armed entries. */
#include <string.h> /* memset */

#include "st_alloc.h"
#include "st_atomic.h"
#include "st_heap.h"
#include "st_list.h" /* st_container_of */
#include "st_timer.h"
#include "test.h"

#define SECOND 1000000000u
#define MS 1000000u

/* ------------------------------------------------------------- helpers */

/* Fire order, written by the timer thread only; read after `done`. */
typedef struct fire_log {
    int *ids;
    int cap;
    ST_ATOMIC(int) n;
    int target;
    st_event_t done;
} fire_log;

typedef struct tentry {
    st_timer_entry_t e;
    int id;
    int fired; /* written by the timer thread; read after `done` */
    fire_log *log;
} tentry;

static void
log_init(fire_log *l, int cap, int target)
{
    l->ids = st_calloc((size_t)cap, sizeof(int));
    ASSERT_NOT_NULL(l->ids);
    l->cap = cap;
    st_atomic_init(&l->n, 0);
    l->target = target;
    st_event_init(&l->done);
}

static void
log_destroy(fire_log *l)
{
    st_event_destroy(&l->done);
    st_free(l->ids);
}

static void
log_wait(fire_log *l)
{
    ASSERT_OK(st_event_wait(&l->done, 20ull * SECOND));
}

static void
tentry_fire(st_timer_entry_t *e)
{
    tentry *t = st_container_of(e, tentry, e);
    fire_log *l = t->log;
    /* relaxed: only the timer thread writes n; the event publishes */
    int n = st_atomic_load(&l->n, ST_RELAXED);

    ASSERT(!e->armed);
    ASSERT_LT(n, l->cap);
    t->fired++;
    l->ids[n] = t->id;
    st_atomic_store(&l->n, n + 1, ST_RELAXED); /* relaxed: as above */
    if (n + 1 == l->target) {
        st_event_set(&l->done);
    }
}

static void
tentry_init(tentry *t, int id, fire_log *l)
{
    memset(t, 0, sizeof(*t));
    t->e.fire = tentry_fire;
    t->id = id;
    t->log = l;
}

/* A gate entry: its fire blocks the timer thread until released, so the
 * test can arm and cancel many entries with nothing firing meanwhile. */
typedef struct gate {
    st_timer_entry_t e;
    st_event_t entered;
    st_event_t release;
} gate;

static void
gate_fire(st_timer_entry_t *e)
{
    gate *g = st_container_of(e, gate, e);

    st_event_set(&g->entered);
    ASSERT_OK(st_event_wait(&g->release, 20ull * SECOND));
}

static void
gate_close(gate *g, st_timer_t *t)
{
    memset(g, 0, sizeof(*g));
    g->e.fire = gate_fire;
    st_event_init(&g->entered);
    st_event_init(&g->release);
    ASSERT_OK(st_timer_add(t, &g->e, st_now_ns()));
    ASSERT_OK(st_event_wait(&g->entered, 20ull * SECOND));
}

static void
gate_open(gate *g)
{
    st_event_set(&g->release);
}

static void
gate_destroy(gate *g)
{
    st_event_destroy(&g->entered);
    st_event_destroy(&g->release);
}

static void
stop(st_timer_t *t)
{
    st_timer_shutdown(t);
    st_timer_destroy(t);
}

/* ---------------------------------------------------------------- heap */

static void
heap_check(const st_heap_t *h)
{
    size_t i;

    for (i = 0; i < h->count; i++) {
        const st_timer_entry_t *e = h->items[i].entry;
        ASSERT_EQ(e->heap_index, i);
        /* the inline key is the entry's */
        ASSERT_EQ(h->items[i].deadline_ns, e->deadline_ns);
        ASSERT_EQ(h->items[i].seq, e->seq);
        if (i > 0) {
            ASSERT(!st_heap_less(
                e, h->items[(i - 1) / ST_HEAP_ARITY].entry));
        }
    }
}

static void
heap_grow(st_heap_t *h)
{
    size_t need = st_heap_reserve(h);
    st_heap_item_t *fresh, *old;

    if (need != 0) {
        fresh = st_malloc(need * sizeof(*fresh));
        ASSERT_NOT_NULL(fresh);
        old = st_heap_adopt(h, fresh, need);
        st_free(old);
    }
}

TEST(heap_random_ops)
{
    enum { N = 4000 };
    st_timer_entry_t *e;
    st_heap_t h;
    st_test_rng_t rng;
    st_timer_entry_t *prev;
    size_t in = 0;
    int i, ops, checked = 0;
    int *in_heap;

    e = st_calloc(N, sizeof(*e));
    in_heap = st_calloc(N, sizeof(int));
    ASSERT_NOT_NULL(e);
    ASSERT_NOT_NULL(in_heap);
    st_heap_init(&h);
    ASSERT_NULL(st_heap_min(&h));
    ASSERT_NULL(st_heap_pop(&h));
    st_test_rng_init(&rng, 5);
    for (ops = 0; ops < 20 * N; ops++) {
        i = (int)st_test_rng_below(&rng, N);
        if (in_heap[i]) {
            st_heap_remove(&h, &e[i]);
            in_heap[i] = 0;
            in--;
        }
        else {
            e[i].deadline_ns = st_test_rng_below(&rng, 50); /* many ties */
            e[i].seq = (uint64_t)ops;
            heap_grow(&h);
            st_heap_insert(&h, &e[i]);
            in_heap[i] = 1;
            in++;
        }
        ASSERT_EQ(h.count, in);
        if (ops % 97 == 0) {
            heap_check(&h);
            checked++;
        }
    }
    heap_check(&h);
    /* popping yields (deadline, seq) order */
    prev = NULL;
    while (st_heap_min(&h) != NULL) {
        st_timer_entry_t *m = st_heap_pop(&h);
        ASSERT_EQ(m->heap_index, (size_t)-1);
        if (prev != NULL) {
            ASSERT(st_heap_less(prev, m));
        }
        prev = m;
        in--;
    }
    ASSERT_EQ(in, 0);
    ASSERT_GT(checked, 0);
    st_free(h.items);
    st_free(in_heap);
    st_free(e);
}

/* ------------------------------------------------------------ ordering */

TEST(timer_order_deadline_then_fifo)
{
    /* deadlines relative to a past base: all due when the gate opens */
    static const int offset[] = {3, 1, 1, 2, 1, 0, 2};
    static const int expect[] = {5, 1, 2, 4, 3, 6, 0};
    enum { N = 7 };
    tentry te[N];
    fire_log l;
    gate g;
    st_timer_t *t;
    uint64_t base;
    int i;

    ASSERT_OK(st_timer_create(&t));
    log_init(&l, N, N);
    gate_close(&g, t);
    base = st_now_ns();
    for (i = 0; i < N; i++) {
        tentry_init(&te[i], i, &l);
        ASSERT_OK(st_timer_add(t, &te[i].e, base + (uint64_t)offset[i]));
        ASSERT(te[i].e.armed);
    }
    for (i = 1; i < N; i++) {
        ASSERT_GT(te[i].e.seq, te[i - 1].e.seq);
    }
    ASSERT_EQ(st_timer_count(t), N);
    gate_open(&g);
    log_wait(&l);
    for (i = 0; i < N; i++) {
        ASSERT_EQ(l.ids[i], expect[i]);
        ASSERT_EQ(te[i].fired, 1);
    }
    ASSERT_EQ(st_timer_count(t), 0);
    stop(t);
    gate_destroy(&g);
    log_destroy(&l);
}

TEST(timer_fires_on_time)
{
    tentry a, b;
    fire_log l;
    st_timer_t *t;
    uint64_t start;

    ASSERT_OK(st_timer_create(&t));
    log_init(&l, 2, 2);
    tentry_init(&a, 1, &l);
    tentry_init(&b, 2, &l);
    start = st_now_ns();
    /* b is added later with an earlier deadline: the thread, asleep until
     * a's deadline, must re-evaluate */
    ASSERT_OK(st_timer_add(t, &a.e, start + 60 * MS));
    st_test_sleep_us(5000);
    ASSERT_OK(st_timer_add(t, &b.e, start + 30 * MS));
    log_wait(&l);
    ASSERT_GE(st_now_ns() - start, 60 * MS);
    ASSERT_EQ(l.ids[0], 2);
    ASSERT_EQ(l.ids[1], 1);
    stop(t);
    log_destroy(&l);
}

TEST(timer_earlier_entry_wakes_thread)
{
    tentry far, near;
    fire_log l;
    st_timer_t *t;
    uint64_t start;

    ASSERT_OK(st_timer_create(&t));
    log_init(&l, 2, 1);
    tentry_init(&far, 1, &l);
    tentry_init(&near, 2, &l);
    ASSERT_OK(st_timer_add(t, &far.e, st_now_ns() + 3600ull * SECOND));
    st_test_sleep_us(5000); /* the thread sleeps until far's deadline */
    start = st_now_ns();
    ASSERT_OK(st_timer_add(t, &near.e, start + 10 * MS));
    log_wait(&l);
    ASSERT_LT(st_now_ns() - start, 10ull * SECOND);
    ASSERT_EQ(l.ids[0], 2);
    ASSERT_OK(st_timer_cancel(t, &far.e));
    ASSERT_EQ(st_timer_count(t), 0);
    stop(t);
    log_destroy(&l);
}

/* -------------------------------------------------------------- cancel */

TEST(timer_cancel)
{
    tentry a;
    fire_log l;
    gate g;
    st_timer_t *t;

    ASSERT_OK(st_timer_create(&t));
    log_init(&l, 4, 1);
    tentry_init(&a, 1, &l);

    /* before firing: 0, and it never fires */
    ASSERT_OK(st_timer_add(t, &a.e, st_now_ns() + 20 * MS));
    ASSERT_EQ(st_timer_count(t), 1);
    ASSERT_OK(st_timer_cancel(t, &a.e));
    ASSERT(!a.e.armed);
    ASSERT_EQ(st_timer_count(t), 0);
    ASSERT_RC(st_timer_cancel(t, &a.e), ST_EBUSY); /* not armed */
    st_test_sleep_us(40000);
    ASSERT_EQ(st_atomic_load(&l.n, ST_RELAXED), 0);

    /* re-armed after a cancel, it fires; cancel after firing: EBUSY */
    ASSERT_OK(st_timer_add(t, &a.e, st_now_ns()));
    log_wait(&l);
    ASSERT_EQ(a.fired, 1);
    ASSERT_RC(st_timer_cancel(t, &a.e), ST_EBUSY);

    /* while firing: EBUSY */
    gate_close(&g, t);
    ASSERT_RC(st_timer_cancel(t, &g.e), ST_EBUSY);
    gate_open(&g);
    stop(t);
    gate_destroy(&g);
    log_destroy(&l);
}

/* 100k entries with random deadlines, many of them
 * equal, armed while the gate holds the timer thread; a random third is
 * cancelled, some right after being added, some later, some re-armed.
 * The rest must fire exactly once, in (deadline, seq) order. */
TEST(timer_stress_random)
{
    int n = 100000;
    tentry *te;
    st_test_rng_t rng;
    fire_log l;
    gate g;
    st_timer_t *t;
    uint64_t base;
    int i, j, armed = 0, cancels = 0;
    int *state; /* 0 never armed, 1 armed, 2 cancelled */

    te = st_calloc((size_t)n, sizeof(*te));
    state = st_calloc((size_t)n, sizeof(int));
    ASSERT_NOT_NULL(te);
    ASSERT_NOT_NULL(state);
    ASSERT_OK(st_timer_create(&t));
    gate_close(&g, t);
    base = st_now_ns();
    st_test_rng_init(&rng, 42);
    log_init(&l, n, 1); /* target set below */
    for (i = 0; i < n; i++) {
        tentry_init(&te[i], i, &l);
        /* within 20 ms, in 1 ms steps: lots of ties, some due at once */
        ASSERT_OK(st_timer_add(t, &te[i].e,
                               base + st_test_rng_below(&rng, 20) * MS));
        state[i] = 1;
        armed++;
        if (st_test_rng_below(&rng, 3) == 0) {
            j = (int)st_test_rng_below(&rng, (uint64_t)i + 1);
            if (state[j] == 1) {
                ASSERT_OK(st_timer_cancel(t, &te[j].e));
                state[j] = 2;
                armed--;
                cancels++;
            }
            else if (state[j] == 2 && st_test_rng_below(&rng, 2) == 0) {
                ASSERT_OK(st_timer_add(t, &te[j].e,
                                       base + st_test_rng_below(&rng, 20)
                                                  * MS));
                state[j] = 1;
                armed++;
            }
        }
    }
    ASSERT_EQ(st_timer_count(t), (size_t)armed);
    ASSERT_GT(cancels, n / 5);
    l.target = armed;
    gate_open(&g);
    log_wait(&l);
    ASSERT_EQ(st_atomic_load(&l.n, ST_RELAXED), armed);
    for (i = 1; i < armed; i++) {
        st_timer_entry_t *a = &te[l.ids[i - 1]].e;
        st_timer_entry_t *b = &te[l.ids[i]].e;
        ASSERT(a->deadline_ns < b->deadline_ns
               || (a->deadline_ns == b->deadline_ns && a->seq < b->seq));
    }
    for (i = 0; i < n; i++) {
        ASSERT_EQ(te[i].fired, state[i] == 1 ? 1 : 0);
        ASSERT_RC(st_timer_cancel(t, &te[i].e), ST_EBUSY);
    }
    ASSERT_EQ(st_timer_count(t), 0);
    stop(t);
    gate_destroy(&g);
    log_destroy(&l);
    st_free(state);
    st_free(te);
}

/* ------------------------------------------------------------- re-arm */

typedef struct periodic {
    st_timer_entry_t e;
    st_timer_t *timer;
    int left;
    st_event_t done;
} periodic;

static void
periodic_fire(st_timer_entry_t *e)
{
    periodic *pe = st_container_of(e, periodic, e);

    if (--pe->left > 0) {
        /* re-arm from fire: the timer holds no lock while firing */
        ASSERT_OK(st_timer_add(pe->timer, e, st_now_ns() + MS));
        ASSERT_EQ(st_timer_count(pe->timer), 1);
    }
    else {
        st_event_set(&pe->done);
    }
}

TEST(timer_rearm_from_fire)
{
    periodic pe;
    st_timer_t *t;

    ASSERT_OK(st_timer_create(&t));
    memset(&pe, 0, sizeof(pe));
    pe.e.fire = periodic_fire;
    pe.timer = t;
    pe.left = 10;
    st_event_init(&pe.done);
    ASSERT_OK(st_timer_add(t, &pe.e, st_now_ns()));
    ASSERT_OK(st_event_wait(&pe.done, 20ull * SECOND));
    ASSERT_EQ(pe.left, 0);
    stop(t);
    st_event_destroy(&pe.done);
}

/* ----------------------------------------------------------- shutdown */

static void
timer_shutdown_thread(void *arg)
{
    st_timer_shutdown(arg);
}

TEST(timer_shutdown_with_armed)
{
    enum { N = 10 };
    tentry te[N], late;
    st_thread_t th[2];
    fire_log l;
    st_timer_t *t;
    int i;

    ASSERT_OK(st_timer_create(&t));
    log_init(&l, N + 1, N + 1);
    for (i = 0; i < N; i++) {
        tentry_init(&te[i], i, &l);
        ASSERT_OK(st_timer_add(t, &te[i].e,
                               st_now_ns() + 3600ull * SECOND + (uint64_t)i));
    }
    st_test_thread_start(&th[0], timer_shutdown_thread, t);
    st_test_thread_start(&th[1], timer_shutdown_thread, t);
    st_thread_join(&th[0]);
    st_thread_join(&th[1]);
    st_timer_shutdown(t); /* idempotent */
    /* armed entries stay armed and never fire */
    ASSERT_EQ(st_timer_count(t), N);
    tentry_init(&late, N, &l);
    ASSERT_RC(st_timer_add(t, &late.e, st_now_ns()), ST_ECLOSED);
    ASSERT(!late.e.armed);
    ASSERT_OK(st_timer_cancel(t, &te[3].e)); /* still the caller's */
    ASSERT_EQ(st_timer_count(t), N - 1);
    ASSERT_EQ(st_atomic_load(&l.n, ST_RELAXED), 0);
    st_timer_destroy(t);
    log_destroy(&l);
}

TEST(timer_shutdown_idle)
{
    st_timer_t *t;

    ASSERT_OK(st_timer_create(&t));
    stop(t);
    ASSERT_OK(st_timer_create(&t));
    st_test_sleep_us(1000);
    stop(t);
}
