/* st_timer.c - the timer: one thread sleeping until the nearest deadline of
 * a min-heap of intrusive entries, then firing the due ones.
 *
 * st_timer_add arms an entry, st_timer_cancel disarms it in O(log n), and
 * the timer thread calls each due entry's `fire` once, with no lock held.
 * The entries belong to their callers (the binding embeds them in Python
 * objects, tests on the stack); the timer only links them into its heap.
 *
 * DESIGN
 *
 * Invariants (all under t->mu):
 *   - e->armed == 1  <=>  e is in t->heap, at index e->heap_index.
 *   - The heap is ordered by (deadline_ns, seq); seq comes from a counter
 *     that only grows, so equal deadlines fire in the order they were added
 *     (libuv's start_id).
 *   - Only the timer thread takes entries out of the heap to fire them; it
 *     clears `armed` under the lock when it takes one.  From then on the
 *     entry belongs to `fire`: st_timer_cancel answers ST_EBUSY, and the
 *     timer never touches the entry again after calling fire.  An entry
 *     cancelled while firing is the caller's to reclaim after fire ran (the
 *     "marked and freed lazily" of Redis ae.c lives in the binding, which
 *     knows the entry's owner).
 *   - closing only goes from 0 to 1; once it is 1 nothing is armed and the
 *     thread exits at its next look at the heap.  Armed entries stay armed
 *     and are never fired: the caller reclaims them.
 *
 * Threads.  st_timer_add, st_timer_cancel and st_timer_count: any thread,
 * including inside fire.  st_timer_shutdown: any thread but the timer
 * thread (it joins it; asserted).  st_timer_destroy: after shutdown.
 *
 * The thread.  It waits on t->cv: without a deadline when the heap is
 * empty, otherwise with a timed wait until the nearest deadline.  An add
 * that becomes the new minimum signals cv so the thread re-evaluates; any
 * other add or cancel leaves it alone (a wake for a cancelled minimum is
 * harmless: the thread looks again and sleeps again).  Due entries are
 * moved, in heap order, to a local batch of at most BATCH_MAX entries under
 * the lock; the batch is fired with the lock released, so fire may call
 * st_timer_add/cancel (re-arming a periodic timer) or st_pool_submit.  The
 * thread is made by st_thread_create, so every signal is blocked in it.
 *
 * Lock order.  t->mu is a leaf: nothing else is locked while it is held,
 * and no callback and no allocation happens under it.  The global order is
 * written in st_pool.c.
 *
 * Memory ordering.  There are no atomics: every shared field is guarded by
 * t->mu, and the mutex orders an add (and whatever the caller stored in its
 * entry before) before the fire that follows it.
 *
 * Growing the heap.  st_timer_add allocates a bigger array with t->mu
 * released, then re-checks and adopts it under the lock.  The allocator
 * may be PyMem_RawMalloc, which tracemalloc hooks, and the hook can wait
 * for the interpreter lock: waiting for it with t->mu held would deadlock
 * against a thread that holds the interpreter lock and calls
 * st_timer_add.  An array is never shrunk.
 *
 * Alternatives rejected:
 *   - a sorted list (Redis ae.c): O(n) insertion, and the binding keeps
 *     thousands of Task.delay timers armed;
 *   - a hashed timer wheel: O(1) but with a tick, so it wakes up idle
 *     processes and rounds deadlines; the heap sleeps exactly until the
 *     next deadline;
 *   - a linked heap (libuv heap-inl.h): no array to grow, but three
 *     pointers per entry and pointer chasing; the array plus a stored
 *     index gives the same O(log n) cancel;
 *   - a binary heap of entry pointers (the first version): every
 *     comparison dereferenced an entry, a cache miss per level with 100k
 *     timers; st_heap.h keeps the keys in the array, 4 children a node;
 *   - firing under the lock: fire could not re-arm, and a cancel from a
 *     thread that fire waits for would deadlock;
 *   - running user work on this thread: one slow callback would delay
 *     every other timer, so fire only hands the entry to a pool.
 */
