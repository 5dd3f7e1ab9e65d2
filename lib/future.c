/*
 * future.c - futures, tasks, awaiting, gather and any.
 *
 * A future's `state` is one atomic word: while pending it is the newest
 * node of a Treiber stack of waiters (wait nodes of fibers and threads,
 * callbacks, internal nodes of gathers/anys), or 0; once completed it is an
 * odd terminal value (HEIST__ST_*). Adding a waiter is a CAS push that fails
 * once the state is terminal. Completing is claimed once (a CAS on `claim`:
 * of racing completers one wins, the others get EBUSY), then the winner
 * writes the value and swaps in the terminal state with one exchange, which
 * hands it the whole list. Nothing is ever removed from the list of a
 * pending future: a waiter that stops waiting (timeout, cancel) leaves its
 * node there, and the node is reference-counted so the completer (or the
 * future's free) can still read it.
 *
 * Waking: a wait node is claimed once (`claimed`, CAS) by whoever ends the
 * wait first (the completer, the timer, a canceller); the claimer resumes
 * the fiber (queues it) or wakes the thread (futex).
 *
 * Tasks: heist_spawn makes a task record (a future plus the function) and
 * queues it. A worker that takes it runs the function on its current fiber;
 * if the function awaits, the fiber is suspended (worker.c). The task's
 * outcome completes its future. Cancellation: a task not started is
 * completed as cancelled by the canceller (the runner then skips it); a
 * running one moves to CANCEL_REQ and its current waits are woken with
 * HEIST__WAKE_CANCEL; later waits see the request when they are published.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t heist__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t deadline_after(uint64_t ns)
{
    uint64_t now = heist__now_ns();
    return ns >= UINT64_MAX - now ? UINT64_MAX - 1 : now + ns;
}

static void live_inc(struct heist_sched *s)
{
    /* Relaxed: heist_sched_free reads it (acquire) only after the decrement
     * that follows, in this counter's modification order. */
    atomic_fetch_add_explicit(&s->live, 1, memory_order_relaxed);
}

static void cb_waiting_dec(struct heist_sched *s)
{
    /* Release: pairs with heist_sched_free's acquire load; a callback's
     * live increment comes before this decrement. */
    atomic_fetch_sub_explicit(&s->cb_waiting, 1, memory_order_release);
}

static void live_dec(struct heist_sched *s)
{
    /* Release: pairs with heist_sched_free's acquire load; everything the
     * task did happens before the scheduler is freed. The wake names the
     * address only (a stale one is tolerated by the kernel). */
    if (atomic_fetch_sub_explicit(&s->live, 1, memory_order_release) == 1)
        heist__futex_wake(&s->live, INT_MAX);
}

/* ---- record caches --------------------------------------------------------
 * Task records, wait nodes and plain futures come from a per-worker free list (owner-only,
 * LIFO, at most CACHE_MAX each) and go back to the list of the worker that
 * frees them; threads that are not workers use malloc/free. */
enum { CACHE_TK = 0, CACHE_WN = 1, CACHE_FUT = 2, CACHE_MAX = 1 << 16 };
static const size_t cache_size[HEIST__NCACHE] = {
    sizeof(struct heist__tk), sizeof(struct heist__wnode),
    sizeof(struct heist_future)};

static void *cache_get(int kind)
{
    struct heist__worker *w = heist__self_get();
    void *p;
    if (w && (p = w->cache[kind])) {
        w->cache[kind] = *(void **)p;
        w->ncache[kind]--;
        return p;
    }
    return malloc(cache_size[kind]);
}

static void cache_put(int kind, void *p)
{
    struct heist__worker *w = heist__self_get();
    if (w && w->ncache[kind] < CACHE_MAX) {
        *(void **)p = w->cache[kind];
        w->cache[kind] = p;
        w->ncache[kind]++;
        return;
    }
    free(p);
}

void heist__cache_fini(struct heist__worker *w)
{
    for (int k = 0; k < HEIST__NCACHE; k++) {
        void *p = w->cache[k];
        while (p) {
            void *next = *(void **)p;
            free(p);
            p = next;
        }
        w->cache[k] = NULL;
        w->ncache[k] = 0;
    }
}

/* ---- futures ----------------------------------------------------------- */

