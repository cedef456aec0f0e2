/* st_waitgraph.h - the deadlock detector's waits-for graph and its cycle
 * search (SPEC C5, C6, C8), over opaque pointers.
 *
 * The graph has three kinds of nodes, each an opaque pointer:
 *   ST_WG_TASK     a task (the binding passes its Task object);
 *   ST_WG_CONTEXT  an exclusive context, run only by its owner thread;
 *   ST_WG_THREAD   a thread record (st_wg_thread_t) the caller attached.
 * Edges, every one a hard dependency (the source cannot progress unless the
 * target does, so a cycle through a blocked thread is a deadlock no later
 * event can undo):
 *   thread T blocked on task X        T -> X   (st_waitgraph_block)
 *   context C owned by thread T       C -> T   (st_waitgraph_own)
 *   task X whose code runs on T       X -> T   (st_waitgraph_running_push)
 *   task X -> tasks and contexts      supplied by the caller's edges
 *                                     callback, asked during a search
 *                                     (X awaits Y, X resumes on C, a
 *                                     when_all's inputs, ...)
 * The graph keeps the thread-side edges; the task-side ones stay where the
 * binding already has them (in its Task objects), and the search asks for
 * them only when a thread that runs a context is about to block forever,
 * so the detector costs nothing otherwise.  A task whose code runs on some
 * thread now has only that edge (the callback is not asked).
 *
 * A search (st_waitgraph_find_cycle) starts at the task a thread is about
 * to block on and looks for a path back to that thread; a recheck
 * (st_waitgraph_recheck) runs the same search for every blocked context
 * owner after the graph changed, and wakes those it finds deadlocked.
 * Both are depth-first with an explicit stack and a visited set that grow
 * as needed: no depth limit, no fixed array, each node expanded once.
 *
 * Threads and locking.  The graph has one internal mutex, so every
 * function is "any thread" unless it says "rec's thread" (the thread the
 * record describes, which alone changes that record's stacks).  The edges
 * callback is called with the graph's mutex held: it must not call into
 * the graph, block, or run user code (the binding's callback only reads
 * fields of its Task objects, under the GIL its caller holds).  The wake
 * callback is also called with the mutex held, and may only take leaf
 * locks (the binding's: st_event_set on the blocked thread's waiter).
 * Answers are exact when the caller serializes changes to task edges with
 * searches (the binding: the GIL).  The running stacks are read without
 * their thread's cooperation: exact for blocked threads (their stacks
 * cannot change), a snapshot for running ones, which only end a path, so
 * a stale entry can hide a deadlock for one search but never invent one.
 *
 * Memory: thread records are the caller's memory (the binding keeps one
 * per thread, freed when the thread dies, after st_waitgraph_detach); the
 * arrays inside a record and a search's scratch space come from st_malloc.
 */
#ifndef ST_WAITGRAPH_H
#define ST_WAITGRAPH_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint64_t */

#include "st_atomic.h" /* the running stacks and the counters */
#include "st_thread.h" /* the mutex */

/* Kinds of nodes. */
enum { ST_WG_TASK = 1, ST_WG_CONTEXT = 2, ST_WG_THREAD = 3 };

typedef struct st_wg_node {
    int kind;        /* ST_WG_* */
    const void *ptr; /* the task, the context, or the st_wg_thread_t */
} st_wg_node_t;

typedef struct st_waitgraph st_waitgraph_t;
typedef struct st_wg_thread st_wg_thread_t;

/* Where the edges callback reports a task's edges (opaque: a search). */
typedef struct st_wg_walk st_wg_sink_t;

/* The caller's task edges: calls st_waitgraph_edge(sink, ...) once per
 * hard dependency of `task` (none for a completed task).  A search
 * follows them depth first in the order they are reported (so the first
 * edge that closes a cycle is the one a path shows).  Called with the
 * graph's mutex held (see above).  Returns 0, or a negative code that
 * stops the search and is returned by it. */
typedef int (*st_wg_edges_fn)(void *arg, const void *task,
                              st_wg_sink_t *sink);

/* Wakes a blocked thread found deadlocked by a recheck (graph mutex
 * held; leaf locks only). */
typedef void (*st_wg_wake_fn)(st_wg_thread_t *rec, void *arg);

