/* st_deque.h - the work-stealing deque of one pool worker (Chase-Lev).
 *
 * One owner thread pushes and pops work items at the bottom (LIFO: the
 * newest first, warm in its cache); any other thread may steal at the top
 * (FIFO: the oldest first).  The ring has a fixed capacity chosen at init:
 * a push that finds it full fails with ST_EBUSY and the caller puts the
 * item elsewhere (the pool's global queue), so pushing never allocates and
 * the ring never moves under a thief.
 *
 * The indices are 64-bit counters that only grow and are compared by their
 * difference, so they may wrap around; st_deque_init takes the start value
 * so that tests can start them just below the wrap (the .NET DEBUG trick).
 */
#ifndef ST_DEQUE_H
#define ST_DEQUE_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint64_t */

#include "st_atomic.h" /* the indices and the slots are atomics */
#include "st_pool.h"   /* st_work_t */

typedef struct st_deque {
    /* Written by thieves (CAS) and by the owner's last-item race. */
    ST_ATOMIC(uint64_t) top;
    char pad_top[ST_CACHELINE - sizeof(uint64_t)];
    /* Written by the owner only; read by thieves. */
    ST_ATOMIC(uint64_t) bottom;
    char pad_bottom[ST_CACHELINE - sizeof(uint64_t)];
    /* Read-only after init. */
    ST_ATOMIC(st_work_t *) *slots;
    uint64_t mask; /* capacity - 1 */
} st_deque_t;

/* Any thread, before the deque is shared.  capacity is a power of two
 * (>= 2); both indices start at `start` (0 in production; tests start
 * near UINT64_MAX).  Returns 0, ST_EINVAL, or ST_ENOMEM. */
int st_deque_init(st_deque_t *d, size_t capacity, uint64_t start);

/* Once no thread uses the deque any more.  Items still in it are the
 * caller's (st_deque_steal them out first). */
void st_deque_destroy(st_deque_t *d);

/* Executed only by the owner.  Pushes w at the bottom; the deque holds w
 * (without touching w->next) until it is popped or stolen.  The store
 * that publishes it is seq_cst (see st_deque_size_sc).  Returns 0, or
 * ST_EBUSY when the ring is full (w was not pushed). */
int st_deque_push(st_deque_t *d, st_work_t *w);

/* Executed only by the owner.  Pops the newest item, or NULL when empty
 * (or when a thief won the race for the last item). */
st_work_t *st_deque_pop(st_deque_t *d);

/* Any thread (the owner too).  Steals the oldest item into *out.  Returns
 * 0 with *out set; ST_ECLOSED when the deque was empty; ST_EBUSY when
 * another thread took that item first (the deque may still hold more:
 * the caller may retry). */
int st_deque_steal(st_deque_t *d, st_work_t **out);

/* Any thread.  Items in the deque now (a racy snapshot, >= 0). */
size_t st_deque_size(st_deque_t *d);

/* Like st_deque_size with seq_cst loads: after a caller's own seq_cst
 * store, it cannot miss a push whose seq_cst bottom store came first (the
 * pool's store-buffering pairs; see st_pool.c). */
size_t st_deque_size_sc(st_deque_t *d);

#endif /* ST_DEQUE_H */
