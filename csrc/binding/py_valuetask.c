/* py_valuetask.c - the ValueTask value type: making, reading and
 * consuming one, and the ValueTask part of the module (SPEC V1-V5).  Its
 * awaiters are in py_vt_awaiter.c, ManualResetValueTaskSourceCore and
 * the source calls in py_vt_source.c, the pooled boxes in py_vt_pool.c,
 * the method builders' entry (@async_value_method) in py_method.c.
 *
 *     class ValueTask(Generic[T]):          # like ValueTask<T>
 *         def __init__(self, result=None) / (task) / (source, token)
 *         from_result(v), from_exception(e), from_canceled(token)  (static)
 *         completed_task: ValueTask[None]   # preserved: reusable
 *         is_completed / is_completed_successfully / is_faulted /
 *         is_canceled: bool                 # ask the backing every time
 *         result: T                         # raises the exception itself
 *         def as_task(self) -> Task[T]      # consumes
 *         def preserve(self) -> ValueTask[T]
 *         def configure_await(self, continue_on_captured_context: bool)
 *         def get_awaiter(self) -> ValueTaskAwaiter[T]   # consumes
 *         def __await__(self): return self  # consumes; its own iterator
 *
 *     class ManualResetValueTaskSourceCore(Generic[T]):  # csrc/core
 *         version: int; run_continuations_asynchronously: bool
 *         def reset(); set_result(v=None); set_exception(e)
 *         def get_status(token) -> ValueTaskSourceStatus
 *         def get_result(token) -> T
 *         def on_completed(continuation, state, token, flags)
 *
 *     @async_value_method                   # AsyncValueTaskMethodBuilder
 *     @async_value_method(pooling=True)     # PoolingAsyncValueTask...
 *
 * A ValueTask is one of four backings, chosen by what it holds (reference
 * 1.1, 1.13: only the object decides):
 *
 *     RESULT  vt_value is the result; nothing was allocated but this
 *     TASK    vt_obj is a Task (the default builder's box, or any Task)
 *     SOURCE  vt_obj is any IValueTaskSource, vt_value the token object
 *     BOX     vt_obj is a pooled box (a Task the pooling builder rented)
 *             and vt_token the version the box had when it was rented
 *
 * A BOX is the pooling builder's state-machine box: a TaskObject reused
 * across calls.  Its version lives in task_cwopts (16 bits, like .NET's
 * short token), which only continuation tasks use otherwise.  When the
 * consumer takes the result (await, get_result, result, as_task), the box
 * is reset (a fresh core, every field cleared, version + 1) and goes back
 * to the pool: the calling thread's slot if empty, else the shared cache,
 * else it is dropped.  All of it runs with the GIL held.
 *
 * One-shot rules (V2).  In strict mode (the default) each ValueTask
 * accepts one consumption: the first __await__, get_awaiter, result,
 * as_task or preserve marks it, and any later one raises
 * InvalidOperationError before touching the backing.  So a stale
 * ValueTask can never reach a pooled box again, and the .NET hazard of a
 * second GetResult re-pooling a box that another call has rented since
 * (reference 1.11, 4.7) cannot happen.  preserve() and completed_task give
 * ValueTasks that may be consumed any number of times.  With
 * set_strict_value_task(False) the checks are .NET's: result- and
 * Task-backed ones may be consumed again, source-backed and pooled ones
 * fail on the token check.  A stale second get_result on a pooled box
 * raises InvalidOperationError and leaves the box alone in both modes
 * (deviation: .NET re-pools it in a finally and may corrupt another
 * operation).  A box goes back to the pool only when the one ValueTask
 * made for its operation takes the result, and that ValueTask never
 * touches the box again (BOX_STALE), so no ValueTask can ever reach a box
 * while it serves another operation, even after the 16-bit version wraps.
 *
 * Allocation.  A synchronous completion makes the ValueTask only, and
 * ValueTasks come from a freelist.  Awaiting a pending TASK or BOX yields
 * the Task itself to the builder, which registers its embedded node on it
 * (no awaiter object); a pooled method that suspends therefore allocates
 * nothing but its coroutine in steady state (BENCHMARKS.md W10).
 */
#include "binding.h"
#include "py_builder.h"
#include "py_method.h"
#include "py_combinators.h"
#include "py_task.h"
#include "py_task_impl.h" /* iternext_via_send */
#include "py_vt.h"

#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef (3.11) */

#include "st_error.h"
#include "st_list.h"     /* st_container_of */
#include "st_thread.h"   /* st_cpu_count */

/* ---------------------------------------------------- process globals */

