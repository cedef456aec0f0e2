/* py_cancel.c - CancellationTokenSource and CancellationToken (SPEC K1);
 * CancellationTokenRegistration, registering callbacks and internal
 * actions (K2) and the native cancellation of the other waiting APIs (K3)
 * are py_cancel_reg.c; py_cancel.h holds the layouts both share.
 *
 *     class CancellationTokenSource:          # like .NET's
 *         def __init__(self, delay=None, time_provider=None)
 *         token: CancellationToken            # ObjectDisposedError once
 *         is_cancellation_requested: bool     #   disposed; this one works
 *         def cancel(self, throw_on_first_exception=False)
 *         def cancel_async(self) -> Task
 *         def cancel_after(self, delay)
 *         def try_reset(self) -> bool
 *         def dispose(self); __enter__ / __exit__
 *         @staticmethod
 *         def create_linked_token_source(*tokens) -> CancellationTokenSource
 *
 *     class CancellationToken:
 *         none: CancellationToken             # can never be canceled
 *         def __init__(self, canceled=False)
 *         is_cancellation_requested: bool; can_be_canceled: bool
 *         def register(self, callback, state=<absent>)
 *             -> CancellationTokenRegistration   # callback() or (state)
 *         def unsafe_register(self, callback, state=<absent>)
 *         def throw_if_cancellation_requested(self)
 *         __eq__ / __hash__                   # equal when same source
 *
 *     class CancellationTokenRegistration:
 *         token: CancellationToken
 *         def unregister(self) -> bool        # never waits
 *         def dispose(self)                   # waits for a running callback
 *         __enter__ / __exit__                #   unless on its own thread
 *
 * A source embeds the core st_cancel_t (csrc/core/st_cancel.h): the state
 * word and the LIFO list of registrations.  A registration object embeds
 * the core node; while it is linked, the source's list holds one strong
 * reference to it, dropped by whoever takes it off the list (the canceller
 * after running it, a successful unregister, try_reset or dispose).  cancel
 * drives the core's take loop itself so that it can stop at the first
 * exception (throw_on_first_exception) or collect them all in execution
 * (LIFO) order into one AggregateError.
 *
 * Internal registrations (K3) carry a C action instead of a Python
 * callback: Task.run and continue_with cancel their not-yet-started task,
 * Task.delay disarms its timer, a linked source cancels its child.  Such a
 * registration may also "watch" a task: a SIGNAL node registered on that
 * task unregisters it the moment the task completes, so a long-lived
 * source never accumulates registrations of finished operations.
 *
 * Threads.  Every method runs with the GIL; the core's mutex protects the
 * list against the other threads that drop the GIL in between.  A
 * registration's dispose() that must wait for a callback running on
 * another thread waits with the GIL released, in slices that answer
 * Ctrl-C.  Delays and CancelAfter timers fire on the timer thread, which
 * only queues a work item; the pool runs it with the GIL.
 */
#include "binding.h"
#include "py_builder.h"
#include "py_task.h"
#include "py_cancel.h"
#include "py_args.h"
#include "py_cancel_reg.h"
#include "py_errors.h"
#include "py_pool.h"
#include "py_state.h"

#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef for __weaklistoffset__ (3.11) */

#include "st_cancel.h" /* the core of a source */
#include "st_error.h"  /* ST_E* codes */
#include "st_list.h"   /* st_container_of */
#include "st_thread.h" /* st_now_ns */


/* ------------------------------------------------------------ helpers */

static int cts_notify(st_state *st, CTSObject *self, int throw_first);
static PyObject *cts_on_timer(PyObject *op, PyObject *state);

/* The time provider's timer callback, bound to its source: not a method,
 * so that Python code cannot reach it by name (issue 9 item 23). */
static PyMethodDef cts_on_timer_def = {
    "on_timer", cts_on_timer, METH_O,
    PyDoc_STR("on_timer(state, /)\n--\n\n"
              "Cancels the source: its time provider's timer fired.")};

static PyObject *
raise_disposed(st_state *st, const char *what)
{
    PyErr_Format(st->ObjectDisposedError,
                 "%s: the CancellationTokenSource has been disposed", what);
    return NULL;
}

/* -------------------------------------------------------- the source */

/* Runs the callbacks of self, whose cancellation this thread requested
 * (GIL held).  throw_first: stop at the first exception and raise it as
 * it is, the rest never run; else run them all and raise one
 * AggregateError of their exceptions in execution (LIFO) order.  A
 * BaseException that is not an Exception (KeyboardInterrupt) does not stop
 * the others; it is raised at the end instead of the aggregate. */
