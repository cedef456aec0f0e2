/* py_pool.c - the binding of the thread pool and the timer thread.
 *
 *     ThreadPool.queue_user_work_item(fn, state=..., prefer_local=False)
 *     Task.delay(seconds)      # a timer entry completing a promise
 *
 * Workers are C threads (csrc/core/st_pool.c).  Each one owns one
 * PyThreadState, made the first time it runs Python and kept for its
 * life: attaching is PyEval_RestoreThread, detaching PyEval_SaveThread
 * (BENCHMARKS.md rule 1).  The pool keeps a worker attached while it
 * drains Python items, up to a time slice (rule 2).  A worker refuses to
 * attach once shutdown or finalization started: the item is then leaked,
 * never run without an interpreter (STYLE.md point 30).
 *
 * Timers: the timer thread does no Python work; a due delay entry is
 * queued to the pool, whose worker completes the task with the GIL.
 */
#include "binding.h"

#include <math.h>   /* isnan */
#include <string.h> /* memset */
#include <unistd.h> /* getpid */

#include "st_error.h"
#include "st_list.h" /* st_container_of */
#include "st_thread.h"

/* ------------------------------------------------------------- hooks */

static int
hook_attach(void *arg, void **slot)
{
    st_state *st = arg;
    PyThreadState *ts = *slot;
    /* relaxed: a flag; finalization is checked again below */
    if (st_atomic_load(&st->shutting_down, ST_RELAXED)
        || ST_IS_FINALIZING()) {
        return -1;
    }
    if (ts == NULL) {
        ts = PyThreadState_New(st->interp);
        if (ts == NULL) {
            return -1;
        }
        *slot = ts;
    }
    PyEval_RestoreThread(ts);
    return 0;
}

static void
hook_detach(void *arg, void **slot)
{
    (void)arg;
    (void)slot;
    PyEval_SaveThread();
}

static void
hook_drop(void *arg, st_work_t *w)
{
    /* No GIL here and maybe no interpreter: leak the item's references
     * rather than touch Python (greenlet's rule). */
    (void)arg;
    (void)w;
}

static void
hook_thread_exit(void *arg, void **slot)
{
    PyThreadState *ts = *slot;
    (void)arg;
    if (ts == NULL || ST_IS_FINALIZING()) {
        return; /* leak the thread state: safer than touching it */
    }
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
}

/* --------------------------------------------------- pool and timer */

