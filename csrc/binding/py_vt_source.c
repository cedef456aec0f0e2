/* py_vt_source.c - ManualResetValueTaskSourceCore (its C core is
 * csrc/core/st_vtsource.c) and the calls a source-backed ValueTask makes
 * on its IValueTaskSource (SPEC V3, V4):
 *
 *     class ManualResetValueTaskSourceCore(Generic[T]):  # csrc/core
 *         version: int; run_continuations_asynchronously: bool
 *         def reset(); set_result(v=None); set_exception(e)
 *         def get_status(token) -> ValueTaskSourceStatus
 *         def get_result(token) -> T
 *         def on_completed(continuation, state, token, flags)
 */
#include "binding.h"
#include "py_builder.h"
#include "py_vt.h"

#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef (3.11) */

#include "st_error.h"
#include "st_list.h" /* st_container_of */

/* ------------------------------------------------------ MRVTSC core ops */

/* token as a version: 0, 1 if it cannot be one (a mismatch), -1 error. */
static int
mr_token(PyObject *token, uint32_t *out)
{
    unsigned long long v;
    if (!PyLong_Check(token)) {
        PyErr_Format(PyExc_TypeError, "token must be an int, not %.100s",
                     Py_TYPE(token)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(token);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* negative or huge: no version is that */
        return 1;
    }
    if (v > UINT32_MAX) {
        return 1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The core's answer for a token: 0 with *tok, or -1 with the error. */
static int
mr_check_token(st_state *st, PyObject *token, uint32_t *tok)
{
    int rc = mr_token(token, tok);
    if (rc == 1) {
        return raise_stale(st);
    }
    return rc;
}

static int
mr_status(st_state *st, MRVTSCObject *self, PyObject *token, int *status)
{
    uint32_t tok;
    if (mr_check_token(st, token, &tok) < 0) {
        return -1;
    }
    if (st_vtsource_get_status(&self->mr_core, tok, status) != 0) {
        return raise_stale(st);
    }
    return 0;
}

static PyObject *
mr_result(st_state *st, MRVTSCObject *self, PyObject *token)
{
    uint32_t tok;
    int status, rc;
    if (mr_check_token(st, token, &tok) < 0) {
        return NULL;
    }
    rc = st_vtsource_get_result(&self->mr_core, tok, &status);
    if (rc == ST_EINVAL) {
        raise_stale(st);
        return NULL;
    }
    if (rc != 0) {
        raise_not_completed(st);
        return NULL;
    }
    if (status == ST_VTS_SUCCEEDED) {
        return Py_NewRef(self->mr_result);
    }
    /* the same exception object, with the traceback it was stored with
     * (ExceptionDispatchInfo: rethrowing does not grow it) */
    PyException_SetTraceback(self->mr_result,
                             self->mr_tb != NULL ? self->mr_tb : Py_None);
    PyErr_SetObject((PyObject *)Py_TYPE(self->mr_result), self->mr_result);
    return NULL;
}

/* The continuation node's fn: runs the registered continuation now
 * (inline) or schedules it (reference 3.7, 3.8).  Errors stay set for
 * the call that caused this one (set_* or on_completed). */
static void
mr_fire(st_vts_cont_t *c, int how)
{
    st_state *st = g_st;
    MRVTSCObject *self = st_container_of(c, MRVTSCObject, mr_node);
    PyObject *cont = self->mr_cont, *state = self->mr_state;
    PyObject *ctx = self->mr_context, *target = self->mr_target;
    PyObject *exc;

    /* transfer ownership before any code runs (STYLE 25) */
    self->mr_cont = NULL;
    self->mr_state = NULL;
    self->mr_context = NULL;
    self->mr_target = NULL;
    if (cont == NULL) {
        /* cleared by the garbage collector: nothing left to call */
    }
    else if (target != NULL || how == ST_VTS_RUN_ASYNC) {
        /* a captured context always gets a post (3.7); otherwise the
         * pool, flowing the captured context if any */
        PyObject *args = PyTuple_Pack(1, state != NULL ? state : Py_None);
        PyObject *action = args ? action_new(st, cont, args, ctx) : NULL;
        Py_XDECREF(args);
        if (action != NULL) {
            (void)schedule_action(st, target, action);
            Py_DECREF(action);
        }
    }
    else {
        PyObject *saved = Py_XNewRef(sync_context_current()), *r = NULL;
        if (ctx == NULL || PyContext_Enter(ctx) == 0) {
            r = PyObject_CallOneArg(cont, state != NULL ? state : Py_None);
            if (ctx != NULL) {
                exc = PyErr_GetRaisedException();
                (void)PyContext_Exit(ctx);
                PyErr_SetRaisedException(exc);
            }
        }
        Py_XDECREF(r);
        /* restore the thread's SynchronizationContext the continuation
         * may have changed (3.7: EC and context are restored) */
        exc = PyErr_GetRaisedException();
        if (sync_context_current() != saved
            && sync_context_set(st, saved) < 0) {
            PyErr_WriteUnraisable(cont);
        }
        Py_XDECREF(saved);
        PyErr_SetRaisedException(exc);
    }
    exc = PyErr_GetRaisedException();
    Py_XDECREF(cont);
    Py_XDECREF(state);
    Py_XDECREF(ctx);
    Py_XDECREF(target);
    PyErr_SetRaisedException(exc);
}

static PyObject *
mr_on_completed(st_state *st, MRVTSCObject *self, PyObject *cont,
                PyObject *state, PyObject *token, long flags)
{
    PyObject *ctx = NULL, *target = NULL;
    uint32_t tok;
    int rc;

    if (cont == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "on_completed(): continuation must not be None");
        return NULL;
    }
    if (!PyCallable_Check(cont)) {
        PyErr_Format(PyExc_TypeError,
                     "on_completed(): continuation must be callable, not "
                     "%.100s", Py_TYPE(cont)->tp_name);
        return NULL;
    }
    if (mr_check_token(st, token, &tok) < 0) {
        return NULL;
    }
    rc = st_vtsource_can_register(&self->mr_core, tok);
    if (rc == ST_EINVAL) {
        raise_stale(st);
        return NULL;
    }
    if (rc != 0) {
        PyErr_SetString(st->InvalidOperationError,
                        "on_completed() was already called for this "
                        "version of the source: a ValueTask may be awaited "
                        "only once (use preserve() or as_task() to await "
                        "it more than once)");
        return NULL;
    }
    if ((flags & VTS_FLOW_EXECUTION_CONTEXT)
        && (ctx = PyContext_CopyCurrent()) == NULL) {
        return NULL;
    }
    if (flags & VTS_USE_SCHEDULING_CONTEXT) {
        target = capture_target(st);
        if (target == NULL && PyErr_Occurred()) {
            Py_XDECREF(ctx);
            return NULL;
        }
    }
    Py_XSETREF(self->mr_cont, Py_NewRef(cont));
    Py_XSETREF(self->mr_state, Py_NewRef(state));
    Py_XSETREF(self->mr_context, ctx);    /* steals */
    Py_XSETREF(self->mr_target, target);  /* steals */
    self->mr_node.fn = mr_fire;
    /* accepted (checked above with the GIL held); a completed source
     * runs mr_fire now, asynchronously */
    rc = st_vtsource_on_completed(&self->mr_core, tok, &self->mr_node);
    ST_ASSERT(rc == 0);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -------------------------------------------------- sources (generic) */

/* The status of a SOURCE-backed vt: 0..3, or -1 with an error. */
int
source_status(st_state *st, ValueTaskObject *vt)
{
    PyObject *r;
    long s;
    if (Py_TYPE(vt->vt_obj) == st->vt.MRVTSC_type) {
        int status;
        if (mr_status(st, MRVTSCObject_CAST(vt->vt_obj), vt->vt_value,
                      &status) < 0) {
            return -1;
        }
        return status;
    }
    r = PyObject_CallMethodOneArg(vt->vt_obj, st->vt.str_get_status,
                                  vt->vt_value);
    if (r == NULL) {
        return -1;
    }
    s = PyLong_Check(r) && !PyBool_Check(r) ? PyLong_AsLong(r) : -2;
    if (s == -2 || s < 0 || s > 3) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            /* H2: a wrong type is a TypeError, a wrong int a ValueError */
            PyErr_Format(s == -2 && !PyLong_Check(r) ? PyExc_TypeError
                                                     : PyExc_ValueError,
                         "get_status() must return a ValueTaskSourceStatus, "
                         "not %R", r);
        }
        Py_DECREF(r);
        return -1;
    }
    Py_DECREF(r);
    return (int)s;
}

PyObject *
source_result(st_state *st, ValueTaskObject *vt)
{
    if (Py_TYPE(vt->vt_obj) == st->vt.MRVTSC_type) {
        return mr_result(st, MRVTSCObject_CAST(vt->vt_obj), vt->vt_value);
    }
    return PyObject_CallMethodOneArg(vt->vt_obj, st->vt.str_get_result,
                                     vt->vt_value);
}

/* source.on_completed(continuation, state, token, flags). */
PyObject *
source_on_completed(st_state *st, ValueTaskObject *vt, PyObject *cont,
                    PyObject *state, int flags)
{
    PyObject *args[5];
    if (Py_TYPE(vt->vt_obj) == st->vt.MRVTSC_type) {
        return mr_on_completed(st, MRVTSCObject_CAST(vt->vt_obj), cont,
                               state, vt->vt_value, flags);
    }
    args[0] = vt->vt_obj;
    args[1] = cont;
    args[2] = state;
    args[3] = vt->vt_value;
    args[4] = st->vt.flags_members[flags & 3];
    return PyObject_VectorcallMethod(st->str_on_completed, args,
                                     5 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     NULL);
}

/* ---------------------------------------- ManualResetValueTaskSourceCore */

static PyObject *
MRVTSC_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    MRVTSCObject *self;
    if ((args != NULL && PyTuple_GET_SIZE(args) != 0)
        || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        if (tp == g_st->vt.MRVTSC_type) {
            PyErr_SetString(PyExc_TypeError,
                            "ManualResetValueTaskSourceCore() takes no "
                            "arguments");
            return NULL;
        }
        /* a subclass's __init__ takes its own arguments */
    }
    self = (MRVTSCObject *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    st_vtsource_init(&self->mr_core);
    self->mr_node.fn = mr_fire;
    return (PyObject *)self;
}

static int
MRVTSC_traverse(PyObject *op, visitproc visit, void *arg)
{
    MRVTSCObject *self = MRVTSCObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->mr_result);
    Py_VISIT(self->mr_tb);
    Py_VISIT(self->mr_cont);
    Py_VISIT(self->mr_state);
    Py_VISIT(self->mr_context);
    Py_VISIT(self->mr_target);
    return 0;
}

