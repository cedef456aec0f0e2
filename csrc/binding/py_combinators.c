/* py_combinators.c - what combines or waits on tasks: continue_with,
 * unwrap, when_all / when_any, the blocking waits (Task.wait's
 * task_wait_blocking, wait_any, the quiet wait) and wait_async with a
 * timeout.  wait_all / wait_any's argument handling is Python (_impl.py).
 *
 * Every node registered here owns one strong reference (for when_all and
 * when_any, to their shared when_core), dropped by its fn; a pending task
 * destroyed with nodes on it releases them through the node's kind
 * (abandon_conts in py_task.c), and the GC visits them the same way.
 */
#include "binding.h"
#include "py_combinators.h"
#include "py_task.h"
#include "py_task_impl.h"
#include "py_args.h"
#include "py_cancel_reg.h"
#include "py_context.h"
#include "py_errors.h"
#include "py_gil.h"
#include "py_delay.h"
#include "py_pool.h"
#include "py_state.h"
#include "py_timer.h"
#include "py_deadlock.h"

#include <pthread.h> /* pthread_cleanup_push (item 25) */
#include <stddef.h>  /* offsetof */

#include "st_error.h"
#include "st_list.h"   /* st_container_of */
#include "st_thread.h" /* st_now_ns, st_cpu_count */


/* ------------------------------------------------------------ waiting */

/* Takes a sync waiter off t.  A completer that has already taken the node
 * may still be on its way to signalling it (the SIGNAL nodes ahead of it
 * run first): wait for it with the GIL released, never with it held
 * (issue 9 item 6: a token watch's SIGNAL node used to drop a source and
 * run its weakref callback there, which needs the GIL; SIGNAL nodes run
 * no Python code now, but no wait blocks with the GIL held either).  The
 * common case, a node still registered or already signalled, keeps the
 * GIL.
 *
 * What is waited for is the completer's own signal (the core's
 * `signalled`), not w's event: the deadlock detector sets the event too
 * (deadlock_graph_changed), and a wake-up that came just before the
 * completion must not let this return while the completer is still to
 * touch w, which lives on the caller's stack (issue 9, the race
 * hard-args reported; core test task_remove_waiter_woken_early).  With
 * the GIL held here and every completion publishing its status and
 * running its SIGNAL nodes within one GIL hold (task_try_complete), the
 * window is closed on this path anyway; it is open where no GIL is held:
 * wait_abandon_run, below, when finalization ends the thread.
 *
 * If finalization ends this thread when it retakes the GIL below, w is
 * already off the task and signalled: nothing is left pointing at the
 * stack (only st_waiter_destroy is skipped, which frees nothing). */
static void
waiter_remove(TaskObject *t, st_waiter_t *w)
{
    if (st_task_remove_waiter_nowait(&t->task_core, w) == ST_EBUSY) {
        Py_BEGIN_ALLOW_THREADS
        st_waiter_wait_signalled(w);
        Py_END_ALLOW_THREADS
    }
}

/* Retaking the GIL after a wait slice (issue 9 item 25).  During
 * finalization CPython ends a daemon thread (or an abandoned pool worker)
 * that takes the GIL: pthread_exit inside PyEval_RestoreThread (3.11 to
 * 3.13).  The thread's stack goes with it, and with it the wait's node
 * registered on the task, which the GC would then walk (Task_traverse)
 * or a completion signal.  pthread_exit runs cleanup handlers: the node
 * is taken off the task there (core calls only: no GIL, no Python). */
typedef struct wait_abandon {
    st_task_t *task;
    st_waiter_t *waiter;
} wait_abandon;

static void
wait_abandon_run(void *arg)
{
    wait_abandon *a = arg;
    st_task_remove_waiter(a->task, a->waiter);
}

static void
restore_thread_waiting(PyThreadState *save, st_task_t *task,
                       st_waiter_t *waiter)
{
    wait_abandon a = {task, waiter};
    pthread_cleanup_push(wait_abandon_run, &a);
    PyEval_RestoreThread(save);
    pthread_cleanup_pop(0);
}

