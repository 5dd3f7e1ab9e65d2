/*
 * internal.h - declarations shared between the files of lib/ (internal).
 *
 * Names shared between files are heist__name; public names are heist_name.
 * Every shared field says which threads write it and which read it.
 */
#ifndef HEIST_INTERNAL_H
#define HEIST_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

/* Public declarations get default visibility; everything else in the
 * library is hidden (the object files are built with -fvisibility=hidden). */
#pragma GCC visibility push(default)
#include <heist/heist.h>
#pragma GCC visibility pop

#include <urcu/wfcqueue.h>

#include "deque.h"

#define HEIST_CACHELINE 64

#define heist__likely(x)   __builtin_expect(!!(x), 1)
#define heist__unlikely(x) __builtin_expect(!!(x), 0)

/* ---- ThreadSanitizer -------------------------------------------------
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

#ifdef HEIST_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define heist__tsan_acquire(p) __tsan_acquire((void *)(p))
#define heist__tsan_release(p) __tsan_release((void *)(p))
#else
#define heist__tsan_acquire(p) ((void)(p))
#define heist__tsan_release(p) ((void)(p))
#endif

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

/* ---- futex (park.c) -------------------------------------------------- */
/* Sleeps while *addr == expected (spurious returns are possible). */
void heist__futex_wait(_Atomic uint32_t *addr, uint32_t expected);
/* Wakes up to n threads sleeping on addr. */
void heist__futex_wake(_Atomic uint32_t *addr, int n);

/* ---- parking (park.c) ------------------------------------------------- */
/*
 * An eventcount: idle workers sleep on `epoch`; publishers wake them only
 * when `sleepers` says someone sleeps. See park.c for the protocol.
 */
struct heist__park {
    _Alignas(HEIST_CACHELINE) _Atomic uint32_t epoch; /* RMW: wakers */
    _Atomic uint32_t sleepers;                        /* RMW: sleepers */
};
/* Sleeper side: announce, then (after re-checking for work) wait or cancel. */
uint32_t heist__park_prepare(struct heist__park *p);
void heist__park_wait(struct heist__park *p, uint32_t key);
void heist__park_cancel(struct heist__park *p);
/* Publisher side: call after publishing work with a seq_cst operation. */
void heist__park_wake_one(struct heist__park *p);
void heist__park_wake_all(struct heist__park *p);

/* ---- frames (task.c) -------------------------------------------------- */
/* The private layout of heist_task. */
struct heist__frame {
    heist_fn fn;     /* written by the forking worker before the push */
    void *arg;       /* same */
    void *result;    /* written by whoever runs fn, before state = DONE */
    _Atomic uintptr_t state; /* see task.c */
    /* The worker that stole the frame: written by the thief (release) once
     * it has read the deque slot; read by the joining owner (acquire). */
    _Atomic(struct heist__worker *) thief;
};
_Static_assert(sizeof(struct heist__frame) <= sizeof(heist_task),
               "heist_task too small for its frame");
_Static_assert(_Alignof(struct heist__frame) <= _Alignof(heist_task),
               "heist_task under-aligned for its frame");

/* Runs a frame the worker w stole (task.c). */
void heist__frame_run_stolen(struct heist__worker *w, struct heist__frame *f);

/* ---- jobs submitted from outside (sched.c) --------------------------- */
struct heist__job {
    struct cds_wfcq_node node; /* injection queue link */
    heist_fn fn;
    void *arg;
    void *result;              /* written by the worker before done */
    _Atomic uint32_t done;     /* 0 pending, 1 done, 2 pending + sleeper */
};
void heist__job_run(struct heist__worker *w, struct heist__job *j);

/* ---- workers and the scheduler ---------------------------------------- */
/* Counters: written by the owning worker only (relaxed load + store, no
 * RMW needed), read by any thread (relaxed) for statistics. Forks are
 * counted when joined (inlined + joined_stolen): the fork path stays free
 * of counters. */
struct heist__counters {
    _Atomic uint64_t tasks, inlined, joined_stolen, steals, failed_steals,
        parks;
};

static inline void heist__count(_Atomic uint64_t *c)
{
    /* Only the owner writes c: a relaxed load and store is enough, and
     * readers (heist_sched_stats) see some recent value. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

struct heist__worker {
    struct heist__deque dq;        /* owner pushes/pops, thieves steal */
    _Alignas(HEIST_CACHELINE) struct heist_sched *sched; /* immutable */
    unsigned index;                /* immutable */
    uint64_t rng;                  /* owner-only: victim selection */
    pthread_t thread;              /* written by the creator */
    struct heist__counters ctr;
};

struct heist_sched {
    unsigned nworkers;                   /* immutable after creation */
    struct heist__worker **workers;      /* immutable array */
    size_t stack_size;                   /* immutable */
    struct heist__park park;
    /* Injection queue: any thread enqueues (wait-free), workers dequeue
     * (cds_wfcq_dequeue_blocking serializes dequeuers). */
    struct cds_wfcq_head inj_head;
    struct cds_wfcq_tail inj_tail;
    /* Jobs enqueued and not yet dequeued: incremented (seq_cst) after the
     * enqueue, decremented after the dequeue. Workers read it to decide
     * whether to look at the queue, and before sleeping (park.c). */
    _Alignas(HEIST_CACHELINE) _Atomic long inj_pending;
    /* heist_run calls in progress: incremented before the enqueue,
     * decremented after the result is taken. heist_sched_free waits on
     * `quiet` until it is zero. */
    _Atomic long runs;
    _Atomic uint32_t quiet;
    /* Set (seq_cst) by heist_sched_free; workers exit when they see it. */
    atomic_bool stopping;
};

/* The calling thread's worker, or NULL. Initial-exec TLS: one load from the
 * thread pointer, no call (the fork/join fast path reads it). */
extern __thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec")));

/* worker.c */
void *heist__worker_main(void *arg);
/* Tries to steal one frame from w's victims (or the given victim if not
 * NULL) and run it. Returns true if it ran something. */
bool heist__steal_and_run(struct heist__worker *w, struct heist__worker *victim);
/* Wakes one sleeping worker if any sleeps (after publishing work). */
void heist__wake_one(struct heist_sched *s);

/* Reports a misuse that leaves the runtime unable to go on safely, and
 * aborts (task.c). */
_Noreturn void heist__fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif /* HEIST_INTERNAL_H */
