/* test.h - the tiny test framework of the core's C tests (libuv task.h).
 *
 * TEST(name) defines a test; tests/c/test_list.h lists every test once;
 * runner.c forks each test into its own process with a timeout and ends its
 * output with "N passed, N failed".  The ASSERT macros print the failed
 * expression with its values and abort(); they are never compiled out.
 *
 * Helpers for stress tests: a reusable barrier (start every thread at
 * once), a sleep, a small PRNG, and ST_TEST_ITERS(n), which scales
 * iteration counts down under the sanitizers (TSan runs ~10x slower).
 */
#ifndef ST_TEST_H
#define ST_TEST_H

#include <stdint.h> /* uint64_t */
#include <stdio.h>  /* fprintf */
#include <stdlib.h> /* abort */

#include "st_error.h"  /* st_strerror */
#include "st_thread.h" /* the barrier's mutex and condvar */

/* ------------------------------------------------------------ defining */

#define TEST(name)                                                          \
    void test_##name(void);                                                 \
    void test_##name(void)

/* ---------------------------------------------------------- assertions */

void st_test_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((noreturn, format(printf, 3, 4)))
#endif
    ;

#define ASSERT(expr)                                                        \
    do {                                                                    \
        if (!(expr)) {                                                      \
            st_test_fail(__FILE__, __LINE__, "ASSERT(%s)", #expr);          \
        }                                                                   \
    } while (0)

#define ST_TEST_CMP_(a, op, b)                                              \
    do {                                                                    \
        long long a_ = (long long)(a);                                      \
        long long b_ = (long long)(b);                                      \
        if (!(a_ op b_)) {                                                  \
            st_test_fail(__FILE__, __LINE__,                                \
                         "ASSERT(%s %s %s): %lld %s %lld", #a, #op, #b,     \
                         a_, #op, b_);                                      \
        }                                                                   \
    } while (0)

#define ASSERT_EQ(a, b) ST_TEST_CMP_(a, ==, b)
#define ASSERT_NE(a, b) ST_TEST_CMP_(a, !=, b)
#define ASSERT_LT(a, b) ST_TEST_CMP_(a, <, b)
#define ASSERT_LE(a, b) ST_TEST_CMP_(a, <=, b)
#define ASSERT_GT(a, b) ST_TEST_CMP_(a, >, b)
#define ASSERT_GE(a, b) ST_TEST_CMP_(a, >=, b)

/* expr is a core call returning 0 or an ST_E* code. */
#define ASSERT_OK(expr)                                                     \
    do {                                                                    \
        int rc_ = (expr);                                                   \
        if (rc_ != 0) {                                                     \
            st_test_fail(__FILE__, __LINE__, "ASSERT_OK(%s): %d (%s)",      \
                         #expr, rc_, st_strerror(rc_));                     \
        }                                                                   \
    } while (0)

/* expr returns an ST_E* code that must be `code`. */
#define ASSERT_RC(expr, code)                                               \
    do {                                                                    \
        int rc_ = (expr);                                                   \
        int want_ = (code);                                                 \
        if (rc_ != want_) {                                                 \
            st_test_fail(__FILE__, __LINE__,                                \
                         "ASSERT_RC(%s, %s): %d (%s), wanted %d (%s)",      \
                         #expr, #code, rc_, st_strerror(rc_), want_,        \
                         st_strerror(want_));                               \
        }                                                                   \
    } while (0)

#define ASSERT_NULL(p) ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)

/* Polls cond every millisecond for at most ms milliseconds. */
#define ASSERT_EVENTUALLY(cond, ms)                                         \
    do {                                                                    \
        uint64_t until_ = st_now_ns() + (uint64_t)(ms) * 1000000u;         \
        while (!(cond) && st_now_ns() < until_) {                           \
            st_test_sleep_us(1000);                                         \
        }                                                                   \
        if (!(cond)) {                                                      \
            st_test_fail(__FILE__, __LINE__,                                \
                         "ASSERT_EVENTUALLY(%s) after %d ms", #cond,        \
                         (int)(ms));                                        \
        }                                                                   \
    } while (0)

/* ------------------------------------------------------------- scaling */

#if defined(__SANITIZE_THREAD__)
#define ST_TEST_SLOWDOWN 4
#elif defined(__SANITIZE_ADDRESS__)
#define ST_TEST_SLOWDOWN 2
#else
#define ST_TEST_SLOWDOWN 1
#endif

/* Iterations for a stress loop: n in the plain build, fewer under the
 * sanitizers, never below 1. */
#define ST_TEST_ITERS(n)                                                    \
    ((n) / ST_TEST_SLOWDOWN > 0 ? (n) / ST_TEST_SLOWDOWN : 1)

/* ------------------------------------------------------------- helpers */

void st_test_sleep_us(uint64_t us);

/* Seeded xorshift64*: deterministic per test, so a failure reproduces. */
typedef struct st_test_rng {
    uint64_t s;
} st_test_rng_t;

static inline void
st_test_rng_init(st_test_rng_t *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15u + 1;
}

static inline uint64_t
st_test_rng_next(st_test_rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Du;
}

/* A uniform value in [0, n). */
static inline uint64_t
st_test_rng_below(st_test_rng_t *r, uint64_t n)
{
    return st_test_rng_next(r) % n;
}

/* A reusable barrier for n threads (generation counted). */
typedef struct st_test_barrier {
    st_mutex_t mu;
    st_cond_t cv;
    int n;
    int waiting;
    unsigned long generation;
} st_test_barrier_t;

void st_test_barrier_init(st_test_barrier_t *b, int n);
void st_test_barrier_destroy(st_test_barrier_t *b);
/* Returns 1 in exactly one thread per crossing (the last to arrive). */
int st_test_barrier_wait(st_test_barrier_t *b);

/* Starts fn(arg) with st_thread_create and asserts success. */
void st_test_thread_start(st_thread_t *t, void (*fn)(void *), void *arg);

#endif /* ST_TEST_H */
