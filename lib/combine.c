/*
 * combine.c - heist_gather and heist_any: futures made of other futures.
 *
 * A gather or an any holds a reference to each child and pushes one node
 * on each child's list (a gather: each child not done already; those it
 * counts at once, see multi_new); the nodes together hold one reference
 * to the combined future, dropped by the last node to fire (`remaining`
 * counts the nodes not yet fired: one atomic per child, not two). A child's
 * completion fires its node: an any completes with the child's index; a
 * gather completes when the last node fires (every child done) and fails
 * at once with the first child that fails or is cancelled. Whoever
 * completes the combined future drops the children's references, once
 * (`released`), so a done gather does not keep children that never
 * complete alive through it (a completion while multi_new still fills
 * the children in, which it does in one pass, leaves that to the end of
 * the set-up: `setup`); cancelling a gather first cancels its children.
 */
#include "fut.h"

#include <errno.h>
#include <stdlib.h>

/* One per child: in the child's list. */
struct gnode {
    struct heist__lnode l;
    size_t idx;
};
struct multi {
    struct heist_future f;
    size_t n;
    _Atomic size_t remaining;    /* nodes not yet fired */
    atomic_bool released;        /* children's references dropped */
    /* A child was freed pending (its node fired, not completed: after
     * m's release, so m is complete or orphaned, multi_orphan): a gather
     * is then never done. */
    atomic_bool lost;
    /* Set while multi_new fills kids[] and pushes the nodes, in one pass:
     * a completion meanwhile leaves the release to the set-up's end. */
    atomic_bool setup;
    heist_future **kids;
    struct gnode nodes[];
};

static struct multi *multi_of(struct gnode *g)
{
    return caa_container_of(g - g->idx, struct multi, nodes[0]);
}

/* How far ahead the loops over the children prefetch: a gather of many
 * futures made long before touches each one's first line once per loop,
 * and these are cache misses; issued ahead, they overlap. */
#define KID_PREFETCH 8

static inline void kid_prefetch(heist_future *const *fs, size_t i, size_t n)
{
    if (i + KID_PREFETCH < n)
        __builtin_prefetch(fs[i + KID_PREFETCH], 1);
}

/* Drops the children's references, once. */
static void multi_release(struct multi *m);

/* A completer's release: now, or, while the set-up runs (kids[] is not
 * all written yet), at its end. seq_cst: against the set-up's store of
 * `setup` and its load of m's state (multi_new): either this load sees
 * the store, or the set-up's load sees our completion (which came before
 * this load); both may release, and `released` makes it once. */
static void multi_release_done(struct multi *m)
{
    if (atomic_load_explicit(&m->setup, memory_order_seq_cst))
        return;
    multi_release(m);
}

static void multi_release(struct multi *m)
{
    /* acq_rel: one caller does it. */
    if (atomic_exchange_explicit(&m->released, true, memory_order_acq_rel))
        return;
    for (size_t i = 0; i < m->n; i++) {
        if (!m->kids[i])
            continue; /* done at set-up: never held */
        kid_prefetch(m->kids, i, m->n);
        heist_future_unref(m->kids[i]);
    }
}

static void multi_free(heist_future *f)
{
    multi_release((struct multi *)f);
    free(f);
}

static bool any_cancel(heist_future *f)
{
    bool won = heist__fut_complete(f, HEIST__ST_CANCELLED, NULL,
                                   ECANCELED) == 0;
    if (won)
        multi_release((struct multi *)f);
    return won;
}

static bool gather_cancel(heist_future *f)
{
    struct multi *m = (struct multi *)f;
    /* Hold the children while we cancel them. */
    heist_future_ref(f);
    bool won = heist__fut_complete(f, HEIST__ST_CANCELLED, NULL,
                                   ECANCELED) == 0;
    if (won) {
        /* Only the completion's winner releases the children: we still
         * hold them. */
        for (size_t i = 0; i < m->n; i++)
            if (m->kids[i]) /* NULL: done at set-up */
                heist_future_cancel(m->kids[i]);
        multi_release(m);
    }
    heist_future_unref(f);
    return won;
}

