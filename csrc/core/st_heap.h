/* st_heap.h - intrusive 4-ary min-heap of timer entries (header only).
 *
 * An array of {deadline_ns, seq, entry} ordered by (deadline_ns, seq), so
 * entries with equal deadlines come out in the order they were added
 * (libuv's start_id).  Every entry stores its own position in heap_index,
 * which makes removal of an arbitrary entry O(log n).
 *
 * The keys live in the array itself: sifting compares neighbouring array
 * slots and never dereferences an entry (it only writes the moved
 * entries' heap_index), so a heap of 100k timers costs a few cache lines
 * per operation instead of one miss per visited entry.  Four children per
 * node halve the depth, and the four sit in two adjacent cache lines.
 * (libuv heap-inl.h links nodes instead: no array to grow, but three
 * pointers per entry and a miss per level.)
 *
 * The heap never allocates: the owner grows `items` (st_heap_reserve
 * tells it the capacity it needs) and hands the new array over with
 * st_heap_adopt.  Not thread safe: the owner provides the lock.  An
 * entry's deadline_ns and seq must not change while it is in the heap.
 */
#ifndef ST_HEAP_H
#define ST_HEAP_H

#include <stddef.h> /* size_t, NULL */
#include <stdint.h> /* uint64_t */
#include <string.h> /* memcpy */

#include "st_error.h"
#include "st_timer.h"

#define ST_HEAP_ARITY 4

typedef struct st_heap_item {
    uint64_t deadline_ns; /* copies of the entry's key */
    uint64_t seq;
    st_timer_entry_t *entry;
} st_heap_item_t;

typedef struct st_heap {
    st_heap_item_t *items; /* items[0] is the minimum */
    size_t count;
    size_t capacity;
} st_heap_t;

static inline void
st_heap_init(st_heap_t *h)
{
    h->items = NULL;
    h->count = 0;
    h->capacity = 0;
}

/* Entry order: (deadline, seq). */
static inline int
st_heap_less(const st_timer_entry_t *a, const st_timer_entry_t *b)
{
    if (a->deadline_ns != b->deadline_ns) {
        return a->deadline_ns < b->deadline_ns;
    }
    return a->seq < b->seq;
}

static inline int
st__heap_item_less(const st_heap_item_t *a, const st_heap_item_t *b)
{
    if (a->deadline_ns != b->deadline_ns) {
        return a->deadline_ns < b->deadline_ns;
    }
    return a->seq < b->seq;
}

/* The minimum, or NULL when empty. */
static inline st_timer_entry_t *
st_heap_min(const st_heap_t *h)
{
    return h->count > 0 ? h->items[0].entry : NULL;
}

/* The capacity one more insert needs: 0 when the array is big enough,
 * otherwise the size the owner should allocate (doubling, at least 16). */
static inline size_t
st_heap_reserve(const st_heap_t *h)
{
    if (h->count < h->capacity) {
        return 0;
    }
    return h->capacity < 8 ? 16 : h->capacity * 2;
}

/* Copies the heap into `items` (capacity slots, capacity >= count) and
 * returns the old array, which the owner frees. */
static inline st_heap_item_t *
st_heap_adopt(st_heap_t *h, st_heap_item_t *items, size_t capacity)
{
    st_heap_item_t *old = h->items;
    ST_ASSERT(capacity >= h->count);
    if (h->count > 0) {
        memcpy(items, old, h->count * sizeof(*items));
    }
    h->items = items;
    h->capacity = capacity;
    return old;
}

static inline void
st__heap_place(st_heap_t *h, size_t i, const st_heap_item_t *it)
{
    h->items[i] = *it;
    it->entry->heap_index = i;
}

/* Moves *it (to be placed at index i) up towards the root. */
static inline void
st__heap_sift_up(st_heap_t *h, size_t i, st_heap_item_t it)
{
    while (i > 0) {
        size_t parent = (i - 1) / ST_HEAP_ARITY;
        if (!st__heap_item_less(&it, &h->items[parent])) {
            break;
        }
        st__heap_place(h, i, &h->items[parent]);
        i = parent;
    }
    st__heap_place(h, i, &it);
}

/* Moves *it (to be placed at index i) down towards the leaves. */
static inline void
st__heap_sift_down(st_heap_t *h, size_t i, st_heap_item_t it)
{
    for (;;) {
        size_t first = ST_HEAP_ARITY * i + 1, best, c, end;
        if (first >= h->count) {
            break;
        }
        end = first + ST_HEAP_ARITY;
        if (end > h->count) {
            end = h->count;
        }
        best = first;
        for (c = first + 1; c < end; c++) {
            if (st__heap_item_less(&h->items[c], &h->items[best])) {
                best = c;
            }
        }
        if (!st__heap_item_less(&h->items[best], &it)) {
            break;
        }
        st__heap_place(h, i, &h->items[best]);
        i = best;
    }
    st__heap_place(h, i, &it);
}

/* Inserts e; the owner made room first (st_heap_reserve() == 0). */
static inline void
st_heap_insert(st_heap_t *h, st_timer_entry_t *e)
{
    st_heap_item_t it;

    ST_ASSERT(h->count < h->capacity);
    it.deadline_ns = e->deadline_ns;
    it.seq = e->seq;
    it.entry = e;
    h->count++;
    st__heap_sift_up(h, h->count - 1, it);
}

/* Removes e, which is in h.  O(log n). */
static inline void
st_heap_remove(st_heap_t *h, st_timer_entry_t *e)
{
    size_t i = e->heap_index;
    st_heap_item_t last;

    ST_ASSERT(i < h->count && h->items[i].entry == e);
    h->count--;
    last = h->items[h->count];
    h->items[h->count].entry = NULL;
    if (last.entry != e) {
        /* The last leaf fills the hole; it may belong above or below. */
        if (i > 0
            && st__heap_item_less(&last,
                                  &h->items[(i - 1) / ST_HEAP_ARITY])) {
            st__heap_sift_up(h, i, last);
        }
        else {
            st__heap_sift_down(h, i, last);
        }
    }
    e->heap_index = (size_t)-1;
}

/* Removes and returns the minimum, or NULL when empty. */
static inline st_timer_entry_t *
st_heap_pop(st_heap_t *h)
{
    st_timer_entry_t *e = st_heap_min(h);
    if (e != NULL) {
        st_heap_remove(h, e);
    }
    return e;
}

#endif /* ST_HEAP_H */
