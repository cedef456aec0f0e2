/* py_args.c - bottom layer: one parser per kind of argument (issue 9
 * item 27, SPEC H2).  Calls nothing else of the binding; a native
 * CancellationToken is recognised by its type in the module state.
 */
#include "binding.h"
#include "py_args.h"

#include <math.h> /* isnan, HUGE_VAL */

/* ------------------------------------------------ argument parsers */

/* One parser per kind of argument (issue 9 item 27, SPEC H2): every entry
 * point, C or Python (through the _native._parse_* wrappers below), checks
 * a timeout, a cancellation token, an options value or a count here, so
 * that one bad value gets one answer everywhere: TypeError for a wrong
 * type, ValueError for a wrong value, each naming the parameter.  bool is
 * an int to Python, but never a number here: a bool timeout, options
 * value or count is a TypeError (True is far likelier a mistaken
 * argument than a one-second wait). */

static int
reject_bool(PyObject *obj, const char *name, const char *what)
{
    if (PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be %s, not bool", name,
                     what);
        return -1;
    }
    return 0;
}

#define TIMEOUT_WHAT "a number of seconds, a timedelta or None"
#define MAX_TIMEOUT_S 4294967.294 /* .NET's limit: 2^32 - 2 ms */

int
parse_seconds(PyObject *obj, const char *name, double *out_secs,
              int *infinite)
{
    double secs;
    *infinite = 0;
    *out_secs = 0.0;
    if (obj == Py_None) {
        *infinite = 1;
        return 0;
    }
    if (reject_bool(obj, name, TIMEOUT_WHAT) < 0) {
        return -1;
    }
    if (PyFloat_Check(obj) || PyLong_Check(obj)) {
        secs = PyFloat_AsDouble(obj);
        if (secs == -1.0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
                return -1;
            }
            /* an int too large for a double: out of range either way */
            int sign = 0;
            PyErr_Clear();
            (void)PyLong_AsLongLongAndOverflow(obj, &sign);
            secs = sign < 0 ? -HUGE_VAL : HUGE_VAL;
        }
    }
    else if (PyObject_HasAttrString(obj, "total_seconds")) { /* timedelta */
        PyObject *r = PyObject_CallMethod(obj, "total_seconds", NULL);
        if (r == NULL) {
            return -1;
        }
        if (!PyFloat_Check(r) && !PyLong_Check(r)) {
            PyErr_Format(PyExc_TypeError, "%s.total_seconds() must return "
                         "a number, not %.100s", name, Py_TYPE(r)->tp_name);
            Py_DECREF(r);
            return -1;
        }
        secs = PyFloat_AsDouble(r);
        Py_DECREF(r);
        if (secs == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        if (secs == -0.001) {
            *infinite = 1; /* Timeout.InfiniteTimeSpan */
            return 0;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError, "%s must be " TIMEOUT_WHAT
                     ", not %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (isnan(secs)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", name);
        return -1;
    }
    if (secs == -1.0) {
        *infinite = 1; /* INFINITE */
        return 0;
    }
    if (secs < 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be >= 0, or -1 / None for no limit, not %R",
                     name, obj);
        return -1;
    }
    if (secs > MAX_TIMEOUT_S) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be at most 4294967.294 seconds, not %R", name,
                     obj);
        return -1;
    }
    *out_secs = secs;
    return 0;
}

int
parse_timeout(PyObject *obj, const char *name, uint64_t *out_ns,
              int *infinite)
{
    double secs;
    *out_ns = 0;
    if (parse_seconds(obj, name, &secs, infinite) < 0) {
        return -1;
    }
    *out_ns = (uint64_t)(secs * 1e9);
    return 0;
}

/* ------------------------------------------ the lenient timeout mode */

/* A wait longer than this many nanoseconds does not fit CPython's time
 * type (a signed 64-bit count): lock.acquire raises OverflowError. */
#define LENIENT_MAX_NS 9223372036854775808.0

/* The TypeError set now gets `name: ` before its message (the rest is
 * CPython's own text); any other exception is left as it is. */
static void
prefix_type_error(const char *name)
{
    PyObject *exc;
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
        return;
    }
    exc = PyErr_GetRaisedException();
    PyErr_Format(PyExc_TypeError, "%s: %S", name, exc);
    Py_DECREF(exc);
}

/* concurrent.futures' Future.result(timeout) hands the timeout to
 * Condition.wait, which waits only if `timeout > 0` and then passes it to
 * lock.acquire, which takes a float or anything with __index__.  This
 * does the same in C, so that every value gets the same answer (issue 10
 * review: the table in tests/python/test_review10.py compares the two). */
