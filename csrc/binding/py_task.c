/* py_task.c - the Task object and its lifecycle: construction,
 * completion, results, execution of delegates and continuations, the
 * await protocol, GC support and the Task type (its method tables bind
 * what py_awaiter.c, py_combinators.c and py_factories.c define;
 * TaskCompletionSource is py_tcs.c).
 *
 *     class Task(Generic[T]):              # like System.Threading.Tasks.Task
 *         status: TaskStatus; id: int; is_completed: bool; ...
 *         result: T                        # blocks; AggregateError on failure
 *         exception: AggregateError | None
 *         def wait(self, timeout=None, cancellation_token=None) -> bool
 *         def get_awaiter(self) -> TaskAwaiter
 *         def configure_await(self, options) -> ConfiguredTaskAwaitable
 *         def continue_with(self, fn, state=..., ...) -> Task
 *         def unwrap(self) -> Task
 *         def __await__(self): return self  # the task is its own iterator
 *         run, delay, yield_, from_result, from_exception, from_canceled,
 *         when_all, when_any, wait_all, wait_any  (static)
 *
 *     class TaskCompletionSource:          # a promise task and its setters
 *         task: Task
 *         set_result / set_exception / set_canceled and their try_ forms
 *
 * A Task embeds the core task (csrc/core/st_task.h): the state word and the
 * continuation list; this file owns the Python side of it: the result or
 * the exceptions, the delegate, the contextvars context.  A task is its own
 * `__await__` iterator: a completed task answers the first send with its
 * result (no object is made), a pending one yields itself to the builder
 * that drives the coroutine (py_builder.c), which registers its
 * continuation node on it.
 *
 * Invariants.  Every completion happens with the GIL held, through
 * task_try_complete, which does no Python call between winning the
 * reservation and publishing the status (a loser spins until publication,
 * so no GIL hand-off may happen in between).  A continuation node that is
 * registered on a task owns one strong reference to its owner, dropped by
 * the node's fn.
 */
#include "binding.h"
#include "py_args.h"
#include "py_errors.h"
#include "py_pool.h"
#include "py_state.h"
#include "py_task.h"
#include "py_task_impl.h"

#include <pthread.h>      /* pthread_cleanup_push (item 25) */
#include <stddef.h>       /* offsetof */
#include <string.h>       /* memset */
#include <structmember.h> /* PyMemberDef, T_PYSSIZET (3.11) */

#include "st_error.h"
#include "st_list.h"   /* st_container_of */
#include "st_thread.h" /* st_now_ns, st_cpu_count */

/* The calls up (task_set_hooks, from module.c's exec, before any task
 * exists; read-only after: issue 10). */
static task_hooks g_hooks;

void
task_set_hooks(const task_hooks *hooks)
{
    g_hooks = *hooks;
}

/* ------------------------------------------------------------ helpers */


/* The delegate task whose code runs on this thread (Task.current_id). */
static ST_THREAD_LOCAL TaskObject *tls_current_task;

/* The custom scheduler whose task runs on this thread (borrowed), or NULL
 * for the default: TaskScheduler.current() (C7, R10.2). */
ST_THREAD_LOCAL PyObject *tls_current_scheduler;

PyObject *
current_scheduler(void)
{
    return tls_current_scheduler;
}

/* Owned: a strong reference, handed back by pending_exc_restore. */
static ST_THREAD_LOCAL PyObject *tls_pending_exc;

void
pending_exc_save(void)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (tls_pending_exc == NULL) {
        tls_pending_exc = exc;
    }
    else {
        /* one interrupt is enough; drop later ones */
        Py_XDECREF(exc);
    }
}

int
pending_exc_restore(void)
{
    PyObject *exc = tls_pending_exc;
    if (exc == NULL) {
        return 0;
    }
    tls_pending_exc = NULL;
    PyErr_SetRaisedException(exc);
    return -1;
}


/* A completed task that holds no container can never be part of a
 * reference cycle again (its fields do not change any more): take it out
 * of the GC's lists, as CPython does for tuples of atoms.  A program with
 * 100k finished tasks (W5, W7) then pays nothing for them at each
 * collection.  Only non-GC objects count as atoms: an untracked dict may
 * become tracked later. */
static void
untrack_if_atomic(TaskObject *t)
{
    PyObject *f;
    if (!st_task_is_completed(&t->task_core)
        || !PyObject_GC_IsTracked((PyObject *)t)) {
        return;
    }
    /* completed: task_fr is the outcome and there is no fn */
#define ST_NOT_ATOM(v) ((f = (v)) != NULL && PyObject_IS_GC(f))
    if (ST_NOT_ATOM(t->task_fr) || ST_NOT_ATOM(t->task_arg)
        || ST_NOT_ATOM(t->task_context)) {
        return;
    }
    if (t->task_flags & TF_HAS_X) {
        task_extra *x = t->task_xb;
        if (ST_NOT_ATOM(x->x_target) || ST_NOT_ATOM(x->x_token)
            || ST_NOT_ATOM(x->x_state) || ST_NOT_ATOM(x->x_scheduler)
            || ST_NOT_ATOM(x->x_tb)) {
            return;
        }
    }
    else if (ST_NOT_ATOM(t->task_tgt)) {
        return;
    }
#undef ST_NOT_ATOM
    PyObject_GC_UnTrack(t);
}

/* ------------------------------------------------------- construction */

PyObject *
task_new_promise(st_state *st, PyObject *state, uint32_t options)
{
    TaskObject *t = task_alloc(st, TASK_PROMISE,
                               ST_STATUS_WAITING_FOR_ACTIVATION, options);
    if (t != NULL && task_x_put(t, x_state, Py_XNewRef(state)) < 0) {
        Py_CLEAR(t);
    }
    return (PyObject *)t;
}

PyObject *
task_new_completed(st_state *st, PyObject *value)
{
    TaskObject *t = task_alloc(st, TASK_PROMISE,
                               ST_STATUS_RAN_TO_COMPLETION, 0);
    if (t != NULL) {
        t->task_fr = Py_NewRef(value);
        untrack_if_atomic(t);
    }
    return (PyObject *)t;
}