static int
cts_notify(st_state *st, CTSObject *self, int throw_first)
{
    PyObject *excs = NULL, *base = NULL;
    st_cancel_reg_t *node;
    int rc = 0;

    Py_INCREF(self); /* a callback may drop the last other reference */
    while ((node = st_cancel_take(&self->cts_core)) != NULL) {
        RegObject *r = st_container_of(node, RegObject, reg_node);
        PyObject *exc;
        if (reg_invoke(st, r) == 0) {
            Py_DECREF(r); /* the list's reference */
            continue;
        }
        exc = PyErr_GetRaisedException(); /* its traceback attached */
        Py_DECREF(r); /* the list's reference */
        if (exc == NULL) {
            continue; /* failed without an exception: nothing to report */
        }
        if (throw_first) {
            release_chain(st_cancel_abandon(&self->cts_core));
            PyErr_SetRaisedException(exc);
            rc = -1;
            goto done;
        }
        if (!PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception)) {
            if (base == NULL) {
                base = exc;
            }
            else {
                Py_DECREF(exc);
            }
            continue;
        }
        if (excs == NULL && (excs = PyList_New(0)) == NULL) {
            PyErr_Clear(); /* keep running the others; report below */
        }
        if (excs != NULL && PyList_Append(excs, exc) < 0) {
            PyErr_Clear();
        }
        Py_DECREF(exc);
    }
    if (base != NULL) {
        PyErr_SetRaisedException(base);
        base = NULL;
        rc = -1;
    }
    else if (excs != NULL && PyList_GET_SIZE(excs) > 0) {
        PyObject *agg = make_aggregate(st, excs);
        if (agg != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(agg), agg);
            Py_DECREF(agg);
        }
        rc = -1;
    }
done:
    Py_XDECREF(excs);
    Py_XDECREF(base);
    Py_DECREF(self);
    return rc;
}

/* ---- CancelAfter on the timer thread */

static void
cts_timer_work(st_work_t *w)
{
    cts_timer *ct = st_container_of(w, cts_timer, work);
    CTSObject *self = ct->cts;

    if (!ct->stale && self->cts_timer == ct) {
        self->cts_timer = NULL;
        /* 5.10: the timer cancels without the disposed check and with
         * throw_on_first_exception=False; nobody can catch: report */
        if (st_cancel_request(&self->cts_core)
            && cts_notify(g_st, self, 0) < 0) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
    }
    PyMem_Free(ct);
    Py_DECREF(self); /* the timer's reference */
}

static void
cts_timer_fire(st_timer_entry_t *e)
{
    /* timer thread, no GIL: only hand the node to the pool */
    cts_timer *ct = st_container_of(e, cts_timer, entry);
    st_pool_t *pool = g_st != NULL ? pool_peek(g_st) : NULL;
    ct->work.run = cts_timer_work;
    ct->work.flags = ST_WORK_DOMAIN;
    if (pool == NULL || st_pool_submit(pool, &ct->work) != 0) {
        /* shutting down: leak the node and its reference */
    }
}

/* Disarms the native CancelAfter timer, if armed (GIL held). */
static void
cts_timer_disarm(st_state *st, CTSObject *self)
{
    cts_timer *ct = self->cts_timer;
    if (ct == NULL) {
        return;
    }
    self->cts_timer = NULL;
    /* after fork() the parent's timer is forgotten: an entry armed there
     * never fires, and must not be looked for in the child's timer */
    if (ct->timer != st->timer
        || st_timer_cancel(ct->timer, &ct->entry) == 0) {
        Py_DECREF(ct->cts); /* it will never fire: ours to free */
        PyMem_Free(ct);
    }
    else {
        ct->stale = 1; /* firing now: its work item frees it */
    }
}

