/*
 * worker.c - the worker loop: where a worker finds its next task, and how
 * fibers hand the worker over to each other.
 *
 * Order of the search (each worker, between tasks):
 *   1. its own ready queue (spawned tasks, resumed fibers, callbacks), oldest
 *      first;
 *   2. the other workers, starting at a random victim and trying each once:
 *      its fork deque, then its ready queue (random start spreads thieves;
 *      a full round makes "found nothing" mean something);
 *   3. the injection queue (work from threads that are not workers).
 * Fairness: every INJECT_TICK-th search looks at the injection queue first
 * (Go's scheduler does the same with its global queue every 61 ticks), so
 * work from other threads, timer expiries (the timer thread injects) and
 * tasks that a plain thread's completion woke are not starved by workers
 * that always have local work.
 * The worker's own fork deque is empty between tasks: a task joins every
 * fork before it returns (checked by heist__run_user), and a fiber empties
 * it before it suspends (heist__drain).
 *
 * Idle: after SPIN_ROUNDS fruitless rounds (with a pause between them) and a
 * few sched_yield()s (so that on an oversubscribed machine a spinning worker
 * hands its core to one with work), the worker parks (park.c).
 *
 * Items: the loop knows no kind of item; it calls the item's own run
 * function (a spawned task: spawn.c; a callback: future.c; a ready fiber:
 * fiber.c) and, for a stolen fork, fork.c's frame runner. A run function
 * may switch fibers, so the loop re-reads its worker after every item.
 */
#include "cache.h"
#include "fork.h"

#include <sched.h>

enum { SPIN_ROUNDS = 64, YIELD_ROUNDS = 4, INJECT_TICK = 61 };

/* xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
 * generators, scrambled", 2016). Owner-only state. */
static uint64_t next_random(struct heist__worker *w)
{
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Steals one frame or ready item from v and runs it. */
static bool steal_from(struct heist__worker *w, struct heist__worker *v)
{
    struct heist__frame *f = heist__deque_steal(&v->dq, NULL);
    if (f) {
        heist__count(&w->ctr.steals);
        if (heist__unlikely(w->tb != NULL))
            heist__trace_rec(w->tb, HEIST__TEV_STEAL, NULL, v->index,
                             heist__trace_flow(w->tb));
        /* The fork's task: v runs it now and cannot finish it before we
         * acknowledge the frame (fork.c). Relaxed: v wrote it before the
         * push that our steal's acquire CAS saw. */
        struct heist__tk *t =
            atomic_load_explicit(&v->task, memory_order_relaxed);
        /* More to take there: get another sleeper going (ramp-up). */
        if (heist__deque_has_public(&v->dq))
            heist__wake_one(w->sched);
        heist__frame_run_stolen(f, t);
        return true;
    }
    struct heist__item *it = heist__rq_steal(&v->rq);
    if (it) {
        if (heist__unlikely(w->tb != NULL))
            heist__trace_rec(w->tb, HEIST__TEV_STEAL_ITEM, NULL, v->index, 0);
        /* Not a fork: counted as a task (and a resume) only. */
        it->run(it);
        return true;
    }
    heist__count(&w->ctr.failed_steals);
    return false;
}

static bool steal_and_run(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    unsigned n = s->nworkers;
    if (n < 2)
        return false;
    unsigned start = (unsigned)(next_random(w) % n);
    for (unsigned k = 0; k < n; k++) {
        unsigned i = start + k;
        if (i >= n)
            i -= n;
        if (i == w->index)
            continue;
        if (steal_from(w, s->workers[i]))
            return true;
    }
    return false;
}

/* Takes one item from the injection queue and runs it. */
static bool run_injected(struct heist__worker *w)
{
    struct heist__item *it = heist__inject_take(w->sched);
    if (!it)
        return false;
    it->run(it);
    return true;
}

/* Re-check before sleeping: seq_cst loads of everything a publisher writes
 * before waking (park.c). */
static bool work_visible(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    if (atomic_load_explicit(&s->stopping, memory_order_seq_cst))
        return true;
    if (atomic_load_explicit(&s->inj_pending, memory_order_seq_cst) > 0)
        return true;
    if (heist__rq_has_work(&w->rq))
        return true;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (i != w->index && (heist__deque_has_public(&s->workers[i]->dq) ||
                              heist__rq_has_work(&s->workers[i]->rq)))
            return true;
    return false;
}

static void park(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    uint32_t key = heist__park_prepare(&s->park);
    if (work_visible(w)) {
        heist__park_cancel(&s->park);
        return;
    }
    heist__count(&w->ctr.parks);
    if (heist__unlikely(w->tb != NULL))
        heist__trace_rec(w->tb, HEIST__TEV_PARK, NULL, 0, 0);
    heist__park_wait(&s->park, key);
    if (heist__unlikely(w->tb != NULL))
        heist__trace_rec(w->tb, HEIST__TEV_UNPARK, NULL, 0, 0);
}

/* One thing to do, if there is one. */
static bool find_and_run(struct heist__worker *w)
{
    if (heist__unlikely(++w->tick == INJECT_TICK)) {
        w->tick = 0;
        if (run_injected(w))
            return true;
    }
    struct heist__item *it = heist__rq_pop(&w->rq);
    if (it) {
        it->run(it);
        return true;
    }
    return steal_and_run(w) || run_injected(w);
}

_Noreturn void heist__worker_loop(void)
{
    unsigned idle = 0;
    for (;;) {
        struct heist__worker *w = heist__self_get();
        if (find_and_run(w)) {
            /* A fiber switch may have moved this loop to another worker. */
            w = heist__self_get();
            heist__count(&w->ctr.tasks);
            idle = 0;
            continue;
        }
        struct heist_sched *s = w->sched;
        /* seq_cst: pairs with the store in heist_sched_free, which comes
         * after every task ended. */
        if (atomic_load_explicit(&s->stopping, memory_order_seq_cst)) {
            /* Back to the thread's own stack; this fiber goes to the pool
             * and is freed with the scheduler. */
            heist__fiber_switch(w, &w->home, heist__fiber_pool_then, NULL);
            heist__fatal("a stopped worker's fiber was resumed");
        }
        idle++;
        if (idle < SPIN_ROUNDS) {
            heist__cpu_relax();
        } else if (idle < SPIN_ROUNDS + YIELD_ROUNDS) {
            sched_yield();
        } else {
            park(w);
            idle = 0;
        }
    }
}

void *heist__worker_main(void *arg)
{
    struct heist__worker *w = arg;
    heist__self = w;
    heist__fiber_thread_init(w);
    /* The first fiber was made with the scheduler (sched.c). */
    struct heist__fiber *f = heist__fiber_get(w);
    if (!f)
        heist__fatal("no fiber for a new worker");
    heist__fiber_switch(w, f, NULL, NULL);
    /* The scheduler is stopping: the loop switched back here. */
    heist__cache_fini(w);
    heist__fiber_thread_fini(w);
    heist__self = NULL;
    return NULL;
}
