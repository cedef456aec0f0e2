/* st_pool.c - the thread pool: worker threads taking intrusive work items
 * from one global FIFO queue, with the domain (interpreter) attach/detach
 * protocol of st_pool.h and .NET-style blocking compensation.
 *
 * A pool owns its workers from st_pool_create to st_pool_shutdown; it never
 * allocates to queue an item (st_work_t embeds its link), never runs an
 * item or a hook with its mutex held, and never leaves a thread behind.
 *
 * DESIGN
 *
 * Invariants (all under p->mu unless said otherwise):
 *   - The queue (head, tail) holds exactly the submitted items that no
 *     worker has taken yet; `pending` mirrors its length.
 *   - thread_count counts workers that are alive or being spawned (a spawn
 *     reserves its slot under the lock before it creates the thread, so
 *     concurrent spawners never exceed max_threads); idle_count counts
 *     workers parked in work_cv; `spawning` counts spawns between that
 *     reservation and the moment the worker is linked into `workers`.
 *   - closing goes from 0 to 1 once, under the lock.  After that nothing
 *     is queued and nothing is spawned; a worker finishes the item it is
 *     running, takes no other, and exits.
 *   - Each worker has a record (worker_t) that only the worker itself
 *     touches ("owner only"), except `next` and `thread`, which belong to
 *     the pool under the lock.  Records are freed by the shutdown, after
 *     the join.
 *
 * Threads.  submit, is_closing, get_stats, set_min/max: any thread.
 * enter/leave_blocking: no-ops except on a worker of p.  shutdown: any
 * thread but a worker of p (it joins the workers; asserted).  destroy:
 * after shutdown.  st_pool_current: any thread (thread-local).
 *
 * The worker loop.  Under the lock a worker pops the head of the queue,
 * then unlocks and runs it.  When the queue is empty it unlocks, leaves
 * the domain if it was attached, spins for a few microseconds watching
 * `pending`, relocks, and parks in work_cv (idle_count++) only if the queue
 * is still empty.  A submit signals work_cv only when idle_count > 0, so
 * there is at most one wake per submit and none when every worker is busy
 * or spinning (the spin catches the item instead).  A parked worker can
 * not miss a submit: the queue and idle_count are both read and written
 * under the lock.  The signal is sent with the lock held, so it can never
 * reach a pool being destroyed.
 *
 * The domain protocol.  Before a DOMAIN item, a detached worker calls
 * hooks.attach; if it refuses, the item goes to hooks.drop.  Attached, it
 * keeps running DOMAIN items back to back until the queue is empty or
 * slice_ns has passed since the attach (the clock is read after every
 * item); then it detaches.  It also detaches before a non-DOMAIN item,
 * before it spins and parks, and before it exits.  So attach and detach
 * alternate strictly per worker, and every hook runs with no pool lock
 * held (the binding's attach takes the GIL).
 *
 * Thread management.  .NET-like: st_pool_create starts min_threads workers
 * and returns once they all run (a counter under the lock, waited on with
 * state_cv; libuv uses a semaphore).  A submit never starts a thread, even
 * when the queue is long: a burst must not become a thread per item.
 * Threads are added (a) when set_min_threads raises the minimum, and
 * (b) by blocking compensation: a worker that calls enter_blocking while
 * work is queued or no worker is idle gets a replacement at once if
 * thread_count < max_threads (counted in `injected`).  Starvation that
 * nobody announces (a long item that does not call enter_blocking) is the
 * job of a gate thread, a later addition: it will sample `completed` every
 * 500 ms and, when work is pending and nothing completed since the last
 * sample, call try_inject() like enter_blocking does.  Surplus workers do
 * not retire yet (a lowered max_threads only stops further injection);
 * idle retirement will come with the gate thread.
 *
 * Shutdown.  The first st_pool_shutdown sets closing (under the lock),
 * broadcasts work_cv, waits for in-flight spawns, joins every worker (no
 * pthread_cancel, no detached thread), then takes whatever is still queued
 * and hands each item to hooks.drop with no lock held.  Later and
 * concurrent calls wait until that first one is done (idempotent).
 *
 * Lock order (for the whole core).  Every core lock is a leaf: pool->mu,
 * timer->mu, a task's LOCKED bit and an event's mutex are never held while
 * taking another one, and none is held while calling out: no item, hook,
 * timer fire, continuation or allocation runs under a core lock.  The
 * interpreter lock (GIL) comes before every core lock: a thread holding
 * the GIL may take a core lock (submit from Python), so no thread may wait
 * for the GIL while it holds a core lock.  That is also why the pool never
 * calls st_malloc under p->mu: the allocator may be PyMem_RawMalloc, and
 * tracemalloc's hook for it takes the GIL.
 *
 * Memory ordering.  The mutex orders everything that matters: what a
 * submitter wrote before st_pool_submit is visible to the worker that pops
 * the item.  Two fields are also read without the lock, hence atomic:
 * `closing` (release store under the lock; acquire load in is_closing,
 * relaxed pre-check in the spin) and `pending` (relaxed: a hint for the
 * spin, which always re-checks under the lock, and a statistic).  Neither
 * is padded to a cache line of its own: both are written only under mu, so
 * they change together with the mutex's line anyway (and padding by
 * alignas would need an aligned allocation, which st_malloc does not
 * promise).
 *
 * Alternatives rejected:
 *   - a lock-free MPMC queue: the global queue is the slow path once the
 *     per-worker work-stealing deques (st_deque) take the hot path, and an
 *     uncontended mutex costs tens of nanoseconds;
 *   - waking a worker per submit, or broadcasting: on few cores most of
 *     those wakes find nothing to do and cost two context switches each;
 *   - injecting a thread on submit when no worker is idle: turns bursts
 *     into threads; .NET leaves that to its starvation detector;
 *   - a futex or a semaphore per worker for parking: not portable, and a
 *     condvar with an idle count gives the same "wake only if parked";
 *   - pthread_cancel or detached workers at shutdown: a cancelled thread
 *     may hold a lock or be inside malloc or the interpreter.
 */
