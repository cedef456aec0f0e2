/* py_semaphore.c - SemaphoreSlim (SPEC K4), the async lock of async
 * methods, with the K3 cancellation of its waits.
 *
 *     class SemaphoreSlim:                     # like .NET's
 *         def __init__(self, initial_count, maximum_count=None)
 *         current_count: int
 *         def wait(self, timeout=None, cancellation_token=None) -> bool
 *         def wait_async(self, timeout=None, cancellation_token=None)
 *             -> Task[bool]                    # FIFO among async waiters
 *         def release(self, release_count=1) -> int   # the count before
 *         def dispose(self)
 *
 * The state (count, maximum, two queues of waiters) lives here and is only
 * touched by these C functions, each of which runs from start to end with
 * the GIL held and without calling Python code in between; the GIL is
 * therefore the semaphore's lock, and no other lock exists (a Python
 * version needed a threading.Lock on every call and was 2x slower than
 * asyncio.Lock on the uncontended path).  Code that can run Python (the
 * completion of a waiter's task, which may post to a context; the
 * disposal of a timer or registration) runs only after the state is
 * consistent again, so a re-entrant call sees a coherent semaphore.
 *
 * Waiters (reference §9):
 *   - an async waiter (wait_async) is a node of the FIFO queue `a`, with a
 *     promise task made with RUN_CONTINUATIONS_ASYNCHRONOUSLY (9.5:
 *     release never runs a waiter's continuation inline);
 *   - a thread blocked in wait() is a node of the queue `s`, with a plain
 *     promise it blocks on (GIL released, Ctrl-C answered: T6); a wait()
 *     that arrives while async waiters are queued joins queue `a` instead
 *     (9.4);
 *   - release(n) hands the count over directly: first to blocked threads
 *     (9.4: they have priority), then to queue `a` in FIFO order; a waiter
 *     that is handed the count is unlinked at once, so a timeout or a
 *     cancellation that comes at the same moment finds it gone and
 *     acquisition wins (9.2, 9.3).
 *   - timeouts and tokens of async waits are armed by sharptask._semaphore
 *     (a CancellationTokenSource with cancel_after, linked to the token),
 *     whose callback calls _expire(); a granted waiter's source and
 *     registration are disposed at once (K3).
 */
#include "binding.h"

#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef */

#include "st_error.h"

#define TCO_RCA 0x40u         /* RUN_CONTINUATIONS_ASYNCHRONOUSLY */
#define SEM_INT_MAX 2147483647 /* int.MaxValue: the default maximum */

/* ------------------------------------------------------------ structs */

typedef struct SemWaiterObject {
    PyObject_HEAD
    struct SemWaiterObject *w_prev; /* links while queued */
    struct SemWaiterObject *w_next;
    PyObject *w_task;  /* the promise the waiter completes */
    PyObject *w_token; /* the caller's cancellation token, or NULL */
    PyObject *w_cts;   /* the timeout's source (set by _arm), or NULL */
    PyObject *w_reg;   /* a registration on the token (_arm), or NULL */
    uint8_t w_queue;   /* 0: not queued; 'a' or 's': in that queue */
    void *w_sem;       /* while queued: the semaphore whose queue it is
                          in; only compared, never followed (_expire) */
} SemWaiterObject;

typedef struct SemObject {
    PyObject_HEAD
    Py_ssize_t sem_count;
    Py_ssize_t sem_max;
    SemWaiterObject *sem_ahead; /* async FIFO (and converted waits) */
    SemWaiterObject *sem_atail;
    SemWaiterObject *sem_shead; /* threads blocked in wait() */
    SemWaiterObject *sem_stail;
    Py_ssize_t sem_na;          /* lengths of the queues */
    Py_ssize_t sem_ns;
    uint8_t sem_disposed;
    PyObject *sem_weakreflist;
} SemObject;

#define SemObject_CAST(op) ((SemObject *)(op))
#define SemWaiterObject_CAST(op) ((SemWaiterObject *)(op))

/* ------------------------------------------------------------ helpers */

static PyObject *
raise_sem_disposed(st_state *st, const char *what)
{
    PyErr_Format(st->ObjectDisposedError,
                 "%s: the SemaphoreSlim has been disposed", what);
    return NULL;
}

