/* py_trace.c - the event recorder of the core (st_trace.h, SPEC D2) as
 * private module functions; python/sharptask/_trace.py builds
 * sharptask.trace() on them.
 *
 *     _trace_start(buffer_size, /)   start a session; buffer_size events
 *                                    kept per thread between two collects
 *     _trace_stop()                  stop recording (idempotent)
 *     _trace_active() -> bool        a session records
 *     _trace_collect() -> (events, threads, dropped)
 *         events:  [(name_id, ts_ns, thread_id, task_id, arg, arg2)],
 *                  in time order, drained (each event is returned once)
 *         threads: [(thread_id, name, named_by_core, exited)]
 *         dropped: events lost since the previous collect
 *     _trace_names() -> tuple        name ids -> dotted names ([0] None)
 *     _trace_string(id, /) -> str | None   an interned argument string
 *
 * The core's recorder never takes the interpreter lock; collecting (a
 * merge of every thread's buffer) runs with it released.
 */
#include "py_trace.h"
#include "py_args.h"

#include <string.h> /* strlen */

#include "st_error.h" /* ST_E* codes */
#include "st_thread.h" /* ST_THREAD_LOCAL */
#include "st_trace.h"  /* the recorder */

/* ------------------------------------------------------------ helpers */

/* A tuple of six unsigned ints.  Refs: new. */
static PyObject *
event_tuple(const st_trace_event_t *e, uint64_t tid)
{
    PyObject *t = PyTuple_New(6), *v;
    unsigned long long vals[6];
    Py_ssize_t i;

    if (t == NULL) {
        return NULL;
    }
    vals[0] = e->name;
    vals[1] = e->ts_ns;
    vals[2] = tid;
    vals[3] = e->task_id;
    vals[4] = e->arg;
    vals[5] = e->arg2;
    for (i = 0; i < 6; i++) {
        v = PyLong_FromUnsignedLongLong(vals[i]);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v); /* steals v */
    }
    return t;
}