static int
MRVTSC_clear(PyObject *op)
{
    MRVTSCObject *self = MRVTSCObject_CAST(op);
    Py_CLEAR(self->mr_result);
    Py_CLEAR(self->mr_tb);
    Py_CLEAR(self->mr_cont);
    Py_CLEAR(self->mr_state);
    Py_CLEAR(self->mr_context);
    Py_CLEAR(self->mr_target);
    return 0;
}

static void
MRVTSC_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4: holds a result (maybe a task) and a continuation */
    Py_TRASHCAN_BEGIN(op, MRVTSC_dealloc)
    if (MRVTSCObject_CAST(op)->mr_weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    (void)MRVTSC_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
mr_version_get(PyObject *op, void *closure)
{
    return PyLong_FromUnsignedLong(
        st_vtsource_version(&MRVTSCObject_CAST(op)->mr_core));
}

static PyObject *
mr_run_async_get(PyObject *op, void *closure)
{
    return PyBool_FromLong(
        st_vtsource_run_async(&MRVTSCObject_CAST(op)->mr_core));
}

static int
mr_run_async_set(PyObject *op, PyObject *value, void *closure)
{
    int on;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "run_continuations_asynchronously cannot be deleted");
        return -1;
    }
    on = PyObject_IsTrue(value);
    if (on < 0) {
        return -1;
    }
    st_vtsource_set_run_async(&MRVTSCObject_CAST(op)->mr_core, on);
    return 0;
}