#include "st_pool.h"

#include <stddef.h> /* NULL */
#include <stdint.h> /* uint64_t */

#include "st_alloc.h"  /* st_calloc/st_free: the only allocator */
#include "st_atomic.h" /* closing and pending */
#include "st_error.h"  /* ST_E* codes, ST_ASSERT */
#include "st_thread.h" /* mutex, condvar, thread, clock */

/* ------------------------------------------------------------ structs */

#if defined(_MSC_VER)
#define ST_THREAD_LOCAL __declspec(thread)
#else
#define ST_THREAD_LOCAL _Thread_local
#endif

/* Default time a worker stays attached while draining domain items. */
#define DEFAULT_SLICE_NS 500000u

/* Polls of `pending` before parking: a few microseconds of st_cpu_relax. */
#define SPIN_LIMIT 64

typedef struct worker {
    struct worker *next; /* in p->workers; guarded by p->mu */
    st_thread_t thread;  /* set by the spawner before linking */
    st_pool_t *pool;     /* read-only */
    void *slot;          /* the hooks' per-worker pointer; owner only */
    int attached;        /* owner only: inside attach..detach */
    int blocking;        /* owner only: enter_blocking nesting depth */
    uint64_t slice_end;  /* owner only: when the current attach expires */
} worker_t;

struct st_pool {
    st_mutex_t mu;
    st_cond_t work_cv;  /* idle workers park here */
    st_cond_t state_cv; /* start-up, spawns and shutdown progress */

    st_work_t *head; /* the global FIFO; guarded by mu */
    st_work_t *tail;
    worker_t *workers; /* every linked worker; guarded by mu */

    st_pool_hooks_t hooks; /* copied at creation, read-only after */
    uint64_t slice_ns;     /* read-only */

    /* Guarded by mu. */
    int min_threads;
    int max_threads;
    int thread_count;  /* alive or being spawned */
    int idle_count;    /* parked in work_cv */
    int blocked_count; /* inside enter/leave_blocking */
    int started;       /* workers that reached their loop */
    int spawning;      /* reserved, not yet linked (or failed) */
    int shut_state;    /* 0 running, 1 shutting down, 2 shut down */
    uint64_t completed;
    uint64_t injected;

