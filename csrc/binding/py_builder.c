/* py_builder.c - the async method builder, the synchronization context
 * of a thread, and Task.yield_().
 *
 *     @async_method                       # AsyncTaskMethodBuilder
 *     async def get(...): ...
 *     get(...)  ->  Task                  # body runs now, up to the first
 *                                         # await of something incomplete
 *
 *     class SynchronizationContext:       # subclassable
 *         def post(self, callback, state) # base: queue to the pool
 *         def send(self, callback, state) # base: call inline
 *         def operation_started(self) / operation_completed(self)
 *         def create_copy(self)
 *         current() / set_synchronization_context(ctx)   (static)
 *
 * How a coroutine is driven.  The coroutine plays the compiler's state
 * machine; PyIter_Send is MoveNext.  The first step runs on the caller's
 * thread inside a copy of the caller's contextvars context (so that what
 * the body sets does not leak to the caller, R6.6).  If it returns, the
 * call returns a completed (often cached) task and no box exists.  If it
 * yields, the innermost awaiter yielded an object saying what it waits
 * for: a pending Task (itself), a configured awaiter, the Task.yield_()
 * awaitable, or any object with on_completed / unsafe_on_completed.  Only
 * then is the box made: a Task that holds the coroutine and its context
 * and registers its own embedded continuation node on the awaited task,
 * so a suspension allocates nothing more.  Resumption sends None; the
 * awaiter's iterator then returns the result or raises.
 *
 * Where it resumes (R3.4, R7.2).  At each suspension the box captures the
 * thread's SynchronizationContext unless it is the base class or the
 * await is configure_await(False).  On completion of the awaited task it
 * resumes inline on the completing thread if that is allowed (first await
 * continuation, no RUN_CONTINUATIONS_ASYNCHRONOUSLY, and the thread's
 * context is none or the captured one); else it is posted to the captured
 * context, or queued on the pool.
 */
#include "binding.h"
#include "py_builder.h"
#include "py_task.h"
#include "py_task_impl.h" /* iternext_via_send */
#include "py_pool.h"
#include "py_state.h"
#include "py_deadlock.h"
#include "py_trace.h" /* the D2 event sites (issue 12) */

#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef (3.11) */

#include "st_list.h" /* st_container_of */

/* ------------------------------------------------------------ helpers */

/* Inline resumptions nest on the C stack; past this depth they are
 * queued instead (.NET's "enough stack" check). */
#define MAX_INLINE_DEPTH 64

/* The calling thread's SynchronizationContext (issue 9 item 4).  The
 * cache owns a reference of its own, so it never names a freed object.
 * It belongs to the thread state whose unique id is tls_sync_tid: a
 * guard capsule in that thread state's dict drops the reference when the
 * dict is cleared on this thread (the end of a thread, or
 * PyGILState_Release: a native thread that enters Python again gets a
 * new thread state, which has no context).  A thread state cleared from
 * another thread (finalization) leaves the reference to the next
 * sync_context_set here, which drops it. */
static ST_THREAD_LOCAL PyObject *tls_sync_ctx; /* strong, or NULL */
static ST_THREAD_LOCAL uint64_t tls_sync_tid;  /* 0: none */
static ST_THREAD_LOCAL int tls_inline_depth;

#define SYNC_GUARD_NAME "sharptask.sync_context_guard"

/* Forgets the cache and the thread state it belonged to (GIL held);
 * keeps a pending exception. */
static void
sync_cache_clear(void)
{
    PyObject *old = tls_sync_ctx;
    tls_sync_ctx = NULL;
    tls_sync_tid = 0; /* that thread state's guard is gone or going */
    if (old != NULL) {
        PyObject *saved = PyErr_GetRaisedException();
        Py_DECREF(old); /* may run a __del__ */
        PyErr_SetRaisedException(saved);
    }
}

static void
sync_guard_destructor(PyObject *capsule)
{
    void *tid = PyCapsule_GetPointer(capsule, SYNC_GUARD_NAME);
    if (tid == NULL) {
        PyErr_Clear();
        return;
    }
    /* on the thread whose state is being cleared: its cache goes too */
    if ((uintptr_t)tls_sync_tid == (uintptr_t)tid) {
        sync_cache_clear();
    }
}

/* The coroutine the builder is sending into on this thread, or NULL
 * (I2): set around each PyIter_Send / throw of run_steps_inner, restored
 * after it, so it is only ever read while that send runs and the builder
 * holds its reference.  Refs: borrowed; never cached beyond the send. */
static ST_THREAD_LOCAL PyObject *tls_driven_coro;

PyObject *
await_yield(st_state *st, PyObject *waiting)
{
    if (tls_driven_coro != NULL) {
        /* the builder registers on it (box_await).  An asyncio loop run
         * inside the method's step (asyncio.run() in its body) may be
         * the driver instead: it throws "Task got bad yield" into the
         * coroutine, and await_throw_method answers with a future. */
        return waiting;
    }
    PyObject *r = call_impl(st, "asyncio_wait", &waiting, 1, NULL);
    Py_DECREF(waiting);
    return r;
}

PyObject *
await_throw_method(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *a[4], *r, *yielded;
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError,
                        "throw(value) or throw(type[, value[, traceback]])");
        return NULL;
    }
    a[0] = op;
    for (Py_ssize_t i = 0; i < 3; i++) {
        a[i + 1] = i < nargs ? args[i] : Py_None;
    }
    /* (True, what to yield) or (False, the exception to raise here) */
    r = call_impl(g_st, "await_throw", a, 4, NULL);
    if (r == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_RuntimeError, "_impl.await_throw: bad result");
        return NULL;
    }
    yielded = PyTuple_GET_ITEM(r, 1);
    if (PyTuple_GET_ITEM(r, 0) == Py_True) {
        Py_INCREF(yielded);
        Py_DECREF(r);
        return yielded;
    }
    PyErr_SetRaisedException(Py_NewRef(yielded)); /* its own traceback */
    Py_DECREF(r);
    return NULL;
}

