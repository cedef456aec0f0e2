/* py_vt_pool.c - the pooling ValueTask builder's boxes (SPEC V5,
 * PoolingAsyncValueTaskMethodBuilder): renting a box at a method's first
 * suspension, giving it back when the consumer takes the result, the
 * per-thread slot and the shared cache that hold them, and the counters
 * of pool_stats().  py_valuetask.c's head comment tells how a box is
 * versioned and why a stale ValueTask can never reach a reused box.
 */
#include "binding.h"
#include "py_task.h"
#include "py_vt.h"

/* A thread's pool slot: one box, owned by the thread state's dict so that
 * it goes when the thread does (with the GIL held). */
typedef struct BoxSlotObject {
    PyObject_HEAD
    TaskObject *bs_box;
} BoxSlotObject;

/* The pool's counters: plain C behind the GIL, outside module state
 * because a thread's slot can be freed (and the counters touched) after
 * the module state is gone, at interpreter exit. */
static uint64_t g_pool_rented, g_pool_returned, g_pool_created;
static uint64_t g_pool_dropped;
static int g_pool_in_slots; /* boxes held by thread slots now */

/* This thread's slot, borrowed (the thread state's dict owns it), valid
 * while the thread state with id tls_slot_tid lives. */
static ST_THREAD_LOCAL BoxSlotObject *tls_slot;
static ST_THREAD_LOCAL uint64_t tls_slot_tid;

/* ---------------------------------------------------------- the pool */

/* This thread's slot (borrowed), created on first use; NULL with no error
 * set if it cannot be had (the pool then uses the shared cache only). */
static BoxSlotObject *
box_slot(st_state *st)
{
    PyThreadState *ts = PyThreadState_Get();
    uint64_t tid = PyThreadState_GetID(ts);
    PyObject *dict, *slot;

    if (tls_slot != NULL && tls_slot_tid == tid) {
        return tls_slot;
    }
    dict = PyThreadState_GetDict(); /* borrowed */
    if (dict == NULL) {
        return NULL;
    }
    slot = PyDict_GetItemWithError(dict, st->vt.str_slot_key); /* borrowed */
    if (slot == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return NULL;
        }
        slot = (PyObject *)PyObject_GC_New(BoxSlotObject, st->vt.BoxSlot_type);
        if (slot == NULL) {
            PyErr_Clear();
            return NULL;
        }
        ((BoxSlotObject *)slot)->bs_box = NULL;
        PyObject_GC_Track(slot);
        if (PyDict_SetItem(dict, st->vt.str_slot_key, slot) < 0) {
            PyErr_Clear();
            Py_DECREF(slot);
            return NULL;
        }
        Py_DECREF(slot); /* the dict owns it */
    }
    tls_slot = (BoxSlotObject *)slot;
    tls_slot_tid = tid;
    return tls_slot;
}

/* The rent function given to builder_start_value: a box ready to be a
 * fresh promise (new reference), from this thread's slot, else the shared
 * cache, else new (reference 4.4). */
TaskObject *
box_rent(void *arg)
{
    st_state *st = arg;
    BoxSlotObject *slot = box_slot(st);
    TaskObject *b;

    if (slot != NULL && slot->bs_box != NULL) {
        b = slot->bs_box; /* the slot's reference becomes ours */
        slot->bs_box = NULL;
        g_pool_in_slots--;
    }
    else if (st->vt.cache_len > 0) {
        b = (TaskObject *)st->vt.cache[--st->vt.cache_len];
        st->vt.cache[st->vt.cache_len] = NULL;
    }
    else {
        b = (TaskObject *)task_new_promise(st, NULL, 0);
        if (b == NULL) {
            return NULL;
        }
        b->task_flags |= TF_POOLED;
        BOX_VERSION(b) = 0;
        g_pool_created++;
    }
    /* H3 (issue 9 item 9): a box that completed holding only atoms was
     * taken off the GC's lists (untrack_if_atomic); it is about to hold
     * a coroutine and a context again, so a cycle through the suspended
     * method must be visible to the collector. */
    if (!PyObject_GC_IsTracked((PyObject *)b)) {
        PyObject_GC_Track(b);
    }
    g_pool_rented++;
    return b;
}

