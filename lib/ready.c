/*
 * ready.c - making work runnable: the caller's ready queue or the
 * injection queue, and the wake-up that follows.
 *
 * A worker of the item's scheduler pushes on its own ready queue (readyq.c,
 * owner-only push); any other thread, or a worker whose queue cannot grow,
 * enqueues on the scheduler's injection queue (liburcu's wfcqueue: wait-free
 * for any number of producers; the workers dequeue). Either publish (the
 * queue's bottom: heist__park_publish_i64; the injection counter: a
 * seq_cst RMW) is followed by heist__wake_one, the publisher's half of the
 * parking protocol (park.c), so a worker about to sleep either sees the
 * item or is woken.
 *
 * Resuming a suspended fiber is one protocol for every resumer (a
 * completion, the timer, a canceller, a thief that finished a stolen
 * child): write why into the fiber, then queue it. The queue's release and
 * the taker's acquire order the write before the resumed code reads it.
 * On a worker of the fiber's scheduler the fiber goes to the worker's
 * run-next slot instead (Go's runnext, tokio's LIFO slot): it runs as soon
 * as the current item ends, on the core whose cache holds what it awaited.
 * The put still follows the wake rule below (as Go's ready() calls wakep):
 * if this worker's current item runs on for long, a woken searcher takes
 * the slot's fiber (thieves do so only after searching a while, so the
 * owner usually runs it first); without the wake it could wait behind a
 * long item while every other worker sleeps. A fiber it displaces is
 * queued. Bound: after HEIST__RUNNEXT_MAX run-next items in a row
 * (two tasks passing a value back and forth) the worker runs one item of
 * its queue first (worker.c), so queued work is never starved; the slot's
 * fiber keeps its place (a chain of tasks that each wake the next is not
 * sent behind a queue full of tasks that would only suspend).
 *
 * Going back: a fiber that slept on another worker goes to that worker's
 * run-next slot instead, if the slot is empty and that worker is busy
 * (it started a window of HEIST__BUSY_WINDOW items quickly, lately:
 * worker.c, "Busy victims"). That is where its
 * stack, its task's record and the links after it in a chain are; a busy
 * worker reaches the slot within one item. Without it, two workers
 * running one chain settled into one carrying it on the other's data:
 * each link woken by the carrier ran there, and the links the other
 * popped ahead slept, to be woken there too. A fiber whose worker is
 * not busy stays with the completer, which has what it awaited in cache.
 *
 * The wake rule (Go's spinning Ms, tokio's num_searching): a publisher
 * wakes a parked worker only if no worker is searching; a searcher will
 * find the work, and the last searcher to stop re-checks (worker.c).
 */
#include "worker.h"

void heist__wake_one(struct heist_sched *s)
{
    /* seq_cst: after the publisher's write of the work (a seq_cst write,
     * or a release one where the parker's membarrier stands for the fence:
     * park.c), against a searcher's seq_cst decrement then re-check
     * (worker.c). */
    if (atomic_load_explicit(&s->nsearching, memory_order_seq_cst) != 0)
        return;
    heist__park_wake_one(&s->park);
}

/* foreign: the caller is no worker of s (heist_sched_free may free s as
 * soon as the item ran, unless it knows that we are still here). */
static void inject(struct heist_sched *s, struct heist__item *it,
                   bool foreign)
{
    /* Relaxed: the enqueue below publishes it with the item (liburcu's
     * exchange is a full barrier; for TSan, heist__tsan_release): whoever
     * ran the item, and heist_sched_free after the item's task ended,
     * sees the count. */
    if (foreign)
        atomic_fetch_add_explicit(&s->injecting, 1, memory_order_relaxed);
    cds_wfcq_node_init(&it->node);
    /* liburcu orders the enqueue before the dequeue, invisibly to TSan:
     * pairs with the acquire in heist__inject_take. */
    heist__tsan_release(it);
    cds_wfcq_enqueue(&s->inj_head, &s->inj_tail, &it->node);
    /* seq_cst: the publish of the wake protocol (park.c). */
    atomic_fetch_add_explicit(&s->inj_pending, 1, memory_order_seq_cst);
    heist__wake_one(s);
    /* Release: our last access to s; pairs with heist_sched_free's
     * acquire load (sched.c), which then may free it. */
    if (foreign)
        atomic_fetch_sub_explicit(&s->injecting, 1, memory_order_release);
}

