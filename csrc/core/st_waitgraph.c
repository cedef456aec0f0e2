/* st_waitgraph.c - the waits-for graph of the deadlock detector and its
 * cycle search, over opaque pointers (SPEC C5, C6, C8).
 *
 * DESIGN
 *
 * What is kept.  One record per thread that matters (it runs a context,
 * blocks, or runs task code while some thread runs a context): the
 * contexts it owns, the task it is blocked on forever, and the stack of
 * tasks whose code it is running.  Task-to-task and task-to-context edges
 * are not kept: they live in the embedder's task objects and are asked for
 * through the edges callback during a search.  This keeps the hot paths
 * (an async method's step) free of any graph update but the running
 * push/pop, which is two atomic stores (inline in the header; the
 * _slow functions here take the rest: growing, lost pushes, out-of-order
 * pops).
 *
 * The search.  Depth-first from a task, looking for the start thread,
 * with an explicit stack of frames (node, its range of edges) and one
 * shared array of pending edges: a frame's edges sit above its parent's,
 * so popping a frame truncates the array.  A visited set (open addressing
 * over (kind, pointer)) expands every node once, so a search is linear in
 * the part of the graph it reaches.  Nothing has a fixed size: the three
 * arrays start in the walk's own storage and move to st_malloc'ed memory
 * when they fill (a review found an out-of-bounds read in the binding's
 * fixed running[16]; here no array is indexed by a count it does not own).
 * Expansion rules (the binding's edges callback is task_edges in
 * py_deadlock.c):
 *   TASK    running on a thread now -> only that thread; else the
 *           caller's edges;
 *   CONTEXT -> its owner thread, if any (a context nobody runs could be
 *           run by anyone later: not a hard dependency);
 *   THREAD  the start thread ends the search (a cycle); a blocked thread
 *           -> its task; a free thread ends the path.
 *
 * Locking.  One mutex, mu, guards the records' lists and fields except the
 * running stacks' entries and length.  A search holds mu from start to end
 * (it reads every record) and allocates its scratch space under it;
 * st_malloc takes no core lock.  mu is otherwise a leaf: the edges
 * callback may not call into the graph, and the wake callback may take
 * only leaf locks (an st_event's mutex).  Global order: wherever a caller
 * holds the GIL, it is taken before mu, never the other way.
 *
 * Running stacks.  Written only by their own thread, without mu: the
 * entry with a relaxed store, then the length with a release store; a
 * search loads the length with acquire (pairs with that release) and then
 * the entries.  The array pointer and capacity change only under mu, by
 * the owning thread, so a search (under mu) never sees a length beyond the
 * array it reads (and clamps to the capacity all the same).  A thread
 * blocked in st_waitgraph_block pushed and popped before it took mu to
 * block, so a search sees its stack exactly; a running thread's stack is a
 * snapshot, and a running thread only ends a path (no false positive).
 *
 * Counters.  owner_threads and blocked_owners change only under mu; they
 * are atomics so that the binding's "is detection armed?" pre-checks and
 * st_waitgraph_recheck's early exit can read them without the lock
 * (relaxed: a stale 0 can only skip a recheck that a later graph change
 * or the blocking thread's own search will do).
 *
 * Alternatives rejected:
 *   - keeping every task edge in the graph: each await, post and
 *     completion would update it, on the hottest paths, to serve a search
 *     that runs only while a context owner is blocked;
 *   - recursion with a depth limit (the binding's 64): a long await chain
 *     is legal, and a silent limit hides deadlocks;
 *   - a lock per record: a search reads all of them anyway.
 */
#include "st_waitgraph.h"

#include <stddef.h> /* NULL, size_t */
#include <stdint.h> /* uintptr_t, SIZE_MAX */
#include <string.h> /* memcpy, memset */

#include "st_alloc.h"  /* st_malloc, st_realloc, st_free */
#include "st_error.h"  /* ST_E* codes, ST_ASSERT */
#include "st_thread.h" /* the mutex */

#define WALK_STACK0 16 /* frames in the walk's own storage */
#define WALK_EDGES0 32 /* pending edges, idem */
#define WALK_SET0 64   /* visited-set slots, idem (a power of two) */