/* (py_vt.h) the freelist of dead ValueTask memory and the strict flag */
PyObject *g_vt_free[VT_FREELIST_MAX];
int g_vt_nfree;
static const void *g_vt_freelist_type; /* tag: ValueTask's type, or NULL */
int g_vt_strict = 1;

/* ------------------------------------------------------------ helpers */

/* The ValueTaskSourceStatus of a task's status. */
static int
status_of_task(TaskObject *t)
{
    switch (st_task_status(&t->task_core)) {
    case ST_STATUS_RAN_TO_COMPLETION:
        return ST_VTS_SUCCEEDED;
    case ST_STATUS_CANCELED:
        return ST_VTS_CANCELED;
    case ST_STATUS_FAULTED:
        return ST_VTS_FAULTED;
    default:
        return ST_VTS_PENDING;
    }
}

/* sharptask._valuetask, imported at first use (the Python slow paths). */
static PyObject *
vt_impl_call(st_state *st, const char *name, PyObject *const *args,
             size_t nargs)
{
    PyObject *fn, *res;
    if (st->vt.impl == NULL) {
        st->vt.impl = PyImport_ImportModule("sharptask._valuetask");
        if (st->vt.impl == NULL) {
            return NULL;
        }
    }
    fn = PyObject_GetAttrString(st->vt.impl, name);
    if (fn == NULL) {
        return NULL;
    }
    res = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return res;
}
/* --------------------------------------------------- ValueTask: reading */

/* The ValueTaskSourceStatus of vt, or -1 with an error (a stale token). */
int
vt_status(st_state *st, ValueTaskObject *vt)
{
    TaskObject *t;
    switch (vt->vt_kind) {
    case VT_RESULT:
        return ST_VTS_SUCCEEDED;
    case VT_TASK:
        return status_of_task(TaskObject_CAST(vt->vt_obj));
    case VT_BOX:
        t = TaskObject_CAST(vt->vt_obj);
        if (BOX_STALE(vt)) {
            return raise_stale(st);
        }
        return status_of_task(t);
    default:
        return source_status(st, vt);
    }
}

/* GetResult: the result (new ref), or NULL with the exception itself
 * raised.  A TASK that is not complete is waited for if `block`; a BOX
 * that is not complete raises (it is a source, 1.5) without being
 * consumed.  A BOX's result is taken once: the box goes back to the pool
 * (4.5). */
PyObject *
vt_get_result(st_state *st, ValueTaskObject *vt, int block)
{
    PyObject *r;
    TaskObject *t;

    if (g_vt_strict && (vt->vt_flags & (VTF_TAKEN | VTF_PRESERVED))
                           == VTF_TAKEN) {
        raise_consumed(st);
        return NULL;
    }
    switch (vt->vt_kind) {
    case VT_RESULT:
        r = Py_NewRef(vt->vt_value);
        break;
    case VT_TASK:
        t = TaskObject_CAST(vt->vt_obj);
        if (block && !st_task_is_completed(&t->task_core)
            && task_wait_blocking(st, t, UINT64_MAX) < 0) {
            return NULL;
        }
        r = task_get_result(st, t);
        break;
    case VT_BOX:
        t = TaskObject_CAST(vt->vt_obj);
        if (BOX_STALE(vt)) {
            raise_stale(st); /* the box is left alone (deviation, 4.7) */
            return NULL;
        }
        if (!st_task_is_completed(&t->task_core)) {
            raise_not_completed(st);
            return NULL;
        }
        r = task_get_result(st, t);
        box_return(st, t); /* keeps the raised error */
        break;
    default:
        r = source_result(st, vt);
        break;
    }
    vt->vt_flags |= VTF_TAKEN;
    return r;
}

/* The await step (am_send) of vt, resuming on the captured context iff
 * `cont`: a result, an exception, or what the builder must wait for. */