static PyObject *
mr_reset(PyObject *op, PyObject *unused)
{
    MRVTSCObject *self = MRVTSCObject_CAST(op);
    PyObject *old[6] = {self->mr_result, self->mr_tb, self->mr_cont,
                        self->mr_state, self->mr_context, self->mr_target};
    int i;
    self->mr_result = NULL;
    self->mr_tb = NULL;
    self->mr_cont = NULL;
    self->mr_state = NULL;
    self->mr_context = NULL;
    self->mr_target = NULL;
    (void)st_vtsource_reset(&self->mr_core);
    for (i = 0; i < 6; i++) {
        Py_XDECREF(old[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *
mr_complete(MRVTSCObject *self, int status, PyObject *value)
{
    st_state *st = g_st;
    if (!st_vtsource_try_reserve(&self->mr_core)) {
        PyErr_SetString(st->InvalidOperationError,
                        "the operation was already completed (set_result or "
                        "set_exception was called for this version); "
                        "reset() starts the next one");
        return NULL;
    }
    /* no Python code until complete publishes (only stores) */
    Py_XSETREF(self->mr_result, Py_NewRef(value));
    if (status != ST_VTS_SUCCEEDED) {
        Py_XSETREF(self->mr_tb, PyException_GetTraceback(value));
    }
    st_vtsource_complete(&self->mr_core, status); /* may run mr_fire */
    if (PyErr_Occurred()) {
        return NULL; /* an inline continuation raised (3.7) */
    }
    Py_RETURN_NONE;
}

static PyObject *
mr_set_result(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "set_result(result=None, /)");
        return NULL;
    }
    return mr_complete(MRVTSCObject_CAST(op), ST_VTS_SUCCEEDED,
                       nargs == 1 ? args[0] : Py_None);
}

static PyObject *
mr_set_exception(PyObject *op, PyObject *exc)
{
    st_state *st = g_st;
    PyObject *inst, *r;
    int status;
    if (exc == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "set_exception(): exception must not be None");
        return NULL;
    }
    if (PyExceptionClass_Check(exc)) {
        inst = PyObject_CallNoArgs(exc);
        if (inst == NULL) {
            return NULL;
        }
    }
    else if (PyExceptionInstance_Check(exc)) {
        inst = Py_NewRef(exc);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "set_exception(): exception must be an exception, not "
                     "%.100s", Py_TYPE(exc)->tp_name);
        return NULL;
    }
    /* 3.4: an OperationCanceledError means canceled */
    status = PyObject_TypeCheck(inst, (PyTypeObject *)
                                          st->OperationCanceledError)
                 ? ST_VTS_CANCELED : ST_VTS_FAULTED;
    r = mr_complete(MRVTSCObject_CAST(op), status, inst);
    Py_DECREF(inst);
    return r;
}

