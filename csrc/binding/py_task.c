/* py_task.c - Task, TaskCompletionSource and the task awaiters.
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

#include <pthread.h>      /* pthread_cleanup_push (item 25) */
#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef, T_PYSSIZET (3.11) */

#include "st_error.h"
#include "st_list.h"   /* st_container_of */
#include "st_thread.h" /* st_now_ns, st_cpu_count */

/* ------------------------------------------------------------ helpers */

#define WAIT_SLICE_NS 50000000u /* 50 ms: Ctrl-C latency bound (T6) */
#define WAIT_SPIN_NS 20000u     /* 20 us of busy-poll before sleeping */

static int g_ncpu = 0; /* st_cpu_count(), read once */

/* Task creation options that are valid (R1.11). */
#define TCO_VALID 0x5Fu
#define TCO_RCA 0x40u
#define TCO_LONG_RUNNING 0x2u
/* Continuation options (R3.7). */
#define TCW_LAZY 0x20u
#define TCW_NOT_ON_RAN 0x10000u
#define TCW_NOT_ON_FAULTED 0x20000u
#define TCW_NOT_ON_CANCELED 0x40000u
#define TCW_EXEC_SYNC 0x80000u
#define TCW_VALID (0x7Fu | 0xF0000u)

/* The delegate task whose code runs on this thread (Task.current_id). */
static ST_THREAD_LOCAL TaskObject *tls_current_task;

/* The custom scheduler whose task runs on this thread (borrowed), or NULL
 * for the default: TaskScheduler.current() (C7, R10.2). */
static ST_THREAD_LOCAL PyObject *tls_current_scheduler;

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

static TaskObject *
task_alloc(st_state *st, int kind, int status, uint32_t options)
{
    TaskObject *t = PyObject_GC_New(TaskObject, st->Task_type);
    if (t == NULL) {
        return NULL;
    }
    st_task_init(&t->task_core, status,
                 (options & TCO_RCA) ? ST_TASK_RUN_CONT_ASYNC : 0);
    t->task_id = 0;
    t->task_kind = (uint8_t)kind;
    t->task_flags = 0;
    t->task_cwopts = 0;
    t->task_options = options;
    t->task_result = NULL;
    t->task_token = NULL;
    t->task_state = NULL;
    t->task_fn = NULL;
    t->task_arg = NULL;
    t->task_context = NULL;
    t->task_target = NULL;
    t->task_weakreflist = NULL;
    t->task_scheduler = NULL;
    t->task_tb = NULL;
    t->task_box_prev = NULL;
    t->task_box_next = NULL;
    t->task_cont.next = NULL;
    t->task_cont.fn = NULL;
    t->task_cont.kind = ST_CONT_ACTION;
    t->task_work.next = NULL;
    t->task_work.run = NULL;
    t->task_work.flags = ST_WORK_DOMAIN;
    PyObject_GC_Track(t);
    return t;
}

static int
task_status(TaskObject *t)
{
    return st_task_status(&t->task_core);
}

static void
mark_observed(TaskObject *t)
{
    t->task_flags |= TF_OBSERVED;
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
    PyObject *fields[] = {t->task_result, t->task_token,   t->task_state,
                          t->task_fn,     t->task_arg,     t->task_context,
                          t->task_target, t->task_scheduler, t->task_tb};
    if (!st_task_is_completed(&t->task_core)
        || !PyObject_GC_IsTracked((PyObject *)t)) {
        return;
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (fields[i] != NULL && PyObject_IS_GC(fields[i])) {
            return;
        }
    }
    PyObject_GC_UnTrack(t);
}

/* ------------------------------------------------------- construction */

PyObject *
task_new_promise(st_state *st, PyObject *state, uint32_t options)
{
    TaskObject *t = task_alloc(st, TASK_PROMISE,
                               ST_STATUS_WAITING_FOR_ACTIVATION, options);
    if (t != NULL) {
        t->task_state = Py_XNewRef(state);
    }
    return (PyObject *)t;
}

PyObject *
task_new_completed(st_state *st, PyObject *value)
{
    TaskObject *t = task_alloc(st, TASK_PROMISE,
                               ST_STATUS_RAN_TO_COMPLETION, 0);
    if (t != NULL) {
        t->task_result = Py_NewRef(value);
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
        t->task_result = Py_NewRef(excs);
    }
    return (PyObject *)t;
}

