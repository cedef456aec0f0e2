/* py_cancel_reg.h - what py_cancel_reg.c (registrations, watches and
 * tokens) exports: to the files above cancellation, and to py_cancel.c.
 */
#ifndef ST_PY_CANCEL_REG_H
#define ST_PY_CANCEL_REG_H

#include "binding.h"
#include "py_cancel_types.h"
#include "py_task.h" /* task_node_kind */

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
/* Task.run/start_new (R1.7, R5.1): t's native token (task_token(t)), if
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

/* For module.c: the kind of a registration's watch node on a task
 * (task_register_node_kind).  Static data.  Refs: none. */
extern const task_node_kind cancel_node_kind;

/* ---- for py_cancel.c (above it in the cancellation layer) ---- */

/* The CancellationTokenRegistration type (module.c-style registration in
 * cancel_module_exec; static data, Refs: none). */
extern PyType_Spec Reg_spec;

/* A new, empty registration (no source, no callback).  Refs: new. */
RegObject *reg_alloc(st_state *st);
/* Runs r's callback or action (the canceller took r off the list); -1
 * with the callback's exception set.  Refs: borrows r. */
int reg_invoke(st_state *st, RegObject *r);
/* Takes r off its source's list if it is still there: 1 if it was (the
 * list's reference dropped), else 0.  Refs: borrows r. */
int reg_unregister(RegObject *r);
/* Drops every registration of a chain taken off a source (try_reset,
 * dispose).  Refs: drops the list's reference to each. */
void release_chain(st_cancel_reg_t *chain);
/* token.register / unsafe_register (flow: capture the context).  Refs:
 * new (the registration); borrows tok and the arguments. */
PyObject *token_register_impl(st_state *st, TokenObject *tok,
                              PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames, int flow,
                              const char *fname);
/* The core node fn of a registration (run by the canceller) and the watch
 * node fn (run when the watched task completes).  Refs: reg_node_fn
 * drops the list's reference to the registration; reg_done_fn defers the
 * drops of the watch's references to this thread's deferred list. */
void reg_node_fn(st_cancel_reg_t *node);
void reg_done_fn(st_cont_t *c, st_task_t *task, int how);
/* A CancellationToken of source (NULL: CancellationToken.none).  Refs:
 * new; borrows source. */
PyObject *token_new(st_state *st, CTSObject *source);
/* __enter__ of a source or a registration: returns op.  Refs: new (op);
 * borrows op. */
PyObject *cts_enter(PyObject *op, PyObject *unused);

#endif /* ST_PY_CANCEL_REG_H */