PyObject *
sync_context_current(void)
{
    return tls_sync_ctx;
}

int
sync_context_set(st_state *st, PyObject *ctx)
{
    uint64_t tid = PyThreadState_GetID(PyThreadState_Get());
    if (ctx == Py_None) {
        ctx = NULL;
    }
    if (tls_sync_tid != tid) {
        PyObject *dict, *guard;
        sync_cache_clear();
        if (ctx == NULL) {
            return 0; /* nothing to hold, nothing to guard */
        }
        dict = PyThreadState_GetDict(); /* borrowed */
        if (dict == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "no thread state dict");
            return -1;
        }
        guard = PyCapsule_New((void *)(uintptr_t)tid, SYNC_GUARD_NAME,
                              sync_guard_destructor);
        if (guard == NULL) {
            return -1;
        }
        /* (a guard this replaces, left from a former use of the same
         * thread state, sees tls_sync_tid 0 and leaves the cache alone) */
        if (PyDict_SetItem(dict, st->str_tstate_key, guard) < 0) {
            Py_DECREF(guard);
            return -1;
        }
        Py_DECREF(guard); /* the dict owns it */
        tls_sync_tid = tid;
    }
    {
        PyObject *old = tls_sync_ctx;
        tls_sync_ctx = Py_XNewRef(ctx);
        Py_XDECREF(old); /* after the store: a __del__ sees the new one */
    }
    return 0;
}

/* Saves the thread's context (new ref) to restore it after a step. */
static PyObject *
sync_context_save(void)
{
    return Py_XNewRef(sync_context_current());
}

static void
sync_context_restore(st_state *st, PyObject *saved)
{
    if (sync_context_current() != saved) {
        if (sync_context_set(st, saved) < 0) {
            PyErr_WriteUnraisable(NULL);
        }
    }
    Py_XDECREF(saved);
}

PyObject *
capture_target(st_state *st)
{
    PyObject *ctx = sync_context_current();
    if (ctx != NULL && Py_TYPE(ctx) != st->SyncContext_type) {
        return Py_NewRef(ctx); /* R7.2 step 1 */
    }
    return Py_XNewRef(current_scheduler()); /* step 2: a custom scheduler */
}

int
can_inline_here(st_state *st, PyObject *target)
{
    PyObject *cur = sync_context_current();
    if (tls_inline_depth >= MAX_INLINE_DEPTH) {
        return 0;
    }
    if (target == NULL) {
        /* a valid location: no context (or the base one) and the
         * default scheduler (R3.4) */
        return (cur == NULL || Py_TYPE(cur) == st->SyncContext_type)
               && current_scheduler() == NULL;
    }
    if (is_sync_context(st, target)) {
        return cur == target;
    }
    return current_scheduler() == target; /* already on that scheduler */
}

/* The id of the box an Action resumes, or 0 (a trace helper).  Refs:
 * borrows callable. */
static uint32_t action_trace_id(st_state *st, PyObject *callable);

