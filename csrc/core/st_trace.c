/* st_trace.c - the event recorder (SPEC D2): per-thread ring buffers
 * written without a lock, a collector that drains them all in time order.
 *
 * DESIGN
 *
 * Sessions.  st_trace_start bumps g_session, sets the capacity, then the
 * on flag; st_trace_stop clears the flag.  A thread's first event in a
 * session allocates its buffer (a ring of `capacity` slots, tagged with
 * the session), pushes it on the registry g_bufs and keeps it in a
 * thread-local; a buffer of an older session is left behind ("gone") at
 * the thread's first event in the new one.  A pthread key's destructor
 * marks a thread's buffer gone when the thread exits.  Only the collector
 * frees buffers, and only gone ones: a live owner never loses its buffer.
 *
 * Invariants.
 *   - A buffer is written by its owner thread only, until it is gone;
 *     after that by nobody (the owner drops its thread-local first, and a
 *     dying thread records nothing more: tls_dead).
 *   - b->head is the number of events published in b; events [head - cap,
 *     head) may be in the ring, the older ones were overwritten.
 *   - The registry only grows at its head (a CAS by the owner); the
 *     collector, under g_mu, reads the list and unlinks gone buffers.  The
 *     `next` field of a published buffer is written by the collector only.
 *   - b->read (collector only, under g_mu): the events already collected
 *     or counted as dropped.
 *
 * Threads.  st_trace_emit, st_trace_on, st_trace_name, st_trace_intern,
 * st_trace_string: any thread, no lock.  st_trace_start, st_trace_stop,
 * st_trace_collect: any thread; start and collect take g_mu (a leaf:
 * nothing else is locked under it, nothing calls out, allocation is the C
 * library's).
 *
 * Why the C library's allocator and not st_malloc: the binding installs
 * PyMem_RawMalloc, and tracemalloc's raw hook takes the interpreter lock.
 * Recording must never take it (D2), nor may g_mu be held while waiting
 * for it (the lock order of st_pool.c).  No Python object is ever stored
 * here, so nothing is lost by bypassing the hook.
 *
 * Memory ordering.  An event is written by the owner as
 *     write_start = n + 1 (relaxed);  four slot words (release each);
 *     head = n + 1 (release)
 * and read by the collector as
 *     H = head (acquire);  the slot words of events < H (acquire each);
 *     ws = write_start (relaxed, after those acquires).
 * A slot word the collector read from a later write (event n + cap, which
 * reuses the slot) was stored with release after that write's
 * write_start store, so the acquire makes that store visible: ws >= n +
 * cap + 1.  Hence every event i with ws <= i + cap was read intact; the
 * others (a prefix) are counted as dropped.  No fence is used
 * (ThreadSanitizer does not model fences; GCC refuses them under
 * -fsanitize=thread); on x86 the release stores and acquire loads are
 * plain moves.
 *   - st__trace_on: relaxed at event sites (a hint); st_trace_emit re-reads
 *     it with acquire, pairing with the release store in st_trace_start,
 *     so a thread that records sees the new session and capacity.
 *   - g_session, g_capacity: written under g_mu before that release.
 *   - gone: release by the owner (its last writes happen before), acquire
 *     by the collector, which reads gone BEFORE head: a buffer seen gone
 *     is read to its end before it is freed.
 *   - g_bufs: CAS release by a pusher (the buffer's fields before it),
 *     acquire by the collector.
 *   - g_lost: relaxed, a counter.
 *
 * Alternatives rejected:
 *   - one shared buffer with an atomic index: every event from every
 *     thread would bounce one cache line;
 *   - a lock per buffer: the collector would make recording threads wait,
 *     and a per-event lock costs as much as the event;
 *   - stopping the writers to collect: a collect while recording (and
 *     threads that never stop recording) must not wait for anybody;
 *   - per-slot sequence numbers (a seqlock per slot): one more store per
 *     event; the ring's own counters say the same;
 *   - a global sort with qsort: each buffer is already in time order, so
 *     merging the runs is stable (a thread's events keep their order
 *     even with equal timestamps) and O(n log threads).
 */
