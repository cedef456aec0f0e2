/* py_cancel.h - the layouts that py_cancel.c (sources and tokens) and
 * py_cancel_reg.c (registrations and watches) share, and what each
 * exports to the other.  What the files above cancellation call
 * (cancel_register_action, cancel_token_*, cancel_watch_*) is declared
 * in py_cancel_reg.h.
 */
#ifndef ST_PY_CANCEL_H
#define ST_PY_CANCEL_H

#include "binding.h"

#include "py_cancel_reg.h" /* cancel_action_fn */
#include "st_cancel.h"

#define DISPOSE_SLICE_NS 50000000u /* 50 ms: Ctrl-C latency bound (T6) */

/* ------------------------------------------------------------ structs */

typedef struct cts_timer cts_timer;

typedef struct CTSObject {
    PyObject_HEAD
    st_cancel_t cts_core;   /* state word + registrations */
    uint8_t cts_disposed;   /* dispose() was called (GIL) */
    uint8_t cts_shared;     /* the one source of CancellationToken(True) */
    uint8_t cts_async_queued; /* cancel_async queued notify_into (GIL) */
    cts_timer *cts_timer;   /* the armed CancelAfter timer, or NULL (GIL) */
    PyObject *cts_links;    /* linked: its registrations on its parents */
    PyObject *cts_provider; /* time_provider, or NULL */
    PyObject *cts_ptimer;   /* the provider's timer, or NULL */
    PyObject *cts_weakreflist;
} CTSObject;

typedef struct TokenObject {
    PyObject_HEAD
    CTSObject *tok_source; /* NULL: CancellationToken.none */
} TokenObject;

typedef struct RegObject {
    PyObject_HEAD
    st_cancel_reg_t reg_node; /* linked in reg_source's list */
    st_cont_t reg_done;       /* watch: a SIGNAL node on the watched task */
    CTSObject *reg_source;    /* NULL: the empty registration */
    PyObject *reg_callback;   /* Python callback; NULL once run or gone */
    PyObject *reg_state;      /* NULL: called without a state */
    PyObject *reg_context;    /* contextvars context, or NULL (unsafe) */
    cancel_action_fn reg_action; /* internal C action, or NULL */
    PyObject *reg_target;     /* the action's object */
    void *reg_carg;           /* the action's C data */
    void (*reg_carg_release)(void *carg); /* drops reg_carg, or NULL */
    /* watch: the watched task completed; the drops wait on this thread's
     * deferred list (reg_done_fn) */
    struct RegObject *reg_deferred_next;
    uint8_t reg_deferred_unlinked; /* also drop the list's reference */
} RegObject;

/* A CancelAfter arming: the timer entry, the work item that runs the
 * cancellation on the pool, and a strong reference to the source. */
struct cts_timer {
    st_timer_entry_t entry;
    st_work_t work;
    CTSObject *cts;     /* strong */
    st_timer_t *timer;  /* the timer it was armed in */
    int stale;          /* GIL: replaced or disarmed while it was firing */
};

#define CTSObject_CAST(op) ((CTSObject *)(op))
#define TokenObject_CAST(op) ((TokenObject *)(op))
#define RegObject_CAST(op) ((RegObject *)(op))
#define Token_Check(st, op) Py_IS_TYPE((op), (st)->Token_type)

/* ---- exported by py_cancel_reg.c */

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

/* ---- exported by py_cancel.c */

/* A CancellationToken of source (NULL: CancellationToken.none).  Refs:
 * new; borrows source. */
PyObject *token_new(st_state *st, CTSObject *source);
/* __enter__ of a source or a registration: returns op.  Refs: new (op);
 * borrows op. */
PyObject *cts_enter(PyObject *op, PyObject *unused);

/* ---- for module.c: the cancellation part of module exec / traverse /
 * clear.  Refs: borrows mod; exec stores strong references in st, clear
 * drops them. */
int cancel_module_exec(PyObject *mod, st_state *st);
int cancel_module_traverse(st_state *st, visitproc visit, void *arg);
void cancel_module_clear(st_state *st);

#endif /* ST_PY_CANCEL_H */
