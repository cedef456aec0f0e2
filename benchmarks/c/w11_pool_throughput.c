/* w11_pool_throughput.c - BENCHMARKS.md W11: the core pool's throughput
 * with native work items (no Python), items/s, through the global queue
 * and through the workers' own (work-stealing) queues, 2 workers.
 *
 *   build/plain/w11_pool_throughput [--quick] [--workers N] [--rounds R]
 *
 * K seed items are queued from the main thread; each item, when it runs,
 * queues itself again (st_pool_submit: the global FIFO; or
 * st_pool_submit_local: the running worker's deque, which the other
 * worker steals from) until it has run `per_item` times.  The time from
 * the first seed to the last run gives items/s.  The two modes alternate
 * (G L G L ...) after a warm-up round, as BENCHMARKS.md asks, and the
 * result is one JSON object on stdout:
 *
 *   {"workers": 2, "items": N, "cpus": 2,
 *    "global_items_per_s": [...], "local_items_per_s": [...]}
 *
 * The reference figures are .NET's (reference section 11): ~9M/s global
 * and ~53M/s local on 12 cores; the target here is >= 5M/s local on 2.
 */
#include <stdio.h>  /* printf */
#include <stdlib.h> /* atoi, calloc */
#include <string.h> /* strcmp */

#include "st_alloc.h"
#include "st_atomic.h"
#include "st_error.h"
#include "st_list.h" /* st_container_of */
#include "st_pool.h"
#include "st_thread.h"

typedef struct bench {
    st_pool_t *pool;
    int local;
    int per_item;
    int seeds;
    ST_ATOMIC(int) finished; /* seeds that ran per_item times */
    st_event_t done;
} bench;

typedef struct bitem {
    st_work_t work;
    bench *b;
    int left; /* runs still to do; only the running worker touches it */
} bitem;

static void
bitem_run(st_work_t *w)
{
    bitem *it = st_container_of(w, bitem, work);
    bench *b = it->b;
    int rc;

    if (--it->left > 0) {
        rc = b->local ? st_pool_submit_local(b->pool, w)
                      : st_pool_submit(b->pool, w);
        if (rc != 0) {
            st_fatal("submit failed");
        }
        return;
    }
    /* acq_rel: the last one orders every item's writes before `done` */
    if (st_atomic_fetch_add(&b->finished, 1, ST_ACQ_REL) + 1 == b->seeds) {
        st_event_set(&b->done);
    }
}

/* One round: returns items/s. */
static double
round_once(st_pool_t *pool, int local, int seeds, int per_item)
{
    bench b;
    bitem *items = calloc((size_t)seeds, sizeof(*items));
    uint64_t t0, t1;
    int i;

    if (items == NULL) {
        st_fatal("out of memory");
    }
    b.pool = pool;
    b.local = local;
    b.per_item = per_item;
    b.seeds = seeds;
    st_atomic_init(&b.finished, 0);
    st_event_init(&b.done);
    for (i = 0; i < seeds; i++) {
        items[i].work.run = bitem_run;
        items[i].b = &b;
        items[i].left = per_item;
    }
    t0 = st_now_ns();
    for (i = 0; i < seeds; i++) {
        if (st_pool_submit(pool, &items[i].work) != 0) {
            st_fatal("submit failed");
        }
    }
    if (st_event_wait(&b.done, 60000000000u) != 0) {
        st_fatal("W11 round timed out");
    }
    t1 = st_now_ns();
    st_event_destroy(&b.done);
    free(items);
    return (double)seeds * per_item / ((double)(t1 - t0) / 1e9);
}

static void
print_list(const char *name, const double *v, int n, int last)
{
    int i;

    printf("\"%s\": [", name);
    for (i = 0; i < n; i++) {
        printf("%s%.0f", i ? ", " : "", v[i]);
    }
    printf("]%s", last ? "" : ", ");
}

int
main(int argc, char **argv)
{
    int workers = 2, rounds = 5, quick = 0, i;
    int seeds, per_item;
    double g[64], l[64];
    st_pool_t *pool;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        }
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = atoi(argv[++i]);
        }
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        }
        else {
            fprintf(stderr, "usage: %s [--quick] [--workers N] "
                            "[--rounds R]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > 64 || workers < 1) {
        return 2;
    }
    seeds = 16 * workers;
    per_item = quick ? 20000 : 200000;
    if (st_pool_create(&pool, workers, workers, NULL) != 0) {
        fprintf(stderr, "st_pool_create failed\n");
        return 1;
    }
    (void)round_once(pool, 0, seeds, per_item / 4); /* warm-up */
    (void)round_once(pool, 1, seeds, per_item / 4);
    for (i = 0; i < rounds; i++) {
        g[i] = round_once(pool, 0, seeds, per_item);
        l[i] = round_once(pool, 1, seeds, per_item);
    }
    st_pool_shutdown(pool);
    st_pool_destroy(pool);
    printf("{\"workers\": %d, \"items\": %d, \"cpus\": %d, ", workers,
           seeds * per_item, st_cpu_count());
    print_list("global_items_per_s", g, rounds, 0);
    print_list("local_items_per_s", l, rounds, 1);
    printf("}\n");
    return 0;
}