/* The cached task for value (T12), borrowed, or NULL. */
static PyObject *
cached_task(st_state *st, PyObject *value)
{
    if (value == Py_None) {
        return st->cached[0];
    }
    if (value == Py_False) {
        return st->cached[1];
    }
    if (value == Py_True) {
        return st->cached[2];
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long v = PyLong_AsLongAndOverflow(value, &overflow);
        if (!overflow && v >= -1 && v <= 8) {
            return st->cached[3 + (v + 1)];
        }
    }
    return NULL;
}

PyObject *
task_from_result(st_state *st, PyObject *value)
{
    PyObject *t = cached_task(st, value);
    if (t != NULL) {
        return Py_NewRef(t);
    }
    return task_new_completed(st, value);
}

PyObject *
task_new_faulted(st_state *st, PyObject *excs)
{
    TaskObject *t = task_alloc(st, TASK_PROMISE, ST_STATUS_FAULTED, 0);
    if (t != NULL) {
        t->task_fr = Py_NewRef(excs);
    }
    return (PyObject *)t;
}

PyObject *
task_new_canceled(st_state *st, PyObject *oce, PyObject *token)
{
    TaskObject *t = task_alloc(st, TASK_PROMISE, ST_STATUS_CANCELED, 0);
    if (t != NULL) {
        t->task_fr = Py_XNewRef(oce);
        if (task_x_put(t, x_token, Py_XNewRef(token)) < 0) {
            Py_CLEAR(t);
        }
    }
    return (PyObject *)t;
}

/* --------------------------------------------------------- completion */

int
task_try_complete(TaskObject *t, int status, PyObject *value,
                  PyObject *token)
{
    PyObject *fn, *arg, *ctx, *target;
    task_extra *x = task_x(t);

    /* The traceback and the token go in the side block (binding.h):
     * allocated before the reservation, as nothing may fail after it.
     * Without memory for it the task completes all the same, without
     * its original traceback (D3a) and token. */
    if (x == NULL && (token != NULL || status == ST_STATUS_FAULTED
                      || (status == ST_STATUS_CANCELED && value != NULL))
        && !st_task_is_completed(&t->task_core)) {
        PyObject *exc = PyErr_GetRaisedException();
        x = task_x_ensure(t);
        if (x == NULL) {
            PyErr_Clear();
        }
        PyErr_SetRaisedException(exc);
    }
    if (!st_task_try_reserve(&t->task_core)) {
        return 0;
    }
    /* No Python code may run until st_task_finish: only stores.  The
     * delegate, the awaited object, the context and the target are not
     * needed any more; drop them after publication (a DECREF can run code).  The
     * fn leaves its slot to the outcome (binding.h, task_fr). */
    fn = t->task_fr;
    t->task_fr = Py_XNewRef(value);
    if (x != NULL) {
        /* old values: never set, so no code runs */
        if (status == ST_STATUS_FAULTED) {
            Py_XSETREF(x->x_tb,
                       PyException_GetTraceback(PyTuple_GET_ITEM(value, 0)));
        }
        else if (status == ST_STATUS_CANCELED && value != NULL) {
            Py_XSETREF(x->x_tb, PyException_GetTraceback(value));
        }
        if (token != NULL) {
            Py_XSETREF(x->x_token, Py_NewRef(token));
        }
    }
    arg = t->task_arg;
    ctx = t->task_context;
    t->task_context = NULL;
    if (t->task_kind == TASK_CONTINUATION) {
        arg = NULL; /* keep the antecedent: it is cheap and useful */
    }
    else {
        t->task_arg = NULL;
    }
    target = task_take_target(t);
    st_task_finish(&t->task_core, status);
    g_hooks.cancel_release_deferred(); /* the watch nodes' drops
                                          (py_cancel_reg.c) */
    Py_XDECREF(target); /* a context or scheduler: may run code */
    Py_XDECREF(fn);
    Py_XDECREF(arg);
    Py_XDECREF(ctx);
    untrack_if_atomic(t);
    return 1;
}


int
task_complete_from_error(TaskObject *t, int oce_cancels)
{
    st_state *st = g_st;
    PyObject *value, *excs = NULL, *token = NULL;
    int interrupted = 0;

    value = PyErr_GetRaisedException(); /* its traceback attached */
    if (value == NULL) {
        value = Py_NewRef(Py_None);
    }
    if (!PyObject_TypeCheck(value, (PyTypeObject *)PyExc_Exception)) {
        /* KeyboardInterrupt, SystemExit: fault the task with a
         * RuntimeError and let the original keep propagating. */
        PyObject *wrap = PyObject_CallFunction(
            PyExc_RuntimeError, "s",
            "the task was interrupted by a BaseException");
        if (wrap != NULL) {
            PyException_SetCause(wrap, Py_NewRef(value));
            excs = one_exception(wrap);
            Py_DECREF(wrap);
        }
        interrupted = 1;
    }
    else if (oce_cancels
             && PyObject_TypeCheck(value, (PyTypeObject *)
                                              st->OperationCanceledError)) {
        token = PyObject_GetAttr(value, st->str_cancellation_token);
        if (token == NULL) {
            PyErr_Clear();
        }
        else if (token == Py_None) {
            Py_CLEAR(token);
        }
        task_try_complete(t, ST_STATUS_CANCELED, value, token);
        Py_XDECREF(token);
        Py_DECREF(value);
        return 0;
    }
    else {
        excs = one_exception(value);
    }
    if (excs == NULL) {
        /* out of memory building the tuple: fault with MemoryError */
        PyErr_Clear();
        excs = PyTuple_Pack(1, PyExc_MemoryError);
    }
    if (excs != NULL) {
        task_try_complete(t, ST_STATUS_FAULTED, excs, NULL);
        Py_DECREF(excs);
    }
    if (interrupted && value != Py_None && st_pool_current() != NULL) {
        /* sys.exit() or a KeyboardInterrupt in code the pool runs (an
         * async method resumed there): no caller here to give it to.  The
         * task carries it to whoever waits (sharptask.run re-raises it as
         * it is, issue 9 item 26); if nobody ever does, the unobserved
         * report shows it when the task is collected (T11): reported
         * once, never twice */
        Py_DECREF(value);
        return 0;
    }
    if (interrupted && value != Py_None /* None: nothing was raised */) {
        /* the interrupt itself goes on to the caller: that observes it,
         * so the task is not reported again when collected */
        mark_observed(t);
        PyErr_SetRaisedException(value);
        return -1;
    }
    Py_DECREF(value);
    return 0;
}