#define _GNU_SOURCE /* pthread_getname_np */

#include "st_trace.h"

#include <pthread.h> /* the exit key, atfork, pthread_getname_np */
#include <stdlib.h>  /* calloc, malloc, free: see DESIGN */
#include <string.h>  /* memcpy, memset, strcmp, strlen */

#include "st_error.h"  /* ST_E* codes, ST_ASSERT */
#include "st_thread.h" /* mutex, clock, thread id and name */

/* ------------------------------------------------------------ structs */

/* One event in a ring: ts, task id, arg, name | arg2 << 32. */
typedef struct slot {
    ST_ATOMIC(uint64_t) w[4];
} slot;

typedef struct tbuf {
    /* Fixed once published (but `next`: the collector's, under g_mu). */
    struct tbuf *next;
    uint64_t session;
    uint64_t tid;
    size_t cap;
    char name[ST_THREAD_NAME_MAX];
    int named;

    /* Owner only. */
    uint64_t count; /* events written */
    size_t pos;     /* count % cap: the next slot */

    /* Collector only, under g_mu. */
    uint64_t read;   /* events collected or counted dropped */
    uint64_t c_head; /* head as this collect saw it */
    int c_gone;      /* gone as this collect saw it (read before c_head) */

    /* Shared, on their own cache line (the owner writes them per event). */
    char pad[ST_CACHELINE];
    ST_ATOMIC(uint64_t) head;        /* events published */
    ST_ATOMIC(uint64_t) write_start; /* 1 + the event being written */
    ST_ATOMIC(int) gone;             /* the owner left it for good */
    char pad2[ST_CACHELINE];
    slot ring[];
} tbuf;

/* ------------------------------------------------------------ globals */

ST_ATOMIC(int) st__trace_on;

static ST_ATOMIC(uint64_t) g_session;  /* 0: never started */
static ST_ATOMIC(size_t) g_capacity;
static ST_ATOMIC(uint64_t) g_lost;     /* events with no buffer */
static ST_ATOMIC(tbuf *) g_bufs;       /* the registry */
static st_mutex_t g_mu;                /* start and collect */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_exit_key;       /* its destructor: thread exit */

static ST_ATOMIC(char *) g_strings[ST_TRACE_MAX_STRINGS];

/* The calling thread's buffer: owned by this thread (it writes it) until
 * it marks it gone and drops the pointer; never freed while set. */
static ST_THREAD_LOCAL tbuf *tls_buf;
/* Set by the exit destructor: this thread records nothing more. */
static ST_THREAD_LOCAL int tls_dead;

static const char *const g_names[ST_TRACE_COUNT] = {
    NULL,
    "task.created",
    "task.completed",
    "method.start",
    "method.suspend",
    "method.resume",
    "method.complete",
    "continuation.queued",
    "continuation.inline",
    "context.post",
    "pool.item.queued",
    "pool.item.start",
    "pool.item.end",
    "pool.thread.injected",
    "pool.thread.retired",
    "timer.fired",
    "wait.block",
    "wait.wake",
    "deadlock.detected",
};

/* ------------------------------------------------------ thread exit */

/* Runs on the exiting thread (the pthread key's destructor). */
static void
thread_exit(void *arg)
{
    tbuf *b = arg;

    tls_dead = 1;
    if (tls_buf == b) {
        tls_buf = NULL;
    }
    /* release: the owner's last writes before the collector frees b;
     * pairs with the acquire in st_trace_collect and free_gone */
    st_atomic_store(&b->gone, 1, ST_RELEASE);
}

/* In a forked child only the forking thread lives on: every other
 * thread's buffer is gone, and g_mu may have been held by one of them. */
