/*
 * worker.c - the worker loop: where a worker finds its next task, and how
 * fibers hand the worker over to each other.
 *
 * Order of the search (each worker, between tasks):
 *   1. its run-next slot (the fiber a completion here just woke, or one
 *      that slept here and was woken elsewhere while this worker was busy:
 *      ready.c),
 *      at most HEIST__RUNNEXT_MAX times in a row before one queued item;
 *   2. its own ready queue (spawned tasks, resumed fibers, callbacks), oldest
 *      first (not while it pauses, "Running ahead" below);
 *   3. the other workers, starting at a random victim and trying each once:
 *      its fork deque (one fork), then its ready queue (the older half, up
 *      to STEAL_BATCH items, in one CAS, as Go's runqsteal: the first runs,
 *      the rest go to the thief's own queue), then, once the thief has
 *      searched for RUNNEXT_STEAL_AFTER rounds, its run-next slot (the
 *      owner had time to take it; Go waits too before it steals runnext);
 *      random start spreads thieves; a full round makes "found nothing"
 *      mean something; ready items and run-next slots not while the thief
 *      pauses, nor from a victim that is busy ("Busy victims" below);
 *   4. the injection queue (work from threads that are not workers).
 * Fairness: every INJECT_TICK-th search looks at the injection queue first
 * (Go's scheduler does the same with its global queue every 61 ticks), so
 * work from other threads, timer expiries (the timer thread injects) and
 * tasks that a plain thread's completion woke are not starved by workers
 * that always have local work.
 * The worker's own fork deque is empty between tasks: a task joins every
 * fork before it returns (checked by heist__run_user), and a fiber empties
 * it before it suspends (heist__drain).
 *
 * Idle: a worker that found nothing is *searching* (counted in the
 * scheduler's nsearching) while it spins SPIN_ROUNDS rounds (with a pause
 * between them) and a few sched_yield()s (so that on an oversubscribed
 * machine a spinning worker hands its core to one with work); then it
 * stops searching and parks (park.c). A searcher whose only work in sight
 * is what it may not take (a busy worker's ready items, "Busy victims";
 * anyone's while its own steals pause, "Running ahead"), or that sees
 * none while some worker is busy (only_blocked_work says why), naps instead
 * (NAP_NS, plus the kernel's timer slack: about 70 us), still searching,
 * and searches again: polling a busy worker's queue and run-next slot
 * took their cache lines from it at every item it started (bench/pingpong
 * on 2 workers: 51 -> 28 ms, as fast as on 1).
 *
 * Waking (Go's spinning Ms, tokio's num_searching): a publisher of work
 * wakes a parked worker only if nobody searches (heist__wake_one), so a
 * burst of pushes wakes one worker, not one per push; a searcher that finds
 * work stops searching, and if it was the last one and it sees surplus
 * (items left in its own queue after a batch steal, or in the injection
 * queue) it wakes a parked worker to take over the search (ramp-up). A
 * worker back from its park counts as searching at once (as Go's woken M
 * spins), so the one woken for surplus passes the wake on when it finds
 * work and sees more. It did not: its first look found work, and it was
 * no searcher, so it woke nobody. Eight tasks injected at once on 8
 * workers, each spinning until all 8 ran, started on 6 workers; the other
 * 2 slept and the last 2 tasks waited in the injection queue until a
 * running task ended, on a loaded machine (test_submit,
 * burst_needs_every_worker_4_8_workers).
 * No lost wake-up: every publish is a seq_cst write followed by a seq_cst
 * load of nsearching (or a ready queue's release write and a load, with
 * the parker's membarrier for the fence: park.c's asymmetric form, whose
 * argument carries over); every searcher decrements nsearching (seq_cst)
 * before it parks, then re-checks every queue and run-next slot (seq_cst
 * loads, park.c) after announcing itself. All these are in one total order
 * S. If the publisher's load saw nsearching == 0, it runs park.c's
 * protocol, which wakes a sleeper or makes its re-check see the work. If
 * it saw a searcher X, X's decrement comes after that load in S, so if X
 * parks, its re-check comes after the publish and sees it; if X instead
 * found other work, the item is in a queue or run-next slot whose owner
 * is running (it will run it) or in the injection queue, which every
 * worker reads before it parks: some worker runs it. A fiber put into
 * another worker's run-next slot (ready.c, "Going back") is published by
 * a seq_cst CAS, and that owner's re-check loads its own slot seq_cst:
 * the same argument. An item a thief sees but may not take (its owner is
 * busy, "Busy victims") keeps the thief from parking until it may, or the
 * owner ran it: it naps, counted in nsearching all the while, so a nap is
 * a slow round of the search, not a park, and the argument above holds
 * with it (work published meanwhile is found within a nap).
 *
 * Items: the loop knows no kind of item; it calls the item's own run
 * function (a spawned task: spawn.c; a callback: future.c; a ready fiber:
 * fiber.c) and, for a stolen fork, fork.c's entry runner. A run function
 * may switch fibers, so the loop re-reads its worker after every item.
 */
