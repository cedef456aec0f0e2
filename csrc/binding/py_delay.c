/* py_delay.c - Task.delay's tasks: a timer entry completing a promise.
 *
 *     Task.delay(seconds)      # a timer entry completing a promise
 *     Task.delay(seconds, cancellation_token=token)   # K3: see below
 *
 * The timer thread does no Python work; a due delay entry is queued to
 * the pool, whose worker completes the task with the GIL.  A delay with a
 * cancellation token also registers on the token (through
 * py_cancel_reg.c): whichever comes first completes the task, and a token
 * that fires first disarms the timer at once (st_timer_cancel), while the
 * completion of the task drops the token's registration at once.
 * (Moved out of py_pool.c, which sits below the task layer: issue 10.)
 */
#include "binding.h"
#include "py_cancel_reg.h"
#include "py_delay.h"
#include "py_errors.h"
#include "py_pool.h"
#include "py_state.h"
#include "py_task.h"

#include "st_error.h"
#include "st_list.h" /* st_container_of */

/* --------------------------------------------------------------- delay */

/* A Task.delay: the timer entry, the work item that completes the task on
 * the pool, and the task.  With a cancellation token (K3), the token's
 * registration shares the node, so `refs` counts two claims, both under
 * the GIL: the timer's (until its work item ran, or until a cancel
 * disarmed it) and the registration's (until the registration object
 * goes away, which may be long after the delay ended). */
typedef struct delay_node {
    st_timer_entry_t entry;
    st_work_t work;
    TaskObject *task;   /* strong */
    st_timer_t *timer;  /* the timer it was armed in */
    int refs;           /* claims on the node (GIL) */
} delay_node;

static void
delay_node_release(void *p)
{
    delay_node *d = p;
    if (--d->refs == 0) {
        Py_DECREF(d->task);
        PyMem_Free(d);
    }
}

static void
delay_work_run(st_work_t *w)
{
    delay_node *d = st_container_of(w, delay_node, work);
    task_try_complete(d->task, ST_STATUS_RAN_TO_COMPLETION, Py_None, NULL);
    if (pending_exc_restore() < 0) {
        PyErr_WriteUnraisable((PyObject *)d->task);
    }
    delay_node_release(d); /* the timer's claim */
}

static void
delay_fire(st_timer_entry_t *e)
{
    /* timer thread, no GIL: only hand the node to the pool */
    delay_node *d = st_container_of(e, delay_node, entry);
    st_pool_t *pool = g_st != NULL ? pool_peek(g_st) : NULL;
    d->work.run = delay_work_run;
    d->work.flags = ST_WORK_DOMAIN;
    if (pool == NULL || st_pool_submit(pool, &d->work) != 0) {
        /* shutting down: leak the node and its task reference */
    }
}

/* Takes d's entry out of its timer, if still there, and drops the
 * timer's claim: it will never fire.  GIL held.  After fork() the
 * parent's timer is forgotten (get_timer): an entry armed there never
 * fires, and must not be looked for in the child's heap. */
static void
delay_disarm(delay_node *d)
{
    if (d->timer != g_st->timer
        || st_timer_cancel(d->timer, &d->entry) == 0) {
        delay_node_release(d); /* the timer's claim */
    }
}

/* Arms a timer that completes t after ns.  The node (one claim: the
 * timer's), or NULL with an error set. */
static delay_node *
delay_arm(st_state *st, TaskObject *t, uint64_t ns)
{
    st_timer_t *timer;
    delay_node *d;
    int rc;

    if (get_pool(st) == NULL || (timer = get_timer(st)) == NULL) {
        return NULL;
    }
    d = PyMem_Malloc(sizeof(*d));
    if (d == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    d->task = (TaskObject *)Py_NewRef(t);
    d->timer = timer;
    d->refs = 1;
    d->entry.fire = delay_fire;
    d->entry.armed = 0;
    rc = st_timer_add(timer, &d->entry, st_now_ns() + ns);
    if (rc != 0) {
        Py_DECREF(d->task);
        PyMem_Free(d);
        st_raise_from_code(st, rc);
        return NULL;
    }
    return d;
}

/* A delay task armed for ns; *node (if not NULL) gets the timer node. */
static PyObject *
delay_start_node(st_state *st, uint64_t ns, delay_node **node)
{
    delay_node *d;
    PyObject *t = task_new_promise(st, NULL, 0);
    if (t == NULL) {
        return NULL;
    }
    /* It holds no object and the timer holds it until it fires: it can
     * never be cyclic garbage, so the GC need not scan 100k of them. */
    PyObject_GC_UnTrack(t);
    if ((d = delay_arm(st, (TaskObject *)t, ns)) == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    if (node != NULL) {
        *node = d;
    }
    return t;
}

PyObject *
delay_start(st_state *st, uint64_t ns)
{
    return delay_start_node(st, ns, NULL);
}

PyObject *
delay_start_owned(st_state *st, uint64_t ns, struct delay_node **node)
{
    PyObject *t = delay_start_node(st, ns, node);
    if (t != NULL) {
        (*node)->refs++; /* the caller's claim */
    }
    return t;
}

void
delay_release(struct delay_node *d, int disarm)
{
    if (disarm) {
        delay_disarm(d);
    }
    delay_node_release(d); /* the caller's claim */
}

/* The token fired before the timer (K3, R5.4): disarm the timer at once,
 * so a canceled delay holds no timer, and cancel the task.  d is NULL for
 * an infinite delay; otherwise the registration's claim keeps it valid. */
static int
delay_token_fired(PyObject *target, PyObject *token, void *carg)
{
    delay_node *d = carg;
    if (d != NULL) {
        delay_disarm(d);
    }
    task_try_complete((TaskObject *)target, ST_STATUS_CANCELED, NULL, token);
    return 0;
}

PyObject *
delay_start_token(st_state *st, PyObject *seconds, uint64_t ns,
                  int infinite, PyObject *token)
{
    TaskObject *t;
    delay_node *d = NULL;
    PyObject *reg;
    int already;

    /* R5.4: a canceled token wins, even over a zero delay */
    if (cancel_token_requested(st, token)) {
        return task_new_canceled(st, NULL, token);
    }
    if (!infinite && ns == 0) {
        return Py_NewRef(st->cached[0]);
    }
    if (!cancel_is_token(st, token)) {
        /* another token object: the Python path registers on it */
        PyObject *a[2] = {seconds, token};
        return call_impl(st, "delay_token", a, 2, NULL);
    }
    if (!cancel_token_can_fire(st, token)) {
        return infinite ? task_new_promise(st, NULL, 0)
                        : delay_start(st, ns);
    }
    /* R5.4: a cancellation does not run the delay's continuations inside
     * cancel(): the task runs them asynchronously (the core flag only;
     * creation_options stays NONE, as .NET's DelayPromise shows it) */
    t = (TaskObject *)task_new_promise(st, NULL, 0x40 /* TCO_RCA */);
    if (t == NULL) {
        return NULL;
    }
    t->task_options = 0;
    if (!infinite) {
        d = delay_arm(st, t, ns);
        if (d == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        d->refs++; /* the registration's claim */
    }
    /* the registration is dropped as soon as t completes (the watch) */
    reg = cancel_register_action(st, token, delay_token_fired,
                                 (PyObject *)t, d,
                                 d != NULL ? delay_node_release : NULL, t,
                                 &already);
    if (reg == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    Py_DECREF(reg);
    if (already) {
        /* canceled since we looked: the timer's claim keeps d valid */
        delay_token_fired((PyObject *)t, token, d);
    }
    return (PyObject *)t;
}
