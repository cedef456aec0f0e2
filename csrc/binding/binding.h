/* binding.h - what the files of the CPython binding share: the module
 * state, the Task object layout, and the helpers that cross files.
 *
 * This is the only directory that includes Python.h.  Every Python object
 * lives in module state; the one static pointer (g_st) exists because the
 * pool and the core call back with no module at hand, and the module
 * refuses a second load per process (STYLE.md point 22).
 */
#ifndef ST_BINDING_H
#define ST_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h> /* the CPython C API */

#include "st_atomic.h" /* shutting_down is read without the GIL */
#include "st_pool.h"  /* the thread pool */
#include "st_task.h"  /* task state word and continuations */
#include "st_timer.h" /* the timer thread */

#if PY_VERSION_HEX >= 0x030D0000
#define ST_IS_FINALIZING() Py_IsFinalizing()
#else
#define ST_IS_FINALIZING() _Py_IsFinalizing()
#endif

/* ------------------------------------------------------- module state */

#define ST_N_CACHED 13 /* None, False, True, -1..8 */

typedef struct st_state {
    /* types */
    PyTypeObject *Task_type;
    PyTypeObject *TaskAwaiter_type;
    PyTypeObject *ConfiguredAwaitable_type;
    PyTypeObject *YieldAwaitable_type;
    PyTypeObject *TCS_type;
    PyTypeObject *AsyncMethod_type;
    PyTypeObject *SyncContext_type;
    PyTypeObject *Action_type;
    PyTypeObject *STContext_type; /* SingleThreadSynchronizationContext */
    /* exceptions and enums, from sharptask._errors / _enums */
    PyObject *AggregateError;
    PyObject *OperationCanceledError;
    PyObject *TaskCanceledError;
    PyObject *InvalidOperationError;
    PyObject *DeadlockError;
    PyObject *TaskStatus;
    PyObject *status_members[8]; /* TaskStatus(0..7) */
    PyObject *TaskCreationOptions;
    /* cached completed tasks (T12) */
    PyObject *cached[ST_N_CACHED];
    PyObject *yield_awaitable; /* the Task.yield_() singleton */
    /* hooks set by the Python package */
    PyObject *unobserved_hook; /* fn(task, aggregate) -> observed bool */
    PyObject *impl;            /* sharptask._impl, imported lazily */
    /* interned strings */
    PyObject *str_post;
    PyObject *str_on_completed;
    PyObject *str_unsafe_on_completed;
    PyObject *str_cancellation_token;
    PyObject *str_throw;
    PyObject *str_tstate_key;
    /* native machinery, created lazily */
    st_pool_t *pool;
    st_timer_t *timer;
    PyInterpreterState *interp;
    /* set by the atexit hook; read by waits and by workers (no GIL) */
    ST_ATOMIC(int) shutting_down;
    long pid;          /* of the process that created pool and timer */
    uint32_t next_task_id;
} st_state;

extern st_state *g_st;
extern PyModuleDef st_module;

static inline st_state *
get_st_state(PyObject *mod)
{
    return (st_state *)PyModule_GetState(mod);
}

/* ---------------------------------------------------------- the task */

/* What a task is, which decides what its fn/arg fields hold. */
enum {
    TASK_PROMISE = 0,      /* TCS, from_*, delay, combinators, proxies */
    TASK_DELEGATE = 1,     /* Task.run / start_new: fn(*arg) */
    TASK_CONTINUATION = 2, /* continue_with: fn(arg[, state]) */
    TASK_BOX = 3           /* async method: fn is the coroutine */
};

/* task_flags bits */
#define TF_OBSERVED 0x1    /* the exception was observed (T11) */
#define TF_CONT_STATE 0x2  /* continuation called as fn(ante, state) */
#define TF_RUNNING_BOX 0x4 /* a box whose coroutine is on a thread now */
#define TF_RESUME_PENDING 0x10 /* resumed while running: step again */
#define TF_NO_UNWRAP 0x8   /* start_new: a returned Task is the result */

typedef struct TaskObject {
    PyObject_HEAD
    st_task_t task_core;   /* state word + continuation list */
    uint32_t task_id;      /* 0 until first read */
    uint8_t task_kind;     /* TASK_* */
    uint8_t task_flags;    /* TF_* */
    uint16_t task_cwopts;  /* continuation: TaskContinuationOptions>>16 */
    uint32_t task_options; /* creation options */
    /* RAN_TO_COMPLETION: the value; FAULTED: a tuple of exceptions;
     * CANCELED: the stored OperationCanceledError, or NULL. */
    PyObject *task_result;
    PyObject *task_token;   /* cancellation token, or NULL */
    PyObject *task_state;   /* async_state */
    PyObject *task_fn;      /* delegate callable; box: the coroutine */
    PyObject *task_arg;     /* delegate args; continuation: antecedent;
                               box: what it awaits now */
    PyObject *task_context; /* contextvars.Context the code runs in */
    PyObject *task_target;  /* box: context/scheduler it resumes on */
    PyObject *task_weakreflist;
    PyObject *task_scheduler; /* custom TaskScheduler, or NULL (pool) */
    PyObject *task_tb; /* faulted/canceled: the raised exception's original
                          traceback, restored at each rethrow (D3a) */
    struct TaskObject *task_box_prev; /* pending boxes list (dump_async) */
    struct TaskObject *task_box_next;
    st_cont_t task_cont;    /* node registered on what it waits for */
    st_work_t task_work;    /* node queued on the pool */
} TaskObject;