#include "st_timer.h"

#include <stddef.h> /* size_t, NULL */
#include <stdint.h> /* uint64_t, SIZE_MAX */

#include "st_alloc.h"  /* st_malloc/st_free: the only allocator */
#include "st_error.h"  /* ST_E* codes, ST_ASSERT */
#include "st_heap.h"   /* the min-heap of entries */
#include "st_thread.h" /* mutex, condvar, thread, clock */
#include "st_trace.h"  /* timer.fired (D2) */

/* ------------------------------------------------------------ structs */

/* Due entries taken out per lock hold.  Small on purpose: with 100k armed
 * entries each removal sifts ~9 levels of the heap, and an add from a
 * thread holding the interpreter lock (Task.delay) must not queue behind
 * a long batch (W7 measured ~2.3 us per delay with 64, ~1.6 with 4). */
#define BATCH_MAX 4


struct st_timer {
    st_mutex_t mu;
    st_cond_t cv;      /* the timer thread sleeps here */
    st_cond_t done_cv; /* late shutdown callers wait here for the join */
    st_heap_t heap;    /* guarded by mu */
    uint64_t next_seq; /* guarded by mu */
    int closing;       /* guarded by mu; 0 -> 1 once */
    int joined;        /* guarded by mu; 1 once the thread was joined */
    st_thread_t thread;
};

/* The timer whose thread is the calling thread (to catch a shutdown from
 * inside fire, which would join itself). */
static ST_THREAD_LOCAL st_timer_t *tls_timer;

/* ------------------------------------------------------- timer thread */

/* Executed only by the timer thread. */
static void
timer_main(void *arg)
{
    st_timer_t *t = arg;
    st_timer_entry_t *batch[BATCH_MAX];
    st_timer_entry_t *e;
    uint64_t now;
    size_t n, i;

    tls_timer = t;
    st_thread_set_name("sharptask-timer", -1);
    st_mutex_lock(&t->mu);
    while (!t->closing) {
        e = st_heap_min(&t->heap);
        if (e == NULL) {
            st_cond_wait(&t->cv, &t->mu);
            continue;
        }
        now = st_now_ns();
        if (e->deadline_ns > now) {
            (void)st_cond_timedwait(&t->cv, &t->mu, e->deadline_ns - now);
            continue;
        }
        /* Take the due entries in (deadline, seq) order. */
        n = 0;
        while (n < BATCH_MAX && (e = st_heap_min(&t->heap)) != NULL
               && e->deadline_ns <= now) {
            st_heap_remove(&t->heap, e);
            e->armed = 0; /* from here on, fire owns e */
            batch[n++] = e;
        }
        st_mutex_unlock(&t->mu);
        /* A disarmed entry must fire even if closing was set meanwhile:
         * its cancel already answered ST_EBUSY. */
        for (i = 0; i < n; i++) {
            e = batch[i];
            ST_TRACE(ST_TRACE_TIMER_FIRED, 0, e->deadline_ns, 0);
            e->fire(e); /* e may be freed or re-armed from here on */
        }
        st_mutex_lock(&t->mu);
    }
    st_mutex_unlock(&t->mu);
}

/* ---------------------------------------------------------- lifecycle */

int
st_timer_create(st_timer_t **out)
{
    st_timer_t *t = NULL;
    int rc;

    *out = NULL;
    t = st_calloc(1, sizeof(*t));
    if (t == NULL) {
        rc = ST_ENOMEM;
        goto error;
    }
    st_mutex_init(&t->mu);
    st_cond_init(&t->cv);
    st_cond_init(&t->done_cv);
    st_heap_init(&t->heap);
    rc = st_thread_create(&t->thread, timer_main, t);
    if (rc != 0) {
        goto error;
    }
    *out = t;
    return 0;

error:
    if (t != NULL) {
        st_cond_destroy(&t->done_cv);
        st_cond_destroy(&t->cv);
        st_mutex_destroy(&t->mu);
        st_free(t);
    }
    return rc;
}

