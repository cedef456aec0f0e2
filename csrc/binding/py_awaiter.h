/* py_awaiter.h - what py_awaiter.c exports: the awaiter type specs, the
 * Task methods that make awaiters, and the callback node that
 * on_completed registers (py_task.c's traverse and abandon_conts
 * recognise it on a task).  awaiter_unpack is py_task.c's (py_task.h).
 */
#ifndef ST_PY_AWAITER_H
#define ST_PY_AWAITER_H

#include "binding.h"
#include "py_task.h" /* task_node_kind */

/* A callback continuation registered by on_completed. */
typedef struct cb_node {
    st_cont_t cont;
    PyObject *action; /* an Action: runs the user's action in context */
    PyObject *target; /* captured context, or NULL */
} cb_node;

static inline void
cb_node_free(cb_node *n)
{
    Py_DECREF(n->action);
    Py_XDECREF(n->target);
    PyMem_Free(n);
}

/* The fn of a cb_node.  Refs: consumes the node (its action and target
 * references) once it has run. */
void cb_node_fire(st_cont_t *c, st_task_t *core, int how);

/* Task.get_awaiter and Task.configure_await (Task_methods in py_task.c).
 * Refs: new (the awaiter); borrow op and arg. */
PyObject *task_get_awaiter(PyObject *op, PyObject *unused);
PyObject *task_configure_await(PyObject *op, PyObject *arg);


/* The awaiter types, for module.c (static data; Refs: none). */
extern PyType_Spec TaskAwaiter_spec;
extern PyType_Spec ConfiguredAwaitable_spec;

/* For module.c: the node kind of a cb_node (task_register_node_kind)
 * and Task's methods that belong here (task_compose_methods).  Static
 * data.  Refs: none. */
extern const task_node_kind awaiter_node_kind;
extern PyMethodDef awaiter_task_methods[];

/* ST_AWAIT_THROW_METHODDEF: in py_builder.h, beside await_throw_method. */

/* The lifecycle of an awaiter that holds one object right after its
 * header (TaskAwaiter and ConfiguredTaskAwaitable: the task; py_vt_awaiter.c's
 * two: the ValueTask, checked there): GC traverse and clear, and a
 * trashcan dealloc (H4).  Refs: clear and dealloc drop that reference. */
int Awaiter_traverse(PyObject *op, visitproc visit, void *arg);
int Awaiter_clear(PyObject *op);
void Awaiter_dealloc(PyObject *op);

#endif /* ST_PY_AWAITER_H */