/* ------------------------------------------------------------ structs */

typedef struct wg_frame {
    st_wg_node_t node;
    size_t next; /* next edge of this node to follow (index in edges) */
    size_t end;  /* one past its last edge */
    size_t begin; /* its first edge: edges are truncated here on pop */
} wg_frame;

/* One search (also the sink of the edges callback). */
struct st_wg_walk {
    st_waitgraph_t *g;
    st_wg_thread_t *start;
    st_wg_edges_fn edges_fn;
    void *arg;
    wg_frame *stack;
    size_t depth, stack_cap;
    st_wg_node_t *edges;
    size_t nedges, edges_cap;
    st_wg_node_t *set; /* kind 0: a free slot */
    size_t set_len, set_cap;
    wg_frame stack0[WALK_STACK0];
    st_wg_node_t edges0[WALK_EDGES0];
    st_wg_node_t set0[WALK_SET0];
};

typedef struct st_wg_walk wg_walk;

/* ------------------------------------------------------------ helpers */

/* Grows buf (len elements of elem bytes, capacity *cap, starting in
 * `own`, the caller's initial storage) to twice its capacity.  Returns
 * the new buffer, or NULL (buf untouched) when memory runs out. */
static void *
grow(void *buf, size_t *cap, size_t len, size_t elem, const void *own)
{
    size_t ncap;
    void *p;

    if (*cap > SIZE_MAX / 2 / elem) {
        return NULL;
    }
    ncap = *cap * 2;
    if (buf == own) {
        p = st_malloc(ncap * elem);
        if (p != NULL) {
            memcpy(p, buf, len * elem);
        }
    }
    else {
        p = st_realloc(buf, ncap * elem);
    }
    if (p != NULL) {
        *cap = ncap;
    }
    return p;
}

static size_t
hash_node(st_wg_node_t n)
{
    uint64_t h = (uint64_t)(uintptr_t)n.ptr ^ ((uint64_t)n.kind << 59);
    h *= 0x9E3779B97F4A7C15u; /* Fibonacci hashing: the high bits mix */
    return (size_t)(h >> 29);
}

static int
same_node(st_wg_node_t a, st_wg_node_t b)
{
    return a.kind == b.kind && a.ptr == b.ptr;
}

/* Caller holds g->mu.  The record whose running stack holds task. */
static st_wg_thread_t *
runner_of_locked(st_waitgraph_t *g, const void *task)
{
    st_wg_thread_t *r;
    size_t i, n;

    for (r = g->threads; r != NULL; r = r->next) {
        /* acquire: pairs with the release store of running_push/pop, so
         * the entries below are at least as new as the length */
        n = st_atomic_load(&r->nrunning, ST_ACQUIRE);
        if (n > r->running_cap) {
            n = r->running_cap; /* cannot happen (see DESIGN); checked */
        }
        for (i = 0; i < n; i++) {
            /* relaxed: ordered by the acquire load of the length */
            if (st_atomic_load(&r->running[i], ST_RELAXED) == task) {
                return r;
            }
        }
    }
    return NULL;
}

/* Caller holds g->mu.  The record that runs ctx (innermost first). */
static st_wg_thread_t *
owner_of_locked(st_waitgraph_t *g, const void *ctx)
{
    st_wg_thread_t *r;
    size_t i;

    for (r = g->threads; r != NULL; r = r->next) {
        for (i = 0; i < r->nowned; i++) {
            if (r->owned[i] == ctx) {
                return r;
            }
        }
    }
    return NULL;
}

/* ---------------------------------------------------------- the walk */

static void
walk_init(wg_walk *w, st_waitgraph_t *g, st_wg_edges_fn fn, void *arg)
{
    w->g = g;
    w->start = NULL;
    w->edges_fn = fn;
    w->arg = arg;
    w->stack = w->stack0;
    w->depth = 0;
    w->stack_cap = WALK_STACK0;
    w->edges = w->edges0;
    w->nedges = 0;
    w->edges_cap = WALK_EDGES0;
    w->set = w->set0;
    w->set_len = 0;
    w->set_cap = WALK_SET0;
}

