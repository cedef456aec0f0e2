/* py_cancel_reg.c - CancellationTokenRegistration and the registration
 * machinery (SPEC K2, K3): registering a Python callback or an internal C
 * action on a token, running and unregistering it, the per-thread list of
 * deferred drops, and the "watch" that unregisters an internal
 * registration the moment its task completes.  The sources and tokens are
 * py_cancel.c.
 *
 * While a registration is linked, its source's list holds one strong
 * reference to it, dropped by whoever takes it off the list.
 */
#include "binding.h"
#include "py_task.h"
#include "py_cancel_reg.h"
#include "py_state.h"

#include "st_cancel.h" /* the core of a source */
#include "st_error.h"  /* ST_E* codes */
#include "st_list.h"   /* st_container_of */
#include "st_thread.h" /* st_now_ns */

RegObject *
reg_alloc(st_state *st)
{
    RegObject *r = PyObject_GC_New(RegObject, st->Registration_type);
    if (r == NULL) {
        return NULL;
    }
    st_cancel_reg_init(&r->reg_node, reg_node_fn);
    r->reg_done.next = NULL;
    r->reg_done.fn = reg_done_fn;
    r->reg_done.kind = ST_CONT_SIGNAL;
    r->reg_source = NULL;
    r->reg_callback = NULL;
    r->reg_state = NULL;
    r->reg_context = NULL;
    r->reg_action = NULL;
    r->reg_target = NULL;
    r->reg_carg = NULL;
    r->reg_carg_release = NULL;
    r->reg_deferred_next = NULL;
    r->reg_deferred_unlinked = 0;
    PyObject_GC_Track(r);
    return r;
}

/* Drops what a registration would have run: it never will now (it was
 * unregistered or dropped).  Moves the fields to locals first, since a
 * DECREF may run code (STYLE.md point 25). */
static void
reg_forget(RegObject *r)
{
    PyObject *cb = r->reg_callback, *state = r->reg_state;
    PyObject *ctx = r->reg_context, *target = r->reg_target;
    void *carg = r->reg_carg;
    void (*release)(void *) = r->reg_carg_release;

    r->reg_callback = NULL;
    r->reg_state = NULL;
    r->reg_context = NULL;
    r->reg_target = NULL;
    r->reg_action = NULL;
    r->reg_carg = NULL;
    r->reg_carg_release = NULL;
    if (release != NULL) {
        release(carg);
    }
    Py_XDECREF(cb);
    Py_XDECREF(state);
    Py_XDECREF(ctx);
    Py_XDECREF(target);
}

/* Releases a chain of registrations the core dropped (try_reset, dispose,
 * abandon): they never run; drop the list's reference to each. */
void
release_chain(st_cancel_reg_t *chain)
{
    st_cancel_reg_t *node, *next;
    for (node = chain; node != NULL; node = next) {
        RegObject *r = st_container_of(node, RegObject, reg_node);
        next = node->next; /* before the DECREF frees r */
        node->next = NULL;
        reg_forget(r);
        Py_DECREF(r); /* the list's reference */
    }
}

/* Unregisters r (never waits).  1 if it was removed (then its list
 * reference is dropped here), 0 otherwise. */
int
reg_unregister(RegObject *r)
{
    if (r->reg_source == NULL
        || st_cancel_unregister(&r->reg_source->cts_core, &r->reg_node)
               != 0) {
        return 0;
    }
    reg_forget(r);
    Py_DECREF(r); /* the list's reference; the caller still holds one */
    return 1;
}

/* Runs one registration taken by the canceller (GIL held).  0, or -1 with
 * the callback's exception set. */
int
reg_invoke(st_state *st, RegObject *r)
{
    PyObject *res, *cb, *state, *ctx;

    if (r->reg_action != NULL) {
        cancel_action_fn fn = r->reg_action;
        PyObject *target = r->reg_target, *token;
        int rc;
        r->reg_action = NULL; /* one shot */
        r->reg_target = NULL; /* ours now */
        token = token_new(st, r->reg_source);
        if (token == NULL) {
            Py_XDECREF(target);
            return -1;
        }
        rc = target != NULL ? fn(target, token, r->reg_carg) : 0;
        Py_DECREF(token);
        Py_XDECREF(target);
        if (pending_exc_restore() < 0) {
            rc = -1;
        }
        return rc;
    }
    cb = r->reg_callback;
    state = r->reg_state;
    ctx = r->reg_context;
    r->reg_callback = NULL;
    r->reg_state = NULL;
    r->reg_context = NULL;
    if (cb == NULL) {
        return 0;
    }
    if (ctx != NULL && PyContext_Enter(ctx) < 0) {
        PyErr_Clear(); /* entered elsewhere: run in the current one */
        Py_CLEAR(ctx);
    }
    res = state != NULL ? PyObject_CallOneArg(cb, state)
                        : PyObject_CallNoArgs(cb);
    if (ctx != NULL) {
        PyContext_Exit(ctx);
    }
    Py_DECREF(cb);
    Py_XDECREF(state);
    Py_XDECREF(ctx);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return pending_exc_restore() < 0 ? -1 : 0;
}

