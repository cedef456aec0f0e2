/* st_pool.c - the thread pool: worker threads taking intrusive work items
 * from their own work-stealing deque, a global FIFO queue and each other's
 * deques; one spinning worker at most, LIFO parking with one wake per
 * submit at most; a domain token so that one worker at a time competes
 * for the interpreter; a gate thread for starvation injection, token
 * stalls and delayed blocking compensation; idle retirement; dedicated
 * threads for long-running items.
 *
 * A pool owns its threads from st_pool_create to st_pool_shutdown; it
 * never allocates to queue an item (st_work_t embeds its link), never runs
 * an item or a hook with a mutex held, and never leaves a thread behind
 * (except, by request, one stuck in an item at a timed shutdown).
 *
 * DESIGN
 *
 * Invariants.
 *   - An item is the pool's from the moment it is pushed: a worker may
 *     take, run and free it before the push returns, so the submitter
 *     reads what it needs (is it a domain item?) before the push and never
 *     touches the item after it (issue 9 item 1).  The same holds for a
 *     put-back and for a retiring worker's moved items; a worker reads an
 *     item's flags before running it, never after.
 *   - Every queued item is in exactly one place: the global list (ghead,
 *     under gmu; gcount mirrors its length) or one worker's deque.  An
 *     item taken from a queue is run once or handed to hooks.drop once;
 *     a worker that takes a domain item it may not run (another worker
 *     holds the token) puts it back where it was (the front of the global
 *     list, or its own deque).
 *   - Worker records live in `table` from their creation to
 *     st_pool_destroy, so a thief may always read any record's deque; a
 *     record whose thread exited (retired) is joined by the gate and
 *     reused by the next spawn.  state: FREE (joined) -> RUNNING ->
 *     EXITED -> JOINING -> FREE, under mu.
 *   - thread_count counts workers RUNNING or being spawned; idle_count the
 *     parked ones (the LIFO stack idle_top, whose length `parked`
 *     mirrors); blocked_count the workers inside enter/leave_blocking;
 *     live_threads every thread of the pool not yet exited (workers, the
 *     gate, dedicated threads).  All under mu.
 *   - spinning is 0 or 1.  It is 1 while one worker polls for work before
 *     parking, and from the moment a worker is woken until it finds work
 *     or gives up: the waker sets it for the woken worker.  While it is 1,
 *     a submit wakes nobody.
 *   - token is NULL or the one worker that is attached or attaching.  Other
 *     workers attached (after a revocation, or back from a blocking wait)
 *     finish their item and detach.
 *   - closing goes from 0 to 1 once, under gmu and mu.  After that nothing
 *     is queued (submit refuses under gmu) and nothing is spawned.
 *
 * Threads.  submit, submit_local (on a worker: its deque), submit_dedicated,
 * is_closing, domain_busy, take_starvation_notices, get_stats, set_*: any
 * thread.  enter/leave_blocking: no-ops except on a worker of p.
 * shutdown: any thread but a pool thread of p.  destroy: after a complete
 * shutdown.  Deque push/pop: the owner worker only; steal: any worker and
 * the shutdown.
 *
 * The worker loop.  A worker takes an item (own deque, LIFO; the global
 * list, FIFO; a steal from a random victim, FIFO), runs it with no lock
 * held, and counts it in its own `completed` (summed by readers, as .NET
 * sums per-thread counts).  With nothing to do it detaches (dropping the
 * token), then spins for spin_ns if no other worker spins, watching the
 * queue lengths, then parks on its own condition variable, pushed on the
 * idle stack (LIFO: the most recently parked, warmest, worker is woken
 * first, and the others may time out and retire).
 *
 * Waking (BENCHMARKS.md rule 5, .NET's LowLevelLifoSemaphore).  After a
 * push, submit wakes one parked worker only if nobody spins, and only
 * if the item can be run: a domain item while the token is held is left
 * to the holder.  So one submit sends at most one wake, and none while a
 * worker spins.  The woken worker counts as the spinner until it finds
 * work; if it then still sees work and took a plain item, it wakes the
 * next one (a baton, as .NET's thread request and Go's spinning M), so a
 * burst ramps up the workers one wake at a time.
 *
 * The domain protocol.  A detached worker with a domain item takes the
 * token (a CAS from NULL), then calls hooks.attach; if attach refuses,
 * the item goes to hooks.drop.  Attached, it runs domain items back to
 * back until it finds none, or slice_ns passed since the attach (the
 * clock is read after every item), or it lost the token; then it detaches
 * and drops the token.  It also detaches before a plain item, before it
 * spins and parks, and before it exits.  So attach and detach alternate
 * strictly per worker, and no hook runs with a pool lock held.
 *
 * Thread management (.NET 6+, reference 7.10-7.15).
 *   - st_pool_create starts min_threads workers and returns once they
 *     run (libuv's synchronous start); raising the minimum starts more.
 *   - A submit that finds no spinner and nobody parked adds a worker only
 *     when a worker is blocked (the goal is min + blocked, capped by max)
 *     or the pool is below its minimum: a burst never becomes a thread
 *     per item.
 *   - enter_blocking drops the token, wakes a parked worker if work waits,
 *     else adds one: blocking_no_delay threads beyond the minimum at
 *     once, further ones only after a delay (step * (1 + extra /
 *     no_delay), at most delay_max) since the previous one, which the gate
 *     retries.
 *   - The gate thread samples every gate_period_ns: work pending, nothing
 *     completed since the previous sample and nobody parked is starvation:
 *     it injects one thread (up to max), counts the event, and leaves a
 *     notice for the binding's warning.  At most one thread per period.
 *   - The gate also watches the token while domain work waits (a worker
 *     that attaches with work still visible, or that parks because
 *     another holds the token, switches the gate to polling every
 *     token_stall_ns / 4): a holder inside an item with no completion for
 *     token_stall_ns (blocked in user code, such as a sleep) loses the
 *     token and a parked worker is woken to take it.  A holder waiting
 *     for the interpreter lock is never revoked (that wait is the point
 *     of the token), and a revoked holder finishes its item, then
 *     detaches.
 *   - Spinning uses st_pool_spin_pause: CPU pauses and, every fourth
 *     call, sched_yield.  Threads that wake each other get co-located on
 *     one CPU by the scheduler; a pure busy-wait there burns the very
 *     time slice its partner needs (measured: 60-100 us round trips
 *     instead of 2-7 us).
 *   - A worker parked for thread_timeout_ns exits if the pool has more
 *     than min_threads; a worker over max_threads exits when it parks.
 *     The gate joins retired workers; the shutdown joins everything.
 *
 * Shutdown.  The first call sets closing (under gmu, then mu), wakes every
 * parked worker and the gate, waits for in-flight spawns, then for every
 * thread to exit (up to the deadline), joins those that did, and hands
 * whatever is still queued (global list and every deque, taken by
 * stealing) to hooks.drop with no lock held.  Concurrent calls wait for
 * the one at work.  A thread still inside an item at the deadline is left
 * running (ST_ETIMEDOUT): a later call joins it once it finished, and
 * until one returns 0 the pool may not be destroyed (the binding leaks it
 * at interpreter exit rather than hang, as .NET's background threads do
 * not hold up exit).
 *
 * Fork.  A pthread_atfork child handler forgets the forking thread's
 * worker record (tls_worker): the child has no workers, and its pool,
 * whose mutexes may be held, is abandoned by the binding.
 *
 * Signals.  A thread starts with every signal blocked (st_thread_create),
 * so none lands in it half made; a worker or dedicated thread then takes
 * the mask of the thread that created the pool, as a thread that one
 * started would have.  Items are user code: one that raises a signal
 * (signal.raise_signal) must see it delivered, as on a Python thread,
 * where the handler flags it for the interpreter's main thread.  Blocking
 * everything in the workers (the first version) left such a signal
 * pending on the worker forever.  The gate, which runs no item, keeps
 * every signal blocked.
 *
 * Lock order (for the whole core).  Every core lock is a leaf: pool->mu,
 * pool->gmu, timer->mu, a task's LOCKED bit and an event's mutex are never
 * held while taking another one, and none is held while calling out: no
 * item, hook, timer fire, continuation or allocation runs under a core
 * lock.  The interpreter lock (GIL) comes before every core lock: a thread
 * holding the GIL may take a core lock (submit from Python), so no thread
 * may wait for the GIL while it holds a core lock.  That is also why the
 * pool never calls st_malloc or creates a thread under a lock: the
 * allocator may be PyMem_RawMalloc, and tracemalloc's hook takes the GIL.
 *
 * Memory ordering.
 *   - gmu orders the global list: what a submitter wrote in an item
 *     before st_pool_submit is visible to the worker that pops it.  The
 *     deque publishes with its own release/acquire pair (st_deque.c).
 *   - Lost wakeups are excluded by store-buffering (Dekker) pairs of
 *     seq_cst accesses: a submitter's push ends with a seq_cst store (of
 *     gcount, or of the deque's bottom), then it reads spinning, token and
 *     parked with seq_cst loads; a worker that stops spinning, drops the
 *     token or parks writes that with a seq_cst store or CAS, then
 *     re-reads the queue lengths with seq_cst loads (work_visible).  All
 *     of these are in C11's single total order S, so one of the two sees
 *     the other: either the submitter wakes a worker or the worker finds
 *     the item.  The same pair protects a put-back against a holder
 *     dropping the token.  (Not fences: ThreadSanitizer does not model
 *     atomic_thread_fence, and GCC refuses it under -fsanitize=thread; on
 *     x86 a seq_cst load is a plain load and only the stores pay.)
 *   - gcount, parked, spinning, token: written under their lock or by CAS,
 *     read without a lock as hints; every decision taken on a hint is
 *     re-checked (under mu for parking, by the pop for taking).
 *   - closing: release store under gmu and mu; acquire load in
 *     st_pool_is_closing; relaxed elsewhere (under a lock, or a hint
 *     re-checked under one).
 *   - Per-worker completed and in_item: written by the owner (relaxed),
 *     read by the gate and stats (relaxed): statistics and progress hints.
 *   - Hot atomics written by different threads sit 64 bytes apart
 *     (explicit padding, not alignas: st_malloc promises 16 bytes).
 *
 * Alternatives rejected:
 *   - one mutex-protected queue for everything (the first version): every
 *     item queued from a worker (a continuation) crossed one lock and one
 *     cache line with every other worker;
 *   - a lock-free MPMC global queue: the global queue is the slow path
 *     once items queued from workers take the deques, and an uncontended
 *     mutex costs tens of nanoseconds;
 *   - waking a worker per submit, or broadcasting: on few cores most of
 *     those wakes find nothing and cost two context switches each; a
 *     futex wake round trip is 20-25 us against a spin hand-off's 1 us;
 *   - every worker spinning: on 2 cores the spinners steal the CPU that
 *     the producer and the interpreter need;
 *   - letting every worker attach for domain items: two or four threads
 *     fighting for the GIL run Python items 2-4x slower than one
 *     (BENCHMARKS.md rule 3); but a hard lock instead of a revocable token
 *     would serialize items that block inside Python (a sleep), or
 *     deadlock two items that wait for each other;
 *   - injecting a thread on submit when nobody is idle: turns bursts into
 *     threads; .NET leaves that to its starvation detector;
 *   - one condvar for all parked workers: its wake order is not LIFO, so
 *     every idle worker would stay warm and none would ever retire;
 *   - pthread_cancel or detached workers at shutdown: a cancelled thread
 *     may hold a lock or be inside malloc or the interpreter.
 */