PySendResult
vt_send(st_state *st, ValueTaskObject *vt, int cont, PyObject **presult)
{
    TaskObject *t;
    int status;

    if (g_vt_strict && (vt->vt_flags & (VTF_TAKEN | VTF_PRESERVED))
                           == VTF_TAKEN) {
        raise_consumed(st); /* driven again after it returned */
        *presult = NULL;
        return PYGEN_ERROR;
    }
    switch (vt->vt_kind) {
    case VT_TASK:
    case VT_BOX:
        t = TaskObject_CAST(vt->vt_obj);
        if (vt->vt_kind == VT_BOX && BOX_STALE(vt)) {
            raise_stale(st); /* never wait on a box reused since */
            *presult = NULL;
            return PYGEN_ERROR;
        }
        if (!st_task_is_completed(&t->task_core)) {
            /* the Task itself: the builder registers its own node on it,
             * with no awaiter object (or a configured one for False) */
            *presult = cont ? Py_NewRef(t)
                            : PyObject_CallMethodOneArg(
                                  (PyObject *)t, st->vt.str_configure_await,
                                  Py_False);
            return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
        }
        break;
    case VT_SOURCE:
        status = source_status(st, vt);
        if (status < 0) {
            *presult = NULL;
            return PYGEN_ERROR;
        }
        if (status == ST_VTS_PENDING) {
            /* an awaiter whose unsafe_on_completed registers on the
             * source (reference 1.10) */
            VTAwaiterObject *aw = PyObject_GC_New(VTAwaiterObject,
                                                  st->vt.VTAwaiter_type);
            if (aw == NULL) {
                *presult = NULL;
                return PYGEN_ERROR;
            }
            aw->vta_vt = (ValueTaskObject *)Py_NewRef(vt);
            aw->vta_continue = (uint8_t)cont;
            PyObject_GC_Track(aw);
            *presult = (PyObject *)aw;
            return PYGEN_NEXT;
        }
        break;
    default:
        break;
    }
    *presult = vt_get_result(st, vt, 0);
    return *presult != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

/* A completed Task for vt's outcome, or a promise completed later
 * (AsTask, reference 1.6).  vt is consumed already. */
static PyObject *vt_box_as_task(st_state *st, ValueTaskObject *vt);

static PyObject *
vt_as_task(st_state *st, ValueTaskObject *vt)
{
    PyObject *args[2];
    switch (vt->vt_kind) {
    case VT_RESULT:
        return task_from_result(st, vt->vt_value);
    case VT_TASK:
        return Py_NewRef(vt->vt_obj);
    case VT_BOX:
        return vt_box_as_task(st, vt);
    default:
        if (g_vt_strict && (vt->vt_flags & (VTF_TAKEN | VTF_PRESERVED))
                               == VTF_TAKEN) {
            raise_consumed(st);
            return NULL;
        }
        vt->vt_flags |= VTF_TAKEN;
        args[0] = vt->vt_obj;
        args[1] = vt->vt_value;
        return vt_impl_call(st, "_source_as_task", args, 2);
    }
}

/* as_task of a pending box: a promise completed, when the box is, from
 * the awaiter's get_result (which also returns the box to the pool). */
static PyObject *
box_as_task_done(PyObject *pair, PyObject *unused)
{
    TaskObject *promise = TaskObject_CAST(PyTuple_GET_ITEM(pair, 0));
    ValueTaskObject *vt = ValueTaskObject_CAST(PyTuple_GET_ITEM(pair, 1));
    PyObject *r = vt_get_result(g_st, vt, 0);
    if (r != NULL) {
        task_try_complete(promise, ST_STATUS_RAN_TO_COMPLETION, r, NULL);
        Py_DECREF(r);
    }
    else if (task_complete_from_error(promise, 1) < 0) {
        return NULL; /* a BaseException: keep it going */
    }
    Py_RETURN_NONE;
}

static PyMethodDef box_as_task_done_def = {
    "_box_as_task_done", box_as_task_done, METH_NOARGS,
    PyDoc_STR("Internal: completes ValueTask.as_task()'s Task."),
};

static PyObject *
vt_box_as_task(st_state *st, ValueTaskObject *vt)
{
    TaskObject *t = TaskObject_CAST(vt->vt_obj);
    PyObject *promise, *pair, *cb, *aw, *r;

    if (g_vt_strict && (vt->vt_flags & VTF_TAKEN)) {
        raise_consumed(st);
        return NULL;
    }
    if (BOX_STALE(vt)) {
        raise_stale(st);
        return NULL;
    }
    promise = task_new_promise(st, NULL, 0);
    if (promise == NULL) {
        return NULL;
    }
    if (st_task_is_completed(&t->task_core)) {
        task_complete_from(TaskObject_CAST(promise), t); /* marks observed */
        box_return(st, t);
        vt->vt_flags |= VTF_TAKEN;
        return promise;
    }
    pair = PyTuple_Pack(2, promise, (PyObject *)vt);
    cb = pair ? PyCFunction_New(&box_as_task_done_def, pair) : NULL;
    aw = cb ? PyObject_CallMethodOneArg((PyObject *)t,
                                        st->vt.str_configure_await, Py_False)
            : NULL;
    r = aw ? PyObject_CallMethodOneArg(aw, st->str_unsafe_on_completed, cb)
           : NULL;
    Py_XDECREF(pair);
    Py_XDECREF(cb);
    Py_XDECREF(aw);
    if (r == NULL) {
        Py_DECREF(promise);
        return NULL;
    }
    Py_DECREF(r);
    return promise;
}

/* --------------------------------------------------- ValueTask: lifecycle */

static PyObject *
ValueTask_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"", "", "result", "task", "source", "token",
                             NULL};
    st_state *st = g_st;
    PyObject *a = NULL, *b = NULL, *result = NULL, *task = NULL;
    PyObject *source = NULL, *token = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO$OOOO:ValueTask",
                                     kwlist, &a, &b, &result, &task,
                                     &source, &token)) {
        return NULL;
    }
    if ((a != NULL) + (b != NULL) + (result != NULL) + (task != NULL)
            + (source != NULL) + (token != NULL)
        > 2) {
        goto usage;
    }
    if (b != NULL) { /* ValueTask(source, token) */
        if (result != NULL || task != NULL || source != NULL
            || token != NULL) {
            goto usage;
        }
        source = a;
        token = b;
        a = NULL;
    }
    else if (a != NULL && (source != NULL || token != NULL)) {
        if (source != NULL || result != NULL || task != NULL) {
            goto usage;
        }
        source = a; /* ValueTask(source, token=...) */
        a = NULL;
    }
    if (task != NULL) {
        if (a != NULL || result != NULL || source != NULL || token != NULL) {
            goto usage;
        }
        if (!Task_Check(st, task)) {
            PyErr_Format(PyExc_TypeError,
                         "ValueTask(): task must be a Task, not %.100s",
                         Py_TYPE(task)->tp_name);
            return NULL;
        }
        return vt_new_task(st, task);
    }
    if (source != NULL || token != NULL) {
        if (a != NULL || result != NULL) {
            goto usage;
        }
        if (source == NULL || source == Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "ValueTask(): source must not be None");
            return NULL;
        }
        if (token == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "ValueTask(source, token): token is required");
            return NULL;
        }
        if (!PyLong_Check(token)) {
            PyErr_Format(PyExc_TypeError,
                         "ValueTask(): token must be an int, not %.100s",
                         Py_TYPE(token)->tp_name);
            return NULL;
        }
        if (!PyObject_TypeCheck(source, st->vt.MRVTSC_type)) {
            /* V3: a duck-typed IValueTaskSource */
            static const char *names[] = {"get_status", "get_result",
                                          "on_completed"};
            int i;
            for (i = 0; i < 3; i++) {
                if (!PyObject_HasAttrString(source, names[i])) {
                    PyErr_Format(PyExc_TypeError,
                                 "ValueTask(): source must implement "
                                 "IValueTaskSource (get_status, get_result, "
                                 "on_completed); %.100s has no %s",
                                 Py_TYPE(source)->tp_name, names[i]);
                    return NULL;
                }
            }
        }
        return vt_new_source(st, source, token);
    }
    if (result != NULL) {
        if (a != NULL) {
            goto usage;
        }
        return vt_new_result(st, result); /* even a Task, as a value */
    }
    if (a != NULL && Task_Check(st, a)) {
        return vt_new_task(st, a);
    }
    return vt_new_result(st, a != NULL ? a : Py_None);