struct st_wg_thread {
    st_wg_thread_t *prev, *next; /* g->threads; under g->mu */
    st_waitgraph_t *graph;       /* attached to, or NULL; under g->mu */
    uint64_t ident;              /* the caller's name of the thread */
    const void *blocked_on;      /* task, or NULL; under g->mu */
    st_wg_wake_fn wake;          /* while blocked; under g->mu */
    void *wake_arg;
    int deadlocked;              /* a recheck found it; under g->mu */
    int reported;                /* this wait was reported; under g->mu */
    const void **owned;          /* contexts it runs; under g->mu */
    size_t nowned, owned_cap;    /* under g->mu */
    /* Tasks whose code runs here, innermost last.  The array pointer and
     * capacity change only under g->mu, by rec's thread; the entries and
     * the length are written by rec's thread alone, without the lock
     * (push/pop are on the hot path of every async method step). */
    ST_ATOMIC(const void *) *running;
    size_t running_cap;
    ST_ATOMIC(size_t) nrunning;
    size_t running_lost; /* rec's thread only: pushes not recorded */
};

struct st_waitgraph {
    st_mutex_t mu;              /* guards the records' fields (above) */
    st_wg_thread_t *threads;    /* attached records; under mu */
    ST_ATOMIC(int) owner_threads;  /* records with nowned > 0 */
    ST_ATOMIC(int) blocked_owners; /* of those, blocked now */
};

/* A cycle found by st_waitgraph_find_cycle: the nodes from the task the
 * search started at to the start thread, which ends it.  Between them, a
 * THREAD node is a blocked thread (the next node is its task) and a
 * CONTEXT node is followed by its owner thread. */
typedef struct st_wg_path {
    st_wg_node_t *nodes; /* st_malloc'ed; freed by st_wg_path_free */
    size_t len, cap;
} st_wg_path_t;

/* Not thread safe (before sharing).  An empty graph. */
void st_waitgraph_init(st_waitgraph_t *g);

/* After the last use: every record detached. */
void st_waitgraph_destroy(st_waitgraph_t *g);

/* Not thread safe (rec is not attached).  ident: the caller's name of the
 * thread (the binding: threading.get_ident()), for its messages. */
void st_wg_thread_init(st_wg_thread_t *rec, uint64_t ident);

/* Any thread.  Adds rec (initialised, not attached) to the graph; the
 * graph refers to rec until st_waitgraph_detach. */
void st_waitgraph_attach(st_waitgraph_t *g, st_wg_thread_t *rec);

/* Any thread, once rec's thread no longer uses it (its thread is exiting;
 * it is not blocked).  Removes rec and frees its arrays; rec's memory is
 * the caller's again. */
void st_waitgraph_detach(st_waitgraph_t *g, st_wg_thread_t *rec);

/* rec's thread.  rec starts running ctx's callbacks (C8), nested inside
 * the contexts it runs already.  0, or ST_ENOMEM (nothing changed). */
int st_waitgraph_own(st_waitgraph_t *g, st_wg_thread_t *rec,
                     const void *ctx);

/* rec's thread.  rec stops running ctx (its innermost entry).  0, or
 * ST_EINVAL when rec does not run ctx. */
int st_waitgraph_disown(st_waitgraph_t *g, st_wg_thread_t *rec,
                        const void *ctx);

/* Any thread.  The innermost context rec runs now, or NULL (a caller
 * that holds a reference per context drops them with this and
 * st_waitgraph_disown before st_waitgraph_detach). */
const void *st_waitgraph_owned_top(st_waitgraph_t *g, st_wg_thread_t *rec);

/* Any thread.  The record that runs ctx now, or NULL.  The pointer is a
 * snapshot: valid while the caller keeps that record attached. */
st_wg_thread_t *st_waitgraph_owner_of(st_waitgraph_t *g, const void *ctx);

/* The general paths of st_waitgraph_running_push/pop below (a stack to
 * grow, a lost push, an out-of-order pop), and the whole of them; same
 * contract.  The inline functions below call them only off the fast
 * path. */
int st_waitgraph_running_push_slow(st_waitgraph_t *g, st_wg_thread_t *rec,
                                   const void *task);
int st_waitgraph_running_pop_slow(st_waitgraph_t *g, st_wg_thread_t *rec,
                                  const void *task);

/* rec's thread.  task's code starts running on rec (nested).  Lock-free
 * unless the stack must grow.  0, or ST_ENOMEM when it could not grow:
 * the push is then counted but not recorded (its pop still balances).
 * Inline: it runs on every step of an async method (no call when the
 * stack has room). */
static inline int
st_waitgraph_running_push(st_waitgraph_t *g, st_wg_thread_t *rec,
                          const void *task)
{
    /* relaxed: rec's own length, which only this thread writes */
    size_t n = st_atomic_load(&rec->nrunning, ST_RELAXED);

    if (rec->running_lost == 0 && n < rec->running_cap) {
        /* relaxed: published by the release store of the length */
        st_atomic_store(&rec->running[n], task, ST_RELAXED);
        /* release: publishes the entry to searches (see st_waitgraph.c,
         * DESIGN: Running stacks) */
        st_atomic_store(&rec->nrunning, n + 1, ST_RELEASE);
        return 0;
    }
    return st_waitgraph_running_push_slow(g, rec, task);
}