int
post_to_target(st_state *st, PyObject *target, PyObject *callable)
{
    PyObject *r;
    /* D2: before the post (the built-in context records its own) */
    if (ST_UNLIKELY(st_trace_on()) && Py_TYPE(target) != st->STContext_type) {
        st_trace_emit(ST_TRACE_CONTEXT_POST, action_trace_id(st, callable),
                      0, trace_type_name(target));
    }
    r = PyObject_CallMethodObjArgs(target, st->str_post, callable, Py_None,
                                   NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* --------------------------------------------------------------- Action */

/*
 *     class Action:      # internal: a callable made for a continuation
 *         def __call__(self, *ignored): fn(*args) in context, or resume box
 */
typedef struct ActionObject {
    PyObject_HEAD
    PyObject *act_fn;
    PyObject *act_args;    /* tuple or NULL */
    PyObject *act_context; /* contextvars.Context or NULL */
    TaskObject *act_box;   /* a box to resume (one shot), or NULL */
    st_work_t act_work;
} ActionObject;

#define ActionObject_CAST(op) ((ActionObject *)(op))

static ActionObject *
action_alloc(st_state *st)
{
    ActionObject *a = PyObject_GC_New(ActionObject, st->Action_type);
    if (a == NULL) {
        return NULL;
    }
    a->act_fn = NULL;
    a->act_args = NULL;
    a->act_context = NULL;
    a->act_box = NULL;
    a->act_work.next = NULL;
    a->act_work.run = NULL;
    a->act_work.flags = ST_WORK_DOMAIN;
    PyObject_GC_Track(a);
    return a;
}

PyObject *
action_new(st_state *st, PyObject *fn, PyObject *args, PyObject *context)
{
    ActionObject *a = action_alloc(st);
    if (a != NULL) {
        a->act_fn = Py_NewRef(fn);
        a->act_args = Py_XNewRef(args);
        a->act_context = Py_XNewRef(context);
    }
    return (PyObject *)a;
}

static uint32_t
action_trace_id(st_state *st, PyObject *callable)
{
    if (Py_TYPE(callable) == st->Action_type
        && ActionObject_CAST(callable)->act_box != NULL) {
        return trace_task_id(ActionObject_CAST(callable)->act_box);
    }
    return 0;
}

/* An action that resumes box; takes its own reference to box. */
static PyObject *
action_new_box(st_state *st, TaskObject *box)
{
    ActionObject *a = action_alloc(st);
    if (a != NULL) {
        a->act_box = (TaskObject *)Py_NewRef(box);
    }
    return (PyObject *)a;
}

static PyObject *
action_run(ActionObject *a)
{
    PyObject *r, *ctx = a->act_context;
    if (a->act_box != NULL) {
        TaskObject *box = a->act_box;
        a->act_box = NULL; /* one shot: MoveNext runs once per await */
        if (box->task_flags & TF_RUNNING_BOX) {
            /* called back while the box is still registering (an awaiter
             * that completes inside on_completed): the running step
             * loop sends again instead of re-entering the coroutine */
            box->task_flags |= TF_RESUME_PENDING;
            Py_DECREF(box);
            Py_RETURN_NONE;
        }
        box_resume(box);   /* consumes the action's reference */
        if (pending_exc_restore() < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (a->act_fn == NULL) {
        Py_RETURN_NONE;
    }
    if (ctx != NULL && PyContext_Enter(ctx) < 0) {
        return NULL;
    }
    if (a->act_args != NULL) {
        r = PyObject_Call(a->act_fn, a->act_args, NULL);
    }
    else {
        r = PyObject_CallNoArgs(a->act_fn);
    }
    if (ctx != NULL) {
        PyContext_Exit(ctx);
    }
    return r;
}

static PyObject *
Action_call(PyObject *op, PyObject *args, PyObject *kwds)
{
    return action_run(ActionObject_CAST(op));
}

static void
action_work_run(st_work_t *w)
{
    ActionObject *a = st_container_of(w, ActionObject, act_work);
    PyObject *r = action_run(a);
    if (r == NULL) {
        PyErr_WriteUnraisable(a->act_fn ? a->act_fn : (PyObject *)a);
    }
    Py_XDECREF(r);
    Py_DECREF(a); /* the queue's reference (the pool's after_item hook
                     leaves the thread with no context, R9.2) */
}

/* An action queued on a context's queue: runs it and leaves its
 * exception set for the pump to raise. */
static void
action_queue_run(st_work_t *w)
{
    ActionObject *a = st_container_of(w, ActionObject, act_work);
    PyObject *r = action_run(a);
    Py_XDECREF(r);
    Py_DECREF(a); /* the queue's reference */
}

st_work_t *
action_queue_node(PyObject *action)
{
    ActionObject *a = ActionObject_CAST(action);
    a->act_work.run = action_queue_run;
    a->act_work.flags = 0;
    return &a->act_work; /* the queue owns the caller's reference */
}

void
action_queue_node_drop(st_work_t *w)
{
    Py_DECREF(st_container_of(w, ActionObject, act_work));
}

PyObject *
action_queue_node_object(st_work_t *w)
{
    return (PyObject *)st_container_of(w, ActionObject, act_work);
}

int
schedule_action(st_state *st, PyObject *target, PyObject *action)
{
    ActionObject *a = ActionObject_CAST(action);
    if (target != NULL && !is_sync_context(st, target)) {
        PyObject *t = task_new_on_scheduler(st, action, target);
        if (t == NULL) {
            return -1;
        }
        Py_DECREF(t);
        return 0;
    }
    if (target != NULL) {
        return post_to_target(st, target, action);
    }
    a->act_work.run = action_work_run;
    Py_INCREF(a);
    if (pool_submit(st, &a->act_work) != 0) {
        Py_DECREF(a);
        return -1;
    }
    return 0;
}

static int
Action_traverse(PyObject *op, visitproc visit, void *arg)
{
    ActionObject *a = ActionObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(a->act_fn);
    Py_VISIT(a->act_args);
    Py_VISIT(a->act_context);
    Py_VISIT(a->act_box);
    return 0;
}

static int
Action_clear(PyObject *op)
{
    ActionObject *a = ActionObject_CAST(op);
    Py_CLEAR(a->act_fn);
    Py_CLEAR(a->act_args);
    Py_CLEAR(a->act_context);
    Py_CLEAR(a->act_box);
    return 0;
}

static void
Action_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, Action_dealloc) /* H4: holds a box, fn, args */
    (void)Action_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyType_Slot Action_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "A continuation callback made by sharptask (like the Action a\n"
         ".NET awaiter receives).  Calling it runs the continuation.")},
    {Py_tp_call, Action_call},
    {Py_tp_traverse, Action_traverse},
    {Py_tp_clear, Action_clear},
    {Py_tp_dealloc, Action_dealloc},
    {0, NULL},
};

