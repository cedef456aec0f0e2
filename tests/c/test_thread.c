/* test_thread.c - tests of the st_thread.h shim, the allocator hooks and
 * the error names: the pieces every other test stands on. */
#define _GNU_SOURCE /* pthread_sigmask, sigismember, pthread_getname_np */

#include <signal.h> /* sigset_t */
#include <string.h> /* strcmp */

#include "st_alloc.h"
#include "st_atomic.h"
#include "st_error.h"
#include "st_thread.h"
#include "test.h"

/* ------------------------------------------------------------- threads */

typedef struct thread_arg {
    int ran;
    int sigint_blocked;
    uint64_t id;
} thread_arg;

static void
thread_body(void *arg)
{
    thread_arg *a = arg;
    sigset_t set;

    a->ran = 1;
    a->id = st_thread_id();
    ASSERT_EQ(pthread_sigmask(SIG_BLOCK, NULL, &set), 0);
    a->sigint_blocked = sigismember(&set, SIGINT) == 1
                        && sigismember(&set, SIGTERM) == 1;
}

TEST(thread_create_join)
{
    thread_arg a = {0, 0, 0};
    st_thread_t th;
    sigset_t set;

    st_test_thread_start(&th, thread_body, &a);
    st_thread_join(&th);
    ASSERT_EQ(a.ran, 1);
    ASSERT_GT(a.id, 0);
    ASSERT_NE(a.id, st_thread_id());
    /* signals are blocked in the new thread, not in the creator */
    ASSERT_EQ(a.sigint_blocked, 1);
    ASSERT_EQ(pthread_sigmask(SIG_BLOCK, NULL, &set), 0);
    ASSERT_EQ(sigismember(&set, SIGINT), 0);
    ASSERT_GE(st_cpu_count(), 1);
}

/* issue 14: a thread the core names reads its name back, and the OS gets
 * it, with "sharptask-" shortened to "st-" when it does not fit in 15
 * bytes. */
typedef struct name_arg {
    char mine[ST_THREAD_NAME_MAX];
    char os[32];
    int unnamed_before;
} name_arg;

static void
name_body(void *p)
{
    name_arg *a = p;
    a->unnamed_before = st_thread_name() == NULL;
    st_thread_set_name("sharptask-worker", 12);
    snprintf(a->mine, sizeof(a->mine), "%s", st_thread_name());
    ASSERT_EQ(pthread_getname_np(pthread_self(), a->os, sizeof(a->os)), 0);
}

static void
short_name_body(void *p)
{
    name_arg *a = p;
    st_thread_set_name("sharptask-gate", -1);
    snprintf(a->mine, sizeof(a->mine), "%s", st_thread_name());
    ASSERT_EQ(pthread_getname_np(pthread_self(), a->os, sizeof(a->os)), 0);
}

TEST(thread_names_issue14)
{
    name_arg a;
    st_thread_t th;

    memset(&a, 0, sizeof(a));
    st_test_thread_start(&th, name_body, &a);
    st_thread_join(&th);
    ASSERT_EQ(a.unnamed_before, 1);
    ASSERT_EQ(strcmp(a.mine, "sharptask-worker-12"), 0);
    ASSERT_EQ(strcmp(a.os, "st-worker-12"), 0);

    memset(&a, 0, sizeof(a));
    st_test_thread_start(&th, short_name_body, &a);
    st_thread_join(&th);
    ASSERT_EQ(strcmp(a.mine, "sharptask-gate"), 0);
    ASSERT_EQ(strcmp(a.os, "sharptask-gate"), 0);
    /* the creator keeps its own (unnamed by the core) */
    ASSERT_NULL(st_thread_name());
}

TEST(thread_clock_and_timedwait)
{
    uint64_t a, b;
    st_mutex_t mu;
    st_cond_t cv;

    a = st_now_ns();
    b = st_now_ns();
    ASSERT_LE(a, b);
    st_mutex_init(&mu);
    st_cond_init(&cv);
    st_mutex_lock(&mu);
    ASSERT_RC(st_mutex_trylock(&mu), ST_EBUSY); /* held: non-recursive */
    a = st_now_ns();
    while (st_cond_timedwait(&cv, &mu, 10000000u) != ST_ETIMEDOUT) {
        /* spurious wake: wait again */
    }
    ASSERT_GE(st_now_ns() - a, 10000000u);
    st_mutex_unlock(&mu);
    ASSERT_OK(st_mutex_trylock(&mu));
    st_mutex_unlock(&mu);
    st_cond_destroy(&cv);
    st_mutex_destroy(&mu);
}

static void
event_setter(void *arg)
{
    st_test_sleep_us(10000);
    st_event_set(arg);
}

TEST(thread_event)
{
    st_thread_t th;
    st_event_t ev;
    uint64_t a;

    st_event_init(&ev);
    ASSERT(!st_event_is_set(&ev));
    a = st_now_ns();
    ASSERT_RC(st_event_wait(&ev, 5000000u), ST_ETIMEDOUT);
    ASSERT_GE(st_now_ns() - a, 5000000u);
    ASSERT_RC(st_event_wait(&ev, 0), ST_ETIMEDOUT);
    st_test_thread_start(&th, event_setter, &ev);
    ASSERT_OK(st_event_wait(&ev, UINT64_MAX));
    st_thread_join(&th);
    ASSERT(st_event_is_set(&ev));
    ASSERT_OK(st_event_wait(&ev, 0));
    st_event_reset(&ev);
    ASSERT(!st_event_is_set(&ev));
    st_event_destroy(&ev);
}

/* ---------------------------------------------------------- allocator */

static ST_ATOMIC(int) n_mallocs;
static ST_ATOMIC(int) n_frees;

static void *
counting_malloc(size_t size)
{
    st_atomic_fetch_add(&n_mallocs, 1, ST_RELAXED); /* relaxed: count */
    return malloc(size);
}

static void *
counting_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

static void
counting_free(void *p)
{
    st_atomic_fetch_add(&n_frees, 1, ST_RELAXED); /* relaxed: count */
    free(p);
}

TEST(alloc_hooks)
{
    thread_arg a = {0, 0, 0};
    st_thread_t th;
    void *p;

    ASSERT_OK(st_replace_allocator(counting_malloc, counting_realloc,
                                   counting_free));
    p = st_malloc(10);
    ASSERT_NOT_NULL(p);
    p = st_realloc(p, 100);
    ASSERT_NOT_NULL(p);
    st_free(p);
    ASSERT_NULL(st_calloc((size_t)-1, 16)); /* overflow: refused */
    p = st_calloc(4, 4);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(((int *)p)[3], 0);
    st_free(p);
    /* thread creation allocates through the hooks too */
    st_test_thread_start(&th, thread_body, &a);
    st_thread_join(&th);
    ASSERT_EQ(st_atomic_load(&n_mallocs, ST_RELAXED), 3);
    ASSERT_EQ(st_atomic_load(&n_frees, ST_RELAXED), 3);
    ASSERT_OK(st_replace_allocator(NULL, NULL, NULL));
}

TEST(error_names)
{
    ASSERT(strcmp(st_strerror(0), "success") == 0);
    ASSERT(strcmp(st_strerror(ST_EINVAL), "invalid argument") == 0);
    ASSERT(strcmp(st_strerror(ST_ECLOSED), "closed") == 0);
    ASSERT(strcmp(st_strerror(ST_EBUSY), "busy") == 0);
    ASSERT(strcmp(st_strerror(ST_ETIMEDOUT), "timed out") == 0);
    ASSERT(strcmp(st_strerror(12345), "unknown error") == 0);
}
