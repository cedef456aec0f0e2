/* st_thread.h - threads, mutexes, condition variables, events and the
 * monotonic clock, as a thin shim over pthreads (a Win32 port replaces
 * st_thread.c only).
 *
 * Failures that cannot happen on a sane system (a mutex that will not lock)
 * call st_fatal(); creation of a thread can fail and returns a code.
 */
#ifndef ST_THREAD_H
#define ST_THREAD_H

#include <pthread.h> /* the only backend for now */
#include <stdint.h>  /* uint64_t */

/* Thread-local storage.  The core and the binding are linked into one
 * shared object that Python loads with dlopen: there the default TLS model
 * calls __tls_get_addr on every access, which showed up on the hot path of
 * an async method call.  A few pointers fit in the static TLS that glibc
 * keeps for dlopen'ed objects, so use the initial-exec model. */
#if defined(_MSC_VER)
#define ST_THREAD_LOCAL __declspec(thread)
#elif defined(__GNUC__)
#define ST_THREAD_LOCAL _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define ST_THREAD_LOCAL _Thread_local
#endif

typedef struct st_mutex {
    pthread_mutex_t m;
} st_mutex_t;

typedef struct st_cond {
    pthread_cond_t c;
} st_cond_t;

typedef struct st_thread {
    pthread_t t;
} st_thread_t;

/* A one-shot (or re-armable) event: a flag with a mutex and condvar.  Used
 * by sync waiters, which are few; it is not on any hot path. */
typedef struct st_event {
    st_mutex_t mu;
    st_cond_t cv;
    int set; /* guarded by mu */
} st_event_t;

/* Any thread. */
void st_mutex_init(st_mutex_t *m);
void st_mutex_destroy(st_mutex_t *m);
void st_mutex_lock(st_mutex_t *m);
void st_mutex_unlock(st_mutex_t *m);
/* Returns 0 when the lock was taken, ST_EBUSY otherwise. */
int st_mutex_trylock(st_mutex_t *m);

/* The condvar uses the monotonic clock. */
void st_cond_init(st_cond_t *c);
void st_cond_destroy(st_cond_t *c);
void st_cond_signal(st_cond_t *c);
void st_cond_broadcast(st_cond_t *c);
/* Caller holds m.  Always call inside a while (!predicate) loop. */
void st_cond_wait(st_cond_t *c, st_mutex_t *m);
/* Caller holds m.  Waits at most timeout_ns; returns 0 when woken (maybe
 * spuriously), ST_ETIMEDOUT when the time ran out. */
int st_cond_timedwait(st_cond_t *c, st_mutex_t *m, uint64_t timeout_ns);

/* Starts fn(arg) on a new thread with every signal blocked, so that no
 * signal lands in it before fn sets the mask it wants (the pool's item
 * threads take their creator's; the timer and gate threads keep all
 * blocked).  Returns 0, or ST_ENOMEM/ST_EINVAL. */
int st_thread_create(st_thread_t *t, void (*fn)(void *), void *arg);
/* Any thread but t itself. */
void st_thread_join(st_thread_t *t);
/* A small positive id of the calling OS thread (gettid on Linux). */
uint64_t st_thread_id(void);

/* Names the calling thread (issue 14), first thing in a thread's main:
 * `name`, followed by "-<number>" when number >= 0 ("sharptask-worker-3"),
 * cut to ST_THREAD_NAME_MAX - 1 bytes, is kept for st_thread_name() and
 * given to the OS (top -H, gdb, /proc/.../comm), which keeps 15 bytes on
 * Linux: the name itself when it fits, else the same with its "sharptask-"
 * prefix shortened to "st-" (and cut to 15), so that the worker number
 * stays visible ("st-worker-12"). */
#define ST_THREAD_NAME_MAX 48
void st_thread_set_name(const char *name, long number);
/* The calling thread's name as st_thread_set_name set it, or NULL for a
 * thread the core did not start.  The string is the thread's own: valid on
 * that thread until it sets another name. */
const char *st_thread_name(void);

/* Any thread. */
void st_event_init(st_event_t *e);
void st_event_destroy(st_event_t *e);
void st_event_set(st_event_t *e);
void st_event_reset(st_event_t *e);
int st_event_is_set(st_event_t *e);
/* Waits until set or timeout_ns passed (UINT64_MAX: no limit).  Returns 0
 * if set, ST_ETIMEDOUT otherwise. */
int st_event_wait(st_event_t *e, uint64_t timeout_ns);

/* Monotonic nanoseconds since an arbitrary origin. */
uint64_t st_now_ns(void);

/* Number of online processors (at least 1). */
int st_cpu_count(void);

#endif /* ST_THREAD_H */
