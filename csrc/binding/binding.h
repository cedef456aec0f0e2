/* binding.h - what the files of the CPython binding share: the module
 * state, the Task object layout, and the helpers that cross files.
 *
 * This is the only directory that includes Python.h.  Every Python object
 * lives in module state; the one static pointer (g_st) exists because the
 * pool and the core call back with no module at hand, and the module
 * refuses a second load per process (STYLE.md point 22).
 *
 * References (docs/architecture.md, "Ownership across the binding"):
 * every function declared here says, in a "Refs:" note, what it does with
 * object references.
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
/* Per-file parts of module exec / traverse / clear.  Refs: borrows mod;
 * exec stores strong references in st, clear drops them. */
int valuetask_module_exec(PyObject *mod, struct st_state *st);
int valuetask_module_traverse(struct st_state *st, visitproc visit,
                              void *arg);
void valuetask_module_clear(struct st_state *st);
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

/* The one module state (see the top); set by module exec, never freed
 * while a native thread may still call back. */
extern st_state *g_st;
extern PyModuleDef st_module;

/* Refs: borrowed pointer into mod (the state lives as long as mod). */
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


/* Continuation fns the GC needs to recognise (Task_traverse).  Refs:
 * consumes the reference to the box (c's TaskObject) that its
 * registration held, by resuming or scheduling it. */
void box_on_complete(st_cont_t *c, st_task_t *core, int how);

/* py_builder.c */
/* Starts an async method: runs coro's synchronous part on this thread
 * and returns its task.  If box is not NULL, that task becomes the box
 * (Task.run of an async def).  Refs: new (the task); steals coro; borrows
 * box. */
PyObject *builder_start(st_state *st, PyObject *coro, TaskObject *box);
/* Like builder_start for a ValueTask method (V5): a body that finishes
 * synchronously makes no task: returns 1 with *value (new ref).  Else
 * returns 0 with *task (new ref): the box, or a completed task for a
 * body that raised.  -1 with an error (a BaseException to the caller).
 * rent_box, if not NULL, supplies the box at the first suspension (the
 * pooling builder); it returns a new reference to a TaskObject ready for
 * use as a fresh promise (WAITING_FOR_ACTIVATION, no fields set).
 * Refs: *value and *task are new (both NULL on -1); steals coro. */
int builder_start_value(st_state *st, PyObject *coro,
                        TaskObject *(*rent_box)(void *), void *arg,
                        PyObject **value, PyObject **task);
/* Resumes a suspended box (GIL held).  Refs: steals one reference to box
 * (the registration's). */
void box_resume(TaskObject *box);
/* What an awaiter's am_send yields when its coroutine must wait for
 * `waiting` (the awaiter's own object: a pending Task, a configured
 * awaiter, a ValueTask's awaiter, Task.yield_()'s awaitable): `waiting`
 * itself while the builder sends into a coroutine on this thread, else
 * what a foreign driver understands (I2): an asyncio future completed on
 * its loop when an asyncio loop runs here (_impl.asyncio_wait), or
 * `waiting` again when none does.  Refs: new (NULL with an error); steals
 * waiting. */
PyObject *await_yield(st_state *st, PyObject *waiting);
/* The `throw` method of the awaitable types (the generator protocol a
 * coroutine uses on what it awaits): raises the exception at the await,
 * except asyncio's "Task got bad yield" for an awaiter that an asyncio
 * loop run inside a builder step drives (await_yield could not tell):
 * then it returns the asyncio future to yield instead (_impl.await_throw).
 * Refs: new (what to yield; NULL with the exception set); borrows all. */
PyObject *await_throw_method(PyObject *op, PyObject *const *args,
                             Py_ssize_t nargs);
/* Schedules a box's resumption asynchronously (post to its captured
 * context, or queue on the pool).  Refs: steals one reference to box
 * (the queue or the post keeps it; on failure the box is faulted and
 * the reference dropped). */
void box_schedule(TaskObject *box);
/* A SynchronizationContext (any subclass) rather than a TaskScheduler:
 * how a captured target is told apart.  Refs: borrows obj. */
static inline int
is_sync_context(st_state *st, PyObject *obj)
{
    return obj != NULL && PyObject_TypeCheck(obj, st->SyncContext_type);
}