/* A gather's or an any's state: one internal node per child. */
struct gnode {
    struct heist__lnode l;
    size_t idx;
};
struct multi {
    struct heist_future f;
    size_t n;
    _Atomic size_t remaining;    /* gather: children not yet done */
    atomic_bool released;        /* children's references dropped */
    heist_future **kids;
    struct gnode nodes[];
};

static void fut_init(struct heist_future *f, uint8_t kind,
                     struct heist_sched *s, uint32_t refs)
{
    atomic_init(&f->state, 0);
    atomic_init(&f->claim, 0);
    atomic_init(&f->refs, refs);
    f->kind = kind;
    f->err = 0;
    f->value = NULL;
    f->sched = s;
}

static bool st_terminal(uintptr_t st)
{
    return st & 1;
}

static struct heist_sched *current_sched(void)
{
    struct heist__worker *w = heist__self_get();
    return w ? w->sched : NULL;
}

heist_future *heist_future_new(void)
{
    struct heist_future *f = cache_get(CACHE_FUT);
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    fut_init(f, HEIST__FK_PLAIN, current_sched(), 1);
    return f;
}

heist_future *heist_future_ref(heist_future *f)
{
    if (!f) {
        errno = EINVAL;
        return NULL;
    }
    /* Relaxed: the caller holds a reference, so the count is > 0; no data
     * is published by taking one. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void heist__wnode_unref(struct heist__wnode *n)
{
    /* acq_rel: the last holder's free happens after every other holder's
     * use (release by each, acquire by the last). */
    if (atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) == 1)
        cache_put(CACHE_WN, n);
}

static void task_free(struct heist__tk *t);

static void multi_release(struct multi *m);

static void fut_free(heist_future *f)
{
    /* Acquire (by the unref's acq_rel): the list is stable; nobody else
     * holds the future. */
    uintptr_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (!st_terminal(st)) {
        struct heist__lnode *l = (struct heist__lnode *)st, *next;
        for (; l; l = next) {
            next = l->next;
            switch (l->kind) {
            case HEIST__W_FIBER:
            case HEIST__W_THREAD:
                heist__wnode_unref((struct heist__wnode *)l);
                break;
            case HEIST__W_CALLBACK: {
                /* never scheduled: dropped without running */
                struct heist_sched *cs = ((struct heist__wnode *)l)->sched;
                cache_put(CACHE_WN, l);
                cb_waiting_dec(cs);
                break;
            }
            case HEIST__W_GATHER:
            case HEIST__W_ANY: {
                struct gnode *g = (struct gnode *)l;
                struct multi *m = caa_container_of(g - g->idx, struct multi,
                                                   nodes[0]);
                heist_future_unref(&m->f);
                break;
            }
            }
        }
    }
    switch (f->kind) {
    case HEIST__FK_TASK:
        task_free((struct heist__tk *)f);
        break;
    case HEIST__FK_GATHER:
    case HEIST__FK_ANY:
        multi_release((struct multi *)f);
        free(f);
        break;
    default:
        cache_put(CACHE_FUT, f);
    }
}

void heist_future_unref(heist_future *f)
{
    if (!f)
        return;
    /* acq_rel: as heist__wnode_unref. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        fut_free(f);
}

bool heist__wnode_wake(struct heist__wnode *n, int reason)
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
    if (n->l.kind == HEIST__W_FIBER) {
        n->fiber->wake = reason;
        heist__make_runnable(n->sched, &n->fiber->it);
    } else {
        /* Release: pairs with the waiting thread's acquire load. */
        atomic_store_explicit(&n->futex, 1, memory_order_release);
        heist__futex_wake(&n->futex, 1);
    }
    return true;
}

static void schedule_callback(struct heist__wnode *n, heist_future *f)
{
    n->it.kind = HEIST__IT_CALLBACK;
    n->fut = heist_future_ref(f);
    live_inc(n->sched);
    heist__make_runnable(n->sched, &n->it);
}

static void multi_kid_done(struct gnode *g, heist_future *kid);

/* Runs or schedules what the completed future f's list asked for, oldest
 * registration first. */
