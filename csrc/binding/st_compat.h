/* st_compat.h - the one place where the binding meets CPython's versions
 * (SPEC H1: CPython 3.11, 3.12 and 3.13, public C API only).
 *
 * The binding is written against the newest public API.  For an older
 * interpreter this header provides the same names, with the same
 * contract, built from that version's public API:
 *
 *   name                          public since   before that, here
 *   PyErr_GetRaisedException      3.12           PyErr_Fetch + Normalize
 *   PyErr_SetRaisedException      3.12           PyErr_Restore
 *   PyObject_GetOptionalAttr      3.13           PyObject_GetAttr + match
 *   PyUnicode_EqualToUTF8         3.13           CompareWithASCIIString
 *   Py_HashPointer                3.13           the same rotation, ours
 *   Py_IsFinalizing               3.13           _Py_IsFinalizing (below)
 *   Py_mod_multiple_interpreters  3.12           (no slot: see module.c)
 *   Py_mod_gil                    3.13           (no free-threaded build)
 *
 * Py_IsFinalizing is the one name with no public equivalent before 3.13:
 * its callers run on pool and timer threads WITHOUT the GIL (is it still
 * safe to attach?), where sys.is_finalizing() cannot be called, and
 * Py_IsInitialized() is a plain non-atomic read that turns false later.
 * CPython 3.13 made the exported _Py_IsFinalizing public by renaming it;
 * on 3.11 and 3.12 this header calls it by its old name, and nowhere else
 * in the binding does a private name appear.
 *
 * Use: the binding's files include binding.h, which includes this file
 * right after Python.h; nothing here has state.
 */
#ifndef ST_COMPAT_H
#define ST_COMPAT_H

#include <Python.h> /* PY_VERSION_HEX and the API being completed */
#include <assert.h> /* the ASCII-only contract of the 3.11/3.12 EqualToUTF8 */

/* ------------------------------------------------- 3.12: exceptions */

#if PY_VERSION_HEX < 0x030C0000

/* The raised exception (new reference, its traceback attached as
 * __traceback__), clearing the error indicator; NULL if none is set. */
static inline PyObject *
PyErr_GetRaisedException(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    /* never leaves value NULL (a missing value becomes an instance) */
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && PyExceptionInstance_Check(value)) {
        /* cannot fail: tb is a traceback object */
        (void)PyException_SetTraceback(value, tb);
    }
    Py_DECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* Sets exc as the raised exception (steals the reference); NULL clears
 * the error indicator.  Its __traceback__ becomes the traceback. */
static inline void
PyErr_SetRaisedException(PyObject *exc)
{
    if (exc == NULL) {
        PyErr_Restore(NULL, NULL, NULL);
        return;
    }
    if (!PyExceptionInstance_Check(exc)) {
        /* as 3.12 would store it: as the value of its own type */
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, NULL);
        return;
    }
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc) /* new reference */);
}

#endif /* < 3.12 */

/* ----------------------------------- 3.13: attributes, strings, hash */

#if PY_VERSION_HEX < 0x030D0000

/* 1 with *result (new reference) if obj has the attribute; 0 with *result
 * NULL and no error set if getting it raised AttributeError; -1 with
 * *result NULL and the error set on any other error. */
static inline int
PyObject_GetOptionalAttr(PyObject *obj, PyObject *name, PyObject **result)
{
    *result = PyObject_GetAttr(obj, name);
    if (*result != NULL) {
        return 1;
    }
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return -1;
    }
    PyErr_Clear();
    return 0;
}

/* Debug builds: the contract below, checked. */
static inline int
st_compat_is_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/* 1 if the str object equals the C string, else 0; never raises.  Here
 * the C string must be ASCII (every caller passes a keyword name), for
 * which CompareWithASCIIString is exact and does not raise either. */
static inline int
PyUnicode_EqualToUTF8(PyObject *unicode, const char *string)
{
    assert(st_compat_is_ascii(string));
    return PyUnicode_CompareWithASCIIString(unicode, string) == 0;
}

/* A hash for an identity: the pointer rotated right by 4 bits, so that
 * the always-zero low bits of an aligned address do not end up in the
 * low bits of the hash; never -1 (the error value). */
static inline Py_hash_t
Py_HashPointer(const void *ptr)
{
    size_t y = (size_t)ptr;
    Py_hash_t x;
    y = (y >> 4) | (y << (8 * sizeof(y) - 4));
    x = (Py_hash_t)y;
    return x == -1 ? -2 : x;
}

/* 1 once the main interpreter's finalization started; callable without
 * the GIL.  See the header comment: the exported pre-3.13 name. */
static inline int
Py_IsFinalizing(void)
{
    return _Py_IsFinalizing();
}

#endif /* < 3.13 */

/* ------------------------------------------------------ module slots */

/* H1: what the module declares about interpreters, as slot entries for
 * module.c's table; empty where the slot does not exist.  3.12+: no
 * subinterpreters (CPython then refuses the import in an isolated one; a
 * legacy one, which CPython lets through, is refused by module_exec on
 * every version).  3.13+: a free-threaded build must keep the GIL on. */
#if PY_VERSION_HEX >= 0x030C0000
#define ST_SLOT_MULTIPLE_INTERPRETERS                                       \
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#else
#define ST_SLOT_MULTIPLE_INTERPRETERS
#endif
#if PY_VERSION_HEX >= 0x030D0000
#define ST_SLOT_GIL {Py_mod_gil, Py_MOD_GIL_USED},
#else
#define ST_SLOT_GIL
#endif

#endif /* ST_COMPAT_H */
