/* py_context.c - the single-threaded synchronization context (SPEC C5,
 * C8).
 *
 *     class SingleThreadSynchronizationContext(SynchronizationContext):
 *         def post(self, callback, state=None)  # queue; no allocation for
 *                                               # a resuming async method
 *         def send(self, callback, state=None)  # run on the pump thread
 *         def run(self, fn, *args)              # pump until fn's task ends
 *
 * The queue is a core st_workq; box resumptions go in through the box's
 * own work node.  The pump pops without releasing the GIL while items
 * are there (BENCHMARKS rule 4) and sleeps only on an empty queue.
 *
 * The thread records and the deadlock detector are py_deadlock.c's.
 */
#include "binding.h"
#include "py_builder.h"
#include "py_context.h"
#include "py_deadlock.h"
#include "py_errors.h"
#include "py_state.h"
#include "py_task.h"
#include "py_trace.h"

#include "st_error.h"
#include "st_list.h"  /* st_container_of */
#include "st_thread.h"
#include "st_workq.h"

/* ---------------------------------- SingleThreadSynchronizationContext */

typedef struct STContextObject {
    PyObject_HEAD
    st_workq_t stc_queue;
    thread_rec *stc_owner; /* the pumping thread's record, or NULL */
    Py_ssize_t stc_ops;    /* operation_started - operation_completed */
} STContextObject;

#define STContextObject_CAST(op) ((STContextObject *)(op))
#define PUMP_SLICE_NS 50000000u /* Ctrl-C latency while idle (T6) */

/* A box resumption taken from the queue. */
static void
stcontext_box_run(st_work_t *w)
{
    box_resume(st_container_of(w, TaskObject, task_work));
}

int
stcontext_post_box(st_state *st, PyObject *ctx, TaskObject *box)
{
    STContextObject *c = STContextObject_CAST(ctx);
    box->task_work.run = stcontext_box_run;
    box->task_work.flags = 0;
    /* the queue owns the reference we were given */
    TRACE_CONTEXT_POST(trace_task_id(box), ctx); /* D2 */
    if (st_workq_push(&c->stc_queue, &box->task_work) != 0) {
        PyErr_SetString(st->InvalidOperationError,
                        "the SingleThreadSynchronizationContext is closed");
        return -1;
    }
    deadlock_graph_changed(st);
    return 0;
}

static PyObject *
STContext_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    STContextObject *c;
    if (PyTuple_GET_SIZE(args) != 0 || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError,
                        "SingleThreadSynchronizationContext() takes no "
                        "arguments");
        return NULL;
    }
    c = (STContextObject *)tp->tp_alloc(tp, 0);
    if (c == NULL) {
        return NULL;
    }
    st_workq_init(&c->stc_queue);
    c->stc_owner = NULL;
    c->stc_ops = 0;
    return (PyObject *)c;
}

static PyObject *
stcontext_post(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    st_state *st = g_st;
    STContextObject *c = STContextObject_CAST(op);
    PyObject *cargs, *ctx, *action;
    st_work_t *node;

    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "post(callback, state=None)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "post(): callback must be callable, "
                     "not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    cargs = PyTuple_Pack(1, nargs == 2 ? args[1] : Py_None);
    ctx = cargs ? PyContext_CopyCurrent() : NULL;
    action = ctx ? action_new(st, args[0], cargs, ctx) : NULL;
    Py_XDECREF(cargs);
    Py_XDECREF(ctx);
    if (action == NULL) {
        return NULL;
    }
    node = action_queue_node(action); /* steals action */
    TRACE_CONTEXT_POST(0, op); /* D2 */
    if (st_workq_push(&c->stc_queue, node) != 0) {
        action_queue_node_drop(node);
        PyErr_SetString(st->InvalidOperationError,
                        "the SingleThreadSynchronizationContext is closed");
        return NULL;
    }
    deadlock_graph_changed(st);
    Py_RETURN_NONE;
}

static PyObject *
stcontext_send(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    st_state *st = g_st;
    STContextObject *c = STContextObject_CAST(op);
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "send(callback, state=None)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) { /* as post does (issue 9 item 21) */
        PyErr_Format(PyExc_TypeError, "send(): callback must be callable, "
                     "not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (c->stc_owner != NULL && c->stc_owner == cur_rec()) {
        return PyObject_CallOneArg(args[0], nargs == 2 ? args[1] : Py_None);
    }
    PyObject *a[3] = {op, args[0], nargs == 2 ? args[1] : Py_None};
    return call_impl(st, "context_send", a, 3, NULL);
}

