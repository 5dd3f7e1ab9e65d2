/*
 * live.c - live counts (live.h): a per-worker start and end count, summed
 * by the thread that waits for zero.
 *
 * Exact zero. The count reads every slot's `down` first, then every `up`.
 * Every end it reads (acquire) happened after its own start, and after
 * every start the finished thing made (a task spawns before it ends; a
 * spawn hands the task over through a queue with release/acquire), so the
 * `up` loads, which come later, see those starts (coherence). Hence the
 * sum is never below the number of started-and-unfinished things it saw,
 * and if it reads zero, every start it read has its end read too. A thing
 * whose start it did not read was started by one that was still running
 * then, or by a thread outside the scheduler; by induction from the roots
 * (for a group's count, heist_run's main task; for the scheduler's, tasks
 * spawned outside any group and callbacks scheduled by completions, since
 * heist_sched_free first waits for every heist_run, and so for every
 * group's count to reach zero), a zero means nothing is live, as long as
 * no outside thread starts one during the wait (the contract:
 * nothing may be spawned on a scheduler being freed, nor in a heist_run
 * that has returned).
 *
 * No lost wake-up. The waiter, each round: q = seq; armed = 1; count; if
 * not zero, futex_wait(seq, q). An end: its down (seq_cst), then a load of
 * armed (seq_cst); if set, exchange armed to 0 and, if it won, bump seq
 * and wake. All seq_cst, so in one order S. Take the end E after which the
 * count is zero. If the waiter's loads of the downs come after E's down in
 * S, it counts E and sees zero. Otherwise its store of armed comes before
 * E's load of armed: E reads 1 and bumps seq, or reads 0 because another
 * end exchanged it after that store, and that end bumps seq. Either bump
 * follows the store of armed, which follows the waiter's read of q: the
 * futex wait returns at once or is woken.
 *
 * Deferred ends. A task's end on a worker is not counted at once: the
 * worker keeps how many ends it owes to one count (ends_live, ends_n:
 * worker.h) and adds them with one store later, which saves a seq_cst
 * store (a locked instruction on x86) per task. The count then reads
 * high for a while, never low, so it never reads zero too early; the
 * argument above holds with each end's `down` at the flush, which comes
 * after the end. It must also not read nonzero for long once the last
 * thing of the count ended, so the worker counts what it owes before
 * anything that may take long and is not counted in the same count: at
 * the start of user code (heist__run_user: a task, a fork a thief stole,
 * a callback) and at a fiber's resumption (stack.c) unless the code is a
 * task's of the same count, before it settles a task of another count
 * that its run's cancelling keeps from starting (its list may be long:
 * spawn.c), and when it finds nothing to run, before it spins, naps or
 * parks (worker.c). So the ends stay owed only while the worker runs the
 * code of a task of the same count, which cannot reach zero before that
 * task ends anyway. Only workers defer: a task ends in task_run, which
 * only a worker's loop runs (spawn.c). The memory stays valid: the count
 * cannot reach zero, and so be given back to the pool or freed, while
 * ends are owed to it.
 *
 * The counter's memory must outlive every end that may still load armed:
 * the scheduler's own is freed after its workers are joined, and heist_run's
 * come from a pool the scheduler keeps until then (spawn.c).
 */
#include "live.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int heist__live_init(struct heist__live *l, unsigned nworkers)
{
    memset(l, 0, sizeof(*l));
    size_t n = (size_t)nworkers + 1;
    l->slot = aligned_alloc(HEIST_CACHELINE, n * sizeof(*l->slot));
    if (!l->slot)
        return ENOMEM;
    for (size_t i = 0; i < n; i++) {
        atomic_init(&l->slot[i].up, 0);
        atomic_init(&l->slot[i].down, 0);
    }
    l->nslots = (unsigned)n;
    atomic_init(&l->armed, 0);
    atomic_init(&l->seq, 0);
    return 0;
}

void heist__live_fini(struct heist__live *l)
{
    free(l->slot);
    l->slot = NULL;
}

uint64_t heist__live_count(struct heist__live *l)
{
    uint64_t down = 0, up = 0;
    /* seq_cst (acquire at least): pairs with the ends' stores (live.h);
     * the downs first, then the ups (the argument above). */
    for (unsigned i = 0; i < l->nslots; i++)
        down += atomic_load_explicit(&l->slot[i].down, memory_order_seq_cst);
    /* Acquire: pairs with nothing stronger than the starts' relaxed adds;
     * what matters is that these loads come after the ones above. */
    for (unsigned i = 0; i < l->nslots; i++)
        up += atomic_load_explicit(&l->slot[i].up, memory_order_acquire);
    return up - down;
}

void heist__live_wake(struct heist__live *l)
{
    /* seq_cst: one of the ends that saw the waiter's store wins it. */
    if (atomic_exchange_explicit(&l->armed, 0, memory_order_seq_cst)) {
        /* seq_cst: after the exchange in S (argument above). */
        atomic_fetch_add_explicit(&l->seq, 1, memory_order_seq_cst);
        heist__futex_wake(&l->seq, INT_MAX);
    }
}

void heist__live_wait(struct heist__live *l)
{
    for (;;) {
        /* seq_cst, in this order: q, then armed, then the count. */
        uint32_t q = atomic_load_explicit(&l->seq, memory_order_seq_cst);
        atomic_store_explicit(&l->armed, 1, memory_order_seq_cst);
        if (heist__live_count(l) == 0)
            break;
        heist__futex_wait(&l->seq, q);
    }
    /* Relaxed: a leftover 1 costs a later end one exchange, no more. */
    atomic_store_explicit(&l->armed, 0, memory_order_relaxed);
}