/* Disposes the time provider's timer, if any (GIL held).  -1 on error. */
static int
cts_ptimer_dispose(CTSObject *self)
{
    PyObject *pt = self->cts_ptimer, *r;
    if (pt == NULL) {
        return 0;
    }
    self->cts_ptimer = NULL;
    r = PyObject_CallMethod(pt, "dispose", NULL);
    Py_DECREF(pt);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Arms (or re-arms) CancelAfter: delay is a parsed timeout. */
static int
cts_arm(st_state *st, CTSObject *self, PyObject *delay, uint64_t ns,
        int infinite)
{
    st_timer_t *timer;
    cts_timer *ct;
    int rc;

    if (self->cts_provider != NULL) {
        /* P6a: the provider's timer (TimeProvider.CreateTimer) */
        PyObject *r;
        if (self->cts_ptimer == NULL) {
            PyObject *cb;
            if (infinite) {
                return 0;
            }
            cb = PyCFunction_New(&cts_on_timer_def, (PyObject *)self);
            if (cb == NULL) {
                return -1;
            }
            r = PyObject_CallMethod(self->cts_provider, "create_timer",
                                    "OOOi", cb, Py_None, delay, -1);
            Py_DECREF(cb);
            if (r == NULL) {
                return -1;
            }
            self->cts_ptimer = r;
            return 0;
        }
        r = PyObject_CallMethod(self->cts_ptimer, "change", "Oi",
                                infinite ? Py_None : delay, -1);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    cts_timer_disarm(st, self); /* each call re-arms: the last one wins */
    if (infinite) {
        return 0;
    }
    if (get_pool(st) == NULL || (timer = get_timer(st)) == NULL) {
        return -1;
    }
    ct = PyMem_Malloc(sizeof(*ct));
    if (ct == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    ct->entry.fire = cts_timer_fire;
    ct->entry.armed = 0;
    ct->cts = (CTSObject *)Py_NewRef(self);
    ct->timer = timer;
    ct->stale = 0;
    rc = st_timer_add(timer, &ct->entry, st_now_ns() + ns);
    if (rc != 0) {
        Py_DECREF(ct->cts);
        PyMem_Free(ct);
        return st_raise_from_code(st, rc);
    }
    self->cts_timer = ct;
    return 0;
}

/* ---- linked sources */

/* A parent of a linked source fired: cancel the child (5.14), through
 * the non-throwing path; its callbacks' failures surface from the
 * parent's cancel as an AggregateError (5.4, CancellationTokenLinking). */
static int
link_fired(PyObject *target, PyObject *token, void *carg)
{
    CTSObject *child = CTSObject_CAST(target);
    (void)token;
    (void)carg;
    if (!st_cancel_request(&child->cts_core)) {
        return 0;
    }
    cts_timer_disarm(g_st, child);
    if (cts_ptimer_dispose(child) < 0) {
        PyErr_WriteUnraisable((PyObject *)child);
    }
    return cts_notify(g_st, child, 0);
}

/* ------------------------------------------ CancellationTokenSource */

static CTSObject *
cts_alloc(st_state *st, PyTypeObject *tp)
{
    CTSObject *self = PyObject_GC_New(CTSObject, tp);
    if (self == NULL) {
        return NULL;
    }
    st_cancel_init(&self->cts_core);
    self->cts_disposed = 0;
    self->cts_shared = 0;
    self->cts_async_queued = 0;
    self->cts_timer = NULL;
    self->cts_links = NULL;
    self->cts_provider = NULL;
    self->cts_ptimer = NULL;
    self->cts_weakreflist = NULL;
    (void)st;
    PyObject_GC_Track(self);
    return self;
}

static PyObject *
CTS_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"delay", "time_provider", NULL};
    st_state *st = g_st;
    PyObject *delay = Py_None, *provider = Py_None;
    CTSObject *self;
    uint64_t ns = 0;
    int infinite = 1;

    if (!PyArg_ParseTupleAndKeywords(args, kwds,
                                     "|OO:CancellationTokenSource", kwlist,
                                     &delay, &provider)) {
        return NULL;
    }
    if (parse_timeout(delay, "delay", &ns, &infinite) < 0) {
        return NULL;
    }
    if (provider != Py_None
        && !PyObject_HasAttrString(provider, "create_timer")) {
        /* H2: anything with create_timer() (else an AttributeError at
         * the first cancel_after) */
        PyErr_Format(PyExc_TypeError, "time_provider must be a "
                     "TimeProvider or None, not %.100s",
                     Py_TYPE(provider)->tp_name);
        return NULL;
    }
    self = cts_alloc(st, tp);
    if (self == NULL) {
        return NULL;
    }
    if (provider != Py_None) {
        self->cts_provider = Py_NewRef(provider);
    }
    if (infinite) {
        return (PyObject *)self;
    }
    if (ns == 0) {
        /* 5.10: (0) is canceled at once, with no timer */
        (void)st_cancel_request(&self->cts_core);
        if (cts_notify(st, self, 0) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        return (PyObject *)self;
    }
    if (cts_arm(st, self, delay, ns, 0) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

typedef struct visit_args {
    visitproc visit;
    void *arg;
} visit_args;

static int
visit_reg(st_cancel_reg_t *node, void *arg)
{
    visit_args *va = arg;
    return va->visit((PyObject *)st_container_of(node, RegObject, reg_node),
                     va->arg);
}

static int
CTS_traverse(PyObject *op, visitproc visit, void *arg)
{
    CTSObject *self = CTSObject_CAST(op);
    visit_args va;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->cts_links);
    Py_VISIT(self->cts_provider);
    Py_VISIT(self->cts_ptimer);
    /* the list's references to the registrations (under the core's
     * mutex: the visitor only reports pointers) */
    va.visit = visit;
    va.arg = arg;
    return st_cancel_foreach(&self->cts_core, visit_reg, &va);
}

static int
CTS_clear(PyObject *op)
{
    CTSObject *self = CTSObject_CAST(op);
    st_cancel_reg_t *dropped;
    (void)st_cancel_close(&self->cts_core, &dropped);
    release_chain(dropped);
    Py_CLEAR(self->cts_links);
    Py_CLEAR(self->cts_provider);
    Py_CLEAR(self->cts_ptimer);
    return 0;
}

static void
CTS_dealloc(PyObject *op)
{
    CTSObject *self = CTSObject_CAST(op);
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): registrations (callbacks, states), links, a
     * time provider: anything, another source included */
    Py_TRASHCAN_BEGIN(op, CTS_dealloc)
    if (self->cts_weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    (void)CTS_clear(op);
    if (st_cancel_state(&self->cts_core) == ST_CANCEL_NOTIFYING) {
        /* a canceller holds a reference while it runs, so this one is
         * gone (a cancel_async work item dropped at shutdown): finish for
         * it, dropping what it never ran */
        release_chain(st_cancel_abandon(&self->cts_core));
    }
    /* an armed timer holds a reference, so none is armed here */
    st_cancel_destroy(&self->cts_core);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
cts_token_get(PyObject *op, void *closure)
{
    CTSObject *self = CTSObject_CAST(op);
    (void)closure;
    if (self->cts_disposed) {
        return raise_disposed(g_st, "token");
    }
    return token_new(g_st, self);
}

static PyObject *
cts_requested_get(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(
        st_cancel_is_requested(&CTSObject_CAST(op)->cts_core));
}

static PyObject *
cts_count_get(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(st_cancel_count(&CTSObject_CAST(op)->cts_core));
}

static PyObject *
cts_cancel(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"throw_on_first_exception", NULL};
    st_state *st = g_st;
    CTSObject *self = CTSObject_CAST(op);
    int throw_first = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:cancel", kwlist,
                                     &throw_first)) {
        return NULL;
    }
    if (self->cts_disposed) {
        return raise_disposed(st, "cancel()");
    }
    if (!st_cancel_request(&self->cts_core)) {
        Py_RETURN_NONE; /* 5.1: another caller runs (or ran) them */
    }
    /* 5.2: the CancelAfter timer goes at the transition */
    cts_timer_disarm(st, self);
    if (cts_ptimer_dispose(self) < 0) {
        PyErr_WriteUnraisable(op);
    }
    if (cts_notify(st, self, throw_first) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* cancel_async's pool work: runs the callbacks into the promise.  Only
 * the canceller (the caller that won st_cancel_request) may drive the
 * take loop, so this is not a method: cancel_async binds it to the
 * source (notify_into_def) for the one work item it queues, and the flag
 * makes a second call (or any other) an error, never a broken core
 * invariant (issue 9 item 23). */
static PyObject *
cts_notify_into(PyObject *op, PyObject *promise)
{
    st_state *st = g_st;
    CTSObject *self = CTSObject_CAST(op);
    TaskObject *p = (TaskObject *)promise;

    if (!Task_Check(st, promise)) {
        PyErr_Format(PyExc_TypeError, "notify_into(): promise must be a "
                     "Task, not %.100s", Py_TYPE(promise)->tp_name);
        return NULL;
    }
    if (!self->cts_async_queued) {
        PyErr_SetString(st->InvalidOperationError,
                        "notify_into(): no cancel_async of this source is "
                        "waiting to run its callbacks");
        return NULL;
    }
    self->cts_async_queued = 0;
    if (cts_notify(st, self, 0) == 0) {
        task_try_complete(p, ST_STATUS_RAN_TO_COMPLETION, Py_None, NULL);
    }
    else {
        PyObject *value = PyErr_GetRaisedException(), *excs = NULL;
        if (value != NULL
            && PyObject_TypeCheck(value,
                                  (PyTypeObject *)st->AggregateError)) {
            PyObject *inner = PyObject_GetAttrString(value, "exceptions");
            excs = inner != NULL ? PySequence_Tuple(inner) : NULL;
            Py_XDECREF(inner);
        }
        else if (value != NULL) {
            excs = PyTuple_Pack(1, value);
        }
        if (excs == NULL) {
            PyErr_Clear();
            excs = PyTuple_Pack(1, PyExc_MemoryError);
        }
        if (excs != NULL) {
            task_try_complete(p, ST_STATUS_FAULTED, excs, NULL);
        }
        Py_XDECREF(excs);
        Py_XDECREF(value);
    }
    if (pending_exc_restore() < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef notify_into_def = {
    "notify_into", cts_notify_into, METH_O,
    PyDoc_STR("notify_into(promise, /)\n--\n\n"
              "cancel_async's pool work: run the callbacks, then complete "
              "promise.")};

static PyObject *
cts_cancel_async(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    CTSObject *self = CTSObject_CAST(op);
    PyObject *promise, *fn, *args, *action;
    int rc;

    if (self->cts_disposed) {
        /* 5.12: a faulted task, not an exception */
        PyObject *exc, *excs, *t;
        exc = PyObject_CallFunction(
            st->ObjectDisposedError, "s",
            "cancel_async(): the CancellationTokenSource has been disposed");
        if (exc == NULL) {
            return NULL;
        }
        excs = PyTuple_Pack(1, exc);
        Py_DECREF(exc);
        if (excs == NULL) {
            return NULL;
        }
        t = task_new_faulted(st, excs);
        Py_DECREF(excs);
        return t;
    }
    if (!st_cancel_request(&self->cts_core)) {
        return Py_NewRef(st->cached[0]); /* 5.13 */
    }
    cts_timer_disarm(st, self);
    if (cts_ptimer_dispose(self) < 0) {
        PyErr_WriteUnraisable(op);
    }
    if (st_cancel_count(&self->cts_core) == 0) {
        if (cts_notify(st, self, 0) < 0) { /* none: just completes it */
            return NULL;
        }
        return Py_NewRef(st->cached[0]);
    }
    /* 5.13: requested now; the callbacks run on one pool work item */
    promise = task_new_promise(st, NULL, 0);
    if (promise == NULL) {
        return NULL;
    }
    self->cts_async_queued = 1; /* this thread won the request */
    fn = PyCFunction_New(&notify_into_def, op);
    args = fn != NULL ? PyTuple_Pack(1, promise) : NULL;
    action = args != NULL ? action_new(st, fn, args, NULL) : NULL;
    Py_XDECREF(fn);
    Py_XDECREF(args);
    rc = action != NULL ? schedule_action(st, NULL, action) : -1;
    Py_XDECREF(action);
    if (rc < 0) {
        /* no pool (shutting down): run them here rather than never */
        PyObject *r;
        PyErr_Clear();
        r = cts_notify_into(op, promise);
        Py_XDECREF(r);
        if (r == NULL) {
            Py_DECREF(promise);
            return NULL;
        }
    }
    return promise;
}

static PyObject *
cts_cancel_after(PyObject *op, PyObject *delay)
{
    st_state *st = g_st;
    CTSObject *self = CTSObject_CAST(op);
    uint64_t ns;
    int infinite;

    if (self->cts_disposed) {
        return raise_disposed(st, "cancel_after()");
    }
    if (parse_timeout(delay, "delay", &ns, &infinite) < 0) {
        return NULL;
    }
    if (st_cancel_is_requested(&self->cts_core)) {
        Py_RETURN_NONE; /* 5.10: already canceled: nothing to do */
    }
    if (cts_arm(st, self, delay, ns, infinite) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The time provider's timer fired (P6a). */
static PyObject *
cts_on_timer(PyObject *op, PyObject *state)
{
    CTSObject *self = CTSObject_CAST(op);
    (void)state;
    if (st_cancel_request(&self->cts_core)
        && cts_notify(g_st, self, 0) < 0) {
        PyErr_WriteUnraisable(op);
    }
    Py_RETURN_NONE;
}

static PyObject *
cts_try_reset(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    CTSObject *self = CTSObject_CAST(op);
    st_cancel_reg_t *dropped;

    if (self->cts_disposed) {
        return raise_disposed(st, "try_reset()");
    }
    if (st_cancel_is_requested(&self->cts_core)) {
        Py_RETURN_FALSE;
    }
    /* 5.11: a timer that may have fired makes the reset fail */
    if (self->cts_timer != NULL) {
        cts_timer *ct = self->cts_timer;
        if (ct->timer == st->timer
            && st_timer_cancel(ct->timer, &ct->entry) != 0) {
            Py_RETURN_FALSE; /* fired (or firing): too late */
        }
        self->cts_timer = NULL;
        Py_DECREF(ct->cts);
        PyMem_Free(ct);
    }
    if (self->cts_ptimer != NULL) {
        PyObject *r = PyObject_CallMethod(self->cts_ptimer, "change", "ii",
                                          -1, -1);
        int ok;
        if (r == NULL) {
            return NULL;
        }
        ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (ok <= 0) {
            return ok < 0 ? NULL : Py_NewRef(Py_False);
        }
    }
    if (st_cancel_try_reset(&self->cts_core, &dropped) != 0) {
        Py_RETURN_FALSE;
    }
    release_chain(dropped);
    Py_RETURN_TRUE;
}

static PyObject *
cts_dispose(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    CTSObject *self = CTSObject_CAST(op);
    st_cancel_reg_t *dropped;
    PyObject *links;
    Py_ssize_t i;
    int rc = 0;

    if (self->cts_disposed || self->cts_shared) {
        Py_RETURN_NONE; /* 5.12: idempotent */
    }
    self->cts_disposed = 1;
    /* a pending CancelAfter never fires now (5.12) */
    cts_timer_disarm(st, self);
    rc = cts_ptimer_dispose(self);
    /* a linked source leaves its parents (5.14) */
    links = self->cts_links;
    self->cts_links = NULL;
    if (links != NULL) {
        for (i = 0; i < PyList_GET_SIZE(links); i++) {
            (void)reg_unregister(RegObject_CAST(PyList_GET_ITEM(links, i)));
        }
        Py_DECREF(links);
    }
    /* registrations are dropped, never run (unless a cancel runs now) */
    (void)st_cancel_close(&self->cts_core, &dropped);
    release_chain(dropped);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
cts_exit(PyObject *op, PyObject *args)
{
    PyObject *r = cts_dispose(op, NULL);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

/* The tokens of create_linked_token_source: its arguments, or the items
 * of its one iterable argument.  A new list, or NULL. */
static PyObject *
linked_tokens(st_state *st, PyObject *args)
{
    PyObject *list;
    Py_ssize_t i, n;

    if (PyTuple_GET_SIZE(args) == 1
        && !Token_Check(st, PyTuple_GET_ITEM(args, 0))) {
        PyObject *one = PyTuple_GET_ITEM(args, 0);
        if (one == Py_None) {
            PyErr_SetString(PyExc_TypeError, "create_linked_token_source(): "
                            "tokens must not be None");
            return NULL;
        }
        list = PySequence_List(one);
        if (list == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Format(PyExc_TypeError,
                             "create_linked_token_source(): tokens must be "
                             "CancellationTokens or one iterable of them, "
                             "not %.100s", Py_TYPE(one)->tp_name);
            }
            return NULL;
        }
    }
    else {
        list = PySequence_List(args);
        if (list == NULL) {
            return NULL;
        }
    }
    n = PyList_GET_SIZE(list);
    if (n == 0) {
        Py_DECREF(list);
        PyErr_SetString(PyExc_ValueError, "create_linked_token_source(): "
                        "tokens: at least one token is needed");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(list, i);
        if (!Token_Check(st, t)) {
            PyErr_Format(PyExc_TypeError,
                         "create_linked_token_source(): tokens[%zd] must "
                         "be a CancellationToken, not %.100s", i,
                         Py_TYPE(t)->tp_name);
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

static PyObject *
cts_create_linked(PyObject *unused, PyObject *args)
{
    st_state *st = g_st;
    PyObject *tokens, *links = NULL;
    CTSObject *child = NULL;
    Py_ssize_t i;

    tokens = linked_tokens(st, args);
    if (tokens == NULL) {
        return NULL;
    }
    child = cts_alloc(st, st->CTS_type);
    links = PyList_New(0);
    if (child == NULL || links == NULL) {
        goto error;
    }
    for (i = 0; i < PyList_GET_SIZE(tokens); i++) {
        PyObject *tok = PyList_GET_ITEM(tokens, i), *reg;
        int already;
        /* 5.14: tokens that can never be canceled are skipped */
        if (TokenObject_CAST(tok)->tok_source == NULL) {
            continue;
        }
        reg = cancel_register_action(st, tok, link_fired, (PyObject *)child,
                                     NULL, NULL, NULL, &already);
        if (reg == NULL) {
            goto error;
        }
        if (reg != Py_None && PyList_Append(links, reg) < 0) {
            Py_DECREF(reg);
            goto error;
        }
        Py_DECREF(reg);
        if (already) {
            /* an input is canceled: so is the linked source, now */
            PyObject *t = Py_NewRef(tok);
            int rc = link_fired((PyObject *)child, t, NULL);
            Py_DECREF(t);
            if (rc < 0) {
                goto error;
            }
        }
    }
    child->cts_links = links;
    Py_DECREF(tokens);
    return (PyObject *)child;

error:
    if (links != NULL) {
        for (i = 0; i < PyList_GET_SIZE(links); i++) {
            (void)reg_unregister(RegObject_CAST(PyList_GET_ITEM(links, i)));
        }
        Py_DECREF(links);
    }
    Py_XDECREF((PyObject *)child);
    Py_DECREF(tokens);
    return NULL;
}

static PyObject *
CTS_repr(PyObject *op)
{
    CTSObject *self = CTSObject_CAST(op);
    return PyUnicode_FromFormat(
        "<CancellationTokenSource %s%s at %p>",
        st_cancel_is_requested(&self->cts_core) ? "canceled"
                                                 : "not canceled",
        self->cts_disposed ? ", disposed" : "", op);
}

static PyMethodDef CTS_methods[] = {
    {"cancel", (PyCFunction)(void (*)(void))cts_cancel,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("cancel($self, /, throw_on_first_exception=False)\n--\n\n"
               "Request cancellation (like CancellationTokenSource.Cancel):\n"
               "run every registered callback now, on this thread, newest\n"
               "first.  Their exceptions are raised together as one\n"
               "AggregateError; with throw_on_first_exception, the first\n"
               "one is raised as it is and the remaining callbacks never\n"
               "run.  A second call returns at once.")},
    {"cancel_async", cts_cancel_async, METH_NOARGS,
     PyDoc_STR("cancel_async($self, /)\n--\n\n"
               "Request cancellation now and run the callbacks on a pool\n"
               "thread; return a Task that completes when they ran (faulted\n"
               "with their exceptions).  Like CancelAsync (.NET 8).")},
    {"cancel_after", cts_cancel_after, METH_O,
     PyDoc_STR("cancel_after($self, delay, /)\n--\n\n"
               "Cancel after delay seconds (a timedelta, or None / INFINITE\n"
               "to disarm); each call replaces the previous one.  Like\n"
               "CancelAfter.")},
    {"try_reset", cts_try_reset, METH_NOARGS,
     PyDoc_STR("try_reset($self, /)\n--\n\n"
               "If cancellation was not requested (and no CancelAfter timer\n"
               "may have fired), drop every registration and return True;\n"
               "else return False.  Like TryReset.")},
    {"dispose", cts_dispose, METH_NOARGS,
     PyDoc_STR("dispose($self, /)\n--\n\n"
               "Release the source: disarm its timer, leave the linked\n"
               "parents, drop its registrations.  It does not cancel.\n"
               "Afterwards token, cancel, cancel_after and try_reset raise\n"
               "ObjectDisposedError.  Idempotent.")},
    {"__enter__", cts_enter, METH_NOARGS,
     PyDoc_STR("__enter__($self, /)\n--\n\nReturn the source itself.")},
    {"__exit__", cts_exit, METH_VARARGS,
     PyDoc_STR("__exit__($self, exc_type, exc_value, traceback, /)\n--\n\n"
               "Dispose the source.")},
    {"create_linked_token_source", cts_create_linked,
     METH_VARARGS | METH_STATIC,
     PyDoc_STR("create_linked_token_source(*tokens)\n--\n\n"
               "A new source that is canceled when any of the tokens is\n"
               "(canceled at once if one already is).  Canceling it does\n"
               "not cancel them; dispose it when done, to leave them.\n"
               "Takes tokens, or one iterable of tokens.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef CTS_getset[] = {
    {"token", cts_token_get, NULL,
     PyDoc_STR("The CancellationToken of this source (ObjectDisposedError "
               "after dispose)."), NULL},
    {"is_cancellation_requested", cts_requested_get, NULL,
     PyDoc_STR("True once cancellation was requested (also after "
               "dispose)."), NULL},
    {"_registration_count", cts_count_get, NULL,
     PyDoc_STR("Internal: registrations waiting now (for tests)."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef CTS_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(CTSObject, cts_weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot CTS_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "CancellationTokenSource(delay=None, time_provider=None)\n--\n\n"
         "Signals cancellation to the CancellationTokens it hands out\n"
         "(like System.Threading.CancellationTokenSource).  With a delay,\n"
         "it cancels itself after that many seconds (0: at once).  Use it\n"
         "with `with` to dispose it at the end.")},
    {Py_tp_new, CTS_new},
    {Py_tp_traverse, CTS_traverse},
    {Py_tp_clear, CTS_clear},
    {Py_tp_dealloc, CTS_dealloc},
    {Py_tp_repr, CTS_repr},
    {Py_tp_methods, CTS_methods},
    {Py_tp_getset, CTS_getset},
    {Py_tp_members, CTS_members},
    {0, NULL},
};

static PyType_Spec CTS_spec = {
    .name = "sharptask.CancellationTokenSource",
    .basicsize = sizeof(CTSObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = CTS_slots,
};

/* ----------------------------------------------------- CancellationToken */

static PyObject *
Token_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"canceled", NULL};
    st_state *st = g_st;
    int canceled = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:CancellationToken",
                                     kwlist, &canceled)) {
        return NULL;
    }
    /* 5.7: (False) is none; every (True) shares one canceled source */
    return token_new(st, canceled ? CTSObject_CAST(st->canceled_source)
                                  : NULL);
}

static int
Token_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(TokenObject_CAST(op)->tok_source);
    return 0;
}

static int
Token_clear(PyObject *op)
{
    Py_CLEAR(TokenObject_CAST(op)->tok_source);
    return 0;
}

static void
Token_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): holds its source */
    Py_TRASHCAN_BEGIN(op, Token_dealloc)
    (void)Token_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
Token_richcompare(PyObject *a, PyObject *b, int op)
{
    st_state *st = g_st;
    int eq;
    if (!Token_Check(st, a) || !Token_Check(st, b)
        || (op != Py_EQ && op != Py_NE)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    /* 5.7: equal when they share a source */
    eq = TokenObject_CAST(a)->tok_source == TokenObject_CAST(b)->tok_source;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t
Token_hash(PyObject *op)
{
    CTSObject *src = TokenObject_CAST(op)->tok_source;
    return src == NULL ? 0 : Py_HashPointer(src);
}

static PyObject *
Token_repr(PyObject *op)
{
    CTSObject *src = TokenObject_CAST(op)->tok_source;
    if (src == NULL) {
        return PyUnicode_FromString("<CancellationToken none>");
    }
    return PyUnicode_FromFormat(
        "<CancellationToken %s of source %p>",
        st_cancel_is_requested(&src->cts_core) ? "canceled" : "not canceled",
        (void *)src);
}

static PyObject *
token_requested_get(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(cancel_token_requested(g_st, op));
}

static PyObject *
token_can_cancel_get(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(TokenObject_CAST(op)->tok_source != NULL);
}

static PyObject *
token_register(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    return token_register_impl(g_st, TokenObject_CAST(op), args, nargs,
                               kwnames, 1, "register");
}

static PyObject *
token_unsafe_register(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    return token_register_impl(g_st, TokenObject_CAST(op), args, nargs,
                               kwnames, 0, "unsafe_register");
}

static PyObject *
token_throw_if(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    PyObject *kw, *exc, *empty;
    if (!cancel_token_requested(st, op)) {
        Py_RETURN_NONE;
    }
    /* 5.8: an OperationCanceledError carrying this token */
    kw = Py_BuildValue("{s:O}", "cancellation_token", op);
    empty = PyTuple_New(0);
    exc = kw != NULL && empty != NULL
              ? PyObject_Call(st->OperationCanceledError, empty, kw)
              : NULL;
    Py_XDECREF(kw);
    Py_XDECREF(empty);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyMethodDef Token_methods[] = {
    {"register", (PyCFunction)(void (*)(void))token_register,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("register($self, /, callback, state=...)\n--\n\n"
               "Run callback() -- callback(state) when a state is given --\n"
               "when the token is canceled: inside cancel(), on the\n"
               "canceling thread, newest registration first, in the\n"
               "contextvars context current now.  On a canceled token it\n"
               "runs at once.  Return the CancellationTokenRegistration\n"
               "that unregisters it.")},
    {"unsafe_register", (PyCFunction)(void (*)(void))token_unsafe_register,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("unsafe_register($self, /, callback, state=...)\n--\n\n"
               "Like register, without capturing the contextvars context\n"
               "(UnsafeRegister): the callback runs in the canceler's.")},
    {"throw_if_cancellation_requested", token_throw_if, METH_NOARGS,
     PyDoc_STR("throw_if_cancellation_requested($self, /)\n--\n\n"
               "Raise OperationCanceledError (with this token) if\n"
               "cancellation was requested.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Token_getset[] = {
    {"is_cancellation_requested", token_requested_get, NULL,
     PyDoc_STR("True once the source was canceled."), NULL},
    {"can_be_canceled", token_can_cancel_get, NULL,
     PyDoc_STR("False for CancellationToken.none, which never fires."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Token_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "CancellationToken(canceled=False)\n--\n\n"
         "Observes a CancellationTokenSource (like\n"
         "System.Threading.CancellationToken).  Get one from\n"
         "source.token; CancellationToken.none never fires, and\n"
         "CancellationToken(True) is already canceled.  Tokens of the\n"
         "same source are equal.")},
    {Py_tp_new, Token_new},
    {Py_tp_traverse, Token_traverse},
    {Py_tp_clear, Token_clear},
    {Py_tp_dealloc, Token_dealloc},
    {Py_tp_richcompare, Token_richcompare},
    {Py_tp_hash, Token_hash},
    {Py_tp_repr, Token_repr},
    {Py_tp_methods, Token_methods},
    {Py_tp_getset, Token_getset},
    {0, NULL},
};

static PyType_Spec Token_spec = {
    .name = "sharptask.CancellationToken",
    .basicsize = sizeof(TokenObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Token_slots,
};

/* --------------------------------------------------- module functions */

static PyObject *
mod_timer_count(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    return PyLong_FromSize_t(st->timer != NULL ? st_timer_count(st->timer)
                                               : 0);
}

static PyMethodDef cancel_methods[] = {
    {"_timer_count", mod_timer_count, METH_NOARGS,
     PyDoc_STR("_timer_count()\n--\n\n"
               "Internal: timers armed now (Task.delay, cancel_after), so\n"
               "tests can see that a canceled wait freed its timer (K3).")},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------ module state */

static int
add_cancel_type(PyObject *mod, PyType_Spec *spec, PyTypeObject **out)
{
    *out = (PyTypeObject *)PyType_FromModuleAndSpec(mod, spec, NULL);
    if (*out == NULL) {
        return -1;
    }
    return PyModule_AddType(mod, *out);
}

int
cancel_module_exec(PyObject *mod, st_state *st)
{
    PyObject *errors;
    CTSObject *shared;
    RegObject *empty;

    if (PyModule_AddFunctions(mod, cancel_methods) < 0) {
        return -1;
    }
    if (add_cancel_type(mod, &CTS_spec, &st->CTS_type) < 0
        || add_cancel_type(mod, &Token_spec, &st->Token_type) < 0
        || add_cancel_type(mod, &Reg_spec, &st->Registration_type) < 0) {
        return -1;
    }
    errors = PyImport_ImportModule("sharptask._errors");
    if (errors == NULL) {
        return -1;
    }
    st->ObjectDisposedError =
        PyObject_GetAttrString(errors, "ObjectDisposedError");
    Py_DECREF(errors);
    if (st->ObjectDisposedError == NULL) {
        return -1;
    }
    /* CancellationToken.none */
    st->token_none = NULL;
    st->token_none = token_new(st, NULL);
    if (st->token_none == NULL) {
        return -1;
    }
    /* the one canceled source behind every CancellationToken(True) */
    shared = cts_alloc(st, st->CTS_type);
    if (shared == NULL) {
        return -1;
    }
    shared->cts_shared = 1;
    (void)st_cancel_request(&shared->cts_core);
    (void)st_cancel_take(&shared->cts_core); /* none: now NOTIFIED */
    st->canceled_source = (PyObject *)shared;
    /* the empty registration (5.6, 5.7) */
    empty = reg_alloc(st);
    if (empty == NULL) {
        return -1;
    }
    st->empty_registration = (PyObject *)empty;
    if (PyDict_SetItemString(st->Token_type->tp_dict, "none",
                             st->token_none) < 0) {
        return -1;
    }
    PyType_Modified(st->Token_type);
    return 0; /* the semaphore's part: module.c (issue 10) */
}

int
cancel_module_traverse(st_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->CTS_type);
    Py_VISIT(st->Token_type);
    Py_VISIT(st->Registration_type);
    Py_VISIT(st->ObjectDisposedError);
    Py_VISIT(st->token_none);
    Py_VISIT(st->canceled_source);
    Py_VISIT(st->empty_registration);
    return 0;
}

void
cancel_module_clear(st_state *st)
{
    Py_CLEAR(st->token_none);
    Py_CLEAR(st->canceled_source);
    Py_CLEAR(st->empty_registration);
    Py_CLEAR(st->ObjectDisposedError);
    Py_CLEAR(st->CTS_type);
    Py_CLEAR(st->Token_type);
    Py_CLEAR(st->Registration_type);
}