/* Appends w to queue q ('a' or 's'); the queue holds one reference. */
static void
enqueue(SemObject *self, SemWaiterObject *w, uint8_t q)
{
    SemWaiterObject **head = q == 'a' ? &self->sem_ahead : &self->sem_shead;
    SemWaiterObject **tail = q == 'a' ? &self->sem_atail : &self->sem_stail;
    Py_INCREF(w);
    w->w_queue = q;
    w->w_sem = self;
    w->w_next = NULL;
    w->w_prev = *tail;
    if (*tail != NULL) {
        (*tail)->w_next = w;
    }
    else {
        *head = w;
    }
    *tail = w;
    if (q == 'a') {
        self->sem_na++;
    }
    else {
        self->sem_ns++;
    }
}

/* Unlinks a queued w; the caller takes over the queue's reference. */
static void
unlink_waiter(SemObject *self, SemWaiterObject *w)
{
    uint8_t q = w->w_queue;
    SemWaiterObject **head = q == 'a' ? &self->sem_ahead : &self->sem_shead;
    SemWaiterObject **tail = q == 'a' ? &self->sem_atail : &self->sem_stail;
    ST_ASSERT(q == 'a' || q == 's');
    if (w->w_prev != NULL) {
        w->w_prev->w_next = w->w_next;
    }
    else {
        *head = w->w_next;
    }
    if (w->w_next != NULL) {
        w->w_next->w_prev = w->w_prev;
    }
    else {
        *tail = w->w_prev;
    }
    w->w_prev = NULL;
    w->w_next = NULL;
    w->w_queue = 0;
    w->w_sem = NULL;
    if (q == 'a') {
        self->sem_na--;
    }
    else {
        self->sem_ns--;
    }
}

static SemWaiterObject *
waiter_new(st_state *st, PyObject *token, uint32_t options)
{
    SemWaiterObject *w = PyObject_GC_New(SemWaiterObject,
                                         st->SemWaiter_type);
    if (w == NULL) {
        return NULL;
    }
    w->w_prev = NULL;
    w->w_next = NULL;
    w->w_token = Py_XNewRef(token);
    w->w_cts = NULL;
    w->w_reg = NULL;
    w->w_queue = 0;
    w->w_sem = NULL;
    w->w_task = task_new_promise(st, NULL, options);
    PyObject_GC_Track(w);
    if (w->w_task == NULL) {
        Py_DECREF(w);
        return NULL;
    }
    return w;
}

/* Disposes w's timeout source and drops its token registration (K3).
 * Runs Python code: call it with the state consistent.  Errors are
 * reported as unraisable (nobody could handle them).  An exception set
 * by the caller (a Ctrl-C that ended the wait) is kept aside meanwhile
 * and set again at the end (issue 9 item 20). */
static void
waiter_cleanup(SemWaiterObject *w)
{
    PyObject *cts = w->w_cts, *reg = w->w_reg, *r, *saved;
    if (cts == NULL && reg == NULL) {
        return;
    }
    saved = st_exc_save();
    w->w_cts = NULL;
    w->w_reg = NULL;
    /* Python may have stored None through the member descriptors */
    if (cts == Py_None) {
        Py_CLEAR(cts);
    }
    if (reg == Py_None) {
        Py_CLEAR(reg);
    }
    if (cts != NULL) {
        r = PyObject_CallMethod(cts, "dispose", NULL);
        if (r == NULL) {
            PyErr_WriteUnraisable(cts);
        }
        Py_XDECREF(r);
        Py_DECREF(cts);
    }
    if (reg != NULL) {
        r = PyObject_HasAttrString(reg, "unregister")
                ? PyObject_CallMethod(reg, "unregister", NULL)
                : PyObject_CallMethod(reg, "dispose", NULL);
        if (r == NULL) {
            PyErr_WriteUnraisable(reg);
        }
        Py_XDECREF(r);
        Py_DECREF(reg);
    }
    st_exc_restore(saved);
}

/* Parses a timeout as .NET's int-millisecond overloads allow (9.2). */
static int
parse_sem_timeout(PyObject *obj, uint64_t *ns, int *infinite)
{
    if (parse_timeout(obj, "timeout", ns, infinite) < 0) {
        return -1;
    }
    if (!*infinite && *ns > 2147483647000000ull) {
        PyErr_Format(PyExc_ValueError, "timeout must be at most "
                     "2147483.647 seconds, not %R", obj);
        return -1;
    }
    return 0;
}