#define TaskObject_CAST(op) ((TaskObject *)(op))
#define Task_Check(st, op) PyObject_TypeCheck((op), (st)->Task_type)

/* py_task.c */
PyObject *task_new_promise(st_state *st, PyObject *state,
                           uint32_t options);
PyObject *task_new_completed(st_state *st, PyObject *value);
PyObject *task_from_result(st_state *st, PyObject *value);
PyObject *task_new_faulted(st_state *st, PyObject *excs);
PyObject *task_new_canceled(st_state *st, PyObject *oce, PyObject *token);
/* Completes t (any thread holding the GIL).  Returns 1 if this call
 * completed it, 0 if it was already completed.  status RAN: value is the
 * result; FAULTED: value is a non-empty tuple of exceptions; CANCELED:
 * value is the stored OperationCanceledError or NULL. */
int task_try_complete(TaskObject *t, int status, PyObject *value,
                      PyObject *token);
/* Completes t from a raised exception (the current error indicator):
 * OperationCanceledError -> canceled (if `oce_cancels`), other Exception ->
 * faulted.  A BaseException that is not an Exception (KeyboardInterrupt,
 * SystemExit) faults the task with a RuntimeError and stays raised:
 * returns -1 then, else 0 with the error cleared. */
int task_complete_from_error(TaskObject *t, int oce_cancels);
/* Copies src's final state into dst (src completed). */
int task_complete_from(TaskObject *dst, TaskObject *src);
/* Blocks until t completes or timeout_ns passes (UINT64_MAX: no limit),
 * with the GIL released, in slices that answer Ctrl-C.  1 completed, 0
 * timed out, -1 error set. */
int task_wait_blocking(st_state *st, TaskObject *t, uint64_t timeout_ns);
/* Raises what `await t` raises for a completed, unsuccessful t (marks it
 * observed) and returns NULL; for a successful one returns the result. */
PyObject *task_get_result(st_state *st, TaskObject *t);
/* Queues t->task_work on the pool (t has a DOMAIN work fn set).  Takes a
 * reference to t that the work fn drops.  -1 with an error set if the pool
 * is shut down. */
int task_queue_work(st_state *st, TaskObject *t, st_work_fn fn);
/* Runs a delegate/continuation task's code now (GIL held). */
void task_execute(TaskObject *t);

/* If op is a TaskAwaiter or ConfiguredTaskAwaitable: its task (borrowed)
 * and options (ConfigureAwaitOptions bits), and 1; else 0. */
int awaiter_unpack(st_state *st, PyObject *op, TaskObject **task,
                   int *options);
#define CAO_CONTINUE 0x1
#define CAO_SUPPRESS 0x2
#define CAO_FORCE 0x4
/* A coroutine, generator or other object the builder can drive. */
int is_coroutine_like(PyObject *obj);

/* The custom TaskScheduler whose task runs on this thread (borrowed), or
 * NULL (the default, the pool). */
PyObject *current_scheduler(void);
/* A delegate task running fn() queued to scheduler.queue_task. */
PyObject *task_new_on_scheduler(st_state *st, PyObject *fn,
                                PyObject *scheduler);

/* Continuation fns the GC needs to recognise (Task_traverse). */
void box_on_complete(st_cont_t *c, st_task_t *core, int how);

/* py_builder.c */
/* Starts an async method: runs coro's synchronous part on this thread
 * and returns its task.  If box is not NULL, that task becomes the box
 * (Task.run of an async def).  Steals coro. */
PyObject *builder_start(st_state *st, PyObject *coro, TaskObject *box);
/* Like builder_start for a ValueTask method (V5): a body that finishes
 * synchronously makes no task: returns 1 with *value (new ref).  Else
 * returns 0 with *task (new ref): the box, or a completed task for a
 * body that raised.  -1 with an error (a BaseException to the caller).
 * rent_box, if not NULL, supplies the box at the first suspension (the
 * pooling builder); it returns a new reference to a TaskObject ready for
 * use as a fresh promise (WAITING_FOR_ACTIVATION, no fields set).
 * Steals coro. */
