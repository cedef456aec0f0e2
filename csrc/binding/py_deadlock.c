/* py_deadlock.c - the per-thread records, deadlock detection (SPEC C5,
 * C6, C8) and the registry of pending async methods (D1).  Split from
 * py_context.c (issue 10): it sits below the builder, which marks the
 * tasks a thread runs and the boxes that suspend; the
 * SingleThreadSynchronizationContext (py_context.c, above the builder)
 * tells it which thread runs which context.
 *
 * DEADLOCK DETECTION
 *
 * The waits-for graph and its cycle search are the core's st_waitgraph
 * (csrc/core/st_waitgraph.h, with C tests in all three builds); this file
 * is its Python side.  A thread record per thread (TLS, owned by a
 * capsule in the thread state dict) embeds the graph's st_wg_thread_t:
 * which contexts the thread runs (st_waitgraph_own, one strong reference
 * per context kept here), which task it is blocked on in an infinite wait
 * (st_waitgraph_block), and which tasks' code it is executing now
 * (st_waitgraph_running_push/pop).  The graph keeps those thread-side
 * edges; the task-side ones stay in the Task objects and task_edges()
 * hands them to a search:
 *   box X (suspended) awaiting Y          X -> Y
 *   box X resuming on context C           X -> C
 *   promise X completed by a post to C    X -> C   (UiThread.invoke)
 *   when_all X                            X -> each input
 *   proxy / continuation X of Y           X -> Y
 * and the graph adds: thread T blocked on X (T -> X), task X whose code
 * runs on thread Q (X -> Q), context C run only by thread T (C -> T).
 * Every edge is a hard dependency: X cannot complete unless its target
 * makes progress, so a cycle through a blocked thread is a deadlock that
 * no later event can undo - no false positive by construction.  Edges
 * whose target could progress in another way (a context run by a free
 * thread, a TaskCompletionSource anyone may set, when_any, a cancellable
 * continuation) are not edges.
 * The search runs (1) when a thread is about to block forever, starting
 * from what it waits for, looking for itself (st_waitgraph_find_cycle);
 * (2) when the graph changes while some context owner is blocked (a box
 * suspends, a post, a block): st_waitgraph_recheck searches for each such
 * owner, and a hit wakes that owner (wake_waiter sets its waiter's
 * event), which raises.  No depth limit and no limit on the contexts a
 * thread runs; both cost nothing while no thread that runs a context is
 * blocked.
 * Locks: every call here holds the GIL; the graph's mutex is taken under
 * it, never the other way.  task_edges runs with that mutex held: it only
 * reads Task fields (no Python code, no allocation of objects).
 * The message (report_deadlock) is built after the search, from the path
 * it found, plus, for every method on it that resumes on a context, the
 * cycle through the task that method awaits (each one needing the
 * blocked thread is named: fixing only the first would not end the
 * deadlock).
 * Rejected: a timeout heuristic ("blocked for 5 s on a UI thread"): it
 * has false positives and reports late; asgiref's thread-sensitive guard
 * only sees one pattern.
 */
#include "binding.h"
#include "py_trace.h" /* deadlock.detected (D2) */
#include "py_deadlock.h"
#include "py_errors.h"
#include "py_state.h"
#include "py_task.h"

#include "st_error.h"
#include "st_thread.h"
#include "st_waitgraph.h"

/* ------------------------------------------------------ thread records */

struct thread_rec {
    st_wg_thread_t wg; /* the graph's part; its fields are the graph's */
    int attached;      /* wg is in g_graph (GIL) */
    int blocked;       /* between st_waitgraph_block and _unblock (GIL) */
};

static st_waitgraph_t g_graph;  /* every record (GIL to attach/detach) */
static int g_graph_ready;       /* g_graph initialised (GIL) */
static int g_mode = 2;          /* 0 off, 1 warn, 2 raise */

/* The calling thread's record, or NULL (issue 9 item 4).  A capsule in
 * the thread state's dict owns the record.  When that dict is cleared on
 * the record's own OS thread (the end of a thread, PyGILState_Release of
 * a native thread that will maybe enter Python again with a new thread
 * state), the capsule's destructor clears this cache and frees the
 * record.  Cleared on another thread (finalization, or a dict kept alive
 * elsewhere), the record is detached from the graph but not freed: the
 * cache of its thread may still point to it, and a record is plain
 * memory; a detached record counts as none (cur_rec).  So the cache never
 * points to freed memory, without a check per read. */