int
task_complete_from(TaskObject *dst, TaskObject *src)
{
    int status = task_status(src);
    switch (status) {
    case ST_STATUS_RAN_TO_COMPLETION:
        return task_try_complete(dst, status, task_result(src), NULL);
    case ST_STATUS_FAULTED:
        mark_observed(src); /* the proxy carries them on (R2.6) */
        return task_try_complete(dst, status, task_result(src), NULL);
    case ST_STATUS_CANCELED:
        return task_try_complete(dst, status, task_result(src),
                                 task_token(src));
    default:
        ST_ASSERT(0);
        return 0;
    }
}

/* ----------------------------------------------------------- results */

PyObject *
make_task_canceled(st_state *st, TaskObject *t)
{
    PyObject *args = NULL, *kw = NULL, *res = NULL;
    args = PyTuple_New(0);
    kw = Py_BuildValue("{s:O,s:O}", "task", (PyObject *)t,
                       "cancellation_token",
                       task_token(t) ? task_token(t) : Py_None);
    if (args != NULL && kw != NULL) {
        res = PyObject_Call(st->TaskCanceledError, args, kw);
    }
    Py_XDECREF(args);
    Py_XDECREF(kw);
    return res;
}

static void
raise_instance(PyObject *exc)
{
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
}

/* Re-raises a stored exception with the traceback it had when the task
 * stored it, so that rethrowing it again and again (ExceptionDispatchInfo
 * style) does not grow its traceback. */
static void
rethrow_stored(TaskObject *t, PyObject *exc)
{
    PyException_SetTraceback(exc, task_tb(t) != NULL ? task_tb(t) : Py_None);
    raise_instance(exc);
}


PyObject *
task_get_result(st_state *st, TaskObject *t)
{
    PyObject *exc;
    if (outcome_gone(st, t)) {
        return NULL;
    }
    switch (task_status(t)) {
    case ST_STATUS_RAN_TO_COMPLETION:
        return Py_NewRef(task_result(t));
    case ST_STATUS_FAULTED:
        mark_observed(t);
        rethrow_stored(t, PyTuple_GET_ITEM(task_result(t), 0));
        return NULL;
    case ST_STATUS_CANCELED:
        if (task_result(t) != NULL) {
            rethrow_stored(t, task_result(t));
            return NULL;
        }
        exc = make_task_canceled(st, t);
        if (exc != NULL) {
            raise_instance(exc);
            Py_DECREF(exc);
        }
        return NULL;
    default:
        PyErr_SetString(st->InvalidOperationError,
                        "the task has not completed yet");
        return NULL;
    }
}

/* The AggregateError that `result`/`wait` raise (T3), as a new ref. */
static PyObject *
task_aggregate(st_state *st, TaskObject *t)
{
    PyObject *excs, *agg;
    if (task_status(t) == ST_STATUS_FAULTED) {
        mark_observed(t);
        return make_aggregate(st, task_result(t));
    }
    excs = PyTuple_New(1);
    if (excs == NULL) {
        return NULL;
    }
    PyObject *tce = make_task_canceled(st, t);
    if (tce == NULL) {
        Py_DECREF(excs);
        return NULL;
    }
    PyTuple_SET_ITEM(excs, 0, tce); /* steals */
    agg = make_aggregate(st, excs);
    Py_DECREF(excs);
    return agg;
}

static int
raise_if_failed(st_state *st, TaskObject *t)
{
    int status = task_status(t);
    if (outcome_gone(st, t)) {
        return -1;
    }
    if (status == ST_STATUS_FAULTED || status == ST_STATUS_CANCELED) {
        PyObject *agg = task_aggregate(st, t);
        if (agg != NULL) {
            raise_instance(agg);
            Py_DECREF(agg);
        }
        return -1;
    }
    return 0;
}

/* ------------------------------------------------- execution (pool) */

int
is_coroutine_like(PyObject *obj)
{
    return PyCoro_CheckExact(obj) || PyGen_CheckExact(obj)
           || (Py_TYPE(obj)->tp_as_async != NULL
               && Py_TYPE(obj)->tp_as_async->am_send != NULL
               && !Task_Check(g_st, obj));
}


/* t (a delegate) returned inner: t mirrors inner from now on (R3.12). */
static void
delegate_unwrap(TaskObject *t, TaskObject *inner)
{
    st_task_transition(&t->task_core, ST_STATUS_RUNNING,
                       ST_STATUS_WAITING_FOR_ACTIVATION);
    Py_XSETREF(t->task_arg, Py_NewRef(inner));
    t->task_cont.fn = proxy_on_complete;
    t->task_cont.kind = ST_CONT_ACTION;
    Py_INCREF(t); /* the registration's reference */
    if (st_task_add_cont(&inner->task_core, &t->task_cont) != 0) {
        proxy_on_complete(&t->task_cont, &inner->task_core, ST_RUN_INLINE);
    }
}

