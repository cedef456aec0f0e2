/* py_factories.c - the Task static factories (run, the factory's
 * start_new, delay, yield_, from_result, from_exception, from_canceled,
 * from_future) and the glue a custom TaskScheduler drives a queued task
 * through (_try_execute_task, _task_delegate, _complete_delegate,
 * _current_scheduler, _scheduled_resume).
 *
 * A delegate task made here runs through task_execute (py_task.c) on the
 * pool or on its scheduler.
 */
#include "binding.h"
#include "py_factories.h"
#include "py_task.h"
#include "py_task_impl.h"
#include "py_args.h"
#include "py_builder.h"
#include "py_cancel_reg.h"
#include "py_delay.h"
#include "py_pool.h"
#include "py_state.h"
#include "py_timer.h"

/* ---------------------------------------------- Task static methods */

PyObject *
task_run(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    st_state *st = g_st;
    PyObject *token = Py_None;
    TaskObject *t;
    Py_ssize_t i;

    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "run() missing argument: fn");
        return NULL;
    }
    if (kwnames != NULL) {
        for (i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (!PyUnicode_Check(k)
                || !PyUnicode_EqualToUTF8(k, "cancellation_token")) {
                PyErr_Format(PyExc_TypeError,
                             "run() got an unexpected keyword argument %R",
                             k);
                return NULL;
            }
            token = args[nargs + i];
        }
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "run(): fn must be callable, not "
                     "%.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (parse_token(st, token, "cancellation_token", &token) < 0) {
        return NULL;
    }
    if (token == NULL) {
        token = Py_None;
    }
    if (token != Py_None) {
        int canceled = cancel_token_check(st, token); /* py_cancel.c */
        if (canceled < 0) {
            return NULL;
        }
        if (canceled) {
            return task_new_canceled(st, NULL, token);
        }
    }
    t = task_alloc(st, TASK_DELEGATE, ST_STATUS_WAITING_TO_RUN,
                   0x8 /* DENY_CHILD_ATTACH */);
    if (t == NULL) {
        return NULL;
    }
    task_set_fn(t, Py_NewRef(args[0]));
    t->task_arg = PyTuple_New(nargs - 1);
    t->task_context = PyContext_CopyCurrent();
    if (t->task_arg == NULL || t->task_context == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    for (i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(t->task_arg, i - 1, Py_NewRef(args[i]));
    }
    if (token != Py_None && task_x_put(t, x_token, Py_NewRef(token)) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    if (task_queue_work(st, t, task_work_run) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    if (task_token(t) != NULL && cancel_watch_delegate(st, t) < 0) {
        Py_DECREF(t); /* R1.7: canceled at once if its token fires */
        return NULL;
    }
    return (PyObject *)t;
}

/* start_new(fn, args_tuple, options): used by TaskFactory in Python. */
PyObject *
task_start_new_raw(PyObject *unused, PyObject *args)
{
    st_state *st = g_st;
    PyObject *fn, *fargs, *ctx, *opts_o;
    uint32_t options;
    TaskObject *t;

    PyObject *scheduler = Py_None, *token = Py_None;
    if (!PyArg_ParseTuple(args, "OO!O|OO:_start_new", &fn, &PyTuple_Type,
                          &fargs, &opts_o, &scheduler, &token)) {
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "start_new(): fn must be callable, "
                     "not %.100s", Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (parse_options(opts_o, "options", "TaskCreationOptions", TCO_VALID,
                      &options) < 0
        || parse_token(st, token, "cancellation_token", &token) < 0) {
        return NULL;
    }
    if (token == NULL) {
        token = Py_None;
    }
    if (scheduler == Py_None) {
        scheduler = tls_current_scheduler; /* R5.3: TaskScheduler.current */
    }
    else if (scheduler_is_default(st, scheduler)) {
        scheduler = NULL;
    }
    else if (scheduler_check(st, scheduler) < 0) {
        return NULL;
    }
    t = task_alloc(st, TASK_DELEGATE, ST_STATUS_WAITING_TO_RUN,
                   (uint32_t)options);
    if (t == NULL) {
        return NULL;
    }
    ctx = PyContext_CopyCurrent();
    if (ctx == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    task_set_fn(t, Py_NewRef(fn));
    t->task_arg = Py_NewRef(fargs);
    t->task_context = ctx;
    t->task_flags |= TF_NO_UNWRAP;
    if (task_x_put(t, x_scheduler, Py_XNewRef(scheduler)) < 0
        || (token != Py_None /* R1.6/R1.7, as for Task.run */
            && task_x_put(t, x_token, Py_NewRef(token)) < 0)) {
        Py_DECREF(t);
        return NULL;
    }
    if (((options & 0x2u) && task_scheduler(t) == NULL /* LONG_RUNNING */
             ? task_queue_dedicated(st, t, task_work_run) /* issue 3 */
             : task_queue_work(st, t, task_work_run))
        < 0) {
        if (task_scheduler(t) == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        /* R1.9: the scheduler's queue_task raised: the task is faulted
         * and the caller gets the exception too */
        PyObject *exc = PyErr_GetRaisedException();
        PyErr_SetRaisedException(Py_XNewRef(exc));
        if (task_complete_from_error(t, 0) < 0) {
            PyErr_Clear();
        }
        PyErr_SetRaisedException(exc);
        Py_DECREF(t);
        return NULL;
    }
    if (task_token(t) != NULL && cancel_watch_delegate(st, t) < 0) {
        Py_DECREF(t); /* R1.7: canceled at once if its token fires */
        return NULL;
    }
    return (PyObject *)t;
}

PyObject *
task_delay(PyObject *unused, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"seconds", "cancellation_token",
                             "time_provider", NULL};
    st_state *st = g_st;
    PyObject *seconds, *token = Py_None, *provider = Py_None;
    uint64_t ns;
    int infinite;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:delay", kwlist,
                                     &seconds, &token, &provider)) {
        return NULL;
    }
    if (parse_timeout(seconds, "seconds", &ns, &infinite) < 0
        || parse_token(st, token, "cancellation_token", &token) < 0) {
        return NULL;
    }
    if (token == NULL) {
        token = Py_None;
    }
    if (provider != Py_None) { /* P6a (issue 3): provider.create_timer */
        return timers_delay(st, seconds, token, provider);
    }
    if (token != Py_None) {
        return delay_start_token(st, seconds, ns, infinite, token); /* K3 */
    }
    if (infinite) {
        return task_new_promise(st, NULL, 0);
    }
    if (ns == 0) {
        return Py_NewRef(st->cached[0]);
    }
    return delay_start(st, ns);
}

PyObject *
task_yield(PyObject *unused, PyObject *noargs)
{
    st_state *st = g_st;
    return PyObject_CallNoArgs((PyObject *)st->YieldAwaitable_type);
}

PyObject *
task_from_result_meth(PyObject *unused, PyObject *value)
{
    return task_from_result(g_st, value);
}

PyObject *
task_from_exception(PyObject *unused, PyObject *exc)
{
    PyObject *excs, *t;
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError, "from_exception(): exception must be "
                     "an exception instance, not %.100s",
                     Py_TYPE(exc)->tp_name);
        return NULL;
    }
    excs = one_exception(exc);
    if (excs == NULL) {
        return NULL;
    }
    t = task_new_faulted(g_st, excs);
    Py_DECREF(excs);
    return t;
}