int
task_wait_blocking(st_state *st, TaskObject *t, uint64_t timeout_ns)
{
    st_waiter_t w;
    uint64_t deadline, slice;
    st_pool_t *pool = st_pool_current();
    int rc = 0, done = 0, spin, abandon = -1;

    if (st_task_is_completed(&t->task_core)) {
        return 1;
    }
    if (timeout_ns == 0) {
        return 0;
    }
    spin = wait_spin_useful();
    deadline = wait_deadline(timeout_ns);
    st_waiter_init(&w);
    if (st_task_add_waiter(&t->task_core, &w) != 0) {
        st_waiter_destroy(&w);
        return 1;
    }
    if (deadlock_before_wait(st, t, &w, timeout_ns == UINT64_MAX) < 0) {
        waiter_remove(t, &w);
        st_waiter_destroy(&w);
        return -1;
    }
    if (pool != NULL) {
        st_pool_enter_blocking(pool);
    }
    while ((slice = wait_next_slice(deadline)) != 0) {
        {
        PyThreadState *save = PyEval_SaveThread();
        gil_note_released(); /* py_gil.c: the hand-off hint */
        if (spin) {
            /* A short busy-poll before sleeping: a completion that comes
             * within microseconds (a round trip through an idle pool) is
             * seen without a futex wake (BENCHMARKS.md rule 5). */
            uint64_t until = st_now_ns() + WAIT_SPIN_NS;
            unsigned pauses = 0;
            while (!st_task_is_completed(&t->task_core)
                   && st_now_ns() < until) {
                st_pool_spin_pause(&pauses); /* issue 3: yields too */
            }
            spin = 0;
        }
        rc = st_task_is_completed(&t->task_core) ? 0
                                                 : st_waiter_wait(&w, slice);
        pool_wait_gil_free(); /* issue 3: retake the GIL without a sleep */
        restore_thread_waiting(save, &t->task_core, &w);
        gil_note_taken();
        }
        if (rc == 0 && st_task_is_completed(&t->task_core)) {
            done = 1;
            break;
        }
        if (rc == 0) {
            /* woken without completion: another thread found this wait
             * deadlocked (C6) */
            st_event_reset(&w.ev);
            if (deadlock_check_woken(st, t) < 0) {
                done = -1;
                break;
            }
            continue;
        }
        /* Ctrl-C; H5: a pool item or the exiting thread gives up
         * (quietly reported), a daemon thread waits on */
        if (wait_slice_check(st, &abandon, "the wait was abandoned: the "
                             "interpreter is shutting down") < 0) {
            done = -1;
            break;
        }
    }
    if (pool != NULL) {
        st_pool_leave_blocking(pool);
    }
    deadlock_after_wait(st);
    /* Leaves nothing behind: a completion racing this removal is waited
     * for, with the GIL released (waiter_remove). */
    waiter_remove(t, &w);
    st_waiter_destroy(&w);
    if (done == 0 && st_task_is_completed(&t->task_core)) {
        done = 1;
    }
    return done;
}

/* The outer task of an unwrap completed: follow its inner task. */
void
unwrap_outer_done(st_cont_t *c, st_task_t *core, int how)
{
    if (how == ST_RUN_ASYNC && defer_cont(c, core) == 0) {
        return;
    }
    st_state *st = g_st;
    TaskObject *proxy = st_container_of(c, TaskObject, task_cont);
    TaskObject *outer = st_container_of(core, TaskObject, task_core);
    PyObject *inner;
    (void)how;

    if (st_task_status(core) != ST_STATUS_RAN_TO_COMPLETION) {
        task_complete_from(proxy, outer);
    }
    else if ((inner = task_result(outer)) == Py_None) {
        task_try_complete(proxy, ST_STATUS_CANCELED, NULL, NULL);
    }
    else if (!Task_Check(st, inner)) {
        PyObject *e = PyObject_CallFunction(
            PyExc_TypeError, "s", "unwrap(): the task's result is not a Task");
        PyObject *excs = e ? one_exception(e) : NULL;
        if (excs != NULL) {
            task_try_complete(proxy, ST_STATUS_FAULTED, excs, NULL);
        }
        else {
            PyErr_WriteUnraisable((PyObject *)proxy);
        }
        Py_XDECREF(excs);
        Py_XDECREF(e);
    }
    else {
        /* reuse the node (it is ours again) for the inner task */
        Py_XSETREF(proxy->task_arg, Py_NewRef(inner));
        c->fn = proxy_on_complete;
        Py_INCREF(proxy);
        if (st_task_add_cont(&((TaskObject *)inner)->task_core, c) != 0) {
            proxy_on_complete(c, &((TaskObject *)inner)->task_core,
                              ST_RUN_INLINE);
        }
    }
    Py_DECREF(proxy);
}

/* ------------------------------------------------------ when_all/any */

