/* binding.h - what the files of the CPython binding share: the module
 * state and the Task object layout (the bottom of the binding's layers,
 * docs/architecture.md).  What each file exports is in its own header
 * (py_state.h, py_errors.h, py_args.h, py_task.h, py_builder.h,
 * py_method.h, py_vt.h ...); here stay only the state struct (with
 * ValueTask's part, st_vt_state, which it holds inline), the Task layout
 * with its accessors and flag bits, and the few static inline helpers
 * that read only those and that files of several layers use (st_exc_save,
 * get_st_state, is_sync_context).
 *
 * This is the only directory that includes Python.h.  Every Python object
 * lives in module state; the one static pointer (g_st) exists because the
 * pool and the core call back with no module at hand, and the module
 * refuses a second load per process (STYLE.md point 22).
 *
 * References (docs/architecture.md, "Ownership across the binding"):
 * every function declared here or in a file's header says, in a "Refs:"
 * note, what it does with object references.
 *   new        the result is a new (strong) reference: the caller owns
 *              it; NULL (or -1) with an error set on failure.
 *   borrowed   the result is a pointer the caller does not own, valid
 *              for as long as the note says; Py_NewRef it to keep it.
 *   borrows    the arguments stay the caller's: the callee takes its own
 *              reference to whatever it keeps.
 *   steals X   the callee takes over the caller's reference to X, on
 *              success and on failure alike, unless the note says "on
 *              success only".
 *   none       no object reference is taken, kept or returned.
 * Module-state fields and TaskObject fields hold strong references
 * unless their comment says otherwise.  A C thread-local never owns
 * what it points at unless its comment says so (the thread-local rule).
 */
#ifndef ST_BINDING_H
#define ST_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h> /* the CPython C API */

#include "st_compat.h" /* 3.11-3.13: the newest public names everywhere */
#include "st_atomic.h" /* shutting_down is read without the GIL */
#include "st_pool.h"  /* the thread pool */
#include "st_task.h"  /* task state word and continuations */
#include "st_timer.h" /* the timer thread */

/* Old spelling, kept only so that branches written before st_compat.h
 * still build when merged: new code calls Py_IsFinalizing(). */
#define ST_IS_FINALIZING() Py_IsFinalizing()

/* Saving the error indicator around cleanup code that calls Python on an
 * error path (no Python call may run with an exception set: issue 9 item
 * 20).  st_exc_save() takes the current exception, if any, and clears
 * the indicator: a new reference, or NULL when none is set.
 * st_exc_restore(exc) sets it again (steals exc; NULL: does nothing).
 * Refs: as PyErr_GetRaisedException / PyErr_SetRaisedException. */
static inline PyObject *
st_exc_save(void)
{
    return PyErr_GetRaisedException(); /* st_compat.h on 3.11 */
}

static inline void
st_exc_restore(PyObject *exc)
{
    if (exc != NULL) {
        PyErr_SetRaisedException(exc);
    }
}

/* ------------------------------------------------------- module state */

#define ST_N_CACHED 13 /* None, False, True, -1..8 */

/* ---- ValueTask, sources, pooling builder (py_valuetask.c, issue 5) ---- */
struct st_state;
#define ST_VT_CACHE_MAX 64 /* shared cache of pooled boxes, at most */
/* task_flags bit: a box of the pooling ValueTask builder, whose version
 * (the ValueTask token) is kept in task_cwopts.  py_valuetask.c resets
 * such a box field by field when it goes back to the pool: a field added
 * to TaskObject must be reset there too (box_return). */
#define TF_POOLED 0x80
typedef struct st_vt_state {
    PyTypeObject *ValueTask_type;
    PyTypeObject *VTAwaiter_type;         /* ValueTaskAwaiter */
    PyTypeObject *VTConfigured_type;      /* ConfiguredValueTaskAwaitable */
    PyTypeObject *MRVTSC_type;            /* ManualResetValueTaskSourceCore */
    PyTypeObject *AsyncValueMethod_type;
    PyTypeObject *BoxSlot_type;           /* a thread's pool slot */
    PyObject *status_members[4];          /* ValueTaskSourceStatus(0..3) */
    PyObject *flags_members[4];           /* ...OnCompletedFlags(0..3) */
    PyObject *completed;                  /* ValueTask.completed_task */
    PyObject *invoke_action;              /* continuation: state() */
    PyObject *impl;                       /* sharptask._valuetask, lazily */
    PyObject *str_get_status;
    PyObject *str_get_result;
    PyObject *str_configure_await;
    PyObject *str_slot_key;               /* thread-state dict key */
    PyObject *cache[ST_VT_CACHE_MAX];     /* pooled boxes (shared) */
    int cache_len;
    int cache_cap;
} st_vt_state;
/* (the struct only, which st_state holds inline: py_valuetask.c's module
 * exec / traverse / clear are declared in py_vt.h) */
