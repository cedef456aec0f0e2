/* py_pool.c - the binding of the thread pool and the timer thread.
 *
 *     ThreadPool.queue_user_work_item(fn, state=..., prefer_local=False)
 *
 * Workers are C threads (csrc/core/st_pool.c).  Each one owns one
 * PyThreadState, made the first time it runs Python and kept for its
 * life: attaching is PyEval_RestoreThread, detaching PyEval_SaveThread
 * (BENCHMARKS.md rule 1).  The pool keeps a worker attached while it
 * drains Python items, up to a time slice (rule 2), and lets one worker
 * at a time attach (the core's domain token, rule 3).  Before it attaches
 * a worker polls the GIL's lock word for a few microseconds (py_gil.c),
 * and so does a thread leaving a blocking wait (pool_wait_gil_free), so
 * that the usual hand-off does not sleep in the kernel (rules 4, 5).  A
 * worker refuses to attach once shutdown or finalization started: the
 * item is then leaked, never run without an interpreter (STYLE.md point
 * 30).
 *
 *     ThreadPool.set_min_threads(n) / set_max_threads(n)   # .NET's checks
 *     ThreadPool.thread_count, pending_work_item_count, ...  # _pool_stats
 *     Task.factory.start_new(fn, options=LONG_RUNNING)    # dedicated thread
 *
 * Starvation (P3, D3): the core's gate thread counts an event and leaves a
 * notice; the next worker to attach (it holds the GIL then) turns it into
 * a RuntimeWarning.  Nothing Python ever runs on the gate thread.
 *
 * Queues (P2, .NET 7.2): pool_submit, used for tasks, continuations and
 * resumptions, queues on the calling worker's own deque when it runs on a
 * worker, and on the global queue elsewhere; queue_user_work_item goes to
 * the global queue unless prefer_local.
 *
 * Exit (P6): the atexit shutdown stops the timer, then waits up to
 * pool_shutdown_grace_ns for the workers (blocking waits abandon within a
 * slice); a worker still inside a Python item after that is abandoned
 * like a daemon thread (CPython stops it if it touches the GIL during
 * finalization) and the pool is leaked, never freed.  Fork: a
 * pthread_atfork child handler bumps g_fork_epoch; the child forgets
 * (leaks) the parent's pool and timer, whose mutexes may be held, and
 * makes fresh ones on first use.
 *
 * Timers: the timer thread does no Python work (Task.delay's tasks are
 * py_delay.c's, the timer handle py_timer.c's).
 */
#include "binding.h"
#include "py_errors.h"
#include "py_gil.h"
#include "py_pool.h"
#include "py_state.h"

#include <math.h>    /* isnan, HUGE_VAL */
#include <pthread.h> /* pthread_atfork */
#include <string.h>  /* memset */
#include <unistd.h>  /* getpid */

#include "st_error.h"
#include "st_list.h" /* st_container_of */
#include "st_thread.h"

/* Bounded busy-polls of the GIL word before a blocking acquire. */
#define ATTACH_SPIN_NS 50000u  /* a worker about to attach */
#define REACQUIRE_SPIN_NS 30000u /* a thread leaving a blocking wait */
/* How long the atexit shutdown waits for items still running. */
#define SHUTDOWN_GRACE_NS 1000000000u

/* Bumped in the child after fork (async-signal-safe: a plain store). */
static volatile unsigned long g_fork_epoch = 1;

/* Serializes the pool's creation (issue 9 item 8: racing first uses each
 * made a pool).  Taken only with the GIL released, and released before
 * the GIL is retaken: never held while waiting for the GIL. */
static pthread_mutex_t g_pool_create_mu = PTHREAD_MUTEX_INITIALIZER;

/* What a worker does after each Python item, from above the pool (the
 * builder's contexts): set once by module.c's exec, before the pool
 * exists (issue 10).  Read by workers with the GIL held. */
static int (*g_after_item)(st_state *st);

void
pool_set_after_item(int (*after_item)(st_state *st))
{
    g_after_item = after_item;
}

/* ------------------------------------------------------------- hooks */

static void warn_starvation(st_state *st, uint64_t events);

/* GIL held, on a core thread (issue 14): tell the threading module about
 * it under the name the core gave it, so that
 * threading.current_thread().name is "sharptask-worker-3" and not
 * "Dummy-7" (enter=1, on its first attach), and forget it again when the
 * thread ends (enter=0).  Best effort: a name is a diagnostic. */