static int
WhenCore_traverse(PyObject *op, visitproc visit, void *arg)
{
    when_core *core = (when_core *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(core->promise);
    Py_VISIT(core->tasks);
    return 0;
}

/* No tp_clear: a cycle through a core always goes through a Task, whose
 * clear abandons the node (when_node_abandon) and so breaks it; the
 * core's fields stay valid for as long as any node can still run. */
static void
WhenCore_dealloc(PyObject *op)
{
    when_core *core = (when_core *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): it holds a promise, which holds anything */
    Py_TRASHCAN_BEGIN(op, WhenCore_dealloc)
    Py_DECREF(core->promise);
    Py_DECREF(core->tasks);
    PyObject_GC_Del(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyType_Slot WhenCore_slots[] = {
    {Py_tp_traverse, WhenCore_traverse},
    {Py_tp_dealloc, WhenCore_dealloc},
    {0, NULL},
};

static PyType_Spec WhenCore_spec = {
    .name = "sharptask._native._WhenCore",
    .basicsize = offsetof(when_core, nodes),
    .itemsize = sizeof(when_node),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = WhenCore_slots,
};

/* Made on first use, kept for the process (main interpreter only). */
static PyTypeObject *g_when_core_type;

/* Refs: new core (the caller's reference, dropped when its registrations
 * are done); borrows promise and tasks (the core takes its own). */
static when_core *
when_core_new(TaskObject *promise, PyObject *tasks)
{
    Py_ssize_t n = PyTuple_GET_SIZE(tasks);
    when_core *core;
    if (g_when_core_type == NULL) {
        g_when_core_type = (PyTypeObject *)PyType_FromSpec(&WhenCore_spec);
        if (g_when_core_type == NULL) {
            return NULL;
        }
    }
    core = PyObject_GC_NewVar(when_core, g_when_core_type, n);
    if (core == NULL) {
        return NULL;
    }
    core->promise = (TaskObject *)Py_NewRef(promise);
    core->tasks = Py_NewRef(tasks);
    core->remaining = 0;
    PyObject_GC_Track(core);
    return core;
}

int
when_node_traverse(st_cont_t *c, visitproc visit, void *arg)
{
    Py_VISIT(((when_node *)c)->core);
    return 0;
}

void
when_node_abandon(st_cont_t *c)
{
    Py_DECREF(((when_node *)c)->core);
}

/* Registers node i of core on its input (the node's reference to the
 * core taken first); 0, or -1 if the input had completed already. */
static int
when_node_register(when_core *core, Py_ssize_t i, st_cont_fn fn)
{
    TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(core->tasks, i);
    when_node *node = &core->nodes[i];
    node->core = (when_core *)Py_NewRef(core);
    node->index = i;
    node->cont.fn = fn;
    node->cont.kind = ST_CONT_ACTION;
    if (st_task_add_cont(&t->task_core, &node->cont) != 0) {
        Py_DECREF(core); /* not registered: the creator still holds it */
        return -1;
    }
    return 0;
}

/* Completes a when_all promise from its (all completed) inputs (T10). */
static void
when_all_finish(st_state *st, TaskObject *promise, PyObject *tasks)
{
    Py_ssize_t i, n = PyTuple_GET_SIZE(tasks);
    PyObject *excs = NULL, *results = NULL;
    TaskObject *first_canceled = NULL;

    for (i = 0; i < n; i++) {
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(tasks, i);
        int s = task_status(t);
        if (outcome_gone(st, t)) {
            goto error;
        }
        if (s == ST_STATUS_FAULTED) {
            if (excs == NULL && (excs = PyList_New(0)) == NULL) {
                goto error;
            }
            mark_observed(t);
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(task_result(t));
                 j++) {
                if (PyList_Append(excs,
                                  PyTuple_GET_ITEM(task_result(t), j)) < 0) {
                    goto error;
                }
            }
        }
        else if (s == ST_STATUS_CANCELED && first_canceled == NULL) {
            first_canceled = t;
        }
    }
    if (excs != NULL) {
        PyObject *tup = PyList_AsTuple(excs);
        if (tup == NULL) {
            goto error;
        }
        task_try_complete(promise, ST_STATUS_FAULTED, tup, NULL);
        Py_DECREF(tup);
    }
    else if (first_canceled != NULL) {
        task_try_complete(promise, ST_STATUS_CANCELED,
                          task_result(first_canceled),
                          task_token(first_canceled));
    }
    else {
        if ((results = PyList_New(n)) == NULL) {
            goto error;
        }
        for (i = 0; i < n; i++) {
            TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(tasks, i);
            PyList_SET_ITEM(results, i, Py_NewRef(task_result(t)));
        }
        task_try_complete(promise, ST_STATUS_RAN_TO_COMPLETION, results,
                          NULL);
    }
    Py_XDECREF(excs);
    Py_XDECREF(results);
    return;
error:
    Py_XDECREF(excs);
    Py_XDECREF(results);
    /* cannot even build the result: fault with what was raised */
    if (task_complete_from_error(promise, 0) < 0) {
        pending_exc_save();
    }
}

/* One input (or the registration loop's hold) is done: drops its
 * reference to the core. */
static void
when_all_release(when_core *core)
{
    if (--core->remaining == 0) {
        when_all_finish(g_st, core->promise, core->tasks);
    }
    Py_DECREF(core);
}

void
when_all_node_fn(st_cont_t *c, st_task_t *core_task, int how)
{
    if (how == ST_RUN_ASYNC && defer_cont(c, core_task) == 0) {
        return; /* queued: the node keeps its reference */
    }
    when_all_release(((when_node *)c)->core);
}

void
when_any_node_fn(st_cont_t *c, st_task_t *core_task, int how)
{
    when_node *node = (when_node *)c;
    when_core *core = node->core;
    PyObject *winner = PyTuple_GET_ITEM(core->tasks, node->index);
    Py_ssize_t i, n = PyTuple_GET_SIZE(core->tasks);

    if (how == ST_RUN_ASYNC && defer_cont(c, core_task) == 0) {
        return; /* queued: the node keeps its reference */
    }
    if (task_try_complete(core->promise, ST_STATUS_RAN_TO_COMPLETION,
                          winner, NULL)) {
        /* unregister from the losers (R5.7); this node's reference keeps
         * the core alive through the loop */
        for (i = 0; i < n; i++) {
            if (i == node->index || core->nodes[i].core == NULL) {
                continue;
            }
            TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(core->tasks, i);
            if (st_task_remove_cont(&t->task_core, &core->nodes[i].cont)
                == 0) {
                core->nodes[i].core = NULL;
                Py_DECREF(core); /* the loser's reference */
            }
        }
    }
    Py_DECREF(core);
}

/* Collects the tasks of when_all/when_any/wait_* from (*args) or one
 * iterable; checks each is a Task.  New tuple or NULL. */
static PyObject *
collect_tasks(st_state *st, PyObject *const *args, Py_ssize_t nargs,
              const char *fname)
{
    PyObject *seq;
    Py_ssize_t i;

    if (nargs == 1 && !Task_Check(st, args[0])) {
        if (args[0] == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s(): tasks must not be None",
                         fname);
            return NULL;
        }
        seq = PySequence_Tuple(args[0]);
        if (seq == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Format(PyExc_TypeError,
                             "%s(): tasks must be Tasks or an iterable of "
                             "Tasks, not %.100s",
                             fname, Py_TYPE(args[0])->tp_name);
            }
            return NULL;
        }
    }
    else {
        seq = PyTuple_New(nargs);
        if (seq == NULL) {
            return NULL;
        }
        for (i = 0; i < nargs; i++) {
            PyTuple_SET_ITEM(seq, i, Py_NewRef(args[i]));
        }
    }
    for (i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        PyObject *t = PyTuple_GET_ITEM(seq, i);
        if (!Task_Check(st, t)) {
            PyErr_Format(t == Py_None ? PyExc_ValueError : PyExc_TypeError,
                         "%s(): tasks[%zd] must be a Task, not %.100s",
                         fname, i, Py_TYPE(t)->tp_name);
            Py_DECREF(seq);
            return NULL;
        }
    }
    return seq;
}