#include "fork.h"

#include <sched.h>
#include <time.h>

enum {
    SPIN_ROUNDS = 64,
    YIELD_ROUNDS = 4,
    NAP_NS = 20 * 1000, /* a searcher's nap ("Idle" above) */
    INJECT_TICK = 61,
    STEAL_BATCH = 64,
    RUNNEXT_STEAL_AFTER = 60, /* of SPIN_ROUNDS: the owner had time */
    /* Queued items started per window, and the pause after a window that
     * did not pay, doubled for each such window in a row ("Running
     * ahead"). */
    READY_WINDOW = 64,
    /* After a window that did not pay: windows, and steal batches, this
     * short, until one pays ("Running ahead"). */
    PROBATION_WINDOW = 4,
    READY_PAUSE_MIN_NS = 100 * 1000,
    READY_PAUSE_MAX_NS = 2 * 1000 * 1000,
};

static void start_searching(struct heist__worker *w)
{
    if (!w->searching) {
        w->searching = true;
        /* seq_cst: publishers' loads in heist__wake_one (see above). */
        atomic_fetch_add_explicit(&w->sched->nsearching, 1,
                                  memory_order_seq_cst);
    }
}

/* w found work (and will run it); surplus: it sees more than that. */
static void found_work(struct heist__worker *w, bool surplus)
{
    if (!w->searching)
        return;
    w->searching = false;
    struct heist_sched *s = w->sched;
    /* seq_cst: after this, publishers wake sleepers themselves. The
     * injection count is read relaxed: a ramp-up hint that no wake-up
     * depends on (the argument above). */
    if (atomic_fetch_sub_explicit(&s->nsearching, 1, memory_order_seq_cst) ==
            1 &&
        (surplus ||
         atomic_load_explicit(&s->inj_pending, memory_order_relaxed) > 0))
        heist__park_wake_one(&s->park); /* the search goes on elsewhere */
}

/* Before parking: the re-check that follows (park) is the searcher's half
 * of the argument above. */
static void stop_searching(struct heist__worker *w)
{
    if (w->searching) {
        w->searching = false;
        /* seq_cst: before the re-check's loads in S. */
        atomic_fetch_sub_explicit(&w->sched->nsearching, 1,
                                  memory_order_seq_cst);
    }
}

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

/* Running ahead. A worker that starts queued tasks which at once await
 * what another worker is about to complete (a chain spawned ahead of its
 * first link: hop i awaits future i, which hop i-1 resolves) puts each on
 * a fresh stack to sleep there, and the other worker then resumes fibers
 * instead of running tasks that would have found their future done. On
 * 2 workers hops settled into that: one worker popped each hop from its
 * queue just before the other, which resumed it, got there (a suspension
 * and a cross-core resumption per hop: 10x the 1-worker time); and a
 * thief took hops while main was still spawning them, each to sleep.
 *
 * So each worker counts, per window of READY_WINDOW queued items it
 * started (its own queue's or stolen), what became of the fibers that went
 * to sleep on it meanwhile: resumed here (foo awaits bar, queued together:
 * that pays), resumed on another worker (`away`: the chain runs there), or
 * still asleep. Then:
 *   - if away + asleep >= half the window, it stops stealing ready items
 *     for a while: 100 us, doubled for each such window in a row, up to
 *     2 ms (it still steals forks and serves the injection queue). A
 *     longer cap would steal less often behind a chain's head, but 10 ms
 *     made bench/sleeps 1.5-2x slower: the sleepers it stops taking are
 *     started late;
 *   - if away alone >= half the window and no other worker has a queue of
 *     its own (the one resuming our sleepers will come for ours), it stops
 *     starting items from its own queue as well, so the others take them
 *     from its head, in order, behind the task about to complete.
 * After a window that did not pay, the worker is on probation: its windows
 * and its steal batches are PROBATION_WINDOW items, so a thief behind a
 * chain's head puts 4 hops to sleep per pause rather than 64 (cold hops on
 * 2 workers: 62 -> 48 ms, warm 15.5 -> 13.9 ms). Sleeps (heist_sleep) are
 * left out of the count: a timer ends them wherever they began, so a
 * stolen sleeper is work started early, not a sleeper taken from its
 * waker (counting them made bench/sleeps on 2 workers 25% slower with
 * probation). A window that pays ends the doubling and the probation.
 * Run-next items (resumptions the worker's own completions made) always
 * run. At most nworkers - 1 workers pause their own queue at once
 * (npaused), and one that does wakes a sleeper. Owner-only state, but for
 * npaused and resumed_away. */