static void
python_thread_name(st_state *st, int enter)
{
    const char *name = st_thread_name();
    PyObject *exc, *arg, *res = NULL;

    if (name == NULL) {
        return; /* not a thread the core started and named */
    }
    exc = PyErr_GetRaisedException();
    arg = enter ? PyUnicode_FromString(name) : Py_NewRef(Py_None);
    if (arg != NULL) {
        res = call_impl(st, "_name_thread", &arg, 1, NULL);
        Py_DECREF(arg);
    }
    if (res == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(res);
    PyErr_SetRaisedException(exc);
}

static int
hook_attach(void *arg, void **slot)
{
    st_state *st = arg;
    PyThreadState *ts = *slot;
    uint64_t notices;
    int fresh = 0;
    /* relaxed: a flag; finalization is checked again below */
    if (st_atomic_load(&st->shutting_down, ST_RELAXED)
        || Py_IsFinalizing()) {
        return -1;
    }
    if (ts == NULL) {
        ts = PyThreadState_New(st->interp);
        if (ts == NULL) {
            return -1;
        }
        *slot = ts;
        fresh = 1;
    }
    /* A caller that queued this item is usually about to release the GIL
     * in its wait: poll briefly instead of sleeping on the GIL. */
    gil_spin_until_free(ATTACH_SPIN_NS);
    PyEval_RestoreThread(ts);
    gil_note_taken(); /* py_gil.c: the hand-off hint */
    if (fresh) {
        python_thread_name(st, 1);
    }
    /* The GIL is ours: a starvation notice can become a warning now. */
    if (pool_peek(st) != NULL
        && (notices = st_pool_take_starvation_notices(pool_peek(st)))
               != 0) {
        warn_starvation(st, notices);
    }
    return 0;
}

static void
hook_detach(void *arg, void **slot)
{
    (void)arg;
    (void)slot;
    PyEval_SaveThread();
    gil_note_released(); /* py_gil.c: the hand-off hint */
}

static void
hook_drop(void *arg, st_work_t *w)
{
    /* No GIL here and maybe no interpreter: leak the item's references
     * rather than touch Python (greenlet's rule). */
    (void)arg;
    (void)w;
}

/* GIL held, after each Python work item (.NET 7.6, SPEC C1 / R9.2): a
 * pool thread has no SynchronizationContext between work items, whatever
 * the item set. */
static void
hook_after_item(void *arg, void **slot)
{
    (void)slot;
    if (g_after_item != NULL && g_after_item((st_state *)arg) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

static void
hook_thread_exit(void *arg, void **slot)
{
    PyThreadState *ts = *slot;
    (void)arg;
    if (ts == NULL || Py_IsFinalizing()) {
        return; /* leak the thread state: safer than touching it */
    }
    PyEval_RestoreThread(ts);
    python_thread_name((st_state *)arg, 0);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
}

/* GIL held, on a worker.  D3: the RuntimeWarning of a starvation event,
 * attributed to "<sharptask thread pool>" (sharptask._impl._warn: no user
 * line is on this stack), not to "sys:1".  A warning turned into an error
 * by the filters has no caller to reach on a pool thread: it is dropped
 * (the event stays counted). */
static void
warn_starvation(st_state *st, uint64_t events)
{
    st_pool_stats_t s;
    PyObject *exc, *msg, *res = NULL;

    st_pool_get_stats(pool_peek(st), &s);
    exc = PyErr_GetRaisedException();
    msg = PyUnicode_FromFormat(
            "sharptask.ThreadPool starvation: work items waited with no "
            "work item completing for %d ms; the pool injected a thread "
            "(%llu starvation event(s) so far, %d threads now, %llu items "
            "queued).  Work that blocks a pool thread (.result, .wait(), "
            "time.sleep) causes this: await instead, or use "
            "TaskCreationOptions.LONG_RUNNING.",
            500, (unsigned long long)s.starvation_events, s.thread_count,
            (unsigned long long)s.pending);
    if (msg != NULL) {
        res = call_impl(st, "_warn", &msg, 1, NULL);
        Py_DECREF(msg);
    }
    if (res == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(res);
    (void)events;
    PyErr_SetRaisedException(exc);
}

/* --------------------------------------------------- pool and timer */

static void
atfork_child(void)
{
    g_fork_epoch++;
}

static void
atfork_register(void)
{
    (void)pthread_atfork(NULL, NULL, atfork_child);
}

static void
reset_after_fork_if_needed(st_state *st)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    long pid;

    if (st->pool_fork_epoch == g_fork_epoch) {
        return; /* the common case: no syscall on the submit path */
    }
    (void)pthread_once(&once, atfork_register);
    pid = (long)getpid();
    if (st->pool_fork_epoch != 0 && st->pid != pid) {
        /* a forked child: the parent's threads are gone; forget (leak)
         * the structures, whose mutexes may be held, and start afresh.
         * The creation lock may have been held by a thread that does not
         * exist here: make a new one (the child has one thread now). */
        (void)pthread_mutex_init(&g_pool_create_mu, NULL);
        /* relaxed: no other thread of this process can see the pool yet */
        st_atomic_store(&st->pool, NULL, ST_RELAXED);
        st->timer = NULL;
        st_atomic_store(&st->shutting_down, 0, ST_RELAXED);
    }
    st->pid = pid;
    st->pool_fork_epoch = g_fork_epoch;
}

/* .NET's defaults: the minimum is the processor count; the maximum is
 * large (32767 there); 256 bounds what a Python process can use. */
static int
default_min_threads(void)
{
    return st_cpu_count();
}

static int
default_max_threads(void)
{
    int n = st_cpu_count();
    return n > 256 ? n : 256;
}

st_pool_t *
pool_peek(st_state *st)
{
    /* acquire: pairs with the release store in get_pool, so a thread that
     * sees the pointer sees the pool st_pool_create built */
    return st_atomic_load(&st->pool, ST_ACQUIRE);
}

/* Makes the pool (GIL released, creation lock held).  0 or an ST_E*
 * code; ST_ECLOSED once the interpreter exit started. */
static int
pool_create_locked(st_state *st, st_pool_t **out)
{
    st_pool_hooks_t hooks = {
        .arg = st,
        .attach = hook_attach,
        .detach = hook_detach,
        .drop = hook_drop,
        .thread_exit = hook_thread_exit,
        .after_item = hook_after_item,
        .slice_ns = 500000,
    };
    int rc;

    /* relaxed: pool_shutdown_all sets it before it takes the creation
     * lock, which orders it before this load */
    if (st_atomic_load(&st->shutting_down, ST_RELAXED)) {
        return ST_ECLOSED;
    }
    rc = st_pool_create(out, default_min_threads(), default_max_threads(),
                        &hooks);
    if (rc == 0) {
        /* release: the pool's construction before the pointer, for
         * pool_peek on threads that do not hold the GIL */
        st_atomic_store(&st->pool, *out, ST_RELEASE);
    }
    return rc;
}

st_pool_t *
get_pool(st_state *st)
{
    st_pool_t *pool;
    int rc = 0, made = 0;

    reset_after_fork_if_needed(st);
    if ((pool = pool_peek(st)) != NULL) {
        return pool; /* the common case */
    }
    if (st_atomic_load(&st->shutting_down, ST_RELAXED)) {
        raise_exiting(st, "the thread pool is shut down (interpreter "
                          "exit)"); /* H5: not reported */
        return NULL;
    }
    /* Issue 9 item 8: making the pool starts threads and waits for them,
     * so the GIL goes; several threads may get here at once.  The first
     * to take the lock makes it, the others find it made. */
    Py_BEGIN_ALLOW_THREADS
    (void)pthread_mutex_lock(&g_pool_create_mu);
    pool = pool_peek(st);
    if (pool == NULL) {
        rc = pool_create_locked(st, &pool);
        made = rc == 0;
    }
    (void)pthread_mutex_unlock(&g_pool_create_mu);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        if (rc == ST_ECLOSED) {
            raise_exiting(st, "the thread pool is shut down (interpreter "
                              "exit)"); /* H5: not reported */
        }
        else {
            st_raise_from_code(st, rc);
        }
        return NULL;
    }
    if (made && st->pool_tuned) {
        /* GIL held (the tuning is guarded by it); p->mu is a leaf lock
         * that may be taken with the GIL held */
        (void)st_pool_set_tuning(pool, &st->pool_tuning);
    }
    return pool;
}

st_timer_t *
get_timer(st_state *st)
{
    reset_after_fork_if_needed(st);
    if (st->timer == NULL) {
        int rc = st_timer_create(&st->timer);
        if (rc != 0) {
            st->timer = NULL;
            st_raise_from_code(st, rc);
            return NULL;
        }
    }
    return st->timer;
}

/* where: 0 local on a worker (else global), 1 global, 2 dedicated. */
static int
submit_to(st_state *st, st_work_t *w, int where)
{
    st_pool_t *pool;
    int rc;
    if (st_atomic_load(&st->shutting_down, ST_RELAXED)) {
        /* H5: flagged, so that nothing reports it */
        return raise_exiting(st, "the thread pool is shut down "
                                 "(interpreter exit)");
    }
    pool = get_pool(st);
    if (pool == NULL) {
        return -1;
    }
    if (where == 2) {
        rc = st_pool_submit_dedicated(pool, w);
    }
    else if (where == 1) {
        rc = st_pool_submit(pool, w);
    }
    else {
        rc = st_pool_submit_local(pool, w);
    }
    if (rc != 0) {
        st_raise_from_code(st, rc);
        return -1;
    }
    return 0;
}

int
pool_submit(st_state *st, st_work_t *w)
{
    return submit_to(st, w, 0);
}

int
pool_submit_global(st_state *st, st_work_t *w)
{
    return submit_to(st, w, 1);
}

int
pool_submit_dedicated(st_state *st, st_work_t *w)
{
    return submit_to(st, w, 2);
}

int
task_queue_dedicated(st_state *st, TaskObject *t, st_work_fn fn)
{
    t->task_work.run = fn;
    t->task_work.flags = ST_WORK_DOMAIN;
    Py_INCREF(t); /* the thread's reference, dropped by fn */
    if (pool_submit_dedicated(st, &t->task_work) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

void
pool_wait_gil_free(void)
{
    gil_spin_until_free(REACQUIRE_SPIN_NS);
}

void
pool_shutdown_all(st_state *st)
{
    st_pool_t *pool;
    st_timer_t *timer;
    uint64_t grace;
    reset_after_fork_if_needed(st);
    /* The first call (atexit) waits up to the grace period for running
     * items; later ones (module clear/free during finalization) only join
     * what exited meanwhile. */
    grace = st_atomic_load(&st->shutting_down, ST_RELAXED) ? 0
            : st->pool_shutdown_grace_ns != 0 ? st->pool_shutdown_grace_ns
                                              : SHUTDOWN_GRACE_NS;
    /* relaxed: waits poll it; the joins below order everything */
    st_atomic_store(&st->shutting_down, 1, ST_RELAXED);
    timer = st->timer;
    Py_BEGIN_ALLOW_THREADS
    /* A creation under way finishes first (it sees shutting_down
     * otherwise): no pool appears after this look. */
    (void)pthread_mutex_lock(&g_pool_create_mu);
    pool = pool_peek(st);
    (void)pthread_mutex_unlock(&g_pool_create_mu);
    if (timer != NULL) {
        st_timer_shutdown(timer);
    }
    if (pool != NULL) {
        /* ST_ETIMEDOUT: an item still runs; the pool is leaked (it is
         * never destroyed anyway), its thread abandoned (see above) */
        (void)st_pool_shutdown_timed(pool, grace);
    }
    Py_END_ALLOW_THREADS
}

/* -------------------------------------------------------- ThreadPool */

/* A queued ThreadPool work item: not a Python object.  While queued, the
 * pool's queue is a root for fn, state and the context (as .NET's queues
 * are), so the item costs the cyclic GC nothing: no GC header, no
 * traversal, no allocation counted towards a collection (W12). */
typedef struct quwi_node {
    st_work_t work;
    PyObject *fn;    /* strong */
    PyObject *state; /* strong, or NULL: fn() */
    PyObject *ctx;   /* strong contextvars copy, or NULL (unsafe_) */
} quwi_node;

/* On a worker, GIL held (a domain item). */
static void
quwi_run(st_work_t *w)
{
    quwi_node *q = st_container_of(w, quwi_node, work);
    PyObject *fn = q->fn, *state = q->state, *ctx = q->ctx, *r;

    PyMem_Free(q); /* its fields are ours now */
    if (ctx != NULL && PyContext_Enter(ctx) < 0) {
        PyErr_WriteUnraisable(fn);
        Py_CLEAR(ctx); /* run it in the thread's context instead */
    }
    r = state != NULL ? PyObject_CallOneArg(fn, state)
                      : PyObject_CallNoArgs(fn);
    if (ctx != NULL && PyContext_Exit(ctx) < 0) {
        PyErr_WriteUnraisable(fn);
    }
    if (r == NULL) {
        /* nowhere to raise it: the unraisable hook reports it (.NET would
         * crash the process); not an error from the exit itself (H5) */
        write_unraisable(fn);
    }
    Py_XDECREF(r);
    Py_DECREF(fn);
    Py_XDECREF(state);
    Py_XDECREF(ctx);
}

/* GIL held.  Queues fn(state) (state NULL: fn()).  0, or -1 with an
 * error set. */
static int
quwi_submit(st_state *st, PyObject *fn, PyObject *state, int flow,
            int prefer_local)
{
    quwi_node *q;
    int rc;

    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return -1;
    }
    q = PyMem_Malloc(sizeof(*q));
    if (q == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    q->ctx = NULL;
    if (flow && (q->ctx = PyContext_CopyCurrent()) == NULL) {
        PyMem_Free(q);
        return -1;
    }
    q->fn = Py_NewRef(fn);
    q->state = Py_XNewRef(state);
    q->work.next = NULL;
    q->work.run = quwi_run;
    q->work.flags = ST_WORK_DOMAIN;
    /* .NET 7.2: QueueUserWorkItem goes to the global queue unless
     * preferLocal (then to the calling worker's deque, if any). */
    rc = submit_to(st, &q->work, prefer_local ? 0 : 1);
    if (rc < 0) {
        Py_DECREF(q->fn);
        Py_XDECREF(q->state);
        Py_XDECREF(q->ctx);
        PyMem_Free(q);
    }
    return rc;
}

/* fn, state=<absent>, and the keywords in kw (NULL-terminated names of
 * int flags filled into vals; "state" is handled here).  Positional and
 * keyword arguments, parsed by hand: this is the hot path (W12). */
static int
quwi_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, PyObject **fn, PyObject **state,
           const char *const *kw, int *vals)
{
    Py_ssize_t i, nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    int k;

    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes 1 or 2 positional arguments (%zd given)",
                     fname, nargs);
        return -1;
    }
    *fn = args[0];
    *state = nargs == 2 ? args[1] : NULL;
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i); /* borrowed */
        PyObject *v = args[nargs + i];                 /* borrowed */
        if (PyUnicode_CompareWithASCIIString(name, "state") == 0) {
            if (*state != NULL) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got multiple values for 'state'", fname);
                return -1;
            }
            *state = v;
            continue;
        }
        for (k = 0; kw[k] != NULL; k++) {
            if (PyUnicode_CompareWithASCIIString(name, kw[k]) == 0) {
                break;
            }
        }
        if (kw[k] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, name);
            return -1;
        }
        if ((vals[k] = PyObject_IsTrue(v)) < 0) {
            return -1;
        }
    }
    if (*state == Py_Ellipsis) {
        *state = NULL; /* the Python layer's "no state" */
    }
    return 0;
}

