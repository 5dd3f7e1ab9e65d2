/*
 * spawn.c - spawned tasks (a task is a future), their cancellation,
 * heist_fail and heist_cancelling, and the groups heist_run cancels.
 *
 * heist_spawn makes a task record (a future plus the function) and queues
 * it. A worker that takes it runs the function on its current fiber
 * (heist__run_user); if the function awaits, the fiber is suspended
 * (wait.c). The task's outcome completes its future.
 *
 * Cancellation (tstate, see spawn.h):
 *   - NEW: the canceller CASes NEW -> DEAD and completes the future as
 *     cancelled; the runner's CAS NEW -> RUNNING then fails and it skips
 *     the task. One of the two CASes wins.
 *   - RUNNING: the canceller CASes RUNNING -> CANCEL_REQ under the task's
 *     lock and ends every wait listed in the task (their fibers resume with
 *     ECANCELED). A wait listed later checks for the request under the same
 *     lock (heist__task_wait_add), so no wait misses it. The runner's
 *     exchange to ENDED at the task's end tells whether a request came
 *     first: then the task ends cancelled.
 * Groups (heist_run): a task lists itself in its group on its first wait
 * (the first of its fiber's and its stolen forks' waits: group_list);
 * heist__group_cancel sets `cancelling` under the group's lock, then ends
 * the listed tasks' waits. A task's later wait sees `cancelling` (seq_cst)
 * in heist__cancel_requested, after it was listed: either the canceller's
 * scan finds it or its own check sees the flag.
 */
#include "cache.h"
#include "fork.h"
#include "spawn.h"

#include <errno.h>
#include <stdlib.h>

/* ---- current waits ------------------------------------------------------- */

/* gshard while a first wait of the task lists it in its group. */
#define HEIST__GSHARD_CLAIMED ((struct heist__gshard *)(uintptr_t)1)

/* Lists t in a shard of its group g, once: the first of t's waits does it.
 * Several may come at once (t's fiber and fibers running t's stolen forks
 * all wait as t: two of them once listed t twice and corrupted the list),
 * so the first claims gshard with a CAS and the others wait until it is
 * set: a wait of t goes on only once t is listed (the cancel argument
 * below needs that). */