void
st_timer_shutdown(st_timer_t *t)
{
    ST_ASSERT(tls_timer != t); /* fire must not shut its own timer down */
    st_mutex_lock(&t->mu);
    if (!t->closing) {
        t->closing = 1;
        st_cond_signal(&t->cv);
        st_mutex_unlock(&t->mu);
        st_thread_join(&t->thread);
        st_mutex_lock(&t->mu);
        t->joined = 1;
        st_cond_broadcast(&t->done_cv);
    }
    else {
        /* Another caller is joining: return only once it is done. */
        while (!t->joined) {
            st_cond_wait(&t->done_cv, &t->mu);
        }
    }
    st_mutex_unlock(&t->mu);
}

void
st_timer_destroy(st_timer_t *t)
{
    if (t == NULL) {
        return;
    }
    ST_ASSERT(t->joined);
    if (t->heap.items != NULL) {
        st_free(t->heap.items);
    }
    st_cond_destroy(&t->done_cv);
    st_cond_destroy(&t->cv);
    st_mutex_destroy(&t->mu);
    st_free(t);
}

/* ------------------------------------------------------------ methods */

int
st_timer_add(st_timer_t *t, st_timer_entry_t *e, uint64_t deadline_ns)
{
    st_heap_item_t *fresh = NULL; /* allocated, not yet adopted */
    st_heap_item_t *old = NULL;   /* replaced by fresh, to free */
    size_t fresh_cap = 0;
    size_t need;
    int rc = 0;

    ST_ASSERT(e->fire != NULL);
    st_mutex_lock(&t->mu);
    while (!t->closing && (need = st_heap_reserve(&t->heap)) != 0) {
        if (fresh != NULL && fresh_cap >= need) {
            old = st_heap_adopt(&t->heap, fresh, fresh_cap);
            fresh = NULL;
            continue;
        }
        /* Never allocate under mu (see DESIGN); another add may grow the
         * heap meanwhile, hence the loop. */
        st_mutex_unlock(&t->mu);
        if (fresh != NULL) {
            st_free(fresh);
        }
        fresh_cap = need;
        fresh = need > SIZE_MAX / sizeof(*fresh)
                    ? NULL
                    : st_malloc(need * sizeof(*fresh));
        st_mutex_lock(&t->mu);
        if (fresh == NULL) {
            rc = ST_ENOMEM;
            break;
        }
    }
    if (rc == 0 && t->closing) {
        rc = ST_ECLOSED;
    }
    if (rc == 0) {
        ST_ASSERT(!e->armed); /* armed twice would corrupt the heap */
        e->deadline_ns = deadline_ns;
        e->seq = t->next_seq++;
        e->armed = 1;
        st_heap_insert(&t->heap, e);
        if (e->heap_index == 0) {
            /* New nearest deadline: the thread re-evaluates its wait. */
            st_cond_signal(&t->cv);
        }
    }
    st_mutex_unlock(&t->mu);
    if (old != NULL) {
        st_free(old);
    }
    if (fresh != NULL) {
        st_free(fresh);
    }
    return rc;
}

int
st_timer_cancel(st_timer_t *t, st_timer_entry_t *e)
{
    int rc;

    st_mutex_lock(&t->mu);
    if (e->armed) {
        st_heap_remove(&t->heap, e);
        e->armed = 0;
        rc = 0;
    }
    else {
        rc = ST_EBUSY; /* fired, firing, or never armed */
    }
    st_mutex_unlock(&t->mu);
    return rc;
}

size_t
st_timer_count(st_timer_t *t)
{
    size_t n;

    st_mutex_lock(&t->mu);
    n = t->heap.count;
    st_mutex_unlock(&t->mu);
    return n;
}