PyObject *
task_from_canceled(PyObject *unused, PyObject *token)
{
    int canceled;
    if (token == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "from_canceled(): token must be a canceled "
                        "CancellationToken, not None");
        return NULL;
    }
    if (parse_token(g_st, token, "token", &token) < 0) {
        return NULL;
    }
    canceled = cancel_token_check(g_st, token); /* py_cancel.c */
    if (canceled < 0) {
        return NULL;
    }
    if (!canceled) {
        PyErr_SetString(PyExc_ValueError,
                        "from_canceled(): token: cancellation has not "
                        "been requested");
        return NULL;
    }
    return task_new_canceled(g_st, NULL, token);
}

PyObject *
task_from_future(PyObject *unused, PyObject *fut)
{
    PyObject *a[1] = {fut};
    return call_impl(g_st, "task_from_future", a, 1, NULL);
}

/* _try_execute_task(task, scheduler) -> bool (C7, R10.3). */
PyObject *
mod_try_execute_task(PyObject *mod, PyObject *args)
{
    st_state *st = g_st;
    PyObject *task, *sched;
    TaskObject *t;
    int status;
    if (!PyArg_ParseTuple(args, "O!O:try_execute_task", st->Task_type,
                          &task, &sched)) {
        return NULL;
    }
    t = (TaskObject *)task;
    if (task_scheduler(t) != sched) {
        PyErr_SetString(st->InvalidOperationError,
                        "try_execute_task(): the task belongs to another "
                        "scheduler");
        return NULL;
    }
    status = st_task_status(&t->task_core);
    if (status == ST_STATUS_CANCELED) {
        Py_RETURN_TRUE; /* canceled while queued: "ran" as canceled */
    }
    if ((t->task_kind != TASK_DELEGATE && t->task_kind != TASK_CONTINUATION)
        || task_fn(t) == NULL
        || (status != ST_STATUS_WAITING_TO_RUN
            && status != ST_STATUS_WAITING_FOR_ACTIVATION)) {
        Py_RETURN_FALSE; /* already executed (or executing) */
    }
    Py_INCREF(t);
    task_execute(t);
    Py_DECREF(t);
    if (pending_exc_restore() < 0) {
        return NULL;
    }
    return PyBool_FromLong(st_task_status(&t->task_core)
                           != ST_STATUS_WAITING_TO_RUN);
}