static void fire_list(heist_future *f, struct heist__lnode *l)
{
    struct heist__lnode *rev = NULL, *next;
    for (; l; l = next) {
        next = l->next;
        l->next = rev;
        rev = l;
    }
    for (l = rev; l; l = next) {
        next = l->next;
        switch (l->kind) {
        case HEIST__W_FIBER:
        case HEIST__W_THREAD:
            heist__wnode_wake((struct heist__wnode *)l, HEIST__WAKE_OK);
            heist__wnode_unref((struct heist__wnode *)l);
            break;
        case HEIST__W_CALLBACK: {
            struct heist_sched *cs = ((struct heist__wnode *)l)->sched;
            schedule_callback((struct heist__wnode *)l, f);
            cb_waiting_dec(cs);
            break;
        }
        case HEIST__W_GATHER:
        case HEIST__W_ANY:
            multi_kid_done((struct gnode *)l, f);
            break;
        }
    }
}

static int complete(heist_future *f, uintptr_t term, void *value, int err)
{
    uint32_t z = 0;
    /* Relaxed: the claim only picks the one completer; the value it writes
     * is published by the exchange below. */
    if (!atomic_compare_exchange_strong_explicit(&f->claim, &z, 1,
                                                 memory_order_relaxed,
                                                 memory_order_relaxed))
        return EBUSY;
    f->value = value;
    f->err = err;
    /* acq_rel: release publishes value/err to every acquire load of a
     * terminal state; acquire pairs with the waiters' release CAS pushes,
     * so their nodes' fields are visible. */
    uintptr_t old =
        atomic_exchange_explicit(&f->state, term, memory_order_acq_rel);
    fire_list(f, (struct heist__lnode *)old);
    return 0;
}

/* Pushes l on f's list; false if f is already completed. */
static bool list_push(heist_future *f, struct heist__lnode *l)
{
    /* Acquire: if terminal, the value is visible to the caller. */
    uintptr_t old = atomic_load_explicit(&f->state, memory_order_acquire);
    do {
        if (st_terminal(old))
            return false;
        l->next = (struct heist__lnode *)old;
        /* Release: publishes the node's fields to the completer's acq_rel
         * exchange; acquire on failure: as the load above. */
    } while (!atomic_compare_exchange_weak_explicit(
        &f->state, &old, (uintptr_t)l, memory_order_release,
        memory_order_acquire));
    return true;
}

int heist_future_set_result(heist_future *f, void *value)
{
    if (!f)
        return EINVAL;
    if (f->kind != HEIST__FK_PLAIN)
        return EPERM;
    return complete(f, HEIST__ST_DONE, value, 0);
}

int heist_future_set_error(heist_future *f, int err)
{
    if (!f || err <= 0 || err == ECANCELED)
        return EINVAL;
    if (f->kind != HEIST__FK_PLAIN)
        return EPERM;
    return complete(f, HEIST__ST_FAILED, NULL, err);
}

bool heist_future_done(const heist_future *f)
{
    /* Acquire: a true answer lets the caller read the result. */
    return f && st_terminal(atomic_load_explicit(&f->state,
                                                 memory_order_acquire));
}

bool heist_future_cancelled(const heist_future *f)
{
    /* Acquire: as heist_future_done. */
    return f && atomic_load_explicit(&f->state, memory_order_acquire) ==
                    HEIST__ST_CANCELLED;
}

int heist_future_result(const heist_future *f, void **value)
{
    if (!f)
        return EINVAL;
    /* Acquire: pairs with the completer's acq_rel exchange; value and err
     * were written before it. */
    uintptr_t st = atomic_load_explicit(&f->state, memory_order_acquire);
    switch (st) {
    case HEIST__ST_DONE:
        if (value)
            *value = f->value;
        return 0;
    case HEIST__ST_FAILED:
        return f->err;
    case HEIST__ST_CANCELLED:
        return ECANCELED;
    default:
        return EAGAIN;
    }
}

static struct heist__wnode *wnode_new(uint8_t kind, uint32_t refs)
{
    struct heist__wnode *n = cache_get(CACHE_WN);
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->l.kind = kind;
    atomic_init(&n->claimed, 0);
    atomic_init(&n->refs, refs);
    atomic_init(&n->futex, 0);
    n->deadline = UINT64_MAX;
    n->heap_idx = SIZE_MAX;
    return n;
}