static PyObject *
stcontext_operation_started(PyObject *op, PyObject *unused)
{
    STContextObject_CAST(op)->stc_ops++;
    Py_RETURN_NONE;
}

static PyObject *
stcontext_operation_completed(PyObject *op, PyObject *unused)
{
    STContextObject_CAST(op)->stc_ops--;
    Py_RETURN_NONE;
}

static PyObject *
stcontext_create_copy(PyObject *op, PyObject *unused)
{
    return Py_NewRef(op); /* one queue, one thread: the copy is itself */
}

/* Runs one queue item; -1 if it raised (error set). */
static int
pump_one(st_work_t *w)
{
    w->run(w);
    if (PyErr_Occurred()) {
        return -1;
    }
    return pending_exc_restore();
}

static PyObject *
stcontext_run(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    st_state *st = g_st;
    STContextObject *c = STContextObject_CAST(op);
    PyObject *prev, *r = NULL, *result = NULL;
    TaskObject *task = NULL;
    thread_rec *rec;
    st_work_t *w;
    int abandon = -1; /* at shutdown: see exit_should_abandon */

    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "run() missing argument: fn");
        return NULL;
    }
    if (!PyCallable_Check(args[0]) && !is_coroutine_like(args[0])) {
        PyErr_Format(PyExc_TypeError, "run(): fn must be callable or a "
                     "coroutine, not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (c->stc_owner != NULL) {
        PyErr_SetString(st->InvalidOperationError,
                        "this SingleThreadSynchronizationContext is already "
                        "being run by a thread");
        return NULL;
    }
    rec = get_rec();
    if (rec == NULL || owner_push(st, op) < 0) {
        return NULL;
    }
    c->stc_owner = rec;
    prev = Py_XNewRef(sync_context_current());
    if (sync_context_set(st, op) < 0) {
        goto done;
    }
    if (is_coroutine_like(args[0])) {
        r = builder_start(st, Py_NewRef(args[0]), NULL);
    }
    else {
        r = PyObject_Vectorcall(args[0], args + 1, nargs - 1, NULL);
        if (r != NULL && is_coroutine_like(r)) {
            r = builder_start(st, r, NULL); /* steals */
        }
    }
    if (r == NULL) {
        goto done;
    }
    if (Task_Check(st, r)) {
        task = (TaskObject *)r;
    }
    for (;;) {
        w = st_workq_try_pop(&c->stc_queue);
        if (w != NULL) {
            if (pump_one(w) < 0) {
                goto done;
            }
            continue;
        }
        if ((task == NULL || st_task_is_completed(&task->task_core))
            && c->stc_ops <= 0) {
            break;
        }
        Py_BEGIN_ALLOW_THREADS
        w = st_workq_pop_wait(&c->stc_queue, PUMP_SLICE_NS);
        Py_END_ALLOW_THREADS
        if (w != NULL) {
            if (pump_one(w) < 0) {
                goto done;
            }
        }
        /* Ctrl-C; H5: a pool item or the exiting thread stops pumping,
         * a daemon thread pumps on until finalization stops it */
        else if (wait_slice_check(st, &abandon,
                                  "the interpreter is shutting down") < 0) {
            goto done;
        }
    }
    result = task != NULL ? task_get_result(st, task) : Py_NewRef(r);
done:
    {
        PyObject *exc = PyErr_GetRaisedException();
        c->stc_owner = NULL;
        owner_pop(op);
        if (sync_context_set(st, prev) < 0) {
            PyErr_Clear();
        }
        Py_XDECREF(prev);
        Py_XDECREF(r);
        PyErr_SetRaisedException(exc);
    }
    return result;
}

static PyObject *
stcontext_pending_get(PyObject *op, void *closure)
{
    return PyLong_FromUnsignedLongLong(
        st_workq_count(&STContextObject_CAST(op)->stc_queue));
}

static PyObject *
stcontext_thread_get(PyObject *op, void *closure)
{
    thread_rec *r = STContextObject_CAST(op)->stc_owner;
    if (r == NULL) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(thread_rec_ident(r));
}

/* What a queued item holds: a box to resume or an action (borrowed). */
static PyObject *
stcontext_item_object(st_work_t *w)
{
    if (w->run == stcontext_box_run) {
        return (PyObject *)st_container_of(w, TaskObject, task_work);
    }
    return action_queue_node_object(w);
}