usage:
    PyErr_SetString(PyExc_TypeError,
                    "ValueTask() takes a result, a task, or a source and a "
                    "token: ValueTask(result), ValueTask(task), "
                    "ValueTask(source, token)");
    return NULL;
}

static int
ValueTask_traverse(PyObject *op, visitproc visit, void *arg)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(vt->vt_obj);
    Py_VISIT(vt->vt_value);
    return 0;
}

static int
ValueTask_clear(PyObject *op)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    Py_CLEAR(vt->vt_obj);
    Py_CLEAR(vt->vt_value);
    return 0;
}

static void
ValueTask_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4: a ValueTask holds a task, a source or a value (another
     * ValueTask): CPython's trashcan bounds the recursion of a chain */
    Py_TRASHCAN_BEGIN(op, ValueTask_dealloc)
    (void)ValueTask_clear(op);
    if ((const void *)tp == g_vt_freelist_type
        && g_vt_nfree < VT_FREELIST_MAX) {
        g_vt_free[g_vt_nfree++] = op; /* the memory, for vt_alloc */
    }
    else {
        tp->tp_free(op);
    }
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* --------------------------------------------------- ValueTask: members */

static PyObject *
vt_status_is(PyObject *op, int want, int completed)
{
    int s = vt_status(g_st, ValueTaskObject_CAST(op));
    if (s < 0) {
        return NULL;
    }
    return PyBool_FromLong(completed ? s != ST_VTS_PENDING : s == want);
}

static PyObject *
vt_is_completed_get(PyObject *op, void *closure)
{
    return vt_status_is(op, 0, 1);
}

