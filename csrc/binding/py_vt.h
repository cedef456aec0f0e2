/* py_vt.h - what the ValueTask files share: py_valuetask.c (the ValueTask
 * value type, its reading and the module part), py_vt_source.c
 * (ManualResetValueTaskSourceCore and IValueTaskSource calls),
 * py_vt_pool.c (the pooling builder's boxes and their allocators),
 * py_vt_awaiter.c (ValueTaskAwaiter, ConfiguredValueTaskAwaitable) and
 * py_method.c (the async-method type, whose ValueTask modes make
 * ValueTasks).  py_valuetask.c's head comment tells the design (SPEC
 * V1-V5).  The hot helpers (making a ValueTask, the one-shot check) are
 * static inline here, so no caller pays a call across files.
 */
#ifndef ST_PY_VT_H
#define ST_PY_VT_H

#include "binding.h"

#include "st_vtsource.h" /* the source core */

/* ------------------------------------------------------------- structs */

enum { VT_RESULT = 0, VT_TASK = 1, VT_SOURCE = 2, VT_BOX = 3 };

/* vt_flags */
#define VTF_CONSUMED 0x1  /* strict: handed to a consumer already */
#define VTF_TAKEN 0x2     /* its result was taken (a box went back) */
#define VTF_PRESERVED 0x4 /* preserve()/completed_task: reusable */

typedef struct ValueTaskObject {
    PyObject_HEAD
    PyObject *vt_obj;   /* TASK/BOX: the Task; SOURCE: the source */
    PyObject *vt_value; /* RESULT: the result; SOURCE: the token */
    uint32_t vt_token;  /* BOX: the box's version when rented */
    uint8_t vt_kind;    /* VT_* */
    uint8_t vt_flags;   /* VTF_* */
} ValueTaskObject;

#define ValueTaskObject_CAST(op) ((ValueTaskObject *)(op))

/* ValueTaskAwaiter (get_awaiter) and ConfiguredValueTaskAwaitable
 * (configure_await; its own awaiter) share one layout. */
typedef struct VTAwaiterObject {
    PyObject_HEAD
    ValueTaskObject *vta_vt;
    uint8_t vta_continue; /* continue on the captured context */
} VTAwaiterObject;

#define VTAwaiterObject_CAST(op) ((VTAwaiterObject *)(op))

typedef struct MRVTSCObject {
    PyObject_HEAD
    st_vtsource_t mr_core;
    st_vts_cont_t mr_node;  /* this version's one continuation */
    PyObject *mr_result;    /* the value, or the exception */
    PyObject *mr_tb;        /* the exception's traceback when stored */
    /* the registered continuation (cleared when it is handed over) */
    PyObject *mr_cont;
    PyObject *mr_state;
    PyObject *mr_context;   /* FLOW_EXECUTION_CONTEXT: a context copy */
    PyObject *mr_target;    /* USE_SCHEDULING_CONTEXT: context/scheduler */
    PyObject *mr_weakreflist;
} MRVTSCObject;

#define MRVTSCObject_CAST(op) ((MRVTSCObject *)(op))

/* ValueTaskSourceOnCompletedFlags */
#define VTS_USE_SCHEDULING_CONTEXT 0x1
#define VTS_FLOW_EXECUTION_CONTEXT 0x2

#define BOX_VERSION(t) ((t)->task_cwopts)
/* A BOX ValueTask no longer owns its box: it took the result already (the
 * box went back to the pool then, so it can never be its operation
 * again, whatever the 16-bit version says after a wrap), or the version
 * moved on. */
#define BOX_STALE(vt)                                                       \
    (((vt)->vt_flags & VTF_TAKEN) != 0                                      \
     || BOX_VERSION(TaskObject_CAST((vt)->vt_obj))                          \
            != (uint16_t)(vt)->vt_token)

/* ---------------------------------------------------- process globals */

/* Plain C state behind the GIL (py_valuetask.c): a freelist of dead
 * ValueTask memory (no references) and the strict flag.  They live
 * outside module state because a ValueTask can be freed after the module
 * state is gone, at interpreter exit. */
#define VT_FREELIST_MAX 64
extern PyObject *g_vt_free[VT_FREELIST_MAX]; /* dead memory, not refs */
extern int g_vt_nfree;
extern int g_vt_strict;

/* ------------------------------------------------------------ helpers */

/* InvalidOperationError for a ValueTask consumed twice (strict, V2);
 * returns -1.  Refs: none. */
static inline int
raise_consumed(st_state *st)
{
    PyErr_SetString(st->InvalidOperationError,
        "this ValueTask was already consumed (awaited, or its result, awaiter "
        "or Task taken): a ValueTask may be consumed only once.  Call "
        "preserve() (or as_task()) once and consume what it returns as often "
        "as needed; set_strict_value_task(False) turns this check off");
    return -1;
}

/* InvalidOperationError for a stale token (the operation is over);
 * returns -1.  Refs: none. */
static inline int
raise_stale(st_state *st)
{
    PyErr_SetString(st->InvalidOperationError,
                    "the ValueTask's token does not match its source's "
                    "version: the operation it stood for is over (its "
                    "result was taken and its source reset or its pooled "
                    "box reused)");
    return -1;
}

/* InvalidOperationError for the result of an operation not completed
 * yet; returns -1.  Refs: none. */
static inline int
raise_not_completed(st_state *st)
{
    PyErr_SetString(st->InvalidOperationError,
                    "the ValueTask's operation has not completed yet: "
                    "await it, or block on as_task()");
    return -1;
}