/* ---- end of ValueTask ---- */

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
    /* native machinery, created lazily.  pool: written once per process
     * (and forgotten in a forked child) under py_pool.c's creation lock;
     * read with pool_peek() by threads without the GIL (timer fires) */
    ST_ATOMIC(st_pool_t *) pool;
    st_timer_t *timer;
    PyInterpreterState *interp;
    /* set by the atexit hook; read by waits and by workers (no GIL) */
    ST_ATOMIC(int) shutting_down;
    long pid;          /* of the process that created pool and timer */
    uint32_t next_task_id;
    /* ---- cancellation (py_cancel.c, issue 6): K1, K2 ---- */
    PyTypeObject *CTS_type;          /* CancellationTokenSource */
    PyTypeObject *Token_type;        /* CancellationToken */
    PyTypeObject *Registration_type; /* CancellationTokenRegistration */
    PyObject *ObjectDisposedError;
    PyObject *token_none;         /* CancellationToken.none */
    PyObject *canceled_source;    /* behind every CancellationToken(True) */
    PyObject *empty_registration; /* the registration of nothing */
    PyTypeObject *Semaphore_type;  /* SemaphoreSlim (py_semaphore.c): K4 */
    PyTypeObject *SemWaiter_type;  /* its waiters */
    PyObject *SemaphoreFullError;
    /* ---- end of cancellation ---- */
    /* ---- thread pool and timers (py_pool.c, py_timer.c, issue 3) ---- */
    unsigned long pool_fork_epoch; /* g_fork_epoch when pool/timer made */
    int pool_tuned;                /* pool_tuning set before creation */
    st_pool_tuning_t pool_tuning;  /* applied when the pool is made */
    uint64_t pool_shutdown_grace_ns; /* atexit waits this long for items */
    int lifecycle_hooks_taken; /* _take_lifecycle_hooks ran (py_pool.c) */
    PyTypeObject *TimerHandle_type; /* _native._TimerHandle (py_timer.c) */
    PyObject *timers_module;        /* sharptask._timers, imported lazily */
    /* ---- end of thread pool and timers ---- */
    st_vt_state vt; /* ValueTask (py_valuetask.c, issue 5) */
} st_state;

/* The one module state (see the top; defined in py_state.c); set by
 * module exec, never freed while a native thread may still call back. */
extern st_state *g_st;

/* Refs: borrowed pointer into mod (the state lives as long as mod). */
static inline st_state *
get_st_state(PyObject *mod)
{
    return (st_state *)PyModule_GetState(mod);
}

/* A SynchronizationContext (any subclass) rather than a TaskScheduler:
 * how a captured target is told apart.  Here, not in py_builder.h (which
 * defines the type), because py_deadlock.c, below the builder, needs it
 * too; it reads only the state.  Refs: borrows obj. */
static inline int
is_sync_context(st_state *st, PyObject *obj)
{
    return obj != NULL && PyObject_TypeCheck(obj, st->SyncContext_type);
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
#define TF_HAS_X 0x20      /* task_xb is the side block (which holds the
                              target); else task_tgt is the target */

/* The fields few tasks use (issue 10 W9): a cancellation token, an
 * async_state, a custom scheduler, the original traceback of a faulted
 * or canceled task.  A task has none of them until one is stored; the
 * block is then allocated (PyMem) and kept until the task is freed, and
 * its fields are strong references that Task_traverse visits and
 * Task_clear drops like the task's own.  Read them with task_token(),
 * task_async_state(), task_scheduler(), task_tb(); store with
 * task_x_put().  The block takes the place of the target in the task
 * (TF_HAS_X), and the target moves into it: a pending async method
 * resuming on a context has a target and usually no block, a Task.run
 * delegate with a token a block and no target. */