int heist_future_then(heist_future *f, void (*cb)(heist_future *, void *),
                      void *arg)
{
    if (!f || !cb)
        return EINVAL;
    struct heist_sched *s = current_sched();
    if (!s)
        s = f->sched;
    if (!s)
        return EPERM;
    struct heist__wnode *n = wnode_new(HEIST__W_CALLBACK, 1);
    if (!n)
        return ENOMEM;
    n->cb = cb;
    n->cb_arg = arg;
    n->sched = s;
    /* Relaxed: read (acquire) by heist_sched_free only after the release
     * decrement that follows. */
    atomic_fetch_add_explicit(&s->cb_waiting, 1, memory_order_relaxed);
    if (!list_push(f, &n->l)) {
        schedule_callback(n, f); /* already completed: run it now */
        cb_waiting_dec(s);
    }
    return 0;
}

void heist__callback_run(struct heist__worker *w, struct heist__wnode *n)
{
    (void)w;
    struct heist_sched *s = n->sched;
    n->cb(n->fut, n->cb_arg);
    heist__check_joined(heist__self_get());
    heist_future_unref(n->fut);
    cache_put(CACHE_WN, n);
    live_dec(s);
}

/* ---- tasks --------------------------------------------------------------- */

/* The task's spinlock: critical sections are a few list operations; a
 * holder preempted on an oversubscribed machine gets the CPU back through
 * sched_yield. */
static void tk_lock(struct heist__tk *t)
{
    unsigned spins = 0;
    /* Acquire: pairs with the release in tk_unlock. */
    while (atomic_exchange_explicit(&t->lock, 1, memory_order_acquire)) {
        /* Relaxed: only a hint to retry the exchange. */
        while (atomic_load_explicit(&t->lock, memory_order_relaxed)) {
            if (++spins < 64)
                heist__cpu_relax();
            else
                sched_yield();
        }
    }
}

static void tk_unlock(struct heist__tk *t)
{
    /* Release: pairs with the acquire exchange in tk_lock. */
    atomic_store_explicit(&t->lock, 0, memory_order_release);
}

bool heist__cancel_requested(const struct heist__tk *t)
{
    /* seq_cst: read after the wait is registered (under t->lock, or after
     * the run list insert), against the canceller's CAS then scan. */
    if (atomic_load_explicit(&t->tstate, memory_order_seq_cst) ==
        HEIST__TS_CANCEL_REQ)
        return true;
    return t->run &&
           atomic_load_explicit(&t->run->cancelling, memory_order_seq_cst);
}

struct heist__tk *heist__task_new(struct heist_sched *s, heist_fn fn,
                                  void *arg, struct heist__run *run)
{
    struct heist__tk *t = cache_get(CACHE_TK);
    if (!t)
        return NULL;
    /* Two references: the caller's and the queue's (dropped by the runner). */
    fut_init(&t->f, HEIST__FK_TASK, s, 2);
    cds_wfcq_node_init(&t->it.node);
    t->it.kind = HEIST__IT_TASK;
    t->fn = fn;
    t->arg = arg;
    t->run = run;
    atomic_init(&t->tstate, HEIST__TS_NEW);
    atomic_init(&t->lock, 0);
    t->waits = NULL;
    atomic_init(&t->fail_err, 0);
    t->rprev = t->rnext = NULL;
    atomic_init(&t->in_run_list, false);
    if (run)
        /* Relaxed: heist_run reads it (acquire) after the decrements that
         * follow in its modification order. */
        atomic_fetch_add_explicit(&run->live, 1, memory_order_relaxed);
    live_inc(s);
    return t;
}

static void task_free(struct heist__tk *t)
{
    cache_put(CACHE_TK, t);
}

heist_future *heist_spawn(heist_sched *s, heist_fn fn, void *arg)
{
    struct heist__worker *w = heist__self_get();
    if (!s)
        s = w ? w->sched : NULL;
    if (!s || !fn) {
        errno = EINVAL;
        return NULL;
    }
    struct heist__tk *cur =
        w && w->sched == s ? atomic_load_explicit(&w->task,
                                                  memory_order_relaxed)
                           : NULL;
    struct heist__tk *t = heist__task_new(s, fn, arg, cur ? cur->run : NULL);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    heist__make_runnable(s, &t->it);
    return &t->f;
}

