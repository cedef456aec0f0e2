/* st_waitq.c - the waiter queue shared by cancellation and the semaphore:
 * an intrusive doubly linked list guarded by its owner's lock.
 *
 * DESIGN
 *
 * Invariants (all under the owner's lock):
 *   - n->linked && n->owner == q  <=>  n is in q's list;
 *   - q->count is the length of the list; head == NULL <=> count == 0;
 *   - a node's id is the value of q->next_id when it was linked; ids only
 *     grow, so a node linked again gets a new id and an old id can never
 *     name its new link.
 * `owner` and `id` survive the unlink on purpose: st_cancel.c recognises a
 * node whose callback runs now by (owner, id) after it left the list.
 *
 * Why doubly linked: both users remove from the middle (a waiter that
 * times out or is canceled, an unregistered callback) and must do it in
 * O(1) under their lock, which a singly linked list (st_list.h) cannot.
 * Why no lock of its own: each user must change its other state (a state
 * word, a count, the callback running now) in the same critical section as
 * the list, so a second lock would only add a lock order.
 *
 * Threads.  None of its own: every function runs under the owner's lock,
 * except st_waitq_node_init (before the node is shared) and
 * st_waitq_chain_pop (on a detached chain only the caller can see).
 * Nothing here calls out, allocates or blocks.
 */
#include "st_waitq.h"

#include <stddef.h> /* NULL */

#include "st_error.h" /* ST_ASSERT */

void
st_waitq_node_init(st_waitq_node_t *n, st_waitq_fn fn)
{
    n->prev = NULL;
    n->next = NULL;
    n->fn = fn;
    n->owner = NULL;
    n->id = 0;
    n->linked = 0;
}

void
st_waitq_init(st_waitq_t *q)
{
    q->head = NULL;
    q->tail = NULL;
    q->count = 0;
    q->next_id = 1;
}

/* Marks n as linked in q with a fresh id (its list pointers are set by
 * the caller). */
static void
take_link(st_waitq_t *q, st_waitq_node_t *n)
{
    ST_ASSERT(!n->linked);
    n->owner = q;
    n->id = q->next_id++;
    n->linked = 1;
    q->count++;
}

void
st_waitq_push_back(st_waitq_t *q, st_waitq_node_t *n)
{
    take_link(q, n);
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail != NULL) {
        q->tail->next = n;
    }
    else {
        q->head = n;
    }
    q->tail = n;
}

void
st_waitq_push_front(st_waitq_t *q, st_waitq_node_t *n)
{
    take_link(q, n);
    n->prev = NULL;
    n->next = q->head;
    if (q->head != NULL) {
        q->head->prev = n;
    }
    else {
        q->tail = n;
    }
    q->head = n;
}

/* n is linked in q.  Unlinks it. */
static void
unlink_node(st_waitq_t *q, st_waitq_node_t *n)
{
    if (n->prev != NULL) {
        n->prev->next = n->next;
    }
    else {
        q->head = n->next;
    }
    if (n->next != NULL) {
        n->next->prev = n->prev;
    }
    else {
        q->tail = n->prev;
    }
    n->prev = NULL;
    n->next = NULL;
    n->linked = 0;
    q->count--;
}

st_waitq_node_t *
st_waitq_pop_front(st_waitq_t *q)
{
    st_waitq_node_t *n = q->head;
    if (n != NULL) {
        unlink_node(q, n);
    }
    return n;
}

st_waitq_node_t *
st_waitq_front(const st_waitq_t *q)
{
    return q->head;
}

int
st_waitq_contains(const st_waitq_t *q, const st_waitq_node_t *n)
{
    return n->linked && n->owner == q;
}

int
st_waitq_remove(st_waitq_t *q, st_waitq_node_t *n)
{
    if (!st_waitq_contains(q, n)) {
        return 0;
    }
    unlink_node(q, n);
    return 1;
}

st_waitq_node_t *
st_waitq_detach_all(st_waitq_t *q)
{
    st_waitq_node_t *chain = q->head, *n;
    for (n = chain; n != NULL; n = n->next) {
        n->prev = NULL;
        n->linked = 0;
    }
    q->head = NULL;
    q->tail = NULL;
    q->count = 0;
    return chain;
}

st_waitq_node_t *
st_waitq_chain_pop(st_waitq_node_t **chain)
{
    st_waitq_node_t *n = *chain;
    if (n != NULL) {
        *chain = n->next;
        n->next = NULL;
    }
    return n;
}
