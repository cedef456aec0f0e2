/* py_deadlock.c - the per-thread records, deadlock detection (SPEC C5,
 * C6, C8) and the registry of pending async methods (D1).  Split from
 * py_context.c (issue 10): it sits below the builder, which marks the
 * tasks a thread runs and the boxes that suspend; the
 * SingleThreadSynchronizationContext (py_context.c, above the builder)
 * tells it which thread runs which context.
 *
 * DEADLOCK DETECTION
 *
 * A thread record per thread (TLS, owned by a capsule in the thread
 * state dict) says which contexts the thread runs (`owned`), which task it
 * is blocked on in an infinite wait (`blocked_on`), and which tasks' code
 * it is executing now (`running`).  With those, the waits-for graph is:
 *   thread T blocked on task X            T -> X
 *   box X (suspended) awaiting Y          X -> Y
 *   box X resuming on context C           X -> C
 *   promise X completed by a post to C    X -> C   (UiThread.invoke)
 *   when_all X                            X -> each input
 *   proxy / continuation X of Y           X -> Y
 *   task X whose code runs on thread Q    X -> Q
 *   context C run only by thread T        C -> T
 * Every edge is a hard dependency: X cannot complete unless its target
 * makes progress, so a cycle through a blocked thread is a deadlock that
 * no later event can undo - no false positive by construction.  Edges
 * whose target could progress in another way (a context run by a free
 * thread, a TaskCompletionSource anyone may set, when_any) end the walk.
 * The walk runs (1) when a thread is about to block forever, starting
 * from what it waits for, looking for itself; (2) when the graph changes
 * while some context owner is blocked (a box suspends, a post): then for
 * each such owner, and a hit wakes that owner, which raises.  Both are
 * bounded (depth 64, visited set) and cost nothing while no thread that
 * runs a context is blocked.
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
#include "st_list.h"  /* st_container_of */
#include "st_thread.h"

/* ------------------------------------------------------ thread records */

#define MAX_OWNED 8
#define RUNNING_INLINE 16 /* running[] entries before it grows */
#define WALK_DEPTH 64

struct thread_rec {
    struct thread_rec *prev, *next; /* g_threads, GIL-protected */
    unsigned long ident;            /* threading.get_ident() */
    TaskObject *blocked_on;         /* borrowed; infinite waits only */
    st_waiter_t *waiter;            /* while blocked_on is set */
    int deadlocked;                 /* set by a re-check: wake and raise */
    int warned;                     /* "warn" mode: reported this wait */
    PyObject *owned[MAX_OWNED];     /* contexts it runs (strong) */
    int nowned;
    /* Tasks whose code runs here, innermost last (borrowed: each is
     * running on this thread's stack).  Nested inline resumptions can go
     * deeper than the inline block: the array then grows, and if it
     * cannot, the entries past capacity are counted but not stored (the
     * walk then misses an edge: a missed report, never a false one).
     * Reads stop at min(nrunning, caprunning). */
    TaskObject **running;           /* running_inline or a PyMem block */
    int nrunning;
    int caprunning;
    TaskObject *running_inline[RUNNING_INLINE];
};

static thread_rec *g_threads;        /* all records (GIL) */
static int g_owner_threads;          /* records with nowned > 0 */
static int g_blocked_owners;         /* of those, blocked forever now */
static int g_mode = 2;               /* 0 off, 1 warn, 2 raise */

/* The calling thread's record, or NULL (issue 9 item 4).  A capsule in
 * the thread state's dict owns the record.  When that dict is cleared on
 * the record's own OS thread (the end of a thread, PyGILState_Release of
 * a native thread that will maybe enter Python again with a new thread
 * state), the capsule's destructor clears this cache and frees the
 * record.  Cleared on another thread (finalization, or a dict kept alive
 * elsewhere), the record is unlinked but not freed: the cache of its
 * thread may still point to it, and a record is plain memory.  So the
 * cache never points to freed memory, without a check per read. */
static ST_THREAD_LOCAL thread_rec *tls_rec;

/* GIL held. */
thread_rec *
cur_rec(void)
{
    return tls_rec;
}

static int
running_count(const thread_rec *r)
{
    return r->nrunning < r->caprunning ? r->nrunning : r->caprunning;
}

