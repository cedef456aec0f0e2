/* py_valuetask.c - ValueTask, its awaiters, ManualResetValueTaskSourceCore,
 * and the ValueTask method builders (plain and pooling).  SPEC V1-V5.
 *
 *     class ValueTask(Generic[T]):          # like ValueTask<T>
 *         def __init__(self, result=None) / (task) / (source, token)
 *         from_result(v), from_exception(e), from_canceled(token)  (static)
 *         completed_task: ValueTask[None]   # preserved: reusable
 *         is_completed / is_completed_successfully / is_faulted /
 *         is_canceled: bool                 # ask the backing every time
 *         result: T                         # raises the exception itself
 *         def as_task(self) -> Task[T]      # consumes
 *         def preserve(self) -> ValueTask[T]
 *         def configure_await(self, continue_on_captured_context: bool)
 *         def get_awaiter(self) -> ValueTaskAwaiter[T]   # consumes
 *         def __await__(self): return self  # consumes; its own iterator
 *
 *     class ManualResetValueTaskSourceCore(Generic[T]):  # csrc/core
 *         version: int; run_continuations_asynchronously: bool
 *         def reset(); set_result(v=None); set_exception(e)
 *         def get_status(token) -> ValueTaskSourceStatus
 *         def get_result(token) -> T
 *         def on_completed(continuation, state, token, flags)
 *
 *     @async_value_method                   # AsyncValueTaskMethodBuilder
 *     @async_value_method(pooling=True)     # PoolingAsyncValueTask...
 *
 * A ValueTask is one of four backings, chosen by what it holds (reference
 * 1.1, 1.13: only the object decides):
 *
 *     RESULT  vt_value is the result; nothing was allocated but this
 *     TASK    vt_obj is a Task (the default builder's box, or any Task)
 *     SOURCE  vt_obj is any IValueTaskSource, vt_value the token object
 *     BOX     vt_obj is a pooled box (a Task the pooling builder rented)
 *             and vt_token the version the box had when it was rented
 *
 * A BOX is the pooling builder's state-machine box: a TaskObject reused
 * across calls.  Its version lives in task_cwopts (16 bits, like .NET's
 * short token), which only continuation tasks use otherwise.  When the
 * consumer takes the result (await, get_result, result, as_task), the box
 * is reset (a fresh core, every field cleared, version + 1) and goes back
 * to the pool: the calling thread's slot if empty, else the shared cache,
 * else it is dropped.  All of it runs with the GIL held.
 *
 * One-shot rules (V2).  In strict mode (the default) each ValueTask
 * accepts one consumption: the first __await__, get_awaiter, result,
 * as_task or preserve marks it, and any later one raises
 * InvalidOperationError before touching the backing.  So a stale
 * ValueTask can never reach a pooled box again, and the .NET hazard of a
 * second GetResult re-pooling a box that another call has rented since
 * (reference 1.11, 4.7) cannot happen.  preserve() and completed_task give
 * ValueTasks that may be consumed any number of times.  With
 * set_strict_value_task(False) the checks are .NET's: result- and
 * Task-backed ones may be consumed again, source-backed and pooled ones
 * fail on the token check.  A stale second get_result on a pooled box
 * raises InvalidOperationError and leaves the box alone in both modes
 * (deviation: .NET re-pools it in a finally and may corrupt another
 * operation).  A box goes back to the pool only when the one ValueTask
 * made for its operation takes the result, and that ValueTask never
 * touches the box again (BOX_STALE), so no ValueTask can ever reach a box
 * while it serves another operation, even after the 16-bit version wraps.
 *
 * Allocation.  A synchronous completion makes the ValueTask only, and
 * ValueTasks come from a freelist.  Awaiting a pending TASK or BOX yields
 * the Task itself to the builder, which registers its embedded node on it
 * (no awaiter object); a pooled method that suspends therefore allocates
 * nothing but its coroutine in steady state (BENCHMARKS.md W10).
 */
#include "binding.h"
#include "py_combinators.h"
#include "py_task.h"
#include "py_state.h"
#include "py_deadlock.h"

#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef (3.11) */

#include "st_error.h"
#include "st_list.h"     /* st_container_of */
#include "st_thread.h"   /* st_cpu_count */
#include "st_vtsource.h" /* the source core */

/* ------------------------------------------------------------- structs */

enum { VT_RESULT = 0, VT_TASK = 1, VT_SOURCE = 2, VT_BOX = 3 };

/* vt_flags */
#define VTF_CONSUMED 0x1  /* strict: handed to a consumer already */
#define VTF_TAKEN 0x2     /* its result was taken (a box went back) */
#define VTF_PRESERVED 0x4 /* preserve()/completed_task: reusable */

typedef struct ValueTaskObject {
    PyObject_HEAD
    PyObject *vt_obj;   /* TASK/BOX: the Task; SOURCE: the source */
    PyObject *vt_value; /* RESULT: the result; SOURCE: the token */
    uint32_t vt_token;  /* BOX: the box's version when rented */
    uint8_t vt_kind;    /* VT_* */
    uint8_t vt_flags;   /* VTF_* */
} ValueTaskObject;

#define ValueTaskObject_CAST(op) ((ValueTaskObject *)(op))

/* ValueTaskAwaiter (get_awaiter) and ConfiguredValueTaskAwaitable
 * (configure_await; its own awaiter) share one layout. */
typedef struct VTAwaiterObject {
    PyObject_HEAD
    ValueTaskObject *vta_vt;
    uint8_t vta_continue; /* continue on the captured context */
} VTAwaiterObject;

#define VTAwaiterObject_CAST(op) ((VTAwaiterObject *)(op))

typedef struct MRVTSCObject {
    PyObject_HEAD
    st_vtsource_t mr_core;
    st_vts_cont_t mr_node;  /* this version's one continuation */
    PyObject *mr_result;    /* the value, or the exception */
    PyObject *mr_tb;        /* the exception's traceback when stored */
    /* the registered continuation (cleared when it is handed over) */
    PyObject *mr_cont;
    PyObject *mr_state;
    PyObject *mr_context;   /* FLOW_EXECUTION_CONTEXT: a context copy */
    PyObject *mr_target;    /* USE_SCHEDULING_CONTEXT: context/scheduler */
    PyObject *mr_weakreflist;
} MRVTSCObject;

#define MRVTSCObject_CAST(op) ((MRVTSCObject *)(op))

typedef struct AsyncValueMethodObject {
    PyObject_HEAD
    PyObject *avm_func;
    PyObject *avm_dict;
    vectorcallfunc avm_vectorcall;
    int avm_pooling;
} AsyncValueMethodObject;

#define AsyncValueMethodObject_CAST(op) ((AsyncValueMethodObject *)(op))

/* A thread's pool slot: one box, owned by the thread state's dict so that
 * it goes when the thread does (with the GIL held). */
typedef struct BoxSlotObject {
    PyObject_HEAD
    TaskObject *bs_box;
} BoxSlotObject;

/* ValueTaskSourceOnCompletedFlags */
#define VTS_USE_SCHEDULING_CONTEXT 0x1
#define VTS_FLOW_EXECUTION_CONTEXT 0x2

#define BOX_VERSION(t) ((t)->task_cwopts)
/* A BOX ValueTask no longer owns its box: it took the result already (the
 * box went back to the pool then, so it can never be its operation
 * again, whatever the 16-bit version says after a wrap), or the version
 * moved on. */