/* Nobody but m's nodes will hold m once the caller's reference goes (it
 * is still held now): nobody can await m, cancel it or register on it any
 * more. Its children are dropped now, not when m completes: a child that
 * only m held can never complete (nobody else can complete it), and it
 * would keep m, through its node, as m keeps it: both were leaked. Such a
 * child is freed pending, and its node fires (not completed), dropping m
 * with the last one; a child that someone else holds (a running task)
 * completes m as before, and m's then-callbacks run then. Nothing reads
 * kids[] after the release: only a cancel of m would, and nobody can
 * cancel it now. */
static void multi_orphan(heist_future *f)
{
    multi_release((struct multi *)f);
}

static const struct heist__fut_ops gather_ops = {multi_free, gather_cancel,
                                                 multi_orphan};
static const struct heist__fut_ops any_ops = {multi_free, any_cancel,
                                              multi_orphan};

/* A node fired: its child completed (or was seen completed at set-up),
 * or, with !completed, was freed pending (only after m released it: m is
 * complete already, or orphaned, and then it must not complete as done
 * when its last node fires: `lost`). */
static void node_fired(struct gnode *g, heist_future *kid, bool completed)
{
    struct multi *m = multi_of(g);
    int r = EBUSY;
    if (completed) {
        /* Acquire: kid is completed (we run from its completion or after
         * its terminal state was seen). */
        uintptr_t st = atomic_load_explicit(&kid->state, memory_order_acquire);
        if (m->f.ops == &any_ops)
            r = heist__fut_complete(&m->f, HEIST__ST_DONE,
                                    (void *)(uintptr_t)g->idx, 0);
        else if (st != HEIST__ST_DONE)
            r = heist__fut_complete(&m->f, HEIST__ST_FAILED, NULL,
                                    st == HEIST__ST_FAILED ? kid->err
                                                           : ECANCELED);
    }
    /* We completed m and will release its children: hold m meanwhile.
     * Once our node's decrement below is made, the other nodes may drop
     * the nodes' reference (a child that the release frees pending fires
     * its node), and the program its own (it awaited m): m was freed
     * under the release's loop (ThreadSanitizer saw it in any_in_task;
     * test_future's release_of_children_frees_the_combined_future makes
     * it happen on one thread, where AddressSanitizer reports it). Taken
     * before the decrement, while our node still holds the nodes'
     * reference. A gather completed by its last node holds that reference
     * until the end. */
    bool held = r == 0;
    if (held)
        heist_future_ref(&m->f);
    /* Relaxed: published to the last node's firer by the decrement below
     * (acq_rel). */
    if (!completed)
        atomic_store_explicit(&m->lost, true, memory_order_relaxed);
    /* acq_rel: the last node's firer sees every other's (a gather is done
     * when all its children are; whoever drops the nodes' reference last
     * sees every node's use of m). */
    bool last = atomic_fetch_sub_explicit(&m->remaining, 1,
                                          memory_order_acq_rel) == 1;
    /* Every child completed; if one failed, m is complete already and this
     * completion fails. */
    if (last && m->f.ops == &gather_ops &&
        /* Relaxed: every node's store came before its decrement, which
         * our acq_rel decrement (the last) read after. */
        !atomic_load_explicit(&m->lost, memory_order_relaxed) &&
        heist__fut_complete(&m->f, HEIST__ST_DONE, NULL, 0) == 0)
        r = 0;
    if (r == 0)
        multi_release_done(m);
    if (last)
        heist_future_unref(&m->f); /* the nodes' reference */
    if (held)
        heist_future_unref(&m->f);
}

