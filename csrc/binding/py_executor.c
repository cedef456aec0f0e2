/* py_executor.c - _native._FutureCore: the state, the hand-offs and the
 * blocking wait of sharptask.Executor's futures (SPEC I2; issue 11, W13
 * and W14).
 *
 *     class _Future(_native._FutureCore, concurrent.futures.Future)
 *
 * (python/sharptask/_executor.py) is a real concurrent.futures.Future
 * (asyncio.wrap_future checks isinstance) whose methods are these: the
 * base class's state machine kept in C fields, and the attributes that
 * concurrent.futures.wait / as_completed and the base class's own helpers
 * read (_condition, _state, _result, _exception, _waiters,
 * _done_callbacks) as read-only properties over them.
 *
 * Why.  A round trip submit -> worker -> result() is two thread hand-offs
 * of the GIL; everything the submitting thread does before it releases the
 * GIL in result(), and everything the worker does before it releases it,
 * is on that path.  In Python those steps (a Condition, its notify, the
 * state checks) cost about as much as the hand-offs themselves.  Here the
 * worker runs the call and completes the future in one C function
 * (_run_queued), and result() spins briefly without the GIL on the state
 * word, then sleeps on an event made on demand.
 *
 * Locking.  The base class guards its state with _condition, and
 * concurrent.futures.wait/as_completed take it to read the state and
 * install a waiter.  Here _condition is a plain _thread lock made the
 * first time somebody reads the attribute.  Every change of state:
 *   - takes that lock when it exists (its acquire may release the GIL);
 *   - when it does not exist yet, runs with the GIL held and without any
 *     call that could release it (no Python call, no allocation of a
 *     collected object) from the read of the state to its write: nobody
 *     can be inside a critical section of a lock that does not exist, and
 *     nobody can create it meanwhile.
 * The waiters of wait()/as_completed() exist only if the lock does.
 * Callbacks and wake-ups run after the lock is released, as the base
 * class does.
 *
 * Waiting.  The state word is atomic: result() polls it without the GIL.
 * The event lives as long as the future (the waiting thread holds a
 * reference), is set once when the state becomes done and never reset,
 * so a waiter that sleeps after the completion returns at once.  Waits
 * are sliced (Ctrl-C: PyErr_CheckSignals after each slice) and announce
 * themselves to the pool when made on a pool thread (the pool adds a
 * worker, as for a blocking Task wait); at exit a pool item or the
 * exiting thread gives up as a Task wait does (H5).
 *
 * The pool node.  A future is queued at most once, its st_work_t embedded
 * in it (no allocation per item); the queue holds a reference to it until
 * fut_work_run drops it.
 */
#include "binding.h"
#include "py_args.h"   /* parse_timeout_lenient */
#include "py_errors.h" /* wait_slice_check */
#include "py_executor.h"
#include "py_gil.h"
#include "py_pool.h"
#include "py_state.h"

#include "st_atomic.h"
#include "st_list.h"   /* st_container_of */
#include "st_pool.h"   /* st_pool_current, st_pool_spin_pause */
#include "st_thread.h" /* st_event_t, st_now_ns, st_cpu_count */


/* the base class's states, in concurrent.futures._base's spelling */
enum {
    FS_PENDING = 0,
    FS_RUNNING,
    FS_CANCELLED,
    FS_CANCELLED_AND_NOTIFIED,
    FS_FINISHED,
    FS_COUNT
};

static const char *const fs_names[FS_COUNT] = {
    "PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED",
};

/* Set once by executor_module_exec (owned, for the life of the process:
 * the module refuses a second interpreter): the state strings of
 * concurrent.futures._base, its CancelledError, TimeoutError,
 * InvalidStateError and LOGGER, _thread.allocate_lock and the lock
 * type's acquire and release (called directly: no lookup per call), and
 * the interned names of the methods called on other objects. */
static PyObject *g_fs_str[FS_COUNT];
static PyObject *g_cancelled_error;
static PyObject *g_timeout_error;
static PyObject *g_invalid_state_error;
static PyObject *g_logger;
static PyObject *g_allocate_lock;
static PyObject *g_lock_acquire;
static PyObject *g_lock_release;

enum {
    NAME_ADD_RESULT = 0, /* wait()/as_completed() waiters' */
    NAME_ADD_EXCEPTION,
    NAME_ADD_CANCELLED,
    NAME_ADD,              /* _LoopDelivery.add */
    NAME_INVOKE_CALLBACKS, /* the base class's _invoke_callbacks */
    NAME_EXCEPTION,        /* LOGGER.exception */
    NAME_COUNT
};
static const char *const g_name_text[NAME_COUNT] = {
    "add_result", "add_exception", "add_cancelled", "add",
    "_invoke_callbacks", "exception",
};
static PyObject *g_name[NAME_COUNT];

/* obj.<g_name[name]>(*args) for nargs (<= 2) arguments, without a bound
 * method.  Returns new, or NULL with an exception set.  Refs: borrows
 * obj and args. */