#define BOX_STALE(vt)                                                       \
    (((vt)->vt_flags & VTF_TAKEN) != 0                                      \
     || BOX_VERSION(TaskObject_CAST((vt)->vt_obj))                          \
            != (uint16_t)(vt)->vt_token)

/* ---------------------------------------------------- process globals */

/* Plain C state behind the GIL: a freelist of dead ValueTask memory (no
 * references), the pool counters and the strict flag.  They live outside
 * module state because a thread's slot can be freed (and the counters
 * touched) after the module state is gone, at interpreter exit. */
#define VT_FREELIST_MAX 64
static PyObject *g_vt_free[VT_FREELIST_MAX]; /* dead memory, not refs */
static int g_vt_nfree;
static const void *g_vt_freelist_type; /* tag: ValueTask's type, or NULL */
static int g_vt_strict = 1;
static uint64_t g_pool_rented, g_pool_returned, g_pool_created;
static uint64_t g_pool_dropped;
static int g_pool_in_slots; /* boxes held by thread slots now */

/* This thread's slot, borrowed (the thread state's dict owns it), valid
 * while the thread state with id tls_slot_tid lives. */
static ST_THREAD_LOCAL BoxSlotObject *tls_slot;
static ST_THREAD_LOCAL uint64_t tls_slot_tid;

/* ------------------------------------------------------------ helpers */

static const char consumed_msg[] =
    "this ValueTask was already consumed (awaited, or its result, awaiter "
    "or Task taken): a ValueTask may be consumed only once.  Call "
    "preserve() (or as_task()) once and consume what it returns as often "
    "as needed; set_strict_value_task(False) turns this check off";

static int
raise_consumed(st_state *st)
{
    PyErr_SetString(st->InvalidOperationError, consumed_msg);
    return -1;
}

static int
raise_stale(st_state *st)
{
    PyErr_SetString(st->InvalidOperationError,
                    "the ValueTask's token does not match its source's "
                    "version: the operation it stood for is over (its "
                    "result was taken and its source reset or its pooled "
                    "box reused)");
    return -1;
}

static int
raise_not_completed(st_state *st)
{
    PyErr_SetString(st->InvalidOperationError,
                    "the ValueTask's operation has not completed yet: "
                    "await it, or block on as_task()");
    return -1;
}

/* Marks vt consumed; -1 with InvalidOperationError if it was already
 * (strict mode). */
static int
vt_consume(st_state *st, ValueTaskObject *vt)
{
    if (vt->vt_flags & VTF_PRESERVED) {
        return 0;
    }
    if (g_vt_strict && (vt->vt_flags & VTF_CONSUMED)) {
        return raise_consumed(st);
    }
    vt->vt_flags |= VTF_CONSUMED;
    return 0;
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

/* The ValueTaskSourceStatus of a task's status. */
static int
status_of_task(TaskObject *t)
{
    switch (st_task_status(&t->task_core)) {
    case ST_STATUS_RAN_TO_COMPLETION:
        return ST_VTS_SUCCEEDED;
    case ST_STATUS_CANCELED:
        return ST_VTS_CANCELED;
    case ST_STATUS_FAULTED:
        return ST_VTS_FAULTED;
    default:
        return ST_VTS_PENDING;
    }
}

/* sharptask._valuetask, imported at first use (the Python slow paths). */
static PyObject *
vt_impl_call(st_state *st, const char *name, PyObject *const *args,
             size_t nargs)
{
    PyObject *fn, *res;
    if (st->vt.impl == NULL) {
        st->vt.impl = PyImport_ImportModule("sharptask._valuetask");
        if (st->vt.impl == NULL) {
            return NULL;
        }
    }
    fn = PyObject_GetAttrString(st->vt.impl, name);
    if (fn == NULL) {
        return NULL;
    }
    res = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return res;
}

/* ---------------------------------------------------------- the pool */

/* This thread's slot (borrowed), created on first use; NULL with no error
 * set if it cannot be had (the pool then uses the shared cache only). */
static BoxSlotObject *
box_slot(st_state *st)
{
    PyThreadState *ts = PyThreadState_Get();
    uint64_t tid = PyThreadState_GetID(ts);
    PyObject *dict, *slot;

    if (tls_slot != NULL && tls_slot_tid == tid) {
        return tls_slot;
    }
    dict = PyThreadState_GetDict(); /* borrowed */
    if (dict == NULL) {
        return NULL;
    }
    slot = PyDict_GetItemWithError(dict, st->vt.str_slot_key); /* borrowed */
    if (slot == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return NULL;
        }
        slot = (PyObject *)PyObject_GC_New(BoxSlotObject, st->vt.BoxSlot_type);
        if (slot == NULL) {
            PyErr_Clear();
            return NULL;
        }
        ((BoxSlotObject *)slot)->bs_box = NULL;
        PyObject_GC_Track(slot);
        if (PyDict_SetItem(dict, st->vt.str_slot_key, slot) < 0) {
            PyErr_Clear();
            Py_DECREF(slot);
            return NULL;
        }
        Py_DECREF(slot); /* the dict owns it */
    }
    tls_slot = (BoxSlotObject *)slot;
    tls_slot_tid = tid;
    return tls_slot;
}

/* The rent function given to builder_start_value: a box ready to be a
 * fresh promise (new reference), from this thread's slot, else the shared
 * cache, else new (reference 4.4). */
static TaskObject *
box_rent(void *arg)
{
    st_state *st = arg;
    BoxSlotObject *slot = box_slot(st);
    TaskObject *b;

    if (slot != NULL && slot->bs_box != NULL) {
        b = slot->bs_box; /* the slot's reference becomes ours */
        slot->bs_box = NULL;
        g_pool_in_slots--;
    }
    else if (st->vt.cache_len > 0) {
        b = (TaskObject *)st->vt.cache[--st->vt.cache_len];
        st->vt.cache[st->vt.cache_len] = NULL;
    }
    else {
        b = (TaskObject *)task_new_promise(st, NULL, 0);
        if (b == NULL) {
            return NULL;
        }
        b->task_flags |= TF_POOLED;
        BOX_VERSION(b) = 0;
        g_pool_created++;
    }
    /* H3 (issue 9 item 9): a box that completed holding only atoms was
     * taken off the GC's lists (untrack_if_atomic); it is about to hold
     * a coroutine and a context again, so a cycle through the suspended
     * method must be visible to the collector. */
    if (!PyObject_GC_IsTracked((PyObject *)b)) {
        PyObject_GC_Track(b);
    }
    g_pool_rented++;
    return b;
}

/* Puts a completed box whose result was taken back in the pool: resets it
 * as task_alloc initialises a task (update this when TaskObject grows a
 * field), with version + 1, then stores it (reference 4.5).  Keeps any
 * error that is set. */
