/*
 * park.h - futexes and the eventcount idle workers sleep on (internal).
 * See park.c for the no-lost-wake-up argument.
 */
#ifndef HEIST_PARK_H
#define HEIST_PARK_H

#include "util.h"

/* Sleeps while *addr == expected (spurious returns are possible). */
void heist__futex_wait(_Atomic uint32_t *addr, uint32_t expected);
/* Same, until CLOCK_MONOTONIC reaches deadline_ns (UINT64_MAX: no limit). */
void heist__futex_wait_until(_Atomic uint32_t *addr, uint32_t expected,
                             uint64_t deadline_ns);
/* Wakes up to n threads sleeping on addr. */
void heist__futex_wake(_Atomic uint32_t *addr, int n);

/*
 * An eventcount: idle workers sleep on `epoch`; publishers wake them only
 * when `sleepers` says someone sleeps.
 */
struct heist__park {
    _Alignas(HEIST_CACHELINE) _Atomic uint32_t epoch; /* RMW: wakers */
    _Atomic uint32_t sleepers;                        /* RMW: sleepers */
    /* The slot of the worker that went to sleep last: wakers wake it
     * first (park.c, "Which sleeper"). Any parker writes, any waker
     * reads; relaxed: a hint. */
    _Atomic uint32_t last;
};
/*
 * The publish of a worker's ready queue (readyq.c) is its hottest store.
 * Where the kernel has membarrier(2)'s private expedited command, the
 * publisher's store-load fence moves to the sleeper's side: a publisher
 * writes with release and then loads (no fence), and every park issues a
 * membarrier between its announcement and its re-check (park.c has the
 * argument). heist__park_asym says which: set once, by the first
 * heist_sched_new, before any worker thread exists (pthread_create orders
 * it before their reads), never changed. Off under ThreadSanitizer, which
 * cannot see membarrier's ordering: there the publish is a seq_cst store.
 */
extern bool heist__park_asym;
void heist__park_init(void);

/* Stores v into *bottom as a publish of the parking protocol. */
static inline void heist__park_publish_i64(_Atomic int64_t *bottom, int64_t v)
{
    if (heist__likely(heist__park_asym)) {
        /* Release: the slots written before it go with it; the sleeper's
         * membarrier stands for the store-load fence. The signal fence
         * keeps the compiler from moving the caller's following loads
         * above the store. */
        atomic_store_explicit(bottom, v, memory_order_release);
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        /* seq_cst: the store-load point of the symmetric protocol. */
        atomic_store_explicit(bottom, v, memory_order_seq_cst);
    }
}

/* Sleeper side: announce, then (after re-checking for work) wait or cancel. */
uint32_t heist__park_prepare(struct heist__park *p);
/* Between prepare and the re-check after which the caller waits: the
 * asymmetric form's fence (park.c); nothing in the symmetric one. */
void heist__park_fence(void);
/* slot: the caller's worker index (wakers prefer the last to sleep). */
void heist__park_wait(struct heist__park *p, uint32_t key, unsigned slot);
void heist__park_cancel(struct heist__park *p);
/* Publisher side: call after publishing work with a seq_cst operation or
 * heist__park_publish_i64. */
void heist__park_wake_one(struct heist__park *p);
void heist__park_wake_all(struct heist__park *p);

#endif /* HEIST_PARK_H */