PyObject *
task_new_canceled(st_state *st, PyObject *oce, PyObject *token)
{
    TaskObject *t = task_alloc(st, TASK_PROMISE, ST_STATUS_CANCELED, 0);
    if (t != NULL) {
        t->task_result = Py_XNewRef(oce);
        t->task_token = Py_XNewRef(token);
    }
    return (PyObject *)t;
}

/* --------------------------------------------------------- completion */

int
task_try_complete(TaskObject *t, int status, PyObject *value,
                  PyObject *token)
{
    PyObject *fn, *arg, *ctx;

    if (!st_task_try_reserve(&t->task_core)) {
        return 0;
    }
    /* No Python code may run until st_task_finish: only stores. */
    t->task_result = Py_XNewRef(value);
    if (status == ST_STATUS_FAULTED) {
        t->task_tb = PyException_GetTraceback(PyTuple_GET_ITEM(value, 0));
    }
    else if (status == ST_STATUS_CANCELED && value != NULL) {
        t->task_tb = PyException_GetTraceback(value);
    }
    if (token != NULL) {
        Py_XSETREF(t->task_token, Py_NewRef(token)); /* old: never set */
    }
    /* The delegate, the awaited object and the context are not needed
     * any more; drop them after publication (a DECREF can run code). */
    fn = t->task_fn;
    arg = t->task_arg;
    ctx = t->task_context;
    t->task_fn = NULL;
    t->task_context = NULL;
    if (t->task_kind == TASK_CONTINUATION) {
        arg = NULL; /* keep the antecedent: it is cheap and useful */
    }
    else {
        t->task_arg = NULL;
    }
    Py_CLEAR(t->task_target);
    box_registry_remove(t);
    st_task_finish(&t->task_core, status);
    cancel_release_deferred(); /* the watch nodes' drops (py_cancel.c) */
    Py_XDECREF(fn);
    Py_XDECREF(arg);
    Py_XDECREF(ctx);
    untrack_if_atomic(t);
    return 1;
}

/* Builds the exception tuple for an exception instance. */
static PyObject *
one_exception(PyObject *exc)
{
    return PyTuple_Pack(1, exc);
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
        return task_try_complete(dst, status, src->task_result, NULL);
    case ST_STATUS_FAULTED:
        mark_observed(src); /* the proxy carries them on (R2.6) */
        return task_try_complete(dst, status, src->task_result, NULL);
    case ST_STATUS_CANCELED:
        return task_try_complete(dst, status, src->task_result,
                                 src->task_token);
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
                       t->task_token ? t->task_token : Py_None);
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
    PyException_SetTraceback(exc, t->task_tb != NULL ? t->task_tb : Py_None);
    raise_instance(exc);
}