static void
rec_capsule_destructor(PyObject *capsule)
{
    thread_rec *r = PyCapsule_GetPointer(capsule, "sharptask.thread_rec");
    if (r == NULL) {
        PyErr_Clear();
        return;
    }
    if (r->prev != NULL) {
        r->prev->next = r->next;
    }
    else {
        g_threads = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    if (r->nowned > 0) {
        g_owner_threads--;
    }
    if (r->blocked_on != NULL && r->nowned > 0) {
        g_blocked_owners--; /* cleared while blocked: the thread is gone */
    }
    r->prev = r->next = NULL;
    r->blocked_on = NULL;
    /* the contexts it still ran (a thread that ended inside run(), or a
     * stray _context_owner push): ours to drop, but not once finalization
     * started (no code of theirs may run then: the process ends) */
    while (r->nowned > 0) {
        PyObject *ctx = r->owned[--r->nowned];
        if (!Py_IsFinalizing()) {
            Py_DECREF(ctx);
        }
    }
    if (PyThread_get_thread_ident() != r->ident) {
        return; /* another thread's cache may name it: leave the memory */
    }
    if (tls_rec == r) {
        tls_rec = NULL;
    }
    if (r->running != r->running_inline) {
        PyMem_Free(r->running);
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
    r = PyMem_Calloc(1, sizeof(*r));
    if (r == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    r->ident = PyThread_get_thread_ident();
    r->running = r->running_inline;
    r->caprunning = RUNNING_INLINE;
    cap = PyCapsule_New(r, "sharptask.thread_rec", rec_capsule_destructor);
    if (cap == NULL) {
        PyMem_Free(r);
        return NULL;
    }
    r->next = g_threads;
    if (g_threads != NULL) {
        g_threads->prev = r;
    }
    g_threads = r;
    if (PyDict_SetItemString(dict, "sharptask.thread_rec", cap) < 0) {
        Py_DECREF(cap); /* unlinks and frees r */
        return NULL;
    }
    Py_DECREF(cap); /* the dict owns it now */
    tls_rec = r;
    return r;
}

static int
rec_owns(thread_rec *r, PyObject *ctx)
{
    for (int i = 0; i < r->nowned; i++) {
        if (r->owned[i] == ctx) {
            return 1;
        }
    }
    return 0;
}

int
owner_push(st_state *st, PyObject *ctx)
{
    thread_rec *r = get_rec();
    if (r == NULL) {
        return -1;
    }
    if (r->nowned == MAX_OWNED) {
        PyErr_SetString(st->InvalidOperationError,
                        "too many nested synchronization contexts on one "
                        "thread");
        return -1;
    }
    if (r->nowned++ == 0) {
        g_owner_threads++;
    }
    /* strong: a borrowed pointer outliving its context would make a new
     * object at the same address "owned" by this thread, and the walk
     * would report a deadlock that is not there */
    r->owned[r->nowned - 1] = Py_NewRef(ctx);
    return 0;
}

void
owner_pop(PyObject *ctx)
{
    thread_rec *r = cur_rec();
    if (r == NULL) {
        return;
    }
    for (int i = r->nowned - 1; i >= 0; i--) {
        if (r->owned[i] == ctx) {
            PyObject *held = r->owned[i];
            for (int j = i; j + 1 < r->nowned; j++) {
                r->owned[j] = r->owned[j + 1];
            }
            if (--r->nowned == 0) {
                g_owner_threads--;
            }
            Py_DECREF(held); /* after the record is consistent */
            return;
        }
    }
}

static thread_rec *
owner_of(PyObject *ctx)
{
    for (thread_rec *r = g_threads; r != NULL; r = r->next) {
        if (rec_owns(r, ctx)) {
            return r;
        }
    }
    return NULL;
}

static thread_rec *
runner_of(TaskObject *t)
{
    for (thread_rec *r = g_threads; r != NULL; r = r->next) {
        int n = running_count(r); /* never past what was stored */
        for (int i = 0; i < n; i++) {
            if (r->running[i] == t) {
                return r;
            }
        }
    }
    return NULL;
}

void
thread_running_push(TaskObject *t)
{
    thread_rec *r = cur_rec();
    if (r == NULL) {
        if (g_owner_threads == 0) {
            return; /* nobody runs a context: nothing to detect */
        }
        r = get_rec();
        if (r == NULL) {
            PyErr_Clear();
            return;
        }
    }
    if (r->nrunning == r->caprunning && r->nrunning < INT_MAX / 2) {
        /* deeper than ever on this thread: grow (issue 9 item 3) */
        size_t cap = (size_t)r->caprunning * 2;
        TaskObject **a;
        if (r->running == r->running_inline) {
            a = PyMem_Malloc(cap * sizeof(*a));
            if (a != NULL) {
                memcpy(a, r->running_inline, sizeof(r->running_inline));
            }
        }
        else {
            a = PyMem_Realloc(r->running, cap * sizeof(*a));
        }
        if (a != NULL) {
            r->running = a;
            r->caprunning = (int)cap;
        }
    }
    if (r->nrunning < r->caprunning) {
        r->running[r->nrunning] = t;
    }
    r->nrunning++;
}

void
thread_running_pop(TaskObject *t)
{
    thread_rec *r = cur_rec();
    if (r == NULL || r->nrunning == 0) {
        return;
    }
    r->nrunning--;
    (void)t;
}

/* ------------------------------------------------------------ the walk */

typedef struct walk {
    st_state *st;
    thread_rec *start;
    PyObject *steps;           /* list of steps for the message, or NULL */
    TaskObject *visited[128];
    int nvisited;
    int depth;
} walk;

static int reaches_task(walk *w, TaskObject *x);

static void
add_step(walk *w, const char *kind, PyObject *a, PyObject *b)
{
    PyObject *step;
    if (w->steps == NULL) {
        return;
    }
    step = Py_BuildValue("(sOO)", kind, a ? a : Py_None, b ? b : Py_None);
    if (step == NULL || PyList_Append(w->steps, step) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(step);
}

/* Drops the steps added after n (a branch that found nothing). */
static void
truncate_steps(walk *w, Py_ssize_t n)
{
    if (w->steps != NULL && PyList_GET_SIZE(w->steps) > n) {
        if (PyList_SetSlice(w->steps, n, PyList_GET_SIZE(w->steps), NULL)
            < 0) {
            PyErr_Clear();
        }
    }
}

static Py_ssize_t
nsteps(walk *w)
{
    return w->steps != NULL ? PyList_GET_SIZE(w->steps) : 0;
}

static int
reaches_thread(walk *w, thread_rec *q)
{
    if (q == w->start) {
        return 1;
    }
    if (q->blocked_on != NULL) {
        PyObject *id = PyLong_FromUnsignedLong(q->ident);
        add_step(w, "blocked", id, (PyObject *)q->blocked_on);
        Py_XDECREF(id);
        return reaches_task(w, q->blocked_on);
    }
    return 0;
}

static int
reaches_context(walk *w, PyObject *ctx)
{
    thread_rec *o = owner_of(ctx);
    Py_ssize_t n = nsteps(w);
    PyObject *id;
    int found;
    if (o == NULL) {
        return 0;
    }
    id = PyLong_FromUnsignedLong(o->ident);
    add_step(w, "context", ctx, id);
    Py_XDECREF(id);
    found = reaches_thread(w, o);
    if (!found) {
        truncate_steps(w, n);
    }
    return found;
}

static int
reaches_task(walk *w, TaskObject *x)
{
    st_state *st = w->st;
    Py_ssize_t n = nsteps(w);
    int found = 0, status = st_task_status(&x->task_core);
    thread_rec *q;

    if (status >= ST_STATUS_RAN_TO_COMPLETION || w->depth >= WALK_DEPTH) {
        return 0;
    }
    for (int i = 0; i < w->nvisited; i++) {
        if (w->visited[i] == x) {
            return 0;
        }
    }
    if (w->nvisited < (int)(sizeof(w->visited) / sizeof(w->visited[0]))) {
        w->visited[w->nvisited++] = x;
    }
    w->depth++;
    add_step(w, x->task_kind == TASK_BOX ? "box" : "task", (PyObject *)x,
             x->task_kind == TASK_BOX ? task_fn(x) : NULL);
    /* code of x running on some thread now: x needs that thread */
    if ((q = runner_of(x)) != NULL) {
        found = reaches_thread(w, q);
    }
    else if (x->task_kind == TASK_BOX) {
        if (is_sync_context(st, task_target(x))) {
            found = reaches_context(w, task_target(x));
        }
        /* When building the message, go on down the await chain even
         * after a hit: every method on it that needs the blocked thread
         * is named (fixing only the first would not end the deadlock). */
        if ((!found || w->steps != NULL) && x->task_arg != NULL
            && Task_Check(st, x->task_arg)) {
            Py_ssize_t before = nsteps(w);
            if (reaches_task(w, (TaskObject *)x->task_arg)) {
                found = 1;
            }
            else {
                truncate_steps(w, before);
            }
        }
    }
    else if (x->task_kind == TASK_PROMISE) {
        if (is_sync_context(st, task_target(x))) {
            found = reaches_context(w, task_target(x));
        }
        else if (x->task_arg != NULL && PyTuple_Check(x->task_arg)) {
            /* when_all: blocked if any input is */
            for (Py_ssize_t i = 0;
                 !found && i < PyTuple_GET_SIZE(x->task_arg); i++) {
                found = reaches_task(
                    w, (TaskObject *)PyTuple_GET_ITEM(x->task_arg, i));
            }
        }
        else if (x->task_arg != NULL && Task_Check(st, x->task_arg)) {
            found = reaches_task(w, (TaskObject *)x->task_arg); /* proxy */
        }
    }
    else if (x->task_kind == TASK_CONTINUATION && task_token(x) != NULL
             && !(x->task_options & 0x20 /* LAZY_CANCELLATION */)) {
        /* a cancellable continuation may end (canceled) before its
         * antecedent: not a hard dependency (R3.10) */
        found = 0;
    }
    else if (status == ST_STATUS_WAITING_FOR_ACTIVATION
             && x->task_arg != NULL && Task_Check(st, x->task_arg)) {
        /* a continuation waiting for its antecedent, or a delegate
         * mirroring the task it returned */
        found = reaches_task(w, (TaskObject *)x->task_arg);
    }
    w->depth--;
    if (!found) {
        truncate_steps(w, n);
    }
    return found;
}

static int
find_cycle(st_state *st, thread_rec *start, TaskObject *t, PyObject *steps)
{
    walk w;
    w.st = st;
    w.start = start;
    w.steps = steps;
    w.nvisited = 0;
    w.depth = 0;
    return reaches_task(&w, t);
}

/* Builds the DeadlockError message (via sharptask._impl) and raises it,
 * or warns (mode warn).  Returns -1 with the error set when raising. */
static int
report_deadlock(st_state *st, thread_rec *r, TaskObject *t)
{
    PyObject *steps = PyList_New(0), *msg = NULL, *id = NULL;
    int rc = -1;
    if (steps == NULL) {
        return -1;
    }
    if (!find_cycle(st, r, t, steps)) {
        Py_DECREF(steps);
        return 0; /* gone meanwhile */
    }
    ST_TRACE(ST_TRACE_DEADLOCK_DETECTED, trace_task_id(t), 0, 0); /* D2 */
    id = PyLong_FromUnsignedLong(r->ident);
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

int
deadlock_before_wait(st_state *st, TaskObject *t, st_waiter_t *waiter,
                     int infinite)
{
    thread_rec *r;
    if (g_mode == 0 || !infinite || g_owner_threads == 0) {
        if ((r = cur_rec()) != NULL) {
            r->blocked_on = NULL;
        }
        return 0;
    }
    r = get_rec();
    if (r == NULL) {
        return -1;
    }
    r->warned = 0;
    r->deadlocked = 0;
    if (find_cycle(st, r, t, NULL)) {
        if (report_deadlock(st, r, t) < 0) {
            return -1;
        }
        r->warned = 1;
    }
    r->blocked_on = t;
    r->waiter = waiter;
    if (r->nowned > 0) {
        g_blocked_owners++;
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
    if (r == NULL || r->blocked_on == NULL) {
        return;
    }
    if (r->nowned > 0) {
        g_blocked_owners--;
    }
    r->blocked_on = NULL;
    r->waiter = NULL;
    r->deadlocked = 0;
}

int
deadlock_check_woken(st_state *st, TaskObject *t)
{
    thread_rec *r = cur_rec();
    if (r == NULL || !r->deadlocked) {
        return 0;
    }
    r->deadlocked = 0;
    if (r->warned) {
        return 0; /* warn mode: said once, keep waiting */
    }
    r->warned = 1;
    return report_deadlock(st, r, t);
}

void
deadlock_graph_changed(st_state *st)
{
    thread_rec *self;
    if (g_blocked_owners == 0 || g_mode == 0) {
        return;
    }
    if (Py_IsFinalizing()) {
        /* A blocked thread may be gone by now (CPython ends a daemon
         * thread that takes the GIL during finalization): its waiter
         * lived on its stack.  Nothing is left to detect anyway. */
        return;
    }
    self = cur_rec();
    for (thread_rec *r = g_threads; r != NULL; r = r->next) {
        if (r->blocked_on != NULL && r->nowned > 0 && !r->deadlocked
            && !r->warned && r != self
            && find_cycle(st, r, r->blocked_on, NULL)) {
            r->deadlocked = 1;
            st_event_set(&r->waiter->ev); /* it raises when it wakes */
        }
    }
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
    return r->ident;
}

