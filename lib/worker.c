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
 * The worker's own fork deque is empty between tasks: a task joins every
 * fork before it returns (heist__check_joined), and a fiber empties it
 * before it suspends (heist__drain).
 *
 * Idle: after SPIN_ROUNDS fruitless rounds (with a pause between them) and a
 * few sched_yield()s (so that on an oversubscribed machine a spinning worker
 * hands its core to one with work), the worker parks (park.c). Before it
 * sleeps it goes offline for QSBR, so grace periods do not wait for it.
 *
 * Fibers: the loop runs on a fiber, and the tasks it starts run on top of it,
 * on the same stack. When a task must wait, heist__suspend switches to a
 * fresh fiber (from the pool), which goes on with the loop; the old one is
 * left suspended with the task's frames on it. When the wait ends, whoever
 * ends it queues the fiber; a loop that takes it switches to it and gives
 * its own (now frameless) fiber back to the pool. Every switch leaves the
 * fiber switched to a "post" action to carry out first (heist__post_switch):
 * a waiter is published only there, after its fiber is off the CPU, so no
 * one can resume a fiber that is still running. A finished task returns
 * into the loop frames below it, which carry on as the loop of whatever
 * worker the fiber runs on now: the loop re-reads its worker after every
 * item.
 */
#include "internal.h"
#include "rcu.h"

#include <sched.h>

__thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) struct heist__worker *heist__self_get(void)
{
    /* An empty asm the compiler must assume reads memory: the TLS load
     * below is not merged with one before a fiber switch. */
    __asm__ __volatile__("" ::: "memory");
    return heist__self;
}

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

static void inject(struct heist_sched *s, struct heist__item *it)
{
    cds_wfcq_node_init(&it->node);
    /* liburcu orders the enqueue before the dequeue, invisibly to TSan:
     * pairs with the acquire in run_injected. */
    heist__tsan_release(it);
    cds_wfcq_enqueue(&s->inj_head, &s->inj_tail, &it->node);
    /* seq_cst: the publish of the wake protocol (park.c). */
    atomic_fetch_add_explicit(&s->inj_pending, 1, memory_order_seq_cst);
    heist__wake_one(s);
}

void heist__make_runnable(struct heist_sched *s, struct heist__item *it)
{
    struct heist__worker *w = heist__self_get();
    if (w && w->sched == s && heist__rq_push(&w->rq, it) == 0) {
        heist__wake_one(s);
        return;
    }
    inject(s, it);
}

/* Runs what a loop took; the worker's `task` is NULL before and after. */
void heist__item_run(struct heist__worker *w, struct heist__item *it)
{
    switch (it->kind) {
    case HEIST__IT_TASK:
        heist__task_run(w, caa_container_of(it, struct heist__tk, it));
        break;
    case HEIST__IT_CALLBACK:
        heist__callback_run(w, caa_container_of(it, struct heist__wnode, it));
        break;
    case HEIST__IT_FIBER: {
        struct heist__fiber *f = (struct heist__fiber *)it;
        heist__count(&w->ctr.resumes);
        /* This fiber has no task frames above the loop: pool it. */
        heist__fiber_switch(w, f, HEIST__POST_POOL, w->cur, NULL);
        /* Taken from the pool again, later, by some worker. */
        heist__post_switch(heist__self_get());
        break;
    }
    default:
        heist__fatal("corrupt run queue item (kind %d)", it->kind);
    }
}

