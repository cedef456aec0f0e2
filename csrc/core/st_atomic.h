/* st_atomic.h - the only file of the project that includes <stdatomic.h>.
 *
 * It exists so that the atomics can be swapped for MSVC's or for compiler
 * builtins in one place.  Code elsewhere writes ST_ATOMIC(T) for the type and
 * the st_atomic_* macros with an explicit order; every use carries a comment
 * naming its order and its partner (STYLE.md point 15).
 */
#ifndef ST_ATOMIC_H
#define ST_ATOMIC_H

#include <stdatomic.h> /* the C11 atomics this header wraps */
#include <stdalign.h>  /* alignas for cache-line padding */

#define ST_ATOMIC(T) _Atomic(T)
#define ST_CACHELINE 64

#define ST_RELAXED memory_order_relaxed
#define ST_ACQUIRE memory_order_acquire
#define ST_RELEASE memory_order_release
#define ST_ACQ_REL memory_order_acq_rel
#define ST_SEQ_CST memory_order_seq_cst

#define st_atomic_init(p, v) atomic_init((p), (v))
#define st_atomic_load(p, o) atomic_load_explicit((p), (o))
#define st_atomic_store(p, v, o) atomic_store_explicit((p), (v), (o))
#define st_atomic_exchange(p, v, o) atomic_exchange_explicit((p), (v), (o))
#define st_atomic_fetch_add(p, v, o) atomic_fetch_add_explicit((p), (v), (o))
#define st_atomic_fetch_sub(p, v, o) atomic_fetch_sub_explicit((p), (v), (o))
#define st_atomic_fetch_or(p, v, o) atomic_fetch_or_explicit((p), (v), (o))
#define st_atomic_fetch_and(p, v, o) atomic_fetch_and_explicit((p), (v), (o))
/* Weak CAS: for loops.  On failure *expected is refreshed (acquire). */
#define st_atomic_cas_weak(p, expected, desired, succ, fail)                \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired),       \
                                          (succ), (fail))
#define st_atomic_cas(p, expected, desired, succ, fail)                     \
    atomic_compare_exchange_strong_explicit((p), (expected), (desired),     \
                                            (succ), (fail))
#define st_atomic_fence(o) atomic_thread_fence(o)

/* A pause hint for bounded spin loops. */
#if defined(__x86_64__) || defined(__i386__)
#define st_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define st_cpu_relax() __asm__ __volatile__("yield")
#else
#define st_cpu_relax() ((void)0)
#endif

#endif /* ST_ATOMIC_H */