/* The core node's fn.  The binding drives the take loop itself
 * (cts_notify), so the core only calls this from st_cancel_cancel, which
 * the binding does not use; it is there to keep the node valid. */
void
reg_node_fn(st_cancel_reg_t *node)
{
    RegObject *r = st_container_of(node, RegObject, reg_node);
    if (reg_invoke(g_st, r) < 0) {
        PyErr_WriteUnraisable((PyObject *)r);
    }
    Py_DECREF(r); /* the list's reference */
}

/* Registrations whose watched task completed, not yet released: this
 * thread's list, linked by reg_deferred_next.  Each entry owns the
 * references it will drop (the watch's, and the list's if it was
 * unlinked), so nothing here is borrowed.  Filled only inside
 * st_task_finish (reg_done_fn) and emptied by the same thread right
 * after it (cancel_release_deferred, from task_try_complete). */
static ST_THREAD_LOCAL RegObject *tls_deferred_regs;

/* Drops what a watch registration held once its task completed: its
 * action (if it was unlinked: it will never run) and the references. */
static void
reg_done_release(RegObject *r, int unlinked)
{
    if (unlinked) {
        reg_forget(r);
        Py_DECREF(r); /* the list's reference */
    }
    Py_DECREF(r); /* the watch's reference */
}

/* The watched task completed: the registration is not needed any more.
 * A SIGNAL node, so it must not run Python code (sync waiters behind it
 * run after it, and a waiter's thread may be about to wait for them):
 * it only takes the node off the source (the core's mutex, no
 * Python), and defers every DECREF, which may free the source and run a
 * weakref callback, to cancel_release_deferred. */
void
reg_done_fn(st_cont_t *c, st_task_t *task, int how)
{
    RegObject *r = st_container_of(c, RegObject, reg_done);
    (void)task;
    (void)how;
    r->reg_deferred_unlinked =
        r->reg_source != NULL
        && st_cancel_unregister(&r->reg_source->cts_core, &r->reg_node)
               == 0;
    r->reg_deferred_next = tls_deferred_regs;
    tls_deferred_regs = r;
}

void
cancel_release_deferred(void)
{
    RegObject *r;
    while ((r = tls_deferred_regs) != NULL) {
        /* unlink first: the drops may complete tasks, which come here */
        tls_deferred_regs = r->reg_deferred_next;
        r->reg_deferred_next = NULL;
        reg_done_release(r, r->reg_deferred_unlinked);
    }
}

/* ------------------------------------ tokens (for py_cancel.c too) */

/* A CancellationToken of source (kept here, below py_cancel.c, which
 * uses it too: issue 10). */
PyObject *
token_new(st_state *st, CTSObject *source)
{
    TokenObject *t;
    if (source == NULL && st->token_none != NULL) {
        return Py_NewRef(st->token_none);
    }
    t = PyObject_GC_New(TokenObject, st->Token_type);
    if (t == NULL) {
        return NULL;
    }
    t->tok_source = (CTSObject *)Py_XNewRef(source);
    PyObject_GC_Track(t);
    return (PyObject *)t;
}

/* __enter__ of a source or a registration: returns op. */
PyObject *
cts_enter(PyObject *op, PyObject *unused)
{
    return Py_NewRef(op);
}

/* ------------------------------------------------- registration (K2) */

/* Registers an internal action on a native token's source: see
 * binding.h.  Returns a new reference to the registration, or to None
 * when nothing was registered. */
