/*
 * worker.c - the worker loop: where a worker finds its next task.
 *
 * Order of the search (each worker, between tasks):
 *   1. steal from the other workers' deques, starting at a random victim
 *      and trying each once (random start spreads thieves; a full round
 *      makes "found nothing" mean something);
 *   2. the injection queue (work from threads that are not workers).
 * The worker's own deque is empty between tasks: fork-join tasks join every
 * fork before they return (checked in task.c).
 *
 * Idle: after SPIN_ROUNDS fruitless rounds (with a pause between them) and a
 * few sched_yield()s (so that on an oversubscribed machine a spinning worker
 * hands its core to one with work), the worker parks (park.c). Before it
 * sleeps it goes offline for QSBR, so grace periods do not wait for it.
 *
 * Who may call: heist__worker_main is the body of each worker thread;
 * heist__steal_and_run is called by a worker on its own thread only.
 */
#include "internal.h"
#include "rcu.h"

#include <sched.h>

__thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec")));

enum { SPIN_ROUNDS = 64, YIELD_ROUNDS = 4 };

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

void heist__wake_one(struct heist_sched *s)
{
    heist__park_wake_one(&s->park);
}

/* Steals one frame from v and runs it. */
static bool steal_from(struct heist__worker *w, struct heist__worker *v)
{
    enum heist__steal_status st;
    struct heist__frame *f = heist__deque_steal(&v->dq, &st);
    if (!f) {
        heist__count(&w->ctr.failed_steals);
        return false;
    }
    heist__count(&w->ctr.steals);
    /* More to take there: get another sleeper going (ramp-up). */
    if (heist__deque_has_public(&v->dq))
        heist__wake_one(w->sched);
    heist__frame_run_stolen(w, f);
    return true;
}

bool heist__steal_and_run(struct heist__worker *w, struct heist__worker *victim)
{
    if (victim)
        return steal_from(w, victim);
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

/* Takes one job from the injection queue and runs it. */
static bool run_injected(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    /* seq_cst: pairs with the increment after the enqueue in heist_run (a
     * positive count means a node is or will soon be dequeuable). */
    if (atomic_load_explicit(&s->inj_pending, memory_order_seq_cst) <= 0)
        return false;
    struct cds_wfcq_node *node =
        cds_wfcq_dequeue_blocking(&s->inj_head, &s->inj_tail);
    if (!node)
        return false; /* counted but not yet linked: try again later */
    atomic_fetch_sub_explicit(&s->inj_pending, 1, memory_order_relaxed);
    struct heist__job *j = caa_container_of(node, struct heist__job, node);
    /* liburcu's enqueue/dequeue order the job's fields, invisibly to TSan:
     * pairs with the release before the enqueue in heist_run. */
    heist__tsan_acquire(j);
    heist__job_run(w, j);
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
    for (unsigned i = 0; i < s->nworkers; i++)
        if (i != w->index && heist__deque_has_public(&s->workers[i]->dq))
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
    heist__rcu_offline();
    heist__park_wait(&s->park, key);
    heist__rcu_online();
}

void *heist__worker_main(void *arg)
{
    struct heist__worker *w = arg;
    struct heist_sched *s = w->sched;
    heist__self = w;
    heist__rcu_register();
    unsigned idle = 0;
    for (;;) {
        if (heist__steal_and_run(w, NULL) || run_injected(w)) {
            heist__count(&w->ctr.tasks);
            /* Between tasks this thread holds no RCU-protected pointer. */
            heist__rcu_quiescent();
            idle = 0;
            continue;
        }
        /* seq_cst: pairs with the store in heist_sched_free, which comes
         * after the last heist_run returned. */
        if (atomic_load_explicit(&s->stopping, memory_order_seq_cst))
            break;
        idle++;
        if (idle < SPIN_ROUNDS) {
            heist__cpu_relax();
        } else if (idle < SPIN_ROUNDS + YIELD_ROUNDS) {
            heist__rcu_quiescent();
            sched_yield();
        } else {
            park(w);
            idle = 0;
        }
    }
    heist__rcu_unregister();
    heist__self = NULL;
    return NULL;
}
