/* st_thread.c - the pthreads backend of st_thread.h.
 *
 * Thin wrappers.  Condition variables are bound to CLOCK_MONOTONIC so that a
 * change of the wall clock never stretches or shortens a timed wait.
 */
#define _GNU_SOURCE /* gettid, pthread_condattr_setclock */

#include "st_thread.h"

#include <errno.h>    /* ETIMEDOUT, EBUSY */
#include <signal.h>   /* sigfillset, pthread_sigmask */
#include <stdio.h>    /* snprintf */
#include <string.h>   /* strlen, strncmp */
#include <time.h>     /* clock_gettime */
#include <unistd.h>   /* sysconf, syscall */
#include <sys/syscall.h> /* SYS_gettid */

#include "st_alloc.h"
#include "st_error.h"

/* ---------------------------------------------------------------- mutex */

void
st_mutex_init(st_mutex_t *m)
{
    if (pthread_mutex_init(&m->m, NULL) != 0) {
        st_fatal("pthread_mutex_init");
    }
}

void
st_mutex_destroy(st_mutex_t *m)
{
    pthread_mutex_destroy(&m->m);
}

void
st_mutex_lock(st_mutex_t *m)
{
    if (pthread_mutex_lock(&m->m) != 0) {
        st_fatal("pthread_mutex_lock");
    }
}

void
st_mutex_unlock(st_mutex_t *m)
{
    if (pthread_mutex_unlock(&m->m) != 0) {
        st_fatal("pthread_mutex_unlock");
    }
}

int
st_mutex_trylock(st_mutex_t *m)
{
    int rc = pthread_mutex_trylock(&m->m);
    if (rc == 0) {
        return 0;
    }
    if (rc != EBUSY) {
        st_fatal("pthread_mutex_trylock");
    }
    return ST_EBUSY;
}

/* ------------------------------------------------------------- condvar */

void
st_cond_init(st_cond_t *c)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0
        || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0
        || pthread_cond_init(&c->c, &attr) != 0) {
        st_fatal("pthread_cond_init");
    }
    pthread_condattr_destroy(&attr);
}

void
st_cond_destroy(st_cond_t *c)
{
    pthread_cond_destroy(&c->c);
}

void
st_cond_signal(st_cond_t *c)
{
    pthread_cond_signal(&c->c);
}

void
st_cond_broadcast(st_cond_t *c)
{
    pthread_cond_broadcast(&c->c);
}

void
st_cond_wait(st_cond_t *c, st_mutex_t *m)
{
    if (pthread_cond_wait(&c->c, &m->m) != 0) {
        st_fatal("pthread_cond_wait");
    }
}

int
st_cond_timedwait(st_cond_t *c, st_mutex_t *m, uint64_t timeout_ns)
{
    struct timespec ts;
    uint64_t deadline;
    int rc;

    deadline = st_now_ns();
    /* Saturate: a huge timeout must not wrap to the past. */
    deadline = (timeout_ns > UINT64_MAX - deadline) ? UINT64_MAX
                                                   : deadline + timeout_ns;
    if (deadline / 1000000000u > (uint64_t)INT32_MAX) {
        deadline = (uint64_t)INT32_MAX * 1000000000u;
    }
    ts.tv_sec = (time_t)(deadline / 1000000000u);
    ts.tv_nsec = (long)(deadline % 1000000000u);
    rc = pthread_cond_timedwait(&c->c, &m->m, &ts);
    if (rc == ETIMEDOUT) {
        return ST_ETIMEDOUT;
    }
    if (rc != 0) {
        st_fatal("pthread_cond_timedwait");
    }
    return 0;
}

/* -------------------------------------------------------------- thread */

typedef struct start_args {
    void (*fn)(void *);
    void *arg;
} start_args;

static void *
thread_main(void *p)
{
    start_args a = *(start_args *)p;
    st_free(p);
    a.fn(a.arg);
    return NULL;
}