static void
box_return(st_state *st, TaskObject *b)
{
    PyObject *exc;
    PyObject *old[9];
    BoxSlotObject *slot;
    int i;

    exc = PyErr_GetRaisedException();
    /* move every reference out first: dropping one may run code */
    old[0] = b->task_result;
    old[1] = b->task_token;
    old[2] = b->task_state;
    old[3] = b->task_fn;
    old[4] = b->task_arg;
    old[5] = b->task_context;
    old[6] = b->task_target;
    old[7] = b->task_scheduler;
    old[8] = b->task_tb;
    b->task_result = NULL;
    b->task_token = NULL;
    b->task_state = NULL;
    b->task_fn = NULL;
    b->task_arg = NULL;
    b->task_context = NULL;
    b->task_target = NULL;
    b->task_scheduler = NULL;
    b->task_tb = NULL;
    box_registry_remove(b); /* no-op: completion unlinked it */
    st_task_init(&b->task_core, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    b->task_id = 0; /* a new operation gets a new id */
    b->task_kind = TASK_PROMISE;
    b->task_flags = TF_POOLED;
    BOX_VERSION(b) = (uint16_t)(BOX_VERSION(b) + 1u); /* wraps, as .NET */
    b->task_options = 0;
    b->task_cont.next = NULL;
    b->task_cont.fn = NULL;
    b->task_cont.kind = ST_CONT_ACTION;
    b->task_work.next = NULL;
    b->task_work.run = NULL;
    b->task_work.flags = ST_WORK_DOMAIN;
    g_pool_returned++;
    slot = box_slot(st);
    if (slot != NULL && slot->bs_box == NULL) {
        slot->bs_box = (TaskObject *)Py_NewRef(b);
        g_pool_in_slots++;
    }
    else if (st->vt.cache_len < st->vt.cache_cap) {
        st->vt.cache[st->vt.cache_len++] = Py_NewRef(b);
    }
    else {
        g_pool_dropped++; /* both full: left to the GC, as .NET drops it */
    }
    for (i = 0; i < 9; i++) {
        Py_XDECREF(old[i]);
    }
    PyErr_SetRaisedException(exc);
}

/* ------------------------------------------------- ValueTask: making */

static ValueTaskObject *
vt_alloc(st_state *st, int kind, PyObject *obj, PyObject *value)
{
    ValueTaskObject *vt;
    if (g_vt_nfree > 0) {
        vt = (ValueTaskObject *)g_vt_free[--g_vt_nfree];
        (void)PyObject_Init((PyObject *)vt, st->vt.ValueTask_type);
    }
    else {
        vt = PyObject_GC_New(ValueTaskObject, st->vt.ValueTask_type);
        if (vt == NULL) {
            return NULL;
        }
    }
    vt->vt_obj = Py_XNewRef(obj);
    vt->vt_value = Py_XNewRef(value);
    vt->vt_token = 0;
    vt->vt_kind = (uint8_t)kind;
    vt->vt_flags = 0;
    PyObject_GC_Track(vt);
    return vt;
}

static PyObject *
vt_new_result(st_state *st, PyObject *value)
{
    return (PyObject *)vt_alloc(st, VT_RESULT, NULL, value);
}

static PyObject *
vt_new_task(st_state *st, PyObject *task)
{
    return (PyObject *)vt_alloc(st, VT_TASK, task, NULL);
}

static PyObject *
vt_new_box(st_state *st, TaskObject *box)
{
    ValueTaskObject *vt = vt_alloc(st, VT_BOX, (PyObject *)box, NULL);
    if (vt != NULL) {
        vt->vt_token = BOX_VERSION(box);
    }
    return (PyObject *)vt;
}

static PyObject *
vt_new_source(st_state *st, PyObject *source, PyObject *token)
{
    return (PyObject *)vt_alloc(st, VT_SOURCE, source, token);
}

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
static int
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

static PyObject *
source_result(st_state *st, ValueTaskObject *vt)
{
    if (Py_TYPE(vt->vt_obj) == st->vt.MRVTSC_type) {
        return mr_result(st, MRVTSCObject_CAST(vt->vt_obj), vt->vt_value);
    }
    return PyObject_CallMethodOneArg(vt->vt_obj, st->vt.str_get_result,
                                     vt->vt_value);
}

/* source.on_completed(continuation, state, token, flags). */
static PyObject *
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

/* --------------------------------------------------- ValueTask: reading */

/* The ValueTaskSourceStatus of vt, or -1 with an error (a stale token). */
static int
vt_status(st_state *st, ValueTaskObject *vt)
{
    TaskObject *t;
    switch (vt->vt_kind) {
    case VT_RESULT:
        return ST_VTS_SUCCEEDED;
    case VT_TASK:
        return status_of_task(TaskObject_CAST(vt->vt_obj));
    case VT_BOX:
        t = TaskObject_CAST(vt->vt_obj);
        if (BOX_STALE(vt)) {
            return raise_stale(st);
        }
        return status_of_task(t);
    default:
        return source_status(st, vt);
    }
}

/* GetResult: the result (new ref), or NULL with the exception itself
 * raised.  A TASK that is not complete is waited for if `block`; a BOX
 * that is not complete raises (it is a source, 1.5) without being
 * consumed.  A BOX's result is taken once: the box goes back to the pool
 * (4.5). */
static PyObject *
vt_get_result(st_state *st, ValueTaskObject *vt, int block)
{
    PyObject *r;
    TaskObject *t;

    if (g_vt_strict && (vt->vt_flags & (VTF_TAKEN | VTF_PRESERVED))
                           == VTF_TAKEN) {
        raise_consumed(st);
        return NULL;
    }
    switch (vt->vt_kind) {
    case VT_RESULT:
        r = Py_NewRef(vt->vt_value);
        break;
    case VT_TASK:
        t = TaskObject_CAST(vt->vt_obj);
        if (block && !st_task_is_completed(&t->task_core)
            && task_wait_blocking(st, t, UINT64_MAX) < 0) {
            return NULL;
        }
        r = task_get_result(st, t);
        break;
    case VT_BOX:
        t = TaskObject_CAST(vt->vt_obj);
        if (BOX_STALE(vt)) {
            raise_stale(st); /* the box is left alone (deviation, 4.7) */
            return NULL;
        }
        if (!st_task_is_completed(&t->task_core)) {
            raise_not_completed(st);
            return NULL;
        }
        r = task_get_result(st, t);
        box_return(st, t); /* keeps the raised error */
        break;
    default:
        r = source_result(st, vt);
        break;
    }
    vt->vt_flags |= VTF_TAKEN;
    return r;
}

/* The await step (am_send) of vt, resuming on the captured context iff
 * `cont`: a result, an exception, or what the builder must wait for. */
static PySendResult
vt_send(st_state *st, ValueTaskObject *vt, int cont, PyObject **presult)
{
    TaskObject *t;
    int status;

    if (g_vt_strict && (vt->vt_flags & (VTF_TAKEN | VTF_PRESERVED))
                           == VTF_TAKEN) {
        raise_consumed(st); /* driven again after it returned */
        *presult = NULL;
        return PYGEN_ERROR;
    }
    switch (vt->vt_kind) {
    case VT_TASK:
    case VT_BOX:
        t = TaskObject_CAST(vt->vt_obj);
        if (vt->vt_kind == VT_BOX && BOX_STALE(vt)) {
            raise_stale(st); /* never wait on a box reused since */
            *presult = NULL;
            return PYGEN_ERROR;
        }
        if (!st_task_is_completed(&t->task_core)) {
            /* the Task itself: the builder registers its own node on it,
             * with no awaiter object (or a configured one for False) */
            *presult = cont ? Py_NewRef(t)
                            : PyObject_CallMethodOneArg(
                                  (PyObject *)t, st->vt.str_configure_await,
                                  Py_False);
            return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
        }
        break;
    case VT_SOURCE:
        status = source_status(st, vt);
        if (status < 0) {
            *presult = NULL;
            return PYGEN_ERROR;
        }
        if (status == ST_VTS_PENDING) {
            /* an awaiter whose unsafe_on_completed registers on the
             * source (reference 1.10) */
            VTAwaiterObject *aw = PyObject_GC_New(VTAwaiterObject,
                                                  st->vt.VTAwaiter_type);
            if (aw == NULL) {
                *presult = NULL;
                return PYGEN_ERROR;
            }
            aw->vta_vt = (ValueTaskObject *)Py_NewRef(vt);
            aw->vta_continue = (uint8_t)cont;
            PyObject_GC_Track(aw);
            *presult = (PyObject *)aw;
            return PYGEN_NEXT;
        }
        break;
    default:
        break;
    }
    *presult = vt_get_result(st, vt, 0);
    return *presult != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

/* A completed Task for vt's outcome, or a promise completed later
 * (AsTask, reference 1.6).  vt is consumed already. */
static PyObject *vt_box_as_task(st_state *st, ValueTaskObject *vt);

static PyObject *
vt_as_task(st_state *st, ValueTaskObject *vt)
{
    PyObject *args[2];
    switch (vt->vt_kind) {
    case VT_RESULT:
        return task_from_result(st, vt->vt_value);
    case VT_TASK:
        return Py_NewRef(vt->vt_obj);
    case VT_BOX:
        return vt_box_as_task(st, vt);
    default:
        if (g_vt_strict && (vt->vt_flags & (VTF_TAKEN | VTF_PRESERVED))
                               == VTF_TAKEN) {
            raise_consumed(st);
            return NULL;
        }
        vt->vt_flags |= VTF_TAKEN;
        args[0] = vt->vt_obj;
        args[1] = vt->vt_value;
        return vt_impl_call(st, "_source_as_task", args, 2);
    }
}

/* as_task of a pending box: a promise completed, when the box is, from
 * the awaiter's get_result (which also returns the box to the pool). */
static PyObject *
box_as_task_done(PyObject *pair, PyObject *unused)
{
    TaskObject *promise = TaskObject_CAST(PyTuple_GET_ITEM(pair, 0));
    ValueTaskObject *vt = ValueTaskObject_CAST(PyTuple_GET_ITEM(pair, 1));
    PyObject *r = vt_get_result(g_st, vt, 0);
    if (r != NULL) {
        task_try_complete(promise, ST_STATUS_RAN_TO_COMPLETION, r, NULL);
        Py_DECREF(r);
    }
    else if (task_complete_from_error(promise, 1) < 0) {
        return NULL; /* a BaseException: keep it going */
    }
    Py_RETURN_NONE;
}

static PyMethodDef box_as_task_done_def = {
    "_box_as_task_done", box_as_task_done, METH_NOARGS,
    PyDoc_STR("Internal: completes ValueTask.as_task()'s Task."),
};

static PyObject *
vt_box_as_task(st_state *st, ValueTaskObject *vt)
{
    TaskObject *t = TaskObject_CAST(vt->vt_obj);
    PyObject *promise, *pair, *cb, *aw, *r;

    if (g_vt_strict && (vt->vt_flags & VTF_TAKEN)) {
        raise_consumed(st);
        return NULL;
    }
    if (BOX_STALE(vt)) {
        raise_stale(st);
        return NULL;
    }
    promise = task_new_promise(st, NULL, 0);
    if (promise == NULL) {
        return NULL;
    }
    if (st_task_is_completed(&t->task_core)) {
        task_complete_from(TaskObject_CAST(promise), t); /* marks observed */
        box_return(st, t);
        vt->vt_flags |= VTF_TAKEN;
        return promise;
    }
    pair = PyTuple_Pack(2, promise, (PyObject *)vt);
    cb = pair ? PyCFunction_New(&box_as_task_done_def, pair) : NULL;
    aw = cb ? PyObject_CallMethodOneArg((PyObject *)t,
                                        st->vt.str_configure_await, Py_False)
            : NULL;
    r = aw ? PyObject_CallMethodOneArg(aw, st->str_unsafe_on_completed, cb)
           : NULL;
    Py_XDECREF(pair);
    Py_XDECREF(cb);
    Py_XDECREF(aw);
    if (r == NULL) {
        Py_DECREF(promise);
        return NULL;
    }
    Py_DECREF(r);
    return promise;
}

/* --------------------------------------------------- ValueTask: lifecycle */

static PyObject *
ValueTask_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"", "", "result", "task", "source", "token",
                             NULL};
    st_state *st = g_st;
    PyObject *a = NULL, *b = NULL, *result = NULL, *task = NULL;
    PyObject *source = NULL, *token = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO$OOOO:ValueTask",
                                     kwlist, &a, &b, &result, &task,
                                     &source, &token)) {
        return NULL;
    }
    if ((a != NULL) + (b != NULL) + (result != NULL) + (task != NULL)
            + (source != NULL) + (token != NULL)
        > 2) {
        goto usage;
    }
    if (b != NULL) { /* ValueTask(source, token) */
        if (result != NULL || task != NULL || source != NULL
            || token != NULL) {
            goto usage;
        }
        source = a;
        token = b;
        a = NULL;
    }
    else if (a != NULL && (source != NULL || token != NULL)) {
        if (source != NULL || result != NULL || task != NULL) {
            goto usage;
        }
        source = a; /* ValueTask(source, token=...) */
        a = NULL;
    }
    if (task != NULL) {
        if (a != NULL || result != NULL || source != NULL || token != NULL) {
            goto usage;
        }
        if (!Task_Check(st, task)) {
            PyErr_Format(PyExc_TypeError,
                         "ValueTask(): task must be a Task, not %.100s",
                         Py_TYPE(task)->tp_name);
            return NULL;
        }
        return vt_new_task(st, task);
    }
    if (source != NULL || token != NULL) {
        if (a != NULL || result != NULL) {
            goto usage;
        }
        if (source == NULL || source == Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "ValueTask(): source must not be None");
            return NULL;
        }
        if (token == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "ValueTask(source, token): token is required");
            return NULL;
        }
        if (!PyLong_Check(token)) {
            PyErr_Format(PyExc_TypeError,
                         "ValueTask(): token must be an int, not %.100s",
                         Py_TYPE(token)->tp_name);
            return NULL;
        }
        if (!PyObject_TypeCheck(source, st->vt.MRVTSC_type)) {
            /* V3: a duck-typed IValueTaskSource */
            static const char *names[] = {"get_status", "get_result",
                                          "on_completed"};
            int i;
            for (i = 0; i < 3; i++) {
                if (!PyObject_HasAttrString(source, names[i])) {
                    PyErr_Format(PyExc_TypeError,
                                 "ValueTask(): source must implement "
                                 "IValueTaskSource (get_status, get_result, "
                                 "on_completed); %.100s has no %s",
                                 Py_TYPE(source)->tp_name, names[i]);
                    return NULL;
                }
            }
        }
        return vt_new_source(st, source, token);
    }
    if (result != NULL) {
        if (a != NULL) {
            goto usage;
        }
        return vt_new_result(st, result); /* even a Task, as a value */
    }
    if (a != NULL && Task_Check(st, a)) {
        return vt_new_task(st, a);
    }
    return vt_new_result(st, a != NULL ? a : Py_None);

