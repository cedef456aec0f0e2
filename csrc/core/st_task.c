/* st_task.c - the state word and continuation list of a task.
 *
 * DESIGN
 *
 * State word.  One 32-bit atomic holds the status (.NET TaskStatus, 3 bits),
 * RESERVED (a completer won), LOCKED (a spin bit guarding the continuation
 * list), RUN_CONT_ASYNC, and the embedder's bits.  Every change is a CAS or
 * an atomic RMW on the whole word, so no change can be lost while another
 * thread holds LOCKED.
 *
 * Continuations.  An intrusive FIFO list guarded by LOCKED, kept as a ring
 * through the last node (tail->next is the first), so that the task holds
 * one pointer.
 * Completion takes the whole list and publishes the final status in one
 * atomic RMW that also drops LOCKED: a registration that takes the lock
 * afterwards sees the final status and returns ST_ECLOSED, so every node is
 * either run by the completer or refused, never both and never neither.
 * The completer sorts the taken nodes into three local queues (signal,
 * asynchronous, inline; see st_task.h) by relinking their `next` fields,
 * which it owns until it calls fn.  It reads `next` and `fn` before each
 * call, because fn may reuse the node at once.
 *
 * Why a spin bit and not a mutex: the critical sections are a few pointer
 * moves, contention is rare (completion racing registration), and a mutex
 * would add 40 bytes to every task.  The holder never blocks or calls out
 * while holding it.  Rejected: a lock-free LIFO of nodes (.NET's single
 * object-or-list slot).  It makes removal (a sync waiter interrupted by
 * Ctrl-C, WhenAny dropping the losers) need deferred reclamation, which the
 * stack-allocated waiter nodes cannot have.
 *
 * Memory ordering.  try_reserve is an acq_rel CAS; finish publishes the
 * status with release, and st_task_status loads it with acquire, so a
 * reader that sees a final status sees everything the completer stored
 * before finish (the embedder's result).  The LOCKED bit is taken with
 * acquire and dropped with release, ordering the list accesses.
 */
#include "st_task.h"

#include <sched.h>  /* sched_yield, for the rare long spin */
#include <stddef.h> /* NULL */

#include "st_error.h"
#include "st_trace.h" /* task.completed, wait.block, wait.wake */

/* The trace id took what was padding after the state word; the list is
 * one pointer (a ring through its last node). */
_Static_assert(sizeof(st_task_t) == 2 * sizeof(uint32_t)
                                         + sizeof(st_cont_t *),
               "st_task_t grew");

/* ------------------------------------------------------------ helpers */

static void
spin_pause(unsigned *spins)
{
    if (++*spins < 64) {
        st_cpu_relax();
    }
    else {
        sched_yield();
    }
}

/* Takes LOCKED; returns the state word as it was (LOCKED clear). */
static uint32_t
lock_task(st_task_t *t)
{
    unsigned spins = 0;
    /* relaxed: a pre-check only; the CAS below orders */
    uint32_t s = st_atomic_load(&t->state, ST_RELAXED);
    for (;;) {
        if (s & ST_TASK_LOCKED) {
            spin_pause(&spins);
            s = st_atomic_load(&t->state, ST_RELAXED);
            continue;
        }
        /* acquire: pairs with the release that dropped LOCKED, so the
         * list as the last holder left it is visible */
        if (st_atomic_cas_weak(&t->state, &s, s | ST_TASK_LOCKED,
                               ST_ACQUIRE, ST_RELAXED)) {
            return s;
        }
    }
}

static void
unlock_task(st_task_t *t)
{
    /* release: publishes the list changes; pairs with lock_task */
    st_atomic_fetch_and(&t->state, ~(uint32_t)ST_TASK_LOCKED, ST_RELEASE);
}

static int
is_final(uint32_t s)
{
    return (s & ST_TASK_STATUS_MASK) >= ST_STATUS_RAN_TO_COMPLETION;
}

/* LOCKED held.  Takes every node off t: the first, the rest linked by
 * `next` up to NULL (the ring cut after the last), or NULL. */
static st_cont_t *
take_list(st_task_t *t)
{
    st_cont_t *last = t->tail, *first;
    if (last == NULL) {
        return NULL;
    }
    first = last->next;
    last->next = NULL;
    t->tail = NULL;
    return first;
}

typedef struct cont_queue {
    st_cont_t *head;
    st_cont_t *tail;
} cont_queue;