static PyObject *
pool_queue(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    static const char *const kw[] = {"flow", "prefer_local", NULL};
    int vals[2] = {1, 0};
    PyObject *fn, *state;

    if (quwi_parse("_pool_queue", args, nargs, kwnames, &fn, &state, kw,
                   vals) < 0
        || quwi_submit(get_st_state(mod), fn, state, vals[0], vals[1]) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
pool_quwi(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    static const char *const kw[] = {"prefer_local", NULL};
    int vals[1] = {0};
    PyObject *fn, *state;

    if (quwi_parse("queue_user_work_item", args, nargs, kwnames, &fn,
                   &state, kw, vals) < 0
        || quwi_submit(get_st_state(mod), fn, state, 1, vals[0]) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
pool_unsafe_quwi(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    static const char *const kw[] = {"prefer_local", NULL};
    int vals[1] = {0};
    PyObject *fn, *state;

    if (quwi_parse("unsafe_queue_user_work_item", args, nargs, kwnames,
                   &fn, &state, kw, vals) < 0
        || quwi_submit(get_st_state(mod), fn, state, 0, vals[0]) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
pool_stats(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    st_pool_stats_t s;
    st_pool_t *pool;
    reset_after_fork_if_needed(st);
    if ((pool = pool_peek(st)) == NULL) {
        /* not started yet: report what it would start with, and do not
         * start threads just to read a counter */
        memset(&s, 0, sizeof(s));
        s.min_threads = default_min_threads();
        s.max_threads = default_max_threads();
    }
    else {
        st_pool_get_stats(pool, &s);
    }
    return Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:K,s:K,s:K,s:K,s:K,s:K,s:i}",
        "min_threads", s.min_threads, "max_threads", s.max_threads,
        "thread_count", s.thread_count, "idle_count", s.idle_count,
        "blocked_count", s.blocked_count, "dedicated_count",
        s.dedicated_count, "spinning", s.spinning, "domain_busy",
        s.domain_busy, "pending", (unsigned long long)s.pending,
        "completed", (unsigned long long)s.completed, "injected",
        (unsigned long long)s.injected, "starvation_events",
        (unsigned long long)s.starvation_events, "retired",
        (unsigned long long)s.retired, "token_revocations",
        (unsigned long long)s.token_revocations, "cpu_count",
        st_cpu_count());
}

static PyObject *
pool_set_threads(PyObject *mod, PyObject *args)
{
    st_state *st = get_st_state(mod);
    int which, n, rc;
    st_pool_t *pool;
    if (!PyArg_ParseTuple(args, "ii:_pool_set_threads", &which, &n)) {
        return NULL;
    }
    pool = get_pool(st);
    if (pool == NULL) {
        return NULL;
    }
    /* May start threads (pthread_create): not a non-blocking call, so
     * the GIL goes (BENCHMARKS.md rule 4 allows it). */
    Py_BEGIN_ALLOW_THREADS
    rc = which == 0 ? st_pool_set_min_threads(pool, n)
                    : st_pool_set_max_threads(pool, n);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(rc == 0);
}

/* _pool_set_tuning's keys (issue 9 item 23, H2: every value checked,
 * since a NaN, an infinity, a negative or a huge value could make the
 * gate thread spin or a worker never wake).  Durations are seconds, a
 * finite int or float (not a bool) in [lo, hi]; `none` says what None
 * means, if anything. */
enum { NONE_REFUSED, NONE_NEVER, NONE_OFF };

typedef struct tuning_key {
    const char *name;
    double lo, hi;
    const char *range; /* lo and hi for the message (PyErr_Format has
                          no %g) */
    int none;
} tuning_key;

#define TUNING_MAX_S 3600.0 /* an hour: no product of these overflows */

static const tuning_key tuning_keys[] = {
    {"spin", 0.0, 0.01, "0 and 0.01", NONE_REFUSED}, /* the core's limit */
    {"thread_timeout", 0.0, TUNING_MAX_S, "0 and 3600", NONE_NEVER},
    {"gate_period", 0.0, TUNING_MAX_S, "0 and 3600", NONE_OFF}, /* 0: off */
    {"token_stall", 0.0001, TUNING_MAX_S, "0.0001 and 3600", NONE_REFUSED},
    {"blocking_delay_step", 0.0, TUNING_MAX_S, "0 and 3600", NONE_REFUSED},
    {"blocking_delay_max", 0.0, TUNING_MAX_S, "0 and 3600", NONE_REFUSED},
    {"shutdown_grace", 0.0, TUNING_MAX_S, "0 and 3600",
     NONE_REFUSED}, /* 0: the default */
    {NULL, 0.0, 0.0, NULL, 0},
};

#define BLOCKING_NO_DELAY_MAX 32767 /* the pool's thread cap */

/* One duration: 0 with *out set, or -1 with TypeError/ValueError naming
 * the key. */
static int
tuning_ns(const tuning_key *k, PyObject *v, uint64_t *out)
{
    double secs;

    if (v == Py_None) {
        if (k->none == NONE_REFUSED) {
            PyErr_Format(PyExc_ValueError,
                         "_pool_set_tuning(): %s must be a number of "
                         "seconds, not None", k->name);
            return -1;
        }
        *out = k->none == NONE_NEVER ? UINT64_MAX : 0;
        return 0;
    }
    if (PyBool_Check(v) || !(PyFloat_Check(v) || PyLong_Check(v))) {
        PyErr_Format(PyExc_TypeError,
                     "_pool_set_tuning(): %s must be a number of seconds, "
                     "not %.100s", k->name, Py_TYPE(v)->tp_name);
        return -1;
    }
    secs = PyFloat_AsDouble(v);
    if (secs == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        secs = HUGE_VAL; /* an int too big for a double: out of range */
    }
    if (!(secs >= k->lo && secs <= k->hi)) { /* NaN fails both */
        PyErr_Format(PyExc_ValueError,
                     "_pool_set_tuning(): %s must be finite and between "
                     "%s seconds, not %R", k->name, k->range, v);
        return -1;
    }
    *out = (uint64_t)(secs * 1e9);
    return 0;
}

/* Where each duration key goes. */
static uint64_t *
tuning_slot(st_pool_tuning_t *t, uint64_t *grace, int i)
{
    uint64_t *slots[] = {&t->spin_ns,
                         &t->thread_timeout_ns,
                         &t->gate_period_ns,
                         &t->token_stall_ns,
                         &t->blocking_delay_step_ns,
                         &t->blocking_delay_max_ns,
                         grace};
    return slots[i];
}

static PyObject *
pool_set_tuning(PyObject *mod, PyObject *d)
{
    st_state *st = get_st_state(mod);
    st_pool_tuning_t t;
    uint64_t grace;
    PyObject *key, *v;
    Py_ssize_t pos = 0;
    int i, rc = 0;

    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "_pool_set_tuning(): d must be a "
                     "dict, not %.100s", Py_TYPE(d)->tp_name);
        return NULL;
    }
    reset_after_fork_if_needed(st);
    if (st->pool_tuned) {
        t = st->pool_tuning;
    }
    else {
        st_pool_tuning_default(&t);
    }
    grace = st->pool_shutdown_grace_ns;
    /* Parse every key into copies first: a bad one changes nothing. */
    while (PyDict_Next(d, &pos, &key, &v)) { /* borrowed */
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "_pool_set_tuning(): keys must "
                         "be str, not %.100s", Py_TYPE(key)->tp_name);
            return NULL;
        }
        if (PyUnicode_CompareWithASCIIString(key, "blocking_no_delay")
            == 0) {
            long n;
            int overflow;
            if (PyBool_Check(v) || !PyLong_Check(v)) {
                PyErr_Format(PyExc_TypeError,
                             "_pool_set_tuning(): blocking_no_delay must be "
                             "an int, not %.100s", Py_TYPE(v)->tp_name);
                return NULL;
            }
            n = PyLong_AsLongAndOverflow(v, &overflow);
            if (n == -1 && PyErr_Occurred()) {
                return NULL;
            }
            if (overflow != 0 || n < 0 || n > BLOCKING_NO_DELAY_MAX) {
                PyErr_Format(PyExc_ValueError,
                             "_pool_set_tuning(): blocking_no_delay must be "
                             "between 0 and %d, not %R",
                             BLOCKING_NO_DELAY_MAX, v);
                return NULL;
            }
            t.blocking_no_delay = (int)n;
            continue;
        }
        for (i = 0; tuning_keys[i].name != NULL; i++) {
            if (PyUnicode_CompareWithASCIIString(key, tuning_keys[i].name)
                == 0) {
                break;
            }
        }
        if (tuning_keys[i].name == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "_pool_set_tuning(): unknown key %R", key);
            return NULL;
        }
        if (tuning_ns(&tuning_keys[i], v, tuning_slot(&t, &grace, i)) < 0) {
            return NULL;
        }
    }
    if (pool_peek(st) != NULL) {
        rc = st_pool_set_tuning(pool_peek(st), &t);
    }
    if (rc != 0) {
        st_raise_from_code(st, rc);
        return NULL;
    }
    st->pool_tuning = t;
    st->pool_tuned = 1;
    st->pool_shutdown_grace_ns = grace;
    Py_RETURN_NONE;
}