#define _GNU_SOURCE /* pthread_atfork is declared by <pthread.h> */

#include "st_pool.h"

#include <pthread.h> /* pthread_atfork, pthread_sigmask */
#include <sched.h>   /* sched_yield: spinning politely */
#include <signal.h>  /* sigset_t: the workers' signal mask */
#include <stddef.h>  /* NULL, size_t */
#include <stdint.h>  /* uint64_t, UINT64_MAX */

#include "st_alloc.h"  /* st_calloc/st_free: the only allocator */
#include "st_atomic.h" /* hints, counters, the token */
#include "st_deque.h"  /* the per-worker work-stealing deques */
#include "st_error.h"  /* ST_E* codes, ST_ASSERT */
#include "st_thread.h" /* mutex, condvar, thread, clock */
#include "st_trace.h"  /* pool.item.*, pool.thread.* events (D2) */

/* ------------------------------------------------------------ structs */


#define DEFAULT_SLICE_NS 500000u /* a worker stays attached 0.5 ms */
#define DEQUE_CAPACITY 256       /* per worker; a full deque spills */
#define MAX_THREADS_CAP 32767    /* .NET's maximum on 64-bit */
#define STEAL_RETRIES 4          /* per victim, on a lost race */

/* Tests start the deque indices just below the wrap (STYLE.md 32). */
#ifndef ST_DEQUE_START_INDEX
#define ST_DEQUE_START_INDEX 0
#endif

/* Where a worker found an item (to put it back). */
enum { SRC_LOCAL, SRC_GLOBAL, SRC_STOLEN };

/* worker_t.state */
enum { W_FREE, W_RUNNING, W_EXITED, W_JOINING };

/* The gate's mode, written under mu, read without it by submitters. */
enum { GATE_IDLE, GATE_SLOW, GATE_WATCH };

typedef struct worker {
    st_deque_t deque; /* owner pushes/pops; anyone steals (padded) */
    /* Owner writes (relaxed), gate and stats read. */
    ST_ATOMIC(uint64_t) completed;
    ST_ATOMIC(int) in_item; /* 1 while running an item */
    char pad_counters[ST_CACHELINE - sizeof(uint64_t) - sizeof(int)];

    /* Owner only. */
    st_pool_t *pool;
    void *slot;         /* the hooks' per-worker pointer */
    int attached;       /* inside attach..detach */
    int blocking;       /* enter_blocking nesting depth */
    int spinning;       /* this worker owns the pool's spinning flag */
    uint64_t spin_until;
    uint64_t slice_end; /* when the current attach expires */
    uint64_t rng;       /* victim choice */

    /* Guarded by p->mu. */
    size_t index;            /* in the table, fixed */
    int state;               /* W_* */
    int spawn_pending;       /* the spawner has not finished with thread */
    int parked;              /* on the idle stack */
    int woken;               /* a waker popped it off the stack */
    struct worker *park_next;
    st_cond_t cv;            /* it parks here */
    st_thread_t thread;
} worker_t;

/* A dedicated (long-running) thread. */
typedef struct dedicated {
    struct dedicated *next; /* guarded by p->mu */
    st_pool_t *pool;
    st_work_t *item;
    void *slot;
    int exited;        /* guarded by p->mu */
    int spawn_pending; /* guarded by p->mu */
    st_thread_t thread;
} dedicated_t;

/* Worker records, indexed; grown by copying (old tables kept). */
typedef struct slot_table {
    struct slot_table *older;
    size_t cap;
    worker_t *w[]; /* entries < nslots are set, never change */
} slot_table;

struct st_pool {
    /* Hot hints, each on its own cache line (see DESIGN). */
    ST_ATOMIC(uint64_t) gcount; /* global list length; written under gmu */
    char pad0[ST_CACHELINE - sizeof(uint64_t)];
    ST_ATOMIC(int) spinning; /* 0 or 1 */
    char pad1[ST_CACHELINE - sizeof(int)];
    ST_ATOMIC(int) parked; /* idle stack length; written under mu */
    char pad2[ST_CACHELINE - sizeof(int)];
    ST_ATOMIC(worker_t *) token; /* the domain token holder, or NULL */
    char pad3[ST_CACHELINE - sizeof(void *)];
    /* Mostly read. */
    ST_ATOMIC(int) closing;
    ST_ATOMIC(int) gate_mode;     /* GATE_*; written under mu */
    ST_ATOMIC(int) need_threads;  /* blocked_count > 0 or below min */
    ST_ATOMIC(uint64_t) spin_ns;  /* tuning.spin_ns */
    ST_ATOMIC(uint64_t) notices;  /* starvation events not yet taken */
    ST_ATOMIC(slot_table *) table;
    ST_ATOMIC(size_t) nslots;
    char pad4[ST_CACHELINE];

    /* The global FIFO. */
    st_mutex_t gmu;
    st_work_t *ghead;
    st_work_t *gtail;

    /* Thread management; guarded by mu. */
    st_mutex_t mu;
    st_cond_t state_cv; /* start-up, spawns, exits, shutdown progress */
    st_cond_t gate_cv;  /* the gate sleeps here */
    worker_t *idle_top;
    dedicated_t *dedicated;
    st_pool_tuning_t tuning;
    int min_threads;
    int max_threads;
    int thread_count;
    int idle_count;
    int blocked_count;
    int dedicated_count;
    int started;
    int spawning;
    int live_threads;
    int exited_waiting; /* EXITED records or dedicated threads to join */
    int shut_state;     /* 0 running, 1 shutting down, 2 shut down */
    int all_joined;     /* shut down and every thread joined */
    int gate_exited;    /* the gate thread left its loop */
    int gate_joined;
    int gate_spawn_pending;
    uint64_t injected;
    uint64_t starvation_events;
    uint64_t retired;
    uint64_t revocations;
    uint64_t blocking_last_spawn_ns;
    uint64_t blocking_retry_at_ns; /* 0: none */
    st_thread_t gate;

    /* Read-only after creation. */
    st_pool_hooks_t hooks;
    uint64_t slice_ns;
    int domain; /* hooks.attach != NULL */
    sigset_t sigmask; /* the creator's: workers and dedicated threads */
};

/* The worker record of the calling thread, or NULL on other threads. */
static ST_THREAD_LOCAL worker_t *tls_worker;

static void worker_main(void *arg);
static void gate_main(void *arg);
static void dedicated_main(void *arg);

/* ---------------------------------------------------------- fork child */

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
atfork_child(void)
{
    /* The forking thread may be a worker: in the child it is not. */
    tls_worker = NULL;
}

static void
atfork_register(void)
{
    (void)pthread_atfork(NULL, NULL, atfork_child);
}

/* ------------------------------------------------------ small helpers */

static int
is_closing(st_pool_t *p)
{
    /* relaxed: a hint, or read under gmu/mu which order it */
    return st_atomic_load(&p->closing, ST_RELAXED);
}

static int
is_domain(st_pool_t *p, const st_work_t *item)
{
    return p->domain && (item->flags & ST_WORK_DOMAIN) != 0;
}

static slot_table *
table_get(st_pool_t *p, size_t *n)
{
    /* acquire: pairs with the release store of nslots in add_record;
     * the table loaded after it holds at least n entries (see DESIGN) */
    size_t count = st_atomic_load(&p->nslots, ST_ACQUIRE);
    /* acquire: pairs with the release store in add_record */
    slot_table *t = st_atomic_load(&p->table, ST_ACQUIRE);
    *n = count < t->cap ? count : t->cap;
    return t;
}

/* Any thread.  Items visible in the queues now (a racy sum). */
static uint64_t
pending_count(st_pool_t *p)
{
    /* relaxed: a hint and a statistic */
    uint64_t n = st_atomic_load(&p->gcount, ST_RELAXED);
    size_t i, count;
    slot_table *t = table_get(p, &count);

    for (i = 0; i < count; i++) {
        n += st_deque_size(&t->w[i]->deque);
    }
    return n;
}

/* Any thread.  1 if an item is visible in a queue.  The loads are
 * seq_cst: the second half of every Dekker pair (see DESIGN). */