static void group_list(struct heist__group *g, struct heist__tk *t)
{
    /* Acquire: pairs with the release store below, made by whichever wait
     * listed t; t is in the shard's list after it. */
    struct heist__gshard *sh =
        atomic_load_explicit(&t->gshard, memory_order_acquire);
    if (heist__likely(sh != NULL && sh != HEIST__GSHARD_CLAIMED))
        return;
    /* Relaxed CAS: winning it publishes nothing (the store below does);
     * losing it, we read gshard again with acquire. */
    if (sh == NULL &&
        atomic_compare_exchange_strong_explicit(&t->gshard, &sh,
                                                HEIST__GSHARD_CLAIMED,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
        sh = &g->shards[heist__live_index(t->f.sched)];
        heist__spin_lock(&sh->lock);
        cds_list_add(&t->glink, &sh->waiting);
        heist__spin_unlock(&sh->lock);
        /* Release: pairs with the acquire loads above and below, so a wait
         * that saw t's shard sees t listed. */
        atomic_store_explicit(&t->gshard, sh, memory_order_release);
        return;
    }
    /* Another wait of t is listing it: a few instructions, unless its
     * thread was preempted. */
    for (unsigned spins = 0;
         atomic_load_explicit(&t->gshard, memory_order_acquire) ==
         HEIST__GSHARD_CLAIMED;
         spins++) {
        if (spins < 64)
            heist__cpu_relax();
        else
            sched_yield();
    }
}

bool heist__task_wait_add(struct heist__tk *t, struct heist__task_wait *tw)
{
    struct heist__group *g = t->group;
    if (g)
        group_list(g, t);
    heist__spin_lock(&t->lock);
    /* Under the lock: a canceller sets CANCEL_REQ under it, then ends the
     * listed waits. The group's canceller stores `cancelling` before it
     * locks and scans each shard: if it scanned ours before we added t, it
     * stored first and our lock of the shard came after its unlock, so the
     * check below sees the store; otherwise the scan finds t. */
    bool cancel = heist__cancel_requested(t);
    if (!cancel) {
        cds_list_add(&tw->link, &t->waits);
        tw->listed = true;
    }
    heist__spin_unlock(&t->lock);
    return !cancel;
}

bool heist__task_wait_remove(struct heist__tk *t, struct heist__task_wait *tw)
{
    heist__spin_lock(&t->lock);
    bool listed = tw->listed;
    if (listed) {
        cds_list_del(&tw->link);
        tw->listed = false;
    }
    heist__spin_unlock(&t->lock);
    return listed;
}

/* Ends every current wait of t as cancelled; t->lock held. */
static void cancel_waits_locked(struct heist__tk *t)
{
    struct heist__task_wait *tw;
    cds_list_for_each_entry(tw, &t->waits, link)
        tw->cancel(tw);
}

/* ---- the task's life ------------------------------------------------------- */

static void task_free(heist_future *f)
{
    heist__cache_put(HEIST__C_TASK, f);
}

static bool task_cancel(heist_future *f)
{
    struct heist__tk *t = (struct heist__tk *)f;
    uint32_t st = HEIST__TS_NEW;
    /* acq_rel: against the runner's CAS NEW -> RUNNING. */
    if (atomic_compare_exchange_strong_explicit(&t->tstate, &st,
                                                HEIST__TS_DEAD,
                                                memory_order_acq_rel,
                                                memory_order_acquire)) {
        heist__fut_complete(&t->f, HEIST__ST_CANCELLED, NULL, ECANCELED);
        return true;
    }
    heist__spin_lock(&t->lock);
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
        cancel_waits_locked(t);
    heist__spin_unlock(&t->lock);
    return requested;
}

static const struct heist__fut_ops task_ops = {task_free, task_cancel, NULL};

static void task_run(struct heist__item *it);

struct heist__tk *heist__task_new(struct heist_sched *s, heist_fn fn,
                                  void *arg, struct heist__group *g)
{
    struct heist__tk *t = heist__cache_get(HEIST__C_TASK, sizeof(*t));
    if (!t)
        return NULL;
    /* Two references: the caller's and the queue's (dropped by the runner). */
    heist__fut_init(&t->f, &task_ops, s, 2);
    t->it.run = task_run;
    t->fn = fn;
    t->arg = arg;
    t->group = g;
    atomic_init(&t->tstate, HEIST__TS_NEW);
    atomic_init(&t->lock, 0);
    CDS_INIT_LIST_HEAD(&t->waits);
    atomic_init(&t->fail_err, 0);
    CDS_INIT_LIST_HEAD(&t->glink);
    atomic_init(&t->gshard, NULL);
    /* A task of a group counts in the group only: heist_sched_free first
     * waits for every heist_run, and each of those for its group's count
     * (live.c's roots). */
    heist__live_up(g ? g->live : &s->live, heist__live_index(s));
    return t;
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
    struct heist__tk *cur = w && w->sched == s ? heist__current_task() : NULL;
    struct heist__tk *t = heist__task_new(s, fn, arg, cur ? cur->group : NULL);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    heist__make_runnable(s, &t->it);
    return &t->f;
}

static void task_end(struct heist__tk *t)
{
    /* Read before the unref below, which may free t. */
    struct heist__live *l = heist__task_live(t);
    /* Relaxed: written only by this task's waits, all over (its stolen
     * forks were joined, which ordered their waits before this). */
    struct heist__gshard *sh =
        atomic_load_explicit(&t->gshard, memory_order_relaxed);
    if (sh) {
        heist__spin_lock(&sh->lock);
        cds_list_del(&t->glink);
        heist__spin_unlock(&sh->lock);
        /* Relaxed: the record is freed or reused after this. */
        atomic_store_explicit(&t->gshard, NULL, memory_order_relaxed);
    }
    heist_future_unref(&t->f); /* the queue's reference */
    /* g->live outlives g (the scheduler's pool): heist_run may have
     * returned before we are done with its count. The end is counted
     * later, by this worker (live.c, "Deferred ends"), and that store is
     * the task's last access to anything of the scheduler. The worker
     * that runs the end now (the task may have moved while it waited) is
     * one of the task's scheduler's: task_run is an item's run function,
     * and only a worker's loop runs items, its own scheduler's. */
    heist__ends_defer(heist__self_get(), l);
}

/* The item's run function: starts the task on the calling worker. */
static void task_run(struct heist__item *it)
{
    struct heist__tk *t = caa_container_of(it, struct heist__tk, it);
    uint32_t st = HEIST__TS_NEW;
    /* acq_rel: against the canceller's CAS NEW -> DEAD; one wins. */
    if (!atomic_compare_exchange_strong_explicit(
            &t->tstate, &st, HEIST__TS_RUNNING, memory_order_acq_rel,
            memory_order_acquire)) {
        /* Cancelled before it started: completed already (its canceller
         * fired its list). */
        task_end(t);
        return;
    }
    if (t->group && atomic_load_explicit(&t->group->cancelling,
                                         memory_order_seq_cst)) {
        /* Its heist_run is cancelling its leftovers: never start it. We
         * won the CAS above, so we are the task's only completer (no
         * claim needed: fut.h). Ended first, as after a run: a cancel
         * that comes later finds neither NEW nor RUNNING and returns
         * false (the task is complete). seq_cst: as the exchange after a
         * run, against the canceller's CAS RUNNING -> CANCEL_REQ; a
         * request that came first changes nothing (cancelled either
         * way). */
        atomic_store_explicit(&t->tstate, HEIST__TS_ENDED,
                              memory_order_seq_cst);
        /* The settle fires the task's list, which may be long (every
         * waiter readied): the ends this worker owes to another count are
         * counted first, as before user code (heist__run_user; live.c,
         * "Deferred ends"). */
        heist__ends_flush_unless(heist__self_get(), heist__task_live(t));
        heist__fut_settle(&t->f, HEIST__ST_CANCELLED, NULL, ECANCELED);
        task_end(t);
        return;
    }
    void *r = heist__run_user(t, t->fn, t->arg, HEIST__TK_TASK,
                             (const void *)t->fn);
    /* seq_cst: against the canceller's CAS RUNNING -> CANCEL_REQ; the old
     * state says whether a cancel request came before the end. */
    uint32_t was = atomic_exchange_explicit(&t->tstate, HEIST__TS_ENDED,
                                            memory_order_seq_cst);
    /* Relaxed: heist_fail calls from this task's forks were joined, which
     * orders them before us. */
    int err = atomic_load_explicit(&t->fail_err, memory_order_relaxed);
    /* The only completer, as above. */
    if (err)
        heist__fut_settle(&t->f, HEIST__ST_FAILED, NULL, err);
    else if (was == HEIST__TS_CANCEL_REQ ||
             (t->group && atomic_load_explicit(&t->group->cancelling,
                                               memory_order_seq_cst)))
        heist__fut_settle(&t->f, HEIST__ST_CANCELLED, NULL, ECANCELED);
    else
        heist__fut_settle(&t->f, HEIST__ST_DONE, r, 0);
    task_end(t);
}

int heist_fail(int err)
{
    if (err <= 0 || err == ECANCELED)
        return EINVAL;
    struct heist__tk *t = heist__current_task();
    if (!t)
        return EPERM;
    /* Relaxed: read by the task's runner after the task's function (and
     * its joins) returned. */
    atomic_store_explicit(&t->fail_err, err, memory_order_relaxed);
    return 0;
}

bool heist_cancelling(void)
{
    struct heist__tk *t = heist__current_task();
    return t && heist__cancel_requested(t);
}

/* ---- groups (heist_run) ------------------------------------------------- */

int heist__group_init(struct heist__group *g, struct heist_sched *s)
{
    g->sched = s;
    pthread_mutex_lock(&s->lives_lock);
    g->live = s->lives_free;
    if (g->live)
        s->lives_free = g->live->next;
    pthread_mutex_unlock(&s->lives_lock);
    if (!g->live) {
        g->live = malloc(sizeof(*g->live));
        if (!g->live)
            return ENOMEM;
        if (heist__live_init(g->live, s->nworkers)) {
            free(g->live);
            return ENOMEM;
        }
    }
    g->nshards = s->nworkers + 1;
    g->shards = aligned_alloc(HEIST_CACHELINE,
                              g->nshards * sizeof(*g->shards));
    if (!g->shards) {
        heist__group_put_live(s, g->live);
        return ENOMEM;
    }
    for (unsigned i = 0; i < g->nshards; i++) {
        atomic_init(&g->shards[i].lock, 0);
        CDS_INIT_LIST_HEAD(&g->shards[i].waiting);
    }
    atomic_init(&g->cancelling, false);
    return 0;
}

void heist__group_put_live(struct heist_sched *s, struct heist__live *l)
{
    pthread_mutex_lock(&s->lives_lock);
    l->next = s->lives_free;
    s->lives_free = l;
    pthread_mutex_unlock(&s->lives_lock);
}

void heist__group_destroy(struct heist__group *g)
{
    /* Every task of g ended (heist__group_wait): each unlocked its shard
     * before its end counted down. */
    free(g->shards);
    /* Its count is zero (heist__group_wait); ends may still read it. */
    heist__group_put_live(g->sched, g->live);
}

void heist__group_cancel(struct heist__group *g)
{
    /* seq_cst: against heist__cancel_requested's loads; before the shards
     * are scanned (heist__task_wait_add has the argument). */
    atomic_store_explicit(&g->cancelling, true, memory_order_seq_cst);
    for (unsigned i = 0; i < g->nshards; i++) {
        struct heist__gshard *sh = &g->shards[i];
        heist__spin_lock(&sh->lock);
        struct heist__tk *t;
        cds_list_for_each_entry(t, &sh->waiting, glink) {
            heist__spin_lock(&t->lock);
            cancel_waits_locked(t);
            heist__spin_unlock(&t->lock);
        }
        heist__spin_unlock(&sh->lock);
    }
}

void heist__group_wait(struct heist__group *g)
{
    heist__live_wait(g->live);
}