PyType_Spec Action_spec = {
    .name = "sharptask.Action",
    .basicsize = sizeof(ActionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Action_slots,
};

/* ---------------------------------------------------------- the box */


static void
box_work_run(st_work_t *w)
{
    TaskObject *box = st_container_of(w, TaskObject, task_work);
    box_resume(box); /* consumes the queue's reference */
    if (pending_exc_restore() < 0) {
        PyErr_WriteUnraisable((PyObject *)box);
    }}

/* py_context.c's stcontext_post_box, handed over by module.c (the
 * contexts sit above the builder: issue 10's layers). */
static builder_post_box_fn g_post_box;

void
builder_set_post_box(builder_post_box_fn fn)
{
    g_post_box = fn;
}

void
box_schedule(TaskObject *box)
{
    st_state *st = g_st;
    PyObject *target = task_target(box);

    /* D2: before anything can run it */
    ST_TRACE(ST_TRACE_CONTINUATION_QUEUED, trace_task_id(box), 0,
             target != NULL ? trace_type_name(target) : 0);
    if (target != NULL && Py_TYPE(target) == st->STContext_type) {
        /* the built-in context: the box itself goes in its queue (the
         * type exists only once module exec has set g_post_box) */
        if (g_post_box(st, target, box) == 0) {
            return; /* the queue owns our reference */
        }
        if (task_complete_from_error(box, 0) < 0) {
            pending_exc_save();
        }
    }
    else if (target != NULL) {
        /* a captured context or scheduler: an action that resumes the
         * box, scheduled like any other continuation; if the context
         * refuses, the method can never resume: fault its task with the
         * reason rather than hang silently */
        PyObject *action = action_new_box(st, box);
        if (action == NULL || schedule_action(st, target, action) < 0) {
            if (task_complete_from_error(box, 0) < 0) {
                pending_exc_save();
            }
        }
        Py_XDECREF(action);
    }
    else if (task_queue_work(st, box, box_work_run) < 0) {
        if (task_complete_from_error(box, 0) < 0) {
            pending_exc_save();
        }
    }
    /* Every path above took its own reference for what it queued
     * (task_queue_work and action_new_box do; stcontext_post_box alone
     * steals ours and returned early): drop the one we were given.
     * (Issue 9 item 7: keeping it here leaked every box resumed through
     * the pool.) */
    Py_DECREF(box);
}

/* An asyncio future (or asyncio's bare `yield`) yielded to the builder
 * (I2): _impl.builder_await_foreign registers an action resuming the box
 * from the future's loop.  1 if registered, 0 if it is no such object, -1
 * with an error. */
static int
builder_await_foreign(st_state *st, TaskObject *box, PyObject *yielded)
{
    PyObject *args[2], *r;
    int handled;
    args[0] = yielded;
    args[1] = action_new_box(st, box);
    if (args[1] == NULL) {
        return -1;
    }
    Py_XSETREF(box->task_arg, Py_NewRef(yielded));
    task_set_target(box, NULL);
    ST_TRACE(ST_TRACE_METHOD_SUSPEND, trace_task_id(box), 0,
             trace_type_name(yielded)); /* D2: before it registers */
    r = call_impl(st, "builder_await_foreign", args, 2, NULL);
    Py_DECREF(args[1]);
    handled = r == NULL ? -1 : PyObject_IsTrue(r);
    Py_XDECREF(r);
    if (ST_UNLIKELY(st_trace_on()) && handled <= 0) {
        /* not suspended after all: the step goes on */
        st_trace_emit(ST_TRACE_METHOD_RESUME, trace_task_id(box), 0, 0);
    }
    return handled;
}

/* Registers the box's resumption for what the coroutine yielded.
 * Returns 0 (suspended), or -1 with an error to throw into the coroutine
 * (it yielded something that cannot be awaited). */
static int
box_await(st_state *st, TaskObject *box, PyObject *yielded)
{
    TaskObject *awaited;
    int options;
    PyObject *meth;

    if (Task_Check(st, yielded)) {
        awaited = (TaskObject *)yielded;
        options = CAO_CONTINUE;
    }
    else if (!awaiter_unpack(st, yielded, &awaited, &options)) {
        if (Py_TYPE(yielded) == st->YieldAwaitable_type) {
            /* Task.yield_(): always posted or queued, never inline */
            task_set_target(box, capture_target(st));
            Py_XSETREF(box->task_arg, Py_NewRef(yielded));
            ST_TRACE(ST_TRACE_METHOD_SUSPEND, trace_task_id(box), 0,
                     trace_type_name(yielded));
            Py_INCREF(box);
            box_schedule(box);
            return 0;
        }
        /* INotifyCompletion: unsafe_on_completed, else on_completed */
        if (PyObject_GetOptionalAttr(yielded, st->str_unsafe_on_completed,
                                     &meth) < 0) {
            return -1;
        }
        if (meth == NULL
            && PyObject_GetOptionalAttr(yielded, st->str_on_completed,
                                        &meth) < 0) {
            return -1;
        }
        if (meth == NULL) {
            /* an asyncio future, or asyncio's bare yield (I2): resumed
             * from the future's loop by _impl.builder_await_foreign */
            int handled = builder_await_foreign(st, box, yielded);
            if (handled != 0) {
                return handled > 0 ? 0 : -1;
            }
            PyErr_Format(PyExc_TypeError,
                         "an async method cannot await this: its awaiter "
                         "yielded a %.100s object, which is neither a "
                         "sharptask Task nor has on_completed(action)",
                         Py_TYPE(yielded)->tp_name);
            return -1;
        }
        PyObject *action = action_new_box(st, box);
        if (action == NULL) {
            Py_DECREF(meth);
            return -1;
        }
        Py_XSETREF(box->task_arg, Py_NewRef(yielded));
        task_set_target(box, NULL);
        ST_TRACE(ST_TRACE_METHOD_SUSPEND, trace_task_id(box), 0,
                 trace_type_name(yielded)); /* D2: before it registers */
        PyObject *r = PyObject_CallOneArg(meth, action);
        Py_DECREF(meth);
        Py_DECREF(action);
        if (r == NULL) { /* thrown into the coroutine: the step goes on */
            ST_TRACE(ST_TRACE_METHOD_RESUME, trace_task_id(box), 0, 0);
            return -1;
        }
        Py_DECREF(r);
        return 0;
    }
    /* a Task, plain or configured */
    task_set_target(box,
                    (options & CAO_CONTINUE) ? capture_target(st) : NULL);
    Py_XSETREF(box->task_arg, Py_NewRef(awaited));
    box->task_cont.fn = box_on_complete;
    box->task_cont.kind = ST_CONT_AWAIT;
    /* D2: before the registration lets the completer resume it */
    ST_TRACE(ST_TRACE_METHOD_SUSPEND, trace_task_id(box),
             trace_task_id(awaited), trace_type_name(yielded));
    Py_INCREF(box); /* the registration's reference */
    if (((options & CAO_FORCE) && st_task_is_completed(&awaited->task_core))
        || st_task_add_cont(&awaited->task_core, &box->task_cont) != 0) {
        /* completed meanwhile, or FORCE_YIELDING: never inline (R3.5) */
        box_schedule(box);
    }
    return 0;
}

/* coro.throw(exc) with PyIter_Send's result convention. */
static PySendResult
coro_throw(st_state *st, PyObject *coro, PyObject *exc, PyObject **out)
{
    PyObject *r = PyObject_CallMethodOneArg(coro, st->str_throw, exc);
    if (r != NULL) {
        *out = r;
        return PYGEN_NEXT;
    }
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyObject *value = PyErr_GetRaisedException();
        *out = PyObject_GetAttrString(value, "value");
        Py_DECREF(value);
        return *out != NULL ? PYGEN_RETURN : PYGEN_ERROR;
    }
    *out = NULL;
    return PYGEN_ERROR;
}