static ST_THREAD_LOCAL thread_rec *tls_rec;

/* GIL held. */
thread_rec *
cur_rec(void)
{
    thread_rec *r = tls_rec;
    return r != NULL && r->attached ? r : NULL;
}

static void
rec_capsule_destructor(PyObject *capsule)
{
    thread_rec *r = PyCapsule_GetPointer(capsule, "sharptask.thread_rec");
    if (r == NULL) {
        PyErr_Clear();
        return;
    }
    if (r->attached) {
        /* cleared while blocked: the thread is gone */
        st_waitgraph_unblock(&g_graph, &r->wg);
        r->blocked = 0;
        /* the contexts it still ran (a thread that ended inside run(), or
         * a stray _context_owner push): ours to drop, but not once
         * finalization started (no code of theirs may run then: the
         * process ends).  Each leaves the graph before its reference. */
        const void *top;
        while ((top = st_waitgraph_owned_top(&g_graph, &r->wg)) != NULL) {
            PyObject *ctx = (PyObject *)top;
            (void)st_waitgraph_disown(&g_graph, &r->wg, ctx);
            if (!Py_IsFinalizing()) {
                Py_DECREF(ctx);
            }
        }
        st_waitgraph_detach(&g_graph, &r->wg); /* frees its arrays */
        r->attached = 0;
    }
    if (PyThread_get_thread_ident() != (unsigned long)r->wg.ident) {
        return; /* another thread's cache may name it: leave the memory */
    }
    if (tls_rec == r) {
        tls_rec = NULL;
    }
    PyMem_Free(r);
}

/* The calling thread's record, made on first use; NULL with an error. */
thread_rec *
get_rec(void)
{
    PyObject *dict, *cap;
    thread_rec *r;

    if ((r = cur_rec()) != NULL) {
        return r;
    }
    dict = PyThreadState_GetDict(); /* borrowed */
    if (dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no thread state dict");
        return NULL;
    }
    if (!g_graph_ready) {
        st_waitgraph_init(&g_graph); /* once, under the GIL */
        g_graph_ready = 1;
    }
    r = PyMem_Calloc(1, sizeof(*r));
    if (r == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    st_wg_thread_init(&r->wg, PyThread_get_thread_ident());
    cap = PyCapsule_New(r, "sharptask.thread_rec", rec_capsule_destructor);
    if (cap == NULL) {
        PyMem_Free(r);
        return NULL;
    }
    st_waitgraph_attach(&g_graph, &r->wg);
    r->attached = 1;
    if (PyDict_SetItemString(dict, "sharptask.thread_rec", cap) < 0) {
        Py_DECREF(cap); /* detaches and frees r */
        return NULL;
    }
    Py_DECREF(cap); /* the dict owns it now */
    tls_rec = r;
    return r;
}

int
owner_push(st_state *st, PyObject *ctx)
{
    thread_rec *r = get_rec();
    (void)st;
    if (r == NULL) {
        return -1;
    }
    if (st_waitgraph_own(&g_graph, &r->wg, ctx) != 0) {
        PyErr_NoMemory();
        return -1;
    }
    /* strong: a borrowed pointer outliving its context would make a new
     * object at the same address "owned" by this thread, and the search
     * would report a deadlock that is not there */
    Py_INCREF(ctx);
    return 0;
}

void
owner_pop(PyObject *ctx)
{
    thread_rec *r = cur_rec();
    if (r == NULL) {
        return;
    }
    if (st_waitgraph_disown(&g_graph, &r->wg, ctx) == 0) {
        Py_DECREF(ctx); /* after the graph is consistent */
    }
}

void
thread_running_push(TaskObject *t)
{
    thread_rec *r = tls_rec;
    if (ST_UNLIKELY(r == NULL || !r->attached)) {
        if (st_waitgraph_owner_threads(&g_graph) == 0) {
            return; /* nobody runs a context: nothing to detect */
        }
        r = get_rec();
        if (r == NULL) {
            PyErr_Clear();
            return;
        }
    }
    /* ST_ENOMEM: counted, not recorded (a missed report, never a false
     * one); its pop still balances (issue 9 item 3) */
    (void)st_waitgraph_running_push(&g_graph, &r->wg, t);
}

void
thread_running_pop(TaskObject *t)
{
    thread_rec *r = tls_rec;
    if (r == NULL || !r->attached) {
        return;
    }
    /* ST_EINVAL: t was pushed before this thread had a record */
    (void)st_waitgraph_running_pop(&g_graph, &r->wg, t);
}

/* ------------------------------------------------- the task-side edges */

/* The edges callback (st_wg_edges_fn): x's hard dependencies, read from
 * its fields.  Graph mutex held, under the GIL the caller holds: no
 * Python code, no object allocation (type checks only). */
static int
task_edges(void *arg, const void *node, st_wg_sink_t *sink)
{
    st_state *st = arg;
    /* only read; const dropped for the core's status accessor */
    TaskObject *x = (TaskObject *)(uintptr_t)node;
    int status = st_task_status(&x->task_core);
    PyObject *a = x->task_arg;

    if (status >= ST_STATUS_RAN_TO_COMPLETION) {
        return 0;
    }
    if (x->task_kind == TASK_BOX) {
        int rc = 0;
        /* the context first: the search and the message follow it first */
        if (is_sync_context(st, task_target(x))) {
            rc = st_waitgraph_edge(sink, ST_WG_CONTEXT, task_target(x));
        }
        if (rc == 0 && a != NULL && Task_Check(st, a)) {
            rc = st_waitgraph_edge(sink, ST_WG_TASK, a);
        }
        return rc;
    }
    if (x->task_kind == TASK_PROMISE) {
        if (is_sync_context(st, task_target(x))) {
            return st_waitgraph_edge(sink, ST_WG_CONTEXT, task_target(x));
        }
        if (a != NULL && PyTuple_Check(a)) {
            /* when_all: blocked if any input is */
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(a); i++) {
                PyObject *in = PyTuple_GET_ITEM(a, i);
                int rc = Task_Check(st, in)
                             ? st_waitgraph_edge(sink, ST_WG_TASK, in)
                             : 0;
                if (rc != 0) {
                    return rc;
                }
            }
            return 0;
        }
        if (a != NULL && Task_Check(st, a)) {
            return st_waitgraph_edge(sink, ST_WG_TASK, a); /* proxy */
        }
        return 0;
    }
    if (x->task_kind == TASK_CONTINUATION && task_token(x) != NULL
        && !(x->task_options & 0x20 /* LAZY_CANCELLATION */)) {
        /* a cancellable continuation may end (canceled) before its
         * antecedent: not a hard dependency (R3.10) */
        return 0;
    }
    if (status == ST_STATUS_WAITING_FOR_ACTIVATION && a != NULL
        && Task_Check(st, a)) {
        /* a continuation waiting for its antecedent, or a delegate
         * mirroring the task it returned */
        return st_waitgraph_edge(sink, ST_WG_TASK, a);
    }
    return 0;
}