static PyObject *
call_method(PyObject *obj, int name, PyObject *a0, PyObject *a1,
            size_t nargs)
{
    PyObject *argv[3] = {obj, a0, a1};
    return PyObject_VectorcallMethod(
        g_name[name], argv, (1 + nargs) | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
}

typedef struct FutObject {
    PyObject_HEAD
    ST_ATOMIC(int) state;  /* FS_*: written with the GIL (see Locking) */
    PyObject *result;      /* strong or NULL */
    PyObject *exception;   /* strong or NULL */
    PyObject *callbacks;   /* list or NULL: made on demand */
    PyObject *waiters;     /* list or NULL: wait()/as_completed() */
    PyObject *cond;        /* _thread.lock or NULL: made on demand */
    PyObject *fn;          /* the queued call (cleared when it runs) */
    PyObject *args;        /* tuple */
    PyObject *kwargs;      /* dict or NULL */
    PyObject *items;       /* the executor's pending dict, or NULL */
    PyObject *release;     /* called after the run, or NULL */
    PyObject *dest;        /* asyncio's destination future, or NULL */
    PyObject *delivery;    /* its loop's _LoopDelivery, or NULL */
    st_event_t *ev;        /* for blocking waits, or NULL */
    st_work_t work;        /* the pool's node while queued (no malloc) */
    int queued;            /* work was handed to the pool once */
} FutObject;

#define FUT(op) ((FutObject *)(op))

static int
fut_state(FutObject *f)
{
    return st_atomic_load(&f->state, ST_ACQUIRE);
}

static int
fs_done(int s)
{
    return s == FS_CANCELLED || s == FS_CANCELLED_AND_NOTIFIED
           || s == FS_FINISHED;
}

/* ------------------------------------------------------------ locking */

/* Takes f's lock if it exists: *held gets it (strong) or NULL.  Returns
 * 0, or -1 with an exception set (an interrupted acquire). */
static int
fut_lock(FutObject *f, PyObject **held)
{
    PyObject *c = f->cond, *r;
    *held = NULL;
    if (c == NULL) {
        return 0;
    }
    Py_INCREF(c);
    r = PyObject_CallOneArg(g_lock_acquire, c);
    if (r == NULL) {
        Py_DECREF(c);
        return -1;
    }
    Py_DECREF(r);
    *held = c;
    return 0;
}

/* Releases what fut_lock took (steals held).  An exception set on entry
 * is kept. */
static void
fut_unlock(PyObject *held)
{
    PyObject *exc, *r;
    if (held == NULL) {
        return;
    }
    exc = PyErr_GetRaisedException();
    r = PyObject_CallOneArg(g_lock_release, held);
    if (r == NULL) {
        PyErr_WriteUnraisable(held);
    }
    Py_XDECREF(r);
    Py_DECREF(held);
    PyErr_SetRaisedException(exc);
}

/* Calls waiter.<g_name[name]>(self) (add_result, add_exception or
 * add_cancelled) on every wait()/as_completed() waiter (under the lock,
 * as the base class).  Returns 0, or -1 with an exception set. */
static int
fut_notify_waiters(FutObject *f, int name)
{
    PyObject *w = f->waiters, *copy;
    Py_ssize_t i, n;
    int rc = 0;
    if (w == NULL || PyList_GET_SIZE(w) == 0) {
        return 0;
    }
    copy = PyList_GetSlice(w, 0, PyList_GET_SIZE(w));
    if (copy == NULL) {
        return -1;
    }
    n = PyList_GET_SIZE(copy);
    for (i = 0; i < n && rc == 0; i++) {
        PyObject *r = call_method(PyList_GET_ITEM(copy, i), name,
                                  (PyObject *)f, NULL, 1);
        if (r == NULL) {
            rc = -1;
        }
        Py_XDECREF(r);
    }
    Py_DECREF(copy);
    return rc;
}

/* After a change to a done state (lock released, no exception set): wake
 * the blocked waiters, deliver to asyncio, run the callbacks. */
static void
fut_finish(FutObject *f)
{
    PyObject *dest = f->dest, *delivery = f->delivery;
    if (f->ev != NULL) {
        st_event_set(f->ev);
    }
    if (dest != NULL) {
        PyObject *r;
        f->dest = NULL;
        f->delivery = NULL;
        r = call_method(delivery, NAME_ADD, dest, (PyObject *)f, 2);
        if (r == NULL) {
            PyErr_WriteUnraisable(delivery);
        }
        Py_XDECREF(r);
        Py_DECREF(dest);
        Py_DECREF(delivery);
    }
    if (f->callbacks != NULL && PyList_GET_SIZE(f->callbacks) > 0) {
        /* the base class's: each callback, exceptions logged */
        PyObject *r = call_method((PyObject *)f, NAME_INVOKE_CALLBACKS,
                                  NULL, NULL, 0);
        if (r == NULL) {
            PyErr_WriteUnraisable((PyObject *)f);
        }
        Py_XDECREF(r);
    }
}

static void
raise_invalid_state(FutObject *f, int s)
{
    PyErr_Format(g_invalid_state_error, "%U: <Future at %p>", g_fs_str[s],
                 (void *)f);
}

/* set_result / set_exception (value borrowed).  Returns 0, or -1 with an
 * exception set (InvalidStateError if done already). */
static int
fut_set(FutObject *f, PyObject *value, int is_exc)
{
    PyObject *held, *err = NULL;
    int s;
    if (fut_lock(f, &held) < 0) {
        return -1;
    }
    s = fut_state(f);
    if (fs_done(s)) {
        fut_unlock(held);
        raise_invalid_state(f, s);
        return -1;
    }
    /* the fields are NULL before FINISHED: nothing to drop */
    if (is_exc) {
        f->exception = Py_XNewRef(value);
    }
    else {
        f->result = Py_NewRef(value);
    }
    st_atomic_store(&f->state, FS_FINISHED, ST_RELEASE);
    if (fut_notify_waiters(f, is_exc ? NAME_ADD_EXCEPTION
                                        : NAME_ADD_RESULT) < 0) {
        err = PyErr_GetRaisedException();
    }
    fut_unlock(held);
    fut_finish(f);
    if (err != NULL) {
        PyErr_SetRaisedException(err);
        return -1;
    }
    return 0;
}

/* The "start running" transition, with f's lock taken (fut_lock) by the
 * caller: set_running_or_notify_cancel's, and a worker's as it picks up
 * its item.  PENDING becomes RUNNING; CANCELLED becomes
 * CANCELLED_AND_NOTIFIED and wait()'s waiters hear of it.  Returns the
 * state found; *rc: 0, or -1 if a waiter failed (exception set). */
static int
fut_start_locked(FutObject *f, int *rc)
{
    int s = fut_state(f);
    *rc = 0;
    if (s == FS_PENDING) {
        st_atomic_store(&f->state, FS_RUNNING, ST_RELEASE);
    }
    else if (s == FS_CANCELLED) {
        st_atomic_store(&f->state, FS_CANCELLED_AND_NOTIFIED, ST_RELEASE);
        *rc = fut_notify_waiters(f, NAME_ADD_CANCELLED);
    }
    return s;
}

/* ------------------------------------------------------------ waiting */

/* Waits until done; timeout_ns UINT64_MAX: no limit.  Returns 1 done, 0
 * timed out, -1 with an exception set (a signal handler raised). */
static int
fut_wait(FutObject *f, uint64_t timeout_ns)
{
    uint64_t deadline, slice;
    st_pool_t *pool;
    st_state *st = g_st;
    int spin, rc = 0, abandon = -1;
    if (fs_done(fut_state(f))) {
        return 1;
    }
    if (timeout_ns == 0) {
        return 0;
    }
    if (f->ev == NULL) {
        st_event_t *ev = PyMem_RawMalloc(sizeof(*ev));
        if (ev == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        st_event_init(ev);
        f->ev = ev;
        /* with the GIL: a completion either saw f->ev or is visible now */
        if (fs_done(fut_state(f))) {
            return 1;
        }
    }
    spin = wait_spin_useful();
    deadline = wait_deadline(timeout_ns);
    pool = st_pool_current();
    if (pool != NULL) {
        st_pool_enter_blocking(pool); /* the pool may add a worker */
    }
    while ((slice = wait_next_slice(deadline)) != 0) {
        PyThreadState *save;
        save = PyEval_SaveThread();
        gil_note_released(); /* py_gil.c: the hand-off hint */
        if (spin) {
            uint64_t until = st_now_ns() + WAIT_SPIN_NS;
            unsigned pauses = 0;
            while (!fs_done(fut_state(f)) && st_now_ns() < until) {
                st_pool_spin_pause(&pauses);
            }
            spin = 0;
        }
        if (!fs_done(fut_state(f))) {
            (void)st_event_wait(f->ev, slice);
        }
        pool_wait_gil_free(); /* retake the GIL without a sleep */
        PyEval_RestoreThread(save);
        gil_note_taken();
        if (fs_done(fut_state(f))) {
            rc = 1;
            break;
        }
        /* Ctrl-C; H5, as a blocking Task wait: at exit a pool item or
         * the exiting thread gives up, a daemon thread waits on */
        if (wait_slice_check(st, &abandon, "the wait was abandoned: the "
                             "interpreter is shutting down") < 0) {
            rc = -1;
            break;
        }
    }
    if (pool != NULL) {
        st_pool_leave_blocking(pool);
    }
    if (rc == 0 && fs_done(fut_state(f))) {
        rc = 1;
    }
    return rc;
}

/* ------------------------------------------------ shutdown's wait */

/* Executor.shutdown(wait=True) returns when the executor's dict of
 * futures not yet forgotten (`items`: a run leaves it after its future
 * finished and its callbacks ran) is empty.  It sleeps until then on an
 * event of its own, a node of this list (on the waiting thread's stack);
 * the run that leaves a dict empty sets the event of every node watching
 * that dict.  The list and the dicts are touched only with the GIL, which
 * is what orders a run's removal before a waiter's check. */
typedef struct drain_node {
    struct drain_node *next;
    PyObject *items; /* strong, for the wait */
    st_event_t ev;
} drain_node;

static drain_node *g_drain_nodes; /* GIL */

/* Removes op from items (a KeyError is no error: removed already) and
 * wakes the shutdown waits on items once it is empty.  GIL held; an
 * exception set on entry is kept.  Refs: borrows both. */
static void
items_forget(PyObject *items, PyObject *op)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (PyDict_DelItem(items, op) < 0) {
        if (PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
        }
        else {
            PyErr_WriteUnraisable(op);
        }
    }
    if (g_drain_nodes != NULL && PyDict_GET_SIZE(items) == 0) {
        drain_node *n;
        for (n = g_drain_nodes; n != NULL; n = n->next) {
            if (n->items == items) {
                st_event_set(&n->ev);
            }
        }
    }
    PyErr_SetRaisedException(exc);
}

/* _FutureCore._wait_drained(items): returns when the dict is empty.  The
 * GIL is released while it sleeps, in the rhythm of every blocking wait
 * (py_gil.h: slices, Ctrl-C between them through wait_slice_check; on a
 * pool thread the pool may add a worker).  A dict emptied by anything
 * else than a run (Executor.shutdown's own pops) is seen at the next
 * slice.  Returns None, or NULL with an exception set. */
static PyObject *
fut_wait_drained(PyObject *unused, PyObject *items)
{
    drain_node node, **pp;
    st_pool_t *pool;
    int rc = 0, abandon = -1;
    (void)unused;
    if (!PyDict_Check(items)) {
        PyErr_Format(PyExc_TypeError, "_wait_drained(): items must be a "
                     "dict, not %.100s", Py_TYPE(items)->tp_name);
        return NULL;
    }
    if (PyDict_GET_SIZE(items) == 0) {
        Py_RETURN_NONE;
    }
    node.items = Py_NewRef(items);
    st_event_init(&node.ev);
    node.next = g_drain_nodes;
    g_drain_nodes = &node;
    pool = st_pool_current();
    if (pool != NULL) {
        st_pool_enter_blocking(pool);
    }
    for (;;) {
        PyThreadState *save = PyEval_SaveThread();
        gil_note_released();
        (void)st_event_wait(&node.ev, WAIT_SLICE_NS);
        PyEval_RestoreThread(save);
        gil_note_taken();
        if (PyDict_GET_SIZE(items) == 0) {
            break;
        }
        if (wait_slice_check(g_st, &abandon, "the wait was abandoned: "
                             "the interpreter is shutting down") < 0) {
            rc = -1;
            break;
        }
        /* set by a removal that a later submit undid: sleep again */
        st_event_reset(&node.ev);
    }
    if (pool != NULL) {
        st_pool_leave_blocking(pool);
    }
    for (pp = &g_drain_nodes; *pp != &node; pp = &(*pp)->next) {
    }
    *pp = node.next;
    st_event_destroy(&node.ev);
    Py_DECREF(node.items);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The one optional argument `timeout` of result() and exception(), as
 * the base class's signature takes it: *timeout gets it (borrowed), or
 * None.  Returns 0, or -1 with a TypeError set. */
static int
one_timeout_arg(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                const char *fname, PyObject **timeout)
{
    *timeout = Py_None;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument "
                     "(%zd given)", fname, nargs);
        return -1;
    }
    if (nargs == 1) {
        *timeout = args[0];
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, 0);
        if (PyTuple_GET_SIZE(kwnames) > 1 || nargs == 1
            || !PyUnicode_EqualToUTF8(k, "timeout")) {
            PyErr_Format(PyExc_TypeError, "%s() takes one optional "
                         "argument, timeout", fname);
            return -1;
        }
        *timeout = args[nargs];
    }
    return 0;
}