PyObject *
cancel_register_action(st_state *st, PyObject *token, cancel_action_fn fn,
                       PyObject *target, void *carg,
                       void (*carg_release)(void *), TaskObject *watch,
                       int *already)
{
    CTSObject *src;
    RegObject *r;
    int rc;

    *already = 0;
    if (!Token_Check(st, token)
        || (src = TokenObject_CAST(token)->tok_source) == NULL) {
        if (carg_release != NULL) {
            carg_release(carg);
        }
        Py_RETURN_NONE;
    }
    r = reg_alloc(st);
    if (r == NULL) {
        if (carg_release != NULL) {
            carg_release(carg);
        }
        return NULL;
    }
    r->reg_source = (CTSObject *)Py_NewRef(src);
    r->reg_action = fn;
    r->reg_target = Py_NewRef(target);
    r->reg_carg = carg;
    r->reg_carg_release = carg_release;
    rc = st_cancel_register(&src->cts_core, &r->reg_node);
    if (rc != 0) {
        /* ST_ECANCELED: the caller acts itself; ST_ECLOSED: never fires */
        *already = rc == ST_ECANCELED;
        reg_forget(r);
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    Py_INCREF(r); /* the list's reference */
    if (watch != NULL) {
        Py_INCREF(r); /* the watch's reference, dropped by reg_done_fn */
        if (st_task_add_cont(&watch->task_core, &r->reg_done) != 0) {
            /* already completed: not inside a completion, drop now */
            (void)reg_unregister(r);
            Py_DECREF(r); /* the watch's reference */
        }
    }
    return (PyObject *)r;
}

/* A Python callback (register / unsafe_register). */
PyObject *
token_register_impl(st_state *st, TokenObject *tok, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames, int flow,
                    const char *fname)
{
    PyObject *callback = NULL, *state = NULL;
    CTSObject *src = tok->tok_source;
    RegObject *r;
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int rc;

    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 2 arguments "
                     "(%zd given)", fname, nargs);
        return NULL;
    }
    if (nargs >= 1) {
        callback = args[0];
    }
    if (nargs == 2) {
        state = args[1];
    }
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_EqualToUTF8(k, "callback") && callback == NULL) {
            callback = args[nargs + i];
        }
        else if (PyUnicode_EqualToUTF8(k, "state")
                 && state == NULL) {
            state = args[nargs + i];
        }
        else {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected or "
                         "repeated keyword argument %R", fname, k);
            return NULL;
        }
    }
    /* 5.9: a missing callback is refused even on tokens that never fire */
    if (callback == NULL || callback == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s(): callback must not be None",
                     fname);
        return NULL;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "%s(): callback must be callable, "
                     "not %.100s", fname, Py_TYPE(callback)->tp_name);
        return NULL;
    }
    if (src == NULL) {
        return Py_NewRef(st->empty_registration); /* 5.7 */
    }
    if (st_cancel_is_requested(&src->cts_core)) {
        goto run_now;
    }
    r = reg_alloc(st);
    if (r == NULL) {
        return NULL;
    }
    r->reg_source = (CTSObject *)Py_NewRef(src);
    r->reg_callback = Py_NewRef(callback);
    r->reg_state = Py_XNewRef(state);
    if (flow && (r->reg_context = PyContext_CopyCurrent()) == NULL) {
        Py_DECREF(r);
        return NULL;
    }
    rc = st_cancel_register(&src->cts_core, &r->reg_node);
    if (rc == 0) {
        Py_INCREF(r); /* the list's reference */
        return (PyObject *)r;
    }
    reg_forget(r);
    Py_DECREF(r);
    if (rc == ST_ECLOSED) {
        /* 5.12: the source was disposed: nothing will ever run */
        return Py_NewRef(st->empty_registration);
    }
run_now:
    /* 5.6: already canceled: run it now, on this thread; its exception
     * propagates as it is; the registration is the empty one */
    {
        PyObject *res = state != NULL ? PyObject_CallOneArg(callback, state)
                                      : PyObject_CallNoArgs(callback);
        if (res == NULL) {
            return NULL;
        }
        Py_DECREF(res);
    }
    return Py_NewRef(st->empty_registration);
}

/* -------------------------------------------------- helpers for K3 */

int
cancel_is_token(st_state *st, PyObject *obj)
{
    return Token_Check(st, obj);
}

int
cancel_token_can_fire(st_state *st, PyObject *token)
{
    return Token_Check(st, token)
           && TokenObject_CAST(token)->tok_source != NULL;
}

int
cancel_token_requested(st_state *st, PyObject *token)
{
    PyObject *v;
    int r;
    if (token == NULL || token == Py_None) {
        return 0;
    }
    if (Token_Check(st, token)) {
        CTSObject *src = TokenObject_CAST(token)->tok_source;
        return src != NULL && st_cancel_is_requested(&src->cts_core);
    }
    v = PyObject_GetAttrString(token, "is_cancellation_requested");
    if (v == NULL) {
        PyErr_Clear();
        return 0;
    }
    r = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (r < 0) {
        PyErr_Clear();
        return 0;
    }
    return r;
}

