/* py_vt_awaiter.c - ValueTaskAwaiter and ConfiguredValueTaskAwaitable
 * (SPEC V1, V2): what ValueTask.get_awaiter and configure_await return.
 */
#include "binding.h"
#include "py_builder.h"
#include "py_awaiter.h"   /* Awaiter_traverse/clear/dealloc */
#include "py_task_impl.h" /* iternext_via_send */
#include "py_vt.h"

#include <stddef.h> /* offsetof */

/* ------------------------------------------------------------ awaiters */

/*
 *     class ValueTaskAwaiter:            # like ValueTaskAwaiter<T>
 *         is_completed: bool
 *         def get_result(self)           # raises the exception itself
 *         def on_completed(self, action) / unsafe_on_completed(action)
 *     class ConfiguredValueTaskAwaitable(ValueTaskAwaiter):
 *         def __await__(self): return self   # consumes the ValueTask
 *         def get_awaiter(self): return self # consumes the ValueTask
 */

static PyObject *
vta_is_completed_get(PyObject *op, void *closure)
{
    int s = vt_status(g_st, VTAwaiterObject_CAST(op)->vta_vt);
    if (s < 0) {
        return NULL;
    }
    return PyBool_FromLong(s != ST_VTS_PENDING);
}

static PyObject *
vta_get_result(PyObject *op, PyObject *unused)
{
    return vt_get_result(g_st, VTAwaiterObject_CAST(op)->vta_vt, 1);
}

/* The action continuation for a source: an Action ignores its arguments,
 * so it is passed as is; any other callable goes through _invoke_action
 * with the action as the state (.NET's s_invokeActionDelegate). */
static PyObject *
vta_register(PyObject *op, PyObject *action, int safe)
{
    st_state *st = g_st;
    VTAwaiterObject *aw = VTAwaiterObject_CAST(op);
    ValueTaskObject *vt = aw->vta_vt;
    PyObject *target, *meth, *r;

    if (!PyCallable_Check(action)) {
        PyErr_Format(PyExc_TypeError, "action must be callable, not %.100s",
                     Py_TYPE(action)->tp_name);
        return NULL;
    }
    if (vt->vt_kind == VT_SOURCE) {
        int flags = (aw->vta_continue ? VTS_USE_SCHEDULING_CONTEXT : 0)
                    | (safe ? VTS_FLOW_EXECUTION_CONTEXT : 0);
        if (Py_TYPE(action) == st->Action_type) {
            r = source_on_completed(st, vt, action, Py_None, flags);
        }
        else {
            r = source_on_completed(st, vt, st->vt.invoke_action, action,
                                    flags);
        }
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    if (vt->vt_kind == VT_BOX && BOX_STALE(vt)) {
        raise_stale(st);
        return NULL;
    }
    /* a Task (or a result: the completed task, 1.10: a post even so) */
    target = vt->vt_kind == VT_RESULT ? st->cached[0] : vt->vt_obj;
    meth = PyObject_CallMethodOneArg(target, st->vt.str_configure_await,
                                     aw->vta_continue ? Py_True : Py_False);
    if (meth == NULL) {
        return NULL;
    }
    r = PyObject_CallMethodOneArg(meth, safe ? st->str_on_completed
                                             : st->str_unsafe_on_completed,
                                  action);
    Py_DECREF(meth);
    return r;
}

static PyObject *
vta_on_completed(PyObject *op, PyObject *action)
{
    return vta_register(op, action, 1);
}

static PyObject *
vta_unsafe_on_completed(PyObject *op, PyObject *action)
{
    return vta_register(op, action, 0);
}

static PyObject *
vta_am_await(PyObject *op)
{
    if (vt_consume(g_st, VTAwaiterObject_CAST(op)->vta_vt) < 0) {
        return NULL;
    }
    return Py_NewRef(op);
}

static PySendResult
vta_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    VTAwaiterObject *aw = VTAwaiterObject_CAST(op);
    PySendResult r = vt_send(g_st, aw->vta_vt, aw->vta_continue, presult);
    if (r == PYGEN_NEXT) { /* to the builder, or to asyncio (I2) */
        *presult = await_yield(g_st, *presult);
        return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    return r;
}

static PyObject *
vta_iternext(PyObject *op)
{
    return iternext_via_send(op, vta_am_send);
}

static PyObject *
vta_get_awaiter(PyObject *op, PyObject *unused)
{
    return vta_am_await(op);
}

static PyObject *
vta_value_task_get(PyObject *op, void *closure)
{
    return Py_NewRef(VTAwaiterObject_CAST(op)->vta_vt);
}

/* The awaiters' lifecycle is py_awaiter.c's (one object after the
 * header, the same place in both layouts). */
_Static_assert(offsetof(VTAwaiterObject, vta_vt)
                   == offsetof(AwaiterObject, aw_task),
               "VTAwaiterObject must hold its ValueTask where AwaiterObject "
               "holds its task");

#define VTA_COMMON_METHODS                                                  \
    {"get_result", vta_get_result, METH_NOARGS,                             \
     PyDoc_STR("get_result($self, /)\n--\n\n"                               \
               "The result, or the exception itself (like GetResult).\n"    \
               "A Task-backed one blocks; a pending source-backed or\n"    \
               "pooled one raises InvalidOperationError.")},                \
    {"on_completed", vta_on_completed, METH_O,                              \
     PyDoc_STR("on_completed($self, action, /)\n--\n\n"                     \
               "Call action() when the operation completes, flowing the\n" \
               "contextvars context, on the captured context if any.")},   \
    {"unsafe_on_completed", vta_unsafe_on_completed, METH_O,                \
     PyDoc_STR("unsafe_on_completed($self, action, /)\n--\n\n"              \
               "Like on_completed, without flowing the contextvars "        \
               "context.")},                                                \
    ST_AWAIT_THROW_METHODDEF,                                               \
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,             \
     PyDoc_STR("See PEP 585")}