static PyObject *
vt_is_completed_successfully_get(PyObject *op, void *closure)
{
    return vt_status_is(op, ST_VTS_SUCCEEDED, 0);
}

static PyObject *
vt_is_faulted_get(PyObject *op, void *closure)
{
    return vt_status_is(op, ST_VTS_FAULTED, 0);
}

static PyObject *
vt_is_canceled_get(PyObject *op, void *closure)
{
    return vt_status_is(op, ST_VTS_CANCELED, 0);
}

static PyObject *
vt_result_get(PyObject *op, void *closure)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt->vt_kind == VT_BOX && !(vt->vt_flags & VTF_TAKEN)) {
        /* a pending pooled one raises without being consumed (1.5) */
        int s = vt_status(st, vt);
        if (s < 0) {
            return NULL;
        }
        if (s == ST_VTS_PENDING) {
            raise_not_completed(st);
            return NULL;
        }
    }
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    return vt_get_result(st, vt, 1);
}

static PyObject *
vt_as_task_meth(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    return vt_as_task(st, vt);
}

static PyObject *
vt_preserve(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    PyObject *t;
    ValueTaskObject *res;

    if (vt->vt_flags & VTF_PRESERVED) {
        return Py_NewRef(op);
    }
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    if (vt->vt_kind == VT_RESULT) {
        vt->vt_flags |= VTF_PRESERVED; /* 1.7: a result preserves itself */
        return Py_NewRef(op);
    }
    t = vt_as_task(st, vt);
    if (t == NULL) {
        return NULL;
    }
    res = (ValueTaskObject *)vt_new_task(st, t);
    Py_DECREF(t);
    if (res != NULL) {
        res->vt_flags |= VTF_PRESERVED;
    }
    return (PyObject *)res;
}

static PyObject *
vta_new(st_state *st, PyTypeObject *tp, ValueTaskObject *vt, int cont)
{
    VTAwaiterObject *aw = PyObject_GC_New(VTAwaiterObject, tp);
    if (aw == NULL) {
        return NULL;
    }
    aw->vta_vt = (ValueTaskObject *)Py_NewRef(vt);
    aw->vta_continue = (uint8_t)cont;
    PyObject_GC_Track(aw);
    return (PyObject *)aw;
}