/* An asyncio.CancelledError leaving an async method (it awaited an
 * asyncio future or task that was cancelled) cancels the method's Task,
 * as an OperationCanceledError does (I2), instead of escaping as a
 * BaseException: it is replaced by one, chained to it.  Only looked at
 * for BaseExceptions that are not Exceptions (a rare path). */
static void
translate_asyncio_cancel(st_state *st)
{
    PyObject *exc = PyErr_GetRaisedException(), *mod, *cls = NULL, *oce;
    if (exc == NULL
        || PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetRaisedException(exc);
        return;
    }
    PyObject *name = PyUnicode_FromString("asyncio.exceptions");
    mod = name != NULL ? PyImport_GetModule(name) : NULL; /* new or NULL */
    Py_XDECREF(name);
    if (mod != NULL) {
        cls = PyObject_GetAttrString(mod, "CancelledError");
        Py_DECREF(mod);
    }
    PyErr_Clear(); /* not loaded, or no such name: not that error */
    if (cls == NULL || !PyType_Check(cls)
        || !PyObject_TypeCheck(exc, (PyTypeObject *)cls)) {
        Py_XDECREF(cls);
        PyErr_SetRaisedException(exc);
        return;
    }
    Py_DECREF(cls);
    oce = PyObject_CallFunction(st->OperationCanceledError, "s",
                                "the asyncio future or task that the async "
                                "method awaited was cancelled");
    if (oce == NULL) {
        Py_DECREF(exc);
        return; /* that error instead */
    }
    PyException_SetCause(oce, Py_NewRef(exc)); /* steals */
    PyException_SetContext(oce, exc);          /* steals */
    PyErr_SetRaisedException(oce);
}

enum { STEP_SUSPENDED = 0, STEP_RETURNED = 1, STEP_RAISED = 2 };

/* Where the box comes from at a start's first suspension: rent(rent_arg)
 * (the pooling ValueTask builder: py_vt_pool.c's box_rent), or a new Task
 * if rent is NULL.  Handed down the call (a resumption has its box and
 * passes NULL), so that an async method the body calls before its own
 * first suspension (a nested start) never takes this call's box. */
typedef TaskObject *(*rent_box_fn)(void *arg);

static int run_steps_inner(st_state *st, TaskObject **pbox, PyObject *coro,
                           PyObject *ctx, PyObject **out_value,
                           uint32_t trace_id, rent_box_fn rent,
                           void *rent_arg, PyObject *yielded);

/* Runs coro until it suspends or ends (ctx entered by the caller).
 * yielded: what the caller's own first send into coro yielded (stolen),
 * or NULL to send first.  The box is created at the first suspension if
 * *pbox is NULL (by rent, see rent_box_fn).  While this runs, the box is
 * marked running so that a resumption requested from inside a
 * registration is turned into another step here. */
static int
run_steps(st_state *st, TaskObject **pbox, PyObject *coro, PyObject *ctx,
          PyObject **out_value, uint32_t trace_id, rent_box_fn rent,
          void *rent_arg, PyObject *yielded)
{
    TaskObject *running = *pbox;
    int rc;
    if (running != NULL) {
        running->task_flags |= TF_RUNNING_BOX;
        thread_running_push(running);
    }
    rc = run_steps_inner(st, pbox, coro, ctx, out_value, trace_id, rent,
                         rent_arg, yielded);
    if (running != NULL) {
        thread_running_pop(running);
    }
    if (ST_UNLIKELY(st_trace_on()) && rc != STEP_SUSPENDED) {
        /* D2: before the caller completes the task (off: one branch) */
        st_trace_emit(ST_TRACE_METHOD_COMPLETE,
                      *pbox != NULL ? trace_task_id(*pbox) : trace_id, 0, 0);
    }
    if (*pbox != NULL) {
        (*pbox)->task_flags &= ~(TF_RUNNING_BOX | TF_RESUME_PENDING);
        if (rc == STEP_SUSPENDED) {
            /* a suspension may close a cycle through a blocked thread */
            deadlock_graph_changed(st);
        }
    }
    return rc;
}

static int
run_steps_inner(st_state *st, TaskObject **pbox, PyObject *coro,
                PyObject *ctx, PyObject **out_value, uint32_t trace_id,
                rent_box_fn rent, void *rent_arg, PyObject *val)
{
    PyObject *exc = NULL;
    PySendResult r;

    for (;;) {
        if (val == NULL) {
            PyObject *outer_coro = tls_driven_coro; /* a nested start's */
            tls_driven_coro = coro;
            if (exc == NULL) {
                r = PyIter_Send(coro, Py_None, &val);
            }
            else {
                r = coro_throw(st, coro, exc, &val);
                Py_CLEAR(exc);
            }
            tls_driven_coro = outer_coro;
            if (r == PYGEN_RETURN) {
                *out_value = val;
                return STEP_RETURNED;
            }
            if (r == PYGEN_ERROR) {
                translate_asyncio_cancel(st);
                return STEP_RAISED;
            }
        }
        if (*pbox == NULL) {
            TaskObject *box;
            if (trace_id != 0) {
                trace_claim_id(trace_id); /* task.created takes the call's */
            }
            if (rent != NULL) {
                box = rent(rent_arg);
            }
            else {
                box = (TaskObject *)task_new_promise(st, NULL, 0);
            }
            if (trace_id != 0) {
                trace_claim_id(0);
                if (box != NULL) { /* D2: the Task the call returns */
                    st_task_set_trace_id(&box->task_core, trace_id);
                }
            }
            if (box == NULL) {
                Py_DECREF(val);
                return STEP_RAISED;
            }
            box->task_kind = TASK_BOX;
            task_set_fn(box, Py_NewRef(coro));
            box->task_context = Py_NewRef(ctx);
            box->task_flags |= TF_RUNNING_BOX;
            *pbox = box;
        }
        int rc = box_await(st, *pbox, val);
        Py_CLEAR(val);
        if (rc == 0) {
            if ((*pbox)->task_flags & TF_RESUME_PENDING) {
                (*pbox)->task_flags &= ~TF_RESUME_PENDING;
                if (ST_UNLIKELY(st_trace_on())) { /* resumed inline */
                    uint32_t id = trace_task_id(*pbox);
                    st_trace_emit(ST_TRACE_CONTINUATION_INLINE, id, 0, 0);
                    st_trace_emit(ST_TRACE_METHOD_RESUME, id, 0, 0);
                }
                continue; /* completed during registration: step again */
            }
            return STEP_SUSPENDED;
        }
        /* it yielded something unawaitable: throw the error into it */
        exc = PyErr_GetRaisedException(); /* its traceback attached */
    }
}

