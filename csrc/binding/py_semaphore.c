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
 * The count, the maximum, the two waiter queues, their order (reference
 * section 9.4: blocked threads first, then the FIFO), "acquisition wins"
 * against a timeout or a token (9.2, 9.3), release beyond the maximum
 * (ST_EFULL, 9.6) and dispose (9.8) are the core's st_sem_t
 * (csrc/core/st_semaphore.h), embedded in the object.  This file keeps
 * what needs Python: argument parsing (module.c's shared parsers), the
 * task of an async waiter, tokens and timeouts of async waits, and the
 * GIL release around a blocking wait.
 *
 * Waiters:
 *   - an async waiter (wait_async) queues a st_sem_waiter_t node with a
 *     fn and a task made with RUN_CONTINUATIONS_ASYNCHRONOUSLY (9.5:
 *     release never runs a waiter's continuation inline).  Without a
 *     timeout or a token (the async lock) the node is a bare sem_plain
 *     (node + task, PyMem memory, fn plain_granted); with one it is a
 *     _SemaphoreWaiter object (fn waiter_granted) that _arm and _expire
 *     can name.  While queued, the semaphore owns the node: the sem_plain
 *     and its task's creation reference, or one reference to the waiter
 *     object (taken before st_sem_wait_async); whoever takes the node out
 *     drops it (the fn, _expire, dispose, clear).  release() is always
 *     called with the GIL held, so the core calls the fn with the GIL,
 *     after its own lock is released;
 *   - a thread blocked in wait() queues a blocking node (fn NULL): on its
 *     stack, or in a waiter object when a token must be able to cancel it.
 *     It sleeps in st_sem_wait_block with the GIL released, in slices
 *     that answer Ctrl-C (T6) and the interpreter's exit (H5); every way
 *     out that is not a grant takes the node out with st_sem_cancel, and
 *     a cancel that loses to a grant means the thread holds a count;
 *   - timeouts and tokens of async waits (and the token of a blocking
 *     wait) are armed by sharptask._semaphore (a CancellationTokenSource
 *     with cancel_after, linked to the token), whose callback calls
 *     _expire(), that is st_sem_cancel; a granted waiter's source and
 *     registration are disposed at once (K3).
 *
 * Every call into the core but st_sem_wait_block runs with the GIL held;
 * the core's own lock is a leaf that is never held while the GIL is taken
 * or Python code runs.
 */
#include "binding.h"
#include "py_task.h"
#include "py_args.h"
#include "py_cancel_reg.h"
#include "py_errors.h"
#include "py_gil.h"
#include "py_pool.h"
#include "py_semaphore.h"
#include "py_state.h"

#include <pthread.h>      /* pthread_cleanup_push (issue 9 item 25) */
#include <stddef.h>       /* offsetof */
#include <structmember.h> /* PyMemberDef */

#include "st_error.h"     /* ST_E* codes */
#include "st_list.h"      /* st_container_of */
#include "st_semaphore.h" /* the count and the waiter queues */
#include "st_thread.h"    /* st_now_ns, the semaphore's mutex (traverse) */

#define TCO_RCA 0x40u               /* RUN_CONTINUATIONS_ASYNCHRONOUSLY */

/* ------------------------------------------------------------ structs */

typedef struct SemWaiterObject {
    PyObject_HEAD
    st_sem_waiter_t w_core; /* the node in the core's queues */
    PyObject *w_task;  /* async: the promise it completes; blocking: NULL */
    PyObject *w_token; /* the caller's cancellation token, or NULL */
    PyObject *w_cts;   /* the timeout's source (set by _arm), or NULL */
    PyObject *w_reg;   /* a registration on the token (_arm), or NULL */
    void *w_sem;       /* the semaphore it waits on: only compared, never
                          followed (_expire) */
} SemWaiterObject;

/* An async waiter with no timeout and no token (the lock of async
 * methods): no object of its own, only the node and the task.  The queue
 * owns it (and the task's creation reference) until it is taken out. */
typedef struct sem_plain {
    st_sem_waiter_t p_core; /* fn: plain_granted */
    PyObject *p_task;       /* the promise it completes (strong) */
} sem_plain;

typedef struct SemObject {
    PyObject_HEAD
    st_sem_t sem_core;  /* count word, waiter queues, leaf mutex */
    uint8_t sem_ready;  /* sem_core was initialised (destroy it) */
    PyObject *sem_weakreflist;
} SemObject;

#define SemObject_CAST(op) ((SemObject *)(op))
#define SemWaiterObject_CAST(op) ((SemWaiterObject *)(op))
#define SemWaiter_of_node(n)                                              \
    st_container_of(st_sem_waiter_of(n), SemWaiterObject, w_core)
#define SemPlain_of_node(n)                                               \
    st_container_of(st_sem_waiter_of(n), sem_plain, p_core)

/* ------------------------------------------------------------ helpers */

static PyObject *
raise_sem_disposed(st_state *st, const char *what)
{
    PyErr_Format(st->ObjectDisposedError,
                 "%s: the SemaphoreSlim has been disposed", what);
    return NULL;
}

static void waiter_granted(st_waitq_node_t *node);
static void plain_granted(st_waitq_node_t *node);

/* A waiter object of self: async (with a task, granted through
 * waiter_granted) or, with `blocking`, a blocking node with no task. */
static SemWaiterObject *
waiter_new(st_state *st, SemObject *self, PyObject *token, int blocking)
{
    SemWaiterObject *w = PyObject_GC_New(SemWaiterObject,
                                         st->SemWaiter_type);
    if (w == NULL) {
        return NULL;
    }
    st_sem_waiter_init(&w->w_core, blocking ? NULL : waiter_granted);
    w->w_token = Py_XNewRef(token);
    w->w_cts = NULL;
    w->w_reg = NULL;
    w->w_sem = self;
    w->w_task = blocking ? NULL : task_new_promise(st, NULL, TCO_RCA);
    PyObject_GC_Track(w);
    if (!blocking && w->w_task == NULL) {
        Py_DECREF(w);
        return NULL;
    }
    return w;
}

/* Disposes w's timeout source and drops its token registration (K3).
 * Runs Python code: call it with the semaphore consistent.  Errors are
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

/* The node's fn of an async waiter: a release granted it one count.  The
 * core calls it on the releasing thread, which holds the GIL (release()
 * and give_back() are the only callers of st_sem_release), with no core
 * lock held and the semaphore consistent: the Python code that runs here
 * may call back into the semaphore.  Drops the queue's reference. */
static void
waiter_granted(st_waitq_node_t *node)
{
    SemWaiterObject *w = SemWaiter_of_node(node);
    if (w->w_task != NULL) { /* NULL only once the GC cleared w */
        task_try_complete((TaskObject *)w->w_task,
                          ST_STATUS_RAN_TO_COMPLETION, Py_True, NULL);
        if (pending_exc_restore() < 0) {
            write_unraisable(w->w_task);
        }
    }
    waiter_cleanup(w);
    Py_DECREF(w); /* the queue's reference */
}

/* The node's fn of a plain async waiter, as waiter_granted. */
static void
plain_granted(st_waitq_node_t *node)
{
    sem_plain *p = SemPlain_of_node(node);
    PyObject *task = p->p_task;
    PyMem_Free(p);
    task_try_complete((TaskObject *)task, ST_STATUS_RAN_TO_COMPLETION,
                      Py_True, NULL);
    if (pending_exc_restore() < 0) {
        write_unraisable(task);
    }
    Py_DECREF(task); /* the queue's reference */
}

/* An async node n (fn set) taken out without a grant (dispose, clear):
 * drops what the queue held, never completing the task (9.8); a waiter
 * object's timer and registration go too.  May run Python code. */
static void
async_node_drop(st_waitq_node_t *n)
{
    if (n->fn == plain_granted) {
        sem_plain *p = SemPlain_of_node(n);
        PyObject *task = p->p_task;
        PyMem_Free(p);
        Py_DECREF(task);
    }
    else {
        SemWaiterObject *w = SemWaiter_of_node(n);
        waiter_cleanup(w);
        Py_DECREF(w);
    }
}

/* Gives back one count that this thread holds but will not use (its wait
 * was interrupted, or could not be armed, as it was granted): a
 * release(1), which cannot pass the maximum.  Completing waiters runs
 * Python code, so an exception set by the caller waits aside (issue 9
 * item 20).  After dispose the count is simply dropped. */
static void
give_back(SemObject *self)
{
    PyObject *saved = st_exc_save();
    (void)st_sem_release(&self->sem_core, 1, NULL);
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
arm_waiter(SemObject *self, SemWaiterObject *w, PyObject *timeout,
           PyObject *token)
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

/* A waiter that could not be armed (_arm raised) leaves as if it had
 * never queued: taken out, or, if a release granted it meanwhile, its
 * count given back.  An async waiter's queue reference is dropped here
 * when this call took it out.  The error stays set. */
static void
waiter_unarm(SemObject *self, SemWaiterObject *w)
{
    if (st_sem_cancel(&self->sem_core, &w->w_core) == 0) {
        if (w->w_core.node.fn != NULL) {
            Py_DECREF(w); /* the queue's reference */
        }
    }
    else if (st_sem_waiter_state(&w->w_core) == ST_SEM_GRANTED) {
        give_back(self); /* nobody will learn that it holds one */
    }
    waiter_cleanup(w);
}

/* --------------------------------------------------- blocking waits */

/* Retaking the GIL after a wait slice (issue 9 item 25).  During
 * finalization CPython ends a daemon thread (or an abandoned pool worker)
 * that takes the GIL: pthread_exit inside PyEval_RestoreThread.  The
 * waiter node may be on this thread's stack, which goes with it: the
 * cleanup handler takes it out of the semaphore first (a core call: no
 * GIL, no Python; a count it was granted meanwhile is lost with the
 * thread). */
typedef struct sem_abandon {
    st_sem_t *sem;
    st_sem_waiter_t *waiter;
} sem_abandon;

static void
sem_abandon_run(void *arg)
{
    sem_abandon *a = arg;
    (void)st_sem_cancel(a->sem, a->waiter);
}

static void
restore_thread_sem(PyThreadState *save, st_sem_t *s, st_sem_waiter_t *w)
{
    sem_abandon a = {s, w};
    pthread_cleanup_push(sem_abandon_run, &a);
    PyEval_RestoreThread(save);
    pthread_cleanup_pop(0);
}

/* Outcomes of block_queued. */
#define SEM_GRANTED 1  /* w holds one count */
#define SEM_TIMEDOUT 0 /* the timeout passed: w is out, holds nothing */
#define SEM_CANCELED 2 /* st_sem_cancel took w out (its token: _expire) */

/* Waits for a queued blocking waiter w (st_sem_wait_begin returned
 * ST_SEM_PENDING) with the GIL released, in slices: between two slices
 * it answers Ctrl-C (T6) and the interpreter's exit (H5), which end the
 * wait with -1 and the error set.  Returns SEM_GRANTED, SEM_TIMEDOUT,
 * SEM_CANCELED or -1; w is never queued on return, and on -1 holds
 * nothing (a count granted at the last moment is given back). */
static int
block_queued(st_state *st, SemObject *self, st_sem_waiter_t *w,
             uint64_t timeout_ns)
{
    st_sem_t *s = &self->sem_core;
    st_pool_t *pool = st_pool_current();
    uint64_t deadline, slice;
    int rc = ST_ETIMEDOUT, result, abandon = -1;

    deadline = wait_deadline(timeout_ns);
    if (pool != NULL) {
        st_pool_enter_blocking(pool); /* the pool may add a worker */
    }
    for (;;) {
        PyThreadState *save;
        if ((slice = wait_next_slice(deadline)) == 0) {
            result = SEM_TIMEDOUT;
            break;
        }
        save = PyEval_SaveThread();
        gil_note_released(); /* py_gil.c: the hand-off hint */
        rc = st_sem_wait_block(s, w, slice);
        pool_wait_gil_free(); /* retake the GIL without a sleep */
        restore_thread_sem(save, s, w);
        gil_note_taken();
        if (rc == 0) {
            result = SEM_GRANTED;
            break;
        }
        if (rc == ST_ECANCELED) {
            result = SEM_CANCELED;
            break;
        }
        /* Ctrl-C; H5: a pool item or the exiting thread gives up
         * (quietly reported), a daemon thread waits on */
        if (wait_slice_check(st, &abandon, "the wait was abandoned: the "
                             "interpreter is shutting down") < 0) {
            result = -1;
            break;
        }
    }
    if (pool != NULL) {
        st_pool_leave_blocking(pool);
    }
    if ((result == SEM_TIMEDOUT || result == -1)
        && st_sem_cancel(s, w) != 0) {
        /* granted as it gave up: acquisition wins over a timeout (9.2);
         * an interrupted caller never learns it holds the count, so that
         * goes back */
        if (result == SEM_TIMEDOUT) {
            result = SEM_GRANTED;
        }
        else {
            give_back(self);
        }
    }
    return result;
}

/* ---------------------------------------------------------- lifecycle */

static PyObject *
Sem_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"initial_count", "maximum_count", NULL};
    PyObject *init_o, *max_o = Py_None;
    Py_ssize_t init, max = ST_SEM_MAX;
    SemObject *self;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:SemaphoreSlim",
                                     kwlist, &init_o, &max_o)) {
        return NULL;
    }
    /* 9.1: initial_count is checked first; both are .NET ints (H2: one
     * parser, issue 9 item 27): maximum_count above INT32_MAX is a
     * ValueError naming it, before the core sees it */
    if (parse_count(init_o, "initial_count", 0, ST_SEM_MAX, &init) < 0
        || (max_o != Py_None
            && parse_count(max_o, "maximum_count", 1, ST_SEM_MAX, &max)
                   < 0)) {
        return NULL;
    }
    if (init > max) {
        PyErr_Format(PyExc_ValueError, "initial_count must be between 0 "
                     "and maximum_count (%zd), not %zd", max, init);
        return NULL;
    }
    self = PyObject_GC_New(SemObject, tp);
    if (self == NULL) {
        return NULL;
    }
    self->sem_ready = 0;
    self->sem_weakreflist = NULL;
    rc = st_sem_init(&self->sem_core, init, max);
    if (rc == 0) {
        self->sem_ready = 1;
    }
    PyObject_GC_Track(self);
    if (rc != 0) {
        st_raise_from_code(g_st, rc); /* checked above: not reached */
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* The queue's references: the async waiters (node fn set) queued now.
 * Blocking nodes are not objects the queue owns (their thread holds the
 * waiter object, if any).  The core's mutex is a leaf and visit runs no
 * Python code, so it is held across the walk; nothing else changes the
 * queues meanwhile but a dying thread's sem_abandon_run. */
static int
Sem_traverse(PyObject *op, visitproc visit, void *arg)
{
    SemObject *self = SemObject_CAST(op);
    st_waitq_node_t *n;
    int r = 0;
    Py_VISIT(Py_TYPE(op));
    if (!self->sem_ready) {
        return 0;
    }
    st_mutex_lock(&self->sem_core.mu);
    for (n = st_waitq_front(&self->sem_core.async_q); n != NULL && r == 0;
         n = n->next) {
        if (n->fn == plain_granted) {
            r = visit(SemPlain_of_node(n)->p_task, arg);
        }
        else if (n->fn != NULL) {
            r = visit((PyObject *)SemWaiter_of_node(n), arg);
        }
    }
    st_mutex_unlock(&self->sem_core.mu);
    return r;
}

/* The first async node queued now (fn set), or NULL (GIL held). */
static st_waitq_node_t *
first_async_node(SemObject *self)
{
    st_waitq_node_t *n;
    st_mutex_lock(&self->sem_core.mu);
    for (n = st_waitq_front(&self->sem_core.async_q); n != NULL;
         n = n->next) {
        if (n->fn != NULL) {
            break;
        }
    }
    st_mutex_unlock(&self->sem_core.mu);
    return n;
}

/* Takes every async waiter out (never completed, as at dispose, but the
 * semaphore stays usable) and drops the queue's references. */
static int
Sem_clear(PyObject *op)
{
    SemObject *self = SemObject_CAST(op);
    st_waitq_node_t *n;
    if (!self->sem_ready) {
        return 0;
    }
    while ((n = first_async_node(self)) != NULL) {
        if (st_sem_cancel(&self->sem_core, st_sem_waiter_of(n)) != 0) {
            break; /* not reached: only GIL holders take async nodes */
        }
        async_node_drop(n);
    }
    return 0;
}

static void
Sem_dealloc(PyObject *op)
{
    SemObject *self = SemObject_CAST(op);
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): its queues hold waiters */
    Py_TRASHCAN_BEGIN(op, Sem_dealloc)
    if (self->sem_weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    (void)Sem_clear(op);
    if (self->sem_ready) {
        /* no blocked thread: each holds a reference to the semaphore */
        st_sem_destroy(&self->sem_core);
    }
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* ------------------------------------------------------------ methods */

/* Queues an async waiter w (its task is what the caller returns) and
 * returns 1, or returns 0 when it took a count at once after all (a
 * release came between the caller's try and this call), or -1 with
 * ObjectDisposedError.  The queue's reference is taken here. */
static int
queue_async(st_state *st, SemObject *self, SemWaiterObject *w)
{
    int rc;
    Py_INCREF(w); /* the queue's reference, dropped by its taker */
    rc = st_sem_wait_async(&self->sem_core, &w->w_core);
    if (rc == ST_SEM_PENDING) {
        return 1;
    }
    Py_DECREF(w); /* not queued */
    if (rc == 0) {
        return 0;
    }
    raise_sem_disposed(st, "wait_async()");
    return -1;
}

/* wait_async() with no timeout and no token, once the count was 0: a
 * plain node queued at the tail of the FIFO, and its task, or True if a
 * count came meanwhile.  Refs: new. */
static PyObject *
queue_plain(st_state *st, SemObject *self)
{
    sem_plain *p = PyMem_Malloc(sizeof(*p));
    PyObject *task;
    int rc;
    if (p == NULL) {
        return PyErr_NoMemory();
    }
    p->p_task = task_new_promise(st, NULL, TCO_RCA);
    if (p->p_task == NULL) {
        PyMem_Free(p);
        return NULL;
    }
    st_sem_waiter_init(&p->p_core, plain_granted);
    rc = st_sem_wait_async(&self->sem_core, &p->p_core);
    if (rc == ST_SEM_PENDING) {
        return Py_NewRef(p->p_task); /* the queue keeps its own */
    }
    task = p->p_task;
    PyMem_Free(p);
    Py_DECREF(task);
    if (rc == 0) {
        return Py_NewRef(st->cached[2]); /* True */
    }
    return raise_sem_disposed(st, "wait_async()");
}

/* wait_async with arguments (the hot path without is sem_wait_async,
 * kept small: no inlining here). */
static Py_NO_INLINE PyObject *
wait_async_args(SemObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    st_state *st = g_st;
    PyObject *timeout = Py_None, *token = Py_None, *task;
    SemWaiterObject *w;
    Py_ssize_t i, nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    uint64_t ns = 0;
    int infinite = 1, rc;

    if (st_sem_is_closed(&self->sem_core)) {
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
        rc = st_sem_try_wait(&self->sem_core);
        if (rc == 0) {
            return Py_NewRef(st->cached[2]); /* True (T12) */
        }
        if (rc == ST_ECLOSED) {
            return raise_sem_disposed(st, "wait_async()");
        }
        return queue_plain(st, self);
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
    rc = st_sem_try_wait(&self->sem_core);
    if (rc == 0) {
        return Py_NewRef(st->cached[2]);
    }
    if (rc == ST_ECLOSED) {
        return raise_sem_disposed(st, "wait_async()");
    }
    if (!infinite && ns == 0) {
        return Py_NewRef(st->cached[1]); /* False */
    }
    w = waiter_new(st, self, token == Py_None ? NULL : token, 0);
    if (w == NULL) {
        return NULL;
    }
    rc = queue_async(st, self, w);
    if (rc <= 0) {
        Py_DECREF(w);
        return rc == 0 ? Py_NewRef(st->cached[2]) : NULL;
    }
    task = Py_NewRef(w->w_task);
    if (arm_waiter(self, w, timeout, token) < 0) {
        /* could not arm: take the waiter back out, as if never queued */
        waiter_unarm(self, w);
        Py_DECREF(w);
        Py_DECREF(task);
        return NULL;
    }
    Py_DECREF(w);
    return task;
}

static PyObject *
sem_wait_async(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    SemObject *self = SemObject_CAST(op);
    int rc;
    if (nargs != 0 || kwnames != NULL) {
        return wait_async_args(self, args, nargs, kwnames);
    }
    /* the hot path: no timer, no token; one CAS when free */
    rc = st_sem_try_wait(&self->sem_core);
    if (rc == 0) {
        return Py_NewRef(g_st->cached[2]); /* True (T12) */
    }
    if (rc == ST_ECLOSED) {
        return raise_sem_disposed(g_st, "wait_async()");
    }
    return queue_plain(g_st, self);
}

static PyObject *
sem_wait(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "cancellation_token", NULL};
    st_state *st = g_st;
    SemObject *self = SemObject_CAST(op);
    PyObject *timeout = Py_None, *token = Py_None;
    SemWaiterObject *wo = NULL;
    st_sem_waiter_t stack_w, *w;
    uint64_t ns = 0;
    int infinite = 1, rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:wait", kwlist,
                                     &timeout, &token)) {
        return NULL;
    }
    /* 9.2: disposed, then the timeout, then the token */
    if (st_sem_is_closed(&self->sem_core)) {
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
    rc = st_sem_try_wait(&self->sem_core);
    if (rc == 0) {
        Py_RETURN_TRUE;
    }
    if (rc == ST_ECLOSED) {
        return raise_sem_disposed(st, "wait()");
    }
    if (!infinite && ns == 0) {
        Py_RETURN_FALSE;
    }
    /* a blocking node: in a waiter object when the token must be able to
     * take it out (_expire), else on this stack */
    if (token != Py_None) {
        wo = waiter_new(st, self, token, 1);
        if (wo == NULL) {
            return NULL;
        }
        w = &wo->w_core;
    }
    else {
        st_sem_waiter_init(&stack_w, NULL);
        w = &stack_w;
    }
    /* 9.4: behind queued async waiters, in their FIFO; else a blocked
     * thread, served before them (the core decides) */
    rc = st_sem_wait_begin(&self->sem_core, w);
    if (rc != ST_SEM_PENDING) {
        Py_XDECREF(wo);
        if (rc == 0) {
            Py_RETURN_TRUE;
        }
        return raise_sem_disposed(st, "wait()");
    }
    if (wo != NULL && arm_waiter(self, wo, Py_None, token) < 0) {
        waiter_unarm(self, wo);
        Py_DECREF(wo);
        return NULL;
    }
    rc = block_queued(st, self, w, infinite ? UINT64_MAX : ns);
    if (wo != NULL) {
        waiter_cleanup(wo); /* keeps an error of the wait aside */
        Py_DECREF(wo);
    }
    switch (rc) {
    case SEM_GRANTED:
        Py_RETURN_TRUE;
    case SEM_TIMEDOUT:
        Py_RETURN_FALSE;
    case SEM_CANCELED:
        /* K3: its token fired (_expire); a bare _expire call is a
         * timeout */
        if (cancel_token_requested(st, token)) {
            return raise_oce(st, token);
        }
        Py_RETURN_FALSE;
    default:
        return NULL;
    }
}

/* release(n) when st_sem_release did not return 0 (rc), or any release
 * with arguments (rc 1: not tried yet).  Kept out of sem_release, whose
 * hot path stays small. */
static Py_NO_INLINE PyObject *
release_slow(SemObject *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames, int rc)
{
    st_state *st = g_st;
    PyObject *n_o = NULL;
    Py_ssize_t n = 1, i;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    int32_t previous = 0;

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
    if (n_o != NULL) {
        if (st_sem_is_closed(&self->sem_core)) {
            return raise_sem_disposed(st, "release()");
        }
        if (parse_count(n_o, "release_count", 1, ST_SEM_MAX, &n) < 0) {
            return NULL; /* a .NET int, >= 1 (9.6) */
        }
    }
    if (rc == 1) {
        /* the GIL is held: the granted waiters' fns run here, with it */
        rc = st_sem_release(&self->sem_core, n, &previous);
    }
    if (rc == 0) {
        return PyLong_FromLong(previous);
    }
    if (rc == ST_ECLOSED) {
        return raise_sem_disposed(st, "release()");
    }
    if (rc == ST_EFULL) {
        /* 9.6: beyond the maximum: nothing was released */
        PyErr_Format(st->SemaphoreFullError,
                     "release(%zd) would exceed the maximum count %ld "
                     "(count is %ld)", n,
                     (long)st_sem_max(&self->sem_core),
                     (long)st_sem_count(&self->sem_core));
        return NULL;
    }
    st_raise_from_code(st, rc);
    return NULL;
}

static PyObject *
sem_release(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    SemObject *self = SemObject_CAST(op);
    int32_t previous;
    int rc;
    if (nargs != 0 || kwnames != NULL) {
        return release_slow(self, args, nargs, kwnames, 1);
    }
    /* the hot path, release(): one CAS when nobody waits; with waiters,
     * the granted ones' fns run here, with the GIL (see waiter_granted) */
    rc = st_sem_release(&self->sem_core, 1, &previous);
    if (rc == 0) {
        return PyLong_FromLong(previous);
    }
    return release_slow(self, NULL, 0, NULL, rc);
}

/* _expire(w): w's timeout ran out or its token fired (called by the
 * callback sharptask._semaphore._arm registered).  If w is still queued,
 * it leaves the queue: an async waiter's task ends canceled with its
 * token if that token is canceled, else with False; a blocked thread
 * wakes and does the same.  Returns True if it did so, False if a
 * release granted w first (acquisition wins) or it left before. */
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
    if (w->w_sem != (void *)self) {
        /* issue 9 item 23: a waiter of another semaphore */
        PyErr_SetString(PyExc_ValueError, "_expire(): waiter belongs to "
                        "another SemaphoreSlim");
        return NULL;
    }
    if (st_sem_cancel(&self->sem_core, &w->w_core) != 0) {
        Py_RETURN_FALSE;
    }
    if (w->w_core.node.fn == NULL) {
        Py_RETURN_TRUE; /* a blocked thread: it wakes with ECANCELED */
    }
    /* an async waiter: the queue's reference is ours now */
    if (w->w_task == NULL) { /* the GC cleared w: nothing to complete */
        Py_DECREF(w);
        Py_RETURN_TRUE;
    }
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
    st_waitq_node_t *chain = NULL, *n;

    /* 9.8: async waiters are dropped, never completed; their timers and
     * registrations go now (blocked threads keep their own timeout and
     * token); idempotent */
    (void)st_sem_close(&self->sem_core, &chain);
    while ((n = st_waitq_chain_pop(&chain)) != NULL) {
        async_node_drop(n);
    }
    Py_RETURN_NONE;
}

