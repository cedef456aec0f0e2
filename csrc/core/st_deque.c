/* st_deque.c - the Chase-Lev work-stealing deque of st_deque.h.
 *
 * A ring of atomic item pointers and two counters: `bottom`, where the
 * owner pushes and pops, and `top`, where thieves steal.  The items in the
 * deque are those at indices [top, bottom).  The owner works without a
 * read-modify-write except when it races thieves for the last item.
 *
 * DESIGN
 *
 * Invariants:
 *   - Only the owner writes `bottom`; `top` only grows, by a CAS from t to
 *     t + 1 that hands the item at index t to exactly one thread (a thief,
 *     or the owner taking the last item).
 *   - bottom - top (as a signed difference) is the number of items, in
 *     [0, capacity] between operations; it is -1 only inside a pop of an
 *     empty deque, which puts bottom back before it returns.
 *   - Slot i & mask holds the item of index i for top <= i < bottom.  The
 *     owner reuses a slot (index i + capacity) only after observing
 *     top > i, i.e. after the item of index i was taken.
 *   - Indices are compared by their unsigned difference cast to int64_t,
 *     so wrapping past UINT64_MAX changes nothing (tests start there).
 *
 * Threads.  st_deque_push and st_deque_pop: the owner only.  st_deque_steal
 * and st_deque_size: any thread.  init and destroy: while the deque is not
 * shared.  No function blocks, allocates (after init) or calls out.
 *
 * Lock order.  No locks.
 *
 * Memory ordering (Le, Pop, Cohen and Zappa Nardelli, "Correct and
 * Efficient Work-Stealing for Weak Memory Models", PPoPP 2013, with the
 * two seq_cst fences replaced by seq_cst accesses, which ThreadSanitizer
 * understands where it does not model fences):
 *   - push stores the slot (relaxed), then `bottom` with release (in fact
 *     seq_cst, for the pool's lost-wakeup argument): a thief that reads
 *     the new bottom (with acquire) sees the slot and every field the
 *     producer wrote in the item before pushing it.
 *   - pop stores the decremented bottom and then loads top, both seq_cst;
 *     steal loads top and then bottom, both seq_cst.  All four are in the
 *     single total order S, so the owner and a thief cannot both miss each
 *     other: either the thief sees the decremented bottom (and finds the
 *     deque empty, or races by CAS for the last item) or the owner sees
 *     the thief's incremented top.  This is the store-buffering pattern
 *     that plain release/acquire would allow to fail.
 *   - The CAS on top is seq_cst (it is in S with the loads above); the
 *     failure order is relaxed: a failed CAS takes nothing.
 *   - push loads top with acquire before reusing a slot: the thief that
 *     moved top past that slot read it before its CAS (release), so the
 *     owner's overwrite cannot be read by that thief.
 *   - The owner's restoring stores of bottom (empty pop, last-item race)
 *     are release, so a thief that reads them still synchronizes with the
 *     pushes before (no reliance on C11's "same thread" release sequences,
 *     which C++20 dropped).
 *
 * Alternatives rejected:
 *   - a growable ring (.NET's local queue doubles): the old array must
 *     outlive every thief that may still read it (hazard pointers or a
 *     graveyard), and growth allocates on the push path; a full fixed ring
 *     spills to the global queue instead, as Go's runq does;
 *   - a mutex per deque, or a spin lock for thieves (.NET): the owner's
 *     push and pop would pay a read-modify-write each, and this deque is
 *     the hot path of items queued from a worker;
 *   - 32-bit indices: they wrap after four billion items, which makes the
 *     thief's CAS ABA-prone in a long-lived process; 64-bit counters keep
 *     wrap-around correct and ABA out of reach;
 *   - returning NULL for both "empty" and "lost a race": the pool must know
 *     that a steal missed, so that it retries instead of parking.
 */
#include "st_deque.h"

#include <stddef.h> /* NULL, size_t */
#include <stdint.h> /* uint64_t, int64_t */

#include "st_alloc.h"  /* st_malloc/st_free: the ring */
#include "st_atomic.h" /* indices and slots */
#include "st_error.h"  /* ST_E* codes */

/* ---------------------------------------------------------- lifecycle */

int
st_deque_init(st_deque_t *d, size_t capacity, uint64_t start)
{
    size_t i;

    if (capacity < 2 || (capacity & (capacity - 1)) != 0) {
        return ST_EINVAL;
    }
    d->slots = st_malloc(capacity * sizeof(*d->slots));
    if (d->slots == NULL) {
        return ST_ENOMEM;
    }
    for (i = 0; i < capacity; i++) {
        st_atomic_init(&d->slots[i], NULL);
    }
    d->mask = (uint64_t)capacity - 1;
    st_atomic_init(&d->top, start);
    st_atomic_init(&d->bottom, start);
    return 0;
}