static void
queue_push(cont_queue *q, st_cont_t *c)
{
    c->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = c;
    }
    else {
        q->head = c;
    }
    q->tail = c;
}

static void
queue_run(cont_queue *q, st_task_t *t, int how)
{
    st_cont_t *c = q->head;
    while (c != NULL) {
        /* fn owns the node from the call on: read it first */
        st_cont_t *next = c->next;
        st_cont_fn fn = c->fn;
        fn(c, t, how);
        c = next;
    }
}

/* Completions nested on this thread's stack: a continuation run inline
 * may complete another task, whose continuations run inline, and so on.
 * Past ST_MAX_FINISH_DEPTH every continuation is handed over as ASYNC
 * instead (.NET's "not enough stack" check), so a chain of any length
 * completes without overflowing the C stack. */
static ST_THREAD_LOCAL int finish_depth;

/* Runs the continuations taken from a completed task (no lock held). */
static void
run_continuations(st_task_t *t, st_cont_t *list, uint32_t flags)
{
    cont_queue signal = {NULL, NULL};
    cont_queue async = {NULL, NULL};
    cont_queue inl = {NULL, NULL};
    int all_async = (flags & ST_TASK_RUN_CONT_ASYNC) != 0
                    || finish_depth >= ST_MAX_FINISH_DEPTH;
    int seen_await = 0;
    st_cont_t *c, *next;

    for (c = list; c != NULL; c = next) {
        next = c->next;
        switch (c->kind) {
        case ST_CONT_SIGNAL:
            queue_push(&signal, c);
            break;
        case ST_CONT_TASK:
            queue_push(&async, c);
            break;
        case ST_CONT_AWAIT:
            /* the first await may run inline; later ones are forced
             * asynchronous so none waits behind arbitrary user code */
            if (all_async || seen_await) {
                queue_push(&async, c);
            }
            else {
                queue_push(&inl, c);
            }
            seen_await = 1;
            break;
        default: /* ST_CONT_TASK_SYNC, ST_CONT_ACTION */
            queue_push(all_async ? &async : &inl, c);
            break;
        }
    }
    queue_run(&signal, t, ST_RUN_INLINE);
    queue_run(&async, t, ST_RUN_ASYNC);
    finish_depth++;
    queue_run(&inl, t, ST_RUN_INLINE);
    finish_depth--;
}

/* ---------------------------------------------------------- lifecycle */

void
st_task_init(st_task_t *t, int status, uint32_t flags)
{
    ST_ASSERT(status >= 0 && status <= ST_STATUS_FAULTED);
    ST_ASSERT((flags & (ST_TASK_STATUS_MASK | ST_TASK_RESERVED
                        | ST_TASK_LOCKED)) == 0);
    st_atomic_init(&t->state, (uint32_t)status | flags);
    st_atomic_init(&t->trace_id, 0);
    t->tail = NULL;
}

uint32_t
st_task_flags(st_task_t *t)
{
    /* acquire: same as st_task_status */
    return st_atomic_load(&t->state, ST_ACQUIRE) & ~ST_TASK_STATUS_MASK;
}

void
st_task_set_user_bits(st_task_t *t, uint32_t bits)
{
    ST_ASSERT((bits & ((1u << ST_TASK_USER_SHIFT) - 1)) == 0);
    /* relaxed: user bits carry no data of their own */
    st_atomic_fetch_or(&t->state, bits, ST_RELAXED);
}

void
st_task_clear_user_bits(st_task_t *t, uint32_t bits)
{
    ST_ASSERT((bits & ((1u << ST_TASK_USER_SHIFT) - 1)) == 0);
    /* relaxed: as above */
    st_atomic_fetch_and(&t->state, ~bits, ST_RELAXED);
}

int
st_task_transition(st_task_t *t, int from, int to)
{
    /* relaxed: pre-check; the CAS orders */
    uint32_t s = st_atomic_load(&t->state, ST_RELAXED);
    for (;;) {
        if ((s & ST_TASK_RESERVED) || is_final(s)
            || (int)(s & ST_TASK_STATUS_MASK) != from) {
            return ST_ECLOSED;
        }
        /* release: the status change publishes what the caller did
         * before it (pairs with acquire in st_task_status) */
        if (st_atomic_cas_weak(&t->state, &s,
                               (s & ~ST_TASK_STATUS_MASK) | (uint32_t)to,
                               ST_RELEASE, ST_RELAXED)) {
            return 0;
        }
    }
}