static int
work_visible(st_pool_t *p)
{
    size_t i, count;
    slot_table *t;

    /* seq_cst: pairs with the seq_cst store of gcount in global_push */
    if (st_atomic_load(&p->gcount, ST_SEQ_CST) != 0) {
        return 1;
    }
    t = table_get(p, &count);
    for (i = 0; i < count; i++) {
        if (st_deque_size_sc(&t->w[i]->deque) != 0) {
            return 1;
        }
    }
    return 0;
}

static uint64_t
total_completed(st_pool_t *p)
{
    uint64_t n = 0;
    size_t i, count;
    slot_table *t = table_get(p, &count);

    for (i = 0; i < count; i++) {
        /* relaxed: a statistic */
        n += st_atomic_load(&t->w[i]->completed, ST_RELAXED);
    }
    return n;
}

/* Caller holds mu.  Refreshes the lock-free hint read by submit. */
static void
update_need_threads(st_pool_t *p)
{
    int need = p->blocked_count > 0 || p->thread_count < p->min_threads;
    /* relaxed: a hint; add_worker_if_needed re-checks under mu */
    st_atomic_store(&p->need_threads, need, ST_RELAXED);
}

/* ------------------------------------------------------ global queue */

/* Any thread.  ST_ECLOSED once closing (checked under gmu). */
static int
global_push(st_pool_t *p, st_work_t *w)
{
    int rc = 0;

    st_mutex_lock(&p->gmu);
    if (is_closing(p)) {
        rc = ST_ECLOSED;
    }
    else {
        w->next = NULL;
        if (p->gtail != NULL) {
            p->gtail->next = w;
        }
        else {
            p->ghead = w;
        }
        p->gtail = w;
        /* seq_cst: the "push" of the Dekker pair with the workers'
         * seq_cst loads in work_visible (see DESIGN); the list itself is
         * under gmu (relaxed load: gcount is only written under gmu) */
        st_atomic_store(&p->gcount,
                        st_atomic_load(&p->gcount, ST_RELAXED) + 1,
                        ST_SEQ_CST);
    }
    st_mutex_unlock(&p->gmu);
    return rc;
}

/* Any thread.  Puts an item back at the head (it was the head), even
 * when closing: the shutdown drains the list after the workers exit. */
static void
global_push_front(st_pool_t *p, st_work_t *w)
{
    st_mutex_lock(&p->gmu);
    w->next = p->ghead;
    p->ghead = w;
    if (p->gtail == NULL) {
        p->gtail = w;
    }
    /* seq_cst: as in global_push (a put-back is re-checked by a holder
     * that drops the token) */
    st_atomic_store(&p->gcount, st_atomic_load(&p->gcount, ST_RELAXED) + 1,
                    ST_SEQ_CST);
    st_mutex_unlock(&p->gmu);
}

/* Any thread.  The head of the global list, or NULL. */
static st_work_t *
global_pop(st_pool_t *p)
{
    st_work_t *w;

    /* relaxed: a cheap pre-check, re-checked under gmu */
    if (st_atomic_load(&p->gcount, ST_RELAXED) == 0) {
        return NULL;
    }
    st_mutex_lock(&p->gmu);
    w = p->ghead;
    if (w != NULL) {
        p->ghead = w->next;
        if (p->ghead == NULL) {
            p->gtail = NULL;
        }
        w->next = NULL;
        /* relaxed: as in global_push */
        st_atomic_store(&p->gcount,
                        st_atomic_load(&p->gcount, ST_RELAXED) - 1,
                        ST_RELAXED);
    }
    st_mutex_unlock(&p->gmu);
    return w;
}

/* ------------------------------------------------------------ records */

/* mu not held.  A new worker record (FREE, not in the table). */
static worker_t *
record_new(st_pool_t *p)
{
    worker_t *w = st_calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    if (st_deque_init(&w->deque, DEQUE_CAPACITY, ST_DEQUE_START_INDEX)
        != 0) {
        st_free(w);
        return NULL;
    }
    st_atomic_init(&w->completed, 0);
    st_atomic_init(&w->in_item, 0);
    st_cond_init(&w->cv);
    w->pool = p;
    w->state = W_FREE;
    return w;
}

static void
record_free(worker_t *w)
{
    st_cond_destroy(&w->cv);
    st_deque_destroy(&w->deque);
    st_free(w);
}

/* mu not held.  Adds a fresh record to the table (growing it with mu
 * released: never allocate under a lock).  Returns it marked RUNNING and
 * spawn_pending, or NULL (ST_ENOMEM). */
static worker_t *
add_record(st_pool_t *p)
{
    worker_t *w = record_new(p);
    slot_table *fresh = NULL, *t;
    size_t n, need, i;

    if (w == NULL) {
        return NULL;
    }
    st_mutex_lock(&p->mu);
    for (;;) {
        /* relaxed: nslots and table are written under mu, held here */
        t = st_atomic_load(&p->table, ST_RELAXED);
        n = st_atomic_load(&p->nslots, ST_RELAXED);
        if (n < t->cap) {
            break;
        }
        need = t->cap * 2;
        if (fresh != NULL && fresh->cap >= need) {
            for (i = 0; i < n; i++) {
                fresh->w[i] = t->w[i];
            }
            fresh->older = t;
            /* release: the copied entries before the table */
            st_atomic_store(&p->table, fresh, ST_RELEASE);
            fresh = NULL;
            continue;
        }
        st_mutex_unlock(&p->mu);
        if (fresh != NULL) {
            st_free(fresh);
        }
        fresh = st_calloc(1, sizeof(*fresh) + need * sizeof(worker_t *));
        st_mutex_lock(&p->mu);
        if (fresh == NULL) {
            st_mutex_unlock(&p->mu);
            record_free(w);
            return NULL;
        }
        fresh->cap = need;
    }
    w->index = n;
    t->w[n] = w;
    w->state = W_RUNNING;
    w->spawn_pending = 1;
    /* release: publishes the entry (and the record) to table_get */
    st_atomic_store(&p->nslots, n + 1, ST_RELEASE);
    st_mutex_unlock(&p->mu);
    if (fresh != NULL) {
        st_free(fresh);
    }
    return w;
}

/* Caller holds mu.  A FREE record to reuse, marked RUNNING, or NULL. */
static worker_t *
take_free_record(st_pool_t *p)
{
    size_t i, count;
    slot_table *t = table_get(p, &count);

    for (i = 0; i < count; i++) {
        if (t->w[i]->state == W_FREE) {
            t->w[i]->state = W_RUNNING;
            t->w[i]->spawn_pending = 1;
            return t->w[i];
        }
    }
    return NULL;
}

/* --------------------------------------------------------- spawning */

/* Caller holds mu.  Reserves the slot of one new worker (thread_count
 * counts it from now); the caller then calls spawn_reserved unlocked. */
static void
reserve_worker(st_pool_t *p, int injected)
{
    p->thread_count++;
    p->spawning++;
    if (injected) {
        p->injected++;
    }
    update_need_threads(p);
}

/* mu not held; after reserve_worker.  Finds or makes a record and starts
 * its thread; on failure gives the reservation back.  0, ST_ENOMEM or
 * ST_EINVAL. */
static int
spawn_reserved(st_pool_t *p, int injected)
{
    worker_t *w;
    int rc;

    st_mutex_lock(&p->mu);
    w = take_free_record(p);
    if (w != NULL) {
        p->live_threads++;
    }
    st_mutex_unlock(&p->mu);
    if (w == NULL) {
        w = add_record(p);
        if (w == NULL) {
            rc = ST_ENOMEM;
            goto error;
        }
        st_mutex_lock(&p->mu);
        p->live_threads++;
        st_mutex_unlock(&p->mu);
    }
    w->rng = 0x9E3779B97F4A7C15u * (w->index + 1);
    rc = st_thread_create(&w->thread, worker_main, w);
    st_mutex_lock(&p->mu);
    w->spawn_pending = 0;
    if (rc != 0) {
        w->state = W_FREE;
        p->live_threads--;
    }
    else if (w->state == W_EXITED) {
        p->exited_waiting++; /* it already exited: the gate joins it */
        st_cond_signal(&p->gate_cv);
    }
    if (rc != 0) {
        st_mutex_unlock(&p->mu);
        goto error;
    }
    if (--p->spawning == 0) {
        st_cond_broadcast(&p->state_cv); /* a shutdown may wait for it */
    }
    st_mutex_unlock(&p->mu);
    return 0;

error:
    st_mutex_lock(&p->mu);
    p->thread_count--;
    if (injected) {
        p->injected--;
    }
    update_need_threads(p);
    if (--p->spawning == 0) {
        st_cond_broadcast(&p->state_cv);
    }
    st_mutex_unlock(&p->mu);
    return rc;
}

/* --------------------------------------------------------- waking */

/* Caller holds mu.  Pops the most recently parked worker and wakes it;
 * the caller already set spinning for it.  Returns 1 if one was woken. */
static int
wake_top_locked(st_pool_t *p)
{
    worker_t *w = p->idle_top;

    if (w == NULL) {
        return 0;
    }
    p->idle_top = w->park_next;
    w->park_next = NULL;
    w->parked = 0;
    w->woken = 1;
    p->idle_count--;
    /* relaxed: written under mu; readers re-check under mu */
    st_atomic_store(&p->parked, p->idle_count, ST_RELAXED);
    st_cond_signal(&w->cv);
    return 1;
}

/* Any thread, no lock held.  Wakes one parked worker, which becomes the
 * spinner, unless a worker spins already (it will find the work).
 * Returns 1 if a worker spins or was woken, 0 if nobody was parked. */