usage:
    PyErr_SetString(PyExc_TypeError,
                    "ValueTask() takes a result, a task, or a source and a "
                    "token: ValueTask(result), ValueTask(task), "
                    "ValueTask(source, token)");
    return NULL;
}

static int
ValueTask_traverse(PyObject *op, visitproc visit, void *arg)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(vt->vt_obj);
    Py_VISIT(vt->vt_value);
    return 0;
}

static int
ValueTask_clear(PyObject *op)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    Py_CLEAR(vt->vt_obj);
    Py_CLEAR(vt->vt_value);
    return 0;
}

static void
ValueTask_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4: a ValueTask holds a task, a source or a value (another
     * ValueTask): CPython's trashcan bounds the recursion of a chain */
    Py_TRASHCAN_BEGIN(op, ValueTask_dealloc)
    (void)ValueTask_clear(op);
    if ((const void *)tp == g_vt_freelist_type
        && g_vt_nfree < VT_FREELIST_MAX) {
        g_vt_free[g_vt_nfree++] = op; /* the memory, for vt_alloc */
    }
    else {
        tp->tp_free(op);
    }
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* --------------------------------------------------- ValueTask: members */

static PyObject *
vt_status_is(PyObject *op, int want, int completed)
{
    int s = vt_status(g_st, ValueTaskObject_CAST(op));
    if (s < 0) {
        return NULL;
    }
    return PyBool_FromLong(completed ? s != ST_VTS_PENDING : s == want);
}