/* rec's thread.  task's code stops running on rec: removes its innermost
 * entry (the top one when calls nest properly).  0, or ST_EINVAL when
 * task is not on rec's stack (nothing changed).  Inline, as the push. */
static inline int
st_waitgraph_running_pop(st_waitgraph_t *g, st_wg_thread_t *rec,
                         const void *task)
{
    /* relaxed: rec's own length and entries, written by this thread */
    size_t n = st_atomic_load(&rec->nrunning, ST_RELAXED);

    if (rec->running_lost == 0 && n > 0
        && st_atomic_load(&rec->running[n - 1], ST_RELAXED) == task) {
        /* release: as in st_waitgraph_running_push */
        st_atomic_store(&rec->nrunning, n - 1, ST_RELEASE);
        return 0;
    }
    return st_waitgraph_running_pop_slow(g, rec, task);
}

/* rec's thread.  Tasks on rec's running stack now (recorded ones). */
size_t st_waitgraph_running_depth(st_wg_thread_t *rec);

/* rec's thread, before it blocks forever on task (non-NULL).  Sets the
 * T -> task edge and the wake callback (may be NULL) a recheck calls when
 * it finds rec deadlocked; clears rec's deadlocked flag. */
void st_waitgraph_block(st_waitgraph_t *g, st_wg_thread_t *rec,
                        const void *task, st_wg_wake_fn wake,
                        void *wake_arg);

/* rec's thread, after the wait.  Clears the edge, the callback and the
 * deadlocked and reported flags.  No-op when rec is not blocked. */
void st_waitgraph_unblock(st_waitgraph_t *g, st_wg_thread_t *rec);

/* Any thread (usually start's, before st_waitgraph_block).  Searches for
 * a path from `task` back to the thread `start`.  Returns 1 when there is
 * one (and fills *path, if path is not NULL, with its nodes), 0 when
 * there is none, ST_ENOMEM, or the edges callback's error. */
int st_waitgraph_find_cycle(st_waitgraph_t *g, st_wg_thread_t *start,
                            const void *task, st_wg_edges_fn edges,
                            void *arg, st_wg_path_t *path);

/* Any thread, after a change to the graph (a box suspends, a post, a
 * thread blocks).  For every blocked record that runs a context, is not
 * `self` (may be NULL), and is not flagged deadlocked or reported yet:
 * searches from its task; on a cycle, flags it deadlocked and calls its
 * wake callback.  Costs one relaxed load while no context owner is
 * blocked.  Returns the number of records it flagged, or a negative code
 * (ST_ENOMEM, or the edges callback's). */
int st_waitgraph_recheck(st_waitgraph_t *g, st_wg_thread_t *self,
                         st_wg_edges_fn edges, void *arg);

/* rec's thread, after a wake.  1 if a recheck flagged rec deadlocked
 * (the flag is cleared), else 0. */
int st_waitgraph_take_deadlocked(st_waitgraph_t *g, st_wg_thread_t *rec);

/* rec's thread.  Marks rec's current wait as reported (warn mode: said
 * once, keep waiting): rechecks skip it until st_waitgraph_unblock. */
void st_waitgraph_set_reported(st_waitgraph_t *g, st_wg_thread_t *rec);

/* Called by the edges callback only.  Adds the edge task -> (kind, ptr),
 * kind ST_WG_TASK or ST_WG_CONTEXT, ptr non-NULL.  0, ST_EINVAL (bad
 * kind or NULL), or ST_ENOMEM. */
int st_waitgraph_edge(st_wg_sink_t *sink, int kind, const void *ptr);

/* Any thread.  Records that run a context, and those of them blocked now
 * (relaxed snapshots, for the caller's cheap "is detection armed?";
 * inline: the binding asks on every suspension of a method). */
static inline int
st_waitgraph_owner_threads(st_waitgraph_t *g)
{
    /* relaxed: a snapshot for gating (see st_waitgraph.c, Counters) */
    return st_atomic_load(&g->owner_threads, ST_RELAXED);
}

static inline int
st_waitgraph_blocked_owners(st_waitgraph_t *g)
{
    /* relaxed: as above */
    return st_atomic_load(&g->blocked_owners, ST_RELAXED);
}

/* Not thread safe (the caller's path).  An empty path; free it after
 * use. */
void st_wg_path_init(st_wg_path_t *p);
void st_wg_path_free(st_wg_path_t *p);

#endif /* ST_WAITGRAPH_H */