typedef struct {
    visitproc visit;
    void *arg;
} stcontext_visit_t;

/* st_workq_visit's callback: visits one queued item (the queue's lock is
 * held; a visit only reads refcounts, it takes no lock and calls no
 * Python code). */
static int
stcontext_visit_item(st_work_t *w, void *arg)
{
    stcontext_visit_t *v = arg;
    return v->visit(stcontext_item_object(w), v->arg);
}

/* H3 (issue 9): the queue owns a reference to each item, and an item -
 * a box that captured this context, say - may hold the context: a context
 * dropped with work queued (a deadlocked caller's pending resumption) is
 * such a cycle, which the collector can only free if it sees the queue.
 * An item a pump thread has just popped is no longer visited: the
 * collector then finds one reference more than it visited, and so keeps
 * the object - the safe side. */
static int
STContext_traverse(PyObject *op, visitproc visit, void *arg)
{
    stcontext_visit_t v = {visit, arg};
    Py_VISIT(Py_TYPE(op));
    return st_workq_visit(&STContextObject_CAST(op)->stc_queue,
                          stcontext_visit_item, &v);
}

/* Releases every item still queued: they will never run.  Only for a
 * context no thread pumps (dealloc; clear, on garbage). */
static void
stcontext_drop_queued(STContextObject *c)
{
    st_work_t *w;
    while ((w = st_workq_try_pop(&c->stc_queue)) != NULL) {
        Py_DECREF(stcontext_item_object(w));
    }
}

static int
STContext_clear(PyObject *op)
{
    stcontext_drop_queued(STContextObject_CAST(op));
    return 0;
}

static void
STContext_dealloc(PyObject *op)
{
    STContextObject *c = STContextObject_CAST(op);
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* H4 (issue 9 items 2, 19): its queue holds boxes and actions, which hold
     * anything, another context included */
    Py_TRASHCAN_BEGIN(op, STContext_dealloc)
    stcontext_drop_queued(c);
    st_workq_destroy(&c->stc_queue);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyMethodDef STContext_methods[] = {
    {"post", (PyCFunction)(void (*)(void))stcontext_post, METH_FASTCALL,
     PyDoc_STR("post($self, callback, state=None, /)\n--\n\n"
               "Queue callback(state) to run on the thread that runs this\n"
               "context.")},
    {"send", (PyCFunction)(void (*)(void))stcontext_send, METH_FASTCALL,
     PyDoc_STR("send($self, callback, state=None, /)\n--\n\n"
               "Run callback(state) on the context's thread and wait for\n"
               "it (inline when called on that thread).")},
    {"operation_started", stcontext_operation_started, METH_NOARGS,
     PyDoc_STR("operation_started($self, /)\n--\n\n"
               "An async void method started: run() keeps pumping until\n"
               "it completes.")},
    {"operation_completed", stcontext_operation_completed, METH_NOARGS,
     PyDoc_STR("operation_completed($self, /)\n--\n\n"
               "An async void method completed.")},
    {"create_copy", stcontext_create_copy, METH_NOARGS,
     PyDoc_STR("create_copy($self, /)\n--\n\nThe context itself.")},
    {"run", (PyCFunction)(void (*)(void))stcontext_run, METH_FASTCALL,
     PyDoc_STR("run($self, fn, /, *args)\n--\n\n"
               "Install this context on the calling thread, call fn(*args)\n"
               "(an async function is started by the builder), and pump\n"
               "posted callbacks until its task and every async void\n"
               "operation complete.  Returns the result, or raises.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef STContext_getset[] = {
    {"pending", stcontext_pending_get, NULL,
     PyDoc_STR("Callbacks queued and not yet run."), NULL},
    {"thread_ident", stcontext_thread_get, NULL,
     PyDoc_STR("threading ident of the thread running it, or None."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot STContext_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "SingleThreadSynchronizationContext()\n--\n\n"
         "A message queue pumped by one thread: the UI-thread model\n"
         "(WindowsFormsSynchronizationContext, a test's AsyncPump).")},
    {Py_tp_new, STContext_new},
    {Py_tp_traverse, STContext_traverse},
    {Py_tp_clear, STContext_clear},
    {Py_tp_dealloc, STContext_dealloc},
    {Py_tp_methods, STContext_methods},
    {Py_tp_getset, STContext_getset},
    {0, NULL},
};

PyType_Spec STContext_spec = {
    .name = "sharptask.SingleThreadSynchronizationContext",
    .basicsize = sizeof(STContextObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = STContext_slots,
};