static PyObject *
vt_is_completed_get(PyObject *op, void *closure)
{
    return vt_status_is(op, 0, 1);
}

static PyObject *
vt_is_completed_successfully_get(PyObject *op, void *closure)
{
    return vt_status_is(op, ST_VTS_SUCCEEDED, 0);
}

static PyObject *
vt_is_faulted_get(PyObject *op, void *closure)
{
    return vt_status_is(op, ST_VTS_FAULTED, 0);
}

static PyObject *
vt_is_canceled_get(PyObject *op, void *closure)
{
    return vt_status_is(op, ST_VTS_CANCELED, 0);
}

static PyObject *
vt_result_get(PyObject *op, void *closure)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt->vt_kind == VT_BOX && !(vt->vt_flags & VTF_TAKEN)) {
        /* a pending pooled one raises without being consumed (1.5) */
        int s = vt_status(st, vt);
        if (s < 0) {
            return NULL;
        }
        if (s == ST_VTS_PENDING) {
            raise_not_completed(st);
            return NULL;
        }
    }
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    return vt_get_result(st, vt, 1);
}

static PyObject *
vt_as_task_meth(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    return vt_as_task(st, vt);
}

static PyObject *
vt_preserve(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    PyObject *t;
    ValueTaskObject *res;

    if (vt->vt_flags & VTF_PRESERVED) {
        return Py_NewRef(op);
    }
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    if (vt->vt_kind == VT_RESULT) {
        vt->vt_flags |= VTF_PRESERVED; /* 1.7: a result preserves itself */
        return Py_NewRef(op);
    }
    t = vt_as_task(st, vt);
    if (t == NULL) {
        return NULL;
    }
    res = (ValueTaskObject *)vt_new_task(st, t);
    Py_DECREF(t);
    if (res != NULL) {
        res->vt_flags |= VTF_PRESERVED;
    }
    return (PyObject *)res;
}

static PyObject *
vta_new(st_state *st, PyTypeObject *tp, ValueTaskObject *vt, int cont)
{
    VTAwaiterObject *aw = PyObject_GC_New(VTAwaiterObject, tp);
    if (aw == NULL) {
        return NULL;
    }
    aw->vta_vt = (ValueTaskObject *)Py_NewRef(vt);
    aw->vta_continue = (uint8_t)cont;
    PyObject_GC_Track(aw);
    return (PyObject *)aw;
}

