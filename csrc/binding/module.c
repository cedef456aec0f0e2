/* module.c - the sharptask._native module: initialisation, module state,
 * and the helpers shared by the binding files.
 *
 * Multi-phase init (PEP 489).  exec creates the heap types, imports the
 * exception and enum classes from sharptask._errors / _enums, and builds
 * the cached completed tasks.  The thread pool and the timer thread are
 * process-wide, so a second load of the module in one process is refused
 * (STYLE.md point 22); g_st points at the one state for the callbacks
 * that come from C threads and from the core with no module at hand.
 * For the same reason it loads in the main interpreter only (SPEC H1):
 * the Py_mod_multiple_interpreters slot on 3.12+, and on every version an
 * ImportError from exec in any other interpreter.
 */
#include "binding.h"
#include "py_task.h"
#include "py_trace.h" /* trace_methods (issue 12) */
#include "py_executor.h" /* _FutureCore (issue 11) */

#include <math.h>   /* isnan, HUGE_VAL */
#include <unistd.h> /* getpid */

#include "st_alloc.h"
#include "st_error.h"

st_state *g_st = NULL;
static int g_loaded = 0; /* guarded by the GIL */

/* ------------------------------------------------------------ helpers */

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
    if (cancel_is_token(st, obj)) {
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

/* The Python side of the parsers (the package's Python modules use them,
 * so that a Python entry point answers exactly as a C one). */

static PyObject *
mod_parse_timeout(PyObject *mod, PyObject *args)
{
    PyObject *obj;
    const char *name = "timeout";
    double secs;
    int infinite;
    if (!PyArg_ParseTuple(args, "O|s:_parse_timeout", &obj, &name)) {
        return NULL;
    }
    if (parse_seconds(obj, name, &secs, &infinite) < 0) {
        return NULL;
    }
    if (infinite) {
        Py_RETURN_NONE;
    }
    return PyFloat_FromDouble(secs);
}

static PyObject *
mod_parse_token(PyObject *mod, PyObject *args)
{
    PyObject *obj, *tok;
    const char *name = "cancellation_token";
    if (!PyArg_ParseTuple(args, "O|s:_parse_token", &obj, &name)) {
        return NULL;
    }
    if (parse_token(get_st_state(mod), obj, name, &tok) < 0) {
        return NULL;
    }
    return Py_NewRef(tok != NULL ? tok : Py_None);
}

static PyObject *
mod_parse_options(PyObject *mod, PyObject *args)
{
    PyObject *obj;
    const char *name, *what;
    unsigned long valid;
    uint32_t v;
    if (!PyArg_ParseTuple(args, "Ossk:_parse_options", &obj, &name, &what,
                          &valid)) {
        return NULL;
    }
    if (parse_options(obj, name, what, (uint32_t)valid, &v) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(v);
}

static PyObject *
mod_parse_count(PyObject *mod, PyObject *args)
{
    PyObject *obj;
    const char *name;
    Py_ssize_t lo = PY_SSIZE_T_MIN, hi = PY_SSIZE_T_MAX, v;
    if (!PyArg_ParseTuple(args, "Os|nn:_parse_count", &obj, &name, &lo,
                          &hi)) {
        return NULL;
    }
    if (parse_count(obj, name, lo, hi, &v) < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(v);
}

/* ------------------------------------------------- module functions */

static PyObject *
mod_install(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"unobserved_hook", "factory", NULL};
    st_state *st = get_st_state(mod);
    PyObject *hook = NULL, *factory = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:_install", kwlist,
                                     &hook, &factory)) {
        return NULL;
    }
    if (hook != NULL && hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_Format(PyExc_TypeError, "_install(): unobserved_hook must be "
                     "callable or None, not %.100s", Py_TYPE(hook)->tp_name);
        return NULL;
    }
    if (hook != NULL) {
        Py_XSETREF(st->unobserved_hook,
                   hook == Py_None ? NULL : Py_NewRef(hook));
    }
    if (factory != NULL) {
        /* The type is immutable from Python; C may still fill its dict
         * once, at import, before any user code sees it. */
        if (PyDict_SetItemString(st->Task_type->tp_dict, "factory", factory)
            < 0) {
            return NULL;
        }
        PyType_Modified(st->Task_type);
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_parse_timeout", mod_parse_timeout, METH_VARARGS,
     PyDoc_STR("_parse_timeout(obj, name='timeout', /)\n--\n\n"
               "Internal: check a timeout as every C entry point does;\n"
               "seconds as a float, or None for no limit.")},
    {"_parse_token", mod_parse_token, METH_VARARGS,
     PyDoc_STR("_parse_token(obj, name='cancellation_token', /)\n--\n\n"
               "Internal: check a cancellation token; the token or None.")},
    {"_parse_options", mod_parse_options, METH_VARARGS,
     PyDoc_STR("_parse_options(obj, name, enum_name, valid_bits, /)\n--\n\n"
               "Internal: check an options value; the int.")},
    {"_parse_count", mod_parse_count, METH_VARARGS,
     PyDoc_STR("_parse_count(obj, name, lo=min, hi=max, /)\n--\n\n"
               "Internal: check an int count in [lo, hi]; the int.")},
    {"_install", (PyCFunction)(void (*)(void))mod_install,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("_install(unobserved_hook=None, factory=None)\n--\n\n"
               "Internal: hooks set by the sharptask package.")},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------- exec */

static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module), *r;
    if (m == NULL) {
        return NULL;
    }
    r = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return r;
}