/* The first step of an async method call, one for every mode (Task,
 * ValueTask, pooled ValueTask): enters a copy of the caller's contextvars
 * context (R6.6), makes *pbox the box if the caller gave one, runs coro up
 * to its first suspension or its end with rent_box as the supplier of the
 * box (NULL: a new Task at the first suspension), then leaves the context
 * and restores the thread's SynchronizationContext, keeping any error.
 * Returns STEP_* (*pbox: the box if one exists now, a new reference if it
 * was made here; *value: the returned value, new), or -1 with an error if
 * the context could not be entered.  Steals coro.  Inlined in both
 * callers: it is the hot path of every call (W2, the synchronous call).
 *
 * Issue 10 (W2b): the first send is made here, not in run_steps, so a
 * body that returns or raises before awaiting anything incomplete pays
 * for no box, no running mark (the deadlock detector's push/pop only
 * matter for a box), no step loop; the first yield goes on to run_steps. */
static inline __attribute__((always_inline)) int
start_steps(st_state *st, PyObject *coro, TaskObject **pbox,
            rent_box_fn rent_box, void *arg, PyObject **value)
{
    PyObject *ctx, *saved;
    uint32_t trace_id = 0;
    int rc;

    if (ST_UNLIKELY(st_trace_on())) {
        /* D2: the id of the Task the call returns, before it exists */
        trace_id = *pbox != NULL ? trace_task_id(*pbox) : trace_new_id(st);
        st_trace_emit(ST_TRACE_METHOD_START, trace_id, 0, 0);
    }
    ctx = PyContext_CopyCurrent();
    if (ctx == NULL || PyContext_Enter(ctx) < 0) {
        Py_XDECREF(ctx);
        Py_DECREF(coro);
        return -1;
    }
    saved = Py_XNewRef(tls_sync_ctx); /* sync_context_save() */
    if (ST_UNLIKELY(*pbox != NULL)) {
        /* a Task.run delegate's box (py_task.c): run_steps marks it */
        (*pbox)->task_kind = TASK_BOX;
        task_set_fn(*pbox, Py_NewRef(coro));
        Py_XSETREF((*pbox)->task_context, Py_NewRef(ctx));
        rc = run_steps(st, pbox, coro, ctx, value, trace_id, NULL, NULL,
                       NULL);
    }
    else {
        PyObject *val, *outer_coro = tls_driven_coro; /* a nested start's */
        PySendResult r;
        tls_driven_coro = coro;
        r = PyIter_Send(coro, Py_None, &val); /* MoveNext */
        tls_driven_coro = outer_coro;
        if (r == PYGEN_NEXT) {
            /* it awaits something incomplete: the box, the loop */
            rc = run_steps(st, pbox, coro, ctx, value, trace_id, rent_box,
                           arg, val);
        }
        else {
            if (r == PYGEN_RETURN) {
                *value = val;
                rc = STEP_RETURNED;
            }
            else {
                translate_asyncio_cancel(st);
                rc = STEP_RAISED;
            }
            if (ST_UNLIKELY(st_trace_on())) {
                /* D2: before the caller completes the task */
                st_trace_emit(ST_TRACE_METHOD_COMPLETE, trace_id, 0, 0);
            }
        }
    }
    PyContext_Exit(ctx);
    if (ST_UNLIKELY(tls_sync_ctx != saved)) {
        /* the body set another SynchronizationContext: restore the
         * caller's, with an error kept aside */
        PyObject *exc = rc == STEP_RAISED ? PyErr_GetRaisedException()
                                          : NULL;
        sync_context_restore(st, saved);
        if (rc == STEP_RAISED) {
            PyErr_SetRaisedException(exc);
        }
    }
    else {
        Py_XDECREF(saved);
    }
    Py_DECREF(ctx);
    Py_DECREF(coro);
    return rc;
}

/* What a start's outcome hands back, one switch for both builders (Task
 * and ValueTask; issue 10 review).  rc: start_steps's result; given: the
 * box the caller handed to start_steps, or NULL; b: the box after it (a
 * new reference if made there); v: the returned value (consumed).
 * Returns 1 with *value (new) when the body returned with no box and
 * want_value (a ValueTask method: no Task at all, 4.2); else 0 with *task
 * (new: the box, completed if the body ended, or a completed Task, cached
 * for common results, A1/T12); -1 with an error.  A pending exception (a
 * resumption during the step that could not fault its task) is raised
 * here in every case.  Inlined with a constant want_value: each builder
 * keeps only its own branches, the shared code costs no instruction. */