static void
reset_after_fork_if_needed(st_state *st)
{
    long pid = (long)getpid();
    if (st->pid != pid) {
        /* a forked child: the parent's threads are gone; forget (leak)
         * the structures, whose mutexes may be held, and start afresh */
        st->pool = NULL;
        st->timer = NULL;
        st->pid = pid;
        st_atomic_store(&st->shutting_down, 0, ST_RELAXED);
    }
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
get_pool(st_state *st)
{
    reset_after_fork_if_needed(st);
    if (st->pool == NULL) {
        st_pool_hooks_t hooks = {
            .arg = st,
            .attach = hook_attach,
            .detach = hook_detach,
            .drop = hook_drop,
            .thread_exit = hook_thread_exit,
            .slice_ns = 500000,
        };
        int rc, lo = default_min_threads(), hi = default_max_threads();
        Py_BEGIN_ALLOW_THREADS
        rc = st_pool_create(&st->pool, lo, hi, &hooks);
        Py_END_ALLOW_THREADS
        if (rc != 0) {
            st->pool = NULL;
            st_raise_from_code(st, rc);
            return NULL;
        }
    }
    return st->pool;
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

int
pool_submit(st_state *st, st_work_t *w)
{
    st_pool_t *pool;
    int rc;
    if (st_atomic_load(&st->shutting_down, ST_RELAXED)) {
        PyErr_SetString(st->InvalidOperationError,
                        "the thread pool is shut down (interpreter exit)");
        return -1;
    }
    pool = get_pool(st);
    if (pool == NULL) {
        return -1;
    }
    rc = st_pool_submit(pool, w);
    if (rc != 0) {
        st_raise_from_code(st, rc);
        return -1;
    }
    return 0;
}

void
pool_shutdown_all(st_state *st)
{
    st_pool_t *pool;
    st_timer_t *timer;
    if (st->pid != (long)getpid()) {
        return; /* a forked child never started these */
    }
    /* relaxed: waits poll it; the joins below order everything */
    st_atomic_store(&st->shutting_down, 1, ST_RELAXED);
    pool = st->pool;
    timer = st->timer;
    Py_BEGIN_ALLOW_THREADS
    if (timer != NULL) {
        st_timer_shutdown(timer);
    }
    if (pool != NULL) {
        st_pool_shutdown(pool);
    }
    Py_END_ALLOW_THREADS
}

/* ------------------------------------------------------------ timeouts */

int
parse_timeout(PyObject *obj, const char *name, uint64_t *out_ns,
              int *infinite)
{
    double secs;
    *infinite = 0;
    *out_ns = 0;
    if (obj == Py_None) {
        *infinite = 1;
        return 0;
    }
    if (PyFloat_Check(obj) || PyLong_Check(obj)) {
        secs = PyFloat_AsDouble(obj);
        if (secs == -1.0 && PyErr_Occurred()) {
            return -1;
        }
    }
    else if (PyObject_HasAttrString(obj, "total_seconds")) { /* timedelta */
        PyObject *r = PyObject_CallMethod(obj, "total_seconds", NULL);
        if (r == NULL) {
            return -1;
        }
        secs = PyFloat_AsDouble(r);
        Py_DECREF(r);
        if (secs == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        if (secs == -0.001) {
            *infinite = 1; /* Timeout.InfiniteTimeSpan */
            return 0;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a number of seconds, a timedelta or None, "
                     "not %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (isnan(secs)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", name);
        return -1;
    }
    if (secs == -1.0) {
        *infinite = 1; /* INFINITE */
        return 0;
    }
    if (secs < 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be >= 0, or -1 / None for no limit, not %R",
                     name, obj);
        return -1;
    }
    if (secs > 4294967.294) { /* .NET's limit: 2^32 - 2 ms */
        PyErr_Format(PyExc_ValueError,
                     "%s must be at most 4294967.294 seconds, not %R", name,
                     obj);
        return -1;
    }
    *out_ns = (uint64_t)(secs * 1e9);
    return 0;
}

/* --------------------------------------------------------------- delay */

typedef struct delay_node {
    st_timer_entry_t entry;
    st_work_t work;
    TaskObject *task; /* strong */
} delay_node;

static void
delay_work_run(st_work_t *w)
{
    delay_node *d = st_container_of(w, delay_node, work);
    task_try_complete(d->task, ST_STATUS_RAN_TO_COMPLETION, Py_None, NULL);
    if (pending_exc_restore() < 0) {
        PyErr_WriteUnraisable((PyObject *)d->task);
    }
    Py_DECREF(d->task);
    PyMem_Free(d);
}

static void
delay_fire(st_timer_entry_t *e)
{
    /* timer thread, no GIL: only hand the node to the pool */
    delay_node *d = st_container_of(e, delay_node, entry);
    st_pool_t *pool = g_st != NULL ? g_st->pool : NULL;
    d->work.run = delay_work_run;
    d->work.flags = ST_WORK_DOMAIN;
    if (pool == NULL || st_pool_submit(pool, &d->work) != 0) {
        /* shutting down: leak the node and its task reference */
    }
}

PyObject *
delay_start(st_state *st, uint64_t ns)
{
    st_timer_t *timer;
    delay_node *d;
    PyObject *t;
    int rc;

    if (get_pool(st) == NULL || (timer = get_timer(st)) == NULL) {
        return NULL;
    }
    t = task_new_promise(st, NULL, 0);
    if (t == NULL) {
        return NULL;
    }
    d = PyMem_Malloc(sizeof(*d));
    if (d == NULL) {
        Py_DECREF(t);
        return PyErr_NoMemory();
    }
    d->task = (TaskObject *)Py_NewRef(t);
    d->entry.fire = delay_fire;
    d->entry.armed = 0;
    rc = st_timer_add(timer, &d->entry, st_now_ns() + ns);
    if (rc != 0) {
        Py_DECREF(d->task);
        PyMem_Free(d);
        Py_DECREF(t);
        st_raise_from_code(st, rc);
        return NULL;
    }
    return t;
}

/* -------------------------------------------------------- ThreadPool */

static PyObject *
pool_queue(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fn", "state", "flow", NULL};
    st_state *st = get_st_state(mod);
    PyObject *fn, *state = NULL, *cargs, *ctx = NULL, *action;
    int flow = 1, rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|Op:_pool_queue", kwlist,
                                     &fn, &state, &flow)) {
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    cargs = state != NULL ? PyTuple_Pack(1, state) : PyTuple_New(0);
    if (cargs == NULL) {
        return NULL;
    }
    if (flow && (ctx = PyContext_CopyCurrent()) == NULL) {
        Py_DECREF(cargs);
        return NULL;
    }
    action = action_new(st, fn, cargs, ctx);
    Py_XDECREF(ctx);
    Py_DECREF(cargs);
    if (action == NULL) {
        return NULL;
    }
    rc = schedule_action(st, NULL, action);
    Py_DECREF(action);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
pool_stats(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    st_pool_stats_t s;
    reset_after_fork_if_needed(st);
    if (st->pool == NULL) {
        /* not started yet: report what it would start with, and do not
         * start threads just to read a counter */
        memset(&s, 0, sizeof(s));
        s.min_threads = default_min_threads();
        s.max_threads = default_max_threads();
    }
    else {
        st_pool_get_stats(st->pool, &s);
    }
    return Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:K,s:K,s:K}", "min_threads", s.min_threads,
        "max_threads", s.max_threads, "thread_count", s.thread_count,
        "idle_count", s.idle_count, "blocked_count", s.blocked_count,
        "pending", (unsigned long long)s.pending, "completed",
        (unsigned long long)s.completed, "injected",
        (unsigned long long)s.injected);
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
    Py_BEGIN_ALLOW_THREADS
    rc = which == 0 ? st_pool_set_min_threads(pool, n)
                    : st_pool_set_max_threads(pool, n);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(rc == 0);
}