typedef struct task_extra {
    PyObject *x_target;    /* the target when the task has a block */
    PyObject *x_token;     /* cancellation token, or NULL */
    PyObject *x_state;     /* async_state, or NULL (None) */
    PyObject *x_scheduler; /* custom TaskScheduler, or NULL (pool) */
    PyObject *x_tb; /* faulted/canceled: the raised exception's original
                       traceback, restored at each rethrow (D3a) */
} task_extra;

/* The Task layout (docs/architecture.md, "The task"): 104 bytes on
 * 64-bit platforms, 120 with the GC header.  A pending async-method call
 * uses every field (task_fr holding its coroutine) and no side block;
 * dump_async finds the pending boxes through the GC (py_deadlock.c),
 * with no list through them.  The Task id is the core's trace id
 * (st_task_trace_id: 0 until first read, task_id()). */
typedef struct TaskObject {
    PyObject_HEAD
    st_task_t task_core;   /* state word, Task id, continuation list */
    uint8_t task_kind;     /* TASK_* */
    uint8_t task_flags;    /* TF_* */
    uint16_t task_cwopts;  /* continuation: TaskContinuationOptions>>16 */
    uint32_t task_options; /* creation options */
    /* One slot for what a task holds before and after it completes
     * (try_complete moves the first out before it stores the second),
     * read through task_fn() and task_result():
     * pending: the delegate callable, continuation fn or box coroutine
     * (task_fn(); NULL once completed);
     * completed: the outcome (task_result(); NULL while pending):
     * RAN_TO_COMPLETION: the value; FAULTED: a tuple of exceptions;
     * CANCELED: the stored OperationCanceledError, or NULL. */
    PyObject *task_fr;
    PyObject *task_arg;     /* delegate args; continuation: antecedent;
                               box: what it awaits now */
    PyObject *task_context; /* contextvars.Context the code runs in */
    PyObject *task_weakreflist;
    /* Read through task_target() and task_x(), written through
     * task_set_target() and task_x_put(). */
    union {
        PyObject *task_tgt; /* !TF_HAS_X: the target (box: the context
                               or scheduler it resumes on), or NULL */
        task_extra *task_xb; /* TF_HAS_X: the side block (owned), whose
                                x_target is the target */
    };
    /* The task's one intrusive node, used as one of two at a time: a
     * node registered on what it waits for (a box's await, a
     * continuation's antecedent, a proxy's source), or a node queued on
     * the pool or a context's queue (a delegate, a continuation or a box
     * to run).  Never both: a node is queued only from the completion
     * callback that has taken it off its task (st_task.h: the node then
     * belongs to the callback), or for a task that registered none
     * (Task.run, start); and a box registers again only from its own
     * step, after the queue's run function was called (the pool and
     * the context's queue never touch an item after its run).  Whoever
     * queues sets run and flags, whoever registers sets fn and kind. */
    union {
        st_cont_t task_cont; /* node registered on what it waits for */
        st_work_t task_work; /* node queued on the pool */
    };
} TaskObject;

/* The task's outcome once it completed (see task_fr), else NULL; its
 * delegate, continuation fn or coroutine while it is pending, else NULL.
 * GIL held (the status is read with acquire).  Refs: borrowed. */
static inline PyObject *
task_result(TaskObject *t)
{
    return st_task_is_completed(&t->task_core) ? t->task_fr : NULL;
}

static inline PyObject *
task_fn(TaskObject *t)
{
    return st_task_is_completed(&t->task_core) ? NULL : t->task_fr;
}

/* Sets the fn of a pending task (NULL clears), dropping the old one.
 * Refs: steals v. */
static inline void
task_set_fn(TaskObject *t, PyObject *v)
{
    PyObject *old = t->task_fr;
    t->task_fr = v;
    Py_XDECREF(old);
}

/* The task's side block, or NULL.  Refs: borrowed (the task owns it). */
static inline task_extra *
task_x(TaskObject *t)
{
    return (t->task_flags & TF_HAS_X) ? t->task_xb : NULL;
}

/* The task's rare fields (NULL when not set).  Refs: borrowed (the task
 * owns them). */
