/* st_pool.h - the thread pool: C worker threads running intrusive work
 * items from a global FIFO queue.
 *
 * A work item is a node embedded in its owner ({run, next}); queuing never
 * allocates.  Some items belong to a "domain" (the binding uses it for
 * Python): before running one, a worker "attaches" through a hook (the
 * binding takes the GIL with the worker's persistent thread state), then
 * keeps running domain items while attached until its queue is empty or a
 * time slice is used up, and "detaches" before it parks or runs a non-domain
 * item.  The pool never holds one of its mutexes while calling a hook or an
 * item.
 *
 * Threads: the pool starts min_threads workers at creation and may add more
 * up to max_threads: when work waits and no worker is idle, and when a
 * worker announces that it blocks (st_pool_enter_blocking).
 */
#ifndef ST_POOL_H
#define ST_POOL_H

#include <stdint.h> /* uint32_t, uint64_t */

typedef struct st_work st_work_t;
typedef void (*st_work_fn)(st_work_t *w);

#define ST_WORK_DOMAIN 0x1u /* needs the attach hook (Python) */

struct st_work {
    st_work_t *next; /* owned by the pool while queued */
    st_work_fn run;  /* called once, on a worker, no pool lock held */
    uint32_t flags;  /* ST_WORK_* */
};

typedef struct st_pool st_pool_t;

typedef struct st_pool_hooks {
    void *arg;
    /* Called on the worker before it runs a domain item while detached.
     * *slot is a per-worker pointer the hooks own (starts NULL).  Returns
     * 0 to proceed; non-zero refuses (the item goes to `drop`). */
    int (*attach)(void *arg, void **slot);
    /* Called on the worker to leave the domain (before parking, before a
     * non-domain item, when the slice is used up, before exiting). */
    void (*detach)(void *arg, void **slot);
    /* Called (on any thread, no lock held) with an item the pool will not
     * run: attach refused, or the pool shut down with it still queued. */
    void (*drop)(void *arg, st_work_t *w);
    /* Called on the worker just before it exits, detached, with its slot. */
    void (*thread_exit)(void *arg, void **slot);
    /* Longest time a worker stays attached while draining (0: 500 us). */
    uint64_t slice_ns;
} st_pool_hooks_t;

/* Any thread.  Creates a pool and returns once min_threads workers run.
 * hooks may be NULL (no domain items).  Returns 0, ST_EINVAL (bad counts:
 * min < 1 or max < min), ST_ENOMEM. */
int st_pool_create(st_pool_t **out, int min_threads, int max_threads,
                   const st_pool_hooks_t *hooks);

/* Any thread.  Queues w (the pool owns w->next until run or drop).
 * Returns 0, or ST_ECLOSED after shutdown started (w was not queued). */
int st_pool_submit(st_pool_t *p, st_work_t *w);

/* Any thread but a worker of p.  Stops taking items, wakes and joins every
 * worker (an item running finishes first), then hands every item still
 * queued to `drop`.  Idempotent. */
void st_pool_shutdown(st_pool_t *p);

/* Any thread but a worker; after st_pool_shutdown.  Frees p. */
void st_pool_destroy(st_pool_t *p);

/* Any thread.  1 once shutdown started. */
int st_pool_is_closing(st_pool_t *p);

/* The pool whose worker is the calling thread, or NULL. */
st_pool_t *st_pool_current(void);

/* A worker of p calls enter before a blocking wait and leave after it; the
 * pool may start a replacement worker so that queued work keeps running
 * (.NET 6+ blocking compensation).  No-ops on other threads. */
void st_pool_enter_blocking(st_pool_t *p);
void st_pool_leave_blocking(st_pool_t *p);

/* Thread limits.  Return 0, or ST_EINVAL for a bad value (nothing
 * changes).  Any thread. */
int st_pool_set_min_threads(st_pool_t *p, int n);
int st_pool_set_max_threads(st_pool_t *p, int n);

typedef struct st_pool_stats {
    int min_threads;
    int max_threads;
    int thread_count;    /* workers alive */
    int idle_count;      /* workers parked */
    int blocked_count;   /* workers inside enter/leave_blocking */
    uint64_t pending;    /* items queued, not yet started */
    uint64_t completed;  /* items run since creation */
    uint64_t injected;   /* workers started beyond min_threads */
} st_pool_stats_t;

/* Any thread.  Relaxed snapshot. */
void st_pool_get_stats(st_pool_t *p, st_pool_stats_t *out);

#endif /* ST_POOL_H */