void
task_execute(TaskObject *t)
{
    st_state *st = g_st;
    PyObject *res, *ctx = t->task_context;
    int from = t->task_kind == TASK_DELEGATE
                   ? ST_STATUS_WAITING_TO_RUN
                   : ST_STATUS_WAITING_FOR_ACTIVATION;

    if (task_token(t) != NULL
        && g_hooks.cancel_token_requested(st, task_token(t))
        && st_task_status(&t->task_core) == from) {
        /* R1.7/R3.10: its token fired before it started (py_cancel.c) */
        task_try_complete(t, ST_STATUS_CANCELED, NULL, task_token(t));
        return;
    }
    if (st_task_transition(&t->task_core, from, ST_STATUS_RUNNING) != 0) {
        return; /* canceled before it ran */
    }
    if (ctx != NULL && PyContext_Enter(ctx) < 0) {
        /* already entered (re-entrant run): run in the current one */
        PyErr_Clear();
        ctx = NULL;
    }
    TaskObject *outer_task = tls_current_task;
    PyObject *outer_sched = tls_current_scheduler;
    tls_current_task = t;
    tls_current_scheduler = task_scheduler(t);
    g_hooks.thread_running_push(t);
    if (t->task_kind == TASK_DELEGATE) {
        res = PyObject_Call(task_fn(t), t->task_arg, NULL);
    }
    else if (t->task_flags & TF_CONT_STATE) {
        res = PyObject_CallFunctionObjArgs(task_fn(t), t->task_arg,
                                           task_async_state(t), NULL);
    }
    else {
        res = PyObject_CallOneArg(task_fn(t), t->task_arg);
    }
    g_hooks.thread_running_pop(t);
    tls_current_task = outer_task;
    tls_current_scheduler = outer_sched;
    if (ctx != NULL) {
        PyContext_Exit(ctx);
    }
    if (res == NULL) {
        /* R1.6: an OperationCanceledError from a delegate cancels only
         * when it carries the task's own, canceled token */
        if (task_complete_from_error(t, g_hooks.cancel_error_is_own_token(st, t))
            < 0) {
            pending_exc_save();
        }
        return;
    }
    if (is_coroutine_like(res)) {
        if (t->task_kind == TASK_DELEGATE && !(t->task_flags & TF_NO_UNWRAP)) {
            /* Task.run(async def): t becomes the async method's box */
            st_task_transition(&t->task_core, ST_STATUS_RUNNING,
                               ST_STATUS_WAITING_FOR_ACTIVATION);
            task_set_fn(t, NULL);
            Py_CLEAR(t->task_arg);
            Py_INCREF(t);
            PyObject *r = g_hooks.builder_start(st, res, t); /* steals res */
            Py_XDECREF(r);
            Py_DECREF(t);
            return;
        }
        /* continue_with(async fn) / start_new: a Task of a Task */
        PyObject *inner = g_hooks.builder_start(st, res, NULL); /* steals res */
        if (inner == NULL) {
            if (task_complete_from_error(t, 0) < 0) {
                pending_exc_save();
            }
            return;
        }
        res = inner;
    }
    else if (t->task_kind == TASK_DELEGATE && Task_Check(st, res)
             && !(t->task_flags & TF_NO_UNWRAP)) {
        delegate_unwrap(t, (TaskObject *)res);
        Py_DECREF(res);
        return;
    }
    task_try_complete(t, ST_STATUS_RAN_TO_COMPLETION, res, NULL);
    Py_DECREF(res);
}

void
task_work_run(st_work_t *w)
{
    TaskObject *t = st_container_of(w, TaskObject, task_work);
    task_execute(t);
    if (pending_exc_restore() < 0) {
        PyErr_WriteUnraisable((PyObject *)t);
    }
    Py_DECREF(t); /* the queue's reference */
}

