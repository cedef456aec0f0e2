/* st_timer.h - one timer thread and a min-heap of deadlines.
 *
 * Entries are intrusive ({deadline, seq, heap index, fire}); adding and
 * cancelling are O(log n) and never allocate beyond growing the heap array.
 * Entries with equal deadlines fire in the order they were added.  The timer
 * thread does no user work: `fire` should only hand the entry to a pool.
 * Due entries are taken out under the lock, then fired with no lock held.
 */
#ifndef ST_TIMER_H
#define ST_TIMER_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint64_t */

typedef struct st_timer_entry st_timer_entry_t;
typedef void (*st_timer_fn)(st_timer_entry_t *e);

struct st_timer_entry {
    uint64_t deadline_ns; /* st_now_ns() clock */
    uint64_t seq;         /* tie-break: FIFO among equal deadlines */
    size_t heap_index;    /* position in the heap while armed */
    st_timer_fn fire;     /* called on the timer thread, no lock held */
    int armed;            /* guarded by the timer's mutex */
};

typedef struct st_timer st_timer_t;

/* Any thread.  Starts the timer thread.  0 or ST_ENOMEM. */
int st_timer_create(st_timer_t **out);

/* Any thread.  Arms e (not armed now) to fire at deadline_ns; e->fire must
 * be set.  The timer owns e until it fires or is cancelled.  Returns 0, or
 * ST_ECLOSED after shutdown, ST_ENOMEM. */
int st_timer_add(st_timer_t *t, st_timer_entry_t *e, uint64_t deadline_ns);

/* Any thread.  Returns 0 if e was armed and is now removed (it will not
 * fire), ST_EBUSY if it already fired or is firing (fire owns it). */
int st_timer_cancel(st_timer_t *t, st_timer_entry_t *e);

/* Any thread.  Number of armed entries. */
size_t st_timer_count(st_timer_t *t);

/* Any thread but the timer thread.  Stops and joins the thread; armed
 * entries are left as they are (never fired).  Idempotent. */
void st_timer_shutdown(st_timer_t *t);

/* After st_timer_shutdown.  Frees t. */
void st_timer_destroy(st_timer_t *t);

#endif /* ST_TIMER_H */
