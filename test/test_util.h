/*
 * test_util.h - helpers shared by heist's tests: sanitizer-aware sizes, a
 * clock, a small PRNG, a spin-wait with a deadline, a watchdog thread, and
 * the hunt for a lost wake-up of a worker's push.
 */
#ifndef HEIST_TEST_UTIL_H
#define HEIST_TEST_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* HT_SANITIZED: 1 in ASan/UBSan/TSan builds, where everything is 2-20x
 * slower; HT_TSAN: 1 in ThreadSanitizer builds. */
#if defined(__SANITIZE_THREAD__)
#define HT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HT_TSAN 1
#endif
#endif
#ifndef HT_TSAN
#define HT_TSAN 0
#endif

#if HT_TSAN || defined(__SANITIZE_ADDRESS__)
#define HT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HT_SANITIZED 1
#endif
#endif
#ifndef HT_SANITIZED
#define HT_SANITIZED 0
#endif

/* A count for plain builds, and the smaller one for sanitizer builds. */
#define HT_SCALE(plain, sanitized) (HT_SANITIZED ? (sanitized) : (plain))

/* Monotonic time in nanoseconds. */
uint64_t ht_now_ns(void);

/* SplitMix64: a PRNG for test decisions (never rand/rand_r: see
 * criterion_tsan.c). */
uint64_t ht_rand(uint64_t *state);

/* Spins (yielding the CPU) until *v >= target; returns false if that did
 * not happen within timeout_s seconds. */
bool ht_wait_at_least(atomic_int *v, int target, unsigned timeout_s);

/*
 * A watchdog: a thread that aborts the process, naming `what`, when
 * `progress` has not changed for `limit_s` seconds. A test bumps progress
 * as it goes; abort() makes Criterion report the test as crashed, where a
 * hang would only end at the ctest timeout with less to go on.
 */
struct ht_watchdog {
    pthread_t thread;
    _Atomic uint64_t progress;
    atomic_bool stop;
    unsigned limit_s;
    const char *what;
};
void ht_watchdog_start(struct ht_watchdog *w, const char *what,
                       unsigned limit_s);
static inline void ht_watchdog_tick(struct ht_watchdog *w)
{
    atomic_fetch_add_explicit(&w->progress, 1, memory_order_relaxed);
}
void ht_watchdog_stop(struct ht_watchdog *w);

/*
 * A Criterion suite `name` (include <criterion/criterion.h> first) whose
 * tests run under the watchdog suite_wd: a test that makes no progress
 * (ht_watchdog_tick(&suite_wd)) for limit_s seconds aborts, naming the
 * suite. Not Criterion's .timeout: with it, Criterion's runner leaks
 * memory that the asan build's LeakSanitizer reports, failing the whole
 * executable now and then.
 */
#define HT_WATCHDOG_SUITE(name, limit_s)                                       \
    static struct ht_watchdog suite_wd;                                        \
    static void suite_wd_start(void)                                           \
    {                                                                          \
        ht_watchdog_start(&suite_wd,                                           \
                          "a " #name "/ test ran for " #limit_s " s",          \
                          (limit_s));                                          \
    }                                                                          \
    static void suite_wd_stop(void)                                            \
    {                                                                          \
        ht_watchdog_stop(&suite_wd);                                           \
    }                                                                          \
    TestSuite(name, .init = suite_wd_start, .fini = suite_wd_stop)

/* A task body: stores 1 into the atomic_int at arg (release), for a
 * spinner that waits on it with an acquire load. */
void *ht_set_flag(void *arg);

/* fib(n) for 0 <= n <= 92, by a loop. */
long ht_fib_seq(long n);
/* What ht_fib gives when one of its joins failed. */
#define HT_FIB_FAILED ((void *)(intptr_t)-1000000000L)
/* fib((long)arg) with heist fork-join, written as in heist/task.h: one
 * fork per call with n >= 2 (no cutoff: fib(n + 1) - 1 forks), joined with
 * heist_join; HT_FIB_FAILED if any join failed. */
void *ht_fib(void *arg);

/*
 * A hunt for a lost wake-up of a worker's own push (lib/park.c): on s,
 * a task spawns a child onto its own worker's ready queue `reps` times and
 * busy-waits for it without awaiting, so only another worker can run it; a
 * random 0-60 us before each spawn makes the push meet that worker at
 * every stage of going to sleep. A lost wake-up hangs, and wd (ticked
 * every round) aborts. Returns 0, or a nonzero code naming what failed.
 */
struct heist_sched;
int ht_push_hunt(struct heist_sched *s, int reps, uint64_t seed,
                 struct ht_watchdog *wd);

/*
 * A burst of n waiting tasks on s: each awaits one gate future; main waits
 * until all n are suspended at once (the scheduler's suspend counter, less
 * its own sleeps), so each holds a stack of its own, then opens the gate
 * and gathers them. Returns 0 when all n ran past their await, else a
 * nonzero code naming what failed (an errno from heist, or -1: fewer ran).
 */
int ht_gate_burst(struct heist_sched *s, long n);

/*
 * One task per worker of s (workers of them, at most HT_ROUND_MAX),
 * spawned at once from this plain thread: each records its worker, holds
 * it (spinning, yielding) until all of them run, then calls after(i, arg)
 * if after is not NULL, and this thread awaits them all. Returns 0 when
 * every task started on a worker of its own; -1 when one waited 30 s for
 * the others (some never started while workers slept: a lost wake-up),
 * -2 when two ran on one worker; an errno value from heist.
 */
#define HT_ROUND_MAX 16
int ht_round_every_worker(struct heist_sched *s, unsigned workers,
                          void (*after)(unsigned i, void *arg), void *arg);

#endif /* HEIST_TEST_UTIL_H */