static PyObject *
vt_configure_await(PyObject *op, PyObject *arg)
{
    st_state *st = g_st;
    if (!PyBool_Check(arg)) {
        PyErr_Format(PyExc_TypeError,
                     "ValueTask.configure_await() takes a bool "
                     "(continue_on_captured_context), not %.100s; "
                     "ConfigureAwaitOptions are for Task only, as in .NET: "
                     "use as_task().configure_await(options)",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    return vta_new(st, st->vt.VTConfigured_type, ValueTaskObject_CAST(op),
                   arg == Py_True);
}

static PyObject *
vt_get_awaiter(PyObject *op, PyObject *unused)
{
    st_state *st = g_st;
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt_consume(st, vt) < 0) {
        return NULL;
    }
    return vta_new(st, st->vt.VTAwaiter_type, vt, 1);
}

static PyObject *
vt_am_await(PyObject *op)
{
    if (vt_consume(g_st, ValueTaskObject_CAST(op)) < 0) {
        return NULL;
    }
    return Py_NewRef(op); /* its own iterator: nothing allocated */
}

/* vt.__await__() called explicitly: consumes vt, then an iterator over
 * its steps (py_task.c await_method_iter; I2). */
static PyObject *
vt_await_method(PyObject *op, PyObject *unused)
{
    PyObject *self = vt_am_await(op);
    if (self == NULL) {
        return NULL;
    }
    PyObject *r = await_method_iter(self, NULL);
    Py_DECREF(self);
    return r;
}

static PySendResult
vt_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    PySendResult r = vt_send(g_st, ValueTaskObject_CAST(op), 1, presult);
    if (r == PYGEN_NEXT) { /* to the builder, or to asyncio (I2) */
        *presult = await_yield(g_st, *presult);
        return *presult != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    return r;
}

static PyObject *
vt_iternext(PyObject *op)
{
    PyObject *res;
    switch (vt_am_send(op, Py_None, &res)) {
    case PYGEN_NEXT:
        return res;
    case PYGEN_RETURN:
        return return_via_stop_iteration(res);
    default:
        return NULL;
    }
}

static PyObject *
vt_from_result(PyObject *unused, PyObject *value)
{
    return vt_new_result(g_st, value);
}

static PyObject *
vt_from_task_factory(const char *name, PyObject *arg)
{
    st_state *st = g_st;
    PyObject *t = PyObject_CallMethod((PyObject *)st->Task_type, name, "O",
                                      arg);
    PyObject *vt;
    if (t == NULL) {
        return NULL;
    }
    vt = vt_new_task(st, t);
    Py_DECREF(t);
    return vt;
}

static PyObject *
vt_from_exception(PyObject *unused, PyObject *exc)
{
    return vt_from_task_factory("from_exception", exc);
}

static PyObject *
vt_from_canceled(PyObject *unused, PyObject *token)
{
    return vt_from_task_factory("from_canceled", token);
}

static PyObject *
ValueTask_richcompare(PyObject *a, PyObject *b, int op)
{
    st_state *st = g_st;
    ValueTaskObject *x, *y;
    int eq;

    if ((op != Py_EQ && op != Py_NE)
        || !PyObject_TypeCheck(b, st->vt.ValueTask_type)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    x = ValueTaskObject_CAST(a);
    y = ValueTaskObject_CAST(b);
    /* 1.8: same object and token; two results compare by value; a
     * result never equals an object-backed one */
    if (x->vt_kind != y->vt_kind) {
        eq = 0;
    }
    else if (x->vt_kind == VT_RESULT) {
        eq = PyObject_RichCompareBool(x->vt_value, y->vt_value, Py_EQ);
        if (eq < 0) {
            return NULL;
        }
    }
    else if (x->vt_obj != y->vt_obj) {
        eq = 0;
    }
    else if (x->vt_kind == VT_SOURCE) {
        eq = PyObject_RichCompareBool(x->vt_value, y->vt_value, Py_EQ);
        if (eq < 0) {
            return NULL;
        }
    }
    else {
        eq = x->vt_token == y->vt_token;
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t
ValueTask_hash(PyObject *op)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    if (vt->vt_kind == VT_RESULT) {
        return PyObject_Hash(vt->vt_value);
    }
    return Py_HashPointer(vt->vt_obj);
}

static PyObject *
ValueTask_repr(PyObject *op)
{
    ValueTaskObject *vt = ValueTaskObject_CAST(op);
    switch (vt->vt_kind) {
    case VT_RESULT:
        return PyUnicode_FromFormat("<ValueTask result=%R>", vt->vt_value);
    case VT_TASK:
        return PyUnicode_FromFormat("<ValueTask task=%R>", vt->vt_obj);
    case VT_BOX:
        return PyUnicode_FromFormat("<ValueTask pooled box=%p token=%u>",
                                    (void *)vt->vt_obj,
                                    (unsigned)vt->vt_token);
    default:
        return PyUnicode_FromFormat("<ValueTask source=%R token=%R>",
                                    vt->vt_obj, vt->vt_value);
    }
}

static PyMethodDef ValueTask_methods[] = {
    {"throw", (PyCFunction)(void (*)(void))await_throw_method, METH_FASTCALL,
     PyDoc_STR("throw($self, typ, val=None, tb=None, /)\n--\n\n"
               "Raise typ (an exception, or a class called with val) at\n"
               "the await: the generator protocol, by which asyncio\n"
               "cancels an await; answers asyncio's \"bad yield\" with an\n"
               "asyncio future (I2).")},
    {"__await__", vt_await_method, METH_NOARGS | METH_COEXIST,
     PyDoc_STR("__await__($self, /)\n--\n\n"
               "Consumes the ValueTask; an iterator over the await's "
               "steps.")},
    {"as_task", vt_as_task_meth, METH_NOARGS,
     PyDoc_STR("as_task($self, /)\n--\n\n"
               "A Task for this ValueTask (like ValueTask.AsTask): the Task\n"
               "itself, a completed one, or one completed later.  Consumes\n"
               "the ValueTask.")},
    {"preserve", vt_preserve, METH_NOARGS,
     PyDoc_STR("preserve($self, /)\n--\n\n"
               "A ValueTask that may be consumed any number of times (like\n"
               "ValueTask.Preserve): Task-backed, or this one for a\n"
               "result.  Consumes this ValueTask.")},
    {"configure_await", vt_configure_await, METH_O,
     PyDoc_STR("configure_await($self, continue_on_captured_context, /)\n"
               "--\n\n"
               "An awaitable that resumes on the captured context only if\n"
               "the flag is True (like ValueTask.ConfigureAwait).")},
    {"get_awaiter", vt_get_awaiter, METH_NOARGS,
     PyDoc_STR("get_awaiter($self, /)\n--\n\n"
               "The ValueTaskAwaiter (like ValueTask.GetAwaiter).  Consumes\n"
               "the ValueTask.")},
    {"from_result", vt_from_result, METH_O | METH_STATIC,
     PyDoc_STR("from_result(value, /)\n--\n\n"
               "A completed ValueTask (like ValueTask.FromResult).")},
    {"from_exception", vt_from_exception, METH_O | METH_STATIC,
     PyDoc_STR("from_exception(exception, /)\n--\n\n"
               "A faulted ValueTask (like ValueTask.FromException).")},
    {"from_canceled", vt_from_canceled, METH_O | METH_STATIC,
     PyDoc_STR("from_canceled(token, /)\n--\n\n"
               "A canceled ValueTask for a canceled token (like\n"
               "ValueTask.FromCanceled).")},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     PyDoc_STR("See PEP 585")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ValueTask_getset[] = {
    {"is_completed", vt_is_completed_get, NULL,
     PyDoc_STR("True once the operation completed in any way."), NULL},
    {"is_completed_successfully", vt_is_completed_successfully_get, NULL,
     PyDoc_STR("True if it completed successfully."), NULL},
    {"is_faulted", vt_is_faulted_get, NULL,
     PyDoc_STR("True if it failed."), NULL},
    {"is_canceled", vt_is_canceled_get, NULL,
     PyDoc_STR("True if it was canceled."), NULL},
    {"result", vt_result_get, NULL,
     PyDoc_STR("The result (like ValueTask.Result): a Task-backed one\n"
               "blocks until completion; a failed one raises its exception\n"
               "itself (not an AggregateError).  Consumes the ValueTask."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ValueTask_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "ValueTask(value=None, /, token=None, *, result=None, task=None,"
         " source=None)\n--\n\n"
         "ValueTask(result), ValueTask(task) or ValueTask(source, token)\n"
         "(or the same by keyword).\n"
         "A result, a Task, or an IValueTaskSource operation, like\n"
         "System.Threading.Tasks.ValueTask<T>.  Await it (or take its\n"
         "result, awaiter or Task) once; preserve() gives a reusable one.")},
    {Py_tp_new, ValueTask_new},
    {Py_tp_traverse, ValueTask_traverse},
    {Py_tp_clear, ValueTask_clear},
    {Py_tp_dealloc, ValueTask_dealloc},
    {Py_tp_repr, ValueTask_repr},
    {Py_tp_richcompare, ValueTask_richcompare},
    {Py_tp_hash, ValueTask_hash},
    {Py_tp_iternext, vt_iternext},
    {Py_am_await, vt_am_await},
    {Py_am_send, vt_am_send},
    {Py_tp_methods, ValueTask_methods},
    {Py_tp_getset, ValueTask_getset},
    {0, NULL},
};

static PyType_Spec ValueTask_spec = {
    .name = "sharptask.ValueTask",
    .basicsize = sizeof(ValueTaskObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ValueTask_slots,
};

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
    PyObject *res;
    switch (vta_am_send(op, Py_None, &res)) {
    case PYGEN_NEXT:
        return res;
    case PYGEN_RETURN:
        return return_via_stop_iteration(res);
    default:
        return NULL;
    }
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

static int
VTAwaiter_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(VTAwaiterObject_CAST(op)->vta_vt);
    return 0;
}

static int
VTAwaiter_clear(PyObject *op)
{
    Py_CLEAR(VTAwaiterObject_CAST(op)->vta_vt);
    return 0;
}

static void
VTAwaiter_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, VTAwaiter_dealloc) /* H4: holds a ValueTask */
    (void)VTAwaiter_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

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
    {"throw", (PyCFunction)(void (*)(void))await_throw_method,              \
     METH_FASTCALL,                                                         \
     PyDoc_STR("throw($self, typ, val=None, tb=None, /)\n--\n\n"            \
               "Raise typ (an exception, or a class called with val) at\n"  \
               "the await: the generator protocol (I2).")},                 \
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
    {Py_tp_traverse, VTAwaiter_traverse},
    {Py_tp_clear, VTAwaiter_clear},
    {Py_tp_dealloc, VTAwaiter_dealloc},
    {Py_tp_methods, VTAwaiter_methods},
    {Py_tp_getset, VTAwaiter_getset},
    {0, NULL},
};

static PyType_Spec VTAwaiter_spec = {
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
    {Py_tp_traverse, VTAwaiter_traverse},
    {Py_tp_clear, VTAwaiter_clear},
    {Py_tp_dealloc, VTAwaiter_dealloc},
    {Py_tp_methods, VTConfigured_methods},
    {Py_tp_getset, VTAwaiter_getset},
    {Py_tp_iternext, vta_iternext},
    {Py_am_await, vta_am_await},
    {Py_am_send, vta_am_send},
    {0, NULL},
};

static PyType_Spec VTConfigured_spec = {
    .name = "sharptask.ConfiguredValueTaskAwaitable",
    .basicsize = sizeof(VTAwaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = VTConfigured_slots,
};

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

static PyType_Spec MRVTSC_spec = {
    .name = "sharptask.ManualResetValueTaskSourceCore",
    .basicsize = sizeof(MRVTSCObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = MRVTSC_slots,
};

/* ---------------------------------------------------- AsyncValueMethod */

/*
 *     class AsyncValueMethod:    # what @async_value_method returns
 *         pooling: bool
 *         def __call__(self, *args, **kwargs) -> ValueTask
 *         def __get__(self, obj, type) -> bound method
 */

static PyObject *
avm_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
               PyObject *kwnames)
{
    st_state *st = g_st;
    AsyncValueMethodObject *m = AsyncValueMethodObject_CAST(op);
    PyObject *coro, *value, *task, *res;
    int rc;

    coro = PyObject_Vectorcall(m->avm_func, args, nargsf, kwnames);
    if (coro == NULL) {
        return NULL;
    }
    if (!is_coroutine_like(coro)) {
        if (PyObject_TypeCheck(coro, st->vt.ValueTask_type)) {
            return coro;
        }
        if (Task_Check(st, coro)) {
            res = vt_new_task(st, coro);
            Py_DECREF(coro);
            return res;
        }
        PyErr_Format(PyExc_TypeError,
                     "an @async_value_method must return a coroutine (be "
                     "an async def), but it returned %.100s",
                     Py_TYPE(coro)->tp_name);
        Py_DECREF(coro);
        return NULL;
    }
    rc = builder_start_value(st, coro, m->avm_pooling ? box_rent : NULL, st,
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
AsyncValueMethod_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fn", "pooling", NULL};
    PyObject *func;
    int pooling = 0;
    AsyncValueMethodObject *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$p:AsyncValueMethod",
                                     kwlist, &func, &pooling)) {
        return NULL;
    }
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not %.100s",
                     Py_TYPE(func)->tp_name);
        return NULL;
    }
    self = (AsyncValueMethodObject *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    self->avm_func = Py_NewRef(func);
    self->avm_dict = NULL;
    self->avm_vectorcall = avm_vectorcall;
    self->avm_pooling = pooling;
    return (PyObject *)self;
}

static PyObject *
AsyncValueMethod_descr_get(PyObject *op, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(op);
    }
    return PyMethod_New(op, obj);
}