/* Wakes a blocked owner a recheck found deadlocked (st_wg_wake_fn; graph
 * mutex held): its waiter's event only, a leaf lock. */
static void
wake_waiter(st_wg_thread_t *rec, void *arg)
{
    (void)rec;
    st_event_set(&((st_waiter_t *)arg)->ev); /* it raises when it wakes */
}

/* An error code of a search as a Python exception; -1. */
static int
graph_error(int rc)
{
    if (rc == ST_ENOMEM) {
        PyErr_NoMemory();
    }
    else {
        PyErr_Format(PyExc_SystemError, "deadlock search failed (%d)", rc);
    }
    return -1;
}

/* ------------------------------------------------------- the message */

/* One node of a found path, held for the message (the path's pointers
 * are valid only until Python code runs: the GIL may change hands). */
typedef struct msg_node {
    int kind;            /* ST_WG_* */
    PyObject *obj;       /* task or context (strong), or NULL */
    unsigned long ident; /* THREAD: its ident */
    PyObject *blocked;   /* THREAD: the task it is blocked on (strong) */
} msg_node;

static void
msg_nodes_free(msg_node *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        Py_XDECREF(v[i].obj);
        Py_XDECREF(v[i].blocked);
    }
    PyMem_Free(v);
}

/* Searches from task for r's thread and holds the path.  1 (*out, *nout
 * set; free with msg_nodes_free), 0 (no cycle), -1 with an error.  No
 * Python code runs between the search and the copy (PyMem only). */
