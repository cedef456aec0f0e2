/* py_task_impl.h - what py_task.c shares only with the files split from
 * it (py_awaiter.c, py_tcs.c, py_combinators.c, py_factories.c): the
 * option bits, the current-scheduler thread-local and the small helpers
 * on the hot paths (allocation, status), static inline here so that no
 * caller pays a call across files.
 */
#ifndef ST_PY_TASK_IMPL_H
#define ST_PY_TASK_IMPL_H

#include "binding.h"
#include "py_task.h"
#include "py_trace.h"

#include "st_thread.h" /* ST_THREAD_LOCAL */

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

/* The custom scheduler whose task runs on this thread (borrowed from the
 * running task, which owns it), or NULL for the default (C7, R10.2); set
 * and restored by task_execute. */
extern ST_THREAD_LOCAL PyObject *tls_current_scheduler;

/* A new Task of the given kind, status and TaskCreationOptions, every
 * field cleared, GC-tracked.  Refs: new. */
static inline TaskObject *
task_alloc(st_state *st, int kind, int status, uint32_t options)
{
    TaskObject *t = PyObject_GC_New(TaskObject, st->Task_type);
    if (t == NULL) {
        return NULL;
    }
    st_task_init(&t->task_core, status,
                 (options & TCO_RCA) ? ST_TASK_RUN_CONT_ASYNC : 0);
    t->task_kind = (uint8_t)kind;
    t->task_flags = 0;
    t->task_cwopts = 0;
    t->task_options = options;
    t->task_fr = NULL;
    t->task_arg = NULL;
    t->task_context = NULL;
    t->task_weakreflist = NULL;
    t->task_tgt = NULL; /* no side block: task_flags has no TF_HAS_X */
    t->task_cont.next = NULL;
    t->task_cont.fn = NULL;
    t->task_cont.kind = ST_CONT_ACTION; /* the node is either (binding.h) */
    PyObject_GC_Track(t);
    TRACE_TASK_CREATED(t); /* D2 */
    return t;
}

/* The task's .NET status; TF_OBSERVED set.  Refs: borrow t. */
static inline int
task_status(TaskObject *t)
{
    return st_task_status(&t->task_core);
}

static inline void
mark_observed(TaskObject *t)
{
    t->task_flags |= TF_OBSERVED;
}

/* Builds the exception tuple for an exception instance.  Refs: new;
 * borrows exc. */
static inline PyObject *
one_exception(PyObject *exc)
{
    return PyTuple_Pack(1, exc);
}

/* 1 with InvalidOperationError set if a completed t's outcome was cleared
 * by the GC, else 0.  Refs: borrows t. */
static inline int
outcome_gone(st_state *st, TaskObject *t)
{
    int s = task_status(t);
    if (task_result(t) == NULL
        && (s == ST_STATUS_RAN_TO_COMPLETION || s == ST_STATUS_FAULTED)) {
        PyErr_SetString(st->InvalidOperationError,
                        "the task's outcome was cleared by the garbage "
                        "collector");
        return 1;
    }
    return 0;
}

/* Raises StopIteration(value) and returns NULL (an iterator's return).
 * Refs: steals value. */
static inline PyObject *
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

/* tp_iternext from the type's am_send (the await protocol's two faces:
 * Task, its awaiter, ValueTask and its awaiter): what send yielded, or
 * StopIteration(result) when it returned, or NULL with its error.
 * Refs: new (what was yielded); borrows op. */
static inline PyObject *
iternext_via_send(PyObject *op,
                  PySendResult (*send)(PyObject *, PyObject *, PyObject **))
{
    PyObject *res;
    switch (send(op, Py_None, &res)) {
    case PYGEN_NEXT:
        return res;
    case PYGEN_RETURN:
        return return_via_stop_iteration(res);
    default:
        return NULL;
    }
}

/* Continuation node fns: an ST_RUN_ASYNC run is deferred to the pool
 * (defer_cont: 0 if queued, -1 to run it inline now); a continue_with
 * task runs or is queued (continuation_on_complete); a proxy copies its
 * source's outcome (proxy_on_complete).  Refs: the fns drop the
 * registration's reference to the node's owner; defer_cont borrows c
 * (its registration's reference travels with it) and the queued work
 * holds its own reference to the antecedent. */
int defer_cont(st_cont_t *c, st_task_t *core);
void continuation_on_complete(st_cont_t *c, st_task_t *core, int how);
void proxy_on_complete(st_cont_t *c, st_task_t *core, int how);
/* The pool work fn of a delegate or continuation task.  Refs: drops the
 * reference task_queue_work took. */
void task_work_run(st_work_t *w);

/* 1 if sched is the default scheduler (None or TaskScheduler.default),
 * else 0; scheduler_check: 0, or -1 with TypeError if sched is no
 * TaskScheduler.  Refs: none (borrow sched). */
int scheduler_is_default(st_state *st, PyObject *sched);
int scheduler_check(st_state *st, PyObject *sched);

/* A TaskAwaiter / ConfiguredTaskAwaitable (py_awaiter.c makes them;
 * awaiter_unpack, in py_task.c, reads them for the builder). */
typedef struct AwaiterObject {
    PyObject_HEAD
    TaskObject *aw_task;
    uint8_t aw_options; /* CAO_* */
    uint8_t aw_yielded; /* FORCE_YIELDING: suspended once already */
} AwaiterObject;

#define AwaiterObject_CAST(op) ((AwaiterObject *)(op))

#endif /* ST_PY_TASK_IMPL_H */