/* Marks vt consumed; -1 with InvalidOperationError if it was already
 * (strict mode).  Refs: none (borrows vt). */
static inline int
vt_consume(st_state *st, ValueTaskObject *vt)
{
    if (vt->vt_flags & VTF_PRESERVED) {
        return 0;
    }
    if (g_vt_strict && (vt->vt_flags & VTF_CONSUMED)) {
        return raise_consumed(st);
    }
    vt->vt_flags |= VTF_CONSUMED;
    return 0;
}

/* ------------------------------------------------- ValueTask: making */

/* A ValueTask of the given backing, from the freelist when it has one;
 * vt_new_result / _task / _box / _source name the backing.  Refs: new;
 * borrow their arguments (the ValueTask takes its own references). */
static inline ValueTaskObject *
vt_alloc(st_state *st, int kind, PyObject *obj, PyObject *value)
{
    ValueTaskObject *vt;
    if (g_vt_nfree > 0) {
        vt = (ValueTaskObject *)g_vt_free[--g_vt_nfree];
        (void)PyObject_Init((PyObject *)vt, st->vt.ValueTask_type);
    }
    else {
        vt = PyObject_GC_New(ValueTaskObject, st->vt.ValueTask_type);
        if (vt == NULL) {
            return NULL;
        }
    }
    vt->vt_obj = Py_XNewRef(obj);
    vt->vt_value = Py_XNewRef(value);
    vt->vt_token = 0;
    vt->vt_kind = (uint8_t)kind;
    vt->vt_flags = 0;
    PyObject_GC_Track(vt);
    return vt;
}

static inline PyObject *
vt_new_result(st_state *st, PyObject *value)
{
    return (PyObject *)vt_alloc(st, VT_RESULT, NULL, value);
}

static inline PyObject *
vt_new_task(st_state *st, PyObject *task)
{
    return (PyObject *)vt_alloc(st, VT_TASK, task, NULL);
}

static inline PyObject *
vt_new_box(st_state *st, TaskObject *box)
{
    ValueTaskObject *vt = vt_alloc(st, VT_BOX, (PyObject *)box, NULL);
    if (vt != NULL) {
        vt->vt_token = BOX_VERSION(box);
    }
    return (PyObject *)vt;
}

static inline PyObject *
vt_new_source(st_state *st, PyObject *source, PyObject *token)
{
    return (PyObject *)vt_alloc(st, VT_SOURCE, source, token);
}

/* ------------------------------------------- across the ValueTask files */

/* py_valuetask.c.  vt_status: vt's ValueTaskSourceStatus (0..3), or -1
 * with an error (a stale token).  vt_get_result: the result (block: wait
 * for a pending Task-backed one), or NULL with the exception itself; takes
 * the result (a pooled box goes back).  vt_send: an await step of vt
 * (cont: continue on the captured context): PYGEN_NEXT with what to yield,
 * PYGEN_RETURN with the result, PYGEN_ERROR.  Refs: vt_get_result: new;
 * vt_send: *presult new; all borrow vt. */
int vt_status(st_state *st, ValueTaskObject *vt);
PyObject *vt_get_result(st_state *st, ValueTaskObject *vt, int block);
PySendResult vt_send(st_state *st, ValueTaskObject *vt, int cont,
                     PyObject **presult);

/* py_vt_source.c: the status (0..3, or -1 with an error), the result and
 * the on_completed call of a SOURCE-backed vt, the built-in
 * ManualResetValueTaskSourceCore without a Python call.  Refs:
 * source_result, source_on_completed: new (NULL with an error); all
 * borrow their arguments. */
int source_status(st_state *st, ValueTaskObject *vt);
PyObject *source_result(st_state *st, ValueTaskObject *vt);
PyObject *source_on_completed(st_state *st, ValueTaskObject *vt,
                              PyObject *cont, PyObject *state, int flags);

/* py_vt_pool.c.  box_rent: the rent function given to builder_start_value
 * (arg: the st_state): a box ready to be a fresh promise, from this
 * thread's slot, else the shared cache, else new.  box_return: puts a
 * completed box whose result was taken back in the pool (version + 1),
 * keeping any error that is set.  vt_pool_stats: pool_stats().  Refs:
 * box_rent: new (NULL with an error); box_return borrows b (the pool takes
 * its own reference); vt_pool_stats: new. */
TaskObject *box_rent(void *arg);
void box_return(st_state *st, TaskObject *b);
PyObject *vt_pool_stats(PyObject *mod, PyObject *unused);

/* py_valuetask.c: its parts of module exec / traverse / clear (module.c
 * calls them; st->vt is binding.h's st_vt_state).  Refs: borrows mod;
 * exec stores strong references in st, clear drops them. */
int valuetask_module_exec(PyObject *mod, st_state *st);
int valuetask_module_traverse(st_state *st, visitproc visit, void *arg);
void valuetask_module_clear(st_state *st);

/* py_vt_awaiter.c: makes ValueTaskAwaiter and
 * ConfiguredValueTaskAwaitable and adds them to the module (module.c
 * calls it after valuetask_module_exec).  0, or -1 with an error set.
 * Refs: borrows mod; stores strong references to the types in st->vt
 * (valuetask_module_clear drops them). */
int vt_awaiter_module_exec(PyObject *mod, st_state *st);
/* The type specs (static data; Refs: none): py_vt_source.c's
 * ManualResetValueTaskSourceCore, py_vt_pool.c's thread slot
 * (py_method.c's AsyncValueMethod: py_method.h). */
extern PyType_Spec MRVTSC_spec;
extern PyType_Spec BoxSlot_spec;

#endif /* ST_PY_VT_H */
