/* st_task.h - the core of a task: its state word and its continuations.
 *
 * A task is a state word (the .NET TaskStatus in the low bits, plus flags)
 * and a list of continuation nodes.  Nothing else: the result, exceptions
 * and delegate belong to whoever embeds the task (the binding embeds it in
 * the Python Task object).  Continuation nodes are intrusive, so
 * registering never allocates.
 *
 * Completion is two-phase, as TaskCompletionSource needs it:
 *   st_task_try_reserve()  - exactly one caller wins the right to complete;
 *   (the winner stores its result in the embedding object)
 *   st_task_finish()       - publishes the final status (release) and runs
 *                            the continuations, with .NET's two passes.
 * A reader that sees a final status (acquire) sees the stored result.
 *
 * Continuation kinds and the two passes (reference R3.2-R3.4):
 *   ST_CONT_TASK        ContinueWith without EXECUTE_SYNCHRONOUSLY: always
 *                       asynchronous (pass 1).
 *   ST_CONT_TASK_SYNC   ContinueWith with EXECUTE_SYNCHRONOUSLY: inline in
 *                       pass 2.
 *   ST_CONT_AWAIT       an await: the first one registered runs inline in
 *                       pass 2, every later one is asynchronous (pass 1).
 *   ST_CONT_ACTION      an internal completion action that may run user
 *                       code transitively (WhenAll, WhenAny, Unwrap): inline
 *                       in pass 2.
 *   ST_CONT_SIGNAL      an action that never runs user code (waking a sync
 *                       waiter): always inline, even under
 *                       RUN_CONTINUATIONS_ASYNCHRONOUSLY.
 * With ST_TASK_RUN_CONT_ASYNC on the task, every kind but SIGNAL is
 * asynchronous.  "Asynchronous" only means the node's fn is called with
 * ST_RUN_ASYNC: the node then schedules itself (queue to a pool, post to a
 * context); "inline" means fn is called with ST_RUN_INLINE and may run the
 * continuation right there, or still decide to schedule it (the binding
 * refuses to inline on a thread with a synchronization context, R3.4).
 * Order of the calls: SIGNAL nodes first (waking sync waiters, as .NET
 * signals its wait event before running continuations), then every ASYNC
 * call, then every INLINE call; each group in registration order.
 */
#ifndef ST_TASK_H
#define ST_TASK_H

#include <stdint.h> /* uint32_t */

#include "st_atomic.h"
#include "st_thread.h"

/* Status values are .NET's TaskStatus. */
enum {
    ST_STATUS_CREATED = 0,
    ST_STATUS_WAITING_FOR_ACTIVATION = 1,
    ST_STATUS_WAITING_TO_RUN = 2,
    ST_STATUS_RUNNING = 3,
    ST_STATUS_WAITING_FOR_CHILDREN = 4,
    ST_STATUS_RAN_TO_COMPLETION = 5,
    ST_STATUS_CANCELED = 6,
    ST_STATUS_FAULTED = 7
};

/* Bits of the state word above the status. */
#define ST_TASK_STATUS_MASK 0x7u
#define ST_TASK_RESERVED 0x8u        /* a completer won try_reserve */
#define ST_TASK_LOCKED 0x10u         /* spin bit guarding the list */
#define ST_TASK_RUN_CONT_ASYNC 0x20u /* RUN_CONTINUATIONS_ASYNCHRONOUSLY */
#define ST_TASK_USER_SHIFT 8         /* bits 8..31 are the embedder's */

/* Continuation kinds. */
enum {
    ST_CONT_TASK = 0,
    ST_CONT_TASK_SYNC = 1,
    ST_CONT_AWAIT = 2,
    ST_CONT_ACTION = 3,
    ST_CONT_SIGNAL = 4
};

/* Nested completions deeper than this on one thread's stack hand every
 * continuation over as ST_RUN_ASYNC (SIGNAL excepted). */
#define ST_MAX_FINISH_DEPTH 32

/* How fn is asked to run. */
#define ST_RUN_ASYNC 0
#define ST_RUN_INLINE 1

typedef struct st_task st_task_t;
typedef struct st_cont st_cont_t;

/* Called once per registration when the task completes, on the completing
 * thread, with no core lock held.  The node belongs to fn from the call on:
 * fn may reuse it at once (register it on another task), so the core reads
 * everything it needs from the node before calling. */
typedef void (*st_cont_fn)(st_cont_t *cont, st_task_t *task, int how);

struct st_cont {
    st_cont_t *next; /* owned by the task while registered */
    st_cont_fn fn;
    int kind;        /* ST_CONT_* */
};

struct st_task {
    ST_ATOMIC(uint32_t) state; /* status | flags; see above */
    /* The id trace events carry (SPEC D2), 0 until the embedder sets one;
     * it sits in what was padding, so a task is no bigger. */
    ST_ATOMIC(uint32_t) trace_id;
    /* The last node registered, whose `next` is the first: a ring, so
     * that one pointer keeps the order and appends in O(1) (a task is
     * 8 bytes smaller than with head and tail: issue 10 W9).  NULL when
     * none.  Guarded by ST_TASK_LOCKED. */
    st_cont_t *tail;
};

/* A sync waiter: a SIGNAL continuation that sets an event.  The event may
 * also be set by someone else to wake the waiter early (the binding's
 * deadlock detector does); `signalled` (guarded by ev.mu) records that the
 * completer itself signalled, after which it no longer touches the waiter. */
typedef struct st_waiter {
    st_cont_t cont;
    st_event_t ev;
    int signalled; /* guarded by ev.mu */
} st_waiter_t;

