/* py_timer.c - the native timer shot behind Timer, PeriodicTimer and
 * TimeProvider.system (SPEC P5), and the way in for the time_provider=
 * forms of Task.delay and wait_async (P6a).
 *
 *     class _TimerHandle:                 # internal: one armed shot
 *         def cancel(self) -> bool: ...   # True: it will never fire
 *         armed: bool                     # in the timer heap now
 *
 *     _native._timer_start(seconds, fn) -> _TimerHandle
 *         # fn() runs once on a pool thread after `seconds` (0: queued to
 *         # the pool at once, never inline), unless cancel() won
 *
 * A shot is an entry in the core timer's heap (csrc/core/st_timer.c: one
 * thread, O(log n) add and cancel) plus a pool work item.  The timer thread
 * does no Python work: when the entry is due it only queues the work item;
 * a pool worker then calls fn with the GIL.  While armed or queued the
 * handle holds a reference to itself (so fn and the handle stay alive
 * with no other owner, as .NET roots a scheduled timer), dropped by the
 * work item after fn, or by a cancel that took the entry out of the heap.
 * Everything about the handle except the entry's own fields is touched
 * only with the GIL.
 *
 * The Python layer (sharptask._timers) builds on it: Timer re-arms a new
 * shot for each period (drift-compensated, before the callback as libuv
 * does) and skips a shot that a change() or dispose() made stale;
 * PeriodicTimer, TimeProvider and FakeTimeProvider are plain Python.
 */
#include "binding.h"
#include "py_args.h"
#include "py_errors.h"
#include "py_pool.h"
#include "py_state.h"
#include "py_timer.h"

#include <string.h> /* memset */

#include "st_error.h"
#include "st_list.h"   /* st_container_of */
#include "st_thread.h" /* st_now_ns */

/* -------------------------------------------------------------- types */

typedef struct TimerHandleObject {
    PyObject_HEAD
    st_timer_entry_t th_entry; /* in the timer's heap while armed */
    st_work_t th_work;         /* queued on the pool once due */
    PyObject *th_fn;           /* called once; NULL after the call/cancel */
    st_timer_t *th_timer;      /* the timer it was armed in (NULL: none) */
    int th_pending;            /* GIL: holds the self-reference */
} TimerHandleObject;

#define TimerHandleObject_CAST(op) ((TimerHandleObject *)(op))

/* ------------------------------------------------------------ helpers */

/* On a worker, GIL held. */
static void
handle_work_run(st_work_t *w)
{
    TimerHandleObject *h = st_container_of(w, TimerHandleObject, th_work);
    PyObject *fn = h->th_fn, *r;

    h->th_fn = NULL; /* one shot; and a re-entrant cancel finds nothing */
    if (fn != NULL) {
        r = PyObject_CallNoArgs(fn);
        if (r == NULL) {
            write_unraisable(fn); /* no caller to raise it to; an exit
                                     error is not reported (H5) */
        }
        Py_XDECREF(r);
        Py_DECREF(fn);
    }
    h->th_pending = 0;
    Py_DECREF(h); /* the self-reference of the armed shot */
}

/* The timer thread, no GIL: only hand the work item to the pool. */
static void
handle_fire(st_timer_entry_t *e)
{
    TimerHandleObject *h = st_container_of(e, TimerHandleObject, th_entry);
    st_pool_t *pool = g_st != NULL ? pool_peek(g_st) : NULL;

    if (pool == NULL || st_pool_submit(pool, &h->th_work) != 0) {
        /* shutting down: leak the handle and its callable */
    }
}

/* ---------------------------------------------------------- lifecycle */

static int
TimerHandle_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(TimerHandleObject_CAST(op)->th_fn);
    return 0;
}

static int
TimerHandle_clear(PyObject *op)
{
    TimerHandleObject *h = TimerHandleObject_CAST(op);
    if (!h->th_pending) {
        Py_CLEAR(h->th_fn); /* a pending shot owns it until it runs */
    }
    return 0;
}

static void
TimerHandle_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, TimerHandle_dealloc) /* H4: holds a callable */
    (void)TimerHandle_clear(op);
    Py_CLEAR(TimerHandleObject_CAST(op)->th_fn);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* ------------------------------------------------------------ methods */

static PyObject *
timer_handle_cancel(PyObject *op, PyObject *unused)
{
    TimerHandleObject *h = TimerHandleObject_CAST(op);
    st_timer_t *timer = g_st != NULL ? g_st->timer : NULL;
    PyObject *fn;

    /* A handle armed before a fork belongs to the parent's timer, which
     * the child abandoned: never touch the child's heap with it. */
    if (!h->th_pending || timer == NULL || h->th_timer != timer
        || st_timer_cancel(timer, &h->th_entry) != 0) {
        Py_RETURN_FALSE; /* fired (queued or ran), or never armed */
    }
    fn = h->th_fn;
    h->th_fn = NULL;
    h->th_pending = 0;
    Py_XDECREF(fn);
    Py_DECREF(h); /* the armed shot's self-reference; op is still held by
                     the caller */
    Py_RETURN_TRUE;
}

static PyObject *
timer_handle_armed(PyObject *op, void *closure)
{
    return PyBool_FromLong(TimerHandleObject_CAST(op)->th_pending);
}

