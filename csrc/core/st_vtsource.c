/* st_vtsource.c - the version, completed flag and continuation slot of a
 * reusable ValueTask source (.NET's ManualResetValueTaskSourceCore).
 *
 * The binding embeds one st_vtsource_t in its ManualResetValueTaskSourceCore
 * object and keeps the result, the exception and the continuation's Python
 * fields beside it; the core decides who runs the continuation, when, and
 * whether a token is still valid.
 *
 * DESIGN
 *
 * The slot.  One atomic pointer holds the state of the continuation for
 * the current version:
 *
 *     NULL        nothing registered, not completed
 *     node        a continuation is registered, not completed
 *     COMPLETED   completed before anyone registered (.NET's sentinel)
 *     TAKEN       a continuation was handed to its fn for this version
 *
 * and it only moves forward within a version:
 *
 *     NULL --on_completed--> node --complete--> TAKEN
 *     NULL --complete--> COMPLETED --on_completed--> TAKEN
 *
 * Each arrow is one CAS (or, for node -> TAKEN, a store by the one
 * completer, the only writer while a node is there), so between the
 * completer and any number of registrations exactly one party takes the
 * node: the completer if the registration came first, the registration
 * itself if completion came first.  That is the exactly-once rule of
 * STYLE point 20.  Every other registration of the version finds a node
 * or TAKEN and gets ST_EBUSY, so a second on_completed is refused even
 * after the first one ran (SPEC V4; .NET misses that case when the first
 * registration came after completion, and queues both).
 *
 * Completion.  try_reserve is a CAS of `completed` 0 -> 1 (one winner,
 * like st_task_try_reserve: a second set_result fails without touching
 * the stored result, where .NET overwrites it before throwing).  The
 * winner writes `status` (and the embedder its result), then complete
 * stores 2 with release and CASes the slot.
 *
 * Versions.  reset is the owner's: it runs when no other call runs on the
 * source (ManualResetValueTaskSourceCore.Reset is not thread safe either),
 * clears the slot and the flag, and publishes them with a release store
 * of version + 1.  The version is 32 bits and wraps after 2^32 resets;
 * .NET's is a short that wraps after 65,536 (a stale ValueTask kept that
 * long reads another operation's result there).  A call with a token that
 * is not the version fails with ST_EINVAL and changes nothing.
 *
 * Memory ordering.
 *   - complete: `status` and the embedder's result are published by the
 *     release store of completed = 2 (read back by the acquire loads in
 *     get_status / get_result) and by the release half of the slot CAS
 *     NULL -> COMPLETED (read back by the acquire on the failure path of a
 *     registration's CAS, which then runs the continuation on another
 *     thread).
 *   - on_completed: the CAS NULL -> node is a release, publishing cont->fn
 *     and whatever the embedder stored for the continuation; the
 *     completer's failed CAS reads the node with acquire.
 *   - The version is stored with release by reset and loaded with acquire
 *     by every token check, so a consumer that sees the new version sees
 *     the cleared slot and flag.
 *
 * Threads.  No lock: each function is a few atomic operations, and fn is
 * called with nothing held.  A continuation is never called from inside
 * another call on the same source except the one that took it.
 *
 * Alternatives rejected.  A mutex around slot and flag: simpler to read,
 * but it adds 40 bytes per source and a lock per operation on a path that
 * .NET runs lock-free, for no gain (nothing ever needs to wait).  Keeping
 * the node pointer in the slot after it ran, as .NET keeps the delegate:
 * then a late registration after a late registration is not detected, and
 * the slot would hold a pointer to memory the embedder may have reused.
 */
#include "st_vtsource.h"

#include <stddef.h> /* NULL */

#include "st_error.h"

/* ------------------------------------------------------------ helpers */

/* The two sentinels: addresses that no registered node can have. */
static st_vts_cont_t completed_sentinel;
static st_vts_cont_t taken_sentinel;
#define VTS_COMPLETED (&completed_sentinel)
#define VTS_TAKEN (&taken_sentinel)

/* Values of `completed`. */
enum { NOT_COMPLETED = 0, RESERVED = 1, COMPLETED = 2 };

static int
token_ok(st_vtsource_t *s, uint32_t token)
{
    /* acquire: pairs with the release store in st_vtsource_reset, so the
     * slot and flag of the version we compare against are visible */
    return st_atomic_load(&s->version, ST_ACQUIRE) == token;
}

/* ---------------------------------------------------------- lifecycle */

void
st_vtsource_init(st_vtsource_t *s)
{
    st_atomic_init(&s->slot, NULL);
    st_atomic_init(&s->completed, NOT_COMPLETED);
    st_atomic_init(&s->version, 0u);
    s->status = ST_VTS_PENDING;
    s->run_async = 0;
}

uint32_t
st_vtsource_reset(st_vtsource_t *s)
{
    uint32_t v;
    /* relaxed (these three): the owner has the source to itself during
     * a reset; the release store of the version below publishes them */
    st_atomic_store(&s->slot, NULL, ST_RELAXED);
    st_atomic_store(&s->completed, NOT_COMPLETED, ST_RELAXED);
    s->status = ST_VTS_PENDING;
    v = st_atomic_load(&s->version, ST_RELAXED) + 1u; /* wraps at 2^32 */
    /* release: publishes the cleared slot and flag; pairs with the
     * acquire in token_ok */
    st_atomic_store(&s->version, v, ST_RELEASE);
    return v;
}