static void task_end(struct heist__tk *t)
{
    struct heist__run *run = t->run;
    struct heist_sched *s = t->f.sched;
    /* Relaxed: written only by this task's own waits, all over (joined). */
    if (run && atomic_load_explicit(&t->in_run_list, memory_order_relaxed)) {
        pthread_mutex_lock(&run->lock);
        if (t->rprev)
            t->rprev->rnext = t->rnext;
        else
            run->waiting = t->rnext;
        if (t->rnext)
            t->rnext->rprev = t->rprev;
        atomic_store_explicit(&t->in_run_list, false, memory_order_relaxed);
        pthread_mutex_unlock(&run->lock);
    }
    heist_future_unref(&t->f); /* the queue's reference */
    /* Release: pairs with heist_run's acquire load; the wake names the
     * address only (heist_run's stack may be gone by then). */
    if (run &&
        atomic_fetch_sub_explicit(&run->live, 1, memory_order_release) == 1)
        heist__futex_wake(&run->live, INT_MAX);
    live_dec(s);
}

void heist__task_run(struct heist__worker *w, struct heist__tk *t)
{
    uint32_t st = HEIST__TS_NEW;
    /* acq_rel: against the canceller's CAS NEW -> DEAD; one wins. */
    if (!atomic_compare_exchange_strong_explicit(
            &t->tstate, &st, HEIST__TS_RUNNING, memory_order_acq_rel,
            memory_order_acquire)) {
        task_end(t); /* cancelled before it started: completed already */
        return;
    }
    if (t->run && atomic_load_explicit(&t->run->cancelling,
                                       memory_order_seq_cst)) {
        /* Its heist_run is cancelling its leftovers: never start it. */
        complete(&t->f, HEIST__ST_CANCELLED, NULL, ECANCELED);
        task_end(t);
        return;
    }
    /* Relaxed: owner-only writes (internal.h). */
    atomic_store_explicit(&w->task, t, memory_order_relaxed);
    void *r = t->fn(t->arg);
    w = heist__self_get();
    atomic_store_explicit(&w->task, NULL, memory_order_relaxed);
    heist__check_joined(w);
    /* seq_cst: against the canceller's CAS RUNNING -> CANCEL_REQ; the old
     * state says whether a cancel request came before the end. */
    uint32_t was = atomic_exchange_explicit(&t->tstate, HEIST__TS_ENDED,
                                            memory_order_seq_cst);
    /* Relaxed: heist_fail calls from this task's forks were joined, which
     * orders them before us. */
    int err = atomic_load_explicit(&t->fail_err, memory_order_relaxed);
    if (err)
        complete(&t->f, HEIST__ST_FAILED, NULL, err);
    else if (was == HEIST__TS_CANCEL_REQ ||
             (t->run && atomic_load_explicit(&t->run->cancelling,
                                             memory_order_seq_cst)))
        complete(&t->f, HEIST__ST_CANCELLED, NULL, ECANCELED);
    else
        complete(&t->f, HEIST__ST_DONE, r, 0);
    task_end(t);
}

/* Wakes every current wait of t with CANCEL. */
static void task_wake_waits(struct heist__tk *t)
{
    tk_lock(t);
    for (struct heist__wnode *n = t->waits; n; n = n->tnext)
        heist__wnode_wake(n, HEIST__WAKE_CANCEL);
    tk_unlock(t);
}

static bool task_cancel(struct heist__tk *t)
{
    uint32_t st = HEIST__TS_NEW;
    /* acq_rel: against the runner's CAS NEW -> RUNNING. */
    if (atomic_compare_exchange_strong_explicit(&t->tstate, &st,
                                                HEIST__TS_DEAD,
                                                memory_order_acq_rel,
                                                memory_order_acquire)) {
        complete(&t->f, HEIST__ST_CANCELLED, NULL, ECANCELED);
        return true;
    }
    tk_lock(t);
    /* seq_cst: against the runner's exchange to ENDED (one of the two
     * comes first) and heist__cancel_requested's loads; under the lock,
     * so a wait registered after it sees it. A repeated cancel of a
     * running task is a request too (asyncio's cancel() says True). */
    st = HEIST__TS_RUNNING;
    bool requested = atomic_compare_exchange_strong_explicit(
                         &t->tstate, &st, HEIST__TS_CANCEL_REQ,
                         memory_order_seq_cst, memory_order_seq_cst) ||
                     st == HEIST__TS_CANCEL_REQ;
    if (requested)
        for (struct heist__wnode *n = t->waits; n; n = n->tnext)
            heist__wnode_wake(n, HEIST__WAKE_CANCEL);
    tk_unlock(t);
    return requested;
}