/* The token (not None) is canceled: raise OperationCanceledError. */
static PyObject *
raise_oce(st_state *st, PyObject *token)
{
    PyObject *kw = Py_BuildValue("{s:O}", "cancellation_token", token);
    PyObject *empty = PyTuple_New(0), *exc = NULL;
    if (kw != NULL && empty != NULL) {
        exc = PyObject_Call(st->OperationCanceledError, empty, kw);
    }
    Py_XDECREF(kw);
    Py_XDECREF(empty);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* sharptask._semaphore._arm(sem, w, timeout, token): arms the timeout
 * and the token of a queued waiter.  0 or -1. */
static int
arm_waiter(st_state *st, SemObject *self, SemWaiterObject *w,
           PyObject *timeout, PyObject *token)
{
    PyObject *mod, *fn, *r;
    mod = PyImport_ImportModule("sharptask._semaphore");
    if (mod == NULL) {
        return -1;
    }
    fn = PyObject_GetAttrString(mod, "_arm");
    Py_DECREF(mod);
    if (fn == NULL) {
        return -1;
    }
    r = PyObject_CallFunctionObjArgs(fn, (PyObject *)self, (PyObject *)w,
                                     timeout, token, NULL);
    Py_DECREF(fn);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ---------------------------------------------------------- lifecycle */

static PyObject *
Sem_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"initial_count", "maximum_count", NULL};
    PyObject *init_o, *max_o = Py_None;
    Py_ssize_t init, max = SEM_INT_MAX;
    SemObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:SemaphoreSlim",
                                     kwlist, &init_o, &max_o)) {
        return NULL;
    }
    /* 9.1: initial_count is checked first; both are .NET ints (H2: one
     * parser, issue 9 item 27) */
    if (parse_count(init_o, "initial_count", 0, SEM_INT_MAX, &init) < 0
        || (max_o != Py_None
            && parse_count(max_o, "maximum_count", 1, SEM_INT_MAX, &max)
                   < 0)) {
        return NULL;
    }
    if (init < 0 || init > max) {
        PyErr_Format(PyExc_ValueError, "initial_count must be between 0 "
                     "and maximum_count (%zd), not %zd", max, init);
        return NULL;
    }
    if (max <= 0) {
        PyErr_Format(PyExc_ValueError, "maximum_count must be > 0, not %zd",
                     max);
        return NULL;
    }
    self = PyObject_GC_New(SemObject, tp);
    if (self == NULL) {
        return NULL;
    }
    self->sem_count = init;
    self->sem_max = max;
    self->sem_ahead = self->sem_atail = NULL;
    self->sem_shead = self->sem_stail = NULL;
    self->sem_na = self->sem_ns = 0;
    self->sem_disposed = 0;
    self->sem_weakreflist = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
Sem_traverse(PyObject *op, visitproc visit, void *arg)
{
    SemObject *self = SemObject_CAST(op);
    SemWaiterObject *w;
    Py_VISIT(Py_TYPE(op));
    for (w = self->sem_ahead; w != NULL; w = w->w_next) {
        Py_VISIT(w); /* the queue's references */
    }
    for (w = self->sem_shead; w != NULL; w = w->w_next) {
        Py_VISIT(w);
    }
    return 0;
}

/* Unlinks every waiter of a queue and drops the queue's references. */
static void
drop_queue(SemObject *self, SemWaiterObject **head)
{
    while (*head != NULL) {
        SemWaiterObject *w = *head;
        unlink_waiter(self, w);
        Py_DECREF(w); /* the queue's reference */
    }
}

static int
Sem_clear(PyObject *op)
{
    SemObject *self = SemObject_CAST(op);
    drop_queue(self, &self->sem_ahead);
    drop_queue(self, &self->sem_shead);
    return 0;
}

