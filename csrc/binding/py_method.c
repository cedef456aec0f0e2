/* py_method.c - the async-method type: what @async_method and
 * @async_value_method return (SPEC A1, V5).  One implementation with a
 * mode, chosen when the method is made (issue 10):
 *
 *     METHOD_TASK     AsyncTaskMethodBuilder: a call returns a Task
 *     METHOD_VALUE    AsyncValueTaskMethodBuilder: a call returns a
 *                     ValueTask; no Task if the body finishes at once
 *     METHOD_POOLED   PoolingAsyncValueTaskMethodBuilder: the same, and
 *                     the box of a call that suspends is rented from the
 *                     pool (py_vt_pool.c)
 *
 *     class AsyncMethod:          # @async_method
 *     class AsyncValueMethod:     # @async_value_method(pooling=False)
 *         pooling: bool           # (AsyncValueMethod only)
 *         def __call__(self, *args, **kwargs) -> Task / ValueTask
 *         def __get__(self, obj, type) -> bound method
 *
 * The two Python classes stay (isinstance and the typing stubs tell a
 * Task method from a ValueTask one), but they are one C type: one
 * layout, one call, one set of slots; only the constructor, the repr
 * and the `pooling` attribute differ.  A call runs the body's first step
 * through builder_start / builder_start_value (py_builder.c), which share
 * one driving loop (start_steps, run_steps: MoveNext).
 */
#include "binding.h"
#include "py_builder.h"
#include "py_method.h"
#include "py_task.h"
#include "py_vt.h"

#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef (3.11) */

enum { METHOD_TASK = 0, METHOD_VALUE = 1, METHOD_POOLED = 2 };

typedef struct MethodObject {
    PyObject_HEAD
    PyObject *m_func;
    PyObject *m_dict;
    vectorcallfunc m_vectorcall;
    int m_mode; /* METHOD_* */
} MethodObject;

#define MethodObject_CAST(op) ((MethodObject *)(op))

/* The body returned something that is not a coroutine: a Task method
 * passes a Task through, a ValueTask method a ValueTask (or a Task,
 * wrapped); anything else is a TypeError.  Refs: new; steals obj. */
static PyObject *
method_not_coroutine(st_state *st, int mode, PyObject *obj)
{
    if (mode == METHOD_TASK) {
        if (Task_Check(st, obj)) {
            return obj;
        }
    }
    else {
        if (PyObject_TypeCheck(obj, st->vt.ValueTask_type)) {
            return obj;
        }
        if (Task_Check(st, obj)) {
            PyObject *res = vt_new_task(st, obj);
            Py_DECREF(obj);
            return res;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "an @%s must return a coroutine (be an async def), but it "
                 "returned %.100s",
                 mode == METHOD_TASK ? "async_method" : "async_value_method",
                 Py_TYPE(obj)->tp_name);
    Py_DECREF(obj);
    return NULL;
}

/* A ValueTask method's call: the ValueTask for the body's first step. */
static PyObject *
method_start_value(st_state *st, PyObject *coro, int mode)
{
    PyObject *value, *task, *res;
    int rc = builder_start_value(st, coro,
                                 mode == METHOD_POOLED ? box_rent : NULL, st,
                                 &value, &task);
    if (rc < 0) {
        return NULL;
    }
    if (rc == 1) {
        /* 4.2: finished synchronously: no box, no Task */
        res = vt_new_result(st, value);
        Py_DECREF(value);
        return res;
    }
    if (TaskObject_CAST(task)->task_flags & TF_POOLED) {
        res = vt_new_box(st, TaskObject_CAST(task));
    }
    else {
        res = vt_new_task(st, task); /* 4.1: Task-backed */
    }
    Py_DECREF(task);
    return res;
}

static PyObject *
method_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    st_state *st = g_st;
    MethodObject *m = MethodObject_CAST(op);
    PyObject *func = m->m_func, *coro;
    if (PyFunction_Check(func)) {
        /* the usual async def: its own vectorcall, as PyObject_Vectorcall
         * would call it, less the result check that catches a C
         * callable's bug (issue 10, W2b) */
        coro = PyVectorcall_Function(func)(func, args, nargsf, kwnames);
    }
    else {
        coro = PyObject_Vectorcall(func, args, nargsf, kwnames);
    }
    if (coro == NULL) {
        return NULL;
    }
    if (!PyCoro_CheckExact(coro) && !is_coroutine_like(coro)) {
        return method_not_coroutine(st, m->m_mode, coro);
    }
    if (m->m_mode == METHOD_TASK) {
        return builder_start(st, coro, NULL);
    }
    return method_start_value(st, coro, m->m_mode);
}

/* -------------------------------------------------------- lifecycle */

static PyObject *
method_make(PyTypeObject *tp, PyObject *func, int mode)
{
    MethodObject *self;
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not %.100s",
                     Py_TYPE(func)->tp_name);
        return NULL;
    }
    self = (MethodObject *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    self->m_func = Py_NewRef(func);
    self->m_dict = NULL;
    self->m_vectorcall = method_vectorcall;
    self->m_mode = mode;
    return (PyObject *)self;
}