static PyObject *
sem_count_get(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromLong(st_sem_count(&SemObject_CAST(op)->sem_core));
}

static PyObject *
sem_waiters_get(PyObject *op, void *closure)
{
    size_t nsync, nasync;
    (void)closure;
    st_sem_waiters(&SemObject_CAST(op)->sem_core, &nsync, &nasync);
    return Py_BuildValue("(nn)", (Py_ssize_t)nsync, (Py_ssize_t)nasync);
}

static PyObject *
Sem_repr(PyObject *op)
{
    st_sem_t *s = &SemObject_CAST(op)->sem_core;
    return PyUnicode_FromFormat("<SemaphoreSlim count=%ld max=%ld%s>",
                                (long)st_sem_count(s), (long)st_sem_max(s),
                                st_sem_is_closed(s) ? " disposed" : "");
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
    /* a queued waiter is referenced by its queue or its blocked thread */
    ST_ASSERT(st_sem_waiter_state(&SemWaiterObject_CAST(op)->w_core)
              != ST_SEM_QUEUED);
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
    /* GIL held: every change of a waiter's state is made by a thread
     * holding it (releases, cancels), but a dying thread's own node */
    return PyBool_FromLong(st_sem_waiter_state(
                               &SemWaiterObject_CAST(op)->w_core)
                           == ST_SEM_QUEUED);
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
     PyDoc_STR("The waiter's task (None for a blocked thread).")},
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
