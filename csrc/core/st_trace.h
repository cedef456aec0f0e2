/* st_trace.h - the event recorder (SPEC D2): what the core and the binding
 * did, on which thread, when, for which task.
 *
 * An event site is one line:
 *
 *     ST_TRACE(ST_TRACE_POOL_ITEM_START, 0, (uintptr_t)item, 0);
 *
 * Off (no recording session), that is one load of a flag and one branch
 * predicted not taken: nothing else runs, nothing is evaluated beyond the
 * flag.  On, st_trace_emit appends the event to the calling thread's own
 * ring buffer: no lock, no allocation (but the first event of a thread in
 * a session, which allocates its buffer from the C library), never the
 * interpreter lock.  A full ring overwrites its oldest events; the
 * collector counts them as dropped.
 *
 * One session at a time: st_trace_start, any number of st_trace_collect
 * (each drains what was recorded since the previous one, from every
 * thread, including threads that exited meanwhile, in time order), then
 * st_trace_stop and a last collect.  An event that races st_trace_stop
 * (its thread saw the flag still on) is collected by the next collect of
 * the same session, or never.
 *
 * An event is a name (a small integer id below; st_trace_name() gives its
 * stable dotted name), a timestamp (st_now_ns(): CLOCK_MONOTONIC, the
 * clock of Python's time.monotonic_ns()), the OS thread id, a task id (0:
 * none) and two small arguments whose meaning depends on the name (listed
 * with each name).  Strings (a type name) travel as ids of
 * st_trace_intern().
 */
#ifndef ST_TRACE_H
#define ST_TRACE_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint32_t, uint64_t */

#include "st_atomic.h" /* the on/off flag */
#include "st_thread.h" /* ST_THREAD_NAME_MAX */

#if defined(__GNUC__)
#define ST_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* The flag is read at every event site: hidden, so that code of the same
 * shared object reaches it without going through the GOT. */
#define ST_TRACE_HIDDEN __attribute__((visibility("hidden")))
#else
#define ST_UNLIKELY(x) (x)
#define ST_TRACE_HIDDEN
#endif

/* Event names, D2's list in its order.  The ids are stable (the binding
 * and the Python layer decode by them); st_trace_name() gives the dotted
 * name.  After each: its task id, `arg` (64 bits) and `arg2` (32 bits). */
enum {
    ST_TRACE_NONE = 0,
    ST_TRACE_TASK_CREATED = 1,       /* task; -, - */
    ST_TRACE_TASK_COMPLETED = 2,     /* task; -, final ST_STATUS_* */
    ST_TRACE_METHOD_START = 3,       /* task; -, - */
    ST_TRACE_METHOD_SUSPEND = 4,     /* task; -, awaited type (string id) */
    ST_TRACE_METHOD_RESUME = 5,      /* task; -, - */
    ST_TRACE_METHOD_COMPLETE = 6,    /* task; -, - */
    ST_TRACE_CONTINUATION_QUEUED = 7, /* task; -, - */
    ST_TRACE_CONTINUATION_INLINE = 8, /* task; -, - */
    ST_TRACE_CONTEXT_POST = 9,       /* task; -, context type (string id) */
    ST_TRACE_POOL_ITEM_QUEUED = 10,  /* -; item address, ST_TRACE_QUEUE_* */
    ST_TRACE_POOL_ITEM_START = 11,   /* -; item address, - */
    ST_TRACE_POOL_ITEM_END = 12,     /* -; item address, - */
    ST_TRACE_POOL_THREAD_INJECTED = 13, /* -; thread count, ST_TRACE_WHY_* */
    ST_TRACE_POOL_THREAD_RETIRED = 14,  /* -; -, - */
    ST_TRACE_TIMER_FIRED = 15,       /* -; deadline (st_now_ns clock), - */
    ST_TRACE_WAIT_BLOCK = 16,        /* task or 0; -, ST_TRACE_ON_* */
    ST_TRACE_WAIT_WAKE = 17,         /* task or 0; completed?, ST_TRACE_ON_* */
    ST_TRACE_DEADLOCK_DETECTED = 18, /* task; -, - */
    ST_TRACE_COUNT = 19
};

/* pool.item.queued: where the item went. */
enum {
    ST_TRACE_QUEUE_GLOBAL = 0,
    ST_TRACE_QUEUE_LOCAL = 1,    /* the calling worker's own deque */
    ST_TRACE_QUEUE_DEDICATED = 2 /* a thread of its own (long-running) */
};

/* pool.thread.injected: why. */
enum {
    ST_TRACE_WHY_STARVATION = 1, /* the gate saw no progress */
    ST_TRACE_WHY_BLOCKING = 2    /* a worker announced that it blocks */
};

/* wait.block / wait.wake: on what. */
enum {
    ST_TRACE_ON_TASK = 1,     /* a task's sync waiter */
    ST_TRACE_ON_SEMAPHORE = 2 /* a semaphore's blocking wait */
};