int builder_start_value(st_state *st, PyObject *coro,
                        TaskObject *(*rent_box)(void *), void *arg,
                        PyObject **value, PyObject **task);
/* Resumes a suspended box (GIL held; drops the registration ref). */
void box_resume(TaskObject *box);
/* Schedules a box's resumption asynchronously (post to its captured
 * context, or queue on the pool).  Consumes one reference to box. */
void box_schedule(TaskObject *box);
/* The SynchronizationContext current on this thread (borrowed), or NULL;
 * the base class counts as a context here. */
PyObject *sync_context_current(void);
int sync_context_set(st_state *st, PyObject *ctx);
/* 1 if the calling thread may run an await continuation inline that was
 * captured with `target` (NULL: none) (R3.4). */
int can_inline_here(st_state *st, PyObject *target);
/* The context to capture at an await (new ref) or NULL (R7.2). */
PyObject *capture_target(st_state *st);
/* Posts a callable to a captured target (context); consumes nothing. */
int post_to_target(st_state *st, PyObject *target, PyObject *callable);
/* An Action: a callable that runs fn(*args) (args NULL: fn()) inside a
 * contextvars context (NULL: the caller's), ignoring its own arguments. */
PyObject *action_new(st_state *st, PyObject *fn, PyObject *args,
                     PyObject *context);
/* Schedules an action asynchronously: post to target if any, else queue
 * it on the pool.  -1 with an error set on failure. */
int schedule_action(st_state *st, PyObject *target, PyObject *action);
/* An action's work node, for a context's own queue: running it calls the
 * action and leaves its exception set.  Steals the reference to action;
 * action_queue_node_drop releases a node that will never run. */
st_work_t *action_queue_node(PyObject *action);
void action_queue_node_drop(st_work_t *w);

/* Per-thread: a BaseException (KeyboardInterrupt) that escaped a
 * continuation run inline; re-raised by the completing call. */
void pending_exc_save(void);
int pending_exc_restore(void);

/* py_context.c: single-threaded contexts, thread records, deadlock
 * detection (C6), the pending-box registry (D1), schedulers (C7) */
extern PyType_Spec STContext_spec;
extern PyMethodDef context_methods[];
/* Box registry: link a box that suspends, unlink one that completes. */
void box_registry_add(TaskObject *box);
void box_registry_remove(TaskObject *box);
/* Posts a box's resumption to a SingleThreadSynchronizationContext
 * without allocating; consumes one reference to box.  0 or -1. */
int stcontext_post_box(st_state *st, PyObject *ctx, TaskObject *box);
/* Deadlock detection around a blocking wait (C6).  before: returns -1
 * with DeadlockError set if blocking on t would never end (mode raise);
 * marks the thread blocked.  after: unmarks it. */
int deadlock_before_wait(st_state *st, TaskObject *t, st_waiter_t *w,
                         int infinite);
void deadlock_after_wait(st_state *st);
/* 1 if this thread's wait was found deadlocked by another thread's
 * re-check (then -1 with the error set in raise mode, 0 in warn mode). */
int deadlock_check_woken(st_state *st, TaskObject *t);
/* Something changed the wait-for graph (a box suspended, a post): if a
 * context's owner is blocked, re-check it.  Cheap when none is. */
void deadlock_graph_changed(st_state *st);
/* The thread runs task t's code now (delegate, continuation, box step). */
void thread_running_push(TaskObject *t);
void thread_running_pop(TaskObject *t);

/* py_pool.c */
PyObject *delay_start(st_state *st, uint64_t ns);
st_pool_t *get_pool(st_state *st);
st_timer_t *get_timer(st_state *st);
int pool_submit(st_state *st, st_work_t *w);
void pool_shutdown_all(st_state *st);
int parse_timeout(PyObject *obj, const char *name, uint64_t *out_ns,
                  int *infinite);

/* module.c */
PyObject *call_impl(st_state *st, const char *name, PyObject *const *args,
                    size_t nargsf, PyObject *kwnames);
PyObject *make_aggregate(st_state *st, PyObject *excs);
PyObject *make_task_canceled(st_state *st, TaskObject *t);
int st_raise_from_code(st_state *st, int rc);

/* type specs and per-file initialisation */
extern PyType_Spec Task_spec;
extern PyType_Spec TaskAwaiter_spec;
extern PyType_Spec ConfiguredAwaitable_spec;
extern PyType_Spec YieldAwaitable_spec;
extern PyType_Spec TCS_spec;
extern PyType_Spec AsyncMethod_spec;
extern PyType_Spec SyncContext_spec;
extern PyType_Spec Action_spec;
extern PyMethodDef pool_methods[];
extern PyMethodDef task_module_methods[];

#endif /* ST_BINDING_H */