static int
msg_path(st_state *st, thread_rec *r, PyObject *task, msg_node **out,
         size_t *nout)
{
    st_wg_path_t path;
    msg_node *v;
    int rc;

    st_wg_path_init(&path);
    rc = st_waitgraph_find_cycle(&g_graph, &r->wg, task, task_edges, st,
                                 &path);
    if (rc != 1) {
        st_wg_path_free(&path);
        return rc < 0 ? graph_error(rc) : 0;
    }
    v = PyMem_Calloc(path.len, sizeof(*v));
    if (v == NULL) {
        st_wg_path_free(&path);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < path.len; i++) {
        st_wg_node_t n = path.nodes[i];
        v[i].kind = n.kind;
        if (n.kind == ST_WG_THREAD) {
            /* the record is attached (detached only under the GIL, which
             * this thread holds) and its ident never changes; a blocked
             * thread inside the path is followed by its task */
            const st_wg_thread_t *q = n.ptr;
            v[i].ident = (unsigned long)q->ident;
            if (i + 1 < path.len) {
                v[i].blocked = Py_NewRef((PyObject *)path.nodes[i + 1].ptr);
            }
        }
        else {
            v[i].obj = Py_NewRef((PyObject *)n.ptr);
        }
    }
    *out = v;
    *nout = path.len;
    st_wg_path_free(&path);
    return 1;
}

static int
add_step(PyObject *steps, const char *kind, PyObject *a, PyObject *b)
{
    PyObject *step = Py_BuildValue("(sOO)", kind, a ? a : Py_None,
                                   b ? b : Py_None);
    int rc = step == NULL ? -1 : PyList_Append(steps, step);
    Py_XDECREF(step);
    return rc;
}

/* Appends the steps of path v[0..n-1] (the last node is the start thread,
 * which has none) for deadlock_message; the tasks it names go into
 * `seen`, and the task awaited by each box that needs a context into
 * `more`.  0 or -1. */