/* --------------------------------------------------------- completion */

int
st_task_try_reserve(st_task_t *t)
{
    unsigned spins = 0;
    /* acquire: if we see a final status we must see its result */
    uint32_t s = st_atomic_load(&t->state, ST_ACQUIRE);
    for (;;) {
        if (s & ST_TASK_RESERVED) {
            break; /* lost: wait below until the winner publishes */
        }
        if (is_final(s)) {
            return 0;
        }
        /* acq_rel: acquire orders our later stores after the win;
         * release is harmless and keeps the RMW chain ordered */
        if (st_atomic_cas_weak(&t->state, &s, s | ST_TASK_RESERVED,
                               ST_ACQ_REL, ST_ACQUIRE)) {
            return 1;
        }
    }
    /* A loser returns only once the task is completed (R4.3), so that
     * after any try_set returns, is_completed is true. */
    while (!is_final(s)) {
        spin_pause(&spins);
        /* acquire: pairs with the release in st_task_finish */
        s = st_atomic_load(&t->state, ST_ACQUIRE);
    }
    return 0;
}

int
st_task_finish(st_task_t *t, int final_status)
{
    st_cont_t *list;
    uint32_t s, want;

    ST_ASSERT(final_status >= ST_STATUS_RAN_TO_COMPLETION
              && final_status <= ST_STATUS_FAULTED);
    /* before the status is published: a waiter woken by it records its
     * wake after this (D2: time order is cause order) */
    ST_TRACE(ST_TRACE_TASK_COMPLETED, st_task_trace_id(t), 0,
             (uint32_t)final_status);
    s = lock_task(t);
    ST_ASSERT(s & ST_TASK_RESERVED);
    list = take_list(t);
    s = s | ST_TASK_LOCKED;
    for (;;) {
        want = (s & ~(ST_TASK_STATUS_MASK | ST_TASK_RESERVED
                      | ST_TASK_LOCKED))
               | (uint32_t)final_status;
        /* release: publishes the embedder's result and the emptied list,
         * and drops LOCKED in the same step; pairs with the acquire loads
         * of st_task_status and lock_task */
        if (st_atomic_cas_weak(&t->state, &s, want, ST_RELEASE,
                               ST_RELAXED)) {
            break;
        }
    }
    if (list != NULL) {
        run_continuations(t, list, want);
    }
    return 0;
}

/* ------------------------------------------------------ continuations */

int
st_task_add_cont(st_task_t *t, st_cont_t *cont)
{
    uint32_t s;

    /* acquire fast path: completed tasks refuse without the lock */
    if (is_final(st_atomic_load(&t->state, ST_ACQUIRE))) {
        return ST_ECLOSED;
    }
    s = lock_task(t);
    if (is_final(s)) {
        unlock_task(t);
        return ST_ECLOSED;
    }
    if (t->tail != NULL) {
        cont->next = t->tail->next; /* the first */
        t->tail->next = cont;
    }
    else {
        cont->next = cont; /* a ring of one */
    }
    t->tail = cont;
    unlock_task(t);
    return 0;
}

static void waiter_signal(st_cont_t *cont, st_task_t *task, int how);

int
st_task_remove_cont(st_task_t *t, st_cont_t *cont)
{
    st_cont_t *prev, *c;
    uint32_t s;
    /* A sync waiter's node taken off (or by) its task ends the wait:
     * wait.wake, on the waiting thread (the binding's waits come here).
     * fn is read first: once the completer took a node, its fn may
     * reuse it. */
    int waiter = ST_UNLIKELY(st_trace_on()) && cont->fn == waiter_signal;

    s = lock_task(t);
    if (is_final(s)) {
        unlock_task(t);
        if (waiter) {
            ST_TRACE(ST_TRACE_WAIT_WAKE, st_task_trace_id(t), 1,
                     ST_TRACE_ON_TASK);
        }
        return ST_EBUSY;
    }
    /* round the ring from the first node, prev trailing (the last node
     * precedes the first) */
    for (prev = t->tail; prev != NULL; prev = c) {
        c = prev->next;
        if (c == cont) {
            if (c == prev) {
                t->tail = NULL; /* it was the only one */
            }
            else {
                prev->next = c->next;
                if (t->tail == c) {
                    t->tail = prev;
                }
            }
            c->next = NULL;
            unlock_task(t);
            if (waiter) {
                ST_TRACE(ST_TRACE_WAIT_WAKE, st_task_trace_id(t), 0,
                         ST_TRACE_ON_TASK);
            }
            return 0;
        }
        if (c == t->tail) {
            break; /* round: not registered here */
        }
    }
    unlock_task(t);
    return ST_EINVAL;
}