static void
walk_free(wg_walk *w)
{
    if (w->stack != w->stack0) {
        st_free(w->stack);
    }
    if (w->edges != w->edges0) {
        st_free(w->edges);
    }
    if (w->set != w->set0) {
        st_free(w->set);
    }
}

/* Empties the walk for a new search (keeps its memory). */
static void
walk_reset(wg_walk *w, st_wg_thread_t *start)
{
    w->start = start;
    w->depth = 0;
    w->nedges = 0;
    w->set_len = 0;
    memset(w->set, 0, w->set_cap * sizeof(w->set[0]));
}

/* Inserts n into the table set[cap] (a power of two; has a free slot).
 * 1 if inserted, 0 if it was there. */
static int
set_insert(st_wg_node_t *set, size_t cap, st_wg_node_t n)
{
    size_t i = hash_node(n) & (cap - 1);
    while (set[i].kind != 0) {
        if (same_node(set[i], n)) {
            return 0;
        }
        i = (i + 1) & (cap - 1);
    }
    set[i] = n;
    return 1;
}

/* Marks n visited: 1 when it is new, 0 when seen, ST_ENOMEM. */
static int
walk_mark(wg_walk *w, st_wg_node_t n)
{
    if ((w->set_len + 1) * 2 > w->set_cap) {
        /* keep the load under one half: rehash into twice the room */
        size_t ncap, i;
        st_wg_node_t *nset;
        if (w->set_cap > SIZE_MAX / 2 / sizeof(*nset)) {
            return ST_ENOMEM;
        }
        ncap = w->set_cap * 2;
        nset = st_calloc(ncap, sizeof(*nset));
        if (nset == NULL) {
            return ST_ENOMEM;
        }
        for (i = 0; i < w->set_cap; i++) {
            if (w->set[i].kind != 0) {
                (void)set_insert(nset, ncap, w->set[i]);
            }
        }
        if (w->set != w->set0) {
            st_free(w->set);
        }
        w->set = nset;
        w->set_cap = ncap;
    }
    if (!set_insert(w->set, w->set_cap, n)) {
        return 0;
    }
    w->set_len++;
    return 1;
}

/* Appends a pending edge to (kind, ptr). */
static int
walk_push_edge(wg_walk *w, int kind, const void *ptr)
{
    if (w->nedges == w->edges_cap) {
        st_wg_node_t *p = grow(w->edges, &w->edges_cap, w->nedges,
                               sizeof(*p), w->edges0);
        if (p == NULL) {
            return ST_ENOMEM;
        }
        w->edges = p;
    }
    w->edges[w->nedges].kind = kind;
    w->edges[w->nedges].ptr = ptr;
    w->nedges++;
    return 0;
}

/* Appends n's edges (see DESIGN: expansion rules). */
static int
walk_expand(wg_walk *w, st_wg_node_t n)
{
    st_wg_thread_t *r;

    switch (n.kind) {
    case ST_WG_TASK:
        r = runner_of_locked(w->g, n.ptr);
        if (r != NULL) {
            return walk_push_edge(w, ST_WG_THREAD, r);
        }
        return w->edges_fn != NULL ? w->edges_fn(w->arg, n.ptr, w) : 0;
    case ST_WG_CONTEXT:
        r = owner_of_locked(w->g, n.ptr);
        return r != NULL ? walk_push_edge(w, ST_WG_THREAD, r) : 0;
    default: /* ST_WG_THREAD (not the start: handled by the caller) */
        r = (st_wg_thread_t *)n.ptr;
        return r->blocked_on != NULL
                   ? walk_push_edge(w, ST_WG_TASK, r->blocked_on)
                   : 0;
    }
}