static PyObject *
vt_configure_await(PyObject *op, PyObject *arg)
{
    st_state *st = g_st;
    if (!PyBool_Check(arg)) {
        PyErr_Format(PyExc_TypeError,
                     "ValueTask.configure_await() takes a bool "
                     "(continue_on_captured_context), not %.100s; "
                     "ConfigureAwaitOptions are for Task only, as in .NET: "
                     "use as_task().configure_await(options)",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    return vta_new(st, st->vt.VTConfigured_type, ValueTaskObject_CAST(op),
                   arg == Py_True);
}

static PyObject *
vt_get_awaiter(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    return vta_new(st, st->vt.VTAwaiter_type, vt, 1);
}

static PyObject *
vt_am_await(PyObject *op)
{
    if (vt_consume(g_st, ValueTaskObject_CAST(op)) < 0) {
        return NULL;
    }
    return Py_NewRef(op); /* its own iterator: nothing allocated */
}

/* vt.__await__() called explicitly: consumes vt, then an iterator over
 * its steps (py_task.c await_method_iter; I2). */
static PyObject *
vt_await_method(PyObject *op, PyObject *unused)
{
    PyObject *self = vt_am_await(op);
    if (self == NULL) {
        return NULL;
    }
    PyObject *r = await_method_iter(self, NULL);
    Py_DECREF(self);
    return r;
}

static PySendResult
vt_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    PySendResult r = vt_send(g_st, ValueTaskObject_CAST(op), 1, presult);
    if (r == PYGEN_NEXT) { /* to the builder, or to asyncio (I2) */
        *presult = await_yield(g_st, *presult);
        return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    return r;
}

static PyObject *
vt_iternext(PyObject *op)
{
    return iternext_via_send(op, vt_am_send);
}

static PyObject *
vt_from_result(PyObject *unused, PyObject *value)
{
    return vt_new_result(g_st, value);
}

static PyObject *
vt_from_task_factory(const char *name, PyObject *arg)
{
    st_state *st = g_st;
    PyObject *t = PyObject_CallMethod((PyObject *)st->Task_type, name, "O",
                                      arg);
    PyObject *vt;
    if (t == NULL) {
        return NULL;
    }
    vt = vt_new_task(st, t);
    Py_DECREF(t);
    return vt;
}

static PyObject *
vt_from_exception(PyObject *unused, PyObject *exc)
{
    return vt_from_task_factory("from_exception", exc);
}

static PyObject *
vt_from_canceled(PyObject *unused, PyObject *token)
{
    return vt_from_task_factory("from_canceled", token);
}

static PyObject *
ValueTask_richcompare(PyObject *a, PyObject *b, int op)
{
    st_state *st = g_st;
    ValueTaskObject *x, *y;
    int eq;

    if ((op != Py_EQ && op != Py_NE)
        || !PyObject_TypeCheck(b, st->vt.ValueTask_type)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    x = ValueTaskObject_CAST(a);
    y = ValueTaskObject_CAST(b);
    /* 1.8: same object and token; two results compare by value; a
     * result never equals an object-backed one */
    if (x->vt_kind != y->vt_kind) {
        eq = 0;
    }
    else if (x->vt_kind == VT_RESULT) {
        eq = PyObject_RichCompareBool(x->vt_value, y->vt_value, Py_EQ);
        if (eq < 0) {
            return NULL;
        }
    }
    else if (x->vt_obj != y->vt_obj) {
        eq = 0;
    }
    else if (x->vt_kind == VT_SOURCE) {
        eq = PyObject_RichCompareBool(x->vt_value, y->vt_value, Py_EQ);
        if (eq < 0) {
            return NULL;
        }
    }
    else {
        eq = x->vt_token == y->vt_token;
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t
ValueTask_hash(PyObject *op)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt->vt_kind == VT_RESULT) {
        return PyObject_Hash(vt->vt_value);
    }
    return Py_HashPointer(vt->vt_obj);
}

static PyObject *
ValueTask_repr(PyObject *op)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    switch (vt->vt_kind) {
    case VT_RESULT:
        return PyUnicode_FromFormat("<ValueTask result=%R>", vt->vt_value);
    case VT_TASK:
        return PyUnicode_FromFormat("<ValueTask task=%R>", vt->vt_obj);
    case VT_BOX:
        return PyUnicode_FromFormat("<ValueTask pooled box=%p token=%u>",
                                    (void *)vt->vt_obj,
                                    (unsigned)vt->vt_token);
    default:
        return PyUnicode_FromFormat("<ValueTask source=%R token=%R>",
                                    vt->vt_obj, vt->vt_value);
    }
}

static PyMethodDef ValueTask_methods[] = {
    ST_AWAIT_THROW_METHODDEF,
    {"__await__", vt_await_method, METH_NOARGS | METH_COEXIST,
     PyDoc_STR("__await__($self, /)\n--\n\n"
               "Consumes the ValueTask; an iterator over the await's "
               "steps.")},
    {"as_task", vt_as_task_meth, METH_NOARGS,
     PyDoc_STR("as_task($self, /)\n--\n\n"
               "A Task for this ValueTask (like ValueTask.AsTask): the Task\n"
               "itself, a completed one, or one completed later.  Consumes\n"
               "the ValueTask.")},
    {"preserve", vt_preserve, METH_NOARGS,
     PyDoc_STR("preserve($self, /)\n--\n\n"
               "A ValueTask that may be consumed any number of times (like\n"
               "ValueTask.Preserve): Task-backed, or this one for a\n"
               "result.  Consumes this ValueTask.")},
    {"configure_await", vt_configure_await, METH_O,
     PyDoc_STR("configure_await($self, continue_on_captured_context, /)\n"
               "--\n\n"
               "An awaitable that resumes on the captured context only if\n"
               "the flag is True (like ValueTask.ConfigureAwait).")},
    {"get_awaiter", vt_get_awaiter, METH_NOARGS,
     PyDoc_STR("get_awaiter($self, /)\n--\n\n"
               "The ValueTaskAwaiter (like ValueTask.GetAwaiter).  Consumes\n"
               "the ValueTask.")},
    {"from_result", vt_from_result, METH_O | METH_STATIC,
     PyDoc_STR("from_result(value, /)\n--\n\n"
               "A completed ValueTask (like ValueTask.FromResult).")},
    {"from_exception", vt_from_exception, METH_O | METH_STATIC,
     PyDoc_STR("from_exception(exception, /)\n--\n\n"
               "A faulted ValueTask (like ValueTask.FromException).")},
    {"from_canceled", vt_from_canceled, METH_O | METH_STATIC,
     PyDoc_STR("from_canceled(token, /)\n--\n\n"
               "A canceled ValueTask for a canceled token (like\n"
               "ValueTask.FromCanceled).")},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     PyDoc_STR("See PEP 585")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ValueTask_getset[] = {
    {"is_completed", vt_is_completed_get, NULL,
     PyDoc_STR("True once the operation completed in any way."), NULL},
    {"is_completed_successfully", vt_is_completed_successfully_get, NULL,
     PyDoc_STR("True if it completed successfully."), NULL},
    {"is_faulted", vt_is_faulted_get, NULL,
     PyDoc_STR("True if it failed."), NULL},
    {"is_canceled", vt_is_canceled_get, NULL,
     PyDoc_STR("True if it was canceled."), NULL},
    {"result", vt_result_get, NULL,
     PyDoc_STR("The result (like ValueTask.Result): a Task-backed one\n"
               "blocks until completion; a failed one raises its exception\n"
               "itself (not an AggregateError).  Consumes the ValueTask."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ValueTask_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "ValueTask(value=None, /, token=None, *, result=None, task=None,"
         " source=None)\n--\n\n"
         "ValueTask(result), ValueTask(task) or ValueTask(source, token)\n"
         "(or the same by keyword).\n"
         "A result, a Task, or an IValueTaskSource operation, like\n"
         "System.Threading.Tasks.ValueTask<T>.  Await it (or take its\n"
         "result, awaiter or Task) once; preserve() gives a reusable one.")},
    {Py_tp_new, ValueTask_new},
    {Py_tp_traverse, ValueTask_traverse},
    {Py_tp_clear, ValueTask_clear},
    {Py_tp_dealloc, ValueTask_dealloc},
    {Py_tp_repr, ValueTask_repr},
    {Py_tp_richcompare, ValueTask_richcompare},
    {Py_tp_hash, ValueTask_hash},
    {Py_tp_iternext, vt_iternext},
    {Py_am_await, vt_am_await},
    {Py_am_send, vt_am_send},
    {Py_tp_methods, ValueTask_methods},
    {Py_tp_getset, ValueTask_getset},
    {0, NULL},
};

static PyType_Spec ValueTask_spec = {
    .name = "sharptask.ValueTask",
    .basicsize = sizeof(ValueTaskObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ValueTask_slots,
};

/* ---------------------------------------------------- module functions */

static PyObject *
mod_invoke_action(PyObject *mod, PyObject *state)
{
    return PyObject_CallNoArgs(state);
}

static PyMethodDef invoke_action_def = {
    "_invoke_action", mod_invoke_action, METH_O,
    PyDoc_STR("_invoke_action(action, /)\n--\n\n"
              "Internal: the continuation that calls its state, action()."),
};


static PyObject *
mod_set_strict(PyObject *mod, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    int old = g_vt_strict;
    if (on < 0) {
        return NULL;
    }
    g_vt_strict = on;
    return PyBool_FromLong(old);
}

static PyObject *
mod_get_strict(PyObject *mod, PyObject *unused)
{
    return PyBool_FromLong(g_vt_strict);
}

static PyMethodDef valuetask_module_methods[] = {
    {"pool_stats", vt_pool_stats, METH_NOARGS,
     PyDoc_STR("pool_stats()\n--\n\n"
               "Counters of the pooled ValueTask boxes, process-wide over\n"
               "every @async_value_method(pooling=True): rented, returned,\n"
               "created and dropped (counts since start) and pooled (boxes\n"
               "in the pool now).")},
    {"set_strict_value_task", mod_set_strict, METH_O,
     PyDoc_STR("set_strict_value_task(strict, /)\n--\n\n"
               "True (the default): a ValueTask consumed twice raises\n"
               "InvalidOperationError.  False: .NET's unchecked behaviour.\n"
               "Returns the previous setting.")},
    {"get_strict_value_task", mod_get_strict, METH_NOARGS,
     PyDoc_STR("get_strict_value_task()\n--\n\n"
               "Whether ValueTasks are one-shot-checked (V2).")},
    {NULL, NULL, 0, NULL},
};

/* -------------------------------------------------- module integration */

static int
add_vt_type(PyObject *mod, PyType_Spec *spec, PyTypeObject **out, int add)
{
    *out = (PyTypeObject *)PyType_FromModuleAndSpec(mod, spec, NULL);
    if (*out == NULL) {
        return -1;
    }
    return add ? PyModule_AddType(mod, *out) : 0;
}

static PyObject *
import_enum(const char *name)
{
    PyObject *m = PyImport_ImportModule("sharptask._enums"), *r;
    if (m == NULL) {
        return NULL;
    }
    r = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return r;
}

int
valuetask_module_exec(PyObject *mod, st_state *st)
{
    st_vt_state *vs = &st->vt;
    PyObject *e;
    int i, ncpu;

    if (add_vt_type(mod, &ValueTask_spec, &vs->ValueTask_type, 1) < 0
        || add_vt_type(mod, &MRVTSC_spec, &vs->MRVTSC_type, 1) < 0
        || add_vt_type(mod, &AsyncValueMethod_spec,
                       &vs->AsyncValueMethod_type, 1) < 0
        || add_vt_type(mod, &BoxSlot_spec, &vs->BoxSlot_type, 0) < 0
        || PyModule_AddFunctions(mod, valuetask_module_methods) < 0) {
        return -1;
    }
    e = import_enum("ValueTaskSourceStatus");
    if (e == NULL) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        vs->status_members[i] = PyObject_CallFunction(e, "i", i);
        if (vs->status_members[i] == NULL) {
            Py_DECREF(e);
            return -1;
        }
    }
    Py_DECREF(e);
    e = import_enum("ValueTaskSourceOnCompletedFlags");
    if (e == NULL) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        vs->flags_members[i] = PyObject_CallFunction(e, "i", i);
        if (vs->flags_members[i] == NULL) {
            Py_DECREF(e);
            return -1;
        }
    }
    Py_DECREF(e);
#define VT_INTERN(field, text)                                              \
    if ((vs->field = PyUnicode_InternFromString(text)) == NULL) {           \
        return -1;                                                          \
    }
    VT_INTERN(str_get_status, "get_status");
    VT_INTERN(str_get_result, "get_result");
    VT_INTERN(str_configure_await, "configure_await");
    VT_INTERN(str_slot_key, "sharptask.valuetask_box_slot");
#undef VT_INTERN
    vs->invoke_action = PyCFunction_NewEx(&invoke_action_def, NULL, NULL);
    if (vs->invoke_action == NULL) {
        return -1;
    }
    ncpu = st_cpu_count();
    vs->cache_cap = ncpu * 2 < 4 ? 4 : ncpu * 2;
    if (vs->cache_cap > ST_VT_CACHE_MAX) {
        vs->cache_cap = ST_VT_CACHE_MAX;
    }
    vs->cache_len = 0;
    g_vt_freelist_type = vs->ValueTask_type;
    /* ValueTask.completed_task: reusable (the default(ValueTask) of .NET
     * is a fresh copy at every read) */
    vs->completed = vt_new_result(st, Py_None);
    if (vs->completed == NULL) {
        return -1;
    }
    ValueTaskObject_CAST(vs->completed)->vt_flags |= VTF_PRESERVED;
    if (PyDict_SetItemString(vs->ValueTask_type->tp_dict, "completed_task",
                             vs->completed) < 0) {
        return -1;
    }
    PyType_Modified(vs->ValueTask_type);
    return 0;
}

int
valuetask_module_traverse(st_state *st, visitproc visit, void *arg)
{
    st_vt_state *vs = &st->vt;
    int i;
    Py_VISIT(vs->ValueTask_type);
    Py_VISIT(vs->VTAwaiter_type);
    Py_VISIT(vs->VTConfigured_type);
    Py_VISIT(vs->MRVTSC_type);
    Py_VISIT(vs->AsyncValueMethod_type);
    Py_VISIT(vs->BoxSlot_type);
    for (i = 0; i < 4; i++) {
        Py_VISIT(vs->status_members[i]);
        Py_VISIT(vs->flags_members[i]);
    }
    Py_VISIT(vs->completed);
    Py_VISIT(vs->invoke_action);
    Py_VISIT(vs->impl);
    for (i = 0; i < vs->cache_len; i++) {
        Py_VISIT(vs->cache[i]);
    }
    return 0;
}

void
valuetask_module_clear(st_state *st)
{
    st_vt_state *vs = &st->vt;
    int i;
    while (vs->cache_len > 0) {
        vs->cache_len--;
        Py_CLEAR(vs->cache[vs->cache_len]);
    }
    Py_CLEAR(vs->completed);
    g_vt_freelist_type = NULL; /* later deallocs free their memory */
    while (g_vt_nfree > 0) {
        PyObject_GC_Del(g_vt_free[--g_vt_nfree]);
    }
    Py_CLEAR(vs->ValueTask_type);
    Py_CLEAR(vs->VTAwaiter_type);
    Py_CLEAR(vs->VTConfigured_type);
    Py_CLEAR(vs->MRVTSC_type);
    Py_CLEAR(vs->AsyncValueMethod_type);
    Py_CLEAR(vs->BoxSlot_type);
    for (i = 0; i < 4; i++) {
        Py_CLEAR(vs->status_members[i]);
        Py_CLEAR(vs->flags_members[i]);
    }
    Py_CLEAR(vs->invoke_action);
    Py_CLEAR(vs->impl);
    Py_CLEAR(vs->str_get_status);
    Py_CLEAR(vs->str_get_result);
    Py_CLEAR(vs->str_configure_await);
    Py_CLEAR(vs->str_slot_key);
}