/* _timer_start(seconds, fn) -> _TimerHandle */
static PyObject *
mod_timer_start(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    st_state *st = get_st_state(mod);
    TimerHandleObject *h;
    st_timer_t *timer;
    st_pool_t *pool;
    uint64_t ns;
    int infinite, rc;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_timer_start(seconds, fn)");
        return NULL;
    }
    if (parse_timeout(args[0], "seconds", &ns, &infinite) < 0) {
        return NULL;
    }
    if (infinite) {
        PyErr_SetString(PyExc_ValueError,
                        "_timer_start: an infinite shot never fires");
        return NULL;
    }
    if (!PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_timer_start: fn not callable");
        return NULL;
    }
    if ((pool = get_pool(st)) == NULL || (timer = get_timer(st)) == NULL) {
        return NULL;
    }
    h = PyObject_GC_New(TimerHandleObject, st->TimerHandle_type);
    if (h == NULL) {
        return NULL;
    }
    memset(&h->th_entry, 0, sizeof(h->th_entry));
    h->th_entry.fire = handle_fire;
    h->th_work.next = NULL;
    h->th_work.run = handle_work_run;
    h->th_work.flags = ST_WORK_DOMAIN;
    h->th_fn = Py_NewRef(args[1]);
    h->th_timer = ns == 0 ? NULL : timer;
    h->th_pending = 1;
    PyObject_GC_Track(h);
    Py_INCREF(h); /* the armed shot's self-reference */
    rc = ns == 0 ? st_pool_submit(pool, &h->th_work) /* due now: queue */
                 : st_timer_add(timer, &h->th_entry, st_now_ns() + ns);
    if (rc != 0) {
        h->th_pending = 0;
        Py_CLEAR(h->th_fn);
        Py_DECREF(h);
        Py_DECREF(h);
        st_raise_from_code(st, rc);
        return NULL;
    }
    return (PyObject *)h;
}

/* -------------------------------------------- time_provider= forwards */

/* sharptask._timers.<name>(*args): the Python side of P6a. */
static PyObject *
call_timers(st_state *st, const char *name, PyObject *const *args,
            size_t n)
{
    PyObject *fn, *r;

    if (st->timers_module == NULL) {
        st->timers_module = PyImport_ImportModule("sharptask._timers");
        if (st->timers_module == NULL) {
            return NULL;
        }
    }
    fn = PyObject_GetAttrString(st->timers_module, name);
    if (fn == NULL) {
        return NULL;
    }
    r = PyObject_Vectorcall(fn, args, n, NULL);
    Py_DECREF(fn);
    return r;
}

PyObject *
timers_delay(st_state *st, PyObject *seconds, PyObject *token,
             PyObject *provider)
{
    PyObject *a[3] = {seconds, token, provider};
    return call_timers(st, "delay", a, 3);
}

PyObject *
timers_wait_async(st_state *st, PyObject *task, PyObject *timeout,
                  PyObject *token, PyObject *provider)
{
    PyObject *a[4] = {task, timeout, token, provider};
    return call_timers(st, "wait_async", a, 4);
}

/* --------------------------------------------------------------- spec */

static PyMethodDef TimerHandle_methods[] = {
    {"cancel", timer_handle_cancel, METH_NOARGS,
     PyDoc_STR("cancel($self, /)\n--\n\n"
               "Take the shot out of the timer: True if it will never "
               "fire, False if it already fired (it may be running).")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef TimerHandle_getset[] = {
    {"armed", timer_handle_armed, NULL,
     PyDoc_STR("True until the shot ran or was canceled."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot TimerHandle_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
                    "One armed timer shot (internal): fn() on a pool "
                    "thread when due.")},
    {Py_tp_traverse, TimerHandle_traverse},
    {Py_tp_clear, TimerHandle_clear},
    {Py_tp_dealloc, TimerHandle_dealloc},
    {Py_tp_methods, TimerHandle_methods},
    {Py_tp_getset, TimerHandle_getset},
    {0, NULL},
};

static PyType_Spec TimerHandle_spec = {
    .name = "sharptask._native._TimerHandle",
    .basicsize = sizeof(TimerHandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = TimerHandle_slots,
};

static PyMethodDef timer_methods[] = {
    {"_timer_start", (PyCFunction)(void (*)(void))mod_timer_start,
     METH_FASTCALL,
     PyDoc_STR("_timer_start(seconds, fn, /)\n--\n\n"
               "Call fn() once on a pool thread after `seconds` (the "
               "timer thread's heap); returns the _TimerHandle.")},
    {NULL, NULL, 0, NULL},
};

int
timer_module_exec(PyObject *mod, st_state *st)
{
    st->TimerHandle_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        mod, &TimerHandle_spec, NULL);
    if (st->TimerHandle_type == NULL
        || PyModule_AddType(mod, st->TimerHandle_type) < 0) {
        return -1;
    }
    st->timers_module = NULL;
    return PyModule_AddFunctions(mod, timer_methods);
}

int
timer_module_traverse(st_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->TimerHandle_type);
    Py_VISIT(st->timers_module);
    return 0;
}

void
timer_module_clear(st_state *st)
{
    Py_CLEAR(st->TimerHandle_type);
    Py_CLEAR(st->timers_module);
}