static PyObject *
mr_get_status(PyObject *op, PyObject *token)
{
    st_state *st = g_st;
    int status;
    if (mr_status(st, MRVTSCObject_CAST(op), token, &status) < 0) {
        return NULL;
    }
    return Py_NewRef(st->vt.status_members[status]);
}

static PyObject *
mr_get_result(PyObject *op, PyObject *token)
{
    return mr_result(g_st, MRVTSCObject_CAST(op), token);
}

static PyObject *
mr_on_completed_meth(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long flags;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "on_completed(continuation, state, token, flags)");
        return NULL;
    }
    if (!PyLong_Check(args[3])) {
        PyErr_Format(PyExc_TypeError,
                     "on_completed(): flags must be "
                     "ValueTaskSourceOnCompletedFlags, not %.100s",
                     Py_TYPE(args[3])->tp_name);
        return NULL;
    }
    /* only the two low bits mean anything; the rest is ignored (2.3) */
    flags = PyLong_AsUnsignedLongMask(args[3]);
    if (flags == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    return mr_on_completed(g_st, MRVTSCObject_CAST(op), args[0], args[1],
                           args[2], (long)(flags & 0x3u));
}

static PyObject *
MRVTSC_repr(PyObject *op)
{
    static const char *names[] = {"PENDING", "SUCCEEDED", "FAULTED",
                                  "CANCELED"};
    MRVTSCObject *self = MRVTSCObject_CAST(op);
    uint32_t v = st_vtsource_version(&self->mr_core);
    int status = ST_VTS_PENDING;
    (void)st_vtsource_get_status(&self->mr_core, v, &status);
    return PyUnicode_FromFormat("<%s version=%lu status=%s>",
                                Py_TYPE(op)->tp_name, (unsigned long)v,
                                names[status]);
}

