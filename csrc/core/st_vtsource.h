/* st_vtsource.h - the core of a ValueTask source: .NET's
 * ManualResetValueTaskSourceCore (ManualResetValueTaskSourceCore.cs) as a
 * version, a completed flag and one continuation slot.
 *
 * A source is one reusable asynchronous operation.  Each use has a version
 * (the ValueTask's token): st_vtsource_reset() starts the next use, and
 * every consumer call (get_status, get_result, on_completed) takes the
 * token it was given and fails with ST_EINVAL when it is not the current
 * version, so a consumer holding a stale ValueTask is told instead of
 * reading another operation's outcome.
 *
 * Completion is two-phase, like a task's (st_task.h):
 *   st_vtsource_try_reserve()  - one caller wins the right to complete;
 *   (the winner stores its result in the embedding object)
 *   st_vtsource_complete()     - publishes the status (release) and calls
 *                                the continuation if one is registered.
 * A reader that sees a final status (acquire) sees the stored result.
 *
 * One continuation per version.  The consumer registers one node with
 * st_vtsource_on_completed().  The node's fn is called exactly once:
 *   - by the completer, if the node was registered first: how is
 *     ST_VTS_RUN_INLINE, or ST_VTS_RUN_ASYNC when the source was told to
 *     run continuations asynchronously;
 *   - by st_vtsource_on_completed itself, if the source had completed
 *     first: how is always ST_VTS_RUN_ASYNC (.NET never runs a continuation
 *     registered late inline: OnCompleted_ContinuationAlwaysInvokedAsync).
 * "Async" only tells fn how it is allowed to run the continuation: fn then
 * queues it (thread pool, context); "inline" lets it run right there.  A
 * second registration for the same version fails with ST_EBUSY, whether
 * the first one has run yet or not.
 *
 *     st_vtsource_init(&s);
 *     // producer                         // consumer (token = version)
 *     if (st_vtsource_try_reserve(&s)) {   node.fn = resume;
 *         my_result = 42;                  st_vtsource_on_completed(&s,
 *         st_vtsource_complete(&s,                           token, &node);
 *             ST_VTS_SUCCEEDED);           ...in resume():
 *     }                                    st_vtsource_get_result(&s,
 *                                                       token, &status);
 *     st_vtsource_reset(&s);   // next use: version + 1
 *
 * Threads.  Everything is "any thread" except st_vtsource_init, _reset and
 * _set_run_async, which belong to the owner of the source and must not run
 * concurrently with any other call on it (as in .NET, Reset is not thread
 * safe: the owner resets only once the consumer is done).
 */
#ifndef ST_VTSOURCE_H
#define ST_VTSOURCE_H

#include <stdint.h> /* uint32_t */

#include "st_atomic.h" /* the completed flag, the slot, the version */

/* Status values are .NET's ValueTaskSourceStatus. */
enum {
    ST_VTS_PENDING = 0,
    ST_VTS_SUCCEEDED = 1,
    ST_VTS_FAULTED = 2,
    ST_VTS_CANCELED = 3
};

/* How a continuation's fn is asked to run. */
#define ST_VTS_RUN_ASYNC 0
#define ST_VTS_RUN_INLINE 1

typedef struct st_vtsource st_vtsource_t;
typedef struct st_vts_cont st_vts_cont_t;

/* Called once per registration (see above), with no core lock held (the
 * source has none).  The node belongs to fn from the call on. */
typedef void (*st_vts_fn)(st_vts_cont_t *cont, int how);

struct st_vts_cont {
    st_vts_fn fn;
};

struct st_vtsource {
    /* NULL, a registered node, or one of the two sentinels of
     * st_vtsource.c (completed with nobody waiting; continuation taken). */
    ST_ATOMIC(st_vts_cont_t *) slot;
    ST_ATOMIC(int) completed;   /* 0 no, 1 reserved, 2 completed */
    ST_ATOMIC(uint32_t) version; /* the current token */
    int status;                  /* ST_VTS_*; written by the reserver */
    int run_async;               /* RunContinuationsAsynchronously */
};

/* Owner only.  Version 0, pending, nothing registered, run_async off. */
void st_vtsource_init(st_vtsource_t *s);

/* Owner only, with no other call running on s.  Starts the next use:
 * pending, nothing registered, version + 1 (wrapping at 2^32).  Does not
 * check that the previous continuation has run (.NET's Reset does not
 * either).  Returns the new version. */
uint32_t st_vtsource_reset(st_vtsource_t *s);

/* Any thread.  The current version. */
uint32_t st_vtsource_version(st_vtsource_t *s);

/* Owner only.  RunContinuationsAsynchronously; kept across resets. */
void st_vtsource_set_run_async(st_vtsource_t *s, int on);
int st_vtsource_run_async(st_vtsource_t *s);

/* Any thread.  1 if the caller won the right to complete the current
 * version, 0 if it was already reserved or completed. */
int st_vtsource_try_reserve(st_vtsource_t *s);

/* Any thread; only the winner of st_vtsource_try_reserve, once.  status
 * is SUCCEEDED, FAULTED or CANCELED.  Publishes it and calls the
 * registered continuation, if any (see above), before returning 0. */
int st_vtsource_complete(st_vtsource_t *s, int status);

/* Any thread.  0 and *status (PENDING while not completed, else the
 * final status), or ST_EINVAL if token is not the current version. */
int st_vtsource_get_status(st_vtsource_t *s, uint32_t token, int *status);

/* Any thread.  0 and *status (the final status: the embedder then reads
 * its stored result), ST_EINVAL for a wrong token, ST_EBUSY if the
 * current version has not completed yet.  Repeatable: nothing changes
 * until the owner resets the source. */
int st_vtsource_get_result(st_vtsource_t *s, uint32_t token, int *status);

/* Any thread.  Registers the version's one continuation (cont's memory
 * stays valid until its fn is called; set cont->fn first).  Returns 0:
 * fn was called (ASYNC) because the source had completed, or will be
 * called by the completer; ST_EINVAL: wrong token, nothing registered;
 * ST_EBUSY: a continuation was already registered for this version,
 * nothing registered. */
int st_vtsource_on_completed(st_vtsource_t *s, uint32_t token,
                             st_vts_cont_t *cont);

/* Any thread.  What st_vtsource_on_completed would answer now without
 * registering anything (0, ST_EINVAL or ST_EBUSY): exact only when the
 * callers are serialised (the binding holds the GIL), a hint otherwise.
 * It lets an embedder fill the fields a continuation reads only when the
 * registration is going to be accepted. */
int st_vtsource_can_register(st_vtsource_t *s, uint32_t token);

#endif /* ST_VTSOURCE_H */