int
cancel_token_check(st_state *st, PyObject *token)
{
    PyObject *v;
    int r;
    if (Token_Check(st, token)) {
        CTSObject *src = TokenObject_CAST(token)->tok_source;
        return src != NULL && st_cancel_is_requested(&src->cts_core);
    }
    v = PyObject_GetAttrString(token, "is_cancellation_requested");
    if (v == NULL) {
        return -1;
    }
    r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

int
cancel_error_is_own_token(st_state *st, TaskObject *t)
{
    PyObject *exc, *tok;
    int match = 0;

    if (task_token(t) == NULL || !PyErr_Occurred()
        || !PyErr_ExceptionMatches(st->OperationCanceledError)) {
        return 0;
    }
    /* the error aside first: a token object's is_cancellation_requested
     * is Python code (issue 9 item 20: no call with an exception set) */
    exc = PyErr_GetRaisedException();
    if (!cancel_token_requested(st, task_token(t))) {
        PyErr_SetRaisedException(exc);
        return 0;
    }
    tok = PyObject_GetAttr(exc, st->str_cancellation_token);
    if (tok == NULL) {
        PyErr_Clear();
    }
    else {
        match = PyObject_RichCompareBool(tok, task_token(t), Py_EQ);
        if (match < 0) {
            PyErr_Clear();
            match = 0;
        }
        Py_DECREF(tok);
    }
    PyErr_SetRaisedException(exc);
    return match;
}

/* Task.run: a delegate that has not started yet is canceled (R1.7). */
static int
delegate_token_fired(PyObject *target, PyObject *token, void *carg)
{
    TaskObject *t = (TaskObject *)target;
    (void)carg;
    /* GIL held: nothing can start the task between the check and the
     * reservation (task_execute transitions it under the GIL too) */
    if (st_task_status(&t->task_core) == ST_STATUS_WAITING_TO_RUN) {
        task_try_complete(t, ST_STATUS_CANCELED, NULL, token);
    }
    return 0;
}

/* continue_with: the continuation leaves its antecedent and is canceled
 * at once, before the antecedent completes (R3.10). */
static int
continuation_token_fired(PyObject *target, PyObject *token, void *carg)
{
    TaskObject *ct = (TaskObject *)target;
    PyObject *ante = ct->task_arg; /* borrowed: the antecedent */
    int removed = 0;
    (void)carg;
    if (st_task_status(&ct->task_core) != ST_STATUS_WAITING_FOR_ACTIVATION) {
        return 0; /* running (cooperative from now on) or done */
    }
    if (ante != NULL && Task_Check(g_st, ante)
        && st_task_remove_cont(&((TaskObject *)ante)->task_core,
                               &ct->task_cont) == 0) {
        removed = 1; /* the registration's reference is ours to drop */
    }
    task_try_complete(ct, ST_STATUS_CANCELED, NULL, token);
    if (removed) {
        Py_DECREF(ct); /* the caller (reg_invoke) still holds one */
    }
    return 0;
}

static int
watch_task(st_state *st, TaskObject *t, cancel_action_fn fn)
{
    int already;
    PyObject *reg;
    if (task_token(t) == NULL || !Token_Check(st, task_token(t))) {
        return 0; /* other token objects are checked when it starts */
    }
    reg = cancel_register_action(st, task_token(t), fn, (PyObject *)t,
                                 NULL, NULL, t, &already);
    if (reg == NULL) {
        return -1;
    }
    Py_DECREF(reg);
    if (already) {
        /* canceled since the caller looked: act now */
        PyObject *token = Py_NewRef(task_token(t));
        int rc = fn((PyObject *)t, token, NULL);
        Py_DECREF(token);
        return rc;
    }
    return 0;
}

int
cancel_watch_delegate(st_state *st, TaskObject *t)
{
    return watch_task(st, t, delegate_token_fired);
}

int
cancel_watch_continuation(st_state *st, TaskObject *ct)
{
    return watch_task(st, ct, continuation_token_fired);
}

PyObject *
cancel_cont_owner(st_cont_t *c)
{
    if (c->fn == reg_done_fn) {
        return (PyObject *)st_container_of(c, RegObject, reg_done);
    }
    return NULL;
}

/* The watch node's kind, for the task layer (task_register_node_kind,
 * from module.c). */
const task_node_kind cancel_node_kind = {
    reg_done_fn, cancel_cont_owner, NULL, NULL};

/* ---------------------------------------- CancellationTokenRegistration */

static int
Reg_traverse(PyObject *op, visitproc visit, void *arg)
{
    RegObject *r = RegObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(r->reg_source);
    Py_VISIT(r->reg_callback);
    Py_VISIT(r->reg_state);
    Py_VISIT(r->reg_context);
    Py_VISIT(r->reg_target);
    return 0;
}

static int
Reg_clear(PyObject *op)
{
    RegObject *r = RegObject_CAST(op);
    reg_forget(r);
    Py_CLEAR(r->reg_source);
    return 0;
}

static void
Reg_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): holds a source, a callback and its state */
    Py_TRASHCAN_BEGIN(op, Reg_dealloc)
    (void)Reg_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
