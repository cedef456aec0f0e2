/* py_tcs.c - TaskCompletionSource: a promise task and its setters.
 *
 * Every setter completes the task through task_try_complete (py_task.c);
 * TCS_spec is declared in py_tcs.h, and nothing else is exported.
 */
#include "binding.h"
#include "py_task.h"
#include "py_task_impl.h"
#include "py_args.h"
#include "py_state.h"
#include "py_tcs.h"

/* ---------------------------------------------- TaskCompletionSource */

/*
 *     class TaskCompletionSource:
 *         def __init__(self, state=None, options=TaskCreationOptions.NONE)
 *         task: Task
 *         def set_result(self, value=None); def try_set_result(...) -> bool
 *         def set_exception(self, e_or_iterable); try_set_exception
 *         def set_canceled(self, token=None); try_set_canceled
 */
typedef struct TCSObject {
    PyObject_HEAD
    TaskObject *tcs_task;
} TCSObject;

#define TCSObject_CAST(op) ((TCSObject *)(op))

static PyObject *
TCS_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"state", "options", NULL};
    st_state *st = g_st;
    PyObject *state = Py_None, *opts_o = NULL;
    uint32_t options = 0;
    TCSObject *self;
    int is_opts;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:TaskCompletionSource",
                                     kwlist, &state, &opts_o)) {
        return NULL;
    }
    /* issue 9 item 13: like .NET's overloads, TaskCompletionSource(opts)
     * with a TaskCreationOptions member is the options overload, not a
     * state (a plain int, or state=..., stays a state) */
    if (opts_o == NULL && PyTuple_GET_SIZE(args) == 1) {
        is_opts = PyObject_IsInstance(state, st->TaskCreationOptions);
        if (is_opts < 0) {
            return NULL;
        }
        if (is_opts) {
            opts_o = state;
            state = Py_None;
        }
    }
    if (opts_o != NULL
        && parse_options(opts_o, "options", "TaskCreationOptions",
                         TCO_VALID, &options) < 0) {
        return NULL;
    }
    if (options & ~(uint32_t)(0x4 | TCO_RCA)) {
        PyErr_Format(PyExc_ValueError,
                     "options: 0x%x is not valid for a TaskCompletionSource "
                     "(only ATTACHED_TO_PARENT and "
                     "RUN_CONTINUATIONS_ASYNCHRONOUSLY are)",
                     (unsigned)options);
        return NULL;
    }
    self = (TCSObject *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    self->tcs_task = (TaskObject *)task_new_promise(
        st, state == Py_None ? NULL : state, (uint32_t)options);
    if (self->tcs_task == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
tcs_task_get(PyObject *op, void *closure)
{
    return Py_NewRef(TCSObject_CAST(op)->tcs_task);
}

/* Runs a completion; `must` raises InvalidOperationError on losing. */
static PyObject *
tcs_complete(TCSObject *self, int status, PyObject *value, PyObject *token,
             int must)
{
    st_state *st = g_st;
    int won = task_try_complete(self->tcs_task, status, value, token);
    if (pending_exc_restore() < 0) {
        return NULL;
    }
    if (must) {
        if (!won) {
            PyErr_SetString(st->InvalidOperationError,
                            "An attempt was made to transition a task to a "
                            "final state when it had already completed.");
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return PyBool_FromLong(won);
}

static PyObject *
tcs_set_result_impl(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                    int must)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument",
                     must ? "set_result" : "try_set_result");
        return NULL;
    }
    return tcs_complete(TCSObject_CAST(op), ST_STATUS_RAN_TO_COMPLETION,
                        nargs ? args[0] : Py_None, NULL, must);
}

static PyObject *
tcs_set_result(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    return tcs_set_result_impl(op, args, nargs, 1);
}

static PyObject *
tcs_try_set_result(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    return tcs_set_result_impl(op, args, nargs, 0);
}

/* The exception tuple for set_exception (R4.4), built before completing
 * so that no Python code runs inside the completion. */
static PyObject *
exceptions_arg(PyObject *arg)
{
    PyObject *tup;
    Py_ssize_t i;
    if (PyExceptionInstance_Check(arg)) {
        return one_exception(arg);
    }
    if (arg == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "set_exception(): exception must not be None");
        return NULL;
    }
    if (PyUnicode_Check(arg) || PyBytes_Check(arg)
        || PyByteArray_Check(arg) || PyExceptionClass_Check(arg)) {
        /* H2 (issue 9 item 14): a type error, as asyncio's
         * Future.set_exception("x") (a str is iterable, but of str); an
         * exception class is not an instance */
        PyErr_Format(PyExc_TypeError,
                     "set_exception(): exception must be an exception "
                     "instance or an iterable of them, not %.100s",
                     PyExceptionClass_Check(arg)
                         ? "an exception class"
                         : Py_TYPE(arg)->tp_name);
        return NULL;
    }
    tup = PySequence_Tuple(arg);
    if (tup == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError,
                         "set_exception(): exception must be an exception "
                         "or an iterable of exceptions, not %.100s",
                         Py_TYPE(arg)->tp_name);
        }
        return NULL;
    }
    if (PyTuple_GET_SIZE(tup) == 0) {
        Py_DECREF(tup);
        PyErr_SetString(PyExc_ValueError,
                        "set_exception(): exceptions must not be empty");
        return NULL;
    }
    for (i = 0; i < PyTuple_GET_SIZE(tup); i++) {
        if (!PyExceptionInstance_Check(PyTuple_GET_ITEM(tup, i))) {
            PyErr_Format(PyExc_TypeError, /* H2: a type error */
                         "set_exception(): exceptions[%zd] must be an "
                         "exception instance, not %.100s",
                         i, Py_TYPE(PyTuple_GET_ITEM(tup, i))->tp_name);
            Py_DECREF(tup);
            return NULL;
        }
    }
    return tup;
}