/* The SynchronizationContext current on this thread (borrowed: the
 * thread's cache owns it until the next sync_context_set here), or NULL;
 * the base class counts as a context here.  Refs: borrowed. */
PyObject *sync_context_current(void);
/* Makes ctx (NULL or None: none) current on this thread.  0 or -1.
 * Refs: borrows ctx (the thread state dict takes its own). */
int sync_context_set(st_state *st, PyObject *ctx);
/* 1 if the calling thread may run an await continuation inline that was
 * captured with `target` (NULL: none) (R3.4).  Refs: borrows target. */
int can_inline_here(st_state *st, PyObject *target);
/* The context to capture at an await or NULL (R7.2), no error set.
 * Refs: new (NULL is not an error). */
PyObject *capture_target(st_state *st);
/* Posts a callable to a captured target (context): target.post(callable,
 * None).  0 or -1.  Refs: borrows both. */
int post_to_target(st_state *st, PyObject *target, PyObject *callable);
/* An Action: a callable that runs fn(*args) (args NULL: fn()) inside a
 * contextvars context (NULL: the caller's), ignoring its own arguments.
 * Refs: new; borrows fn, args and context (the action takes its own). */
PyObject *action_new(st_state *st, PyObject *fn, PyObject *args,
                     PyObject *context);
/* Schedules an action asynchronously: post to target if any, else queue
 * it on the pool.  -1 with an error set on failure.  Refs: borrows both
 * (the queue or the scheduler's task takes its own reference). */
int schedule_action(st_state *st, PyObject *target, PyObject *action);
/* An action's work node, for a context's own queue: running it calls the
 * action and leaves its exception set.  Refs: steals the reference to
 * action (the node carries it); action_queue_node_drop releases a node
 * that will never run (drops that reference). */
st_work_t *action_queue_node(PyObject *action);
void action_queue_node_drop(st_work_t *w);
/* The action a node of action_queue_node carries, for a garbage
 * collector's traversal of the queue.  Refs: borrowed. */
PyObject *action_queue_node_object(st_work_t *w);


/* py_context.c: single-threaded contexts, thread records, deadlock
 * detection (C6), the pending-box registry (D1), schedulers (C7) */
extern PyType_Spec STContext_spec;
extern PyMethodDef context_methods[];
/* Box registry: link a box that suspends, unlink one that completes.
 * Refs: none: the list links borrowed pointers (a box is unlinked when
 * it completes and when it is deallocated). */
void box_registry_add(TaskObject *box);
void box_registry_remove(TaskObject *box);
/* Posts a box's resumption to a SingleThreadSynchronizationContext
 * without allocating.  0 or -1 (closed; error set).  Refs: steals one
 * reference to box on success only (the queue owns it); on -1 it stays
 * the caller's.  Borrows ctx. */
int stcontext_post_box(st_state *st, PyObject *ctx, TaskObject *box);
/* Deadlock detection around a blocking wait (C6).  before: returns -1
 * with DeadlockError set if blocking on t would never end (mode raise);
 * marks the thread blocked.  after: unmarks it.  Refs: none: the thread
 * record points at t and w (borrowed) only between before and after,
 * while the waiting caller keeps both alive. */
int deadlock_before_wait(st_state *st, TaskObject *t, st_waiter_t *w,
                         int infinite);
void deadlock_after_wait(st_state *st);
/* 1 if this thread's wait was found deadlocked by another thread's
 * re-check (then -1 with the error set in raise mode, 0 in warn mode).
 * Refs: borrows t. */
int deadlock_check_woken(st_state *st, TaskObject *t);
/* Something changed the wait-for graph (a box suspended, a post): if a
 * context's owner is blocked, re-check it.  Cheap when none is.  Refs:
 * none. */
void deadlock_graph_changed(st_state *st);
/* The thread runs task t's code now (delegate, continuation, box step).
 * Refs: none: the thread record points at t (borrowed) from push to the
 * matching pop, while the caller keeps t alive. */
void thread_running_push(TaskObject *t);
void thread_running_pop(TaskObject *t);
/* Reports exc, an exception instance that nobody can catch, about obj
 * (may be NULL), through sys.unraisablehook with a real
 * UnraisableHookArgs (PyErr_WriteUnraisable); with CPython's default hook
 * it prints the default hook's layout itself, but the whole exception as
 * the traceback module formats it (groups' inner exceptions, chains).
 * Refs: borrows both.  GIL held; keeps a pending exception; never
 * fails. */