reg_token_get(PyObject *op, void *closure)
{
    (void)closure;
    /* 5.15: the source's token, even after the source was disposed */
    return token_new(g_st, RegObject_CAST(op)->reg_source);
}

static PyObject *
reg_unregister_meth(PyObject *op, PyObject *unused)
{
    return PyBool_FromLong(reg_unregister(RegObject_CAST(op)));
}

static PyObject *
reg_dispose(PyObject *op, PyObject *unused)
{
    RegObject *r = RegObject_CAST(op);
    CTSObject *src = r->reg_source;
    st_pool_t *pool;
    int rc;

    if (src == NULL) {
        Py_RETURN_NONE;
    }
    rc = st_cancel_dispose(&src->cts_core, &r->reg_node, 0);
    if (rc == 0) {
        reg_forget(r);
        Py_DECREF(r); /* the list's reference; the caller holds one */
        Py_RETURN_NONE;
    }
    if (rc != ST_ETIMEDOUT) {
        Py_RETURN_NONE;
    }
    /* 5.15: its callback runs now on another thread: wait for it to
     * return, with the GIL released (that thread may need it), in
     * slices that answer Ctrl-C (T6) */
    Py_INCREF(src);
    pool = st_pool_current();
    if (pool != NULL) {
        st_pool_enter_blocking(pool);
    }
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = st_cancel_dispose(&src->cts_core, &r->reg_node,
                               DISPOSE_SLICE_NS);
        Py_END_ALLOW_THREADS
        if (rc != ST_ETIMEDOUT) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            break;
        }
    }
    if (pool != NULL) {
        st_pool_leave_blocking(pool);
    }
    Py_DECREF(src);
    if (rc == ST_ETIMEDOUT) {
        return NULL; /* interrupted: the signal handler's exception */
    }
    Py_RETURN_NONE;
}

static PyObject *
reg_exit(PyObject *op, PyObject *args)
{
    PyObject *r = reg_dispose(op, NULL);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *
Reg_repr(PyObject *op)
{
    RegObject *r = RegObject_CAST(op);
    if (r->reg_source == NULL) {
        return PyUnicode_FromString("<CancellationTokenRegistration empty>");
    }
    return PyUnicode_FromFormat("<CancellationTokenRegistration %llu of "
                                "source %p>",
                                (unsigned long long)r->reg_node.id,
                                (void *)r->reg_source);
}

static PyMethodDef Reg_methods[] = {
    {"unregister", reg_unregister_meth, METH_NOARGS,
     PyDoc_STR("unregister($self, /)\n--\n\n"
               "Remove the callback if it has not run; True if it was\n"
               "removed (it will never run).  Never waits (like\n"
               "CancellationTokenRegistration.Unregister).")},
    {"dispose", reg_dispose, METH_NOARGS,
     PyDoc_STR("dispose($self, /)\n--\n\n"
               "Remove the callback; if it is running now on another\n"
               "thread, wait until it returns (not when called from the\n"
               "callback's own thread).  Like Dispose.")},
    {"__enter__", cts_enter, METH_NOARGS,
     PyDoc_STR("__enter__($self, /)\n--\n\nReturn the registration.")},
    {"__exit__", reg_exit, METH_VARARGS,
     PyDoc_STR("__exit__($self, exc_type, exc_value, traceback, /)\n--\n\n"
               "Dispose the registration.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Reg_getset[] = {
    {"token", reg_token_get, NULL,
     PyDoc_STR("The token it was registered on (none for the empty "
               "registration)."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Reg_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "The result of CancellationToken.register (like\n"
         "CancellationTokenRegistration): unregister() or dispose() it\n"
         "when the callback is not wanted any more.  Usable with `with`.")},
    {Py_tp_traverse, Reg_traverse},
    {Py_tp_clear, Reg_clear},
    {Py_tp_dealloc, Reg_dealloc},
    {Py_tp_repr, Reg_repr},
    {Py_tp_methods, Reg_methods},
    {Py_tp_getset, Reg_getset},
    {0, NULL},
};

PyType_Spec Reg_spec = {
    .name = "sharptask.CancellationTokenRegistration",
    .basicsize = sizeof(RegObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Reg_slots,
};