/* ---- gather and any ------------------------------------------------------ */

static struct multi *multi_new(uint8_t kind, heist_future *const *fs,
                               size_t n)
{
    if ((n && !fs) || (kind == HEIST__FK_ANY && n == 0)) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!fs[i]) {
            errno = EINVAL;
            return NULL;
        }
    if (n > (SIZE_MAX - sizeof(struct multi)) /
                (sizeof(struct gnode) + sizeof(heist_future *))) {
        errno = ENOMEM;
        return NULL;
    }
    struct multi *m = malloc(sizeof(*m) + n * sizeof(struct gnode) +
                             n * sizeof(heist_future *));
    if (!m) {
        errno = ENOMEM;
        return NULL;
    }
    struct heist_sched *s = current_sched();
    for (size_t i = 0; !s && i < n; i++)
        s = fs[i]->sched;
    /* References: the caller's, one per child node, one for this set-up
     * (dropped at the end of it, so a completion during it cannot free m). */
    fut_init(&m->f, kind, s, 2);
    m->n = n;
    atomic_init(&m->remaining, n);
    atomic_init(&m->released, false);
    m->kids = (heist_future **)&m->nodes[n];
    for (size_t i = 0; i < n; i++) {
        m->kids[i] = heist_future_ref(fs[i]);
        m->nodes[i].idx = i;
        m->nodes[i].l.kind = kind == HEIST__FK_GATHER ? HEIST__W_GATHER
                                                      : HEIST__W_ANY;
    }
    if (n == 0)
        complete(&m->f, HEIST__ST_DONE, NULL, 0);
    for (size_t i = 0; i < n; i++) {
        /* Relaxed: we hold a reference (the set-up's). */
        atomic_fetch_add_explicit(&m->f.refs, 1, memory_order_relaxed);
        if (!list_push(fs[i], &m->nodes[i].l))
            multi_kid_done(&m->nodes[i], fs[i]);
    }
    heist_future_unref(&m->f);
    return m;
}

/* Drops the children's references, once. */
static void multi_release(struct multi *m)
{
    /* acq_rel: one caller does it. */
    if (atomic_exchange_explicit(&m->released, true, memory_order_acq_rel))
        return;
    for (size_t i = 0; i < m->n; i++)
        heist_future_unref(m->kids[i]);
}

static void multi_kid_done(struct gnode *g, heist_future *kid)
{
    struct multi *m = caa_container_of(g - g->idx, struct multi, nodes[0]);
    /* Acquire: kid is completed (we run from its completion or after its
     * terminal state was seen). */
    uintptr_t st = atomic_load_explicit(&kid->state, memory_order_acquire);
    int r = EBUSY;
    if (m->f.kind == HEIST__FK_ANY) {
        r = complete(&m->f, HEIST__ST_DONE, (void *)(uintptr_t)g->idx, 0);
    } else if (st == HEIST__ST_DONE) {
        /* acq_rel: the last child's completer sees every other's. */
        if (atomic_fetch_sub_explicit(&m->remaining, 1,
                                      memory_order_acq_rel) == 1)
            r = complete(&m->f, HEIST__ST_DONE, NULL, 0);
    } else {
        r = complete(&m->f, HEIST__ST_FAILED, NULL,
                     st == HEIST__ST_FAILED ? kid->err : ECANCELED);
    }
    if (r == 0)
        multi_release(m);
    heist_future_unref(&m->f); /* this node's reference */
}

heist_future *heist_gather(heist_future *const *fs, size_t n)
{
    struct multi *m = multi_new(HEIST__FK_GATHER, fs, n);
    return m ? &m->f : NULL;
}

heist_future *heist_any(heist_future *const *fs, size_t n)
{
    struct multi *m = multi_new(HEIST__FK_ANY, fs, n);
    return m ? &m->f : NULL;
}