static int
add_path_steps(st_state *st, const msg_node *v, size_t n, PyObject *steps,
               PyObject *seen, PyObject *more)
{
    for (size_t i = 0; i + 1 < n; i++) {
        const msg_node *m = &v[i], *next = &v[i + 1];
        int rc = 0;
        if (m->kind == ST_WG_TASK) {
            TaskObject *x = (TaskObject *)m->obj;
            int box = x->task_kind == TASK_BOX;
            PyObject *key = PyLong_FromVoidPtr(x);
            if (key == NULL || PySet_Add(seen, key) < 0) {
                Py_XDECREF(key);
                return -1;
            }
            Py_DECREF(key);
            rc = add_step(steps, box ? "box" : "task", m->obj,
                          box ? task_fn(x) : NULL);
            if (rc == 0 && box && next->kind == ST_WG_CONTEXT
                && x->task_arg != NULL && Task_Check(st, x->task_arg)) {
                rc = PyList_Append(more, x->task_arg);
            }
        }
        else if (m->kind == ST_WG_CONTEXT) {
            /* the next node is its owner thread */
            PyObject *id = PyLong_FromUnsignedLong(next->ident);
            rc = id == NULL ? -1 : add_step(steps, "context", m->obj, id);
            Py_XDECREF(id);
        }
        else {
            /* a blocked thread on the way; the next node is its task */
            PyObject *id = PyLong_FromUnsignedLong(m->ident);
            rc = id == NULL ? -1
                            : add_step(steps, "blocked", id, m->blocked);
            Py_XDECREF(id);
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* The steps of the cycle from t back to r's thread: its path, then, for
 * each method on it that resumes on a context, the path through the task
 * it awaits (every method on the chain that needs the blocked thread is
 * named).  1 (found), 0 (none: gone meanwhile), -1 with an error. */
static int
deadlock_steps(st_state *st, thread_rec *r, TaskObject *t, PyObject *steps)
{
    PyObject *seen = PySet_New(NULL), *more = PyList_New(0);
    Py_ssize_t next = 0;
    int found = -1;

    if (seen == NULL || more == NULL
        || PyList_Append(more, (PyObject *)t) < 0) {
        goto done;
    }
    found = 0;
    while (next < PyList_GET_SIZE(more)) {
        int first = next == 0;
        PyObject *y = Py_NewRef(PyList_GET_ITEM(more, next++));
        PyObject *key = PyLong_FromVoidPtr(y);
        msg_node *v = NULL;
        size_t n = 0;
        int rc = key == NULL ? -1 : PySet_Contains(seen, key);
        Py_XDECREF(key);
        if (rc == 0) {
            /* the GIL may have changed hands since the last search: the
             * record is checked again (still this thread's, attached) */
            rc = cur_rec() == r ? msg_path(st, r, y, &v, &n) : 0;
            if (rc == 1) {
                rc = add_path_steps(st, v, n, steps, seen, more);
                msg_nodes_free(v, n);
                if (rc == 0 && first) {
                    found = 1; /* the cycle from t itself */
                }
            }
        }
        Py_DECREF(y);
        if (rc < 0) {
            found = -1;
            break;
        }
        if (first && found == 0) {
            break; /* no cycle from t: nothing to report */
        }
    }
done:
    Py_XDECREF(seen);
    Py_XDECREF(more);
    return found;
}

/* Builds the DeadlockError message (via sharptask._impl) and raises it,
 * or warns (mode warn).  Returns -1 with the error set when raising or
 * on an error, 0 otherwise (also when the cycle is gone meanwhile). */
static int
report_deadlock(st_state *st, thread_rec *r, TaskObject *t)
{
    PyObject *steps = PyList_New(0), *msg = NULL, *id = NULL;
    int rc = -1, found;
    if (steps == NULL) {
        return -1;
    }
    found = deadlock_steps(st, r, t, steps);
    if (found <= 0) {
        Py_DECREF(steps);
        return found; /* 0: gone meanwhile */
    }
    ST_TRACE(ST_TRACE_DEADLOCK_DETECTED, trace_task_id(t), 0, 0); /* D2 */
    id = PyLong_FromUnsignedLong((unsigned long)r->wg.ident);
    if (id != NULL) {
        PyObject *a[3] = {id, (PyObject *)t, steps};
        msg = call_impl(st, "deadlock_message", a, 3, NULL);
    }
    if (msg != NULL) {
        if (g_mode == 1) {
            /* at the user's line, past sharptask's own frames (issue 14) */
            PyObject *res = call_impl(st, "_warn", &msg, 1, NULL);
            rc = res == NULL ? -1 : 0;
            Py_XDECREF(res);
        }
        else {
            PyErr_SetObject(st->DeadlockError, msg);
        }
    }
    Py_XDECREF(msg);
    Py_XDECREF(id);
    Py_DECREF(steps);
    return rc;
}

/* --------------------------------------------- around a blocking wait */

int
deadlock_before_wait(st_state *st, TaskObject *t, st_waiter_t *waiter,
                     int infinite)
{
    thread_rec *r;
    int rc, reported = 0;
    if (g_mode == 0 || !infinite
        || st_waitgraph_owner_threads(&g_graph) == 0) {
        if ((r = cur_rec()) != NULL && r->blocked) {
            st_waitgraph_unblock(&g_graph, &r->wg);
            r->blocked = 0;
        }
        return 0;
    }
    r = get_rec();
    if (r == NULL) {
        return -1;
    }
    rc = st_waitgraph_find_cycle(&g_graph, &r->wg, t, task_edges, st, NULL);
    if (rc < 0) {
        return graph_error(rc);
    }
    if (rc == 1) {
        if (report_deadlock(st, r, t) < 0) {
            return -1;
        }
        reported = 1;
        if (cur_rec() != r) {
            /* the warning's code ended this thread's record: no wait to
             * mark (it cannot be checked again) */
            return 0;
        }
    }
    st_waitgraph_block(&g_graph, &r->wg, t, wake_waiter, waiter);
    r->blocked = 1;
    if (reported) {
        /* warn mode: said once; no recheck reports this wait again */
        st_waitgraph_set_reported(&g_graph, &r->wg);
    }
    /* this block may close a cycle through another blocked owner */
    deadlock_graph_changed(st);
    return 0;
}

void
deadlock_after_wait(st_state *st)
{
    thread_rec *r = cur_rec();
    (void)st;
    if (r == NULL || !r->blocked) {
        return;
    }
    st_waitgraph_unblock(&g_graph, &r->wg); /* and its flags */
    r->blocked = 0;
}

int
deadlock_check_woken(st_state *st, TaskObject *t)
{
    thread_rec *r = cur_rec();
    if (r == NULL || !st_waitgraph_take_deadlocked(&g_graph, &r->wg)) {
        return 0;
    }
    /* a recheck flags only waits not reported yet: report this one once
     * (warn mode: then keep waiting) */
    st_waitgraph_set_reported(&g_graph, &r->wg);
    return report_deadlock(st, r, t);
}

void
deadlock_graph_changed(st_state *st)
{
    thread_rec *self;
    if (st_waitgraph_blocked_owners(&g_graph) == 0 || g_mode == 0) {
        return;
    }
    if (Py_IsFinalizing()) {
        /* A blocked thread may be gone by now (CPython ends a daemon
         * thread that takes the GIL during finalization): its waiter
         * lived on its stack.  Nothing is left to detect anyway. */
        return;
    }
    self = cur_rec();
    /* < 0 (ST_ENOMEM): a missed report, never a false one */
    (void)st_waitgraph_recheck(&g_graph, self != NULL ? &self->wg : NULL,
                               task_edges, st);
}

/* ------------------------------------------------------ pending boxes */

/* Appends to list the pending boxes among objs (a list from
 * gc.get_objects()), last first.  0 or -1.  Refs: borrows both. */
static int
pending_boxes_of(st_state *st, PyObject *objs, PyObject *list)
{
    for (Py_ssize_t i = PyList_GET_SIZE(objs) - 1; i >= 0; i--) {
        PyObject *o = PyList_GET_ITEM(objs, i), *item;
        TaskObject *b;
        if (!Task_Check(st, o)) {
            continue;
        }
        b = (TaskObject *)o;
        if (b->task_kind != TASK_BOX
            || st_task_is_completed(&b->task_core)) {
            continue;
        }
        item = Py_BuildValue(
            "(OOOOO)", o, task_fn(b) ? task_fn(b) : Py_None,
            b->task_arg ? b->task_arg : Py_None,
            task_target(b) ? task_target(b) : Py_None,
            (b->task_flags & TF_RUNNING_BOX) ? Py_True : Py_False);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            return -1;
        }
        Py_DECREF(item);
    }
    return 0;
}

/* _pending_boxes() -> [(box, coroutine, awaiting, context, running)]
 *
 * The pending async methods are the GC-tracked Tasks of kind TASK_BOX
 * that have not completed: a box is made at its method's first
 * suspension and stays tracked until it completes (only a completed task
 * is ever untracked), so walking gc.get_objects() finds every one without
 * a list through the boxes (issue 10 W9: two pointers less per pending
 * call).  Newest first, as the list through them gave them: a box is
 * tracked when it is made, at its first suspension, each generation
 * keeps its objects in the order they were tracked (a collection appends
 * the survivors of the younger one), so reading generations 0, 1, 2,
 * each backwards, gives the newest box first (a box made before its
 * first suspension, by Task.run of an async def or rented from the
 * ValueTask pool, counts from when it was made). */
static PyObject *
mod_pending_boxes(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    PyObject *gc, *list;
    int gen;

    gc = PyImport_ImportModule("gc");
    if (gc == NULL) {
        return NULL;
    }
    list = PyList_New(0);
    if (list == NULL) {
        Py_DECREF(gc);
        return NULL;
    }
    for (gen = 0; gen < 3; gen++) {
        PyObject *all = PyObject_CallMethod(gc, "get_objects", "i", gen);
        if (all == NULL || !PyList_CheckExact(all)) {
            if (all != NULL) {
                PyErr_SetString(PyExc_TypeError,
                                "gc.get_objects() did not return a list");
                Py_DECREF(all);
            }
            Py_DECREF(list);
            Py_DECREF(gc);
            return NULL;
        }
        if (pending_boxes_of(st, all, list) < 0) {
            Py_DECREF(all);
            Py_DECREF(list);
            Py_DECREF(gc);
            return NULL;
        }
        Py_DECREF(all);
    }
    Py_DECREF(gc);
    return list;
}

/* ---------------------------------------------------- module functions */

static PyObject *
mod_set_deadlock_detection(PyObject *mod, PyObject *arg)
{
    static const char *names[] = {"off", "warn", "raise"};
    const char *s;
    PyObject *prev;
    int i;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "mode must be 'raise', 'warn' or "
                     "'off', not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    s = PyUnicode_AsUTF8(arg);
    if (s == NULL) {
        return NULL;
    }
    for (i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            break;
        }
    }
    if (i == 3) {
        PyErr_Format(PyExc_ValueError,
                     "mode must be 'raise', 'warn' or 'off', not %R", arg);
        return NULL;
    }
    prev = PyUnicode_FromString(names[g_mode]);
    g_mode = i;
    return prev;
}

static PyObject *
mod_get_deadlock_detection(PyObject *mod, PyObject *unused)
{
    static const char *names[] = {"off", "warn", "raise"};
    return PyUnicode_FromString(names[g_mode]);
}

/* _context_owner(ctx, enter): the calling thread starts or stops running
 * ctx's callbacks (the exclusive context, C8). */
static PyObject *
mod_context_owner(PyObject *mod, PyObject *args)
{
    st_state *st = get_st_state(mod);
    PyObject *ctx;
    int enter;
    if (!PyArg_ParseTuple(args, "Op:_context_owner", &ctx, &enter)) {
        return NULL;
    }
    if (enter) {
        if (owner_push(st, ctx) < 0) {
            return NULL;
        }
        deadlock_graph_changed(st);
    }
    else {
        owner_pop(ctx);
    }
    Py_RETURN_NONE;
}

/* _completed_by(task, ctx): task (a promise) is completed by a callback
 * posted to ctx (UiThread.invoke): an edge for the walk. */
static PyObject *
mod_completed_by(PyObject *mod, PyObject *args)
{
    st_state *st = get_st_state(mod);
    PyObject *task, *ctx;
    if (!PyArg_ParseTuple(args, "O!O:_completed_by", st->Task_type, &task,
                          &ctx)) {
        return NULL;
    }
    if (((TaskObject *)task)->task_kind != TASK_PROMISE) {
        PyErr_SetString(PyExc_ValueError, "task must be a promise task");
        return NULL;
    }
    task_set_target((TaskObject *)task,
                    ctx == Py_None ? NULL : Py_NewRef(ctx));
    deadlock_graph_changed(st);
    Py_RETURN_NONE;
}

/* _report_unraisable(exc, obj): report_unraisable from Python (async
 * void, UiThread, the exclusive context: issue 9 items 11, 18). */
static PyObject *
mod_report_unraisable(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "_report_unraisable(exc, obj) takes 2 arguments");
        return NULL;
    }
    if (!PyExceptionInstance_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "_report_unraisable(): exc must be an "
                     "exception instance, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    report_unraisable(args[0], args[1] == Py_None ? NULL : args[1]);
    Py_RETURN_NONE;
}