static PyObject *
pool_get_tuning(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    st_pool_tuning_t t;
    if (st->pool_tuned) {
        t = st->pool_tuning;
    }
    else {
        st_pool_tuning_default(&t);
    }
#define SECS(ns) ((ns) == UINT64_MAX ? -1.0 : (double)(ns) / 1e9)
    return Py_BuildValue(
        "{s:d,s:d,s:d,s:d,s:i,s:d,s:d,s:d}", "spin", SECS(t.spin_ns),
        "thread_timeout", SECS(t.thread_timeout_ns), "gate_period",
        SECS(t.gate_period_ns), "token_stall", SECS(t.token_stall_ns),
        "blocking_no_delay", t.blocking_no_delay, "blocking_delay_step",
        SECS(t.blocking_delay_step_ns), "blocking_delay_max",
        SECS(t.blocking_delay_max_ns), "shutdown_grace",
        SECS(st->pool_shutdown_grace_ns != 0 ? st->pool_shutdown_grace_ns
                                             : SHUTDOWN_GRACE_NS));
#undef SECS
}

/* The pool's lifecycle hooks: the atexit shutdown and the fork child's
 * reset.  They are not module attributes (hard-args' leftover of issue 9
 * item 23): a user calling the shutdown mid-program would stop the pool
 * and the timer for good, and from a pool thread it would wait for
 * itself.  The package takes them once, at import, through
 * _take_lifecycle_hooks, and hands them straight to atexit and
 * os.register_at_fork; nothing else keeps them by name. */