/* Not thread safe (the task is not yet shared).  status is the initial
 * status (CREATED, WAITING_FOR_ACTIVATION, WAITING_TO_RUN, or a final one
 * for a pre-completed task); flags are ST_TASK_RUN_CONT_ASYNC and user bits. */
void st_task_init(st_task_t *t, int status, uint32_t flags);

/* Any thread.  The status now (acquire: a final status publishes the
 * result stored before st_task_finish). */
static inline int
st_task_status(st_task_t *t)
{
    /* acquire: pairs with the release in st_task_finish */
    return (int)(st_atomic_load(&t->state, ST_ACQUIRE) & ST_TASK_STATUS_MASK);
}

static inline int
st_task_is_completed(st_task_t *t)
{
    return st_task_status(t) >= ST_STATUS_RAN_TO_COMPLETION;
}

/* Any thread.  The id the task's trace events carry (st_trace.h:
 * task.completed, wait.block, wait.wake), 0 for none.  st_task_init
 * sets 0; the embedder sets its own task id (before or after the task is
 * shared: relaxed, an event recorded meanwhile carries 0). */
static inline uint32_t
st_task_trace_id(st_task_t *t)
{
    /* relaxed: a label, ordered by nothing */
    return st_atomic_load(&t->trace_id, ST_RELAXED);
}

static inline void
st_task_set_trace_id(st_task_t *t, uint32_t id)
{
    /* relaxed: as above */
    st_atomic_store(&t->trace_id, id, ST_RELAXED);
}

/* Any thread.  The flag bits (user bits included). */
uint32_t st_task_flags(st_task_t *t);
/* Any thread.  Sets or clears user bits (>= 1 << ST_TASK_USER_SHIFT). */
void st_task_set_user_bits(st_task_t *t, uint32_t bits);
void st_task_clear_user_bits(st_task_t *t, uint32_t bits);

/* Any thread.  Moves a task that is not reserved nor completed from status
 * `from` to `to` (WAITING_TO_RUN -> RUNNING).  Returns 0, or ST_ECLOSED if
 * the task is reserved/completed or not in `from`. */
int st_task_transition(st_task_t *t, int from, int to);

/* Any thread.  Returns 1 if the caller won the right to complete the task,
 * 0 if another completer won (or it is complete). */
int st_task_try_reserve(st_task_t *t);

/* Any thread; only the winner of st_task_try_reserve.  Records
 * task.completed (st_trace.h) with the final status, then publishes the
 * final status and runs the continuations as described above.  Returns
 * 0. */
int st_task_finish(st_task_t *t, int final_status);

/* Any thread.  Registers cont (caller keeps ownership of the memory, which
 * must stay valid until fn is called or st_task_remove_cont succeeds).
 * Returns 0, or ST_ECLOSED if the task already completed: then nothing was
 * registered and the caller runs or schedules the continuation itself. */
int st_task_add_cont(st_task_t *t, st_cont_t *cont);

/* Any thread.  Unregisters cont.  Returns 0 if it was removed (fn will not
 * be called), ST_EBUSY if completion already took it (fn has been or is
 * being called), ST_EINVAL if it was never registered here. */
int st_task_remove_cont(st_task_t *t, st_cont_t *cont);

/* Any thread.  Calls visit(cont, arg) for each registered node, under
 * the task's list lock: visit must be short and must not touch the task.
 * For a garbage collector that follows the references nodes hold. */
void st_task_visit_conts(st_task_t *t, void (*visit)(st_cont_t *, void *),
                         void *arg);

/* Any thread.  Takes every registered node off a task that will never
 * complete (it is being destroyed) and returns them as a list linked by
 * `next`; their fn will not be called.  The caller releases them. */
st_cont_t *st_task_detach_conts(st_task_t *t);

/* Sync waiting.  Any thread.  Traced: st_task_add_waiter records
 * wait.block (then wait.wake at once if the task had completed); taking
 * the waiter off (st_task_remove_waiter, or st_task_remove_cont on its
 * node) records wait.wake (arg: 1 if the task completed). 
 *   st_waiter_init(&w);
 *   if (st_task_add_waiter(t, &w) == 0) {     // ST_ECLOSED: already done
 *       while (st_waiter_wait(&w, slice) == ST_ETIMEDOUT) { ...checks... }
 *       st_task_remove_waiter(t, &w);         // always, before destroy
 *   }
 *   st_waiter_destroy(&w);
 * st_task_remove_waiter waits for a concurrent completion that already took
 * the node to finish signalling it, so w may then be freed.  It waits for
 * the completer's own signal, not for the event: an event set early by a
 * third party (a wake-up) does not let it return while the completer may
 * still be about to touch w.
 *
 * The same in two steps, for a caller that must not block in the first
 * (the binding holds the GIL there): st_task_remove_waiter_nowait returns
 * 0 when w is free now (removed, or already signalled), ST_EBUSY when the
 * completer took the node and has not signalled it yet; then
 * st_waiter_wait_signalled blocks until it has. */
void st_waiter_init(st_waiter_t *w);
void st_waiter_destroy(st_waiter_t *w);
int st_task_add_waiter(st_task_t *t, st_waiter_t *w);
int st_waiter_wait(st_waiter_t *w, uint64_t timeout_ns);
void st_task_remove_waiter(st_task_t *t, st_waiter_t *w);
int st_task_remove_waiter_nowait(st_task_t *t, st_waiter_t *w);
void st_waiter_wait_signalled(st_waiter_t *w);

/* Convenience: blocks until completion or timeout (UINT64_MAX: none).
 * Returns 0 if completed, ST_ETIMEDOUT otherwise. */
int st_task_wait(st_task_t *t, uint64_t timeout_ns);

#endif /* ST_TASK_H */