void
st_task_visit_conts(st_task_t *t, void (*visit)(st_cont_t *, void *),
                    void *arg)
{
    (void)lock_task(t);
    if (t->tail != NULL) {
        st_cont_t *c = t->tail;
        do {
            c = c->next; /* the first, then on round to the last */
            visit(c, arg);
        } while (c != t->tail);
    }
    unlock_task(t);
}

st_cont_t *
st_task_detach_conts(st_task_t *t)
{
    st_cont_t *list;
    (void)lock_task(t);
    list = take_list(t);
    unlock_task(t);
    return list;
}

/* ------------------------------------------------------------ waiting */

/* The completer's signal: the event and `signalled` in one critical
 * section of the event's mutex, so that a waiter that sees `signalled`
 * (under the mutex) knows the completer is past its last touch of w. */
static void
waiter_signal(st_cont_t *cont, st_task_t *task, int how)
{
    st_waiter_t *w = (st_waiter_t *)cont; /* cont is the first member */
    (void)task;
    (void)how;
    st_mutex_lock(&w->ev.mu);
    w->signalled = 1;
    w->ev.set = 1;
    st_cond_broadcast(&w->ev.cv);
    st_mutex_unlock(&w->ev.mu);
}

void
st_waiter_init(st_waiter_t *w)
{
    w->cont.next = NULL;
    w->cont.fn = waiter_signal;
    w->cont.kind = ST_CONT_SIGNAL;
    st_event_init(&w->ev);
    w->signalled = 0;
}

void
st_waiter_destroy(st_waiter_t *w)
{
    st_event_destroy(&w->ev);
}

int
st_task_add_waiter(st_task_t *t, st_waiter_t *w)
{
    int rc;

    /* before the registration that lets a completer wake us (D2) */
    ST_TRACE(ST_TRACE_WAIT_BLOCK, st_task_trace_id(t), 0, ST_TRACE_ON_TASK);
    rc = st_task_add_cont(t, &w->cont);
    if (rc != 0) {
        ST_TRACE(ST_TRACE_WAIT_WAKE, st_task_trace_id(t), 1,
                 ST_TRACE_ON_TASK);
    }
    return rc;
}

int
st_waiter_wait(st_waiter_t *w, uint64_t timeout_ns)
{
    return st_event_wait(&w->ev, timeout_ns);
}

int
st_task_remove_waiter_nowait(st_task_t *t, st_waiter_t *w)
{
    int signalled;
    if (st_task_remove_cont(t, &w->cont) != ST_EBUSY) {
        return 0; /* removed: the completer will never see it */
    }
    st_mutex_lock(&w->ev.mu);
    signalled = w->signalled;
    st_mutex_unlock(&w->ev.mu);
    return signalled ? 0 : ST_EBUSY;
}

void
st_waiter_wait_signalled(st_waiter_t *w)
{
    /* Not st_event_wait: the event may have been set by a wake-up before
     * the completer got to this node (it runs the SIGNAL nodes ahead of
     * it first); only `signalled` says the completer is done with w. */
    st_mutex_lock(&w->ev.mu);
    while (!w->signalled) {
        st_cond_wait(&w->ev.cv, &w->ev.mu);
    }
    st_mutex_unlock(&w->ev.mu);
}

void
st_task_remove_waiter(st_task_t *t, st_waiter_t *w)
{
    if (st_task_remove_waiter_nowait(t, w) == ST_EBUSY) {
        /* The completer took the node: wait until it has signalled, after
         * which it no longer touches w. */
        st_waiter_wait_signalled(w);
    }
}

int
st_task_wait(st_task_t *t, uint64_t timeout_ns)
{
    st_waiter_t w;
    int rc;

    if (st_task_is_completed(t)) {
        return 0;
    }
    st_waiter_init(&w);
    if (st_task_add_waiter(t, &w) == 0) {
        st_waiter_wait(&w, timeout_ns);
        st_task_remove_waiter(t, &w);
    }
    st_waiter_destroy(&w);
    rc = st_task_is_completed(t) ? 0 : ST_ETIMEDOUT;
    return rc;
}