uint32_t
st_vtsource_version(st_vtsource_t *s)
{
    /* acquire: same as token_ok */
    return st_atomic_load(&s->version, ST_ACQUIRE);
}

void
st_vtsource_set_run_async(st_vtsource_t *s, int on)
{
    s->run_async = on != 0; /* owner only, before the source is shared */
}

int
st_vtsource_run_async(st_vtsource_t *s)
{
    return s->run_async;
}

/* --------------------------------------------------------- completion */

int
st_vtsource_try_reserve(st_vtsource_t *s)
{
    int expected = NOT_COMPLETED;
    /* acq_rel: one winner; the winner's later stores of the outcome stay
     * after its win.  The outcome itself is published by the release in
     * st_vtsource_complete. */
    return st_atomic_cas(&s->completed, &expected, RESERVED, ST_ACQ_REL,
                         ST_ACQUIRE);
}

int
st_vtsource_complete(st_vtsource_t *s, int status)
{
    st_vts_cont_t *expected = NULL;

    ST_ASSERT(status >= ST_VTS_SUCCEEDED && status <= ST_VTS_CANCELED);
    /* relaxed: an assertion on our own earlier store */
    ST_ASSERT(st_atomic_load(&s->completed, ST_RELAXED) == RESERVED);
    s->status = status;
    /* release: publishes status and the embedder's result; pairs with the
     * acquire loads in st_vtsource_get_status / _get_result */
    st_atomic_store(&s->completed, COMPLETED, ST_RELEASE);
    /* acq_rel: the release publishes the outcome to a registration that
     * will find COMPLETED; on failure, acquire reads the registered node
     * and what its registrar stored (pairs with on_completed's CAS) */
    if (st_atomic_cas(&s->slot, &expected, VTS_COMPLETED, ST_ACQ_REL,
                      ST_ACQUIRE)) {
        return 0; /* nobody waits: a late registration will run itself */
    }
    /* A node is registered; we are the only writer of a slot that holds
     * one.  release: a later registration that finds TAKEN reports
     * EBUSY; nothing else is published by this store. */
    ST_ASSERT(expected != VTS_COMPLETED && expected != VTS_TAKEN);
    st_atomic_store(&s->slot, VTS_TAKEN, ST_RELEASE);
    expected->fn(expected, s->run_async ? ST_VTS_RUN_ASYNC
                                        : ST_VTS_RUN_INLINE);
    return 0;
}

/* ----------------------------------------------------------- consumers */

int
st_vtsource_get_status(st_vtsource_t *s, uint32_t token, int *status)
{
    if (!token_ok(s, token)) {
        return ST_EINVAL;
    }
    /* acquire: pairs with the release in st_vtsource_complete */
    if (st_atomic_load(&s->completed, ST_ACQUIRE) == COMPLETED) {
        *status = s->status;
    }
    else {
        *status = ST_VTS_PENDING;
    }
    return 0;
}

int
st_vtsource_get_result(st_vtsource_t *s, uint32_t token, int *status)
{
    if (!token_ok(s, token)) {
        return ST_EINVAL;
    }
    /* acquire: pairs with the release in st_vtsource_complete */
    if (st_atomic_load(&s->completed, ST_ACQUIRE) != COMPLETED) {
        return ST_EBUSY;
    }
    *status = s->status;
    return 0;
}

int
st_vtsource_on_completed(st_vtsource_t *s, uint32_t token,
                         st_vts_cont_t *cont)
{
    st_vts_cont_t *expected = NULL;

    ST_ASSERT(cont != NULL && cont->fn != NULL);
    if (!token_ok(s, token)) {
        return ST_EINVAL;
    }
    /* acq_rel: the release publishes cont and the registrar's stores to
     * the completer (pairs with its failed CAS); on failure, acquire reads
     * the completer's outcome (pairs with its CAS to COMPLETED) */
    if (st_atomic_cas(&s->slot, &expected, cont, ST_ACQ_REL, ST_ACQUIRE)) {
        return 0; /* the completer will call it */
    }
    if (expected == VTS_COMPLETED
        /* acq_rel: among late registrations, one takes the completion;
         * acquire on failure for the EBUSY answer (nothing to read) */
        && st_atomic_cas(&s->slot, &expected, VTS_TAKEN, ST_ACQ_REL,
                         ST_ACQUIRE)) {
        cont->fn(cont, ST_VTS_RUN_ASYNC); /* never inline when late */
        return 0;
    }
    return ST_EBUSY; /* a node or TAKEN: this version's one is used */
}

int
st_vtsource_can_register(st_vtsource_t *s, uint32_t token)
{
    st_vts_cont_t *c;
    if (!token_ok(s, token)) {
        return ST_EINVAL;
    }
    /* acquire: a hint read; pairs with the CASes above */
    c = st_atomic_load(&s->slot, ST_ACQUIRE);
    return (c == NULL || c == VTS_COMPLETED) ? 0 : ST_EBUSY;
}