void report_unraisable(PyObject *exc, PyObject *obj);
/* Exit (H5): an exception raised because the interpreter is exiting (a
 * wait abandoned, the pool or timer shut down) carries a flag, and
 * nothing reports it: the program is ending, not failing.
 * raise_exiting: sets an InvalidOperationError(msg) with the flag,
 * returns -1.  is_exiting_error: 1 if exc (borrowed) has the flag, or is
 * a group of such exceptions; never sets an error.
 * write_unraisable: PyErr_WriteUnraisable(obj) for the pending error
 * (which it clears) unless it is an exiting one.  Refs: none taken or
 * given; all borrow their arguments. */
int raise_exiting(st_state *st, const char *msg);
int is_exiting_error(PyObject *exc);
void write_unraisable(PyObject *obj);
/* At shutdown: 1 if a wait or pump on this thread should give up with
 * raise_exiting (a pool worker, the exiting thread, any non-daemon
 * thread), 0 if it should go on quietly (a daemon thread: CPython stops
 * it at finalization).  GIL held; never sets an error.  Refs: none. */
int exit_should_abandon(void);

/* py_pool.c */
/* Task.delay(ns) without a token: a promise the timer completes.  Refs:
 * new. */
PyObject *delay_start(st_state *st, uint64_t ns);
/* Like delay_start, and *node gets a claim on the delay's timer node that
 * the caller gives back with delay_release (GIL held for both); with
 * disarm, a timer that has not fired yet is taken out at once (the task
 * then never completes).  So a timeout that lost its race holds no timer
 * and no task until its deadline (issue 9 item 10).  Refs: new (the
 * task); *node is a native claim, not a reference, that delay_release
 * gives back (Refs: none). */
struct delay_node;
PyObject *delay_start_owned(st_state *st, uint64_t ns,
                            struct delay_node **node);
void delay_release(struct delay_node *node, int disarm);
/* Task.delay(seconds, cancellation_token=token) (K3, R5.4): a canceled
 * token gives a canceled task; a native token that fires first disarms
 * the timer at once; other token objects go through sharptask._impl.
 * Refs: new; borrows seconds and token. */
PyObject *delay_start_token(st_state *st, PyObject *seconds, uint64_t ns,
                            int infinite, PyObject *token);
/* GIL held.  The pool, made at first use (once per process, whichever
 * thread comes first; the others wait for it with the GIL released), or
 * NULL with an error set.  Refs: none (a native structure owned by the
 * module state, never destroyed while the module lives). */
st_pool_t *get_pool(st_state *st);
/* Any thread, GIL or not (the timer thread's fire functions).  The pool
 * if it was made, else NULL; never makes one.  Refs: none (borrowed
 * native pointer). */
st_pool_t *pool_peek(st_state *st);
/* GIL held.  The timer thread, made on first use, or NULL with an error
 * set.  Refs: none (a native structure owned by the module state). */
st_timer_t *get_timer(st_state *st);
/* Queues the work node w.  0, or -1 with an error set.  Refs: none
 * itself: w is embedded in an object whose reference the caller took for
 * the queue beforehand and drops on -1 (the work fn drops it after). */
int pool_submit(st_state *st, st_work_t *w);
/* atexit and module clear: stops the timer and the pool.  Refs: none. */
void pool_shutdown_all(st_state *st);
/* ---- thread pool and timers (issue 3) ---- */
/* Queues w on the global queue even from a worker (QUWI without
 * prefer_local).  pool_submit itself queues on the calling worker's own
 * deque when called from a worker (tasks, continuations: .NET 7.2).
 * Refs: as pool_submit. */
int pool_submit_global(st_state *st, st_work_t *w);
/* Runs w once on a dedicated thread (TaskCreationOptions.LONG_RUNNING).
 * -1 with an error set.  Refs: as pool_submit. */
int pool_submit_dedicated(st_state *st, st_work_t *w);
/* task_queue_work on a dedicated thread (start_new with LONG_RUNNING on
 * the default scheduler, .NET 7.15).  Refs: borrows t, and on success
 * takes one more reference to it that the work fn drops. */