static bool ahead_steal_paused(const struct heist__worker *w)
{
    return w->ah_pause_until != 0;
}

static bool ahead_pop_paused(const struct heist__worker *w)
{
    return w->ah_pause_pops;
}

/* Ends w's pause once its time is up (every search calls it). */
static void ahead_expire(struct heist__worker *w)
{
    if (heist__likely(w->ah_pause_until == 0) ||
        heist__now_ns() < w->ah_pause_until)
        return;
    w->ah_pause_until = 0;
    if (w->ah_pause_pops) {
        w->ah_pause_pops = false;
        /* Relaxed: a count that only bounds how many pause (above). */
        atomic_fetch_sub_explicit(&w->sched->npaused, 1,
                                  memory_order_relaxed);
    }
}

/* Whether w may pause its own queue: no other worker has one (so those
 * resuming w's sleepers will take it) and a pause place is free. */
static bool ahead_may_pause_pops(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (i != w->index && heist__rq_has_work(&s->workers[i]->rq))
            return false;
    /* Relaxed: the count is its own only datum; no other memory is
     * published through it. */
    unsigned n = atomic_load_explicit(&s->npaused, memory_order_relaxed);
    while (n + 1 < s->nworkers)
        if (atomic_compare_exchange_weak_explicit(&s->npaused, &n, n + 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static uint32_t ahead_window(const struct heist__worker *w)
{
    return w->ah_probation ? PROBATION_WINDOW : READY_WINDOW;
}

/* w starts k queued items. The counters are read only when a window
 * ends: resumed_away is written by other workers. */
static void ahead_started(struct heist__worker *w, size_t k)
{
    uint32_t window = ahead_window(w);
    if (heist__likely(w->ah_started != 0 && w->ah_started < window)) {
        w->ah_started += (uint32_t)k;
        return;
    }
    if (w->sched->nworkers < 2)
        return; /* one worker never pauses */
    /* Relaxed: our own counter, and a statistic that stack.c adds to. */
    uint64_t susp = atomic_load_explicit(&w->ctr.suspends,
                                         memory_order_relaxed);
    uint64_t away_now = atomic_load_explicit(&w->resumed_away,
                                             memory_order_relaxed);
    if (w->ah_started >= window && w->ah_pause_until == 0) {
        /* Sleeps left out: a timer ends them, wherever they started. */
        uint64_t slept = (susp - w->ah_susp0) - (w->ah_sleeps - w->ah_sleeps0);
        uint64_t here = w->resumed_here - w->ah_here0;
        uint64_t away = away_now - w->ah_away0;
        uint64_t gone = slept > here ? slept - here : 0; /* away + asleep */
        if (2 * gone >= w->ah_started) {
            w->ah_probation = true;
            w->ah_pause_ns = w->ah_pause_ns == 0 ? READY_PAUSE_MIN_NS
                             : w->ah_pause_ns >= READY_PAUSE_MAX_NS / 2
                                 ? READY_PAUSE_MAX_NS
                                 : 2 * w->ah_pause_ns;
            w->ah_pause_until = heist__now_ns() + w->ah_pause_ns;
            if (2 * away >= w->ah_started && ahead_may_pause_pops(w)) {
                w->ah_pause_pops = true;
                /* Our queue waits for the others: wake a sleeper. */
                if (heist__rq_has_work(&w->rq))
                    heist__park_wake_one(&w->sched->park);
            }
        } else {
            w->ah_pause_ns = 0;
            w->ah_probation = false;
        }
    }
    /* A new window. */
    w->ah_susp0 = susp;
    w->ah_sleeps0 = w->ah_sleeps;
    w->ah_here0 = w->resumed_here;
    w->ah_away0 = away_now;
    w->ah_started = (uint32_t)k;
}

/* Busy victims. Ready items that a worker starts at under 250 ns each (a
 * window of HEIST__BUSY_WINDOW items in HEIST__BUSY_FAST_NS) cost a
 * thief more than they give: a stolen item's record, its future and what
 * it awaits were written on the victim's core, a cache miss each, and its
 * completion wakes waiters whose stacks are there. On 2 workers a chain
 * whose links were spawned on one worker ran twice as slow as on 1 once
 * the other stole its head and carried it (every link a miss or three),
 * and a fan-in of trivial tasks gained nothing from a thief. So a thief
 * takes no ready items and no run-next item from a worker whose last
 * fast window ended less than HEIST__BUSY_RECENT_NS ago: that worker
 * starts them quickly and will reach them. A victim that runs a long item
 * (a spawning loop, a task that computes) stops renewing its window, and
 * HEIST__BUSY_RECENT_NS later its queue is fair game again; its forks
 * always are. The window's speed and the thieves' patience are apart so
 * that a hiccup (a page fault, an interrupt: 10-30 us on a virtual
 * machine) in a stream of short items does not open the queue: with one
 * 16 us limit for both, a spinning thief took a batch at each hiccup,
 * mid-chain, and a 2-worker chain of 100,000 hops suspended about 1,000
 * tasks a run (bench/hops, warm); with 100 us patience, 15-20. A
 * searcher that sees such a queue does not park (work_visible), so no
 * item waits on a wake-up that no one sends. The other half is ready.c's:
 * a fiber woken by another worker goes back to the run-next slot of a
 * busy worker it slept on. */

/* Steals from v (a fork, a batch of ready items, or, when late is set,
 * its run-next item) and runs the first thing stolen. */
static bool steal_from(struct heist__worker *w, struct heist__worker *v,
                       bool late)
{
    heist_fn fn;
    void *arg;
    /* The record a stolen fork's result goes to, taken first: a fork once
     * claimed must be run, and its owner waits for our acknowledgement,
     * which names the record (fork.c). Only where a fork is in sight (a
     * worker that never steals one makes no record); out of memory, none,
     * and no fork is claimed. The steal still asks v to share. */
    struct heist__stolen *r =
        heist__deque_has_public(&v->dq) ? heist__stolen_new() : NULL;
    struct heist__fjent *e =
        heist__deque_steal(&v->dq, r != NULL, &fn, &arg, NULL);
    if (e) {
        /* The fork's task: v runs it now and cannot finish it before we
         * acknowledge the entry (fork.c). Relaxed: v wrote it before the
         * push that our steal's acquire CAS saw. */
        struct heist__tk *t =
            atomic_load_explicit(&v->task, memory_order_relaxed);
        /* At once: v may be spinning for it. */
        heist__entry_ack(e, r);
        heist__count(&w->ctr.steals);
        if (heist__unlikely(w->tb != NULL))
            heist__trace_rec(w->tb, HEIST__TEV_STEAL, NULL, v->index,
                             heist__trace_flow(w->tb));
        /* More to take there: get another sleeper going (ramp-up). */
        found_work(w, heist__deque_has_public(&v->dq));
        heist__entry_run_stolen(fn, arg, t, r);
        return true;
    }
    if (r)
        heist__stolen_drop(r);
    if (ahead_steal_paused(w) || heist__worker_busy(v)) {
        heist__count(&w->ctr.failed_steals);
        return false;
    }
    struct heist__item *batch[STEAL_BATCH];
    size_t k = heist__rq_steal_batch(&v->rq, batch,
                                     w->ah_probation ? PROBATION_WINDOW
                                                     : STEAL_BATCH);
    struct heist__item *it = k ? batch[0] : NULL;
    if (k)
        ahead_started(w, 1);
    /* The rest into our queue, published at once (one store of bottom,
     * not one per item); no room: each one made runnable (ready.c), which
     * injects what our queue cannot take. */
    if (k > 1 && heist__rq_push_many(&w->rq, batch + 1, k - 1) != 0)
        for (size_t i = 1; i < k; i++)
            heist__make_runnable(w->sched, batch[i]);
    if (!it && late) {
        /* Relaxed: a guess that the CAS checks. acq_rel CAS: pairs with
         * the owner's exchanges (ready.c, take_runnext): one of us gets
         * the item, and its fields come with it. */
        it = atomic_load_explicit(&v->runnext, memory_order_relaxed);
        if (it && !atomic_compare_exchange_strong_explicit(
                      &v->runnext, &it, NULL, memory_order_acq_rel,
                      memory_order_relaxed))
            it = NULL;
    }
    if (it) {
        if (heist__unlikely(w->tb != NULL))
            heist__trace_rec(w->tb, HEIST__TEV_STEAL_ITEM, NULL, v->index, 0);
        found_work(w, k > 1);
        /* Not a fork: counted as a task (and a resume) only. */
        it->run(it);
        return true;
    }
    heist__count(&w->ctr.failed_steals);
    return false;
}

static bool steal_and_run(struct heist__worker *w, bool late)
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
        if (steal_from(w, s->workers[i], late))
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
    found_work(w, false);
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
    /* seq_cst: another worker may put a fiber that slept here into our
     * empty slot (ready.c: a seq_cst CAS, then the wake rule's load). */
    if (heist__rq_has_work(&w->rq) ||
        atomic_load_explicit(&w->runnext, memory_order_seq_cst))
        return true;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (i != w->index &&
            (heist__deque_has_public(&s->workers[i]->dq) ||
             heist__rq_has_work(&s->workers[i]->rq) ||
             /* seq_cst: as the queues' loads; pairs with the put's
              * exchange (a seq_cst RMW is enough for the argument). */
             atomic_load_explicit(&s->workers[i]->runnext,
                                  memory_order_seq_cst)))
            return true;
    return false;
}

/* Whether w should nap rather than park: some worker is busy (or w's own
 * steals pause), and all the work w sees is work it may not take now (a
 * busy worker's ready items or run-next item; anyone's while w pauses).
 * That includes seeing none: a busy worker's queue and slot fill and
 * empty at every item, and each fill would wake a parked w (a futex call
 * on the busy worker's side, ready.c's wake rule) only for w to find it
 * busy again; a napping w stays counted as searching, so the busy worker
 * wakes nobody. Relaxed loads: a guess; whatever it gets wrong, the search
 * after the nap (or the park's seq_cst re-check) gets right. */
static bool only_blocked_work(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    if (atomic_load_explicit(&s->inj_pending, memory_order_relaxed) > 0 ||
        heist__rq_has_work(&w->rq) ||
        atomic_load_explicit(&w->runnext, memory_order_relaxed))
        return false;
    bool paused = ahead_steal_paused(w), blocked = paused;
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct heist__worker *v = s->workers[i];
        if (i == w->index)
            continue;
        if (heist__deque_has_public(&v->dq))
            return false; /* forks are always stolen */
        /* The busy stamp first: its line is written once a window; the
         * queue's and slot's lines at every item. */
        bool busy = heist__worker_busy(v);
        if (!paused && !busy &&
            (heist__rq_has_work(&v->rq) ||
             atomic_load_explicit(&v->runnext, memory_order_relaxed)))
            return false;
        blocked = blocked || busy;
    }
    return blocked;
}

/* A nap of a searcher (it stays counted in nsearching). */
static void nap(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = NAP_NS};
    nanosleep(&ts, NULL); /* EINTR: a shorter nap */
}