static void
atfork_child(void)
{
    tbuf *b;

    st_mutex_init(&g_mu);
    /* relaxed: the child has one thread */
    for (b = st_atomic_load(&g_bufs, ST_RELAXED); b != NULL; b = b->next) {
        if (b != tls_buf) {
            st_atomic_store(&b->gone, 1, ST_RELAXED);
        }
    }
}

static void
init_once(void)
{
    st_mutex_init(&g_mu);
    if (pthread_key_create(&g_exit_key, thread_exit) != 0) {
        st_fatal("st_trace: pthread_key_create failed");
    }
    (void)pthread_atfork(NULL, NULL, atfork_child);
}

/* --------------------------------------------------------- recording */

/* The calling thread's name into b (the core's, else the OS's). */
static void
name_thread(tbuf *b)
{
    const char *name = st_thread_name();
    size_t n;

    if (name != NULL) {
        n = strlen(name);
        if (n >= sizeof(b->name)) {
            n = sizeof(b->name) - 1;
        }
        memcpy(b->name, name, n);
        b->name[n] = '\0';
        b->named = 1;
        return;
    }
#if defined(__linux__) || defined(__APPLE__)
    if (pthread_getname_np(pthread_self(), b->name, sizeof(b->name)) != 0) {
        b->name[0] = '\0';
    }
#endif
}

/* Owner.  A fresh buffer of the current session for the calling thread
 * (old: its buffer of an older session, or NULL), or NULL with the event
 * counted as lost. */
static tbuf *
attach(tbuf *old)
{
    tbuf *b, *head;
    size_t cap;

    if (tls_dead) {
        st_atomic_fetch_add(&g_lost, 1, ST_RELAXED); /* relaxed: counter */
        return NULL;
    }
    /* relaxed: ordered by the acquire load of st__trace_on in emit */
    cap = st_atomic_load(&g_capacity, ST_RELAXED);
    b = calloc(1, sizeof(*b) + cap * sizeof(slot));
    if (b == NULL) {
        st_atomic_fetch_add(&g_lost, 1, ST_RELAXED); /* relaxed: counter */
        return NULL;
    }
    b->session = st_atomic_load(&g_session, ST_RELAXED); /* as cap */
    b->tid = st_thread_id();
    b->cap = cap;
    name_thread(b);
    st_atomic_init(&b->head, 0);
    st_atomic_init(&b->write_start, 0);
    st_atomic_init(&b->gone, 0);
    if (old != NULL) {
        /* release: as in thread_exit */
        st_atomic_store(&old->gone, 1, ST_RELEASE);
    }
    tls_buf = b;
    (void)pthread_setspecific(g_exit_key, b);
    /* relaxed: a pre-read; the CAS publishes */
    head = st_atomic_load(&g_bufs, ST_RELAXED);
    do {
        b->next = head;
        /* release: b's fields before it; pairs with the acquire load of
         * g_bufs in the collector */
    } while (!st_atomic_cas_weak(&g_bufs, &head, b, ST_RELEASE, ST_RELAXED));
    return b;
}

void
st_trace_emit(int name, uint64_t task_id, uint64_t arg, uint32_t arg2)
{
    tbuf *b;
    slot *s;
    uint64_t n;

    /* acquire: pairs with the release store in st_trace_start (the
     * session and capacity read below are the new ones) */
    if (!st_atomic_load(&st__trace_on, ST_ACQUIRE)) {
        return;
    }
    b = tls_buf;
    /* relaxed: ordered by the acquire above */
    if (b == NULL
        || b->session != st_atomic_load(&g_session, ST_RELAXED)) {
        b = attach(b);
        if (b == NULL) {
            return;
        }
    }
    n = b->count;
    /* relaxed: the release stores of the slot words carry it (DESIGN) */
    st_atomic_store(&b->write_start, n + 1, ST_RELAXED);
    s = &b->ring[b->pos];
    /* release each: pairs with the collector's acquire loads (DESIGN) */
    st_atomic_store(&s->w[0], st_now_ns(), ST_RELEASE);
    st_atomic_store(&s->w[1], task_id, ST_RELEASE);
    st_atomic_store(&s->w[2], arg, ST_RELEASE);
    st_atomic_store(&s->w[3],
                    (uint64_t)(uint32_t)name | ((uint64_t)arg2 << 32),
                    ST_RELEASE);
    /* release: publishes the event; pairs with the collector's acquire */
    st_atomic_store(&b->head, n + 1, ST_RELEASE);
    b->count = n + 1;
    b->pos = b->pos + 1 == b->cap ? 0 : b->pos + 1;
}

