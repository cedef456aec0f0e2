/* py_errors.c - bottom layer: error mapping and reporting shared by every
 * file: a core ST_E* code to its Python exception, the "interpreter is
 * exiting" flag on an error (H5), and reports of exceptions nobody can
 * catch (sys.unraisablehook).  Calls nothing else of the binding.
 */
#include "binding.h"
#include "py_errors.h"

#include "st_error.h" /* ST_E* codes, st_strerror */

int
st_raise_from_code(st_state *st, int rc)
{
    switch (rc) {
    case ST_ENOMEM:
        PyErr_NoMemory();
        break;
    case ST_EINVAL:
        PyErr_SetString(PyExc_ValueError, st_strerror(rc));
        break;
    case ST_ETIMEDOUT:
        PyErr_SetString(PyExc_TimeoutError, st_strerror(rc));
        break;
    case ST_EFULL: /* st_sem_release past the maximum (K4, 9.6) */
        PyErr_Format(st->SemaphoreFullError != NULL
                         ? st->SemaphoreFullError : PyExc_ValueError,
                     "sharptask: %s", st_strerror(rc));
        break;
    default:
        if (rc == ST_ECLOSED
            && st_atomic_load(&st->shutting_down, ST_RELAXED)) {
            /* the pool or timer was shut down for the exit: quiet (H5) */
            return raise_exiting(st, "sharptask: closed (interpreter exit)");
        }
        PyErr_Format(st->InvalidOperationError, "sharptask: %s",
                     st_strerror(rc));
        break;
    }
    return -1;
}

/* ------------------------------------------- reports and exit (H5) */

/* sys.unraisablehook is CPython's own (or unset, which means the same). */
static int
default_unraisablehook(void)
{
    PyObject *hook = PySys_GetObject("unraisablehook");       /* borrowed */
    PyObject *dflt = PySys_GetObject("__unraisablehook__");   /* borrowed */
    return hook == NULL || hook == Py_None || hook == dflt;
}

/* Prints the report in the layout of CPython's default hook, with the
 * exception formatted by traceback.print_exception.  0, or -1 with an
 * error set (the caller falls back to PyErr_WriteUnraisable). */
static int
print_unraisable(PyObject *exc, PyObject *obj)
{
    PyObject *file = PySys_GetObject("stderr"); /* borrowed */
    PyObject *tb_mod, *r;
    if (file == NULL || file == Py_None) {
        return 0; /* nowhere to print: the default hook is silent too */
    }
    Py_INCREF(file);
    tb_mod = PyImport_ImportModule("traceback");
    if (tb_mod == NULL) {
        Py_DECREF(file);
        return -1;
    }
    if (obj != NULL) {
        PyObject *repr = PyObject_Repr(obj);
        if (PyFile_WriteString("Exception ignored in: ", file) < 0) {
            goto fail;
        }
        if (repr == NULL) {
            PyErr_Clear();
            if (PyFile_WriteString("<object repr() failed>", file) < 0) {
                goto fail;
            }
        }
        else {
            int rc = PyFile_WriteObject(repr, file, Py_PRINT_RAW);
            Py_DECREF(repr);
            if (rc < 0) {
                goto fail;
            }
        }
        if (PyFile_WriteString("\n", file) < 0) {
            goto fail;
        }
    }
    {
        PyObject *fn = PyObject_GetAttrString(tb_mod, "print_exception");
        PyObject *args = NULL, *kw = NULL;
        if (fn == NULL) {
            goto fail;
        }
        args = PyTuple_Pack(1, exc);
        kw = args ? Py_BuildValue("{s:O}", "file", file) : NULL;
        r = kw ? PyObject_Call(fn, args, kw) : NULL;
        Py_DECREF(fn);
        Py_XDECREF(args);
        Py_XDECREF(kw);
        if (r == NULL) {
            goto fail;
        }
        Py_DECREF(r);
    }
    r = PyObject_CallMethod(file, "flush", NULL);
    if (r == NULL) {
        PyErr_Clear(); /* as the default hook: a failed flush is no error */
    }
    Py_XDECREF(r);
    Py_DECREF(tb_mod);
    Py_DECREF(file);
    return 0;
fail:
    Py_DECREF(tb_mod);
    Py_DECREF(file);
    return -1;
}

