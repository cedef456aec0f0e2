/* st_pool.h - the thread pool: C worker threads running intrusive work
 * items from a global FIFO queue and from one work-stealing deque per
 * worker, with .NET's thread management (starvation injection, blocking
 * compensation, idle retirement) and a "domain" protocol for items that
 * need an interpreter.
 *
 * A work item is a node embedded in its owner ({run, next, flags});
 * queuing never allocates.  Items queued from a worker with
 * st_pool_submit_local go to that worker's deque (it pops the newest
 * first, other workers steal the oldest); everything else goes to the
 * global FIFO queue.  A worker looks in its deque, then the global queue,
 * then steals.
 *
 * Domain items (ST_WORK_DOMAIN; the binding uses them for Python) need the
 * attach hook: before running one a worker "attaches" (the binding takes
 * the GIL with the worker's persistent thread state), keeps running domain
 * items while attached until it finds none or a time slice is used up,
 * and "detaches" before it parks or runs a plain item.  At most one worker
 * at a time holds the domain token (is attached or attaching): the others
 * leave domain items to it and do plain work or park, so that only one
 * worker competes for the interpreter lock.  A token holder that makes no
 * progress inside an item for token_stall_ns (it blocks in user code) loses
 * the token to another worker; one that blocks in st_pool_enter_blocking
 * gives it up at once.  The pool never holds one of its mutexes while
 * calling a hook or an item.
 *
 * Signals: workers and dedicated threads run items with the signal mask
 * of the thread that called st_pool_create (as threads it started itself
 * would); the gate thread blocks every signal.
 *
 * Threads: min_threads workers start with the pool; more are added when a
 * worker announces that it blocks (st_pool_enter_blocking: at once up to
 * blocking_no_delay threads beyond the minimum, then one per growing
 * delay), and by the gate thread, which every gate_period_ns injects one
 * thread when work waits and nothing completed since its last look.
 * Workers idle for thread_timeout_ns above the minimum exit.
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
     * *slot is a per-thread pointer the hooks own (starts NULL).  Returns
     * 0 to proceed; non-zero refuses (the item goes to `drop`). */
    int (*attach)(void *arg, void **slot);
    /* Called on the worker to leave the domain (before parking, before a
     * non-domain item, when the slice is used up, before exiting). */
    void (*detach)(void *arg, void **slot);
    /* Called (on any thread, no lock held) with an item the pool will not
     * run: attach refused, or the pool shut down with it still queued. */
    void (*drop)(void *arg, st_work_t *w);
    /* Called on the thread just before it exits, detached, with its slot
     * (workers and dedicated threads). */
    void (*thread_exit)(void *arg, void **slot);
    /* Called on the worker after each domain item, still attached (may be
     * NULL): .NET resets a pool thread's state after every work item. */
    void (*after_item)(void *arg, void **slot);
    /* Longest time a worker stays attached while draining (0: 500 us). */
    uint64_t slice_ns;
} st_pool_hooks_t;

/* The pool's timing constants (.NET's names in brackets). */
typedef struct st_pool_tuning {
    /* How long the one spinning worker polls for work before it parks
     * (BENCHMARKS.md rule 5).  Default 30 us. */
    uint64_t spin_ns;
    /* An idle worker above the minimum exits after this long; UINT64_MAX:
     * never [ThreadTimeoutMs = 20 s]. */
    uint64_t thread_timeout_ns;
    /* The gate thread's starvation sample period; 0 disables starvation
     * injection [GateActivitiesPeriodMs = 500 ms]. */
    uint64_t gate_period_ns;
    /* A domain token holder with no progress inside an item for this long
     * loses the token.  Default 10 ms (twice CPython's switch interval). */
    uint64_t token_stall_ns;
    /* Blocking compensation: threads beyond the minimum added at once
     * [ThreadsToAddWithoutDelay = processor count], then one per delay of
     * step * (1 + extra / no_delay) [DelayStepMs = 25 ms], at most
     * delay_max [MaxDelayMs = 250 ms]. */
    int blocking_no_delay;
    uint64_t blocking_delay_step_ns;
    uint64_t blocking_delay_max_ns;
} st_pool_tuning_t;

/* Any thread.  Fills t with the defaults above. */
void st_pool_tuning_default(st_pool_tuning_t *t);

/* Any thread.  Creates a pool (with the default tuning) and returns once
 * min_threads workers run.  hooks may be NULL (no domain items).  Returns
 * 0, ST_EINVAL (bad counts: min < 1 or max < min), ST_ENOMEM. */
int st_pool_create(st_pool_t **out, int min_threads, int max_threads,
                   const st_pool_hooks_t *hooks);