bool heist_future_cancel(heist_future *f)
{
    if (!f)
        return false;
    switch (f->kind) {
    case HEIST__FK_TASK:
        return task_cancel((struct heist__tk *)f);
    case HEIST__FK_GATHER: {
        struct multi *m = (struct multi *)f;
        /* Hold the children while we cancel them. */
        heist_future_ref(f);
        bool won = complete(f, HEIST__ST_CANCELLED, NULL, ECANCELED) == 0;
        if (won) {
            /* Only the completion's winner releases the children: we
             * still hold them. */
            for (size_t i = 0; i < m->n; i++)
                heist_future_cancel(m->kids[i]);
            multi_release(m);
        }
        heist_future_unref(f);
        return won;
    }
    case HEIST__FK_ANY: {
        bool won = complete(f, HEIST__ST_CANCELLED, NULL, ECANCELED) == 0;
        if (won)
            multi_release((struct multi *)f);
        return won;
    }
    default:
        return complete(f, HEIST__ST_CANCELLED, NULL, ECANCELED) == 0;
    }
}

/* ---- waiting ------------------------------------------------------------- */

/* Publishes n; once one registration is made, the wait may end and the
 * waiter resume and drop its references (and the awaited future) at any
 * moment, so this holds its own references on both until it is done. */
static void wait_publish_steps(struct heist__wnode *n);

void heist__wait_publish(struct heist__wnode *n)
{
    /* Relaxed: the waiter's reference keeps both alive until the first
     * registration below, and nothing can end the wait before it. */
    atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
    heist_future *f = n->fut;
    if (f)
        heist_future_ref(f);
    wait_publish_steps(n);
    heist_future_unref(f);
    heist__wnode_unref(n);
}

static void wait_publish_steps(struct heist__wnode *n)
{
    struct heist__tk *t = n->task;
    if (t) {
        /* Relaxed: a hint; the lock decides (once true it stays true
         * until the task ends, which cannot happen during its wait). */
        if (t->run &&
            !atomic_load_explicit(&t->in_run_list, memory_order_relaxed)) {
            pthread_mutex_lock(&t->run->lock);
            if (!atomic_load_explicit(&t->in_run_list,
                                      memory_order_relaxed)) {
                t->rprev = NULL;
                t->rnext = t->run->waiting;
                if (t->rnext)
                    t->rnext->rprev = t;
                t->run->waiting = t;
                atomic_store_explicit(&t->in_run_list, true,
                                      memory_order_relaxed);
            }
            pthread_mutex_unlock(&t->run->lock);
        }
        tk_lock(t);
        /* Under the lock: a canceller sets CANCEL_REQ under it, then wakes
         * the listed waits; the run's canceller sets `cancelling` before
         * it scans the run list, which has t by now. */
        bool cancel = heist__cancel_requested(t);
        if (!cancel) {
            /* Relaxed: we hold the waiter's reference. */
            atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
            n->tprev = NULL;
            n->tnext = t->waits;
            if (n->tnext)
                n->tnext->tprev = n;
            t->waits = n;
            n->in_task = true;
        }
        tk_unlock(t);
        if (cancel) {
            heist__wnode_wake(n, HEIST__WAKE_CANCEL);
            return;
        }
    }
    if (n->deadline != UINT64_MAX) {
        atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
        if (heist__timer_arm(n->sched, n) != 0) {
            /* No timer (out of memory or threads): end the wait now. */
            heist__wnode_unref(n);
            heist__wnode_wake(n, HEIST__WAKE_TIMEOUT);
            return;
        }
    }
    if (n->fut) {
        atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
        if (!list_push(n->fut, &n->l)) {
            heist__wnode_unref(n);
            heist__wnode_wake(n, HEIST__WAKE_OK);
        }
    }
}

/* After the wait of n ended: takes it out of its task and timer. */
static void wait_cleanup(struct heist__wnode *n, int why)
{
    struct heist__tk *t = n->task;
    if (t) {
        bool listed;
        tk_lock(t);
        listed = n->in_task;
        if (listed) {
            if (n->tprev)
                n->tprev->tnext = n->tnext;
            else
                t->waits = n->tnext;
            if (n->tnext)
                n->tnext->tprev = n->tprev;
            n->in_task = false;
        }
        tk_unlock(t);
        if (listed)
            heist__wnode_unref(n);
    }
    if (n->deadline != UINT64_MAX && why != HEIST__WAKE_TIMEOUT)
        heist__timer_disarm(n->sched, n);
    heist__wnode_unref(n); /* the waiter's reference */
}