void
report_unraisable(PyObject *exc, PyObject *obj)
{
    PyObject *saved;
    if (exc == NULL || !PyExceptionInstance_Check(exc)) {
        return;
    }
    saved = PyErr_GetRaisedException();
    /* once finalization started, no Python code of ours: CPython's own
     * path only */
    if (Py_IsFinalizing() || !default_unraisablehook()
        || print_unraisable(exc, obj) < 0) {
        /* a replaced hook (or printing failed): CPython builds the
         * UnraisableHookArgs and calls the hook */
        PyErr_Clear();
        PyErr_SetRaisedException(Py_NewRef(exc)); /* its traceback too */
        PyErr_WriteUnraisable(obj);
    }
    PyErr_SetRaisedException(saved);
}

#define EXITING_FLAG "_sharptask_exiting"

int
raise_exiting(st_state *st, const char *msg)
{
    PyObject *exc = PyObject_CallFunction(st->InvalidOperationError, "s",
                                          msg);
    if (exc == NULL) {
        return -1;
    }
    if (PyObject_SetAttrString(exc, EXITING_FLAG, Py_True) < 0) {
        PyErr_Clear(); /* still the right error, only not flagged */
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return -1;
}

static int
is_exiting_error_depth(PyObject *exc, int depth)
{
    PyObject *dict, *flag;
    int r = 0;
    if (exc == NULL || !PyExceptionInstance_Check(exc) || depth > 16) {
        return 0;
    }
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_BaseExceptionGroup)) {
        /* an AggregateError of exiting errors only (a pool item that
         * waited on a task abandoned at exit) */
        PyObject *excs = PyObject_GetAttrString(exc, "exceptions");
        if (excs == NULL) {
            PyErr_Clear();
            return 0;
        }
        if (PyTuple_Check(excs) && PyTuple_GET_SIZE(excs) > 0) {
            r = 1;
            for (Py_ssize_t i = 0; r && i < PyTuple_GET_SIZE(excs); i++) {
                r = is_exiting_error_depth(PyTuple_GET_ITEM(excs, i),
                                           depth + 1);
            }
        }
        Py_DECREF(excs);
        return r;
    }
    dict = PyObject_GenericGetDict(exc, NULL);
    if (dict == NULL) {
        PyErr_Clear();
        return 0;
    }
    flag = PyDict_GetItemString(dict, EXITING_FLAG); /* borrowed */
    r = flag == Py_True;
    Py_DECREF(dict);
    return r;
}

int
is_exiting_error(PyObject *exc)
{
    PyObject *saved = PyErr_GetRaisedException();
    int r = is_exiting_error_depth(exc, 0);
    PyErr_SetRaisedException(saved);
    return r;
}

void
write_unraisable(PyObject *obj)
{
    PyObject *value = PyErr_GetRaisedException();
    if (value != NULL && is_exiting_error(value)) {
        Py_DECREF(value);
        return; /* the program is ending, not failing (H5) */
    }
    PyErr_SetRaisedException(value);
    PyErr_WriteUnraisable(obj);
}

int
exit_should_abandon(void)
{
    PyObject *saved, *threading, *cur = NULL, *daemon = NULL;
    int r = 1;
    if (st_pool_current() != NULL) {
        return 1; /* its item must end for the pool to stop */
    }
    if (Py_IsFinalizing()) {
        return 1; /* the finalizing thread: nothing may wait on now */
    }
    saved = PyErr_GetRaisedException();
    {
        PyObject *name = PyUnicode_FromString("threading");
        threading = name != NULL ? PyImport_GetModule(name) : NULL;
        Py_XDECREF(name);
    }
    if (threading != NULL) {
        PyObject *dummy = PyObject_GetAttrString(threading, "_DummyThread");
        cur = PyObject_CallMethod(threading, "current_thread", NULL);
        daemon = cur != NULL ? PyObject_GetAttrString(cur, "daemon") : NULL;
        /* a daemon threading.Thread waits on; a thread that the threading
         * module did not start (a _DummyThread: a dedicated pool thread,
         * a native thread) gives up, as every thread did before */
        if (daemon != NULL && dummy != NULL && PyType_Check(dummy)
            && PyObject_IsTrue(daemon) == 1
            && PyObject_IsInstance(cur, dummy) == 0) {
            r = 0;
        }
        Py_XDECREF(dummy);
    }
    Py_XDECREF(daemon);
    Py_XDECREF(cur);
    Py_XDECREF(threading);
    PyErr_Clear();
    PyErr_SetRaisedException(saved);
    return r;
}

int
wait_slice_check(st_state *st, int *abandon, const char *msg)
{
    if (PyErr_CheckSignals() < 0) {
        return -1;
    }
    /* relaxed: a flag polled once per slice */
    if (st_atomic_load(&st->shutting_down, ST_RELAXED)) {
        if (*abandon < 0) {
            *abandon = exit_should_abandon();
        }
        if (*abandon) {
            return raise_exiting(st, msg);
        }
    }
    return 0;
}