void heist__make_runnable(struct heist_sched *s, struct heist__item *it)
{
    struct heist__worker *w = heist__self_get();
    bool mine = w && w->sched == s;
    if (mine && heist__rq_push(&w->rq, it) == 0) {
        heist__wake_one(s);
        return;
    }
    inject(s, it, !mine);
}

/* Records the wake of f (a flow starts here and ends where f resumes). */
static __attribute__((noinline)) void trace_wake(struct heist_sched *s,
                                                 struct heist__fiber *f,
                                                 int reason)
{
    struct heist__worker *w = heist__self_get();
    uint64_t id;
    if (w && w->sched == s) {
        id = heist__trace_flow(w->tb);
        heist__trace_rec(w->tb, HEIST__TEV_WAKE, NULL, (uint32_t)reason, id);
    } else {
        id = heist__trace_rec_shared(s->trace, heist__on_timer_thread,
                                     HEIST__TEV_WAKE, (uint32_t)reason, true);
    }
    /* Ordered before the resumed fiber reads it as `wake` is. */
    f->trace_flow = id;
}

void heist__fiber_ready(struct heist_sched *s, struct heist__fiber *f,
                        int reason)
{
    if (heist__unlikely(s->trace != NULL))
        trace_wake(s, f, reason);
    f->wake = reason;
    struct heist__worker *w = heist__self_get();
    /* Slept on another worker that is busy starting items ("Going back"
     * above): into its run-next slot if that is empty. f->slept_on was
     * written before f was published as waiting, which our completion
     * read. seq_cst CAS: the publish of the wake rule (the owner's re-check
     * before it parks loads its slot seq_cst, worker.c); it pairs with the
     * owner's acq_rel exchange and thieves' CAS like the owner's put. */
    struct heist__worker *h = f->slept_on;
    if (w && w->sched == s && h && h != w && heist__worker_busy(h)) {
        struct heist__item *none = NULL;
        if (atomic_compare_exchange_strong_explicit(
                &h->runnext, &none, &f->it, memory_order_seq_cst,
                memory_order_relaxed)) {
            heist__wake_one(s);
            return;
        }
    }
    if (w && w->sched == s) {
        /* The woken task runs next here, where what it awaited was just
         * written (Go's runnext): no queue. seq_cst: the publish of the
         * wake rule (worker.c's argument needs it in the total order with
         * the wake's load of nsearching and a searcher's re-check, which
         * loads this slot seq_cst; acq_rel is not in that order); its
         * release half publishes f->wake with the pointer to a thief's
         * CAS (worker.c). */
        struct heist__item *old = atomic_exchange_explicit(
            &w->runnext, &f->it, memory_order_seq_cst);
        if (old)
            heist__make_runnable(s, old); /* displaced: surplus, queued */
        else
            heist__wake_one(s); /* see "the wake rule" above */
        return;
    }
    heist__make_runnable(s, &f->it);
}

struct heist__item *heist__inject_take(struct heist_sched *s)
{
    /* seq_cst: pairs with the increment after the enqueue in inject (a
     * positive count means a node is or will soon be dequeuable). */
    if (atomic_load_explicit(&s->inj_pending, memory_order_seq_cst) <= 0)
        return NULL;
    struct cds_wfcq_node *node =
        cds_wfcq_dequeue_blocking(&s->inj_head, &s->inj_tail);
    if (!node)
        return NULL; /* counted but not yet linked: try again later */
    atomic_fetch_sub_explicit(&s->inj_pending, 1, memory_order_relaxed);
    struct heist__item *it = caa_container_of(node, struct heist__item, node);
    /* liburcu's enqueue/dequeue order the item's fields, invisibly to TSan:
     * pairs with the release before the enqueue in inject. */
    heist__tsan_acquire(it);
    return it;
}