/* Steals one frame or ready item from v and runs it. */
static bool steal_from(struct heist__worker *w, struct heist__worker *v)
{
    struct heist__frame *f = heist__deque_steal(&v->dq, NULL);
    if (f) {
        heist__count(&w->ctr.steals);
        /* The fork's task: v runs it now and cannot finish it before we
         * acknowledge the frame (task.c). Relaxed: v wrote it before the
         * push that our steal's acquire CAS saw. */
        struct heist__tk *t =
            atomic_load_explicit(&v->task, memory_order_relaxed);
        /* More to take there: get another sleeper going (ramp-up). */
        if (heist__deque_has_public(&v->dq))
            heist__wake_one(w->sched);
        heist__frame_run_stolen(w, f, t);
        return true;
    }
    struct heist__item *it = heist__rq_steal(&v->rq);
    if (it) {
        /* Not a fork: counted as a task (and a resume) only. */
        heist__item_run(w, it);
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
    struct heist_sched *s = w->sched;
    /* seq_cst: pairs with the increment after the enqueue in inject (a
     * positive count means a node is or will soon be dequeuable). */
    if (atomic_load_explicit(&s->inj_pending, memory_order_seq_cst) <= 0)
        return false;
    struct cds_wfcq_node *node =
        cds_wfcq_dequeue_blocking(&s->inj_head, &s->inj_tail);
    if (!node)
        return false; /* counted but not yet linked: try again later */
    atomic_fetch_sub_explicit(&s->inj_pending, 1, memory_order_relaxed);
    struct heist__item *it = caa_container_of(node, struct heist__item, node);
    /* liburcu's enqueue/dequeue order the item's fields, invisibly to TSan:
     * pairs with the release before the enqueue in inject. */
    heist__tsan_acquire(it);
    heist__item_run(w, it);
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
    heist__rcu_offline();
    heist__park_wait(&s->park, key);
    heist__rcu_online();
}

/* One thing to do, if there is one. */
static bool find_and_run(struct heist__worker *w)
{
    struct heist__item *it = heist__rq_pop(&w->rq);
    if (it) {
        heist__item_run(w, it);
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
            /* Between tasks this thread holds no RCU-protected pointer. */
            heist__rcu_quiescent();
            idle = 0;
            continue;
        }
        struct heist_sched *s = w->sched;
        /* seq_cst: pairs with the store in heist_sched_free, which comes
         * after every task ended. */
        if (atomic_load_explicit(&s->stopping, memory_order_seq_cst)) {
            /* Back to the thread's own stack; this fiber goes to the pool
             * and is freed with the scheduler. */
            heist__fiber_switch(w, &w->home, HEIST__POST_POOL, w->cur, NULL);
            heist__fatal("a stopped worker's fiber was resumed");
        }
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
}

void heist__post_switch(struct heist__worker *w)
{
    int post = w->post;
    void *a = w->post_a, *b = w->post_b;
    w->post = HEIST__POST_NONE;
    switch (post) {
    case HEIST__POST_NONE:
        break;
    case HEIST__POST_POOL:
        heist__fiber_put(w, a);
        break;
    case HEIST__POST_WAIT:
        heist__wait_publish(b);
        break;
    case HEIST__POST_JOIN: {
        struct heist__frame *f = b;
        void *expected = NULL;
        /* acq_rel: release publishes the fiber's saved state to the thief
         * that will resume it; acquire pairs with the thief's exchange to
         * DONE when we lose (then we resume it ourselves). */
        if (!atomic_compare_exchange_strong_explicit(
                &f->waiter, &expected, a, memory_order_acq_rel,
                memory_order_acquire)) {
            struct heist__fiber *fb = a;
            fb->wake = HEIST__WAKE_OK;
            heist__make_runnable(w->sched, &fb->it);
        }
        break;
    }
    default:
        heist__fatal("corrupt fiber hand-over (%d)", post);
    }
}

int heist__suspend(int post, void *b)
{
    struct heist__worker *w = heist__self_get();
    struct heist__fiber *self = w->cur, *next = heist__fiber_get(w);
    if (!next)
        return 0;
    /* Relaxed: the owner reads its own write. */
    struct heist__tk *task =
        atomic_load_explicit(&w->task, memory_order_relaxed);
    heist__count(&w->ctr.suspends);
    heist__fiber_switch(w, next, post, self, b);
    w = heist__self_get();
    heist__post_switch(w);
    /* Relaxed: owner-only writes; thieves read it (see internal.h). */
    atomic_store_explicit(&w->task, task, memory_order_relaxed);
    return self->wake;
}

void *heist__worker_main(void *arg)
{
    struct heist__worker *w = arg;
    heist__self = w;
    heist__rcu_register();
    heist__fiber_thread_init(w);
    /* The first fiber was made with the scheduler (sched.c). */
    struct heist__fiber *f = heist__fiber_get(w);
    if (!f)
        heist__fatal("no fiber for a new worker");
    heist__fiber_switch(w, f, HEIST__POST_NONE, NULL, NULL);
    /* The scheduler is stopping: the loop switched back here. */
    heist__post_switch(w);
    heist__cache_fini(w);
    heist__fiber_thread_fini(w);
    heist__rcu_unregister();
    heist__self = NULL;
    return NULL;
}
