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
 * Which sleeper: the futex wakes its waiters oldest first, and the oldest
 * sleeper is the worker that has been idle longest, whose caches hold
 * least of the program's data. Each sleeper waits with a bit of its own
 * (FUTEX_WAIT_BITSET) and records itself in `last`; a waker wakes the
 * last to sleep if it still sleeps, else any (Go keeps its idle Ps on a
 * stack for the same reason). After a heist_run, the worker that ran main
 * parks last, so the next heist_run's main runs there again, on the
 * records and stacks it left warm: with oldest-first, main went back and
 * forth between the workers of a 2-worker scheduler, and each run on the
 * other one took 1-3 ms longer (bench/hops: 12.3-15 ms a run against
 * 11.5-12.1 with the last-first wake; 1 worker: 12.1). The choice does
 * not touch the argument: one sleeper is woken either way.
 *
 * The asymmetric form (heist__park_asym, park.h): a ready queue's publish
 * is a release store, and the publisher's loads (worker.c's nsearching,
 * then sleepers) follow it without a fence, so the store may still sit in
 * the publisher's store buffer when they execute. The sleeper makes up for
 * it: between its announcement (the seq_cst RMWs of nsearching and
 * sleepers) and the re-check after which it sleeps, it calls
 * membarrier(PRIVATE_EXPEDITED) (heist__park_fence; a first re-check
 * before it that finds work saves the call, as the worker does not sleep
 * then), which returns only after every other running thread of the
 * process executed a full barrier (a thread not running went through one
 * when it was switched out). Take the publisher's barrier B from that
 * call. If B comes after the publish in the publisher's program order, the
 * publish is visible when membarrier returns, and the re-check sees it. If
 * B comes before the publish, it comes before the publisher's loads too,
 * and B happened after
 * the sleeper's RMWs were visible (they completed before the call): the
 * loads see the sleeper counted and no longer searching, and the
 * publisher wakes it as above. The same argument as liburcu's membarrier
 * flavour and folly's asymmetric fences; every other publish (the
 * injection counter, the run-next exchange, a deque's ts) is a seq_cst
 * RMW or store and needs none of it.
 *
 * Cost: a publisher that finds nobody asleep pays one load. Publishing is
 * rare on the fork path (the split deque publishes only when asked, deque.c).
 */
#include "park.h"

#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
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

#ifndef MEMBARRIER_CMD_PRIVATE_EXPEDITED
#define MEMBARRIER_CMD_QUERY 0
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#endif

bool heist__park_asym;

static void park_asym_setup(void)
{
#if !defined(HEIST_TSAN) && defined(SYS_membarrier)
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
                0) == 0)
        heist__park_asym = true;
#endif
}

void heist__park_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, park_asym_setup);
}

uint32_t heist__park_prepare(struct heist__park *p)
{
    /* seq_cst RMW then seq_cst load: see the argument above. */
    atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
    return atomic_load_explicit(&p->epoch, memory_order_seq_cst);
}

void heist__park_fence(void)
{
#ifdef SYS_membarrier
    /* The process registered, so this cannot fail but for a kernel bug; a
     * re-check after it would then miss a publish, so that is fatal. */
    if (heist__park_asym &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        heist__fatal("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed "
                     "after registration");
#endif
}

/* A sleeper's bit in the futex's bitset (workers 32 apart share one). */
static uint32_t slot_bit(unsigned slot)
{
    return 1u << (slot % 32u);
}

void heist__park_wait(struct heist__park *p, uint32_t key, unsigned slot)
{
    /* Relaxed: a hint for wakers ("Which sleeper"). */
    atomic_store_explicit(&p->last, slot, memory_order_relaxed);
    syscall(SYS_futex, (uint32_t *)&p->epoch, FUTEX_WAIT_BITSET_PRIVATE, key,
            NULL, NULL, slot_bit(slot));
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
    /* The last to sleep first ("Which sleeper"; relaxed: a hint). A
     * bitset wake that finds it awake (or on its way out) wakes nobody,
     * and then anyone is woken: one sleeper is, as the argument asks. */
    uint32_t last = atomic_load_explicit(&p->last, memory_order_relaxed);
    if (syscall(SYS_futex, (uint32_t *)&p->epoch, FUTEX_WAKE_BITSET_PRIVATE,
                1, NULL, NULL, slot_bit(last)) <= 0)
        heist__futex_wake(&p->epoch, 1);
}

void heist__park_wake_all(struct heist__park *p)
{
    atomic_fetch_add_explicit(&p->epoch, 1, memory_order_seq_cst);
    heist__futex_wake(&p->epoch, INT_MAX);
}