int
parse_timeout_lenient(PyObject *obj, const char *name, uint64_t *out_ns)
{
    double secs, ns;
    *out_ns = 0;
    if (obj == Py_None) {
        *out_ns = UINT64_MAX;
        return 0;
    }
    if (PyFloat_Check(obj)) {
        secs = PyFloat_AS_DOUBLE(obj);
    }
    else if (PyIndex_Check(obj)) { /* int, bool, numpy's ints ... */
        PyObject *i = PyNumber_Index(obj);
        if (i == NULL) {
            prefix_type_error(name);
            return -1;
        }
        secs = PyLong_AsDouble(i);
        if (secs == -1.0 && PyErr_Occurred()) {
            int sign = 0;
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
                Py_DECREF(i);
                return -1;
            }
            /* too large for a double: only its sign matters */
            PyErr_Clear();
            (void)PyLong_AsLongLongAndOverflow(i, &sign);
            secs = sign < 0 ? -HUGE_VAL : HUGE_VAL;
        }
        Py_DECREF(i);
    }
    else {
        /* Condition.wait's `timeout > 0`: an object that is not > 0 is
         * "do not wait"; one that is fails in lock.acquire */
        PyObject *zero = PyLong_FromLong(0);
        int gt;
        if (zero == NULL) {
            return -1;
        }
        gt = PyObject_RichCompareBool(obj, zero, Py_GT);
        Py_DECREF(zero);
        if (gt < 0) {
            prefix_type_error(name);
            return -1;
        }
        if (gt == 0) {
            return 0;
        }
        PyErr_Format(PyExc_TypeError, "%s: '%.200s' object cannot be "
                     "interpreted as an integer", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (isnan(secs) || secs <= 0) {
        return 0; /* `nan > 0` is false too: do not wait */
    }
    ns = secs * 1e9;
    if (ns >= LENIENT_MAX_NS) {
        /* (no repr: a huge int's may itself fail) */
        PyErr_Format(PyExc_OverflowError, "%s value is too large", name);
        return -1;
    }
    *out_ns = ns < 1.0 ? 1 : (uint64_t)ns;
    return 0;
}

/* 1 if obj has attribute name, 0 if not, -1 with another error set. */
static int
has_attr(PyObject *obj, const char *name)
{
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v != NULL) {
        Py_DECREF(v);
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

int
parse_token(st_state *st, PyObject *obj, const char *name, PyObject **out)
{
    static const char *const protocol[] = {
        "is_cancellation_requested", "can_be_canceled", "register"};
    size_t i;
    *out = NULL;
    if (obj == NULL || obj == Py_None) {
        return 0;
    }
    if (st->Token_type != NULL && Py_IS_TYPE(obj, st->Token_type)) {
        /* a native CancellationToken (py_cancel.c's Token_Check, read
         * here from the state: the parsers sit below cancellation) */
        *out = obj;
        return 0;
    }
    /* any other object that behaves like a token (K3 accepts them) */
    for (i = 0; i < sizeof(protocol) / sizeof(protocol[0]); i++) {
        int has = has_attr(obj, protocol[i]);
        if (has < 0) {
            return -1;
        }
        if (!has) {
            PyErr_Format(PyExc_TypeError,
                         "%s must be a CancellationToken or None, not "
                         "%.100s", name, Py_TYPE(obj)->tp_name);
            return -1;
        }
    }
    *out = obj;
    return 0;
}

int
parse_options(PyObject *obj, const char *name, const char *what,
              uint32_t valid, uint32_t *out)
{
    unsigned long long v;
    *out = 0;
    if (PyBool_Check(obj) || !PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %s (an int), not %.100s",
                     name, what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(obj); /* negative: OverflowError too */
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: %R is not a valid combination "
                     "of %s", name, obj, what);
        return -1;
    }
    if (v > UINT32_MAX || (v & ~(unsigned long long)valid) != 0) {
        /* (PyErr_Format knows no '#' flag nor %llx) */
        PyErr_Format(PyExc_ValueError, "%s: %R is not a valid combination "
                     "of %s", name, obj, what);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int
parse_count(PyObject *obj, const char *name, Py_ssize_t lo, Py_ssize_t hi,
            Py_ssize_t *out)
{
    Py_ssize_t v;
    int overflow = 0;
    long long ll;
    *out = 0;
    if (PyBool_Check(obj) || !PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    ll = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (ll == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow != 0 || ll < (long long)lo || ll > (long long)hi) {
        PyErr_Format(PyExc_ValueError, "%s must be between %zd and %zd, "
                     "not %R", name, lo, hi, obj);
        return -1;
    }
    v = (Py_ssize_t)ll;
    *out = v;
    return 0;
}