static PyObject *
mod_shutdown(PyObject *mod, PyObject *unused)
{
    pool_shutdown_all(get_st_state(mod));
    Py_RETURN_NONE;
}

static PyObject *
mod_after_fork_child(PyObject *mod, PyObject *unused)
{
    reset_after_fork_if_needed(get_st_state(mod));
    Py_RETURN_NONE;
}

PyMethodDef pool_methods[] = {
    {"_pool_queue", (PyCFunction)(void (*)(void))pool_queue,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("_pool_queue(fn, state=..., flow=True)\n--\n\n"
               "Queue fn(state) (or fn()) to the pool.")},
    {"_pool_stats", pool_stats, METH_NOARGS,
     PyDoc_STR("_pool_stats()\n--\n\nThe pool's counters as a dict.")},
    {"_pool_set_threads", pool_set_threads, METH_VARARGS,
     PyDoc_STR("_pool_set_threads(which, n)\n--\n\n"
               "Set the minimum (which=0) or maximum (1) thread count.")},
    {"_shutdown", mod_shutdown, METH_NOARGS,
     PyDoc_STR("_shutdown()\n--\n\n"
               "Stop the timer and the pool (atexit).  Idempotent.")},
    {"_after_fork_child", mod_after_fork_child, METH_NOARGS,
     PyDoc_STR("_after_fork_child()\n--\n\n"
               "Forget the parent's pool and timer in a forked child.")},
    {NULL, NULL, 0, NULL},
};