static int
add_type(PyObject *mod, PyType_Spec *spec, PyTypeObject **out)
{
    *out = (PyTypeObject *)PyType_FromModuleAndSpec(mod, spec, NULL);
    if (*out == NULL) {
        return -1;
    }
    return PyModule_AddType(mod, *out);
}

static int
add_functions(PyObject *mod, PyMethodDef *defs)
{
    return PyModule_AddFunctions(mod, defs);
}

static int
module_exec(PyObject *mod)
{
    st_state *st = get_st_state(mod);
    int i;

    /* H1, issue 9 item 5: the main interpreter only, on every version
     * (3.12+ also declares it in a slot, but CPython lets a legacy
     * subinterpreter through).  Checked before anything is set, so that
     * a refused import leaves the main interpreter's import working. */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "sharptask._native does not support "
                        "subinterpreters: import sharptask in the main "
                        "interpreter only (its thread pool and timers are "
                        "process-wide)");
        return -1;
    }
    if (g_loaded) {
        PyErr_SetString(PyExc_ImportError,
                        "sharptask._native cannot be loaded twice in one "
                        "process (its thread pool is process-wide)");
        return -1;
    }
    st_replace_allocator(PyMem_RawMalloc, PyMem_RawRealloc, PyMem_RawFree);
    if (add_type(mod, &Task_spec, &st->Task_type) < 0
        || add_type(mod, &TaskAwaiter_spec, &st->TaskAwaiter_type) < 0
        || add_type(mod, &ConfiguredAwaitable_spec,
                    &st->ConfiguredAwaitable_type) < 0
        || add_type(mod, &YieldAwaitable_spec, &st->YieldAwaitable_type) < 0
        || add_type(mod, &TCS_spec, &st->TCS_type) < 0
        || add_type(mod, &AsyncMethod_spec, &st->AsyncMethod_type) < 0
        || add_type(mod, &SyncContext_spec, &st->SyncContext_type) < 0
        || add_type(mod, &Action_spec, &st->Action_type) < 0) {
        return -1;
    }
    {
        PyObject *bases = PyTuple_Pack(1, (PyObject *)st->SyncContext_type);
        if (bases == NULL) {
            return -1;
        }
        st->STContext_type = (PyTypeObject *)PyType_FromModuleAndSpec(
            mod, &STContext_spec, bases);
        Py_DECREF(bases);
        if (st->STContext_type == NULL
            || PyModule_AddType(mod, st->STContext_type) < 0) {
            return -1;
        }
    }
    if (add_functions(mod, pool_methods) < 0
        || add_functions(mod, context_methods) < 0
        || add_functions(mod, task_module_methods) < 0
        || add_functions(mod, trace_methods) < 0) {
        return -1;
    }
    st->AggregateError = import_attr("sharptask._errors", "AggregateError");
    st->OperationCanceledError =
        import_attr("sharptask._errors", "OperationCanceledError");
    st->TaskCanceledError =
        import_attr("sharptask._errors", "TaskCanceledError");
    st->InvalidOperationError =
        import_attr("sharptask._errors", "InvalidOperationError");
    st->DeadlockError = import_attr("sharptask._errors", "DeadlockError");
    st->TaskStatus = import_attr("sharptask._enums", "TaskStatus");
    st->TaskCreationOptions =
        import_attr("sharptask._enums", "TaskCreationOptions");
    if (st->AggregateError == NULL || st->OperationCanceledError == NULL
        || st->TaskCanceledError == NULL
        || st->InvalidOperationError == NULL || st->DeadlockError == NULL
        || st->TaskStatus == NULL
        || st->TaskCreationOptions == NULL) {
        return -1;
    }
    for (i = 0; i < 8; i++) {
        PyObject *v = PyLong_FromLong(i);
        if (v == NULL) {
            return -1;
        }
        st->status_members[i] = PyObject_CallOneArg(st->TaskStatus, v);
        Py_DECREF(v);
        if (st->status_members[i] == NULL) {
            return -1;
        }
    }