/* The status a queued delegate or continuation waits in, or -1 if t is
 * not one that scheduler may still run (checks as try_execute_task). */
static int
delegate_start_status(st_state *st, TaskObject *t, PyObject *sched)
{
    if (task_scheduler(t) != sched) {
        PyErr_SetString(st->InvalidOperationError,
                        "the task belongs to another scheduler");
        return -2;
    }
    int from = t->task_kind == TASK_DELEGATE
                   ? ST_STATUS_WAITING_TO_RUN
                   : ST_STATUS_WAITING_FOR_ACTIVATION;
    if ((t->task_kind != TASK_DELEGATE && t->task_kind != TASK_CONTINUATION)
        || task_fn(t) == NULL || st_task_status(&t->task_core) != from) {
        return -1;
    }
    return from;
}

/* _task_delegate(task, scheduler) -> (fn, args) | None (I3): what a
 * queued task would call, for a scheduler that runs it elsewhere (an
 * executor); None if it ran or was canceled already. */
PyObject *
mod_task_delegate(PyObject *mod, PyObject *args)
{
    st_state *st = g_st;
    PyObject *task, *sched, *fargs;
    TaskObject *t;
    if (!PyArg_ParseTuple(args, "O!O:_task_delegate", st->Task_type, &task,
                          &sched)) {
        return NULL;
    }
    t = (TaskObject *)task;
    int from = delegate_start_status(st, t, sched);
    if (from < -1) {
        return NULL;
    }
    if (from < 0) {
        Py_RETURN_NONE;
    }
    if (t->task_kind == TASK_DELEGATE) {
        fargs = Py_NewRef(t->task_arg);
    }
    else if (t->task_flags & TF_CONT_STATE) {
        fargs = PyTuple_Pack(2, t->task_arg, task_async_state(t));
    }
    else {
        fargs = PyTuple_Pack(1, t->task_arg);
    }
    if (fargs == NULL) {
        return NULL;
    }
    PyObject *r = PyTuple_Pack(2, task_fn(t), fargs);
    Py_DECREF(fargs);
    return r;
}

/* _complete_delegate(task, scheduler, ok, value) -> bool (I3): the
 * outcome of a task's delegate that ran elsewhere: its value (ok), or the
 * exception it raised (an OperationCanceledError with the task's own
 * token cancels, R1.6).  False if the task ran or was canceled already
 * (a token that fired while it was queued, R1.7). */
PyObject *
mod_complete_delegate(PyObject *mod, PyObject *args)
{
    st_state *st = g_st;
    PyObject *task, *sched, *value;
    int ok;
    TaskObject *t;
    if (!PyArg_ParseTuple(args, "O!OpO:_complete_delegate", st->Task_type,
                          &task, &sched, &ok, &value)) {
        return NULL;
    }
    if (!ok && !PyExceptionInstance_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "_complete_delegate(): value must be an exception "
                     "when ok is false, not %.100s", Py_TYPE(value)->tp_name);
        return NULL;
    }
    t = (TaskObject *)task;
    int from = delegate_start_status(st, t, sched);
    if (from < -1) {
        return NULL;
    }
    if (from < 0) {
        Py_RETURN_FALSE;
    }
    Py_INCREF(t);
    if (task_token(t) != NULL && cancel_token_requested(st, task_token(t))) {
        task_try_complete(t, ST_STATUS_CANCELED, NULL, task_token(t));
        ok = -1;
    }
    else if (st_task_transition(&t->task_core, from, ST_STATUS_RUNNING)
             != 0) {
        ok = -1; /* canceled meanwhile */
    }
    else if (!ok) {
        PyErr_SetRaisedException(Py_NewRef(value));
        if (task_complete_from_error(t, cancel_error_is_own_token(st, t))
            < 0) {
            pending_exc_save();
        }
    }
    else if (is_coroutine_like(value)) {
        /* an async delegate: a Task of a Task, as start_new gives */
        PyObject *inner = builder_start(st, Py_NewRef(value), NULL);
        if (inner == NULL) {
            if (task_complete_from_error(t, 0) < 0) {
                pending_exc_save();
            }
        }
        else {
            task_try_complete(t, ST_STATUS_RAN_TO_COMPLETION, inner, NULL);
            Py_DECREF(inner);
        }
    }
    else {
        task_try_complete(t, ST_STATUS_RAN_TO_COMPLETION, value, NULL);
    }
    Py_DECREF(t);
    if (pending_exc_restore() < 0) {
        return NULL;
    }
    return PyBool_FromLong(ok >= 0);
}

