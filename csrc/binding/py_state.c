/* py_state.c - bottom layer: the one module state pointer and the two
 * helpers that reach objects every file needs from the state: the lazily
 * imported sharptask._impl and AggregateError.  Calls nothing else of the
 * binding (docs/architecture.md, "The binding's layers").
 */
#include "binding.h"
#include "py_state.h"

st_state *g_st = NULL;

PyObject *
make_aggregate(st_state *st, PyObject *excs)
{
    PyObject *msg, *res;
    msg = PyUnicode_FromString("One or more errors occurred.");
    if (msg == NULL) {
        return NULL;
    }
    res = PyObject_CallFunctionObjArgs(st->AggregateError, msg, excs, NULL);
    Py_DECREF(msg);
    return res;
}

PyObject *
call_impl(st_state *st, const char *name, PyObject *const *args,
          size_t nargsf, PyObject *kwnames)
{
    PyObject *fn, *res;
    if (st->impl == NULL) {
        st->impl = PyImport_ImportModule("sharptask._impl");
        if (st->impl == NULL) {
            return NULL;
        }
    }
    {
        /* interned: one name object per helper, whatever the call count */
        PyObject *key = PyUnicode_InternFromString(name);
        if (key == NULL) {
            return NULL;
        }
        fn = PyObject_GetAttr(st->impl, key);
        Py_DECREF(key);
    }
    if (fn == NULL) {
        return NULL;
    }
    res = PyObject_Vectorcall(fn, args, nargsf, kwnames);
    Py_DECREF(fn);
    return res;
}
