/* py_task.h - what py_task.c exports: making, completing and reading
 * tasks, running delegates, the per-thread pending exception.  (The
 * helpers it shares only with the files split from it are in
 * py_task_impl.h.)
 */
#ifndef ST_PY_TASK_H
#define ST_PY_TASK_H

#include "binding.h"

/* Task makers: a pending promise with async_state `state` (NULL: None); a
 * completed one with `value`; from_result (a cached task for None, bools,
 * -1..8, T12); faulted with the exception tuple `excs`; canceled with the
 * stored OperationCanceledError `oce` and `token` (both may be NULL).
 * Refs: new; borrows every argument (the task takes its own). */
PyObject *task_new_promise(st_state *st, PyObject *state,
                           uint32_t options);
PyObject *task_new_completed(st_state *st, PyObject *value);
PyObject *task_from_result(st_state *st, PyObject *value);
PyObject *task_new_faulted(st_state *st, PyObject *excs);
PyObject *task_new_canceled(st_state *st, PyObject *oce, PyObject *token);
/* Completes t (any thread holding the GIL).  Returns 1 if this call
 * completed it, 0 if it was already completed.  status RAN: value is the
 * result; FAULTED: value is a non-empty tuple of exceptions; CANCELED:
 * value is the stored OperationCanceledError or NULL.  May run
 * continuations inline.  Refs: borrows t, value and token (the task takes
 * its own references to value and token). */
int task_try_complete(TaskObject *t, int status, PyObject *value,
                      PyObject *token);
/* Completes t from a raised exception (the current error indicator):
 * OperationCanceledError -> canceled (if `oce_cancels`), other Exception ->
 * faulted.  A BaseException that is not an Exception (KeyboardInterrupt,
 * SystemExit) faults the task with a RuntimeError and stays raised:
 * returns -1 then, else 0 with the error cleared.  Refs: borrows t; the
 * raised exception is consumed (stored in t) or left raised. */
int task_complete_from_error(TaskObject *t, int oce_cancels);
/* Copies src's final state into dst (src completed).  Refs: borrows both
 * (dst takes its own references to src's result and token). */
int task_complete_from(TaskObject *dst, TaskObject *src);
/* Raises what `await t` raises for a completed, unsuccessful t (marks it
 * observed) and returns NULL; for a successful one returns the result.
 * Refs: new (the result); borrows t. */
PyObject *task_get_result(st_state *st, TaskObject *t);
/* Queues t->task_work on the pool (t has a DOMAIN work fn set).  Refs:
 * borrows t, and on success takes one more reference to it that the work
 * fn drops (a custom TaskScheduler's queue_task takes its own instead).
 * -1 with an error set if the pool is shut down (no reference kept). */
int task_queue_work(st_state *st, TaskObject *t, st_work_fn fn);
/* Runs a delegate/continuation task's code now (GIL held).  Refs: borrows
 * t (the caller keeps it alive for the call). */
void task_execute(TaskObject *t);

/* A coroutine, generator or other object the builder can drive.  Refs:
 * borrows obj. */
int is_coroutine_like(PyObject *obj);

/* The custom TaskScheduler whose task runs on this thread, or NULL (the
 * default, the pool).  Refs: borrowed from the running task's
 * task_scheduler (a thread-local that owns nothing): valid while that
 * task's code runs on this thread; Py_NewRef it to keep it longer. */
PyObject *current_scheduler(void);

/* x.__await__() called explicitly (a METH_COEXIST method beside the
 * am_await slot, which `await` uses): a generator over x's steps, for
 * `yield from` (_impl.await_iter).  Refs: new; borrows op. */
PyObject *await_method_iter(PyObject *op, PyObject *unused);

/* Per-thread: a BaseException (KeyboardInterrupt) that escaped a
 * continuation run inline; re-raised by the completing call.  Refs: save
 * moves the raised exception into a thread-local that owns it (dropped
 * if one is already saved); restore moves it back to the error indicator
 * (returns -1 then, 0 if none was saved). */
void pending_exc_save(void);
int pending_exc_restore(void);

/* TaskCanceledError(task=t, cancellation_token=...) (py_task.c).  Refs:
 * new; borrows t. */
PyObject *make_task_canceled(st_state *st, TaskObject *t);