static PyObject *
avm_func_get(PyObject *op, void *closure)
{
    return Py_NewRef(AsyncValueMethodObject_CAST(op)->avm_func);
}

static PyObject *
avm_pooling_get(PyObject *op, void *closure)
{
    return PyBool_FromLong(AsyncValueMethodObject_CAST(op)->avm_pooling);
}

static int
AsyncValueMethod_traverse(PyObject *op, visitproc visit, void *arg)
{
    AsyncValueMethodObject *m = AsyncValueMethodObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(m->avm_func);
    Py_VISIT(m->avm_dict);
    return 0;
}

static int
AsyncValueMethod_clear(PyObject *op)
{
    AsyncValueMethodObject *m = AsyncValueMethodObject_CAST(op);
    Py_CLEAR(m->avm_func);
    Py_CLEAR(m->avm_dict);
    return 0;
}

static void
AsyncValueMethod_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, AsyncValueMethod_dealloc) /* H4 */
    (void)AsyncValueMethod_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
AsyncValueMethod_repr(PyObject *op)
{
    AsyncValueMethodObject *m = AsyncValueMethodObject_CAST(op);
    return PyUnicode_FromFormat("<async_value_method%s %R>",
                                m->avm_pooling ? "(pooling=True)" : "",
                                m->avm_func);
}

static PyGetSetDef AsyncValueMethod_getset[] = {
    {"__func__", avm_func_get, NULL, PyDoc_STR("The async def function."),
     NULL},
    {"pooling", avm_pooling_get, NULL,
     PyDoc_STR("True for the PoolingAsyncValueTaskMethodBuilder."), NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL,
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef AsyncValueMethod_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET,
     offsetof(AsyncValueMethodObject, avm_vectorcall), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(AsyncValueMethodObject, avm_dict),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
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
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, AsyncValueMethod_descr_get},
    {Py_tp_traverse, AsyncValueMethod_traverse},
    {Py_tp_clear, AsyncValueMethod_clear},
    {Py_tp_dealloc, AsyncValueMethod_dealloc},
    {Py_tp_repr, AsyncValueMethod_repr},
    {Py_tp_getset, AsyncValueMethod_getset},
    {Py_tp_members, AsyncValueMethod_members},
    {0, NULL},
};

static PyType_Spec AsyncValueMethod_spec = {
    .name = "sharptask.AsyncValueMethod",
    .basicsize = sizeof(AsyncValueMethodObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .slots = AsyncValueMethod_slots,
};

/* ------------------------------------------------------------- BoxSlot */

static int
BoxSlot_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((BoxSlotObject *)op)->bs_box);
    return 0;
}

static int
BoxSlot_clear(PyObject *op)
{
    BoxSlotObject *s = (BoxSlotObject *)op;
    if (s->bs_box != NULL) {
        g_pool_in_slots--; /* the box leaves the pool with its thread */
        Py_CLEAR(s->bs_box);
    }
    return 0;
}

static void
BoxSlot_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if ((PyObject *)tls_slot == op) {
        tls_slot = NULL; /* cleared on this very thread */
    }
    Py_TRASHCAN_BEGIN(op, BoxSlot_dealloc) /* H4: holds a box */
    (void)BoxSlot_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyType_Slot BoxSlot_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "Internal: a thread's slot of the ValueTask box pool.")},
    {Py_tp_traverse, BoxSlot_traverse},
    {Py_tp_clear, BoxSlot_clear},
    {Py_tp_dealloc, BoxSlot_dealloc},
    {0, NULL},
};

static PyType_Spec BoxSlot_spec = {
    .name = "sharptask._BoxSlot",
    .basicsize = sizeof(BoxSlotObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = BoxSlot_slots,
};

/* ---------------------------------------------------- module functions */

static PyObject *
mod_invoke_action(PyObject *mod, PyObject *state)
{
    return PyObject_CallNoArgs(state);
}

static PyMethodDef invoke_action_def = {
    "_invoke_action", mod_invoke_action, METH_O,
    PyDoc_STR("_invoke_action(action, /)\n--\n\n"
              "Internal: the continuation that calls its state, action()."),
};

static PyObject *
mod_pool_stats(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:i}", "rented",
                         (unsigned long long)g_pool_rented, "returned",
                         (unsigned long long)g_pool_returned, "created",
                         (unsigned long long)g_pool_created, "dropped",
                         (unsigned long long)g_pool_dropped, "pooled",
                         g_pool_in_slots + st->vt.cache_len);
}

