/* py_awaiter.c - TaskAwaiter, ConfiguredTaskAwaitable and the callback
 * nodes registered by on_completed / unsafe_on_completed.
 *
 * The awaiter types wrap a Task and its ConfigureAwaitOptions; a Task's
 * own await (am_send) does not go through them (py_task.c).  The type specs
 * (TaskAwaiter_spec, ConfiguredAwaitable_spec) and the rest this file
 * exports are declared in py_awaiter.h (awaiter_unpack is py_task.c's).
 */
#include "binding.h"
#include "py_combinators.h"
#include "py_awaiter.h"
#include "py_builder.h"
#include "py_task.h"
#include "py_task_impl.h"
#include "py_args.h"
#include "py_state.h"

#include "st_list.h" /* st_container_of */

static PyObject *awaiter_new(st_state *st, PyTypeObject *tp, TaskObject *t,
                             int options);

PyObject *
task_get_awaiter(PyObject *op, PyObject *unused)
{
    return awaiter_new(g_st, g_st->TaskAwaiter_type, TaskObject_CAST(op),
                       CAO_CONTINUE);
}

PyObject *
task_configure_await(PyObject *op, PyObject *arg)
{
    uint32_t options;
    if (PyBool_Check(arg)) {
        /* the continue_on_captured_context overload */
        options = arg == Py_True ? CAO_CONTINUE : 0;
    }
    else if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError,
                     "configure_await(): options must be a bool or "
                     "ConfigureAwaitOptions, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    else if (parse_options(arg, "options", "ConfigureAwaitOptions", 0x7,
                           &options) < 0) {
        return NULL;
    }
    return awaiter_new(g_st, g_st->ConfiguredAwaitable_type,
                       TaskObject_CAST(op), (int)options);
}

/* ------------------------------------------------------------ awaiters */

/*
 *     class TaskAwaiter:                 # like TaskAwaiter
 *         is_completed: bool
 *         def get_result(self)           # blocks; raises the first error
 *         def on_completed(self, action) / unsafe_on_completed(action)
 *     class ConfiguredTaskAwaitable(TaskAwaiter):   # configure_await()
 *         def __await__(self): return self
 *         def get_awaiter(self): return self
 */
/* AwaiterObject: py_task_impl.h (the builder sees through it with
 * awaiter_unpack, in the task layer: issue 10). */

static PyObject *
awaiter_new(st_state *st, PyTypeObject *tp, TaskObject *t, int options)
{
    AwaiterObject *aw = PyObject_GC_New(AwaiterObject, tp);
    if (aw == NULL) {
        return NULL;
    }
    aw->aw_task = (TaskObject *)Py_NewRef(t);
    aw->aw_options = (uint8_t)options;
    aw->aw_yielded = 0;
    PyObject_GC_Track(aw);
    return (PyObject *)aw;
}

static PyObject *
awaiter_is_completed_get(PyObject *op, void *closure)
{
    AwaiterObject *aw = AwaiterObject_CAST(op);
    if ((aw->aw_options & CAO_FORCE) && !aw->aw_yielded) {
        Py_RETURN_FALSE; /* R7.5: FORCE_YIELDING always suspends */
    }
    return PyBool_FromLong(task_status(aw->aw_task)
                           >= ST_STATUS_RAN_TO_COMPLETION);
}

static PyObject *
awaiter_result(st_state *st, AwaiterObject *aw)
{
    TaskObject *t = aw->aw_task;
    if ((aw->aw_options & CAO_SUPPRESS)
        && task_status(t) != ST_STATUS_RAN_TO_COMPLETION) {
        mark_observed(t);
        Py_RETURN_NONE;
    }
    return task_get_result(st, t);
}

static PyObject *
awaiter_get_result(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    AwaiterObject *aw = AwaiterObject_CAST(op);
    if (task_wait_blocking(st, aw->aw_task, UINT64_MAX) < 0) {
        return NULL;
    }
    return awaiter_result(st, aw);
}