static inline PyObject *
task_token(TaskObject *t)
{
    return (t->task_flags & TF_HAS_X) ? t->task_xb->x_token : NULL;
}

static inline PyObject *
task_async_state(TaskObject *t)
{
    return (t->task_flags & TF_HAS_X) ? t->task_xb->x_state : NULL;
}

static inline PyObject *
task_scheduler(TaskObject *t)
{
    return (t->task_flags & TF_HAS_X) ? t->task_xb->x_scheduler : NULL;
}

static inline PyObject *
task_tb(TaskObject *t)
{
    return (t->task_flags & TF_HAS_X) ? t->task_xb->x_tb : NULL;
}

/* The target: the context or scheduler a box resumes on (a promise's:
 * the context whose callback completes it, for the deadlock walk), or
 * NULL.  Refs: borrowed (the task owns it). */
static inline PyObject *
task_target(TaskObject *t)
{
    return (t->task_flags & TF_HAS_X) ? t->task_xb->x_target : t->task_tgt;
}

/* Where t's target lives: its own slot, or the side block's.  Refs:
 * none (a pointer into t). */
static inline PyObject **
task_target_slot(TaskObject *t)
{
    return (t->task_flags & TF_HAS_X) ? &t->task_xb->x_target : &t->task_tgt;
}

/* Sets the target (NULL: none), dropping the old one (which may run
 * code, as Py_XSETREF does).  Never fails.  Refs: steals v. */
static inline void
task_set_target(TaskObject *t, PyObject *v)
{
    PyObject **slot = task_target_slot(t);
    PyObject *old = *slot;
    *slot = v;
    Py_XDECREF(old);
}

/* Takes the target out of t, leaving NULL: no code runs (the caller
 * drops the reference when code may run).  Refs: new (the task's). */
static inline PyObject *
task_take_target(TaskObject *t)
{
    PyObject **slot = task_target_slot(t);
    PyObject *old = *slot;
    *slot = NULL;
    return old;
}

/* The task's side block, allocated (zeroed, the target moved into it)
 * if it has none: NULL with MemoryError set on failure.  Refs: borrowed
 * (the task owns it). */
static inline task_extra *
task_x_ensure(TaskObject *t)
{
    if (!(t->task_flags & TF_HAS_X)) {
        task_extra *x = (task_extra *)PyMem_Calloc(1, sizeof(task_extra));
        if (x == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        x->x_target = t->task_tgt; /* moved: the reference goes along */
        t->task_xb = x;
        t->task_flags |= TF_HAS_X;
    }
    return t->task_xb;
}

/* Stores v in the rare field `field` of t (x_token, x_state,
 * x_scheduler, x_tb; the target: task_set_target), dropping the old
 * value (which may run code, as Py_XSETREF does; NULL before a task's
 * first store).  NULL clears.  0, or -1 with MemoryError set when the
 * side block could not be allocated (v is dropped).  Refs: steals v. */
#define task_x_put(t, field, v) \
    task_x_put_at((t), offsetof(task_extra, field), (v))

static inline int
task_x_put_at(TaskObject *t, size_t offset, PyObject *v)
{
    PyObject **slot, *old;
    if (!(t->task_flags & TF_HAS_X)) {
        if (v == NULL) {
            return 0;
        }
        if (task_x_ensure(t) == NULL) {
            Py_DECREF(v);
            return -1;
        }
    }
    slot = (PyObject **)((char *)t->task_xb + offset);
    old = *slot;
    *slot = v;
    Py_XDECREF(old);
    return 0;
}

/* The Task id (Task.id), the core's trace id: 0 until trace_task_id
 * gives one.  Refs: none. */
static inline uint32_t
task_id(TaskObject *t)
{
    return st_task_trace_id(&t->task_core);
}

#define TaskObject_CAST(op) ((TaskObject *)(op))
#define Task_Check(st, op) PyObject_TypeCheck((op), (st)->Task_type)


/* The rest of what the files export is declared in each file's own
 * header (py_state.h, py_errors.h, py_args.h, py_task.h, py_builder.h,
 * py_method.h, py_vt.h ...): see docs/architecture.md, "The binding's
 * layers". */

#endif /* ST_BINDING_H */