#define INTERN(field, text)                                                 \
    if ((st->field = PyUnicode_InternFromString(text)) == NULL) {           \
        return -1;                                                          \
    }
    INTERN(str_post, "post");
    INTERN(str_on_completed, "on_completed");
    INTERN(str_unsafe_on_completed, "unsafe_on_completed");
    INTERN(str_cancellation_token, "cancellation_token");
    INTERN(str_throw, "throw");
    INTERN(str_tstate_key, "sharptask.synchronization_context");
#undef INTERN
    st->interp = PyInterpreterState_Get();
    st->pid = (long)getpid();
    st_atomic_store(&st->shutting_down, 0, ST_RELAXED);
    st->next_task_id = 0;
    g_st = st; /* before the cached tasks: task code reads it */
    g_loaded = 1;
    /* T12: None, False, True, -1..8 */
    st->cached[0] = task_new_completed(st, Py_None);
    st->cached[1] = task_new_completed(st, Py_False);
    st->cached[2] = task_new_completed(st, Py_True);
    for (i = -1; i <= 8; i++) {
        PyObject *v = PyLong_FromLong(i);
        if (v == NULL) {
            return -1;
        }
        st->cached[3 + (i + 1)] = task_new_completed(st, v);
        Py_DECREF(v);
    }
    for (i = 0; i < ST_N_CACHED; i++) {
        if (st->cached[i] == NULL) {
            return -1;
        }
    }
    if (PyDict_SetItemString(st->Task_type->tp_dict, "completed_task",
                             st->cached[0]) < 0) {
        return -1;
    }
    PyType_Modified(st->Task_type);
    if (PyModule_AddIntConstant(mod, "INFINITE", -1) < 0) {
        return -1;
    }
    if (cancel_module_exec(mod, st) < 0) { /* py_cancel.c (issue 6) */
        return -1;
    }
    if (valuetask_module_exec(mod, st) < 0) { /* py_valuetask.c (5) */
        return -1;
    }
    if (timer_module_exec(mod, st) < 0) { /* py_timer.c (issue 3) */
        return -1;
    }
    if (executor_module_exec(mod, st) < 0) { /* py_executor.c (11) */
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- lifecycle */

static int
module_traverse(PyObject *mod, visitproc visit, void *arg)
{
    st_state *st = get_st_state(mod);
    int i;
    Py_VISIT(st->Task_type);
    Py_VISIT(st->TaskAwaiter_type);
    Py_VISIT(st->ConfiguredAwaitable_type);
    Py_VISIT(st->YieldAwaitable_type);
    Py_VISIT(st->TCS_type);
    Py_VISIT(st->AsyncMethod_type);
    Py_VISIT(st->SyncContext_type);
    Py_VISIT(st->Action_type);
    Py_VISIT(st->STContext_type);
    Py_VISIT(st->DeadlockError);
    Py_VISIT(st->AggregateError);
    Py_VISIT(st->OperationCanceledError);
    Py_VISIT(st->TaskCanceledError);
    Py_VISIT(st->InvalidOperationError);
    Py_VISIT(st->TaskStatus);
    Py_VISIT(st->TaskCreationOptions);
    for (i = 0; i < 8; i++) {
        Py_VISIT(st->status_members[i]);
    }
    for (i = 0; i < ST_N_CACHED; i++) {
        Py_VISIT(st->cached[i]);
    }
    Py_VISIT(st->yield_awaitable);
    Py_VISIT(st->unobserved_hook);
    Py_VISIT(st->impl);
    i = cancel_module_traverse(st, visit, arg); /* py_cancel.c */
    if (i != 0) {
        return i;
    }
    i = valuetask_module_traverse(st, visit, arg); /* py_valuetask.c */
    if (i != 0) {
        return i;
    }
    i = timer_module_traverse(st, visit, arg); /* py_timer.c */
    if (i != 0) {
        return i;
    }
    return 0;
}

static int
module_clear(PyObject *mod)
{
    st_state *st = get_st_state(mod);
    int i;
    /* stop the native threads first: they may still queue work */
    pool_shutdown_all(st);
    Py_CLEAR(st->Task_type);
    Py_CLEAR(st->TaskAwaiter_type);
    Py_CLEAR(st->ConfiguredAwaitable_type);
    Py_CLEAR(st->YieldAwaitable_type);
    Py_CLEAR(st->TCS_type);
    Py_CLEAR(st->AsyncMethod_type);
    Py_CLEAR(st->SyncContext_type);
    Py_CLEAR(st->Action_type);
    Py_CLEAR(st->STContext_type);
    Py_CLEAR(st->DeadlockError);
    Py_CLEAR(st->AggregateError);
    Py_CLEAR(st->OperationCanceledError);
    Py_CLEAR(st->TaskCanceledError);
    Py_CLEAR(st->InvalidOperationError);
    Py_CLEAR(st->TaskStatus);
    Py_CLEAR(st->TaskCreationOptions);
    for (i = 0; i < 8; i++) {
        Py_CLEAR(st->status_members[i]);
    }
    for (i = 0; i < ST_N_CACHED; i++) {
        Py_CLEAR(st->cached[i]);
    }
    Py_CLEAR(st->yield_awaitable);
    Py_CLEAR(st->unobserved_hook);
    Py_CLEAR(st->impl);
    cancel_module_clear(st); /* py_cancel.c */
    valuetask_module_clear(st); /* py_valuetask.c */
    timer_module_clear(st);     /* py_timer.c */
    Py_CLEAR(st->str_post);
    Py_CLEAR(st->str_on_completed);
    Py_CLEAR(st->str_unsafe_on_completed);
    Py_CLEAR(st->str_cancellation_token);
    Py_CLEAR(st->str_throw);
    Py_CLEAR(st->str_tstate_key);
    return 0;
}

static void
module_free(void *mod)
{
    (void)module_clear((PyObject *)mod);
    /* g_st stays: worker threads never outlive the shutdown above, but a
     * late callback must find a state rather than NULL; the flag stays
     * set too, so a second load is still refused (the pool is gone). */
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    ST_SLOT_MULTIPLE_INTERPRETERS /* 3.12+ (st_compat.h): not supported */
    ST_SLOT_GIL                   /* 3.13+: needs the GIL */
    {0, NULL},
};

PyModuleDef st_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sharptask._native",
    .m_doc = "The C binding of sharptask: tasks, the async method builder, "
             "the thread pool and timers.",
    .m_size = sizeof(st_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&st_module);
}