static void
Sem_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): its queues hold waiters */
    Py_TRASHCAN_BEGIN(op, Sem_dealloc)
    if (SemObject_CAST(op)->sem_weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    (void)Sem_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* ------------------------------------------------------------ methods */

static PyObject *
sem_wait_async(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    st_state *st = g_st;
    SemObject *self = SemObject_CAST(op);
    PyObject *timeout = Py_None, *token = Py_None, *task;
    SemWaiterObject *w;
    Py_ssize_t i, nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    uint64_t ns = 0;
    int infinite = 1;

    if (self->sem_disposed) {
        return raise_sem_disposed(st, "wait_async()");
    }
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError,
                        "wait_async() takes at most 2 arguments");
        return NULL;
    }
    if (nargs >= 1) {
        timeout = args[0];
    }
    if (nargs == 2) {
        token = args[1];
    }
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_EqualToUTF8(k, "timeout") && nargs < 1) {
            timeout = args[nargs + i];
        }
        else if (PyUnicode_EqualToUTF8(k, "cancellation_token")
                 && nargs < 2) {
            token = args[nargs + i];
        }
        else {
            PyErr_Format(PyExc_TypeError, "wait_async() got an unexpected "
                         "or repeated keyword argument %R", k);
            return NULL;
        }
    }
    if (timeout == Py_None && token == Py_None) {
        /* the hot path: no timer, no token */
        if (self->sem_count > 0) {
            self->sem_count--;
            return Py_NewRef(st->cached[2]); /* True (T12) */
        }
        w = waiter_new(st, NULL, TCO_RCA);
        if (w == NULL) {
            return NULL;
        }
        enqueue(self, w, 'a');
        task = Py_NewRef(w->w_task);
        Py_DECREF(w);
        return task;
    }
    if (parse_sem_timeout(timeout, &ns, &infinite) < 0
        || parse_token(st, token, "cancellation_token", &token) < 0) {
        return NULL;
    }
    if (token == NULL) {
        token = Py_None;
    }
    /* 9.3: a canceled token gives a canceled task, even with a count */
    if (token != Py_None && cancel_token_requested(st, token)) {
        return task_new_canceled(st, NULL, token);
    }
    if (self->sem_count > 0) {
        self->sem_count--;
        return Py_NewRef(st->cached[2]);
    }
    if (!infinite && ns == 0) {
        return Py_NewRef(st->cached[1]); /* False */
    }
    w = waiter_new(st, token == Py_None ? NULL : token, TCO_RCA);
    if (w == NULL) {
        return NULL;
    }
    enqueue(self, w, 'a');
    task = Py_NewRef(w->w_task);
    if (arm_waiter(st, self, w, timeout, token) < 0) {
        /* could not arm: take the waiter back out, as if never queued */
        if (w->w_queue) {
            unlink_waiter(self, w);
            Py_DECREF(w);
        }
        waiter_cleanup(w);
        Py_DECREF(w);
        Py_DECREF(task);
        return NULL;
    }
    Py_DECREF(w);
    return task;
}

/* Gives back one count that a waiter was handed but will not use (its
 * thread was interrupted): as a release(1) that cannot overflow. */
static void give_back(st_state *st, SemObject *self);