static int
wake_one(st_pool_t *p)
{
    int zero = 0;
    int woke;

    /* acq_rel: this thread takes the spinning flag for the woken worker;
     * relaxed on failure: somebody spins, nothing to do */
    if (!st_atomic_cas(&p->spinning, &zero, 1, ST_ACQ_REL, ST_RELAXED)) {
        return 1;
    }
    st_mutex_lock(&p->mu);
    woke = !is_closing(p) && wake_top_locked(p);
    /* relaxed: written under mu */
    if (woke && st_atomic_load(&p->gate_mode, ST_RELAXED) == GATE_IDLE) {
        /* work starts after a quiet spell: the gate samples again */
        st_atomic_store(&p->gate_mode, GATE_SLOW, ST_RELAXED);
        st_cond_signal(&p->gate_cv);
    }
    st_mutex_unlock(&p->mu);
    if (!woke) {
        /* seq_cst: a parker that looked at spinning meanwhile re-checks
         * the queues after its own seq_cst fence (see DESIGN) */
        st_atomic_store(&p->spinning, 0, ST_SEQ_CST);
    }
    return woke;
}

/* Any thread, no lock held.  Makes sure the gate runs in at least `mode`
 * (it idles without a timeout when the pool is quiet). */
static void
gate_kick(st_pool_t *p, int mode)
{
    /* relaxed: a hint; re-checked under mu */
    if (st_atomic_load(&p->gate_mode, ST_RELAXED) >= mode) {
        return;
    }
    st_mutex_lock(&p->mu);
    if (st_atomic_load(&p->gate_mode, ST_RELAXED) < mode) {
        /* relaxed: written under mu */
        st_atomic_store(&p->gate_mode, mode, ST_RELAXED);
        st_cond_signal(&p->gate_cv);
    }
    st_mutex_unlock(&p->mu);
}

/* mu not held.  Blocking compensation and the minimum: adds a worker if
 * work waits, nobody is parked, and the goal (min + blocked, capped by
 * max) allows it; beyond min + blocking_no_delay only after the growing
 * delay (the gate retries).  The .NET rule of reference 7.12. */
static void
add_worker_if_needed(st_pool_t *p)
{
    uint64_t now, delay;
    int goal, extra, steps, spawn = 0, injected = 0, count = 0;

    st_mutex_lock(&p->mu);
    goal = p->min_threads + p->blocked_count;
    if (goal > p->max_threads) {
        goal = p->max_threads;
    }
    if (!is_closing(p) && p->thread_count < goal && p->idle_count == 0
        && pending_count(p) > 0) {
        extra = p->thread_count - p->min_threads;
        if (extra < p->tuning.blocking_no_delay) {
            spawn = 1;
        }
        else {
            now = st_now_ns();
            steps = p->tuning.blocking_no_delay > 0
                        ? (extra - p->tuning.blocking_no_delay)
                              / p->tuning.blocking_no_delay
                        : extra;
            delay = p->tuning.blocking_delay_step_ns * (uint64_t)(1 + steps);
            if (delay > p->tuning.blocking_delay_max_ns) {
                delay = p->tuning.blocking_delay_max_ns;
            }
            if (now - p->blocking_last_spawn_ns >= delay) {
                spawn = 1;
            }
            else if (p->blocking_retry_at_ns == 0) {
                p->blocking_retry_at_ns = p->blocking_last_spawn_ns + delay;
                if (st_atomic_load(&p->gate_mode, ST_RELAXED) < GATE_SLOW) {
                    /* relaxed: written under mu */
                    st_atomic_store(&p->gate_mode, GATE_SLOW, ST_RELAXED);
                }
                st_cond_signal(&p->gate_cv);
            }
        }
        if (spawn) {
            /* threads up to the minimum are not "injected" */
            injected = p->thread_count >= p->min_threads;
            reserve_worker(p, injected);
            count = p->thread_count;
            p->blocking_last_spawn_ns = st_now_ns();
        }
    }
    st_mutex_unlock(&p->mu);
    if (spawn) {
        if (injected) {
            ST_TRACE(ST_TRACE_POOL_THREAD_INJECTED, 0, (uint64_t)count,
                     ST_TRACE_WHY_BLOCKING);
        }
        /* On failure the slot is given back; queued work then waits for
         * a worker to come back, or for the gate. */
        (void)spawn_reserved(p, injected);
    }
}

/* Any thread, no lock held, after an item was pushed.  At most one wake,
 * and none while a worker spins or when the token holder will run it.
 * `domain` is is_domain() of the item, read BEFORE the push: once pushed,
 * a worker may run and free the item at any moment, so nothing here (or
 * in the submitter after the push) may look at it again (issue 9 item
 * 1: notify used to read item->flags, a use-after-free). */
static void
notify(st_pool_t *p, int domain)
{
    /* seq_cst loads: the push (a seq_cst store of gcount or of the
     * deque's bottom) comes before them in the single total order, so a
     * worker that stopped spinning, dropped the token or parked (seq_cst
     * stores followed by seq_cst loads of the queues) either is seen here
     * or sees the item (Dekker; see DESIGN). */
    if (st_atomic_load(&p->spinning, ST_SEQ_CST) != 0) {
        return; /* the spinner will find it */
    }
    if (domain && st_atomic_load(&p->token, ST_SEQ_CST) != NULL) {
        /* The holder drains it; the gate watches the holder. */
        gate_kick(p, GATE_WATCH);
        return;
    }
    /* seq_cst: as above; wake_one re-checks under mu */
    if (st_atomic_load(&p->parked, ST_SEQ_CST) > 0 && wake_one(p)) {
        return;
    }
    /* relaxed: a hint; add_worker_if_needed re-checks under mu */
    if (st_atomic_load(&p->need_threads, ST_RELAXED)) {
        add_worker_if_needed(p);
    }
    gate_kick(p, GATE_SLOW);
}

/* ----------------------------------------------------------- the token */

/* Owner worker.  1 if w holds the token (now). */
static int
token_take(st_pool_t *p, worker_t *w)
{
    worker_t *none = NULL;

    /* relaxed: only w itself stores w */
    if (st_atomic_load(&p->token, ST_RELAXED) == w) {
        return 1;
    }
    /* seq_cst: in the Dekker pairs with notify and put-back (see DESIGN) */
    return st_atomic_cas(&p->token, &none, w, ST_SEQ_CST, ST_RELAXED);
}

/* Owner worker.  Drops the token if w holds it (it may have been revoked
 * meanwhile), then re-reads the queues: returns 1 if work is visible. */
static int
release_token(st_pool_t *p, worker_t *w)
{
    worker_t *mine = w;

    /* seq_cst: then the seq_cst loads of work_visible (Dekker with the
     * token load in notify and in run_item's put-back) */
    if (!st_atomic_cas(&p->token, &mine, NULL, ST_SEQ_CST, ST_RELAXED)) {
        return 0; /* revoked: the gate already woke a successor */
    }
    return work_visible(p);
}

/* ------------------------------------------------------- worker side */

/* Owner worker, no lock held. */
static void
worker_detach(st_pool_t *p, worker_t *w)
{
    ST_ASSERT(w->attached);
    w->attached = 0;
    if (p->hooks.detach != NULL) {
        p->hooks.detach(p->hooks.arg, &w->slot);
    }
}

/* Owner worker.  Detaches and drops the token; if domain work is still
 * visible (the holder leaves for a plain item or a block), makes sure
 * somebody picks it up. */
static void
leave_domain(st_pool_t *p, worker_t *w, int hand_over)
{
    if (w->attached) {
        worker_detach(p, w);
    }
    if (release_token(p, w) && hand_over) {
        (void)wake_one(p);
    }
}

/* Owner worker.  Gives the spinning flag back; with `baton`, wakes the
 * next worker if more work is visible. */
static void
stop_spinning(st_pool_t *p, worker_t *w, int baton)
{
    if (!w->spinning) {
        return;
    }
    w->spinning = 0;
    /* seq_cst: then the seq_cst loads of work_visible (Dekker with
     * notify): a submitter that saw spinning == 1 relies on this worker
     * seeing its item */
    st_atomic_store(&p->spinning, 0, ST_SEQ_CST);
    if (baton) {
        /* seq_cst: the baton's work_visible (after the store above);
         * wake_one re-checks */
        if (st_atomic_load(&p->parked, ST_SEQ_CST) > 0 && work_visible(p)) {
            (void)wake_one(p);
        }
    }
}

/* Owner worker.  Takes an item: own deque, global list, then stealing. */
static st_work_t *
find_work(st_pool_t *p, worker_t *w, int *src)
{
    st_work_t *item;
    slot_table *t;
    size_t i, k, count, start;
    int rc, tries;

    item = st_deque_pop(&w->deque);
    if (item != NULL) {
        *src = SRC_LOCAL;
        return item;
    }
    item = global_pop(p);
    if (item != NULL) {
        *src = SRC_GLOBAL;
        return item;
    }
    t = table_get(p, &count);
    if (count < 2) {
        return NULL;
    }
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    start = (size_t)(w->rng % count);
    for (k = 0; k < count; k++) {
        i = (start + k) % count;
        if (t->w[i] == w) {
            continue;
        }
        for (tries = 0; tries < STEAL_RETRIES; tries++) {
            rc = st_deque_steal(&t->w[i]->deque, &item);
            if (rc == 0) {
                *src = SRC_STOLEN;
                return item;
            }
            if (rc != ST_EBUSY) {
                break; /* empty */
            }
        }
    }
    return NULL;
}

/* Owner worker.  Puts back an item it may not run (see DESIGN). */
static void
put_back(st_pool_t *p, worker_t *w, st_work_t *item, int src)
{
    if (src == SRC_GLOBAL || st_deque_push(&w->deque, item) != 0) {
        global_push_front(p, item);
    }
}

/* Owner worker.  Spins for work if no other worker does.  Returns 1 when
 * work is visible (still spinning: the flag goes when an item is found),
 * 0 when it gave up (and the flag is given back). */