static PyObject *
hook_shutdown(PyObject *mod, PyObject *unused)
{
    pool_shutdown_all(get_st_state(mod));
    Py_RETURN_NONE;
}

static PyObject *
hook_after_fork_child(PyObject *mod, PyObject *unused)
{
    reset_after_fork_if_needed(get_st_state(mod));
    Py_RETURN_NONE;
}

static PyMethodDef hook_shutdown_def = {
    "shutdown", hook_shutdown, METH_NOARGS,
    PyDoc_STR("shutdown()\n--\n\n"
              "Stop the timer and the pool (atexit).  Idempotent.")};

static PyMethodDef hook_after_fork_child_def = {
    "after_fork_child", hook_after_fork_child, METH_NOARGS,
    PyDoc_STR("after_fork_child()\n--\n\n"
              "Forget the parent's pool and timer in a forked child.")};

/* _take_lifecycle_hooks() -> (shutdown, after_fork_child), once per
 * module; later calls raise RuntimeError. */
static PyObject *
mod_take_lifecycle_hooks(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    PyObject *name, *down = NULL, *fork = NULL, *r = NULL;
    if (st->lifecycle_hooks_taken) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_take_lifecycle_hooks(): the hooks were taken at "
                        "import (they are the package's, not a public API)");
        return NULL;
    }
    name = PyModule_GetNameObject(mod);
    if (name == NULL) {
        return NULL;
    }
    down = PyCFunction_NewEx(&hook_shutdown_def, mod, name);
    fork = down ? PyCFunction_NewEx(&hook_after_fork_child_def, mod, name)
                : NULL;
    r = fork ? PyTuple_Pack(2, down, fork) : NULL;
    Py_XDECREF(down);
    Py_XDECREF(fork);
    Py_DECREF(name);
    if (r != NULL) {
        st->lifecycle_hooks_taken = 1;
    }
    return r;
}