/* A fiber waits for f (NULL: a sleep) until deadline. Returns the wake
 * reason, or a negative errno when it could not wait. */
static int fiber_wait(heist_future *f, uint64_t deadline)
{
    struct heist__worker *w = heist__self_get();
    struct heist__wnode *n = wnode_new(HEIST__W_FIBER, 1);
    if (!n)
        return -ENOMEM;
    n->task = atomic_load_explicit(&w->task, memory_order_relaxed);
    n->fut = f;
    n->deadline = deadline;
    /* The fiber suspends with an empty fork deque (task.c). */
    heist__drain();
    w = heist__self_get();
    if (f && heist_future_done(f)) {
        heist__wnode_unref(n);
        return HEIST__WAKE_OK;
    }
    n->fiber = w->cur;
    n->sched = w->sched;
    int why = heist__suspend(HEIST__POST_WAIT, n);
    if (why == 0) {
        heist__wnode_unref(n);
        return -ENOMEM;
    }
    wait_cleanup(n, why);
    return why;
}

int heist__await_thread(heist_future *f, uint64_t deadline, void **value)
{
    int r = heist_future_result(f, value);
    if (r != EAGAIN)
        return r;
    if (deadline != UINT64_MAX && heist__now_ns() >= deadline)
        return ETIMEDOUT;
    /* References: ours and the list's. */
    struct heist__wnode *n = wnode_new(HEIST__W_THREAD, 2);
    if (!n)
        return ENOMEM;
    if (!list_push(f, &n->l)) {
        cache_put(CACHE_WN, n);
        return heist_future_result(f, value);
    }
    /* Acquire: pairs with the release store in heist__wnode_wake. */
    while (!atomic_load_explicit(&n->futex, memory_order_acquire)) {
        if (deadline != UINT64_MAX && heist__now_ns() >= deadline) {
            uint32_t z = 0;
            /* acq_rel: against the completer's claim; one wins. */
            if (atomic_compare_exchange_strong_explicit(
                    &n->claimed, &z, HEIST__WAKE_TIMEOUT,
                    memory_order_acq_rel, memory_order_acquire)) {
                heist__wnode_unref(n);
                return ETIMEDOUT;
            }
            /* The completer claimed it: its wake comes at once. */
            deadline = UINT64_MAX;
        }
        heist__futex_wait_until(&n->futex, 0, deadline);
    }
    heist__wnode_unref(n);
    return heist_future_result(f, value);
}

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
    struct heist__tk *t = atomic_load_explicit(&w->task, memory_order_relaxed);
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
    return await_until(f, deadline_after(ns), value);
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
    struct heist__tk *t = atomic_load_explicit(&w->task, memory_order_relaxed);
    if (t && heist__cancel_requested(t))
        return ECANCELED;
    int why = fiber_wait(NULL, deadline_after(ns));
    if (why < 0)
        return thread_sleep(ns); /* no fiber to switch to */
    return why == HEIST__WAKE_CANCEL ? ECANCELED : 0;
}

int heist_fail(int err)
{
    if (err <= 0 || err == ECANCELED)
        return EINVAL;
    struct heist__worker *w = heist__self_get();
    struct heist__tk *t =
        w ? atomic_load_explicit(&w->task, memory_order_relaxed) : NULL;
    if (!t)
        return EPERM;
    /* Relaxed: read by the task's runner after the task's function (and
     * its joins) returned. */
    atomic_store_explicit(&t->fail_err, err, memory_order_relaxed);
    return 0;
}

bool heist_cancelling(void)
{
    struct heist__worker *w = heist__self_get();
    struct heist__tk *t =
        w ? atomic_load_explicit(&w->task, memory_order_relaxed) : NULL;
    return t && heist__cancel_requested(t);
}

/* ---- heist_run's cancellation of leftovers ------------------------------- */

void heist__run_cancel_leftovers(struct heist__run *run)
{
    pthread_mutex_lock(&run->lock);
    /* seq_cst: against heist__cancel_requested's loads. */
    atomic_store_explicit(&run->cancelling, true, memory_order_seq_cst);
    for (struct heist__tk *t = run->waiting; t; t = t->rnext)
        task_wake_waits(t);
    pthread_mutex_unlock(&run->lock);
}