/* ---- for the builder (issue 10: it sits below the awaiters and the
 * factories) ---- */
/* A delegate task running fn() queued to scheduler.queue_task.  Refs:
 * new; borrows fn and scheduler (the task takes its own). */
PyObject *task_new_on_scheduler(st_state *st, PyObject *fn,
                                PyObject *scheduler);
/* If op is a TaskAwaiter or ConfiguredTaskAwaitable: its task and options
 * (ConfigureAwaitOptions bits), and 1; else 0.  Refs: *task is borrowed
 * from op (valid while op is alive); borrows op. */
int awaiter_unpack(st_state *st, PyObject *op, TaskObject **task,
                   int *options);
/* ConfigureAwaitOptions bits of an awaiter (Refs: none). */
#define CAO_CONTINUE 0x1
#define CAO_SUPPRESS 0x2
#define CAO_FORCE 0x4

/* ---- what the files above give the task layer (issue 10) ----
 * py_task.c calls nothing above itself.  What it needs from the builder,
 * the contexts, cancellation and the waits reaches it through the hooks
 * below, which module.c sets once at module exec, before any task
 * exists; each has the contract of the function named beside it. */

/* A continuation node kind of a file above, for the GC and for a task
 * destroyed while pending.  owner: the object the node's registration
 * holds one reference to (visited; dropped on abandon), or NULL for a
 * node of another kind; when the kind has no owner fn, visit visits
 * what the node holds and abandon releases the node without running it.
 * Refs: owner returns a borrowed reference; visit borrows; abandon
 * consumes the node and what it holds. */
typedef struct task_node_kind {
    st_cont_fn fn;
    PyObject *(*owner)(st_cont_t *c);
    int (*visit)(st_cont_t *c, visitproc visit, void *arg);
    void (*abandon)(st_cont_t *c);
} task_node_kind;
/* Adds a node kind (at most TASK_NODE_KINDS_MAX); 0, or -1 with an
 * error.  kind must stay valid (static data).  Refs: none. */
#define TASK_NODE_KINDS_MAX 8
int task_register_node_kind(const task_node_kind *kind);
/* The owner fn of a node that is a TaskObject's task_cont (a box's or an
 * unwrap proxy's registration holds the task).  Refs: borrowed. */
PyObject *task_cont_owner(st_cont_t *c);

/* The calls the task layer makes upward, as pointers.  Refs: as the
 * function each member names (await_yield steals its argument;
 * builder_start steals coro; the others borrow or take none). */
typedef struct task_hooks {
    /* py_builder.c: await_yield, builder_start */
    PyObject *(*await_yield)(st_state *st, PyObject *waiting);
    PyObject *(*builder_start)(st_state *st, PyObject *coro,
                               TaskObject *box);
    /* py_context.c: thread_running_push/pop */
    void (*thread_running_push)(TaskObject *t);
    void (*thread_running_pop)(TaskObject *t);
    /* py_cancel_reg.c: cancel_token_requested, cancel_error_is_own_token,
     * cancel_release_deferred */
    int (*cancel_token_requested)(st_state *st, PyObject *token);
    int (*cancel_error_is_own_token)(st_state *st, TaskObject *t);
    void (*cancel_release_deferred)(void);
    /* py_combinators.c: task_wait_blocking */
    int (*wait_blocking)(st_state *st, TaskObject *t, uint64_t timeout_ns);
} task_hooks;
/* Sets the hooks (copied; every member must be set).  Refs: none. */
void task_set_hooks(const task_hooks *hooks);

/* Task's methods: py_task.c's own and, appended, the parts given
 * (NULL-terminated PyMethodDef tables of the files above: awaiters,
 * combinators, factories), composed before the Task type is made.  0,
 * or -1 with an error (more than TASK_METHODS_MAX in all).  The parts
 * must stay valid (static data).  Refs: none. */
#define TASK_METHODS_MAX 40
int task_compose_methods(PyMethodDef *const *parts, size_t nparts);

/* The Task type and the module functions of py_task.c, for module.c
 * (static data; Refs: none). */
extern PyType_Spec Task_spec;
extern PyMethodDef task_module_methods[];

#endif /* ST_PY_TASK_H */