int
task_queue_work(st_state *st, TaskObject *t, st_work_fn fn)
{
    int rc;
    if (task_scheduler(t) != NULL && fn == task_work_run) {
        /* a custom TaskScheduler: its queue_task runs the task later
         * through try_execute_task (C7) */
        PyObject *r = PyObject_CallMethod(task_scheduler(t), "queue_task",
                                          "O", (PyObject *)t);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        return 0;
    }
    t->task_work.run = fn;
    t->task_work.flags = ST_WORK_DOMAIN;
    Py_INCREF(t);
    rc = pool_submit(st, &t->task_work);
    if (rc != 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

/* -------------------------------------------- continue_with / unwrap */

/* An internal action (proxy, when_all, when_any) called ASYNC - the
 * antecedent has RUN_CONTINUATIONS_ASYNCHRONOUSLY, and even these must not
 * run inside the completing call (S3.5) - runs later on the pool. */
typedef struct deferred_cont {
    st_work_t work;
    st_cont_t *cont;
    TaskObject *src; /* strong: the completed antecedent */
} deferred_cont;

static void
deferred_cont_run(st_work_t *w)
{
    deferred_cont *d = st_container_of(w, deferred_cont, work);
    d->cont->fn(d->cont, &d->src->task_core, ST_RUN_INLINE);
    if (pending_exc_restore() < 0) {
        PyErr_WriteUnraisable((PyObject *)d->src);
    }
    Py_DECREF(d->src);
    PyMem_Free(d);
}

/* 0 if queued (the caller returns), -1 if it must run inline anyway. */
int
defer_cont(st_cont_t *c, st_task_t *core)
{
    deferred_cont *d = PyMem_Malloc(sizeof(*d));
    if (d == NULL) {
        PyErr_Clear();
        return -1;
    }
    d->work.run = deferred_cont_run;
    d->work.flags = ST_WORK_DOMAIN;
    d->cont = c;
    d->src = (TaskObject *)Py_NewRef(
        st_container_of(core, TaskObject, task_core));
    if (pool_submit(g_st, &d->work) != 0) {
        PyErr_Clear();
        Py_DECREF(d->src);
        PyMem_Free(d);
        return -1;
    }
    return 0;
}

/* An EXECUTE_SYNCHRONOUSLY continuation on a custom scheduler asks it
 * (try_execute_task_inline); 1 if it ran (or faulted), 0 to queue it. */
static int
scheduler_try_inline(TaskObject *t)
{
    PyObject *r = PyObject_CallMethod(task_scheduler(t),
                                      "try_execute_task_inline", "OO",
                                      (PyObject *)t, Py_False);
    int yes;
    if (r == NULL) {
        if (task_complete_from_error(t, 0) < 0) {
            pending_exc_save();
        }
        return 1;
    }
    yes = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (yes < 0) {
        PyErr_Clear();
        yes = 0;
    }
    return yes;
}

void
continuation_on_complete(st_cont_t *c, st_task_t *core, int how)
{
    TaskObject *ct = st_container_of(c, TaskObject, task_cont);
    int status = st_task_status(core);
    uint32_t opts = (uint32_t)ct->task_cwopts << 16;
    int skip = (status == ST_STATUS_RAN_TO_COMPLETION
                && (opts & TCW_NOT_ON_RAN))
               || (status == ST_STATUS_FAULTED && (opts & TCW_NOT_ON_FAULTED))
               || (status == ST_STATUS_CANCELED
                   && (opts & TCW_NOT_ON_CANCELED));

    if (skip) {
        /* R3.8: the condition is not met: canceled, never run */
        task_try_complete(ct, ST_STATUS_CANCELED, NULL, NULL);
    }
    else if (how == ST_RUN_INLINE && task_scheduler(ct) == NULL) {
        ST_TRACE(ST_TRACE_CONTINUATION_INLINE, trace_task_id(ct), 0, 0);
        task_execute(ct);
    }
    else if (how == ST_RUN_INLINE && scheduler_try_inline(ct) != 0) {
        /* ran inline on its scheduler, or faulted trying */
    }
    else {
        /* D2: queued (on the pool or its scheduler), recorded before
         * anything can run it */
        ST_TRACE(ST_TRACE_CONTINUATION_QUEUED, trace_task_id(ct), 0,
                 task_scheduler(ct) != NULL
                     ? trace_type_name(task_scheduler(ct)) : 0);
        if (task_queue_work(g_st, ct, task_work_run) < 0) {
            /* R1.9/S3.6: a scheduler that throws faults the task */
            if (task_complete_from_error(ct, 0) < 0) {
                pending_exc_save();
            }
        }
    }
    Py_DECREF(ct); /* the registration's reference */
}

void
proxy_on_complete(st_cont_t *c, st_task_t *core, int how)
{
    if (how == ST_RUN_ASYNC && defer_cont(c, core) == 0) {
        return;
    }
    TaskObject *proxy = st_container_of(c, TaskObject, task_cont);
    TaskObject *src = st_container_of(core, TaskObject, task_core);
    (void)how;
    task_complete_from(proxy, src);
    Py_DECREF(proxy); /* the registration's reference */
}

/* ------------------------------------------------------ Task methods */

static PyObject *
task_status_get(PyObject *op, void *closure)
{
    return Py_NewRef(g_st->status_members[task_status(TaskObject_CAST(op))]);
}

static PyObject *
task_id_get(PyObject *op, void *closure)
{
    /* assigned on first read; the core's copy too, so that a task whose
     * id was read before a trace started records its events with it (D2,
     * task.completed comes from the core) */
    return PyLong_FromUnsignedLong(trace_task_id(TaskObject_CAST(op)));
}

static PyObject *
task_is_completed_get(PyObject *op, void *closure)
{
    return PyBool_FromLong(task_status(TaskObject_CAST(op))
                           >= ST_STATUS_RAN_TO_COMPLETION);
}

static PyObject *
task_is_completed_successfully_get(PyObject *op, void *closure)
{
    return PyBool_FromLong(task_status(TaskObject_CAST(op))
                           == ST_STATUS_RAN_TO_COMPLETION);
}

static PyObject *
task_is_faulted_get(PyObject *op, void *closure)
{
    return PyBool_FromLong(task_status(TaskObject_CAST(op))
                           == ST_STATUS_FAULTED);
}

static PyObject *
task_is_canceled_get(PyObject *op, void *closure)
{
    return PyBool_FromLong(task_status(TaskObject_CAST(op))
                           == ST_STATUS_CANCELED);
}

static PyObject *
task_exception_get(PyObject *op, void *closure)
{
    TaskObject *t = TaskObject_CAST(op);
    if (task_status(t) != ST_STATUS_FAULTED) {
        Py_RETURN_NONE; /* None for canceled too (R2.4) */
    }
    if (outcome_gone(g_st, t)) {
        return NULL;
    }
    mark_observed(t);
    return make_aggregate(g_st, task_result(t));
}

static PyObject *
task_async_state_get(PyObject *op, void *closure)
{
    TaskObject *t = TaskObject_CAST(op);
    return Py_NewRef(task_async_state(t) ? task_async_state(t) : Py_None);
}

static PyObject *
task_creation_options_get(PyObject *op, void *closure)
{
    TaskObject *t = TaskObject_CAST(op);
    PyObject *v = PyLong_FromUnsignedLong(t->task_options & TCO_VALID), *r;
    if (v == NULL) {
        return NULL;
    }
    r = PyObject_CallOneArg(g_st->TaskCreationOptions, v);
    Py_DECREF(v);
    return r;
}

static PyObject *
task_result_get(PyObject *op, void *closure)
{
    st_state *st = g_st;
    TaskObject *t = TaskObject_CAST(op);
    int rc = g_hooks.wait_blocking(st, t, UINT64_MAX);
    if (rc < 0) {
        return NULL;
    }
    if (raise_if_failed(st, t) < 0) {
        return NULL;
    }
    return Py_NewRef(task_result(t));
}

static PyObject *
task_wait(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "cancellation_token", NULL};
    st_state *st = g_st;
    TaskObject *t = TaskObject_CAST(op);
    PyObject *timeout = Py_None, *token = Py_None;
    uint64_t ns;
    int infinite, rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:wait", kwlist,
                                     &timeout, &token)) {
        return NULL;
    }
    if (parse_timeout(timeout, "timeout", &ns, &infinite) < 0
        || parse_token(st, token, "cancellation_token", &token) < 0) {
        return NULL;
    }
    if (token != NULL) {
        PyObject *a[3] = {op, timeout, token};
        return call_impl(st, "task_wait_token", a, 3, NULL);
    }
    rc = g_hooks.wait_blocking(st, t, infinite ? UINT64_MAX : ns);
    if (rc < 0) {
        return NULL;
    }
    if (rc == 0) {
        Py_RETURN_FALSE;
    }
    if (raise_if_failed(st, t) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* TaskScheduler.default is the pool: stored as NULL on tasks. */
int
scheduler_is_default(st_state *st, PyObject *sched)
{
    PyObject *d;
    int is;
    if (sched == NULL || sched == Py_None) {
        return 1;
    }
    d = call_impl(st, "default_scheduler", NULL, 0, NULL);
    if (d == NULL) {
        PyErr_Clear();
        return 0;
    }
    is = d == sched;
    Py_DECREF(d);
    return is;
}

int
scheduler_check(st_state *st, PyObject *sched)
{
    int ok = PyObject_HasAttrString(sched, "queue_task")
             && PyObject_HasAttrString(sched, "try_execute_task_inline");
    if (!ok) {
        PyErr_Format(PyExc_TypeError,
                     "scheduler must be a TaskScheduler, not %.100s",
                     Py_TYPE(sched)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *
task_as_future(PyObject *op, PyObject *unused)
{
    PyObject *a[1] = {op};
    return call_impl(g_st, "task_as_future", a, 1, NULL);
}

static PyObject *
task_as_asyncio_future(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", NULL};
    PyObject *loop = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:as_asyncio_future",
                                     kwlist, &loop)) {
        return NULL;
    }
    PyObject *a[2] = {op, loop};
    return call_impl(g_st, "task_as_asyncio_future", a, 2, NULL);
}


static PyObject *
task_current_id(PyObject *unused, PyObject *noargs)
{
    if (tls_current_task == NULL) {
        Py_RETURN_NONE;
    }
    return task_id_get((PyObject *)tls_current_task, NULL);
}

/* -------------------------------------------------- Task await protocol */

static PySendResult
task_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    TaskObject *t = TaskObject_CAST(op);
    int status = task_status(t);
    if (status == ST_STATUS_RAN_TO_COMPLETION && task_result(t) != NULL) {
        /* the hot path of `await completed_task` (A4, W1) */
        *presult = Py_NewRef(task_result(t));
        return PYGEN_RETURN;
    }
    if (status < ST_STATUS_RAN_TO_COMPLETION) {
        /* to the builder: "wait for me" (to asyncio: a future, I2) */
        *presult = g_hooks.await_yield(g_st, Py_NewRef(op));
        return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    *presult = task_get_result(g_st, t);
    return *presult == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}


static PyObject *
task_iternext(PyObject *op)
{
    return iternext_via_send(op, task_am_send);
}

static PyObject *
task_await(PyObject *op)
{
    return Py_NewRef(op);
}

/* x.__await__() called explicitly, where Python code wants an iterator
 * (asyncio 3.11 wraps awaitables in `yield from x.__await__()`): a
 * generator over x's own steps (_impl.await_iter; I2).  `await x` never
 * comes here: the am_await slot answers it with x itself (A4). */
PyObject *
await_method_iter(PyObject *op, PyObject *unused)
{
    return call_impl(g_st, "await_iter", &op, 1, NULL);
}

static PyObject *
task_repr(PyObject *op)
{
    TaskObject *t = TaskObject_CAST(op);
    static const char *names[] = {
        "CREATED", "WAITING_FOR_ACTIVATION", "WAITING_TO_RUN", "RUNNING",
        "WAITING_FOR_CHILDREN_TO_COMPLETE", "RAN_TO_COMPLETION", "CANCELED",
        "FAULTED"};
    PyObject *id = task_id_get(op, NULL), *r;
    if (id == NULL) {
        return NULL;
    }
    r = PyUnicode_FromFormat("<Task id=%S status=%s>", id,
                             names[task_status(t)]);
    Py_DECREF(id);
    return r;
}

/* ------------------------------------------------------ Task lifecycle */

static PyObject *
task_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    PyErr_SetString(PyExc_TypeError,
                    "Task cannot be created directly: use Task.run, "
                    "Task.factory.start_new, an @async_method or a "
                    "TaskCompletionSource");
    return NULL;
}

/* The object a registered node keeps alive, or NULL (GC support). */


PyObject *
task_cont_owner(st_cont_t *c)
{
    return (PyObject *)st_container_of(c, TaskObject, task_cont);
}

/* The node kinds of the files above (task_register_node_kind, at module
 * exec; read-only after). */
static const task_node_kind *g_node_kinds[TASK_NODE_KINDS_MAX];
static int g_n_node_kinds;

int
task_register_node_kind(const task_node_kind *kind)
{
    for (int i = 0; i < g_n_node_kinds; i++) {
        if (g_node_kinds[i] == kind) {
            return 0; /* a second module exec (refused later): no-op */
        }
    }
    if (g_n_node_kinds >= TASK_NODE_KINDS_MAX) {
        PyErr_SetString(PyExc_SystemError,
                        "sharptask: too many task node kinds");
        return -1;
    }
    g_node_kinds[g_n_node_kinds++] = kind;
    return 0;
}

static const task_node_kind *
node_kind(st_cont_t *c)
{
    for (int i = 0; i < g_n_node_kinds; i++) {
        if (g_node_kinds[i]->fn == c->fn) {
            return g_node_kinds[i];
        }
    }
    return NULL;
}

/* The reference a node holds: its owner (a task whose embedded node it
 * is, or what its kind's owner fn names), else NULL with *kind set to
 * its kind (NULL: none known).  Looks the kind up once. */
static PyObject *
cont_owner(st_cont_t *c, const task_node_kind **kind)
{
    const task_node_kind *k;
    *kind = NULL;
    if (c->fn == continuation_on_complete || c->fn == proxy_on_complete) {
        return task_cont_owner(c);
    }
    if ((k = node_kind(c)) != NULL && k->owner != NULL) {
        return k->owner(c);
    }
    *kind = k;
    return NULL;
}

typedef struct visit_ctx {
    visitproc visit;
    void *arg;
    int rc;
} visit_ctx;

static void
visit_cont(st_cont_t *c, void *p)
{
    visit_ctx *vc = p;
    const task_node_kind *k;
    PyObject *owner;
    if (vc->rc != 0) {
        return;
    }
    if ((owner = cont_owner(c, &k)) != NULL) {
        vc->rc = vc->visit(owner, vc->arg);
    }
    else if (k != NULL && k->visit != NULL) {
        vc->rc = k->visit(c, vc->visit, vc->arg);
    }
}

/* A pending task is being destroyed (it can never complete): release
 * what its registered nodes hold, without running them. */
static void
abandon_conts(TaskObject *t)
{
    st_cont_t *c = st_task_detach_conts(&t->task_core), *next;
    for (; c != NULL; c = next) {
        const task_node_kind *k;
        PyObject *owner = cont_owner(c, &k);
        next = c->next;
        if (owner != NULL) {
            Py_DECREF(owner); /* the registration's reference */
        }
        else if (k != NULL && k->abandon != NULL) {
            k->abandon(c); /* a when_all/any node, an awaiter's ... */
        }
        /* a SIGNAL waiter cannot be here: its thread holds the task */
    }
}

static int
Task_traverse(PyObject *op, visitproc visit, void *arg)
{
    TaskObject *t = TaskObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(t->task_fr); /* fn or outcome: one reference */
    if (t->task_flags & TF_HAS_X) { /* each reference once */
        Py_VISIT(t->task_xb->x_target);
        Py_VISIT(t->task_xb->x_token);
        Py_VISIT(t->task_xb->x_state);
        Py_VISIT(t->task_xb->x_scheduler);
        Py_VISIT(t->task_xb->x_tb);
    }
    else {
        Py_VISIT(t->task_tgt);
    }
    Py_VISIT(t->task_arg);
    Py_VISIT(t->task_context);
    if (!st_task_is_completed(&t->task_core)) {
        /* the references registered continuation nodes hold */
        visit_ctx vc = {visit, arg, 0};
        st_task_visit_conts(&t->task_core, visit_cont, &vc);
        if (vc.rc != 0) {
            return vc.rc;
        }
    }
    return 0;
}

static int
Task_clear(PyObject *op)
{
    TaskObject *t = TaskObject_CAST(op);
    /* Break cycles through the outcome too (a traceback often refers
     * back to the task); readers treat a cleared outcome as gone. */
    Py_CLEAR(t->task_fr); /* fn or outcome */
    if (t->task_flags & TF_HAS_X) {
        Py_CLEAR(t->task_xb->x_target);
        Py_CLEAR(t->task_xb->x_token);
        Py_CLEAR(t->task_xb->x_state);
        Py_CLEAR(t->task_xb->x_scheduler);
        Py_CLEAR(t->task_xb->x_tb);
    }
    else {
        Py_CLEAR(t->task_tgt);
    }
    Py_CLEAR(t->task_arg);
    Py_CLEAR(t->task_context);
    if (!st_task_is_completed(&t->task_core)) {
        abandon_conts(t);
    }
    return 0;
}

/* T11: whether the task's finalizer has anything to report: it faulted
 * and nobody observed its exception. */
static inline int
task_may_report(TaskObject *t)
{
    return task_status(t) == ST_STATUS_FAULTED
           && !(t->task_flags & TF_OBSERVED) && task_result(t) != NULL;
}

/* T11: a faulted task whose exception nobody observed reports it. */
static void
Task_finalize(PyObject *op)
{
    st_state *st = g_st;
    TaskObject *t = TaskObject_CAST(op);
    PyObject *exc, *agg, *res = NULL;
    int observed = 0;

    if (!task_may_report(t) || st == NULL) {
        return;
    }
    t->task_flags |= TF_OBSERVED; /* report once */
    exc = PyErr_GetRaisedException();
    agg = make_aggregate(st, task_result(t));
    if (agg == NULL) {
        PyErr_WriteUnraisable(op);
        goto done;
    }
    if (st->unobserved_hook != NULL && !Py_IsFinalizing()) {
        res = PyObject_CallFunctionObjArgs(st->unobserved_hook, op, agg,
                                           NULL);
        if (res == NULL) {
            PyErr_WriteUnraisable(st->unobserved_hook);
        }
        else {
            int truth = PyObject_IsTrue(res);
            Py_DECREF(res);
            if (truth < 0) {
                /* not left set for the report below (issue 9 sweep) */
                PyErr_WriteUnraisable(st->unobserved_hook);
            }
            observed = truth > 0;
        }
    }
    /* issue 9 item 12: the inner exceptions, with their types, messages
     * and tracebacks, are in the report; item 24 (H5): a task that
     * faulted only because the interpreter is exiting is not reported */
    if (!observed && !is_exiting_error(agg)) {
        report_unraisable(agg, op);
    }
    Py_DECREF(agg);
done:
    PyErr_SetRaisedException(exc);
}

static void
Task_dealloc(PyObject *op)
{
    TaskObject *t = TaskObject_CAST(op);
    PyTypeObject *tp = Py_TYPE(op);
    /* The finalizer (the unobserved-exception report) may resurrect the
     * task: a handler may keep it.  A resurrected object must still be
     * seen by the GC, so the finalizer runs on a tracked object and the
     * untracking comes after it, as CPython's own types do (issue 9
     * sweep: the debug interpreter aborted in
     * PyObject_CallFinalizerFromDealloc; a release build left the
     * resurrected task untracked for good).  A task untracked because
     * its result is atomic is tracked again for that time.  A task with
     * nothing to report (nearly all) skips all that: its finalizer would
     * return at once (issue 10: W4b pays two task deallocations per
     * round trip). */
    if (task_may_report(t)) {
        if (!PyObject_GC_IsTracked(op)) {
            PyObject_GC_Track(op);
        }
        if (PyObject_CallFinalizerFromDealloc(op) < 0) {
            return; /* resurrected, and tracked */
        }
    }
    PyObject_GC_UnTrack(op);
    /* H4: a task can hold another (a continuation its antecedent, a
     * result a task, a box what it awaited): dropping a chain of any
     * length recurses through here, so CPython's trashcan defers the
     * levels past its limit (issue 9 items 2, 19).  After the finalizer:
     * a deferred call comes back here with the object finalized. */
    Py_TRASHCAN_BEGIN(op, Task_dealloc)
    if (t->task_weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    (void)Task_clear(op);
    if (t->task_flags & TF_HAS_X) {
        PyMem_Free(t->task_xb); /* emptied by Task_clear */
        t->task_flags &= ~TF_HAS_X;
        t->task_tgt = NULL;
    }
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* Task's own methods; task_compose_methods appends those of the files
 * above (issue 10). */
static PyMethodDef task_own_methods[] = {
    {"__await__", await_method_iter, METH_NOARGS | METH_COEXIST,
     PyDoc_STR("__await__($self, /)\n--\n\n"
               "An iterator over the await's steps (for `yield from`).")},
    {"wait", (PyCFunction)(void (*)(void))task_wait,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("wait($self, /, timeout=None, cancellation_token=None)\n--\n\n"
               "Block until the task completes (like Task.Wait); return\n"
               "False on timeout.  Raises AggregateError if it failed.")},
    {"as_future", task_as_future, METH_NOARGS,
     PyDoc_STR("as_future($self, /)\n--\n\n"
               "A concurrent.futures.Future completed like this task.")},
    {"as_asyncio_future", (PyCFunction)(void (*)(void))task_as_asyncio_future,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("as_asyncio_future($self, /, loop=None)\n--\n\n"
               "An asyncio future of loop (the running loop by default)\n"
               "completed like this task: its value, its exception object,\n"
               "or TaskCanceledError.  Cancelling the future does not\n"
               "cancel the task (I2).")},
    {"current_id", task_current_id, METH_NOARGS | METH_STATIC,
     PyDoc_STR("current_id()\n--\n\n"
               "The id of the task whose delegate runs on this thread, or\n"
               "None (like Task.CurrentId).")},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     PyDoc_STR("See PEP 585")},
    {NULL, NULL, 0, NULL},
};

/* The composed table the type points at (static: the type keeps
 * pointers into it). */
static PyMethodDef Task_methods[TASK_METHODS_MAX + 1];

int
task_compose_methods(PyMethodDef *const *parts, size_t nparts)
{
    size_t n = 0;
    const PyMethodDef *d;
    for (d = task_own_methods; d->ml_name != NULL; d++) {
        Task_methods[n++] = *d; /* fewer than TASK_METHODS_MAX (asserted
                                   by the check below on each append) */
    }
    for (size_t i = 0; i < nparts; i++) {
        for (d = parts[i]; d->ml_name != NULL; d++) {
            if (n >= TASK_METHODS_MAX) {
                PyErr_SetString(PyExc_SystemError,
                                "sharptask: TASK_METHODS_MAX too small");
                return -1;
            }
            Task_methods[n++] = *d;
        }
    }
    memset(&Task_methods[n], 0, sizeof(Task_methods[n])); /* sentinel */
    return 0;
}

static PyGetSetDef Task_getset[] = {
    {"status", task_status_get, NULL, PyDoc_STR("The TaskStatus."), NULL},
    {"id", task_id_get, NULL, PyDoc_STR("A unique id, assigned lazily."),
     NULL},
    {"is_completed", task_is_completed_get, NULL,
     PyDoc_STR("True once completed in any way."), NULL},
    {"is_completed_successfully", task_is_completed_successfully_get, NULL,
     PyDoc_STR("True if it ran to completion."), NULL},
    {"is_faulted", task_is_faulted_get, NULL, PyDoc_STR("True if faulted."),
     NULL},
    {"is_canceled", task_is_canceled_get, NULL,
     PyDoc_STR("True if canceled."), NULL},
    {"exception", task_exception_get, NULL,
     PyDoc_STR("An AggregateError of the task's exceptions, or None."),
     NULL},
    {"async_state", task_async_state_get, NULL,
     PyDoc_STR("The state object given at creation."), NULL},
    {"creation_options", task_creation_options_get, NULL,
     PyDoc_STR("The TaskCreationOptions."), NULL},
    {"result", task_result_get, NULL,
     PyDoc_STR("The result; blocks until completion (like Task.Result).\n"
               "Raises AggregateError if the task failed."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Task_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TaskObject, task_weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Task_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "A promise of a result, like System.Threading.Tasks.Task.\n\n"
         "Made by Task.run, async methods, TaskCompletionSource and the\n"
         "combinators; awaitable from an async method.")},
    {Py_tp_new, task_new},
    {Py_tp_traverse, Task_traverse},
    {Py_tp_clear, Task_clear},
    {Py_tp_finalize, Task_finalize},
    {Py_tp_dealloc, Task_dealloc},
    {Py_tp_repr, task_repr},
    {Py_tp_iternext, task_iternext},
    {Py_am_await, task_await},
    {Py_am_send, task_am_send},
    {Py_tp_methods, Task_methods},
    {Py_tp_getset, Task_getset},
    {Py_tp_members, Task_members},
    {0, NULL},
};

PyType_Spec Task_spec = {
    .name = "sharptask.Task",
    .basicsize = sizeof(TaskObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Task_slots,
};

/* ------------------------------------- used by the builder (issue 10) */

/* _scheduled_resume(box_action, scheduler) -> Task: a delegate task that
 * runs box_action() on scheduler (an await that captured it, R7.2). */
PyObject *
task_new_on_scheduler(st_state *st, PyObject *fn, PyObject *scheduler)
{
    TaskObject *t = task_alloc(st, TASK_DELEGATE, ST_STATUS_WAITING_TO_RUN,
                               0x1 /* PREFER_FAIRNESS */);
    if (t == NULL) {
        return NULL;
    }
    t->task_fr = Py_NewRef(fn); /* a new task: the slot is empty */
    t->task_arg = PyTuple_New(0);
    if (t->task_arg == NULL
        || task_x_put(t, x_scheduler, Py_NewRef(scheduler)) < 0
        || task_queue_work(st, t, task_work_run) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

/* The builder sees through a TaskAwaiter / ConfiguredTaskAwaitable. */
int
awaiter_unpack(st_state *st, PyObject *op, TaskObject **task,
               int *options)
{
    if (Py_TYPE(op) != st->ConfiguredAwaitable_type
        && Py_TYPE(op) != st->TaskAwaiter_type) {
        return 0;
    }
    *task = AwaiterObject_CAST(op)->aw_task;
    *options = AwaiterObject_CAST(op)->aw_options;
    return 1;
}