const char *
st_trace_name(int name)
{
    if (name <= ST_TRACE_NONE || name >= ST_TRACE_COUNT) {
        return NULL;
    }
    return g_names[name];
}

/* ----------------------------------------------------------- strings */

uint32_t
st_trace_intern(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    const unsigned char *p;
    char *copy = NULL, *cur;
    size_t i, idx, len;

    if (s == NULL) {
        return 0;
    }
    for (p = (const unsigned char *)s; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    for (i = 0; i < ST_TRACE_MAX_STRINGS; i++) {
        idx = (h + i) % ST_TRACE_MAX_STRINGS;
        /* acquire: pairs with the CAS below (the copied bytes) */
        cur = st_atomic_load(&g_strings[idx], ST_ACQUIRE);
        if (cur == NULL) {
            if (copy == NULL) {
                len = strlen(s);
                copy = malloc(len + 1);
                if (copy == NULL) {
                    return 0;
                }
                memcpy(copy, s, len + 1);
            }
            /* acq_rel: publishes the copy; on failure reads the winner */
            if (st_atomic_cas(&g_strings[idx], &cur, copy, ST_ACQ_REL,
                              ST_ACQUIRE)) {
                return (uint32_t)idx + 1;
            }
        }
        if (strcmp(cur, s) == 0) {
            free(copy);
            return (uint32_t)idx + 1;
        }
    }
    free(copy);
    return 0;
}

const char *
st_trace_string(uint32_t id)
{
    if (id == 0 || id > ST_TRACE_MAX_STRINGS) {
        return NULL;
    }
    /* acquire: pairs with the CAS in st_trace_intern */
    return st_atomic_load(&g_strings[id - 1], ST_ACQUIRE);
}

/* --------------------------------------------------------- the registry */

/* Caller holds g_mu.  Takes b (whose predecessor is prev, or NULL when b
 * was the head as the caller saw it) off the registry. */
static void
unlink_buf(tbuf *prev, tbuf *b)
{
    tbuf *expect = b, *p;

    if (prev != NULL) {
        prev->next = b->next;
        return;
    }
    /* acq_rel: the head may have moved (a push); on failure, acquire
     * reads the newer buffers, among which b's new predecessor is */
    if (st_atomic_cas(&g_bufs, &expect, b->next, ST_ACQ_REL, ST_ACQUIRE)) {
        return;
    }
    for (p = expect; p->next != b; p = p->next) {
        ST_ASSERT(p->next != NULL);
    }
    p->next = b->next;
}

/* Caller holds g_mu.  Frees every gone buffer that is not of `keep` (0:
 * of any session). */
static void
free_gone(uint64_t keep)
{
    tbuf *prev = NULL, *b, *next;

    /* acquire: pairs with the release CAS of a pusher */
    for (b = st_atomic_load(&g_bufs, ST_ACQUIRE); b != NULL; b = next) {
        next = b->next;
        /* acquire: pairs with the owner's release store of gone */
        if (b->session != keep && st_atomic_load(&b->gone, ST_ACQUIRE)) {
            unlink_buf(prev, b);
            free(b);
        }
        else {
            prev = b;
        }
    }
}

int
st_trace_start(size_t capacity)
{
    int rc = 0;

    if (capacity == 0 || capacity > ST_TRACE_MAX_CAPACITY) {
        return ST_EINVAL;
    }
    (void)pthread_once(&g_once, init_once);
    st_mutex_lock(&g_mu);
    /* relaxed: written under g_mu only */
    if (st_atomic_load(&st__trace_on, ST_RELAXED)) {
        rc = ST_EBUSY;
    }
    else {
        free_gone(0); /* the previous sessions' leftovers */
        /* relaxed: published by the release store of the flag below */
        st_atomic_store(&g_capacity, capacity, ST_RELAXED);
        st_atomic_store(&g_session,
                        st_atomic_load(&g_session, ST_RELAXED) + 1,
                        ST_RELAXED);
        st_atomic_store(&g_lost, 0, ST_RELAXED);
        /* release: the session and capacity before the flag; pairs with
         * the acquire load in st_trace_emit */
        st_atomic_store(&st__trace_on, 1, ST_RELEASE);
    }
    st_mutex_unlock(&g_mu);
    return rc;
}

void
st_trace_stop(void)
{
    /* relaxed: recording threads may record a few more events; they are
     * collected by the next collect (see st_trace.h) */
    st_atomic_store(&st__trace_on, 0, ST_RELAXED);
}

/* ---------------------------------------------------------- collecting */

/* Merges the sorted runs a[bounds[i], bounds[i+1]) pairwise until one is
 * left; stable (an earlier run wins ties).  tmp holds as many events as
 * a; bounds has nruns + 1 entries and is overwritten. */
static void
merge_runs(st_trace_event_t *a, st_trace_event_t *tmp, size_t *bounds,
           size_t nruns)
{
    st_trace_event_t *src = a, *dst = tmp, *swap;
    size_t i, k, x, y, xe, ye, o;

    while (nruns > 1) {
        k = 0;
        for (i = 0; i + 1 < nruns; i += 2) {
            x = bounds[i];
            xe = y = bounds[i + 1];
            ye = bounds[i + 2];
            o = x;
            while (x < xe && y < ye) {
                dst[o++] = src[y].ts_ns < src[x].ts_ns ? src[y++] : src[x++];
            }
            while (x < xe) {
                dst[o++] = src[x++];
            }
            while (y < ye) {
                dst[o++] = src[y++];
            }
            bounds[k++] = bounds[i];
        }
        if (i < nruns) { /* an odd run out: copied as it is */
            memcpy(dst + bounds[i], src + bounds[i],
                   (bounds[i + 1] - bounds[i]) * sizeof(*src));
            bounds[k++] = bounds[i];
        }
        bounds[k] = bounds[nruns];
        nruns = k;
        swap = src;
        src = dst;
        dst = swap;
    }
    if (src != a && bounds[1] > bounds[0]) {
        memcpy(a, src, (bounds[1] - bounds[0]) * sizeof(*a));
    }
}

/* Caller holds g_mu.  Copies b's events [b->read, b->c_head) that are
 * still intact to out (room for them), as thread `thread`; counts the
 * overwritten ones in *dropped.  Returns the number copied. */
static size_t
drain(tbuf *b, st_trace_event_t *out, uint32_t thread, uint64_t *dropped)
{
    uint64_t from, first, i, ws, w3, h = b->c_head;
    size_t k = 0, n = 0;
    const slot *s;

    from = h > b->cap ? h - b->cap : 0;
    if (from < b->read) {
        from = b->read;
    }
    for (i = from; i < h; i++) {
        s = &b->ring[i % b->cap];
        /* acquire each: pairs with the owner's release stores (DESIGN) */
        out[k].ts_ns = st_atomic_load(&s->w[0], ST_ACQUIRE);
        out[k].task_id = st_atomic_load(&s->w[1], ST_ACQUIRE);
        out[k].arg = st_atomic_load(&s->w[2], ST_ACQUIRE);
        w3 = st_atomic_load(&s->w[3], ST_ACQUIRE);
        out[k].name = (uint32_t)(w3 & 0xffffffffu);
        out[k].arg2 = (uint32_t)(w3 >> 32);
        out[k].thread = thread;
        k++;
    }
    /* relaxed: after the acquire loads above (DESIGN) */
    ws = st_atomic_load(&b->write_start, ST_RELAXED);
    first = ws > b->cap ? ws - b->cap : 0; /* events < first: overwritten */
    if (first < from) {
        first = from;
    }
    if (first > h) {
        first = h;
    }
    *dropped += first - b->read;
    n = (size_t)(h - first);
    if (first > from) {
        memmove(out, out + (first - from), n * sizeof(*out));
    }
    b->read = h;
    return n;
}

int
st_trace_collect(st_trace_dump_t *out)
{
    st_trace_event_t *events = NULL, *tmp = NULL;
    st_trace_thread_t *threads = NULL;
    size_t *bounds = NULL;
    tbuf *first, *b, *prev, *next;
    uint64_t session, avail, dropped = 0;
    size_t total = 0, nthreads = 0, k, t, n;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    (void)pthread_once(&g_once, init_once);
    st_mutex_lock(&g_mu);
    /* relaxed: written under g_mu */
    session = st_atomic_load(&g_session, ST_RELAXED);
    /* Pass 1: what each buffer of the session holds now.  Both passes
     * walk from the same head: a buffer pushed meanwhile waits for the
     * next collect. */
    /* acquire: pairs with the release CAS of a pusher */
    first = st_atomic_load(&g_bufs, ST_ACQUIRE);
    for (b = first; b != NULL; b = b->next) {
        if (session == 0 || b->session != session) {
            continue;
        }
        /* acquire: gone BEFORE head (DESIGN): a gone buffer is read to
         * its end */
        b->c_gone = st_atomic_load(&b->gone, ST_ACQUIRE);
        /* acquire: pairs with the owner's release store of head */
        b->c_head = st_atomic_load(&b->head, ST_ACQUIRE);
        avail = b->c_head - b->read;
        total += (size_t)(avail > b->cap ? b->cap : avail);
        nthreads++;
    }
    if (nthreads > 0) {
        events = malloc((total > 0 ? total : 1) * sizeof(*events));
        tmp = malloc((total > 0 ? total : 1) * sizeof(*tmp));
        threads = malloc(nthreads * sizeof(*threads));
        bounds = malloc((nthreads + 1) * sizeof(*bounds));
        if (events == NULL || tmp == NULL || threads == NULL
            || bounds == NULL) {
            rc = ST_ENOMEM;
            goto error;
        }
    }
    /* Pass 2: drain them; free the gone ones (of any session). */
    prev = NULL;
    k = 0;
    t = 0;
    for (b = first; b != NULL; b = next) {
        next = b->next;
        if (session != 0 && b->session == session) {
            ST_ASSERT(t < nthreads);
            threads[t].tid = b->tid;
            memcpy(threads[t].name, b->name, sizeof(b->name));
            threads[t].named = b->named;
            threads[t].exited = b->c_gone;
            bounds[t] = k;
            n = drain(b, events + k, (uint32_t)t, &dropped);
            k += n;
            t++;
            if (!b->c_gone) {
                prev = b;
                continue;
            }
        }
        /* acquire: as in free_gone */
        else if (!st_atomic_load(&b->gone, ST_ACQUIRE)) {
            prev = b;
            continue;
        }
        unlink_buf(prev, b);
        free(b);
    }
    /* relaxed: a counter */
    dropped += st_atomic_exchange(&g_lost, 0, ST_RELAXED);
    st_mutex_unlock(&g_mu);

    if (t > 0) {
        bounds[t] = k;
        merge_runs(events, tmp, bounds, t);
    }
    free(tmp);
    free(bounds);
    out->events = events;
    out->count = k;
    out->threads = threads;
    out->nthreads = t;
    out->dropped = dropped;
    return 0;

error:
    st_mutex_unlock(&g_mu);
    free(bounds);
    free(threads);
    free(tmp);
    free(events);
    return rc;
}

void
st_trace_dump_free(st_trace_dump_t *d)
{
    free(d->events);
    free(d->threads);
    memset(d, 0, sizeof(*d));
}