int task_queue_dedicated(st_state *st, TaskObject *t, st_work_fn fn);
/* For blocking waits: call with the GIL released, just before retaking
 * it; spins briefly while another thread holds it, so that retaking it
 * does not sleep in the kernel (BENCHMARKS.md rule 5).  Refs: none. */
void pool_wait_gil_free(void);
/* py_gil.c: the binding's own "GIL held" hint (no CPython internals):
 * note_taken right after the binding took the GIL in a hand-off (worker
 * attach, end of a blocking wait), note_released right after it gave it
 * up (worker detach, start of a blocking wait).  is_locked: 1 if held as
 * far as those notes tell, else 0; spin_until_free: a bounded busy-poll
 * while it is (GIL not held by the caller).  Refs: none. */
void gil_note_taken(void);
void gil_note_released(void);
int gil_is_locked(void);
void gil_spin_until_free(uint64_t ns);
/* py_timer.c: the one-shot timer handle under Timer, PeriodicTimer and
 * TimeProvider.system (P5), and the time_provider= forms of Task.delay
 * and wait_async (P6a), which go to sharptask._timers.  Refs: the
 * module parts as valuetask_module_*; timers_*: new (the result of the
 * Python function); borrow every argument. */
int timer_module_exec(PyObject *mod, st_state *st);
int timer_module_traverse(st_state *st, visitproc visit, void *arg);
void timer_module_clear(st_state *st);
PyObject *timers_delay(st_state *st, PyObject *seconds, PyObject *token,
                       PyObject *provider);
PyObject *timers_wait_async(st_state *st, PyObject *task, PyObject *timeout,
                            PyObject *token, PyObject *provider);
/* ---- end of thread pool and timers ---- */

/* ---- module.c: one parser per kind of argument (issue 9 item 27, H2).
 * Every entry point that takes one of these kinds, C or Python (through
 * _native._parse_timeout/_token/_options/_count), checks it here.  Each
 * returns 0, or -1 with TypeError (wrong type: bool counts as one) or
 * ValueError (wrong value) set, the message naming `name`. */
/* A time in seconds: int or float (not bool), a timedelta (anything with
 * total_seconds()), or None.  None, -1 and Timeout.InfiniteTimeSpan
 * (-1 ms) set *infinite; NaN, other negatives, and more than 4294967.294
 * s (.NET's limit; inf, huge ints) are ValueError.  *out_secs >= 0.
 * Refs: borrows obj (as every parser here). */
int parse_seconds(PyObject *obj, const char *name, double *out_secs,
                  int *infinite);
/* parse_seconds in nanoseconds.  Refs: borrows obj. */
int parse_timeout(PyObject *obj, const char *name, uint64_t *out_ns,
                  int *infinite);
/* A cancellation token: None (*out = NULL), a CancellationToken, or any
 * object with is_cancellation_requested, can_be_canceled and register()
 * (K3 accepts such token objects).  Refs: borrows obj; *out is
 * borrowed (obj itself, or NULL). */
int parse_token(st_state *st, PyObject *obj, const char *name,
                PyObject **out);
/* An options value (TaskCreationOptions, TaskContinuationOptions ...):
 * an int (an enum member; not bool, not None) whose bits are all in
 * `valid`; `what` names the enum in messages.  Out of range (negative,
 * above 32 bits) or unknown bits: ValueError.  Refs: borrows obj. */
int parse_options(PyObject *obj, const char *name, const char *what,
                  uint32_t valid, uint32_t *out);
/* A count: an int (not bool) in [lo, hi]; else ValueError.  Refs:
 * borrows obj. */
int parse_count(PyObject *obj, const char *name, Py_ssize_t lo,
                Py_ssize_t hi, Py_ssize_t *out);

/* ---- py_cancel.c: cancellation (issue 6; K1-K3) ---- */
/* An internal registration's action: runs once, on the canceling thread
 * with the GIL held, when the token fires.  0, or -1 with an error set
 * (it joins the exceptions cancel() raises).  Refs: target and token are
 * borrowed for the call. */
typedef int (*cancel_action_fn)(PyObject *target, PyObject *token,
                                void *carg);