PyObject *
task_when_all(PyObject *unused, PyObject *const *args, Py_ssize_t nargs)
{
    st_state *st = g_st;
    PyObject *tasks, *promise;
    when_core *core;
    Py_ssize_t i, n;

    tasks = collect_tasks(st, args, nargs, "when_all");
    if (tasks == NULL) {
        return NULL;
    }
    n = PyTuple_GET_SIZE(tasks);
    promise = task_new_promise(st, NULL, 0);
    if (promise == NULL) {
        Py_DECREF(tasks);
        return NULL;
    }
    ((TaskObject *)promise)->task_arg = Py_NewRef(tasks);
    core = when_core_new((TaskObject *)promise, tasks);
    if (core == NULL) {
        Py_DECREF(tasks);
        Py_DECREF(promise);
        return NULL;
    }
    /* Count first, then register: a registration cannot complete an
     * input (no Python runs here), so the count cannot go to zero early;
     * our reference to the core is the loop's hold. */
    core->remaining = 1;
    for (i = 0; i < n; i++) {
        core->remaining++;
        if (when_node_register(core, i, when_all_node_fn) < 0) {
            core->remaining--;
        }
    }
    Py_DECREF(tasks);
    when_all_release(core); /* drop the loop's hold */
    return promise;
}

PyObject *
task_when_any(PyObject *unused, PyObject *const *args, Py_ssize_t nargs)
{
    st_state *st = g_st;
    PyObject *tasks, *promise;
    when_core *core;
    Py_ssize_t i, n;

    tasks = collect_tasks(st, args, nargs, "when_any");
    if (tasks == NULL) {
        return NULL;
    }
    n = PyTuple_GET_SIZE(tasks);
    if (n == 0) {
        Py_DECREF(tasks);
        PyErr_SetString(PyExc_ValueError,
                        "when_any(): tasks must not be empty");
        return NULL;
    }
    /* already completed: the first in argument order wins (R5.7) */
    for (i = 0; i < n; i++) {
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(tasks, i);
        if (st_task_is_completed(&t->task_core)) {
            promise = task_new_completed(st, (PyObject *)t);
            Py_DECREF(tasks);
            return promise;
        }
    }
    promise = task_new_promise(st, NULL, 0);
    if (promise == NULL) {
        Py_DECREF(tasks);
        return NULL;
    }
    core = when_core_new((TaskObject *)promise, tasks);
    Py_DECREF(tasks);
    if (core == NULL) {
        Py_DECREF(promise);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        /* no input is complete and no Python runs here: cannot fail */
        int rc = when_node_register(core, i, when_any_node_fn);
        ST_ASSERT(rc == 0);
        (void)rc;
    }
    Py_DECREF(core); /* the nodes hold it now */
    return promise;
}