/* Puts a completed box whose result was taken back in the pool: resets it
 * as task_alloc initialises a task (update this when TaskObject grows a
 * field), with version + 1, then stores it (reference 4.5).  Keeps any
 * error that is set. */
void
box_return(st_state *st, TaskObject *b)
{
    PyObject *exc;
    PyObject *old[9];
    BoxSlotObject *slot;
    int i;

    exc = PyErr_GetRaisedException();
    /* move every reference out first: dropping one may run code */
    old[0] = b->task_fr; /* fn or outcome: one reference */
    old[1] = task_token(b);
    old[2] = task_async_state(b);
    old[3] = NULL; /* the fn shares old[0]'s slot */
    old[4] = b->task_arg;
    old[5] = b->task_context;
    old[6] = task_target(b);
    old[7] = task_scheduler(b);
    old[8] = task_tb(b);
    b->task_fr = NULL;
    if (b->task_flags & TF_HAS_X) { /* kept for the next use, emptied */
        memset(b->task_xb, 0, sizeof(*b->task_xb));
    }
    else {
        b->task_tgt = NULL;
    }
    b->task_arg = NULL;
    b->task_context = NULL;
    st_task_init(&b->task_core, ST_STATUS_WAITING_FOR_ACTIVATION, 0);
    /* a new operation gets a new id: st_task_init set it to 0 */
    b->task_kind = TASK_PROMISE;
    b->task_flags = TF_POOLED | (b->task_flags & TF_HAS_X); /* its block */
    BOX_VERSION(b) = (uint16_t)(BOX_VERSION(b) + 1u); /* wraps, as .NET */
    b->task_options = 0;
    b->task_cont.next = NULL;
    b->task_cont.fn = NULL;
    b->task_cont.kind = ST_CONT_ACTION; /* the node is either (binding.h) */
    g_pool_returned++;
    slot = box_slot(st);
    if (slot != NULL && slot->bs_box == NULL) {
        slot->bs_box = (TaskObject *)Py_NewRef(b);
        g_pool_in_slots++;
    }
    else if (st->vt.cache_len < st->vt.cache_cap) {
        st->vt.cache[st->vt.cache_len++] = Py_NewRef(b);
    }
    else {
        g_pool_dropped++; /* both full: left to the GC, as .NET drops it */
    }
    for (i = 0; i < 9; i++) {
        Py_XDECREF(old[i]);
    }
    PyErr_SetRaisedException(exc);
}

/* ------------------------------------------------------------- BoxSlot */

static int
BoxSlot_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((BoxSlotObject *)op)->bs_box);
    return 0;
}

static int
BoxSlot_clear(PyObject *op)
{
    BoxSlotObject *s = (BoxSlotObject *)op;
    if (s->bs_box != NULL) {
        g_pool_in_slots--; /* the box leaves the pool with its thread */
        Py_CLEAR(s->bs_box);
    }
    return 0;
}

static void
BoxSlot_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if ((PyObject *)tls_slot == op) {
        tls_slot = NULL; /* cleared on this very thread */
    }
    Py_TRASHCAN_BEGIN(op, BoxSlot_dealloc) /* H4: holds a box */
    (void)BoxSlot_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyType_Slot BoxSlot_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR(
         "Internal: a thread's slot of the ValueTask box pool.")},
    {Py_tp_traverse, BoxSlot_traverse},
    {Py_tp_clear, BoxSlot_clear},
    {Py_tp_dealloc, BoxSlot_dealloc},
    {0, NULL},
};

PyType_Spec BoxSlot_spec = {
    .name = "sharptask._BoxSlot",
    .basicsize = sizeof(BoxSlotObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = BoxSlot_slots,
};

PyObject *
vt_pool_stats(PyObject *mod, PyObject *unused)
{
    st_state *st = get_st_state(mod);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:i}", "rented",
                         (unsigned long long)g_pool_rented, "returned",
                         (unsigned long long)g_pool_returned, "created",
                         (unsigned long long)g_pool_created, "dropped",
                         (unsigned long long)g_pool_dropped, "pooled",
                         g_pool_in_slots + st->vt.cache_len);
}