static PyMethodDef MRVTSC_methods[] = {
    {"reset", mr_reset, METH_NOARGS,
     PyDoc_STR("reset($self, /)\n--\n\n"
               "Start the next operation: pending again, version + 1\n"
               "(like ManualResetValueTaskSourceCore.Reset).")},
    {"set_result", (PyCFunction)(void (*)(void))mr_set_result, METH_FASTCALL,
     PyDoc_STR("set_result($self, result=None, /)\n--\n\n"
               "Complete the operation with result; InvalidOperationError\n"
               "if it already completed.  A continuation registered first\n"
               "runs here unless run_continuations_asynchronously is set\n"
               "or it captured a context.")},
    {"set_exception", mr_set_exception, METH_O,
     PyDoc_STR("set_exception($self, exception, /)\n--\n\n"
               "Fail the operation (canceled for an\n"
               "OperationCanceledError); InvalidOperationError if it\n"
               "already completed.")},
    {"get_status", mr_get_status, METH_O,
     PyDoc_STR("get_status($self, token, /)\n--\n\n"
               "The ValueTaskSourceStatus; InvalidOperationError for a\n"
               "token that is not the current version.")},
    {"get_result", mr_get_result, METH_O,
     PyDoc_STR("get_result($self, token, /)\n--\n\n"
               "The result, or the stored exception itself; repeatable\n"
               "until reset().  InvalidOperationError for a wrong token or\n"
               "an operation that has not completed.")},
    {"on_completed", (PyCFunction)(void (*)(void))mr_on_completed_meth,
     METH_FASTCALL,
     PyDoc_STR("on_completed($self, continuation, state, token, flags, /)"
               "\n--\n\n"
               "Call continuation(state) once the operation completes\n"
               "(always asynchronously if it already has).  flags:\n"
               "ValueTaskSourceOnCompletedFlags (USE_SCHEDULING_CONTEXT\n"
               "captures the SynchronizationContext/TaskScheduler,\n"
               "FLOW_EXECUTION_CONTEXT the contextvars context).  A second\n"
               "call for one version raises InvalidOperationError.")},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     PyDoc_STR("See PEP 585")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef MRVTSC_getset[] = {
    {"version", mr_version_get, NULL,
     PyDoc_STR("The current version: the token of this operation's "
               "ValueTask."),
     NULL},
    {"run_continuations_asynchronously", mr_run_async_get, mr_run_async_set,
     PyDoc_STR("If True, set_result/set_exception never run the\n"
               "continuation themselves; it is queued instead."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef MRVTSC_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(MRVTSCObject, mr_weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot MRVTSC_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "ManualResetValueTaskSourceCore()\n--\n\n"
         "A reusable operation behind ValueTasks, like .NET's\n"
         "ManualResetValueTaskSourceCore<T>: give out\n"
         "ValueTask(source, source.version), complete it with set_result\n"
         "or set_exception, reset() for the next one.  It implements the\n"
         "IValueTaskSource protocol itself; subclass it or embed it.")},
    {Py_tp_new, MRVTSC_new},
    {Py_tp_traverse, MRVTSC_traverse},
    {Py_tp_clear, MRVTSC_clear},
    {Py_tp_dealloc, MRVTSC_dealloc},
    {Py_tp_repr, MRVTSC_repr},
    {Py_tp_methods, MRVTSC_methods},
    {Py_tp_getset, MRVTSC_getset},
    {Py_tp_members, MRVTSC_members},
    {0, NULL},
};

PyType_Spec MRVTSC_spec = {
    .name = "sharptask.ManualResetValueTaskSourceCore",
    .basicsize = sizeof(MRVTSCObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = MRVTSC_slots,
};