/* What result() and exception() share: their argument, the wait, and the
 * report of a future that did not finish.  As the base class, the
 * timeout is read only if the future is not done yet, in
 * concurrent.futures' terms (py_args.c's lenient mode; tname: the
 * parameter as messages name it).  Returns 0 if the future FINISHED (the
 * caller reports its outcome), or -1 with an exception set: a bad
 * argument, an interrupted wait, CancelledError or TimeoutError. */
static int
fut_wait_finished(FutObject *f, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames, const char *fname, const char *tname)
{
    PyObject *timeout;
    uint64_t ns;
    int s;
    if (one_timeout_arg(args, nargs, kwnames, fname, &timeout) < 0) {
        return -1;
    }
    s = fut_state(f);
    if (!fs_done(s)) {
        if (parse_timeout_lenient(timeout, tname, &ns) < 0
            || fut_wait(f, ns) < 0) {
            return -1;
        }
        s = fut_state(f);
    }
    if (s == FS_FINISHED) {
        return 0;
    }
    if (s == FS_CANCELLED || s == FS_CANCELLED_AND_NOTIFIED) {
        PyErr_SetNone(g_cancelled_error);
    }
    else {
        PyErr_SetNone(g_timeout_error);
    }
    return -1;
}

/* ------------------------------------------------------------ methods */