PyMethodDef pool_methods[] = {
    {"_pool_queue", (PyCFunction)(void (*)(void))pool_queue,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("_pool_queue(fn, state=..., flow=True, prefer_local=False)"
               "\n--\n\n"
               "Queue fn(state) (or fn()) to the pool: the global queue, "
               "or with prefer_local the calling worker's own queue.")},
    {"_queue_user_work_item", (PyCFunction)(void (*)(void))pool_quwi,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("queue_user_work_item(fn, state=..., prefer_local=False)"
               "\n--\n\n"
               "Queue fn(state) (or fn() without a state) to the pool, "
               "flowing the contextvars context, like .NET's "
               "ThreadPool.QueueUserWorkItem (SPEC P1, A6).  The item goes "
               "to the global FIFO queue; with prefer_local=True on a pool "
               "thread, to that thread's own queue (LIFO for it, stolen "
               "FIFO by others; P2).  Returns True; fn always runs on a "
               "pool thread, never inline.  An exception escaping fn is "
               "reported through sys.unraisablehook.")},
    {"_unsafe_queue_user_work_item",
     (PyCFunction)(void (*)(void))pool_unsafe_quwi,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("unsafe_queue_user_work_item(fn, state=..., "
               "prefer_local=False)\n--\n\n"
               "Like queue_user_work_item, without flowing the contextvars "
               "context (.NET's UnsafeQueueUserWorkItem): fn runs in the "
               "pool thread's own context.")},
    {"_pool_stats", pool_stats, METH_NOARGS,
     PyDoc_STR("_pool_stats()\n--\n\nThe pool's counters as a dict.")},
    {"_pool_set_threads", pool_set_threads, METH_VARARGS,
     PyDoc_STR("_pool_set_threads(which, n)\n--\n\n"
               "Set the minimum (which=0) or maximum (1) thread count.")},
    {"_pool_set_tuning", pool_set_tuning, METH_O,
     PyDoc_STR("_pool_set_tuning(d)\n--\n\n"
               "Set timing constants, in seconds, each finite and in "
               "range (ValueError naming the key otherwise): spin (at "
               "most 0.01), thread_timeout (None: never), gate_period "
               "(None or 0: no starvation detection), token_stall (at "
               "least 0.0001), blocking_no_delay (int, 0-32767), "
               "blocking_delay_step, blocking_delay_max, shutdown_grace "
               "(0: the default); at most 3600 s.  For tests.")},
    {"_pool_get_tuning", pool_get_tuning, METH_NOARGS,
     PyDoc_STR("_pool_get_tuning()\n--\n\nThe timing constants.")},
    {"_take_lifecycle_hooks", mod_take_lifecycle_hooks, METH_NOARGS,
     PyDoc_STR("_take_lifecycle_hooks()\n--\n\n"
               "Internal, once (the package's import): the pool's atexit "
               "shutdown and fork-child reset, as (shutdown, "
               "after_fork_child).  Later calls raise RuntimeError.")},
    {NULL, NULL, 0, NULL},
};
