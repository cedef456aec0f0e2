/* py_cancel_types.h - the layouts of cancellation's objects (sources,
 * tokens, registrations), shared by py_cancel_reg.c and py_cancel.c.
 * It belongs to py_cancel_reg.c, the lower of the two (issue 10).
 */
#ifndef ST_PY_CANCEL_TYPES_H
#define ST_PY_CANCEL_TYPES_H

#include "binding.h"

#include "st_cancel.h"

/* An internal registration's action: runs once, on the canceling thread
 * with the GIL held, when the token fires.  0, or -1 with an error set
 * (it joins the exceptions cancel() raises).  Refs: target and token are
 * borrowed for the call. */
typedef int (*cancel_action_fn)(PyObject *target, PyObject *token,
                                void *carg);

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

#endif /* ST_PY_CANCEL_TYPES_H */