static PyObject *
sem_wait(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "cancellation_token", NULL};
    st_state *st = g_st;
    SemObject *self = SemObject_CAST(op);
    PyObject *timeout = Py_None, *token = Py_None;
    SemWaiterObject *w;
    TaskObject *t;
    uint64_t ns = 0;
    int infinite = 1, rc, status;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:wait", kwlist,
                                     &timeout, &token)) {
        return NULL;
    }
    /* 9.2: disposed, then the timeout, then the token */
    if (self->sem_disposed) {
        return raise_sem_disposed(st, "wait()");
    }
    if (parse_sem_timeout(timeout, &ns, &infinite) < 0
        || parse_token(st, token, "cancellation_token", &token) < 0) {
        return NULL;
    }
    if (token == NULL) {
        token = Py_None;
    }
    if (token != Py_None && cancel_token_requested(st, token)) {
        return raise_oce(st, token);
    }
    if (self->sem_count > 0) {
        self->sem_count--;
        Py_RETURN_TRUE;
    }
    if (!infinite && ns == 0) {
        Py_RETURN_FALSE;
    }
    w = waiter_new(st, token == Py_None ? NULL : token, 0);
    if (w == NULL) {
        return NULL;
    }
    /* 9.4: behind queued async waiters, in their FIFO; else a blocked
     * thread, served before them */
    enqueue(self, w, self->sem_ahead != NULL ? 'a' : 's');
    if (token != Py_None
        && arm_waiter(st, self, w, Py_None, token) < 0) {
        if (w->w_queue) {
            unlink_waiter(self, w);
            Py_DECREF(w);
        }
        waiter_cleanup(w);
        Py_DECREF(w);
        return NULL;
    }
    t = (TaskObject *)w->w_task;
    rc = task_wait_blocking(st, t, infinite ? UINT64_MAX : ns);
    if (w->w_queue) {
        /* timed out or interrupted while still waiting: leave */
        unlink_waiter(self, w);
        Py_DECREF(w); /* the queue's reference */
        waiter_cleanup(w);
        Py_DECREF(w);
        if (rc < 0) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    /* out of the queue: granted (its task may still be completing while
     * release() finishes the others), or expired by its token, which
     * completes the task in the same step as it unlinks it */
    waiter_cleanup(w);
    status = st_task_status(&t->task_core);
    if (status == ST_STATUS_CANCELED) {
        token = Py_NewRef(w->w_token != NULL ? w->w_token : Py_None);
        Py_DECREF(w);
        if (rc >= 0) {
            raise_oce(st, token); /* K3: its token fired */
        }
        Py_DECREF(token);
        return NULL;
    }
    if (status == ST_STATUS_RAN_TO_COMPLETION && t->task_result == Py_False) {
        Py_DECREF(w);
        if (rc < 0) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    Py_DECREF(w);
    if (rc < 0) {
        /* interrupted (Ctrl-C) just as it was granted (acquisition wins
         * over a timeout, 9.2): the caller never learns it holds the
         * count, so give it back (completing a waiter runs Python code:
         * the interrupt waits aside, issue 9 item 20) */
        PyObject *saved = st_exc_save();
        give_back(st, self);
        st_exc_restore(saved);
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* The heart of release: adds n, hands the count to waiters (blocked
 * threads first, then the async FIFO), and returns the granted waiters
 * as a chain linked by w_next (each with the queue's reference).  No
 * Python code runs here. */
static SemWaiterObject *
grant(SemObject *self, Py_ssize_t n)
{
    SemWaiterObject *first = NULL, *last = NULL;
    Py_ssize_t count = self->sem_count + n;
    while (count > 0 && (self->sem_shead != NULL || self->sem_ahead != NULL)) {
        SemWaiterObject *w = self->sem_shead != NULL ? self->sem_shead
                                                     : self->sem_ahead;
        unlink_waiter(self, w);
        count--;
        if (last != NULL) {
            last->w_next = w;
        }
        else {
            first = w;
        }
        last = w;
    }
    self->sem_count = count;
    return first;
}

/* Completes the granted waiters in order (the state is consistent: any
 * Python code that runs may call back into the semaphore). */
static void
complete_granted(SemWaiterObject *chain)
{
    while (chain != NULL) {
        SemWaiterObject *w = chain;
        chain = w->w_next;
        w->w_next = NULL;
        task_try_complete((TaskObject *)w->w_task,
                          ST_STATUS_RAN_TO_COMPLETION, Py_True, NULL);
        if (pending_exc_restore() < 0) {
            PyErr_WriteUnraisable(w->w_task);
        }
        waiter_cleanup(w);
        Py_DECREF(w); /* the queue's reference */
    }
}

static void
give_back(st_state *st, SemObject *self)
{
    (void)st;
    if (self->sem_count < self->sem_max) {
        complete_granted(grant(self, 1));
    }
}

static PyObject *
sem_release(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    st_state *st = g_st;
    SemObject *self = SemObject_CAST(op);
    PyObject *n_o = NULL;
    Py_ssize_t n = 1, previous, i;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "release() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        n_o = args[0];
    }
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (n_o != NULL
            || !PyUnicode_EqualToUTF8(k, "release_count")) {
            PyErr_Format(PyExc_TypeError, "release() got an unexpected or "
                         "repeated keyword argument %R", k);
            return NULL;
        }
        n_o = args[nargs + i];
    }
    if (self->sem_disposed) {
        return raise_sem_disposed(st, "release()");
    }
    if (n_o != NULL
        && parse_count(n_o, "release_count", 1, SEM_INT_MAX, &n) < 0) {
        return NULL; /* a .NET int, >= 1 (9.6) */
    }
    previous = self->sem_count;
    /* 9.6: beyond the maximum: refuse, with nothing released */
    if (self->sem_max - previous < n) {
        PyErr_Format(st->SemaphoreFullError,
                     "release(%zd) would exceed the maximum count %zd "
                     "(count is %zd)", n, self->sem_max, previous);
        return NULL;
    }
    if (self->sem_shead == NULL && self->sem_ahead == NULL) {
        self->sem_count = previous + n; /* the hot path */
    }
    else {
        complete_granted(grant(self, n));
    }
    return PyLong_FromSsize_t(previous);
}

/* _expire(w): w's timeout ran out or its token fired (called by the
 * callback sharptask._semaphore._arm registered).  If w is still queued,
 * it leaves the queue and its task ends: canceled with its token if that
 * token is canceled, else with False.  Returns True if it did so. */
static PyObject *
sem_expire(PyObject *op, PyObject *arg)
{
    st_state *st = g_st;
    SemObject *self = SemObject_CAST(op);
    SemWaiterObject *w;

    if (!Py_IS_TYPE(arg, st->SemWaiter_type)) {
        PyErr_Format(PyExc_TypeError, "_expire(): waiter must be a waiter "
                     "of this SemaphoreSlim, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    w = SemWaiterObject_CAST(arg);
    if (!w->w_queue) {
        Py_RETURN_FALSE; /* granted at the same moment: acquisition wins */
    }
    if (w->w_sem != (void *)self) {
        /* issue 9 item 23: queued on another semaphore */
        PyErr_SetString(PyExc_ValueError, "_expire(): waiter belongs to "
                        "another SemaphoreSlim");
        return NULL;
    }
    unlink_waiter(self, w); /* the queue's reference is ours now */
    if (w->w_token != NULL && cancel_token_requested(st, w->w_token)) {
        task_try_complete((TaskObject *)w->w_task, ST_STATUS_CANCELED, NULL,
                          w->w_token);
    }
    else {
        task_try_complete((TaskObject *)w->w_task,
                          ST_STATUS_RAN_TO_COMPLETION, Py_False, NULL);
    }
    Py_DECREF(w);
    if (pending_exc_restore() < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
sem_dispose(PyObject *op, PyObject *unused)
{
    SemObject *self = SemObject_CAST(op);
    SemWaiterObject *chain = NULL, *w;

    if (self->sem_disposed) {
        Py_RETURN_NONE;
    }
    self->sem_disposed = 1;
    /* 9.8: async waiters are dropped, never completed; their timers and
     * registrations go now (blocked threads keep their own timeout and
     * token) */
    while (self->sem_ahead != NULL) {
        w = self->sem_ahead;
        unlink_waiter(self, w);
        w->w_next = chain;
        chain = w;
    }
    while (chain != NULL) {
        w = chain;
        chain = w->w_next;
        w->w_next = NULL;
        waiter_cleanup(w);
        Py_DECREF(w);
    }
    Py_RETURN_NONE;
}

static PyObject *
sem_count_get(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(SemObject_CAST(op)->sem_count);
}

static PyObject *
sem_waiters_get(PyObject *op, void *closure)
{
    SemObject *self = SemObject_CAST(op);
    (void)closure;
    return Py_BuildValue("(nn)", self->sem_ns, self->sem_na);
}

static PyObject *
Sem_repr(PyObject *op)
{
    SemObject *self = SemObject_CAST(op);
    return PyUnicode_FromFormat("<SemaphoreSlim count=%zd max=%zd%s>",
                                self->sem_count, self->sem_max,
                                self->sem_disposed ? " disposed" : "");
}

/* The context-manager protocols (issue 14), which .NET's SemaphoreSlim has
 * no counterpart of but a Python user expects: `with sem:` is wait() then
 * release(); `async with sem:` awaits wait_async() (what __aenter__
 * returns), then release()s.  Neither takes a timeout or a token: use the
 * methods for those. */
static PyObject *
sem_enter(PyObject *op, PyObject *Py_UNUSED(unused))
{
    PyObject *noargs = PyTuple_New(0), *res;
    if (noargs == NULL) {
        return NULL;
    }
    res = sem_wait(op, noargs, NULL);
    Py_DECREF(noargs);
    return res;
}

static PyObject *
exit_release(PyObject *op, Py_ssize_t nargs, const char *name)
{
    PyObject *prev;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes exactly 3 arguments (%zd given)", name,
                     nargs);
        return NULL;
    }
    prev = sem_release(op, NULL, 0, NULL);
    if (prev == NULL) {
        return NULL;
    }
    Py_DECREF(prev);
    Py_RETURN_NONE; /* false: an exception of the block propagates */
}

static PyObject *
sem_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    return exit_release(op, nargs, "__exit__");
}

static PyObject *
sem_aenter(PyObject *op, PyObject *Py_UNUSED(unused))
{
    return sem_wait_async(op, NULL, 0, NULL);
}

static PyObject *
sem_aexit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *prev = exit_release(op, nargs, "__aexit__");
    (void)args;
    if (prev == NULL) {
        return NULL;
    }
    Py_DECREF(prev);
    return Py_NewRef(g_st->cached[0]); /* Task.completed_task: None */
}

static PyMethodDef Sem_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))sem_wait,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("wait($self, /, timeout=None, cancellation_token=None)\n"
               "--\n\n"
               "Block until the semaphore is entered (True) or timeout\n"
               "seconds pass (False); raise OperationCanceledError when the\n"
               "token fires.  The GIL is released while it blocks.  Like\n"
               "SemaphoreSlim.Wait.")},
    {"wait_async", (PyCFunction)(void (*)(void))sem_wait_async,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("wait_async($self, /, timeout=None, cancellation_token=None)"
               "\n--\n\n"
               "A Task[bool]: True once the semaphore is entered (a\n"
               "completed task if it can be at once), False after timeout\n"
               "seconds, canceled when the token fires.  Waiters are served\n"
               "in FIFO order and resume asynchronously.  Like WaitAsync.")},
    {"release", (PyCFunction)(void (*)(void))sem_release,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("release($self, /, release_count=1)\n--\n\n"
               "Leave the semaphore release_count times, waking blocked\n"
               "threads first, then async waiters in FIFO order; return the\n"
               "count before the call.  Beyond the maximum, raise\n"
               "SemaphoreFullError and release nothing.  Like Release.")},
    {"dispose", sem_dispose, METH_NOARGS,
     PyDoc_STR("dispose($self, /)\n--\n\n"
               "Afterwards wait, wait_async and release raise\n"
               "ObjectDisposedError; pending async waiters are dropped,\n"
               "never completed.  Like Dispose.")},
    {"_expire", sem_expire, METH_O,
     PyDoc_STR("_expire($self, waiter, /)\n--\n\n"
               "Internal: a waiter's timeout or token fired.")},
    {"__enter__", sem_enter, METH_NOARGS,
     PyDoc_STR("__enter__($self, /)\n--\n\n"
               "`with sem:` enters with wait() (returns True).")},
    {"__exit__", (PyCFunction)(void (*)(void))sem_exit, METH_FASTCALL,
     PyDoc_STR("__exit__($self, exc_type, exc_value, traceback, /)\n--\n\n"
               "Leaves with release().")},
    {"__aenter__", sem_aenter, METH_NOARGS,
     PyDoc_STR("__aenter__($self, /)\n--\n\n"
               "`async with sem:` awaits wait_async() (returns its Task).")},
    {"__aexit__", (PyCFunction)(void (*)(void))sem_aexit, METH_FASTCALL,
     PyDoc_STR("__aexit__($self, exc_type, exc_value, traceback, /)\n--\n\n"
               "Leaves with release(); returns a completed Task.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Sem_getset[] = {
    {"current_count", sem_count_get, NULL,
     PyDoc_STR("The count available now (readable after dispose)."), NULL},
    {"_waiters", sem_waiters_get, NULL,
     PyDoc_STR("Internal: (blocked threads, queued async waiters)."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Sem_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(SemObject, sem_weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Sem_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "SemaphoreSlim(initial_count, maximum_count=None)\n--\n\n"
         "Limits how many holders a resource has at once (like\n"
         "System.Threading.SemaphoreSlim).  wait() blocks; wait_async()\n"
         "returns a Task[bool] to await, granted in FIFO order.  With\n"
         "initial_count=1 it is the async lock of async methods:\n\n"
         "    await sem.wait_async()\n"
         "    try:\n"
         "        ...\n"
         "    finally:\n"
         "        sem.release()\n\n"
         "or, the same (a Python addition; .NET has no such thing):\n\n"
         "    async with sem:\n"
         "        ...\n\n"
         "`with sem:` is wait() then release() for a blocking thread.\n")},
    {Py_tp_new, Sem_new},
    {Py_tp_traverse, Sem_traverse},
    {Py_tp_clear, Sem_clear},
    {Py_tp_dealloc, Sem_dealloc},
    {Py_tp_repr, Sem_repr},
    {Py_tp_methods, Sem_methods},
    {Py_tp_getset, Sem_getset},
    {Py_tp_members, Sem_members},
    {0, NULL},
};

static PyType_Spec Sem_spec = {
    .name = "sharptask.SemaphoreSlim",
    .basicsize = sizeof(SemObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Sem_slots,
};

/* --------------------------------------------------------- the waiter */

static int
Waiter_traverse(PyObject *op, visitproc visit, void *arg)
{
    SemWaiterObject *w = SemWaiterObject_CAST(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(w->w_task);
    Py_VISIT(w->w_token);
    Py_VISIT(w->w_cts);
    Py_VISIT(w->w_reg);
    return 0;
}

static int
Waiter_clear(PyObject *op)
{
    SemWaiterObject *w = SemWaiterObject_CAST(op);
    Py_CLEAR(w->w_task);
    Py_CLEAR(w->w_token);
    Py_CLEAR(w->w_cts);
    Py_CLEAR(w->w_reg);
    return 0;
}

static void
Waiter_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): holds a task, a token, a source and a
     * registration */
    Py_TRASHCAN_BEGIN(op, Waiter_dealloc)
    (void)Waiter_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *
waiter_queued_get(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(SemWaiterObject_CAST(op)->w_queue != 0);
}

static PyGetSetDef Waiter_getset[] = {
    {"queued", waiter_queued_get, NULL,
     PyDoc_STR("True while the waiter waits in a queue."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Waiter_members[] = {
    {"cts", T_OBJECT, offsetof(SemWaiterObject, w_cts), 0,
     PyDoc_STR("The timeout's CancellationTokenSource, or None.")},
    {"reg", T_OBJECT, offsetof(SemWaiterObject, w_reg), 0,
     PyDoc_STR("The registration on the caller's token, or None.")},
    {"task", T_OBJECT, offsetof(SemWaiterObject, w_task), READONLY,
     PyDoc_STR("The waiter's task.")},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Waiter_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "Internal: one waiter of a SemaphoreSlim.")},
    {Py_tp_traverse, Waiter_traverse},
    {Py_tp_clear, Waiter_clear},
    {Py_tp_dealloc, Waiter_dealloc},
    {Py_tp_getset, Waiter_getset},
    {Py_tp_members, Waiter_members},
    {0, NULL},
};

static PyType_Spec Waiter_spec = {
    .name = "sharptask._SemaphoreWaiter",
    .basicsize = sizeof(SemWaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Waiter_slots,
};

/* ------------------------------------------------------ module state */

int
semaphore_module_exec(PyObject *mod, st_state *st)
{
    PyObject *errors;
    st->Semaphore_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(mod, &Sem_spec, NULL);
    if (st->Semaphore_type == NULL
        || PyModule_AddType(mod, st->Semaphore_type) < 0) {
        return -1;
    }
    st->SemWaiter_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(mod, &Waiter_spec, NULL);
    if (st->SemWaiter_type == NULL) {
        return -1;
    }
    errors = PyImport_ImportModule("sharptask._errors");
    if (errors == NULL) {
        return -1;
    }
    st->SemaphoreFullError =
        PyObject_GetAttrString(errors, "SemaphoreFullError");
    Py_DECREF(errors);
    return st->SemaphoreFullError == NULL ? -1 : 0;
}

int
semaphore_module_traverse(st_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->Semaphore_type);
    Py_VISIT(st->SemWaiter_type);
    Py_VISIT(st->SemaphoreFullError);
    return 0;
}

void
semaphore_module_clear(st_state *st)
{
    Py_CLEAR(st->Semaphore_type);
    Py_CLEAR(st->SemWaiter_type);
    Py_CLEAR(st->SemaphoreFullError);
}