    /* Written under mu, also read without it (see DESIGN). */
    ST_ATOMIC(int) closing;
    ST_ATOMIC(uint64_t) pending;
};

/* The worker record of the calling thread, or NULL on other threads. */
static ST_THREAD_LOCAL worker_t *tls_worker;

static void worker_main(void *arg);

/* ------------------------------------------------------------ helpers */

/* Caller holds p->mu. */
static void
queue_push(st_pool_t *p, st_work_t *w)
{
    w->next = NULL;
    if (p->tail != NULL) {
        p->tail->next = w;
    }
    else {
        p->head = w;
    }
    p->tail = w;
    /* relaxed: a hint and a statistic; the queue itself is under mu */
    st_atomic_fetch_add(&p->pending, 1, ST_RELAXED);
}

/* Caller holds p->mu.  Returns the head of the queue or NULL. */
static st_work_t *
queue_pop(st_pool_t *p)
{
    st_work_t *w = p->head;
    if (w != NULL) {
        p->head = w->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        w->next = NULL;
        /* relaxed: as in queue_push */
        st_atomic_fetch_sub(&p->pending, 1, ST_RELAXED);
    }
    return w;
}

/* Caller holds p->mu. */
static int
is_closing_locked(st_pool_t *p)
{
    /* relaxed: written under mu, which orders this read */
    return st_atomic_load(&p->closing, ST_RELAXED);
}

/* Caller holds p->mu.  Reserves the slot of one new worker; the caller
 * then calls spawn_reserved with the lock released. */
static void
reserve_worker(st_pool_t *p, int injected)
{
    p->thread_count++;
    p->spawning++;
    if (injected) {
        p->injected++;
    }
}

/* Caller holds p->mu.  The blocking-compensation (and, later, starvation)
 * rule: reserves a worker when work waits or nobody is idle, below the
 * maximum.  Returns 1 if it reserved one. */
static int
try_inject(st_pool_t *p)
{
    if (is_closing_locked(p) || p->thread_count >= p->max_threads) {
        return 0;
    }
    if (p->head == NULL && p->idle_count > 0) {
        return 0;
    }
    reserve_worker(p, 1);
    return 1;
}

/* Any thread, p->mu not held; after reserve_worker.  Allocates the record
 * and starts the thread; on failure gives the reserved slot back.  Returns
 * 0, ST_ENOMEM or ST_EINVAL. */
static int
spawn_reserved(st_pool_t *p, int injected)
{
    worker_t *w = NULL;
    int rc;

    w = st_calloc(1, sizeof(*w));
    if (w == NULL) {
        rc = ST_ENOMEM;
        goto error;
    }
    w->pool = p;
    rc = st_thread_create(&w->thread, worker_main, w);
    if (rc != 0) {
        goto error;
    }
    st_mutex_lock(&p->mu);
    w->next = p->workers;
    p->workers = w;
    if (--p->spawning == 0) {
        st_cond_broadcast(&p->state_cv); /* a shutdown may wait for it */
    }
    st_mutex_unlock(&p->mu);
    return 0;

error:
    if (w != NULL) {
        st_free(w);
    }
    st_mutex_lock(&p->mu);
    p->thread_count--;
    if (injected) {
        p->injected--;
    }
    if (--p->spawning == 0) {
        st_cond_broadcast(&p->state_cv);
    }
    st_mutex_unlock(&p->mu);
    return rc;
}

/* Any thread, no lock held. */
static void
drop_item(st_pool_t *p, st_work_t *item)
{
    if (p->hooks.drop != NULL) {
        p->hooks.drop(p->hooks.arg, item);
    }
}

/* Executed only by the owner worker, p->mu not held. */
static void
worker_detach(st_pool_t *p, worker_t *w)
{
    ST_ASSERT(w->attached);
    w->attached = 0;
    if (p->hooks.detach != NULL) {
        p->hooks.detach(p->hooks.arg, &w->slot);
    }
}

/* Executed only by the owner worker, p->mu not held.  Runs one item under
 * the domain protocol.  Returns 1 if it ran, 0 if it was dropped. */
