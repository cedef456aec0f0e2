/* st_heap.h - intrusive binary min-heap of timer entries (header only).
 *
 * An array of st_timer_entry_t pointers ordered by (deadline_ns, seq), so
 * entries with equal deadlines come out in the order they were added
 * (libuv's start_id).  Every entry stores its own position in heap_index,
 * which makes removal of an arbitrary entry O(log n) (libuv heap-inl.h
 * links nodes instead; an array is smaller and friendlier to the cache,
 * and the timer already owns a lock under which it can grow it).
 *
 * The heap never allocates: the owner grows `items` (st_heap_reserve tells
 * it the capacity it needs) and hands the new array over with
 * st_heap_adopt.  Not thread safe: the owner provides the lock.
 */
#ifndef ST_HEAP_H
#define ST_HEAP_H

#include <stddef.h> /* size_t, NULL */
#include <string.h> /* memcpy */

#include "st_error.h"
#include "st_timer.h"

typedef struct st_heap {
    st_timer_entry_t **items; /* items[0] is the minimum */
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

static inline int
st_heap_less(const st_timer_entry_t *a, const st_timer_entry_t *b)
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
    return h->count > 0 ? h->items[0] : NULL;
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

/* Copies the heap into `items` (capacity entries, capacity >= count) and
 * returns the old array, which the owner frees. */
static inline st_timer_entry_t **
st_heap_adopt(st_heap_t *h, st_timer_entry_t **items, size_t capacity)
{
    st_timer_entry_t **old = h->items;
    ST_ASSERT(capacity >= h->count);
    if (h->count > 0) {
        memcpy(items, old, h->count * sizeof(*items));
    }
    h->items = items;
    h->capacity = capacity;
    return old;
}

static inline void
st__heap_place(st_heap_t *h, size_t i, st_timer_entry_t *e)
{
    h->items[i] = e;
    e->heap_index = i;
}

/* Moves e (to be placed at index i) up towards the root. */
static inline void
st__heap_sift_up(st_heap_t *h, size_t i, st_timer_entry_t *e)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!st_heap_less(e, h->items[parent])) {
            break;
        }
        st__heap_place(h, i, h->items[parent]);
        i = parent;
    }
    st__heap_place(h, i, e);
}

/* Moves e (to be placed at index i) down towards the leaves. */
static inline void
st__heap_sift_down(st_heap_t *h, size_t i, st_timer_entry_t *e)
{
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count) {
            break;
        }
        if (child + 1 < h->count
            && st_heap_less(h->items[child + 1], h->items[child])) {
            child++;
        }
        if (!st_heap_less(h->items[child], e)) {
            break;
        }
        st__heap_place(h, i, h->items[child]);
        i = child;
    }
    st__heap_place(h, i, e);
}

/* Inserts e; the owner made room first (st_heap_reserve() == 0). */
static inline void
st_heap_insert(st_heap_t *h, st_timer_entry_t *e)
{
    ST_ASSERT(h->count < h->capacity);
    h->count++;
    st__heap_sift_up(h, h->count - 1, e);
}

/* Removes e, which is in h.  O(log n). */
static inline void
st_heap_remove(st_heap_t *h, st_timer_entry_t *e)
{
    size_t i = e->heap_index;
    st_timer_entry_t *last;

    ST_ASSERT(i < h->count && h->items[i] == e);
    h->count--;
    last = h->items[h->count];
    h->items[h->count] = NULL;
    if (last != e) {
        /* The last leaf fills the hole; it may belong above or below. */
        if (i > 0 && st_heap_less(last, h->items[(i - 1) / 2])) {
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