PyObject *
task_continue_with(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fn", "state", "cancellation_token", "options",
                             "scheduler", NULL};
    st_state *st = g_st;
    TaskObject *ante = TaskObject_CAST(op), *ct;
    PyObject *fn, *state = NULL, *token = Py_None, *scheduler = Py_None;
    PyObject *opts_o = NULL;
    uint32_t opts = 0;
    uint32_t copts;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOOO:continue_with",
                                     kwlist, &fn, &state, &token, &opts_o,
                                     &scheduler)) {
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "continue_with(): fn must be "
                     "callable, not %.100s", Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (parse_token(st, token, "cancellation_token", &token) < 0
        || (opts_o != NULL
            && parse_options(opts_o, "options", "TaskContinuationOptions",
                             TCW_VALID, &opts) < 0)) {
        return NULL;
    }
    if (token == NULL) {
        token = Py_None;
    }
    if ((opts & (TCW_NOT_ON_RAN | TCW_NOT_ON_FAULTED
                    | TCW_NOT_ON_CANCELED))
               == (TCW_NOT_ON_RAN | TCW_NOT_ON_FAULTED
                   | TCW_NOT_ON_CANCELED)
        || ((opts & TCW_EXEC_SYNC) && (opts & TCO_LONG_RUNNING))) {
        PyErr_Format(PyExc_ValueError,
                     "options: 0x%x is not a valid combination of "
                     "TaskContinuationOptions", (unsigned)opts);
        return NULL;
    }
    if (scheduler == Py_None) {
        /* R3.6/R10.6: the default is TaskScheduler.current(), not the
         * pool: work started inside a custom scheduler stays there */
        scheduler = tls_current_scheduler;
    }
    else if (scheduler_is_default(st, scheduler)) {
        scheduler = NULL;
    }
    else if (scheduler_check(st, scheduler) < 0) {
        return NULL;
    }
    copts = (uint32_t)(opts & 0x7F);
    ct = task_alloc(st, TASK_CONTINUATION, ST_STATUS_WAITING_FOR_ACTIVATION,
                    copts);
    if (ct == NULL) {
        return NULL;
    }
    ct->task_cwopts = (uint16_t)(opts >> 16);
    task_set_fn(ct, Py_NewRef(fn));
    ct->task_arg = Py_NewRef(op);
    if (state != NULL) {
        ct->task_flags |= TF_CONT_STATE;
    }
    ct->task_context = PyContext_CopyCurrent();
    if (ct->task_context == NULL
        || task_x_put(ct, x_scheduler, Py_XNewRef(scheduler)) < 0
        || task_x_put(ct, x_state, Py_XNewRef(state)) < 0
        || (token != Py_None
            && task_x_put(ct, x_token, Py_NewRef(token)) < 0)) {
        Py_DECREF(ct);
        return NULL;
    }
    if (token != Py_None) {
        int canceled = cancel_token_check(st, token); /* py_cancel.c */
        if (canceled < 0) {
            Py_DECREF(ct);
            return NULL;
        }
        if (canceled && !(opts & TCW_LAZY)) {
            /* R3.10: canceled before it could run */
            task_try_complete(ct, ST_STATUS_CANCELED, NULL, token);
            return (PyObject *)ct;
        }
    }
    ct->task_cont.fn = continuation_on_complete;
    ct->task_cont.kind = (opts & TCW_EXEC_SYNC) ? ST_CONT_TASK_SYNC
                                                : ST_CONT_TASK;
    Py_INCREF(ct); /* the registration's reference */
    rc = st_task_add_cont(&ante->task_core, &ct->task_cont);
    if (rc != 0) {
        /* already complete: synchronously only if asked (R3.9) */
        continuation_on_complete(&ct->task_cont, &ante->task_core,
                                 (opts & TCW_EXEC_SYNC) ? ST_RUN_INLINE
                                                        : ST_RUN_ASYNC);
        if (pending_exc_restore() < 0) {
            Py_DECREF(ct);
            return NULL;
        }
    }
    if (task_token(ct) != NULL && !(opts & TCW_LAZY)
        && cancel_watch_continuation(st, ct) < 0) { /* R3.10 */
        Py_DECREF(ct);
        return NULL;
    }
    return (PyObject *)ct;
}

PyObject *
task_unwrap(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    TaskObject *outer = TaskObject_CAST(op), *proxy;

    if (task_status(outer) == ST_STATUS_RAN_TO_COMPLETION) {
        PyObject *inner = task_result(outer);
        if (inner == Py_None) {
            return task_new_canceled(st, NULL, NULL);
        }
        if (!Task_Check(st, inner)) {
            PyErr_Format(PyExc_TypeError, "unwrap(): the task's result must "
                         "be a Task, not %.100s", Py_TYPE(inner)->tp_name);
            return NULL;
        }
        return Py_NewRef(inner);
    }
    proxy = (TaskObject *)task_new_promise(st, NULL, 0);
    if (proxy == NULL) {
        return NULL;
    }
    proxy->task_cont.fn = unwrap_outer_done;
    proxy->task_cont.kind = ST_CONT_ACTION;
    Py_INCREF(proxy);
    if (st_task_add_cont(&outer->task_core, &proxy->task_cont) != 0) {
        unwrap_outer_done(&proxy->task_cont, &outer->task_core,
                          ST_RUN_INLINE);
    }
    return (PyObject *)proxy;
}

PyObject *
task_wait_async(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "cancellation_token",
                             "time_provider", NULL};
    PyObject *timeout = Py_None, *token = Py_None, *provider = Py_None;
    uint64_t ns;
    int infinite;
    PyObject *tok;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:wait_async", kwlist,
                                     &timeout, &token, &provider)) {
        return NULL;
    }
    if (parse_timeout(timeout, "timeout", &ns, &infinite) < 0
        || parse_token(g_st, token, "cancellation_token", &tok) < 0) {
        return NULL;
    }
    if (provider != Py_None) { /* P6a (issue 3) */
        return timers_wait_async(g_st, op, timeout, token, provider);
    }
    PyObject *a[3] = {op, timeout, token};
    return call_impl(g_st, "task_wait_async", a, 3, NULL);
}

PyObject *
task_wait_all(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    return call_impl(g_st, "wait_all", args, (size_t)nargs, kwnames);
}

PyObject *
task_wait_any(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    return call_impl(g_st, "wait_any", args, (size_t)nargs, kwnames);
}
/* ------------------------------------------- waits on several tasks */

/* One node per task, one shared event (Task.wait_any).  Every node is
 * removed before returning, so a timed-out wait leaves nothing on a task
 * that stays pending. */
typedef struct multi_node {
    st_cont_t cont;
    st_event_t *ev;
    ST_ATOMIC(int) done; /* fn finished: the node is ours again */
} multi_node;

static void
multi_node_fire(st_cont_t *c, st_task_t *core, int how)
{
    multi_node *n = (multi_node *)c;
    (void)core;
    (void)how;
    st_event_set(n->ev);
    /* release: the waiter may free n once it sees this */
    st_atomic_store(&n->done, 1, ST_RELEASE);
}

static Py_ssize_t
first_completed(PyObject *tasks)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tasks); i++) {
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(tasks, i);
        if (st_task_is_completed(&t->task_core)) {
            return i;
        }
    }
    return -1;
}