static void park(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    stop_searching(w);
    uint32_t key = heist__park_prepare(&s->park);
    /* A first look is free; the fence (a system call in the asymmetric
     * form, park.c) is paid only by a worker that is about to sleep. */
    if (work_visible(w) || (heist__park_fence(), work_visible(w))) {
        heist__park_cancel(&s->park);
        return;
    }
    heist__count(&w->ctr.parks);
    if (heist__unlikely(w->tb != NULL))
        heist__trace_rec(w->tb, HEIST__TEV_PARK, NULL, 0, 0);
    heist__park_wait(&s->park, key, w->index);
    if (heist__unlikely(w->tb != NULL))
        heist__trace_rec(w->tb, HEIST__TEV_UNPARK, NULL, 0, 0);
}

/* The owner takes its run-next item, or NULL. */
static struct heist__item *take_runnext(struct heist__worker *w)
{
    /* Relaxed peek first: the exchange is paid only when there is an item
     * (another worker's put that the peek misses is seen by the next
     * search, or by the seq_cst re-check before parking).
     * acq_rel exchange: pairs with the put (ready.c) and thieves' CAS. */
    if (!atomic_load_explicit(&w->runnext, memory_order_relaxed))
        return NULL;
    return atomic_exchange_explicit(&w->runnext, NULL, memory_order_acq_rel);
}