/* Pushes a frame for n (marked visited already) with its edges. */
static int
walk_push_frame(wg_walk *w, st_wg_node_t n)
{
    wg_frame *f;
    int rc;

    if (w->depth == w->stack_cap) {
        wg_frame *p = grow(w->stack, &w->stack_cap, w->depth, sizeof(*p),
                           w->stack0);
        if (p == NULL) {
            return ST_ENOMEM;
        }
        w->stack = p;
    }
    f = &w->stack[w->depth++];
    f->node = n;
    f->begin = w->nedges;
    rc = walk_expand(w, n); /* may move w->edges, never w->stack */
    f->next = f->begin;
    f->end = w->nedges;
    return rc;
}

/* Caller holds g->mu.  Searches from task for w->start.  1 found (the
 * frames 0..depth-1 are the path), 0 not, or a negative code. */
static int
walk_search(wg_walk *w, const void *task)
{
    st_wg_node_t root, n;
    wg_frame *top;
    int rc;

    root.kind = ST_WG_TASK;
    root.ptr = task;
    rc = walk_mark(w, root);
    if (rc < 0) {
        return rc;
    }
    rc = walk_push_frame(w, root);
    if (rc < 0) {
        return rc;
    }
    while (w->depth > 0) {
        top = &w->stack[w->depth - 1];
        if (top->next == top->end) {
            w->nedges = top->begin; /* its edges are done */
            w->depth--;
            continue;
        }
        n = w->edges[top->next++];
        if (n.kind == ST_WG_THREAD && n.ptr == w->start) {
            return 1; /* back at the thread: a cycle */
        }
        rc = walk_mark(w, n);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            continue; /* expanded before, from another path */
        }
        rc = walk_push_frame(w, n);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Copies the path of a successful search (frames, then the start). */
static int
walk_copy_path(wg_walk *w, st_wg_path_t *path)
{
    size_t i, len = w->depth + 1;

    if (len > path->cap) {
        st_wg_node_t *p;
        if (len > SIZE_MAX / sizeof(*p)) {
            return ST_ENOMEM;
        }
        p = st_realloc(path->nodes, len * sizeof(*p));
        if (p == NULL) {
            return ST_ENOMEM;
        }
        path->nodes = p;
        path->cap = len;
    }
    for (i = 0; i < w->depth; i++) {
        path->nodes[i] = w->stack[i].node;
    }
    path->nodes[w->depth].kind = ST_WG_THREAD;
    path->nodes[w->depth].ptr = w->start;
    path->len = len;
    return 0;
}

int
st_waitgraph_edge(st_wg_sink_t *sink, int kind, const void *ptr)
{
    if ((kind != ST_WG_TASK && kind != ST_WG_CONTEXT) || ptr == NULL) {
        return ST_EINVAL;
    }
    return walk_push_edge(sink, kind, ptr);
}

/* ---------------------------------------------------------- lifecycle */

void
st_waitgraph_init(st_waitgraph_t *g)
{
    st_mutex_init(&g->mu);
    g->threads = NULL;
    st_atomic_init(&g->owner_threads, 0);
    st_atomic_init(&g->blocked_owners, 0);
}

void
st_waitgraph_destroy(st_waitgraph_t *g)
{
    ST_ASSERT(g->threads == NULL);
    st_mutex_destroy(&g->mu);
}

void
st_wg_thread_init(st_wg_thread_t *rec, uint64_t ident)
{
    rec->prev = NULL;
    rec->next = NULL;
    rec->graph = NULL;
    rec->ident = ident;
    rec->blocked_on = NULL;
    rec->wake = NULL;
    rec->wake_arg = NULL;
    rec->deadlocked = 0;
    rec->reported = 0;
    rec->owned = NULL;
    rec->nowned = 0;
    rec->owned_cap = 0;
    rec->running = NULL;
    rec->running_cap = 0;
    st_atomic_init(&rec->nrunning, 0);
    rec->running_lost = 0;
}

void
st_waitgraph_attach(st_waitgraph_t *g, st_wg_thread_t *rec)
{
    st_mutex_lock(&g->mu);
    ST_ASSERT(rec->graph == NULL);
    rec->graph = g;
    rec->prev = NULL;
    rec->next = g->threads;
    if (g->threads != NULL) {
        g->threads->prev = rec;
    }
    g->threads = rec;
    if (rec->nowned > 0) {
        /* relaxed: a counter read for gating only (see DESIGN) */
        st_atomic_fetch_add(&g->owner_threads, 1, ST_RELAXED);
    }
    st_mutex_unlock(&g->mu);
}

void
st_waitgraph_detach(st_waitgraph_t *g, st_wg_thread_t *rec)
{
    st_mutex_lock(&g->mu);
    ST_ASSERT(rec->graph == g && rec->blocked_on == NULL);
    if (rec->prev != NULL) {
        rec->prev->next = rec->next;
    }
    else {
        g->threads = rec->next;
    }
    if (rec->next != NULL) {
        rec->next->prev = rec->prev;
    }
    if (rec->nowned > 0) {
        /* relaxed: as in st_waitgraph_attach */
        st_atomic_fetch_sub(&g->owner_threads, 1, ST_RELAXED);
    }
    rec->prev = NULL;
    rec->next = NULL;
    rec->graph = NULL;
    st_mutex_unlock(&g->mu);
    /* nobody can see the arrays any more */
    st_free(rec->owned);
    st_free(rec->running);
    rec->owned = NULL;
    rec->nowned = 0;
    rec->owned_cap = 0;
    rec->running = NULL;
    rec->running_cap = 0;
    st_atomic_store(&rec->nrunning, 0, ST_RELAXED); /* private again */
    rec->running_lost = 0;
}

/* ------------------------------------------------- contexts (owners) */

int
st_waitgraph_own(st_waitgraph_t *g, st_wg_thread_t *rec, const void *ctx)
{
    const void **fresh = NULL, **old = NULL;
    size_t ncap = 0;

    /* Only rec's thread changes rec's contexts, so the capacity read
     * here stays true until the lock below; allocate outside the lock. */
    if (rec->nowned == rec->owned_cap) {
        ncap = rec->owned_cap == 0 ? 4 : rec->owned_cap * 2;
        if (ncap > SIZE_MAX / sizeof(*fresh)) {
            return ST_ENOMEM;
        }
        fresh = st_malloc(ncap * sizeof(*fresh));
        if (fresh == NULL) {
            return ST_ENOMEM;
        }
    }
    st_mutex_lock(&g->mu);
    ST_ASSERT(rec->graph == g);
    if (fresh != NULL) {
        if (rec->nowned > 0) {
            memcpy(fresh, rec->owned, rec->nowned * sizeof(*fresh));
        }
        old = rec->owned;
        rec->owned = fresh;
        rec->owned_cap = ncap;
    }
    rec->owned[rec->nowned++] = ctx;
    if (rec->nowned == 1) {
        /* relaxed: counters for gating only (see DESIGN) */
        st_atomic_fetch_add(&g->owner_threads, 1, ST_RELAXED);
        if (rec->blocked_on != NULL) {
            st_atomic_fetch_add(&g->blocked_owners, 1, ST_RELAXED);
        }
    }
    st_mutex_unlock(&g->mu);
    st_free(old);
    return 0;
}

int
st_waitgraph_disown(st_waitgraph_t *g, st_wg_thread_t *rec,
                    const void *ctx)
{
    size_t i;
    int rc = ST_EINVAL;

    st_mutex_lock(&g->mu);
    for (i = rec->nowned; i > 0; i--) {
        if (rec->owned[i - 1] == ctx) {
            memmove(&rec->owned[i - 1], &rec->owned[i],
                    (rec->nowned - i) * sizeof(rec->owned[0]));
            rec->nowned--;
            if (rec->nowned == 0) {
                /* relaxed: as in st_waitgraph_own */
                st_atomic_fetch_sub(&g->owner_threads, 1, ST_RELAXED);
                if (rec->blocked_on != NULL) {
                    st_atomic_fetch_sub(&g->blocked_owners, 1, ST_RELAXED);
                }
            }
            rc = 0;
            break;
        }
    }
    st_mutex_unlock(&g->mu);
    return rc;
}

const void *
st_waitgraph_owned_top(st_waitgraph_t *g, st_wg_thread_t *rec)
{
    const void *ctx;
    st_mutex_lock(&g->mu);
    ctx = rec->nowned > 0 ? rec->owned[rec->nowned - 1] : NULL;
    st_mutex_unlock(&g->mu);
    return ctx;
}

st_wg_thread_t *
st_waitgraph_owner_of(st_waitgraph_t *g, const void *ctx)
{
    st_wg_thread_t *r;
    st_mutex_lock(&g->mu);
    r = owner_of_locked(g, ctx);
    st_mutex_unlock(&g->mu);
    return r;
}

/* ------------------------------------------------------ running tasks */

/* rec's thread.  Doubles rec's running stack (the swap under mu). */
static int
grow_running(st_waitgraph_t *g, st_wg_thread_t *rec)
{
    ST_ATOMIC(const void *) *fresh, *old;
    size_t i, ncap, n;

    ncap = rec->running_cap == 0 ? 16 : rec->running_cap * 2;
    if (ncap > SIZE_MAX / sizeof(*fresh)) {
        return ST_ENOMEM;
    }
    fresh = st_malloc(ncap * sizeof(*fresh));
    if (fresh == NULL) {
        return ST_ENOMEM;
    }
    /* relaxed: rec's own length, which only this thread writes */
    n = st_atomic_load(&rec->nrunning, ST_RELAXED);
    st_mutex_lock(&g->mu);
    for (i = 0; i < ncap; i++) {
        /* relaxed: this thread wrote the old entries; the new array is
         * published to searches by mu */
        st_atomic_init(&fresh[i], i < n ? st_atomic_load(&rec->running[i],
                                                         ST_RELAXED)
                                        : NULL);
    }
    old = rec->running;
    rec->running = fresh;
    rec->running_cap = ncap;
    st_mutex_unlock(&g->mu);
    st_free((void *)old); /* no search can hold it: they take mu */
    return 0;
}

int
st_waitgraph_running_push_slow(st_waitgraph_t *g, st_wg_thread_t *rec,
                               const void *task)
{
    /* relaxed: rec's own length, which only this thread writes */
    size_t n = st_atomic_load(&rec->nrunning, ST_RELAXED);

    if (rec->running_lost > 0) {
        rec->running_lost++; /* above a lost one: keep LIFO balance */
        return ST_ENOMEM;
    }
    if (n == rec->running_cap && grow_running(g, rec) != 0) {
        rec->running_lost++;
        return ST_ENOMEM;
    }
    /* relaxed: published by the release store of the length below */
    st_atomic_store(&rec->running[n], task, ST_RELAXED);
    /* release: publishes the entry; pairs with the acquire load in
     * runner_of_locked */
    st_atomic_store(&rec->nrunning, n + 1, ST_RELEASE);
    return 0;
}

int
st_waitgraph_running_pop_slow(st_waitgraph_t *g, st_wg_thread_t *rec,
                              const void *task)
{
    /* relaxed: rec's own length, which only this thread writes */
    size_t n = st_atomic_load(&rec->nrunning, ST_RELAXED), i, j;

    (void)g;
    if (rec->running_lost > 0) {
        rec->running_lost--; /* the innermost push was not recorded */
        return 0;
    }
    for (i = n; i > 0; i--) {
        /* relaxed: this thread's own entries */
        if (st_atomic_load(&rec->running[i - 1], ST_RELAXED) == task) {
            break;
        }
    }
    if (i == 0) {
        return ST_EINVAL;
    }
    for (j = i; j < n; j++) {
        /* relaxed: an out-of-order pop (rare) shifts the entries above;
         * a search may see the move half done: a snapshot (see DESIGN) */
        st_atomic_store(&rec->running[j - 1],
                        st_atomic_load(&rec->running[j], ST_RELAXED),
                        ST_RELAXED);
    }
    /* release: pairs with the acquire load in runner_of_locked */
    st_atomic_store(&rec->nrunning, n - 1, ST_RELEASE);
    return 0;
}

size_t
st_waitgraph_running_depth(st_wg_thread_t *rec)
{
    /* relaxed: rec's own length, read by its own thread */
    return st_atomic_load(&rec->nrunning, ST_RELAXED);
}

/* ------------------------------------------------------------ blocking */

void
st_waitgraph_block(st_waitgraph_t *g, st_wg_thread_t *rec, const void *task,
                   st_wg_wake_fn wake, void *wake_arg)
{
    ST_ASSERT(task != NULL);
    st_mutex_lock(&g->mu);
    ST_ASSERT(rec->graph == g);
    if (rec->blocked_on == NULL && rec->nowned > 0) {
        /* relaxed: a counter for gating (see DESIGN) */
        st_atomic_fetch_add(&g->blocked_owners, 1, ST_RELAXED);
    }
    rec->blocked_on = task;
    rec->wake = wake;
    rec->wake_arg = wake_arg;
    rec->deadlocked = 0;
    st_mutex_unlock(&g->mu);
}

void
st_waitgraph_unblock(st_waitgraph_t *g, st_wg_thread_t *rec)
{
    st_mutex_lock(&g->mu);
    if (rec->blocked_on != NULL && rec->nowned > 0) {
        /* relaxed: as in st_waitgraph_block */
        st_atomic_fetch_sub(&g->blocked_owners, 1, ST_RELAXED);
    }
    rec->blocked_on = NULL;
    rec->wake = NULL;
    rec->wake_arg = NULL;
    rec->deadlocked = 0;
    rec->reported = 0;
    st_mutex_unlock(&g->mu);
}

int
st_waitgraph_take_deadlocked(st_waitgraph_t *g, st_wg_thread_t *rec)
{
    int was;
    st_mutex_lock(&g->mu);
    was = rec->deadlocked;
    rec->deadlocked = 0;
    st_mutex_unlock(&g->mu);
    return was;
}

void
st_waitgraph_set_reported(st_waitgraph_t *g, st_wg_thread_t *rec)
{
    st_mutex_lock(&g->mu);
    rec->reported = 1;
    st_mutex_unlock(&g->mu);
}

/* ----------------------------------------------------------- searches */

int
st_waitgraph_find_cycle(st_waitgraph_t *g, st_wg_thread_t *start,
                        const void *task, st_wg_edges_fn edges, void *arg,
                        st_wg_path_t *path)
{
    wg_walk w;
    int rc;

    walk_init(&w, g, edges, arg);
    st_mutex_lock(&g->mu);
    walk_reset(&w, start);
    rc = walk_search(&w, task);
    if (rc == 1 && path != NULL) {
        int prc = walk_copy_path(&w, path);
        if (prc < 0) {
            rc = prc;
        }
    }
    st_mutex_unlock(&g->mu);
    walk_free(&w);
    return rc;
}

int
st_waitgraph_recheck(st_waitgraph_t *g, st_wg_thread_t *self,
                     st_wg_edges_fn edges, void *arg)
{
    st_wg_thread_t *r;
    wg_walk w;
    int rc = 0, found = 0;

    /* relaxed: the cheap exit while no context owner is blocked (see
     * DESIGN, Counters) */
    if (st_atomic_load(&g->blocked_owners, ST_RELAXED) == 0) {
        return 0;
    }
    walk_init(&w, g, edges, arg);
    st_mutex_lock(&g->mu);
    for (r = g->threads; r != NULL; r = r->next) {
        if (r == self || r->blocked_on == NULL || r->nowned == 0
            || r->deadlocked || r->reported) {
            continue;
        }
        walk_reset(&w, r);
        rc = walk_search(&w, r->blocked_on);
        if (rc < 0) {
            break;
        }
        if (rc == 1) {
            r->deadlocked = 1;
            found++;
            if (r->wake != NULL) {
                r->wake(r, r->wake_arg); /* leaf locks only */
            }
        }
        rc = 0;
    }
    st_mutex_unlock(&g->mu);
    walk_free(&w);
    return rc < 0 ? rc : found;
}

/* -------------------------------------------------------------- paths */

void
st_wg_path_init(st_wg_path_t *p)
{
    p->nodes = NULL;
    p->len = 0;
    p->cap = 0;
}

void
st_wg_path_free(st_wg_path_t *p)
{
    st_free(p->nodes);
    st_wg_path_init(p);
}