static void gnode_fire(struct heist__lnode *l, heist_future *kid,
                       bool completed)
{
    node_fired((struct gnode *)l, kid, completed);
}

static heist_future *multi_new(const struct heist__fut_ops *ops,
                               heist_future *const *fs, size_t n)
{
    if ((n && !fs) || (ops == &any_ops && n == 0)) {
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
    struct heist_sched *s = heist__current_sched();
    uint64_t sid = s ? s->id : 0;
    for (size_t i = 0; !s && i < n; i++) {
        s = fs[i]->sched;
        sid = fs[i]->sched_id;
    }
    /* References: the caller's, the nodes' (one for all, dropped by the
     * last node to fire; none when n is 0), and one for this set-up
     * (dropped at the end of it, so a completion during it cannot free
     * m). */
    heist__fut_init(&m->f, ops, NULL, n ? 3 : 2);
    /* Not through heist__fut_init, which reads s->id: a child's scheduler
     * may have been freed (its futures stay usable), so s is only a
     * pointer here, named with the id its child recorded. */
    m->f.sched = s;
    m->f.sched_id = sid;
    m->n = n;
    atomic_init(&m->remaining, n);
    atomic_init(&m->released, false);
    atomic_init(&m->lost, false);
    atomic_init(&m->setup, true);
    m->kids = (heist_future **)&m->nodes[n];
    /* A gather's children that are done already (a gather of finished
     * tasks, the common case after the spawning loop ran ahead) need no
     * reference, no node and no decrement each: they are counted here and
     * taken off `remaining` at once below; kids[i] NULL marks them (the
     * release and the cancel skip them). Acquire: pairs with the
     * completer's exchange, as a node's firing would; a done child stays
     * done. An any, or a child that failed or is pending, goes the
     * general way. */
    bool gather = ops == &gather_ops;
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        kid_prefetch(fs, i, n);
        if (gather && atomic_load_explicit(&fs[i]->state,
                                           memory_order_acquire) ==
                          HEIST__ST_DONE) {
            m->kids[i] = NULL;
            done++;
            continue;
        }
        /* The reference, then the node, in one pass over the children
         * (a second pass cost 6% of a fan-in of 100,000 tasks on 1
         * worker): a node that fires now cannot release kids[] before
         * the set-up ends (setup). */
        m->kids[i] = heist_future_ref(fs[i]);
        m->nodes[i].idx = i;
        m->nodes[i].l.fire = gnode_fire;
        if (!heist__fut_push(fs[i], &m->nodes[i].l))
            node_fired(&m->nodes[i], fs[i], true);
    }
    if (n == 0)
        heist__fut_complete(&m->f, HEIST__ST_DONE, NULL, 0);
    /* seq_cst store, then seq_cst load: see multi_release_done. A
     * completion during the set-up (a child failed, an any's first child)
     * left the release to us. */
    atomic_store_explicit(&m->setup, false, memory_order_seq_cst);
    if (heist__st_terminal(
            atomic_load_explicit(&m->f.state, memory_order_seq_cst)))
        multi_release(m);
    if (done) {
        /* The done children's share of `remaining`, as node_fired takes
         * one (acq_rel: the same argument; whoever brings it to zero is
         * the last). Until this subtraction no firer can reach zero, and
         * the set-up reference keeps m. */
        bool last = atomic_fetch_sub_explicit(&m->remaining, done,
                                              memory_order_acq_rel) == done;
        if (last && heist__fut_complete(&m->f, HEIST__ST_DONE, NULL, 0) == 0)
            multi_release(m);
        if (last)
            heist_future_unref(&m->f); /* the nodes' reference */
    }
    heist_future_unref(&m->f);
    return &m->f;
}

heist_future *heist_gather(heist_future *const *fs, size_t n)
{
    return multi_new(&gather_ops, fs, n);
}

heist_future *heist_any(heist_future *const *fs, size_t n)
{
    return multi_new(&any_ops, fs, n);
}