static int
outcome_gone(st_state *st, TaskObject *t)
{
    int s = task_status(t);
    if (t->task_result == NULL
        && (s == ST_STATUS_RAN_TO_COMPLETION || s == ST_STATUS_FAULTED)) {
        PyErr_SetString(st->InvalidOperationError,
                        "the task's outcome was cleared by the garbage "
                        "collector");
        return 1;
    }
    return 0;
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
        return Py_NewRef(t->task_result);
    case ST_STATUS_FAULTED:
        mark_observed(t);
        rethrow_stored(t, PyTuple_GET_ITEM(t->task_result, 0));
        return NULL;
    case ST_STATUS_CANCELED:
        if (t->task_result != NULL) {
            rethrow_stored(t, t->task_result);
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
        return make_aggregate(st, t->task_result);
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
    uint64_t deadline, now, slice;
    st_pool_t *pool = st_pool_current();
    int rc = 0, done = 0, spin, abandon = -1;

    if (st_task_is_completed(&t->task_core)) {
        return 1;
    }
    if (timeout_ns == 0) {
        return 0;
    }
    if (g_ncpu == 0) {
        g_ncpu = st_cpu_count();
    }
    spin = g_ncpu > 1; /* only with a second processor for the completer */
    deadline = timeout_ns == UINT64_MAX ? UINT64_MAX
                                        : st_now_ns() + timeout_ns;
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
    for (;;) {
        now = st_now_ns();
        if (now >= deadline) {
            break;
        }
        slice = deadline - now;
        if (slice > WAIT_SLICE_NS) {
            slice = WAIT_SLICE_NS;
        }
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
        if (PyErr_CheckSignals() < 0) {
            done = -1;
            break;
        }
        /* relaxed: a flag polled once per slice.  H5: a pool item or
         * the exiting thread gives up (quietly reported); a daemon
         * thread waits on until finalization stops it. */
        if (st_atomic_load(&st->shutting_down, ST_RELAXED)) {
            if (abandon < 0) {
                abandon = exit_should_abandon();
            }
            if (abandon) {
                raise_exiting(st, "the wait was abandoned: the "
                              "interpreter is shutting down");
                done = -1;
                break;
            }
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

/* ------------------------------------------------- execution (pool) */

int
is_coroutine_like(PyObject *obj)
{
    return PyCoro_CheckExact(obj) || PyGen_CheckExact(obj)
           || (Py_TYPE(obj)->tp_as_async != NULL
               && Py_TYPE(obj)->tp_as_async->am_send != NULL
               && !Task_Check(g_st, obj));
}

static void proxy_on_complete(st_cont_t *c, st_task_t *core, int how);

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

    if (t->task_token != NULL && cancel_token_requested(st, t->task_token)
        && st_task_status(&t->task_core) == from) {
        /* R1.7/R3.10: its token fired before it started (py_cancel.c) */
        task_try_complete(t, ST_STATUS_CANCELED, NULL, t->task_token);
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
    tls_current_scheduler = t->task_scheduler;
    thread_running_push(t);
    if (t->task_kind == TASK_DELEGATE) {
        res = PyObject_Call(t->task_fn, t->task_arg, NULL);
    }
    else if (t->task_flags & TF_CONT_STATE) {
        res = PyObject_CallFunctionObjArgs(t->task_fn, t->task_arg,
                                           t->task_state, NULL);
    }
    else {
        res = PyObject_CallOneArg(t->task_fn, t->task_arg);
    }
    thread_running_pop(t);
    tls_current_task = outer_task;
    tls_current_scheduler = outer_sched;
    if (ctx != NULL) {
        PyContext_Exit(ctx);
    }
    if (res == NULL) {
        /* R1.6: an OperationCanceledError from a delegate cancels only
         * when it carries the task's own, canceled token */
        if (task_complete_from_error(t, cancel_error_is_own_token(st, t))
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
            Py_CLEAR(t->task_fn);
            Py_CLEAR(t->task_arg);
            Py_INCREF(t);
            PyObject *r = builder_start(st, res, t); /* steals res */
            Py_XDECREF(r);
            Py_DECREF(t);
            return;
        }
        /* continue_with(async fn) / start_new: a Task of a Task */
        PyObject *inner = builder_start(st, res, NULL); /* steals res */
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

static void
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
    if (t->task_scheduler != NULL && fn == task_work_run) {
        /* a custom TaskScheduler: its queue_task runs the task later
         * through try_execute_task (C7) */
        PyObject *r = PyObject_CallMethod(t->task_scheduler, "queue_task",
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
static int
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
    PyObject *r = PyObject_CallMethod(t->task_scheduler,
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

static void
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
    else if (how == ST_RUN_INLINE && ct->task_scheduler == NULL) {
        task_execute(ct);
    }
    else if (how == ST_RUN_INLINE && scheduler_try_inline(ct) != 0) {
        /* ran inline on its scheduler, or faulted trying */
    }
    else if (task_queue_work(g_st, ct, task_work_run) < 0) {
        /* R1.9/S3.6: a scheduler that throws faults the task */
        if (task_complete_from_error(ct, 0) < 0) {
            pending_exc_save();
        }
    }
    Py_DECREF(ct); /* the registration's reference */
}

static void
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

/* The outer task of an unwrap completed: follow its inner task. */
static void
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
    else if ((inner = outer->task_result) == Py_None) {
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

typedef struct when_core when_core;

typedef struct when_node {
    st_cont_t cont;
    when_core *core;
    Py_ssize_t index;
} when_node;

struct when_core {
    TaskObject *promise; /* strong */
    PyObject *tasks;     /* tuple, strong */
    Py_ssize_t remaining;   /* when_all: inputs not yet completed */
    Py_ssize_t outstanding; /* nodes whose fn has not run */
    when_node nodes[1];
};

static when_core *
when_core_new(TaskObject *promise, PyObject *tasks)
{
    Py_ssize_t n = PyTuple_GET_SIZE(tasks);
    when_core *core = PyMem_Malloc(sizeof(when_core)
                                   + (size_t)(n > 0 ? n - 1 : 0)
                                         * sizeof(when_node));
    if (core == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    core->promise = (TaskObject *)Py_NewRef(promise);
    core->tasks = Py_NewRef(tasks);
    core->remaining = 0;
    core->outstanding = 0;
    return core;
}

static void
when_core_free(when_core *core)
{
    Py_DECREF(core->promise);
    Py_DECREF(core->tasks);
    PyMem_Free(core);
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
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(t->task_result);
                 j++) {
                if (PyList_Append(excs,
                                  PyTuple_GET_ITEM(t->task_result, j)) < 0) {
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
                          first_canceled->task_result,
                          first_canceled->task_token);
    }
    else {
        if ((results = PyList_New(n)) == NULL) {
            goto error;
        }
        for (i = 0; i < n; i++) {
            TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(tasks, i);
            PyList_SET_ITEM(results, i, Py_NewRef(t->task_result));
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

/* One input (or the registration loop's hold) is done. */
static void
when_all_release(when_core *core)
{
    core->outstanding--;
    if (--core->remaining == 0) {
        when_all_finish(g_st, core->promise, core->tasks);
    }
    if (core->outstanding == 0) {
        when_core_free(core);
    }
}

static void
when_all_node_fn(st_cont_t *c, st_task_t *core_task, int how)
{
    if (how == ST_RUN_ASYNC && defer_cont(c, core_task) == 0) {
        return;
    }
    when_all_release(((when_node *)c)->core);
}

static void
when_any_node_fn(st_cont_t *c, st_task_t *core_task, int how)
{
    when_node *node = (when_node *)c;
    when_core *core = node->core;
    PyObject *winner = PyTuple_GET_ITEM(core->tasks, node->index);
    Py_ssize_t i, n = PyTuple_GET_SIZE(core->tasks);

    if (how == ST_RUN_ASYNC && defer_cont(c, core_task) == 0) {
        return;
    }

    core->outstanding--;
    if (task_try_complete(core->promise, ST_STATUS_RAN_TO_COMPLETION,
                          winner, NULL)) {
        /* unregister from the losers (R5.7) */
        for (i = 0; i < n; i++) {
            if (i == node->index || core->nodes[i].core == NULL) {
                continue;
            }
            TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(core->tasks, i);
            if (st_task_remove_cont(&t->task_core, &core->nodes[i].cont)
                == 0) {
                core->nodes[i].core = NULL;
                core->outstanding--;
            }
        }
    }
    if (core->outstanding == 0) {
        when_core_free(core);
    }
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

static PyObject *
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
     * input (no Python runs here), so the count cannot go to zero early. */
    core->remaining = 1; /* held until the loop ends */
    core->outstanding = 1;
    for (i = 0; i < n; i++) {
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(tasks, i);
        when_node *node = &core->nodes[i];
        node->core = core;
        node->index = i;
        node->cont.fn = when_all_node_fn;
        node->cont.kind = ST_CONT_ACTION;
        core->remaining++;
        core->outstanding++;
        if (st_task_add_cont(&t->task_core, &node->cont) != 0) {
            core->remaining--;
            core->outstanding--;
        }
    }
    Py_DECREF(tasks);
    when_all_release(core); /* drop the loop's hold */
    return promise;
}

static PyObject *
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
        TaskObject *t = (TaskObject *)PyTuple_GET_ITEM(core->tasks, i);
        when_node *node = &core->nodes[i];
        node->core = core;
        node->index = i;
        node->cont.fn = when_any_node_fn;
        node->cont.kind = ST_CONT_ACTION;
        core->outstanding++;
        /* no input is complete and no Python runs here: cannot fail */
        int rc = st_task_add_cont(&t->task_core, &node->cont);
        ST_ASSERT(rc == 0);
    }
    return promise;
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
    TaskObject *t = TaskObject_CAST(op);
    if (t->task_id == 0) {
        if (++g_st->next_task_id == 0) { /* skip 0 on wrap-around */
            ++g_st->next_task_id;
        }
        t->task_id = g_st->next_task_id;
    }
    return PyLong_FromUnsignedLong(t->task_id);
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
    return make_aggregate(g_st, t->task_result);
}

static PyObject *
task_async_state_get(PyObject *op, void *closure)
{
    TaskObject *t = TaskObject_CAST(op);
    return Py_NewRef(t->task_state ? t->task_state : Py_None);
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
    int rc = task_wait_blocking(st, t, UINT64_MAX);
    if (rc < 0) {
        return NULL;
    }
    if (raise_if_failed(st, t) < 0) {
        return NULL;
    }
    return Py_NewRef(t->task_result);
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
    rc = task_wait_blocking(st, t, infinite ? UINT64_MAX : ns);
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

static PyObject *awaiter_new(st_state *st, PyTypeObject *tp, TaskObject *t,
                             int options);


static PyObject *
task_get_awaiter(PyObject *op, PyObject *unused)
{
    return awaiter_new(g_st, g_st->TaskAwaiter_type, TaskObject_CAST(op),
                       CAO_CONTINUE);
}

static PyObject *
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

/* TaskScheduler.default is the pool: stored as NULL on tasks. */
static int
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

static int
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
    ct->task_scheduler = Py_XNewRef(scheduler);
    ct->task_fn = Py_NewRef(fn);
    ct->task_arg = Py_NewRef(op);
    if (state != NULL) {
        ct->task_state = Py_NewRef(state);
        ct->task_flags |= TF_CONT_STATE;
    }
    ct->task_context = PyContext_CopyCurrent();
    if (ct->task_context == NULL) {
        Py_DECREF(ct);
        return NULL;
    }
    if (token != Py_None) {
        ct->task_token = Py_NewRef(token);
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
    if (ct->task_token != NULL && !(opts & TCW_LAZY)
        && cancel_watch_continuation(st, ct) < 0) { /* R3.10 */
        Py_DECREF(ct);
        return NULL;
    }
    return (PyObject *)ct;
}

static PyObject *
task_unwrap(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    TaskObject *outer = TaskObject_CAST(op), *proxy;

    if (task_status(outer) == ST_STATUS_RAN_TO_COMPLETION) {
        PyObject *inner = outer->task_result;
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

static PyObject *
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

/* ---------------------------------------------- Task static methods */

static PyObject *
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
    t->task_fn = Py_NewRef(args[0]);
    t->task_arg = PyTuple_New(nargs - 1);
    t->task_context = PyContext_CopyCurrent();
    if (t->task_arg == NULL || t->task_context == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    for (i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(t->task_arg, i - 1, Py_NewRef(args[i]));
    }
    if (token != Py_None) {
        t->task_token = Py_NewRef(token);
    }
    if (task_queue_work(st, t, task_work_run) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    if (t->task_token != NULL && cancel_watch_delegate(st, t) < 0) {
        Py_DECREF(t); /* R1.7: canceled at once if its token fires */
        return NULL;
    }
    return (PyObject *)t;
}

/* start_new(fn, args_tuple, options): used by TaskFactory in Python. */
static PyObject *
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
    t->task_fn = Py_NewRef(fn);
    t->task_arg = Py_NewRef(fargs);
    t->task_context = ctx;
    t->task_flags |= TF_NO_UNWRAP;
    t->task_scheduler = Py_XNewRef(scheduler);
    if (token != Py_None) {
        t->task_token = Py_NewRef(token); /* R1.6/R1.7, as for Task.run */
    }
    if (((options & 0x2u) && t->task_scheduler == NULL /* LONG_RUNNING */
             ? task_queue_dedicated(st, t, task_work_run) /* issue 3 */
             : task_queue_work(st, t, task_work_run))
        < 0) {
        if (t->task_scheduler == NULL) {
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
    if (t->task_token != NULL && cancel_watch_delegate(st, t) < 0) {
        Py_DECREF(t); /* R1.7: canceled at once if its token fires */
        return NULL;
    }
    return (PyObject *)t;
}

static PyObject *
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

static PyObject *
task_yield(PyObject *unused, PyObject *noargs)
{
    st_state *st = g_st;
    return PyObject_CallNoArgs((PyObject *)st->YieldAwaitable_type);
}

static PyObject *
task_from_result_meth(PyObject *unused, PyObject *value)
{
    return task_from_result(g_st, value);
}

static PyObject *
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

static PyObject *
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

static PyObject *
task_wait_all(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    return call_impl(g_st, "wait_all", args, (size_t)nargs, kwnames);
}

static PyObject *
task_wait_any(PyObject *unused, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    return call_impl(g_st, "wait_any", args, (size_t)nargs, kwnames);
}

static PyObject *
task_current_id(PyObject *unused, PyObject *noargs)
{
    if (tls_current_task == NULL) {
        Py_RETURN_NONE;
    }
    return task_id_get((PyObject *)tls_current_task, NULL);
}

static PyObject *
task_from_future(PyObject *unused, PyObject *fut)
{
    PyObject *a[1] = {fut};
    return call_impl(g_st, "task_from_future", a, 1, NULL);
}

/* -------------------------------------------------- Task await protocol */

static PySendResult
task_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    TaskObject *t = TaskObject_CAST(op);
    int status = task_status(t);
    if (status == ST_STATUS_RAN_TO_COMPLETION && t->task_result != NULL) {
        /* the hot path of `await completed_task` (A4, W1) */
        *presult = Py_NewRef(t->task_result);
        return PYGEN_RETURN;
    }
    if (status < ST_STATUS_RAN_TO_COMPLETION) {
        /* to the builder: "wait for me" (to asyncio: a future, I2) */
        *presult = await_yield(g_st, Py_NewRef(op));
        return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    *presult = task_get_result(g_st, t);
    return *presult == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

static PyObject *
return_via_stop_iteration(PyObject *value)
{
    if (value == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
    }
    else {
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
        if (e != NULL) {
            PyErr_SetObject(PyExc_StopIteration, e);
            Py_DECREF(e);
        }
    }
    Py_DECREF(value);
    return NULL;
}

static PyObject *
task_iternext(PyObject *op)
{
    PyObject *res;
    switch (task_am_send(op, Py_None, &res)) {
    case PYGEN_NEXT:
        return res;
    case PYGEN_RETURN:
        return return_via_stop_iteration(res);
    default:
        return NULL;
    }
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
static void cb_node_fire(st_cont_t *c, st_task_t *core, int how);

/* A callback continuation registered by on_completed. */
typedef struct cb_node {
    st_cont_t cont;
    PyObject *action; /* an Action: runs the user's action in context */
    PyObject *target; /* captured context, or NULL */
} cb_node;

static void
cb_node_free(cb_node *n)
{
    Py_DECREF(n->action);
    Py_XDECREF(n->target);
    PyMem_Free(n);
}


static PyObject *
cont_owner(st_cont_t *c)
{
    if (c->fn == box_on_complete || c->fn == continuation_on_complete
        || c->fn == proxy_on_complete || c->fn == unwrap_outer_done) {
        return (PyObject *)st_container_of(c, TaskObject, task_cont);
    }
    return cancel_cont_owner(c); /* a token registration's watch node */
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
    PyObject *owner;
    if (vc->rc != 0) {
        return;
    }
    if ((owner = cont_owner(c)) != NULL) {
        vc->rc = vc->visit(owner, vc->arg);
    }
    else if (c->fn == cb_node_fire) {
        vc->rc = vc->visit(((cb_node *)c)->action, vc->arg);
    }
}

/* A pending task is being destroyed (it can never complete): release
 * what its registered nodes hold, without running them. */
static void
abandon_conts(TaskObject *t)
{
    st_cont_t *c = st_task_detach_conts(&t->task_core), *next;
    for (; c != NULL; c = next) {
        PyObject *owner = cont_owner(c);
        next = c->next;
        if (owner != NULL) {
            Py_DECREF(owner); /* the registration's reference */
        }
        else if (c->fn == cb_node_fire) {
            cb_node_free((cb_node *)c);
        }
        else if (c->fn == when_all_node_fn || c->fn == when_any_node_fn) {
            when_core *core = ((when_node *)c)->core;
            if (--core->outstanding == 0) {
                when_core_free(core);
            }
        }
        /* a SIGNAL waiter cannot be here: its thread holds the task */
    }
}

static int
Task_traverse(PyObject *op, visitproc visit, void *arg)
{
    TaskObject *t = TaskObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(t->task_result);
    Py_VISIT(t->task_token);
    Py_VISIT(t->task_state);
    Py_VISIT(t->task_fn);
    Py_VISIT(t->task_arg);
    Py_VISIT(t->task_context);
    Py_VISIT(t->task_target);
    Py_VISIT(t->task_scheduler);
    Py_VISIT(t->task_tb);
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
    Py_CLEAR(t->task_result);
    Py_CLEAR(t->task_token);
    Py_CLEAR(t->task_state);
    Py_CLEAR(t->task_fn);
    Py_CLEAR(t->task_arg);
    Py_CLEAR(t->task_context);
    Py_CLEAR(t->task_target);
    Py_CLEAR(t->task_scheduler);
    Py_CLEAR(t->task_tb);
    if (!st_task_is_completed(&t->task_core)) {
        abandon_conts(t);
    }
    return 0;
}

/* T11: a faulted task whose exception nobody observed reports it. */
static void
Task_finalize(PyObject *op)
{
    st_state *st = g_st;
    TaskObject *t = TaskObject_CAST(op);
    PyObject *exc, *agg, *res = NULL;
    int observed = 0;

    if (task_status(t) != ST_STATUS_FAULTED || (t->task_flags & TF_OBSERVED)
        || t->task_result == NULL || st == NULL) {
        return;
    }
    t->task_flags |= TF_OBSERVED; /* report once */
    exc = PyErr_GetRaisedException();
    agg = make_aggregate(st, t->task_result);
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
     * its result is atomic is tracked again for that time. */
    if (!PyObject_GC_IsTracked(op)) {
        PyObject_GC_Track(op);
    }
    if (PyObject_CallFinalizerFromDealloc(op) < 0) {
        return; /* resurrected, and tracked */
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
    box_registry_remove(t);
    (void)Task_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyMethodDef Task_methods[] = {
    {"throw", (PyCFunction)(void (*)(void))await_throw_method, METH_FASTCALL,
     PyDoc_STR("throw($self, typ, val=None, tb=None, /)\n--\n\n"
               "Raise typ (an exception, or a class called with val) at\n"
               "the await: the generator protocol, by which asyncio\n"
               "cancels an await; answers asyncio's \"bad yield\" with an\n"
               "asyncio future (I2).")},
    {"__await__", await_method_iter, METH_NOARGS | METH_COEXIST,
     PyDoc_STR("__await__($self, /)\n--\n\n"
               "An iterator over the await's steps (for `yield from`).")},
    {"wait", (PyCFunction)(void (*)(void))task_wait,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("wait($self, /, timeout=None, cancellation_token=None)\n--\n\n"
               "Block until the task completes (like Task.Wait); return\n"
               "False on timeout.  Raises AggregateError if it failed.")},
    {"get_awaiter", task_get_awaiter, METH_NOARGS,
     PyDoc_STR("get_awaiter($self, /)\n--\n\n"
               "Return the task's awaiter (like Task.GetAwaiter).")},
    {"configure_await", task_configure_await, METH_O,
     PyDoc_STR("configure_await($self, options, /)\n--\n\n"
               "Return an awaitable that resumes on the captured context\n"
               "only if options is True or has CONTINUE_ON_CAPTURED_CONTEXT\n"
               "(like Task.ConfigureAwait).")},
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
    {"current_id", task_current_id, METH_NOARGS | METH_STATIC,
     PyDoc_STR("current_id()\n--\n\n"
               "The id of the task whose delegate runs on this thread, or\n"
               "None (like Task.CurrentId).")},
    {"from_future", task_from_future, METH_O | METH_STATIC,
     PyDoc_STR("from_future(future, /)\n--\n\n"
               "A Task that completes with a concurrent.futures.Future,\n"
               "or with an asyncio future or task (I1).")},
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
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     PyDoc_STR("See PEP 585")},
    {NULL, NULL, 0, NULL},
};

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
typedef struct AwaiterObject {
    PyObject_HEAD
    TaskObject *aw_task;
    uint8_t aw_options; /* CAO_* */
    uint8_t aw_yielded; /* FORCE_YIELDING: suspended once already */
} AwaiterObject;

#define AwaiterObject_CAST(op) ((AwaiterObject *)(op))

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

static void
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
    PyObject *res;
    switch (awaiter_am_send(op, Py_None, &res)) {
    case PYGEN_NEXT:
        return res;
    case PYGEN_RETURN:
        return return_via_stop_iteration(res);
    default:
        return NULL;
    }
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

static int
Awaiter_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(AwaiterObject_CAST(op)->aw_task);
    return 0;
}

static int
Awaiter_clear(PyObject *op)
{
    Py_CLEAR(AwaiterObject_CAST(op)->aw_task);
    return 0;
}

static void
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
    {"throw", (PyCFunction)(void (*)(void))await_throw_method, METH_FASTCALL,
     PyDoc_STR("throw($self, typ, val=None, tb=None, /)\n--\n\n"
               "Raise typ (an exception, or a class called with val) at\n"
               "the await: the generator protocol, by which asyncio\n"
               "cancels an await; answers asyncio's \"bad yield\" with an\n"
               "asyncio future (I2).")},
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
static PyObject *
mod_wait_any(PyObject *mod, PyObject *args)
{
    st_state *st = g_st;
    PyObject *seq, *timeout;
    Py_ssize_t i, n, idx;
    uint64_t ns, deadline, now, slice;
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
    deadline = infinite ? UINT64_MAX : st_now_ns() + ns;
    while (first_completed(seq) < 0) {
        now = st_now_ns();
        if (now >= deadline) {
            break;
        }
        slice = deadline - now;
        if (slice > WAIT_SLICE_NS) {
            slice = WAIT_SLICE_NS;
        }
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
static PyObject *
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
static PyObject *
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

/* _try_execute_task(task, scheduler) -> bool (C7, R10.3). */
static PyObject *
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
    if (t->task_scheduler != sched) {
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
        || t->task_fn == NULL
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
    if (t->task_scheduler != sched) {
        PyErr_SetString(st->InvalidOperationError,
                        "the task belongs to another scheduler");
        return -2;
    }
    int from = t->task_kind == TASK_DELEGATE
                   ? ST_STATUS_WAITING_TO_RUN
                   : ST_STATUS_WAITING_FOR_ACTIVATION;
    if ((t->task_kind != TASK_DELEGATE && t->task_kind != TASK_CONTINUATION)
        || t->task_fn == NULL || st_task_status(&t->task_core) != from) {
        return -1;
    }
    return from;
}

/* _task_delegate(task, scheduler) -> (fn, args) | None (I3): what a
 * queued task would call, for a scheduler that runs it elsewhere (an
 * executor); None if it ran or was canceled already. */
static PyObject *
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
        fargs = PyTuple_Pack(2, t->task_arg, t->task_state);
    }
    else {
        fargs = PyTuple_Pack(1, t->task_arg);
    }
    if (fargs == NULL) {
        return NULL;
    }
    PyObject *r = PyTuple_Pack(2, t->task_fn, fargs);
    Py_DECREF(fargs);
    return r;
}

/* _complete_delegate(task, scheduler, ok, value) -> bool (I3): the
 * outcome of a task's delegate that ran elsewhere: its value (ok), or the
 * exception it raised (an OperationCanceledError with the task's own
 * token cancels, R1.6).  False if the task ran or was canceled already
 * (a token that fired while it was queued, R1.7). */
static PyObject *
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
    if (t->task_token != NULL && cancel_token_requested(st, t->task_token)) {
        task_try_complete(t, ST_STATUS_CANCELED, NULL, t->task_token);
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

static PyObject *
mod_current_scheduler(PyObject *mod, PyObject *unused)
{
    return Py_NewRef(tls_current_scheduler ? tls_current_scheduler
                                           : Py_None);
}

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
    t->task_fn = Py_NewRef(fn);
    t->task_arg = PyTuple_New(0);
    t->task_scheduler = Py_NewRef(scheduler);
    if (t->task_arg == NULL || task_queue_work(st, t, task_work_run) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

PyMethodDef task_module_methods[] = {
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