int
st_thread_create(st_thread_t *t, void (*fn)(void *), void *arg)
{
    sigset_t all, old;
    start_args *a;
    int rc;

    a = st_malloc(sizeof(*a));
    if (a == NULL) {
        return ST_ENOMEM;
    }
    a->fn = fn;
    a->arg = arg;
    /* The new thread inherits the creator's mask: block everything around
     * the create so that signals stay with the interpreter's main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t->t, NULL, thread_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        st_free(a);
        return rc == ENOMEM || rc == EAGAIN ? ST_ENOMEM : ST_EINVAL;
    }
    return 0;
}

void
st_thread_join(st_thread_t *t)
{
    if (pthread_join(t->t, NULL) != 0) {
        st_fatal("pthread_join");
    }
}

uint64_t
st_thread_id(void)
{
    return (uint64_t)syscall(SYS_gettid);
}

/* The name st_thread_set_name gave this thread ("" before: not named).
 * The default TLS model on purpose (not ST_THREAD_LOCAL's initial-exec):
 * the array would eat into the small static TLS surplus that glibc keeps
 * for dlopen'ed objects, and nothing reads it on a hot path. */
static _Thread_local char tls_name[ST_THREAD_NAME_MAX];

/* Copies at most cap - 1 bytes of src to dst, NUL-terminated. */
static void
copy_cut(char *dst, size_t cap, const char *src)
{
    size_t i;
    for (i = 0; i + 1 < cap && src[i] != '\0'; i++) {
        dst[i] = src[i];
    }
    dst[i] = '\0';
}

void
st_thread_set_name(const char *base, long number)
{
    static const char long_prefix[] = "sharptask-";
    char os_name[16]; /* Linux: 15 bytes and the NUL */
    size_t plen = sizeof(long_prefix) - 1;
    const char *name = tls_name;

    if (number >= 0) {
        (void)snprintf(tls_name, sizeof(tls_name), "%.24s-%ld", base,
                       number);
    }
    else {
        copy_cut(tls_name, sizeof(tls_name), base);
    }
    if (strlen(name) < sizeof(os_name)
        || strncmp(name, long_prefix, plen) != 0) {
        copy_cut(os_name, sizeof(os_name), name);
    }
    else {
        os_name[0] = 's';
        os_name[1] = 't';
        os_name[2] = '-';
        copy_cut(os_name + 3, sizeof(os_name) - 3, name + plen);
    }
    /* Best effort: a name is a diagnostic, never worth failing for. */
    (void)pthread_setname_np(pthread_self(), os_name);
}

const char *
st_thread_name(void)
{
    return tls_name[0] != '\0' ? tls_name : NULL;
}

/* --------------------------------------------------------------- event */

void
st_event_init(st_event_t *e)
{
    st_mutex_init(&e->mu);
    st_cond_init(&e->cv);
    e->set = 0;
}

void
st_event_destroy(st_event_t *e)
{
    st_cond_destroy(&e->cv);
    st_mutex_destroy(&e->mu);
}

void
st_event_set(st_event_t *e)
{
    st_mutex_lock(&e->mu);
    e->set = 1;
    st_cond_broadcast(&e->cv);
    st_mutex_unlock(&e->mu);
}

void
st_event_reset(st_event_t *e)
{
    st_mutex_lock(&e->mu);
    e->set = 0;
    st_mutex_unlock(&e->mu);
}

int
st_event_is_set(st_event_t *e)
{
    int set;
    st_mutex_lock(&e->mu);
    set = e->set;
    st_mutex_unlock(&e->mu);
    return set;
}

int
st_event_wait(st_event_t *e, uint64_t timeout_ns)
{
    uint64_t deadline, now;
    int set;

    st_mutex_lock(&e->mu);
    if (timeout_ns == UINT64_MAX) {
        while (!e->set) {
            st_cond_wait(&e->cv, &e->mu);
        }
    }
    else {
        now = st_now_ns();
        /* saturate: a huge timeout must not wrap into the past */
        deadline = timeout_ns > UINT64_MAX - now ? UINT64_MAX
                                                 : now + timeout_ns;
        while (!e->set && now < deadline) {
            st_cond_timedwait(&e->cv, &e->mu, deadline - now);
            now = st_now_ns();
        }
    }
    set = e->set;
    st_mutex_unlock(&e->mu);
    return set ? 0 : ST_ETIMEDOUT;
}

/* --------------------------------------------------------------- clock */

uint64_t
st_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
st_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}
