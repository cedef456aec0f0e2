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

/* The Task type and the module functions of py_task.c, for module.c
 * (static data; Refs: none). */
extern PyType_Spec Task_spec;
extern PyMethodDef task_module_methods[];

#endif /* ST_PY_TASK_H */