static PyObject *
AsyncMethod_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    PyObject *func;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "AsyncMethod() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "AsyncMethod", 1, 1, &func)) {
        return NULL;
    }
    return method_make(tp, func, METHOD_TASK);
}

static PyObject *
AsyncValueMethod_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fn", "pooling", NULL};
    PyObject *func;
    int pooling = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$p:AsyncValueMethod",
                                     kwlist, &func, &pooling)) {
        return NULL;
    }
    return method_make(tp, func, pooling ? METHOD_POOLED : METHOD_VALUE);
}

static PyObject *
Method_descr_get(PyObject *op, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(op);
    }
    return PyMethod_New(op, obj);
}

static int
Method_traverse(PyObject *op, visitproc visit, void *arg)
{
    MethodObject *m = MethodObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(m->m_func);
    Py_VISIT(m->m_dict);
    return 0;
}

static int
Method_clear(PyObject *op)
{
    MethodObject *m = MethodObject_CAST(op);
    Py_CLEAR(m->m_func);
    Py_CLEAR(m->m_dict);
    return 0;
}

static void
Method_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, Method_dealloc) /* H4: a function, a dict */
    (void)Method_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
Method_repr(PyObject *op)
{
    MethodObject *m = MethodObject_CAST(op);
    switch (m->m_mode) {
    case METHOD_TASK:
        return PyUnicode_FromFormat("<async_method %R>", m->m_func);
    case METHOD_POOLED:
        return PyUnicode_FromFormat("<async_value_method(pooling=True) %R>",
                                    m->m_func);
    default:
        return PyUnicode_FromFormat("<async_value_method %R>", m->m_func);
    }
}

static PyObject *
method_func_get(PyObject *op, void *closure)
{
    return Py_NewRef(MethodObject_CAST(op)->m_func);
}

static PyObject *
method_pooling_get(PyObject *op, void *closure)
{
    return PyBool_FromLong(MethodObject_CAST(op)->m_mode == METHOD_POOLED);
}

#define METHOD_COMMON_GETSET                                                \
    {"__func__", method_func_get, NULL,                                     \
     PyDoc_STR("The async def function."), NULL},                           \
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL,    \
     NULL}

static PyGetSetDef AsyncMethod_getset[] = {
    METHOD_COMMON_GETSET,
    {NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef AsyncValueMethod_getset[] = {
    METHOD_COMMON_GETSET,
    {"pooling", method_pooling_get, NULL,
     PyDoc_STR("True for the PoolingAsyncValueTaskMethodBuilder."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Method_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET,
     offsetof(MethodObject, m_vectorcall), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(MethodObject, m_dict),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* The slots both classes share; each spec adds its doc, new and getset. */
#define METHOD_COMMON_SLOTS                                                 \
    {Py_tp_call, PyVectorcall_Call},                                        \
    {Py_tp_descr_get, Method_descr_get},                                    \
    {Py_tp_traverse, Method_traverse},                                      \
    {Py_tp_clear, Method_clear},                                            \
    {Py_tp_dealloc, Method_dealloc},                                        \
    {Py_tp_repr, Method_repr},                                              \
    {Py_tp_members, Method_members}

#define METHOD_FLAGS                                                        \
    (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE     \
     | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR)

static PyType_Slot AsyncMethod_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "AsyncMethod(fn)\n--\n\n"
         "An async def driven by AsyncTaskMethodBuilder semantics: calling\n"
         "it runs the body now and returns a Task.  Use @async_method.")},
    {Py_tp_new, AsyncMethod_new},
    {Py_tp_getset, AsyncMethod_getset},
    METHOD_COMMON_SLOTS,
    {0, NULL},
};

PyType_Spec AsyncMethod_spec = {
    .name = "sharptask.AsyncMethod",
    .basicsize = sizeof(MethodObject),
    .flags = METHOD_FLAGS,
    .slots = AsyncMethod_slots,
};

static PyType_Slot AsyncValueMethod_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "AsyncValueMethod(fn, *, pooling=False)\n--\n\n"
         "An async def driven by AsyncValueTaskMethodBuilder semantics:\n"
         "calling it runs the body now and returns a ValueTask (with no\n"
         "Task when the body finishes synchronously); with pooling, the\n"
         "PoolingAsyncValueTaskMethodBuilder's boxes are reused.  Use\n"
         "@async_value_method.")},
    {Py_tp_new, AsyncValueMethod_new},
    {Py_tp_getset, AsyncValueMethod_getset},
    METHOD_COMMON_SLOTS,
    {0, NULL},
};

PyType_Spec AsyncValueMethod_spec = {
    .name = "sharptask.AsyncValueMethod",
    .basicsize = sizeof(MethodObject),
    .flags = METHOD_FLAGS,
    .slots = AsyncValueMethod_slots,
};
