/* st_list.h - intrusive singly linked FIFO queue (header only).
 *
 * A node is embedded in its owner; st_container_of recovers the owner, so
 * queuing never allocates (libuv's queue.h, simplified to the one shape the
 * core needs: push at the tail, pop at the head, O(1) both).
 * Not thread safe: the owner of the queue provides the lock.
 */
#ifndef ST_LIST_H
#define ST_LIST_H

#include <stddef.h> /* offsetof, NULL */

#define st_container_of(ptr, type, member)                                  \
    ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct st_snode {
    struct st_snode *next;
} st_snode_t;

typedef struct st_squeue {
    st_snode_t *head;
    st_snode_t *tail;
} st_squeue_t;

static inline void
st_squeue_init(st_squeue_t *q)
{
    q->head = NULL;
    q->tail = NULL;
}

static inline int
st_squeue_empty(const st_squeue_t *q)
{
    return q->head == NULL;
}

static inline void
st_squeue_push(st_squeue_t *q, st_snode_t *n)
{
    n->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = n;
    }
    else {
        q->head = n;
    }
    q->tail = n;
}

static inline st_snode_t *
st_squeue_pop(st_squeue_t *q)
{
    st_snode_t *n = q->head;
    if (n != NULL) {
        q->head = n->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        n->next = NULL;
    }
    return n;
}

/* Moves every node of src to the tail of dst; src becomes empty. */
static inline void
st_squeue_splice(st_squeue_t *dst, st_squeue_t *src)
{
    if (src->head == NULL) {
        return;
    }
    if (dst->tail != NULL) {
        dst->tail->next = src->head;
    }
    else {
        dst->head = src->head;
    }
    dst->tail = src->tail;
    src->head = NULL;
    src->tail = NULL;
}

#endif /* ST_LIST_H */
