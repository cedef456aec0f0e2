/* st_error.h - error codes of the sharptask core.
 *
 * Core functions return int: 0 on success, a negative ST_E* code otherwise
 * (the libuv convention).  st_strerror() names a code; the core never prints.
 */
#ifndef ST_ERROR_H
#define ST_ERROR_H

#define ST_OK 0
#define ST_EINVAL (-22)     /* bad argument, or a token/state mismatch */
#define ST_ENOMEM (-12)     /* allocation failed */
#define ST_ECLOSED (-32)    /* the object is completed, closed or shut down */
#define ST_ECANCELED (-125) /* the operation was canceled */
#define ST_EBUSY (-16)      /* in progress elsewhere (running, firing) */
#define ST_ETIMEDOUT (-110) /* a timed wait ran out */
#define ST_EFULL (-105)     /* a count would pass its maximum (semaphore) */

/* Any thread.  Returns a static string; never NULL. */
const char *st_strerror(int code);

/* Any thread.  Prints file, line and message to stderr and aborts.  For
 * failures that cannot happen (a mutex that will not initialise). */
void st_fatal_at(const char *file, int line, const char *msg);
#define st_fatal(msg) st_fatal_at(__FILE__, __LINE__, (msg))

/* Invariants stay checked in every build of the core: a broken invariant in
 * a concurrency library is worth a crash with a line number. */
#define ST_ASSERT(cond)                                                     \
    do {                                                                    \
        if (!(cond)) {                                                      \
            st_fatal_at(__FILE__, __LINE__, "assertion failed: " #cond);    \
        }                                                                   \
    } while (0)

#endif /* ST_ERROR_H */