static inline __attribute__((always_inline)) int
start_outcome(st_state *st, int rc, TaskObject *given, TaskObject *b,
              PyObject *v, int want_value, PyObject **value,
              PyObject **task)
{
    PyObject *t;
    *value = NULL;
    *task = NULL;
    switch (rc) {
    case -1:
        return -1;
    case STEP_SUSPENDED:
        t = given != NULL ? Py_NewRef(given) : (PyObject *)b;
        break;
    case STEP_RETURNED:
        if (b != NULL) { /* suspended once, then finished in this call */
            task_try_complete(b, ST_STATUS_RAN_TO_COMPLETION, v, NULL);
            Py_DECREF(v);
            t = given != NULL ? Py_NewRef(given) : (PyObject *)b;
        }
        else if (want_value) {
            if (pending_exc_restore() < 0) {
                Py_DECREF(v);
                return -1;
            }
            *value = v; /* 4.2: finished synchronously, no Task */
            return 1;
        }
        else {
            t = task_from_result(st, v);
            Py_DECREF(v);
            if (t == NULL) {
                return -1;
            }
        }
        break;
    default:
        if (b == NULL) {
            b = (TaskObject *)task_new_promise(st, NULL, 0);
            if (b == NULL) {
                return -1;
            }
        }
        t = given != NULL ? Py_NewRef(given) : (PyObject *)b;
        if (task_complete_from_error(b, 1) < 0) {
            /* KeyboardInterrupt/SystemExit: to the caller */
            Py_DECREF(t);
            return -1;
        }
        break;
    }
    if (pending_exc_restore() < 0) {
        Py_DECREF(t);
        return -1;
    }
    *task = t;
    return 0;
}

PyObject *
builder_start(st_state *st, PyObject *coro, TaskObject *box)
{
    PyObject *v = NULL, *value, *task;
    TaskObject *b = box;
    int rc = start_steps(st, coro, &b, NULL, NULL, &v);
    if (start_outcome(st, rc, box, b, v, 0, &value, &task) < 0) {
        return NULL;
    }
    return task;
}

int
builder_start_value(st_state *st, PyObject *coro,
                    TaskObject *(*rent_box)(void *), void *arg,
                    PyObject **value, PyObject **task)
{
    PyObject *v = NULL;
    TaskObject *b = NULL;
    int rc = start_steps(st, coro, &b, rent_box, arg, &v);
    return start_outcome(st, rc, NULL, b, v, 1, value, task);
}

void
box_resume(TaskObject *box)
{
    st_state *st = g_st;
    PyObject *coro = task_fn(box), *ctx = box->task_context, *saved;
    PyObject *value = NULL;
    TaskObject *b = box;
    int rc;

    if (coro == NULL || ctx == NULL || box->task_kind != TASK_BOX
        || st_task_is_completed(&box->task_core)) {
        Py_DECREF(box);
        return;
    }
    Py_INCREF(coro);
    Py_INCREF(ctx);
    if (PyContext_Enter(ctx) < 0) {
        if (task_complete_from_error(box, 0) < 0) {
            pending_exc_save();
        }
        goto done;
    }
    saved = sync_context_save();
    ST_TRACE(ST_TRACE_METHOD_RESUME, trace_task_id(box), 0, 0);
    rc = run_steps(st, &b, coro, ctx, &value, 0, NULL, NULL, NULL);
    PyContext_Exit(ctx);
    if (rc == STEP_RETURNED) {
        sync_context_restore(st, saved);
        task_try_complete(box, ST_STATUS_RAN_TO_COMPLETION, value, NULL);
        Py_DECREF(value);
    }
    else if (rc == STEP_RAISED) {
        PyObject *exc = PyErr_GetRaisedException();
        sync_context_restore(st, saved);
        PyErr_SetRaisedException(exc);
        if (task_complete_from_error(box, 1) < 0) {
            pending_exc_save();
        }
    }
    else {
        sync_context_restore(st, saved);
    }
done:
    Py_DECREF(coro);
    Py_DECREF(ctx);
    Py_DECREF(box);
}

void
box_on_complete(st_cont_t *c, st_task_t *core, int how)
{
    st_state *st = g_st;
    TaskObject *box = st_container_of(c, TaskObject, task_cont);
    (void)core;
    if (how == ST_RUN_INLINE && can_inline_here(st, task_target(box))) {
        ST_TRACE(ST_TRACE_CONTINUATION_INLINE, trace_task_id(box), 0, 0);
        tls_inline_depth++;
        box_resume(box);
        tls_inline_depth--;
    }
    else {
        box_schedule(box);
    }
}

/* ------------------------------------------------ SynchronizationContext */

static PyObject *
SyncContext_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    return tp->tp_alloc(tp, 0);
}