void
st_deque_destroy(st_deque_t *d)
{
    if (d->slots != NULL) {
        st_free((void *)d->slots);
        d->slots = NULL;
    }
}

/* ------------------------------------------------------------ methods */

int
st_deque_push(st_deque_t *d, st_work_t *w)
{
    /* relaxed: only this thread (the owner) writes bottom */
    uint64_t b = st_atomic_load(&d->bottom, ST_RELAXED);
    /* acquire: pairs with the thieves' CAS on top (see DESIGN) */
    uint64_t t = st_atomic_load(&d->top, ST_ACQUIRE);

    if (b - t > d->mask) {
        return ST_EBUSY; /* capacity items already (or a stale top) */
    }
    /* relaxed: published by the release store of bottom below */
    st_atomic_store(&d->slots[b & d->mask], w, ST_RELAXED);
    /* seq_cst (so release): publishes the slot and *w, pairs with the
     * seq_cst (so acquire) load of bottom in st_deque_steal; and seq_cst
     * for the pool's store-buffering pairs (st_deque_size_sc) */
    st_atomic_store(&d->bottom, b + 1, ST_SEQ_CST);
    return 0;
}

st_work_t *
st_deque_pop(st_deque_t *d)
{
    /* relaxed: only this thread (the owner) writes bottom */
    uint64_t b = st_atomic_load(&d->bottom, ST_RELAXED) - 1;
    uint64_t t;
    st_work_t *w;

    /* seq_cst: ordered before the load of top below (store-load); pairs
     * with the seq_cst loads of st_deque_steal */
    st_atomic_store(&d->bottom, b, ST_SEQ_CST);
    /* seq_cst: see the store above */
    t = st_atomic_load(&d->top, ST_SEQ_CST);
    if ((int64_t)(b - t) < 0) {
        /* empty: put bottom back (release: see DESIGN) */
        st_atomic_store(&d->bottom, b + 1, ST_RELEASE);
        return NULL;
    }
    /* relaxed: written by this thread's own push */
    w = st_atomic_load(&d->slots[b & d->mask], ST_RELAXED);
    if (b != t) {
        return w; /* more than one item: no thief can reach index b */
    }
    /* The last item: thieves may race for it through top. */
    /* seq_cst: in the total order with the thieves' loads and CAS */
    if (!st_atomic_cas(&d->top, &t, t + 1, ST_SEQ_CST, ST_RELAXED)) {
        w = NULL; /* a thief took it */
    }
    /* release: see DESIGN (restoring store) */
    st_atomic_store(&d->bottom, b + 1, ST_RELEASE);
    return w;
}

int
st_deque_steal(st_deque_t *d, st_work_t **out)
{
    /* seq_cst: see DESIGN; pairs with the store of bottom in pop */
    uint64_t t = st_atomic_load(&d->top, ST_SEQ_CST);
    /* seq_cst (so acquire): pairs with the release store of bottom in
     * push, which publishes the slot and the item */
    uint64_t b = st_atomic_load(&d->bottom, ST_SEQ_CST);
    st_work_t *w;

    *out = NULL;
    if ((int64_t)(b - t) <= 0) {
        return ST_ECLOSED;
    }
    /* relaxed: ordered by the acquire of bottom above; if the slot was
     * reused meanwhile, top moved and the CAS below fails */
    w = st_atomic_load(&d->slots[t & d->mask], ST_RELAXED);
    /* seq_cst: hands index t to one thread; in the total order with the
     * owner's pop (see DESIGN) */
    if (!st_atomic_cas(&d->top, &t, t + 1, ST_SEQ_CST, ST_RELAXED)) {
        return ST_EBUSY;
    }
    *out = w;
    return 0;
}

size_t
st_deque_size_sc(st_deque_t *d)
{
    /* seq_cst: see st_deque.h; pairs with the seq_cst store of bottom in
     * st_deque_push */
    uint64_t b = st_atomic_load(&d->bottom, ST_SEQ_CST);
    uint64_t t = st_atomic_load(&d->top, ST_SEQ_CST);
    int64_t n = (int64_t)(b - t);

    return n > 0 ? (size_t)n : 0;
}

size_t
st_deque_size(st_deque_t *d)
{
    /* relaxed: a statistic and a hint; callers re-check by popping */
    uint64_t b = st_atomic_load(&d->bottom, ST_RELAXED);
    uint64_t t = st_atomic_load(&d->top, ST_RELAXED);
    int64_t n = (int64_t)(b - t);

    return n > 0 ? (size_t)n : 0;
}