PyObject *
mod_current_scheduler(PyObject *mod, PyObject *unused)
{
    return Py_NewRef(tls_current_scheduler ? tls_current_scheduler
                                           : Py_None);
}

/* ------------------------------------------------ given to module.c */

/* Task's static factories (task_compose_methods, from module.c). */
PyMethodDef factories_task_methods[] = {
    {"run", (PyCFunction)(void (*)(void))task_run,
     METH_FASTCALL | METH_KEYWORDS | METH_STATIC,
     PyDoc_STR("run(fn, /, *args, cancellation_token=None)\n--\n\n"
               "Queue fn(*args) to the thread pool and return its Task\n"
               "(like Task.Run).  A returned Task or coroutine is unwrapped.")},
    {"_start_new", task_start_new_raw, METH_VARARGS | METH_STATIC,
     PyDoc_STR("_start_new(fn, args, options, scheduler=None, "
               "cancellation_token=None, /)\n--\n\n"
               "Internal: TaskFactory.start_new on the default scheduler.")},
    {"delay", (PyCFunction)(void (*)(void))task_delay,
     METH_VARARGS | METH_KEYWORDS | METH_STATIC,
     PyDoc_STR("delay(seconds, /, cancellation_token=None, "
               "time_provider=None)\n--\n\n"
               "A Task that completes after the delay (like Task.Delay);\n"
               "with a time_provider, on that provider's clock (P6a).")},
    {"yield_", task_yield, METH_NOARGS | METH_STATIC,
     PyDoc_STR("yield_()\n--\n\n"
               "An awaitable that always suspends and resumes on the\n"
               "current context or the pool (like Task.Yield).")},
    {"from_result", task_from_result_meth, METH_O | METH_STATIC,
     PyDoc_STR("from_result(value, /)\n--\n\n"
               "A completed Task (like Task.FromResult); cached for None,\n"
               "booleans and -1..8.")},
    {"from_exception", task_from_exception, METH_O | METH_STATIC,
     PyDoc_STR("from_exception(exception, /)\n--\n\n"
               "A faulted Task (like Task.FromException).")},
    {"from_canceled", task_from_canceled, METH_O | METH_STATIC,
     PyDoc_STR("from_canceled(token, /)\n--\n\n"
               "A canceled Task for a canceled token (like "
               "Task.FromCanceled).")},
    {"from_future", task_from_future, METH_O | METH_STATIC,
     PyDoc_STR("from_future(future, /)\n--\n\n"
               "A Task that completes with a concurrent.futures.Future,\n"
               "or with an asyncio future or task (I1).")},
    {NULL, NULL, 0, NULL},
};

/* The module functions of the scheduler glue, for module.c. */
PyMethodDef factories_module_methods[] = {
    {"_try_execute_task", mod_try_execute_task, METH_VARARGS,
     PyDoc_STR("_try_execute_task(task, scheduler, /)\n--\n\n"
               "Internal: TaskScheduler.try_execute_task.")},
    {"_task_delegate", mod_task_delegate, METH_VARARGS,
     PyDoc_STR("_task_delegate(task, scheduler, /)\n--\n\n"
               "Internal: (fn, args) of a queued task, or None (I3).")},
    {"_complete_delegate", mod_complete_delegate, METH_VARARGS,
     PyDoc_STR("_complete_delegate(task, scheduler, ok, value, /)\n--\n\n"
               "Internal: complete a queued task with the outcome of its\n"
               "delegate run elsewhere; False if it ran or was canceled "
               "(I3).")},
    {"_current_scheduler", mod_current_scheduler, METH_NOARGS,
     PyDoc_STR("_current_scheduler()\n--\n\n"
               "Internal: the custom scheduler running now, or None.")},
    {NULL, NULL, 0, NULL},
};
