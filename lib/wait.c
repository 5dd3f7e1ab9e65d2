/*
 * wait.c - waiting: heist_await, heist_await_timeout and heist_sleep on a
 * fiber (the task suspends, its worker goes on) and on a plain thread (it
 * blocks on a futex).
 *
 * A wait is a reference-counted wait node, listed in up to three places,
 * each holding a reference: the awaited future's list (its fire ends the
 * wait when the future completes), the timer heap (its fire ends it at the
 * deadline) and the waiting task's current waits (a canceller ends it).
 * The waiter holds a fourth. Whoever ends the wait first claims the node
 * (`claimed`, one CAS) with its reason and resumes the waiter: the fiber is
 * made ready (ready.c) or the thread's futex is woken. The others find the
 * node claimed and only drop their reference. A completion that ends a
 * fiber's wait hands its reference over to the waiter, which drops it
 * with its own and those of the listings it takes back, in one
 * subtraction.
 *
 * A fiber's wait is published only once its fiber is off the CPU: the
 * suspension's "then" (wait_publish, run by the fiber switched to) lists
 * the node, so nobody can resume a fiber that is still running. Once the
 * first listing is made the wait may end and the waiter resume at any
 * moment, on another worker; so a resumed waiter first waits until the
 * publisher is done (`published`, set by the publisher's last access to
 * the node, the future and the task), which it nearly always is already.
 * While the publisher works, the waiter's reference keeps the node alive,
 * and the waiter's caller keeps the future (it holds a reference for the
 * whole await), and the task is the waiter's: the publisher needs no
 * reference of its own (three atomic read-modify-writes a wait saved, one
 * of them on the awaited future, often a cache miss). A fiber's node is
 * made with all its references (the waiter's, one per listing to come):
 * one plain store instead of an atomic add per holder, as nobody else
 * sees the node yet; a listing that is not made drops its own. After it
 * resumes, the waiter takes the node out of its task and the timer heap
 * (wait_cleanup).
 */
#include "cache.h"
#include "fork.h"
#include "spawn.h"
#include "wait.h"

#include <errno.h>
#include <time.h>

struct wnode {
    struct heist__lnode l;        /* in the awaited future's list */
    struct heist__timer_node tn;  /* in the timer heap (deadline) */
    struct heist__task_wait tw;   /* in the waiting task's waits */
    _Atomic uint32_t claimed;     /* 0, then a HEIST__WAKE_* by the claimer */
    _Atomic uint32_t refs;        /* holders: waiter, list, timer, task */
    bool thread;                  /* a thread waits (futex), not a fiber */
    struct heist__fiber *fiber;   /* fiber waits: whom to resume */
    struct heist_sched *sched;    /* fiber waits: where to resume it */
    struct heist__tk *task;       /* fiber waits: the waiting task, or NULL */
    heist_future *fut;            /* the awaited future, or NULL (sleep) */
    _Atomic uint32_t futex;       /* thread waits: 1 once woken */
    /* Fiber waits: 1 once the publisher is done with the node (its last
     * access to the node, the future and the task). */
    _Atomic uint32_t published;
};

static void wnode_unref(struct wnode *n)
{
    /* acq_rel: the last holder's free happens after every other holder's
     * use (release by each, acquire by the last). */
    if (atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) == 1)
        heist__cache_put(HEIST__C_WAIT, n);
}