void
cb_node_fire(st_cont_t *c, st_task_t *core, int how)
{
    st_state *st = g_st;
    cb_node *n = (cb_node *)c;
    (void)core;
    if (how == ST_RUN_INLINE && can_inline_here(st, n->target)) {
        PyObject *r = PyObject_CallNoArgs(n->action);
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_Exception)) {
                PyErr_WriteUnraisable(n->action);
            }
            else {
                pending_exc_save();
            }
        }
        Py_XDECREF(r);
    }
    else if (schedule_action(st, n->target, n->action) < 0) {
        PyErr_WriteUnraisable(n->action);
    }
    cb_node_free(n);
}

static PyObject *
awaiter_register(AwaiterObject *aw, PyObject *action, int flow)
{
    st_state *st = g_st;
    PyObject *ctx = NULL;
    cb_node *n;

    if (!PyCallable_Check(action)) {
        PyErr_Format(PyExc_TypeError, "action must be callable, not %.100s",
                     Py_TYPE(action)->tp_name);
        return NULL;
    }
    n = PyMem_Malloc(sizeof(*n));
    if (n == NULL) {
        return PyErr_NoMemory();
    }
    if (flow && (ctx = PyContext_CopyCurrent()) == NULL) {
        PyMem_Free(n);
        return NULL;
    }
    n->action = action_new(st, action, NULL, ctx);
    Py_XDECREF(ctx);
    if (n->action == NULL) {
        PyMem_Free(n);
        return NULL;
    }
    n->target = (aw->aw_options & CAO_CONTINUE) ? capture_target(st) : NULL;
    if (n->target == NULL && PyErr_Occurred()) {
        Py_DECREF(n->action);
        PyMem_Free(n);
        return NULL;
    }
    n->cont.fn = cb_node_fire;
    n->cont.kind = ST_CONT_AWAIT;
    if ((aw->aw_options & CAO_FORCE)
        || st_task_add_cont(&aw->aw_task->task_core, &n->cont) != 0) {
        /* completed already: never inline (R3.5, R7.5) */
        cb_node_fire(&n->cont, &aw->aw_task->task_core, ST_RUN_ASYNC);
    }
    Py_RETURN_NONE;
}

static PyObject *
awaiter_on_completed(PyObject *op, PyObject *action)
{
    return awaiter_register(AwaiterObject_CAST(op), action, 1);
}

static PyObject *
awaiter_unsafe_on_completed(PyObject *op, PyObject *action)
{
    return awaiter_register(AwaiterObject_CAST(op), action, 0);
}

static PySendResult
awaiter_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    AwaiterObject *aw = AwaiterObject_CAST(op);
    if (((aw->aw_options & CAO_FORCE) && !aw->aw_yielded)
        || task_status(aw->aw_task) < ST_STATUS_RAN_TO_COMPLETION) {
        aw->aw_yielded = 1;
        *presult = await_yield(g_st, Py_NewRef(op)); /* to the builder */
        return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    *presult = awaiter_result(g_st, aw);
    return *presult == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

static PyObject *
awaiter_iternext(PyObject *op)
{
    return iternext_via_send(op, awaiter_am_send);
}

static PyObject *
awaiter_self(PyObject *op)
{
    return Py_NewRef(op);
}

static PyObject *
awaiter_self_meth(PyObject *op, PyObject *unused)
{
    return Py_NewRef(op);
}

int
Awaiter_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(AwaiterObject_CAST(op)->aw_task);
    return 0;
}

int
Awaiter_clear(PyObject *op)
{
    Py_CLEAR(AwaiterObject_CAST(op)->aw_task);
    return 0;
}

void
Awaiter_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, Awaiter_dealloc) /* H4: holds a task */
    (void)Awaiter_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