/* Refs: as valuetask_module_*. */
int cancel_module_exec(PyObject *mod, st_state *st);
int cancel_module_traverse(st_state *st, visitproc visit, void *arg);
void cancel_module_clear(st_state *st);
/* 1 if obj is a native CancellationToken; 1 if it is one that can fire.
 * Refs: borrow their argument (as every predicate below). */
int cancel_is_token(st_state *st, PyObject *obj);
int cancel_token_can_fire(st_state *st, PyObject *token);
/* 1 if token (native, or any object with is_cancellation_requested) is
 * canceled; 0 if not, for None/NULL, and on an error (cleared).  Refs:
 * borrows token. */
int cancel_token_requested(st_state *st, PyObject *token);
/* The same for a token that is not None, but 1/0, or -1 with the error
 * an other token object's is_cancellation_requested raised.  Refs:
 * borrows token. */
int cancel_token_check(st_state *st, PyObject *token);
/* R1.6: 1 if the error set now is an OperationCanceledError carrying
 * t's own token and that token is canceled (the delegate acknowledged
 * the cancellation: the task ends canceled, not faulted).  The error
 * stays set.  Refs: borrows t. */
int cancel_error_is_own_token(st_state *st, TaskObject *t);
/* Registers fn(target, token, carg) on a native token.  Returns a new
 * reference to the registration, or to None when nothing was registered:
 * token is not native or cannot fire, its source was disposed, or it is
 * already canceled (then *already is 1 and the caller acts itself).
 * carg_release(carg), if given, runs when the registration no longer
 * needs carg (also at once when nothing was registered).  With watch, the
 * registration is dropped the moment that task completes, so a finished
 * operation leaves nothing on a long-lived source.  Refs: new (the
 * registration or None); borrows token, target and watch (the
 * registration takes its own reference to target). */
PyObject *cancel_register_action(st_state *st, PyObject *token,
                                 cancel_action_fn fn, PyObject *target,
                                 void *carg, void (*carg_release)(void *),
                                 TaskObject *watch, int *already);
/* Task.run/start_new (R1.7, R5.1): t's native token (t->task_token), if
 * it fires before t starts, cancels t at once.  0 or -1.  Refs: borrows
 * t (the registration takes its own reference). */
int cancel_watch_delegate(st_state *st, TaskObject *t);
/* continue_with (R3.10, not LAZY_CANCELLATION): ct's token, if it fires
 * before ct starts, takes ct off its antecedent and cancels it.  0/-1.
 * Refs: as cancel_watch_delegate. */
int cancel_watch_continuation(st_state *st, TaskObject *ct);
/* GC support for a task's continuation list: the registration object a
 * node belongs to (it holds one reference to it), or NULL.  Refs:
 * borrowed (valid while the node stays on the list). */
PyObject *cancel_cont_owner(st_cont_t *c);
/* Releases the watch registrations whose task completed on this thread
 * (their SIGNAL node only unlinks them: a SIGNAL node never runs Python
 * code, and dropping a registration may free its source and so run a
 * weakref callback).  GIL held; call right after st_task_finish, where
 * running Python code is safe.  May run Python code.  Refs: none. */
void cancel_release_deferred(void);
/* py_semaphore.c: SemaphoreSlim (K4); called by cancel_module_*.  Refs:
 * as valuetask_module_*. */
int semaphore_module_exec(PyObject *mod, st_state *st);
int semaphore_module_traverse(st_state *st, visitproc visit, void *arg);
void semaphore_module_clear(st_state *st);
/* ---- end of py_cancel.c ---- */

/* module.c */
/* sharptask._impl.<name>(*args) by vectorcall.  Refs: new (the result);
 * borrows args and kwnames. */
PyObject *call_impl(st_state *st, const char *name, PyObject *const *args,
                    size_t nargsf, PyObject *kwnames);
/* AggregateError(message, excs).  Refs: new; borrows excs. */
PyObject *make_aggregate(st_state *st, PyObject *excs);
/* Raises the Python error for a core ST_E* code (ST_EFULL:
 * SemaphoreFullError); returns -1.  Refs: none. */
int st_raise_from_code(st_state *st, int rc);

/* type specs and per-file initialisation (static data; Refs: none) */
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