/* As restore_thread_waiting, for _wait_any's nodes (issue 9 item 25):
 * their event lives on the waiting thread's stack. */
typedef struct multi_abandon {
    PyObject *tasks; /* the tuple: kept alive by the ended thread's frame */
    multi_node *nodes;
} multi_abandon;

static void
multi_abandon_run(void *arg)
{
    multi_abandon *a = arg;
    /* no GIL: only the tuple's items are read, and core calls made */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(a->tasks); i++) {
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(a->tasks, i);
        if (st_atomic_load(&a->nodes[i].done, ST_ACQUIRE)) {
            continue;
        }
        if (st_task_remove_cont(&t->task_core, &a->nodes[i].cont) != 0) {
            /* taken by a completer: wait until it fired (it sets done
             * last, and then no longer touches the node or ev) */
            while (!st_atomic_load(&a->nodes[i].done, ST_ACQUIRE)) {
                st_cpu_relax();
            }
        }
    }
}

static void
restore_thread_waiting_any(PyThreadState *save, PyObject *tasks,
                           multi_node *nodes)
{
    multi_abandon a = {tasks, nodes};
    pthread_cleanup_push(multi_abandon_run, &a);
    PyEval_RestoreThread(save);
    pthread_cleanup_pop(0);
}

/* _wait_any(tasks, timeout) -> index or -1 (T4, R5.11). */
PyObject *
mod_wait_any(PyObject *mod, PyObject *args)
{
    st_state *st = g_st;
    PyObject *seq, *timeout;
    Py_ssize_t i, n, idx;
    uint64_t ns, deadline, slice;
    int infinite, rc = 0, err = 0, busy = 0;
    multi_node *nodes;
    st_event_t ev;

    if (!PyArg_ParseTuple(args, "O!O:_wait_any", &PyTuple_Type, &seq,
                          &timeout)) {
        return NULL;
    }
    if (parse_timeout(timeout, "timeout", &ns, &infinite) < 0) {
        return NULL;
    }
    n = PyTuple_GET_SIZE(seq);
    for (i = 0; i < n; i++) {
        if (!Task_Check(st, PyTuple_GET_ITEM(seq, i))) {
            PyErr_Format(PyExc_TypeError, "tasks[%zd] must be a Task", i);
            return NULL;
        }
    }
    if (n == 0) {
        return PyLong_FromLong(-1);
    }
    if ((idx = first_completed(seq)) >= 0 || (!infinite && ns == 0)) {
        return PyLong_FromSsize_t(idx);
    }
    nodes = PyMem_Calloc((size_t)n, sizeof(*nodes));
    if (nodes == NULL) {
        return PyErr_NoMemory();
    }
    st_event_init(&ev);
    for (i = 0; i < n; i++) {
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(seq, i);
        nodes[i].cont.fn = multi_node_fire;
        nodes[i].cont.kind = ST_CONT_SIGNAL;
        nodes[i].ev = &ev;
        st_atomic_init(&nodes[i].done, 0);
        if (st_task_add_cont(&t->task_core, &nodes[i].cont) != 0) {
            st_atomic_store(&nodes[i].done, 1, ST_RELAXED); /* not added */
            st_event_set(&ev);
        }
    }
    deadline = wait_deadline(infinite ? UINT64_MAX : ns);
    while (first_completed(seq) < 0
           && (slice = wait_next_slice(deadline)) != 0) {
        {
        PyThreadState *save = PyEval_SaveThread();
        rc = st_event_wait(&ev, slice);
        restore_thread_waiting_any(save, seq, nodes);
        }
        if (rc == 0) {
            st_event_reset(&ev);
            continue;
        }
        if (PyErr_CheckSignals() < 0) {
            err = 1;
            break;
        }
    }
    /* Every node back.  First without blocking (GIL held): a node taken
     * off its task is ours again.  A node a completer took but has not
     * fired yet is waited for with the GIL released, as waiter_remove
     * does (issue 9 item 6), all of them in one stretch: finalization may
     * end this thread when it retakes the GIL (issue 9 item 25), and by
     * then no node may be left on a task, or about to be fired, with `ev`
     * on this stack (one Py_BEGIN/END_ALLOW_THREADS per node left the
     * later ones registered if the thread ended at the first retake). */
    for (i = 0; i < n; i++) {
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(seq, i);
        if (st_atomic_load(&nodes[i].done, ST_ACQUIRE)) {
            continue;
        }
        if (st_task_remove_cont(&t->task_core, &nodes[i].cont) == 0) {
            /* relaxed: our own node, nobody else sees it now */
            st_atomic_store(&nodes[i].done, 1, ST_RELAXED);
        }
        else {
            busy = 1;
        }
    }
    if (busy) {
        PyThreadState *save = PyEval_SaveThread();
        for (i = 0; i < n; i++) {
            /* The node sets ev before done: re-check in short slices. */
            while (!st_atomic_load(&nodes[i].done, ST_ACQUIRE)) {
                st_event_reset(&ev);
                if (st_atomic_load(&nodes[i].done, ST_ACQUIRE)) {
                    break;
                }
                (void)st_event_wait(&ev, 1000000u); /* 1 ms */
            }
        }
        /* every node is done: an end of the thread here leaves nothing */
        PyEval_RestoreThread(save);
    }
    st_event_destroy(&ev);
    PyMem_Free(nodes);
    if (err) {
        return NULL;
    }
    return PyLong_FromSsize_t(first_completed(seq));
}