/* The largest per-thread capacity st_trace_start accepts (events). */
#define ST_TRACE_MAX_CAPACITY ((size_t)1 << 24)
/* Distinct strings st_trace_intern keeps (then it answers 0). */
#define ST_TRACE_MAX_STRINGS 1024

/* 1 while a session records.  Read it through st_trace_on(). */
extern ST_TRACE_HIDDEN ST_ATOMIC(int) st__trace_on;

#if defined(ST_TRACE_DISABLED)
/* A build without the event sites (setup.py with ST_NO_TRACE=1; issue 12's
 * baseline "before the recorder existed"): every ST_TRACE below and every
 * site behind st_trace_on() compiles to nothing, its arguments never
 * evaluated.  The recorder itself stays (sharptask.trace() starts, stops
 * and collects), but nothing records: its events are empty. */
static inline int
st_trace_on(void)
{
    return 0;
}
#else
/* Any thread.  1 while a session records.  relaxed: a hint; a thread that
 * sees it late records one event more or less, and st_trace_emit
 * re-reads it with acquire before it records. */
static inline int
st_trace_on(void)
{
    return st_atomic_load(&st__trace_on, ST_RELAXED);
}
#endif

/* Any thread, any lock held or none.  Records one event on the calling
 * thread's buffer (see the top).  Never blocks, never takes the GIL. */
void st_trace_emit(int name, uint64_t task_id, uint64_t arg, uint32_t arg2);

/* The event site: one branch when off; the arguments are evaluated only
 * when on. */
#if defined(ST_TRACE_DISABLED)
/* ST_TRACE_DISABLED: no site at all.  sizeof does not evaluate its operand
 * (no call, no side effect, no code): it only keeps the variables that
 * exist for a site "used", so that -Wall stays quiet. */
#define ST_TRACE(name, task_id, arg, arg2)                                  \
    do {                                                                    \
        (void)sizeof(name);                                                 \
        (void)sizeof(task_id);                                              \
        (void)sizeof(arg);                                                  \
        (void)sizeof(arg2);                                                 \
    } while (0)
#else
#define ST_TRACE(name, task_id, arg, arg2)                                  \
    do {                                                                    \
        if (ST_UNLIKELY(st_trace_on())) {                                   \
            st_trace_emit((name), (task_id), (arg), (arg2));                \
        }                                                                   \
    } while (0)
#endif

/* Any thread.  The dotted name of an event id ("pool.item.start"), or
 * NULL for an id out of range (ST_TRACE_NONE included). */
const char *st_trace_name(int name);

/* Any thread, lock-free.  A small id (>= 1) for the string s, the same
 * for equal strings, for the life of the process; 0 for NULL or when
 * ST_TRACE_MAX_STRINGS strings are kept.  The core copies s. */
uint32_t st_trace_intern(const char *s);

/* Any thread.  The string of an id from st_trace_intern, or NULL. */
const char *st_trace_string(uint32_t id);

/* Any thread.  Starts a session: every thread keeps at most `capacity`
 * events between two collects.  Returns 0, ST_EINVAL (capacity 0 or above
 * ST_TRACE_MAX_CAPACITY), ST_EBUSY (a session records already). */
int st_trace_start(size_t capacity);

/* Any thread.  Stops recording (events already recorded stay until the
 * next collect or start).  Idempotent. */
void st_trace_stop(void);

/* One collected event. */
typedef struct st_trace_event {
    uint64_t ts_ns;
    uint64_t task_id; /* 0: none */
    uint64_t arg;
    uint32_t arg2;
    uint32_t name;   /* ST_TRACE_* */
    uint32_t thread; /* index into st_trace_dump_t.threads */
} st_trace_event_t;

/* One thread that recorded in the session. */
typedef struct st_trace_thread {
    uint64_t tid;                   /* st_thread_id() */
    char name[ST_THREAD_NAME_MAX];  /* "" when unknown */
    int named;                      /* 1: the core named it */
    int exited;                     /* 1: it exited (or left the session) */
} st_trace_thread_t;

/* What st_trace_collect returns; free it with st_trace_dump_free. */
typedef struct st_trace_dump {
    st_trace_event_t *events; /* in time order (a thread's own in order) */
    size_t count;
    st_trace_thread_t *threads;
    size_t nthreads;
    uint64_t dropped; /* events lost since the previous collect */
} st_trace_dump_t;

/* Any thread (serialized with start and other collects by a core lock;
 * recording threads never wait for it).  Drains every event recorded in
 * the current session since the previous collect into *out, which the
 * caller owns (st_trace_dump_free).  Without a session since the process
 * started, an empty dump.  Returns 0 or ST_ENOMEM (then *out is empty and
 * the events stay for a later collect). */
int st_trace_collect(st_trace_dump_t *out);

/* Any thread.  Frees what st_trace_collect put in d (d itself is the
 * caller's) and empties it. */
void st_trace_dump_free(st_trace_dump_t *d);

#endif /* ST_TRACE_H */