static PyObject *
sync_post(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    st_state *st = g_st;
    PyObject *cargs, *action, *ctx;
    int rc;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "post(callback, state=None)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "post(): callback must be callable, "
                     "not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    cargs = PyTuple_Pack(1, nargs == 2 ? args[1] : Py_None);
    if (cargs == NULL) {
        return NULL;
    }
    ctx = PyContext_CopyCurrent(); /* Post flows the context */
    if (ctx == NULL) {
        Py_DECREF(cargs);
        return NULL;
    }
    action = action_new(st, args[0], cargs, ctx);
    Py_DECREF(ctx);
    Py_DECREF(cargs);
    if (action == NULL) {
        return NULL;
    }
    rc = schedule_action(st, NULL, action);
    Py_DECREF(action);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
sync_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "send(callback, state=None)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) { /* as post does (issue 9 item 21) */
        PyErr_Format(PyExc_TypeError, "send(): callback must be callable, "
                     "not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    return PyObject_CallOneArg(args[0], nargs == 2 ? args[1] : Py_None);
}

static PyObject *
sync_noop(PyObject *self, PyObject *unused)
{
    Py_RETURN_NONE;
}

static PyObject *
sync_create_copy(PyObject *self, PyObject *unused)
{
    return PyObject_CallNoArgs((PyObject *)g_st->SyncContext_type);
}

static PyObject *
sync_current(PyObject *unused, PyObject *noargs)
{
    PyObject *c = sync_context_current();
    return Py_NewRef(c ? c : Py_None);
}

static PyObject *
sync_set(PyObject *unused, PyObject *ctx)
{
    st_state *st = g_st;
    if (ctx != Py_None && !PyObject_TypeCheck(ctx, st->SyncContext_type)) {
        PyErr_Format(PyExc_TypeError,
                     "set_synchronization_context(): ctx must be a "
                     "SynchronizationContext or None, not %.100s",
                     Py_TYPE(ctx)->tp_name);
        return NULL;
    }
    if (sync_context_set(st, ctx) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
SyncContext_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static void
SyncContext_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef SyncContext_methods[] = {
    {"post", (PyCFunction)(void (*)(void))sync_post, METH_FASTCALL,
     PyDoc_STR("post($self, callback, state=None, /)\n--\n\n"
               "Run callback(state) asynchronously; the base class queues\n"
               "it to the thread pool (like SynchronizationContext.Post).")},
    {"send", (PyCFunction)(void (*)(void))sync_send, METH_FASTCALL,
     PyDoc_STR("send($self, callback, state=None, /)\n--\n\n"
               "Run callback(state) synchronously; the base class calls it\n"
               "on the calling thread (like SynchronizationContext.Send).")},
    {"operation_started", sync_noop, METH_NOARGS,
     PyDoc_STR("operation_started($self, /)\n--\n\n"
               "Called when an async void method starts; no-op here.")},
    {"operation_completed", sync_noop, METH_NOARGS,
     PyDoc_STR("operation_completed($self, /)\n--\n\n"
               "Called when an async void method ends; no-op here.")},
    {"create_copy", sync_create_copy, METH_NOARGS,
     PyDoc_STR("create_copy($self, /)\n--\n\nA new base context.")},
    {"current", sync_current, METH_NOARGS | METH_STATIC,
     PyDoc_STR("current()\n--\n\n"
               "The calling thread's context, or None (like "
               "SynchronizationContext.Current).")},
    {"set_synchronization_context", sync_set, METH_O | METH_STATIC,
     PyDoc_STR("set_synchronization_context(ctx, /)\n--\n\n"
               "Set the calling thread's context (None clears it).")},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot SyncContext_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "SynchronizationContext()\n--\n\n"
         "Where continuations resume, like "
         "System.Threading.SynchronizationContext.\n"
         "Subclass it and override post/send to marshal work to a thread.")},
    {Py_tp_new, SyncContext_new},
    {Py_tp_traverse, SyncContext_traverse},
    {Py_tp_dealloc, SyncContext_dealloc},
    {Py_tp_methods, SyncContext_methods},
    {0, NULL},
};

PyType_Spec SyncContext_spec = {
    .name = "sharptask.SynchronizationContext",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = SyncContext_slots,
};

/* ------------------------------------------------------ Task.yield_() */

typedef struct YieldObject {
    PyObject_HEAD
    int y_yielded;
} YieldObject;

static PyObject *
Yield_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    YieldObject *y = (YieldObject *)tp->tp_alloc(tp, 0);
    if (y != NULL) {
        y->y_yielded = 0;
    }
    return (PyObject *)y;
}

static PySendResult
yield_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    YieldObject *y = (YieldObject *)op;
    if (!y->y_yielded) {
        y->y_yielded = 1;
        *presult = await_yield(g_st, Py_NewRef(op));
        return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    *presult = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PyObject *
yield_iternext(PyObject *op)
{
    return iternext_via_send(op, yield_am_send);
}

static PyObject *
yield_self(PyObject *op)
{
    return Py_NewRef(op);
}

static PyObject *
yield_self_meth(PyObject *op, PyObject *unused)
{
    return Py_NewRef(op);
}

static PyObject *
yield_is_completed(PyObject *op, void *closure)
{
    Py_RETURN_FALSE;
}

static PyObject *
yield_get_result(PyObject *op, PyObject *unused)
{
    Py_RETURN_NONE;
}

static PyObject *
yield_on_completed(PyObject *op, PyObject *action)
{
    st_state *st = g_st;
    PyObject *ctx, *a, *target;
    int rc;
    if (!PyCallable_Check(action)) {
        PyErr_Format(PyExc_TypeError, "action must be callable, not %.100s",
                     Py_TYPE(action)->tp_name);
        return NULL;
    }
    ctx = PyContext_CopyCurrent();
    if (ctx == NULL) {
        return NULL;
    }
    a = action_new(st, action, NULL, ctx);
    Py_DECREF(ctx);
    if (a == NULL) {
        return NULL;
    }
    target = capture_target(st); /* read at on_completed time (S9.1) */
    rc = schedule_action(st, target, a);
    Py_XDECREF(target);
    Py_DECREF(a);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static void
Yield_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef Yield_methods[] = {
    ST_AWAIT_THROW_METHODDEF,
    {"get_awaiter", yield_self_meth, METH_NOARGS,
     PyDoc_STR("get_awaiter($self, /)\n--\n\nReturn self.")},
    {"get_result", yield_get_result, METH_NOARGS,
     PyDoc_STR("get_result($self, /)\n--\n\nNothing to return.")},
    {"on_completed", yield_on_completed, METH_O,
     PyDoc_STR("on_completed($self, action, /)\n--\n\n"
               "Post action to the current context, else queue it.")},
    {"unsafe_on_completed", yield_on_completed, METH_O,
     PyDoc_STR("unsafe_on_completed($self, action, /)\n--\n\n"
               "Same as on_completed.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Yield_getset[] = {
    {"is_completed", yield_is_completed, NULL,
     PyDoc_STR("Always False."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot YieldAwaitable_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "What Task.yield_() returns, like YieldAwaitable.")},
    {Py_tp_new, Yield_new},
    {Py_tp_dealloc, Yield_dealloc},
    {Py_tp_iternext, yield_iternext},
    {Py_am_await, yield_self},
    {Py_am_send, yield_am_send},
    {Py_tp_methods, Yield_methods},
    {Py_tp_getset, Yield_getset},
    {0, NULL},
};

PyType_Spec YieldAwaitable_spec = {
    .name = "sharptask.YieldAwaitable",
    .basicsize = sizeof(YieldObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = YieldAwaitable_slots,
};
