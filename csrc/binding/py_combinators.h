/* py_combinators.h - what py_combinators.c exports: the Task methods and
 * module functions that combine or wait on tasks (bound in py_task.c's
 * method tables), and the node fns and when_core that py_task.c's
 * abandon_conts / cont_owner recognise on a dying task.
 */
#ifndef ST_PY_COMBINATORS_H
#define ST_PY_COMBINATORS_H

#include "binding.h"
#include "py_task.h" /* task_node_kind */

/* One when_all / when_any: a node per input task, all sharing the core,
 * which is a small GC-tracked object: every node registered on an input
 * (or queued to run) holds one reference to it, and the call that made it
 * one more until its registrations are done; the last reference frees it
 * with its own references to the promise and the tasks.  So the garbage
 * collector sees exactly who holds what (issue 9, H3: a deadlocked
 * when_all's inputs, promise and tuple were otherwise never freed): a
 * node on a pending input visits the core, the core visits the promise
 * and the tuple. */
typedef struct when_core when_core;

typedef struct when_node {
    st_cont_t cont;
    when_core *core; /* strong while the node is registered or queued */
    Py_ssize_t index;
} when_node;

struct when_core {
    PyObject_VAR_HEAD    /* ob_size: the number of nodes */
    TaskObject *promise; /* strong */
    PyObject *tasks;     /* tuple, strong */
    Py_ssize_t remaining; /* when_all: inputs not yet completed */
    when_node nodes[1];
};

/* The when_all / when_any node fns.  Refs: each drops its node's
 * reference to the core. */
void when_all_node_fn(st_cont_t *c, st_task_t *core_task, int how);
void when_any_node_fn(st_cont_t *c, st_task_t *core_task, int how);
/* For a when_all / when_any node c on a pending task's list: visits its
 * core.  Refs: none (visits the node's reference). */
int when_node_traverse(st_cont_t *c, visitproc visit, void *arg);
/* A when_all / when_any node left on a task that can never complete (its
 * task is being destroyed or cleared).  Refs: drops the node's reference
 * to the core (the last one frees it). */
void when_node_abandon(st_cont_t *c);
/* The node fn of an unwrap proxy waiting for its outer task.  Refs: drops
 * the registration's reference to the proxy (c's owner). */
void unwrap_outer_done(st_cont_t *c, st_task_t *core, int how);

/* Task methods (Task_methods in py_task.c): continue_with, unwrap,
 * wait_async, and the static when_all / when_any / wait_all / wait_any.
 * Refs: new (the Task, list or index returned); borrow op and their
 * arguments. */
PyObject *task_continue_with(PyObject *op, PyObject *args, PyObject *kwds);
PyObject *task_unwrap(PyObject *op, PyObject *unused);
PyObject *task_wait_async(PyObject *op, PyObject *args, PyObject *kwds);
PyObject *task_when_all(PyObject *unused, PyObject *const *args,
                        Py_ssize_t nargs);
PyObject *task_when_any(PyObject *unused, PyObject *const *args,
                        Py_ssize_t nargs);
PyObject *task_wait_all(PyObject *unused, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames);
PyObject *task_wait_any(PyObject *unused, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames);

/* Module functions (task_module_methods in py_task.c): _wait_any,
 * _wait_quiet, _wait_async_timeout.  Refs: new; borrow their arguments. */
PyObject *mod_wait_any(PyObject *mod, PyObject *args);
PyObject *mod_wait_quiet(PyObject *mod, PyObject *args);
PyObject *mod_wait_async_timeout(PyObject *mod, PyObject *args);

/* Blocks until t completes or timeout_ns passes (UINT64_MAX: no limit),
 * with the GIL released, in slices that answer Ctrl-C.  1 completed, 0
 * timed out, -1 error set.  Refs: borrows t (the caller keeps it alive
 * for the call). */
int task_wait_blocking(st_state *st, TaskObject *t, uint64_t timeout_ns);

/* For module.c: the node kinds of this file (task_register_node_kind),
 * Task's methods that belong here (task_compose_methods) and the module
 * functions of the waits.  Static data.  Refs: none. */
extern const task_node_kind when_all_node_kind;
extern const task_node_kind when_any_node_kind;
extern const task_node_kind unwrap_node_kind;
extern PyMethodDef combinators_task_methods[];
extern PyMethodDef combinators_module_methods[];

#endif /* ST_PY_COMBINATORS_H */