static int
spin_for_work(st_pool_t *p, worker_t *w)
{
    int zero = 0;
    unsigned pauses = 0;
    worker_t *holder;

    if (!w->spinning) {
        /* acq_rel: takes the one spinning flag; relaxed on failure */
        if (!st_atomic_cas(&p->spinning, &zero, 1, ST_ACQ_REL,
                           ST_RELAXED)) {
            return 0;
        }
        w->spinning = 1;
        /* relaxed: a tuning value */
        w->spin_until = st_now_ns()
                        + st_atomic_load(&p->spin_ns, ST_RELAXED);
    }
    for (;;) {
        if (is_closing(p)) {
            break;
        }
        /* relaxed: a hint.  Domain work under another holder is not
         * ours: park, the holder drains it. */
        holder = st_atomic_load(&p->token, ST_RELAXED);
        if (holder != NULL && holder != w) {
            if (work_visible(p)) {
                gate_kick(p, GATE_WATCH); /* as in run_item's put-back */
            }
            break;
        }
        if (work_visible(p)) {
            return 1;
        }
        if (st_now_ns() >= w->spin_until) {
            break;
        }
        st_pool_spin_pause(&pauses);
    }
    stop_spinning(p, w, 0);
    /* after stop_spinning's seq_cst store, seq_cst re-reads (Dekker with
     * notify) */
    holder = st_atomic_load(&p->token, ST_SEQ_CST);
    return (holder == NULL || holder == w) && work_visible(p);
}

/* Caller holds mu.  Removes w from the idle stack. */
static void
unpark_locked(st_pool_t *p, worker_t *w)
{
    worker_t **pp = &p->idle_top;

    while (*pp != NULL && *pp != w) {
        pp = &(*pp)->park_next;
    }
    ST_ASSERT(*pp == w);
    *pp = w->park_next;
    w->park_next = NULL;
    w->parked = 0;
    p->idle_count--;
    /* relaxed: written under mu */
    st_atomic_store(&p->parked, p->idle_count, ST_RELAXED);
}

/* park() results. */
enum { PARK_AGAIN, PARK_CLOSING, PARK_RETIRED };

/* Owner worker, no lock held, detached.  Parks until woken.  Returns
 * PARK_AGAIN to look for work again, PARK_CLOSING to exit because the
 * pool shuts down, PARK_RETIRED to exit as a retired worker (already
 * taken out of thread_count, under mu). */
static int
park(st_pool_t *p, worker_t *w)
{
    worker_t *holder;
    uint64_t timeout, start, elapsed;
    int exit = PARK_AGAIN;

    st_mutex_lock(&p->mu);
    if (is_closing(p)) {
        st_mutex_unlock(&p->mu);
        return PARK_CLOSING;
    }
    if (p->thread_count > p->max_threads) {
        /* the maximum was lowered: surplus workers leave when idle */
        p->thread_count--;
        p->retired++;
        update_need_threads(p);
        st_mutex_unlock(&p->mu);
        return PARK_RETIRED;
    }
    w->park_next = p->idle_top;
    p->idle_top = w;
    w->parked = 1;
    w->woken = 0;
    p->idle_count++;
    /* seq_cst: announces the park before the seq_cst re-reads below
     * (Dekker with notify) */
    st_atomic_store(&p->parked, p->idle_count, ST_SEQ_CST);
    holder = st_atomic_load(&p->token, ST_SEQ_CST);
    if ((holder == NULL || holder == w) && work_visible(p)) {
        unpark_locked(p, w);
        st_mutex_unlock(&p->mu);
        return PARK_AGAIN;
    }
    start = st_now_ns();
    while (!w->woken && !is_closing(p)) {
        timeout = p->tuning.thread_timeout_ns;
        elapsed = st_now_ns() - start;
        if (p->thread_count > p->max_threads
            || (timeout != UINT64_MAX && elapsed >= timeout
                && p->thread_count > p->min_threads)) {
            /* over the maximum, or idle for thread_timeout above the
             * minimum: retire */
            unpark_locked(p, w);
            p->thread_count--;
            p->retired++;
            update_need_threads(p);
            exit = PARK_RETIRED;
            break;
        }
        if (timeout == UINT64_MAX) {
            st_cond_wait(&w->cv, &p->mu);
        }
        else if (elapsed >= timeout) {
            start = st_now_ns(); /* at the minimum: keep waiting */
        }
        else {
            (void)st_cond_timedwait(&w->cv, &p->mu, timeout - elapsed);
        }
    }
    if (exit == PARK_AGAIN) {
        if (w->parked) {
            unpark_locked(p, w); /* closing */
        }
        if (w->woken) {
            /* wake_one set the pool's spinning flag for this worker */
            w->spinning = 1;
            /* relaxed: a tuning value */
            w->spin_until = st_now_ns()
                            + st_atomic_load(&p->spin_ns, ST_RELAXED);
        }
        exit = is_closing(p) ? PARK_CLOSING : PARK_AGAIN;
    }
    st_mutex_unlock(&p->mu);
    return exit;
}

/* Owner worker, no lock held.  Runs one item under the domain protocol.
 * Returns 1 to go on looking for work (it ran, was dropped, or was put
 * back while the token is free again), 0 when it was put back and the
 * worker should park (another worker holds the token and drains it). */
static int
run_item(st_pool_t *p, worker_t *w, st_work_t *item, int src)
{
    /* read before run: the item may be freed by its own run */
    int domain = is_domain(p, item);
    uint64_t item_id = (uint64_t)(uintptr_t)item; /* a trace label */

    stop_spinning(p, w, !domain);
    if (!domain) {
        if (w->attached || st_atomic_load(&p->token, ST_RELAXED) == w) {
            leave_domain(p, w, 1);
        }
    }
    else if (!w->attached || st_atomic_load(&p->token, ST_RELAXED) != w) {
        /* relaxed loads: only w stores w into token */
        if (!token_take(p, w)) {
            if (w->attached) {
                worker_detach(p, w); /* revoked: another drains */
            }
            put_back(p, w, item, src);
            /* seq_cst: after the put-back's seq_cst store, the token
             * re-check (Dekker with release_token's CAS and re-read) */
            if (st_atomic_load(&p->token, ST_SEQ_CST) == NULL) {
                return 1;
            }
            /* Domain work waits for the holder: have the gate watch it,
             * so that a holder stuck in user code loses the token soon. */
            gate_kick(p, GATE_WATCH);
            return 0;
        }
        if (!w->attached) {
            if (p->hooks.attach(p->hooks.arg, &w->slot) != 0) {
                (void)release_token(p, w);
                if (p->hooks.drop != NULL) {
                    p->hooks.drop(p->hooks.arg, item);
                }
                return 1;
            }
            w->attached = 1;
            w->slice_end = st_now_ns() + p->slice_ns;
            /* More work waits behind this holder (no baton is passed for
             * domain work): have the gate watch the holder. */
            if (work_visible(p)) {
                gate_kick(p, GATE_WATCH);
            }
        }
    }
    /* relaxed: a progress hint for the gate */
    st_atomic_store(&w->in_item, 1, ST_RELAXED);
    ST_TRACE(ST_TRACE_POOL_ITEM_START, 0, item_id, 0);
    item->run(item);
    ST_TRACE(ST_TRACE_POOL_ITEM_END, 0, item_id, 0); /* item may be gone */
    if (domain && p->hooks.after_item != NULL) {
        p->hooks.after_item(p->hooks.arg, &w->slot);
    }
    st_atomic_store(&w->in_item, 0, ST_RELAXED);
    /* relaxed: single writer; readers sum */
    st_atomic_store(&w->completed,
                    st_atomic_load(&w->completed, ST_RELAXED) + 1,
                    ST_RELAXED);
    if (domain && w->attached
        && (st_now_ns() >= w->slice_end
            || st_atomic_load(&p->token, ST_RELAXED) != w)) {
        /* slice used up (let other threads in) or token lost */
        leave_domain(p, w, 0);
    }
    return 1;
}

/* The worker thread.  (lint-ok: park() and the helpers take and drop
 * p->mu themselves; this function locks it once for the start-up
 * handshake and once for the exit, and unlocks both.) */
static void
worker_main(void *arg)
{
    worker_t *w = arg;
    st_pool_t *p = w->pool;
    st_work_t *item;
    int src, how = PARK_CLOSING, retiring;

    tls_worker = w;
    /* st_thread_create started us with every signal blocked; run items
     * with the mask of the thread that made the pool, as a thread it
     * started would (issue 9 item 22: a signal raised by an item was
     * left pending here forever).  The handler a signal runs here only
     * flags it: the interpreter acts on it in its main thread. */
    (void)pthread_sigmask(SIG_SETMASK, &p->sigmask, NULL);
    st_thread_set_name("sharptask-worker", (long)w->index + 1);
    st_mutex_lock(&p->mu);
    p->started++;
    st_cond_broadcast(&p->state_cv); /* st_pool_create waits for this */
    st_mutex_unlock(&p->mu);

    while (!is_closing(p)) {
        item = find_work(p, w, &src);
        if (item != NULL) {
            if (!run_item(p, w, item, src)
                && (how = park(p, w)) != PARK_AGAIN) {
                break;
            }
            how = PARK_CLOSING;
            continue;
        }
        /* Nothing: leave the domain, spin a little, then park. */
        if (w->attached || st_atomic_load(&p->token, ST_RELAXED) == w) {
            leave_domain(p, w, 0);
        }
        if (spin_for_work(p, w)) {
            continue;
        }
        if ((how = park(p, w)) != PARK_AGAIN) {
            break;
        }
        how = PARK_CLOSING;
    }
    retiring = how == PARK_RETIRED;
    if (w->attached || st_atomic_load(&p->token, ST_RELAXED) == w) {
        leave_domain(p, w, 0);
    }
    stop_spinning(p, w, 0);
    if (retiring) {
        /* Never strand local items: they go to the global list, and
         * somebody is told (.NET 7.5). */
        int moved = 0, all_domain = 1;
        ST_TRACE(ST_TRACE_POOL_THREAD_RETIRED, 0, 0, 0);
        while ((item = st_deque_pop(&w->deque)) != NULL) {
            /* read before the push: after it the item is not ours */
            all_domain &= is_domain(p, item);
            global_push_front(p, item);
            moved = 1;
        }
        if (moved) {
            notify(p, all_domain);
        }
    }
    if (p->hooks.thread_exit != NULL) {
        p->hooks.thread_exit(p->hooks.arg, &w->slot);
    }
    w->slot = NULL;
    tls_worker = NULL;
    st_mutex_lock(&p->mu);
    if (!retiring) {
        p->thread_count--; /* closing; retirement counted it in park */
        update_need_threads(p);
    }
    w->state = W_EXITED;
    if (!w->spawn_pending) {
        p->exited_waiting++;
    }
    p->live_threads--;
    st_cond_broadcast(&p->state_cv);
    st_cond_signal(&p->gate_cv); /* the gate joins retired workers */
    st_mutex_unlock(&p->mu);
    /* The gate or the shutdown joins this thread. */
}