static int
run_item(st_pool_t *p, worker_t *w, st_work_t *item)
{
    /* Read before run: the item may be freed by its own run. */
    int domain = (item->flags & ST_WORK_DOMAIN) != 0
                 && p->hooks.attach != NULL;

    if (!domain) {
        if (w->attached) {
            worker_detach(p, w);
        }
        item->run(item);
        return 1;
    }
    if (!w->attached) {
        if (p->hooks.attach(p->hooks.arg, &w->slot) != 0) {
            drop_item(p, item);
            return 0;
        }
        w->attached = 1;
        w->slice_end = st_now_ns() + p->slice_ns;
    }
    item->run(item);
    if (st_now_ns() >= w->slice_end) {
        worker_detach(p, w); /* slice used up: let other threads in */
    }
    return 1;
}

/* Executed only by a worker, p->mu not held.  Spins a few microseconds
 * for work to appear, so that a submit right after the queue ran dry is
 * caught without a park and a wake. */
static void
spin_for_work(st_pool_t *p)
{
    int i;

    for (i = 0; i < SPIN_LIMIT; i++) {
        /* relaxed: hints only; the caller re-checks under mu */
        if (st_atomic_load(&p->pending, ST_RELAXED) != 0
            || st_atomic_load(&p->closing, ST_RELAXED)) {
            return;
        }
        st_cpu_relax();
    }
}

/* The worker thread.  (lint-ok: the loop drops p->mu around each item
 * and parks, and retakes it on both branches; every path ends unlocked.) */
static void
worker_main(void *arg)
{
    worker_t *w = arg;
    st_pool_t *p = w->pool;
    st_work_t *item;

    tls_worker = w;
    st_mutex_lock(&p->mu);
    p->started++;
    st_cond_broadcast(&p->state_cv); /* st_pool_create waits for this */
    while (!is_closing_locked(p)) {
        item = queue_pop(p);
        if (item != NULL) {
            st_mutex_unlock(&p->mu);
            if (run_item(p, w, item)) {
                st_mutex_lock(&p->mu);
                p->completed++;
            }
            else {
                st_mutex_lock(&p->mu);
            }
            continue;
        }
        /* Queue empty: leave the domain, spin a little, then park. */
        st_mutex_unlock(&p->mu);
        if (w->attached) {
            worker_detach(p, w);
        }
        spin_for_work(p);
        st_mutex_lock(&p->mu);
        p->idle_count++;
        while (p->head == NULL && !is_closing_locked(p)) {
            st_cond_wait(&p->work_cv, &p->mu);
        }
        p->idle_count--;
    }
    st_mutex_unlock(&p->mu);

    if (w->attached) {
        worker_detach(p, w);
    }
    if (p->hooks.thread_exit != NULL) {
        p->hooks.thread_exit(p->hooks.arg, &w->slot);
    }
    st_mutex_lock(&p->mu);
    p->thread_count--;
    st_mutex_unlock(&p->mu);
    tls_worker = NULL;
    /* The shutdown joins this thread, then frees w. */
}

/* ---------------------------------------------------------- lifecycle */

int
st_pool_create(st_pool_t **out, int min_threads, int max_threads,
               const st_pool_hooks_t *hooks)
{
    st_pool_t *p = NULL;
    int rc = 0;
    int i;

    *out = NULL;
    if (min_threads < 1 || max_threads < min_threads) {
        rc = ST_EINVAL;
        goto error;
    }
    p = st_calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = ST_ENOMEM;
        goto error;
    }
    st_mutex_init(&p->mu);
    st_cond_init(&p->work_cv);
    st_cond_init(&p->state_cv);
    st_atomic_init(&p->closing, 0);
    st_atomic_init(&p->pending, 0);
    if (hooks != NULL) {
        p->hooks = *hooks;
    }
    p->slice_ns = p->hooks.slice_ns != 0 ? p->hooks.slice_ns
                                         : DEFAULT_SLICE_NS;
    p->min_threads = min_threads;
    p->max_threads = max_threads;

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
    if (p != NULL) {
        st_pool_shutdown(p); /* joins the workers already started */
        st_pool_destroy(p);
    }
    return rc;
}