/* The threads of a dump as a list of tuples.  Refs: new. */
static PyObject *
threads_list(const st_trace_dump_t *d)
{
    PyObject *list = PyList_New((Py_ssize_t)d->nthreads), *item, *name;
    size_t i;

    if (list == NULL) {
        return NULL;
    }
    for (i = 0; i < d->nthreads; i++) {
        const st_trace_thread_t *th = &d->threads[i];
        /* an OS name may be any bytes */
        name = PyUnicode_DecodeUTF8(th->name, (Py_ssize_t)strlen(th->name),
                                    "replace");
        if (name == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        item = Py_BuildValue("(KNNN)", (unsigned long long)th->tid, name,
                             PyBool_FromLong(th->named),
                             PyBool_FromLong(th->exited));
        if (item == NULL) { /* Py_BuildValue consumed name */
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item); /* steals item */
    }
    return list;
}

/* ------------------------------------------------ event-site helpers */

/* The id the next task.created on this thread takes (0: none).  A plain
 * number, never an object. */
static ST_THREAD_LOCAL uint32_t tls_claimed_id;

uint32_t
trace_new_id(st_state *st)
{
    if (++st->next_task_id == 0) { /* skip 0 on wrap-around, as Task.id */
        ++st->next_task_id;
    }
    return st->next_task_id;
}

uint32_t
trace_task_id(TaskObject *t)
{
    uint32_t id = task_id(t); /* the core's trace id is the Task id */
    if (id == 0) {
        id = trace_new_id(g_st);
        st_task_set_trace_id(&t->task_core, id);
    }
    return id;
}

void
trace_claim_id(uint32_t id)
{
    tls_claimed_id = id;
}

void
trace_task_created(TaskObject *t)
{
    if (tls_claimed_id != 0 && task_id(t) == 0) {
        st_task_set_trace_id(&t->task_core, tls_claimed_id);
        tls_claimed_id = 0;
    }
    st_trace_emit(ST_TRACE_TASK_CREATED, trace_task_id(t), 0, 0);
}

uint32_t
trace_type_name(PyObject *obj)
{
    return st_trace_intern(Py_TYPE(obj)->tp_name);
}

/* ------------------------------------------------------------ methods */

static PyObject *
trace_start(PyObject *mod, PyObject *arg)
{
    Py_ssize_t size;
    int rc;

    if (parse_count(arg, "buffer_size", 1, (Py_ssize_t)ST_TRACE_MAX_CAPACITY,
                    &size) < 0) {
        return NULL;
    }
    rc = st_trace_start((size_t)size);
    if (rc == ST_EBUSY) {
        PyErr_SetString(get_st_state(mod)->InvalidOperationError,
                        "a trace is already recording (one "
                        "sharptask.trace() at a time)");
        return NULL;
    }
    if (rc != 0) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *
trace_stop(PyObject *mod, PyObject *unused)
{
    st_trace_stop();
    Py_RETURN_NONE;
}

static PyObject *
trace_active(PyObject *mod, PyObject *unused)
{
    return PyBool_FromLong(st_trace_on());
}

static PyObject *
trace_collect(PyObject *mod, PyObject *unused)
{
    st_trace_dump_t d;
    PyObject *events = NULL, *threads = NULL, *e;
    size_t i;
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = st_trace_collect(&d);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        return PyErr_NoMemory();
    }
    events = PyList_New((Py_ssize_t)d.count);
    if (events == NULL) {
        goto error;
    }
    for (i = 0; i < d.count; i++) {
        e = event_tuple(&d.events[i], d.threads[d.events[i].thread].tid);
        if (e == NULL) {
            goto error;
        }
        PyList_SET_ITEM(events, (Py_ssize_t)i, e); /* steals e */
    }
    threads = threads_list(&d);
    if (threads == NULL) {
        goto error;
    }
    e = Py_BuildValue("(NNK)", events, threads,
                      (unsigned long long)d.dropped); /* steals both */
    st_trace_dump_free(&d);
    return e;

error:
    Py_XDECREF(events);
    Py_XDECREF(threads);
    st_trace_dump_free(&d);
    return NULL;
}

static PyObject *
trace_names(PyObject *mod, PyObject *unused)
{
    PyObject *t = PyTuple_New(ST_TRACE_COUNT), *s;
    int i;

    if (t == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, Py_NewRef(Py_None));
    for (i = 1; i < ST_TRACE_COUNT; i++) {
        s = PyUnicode_FromString(st_trace_name(i));
        if (s == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s); /* steals s */
    }
    return t;
}

static PyObject *
trace_string(PyObject *mod, PyObject *arg)
{
    Py_ssize_t id;
    const char *s;

    if (parse_count(arg, "id", 0, (Py_ssize_t)ST_TRACE_MAX_STRINGS, &id)
        < 0) {
        return NULL;
    }
    s = st_trace_string((uint32_t)id);
    if (s == NULL) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

PyMethodDef trace_methods[] = {
    {"_trace_start", trace_start, METH_O,
     PyDoc_STR("_trace_start(buffer_size, /)\n--\n\n"
               "Start recording trace events (SPEC D2); each thread keeps "
               "at most buffer_size events between two collects.  "
               "InvalidOperationError if a session records already.")},
    {"_trace_stop", trace_stop, METH_NOARGS,
     PyDoc_STR("_trace_stop()\n--\n\nStop recording.  Idempotent.")},
    {"_trace_active", trace_active, METH_NOARGS,
     PyDoc_STR("_trace_active()\n--\n\nTrue while a session records.")},
    {"_trace_collect", trace_collect, METH_NOARGS,
     PyDoc_STR("_trace_collect()\n--\n\n"
               "Drain the events recorded since the previous collect: "
               "(events, threads, dropped), events as (name_id, ts_ns, "
               "thread_id, task_id, arg, arg2) in time order, threads as "
               "(thread_id, name, named_by_core, exited).")},
    {"_trace_names", trace_names, METH_NOARGS,
     PyDoc_STR("_trace_names()\n--\n\n"
               "The dotted event names by id (index 0 is None).")},
    {"_trace_string", trace_string, METH_O,
     PyDoc_STR("_trace_string(id, /)\n--\n\n"
               "The string of an interned argument id, or None.")},
    {NULL, NULL, 0, NULL},
};
