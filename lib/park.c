/*
 * park.c - idle workers sleep without lost wake-ups (an eventcount).
 *
 * A worker that found no work for a while parks:
 *
 *     key = prepare()         sleepers += 1 (seq_cst); key = epoch
 *     if (work is visible)    re-check every deque and the injection queue
 *         cancel()            (seq_cst loads)
 *     else
 *         wait(key)           futex_wait(&epoch, key); sleepers -= 1
 *
 * A publisher makes work visible with a seq_cst write (the deque's ts, the
 * injection counter), then calls wake_one(): if sleepers > 0 (seq_cst
 * load) it bumps epoch and futex-wakes one sleeper.
 *
 * Why no wake-up is lost: all the operations named above are seq_cst, so
 * they have one total order S. If the publisher's load of `sleepers` comes
 * before the sleeper's increment in S, then the publish comes before the
 * sleeper's re-check too, which sees the work and does not sleep. Otherwise
 * the publisher sees sleepers > 0 and bumps epoch: either the sleeper read
 * the new epoch as its key, and then (publish < load of sleepers < bump <
 * key load < re-check in S) its re-check sees the work; or it read the old
 * key, and futex_wait returns at once (the kernel compares *epoch with key
 * under its lock) or is woken by the futex_wake that follows the bump.
 * This is the protocol of Go's runtime (proc.go, "Worker thread parking")
 * and of folly's EventCount, on one futex word.
 *
 * Cost: a publisher that finds nobody asleep pays one load. Publishing is
 * rare on the fork path (the split deque publishes only when asked, deque.c).
 */
#include "park.h"

#include <limits.h>
#include <linux/futex.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

void heist__futex_wait(_Atomic uint32_t *addr, uint32_t expected)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL,
            NULL, 0);
}

void heist__futex_wait_until(_Atomic uint32_t *addr, uint32_t expected,
                             uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX) {
        heist__futex_wait(addr, expected);
        return;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET_PRIVATE, expected,
            &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

void heist__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL,
            0);
}

uint32_t heist__park_prepare(struct heist__park *p)
{
    /* seq_cst RMW then seq_cst load: see the argument above. */
    atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
    return atomic_load_explicit(&p->epoch, memory_order_seq_cst);
}

void heist__park_wait(struct heist__park *p, uint32_t key)
{
    heist__futex_wait(&p->epoch, key);
    /* Relaxed: the count only needs to be exact eventually; a publisher
     * that still sees us costs one spurious wake-up. */
    atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
}

void heist__park_cancel(struct heist__park *p)
{
    atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
}

void heist__park_wake_one(struct heist__park *p)
{
    /* seq_cst: the store-load point after the publisher's seq_cst write of
     * the work (see above). */
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) == 0)
        return;
    /* seq_cst RMW: must follow our load of sleepers in S (argument above). */
    atomic_fetch_add_explicit(&p->epoch, 1, memory_order_seq_cst);
    heist__futex_wake(&p->epoch, 1);
}

void heist__park_wake_all(struct heist__park *p)
{
    atomic_fetch_add_explicit(&p->epoch, 1, memory_order_seq_cst);
    heist__futex_wake(&p->epoch, INT_MAX);
}