/* ---------------------------------------------------- dedicated threads */

static void
dedicated_main(void *arg)
{
    dedicated_t *d = arg;
    st_pool_t *p = d->pool;
    st_work_t *item = d->item;
    uint64_t item_id = (uint64_t)(uintptr_t)item; /* a trace label */

    (void)pthread_sigmask(SIG_SETMASK, &p->sigmask, NULL); /* as workers */
    st_thread_set_name("sharptask-long-running", -1);
    if (!is_domain(p, item)) {
        ST_TRACE(ST_TRACE_POOL_ITEM_START, 0, item_id, 0);
        item->run(item);
        ST_TRACE(ST_TRACE_POOL_ITEM_END, 0, item_id, 0);
    }
    else if (p->hooks.attach(p->hooks.arg, &d->slot) == 0) {
        ST_TRACE(ST_TRACE_POOL_ITEM_START, 0, item_id, 0);
        item->run(item);
        ST_TRACE(ST_TRACE_POOL_ITEM_END, 0, item_id, 0);
        if (p->hooks.detach != NULL) {
            p->hooks.detach(p->hooks.arg, &d->slot);
        }
    }
    else if (p->hooks.drop != NULL) {
        p->hooks.drop(p->hooks.arg, item);
    }
    if (p->hooks.thread_exit != NULL) {
        p->hooks.thread_exit(p->hooks.arg, &d->slot);
    }
    st_mutex_lock(&p->mu);
    d->exited = 1;
    if (!d->spawn_pending) {
        p->exited_waiting++;
    }
    p->dedicated_count--;
    p->live_threads--;
    st_cond_broadcast(&p->state_cv);
    st_cond_signal(&p->gate_cv);
    st_mutex_unlock(&p->mu);
}

int
st_pool_submit_dedicated(st_pool_t *p, st_work_t *w)
{
    dedicated_t *d = st_calloc(1, sizeof(*d));
    dedicated_t **pp;
    int rc;

    if (d == NULL) {
        return ST_ENOMEM;
    }
    d->pool = p;
    d->item = w;
    st_mutex_lock(&p->mu);
    if (is_closing(p)) {
        st_mutex_unlock(&p->mu);
        st_free(d);
        return ST_ECLOSED;
    }
    d->spawn_pending = 1;
    d->next = p->dedicated;
    p->dedicated = d;
    p->dedicated_count++;
    p->live_threads++;
    st_mutex_unlock(&p->mu);
    /* before the thread that runs it exists (D2) */
    ST_TRACE(ST_TRACE_POOL_ITEM_QUEUED, 0, (uint64_t)(uintptr_t)w,
             ST_TRACE_QUEUE_DEDICATED);
    rc = st_thread_create(&d->thread, dedicated_main, d);
    st_mutex_lock(&p->mu);
    d->spawn_pending = 0;
    if (rc != 0) {
        for (pp = &p->dedicated; *pp != d; pp = &(*pp)->next) {
        }
        *pp = d->next;
        p->dedicated_count--;
        p->live_threads--;
        st_cond_broadcast(&p->state_cv);
    }
    else if (d->exited) {
        p->exited_waiting++;
        st_cond_signal(&p->gate_cv);
    }
    st_mutex_unlock(&p->mu);
    if (rc != 0) {
        st_free(d);
    }
    return rc;
}

/* ---------------------------------------------------------- the gate */

/* Caller holds mu; drops and retakes it.  Joins the workers that exited
 * and the dedicated threads that finished (those whose spawner is done
 * with the thread handle). */
static void
reap_locked(st_pool_t *p)
{
    dedicated_t *done = NULL, *d, **pp;
    worker_t *exited[16];
    size_t i, count, n = 0;
    slot_table *t;

    while (p->exited_waiting > 0) {
        t = table_get(p, &count);
        n = 0;
        for (i = 0; i < count && n < 16; i++) {
            if (t->w[i]->state == W_EXITED && !t->w[i]->spawn_pending) {
                t->w[i]->state = W_JOINING;
                exited[n++] = t->w[i];
            }
        }
        for (pp = &p->dedicated; *pp != NULL;) {
            d = *pp;
            if (d->exited && !d->spawn_pending) {
                *pp = d->next;
                d->next = done;
                done = d;
            }
            else {
                pp = &d->next;
            }
        }
        if (n == 0 && done == NULL) {
            break;
        }
        st_mutex_unlock(&p->mu);
        for (i = 0; i < n; i++) {
            st_thread_join(&exited[i]->thread);
        }
        while (done != NULL) {
            d = done;
            done = d->next;
            st_thread_join(&d->thread);
            st_free(d);
            st_mutex_lock(&p->mu);
            p->exited_waiting--;
            st_mutex_unlock(&p->mu);
        }
        st_mutex_lock(&p->mu);
        for (i = 0; i < n; i++) {
            exited[i]->state = W_FREE; /* joined: reusable */
            p->exited_waiting--;
        }
    }
}

/* The gate thread (".NET ThreadPool Gate").  (lint-ok: it holds p->mu
 * except while it joins, spawns, wakes or sleeps, and the helpers it
 * calls unlocked take the lock themselves; it unlocks before exiting.) */