/* One thing to do, if there is one; late: searched a while already. */
static bool find_and_run(struct heist__worker *w, bool late)
{
    ahead_expire(w);
    if (heist__unlikely(++w->tick == INJECT_TICK)) {
        w->tick = 0;
        if (run_injected(w))
            return true;
    }
    struct heist__item *it;
    /* After HEIST__RUNNEXT_MAX run-next items in a row, one queued item
     * goes first (fairness); the slot's item keeps its place. */
    bool rn_turn = w->runnext_streak < HEIST__RUNNEXT_MAX;
    if (rn_turn && (it = take_runnext(w))) {
        w->runnext_streak++;
        found_work(w, false);
        it->run(it);
        return true;
    }
    w->runnext_streak = 0;
    it = ahead_pop_paused(w) ? NULL : heist__rq_pop(&w->rq);
    if (it) {
        ahead_started(w, 1);
        found_work(w, false);
        it->run(it);
        return true;
    }
    /* Nothing queued: the slot's turn after all. */
    if (!rn_turn && (it = take_runnext(w))) {
        w->runnext_streak = 1;
        found_work(w, false);
        it->run(it);
        return true;
    }
    return steal_and_run(w, late) || run_injected(w);
}

_Noreturn void heist__worker_loop(void)
{
    unsigned idle = 0;
    for (;;) {
        struct heist__worker *w = heist__self_get();
        if (find_and_run(w, idle >= RUNNEXT_STEAL_AFTER)) {
            /* A fiber switch may have moved this loop to another worker. */
            w = heist__self_get();
            heist__count(&w->ctr.tasks);
            if (heist__unlikely(++w->busy_n == HEIST__BUSY_WINDOW)) {
                uint64_t now = heist__now_ns();
                w->busy_n = 0;
                /* Relaxed: see heist__worker_busy. */
                if (now - w->busy_win0 < HEIST__BUSY_FAST_NS)
                    atomic_store_explicit(&w->busy_t0, now,
                                          memory_order_relaxed);
                w->busy_win0 = now;
            }
            idle = 0;
            continue;
        }
        /* Nothing to run: the ends deferred so far are counted now, before
         * this worker spins, naps or parks (live.c, "Deferred ends"). */
        heist__ends_flush(w);
        struct heist_sched *s = w->sched;
        /* seq_cst: pairs with the store in heist_sched_free, which comes
         * after every task ended. */
        if (atomic_load_explicit(&s->stopping, memory_order_seq_cst)) {
            stop_searching(w);
            /* Back to the thread's own stack; this fiber goes to the pool
             * and is freed with the scheduler. */
            heist__fiber_switch(w, &w->home, heist__fiber_pool_then, NULL);
            heist__fatal("a stopped worker's fiber was resumed");
        }
        start_searching(w);
        idle++;
        if (idle < SPIN_ROUNDS) {
            heist__cpu_relax();
        } else if (idle < SPIN_ROUNDS + YIELD_ROUNDS) {
            sched_yield();
        } else if (only_blocked_work(w)) {
            nap();
            /* One more search round, then this choice again. */
            idle = SPIN_ROUNDS + YIELD_ROUNDS - 1;
        } else {
            park(w);
            /* Woken, or work in sight: searching ("Waking" above). */
            start_searching(w);
            idle = 0;
        }
    }
}

void *heist__worker_main(void *arg)
{
    struct heist__worker *w = arg;
    heist__self = w;
    /* From here this thread's inline forks and joins use w's deque. */
    heist__deque_bind(&w->dq, &heist__fj);
    heist__fiber_thread_init(w);
    /* The first fiber was made with the scheduler (sched.c). */
    struct heist__fiber *f = heist__fiber_get(w);
    if (!f)
        heist__fatal("no fiber for a new worker");
    heist__fiber_switch(w, f, NULL, NULL);
    /* The scheduler is stopping: the loop switched back here. Its record
     * caches are freed with the scheduler (sched.c), once no worker can
     * push on its remote lists. Wait until no other worker can steal (a
     * thief may still write our deque's view, in this thread's storage),
     * then give the view back. seq_cst: the decrement and the loads form
     * one order with every worker's. */
    atomic_fetch_sub_explicit(&w->sched->in_loop, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&w->sched->in_loop, memory_order_seq_cst))
        sched_yield();
    heist__fiber_thread_fini(w);
    heist__deque_unbind(&w->dq);
    heist__self = NULL;
    return NULL;
}