static PyObject *
mod_set_strict(PyObject *mod, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    int old = g_vt_strict;
    if (on < 0) {
        return NULL;
    }
    g_vt_strict = on;
    return PyBool_FromLong(old);
}

static PyObject *
mod_get_strict(PyObject *mod, PyObject *unused)
{
    return PyBool_FromLong(g_vt_strict);
}

static PyMethodDef valuetask_module_methods[] = {
    {"pool_stats", mod_pool_stats, METH_NOARGS,
     PyDoc_STR("pool_stats()\n--\n\n"
               "Counters of the pooled ValueTask boxes, process-wide over\n"
               "every @async_value_method(pooling=True): rented, returned,\n"
               "created and dropped (counts since start) and pooled (boxes\n"
               "in the pool now).")},
    {"set_strict_value_task", mod_set_strict, METH_O,
     PyDoc_STR("set_strict_value_task(strict, /)\n--\n\n"
               "True (the default): a ValueTask consumed twice raises\n"
               "InvalidOperationError.  False: .NET's unchecked behaviour.\n"
               "Returns the previous setting.")},
    {"get_strict_value_task", mod_get_strict, METH_NOARGS,
     PyDoc_STR("get_strict_value_task()\n--\n\n"
               "Whether ValueTasks are one-shot-checked (V2).")},
    {NULL, NULL, 0, NULL},
};

/* -------------------------------------------------- module integration */

static int
add_vt_type(PyObject *mod, PyType_Spec *spec, PyTypeObject **out, int add)
{
    *out = (PyTypeObject *)PyType_FromModuleAndSpec(mod, spec, NULL);
    if (*out == NULL) {
        return -1;
    }
    return add ? PyModule_AddType(mod, *out) : 0;
}

static PyObject *
import_enum(const char *name)
{
    PyObject *m = PyImport_ImportModule("sharptask._enums"), *r;
    if (m == NULL) {
        return NULL;
    }
    r = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return r;
}

int
valuetask_module_exec(PyObject *mod, st_state *st)
{
    st_vt_state *vs = &st->vt;
    PyObject *e;
    int i, ncpu;

    if (add_vt_type(mod, &ValueTask_spec, &vs->ValueTask_type, 1) < 0
        || add_vt_type(mod, &VTAwaiter_spec, &vs->VTAwaiter_type, 1) < 0
        || add_vt_type(mod, &VTConfigured_spec, &vs->VTConfigured_type, 1)
               < 0
        || add_vt_type(mod, &MRVTSC_spec, &vs->MRVTSC_type, 1) < 0
        || add_vt_type(mod, &AsyncValueMethod_spec,
                       &vs->AsyncValueMethod_type, 1) < 0
        || add_vt_type(mod, &BoxSlot_spec, &vs->BoxSlot_type, 0) < 0
        || PyModule_AddFunctions(mod, valuetask_module_methods) < 0) {
        return -1;
    }
    e = import_enum("ValueTaskSourceStatus");
    if (e == NULL) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        vs->status_members[i] = PyObject_CallFunction(e, "i", i);
        if (vs->status_members[i] == NULL) {
            Py_DECREF(e);
            return -1;
        }
    }
    Py_DECREF(e);
    e = import_enum("ValueTaskSourceOnCompletedFlags");
    if (e == NULL) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        vs->flags_members[i] = PyObject_CallFunction(e, "i", i);
        if (vs->flags_members[i] == NULL) {
            Py_DECREF(e);
            return -1;
        }
    }
    Py_DECREF(e);
#define VT_INTERN(field, text)                                              \
    if ((vs->field = PyUnicode_InternFromString(text)) == NULL) {           \
        return -1;                                                          \
    }
    VT_INTERN(str_get_status, "get_status");
    VT_INTERN(str_get_result, "get_result");
    VT_INTERN(str_configure_await, "configure_await");
    VT_INTERN(str_slot_key, "sharptask.valuetask_box_slot");
#undef VT_INTERN
    vs->invoke_action = PyCFunction_NewEx(&invoke_action_def, NULL, NULL);
    if (vs->invoke_action == NULL) {
        return -1;
    }
    ncpu = st_cpu_count();
    vs->cache_cap = ncpu * 2 < 4 ? 4 : ncpu * 2;
    if (vs->cache_cap > ST_VT_CACHE_MAX) {
        vs->cache_cap = ST_VT_CACHE_MAX;
    }
    vs->cache_len = 0;
    g_vt_freelist_type = vs->ValueTask_type;
    /* ValueTask.completed_task: reusable (the default(ValueTask) of .NET
     * is a fresh copy at every read) */
    vs->completed = vt_new_result(st, Py_None);
    if (vs->completed == NULL) {
        return -1;
    }
    ValueTaskObject_CAST(vs->completed)->vt_flags |= VTF_PRESERVED;
    if (PyDict_SetItemString(vs->ValueTask_type->tp_dict, "completed_task",
                             vs->completed) < 0) {
        return -1;
    }
    PyType_Modified(vs->ValueTask_type);
    return 0;
}

int
valuetask_module_traverse(st_state *st, visitproc visit, void *arg)
{
    st_vt_state *vs = &st->vt;
    int i;
    Py_VISIT(vs->ValueTask_type);
    Py_VISIT(vs->VTAwaiter_type);
    Py_VISIT(vs->VTConfigured_type);
    Py_VISIT(vs->MRVTSC_type);
    Py_VISIT(vs->AsyncValueMethod_type);
    Py_VISIT(vs->BoxSlot_type);
    for (i = 0; i < 4; i++) {
        Py_VISIT(vs->status_members[i]);
        Py_VISIT(vs->flags_members[i]);
    }
    Py_VISIT(vs->completed);
    Py_VISIT(vs->invoke_action);
    Py_VISIT(vs->impl);
    for (i = 0; i < vs->cache_len; i++) {
        Py_VISIT(vs->cache[i]);
    }
    return 0;
}

void
valuetask_module_clear(st_state *st)
{
    st_vt_state *vs = &st->vt;
    int i;
    while (vs->cache_len > 0) {
        vs->cache_len--;
        Py_CLEAR(vs->cache[vs->cache_len]);
    }
    Py_CLEAR(vs->completed);
    g_vt_freelist_type = NULL; /* later deallocs free their memory */
    while (g_vt_nfree > 0) {
        PyObject_GC_Del(g_vt_free[--g_vt_nfree]);
    }
    Py_CLEAR(vs->ValueTask_type);
    Py_CLEAR(vs->VTAwaiter_type);
    Py_CLEAR(vs->VTConfigured_type);
    Py_CLEAR(vs->MRVTSC_type);
    Py_CLEAR(vs->AsyncValueMethod_type);
    Py_CLEAR(vs->BoxSlot_type);
    for (i = 0; i < 4; i++) {
        Py_CLEAR(vs->status_members[i]);
        Py_CLEAR(vs->flags_members[i]);
    }
    Py_CLEAR(vs->invoke_action);
    Py_CLEAR(vs->impl);
    Py_CLEAR(vs->str_get_status);
    Py_CLEAR(vs->str_get_result);
    Py_CLEAR(vs->str_configure_await);
    Py_CLEAR(vs->str_slot_key);
}