static PyMethodDef VTAwaiter_methods[] = {
    VTA_COMMON_METHODS,
    {NULL, NULL, 0, NULL},
};

static PyMethodDef VTConfigured_methods[] = {
    VTA_COMMON_METHODS,
    {"get_awaiter", vta_get_awaiter, METH_NOARGS,
     PyDoc_STR("get_awaiter($self, /)\n--\n\n"
               "Return self (like ConfiguredValueTaskAwaitable.GetAwaiter)."
               "\nConsumes the ValueTask.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef VTAwaiter_getset[] = {
    {"is_completed", vta_is_completed_get, NULL,
     PyDoc_STR("True if awaiting would not suspend."), NULL},
    {"value_task", vta_value_task_get, NULL,
     PyDoc_STR("The ValueTask this awaits."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot VTAwaiter_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "The awaiter of a ValueTask, like ValueTaskAwaiter<T>.")},
    {Py_tp_traverse, Awaiter_traverse},
    {Py_tp_clear, Awaiter_clear},
    {Py_tp_dealloc, Awaiter_dealloc},
    {Py_tp_methods, VTAwaiter_methods},
    {Py_tp_getset, VTAwaiter_getset},
    {0, NULL},
};

PyType_Spec VTAwaiter_spec = {
    .name = "sharptask.ValueTaskAwaiter",
    .basicsize = sizeof(VTAwaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = VTAwaiter_slots,
};

static PyType_Slot VTConfigured_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "What ValueTask.configure_await returns, like\n"
         "ConfiguredValueTaskAwaitable<T>; it is its own awaiter.")},
    {Py_tp_traverse, Awaiter_traverse},
    {Py_tp_clear, Awaiter_clear},
    {Py_tp_dealloc, Awaiter_dealloc},
    {Py_tp_methods, VTConfigured_methods},
    {Py_tp_getset, VTAwaiter_getset},
    {Py_tp_iternext, vta_iternext},
    {Py_am_await, vta_am_await},
    {Py_am_send, vta_am_send},
    {0, NULL},
};

PyType_Spec VTConfigured_spec = {
    .name = "sharptask.ConfiguredValueTaskAwaitable",
    .basicsize = sizeof(VTAwaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = VTConfigured_slots,
};

int
vt_awaiter_module_exec(PyObject *mod, st_state *st)
{
    st_vt_state *vs = &st->vt;
    vs->VTAwaiter_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        mod, &VTAwaiter_spec, NULL);
    if (vs->VTAwaiter_type == NULL
        || PyModule_AddType(mod, vs->VTAwaiter_type) < 0) {
        return -1;
    }
    vs->VTConfigured_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        mod, &VTConfigured_spec, NULL);
    if (vs->VTConfigured_type == NULL
        || PyModule_AddType(mod, vs->VTConfigured_type) < 0) {
        return -1;
    }
    return 0;
}
