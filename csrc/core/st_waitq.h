/* st_waitq.h - the waiter queue: an intrusive doubly linked list of
 * waiter nodes, shared by cancellation (a source's registrations) and
 * SemaphoreSlim (its blocked threads and async waiters).
 *
 * A node is embedded in its owner's memory (a registration, a waiter) and
 * carries the one callback that completes it; the queue never allocates.
 * The queue itself has no lock: it is a data structure guarded by the lock
 * of the object that embeds it (st_cancel_t's mu, st_sem_t's mu).  Every
 * function below therefore says "caller holds the owner's lock", except
 * the node's own init and the chain helpers on detached chains.
 *
 * Both ends are O(1): push_back/pop_front make a FIFO (the semaphore's
 * waiters, .NET 9.4), push_front/pop_front a LIFO (cancellation callbacks,
 * .NET 5.3).  remove() takes a node out of the middle in O(1) (a timeout,
 * an unregister), and answers whether the node was still linked, which is
 * how "removed exactly once, racing with the completer" is decided: under
 * the owner's lock exactly one of pop_front, remove or detach_all unlinks
 * a given link of a node.
 *
 * Ids.  Each link gets a fresh id from its queue (never reused within that
 * queue), and a node remembers the queue of its last link after it is
 * unlinked (`owner`), so that a caller can still recognise it later: the
 * cancellation core compares it with the id of the callback running now.
 *
 *     st_waitq_node_init(&n, on_complete);
 *     lock(owner); st_waitq_push_back(&q, &n); unlock(owner);
 *     ...
 *     lock(owner); w = st_waitq_pop_front(&q); unlock(owner);
 *     if (w != NULL) w->fn(w);            // never under the owner's lock
 *
 * Chains.  detach_all returns every node as a NULL-terminated chain linked
 * by `next` (front first); the chain belongs to the caller, who walks it
 * with st_waitq_chain_pop without any lock.
 */
#ifndef ST_WAITQ_H
#define ST_WAITQ_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint64_t */

typedef struct st_waitq st_waitq_t;
typedef struct st_waitq_node st_waitq_node_t;

/* Completes a waiter.  The owner of the queue calls it with no lock held,
 * after it unlinked the node; the node belongs to fn from then on (fn may
 * free it or link it again). */
typedef void (*st_waitq_fn)(st_waitq_node_t *node);

struct st_waitq_node {
    st_waitq_node_t *prev; /* guarded by the owner's lock while linked */
    st_waitq_node_t *next; /* idem; also links a detached chain */
    st_waitq_fn fn;        /* set by st_waitq_node_init; may be NULL */
    st_waitq_t *owner;     /* the queue of the last link; kept after */
    uint64_t id;           /* > 0 once linked; from owner->next_id */
    int linked;            /* 1 while in owner's list */
};

struct st_waitq {
    st_waitq_node_t *head; /* front: popped first */
    st_waitq_node_t *tail;
    size_t count;          /* nodes linked now */
    uint64_t next_id;      /* ids of links, never reused */
};

/* Not thread safe (n is not linked).  Prepares a node; call it once
 * before the node's first link.  fn may be NULL when the owner completes
 * the node some other way (a blocked thread's node). */
void st_waitq_node_init(st_waitq_node_t *n, st_waitq_fn fn);

/* Not thread safe (the queue is not shared yet).  An empty queue. */
void st_waitq_init(st_waitq_t *q);

/* Caller holds the owner's lock.  Links n (initialised, not linked in any
 * queue) at the back (FIFO order) or at the front (LIFO order), with a
 * fresh id.  The queue refers to n until it is unlinked. */
void st_waitq_push_back(st_waitq_t *q, st_waitq_node_t *n);
void st_waitq_push_front(st_waitq_t *q, st_waitq_node_t *n);

/* Caller holds the owner's lock.  Unlinks and returns the front node, or
 * returns NULL when the queue is empty.  The caller owns the node again. */
st_waitq_node_t *st_waitq_pop_front(st_waitq_t *q);

/* Caller holds the owner's lock.  The front node (still linked), or
 * NULL. */
st_waitq_node_t *st_waitq_front(const st_waitq_t *q);

/* Caller holds the owner's lock.  1 if n is linked in q now. */
int st_waitq_contains(const st_waitq_t *q, const st_waitq_node_t *n);

/* Caller holds the owner's lock.  Unlinks n if it is linked in q and
 * returns 1 (the caller owns n again); returns 0 and changes nothing when
 * n is not linked in q (popped, removed or detached before, or never
 * linked here). */
int st_waitq_remove(st_waitq_t *q, st_waitq_node_t *n);

/* Caller holds the owner's lock.  Unlinks every node and returns them as
 * a chain linked by `next`, front first (NULL when empty); the caller owns
 * each node of the chain. */
st_waitq_node_t *st_waitq_detach_all(st_waitq_t *q);

/* Any thread, on a chain the caller owns (no lock).  Takes the first node
 * off *chain (clearing its `next`) and returns it, or returns NULL at the
 * end.  Read before calling the node's fn, which may free it. */
st_waitq_node_t *st_waitq_chain_pop(st_waitq_node_t **chain);

/* Caller holds the owner's lock.  Nodes linked now. */
static inline size_t
st_waitq_count(const st_waitq_t *q)
{
    return q->count;
}

/* Caller holds the owner's lock. */
static inline int
st_waitq_empty(const st_waitq_t *q)
{
    return q->head == NULL;
}

#endif /* ST_WAITQ_H */