static PyObject *
Fut_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    FutObject *f;
    (void)args;
    (void)kwds;
    f = (FutObject *)tp->tp_alloc(tp, 0);
    if (f == NULL) {
        return NULL;
    }
    st_atomic_store(&f->state, FS_PENDING, ST_RELAXED);
    return (PyObject *)f;
}

/* __init__(): no arguments (the base class's __init__ is not run: its
 * fields are these). */
static int
Fut_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    if (PyTuple_GET_SIZE(args) != 0
        || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Future() takes no arguments");
        return -1;
    }
    return 0;
}

static int
Fut_traverse(PyObject *op, visitproc visit, void *arg)
{
    FutObject *f = FUT(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(f->result);
    Py_VISIT(f->exception);
    Py_VISIT(f->callbacks);
    Py_VISIT(f->waiters);
    Py_VISIT(f->cond);
    Py_VISIT(f->fn);
    Py_VISIT(f->args);
    Py_VISIT(f->kwargs);
    Py_VISIT(f->items);
    Py_VISIT(f->release);
    Py_VISIT(f->dest);
    Py_VISIT(f->delivery);
    return 0;
}

static int
Fut_clear(PyObject *op)
{
    FutObject *f = FUT(op);
    Py_CLEAR(f->result);
    Py_CLEAR(f->exception);
    Py_CLEAR(f->callbacks);
    Py_CLEAR(f->waiters);
    Py_CLEAR(f->cond);
    Py_CLEAR(f->fn);
    Py_CLEAR(f->args);
    Py_CLEAR(f->kwargs);
    Py_CLEAR(f->items);
    Py_CLEAR(f->release);
    Py_CLEAR(f->dest);
    Py_CLEAR(f->delivery);
    return 0;
}

static void
Fut_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    FutObject *f = FUT(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, Fut_dealloc)
    (void)Fut_clear(op);
    if (f->ev != NULL) {
        /* nobody waits: a waiter holds a reference */
        st_event_destroy(f->ev);
        PyMem_RawFree(f->ev);
        f->ev = NULL;
    }
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
fut_cancel(PyObject *op, PyObject *unused)
{
    FutObject *f = FUT(op);
    PyObject *held, *fn, *args, *kwargs;
    int s;
    (void)unused;
    if (fut_lock(f, &held) < 0) {
        return NULL;
    }
    s = fut_state(f);
    if (s == FS_RUNNING || s == FS_FINISHED) {
        fut_unlock(held);
        Py_RETURN_FALSE;
    }
    if (s != FS_PENDING) {
        fut_unlock(held);
        Py_RETURN_TRUE;
    }
    st_atomic_store(&f->state, FS_CANCELLED, ST_RELEASE);
    fn = f->fn;
    args = f->args;
    kwargs = f->kwargs;
    f->fn = f->args = f->kwargs = NULL;
    fut_unlock(held);
    Py_XDECREF(fn);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    fut_finish(f);
    Py_RETURN_TRUE;
}

static PyObject *
fut_cancelled(PyObject *op, PyObject *unused)
{
    int s = fut_state(FUT(op));
    (void)unused;
    return PyBool_FromLong(s == FS_CANCELLED
                           || s == FS_CANCELLED_AND_NOTIFIED);
}

static PyObject *
fut_running(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(fut_state(FUT(op)) == FS_RUNNING);
}

static PyObject *
fut_done(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(fs_done(fut_state(FUT(op))));
}

static PyObject *
fut_result(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    FutObject *f = FUT(op);
    if (fut_wait_finished(f, args, nargs, kwnames, "result",
                          "result(): timeout") < 0) {
        return NULL;
    }
    if (f->exception != NULL) {
        if (!PyExceptionInstance_Check(f->exception)) {
            /* set_exception(5): what `raise 5` would say */
            PyErr_SetString(PyExc_TypeError,
                            "exceptions must derive from BaseException");
            return NULL;
        }
        PyErr_SetRaisedException(Py_NewRef(f->exception));
        return NULL;
    }
    return Py_NewRef(f->result != NULL ? f->result : Py_None);
}

static PyObject *
fut_exception(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    FutObject *f = FUT(op);
    if (fut_wait_finished(f, args, nargs, kwnames, "exception",
                          "exception(): timeout") < 0) {
        return NULL;
    }
    return Py_NewRef(f->exception != NULL ? f->exception : Py_None);
}

static PyObject *
fut_add_done_callback(PyObject *op, PyObject *fn)
{
    FutObject *f = FUT(op);
    PyObject *held, *fresh = NULL, *r;
    if (f->callbacks == NULL) {
        /* made before the state is read (see Locking) */
        fresh = PyList_New(0);
        if (fresh == NULL) {
            return NULL;
        }
    }
    if (fut_lock(f, &held) < 0) {
        Py_XDECREF(fresh);
        return NULL;
    }
    if (!fs_done(fut_state(f))) {
        int rc;
        if (f->callbacks == NULL) {
            f->callbacks = fresh;
            fresh = NULL;
        }
        rc = PyList_Append(f->callbacks, fn);
        fut_unlock(held);
        Py_XDECREF(fresh);
        if (rc < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    fut_unlock(held);
    Py_XDECREF(fresh);
    r = PyObject_CallOneArg(fn, op);
    if (r == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL; /* a BaseException goes on, as in the base */
        }
        {
            /* LOGGER.exception() reads sys.exc_info(): the exception as
             * the handled one for the call, the caller's put back */
            PyObject *exc = PyErr_GetRaisedException();
            PyObject *prev = PyErr_GetHandledException();
            PyObject *lr, *msg;
            PyErr_SetHandledException(exc);
            msg = PyUnicode_FromString("exception calling callback for %r");
            lr = msg == NULL ? NULL
                             : call_method(g_logger, NAME_EXCEPTION, msg, op,
                                           2);
            Py_XDECREF(msg);
            PyErr_SetHandledException(prev);
            Py_XDECREF(prev);
            Py_DECREF(exc);
            if (lr == NULL) {
                return NULL;
            }
            Py_DECREF(lr);
        }
        Py_RETURN_NONE;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* _add_delivery(dest, delivery) -> bool: asyncio's wrap_future callback
 * as two fields (no callback object); False if done already or one is
 * there (the caller adds an ordinary callback). */
static PyObject *
fut_add_delivery(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    FutObject *f = FUT(op);
    PyObject *held;
    int stored = 0;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "_add_delivery(dest, delivery): two arguments");
        return NULL;
    }
    if (fut_lock(f, &held) < 0) {
        return NULL;
    }
    if (!fs_done(fut_state(f)) && f->dest == NULL) {
        f->dest = Py_NewRef(args[0]);
        f->delivery = Py_NewRef(args[1]);
        stored = 1;
    }
    fut_unlock(held);
    return PyBool_FromLong(stored);
}

static PyObject *
fut_set_running_or_notify_cancel(PyObject *op, PyObject *unused)
{
    FutObject *f = FUT(op);
    PyObject *held;
    int s, rc;
    (void)unused;
    if (fut_lock(f, &held) < 0) {
        return NULL;
    }
    s = fut_start_locked(f, &rc);
    fut_unlock(held);
    if (rc < 0) {
        return NULL;
    }
    if (s == FS_PENDING) {
        Py_RETURN_TRUE;
    }
    if (s == FS_CANCELLED) {
        Py_RETURN_FALSE;
    }
    PyErr_SetString(PyExc_RuntimeError, "Future in unexpected state");
    return NULL;
}

static PyObject *
fut_set_result(PyObject *op, PyObject *value)
{
    if (fut_set(FUT(op), value, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
fut_set_exception(PyObject *op, PyObject *value)
{
    if (fut_set(FUT(op), value == Py_None ? NULL : value, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _prepare(fn, args, kwargs, items, release): the call a worker will make
 * (Executor.submit); items: the executor's dict this future leaves after
 * the run, release: called with no argument after it (or None each). */
static PyObject *
fut_prepare(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    FutObject *f = FUT(op);
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "_prepare() takes 5 arguments");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "_prepare(): fn must be callable, "
                     "not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (!PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_prepare(): args must be a tuple");
        return NULL;
    }
    if (args[2] != Py_None && !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "_prepare(): kwargs must be a dict or None");
        return NULL;
    }
    if (args[3] != Py_None && !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "_prepare(): items must be a dict or None");
        return NULL;
    }
    if (args[4] != Py_None && !PyCallable_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "_prepare(): release must be callable or None");
        return NULL;
    }
    if (f->fn != NULL || fut_state(f) != FS_PENDING) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_prepare(): the future has a call already");
        return NULL;
    }
    f->fn = Py_NewRef(args[0]);
    f->args = Py_NewRef(args[1]);
    f->kwargs = (args[2] != Py_None && PyDict_GET_SIZE(args[2]) > 0)
                    ? Py_NewRef(args[2]) : NULL;
    Py_XSETREF(f->items, args[3] == Py_None ? NULL : Py_NewRef(args[3]));
    Py_XSETREF(f->release, args[4] == Py_None ? NULL : Py_NewRef(args[4]));
    Py_RETURN_NONE;
}

/* _run_queued(): the pool work item.  Runs the prepared call into the
 * future unless it was cancelled (then notifies wait()), leaves the
 * executor's dict, calls release.  Returns None, or NULL with an
 * exception set (release failed, or nothing was prepared). */
static PyObject *
fut_run_queued(PyObject *op, PyObject *unused)
{
    FutObject *f = FUT(op);
    PyObject *held, *fn, *args, *kwargs, *r, *items, *release;
    int s, rc = 0;
    (void)unused;
    if (fut_lock(f, &held) < 0) {
        return NULL;
    }
    fn = f->fn;
    args = f->args;
    kwargs = f->kwargs;
    if (fut_state(f) == FS_PENDING && fn == NULL) {
        fut_unlock(held);
        PyErr_SetString(PyExc_RuntimeError,
                        "_run_queued(): nothing to run");
        return NULL;
    }
    f->fn = f->args = f->kwargs = NULL;
    s = fut_start_locked(f, &rc);
    fut_unlock(held);
    if (rc < 0) {
        PyErr_WriteUnraisable(op);
    }
    if (s == FS_PENDING) {
        r = PyObject_Call(fn, args, kwargs);
        Py_DECREF(fn);
        Py_DECREF(args);
        Py_XDECREF(kwargs);
        if (r != NULL) {
            rc = fut_set(f, r, 0);
            Py_DECREF(r);
        }
        else { /* any BaseException, as ThreadPoolExecutor */
            PyObject *exc = PyErr_GetRaisedException();
            rc = fut_set(f, exc, 1);
            Py_DECREF(exc);
        }
        if (rc < 0) { /* completed by somebody else meanwhile */
            PyErr_WriteUnraisable(op);
        }
    }
    else {
        Py_XDECREF(fn);
        Py_XDECREF(args);
        Py_XDECREF(kwargs);
    }
    items = f->items;
    release = f->release;
    f->items = f->release = NULL;
    if (items != NULL) {
        items_forget(items, op);
        Py_DECREF(items);
    }
    if (release != NULL) {
        r = PyObject_CallNoArgs(release);
        Py_DECREF(release);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

/* On a worker, GIL held (a domain item): the queued future's run; drops
 * the reference the queue held. */
static void
fut_work_run(st_work_t *w)
{
    FutObject *f = st_container_of(w, FutObject, work);
    PyObject *r = fut_run_queued((PyObject *)f, NULL);
    if (r == NULL) {
        write_unraisable((PyObject *)f); /* quiet if exiting (H5) */
    }
    Py_XDECREF(r);
    Py_DECREF(f);
}

/* Hands f's prepared call to the pool's global queue (as
 * unsafe_queue_user_work_item: no context flows).  0, or -1 with an
 * exception set. */
static int
fut_queue(FutObject *f)
{
    if (f->queued) {
        PyErr_SetString(PyExc_RuntimeError, "_queue(): queued already");
        return -1;
    }
    if (f->fn == NULL && fut_state(f) == FS_PENDING) {
        /* (a cancelled one is queued all the same: its run notifies
         * wait() and calls release) */
        PyErr_SetString(PyExc_RuntimeError, "_queue(): nothing to run");
        return -1;
    }
    f->queued = 1;
    f->work.next = NULL;
    f->work.run = fut_work_run;
    f->work.flags = ST_WORK_DOMAIN;
    Py_INCREF(f); /* the queue's, dropped by fut_work_run */
    if (pool_submit_global(g_st, &f->work) < 0) {
        f->queued = 0;
        Py_DECREF(f);
        return -1;
    }
    return 0;
}

static PyObject *
fut_queue_method(PyObject *op, PyObject *unused)
{
    (void)unused;
    if (fut_queue(FUT(op)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _submit(fn, args, kwargs, items): _prepare without release, then
 * items[self] = None and _queue(), in one call (Executor.submit without
 * max_workers). */
static PyObject *
fut_submit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *pargs[5], *r;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "_submit() takes 4 arguments");
        return NULL;
    }
    if (!PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "_submit(): items must be a dict");
        return NULL;
    }
    pargs[0] = args[0];
    pargs[1] = args[1];
    pargs[2] = args[2];
    pargs[3] = args[3];
    pargs[4] = Py_None;
    r = fut_prepare(op, pargs, 5);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    if (PyDict_SetItem(args[3], op, Py_None) < 0) {
        return NULL;
    }
    if (fut_queue(FUT(op)) < 0) {
        items_forget(args[3], op); /* keeps the error */
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ getters */

static PyObject *
fut_get_state(PyObject *op, void *c)
{
    (void)c;
    return Py_NewRef(g_fs_str[fut_state(FUT(op))]);
}

static PyObject *
fut_get_result(PyObject *op, void *c)
{
    PyObject *r = FUT(op)->result;
    (void)c;
    return Py_NewRef(r != NULL ? r : Py_None);
}

static PyObject *
fut_get_exception(PyObject *op, void *c)
{
    PyObject *r = FUT(op)->exception;
    (void)c;
    return Py_NewRef(r != NULL ? r : Py_None);
}

static PyObject *
fut_get_condition(PyObject *op, void *c)
{
    FutObject *f = FUT(op);
    (void)c;
    if (f->cond == NULL) {
        PyObject *lock = PyObject_CallNoArgs(g_allocate_lock);
        if (lock == NULL) {
            return NULL;
        }
        if (f->cond == NULL) { /* the call may have let another thread in */
            f->cond = lock;
        }
        else {
            Py_DECREF(lock);
        }
    }
    return Py_NewRef(f->cond);
}

static PyObject *
lazy_list(PyObject **slot)
{
    if (*slot == NULL) {
        PyObject *l = PyList_New(0);
        if (l == NULL) {
            return NULL;
        }
        if (*slot == NULL) {
            *slot = l;
        }
        else {
            Py_DECREF(l);
        }
    }
    return Py_NewRef(*slot);
}

static PyObject *
fut_get_waiters(PyObject *op, void *c)
{
    (void)c;
    return lazy_list(&FUT(op)->waiters);
}

static PyObject *
fut_get_callbacks(PyObject *op, void *c)
{
    (void)c;
    return lazy_list(&FUT(op)->callbacks);
}

static PyMethodDef Fut_methods[] = {
    {"cancel", fut_cancel, METH_NOARGS,
     PyDoc_STR("cancel($self, /)\n--\n\nCancel if not running or done; "
               "True if cancelled.")},
    {"cancelled", fut_cancelled, METH_NOARGS,
     PyDoc_STR("cancelled($self, /)\n--\n\nTrue if cancelled.")},
    {"running", fut_running, METH_NOARGS,
     PyDoc_STR("running($self, /)\n--\n\nTrue while the call runs.")},
    {"done", fut_done, METH_NOARGS,
     PyDoc_STR("done($self, /)\n--\n\nTrue if cancelled or finished.")},
    {"result", (PyCFunction)(void (*)(void))fut_result,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("result($self, /, timeout=None)\n--\n\n"
               "The call's value; raises its exception, CancelledError "
               "or TimeoutError.")},
    {"exception", (PyCFunction)(void (*)(void))fut_exception,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("exception($self, /, timeout=None)\n--\n\n"
               "The call's exception or None; CancelledError or "
               "TimeoutError.")},
    {"add_done_callback", fut_add_done_callback, METH_O,
     PyDoc_STR("add_done_callback($self, fn, /)\n--\n\n"
               "fn(future) once done (now if done already).")},
    {"set_running_or_notify_cancel", fut_set_running_or_notify_cancel,
     METH_NOARGS,
     PyDoc_STR("set_running_or_notify_cancel($self, /)\n--\n\n"
               "As concurrent.futures.Future's.")},
    {"set_result", fut_set_result, METH_O,
     PyDoc_STR("set_result($self, result, /)\n--\n\n"
               "As concurrent.futures.Future's.")},
    {"set_exception", fut_set_exception, METH_O,
     PyDoc_STR("set_exception($self, exception, /)\n--\n\n"
               "As concurrent.futures.Future's.")},
    {"_wait_drained", fut_wait_drained, METH_O | METH_STATIC,
     PyDoc_STR("_wait_drained(items, /)\n--\n\n"
               "Sleep until the executor's dict of futures is empty "
               "(shutdown(wait=True)).")},
    {"_add_delivery", (PyCFunction)(void (*)(void))fut_add_delivery,
     METH_FASTCALL,
     PyDoc_STR("_add_delivery($self, dest, delivery, /)\n--\n\n"
               "asyncio's batched callback; False if not stored.")},
    {"_prepare", (PyCFunction)(void (*)(void))fut_prepare, METH_FASTCALL,
     PyDoc_STR("_prepare($self, fn, args, kwargs, items, release, /)\n--\n"
               "\nThe call a pool worker will make (Executor.submit).")},
    {"_queue", fut_queue_method, METH_NOARGS,
     PyDoc_STR("_queue($self, /)\n--\n\n"
               "Hand the prepared call to the pool (once).")},
    {"_submit", (PyCFunction)(void (*)(void))fut_submit, METH_FASTCALL,
     PyDoc_STR("_submit($self, fn, args, kwargs, items, /)\n--\n\n"
               "_prepare, items[self] = None and _queue in one call.")},
    {"_run_queued", fut_run_queued, METH_NOARGS,
     PyDoc_STR("_run_queued($self, /)\n--\n\n"
               "The pool work item: run the prepared call into the "
               "future.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Fut_getset[] = {
    {"_state", fut_get_state, NULL, PyDoc_STR("the base class's state"),
     NULL},
    {"_result", fut_get_result, NULL, NULL, NULL},
    {"_exception", fut_get_exception, NULL, NULL, NULL},
    {"_condition", fut_get_condition, NULL,
     PyDoc_STR("a plain lock, made on demand (wait/as_completed)"), NULL},
    {"_waiters", fut_get_waiters, NULL, NULL, NULL},
    {"_done_callbacks", fut_get_callbacks, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Fut_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "The C core of sharptask.Executor's futures (see _executor.py).")},
    {Py_tp_new, Fut_new},
    {Py_tp_init, Fut_init},
    {Py_tp_traverse, Fut_traverse},
    {Py_tp_clear, Fut_clear},
    {Py_tp_dealloc, Fut_dealloc},
    {Py_tp_methods, Fut_methods},
    {Py_tp_getset, Fut_getset},
    {0, NULL},
};

static PyType_Spec Fut_spec = {
    .name = "sharptask._native._FutureCore",
    .basicsize = sizeof(FutObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = Fut_slots,
};

int
executor_module_exec(PyObject *mod, st_state *st)
{
    PyObject *base, *thr, *tp;
    int i;
    (void)st;
    if (g_cancelled_error == NULL) {
        base = PyImport_ImportModule("concurrent.futures._base");
        if (base == NULL) {
            return -1;
        }
        for (i = 0; i < FS_COUNT; i++) {
            g_fs_str[i] = PyObject_GetAttrString(base, fs_names[i]);
            if (g_fs_str[i] == NULL || !PyUnicode_Check(g_fs_str[i])) {
                Py_DECREF(base);
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_ImportError,
                                    "concurrent.futures._base: no state");
                }
                return -1;
            }
        }
        g_timeout_error = PyObject_GetAttrString(base, "TimeoutError");
        g_invalid_state_error = PyObject_GetAttrString(base,
                                                       "InvalidStateError");
        g_logger = PyObject_GetAttrString(base, "LOGGER");
        g_cancelled_error = PyObject_GetAttrString(base, "CancelledError");
        Py_DECREF(base);
        if (g_timeout_error == NULL || g_invalid_state_error == NULL
            || g_logger == NULL || g_cancelled_error == NULL) {
            return -1;
        }
        thr = PyImport_ImportModule("_thread");
        if (thr == NULL) {
            return -1;
        }
        g_allocate_lock = PyObject_GetAttrString(thr, "allocate_lock");
        Py_DECREF(thr);
        if (g_allocate_lock == NULL) {
            return -1;
        }
        {
            PyObject *lock = PyObject_CallNoArgs(g_allocate_lock);
            if (lock == NULL) {
                return -1;
            }
            g_lock_acquire = PyObject_GetAttrString(
                (PyObject *)Py_TYPE(lock), "acquire");
            g_lock_release = PyObject_GetAttrString(
                (PyObject *)Py_TYPE(lock), "release");
            Py_DECREF(lock);
            if (g_lock_acquire == NULL || g_lock_release == NULL) {
                return -1;
            }
        }
        for (i = 0; i < NAME_COUNT; i++) {
            g_name[i] = PyUnicode_InternFromString(g_name_text[i]);
            if (g_name[i] == NULL) {
                return -1;
            }
        }
    }
    tp = PyType_FromModuleAndSpec(mod, &Fut_spec, NULL);
    if (tp == NULL) {
        return -1;
    }
    i = PyModule_AddType(mod, (PyTypeObject *)tp);
    Py_DECREF(tp);
    return i;
}