/* _is_exiting_error(exc) -> bool (H5). */
static PyObject *
mod_is_exiting_error(PyObject *mod, PyObject *exc)
{
    return PyBool_FromLong(is_exiting_error(exc));
}

PyMethodDef deadlock_methods[] = {
    {"_report_unraisable", (PyCFunction)(void (*)(void))mod_report_unraisable,
     METH_FASTCALL,
     PyDoc_STR("_report_unraisable(exc, obj, /)\n--\n\n"
               "Internal: report exc about obj through sys.unraisablehook\n"
               "(the default hook's layout, the whole exception).")},
    {"_is_exiting_error", mod_is_exiting_error, METH_O,
     PyDoc_STR("_is_exiting_error(exc, /)\n--\n\n"
               "Internal: exc was raised because the interpreter exits.")},
    {"set_deadlock_detection", mod_set_deadlock_detection, METH_O,
     PyDoc_STR("set_deadlock_detection(mode, /)\n--\n\n"
               "'raise' (default): a blocking wait that can never complete\n"
               "raises DeadlockError; 'warn': a RuntimeWarning, then it\n"
               "waits; 'off': it just waits.  Returns the previous mode.")},
    {"get_deadlock_detection", mod_get_deadlock_detection, METH_NOARGS,
     PyDoc_STR("get_deadlock_detection()\n--\n\nThe current mode.")},
    {"_context_owner", mod_context_owner, METH_VARARGS,
     PyDoc_STR("_context_owner(ctx, enter, /)\n--\n\n"
               "Internal: the calling thread starts/stops running ctx.")},
    {"_completed_by", mod_completed_by, METH_VARARGS,
     PyDoc_STR("_completed_by(task, ctx, /)\n--\n\n"
               "Internal: task is completed by a callback posted to ctx.")},
    {"_pending_boxes", mod_pending_boxes, METH_NOARGS,
     PyDoc_STR("_pending_boxes()\n--\n\n"
               "Internal: every pending async method, for dump_async().")},
    {NULL, NULL, 0, NULL},
};

unsigned long
thread_rec_ident(const thread_rec *r)
{
    return (unsigned long)r->wg.ident;
}

