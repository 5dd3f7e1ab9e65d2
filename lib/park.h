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
};
/* Sleeper side: announce, then (after re-checking for work) wait or cancel. */
uint32_t heist__park_prepare(struct heist__park *p);
void heist__park_wait(struct heist__park *p, uint32_t key);
void heist__park_cancel(struct heist__park *p);
/* Publisher side: call after publishing work with a seq_cst operation. */
void heist__park_wake_one(struct heist__park *p);
void heist__park_wake_all(struct heist__park *p);

#endif /* HEIST_PARK_H */