/* Any thread.  Replaces the tuning (taken into account at each worker's
 * next park and the gate's next look).  0, or ST_EINVAL. */
int st_pool_set_tuning(st_pool_t *p, const st_pool_tuning_t *t);

/* Any thread.  Queues w on the global queue (the pool owns w->next until
 * run or drop).  Returns 0, or ST_ECLOSED after shutdown started (w was
 * not queued).  A worker may run w (and its run free it) before the call
 * returns: neither the pool nor the caller may touch w after a 0. */
int st_pool_submit(st_pool_t *p, st_work_t *w);

/* Any thread.  On a worker of p: queues w on that worker's deque (or the
 * global queue when the deque is full); elsewhere like st_pool_submit. */
int st_pool_submit_local(st_pool_t *p, st_work_t *w);

/* Any thread.  Runs w once on a new dedicated thread that is not a pool
 * worker (.NET's TaskCreationOptions.LongRunning); a domain item attaches
 * through the hooks with the thread's own slot.  Returns 0, ST_ECLOSED,
 * ST_ENOMEM (w was not started). */
int st_pool_submit_dedicated(st_pool_t *p, st_work_t *w);

/* Any thread but a pool thread of p.  Stops taking items, wakes and joins
 * every worker, the gate and the dedicated threads (an item running
 * finishes first), then hands every item still queued to `drop`.
 * Idempotent: later and concurrent calls return once it is done. */
void st_pool_shutdown(st_pool_t *p);

/* Like st_pool_shutdown, but waits at most timeout_ns for the threads.
 * Returns 0 when every thread was joined; ST_ETIMEDOUT when some are
 * still running an item.  Those are left running: a later call joins
 * them if they finished by then; until a call returns 0, p must not be
 * destroyed (at interpreter exit the binding leaks it). */
int st_pool_shutdown_timed(st_pool_t *p, uint64_t timeout_ns);

/* Any thread but a pool thread; after a shutdown that joined every
 * thread.  Frees p. */
void st_pool_destroy(st_pool_t *p);

/* Any thread.  1 once shutdown started. */
int st_pool_is_closing(st_pool_t *p);

/* The pool whose worker is the calling thread, or NULL (dedicated threads
 * are not workers). */
st_pool_t *st_pool_current(void);

/* A worker of p calls enter before a blocking wait and leave after it
 * (nesting counts once).  enter gives up the domain token and lets the
 * pool wake or add a worker for queued work (.NET 6+ blocking
 * compensation).  No-ops on other threads. */
void st_pool_enter_blocking(st_pool_t *p);
void st_pool_leave_blocking(st_pool_t *p);

/* Any thread.  1 while a worker holds the domain token (is attached or
 * attaching).  A hint: the binding spins on it before it retakes the
 * interpreter lock after a wait. */
int st_pool_domain_busy(st_pool_t *p);

/* Any thread.  One pause of a bounded spin-wait; *n counts the calls
 * (start at 0).  Mostly CPU pause instructions, but every few calls a
 * sched_yield: a spinner that shares its CPU with the thread it waits for
 * (the scheduler co-locates threads that wake each other) then lets that
 * thread run instead of burning the whole spin (.NET's SpinWait). */
void st_pool_spin_pause(unsigned *n);

/* Any thread.  Starvation events since the previous call (the binding
 * turns them into a warning on a thread that may run Python). */
uint64_t st_pool_take_starvation_notices(st_pool_t *p);

/* Thread limits, .NET's validation: min in [1, max], max >= min and >= 1.
 * Raising the minimum starts workers at once.  Return 0, or ST_EINVAL
 * (nothing changes).  Any thread. */
int st_pool_set_min_threads(st_pool_t *p, int n);
int st_pool_set_max_threads(st_pool_t *p, int n);

typedef struct st_pool_stats {
    int min_threads;
    int max_threads;
    int thread_count;           /* workers alive */
    int idle_count;             /* workers parked */
    int blocked_count;          /* workers inside enter/leave_blocking */
    int dedicated_count;        /* dedicated threads alive */
    int spinning;               /* 1 while a worker spins for work */
    int domain_busy;            /* 1 while the domain token is held */
    uint64_t pending;           /* items queued, not yet started */
    uint64_t completed;         /* items run since creation */
    uint64_t injected;          /* workers started by starvation or
                                   blocking compensation */
    uint64_t starvation_events; /* gate samples that injected a thread */
    uint64_t retired;           /* workers that exited while idle */
    uint64_t token_revocations; /* tokens taken from a stalled holder */
} st_pool_stats_t;

/* Any thread.  A snapshot (counts under the pool's lock, queue lengths
 * and completions read without it). */
void st_pool_get_stats(st_pool_t *p, st_pool_stats_t *out);

#endif /* ST_POOL_H */
