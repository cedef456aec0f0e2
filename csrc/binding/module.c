/* module.c - the sharptask._native module: the top of the binding's
 * layers (docs/architecture.md, "The binding's layers").  It only
 * assembles the module: it makes the types, adds each file's functions,
 * hands the task layer and the pool what they need from the files above
 * them, and calls each part's exec / traverse / clear.  The helpers every
 * file uses are in the bottom layer (py_state.c, py_errors.c, py_args.c).
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
#include "py_args.h"
#include "py_awaiter.h"
#include "py_builder.h"
#include "py_cancel.h"
#include "py_cancel_reg.h"
#include "py_combinators.h"
#include "py_context.h"
#include "py_factories.h"
#include "py_pool.h"
#include "py_semaphore.h"
#include "py_state.h"
#include "py_task.h"
#include "py_tcs.h"
#include "py_timer.h"
#include "py_trace.h"
#include "py_vt.h"
#include "py_deadlock.h"
#include "py_method.h"
#include "py_executor.h" /* _FutureCore (issue 11) */

#include <unistd.h> /* getpid */

#include "st_alloc.h"

static int g_loaded = 0; /* guarded by the GIL */

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

/* The task layer calls nothing above itself (issue 10): what it needs
 * from the files above is handed to it here, before any task exists:
 * the calls it makes upward (hooks), the kinds of the continuation nodes
 * those files put on a task (GC), and Task's methods that live in them. */
static const task_node_kind box_node_kind = {
    box_on_complete, task_cont_owner, NULL, NULL}; /* py_builder.c */

static int
assemble_task_layer(void)
{
    static const task_node_kind *const kinds[] = {
        &box_node_kind, &awaiter_node_kind, &when_all_node_kind,
        &when_any_node_kind, &unwrap_node_kind, &cancel_node_kind};
    static PyMethodDef *const methods[] = {
        awaiter_task_methods, combinators_task_methods,
        factories_task_methods};
    const task_hooks hooks = {
        .await_yield = await_yield,
        .builder_start = builder_start,
        .thread_running_push = thread_running_push,
        .thread_running_pop = thread_running_pop,
        .cancel_token_requested = cancel_token_requested,
        .cancel_error_is_own_token = cancel_error_is_own_token,
        .cancel_release_deferred = cancel_release_deferred,
        .wait_blocking = task_wait_blocking,
    };
    task_set_hooks(&hooks);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (task_register_node_kind(kinds[i]) < 0) {
            return -1;
        }
    }
    return task_compose_methods(methods,
                                sizeof(methods) / sizeof(methods[0]));
}

/* After each Python item on a pool worker: the item's
 * SynchronizationContext does not outlive it (py_pool.c calls this). */
static int
worker_after_item(st_state *st)
{
    if (sync_context_current() != NULL) {
        return sync_context_set(st, NULL);
    }
    return 0;
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
    if (assemble_task_layer() < 0) {
        return -1;
    }
    pool_set_after_item(worker_after_item);
    builder_set_post_box(stcontext_post_box);
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
        || add_functions(mod, deadlock_methods) < 0
        || add_functions(mod, factories_module_methods) < 0
        || add_functions(mod, combinators_module_methods) < 0
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
    if (semaphore_module_exec(mod, st) < 0) { /* py_semaphore.c (K4) */
        return -1;
    }
    if (valuetask_module_exec(mod, st) < 0) { /* py_valuetask.c (5) */
        return -1;
    }
    if (vt_awaiter_module_exec(mod, st) < 0) { /* py_vt_awaiter.c (5) */
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
    i = semaphore_module_traverse(st, visit, arg); /* py_semaphore.c */
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
    semaphore_module_clear(st); /* py_semaphore.c */
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

static PyModuleDef st_module = {
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
