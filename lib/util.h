/*
 * util.h - what every file of lib/ may use (internal): the public API with
 * default visibility, branch hints, sanitizer detection and annotations, a
 * spin-wait hint and a spinlock, fatal errors, the clock, runnable items
 * and lists.
 *
 * lib/ is layered; a file includes and calls only the layers below its own,
 * never above (README, "Layout"):
 *
 *   run.c sched.c                     heist_run; lifecycle, statistics, report
 *   spawn.c combine.c wait.c          tasks; gather/any; awaiting, sleeping
 *   future.c                          the state word, completion, then
 *   worker.c                          the loop: find work, steal, park
 *   fork.c                            heist_fork/heist_join, stolen frames
 *   ready.c                           make an item runnable; injection; wake
 *   stack.c                           stacks: chunks, pools, budget; suspend
 *   fiber.c ctx_*.S cache.c timer.c   frames, switch; records; timers
 *   deque.c readyq.c trace.c          (trace.c: event rings and the
 *                                     trace writer)
 *   live.c park.c util.c              live counts; futexes, parking
 *
 * Upward edges are function pointers that the upper layer installs: every
 * queued item carries its run function (struct heist__item), a fiber switch
 * carries the action to run after it (fiber.h), a timer node its fire
 * function (timer.h), a future's list node its fire function and a future
 * its operations (future.h), a fork deque its publish hook (deque.h).
 *
 * Names shared between files are heist__name; public names are heist_name.
 */
#ifndef HEIST_UTIL_H
#define HEIST_UTIL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Public declarations get default visibility; everything else in the
 * library is hidden (the object files are built with -fvisibility=hidden).
 * HEIST_NO_INLINE: the library defines heist_fork & co., so the public
 * header must not turn their names into macros (heist/task_inline.h). */
#define HEIST_NO_INLINE 1
#pragma GCC visibility push(default)
#include <heist/heist.h>
#pragma GCC visibility pop

#include <urcu/compiler.h>
#include <urcu/list.h>
#include <urcu/wfcqueue.h>

#define HEIST_CACHELINE 64

#define heist__likely(x)   __builtin_expect(!!(x), 1)
#define heist__unlikely(x) __builtin_expect(!!(x), 0)

/* ---- sanitizers ---------------------------------------------------------
 * Annotations are switched on by the compiler's own detection, so a user who
 * builds heist with -fsanitize=thread in CMAKE_C_FLAGS (no preset, no heist
 * option) gets them too. */
#if defined(__SANITIZE_THREAD__)
#define HEIST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HEIST_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define HEIST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEIST_ASAN 1
#endif
#endif

#ifdef HEIST_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define heist__tsan_acquire(p) __tsan_acquire((void *)(p))
#define heist__tsan_release(p) __tsan_release((void *)(p))
#else
#define heist__tsan_acquire(p) ((void)(p))
#define heist__tsan_release(p) ((void)(p))
#endif

/* For a variable that assembly names (the thread-locals read by inline
 * asm): gcc's link-time optimization does not see those uses and, without
 * `used`, may drop the definition from the partition that exports it (a
 * static link of the fat objects then fails with undefined references). */
#define HEIST__ASM_NAMED __attribute__((used))

/* A spin-wait hint. */
static inline void heist__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* A spinlock for critical sections of a few list operations. A holder
 * preempted on an oversubscribed machine gets the CPU back through
 * sched_yield. */
static inline void heist__spin_lock(_Atomic uint32_t *l)
{
    unsigned spins = 0;
    /* Acquire: pairs with the release in heist__spin_unlock. */
    while (atomic_exchange_explicit(l, 1, memory_order_acquire)) {
        /* Relaxed: only a hint to retry the exchange. */
        while (atomic_load_explicit(l, memory_order_relaxed)) {
            if (++spins < 64)
                heist__cpu_relax();
            else
                sched_yield();
        }
    }
}

static inline void heist__spin_unlock(_Atomic uint32_t *l)
{
    /* Release: pairs with the acquire exchange in heist__spin_lock. */
    atomic_store_explicit(l, 0, memory_order_release);
}

/* Initializes a mutex for critical sections of a few steps that threads
 * contend for (the timers' heap, the scheduler's stack pool): adaptive
 * where the C library has it (it spins a little before it sleeps in the
 * kernel: the holder is usually running), else a plain one. 0 or an errno
 * value. */
int heist__mutex_init_short(pthread_mutex_t *m);

/* Reports a misuse that leaves the runtime unable to go on safely, and
 * aborts. */
_Noreturn void heist__fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Claims the one fatal report of the process: returns in the first thread
 * to call it (which then writes its message and aborts), and again in
 * that thread should it fail once more while reporting; any other thread
 * waits here for that abort to end the process (returning after about
 * 5 s if it has not), so two workers that fail at once (an overflow on
 * each) do not interleave their messages. Async-signal-safe. */
void heist__fatal_claim(void);

/* Writes len bytes of s to stderr (fd 2) with write(2), no stdio lock;
 * gives up at an error. Async-signal-safe. */
void heist__write_err(const char *s, size_t len);

/* CLOCK_MONOTONIC in ns. */
uint64_t heist__now_ns(void);
/* now + ns, saturated below UINT64_MAX (which means "no deadline"). */
uint64_t heist__deadline_after(uint64_t ns);

/* ---- runnable items -------------------------------------------------------
 * What the ready queues and the injection queue hold: a task to start, a
 * suspended fiber to resume, a callback to run. The queue's taker calls
 * run(it) on a worker's loop fiber; run is set by the item's owner before
 * the item is first queued and never changes. */
struct heist__item {
    struct cds_wfcq_node node; /* injection queue link */
    void (*run)(struct heist__item *it);
};

/* Counters written by one thread only (the owning worker): a relaxed load
 * and store is enough, and readers (statistics) see some recent value. */
static inline void heist__count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

#endif /* HEIST_UTIL_H */