/* Claims n with reason and resumes its waiter; false if already claimed. */
static bool wnode_wake(struct wnode *n, int reason)
{
    uint32_t z = 0;
    /* acq_rel: one claimer wins; release orders what the claimer did
     * (completion) before the resumed waiter runs (with the queue's own
     * ordering), acquire pairs with the publisher. */
    if (!atomic_compare_exchange_strong_explicit(&n->claimed, &z,
                                                 (uint32_t)reason,
                                                 memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    if (!n->thread) {
        heist__fiber_ready(n->sched, n->fiber, reason);
    } else {
        /* Release: pairs with the waiting thread's acquire load. */
        atomic_store_explicit(&n->futex, 1, memory_order_release);
        heist__futex_wake(&n->futex, 1);
    }
    return true;
}

/* The future's list: completed, or freed while pending. */
static void list_fire(struct heist__lnode *l, heist_future *f, bool completed)
{
    (void)f;
    struct wnode *n = (struct wnode *)l;
    /* Read first: once a fiber's waiter is woken, n may be gone. */
    bool fiber = !n->thread;
    /* A fiber's wait that the completion ends hands the list's reference
     * to the waiter, which drops it with its own (wait_cleanup): one
     * atomic operation fewer per await. */
    if (completed && wnode_wake(n, HEIST__WAKE_OK) && fiber)
        return;
    wnode_unref(n);
}

/* The timer heap: the deadline passed (timer thread, not under the timers'
 * lock: a waiter whose wait ended otherwise may be cleaning up, and its
 * disarm found the node already out of the heap). */
static void timer_fire(struct heist__timer_node *tn)
{
    struct wnode *n = caa_container_of(tn, struct wnode, tn);
    wnode_wake(n, HEIST__WAKE_TIMEOUT);
    wnode_unref(n);
}

/* Asked by the timers under their lock before arming: the wait has not
 * ended. Acquire: pairs with the claimer's acq_rel CAS (a claim seen here
 * means the waiter may be cleaning up). */
static bool still_waiting(struct heist__timer_node *tn)
{
    struct wnode *n = caa_container_of(tn, struct wnode, tn);
    return atomic_load_explicit(&n->claimed, memory_order_acquire) == 0;
}

/* The task: a canceller (under the task's lock). */
static void task_cancel(struct heist__task_wait *tw)
{
    wnode_wake(caa_container_of(tw, struct wnode, tw), HEIST__WAKE_CANCEL);
}

static struct wnode *wnode_new(bool thread, uint32_t refs)
{
    struct wnode *n = heist__cache_get(HEIST__C_WAIT, sizeof(*n));
    if (!n)
        return NULL;
    n->l.next = NULL;
    n->l.fire = list_fire;
    n->tn.deadline = UINT64_MAX;
    n->tn.heap_idx = SIZE_MAX;
    n->tn.shard = NULL;
    n->tn.fire = timer_fire;
    n->tn.locked = false;
    n->tw.listed = false;
    n->tw.cancel = task_cancel;
    atomic_init(&n->claimed, 0);
    atomic_init(&n->refs, refs);
    n->thread = thread;
    n->fiber = NULL;
    n->sched = NULL;
    n->task = NULL;
    n->fut = NULL;
    atomic_init(&n->futex, 0);
    atomic_init(&n->published, 0);
    return n;
}

/* ---- a fiber's wait -------------------------------------------------------- */

/* The references a fiber's wait node starts with: the waiter's and one
 * for each place wait_publish will list it in. Taken at once when the
 * node is made (nobody else sees it before the publication); a listing
 * that does not happen drops its own. */
static uint32_t fiber_wait_refs(const struct wnode *n)
{
    return 1 + (n->task != NULL) + (n->tn.deadline != UINT64_MAX) +
           (n->fut != NULL);
}

static void publish_steps(struct wnode *n)
{
    struct heist__tk *t = n->task;
    bool timed = n->tn.deadline != UINT64_MAX;
    if (t && !heist__task_wait_add(t, &n->tw)) {
        /* Cancelled first: no listing at all; the wake's resumption
         * comes after this then returns (the waiter is off the CPU). */
        wnode_unref(n);
        if (timed) {
            heist__timer_unreserve(&n->sched->timers, &n->tn);
            wnode_unref(n);
        }
        if (n->fut)
            wnode_unref(n);
        wnode_wake(n, HEIST__WAKE_CANCEL);
        return;
    }
    /* The slot was reserved before the suspension (fiber_wait). */
    if (timed &&
        !heist__timer_arm(&n->sched->timers, &n->tn, still_waiting)) {
        /* A canceller ended the wait already: its waiter's disarm may
         * have run, so arming now would leave the node in the heap until
         * its deadline. Neither the timer's nor the future's listing. */
        wnode_unref(n);
        if (n->fut)
            wnode_unref(n);
        return;
    }
    /* Completed meanwhile: no listing, so no list reference to hand to
     * the waiter either; as list_fire does, the claim with WAKE_OK
     * leaves it to the waiter. */
    if (n->fut && !heist__fut_push(n->fut, &n->l) &&
        !wnode_wake(n, HEIST__WAKE_OK))
        wnode_unref(n);
}

/* The suspension's then: publishes the wait of the fiber that just left. */
static void wait_publish(struct heist__fiber *from, void *arg)
{
    (void)from; /* n->fiber */
    struct wnode *n = arg;
    publish_steps(n);
    /* Release: our last access to n, its future and its task; pairs with
     * the resumed waiter's acquire load (wait_cleanup), after which the
     * waiter may drop its reference on n and return from the await. */
    atomic_store_explicit(&n->published, 1, memory_order_release);
}

/* After the wait of n ended: takes it out of its task and timer. */
static void wait_cleanup(struct wnode *n, int why)
{
    /* Acquire: pairs with the publisher's release store (wait_publish).
     * The wait ended through a listing the publisher made, so it is at
     * most a few instructions from done, unless its thread was
     * preempted. */
    for (unsigned spins = 0;
         !atomic_load_explicit(&n->published, memory_order_acquire);
         spins++) {
        if (spins < 64)
            heist__cpu_relax();
        else
            sched_yield();
    }
    /* The references we drop, in one subtraction: ours, the list's when
     * the completion ended the wait (list_fire and publish_steps hand it
     * over with a WAKE_OK claim), and the listings we take back. */
    uint32_t drop = 1 + (why == HEIST__WAKE_OK);
    if (n->task && heist__task_wait_remove(n->task, &n->tw))
        drop++;
    if (n->tn.deadline != UINT64_MAX && why != HEIST__WAKE_TIMEOUT &&
        heist__timer_disarm(&n->sched->timers, &n->tn))
        drop++;
    /* acq_rel: as in wnode_unref. */
    if (atomic_fetch_sub_explicit(&n->refs, drop, memory_order_acq_rel) ==
        drop)
        heist__cache_put(HEIST__C_WAIT, n);
}

/* A fiber waits for f (NULL: a sleep) until deadline. Returns the wake
 * reason, or a negative errno when it could not wait. */
static int fiber_wait(heist_future *f, uint64_t deadline)
{
    struct heist__worker *w = heist__self_get();
    struct heist_sched *s = w->sched;
    bool timed = deadline != UINT64_MAX;
    /* Everything that can fail comes before the suspension, so a wait that
     * begins ends only for its own reasons. */
    struct wnode *n = wnode_new(false, 0);
    if (!n)
        return -ENOMEM;
    /* A slot in this worker's timer heap (timer.c, "Shards"). */
    if (timed && heist__timer_reserve(&s->timers, &n->tn, w->index) != 0) {
        heist__cache_put(HEIST__C_WAIT, n);
        return -ENOMEM;
    }
    n->task = heist__current_task();
    n->fut = f;
    n->tn.deadline = deadline;
    n->sched = s;
    atomic_init(&n->refs, fiber_wait_refs(n));
    /* The fiber suspends with an empty fork deque (fork.c); out of memory
     * for its save list it cannot suspend. */
    if (heist__drain() != 0) {
        if (timed)
            heist__timer_unreserve(&s->timers, &n->tn);
        heist__cache_put(HEIST__C_WAIT, n); /* never published */
        return -ENOMEM;
    }
    if (f && heist_future_done(f)) {
        if (timed)
            heist__timer_unreserve(&s->timers, &n->tn);
        heist__cache_put(HEIST__C_WAIT, n); /* never published */
        return HEIST__WAKE_OK;
    }
    n->fiber = heist__self_get()->cur;
    int why = heist__suspend(wait_publish, n,
                             f ? HEIST__SUSP_AWAIT : HEIST__SUSP_SLEEP);
    /* Resumed (perhaps elsewhere): this fiber's forks go above the ones
     * its drain saved (fork.c). */
    heist__fork_rebase(heist__self_get(), n->fiber);
    if (why == 0) {
        if (timed)
            heist__timer_unreserve(&s->timers, &n->tn);
        heist__cache_put(HEIST__C_WAIT, n); /* never published */
        return -ENOMEM;
    }
    wait_cleanup(n, why);
    return why;
}

/* ---- a thread's wait ----------------------------------------------------- */

int heist__await_thread(heist_future *f, uint64_t deadline, void **value)
{
    int r = heist_future_result(f, value);
    if (r != EAGAIN)
        return r;
    if (deadline != UINT64_MAX && heist__now_ns() >= deadline)
        return ETIMEDOUT;
    /* References: ours and the list's. */
    struct wnode *n = wnode_new(true, 2);
    if (!n)
        return ENOMEM;
    if (!heist__fut_push(f, &n->l)) {
        heist__cache_put(HEIST__C_WAIT, n);
        return heist_future_result(f, value);
    }
    /* Acquire: pairs with the release store in wnode_wake. */
    while (!atomic_load_explicit(&n->futex, memory_order_acquire)) {
        if (deadline != UINT64_MAX && heist__now_ns() >= deadline) {
            uint32_t z = 0;
            /* acq_rel: against the completer's claim; one wins. */
            if (atomic_compare_exchange_strong_explicit(
                    &n->claimed, &z, HEIST__WAKE_TIMEOUT,
                    memory_order_acq_rel, memory_order_acquire)) {
                wnode_unref(n);
                return ETIMEDOUT;
            }
            /* The completer claimed it: its wake comes at once. */
            deadline = UINT64_MAX;
        }
        heist__futex_wait_until(&n->futex, 0, deadline);
    }
    wnode_unref(n);
    return heist_future_result(f, value);
}

/* ---- the public calls -------------------------------------------------------- */

static bool on_fiber(struct heist__worker *w)
{
    return w && w->cur && w->cur != &w->home;
}

static int await_until(heist_future *f, uint64_t deadline, void **value)
{
    if (!f)
        return EINVAL;
    struct heist__worker *w = heist__self_get();
    if (!on_fiber(w))
        return heist__await_thread(f, deadline, value);
    struct heist__tk *t = heist__current_task();
    if (t && &t->f == f)
        return EDEADLK;
    /* A task asked to cancel gets ECANCELED from every later await, even
     * of a completed future (future.h). */
    if (t && heist__cancel_requested(t))
        return ECANCELED;
    int r = heist_future_result(f, value);
    if (r != EAGAIN)
        return r;
    if (deadline != UINT64_MAX && heist__now_ns() >= deadline)
        return ETIMEDOUT;
    int why = fiber_wait(f, deadline);
    if (why < 0)
        return -why;
    if (why == HEIST__WAKE_TIMEOUT)
        return ETIMEDOUT;
    if (why == HEIST__WAKE_CANCEL)
        return ECANCELED;
    return heist_future_result(f, value);
}

int heist_await(heist_future *f, void **value)
{
    return await_until(f, UINT64_MAX, value);
}

int heist_await_timeout(heist_future *f, uint64_t ns, void **value)
{
    return await_until(f, heist__deadline_after(ns), value);
}

/* Sleeps the calling thread (not a task on a fiber). */
static int thread_sleep(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

int heist_sleep(uint64_t ns)
{
    struct heist__worker *w = heist__self_get();
    if (!on_fiber(w))
        return thread_sleep(ns);
    struct heist__tk *t = heist__current_task();
    if (t && heist__cancel_requested(t))
        return ECANCELED;
    int why = fiber_wait(NULL, heist__deadline_after(ns));
    if (why < 0)
        return -why; /* ENOMEM: nothing slept */
    return why == HEIST__WAKE_CANCEL ? ECANCELED : 0;
}
