/* py_builder.h - what py_builder.c exports: the async-method builder
 * (starting, resuming and scheduling a box), the await protocol every
 * awaitable shares (await_yield, the `throw` method), the thread's
 * SynchronizationContext and where a continuation runs (capture, inline
 * check, post), the Action callable and its queue node, and the types
 * py_builder.c defines.  The builder layer of docs/architecture.md, "The
 * binding's layers": the files above it include this header; the ones
 * below (task, deadlock detection) reach the builder only through the
 * hooks module.c hands them (py_task.h's task_hooks).  Every declaration
 * says what it does with references (binding.h's top comment: new,
 * borrowed, borrows, steals, none).
 */
#ifndef ST_PY_BUILDER_H
#define ST_PY_BUILDER_H

#include "binding.h"

/* Continuation fns the GC needs to recognise (Task_traverse).  Refs:
 * consumes the reference to the box (c's TaskObject) that its
 * registration held, by resuming or scheduling it. */
void box_on_complete(st_cont_t *c, st_task_t *core, int how);

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
/* The `throw` entry of every awaiter's and awaitable's method table
 * (Task, its awaiters, ValueTask and its awaiters, Task.yield_()): the
 * generator protocol, by which asyncio cancels an await (I2). */
#define ST_AWAIT_THROW_METHODDEF                                            \
    {"throw", (PyCFunction)(void (*)(void))await_throw_method,              \
     METH_FASTCALL,                                                         \
     PyDoc_STR("throw($self, typ, val=None, tb=None, /)\n--\n\n"            \
               "Raise typ (an exception, or a class called with val) at\n"  \
               "the await: the generator protocol, by which asyncio\n"      \
               "cancels an await; answers asyncio's \"bad yield\" with an\n" \
               "asyncio future (I2).")}
/* Schedules a box's resumption asynchronously (post to its captured
 * context, or queue on the pool).  Refs: steals one reference to box
 * (the queue or the post keeps it; on failure the box is faulted and
 * the reference dropped). */
void box_schedule(TaskObject *box);
/* How box_schedule posts a box to a SingleThreadSynchronizationContext's
 * own queue: py_context.c's stcontext_post_box, which module.c hands over
 * at exec (the contexts sit above the builder).  Refs: as
 * stcontext_post_box (steals box on success; borrows ctx). */
typedef int (*builder_post_box_fn)(struct st_state *st, PyObject *ctx,
                                   TaskObject *box);
/* Sets it (module exec, before any box exists).  Refs: none. */
void builder_set_post_box(builder_post_box_fn fn);

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

/* py_builder.c's types, for module.c (static data; Refs: none).
 * AsyncMethod_spec is py_method.c's (py_method.h). */
extern PyType_Spec YieldAwaitable_spec;
extern PyType_Spec SyncContext_spec;
extern PyType_Spec Action_spec;

#endif /* ST_PY_BUILDER_H */