static PyObject *
tcs_set_exception_impl(PyObject *op, PyObject *arg, int must)
{
    PyObject *excs = exceptions_arg(arg), *r;
    if (excs == NULL) {
        return NULL;
    }
    r = tcs_complete(TCSObject_CAST(op), ST_STATUS_FAULTED, excs, NULL,
                     must);
    Py_DECREF(excs);
    return r;
}

static PyObject *
tcs_set_exception(PyObject *op, PyObject *arg)
{
    return tcs_set_exception_impl(op, arg, 1);
}

static PyObject *
tcs_try_set_exception(PyObject *op, PyObject *arg)
{
    return tcs_set_exception_impl(op, arg, 0);
}

static PyObject *
tcs_set_canceled_impl(PyObject *op, PyObject *args, PyObject *kwds,
                      int must)
{
    static char *kwlist[] = {"token", NULL};
    PyObject *token = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds,
                                     must ? "|O:set_canceled"
                                          : "|O:try_set_canceled",
                                     kwlist, &token)
        || parse_token(g_st, token, "token", &token) < 0) { /* H2 */
        return NULL;
    }
    return tcs_complete(TCSObject_CAST(op), ST_STATUS_CANCELED, NULL,
                        token, must);
}

static PyObject *
tcs_set_canceled(PyObject *op, PyObject *args, PyObject *kwds)
{
    return tcs_set_canceled_impl(op, args, kwds, 1);
}

static PyObject *
tcs_try_set_canceled(PyObject *op, PyObject *args, PyObject *kwds)
{
    return tcs_set_canceled_impl(op, args, kwds, 0);
}

/* The builder's SetException(OperationCanceledError): canceled, keeping
 * that exception so await re-raises the same object (R6.3). */
static PyObject *
tcs_set_canceled_exception(PyObject *op, PyObject *oce)
{
    st_state *st = g_st;
    PyObject *token, *r;
    if (!PyObject_TypeCheck(oce, (PyTypeObject *)st->OperationCanceledError)) {
        PyErr_Format(PyExc_TypeError, "_set_canceled_exception(): exception "
                     "must be an OperationCanceledError, not %.100s",
                     Py_TYPE(oce)->tp_name);
        return NULL;
    }
    token = PyObject_GetAttr(oce, st->str_cancellation_token);
    if (token == NULL) {
        PyErr_Clear();
    }
    else if (token == Py_None) {
        Py_CLEAR(token);
    }
    r = tcs_complete(TCSObject_CAST(op), ST_STATUS_CANCELED, oce, token, 1);
    Py_XDECREF(token);
    return r;
}

static int
TCS_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(TCSObject_CAST(op)->tcs_task);
    return 0;
}

static int
TCS_clear(PyObject *op)
{
    Py_CLEAR(TCSObject_CAST(op)->tcs_task);
    return 0;
}

static void
TCS_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, TCS_dealloc) /* H4: holds a task */
    (void)TCS_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyMethodDef TCS_methods[] = {
    {"set_result", (PyCFunction)(void (*)(void))tcs_set_result,
     METH_FASTCALL,
     PyDoc_STR("set_result($self, value=None, /)\n--\n\n"
               "Complete the task with value; InvalidOperationError if it\n"
               "is already completed.")},
    {"try_set_result", (PyCFunction)(void (*)(void))tcs_try_set_result,
     METH_FASTCALL,
     PyDoc_STR("try_set_result($self, value=None, /)\n--\n\n"
               "Like set_result; returns False instead of raising.")},
    {"set_exception", tcs_set_exception, METH_O,
     PyDoc_STR("set_exception($self, exception, /)\n--\n\n"
               "Fault the task with an exception or an iterable of them.")},
    {"try_set_exception", tcs_try_set_exception, METH_O,
     PyDoc_STR("try_set_exception($self, exception, /)\n--\n\n"
               "Like set_exception; returns False instead of raising.")},
    {"set_canceled", (PyCFunction)(void (*)(void))tcs_set_canceled,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("set_canceled($self, /, token=None)\n--\n\n"
               "Cancel the task (recording token).")},
    {"try_set_canceled", (PyCFunction)(void (*)(void))tcs_try_set_canceled,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("try_set_canceled($self, /, token=None)\n--\n\n"
               "Like set_canceled; returns False instead of raising.")},
    {"_set_canceled_exception", tcs_set_canceled_exception, METH_O,
     PyDoc_STR("_set_canceled_exception($self, exception, /)\n--\n\n"
               "Internal: cancel, storing the OperationCanceledError.")},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     PyDoc_STR("See PEP 585")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef TCS_getset[] = {
    {"task", tcs_task_get, NULL, PyDoc_STR("The promise task."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot TCS_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "TaskCompletionSource(state=None, options=TaskCreationOptions.NONE)"
         "\n--\n\nA task completed by hand, like TaskCompletionSource<T>.")},
    {Py_tp_new, TCS_new},
    {Py_tp_traverse, TCS_traverse},
    {Py_tp_clear, TCS_clear},
    {Py_tp_dealloc, TCS_dealloc},
    {Py_tp_methods, TCS_methods},
    {Py_tp_getset, TCS_getset},
    {0, NULL},
};

PyType_Spec TCS_spec = {
    .name = "sharptask.TaskCompletionSource",
    .basicsize = sizeof(TCSObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = TCS_slots,
};