static void
gate_main(void *arg)
{
    st_pool_t *p = arg;
    uint64_t now, next, last_sample, last_completed, c, pending;
    uint64_t watch_completed = 0, watch_since = 0;
    worker_t *watch_holder = NULL, *holder;
    int quiet = 0, inject, retry, wake, mode, inject_count = 0;

    st_thread_set_name("sharptask-gate", -1);
    st_mutex_lock(&p->mu);
    last_sample = st_now_ns();
    last_completed = total_completed(p);
    while (!is_closing(p)) {
        reap_locked(p);
        if (is_closing(p)) {
            break;
        }
        now = st_now_ns();
        pending = pending_count(p);
        inject = retry = wake = 0;

        /* 1. The token: revoke it from a holder stalled inside an item. */
        holder = st_atomic_load(&p->token, ST_RELAXED); /* relaxed: hint */
        if (holder == NULL || pending == 0
            || !st_atomic_load(&holder->in_item, ST_RELAXED)) {
            watch_holder = NULL;
        }
        else if (holder != watch_holder
                 || st_atomic_load(&holder->completed, ST_RELAXED)
                        != watch_completed) {
            watch_holder = holder;
            watch_completed = st_atomic_load(&holder->completed, ST_RELAXED);
            watch_since = now;
        }
        else if (now - watch_since >= p->tuning.token_stall_ns) {
            worker_t *expect = holder;
            /* seq_cst: as release_token */
            if (st_atomic_cas(&p->token, &expect, NULL, ST_SEQ_CST,
                              ST_RELAXED)) {
                p->revocations++;
                wake = 1;
            }
            watch_holder = NULL;
        }

        /* 2. Starvation, sampled every gate period. */
        if (now - last_sample >= p->tuning.gate_period_ns
            && p->tuning.gate_period_ns != 0) {
            c = total_completed(p);
            if (pending > 0 && c == last_completed && p->idle_count == 0
                && p->spawning == 0 && p->thread_count < p->max_threads) {
                reserve_worker(p, 1);
                inject_count = p->thread_count;
                p->starvation_events++;
                /* relaxed: a counter the binding drains */
                st_atomic_fetch_add(&p->notices, 1, ST_RELAXED);
                inject = 1;
            }
            quiet = (pending == 0 && c == last_completed
                     && p->idle_count == p->thread_count)
                        ? quiet + 1
                        : 0;
            last_completed = c;
            last_sample = now;
        }
        else if (p->tuning.gate_period_ns == 0) {
            quiet = pending == 0 && p->idle_count == p->thread_count
                        ? quiet + 1
                        : 0;
        }

        /* 3. A blocking-compensation spawn that had to wait. */
        if (p->blocking_retry_at_ns != 0 && now >= p->blocking_retry_at_ns) {
            p->blocking_retry_at_ns = 0;
            retry = 1;
        }

        /* 4. Safety net: work visible, nobody spinning, workers parked. */
        if (pending > 0 && p->idle_count > 0
            && st_atomic_load(&p->spinning, ST_RELAXED) == 0
            && st_atomic_load(&p->token, ST_RELAXED) == NULL) {
            wake = 1;
        }

        if (inject || retry || wake) {
            st_mutex_unlock(&p->mu);
            if (wake) {
                (void)wake_one(p);
            }
            if (inject) {
                ST_TRACE(ST_TRACE_POOL_THREAD_INJECTED, 0,
                         (uint64_t)inject_count, ST_TRACE_WHY_STARVATION);
                (void)spawn_reserved(p, 1);
            }
            if (retry) {
                add_worker_if_needed(p);
            }
            st_mutex_lock(&p->mu);
            if (is_closing(p)) {
                break;
            }
            now = st_now_ns();
        }

        /* Sleep: until the next sample, the retry, or the token poll. */
        mode = st_atomic_load(&p->gate_mode, ST_RELAXED); /* under mu */
        if (mode == GATE_WATCH && (pending == 0 || holder == NULL)) {
            mode = GATE_SLOW;
        }
        if (quiet >= 2 && p->blocking_retry_at_ns == 0
            && mode != GATE_WATCH && p->exited_waiting == 0) {
            /* relaxed: written under mu */
            st_atomic_store(&p->gate_mode, GATE_IDLE, ST_RELAXED);
            while (st_atomic_load(&p->gate_mode, ST_RELAXED) == GATE_IDLE
                   && p->exited_waiting == 0 && !is_closing(p)) {
                st_cond_wait(&p->gate_cv, &p->mu);
            }
            if (st_atomic_load(&p->gate_mode, ST_RELAXED) == GATE_IDLE) {
                st_atomic_store(&p->gate_mode, GATE_SLOW, ST_RELAXED);
            }
            quiet = 0;
            last_sample = st_now_ns();
            last_completed = total_completed(p);
            continue;
        }
        st_atomic_store(&p->gate_mode, mode, ST_RELAXED); /* under mu */
        next = p->tuning.gate_period_ns != 0
                   ? last_sample + p->tuning.gate_period_ns
                   : now + 500000000u;
        if (p->blocking_retry_at_ns != 0 && p->blocking_retry_at_ns < next) {
            next = p->blocking_retry_at_ns;
        }
        if (mode == GATE_WATCH
            && now + p->tuning.token_stall_ns / 4 < next) {
            next = now + p->tuning.token_stall_ns / 4;
        }
        now = st_now_ns();
        if (next > now) {
            (void)st_cond_timedwait(&p->gate_cv, &p->mu, next - now);
        }
    }
    p->gate_exited = 1;
    p->live_threads--;
    st_cond_broadcast(&p->state_cv);
    st_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------- lifecycle */

void
st_pool_tuning_default(st_pool_tuning_t *t)
{
    int ncpu = st_cpu_count();

    t->spin_ns = 30000u;
    t->thread_timeout_ns = 20000000000u;
    t->gate_period_ns = 500000000u;
    t->token_stall_ns = 10000000u;
    t->blocking_no_delay = ncpu;
    t->blocking_delay_step_ns = 25000000u;
    t->blocking_delay_max_ns = 250000000u;
}

int
st_pool_create(st_pool_t **out, int min_threads, int max_threads,
               const st_pool_hooks_t *hooks)
{
    st_pool_t *p = NULL;
    slot_table *t = NULL;
    size_t cap = 16;
    int rc = 0;
    int i;

    *out = NULL;
    (void)pthread_once(&atfork_once, atfork_register);
    if (min_threads < 1 || max_threads < min_threads) {
        rc = ST_EINVAL;
        goto error;
    }
    while (cap < (size_t)min_threads) {
        cap *= 2;
    }
    t = st_calloc(1, sizeof(*t) + cap * sizeof(worker_t *));
    p = st_calloc(1, sizeof(*p));
    if (p == NULL || t == NULL) {
        rc = ST_ENOMEM;
        goto error;
    }
    t->cap = cap;
    st_mutex_init(&p->gmu);
    st_mutex_init(&p->mu);
    st_cond_init(&p->state_cv);
    st_cond_init(&p->gate_cv);
    st_atomic_init(&p->gcount, 0);
    st_atomic_init(&p->spinning, 0);
    st_atomic_init(&p->parked, 0);
    st_atomic_init(&p->token, NULL);
    st_atomic_init(&p->closing, 0);
    st_atomic_init(&p->gate_mode, GATE_SLOW);
    st_atomic_init(&p->need_threads, 0);
    st_atomic_init(&p->notices, 0);
    st_atomic_init(&p->table, t);
    st_atomic_init(&p->nslots, 0);
    t = NULL; /* the pool owns it */
    st_pool_tuning_default(&p->tuning);
    st_atomic_init(&p->spin_ns, p->tuning.spin_ns);
    if (hooks != NULL) {
        p->hooks = *hooks;
    }
    p->domain = p->hooks.attach != NULL;
    p->slice_ns = p->hooks.slice_ns != 0 ? p->hooks.slice_ns
                                         : DEFAULT_SLICE_NS;
    p->min_threads = min_threads;
    p->max_threads = max_threads > MAX_THREADS_CAP ? MAX_THREADS_CAP
                                                   : max_threads;
    /* the caller's signal mask, for the threads that run items */
    (void)pthread_sigmask(SIG_BLOCK, NULL, &p->sigmask);

    st_mutex_lock(&p->mu);
    p->live_threads++; /* the gate */
    st_mutex_unlock(&p->mu);
    rc = st_thread_create(&p->gate, gate_main, p);
    if (rc != 0) {
        st_mutex_lock(&p->mu);
        p->live_threads--;
        p->shut_state = 2; /* nothing to join: destroy frees it */
        p->all_joined = 1;
        st_mutex_unlock(&p->mu);
        goto error;
    }
    for (i = 0; i < min_threads; i++) {
        st_mutex_lock(&p->mu);
        reserve_worker(p, 0);
        st_mutex_unlock(&p->mu);
        rc = spawn_reserved(p, 0);
        if (rc != 0) {
            goto error;
        }
    }
    /* Synchronous start: every worker runs before we return. */
    st_mutex_lock(&p->mu);
    while (p->started < min_threads) {
        st_cond_wait(&p->state_cv, &p->mu);
    }
    st_mutex_unlock(&p->mu);
    *out = p;
    return 0;

error:
    if (t != NULL) {
        st_free(t);
    }
    if (p != NULL) {
        if (p->shut_state == 0) {
            st_pool_shutdown(p); /* joins what was started */
        }
        st_pool_destroy(p);
    }
    return rc;
}

int
st_pool_set_tuning(st_pool_t *p, const st_pool_tuning_t *t)
{
    worker_t *w;

    if (t->spin_ns > 10000000u || t->token_stall_ns == 0
        || t->blocking_no_delay < 0) {
        return ST_EINVAL;
    }
    st_mutex_lock(&p->mu);
    p->tuning = *t;
    /* relaxed: a tuning value read by spinning workers */
    st_atomic_store(&p->spin_ns, t->spin_ns, ST_RELAXED);
    st_cond_signal(&p->gate_cv);
    for (w = p->idle_top; w != NULL; w = w->park_next) {
        st_cond_signal(&w->cv); /* re-reads the thread timeout */
    }
    st_mutex_unlock(&p->mu);
    return 0;
}

/* Takes every queued item out and hands it to drop (no lock held). */
static void
drain_and_drop(st_pool_t *p)
{
    st_work_t *queued, *item;
    slot_table *t;
    size_t i, count;
    int rc;

    st_mutex_lock(&p->gmu);
    queued = p->ghead;
    p->ghead = NULL;
    p->gtail = NULL;
    /* relaxed: under gmu */
    st_atomic_store(&p->gcount, 0, ST_RELAXED);
    st_mutex_unlock(&p->gmu);
    while (queued != NULL) {
        item = queued;
        queued = item->next; /* read first: drop may free the item */
        item->next = NULL;
        if (p->hooks.drop != NULL) {
            p->hooks.drop(p->hooks.arg, item);
        }
    }
    t = table_get(p, &count);
    for (i = 0; i < count; i++) {
        for (;;) {
            rc = st_deque_steal(&t->w[i]->deque, &item);
            if (rc == ST_ECLOSED) {
                break;
            }
            if (rc == 0 && p->hooks.drop != NULL) {
                p->hooks.drop(p->hooks.arg, item);
            }
        }
    }
}

int
st_pool_shutdown_timed(st_pool_t *p, uint64_t timeout_ns)
{
    uint64_t start = st_now_ns(), elapsed;
    worker_t *w;
    dedicated_t *d, **pp;
    slot_table *t;
    size_t i, count;
    int first, all_joined;

    ST_ASSERT(tls_worker == NULL || tls_worker->pool != p);
    st_mutex_lock(&p->mu);
    /* One caller at a time does the work; the others wait for it. */
    while (p->shut_state == 1) {
        st_cond_wait(&p->state_cv, &p->mu);
    }
    if (p->shut_state == 2 && p->all_joined) {
        st_mutex_unlock(&p->mu);
        return 0;
    }
    first = p->shut_state == 0;
    p->shut_state = 1;
    st_mutex_unlock(&p->mu);

    if (first) {
        /* closing under gmu: a submit either queued before (and its item
         * is drained below) or sees closing */
        st_mutex_lock(&p->gmu);
        /* release: pairs with the acquire in st_pool_is_closing */
        st_atomic_store(&p->closing, 1, ST_RELEASE);
        st_mutex_unlock(&p->gmu);
    }

    st_mutex_lock(&p->mu);
    if (first) {
        for (w = p->idle_top; w != NULL; w = w->park_next) {
            st_cond_signal(&w->cv);
        }
        st_cond_signal(&p->gate_cv);
        while (p->spawning > 0) {
            st_cond_wait(&p->state_cv, &p->mu);
        }
    }
    /* Every thread exits at its next look at `closing`; an item running
     * finishes first, up to the deadline. */
    while (p->live_threads > 0) {
        elapsed = st_now_ns() - start;
        if (timeout_ns != UINT64_MAX && elapsed >= timeout_ns) {
            break;
        }
        if (timeout_ns == UINT64_MAX) {
            st_cond_wait(&p->state_cv, &p->mu);
        }
        else {
            (void)st_cond_timedwait(&p->state_cv, &p->mu,
                                    timeout_ns - elapsed);
        }
    }
    t = table_get(p, &count);
    st_mutex_unlock(&p->mu);

    /* Join every thread that exited; a later call joins the rest. */
    st_mutex_lock(&p->mu);
    if (p->gate_exited && !p->gate_joined) {
        p->gate_joined = 1;
        st_mutex_unlock(&p->mu);
        st_thread_join(&p->gate);
        st_mutex_lock(&p->mu);
    }
    st_mutex_unlock(&p->mu);
    for (i = 0; i < count; i++) {
        w = t->w[i];
        st_mutex_lock(&p->mu);
        if (w->state != W_EXITED || w->spawn_pending) {
            st_mutex_unlock(&p->mu);
            continue; /* FREE (joined), or still running an item */
        }
        w->state = W_JOINING;
        st_mutex_unlock(&p->mu);
        st_thread_join(&w->thread);
        st_mutex_lock(&p->mu);
        w->state = W_FREE;
        st_mutex_unlock(&p->mu);
    }
    st_mutex_lock(&p->mu);
    for (;;) {
        for (pp = &p->dedicated; *pp != NULL && !(*pp)->exited;
             pp = &(*pp)->next) {
        }
        if (*pp == NULL) {
            break;
        }
        d = *pp;
        *pp = d->next; /* unlink it, then join it */
        st_mutex_unlock(&p->mu);
        st_thread_join(&d->thread);
        st_free(d);
        st_mutex_lock(&p->mu);
    }
    st_mutex_unlock(&p->mu);

    /* Submit refuses; whatever is queued (or was put back by a thread
     * that finished late) is dropped. */
    drain_and_drop(p);

    st_mutex_lock(&p->mu);
    all_joined = p->live_threads == 0 && p->gate_joined;
    p->all_joined = all_joined;
    p->shut_state = 2;
    st_cond_broadcast(&p->state_cv);
    st_mutex_unlock(&p->mu);
    return all_joined ? 0 : ST_ETIMEDOUT;
}

void
st_pool_shutdown(st_pool_t *p)
{
    int rc = st_pool_shutdown_timed(p, UINT64_MAX);
    ST_ASSERT(rc == 0);
}

void
st_pool_destroy(st_pool_t *p)
{
    slot_table *t, *older;
    size_t i, count;

    if (p == NULL) {
        return;
    }
    ST_ASSERT(p->shut_state == 2 && p->all_joined);
    t = table_get(p, &count);
    for (i = 0; i < count; i++) {
        record_free(t->w[i]);
    }
    while (t != NULL) {
        older = t->older;
        st_free(t);
        t = older;
    }
    st_cond_destroy(&p->gate_cv);
    st_cond_destroy(&p->state_cv);
    st_mutex_destroy(&p->mu);
    st_mutex_destroy(&p->gmu);
    st_free(p);
}

/* ------------------------------------------------------------ methods */

/* Any thread.  st_pool_submit without its pool.item.queued event (the
 * caller recorded it). */
static int
submit_global(st_pool_t *p, st_work_t *w)
{
    /* Read before the push: from then on a worker may run and free w. */
    int domain = is_domain(p, w);
    int rc = global_push(p, w);

    if (rc == 0) {
        notify(p, domain);
    }
    return rc;
}

int
st_pool_submit(st_pool_t *p, st_work_t *w)
{
    /* Before the push, after which a worker may start it (D2).  A submit
     * refused at shutdown leaves a queued event with no start. */
    ST_TRACE(ST_TRACE_POOL_ITEM_QUEUED, 0, (uint64_t)(uintptr_t)w,
             ST_TRACE_QUEUE_GLOBAL);
    return submit_global(p, w);
}

int
st_pool_submit_local(st_pool_t *p, st_work_t *w)
{
    worker_t *self = tls_worker;
    int domain;

    if (self == NULL || self->pool != p) {
        return st_pool_submit(p, w);
    }
    /* acquire: pairs with the release in shutdown (a worker's own item
     * pushed after closing would only be dropped, never lost) */
    if (st_atomic_load(&p->closing, ST_ACQUIRE)) {
        return ST_ECLOSED;
    }
#if defined(ST_RANDOMIZE_SCHED)
    /* Go's race mode: shake out order assumptions (STYLE.md 32). */
    self->rng ^= self->rng << 13;
    self->rng ^= self->rng >> 7;
    self->rng ^= self->rng << 17;
    if (self->rng & 1) {
        return st_pool_submit(p, w);
    }
#endif
    /* Read before the push: a thief may run and free w at once. */
    domain = is_domain(p, w);
    ST_TRACE(ST_TRACE_POOL_ITEM_QUEUED, 0, (uint64_t)(uintptr_t)w,
             ST_TRACE_QUEUE_LOCAL); /* before the push (D2) */
    if (st_deque_push(&self->deque, w) != 0) {
        /* full: spill to the global list (recorded as local above) */
        return submit_global(p, w);
    }
    notify(p, domain);
    return 0;
}

#ifndef ST_SPIN_YIELD_MASK
#define ST_SPIN_YIELD_MASK 3
#endif

void
st_pool_spin_pause(unsigned *n)
{
    int i;

    /* Every 4th pause yields: ~0.3 us of pauses between yields keeps the
     * hand-off fast when the partner runs on another CPU, and the yield
     * hands the CPU over when it shares this one. */
    if ((++*n & ST_SPIN_YIELD_MASK) == 0) {
        (void)sched_yield();
        return;
    }
    for (i = 0; i < 16; i++) {
        st_cpu_relax();
    }
}

int
st_pool_is_closing(st_pool_t *p)
{
    /* acquire: pairs with the release store in st_pool_shutdown_timed */
    return st_atomic_load(&p->closing, ST_ACQUIRE);
}

st_pool_t *
st_pool_current(void)
{
    return tls_worker != NULL ? tls_worker->pool : NULL;
}

int
st_pool_domain_busy(st_pool_t *p)
{
    /* relaxed: a hint for a bounded spin */
    return st_atomic_load(&p->token, ST_RELAXED) != NULL;
}

uint64_t
st_pool_take_starvation_notices(st_pool_t *p)
{
    /* relaxed: a counter; the event itself is in the stats */
    if (st_atomic_load(&p->notices, ST_RELAXED) == 0) {
        return 0;
    }
    return st_atomic_exchange(&p->notices, 0, ST_RELAXED);
}

void
st_pool_enter_blocking(st_pool_t *p)
{
    worker_t *w = tls_worker;

    if (w == NULL || w->pool != p) {
        return;
    }
    if (w->blocking++ > 0) {
        return; /* nested: the outermost call counts */
    }
    st_mutex_lock(&p->mu);
    p->blocked_count++;
    update_need_threads(p);
    st_mutex_unlock(&p->mu);
    /* Let another worker run domain items while this one waits: the
     * caller stays attached (it releases the interpreter itself) but no
     * longer holds the token. */
    if (release_token(p, w) || work_visible(p)) {
        if (!wake_one(p)) {
            add_worker_if_needed(p);
        }
    }
}

void
st_pool_leave_blocking(st_pool_t *p)
{
    worker_t *w = tls_worker;

    if (w == NULL || w->pool != p) {
        return;
    }
    ST_ASSERT(w->blocking > 0);
    if (--w->blocking > 0) {
        return;
    }
    st_mutex_lock(&p->mu);
    p->blocked_count--;
    update_need_threads(p);
    st_mutex_unlock(&p->mu);
}

int
st_pool_set_min_threads(st_pool_t *p, int n)
{
    int spawn = 0;
    int rc = 0;

    st_mutex_lock(&p->mu);
    if (n < 1 || n > p->max_threads) {
        rc = ST_EINVAL;
    }
    else {
        p->min_threads = n;
        while (!is_closing(p) && p->thread_count < n) {
            reserve_worker(p, 0);
            spawn++;
        }
        update_need_threads(p);
    }
    st_mutex_unlock(&p->mu);
    while (spawn-- > 0) {
        /* A failed spawn leaves the pool below its minimum until the
         * next submit (need_threads) or raise; the minimum is recorded. */
        (void)spawn_reserved(p, 0);
    }
    return rc;
}

int
st_pool_set_max_threads(st_pool_t *p, int n)
{
    worker_t *w;
    int rc = 0;

    st_mutex_lock(&p->mu);
    if (n < 1 || n < p->min_threads) {
        rc = ST_EINVAL;
    }
    else {
        p->max_threads = n > MAX_THREADS_CAP ? MAX_THREADS_CAP : n;
        if (p->thread_count > p->max_threads) {
            /* parked surplus workers leave now (park re-checks) */
            for (w = p->idle_top; w != NULL; w = w->park_next) {
                st_cond_signal(&w->cv);
            }
        }
    }
    st_mutex_unlock(&p->mu);
    return rc;
}

void
st_pool_get_stats(st_pool_t *p, st_pool_stats_t *out)
{
    st_mutex_lock(&p->mu);
    out->min_threads = p->min_threads;
    out->max_threads = p->max_threads;
    out->thread_count = p->thread_count;
    out->idle_count = p->idle_count;
    out->blocked_count = p->blocked_count;
    out->dedicated_count = p->dedicated_count;
    out->injected = p->injected;
    out->starvation_events = p->starvation_events;
    out->retired = p->retired;
    out->token_revocations = p->revocations;
    st_mutex_unlock(&p->mu);
    /* relaxed: statistics */
    out->spinning = st_atomic_load(&p->spinning, ST_RELAXED);
    out->domain_busy = st_atomic_load(&p->token, ST_RELAXED) != NULL;
    out->pending = pending_count(p);
    out->completed = total_completed(p);
}
