/* runner.c - runs the core's C tests, each in its own forked process.
 *
 *   run_tests            run every test
 *   run_tests FILTER     run the tests whose name contains FILTER
 *   run_tests --list     print the names and exit
 *
 * A test passes when its process exits with status 0 within TIMEOUT_S
 * seconds; an ASSERT, a sanitizer report (halt_on_error) or a hang fails
 * it, and the other tests still run.  The last line of output is always
 * "N passed, N failed"; the exit status is 0 only when nothing failed (and
 * something ran).
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, kill, nanosleep */

#include <signal.h>   /* kill, SIGKILL */
#include <stdarg.h>   /* va_list */
#include <stdio.h>    /* printf */
#include <stdlib.h>   /* exit, abort, getenv */
#include <string.h>   /* strstr, strcmp */
#include <sys/wait.h> /* waitpid */
#include <time.h>     /* nanosleep */
#include <unistd.h>   /* fork */

#include "test.h"

/* Seconds before a test is killed (ST_TEST_TIMEOUT overrides). */
#define TIMEOUT_S 30

#define ST_TEST_DECLARE(name) void test_##name(void);
#include "test_list.h"
ST_TEST_LIST(ST_TEST_DECLARE)

typedef struct test_entry {
    const char *name;
    void (*fn)(void);
} test_entry;

#define ST_TEST_ENTRY(name) {#name, test_##name},
static const test_entry tests[] = {ST_TEST_LIST(ST_TEST_ENTRY)};
#define N_TESTS (sizeof(tests) / sizeof(tests[0]))

/* ------------------------------------------------------------- helpers */

void
st_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}

void
st_test_sleep_us(uint64_t us)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(us / 1000000u);
    ts.tv_nsec = (long)(us % 1000000u) * 1000;
    while (nanosleep(&ts, &ts) != 0) {
        /* interrupted: sleep the rest */
    }
}

void
st_test_barrier_init(st_test_barrier_t *b, int n)
{
    st_mutex_init(&b->mu);
    st_cond_init(&b->cv);
    b->n = n;
    b->waiting = 0;
    b->generation = 0;
}

void
st_test_barrier_destroy(st_test_barrier_t *b)
{
    st_cond_destroy(&b->cv);
    st_mutex_destroy(&b->mu);
}

int
st_test_barrier_wait(st_test_barrier_t *b)
{
    unsigned long gen;
    int last = 0;

    st_mutex_lock(&b->mu);
    gen = b->generation;
    if (++b->waiting == b->n) {
        b->waiting = 0;
        b->generation++;
        last = 1;
        st_cond_broadcast(&b->cv);
    }
    else {
        while (gen == b->generation) {
            st_cond_wait(&b->cv, &b->mu);
        }
    }
    st_mutex_unlock(&b->mu);
    return last;
}

void
st_test_thread_start(st_thread_t *t, void (*fn)(void *), void *arg)
{
    ASSERT_OK(st_thread_create(t, fn, arg));
}

/* -------------------------------------------------------------- runner */

/* Runs one test in a child; returns 1 if it passed. */
static int
run_one(const test_entry *t, int timeout_s)
{
    uint64_t start = st_now_ns();
    uint64_t deadline = start + (uint64_t)timeout_s * 1000000000u;
    int status = 0, timed_out = 0;
    pid_t pid, rc;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        printf("not ok - %s: fork failed\n", t->name);
        return 0;
    }
    if (pid == 0) {
        t->fn();
        fflush(stdout);
        exit(0); /* exit, not _exit: LeakSanitizer runs at exit */
    }
    for (;;) {
        rc = waitpid(pid, &status, WNOHANG);
        if (rc == pid) {
            break;
        }
        if (st_now_ns() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = 1;
            break;
        }
        st_test_sleep_us(2000);
    }
    if (timed_out) {
        printf("not ok - %s: timed out after %d s\n", t->name, timeout_s);
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok     - %s (%llu ms)\n", t->name,
               (unsigned long long)((st_now_ns() - start) / 1000000u));
        return 1;
    }
    if (WIFSIGNALED(status)) {
        printf("not ok - %s: killed by signal %d\n", t->name,
               WTERMSIG(status));
    }
    else {
        printf("not ok - %s: exit status %d\n", t->name,
               WEXITSTATUS(status));
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *env = getenv("ST_TEST_TIMEOUT");
    int timeout_s = env != NULL && atoi(env) > 0 ? atoi(env) : TIMEOUT_S;
    int passed = 0, failed = 0;
    size_t i;

    if (filter != NULL && strcmp(filter, "--list") == 0) {
        for (i = 0; i < N_TESTS; i++) {
            printf("%s\n", tests[i].name);
        }
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < N_TESTS; i++) {
        if (filter != NULL && strstr(tests[i].name, filter) == NULL) {
            continue;
        }
        if (run_one(&tests[i], timeout_s)) {
            passed++;
        }
        else {
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