awaiter_task_get(PyObject *op, void *closure)
{
    TaskObject *t = AwaiterObject_CAST(op)->aw_task;
    if (t == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(t);
}

static PyMethodDef Awaiter_methods[] = {
    ST_AWAIT_THROW_METHODDEF,
    {"__await__", await_method_iter, METH_NOARGS | METH_COEXIST,
     PyDoc_STR("__await__($self, /)\n--\n\n"
               "An iterator over the await's steps (for `yield from`).")},
    {"get_result", awaiter_get_result, METH_NOARGS,
     PyDoc_STR("get_result($self, /)\n--\n\n"
               "The task's result; blocks until it completes and raises\n"
               "its first exception itself (like GetResult).")},
    {"on_completed", awaiter_on_completed, METH_O,
     PyDoc_STR("on_completed($self, action, /)\n--\n\n"
               "Call action() when the task completes, in the current\n"
               "contextvars context, on the captured context if any.")},
    {"unsafe_on_completed", awaiter_unsafe_on_completed, METH_O,
     PyDoc_STR("unsafe_on_completed($self, action, /)\n--\n\n"
               "Like on_completed, without flowing the contextvars "
               "context.")},
    {"get_awaiter", awaiter_self_meth, METH_NOARGS,
     PyDoc_STR("get_awaiter($self, /)\n--\n\nReturn self.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Awaiter_getset[] = {
    {"is_completed", awaiter_is_completed_get, NULL,
     PyDoc_STR("True if awaiting would not suspend."), NULL},
    {"task", awaiter_task_get, NULL, PyDoc_STR("The awaited task."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot TaskAwaiter_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "The awaiter of a Task, like TaskAwaiter.")},
    {Py_tp_traverse, Awaiter_traverse},
    {Py_tp_clear, Awaiter_clear},
    {Py_tp_dealloc, Awaiter_dealloc},
    {Py_tp_methods, Awaiter_methods},
    {Py_tp_getset, Awaiter_getset},
    {0, NULL},
};

PyType_Spec TaskAwaiter_spec = {
    .name = "sharptask.TaskAwaiter",
    .basicsize = sizeof(AwaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = TaskAwaiter_slots,
};

static PyType_Slot ConfiguredAwaitable_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "What Task.configure_await returns, like "
         "ConfiguredTaskAwaitable;\nit is its own awaiter.")},
    {Py_tp_traverse, Awaiter_traverse},
    {Py_tp_clear, Awaiter_clear},
    {Py_tp_dealloc, Awaiter_dealloc},
    {Py_tp_methods, Awaiter_methods},
    {Py_tp_getset, Awaiter_getset},
    {Py_tp_iternext, awaiter_iternext},
    {Py_am_await, awaiter_self},
    {Py_am_send, awaiter_am_send},
    {0, NULL},
};

PyType_Spec ConfiguredAwaitable_spec = {
    .name = "sharptask.ConfiguredTaskAwaitable",
    .basicsize = sizeof(AwaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ConfiguredAwaitable_slots,
};

/* ------------------------------------------------ given to the task layer */

/* GC support for a cb_node on a task (py_task.c asks through the kind). */
static int
cb_node_visit(st_cont_t *c, visitproc visit, void *arg)
{
    return visit(((cb_node *)c)->action, arg);
}

static void
cb_node_abandon(st_cont_t *c)
{
    cb_node_free((cb_node *)c);
}

const task_node_kind awaiter_node_kind = {
    cb_node_fire, NULL, cb_node_visit, cb_node_abandon};

/* Task's methods that make its awaiters (and throw), composed into the
 * Task type by module.c (task_compose_methods). */
PyMethodDef awaiter_task_methods[] = {
    ST_AWAIT_THROW_METHODDEF,
    {"get_awaiter", task_get_awaiter, METH_NOARGS,
     PyDoc_STR("get_awaiter($self, /)\n--\n\n"
               "Return the task's awaiter (like Task.GetAwaiter).")},
    {"configure_await", task_configure_await, METH_O,
     PyDoc_STR("configure_await($self, options, /)\n--\n\n"
               "Return an awaitable that resumes on the captured context\n"
               "only if options is True or has CONTINUE_ON_CAPTURED_CONTEXT\n"
               "(like Task.ConfigureAwait).")},
    {NULL, NULL, 0, NULL},
};