void
st_pool_shutdown(st_pool_t *p)
{
    worker_t *workers, *w;
    st_work_t *queued, *item;

    ST_ASSERT(tls_worker == NULL || tls_worker->pool != p);
    st_mutex_lock(&p->mu);
    if (p->shut_state != 0) {
        /* Another caller does the work: return once it is done. */
        while (p->shut_state != 2) {
            st_cond_wait(&p->state_cv, &p->mu);
        }
        st_mutex_unlock(&p->mu);
        return;
    }
    p->shut_state = 1;
    /* release: pairs with the acquire in st_pool_is_closing */
    st_atomic_store(&p->closing, 1, ST_RELEASE);
    st_cond_broadcast(&p->work_cv);
    while (p->spawning > 0) {
        st_cond_wait(&p->state_cv, &p->mu);
    }
    workers = p->workers;
    p->workers = NULL;
    st_mutex_unlock(&p->mu);

    while (workers != NULL) {
        w = workers;
        workers = w->next;
        st_thread_join(&w->thread);
        st_free(w);
    }

    /* Every worker is gone and submit refuses: the queue is ours. */
    st_mutex_lock(&p->mu);
    queued = p->head;
    p->head = NULL;
    p->tail = NULL;
    /* relaxed: statistic only */
    st_atomic_store(&p->pending, 0, ST_RELAXED);
    st_mutex_unlock(&p->mu);
    while (queued != NULL) {
        item = queued;
        queued = item->next; /* read first: drop may free the item */
        item->next = NULL;
        drop_item(p, item);
    }

    st_mutex_lock(&p->mu);
    p->shut_state = 2;
    st_cond_broadcast(&p->state_cv);
    st_mutex_unlock(&p->mu);
}

void
st_pool_destroy(st_pool_t *p)
{
    if (p == NULL) {
        return;
    }
    ST_ASSERT(p->shut_state == 2 && p->workers == NULL);
    st_cond_destroy(&p->state_cv);
    st_cond_destroy(&p->work_cv);
    st_mutex_destroy(&p->mu);
    st_free(p);
}

/* ------------------------------------------------------------ methods */

int
st_pool_submit(st_pool_t *p, st_work_t *w)
{
    int rc = 0;

    st_mutex_lock(&p->mu);
    if (is_closing_locked(p)) {
        rc = ST_ECLOSED;
    }
    else {
        queue_push(p, w);
        if (p->idle_count > 0) {
            st_cond_signal(&p->work_cv); /* one wake, only if parked */
        }
    }
    st_mutex_unlock(&p->mu);
    return rc;
}

int
st_pool_is_closing(st_pool_t *p)
{
    /* acquire: pairs with the release store in st_pool_shutdown */
    return st_atomic_load(&p->closing, ST_ACQUIRE);
}

st_pool_t *
st_pool_current(void)
{
    return tls_worker != NULL ? tls_worker->pool : NULL;
}

void
st_pool_enter_blocking(st_pool_t *p)
{
    worker_t *w = tls_worker;
    int inject;

    if (w == NULL || w->pool != p) {
        return;
    }
    if (w->blocking++ > 0) {
        return; /* nested: the outermost call counts */
    }
    st_mutex_lock(&p->mu);
    p->blocked_count++;
    inject = try_inject(p);
    st_mutex_unlock(&p->mu);
    if (inject) {
        /* On failure the slot is given back; queued work then waits for
         * a worker to come back (or, later, for the gate thread). */
        (void)spawn_reserved(p, 1);
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
        while (!is_closing_locked(p) && p->thread_count < n) {
            reserve_worker(p, 0);
            spawn++;
        }
    }
    st_mutex_unlock(&p->mu);
    while (spawn-- > 0) {
        /* A failed spawn leaves the pool below its minimum until the
         * next raise; the minimum itself is recorded. */
        (void)spawn_reserved(p, 0);
    }
    return rc;
}

int
st_pool_set_max_threads(st_pool_t *p, int n)
{
    int rc = 0;

    st_mutex_lock(&p->mu);
    if (n < 1 || n < p->min_threads) {
        rc = ST_EINVAL;
    }
    else {
        p->max_threads = n;
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
    /* relaxed: statistic; mu makes it exact anyway */
    out->pending = st_atomic_load(&p->pending, ST_RELAXED);
    out->completed = p->completed;
    out->injected = p->injected;
    st_mutex_unlock(&p->mu);
}