/* _wait_quiet(task, timeout) -> bool: waits for completion without
 * raising or observing anything (wait_all's per-task wait). */
PyObject *
mod_wait_quiet(PyObject *mod, PyObject *args)
{
    st_state *st = g_st;
    PyObject *task, *timeout;
    uint64_t ns;
    int infinite, rc;
    if (!PyArg_ParseTuple(args, "O!O:_wait_quiet", st->Task_type, &task,
                          &timeout)) {
        return NULL;
    }
    if (parse_timeout(timeout, "timeout", &ns, &infinite) < 0) {
        return NULL;
    }
    rc = task_wait_blocking(st, (TaskObject *)task,
                            infinite ? UINT64_MAX : ns);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

/* ---------------------------------------------------------- wait_async */

/* A wait_async with a timeout: one node on the source, one on a delay
 * task, and whichever runs first completes the promise and takes the
 * other off its task, so that a finished wait holds nothing: a source
 * that completes first disarms the timer at once (issue 9 item 10: the
 * source, its result and the timer stayed alive until the deadline), and
 * a timeout leaves nothing on a long-pending source.  Everything here
 * runs with the GIL; `refs` counts the nodes still registered. */
typedef struct wait_async_timer {
    st_cont_t src_cont;  /* on src */
    st_cont_t cont;      /* on delay */
    TaskObject *promise; /* strong */
    TaskObject *delay;   /* strong */
    TaskObject *src;     /* strong; not in promise->task_arg, so that the
                            deadlock walk does not take this promise for a
                            plain proxy: it can also time out */
    struct delay_node *timer; /* our claim on the delay's timer, or NULL */
    int refs;
    double secs;         /* the timeout, for the message */
} wait_async_timer;

/* The TimeoutError of wait_async: what timed out and after how long
 * (issue 14), worded as sharptask._impl._timeout_error words it.  Returns
 * a new reference, or NULL with an exception set. */
static PyObject *
wait_async_timeout_error(TaskObject *src, double secs)
{
    PyObject *msg, *e;
    char *num = PyOS_double_to_string(secs, 'g', 6, 0, NULL);
    if (num == NULL) {
        return NULL;
    }
    msg = PyUnicode_FromFormat("wait_async(): %R did not complete within "
                               "the timeout of %s s", (PyObject *)src, num);
    PyMem_Free(num);
    if (msg == NULL) {
        return NULL;
    }
    e = PyObject_CallOneArg(PyExc_TimeoutError, msg);
    Py_DECREF(msg);
    return e;
}

/* One node is done (ran, or taken off its task): the last frees w. */
static void
wait_async_release(wait_async_timer *w)
{
    if (--w->refs > 0) {
        return;
    }
    if (w->timer != NULL) {
        delay_release(w->timer, 1);
    }
    Py_DECREF(w->promise);
    Py_DECREF(w->delay);
    Py_DECREF(w->src);
    PyMem_Free(w);
}

static void
wait_async_timeout_fire(st_cont_t *c, st_task_t *core, int how)
{
    wait_async_timer *w = st_container_of(c, wait_async_timer, cont);
    TaskObject *p = w->promise;
    PyObject *e = wait_async_timeout_error(w->src, w->secs), *excs;
    (void)core;
    (void)how;
    excs = e != NULL ? PyTuple_Pack(1, e) : NULL;
    Py_XDECREF(e);
    if (excs == NULL) {
        PyErr_WriteUnraisable((PyObject *)p);
    }
    else {
        (void)task_try_complete(p, ST_STATUS_FAULTED, excs, NULL);
        Py_DECREF(excs);
    }
    /* the source no longer needs to tell us anything */
    if (st_task_remove_cont(&w->src->task_core, &w->src_cont) == 0) {
        wait_async_release(w); /* that node will never run */
    }
    wait_async_release(w);
}

static void
wait_async_source_done(st_cont_t *c, st_task_t *core, int how)
{
    wait_async_timer *w = st_container_of(c, wait_async_timer, src_cont);
    TaskObject *src = st_container_of(core, TaskObject, task_core);
    (void)how;
    (void)task_complete_from(w->promise, src);
    /* the timeout lost: off the delay, and the timer disarmed now */
    if (st_task_remove_cont(&w->delay->task_core, &w->cont) == 0) {
        wait_async_release(w); /* that node will never run */
    }
    wait_async_release(w);
}

/* _wait_async_timeout(task, seconds) -> Task: mirrors task, or faults
 * with TimeoutError after seconds (R5.9); no token. */
PyObject *
mod_wait_async_timeout(PyObject *mod, PyObject *args)
{
    st_state *st = g_st;
    PyObject *task, *timeout;
    TaskObject *src, *p, *delay;
    struct delay_node *timer = NULL;
    wait_async_timer *w;
    uint64_t ns;
    int infinite;

    if (!PyArg_ParseTuple(args, "O!O:_wait_async_timeout", st->Task_type,
                          &task, &timeout)) {
        return NULL;
    }
    if (parse_timeout(timeout, "timeout", &ns, &infinite) < 0) {
        return NULL;
    }
    src = (TaskObject *)task;
    if (infinite || st_task_is_completed(&src->task_core)) {
        return Py_NewRef(task);
    }
    p = (TaskObject *)task_new_promise(st, NULL, 0);
    if (p == NULL) {
        return NULL;
    }
    delay = ns == 0 ? (TaskObject *)Py_NewRef(st->cached[0])
                    : (TaskObject *)delay_start_owned(st, ns, &timer);
    w = delay ? PyMem_Malloc(sizeof(*w)) : NULL;
    if (w == NULL) {
        if (timer != NULL) {
            delay_release(timer, 1);
        }
        Py_XDECREF(delay);
        Py_DECREF(p);
        return delay ? PyErr_NoMemory() : NULL;
    }
    w->src_cont.fn = wait_async_source_done;
    w->src_cont.kind = ST_CONT_ACTION;
    w->cont.fn = wait_async_timeout_fire;
    w->cont.kind = ST_CONT_ACTION;
    w->promise = (TaskObject *)Py_NewRef(p);
    w->delay = delay; /* steals */
    w->src = (TaskObject *)Py_NewRef(src);
    w->timer = timer; /* steals our claim */
    w->refs = 2;
    w->secs = (double)ns / 1e9;
    /* Both nodes go on before either may run: each one's fn takes the
     * other off its task. */
    if (st_task_add_cont(&delay->task_core, &w->cont) != 0) {
        w->refs--; /* the delay is over already (ns == 0): run it below */
    }
    if (st_task_add_cont(&src->task_core, &w->src_cont) != 0) {
        wait_async_source_done(&w->src_cont, &src->task_core,
                               ST_RUN_INLINE);
    }
    else if (w->refs == 1) {
        w->refs++;
        wait_async_timeout_fire(&w->cont, &delay->task_core, ST_RUN_INLINE);
    }
    if (pending_exc_restore() < 0) {
        Py_DECREF(p);
        return NULL;
    }
    return (PyObject *)p;
}

/* ------------------------------------------------ given to the task layer */

/* A when_all/when_any node: py_task.c visits (when_node_traverse) and
 * abandons (when_node_abandon) it through its kind. */
const task_node_kind when_all_node_kind = {
    when_all_node_fn, NULL, when_node_traverse, when_node_abandon};
const task_node_kind when_any_node_kind = {
    when_any_node_fn, NULL, when_node_traverse, when_node_abandon};
const task_node_kind unwrap_node_kind = {
    unwrap_outer_done, task_cont_owner, NULL, NULL};

/* Task's methods that continue, combine and wait (task_compose_methods,
 * from module.c). */
PyMethodDef combinators_task_methods[] = {
    {"continue_with", (PyCFunction)(void (*)(void))task_continue_with,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("continue_with($self, fn, /, state=..., "
               "cancellation_token=None, options=0, scheduler=None)\n--\n\n"
               "Run fn(antecedent) (or fn(antecedent, state)) when this task\n"
               "completes; return its Task (like Task.ContinueWith).")},
    {"unwrap", task_unwrap, METH_NOARGS,
     PyDoc_STR("unwrap($self, /)\n--\n\n"
               "For a Task of a Task: a Task that mirrors the inner one\n"
               "(like TaskExtensions.Unwrap).")},
    {"wait_async", (PyCFunction)(void (*)(void))task_wait_async,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("wait_async($self, /, timeout=None, cancellation_token=None, "
               "time_provider=None)\n--\n\n"
               "A Task that completes like this one, or faults with\n"
               "TimeoutError / is canceled first (like Task.WaitAsync).")},
    {"when_all", (PyCFunction)(void (*)(void))task_when_all,
     METH_FASTCALL | METH_STATIC,
     PyDoc_STR("when_all(*tasks)\n--\n\n"
               "A Task of the list of results, in argument order (like\n"
               "Task.WhenAll).  Also accepts one iterable of tasks.")},
    {"when_any", (PyCFunction)(void (*)(void))task_when_any,
     METH_FASTCALL | METH_STATIC,
     PyDoc_STR("when_any(*tasks)\n--\n\n"
               "A Task of the first task to complete (like Task.WhenAny).")},
    {"wait_all", (PyCFunction)(void (*)(void))task_wait_all,
     METH_FASTCALL | METH_KEYWORDS | METH_STATIC,
     PyDoc_STR("wait_all(*tasks, timeout=None)\n--\n\n"
               "Block until all complete (like Task.WaitAll).")},
    {"wait_any", (PyCFunction)(void (*)(void))task_wait_any,
     METH_FASTCALL | METH_KEYWORDS | METH_STATIC,
     PyDoc_STR("wait_any(*tasks, timeout=None)\n--\n\n"
               "Block until one completes; its index, or -1 on timeout\n"
               "(like Task.WaitAny).")},
    {NULL, NULL, 0, NULL},
};

/* The module functions of the waits, for module.c. */
PyMethodDef combinators_module_methods[] = {
    {"_wait_any", mod_wait_any, METH_VARARGS,
     PyDoc_STR("_wait_any(tasks, timeout, /)\n--\n\n"
               "Internal: Task.wait_any's wait; index or -1.")},
    {"_wait_quiet", mod_wait_quiet, METH_VARARGS,
     PyDoc_STR("_wait_quiet(task, timeout, /)\n--\n\n"
               "Internal: wait for completion; False on timeout; observes "
               "nothing.")},
    {"_wait_async_timeout", mod_wait_async_timeout, METH_VARARGS,
     PyDoc_STR("_wait_async_timeout(task, timeout, /)\n--\n\n"
               "Internal: Task.wait_async with a timeout only.")},
    {NULL, NULL, 0, NULL},
};
