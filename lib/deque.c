/*
 * deque.c - the split work-stealing deque.
 *
 * The algorithm is Lace's (T. van Dijk and J. van de Pol, "Lace:
 * non-blocking split deque for work-stealing", Euro-Par 2014 workshops),
 * which splits a Chase-Lev style deque (D. Chase and Y. Lev, SPAA 2005) in
 * two so that the owner works on its private part with plain loads and
 * stores, without the store-load fence that every Chase-Lev `take` pays.
 *
 * Positions (not wrapped: the deque is one array of entries, of fixed
 * capacity, indexed by position):
 *
 *     0 ... tail ........ split ........ head ... capacity
 *           |  public     |  private     |
 *     [0, tail)      stolen (or popped, below a stolen item)
 *     [tail, split)  public: thieves may take them, oldest first
 *     [split, head)  private: only the owner sees them
 *
 * `tail` and `split` share one 64-bit word `ts`, so a thief claims the item
 * at `tail` with one CAS that also checks `split` did not move, and the
 * owner moves `split` with a CAS that also checks `tail`. Only thieves move
 * `tail` up (except when the owner restarts an empty deque); only the owner
 * moves `split`.
 *
 * Owner:
 *  - push writes the entry at `head` (the forked function and its
 *    argument) and bumps `head`: private, no fence.
 *    If every public item has been stolen (`o_allstolen`), the new item is
 *    made public at once (ts = {head, head+1}), so idle workers find work
 *    without asking. If a thief asked for work (`splitreq`), half of the
 *    private part is made public (split moves up).
 *  - pop takes the newest item. When it is private (head > split) that is a
 *    plain decrement. Otherwise the owner shrinks the public part by half
 *    with a CAS (split moves down) and takes the item if it became private;
 *    if the public part was empty, every remaining item was stolen.
 * Thief: reads ts; if tail < split it CASes tail+1 and then reads the
 *    entry's function and argument, then acknowledges it (a release store
 *    into its sync word, fork.c); else it raises `splitreq` (unless
 *    `allstolen` says there is nothing).
 *
 * Invariants:
 *  I1 tail <= split, and !o_allstolen implies split == o_split <= head.
 *  I2 every entry in [tail, split) was written before ts took that value
 *     (the owner's release/seq_cst write of ts publishes it).
 *  I3 the owner never rewrites an entry at a position a thief has claimed
 *     until that thief has acknowledged it: positions below tail are
 *     claimed, and the owner reuses one only after popping it (pop returns
 *     "stolen") and after the thief's acknowledgement (fork.c waits for a
 *     non-zero sync word, stored by the thief after it read the entry).
 * ABA on ts is benign: whenever ts == {t, s} with t < s the entry at t is
 * an unclaimed public one (I2), whichever epoch a stale thief read it in.
 *
 * No growth: the array has its capacity for good, so an entry's address
 * names it from its fork to its join (the inline join compares it with
 * top; a thief acknowledges the entry it claimed, which a copy to a larger
 * array would leave behind). A full deque refuses the push (ENOMEM) and
 * the fork runs at once (fork.c). The capacity costs address space, not
 * memory: the kernel commits the array's pages as positions are first
 * used. An empty deque restarts from position 0 when a task ends or a
 * fiber with no saved forks resumes; a fiber that saved forks resumes
 * above them, and its joins of them bring the deque back down (fork.c).
 */
#include "deque.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define TS(t, s) (((uint64_t)(s) << 32) | (uint32_t)(t))
#define TS_TAIL(v) ((uint32_t)(v))
#define TS_SPLIT(v) ((uint32_t)((v) >> 32))

int heist__deque_init(struct heist__deque *dq, unsigned log2cap)
{
    if (log2cap < 1 || log2cap > 30)
        return EINVAL;
    size_t cap = (size_t)1 << log2cap;
    /* Not zeroed: an entry is written by its push before anyone reads it,
     * and its sync word when it is published (fork.c). */
    /* A mapping of its own: the kernel commits its pages as positions are
     * first used (and page-aligned: two entries to a cache line). */
    void *m = mmap(NULL, cap * sizeof(struct heist__fjent),
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return ENOMEM;
    struct heist__fjent *e = m;
    atomic_init(&dq->ts, TS(0, 0));
    atomic_init(&dq->splitreq, false);
    atomic_init(&dq->allstolen, true);
    dq->ent = e;
    dq->o_allstolen = true;
    dq->o_cap = (uint32_t)cap;
    dq->o_base = 0;
    memset(&dq->own, 0, sizeof dq->own);
    dq->fj = &dq->own;
    dq->publish = NULL;
    atomic_init(&dq->view, &dq->own);
    heist__dq_set_head(dq, 0);
    heist__dq_set_split(dq, 0);
    heist__dq_set_limit(dq);
    atomic_init(&dq->o_inlined, 0);
    return 0;
}

void heist__deque_destroy(struct heist__deque *dq)
{
    if (dq->ent)
        munmap(dq->ent, (size_t)dq->o_cap * sizeof(struct heist__fjent));
    dq->ent = NULL;
}

/*
 * A thief's request for work reaches the owner's fast fork through the
 * view's limit: the thief raises splitreq, then stores NULL into the limit
 * of the view it reads from `view` (all three seq_cst). The owner's slow
 * path (after an acquire fence: its fast path read limit without one)
 * serves splitreq, and heist__dq_set_limit stores the new limit and then
 * reads splitreq again (seq_cst both): a request that the owner's store
 * overwrote is seen by that load, since in the single order of seq_cst
 * operations the thief's splitreq store comes before its NULL store. The
 * same holds for a thief that read the old view while bind switched it:
 * bind stores `view` before heist__dq_set_limit reads splitreq.
 */
void heist__dq_set_limit(struct heist__deque *dq)
{
    struct heist__fjent *limit = dq->o_allstolen ? NULL : dq->ent + dq->o_cap;
    /* seq_cst: see above (pairs with the thieves' NULL stores). */
    __atomic_store_n(&dq->fj->limit, limit, __ATOMIC_SEQ_CST);
    if (limit && atomic_load_explicit(&dq->splitreq, memory_order_seq_cst))
        __atomic_store_n(&dq->fj->limit, (struct heist__fjent *)NULL,
                         __ATOMIC_RELAXED);
}

void heist__deque_bind(struct heist__deque *dq, struct heist__fj *fj)
{
    /* Field by field: thieves may store into the old view's limit now (it
     * is set anew below). */
    fj->top = dq->fj->top;
    fj->split = dq->fj->split;
    fj->inlined = 0;
    dq->fj = fj;
    /* seq_cst: thieves read the view to store NULL into (see above);
     * statistics readers load it seq_cst too (a live thread's view). */
    atomic_store_explicit(&dq->view, fj, memory_order_seq_cst);
    heist__dq_set_limit(dq);
}

void heist__deque_unbind(struct heist__deque *dq)
{
    struct heist__fj *fj = dq->fj;
    if (fj == &dq->own)
        return;
    /* Relaxed: statistics (the owner is the only writer of both). */
    atomic_fetch_add_explicit(&dq->o_inlined, fj->inlined,
                              memory_order_relaxed);
    dq->own.top = fj->top;
    dq->own.split = fj->split;
    dq->fj = &dq->own;
    /* seq_cst: as in bind. No thief runs any more (the caller's contract),
     * so nobody writes fj after this. */
    atomic_store_explicit(&dq->view, &dq->own, memory_order_seq_cst);
    memset(fj, 0, sizeof *fj);
}

uint64_t heist__deque_inlined(const struct heist__deque *dq)
{
    /* seq_cst: pairs with the stores in bind/unbind, so the view is the
     * deque's own or a live thread's (a reader racing the unbind at
     * scheduler shutdown may count the last joins twice or not at all:
     * statistics). Relaxed loads of the counts: written by the owner only
     * (its fast path's add is one store, heist/task_inline.h). */
    const struct heist__fj *fj =
        atomic_load_explicit(&dq->view, memory_order_seq_cst);
    uint64_t n = atomic_load_explicit(&dq->o_inlined, memory_order_relaxed);
    if (fj != &dq->own)
        n += __atomic_load_n(&fj->inlined, __ATOMIC_RELAXED);
    return n;
}

int heist__deque_push_slow(struct heist__deque *dq, heist_fn fn, void *arg,
                           bool *published)
{
    /* Acquire: the fast path's load of limit may have read a thief's NULL
     * (seq_cst store); with this fence its earlier splitreq store is
     * visible below. */
    atomic_thread_fence(memory_order_acquire);
    uint32_t h = heist__dq_head(dq);
    if (heist__unlikely(h == dq->o_cap)) {
        heist__dq_set_limit(dq); /* a thief's NULL, if any, stays served */
        return ENOMEM;
    }
    /* Plain stores: the entry becomes visible to thieves only through a
     * later release (seq_cst) write of ts, below or in a later push/pop
     * (I2), and no thief reads this position before that (I3). */
    struct heist__fjent *item = dq->ent + h;
    item->fn = fn;
    item->arg = arg;
    heist__dq_set_head(dq, h + 1);

    if (heist__unlikely(dq->o_allstolen)) {
        if (dq->publish)
            dq->publish(item);
        /* Every earlier item is gone: publish this one alone. A plain store
         * is safe: while tail == split no thief CASes ts successfully (a
         * stale thief's expected value has tail < split, and ts has held
         * tail == split since). seq_cst: release for I2 (pairs with the
         * thief's CAS), and it orders before the sleepers load in the wake
         * protocol (park.c). */
        atomic_store_explicit(&dq->ts, TS(h, h + 1), memory_order_seq_cst);
        /* Relaxed: a hint for thieves; a stale value costs one spurious
         * splitreq at most. */
        atomic_store_explicit(&dq->allstolen, false, memory_order_relaxed);
        dq->o_allstolen = false;
        heist__dq_set_split(dq, h + 1);
        *published = true;
    } else if (heist__unlikely(atomic_load_explicit(
                   &dq->splitreq, memory_order_relaxed))) {
        /* A thief asked for work (relaxed store in steal; only a hint, so
         * relaxed both sides). Clear first so a request raised after our
         * CAS stays pending. */
        atomic_store_explicit(&dq->splitreq, false, memory_order_relaxed);
        uint32_t ns = (dq->o_split + h + 2) / 2;
        if (dq->publish)
            for (uint32_t i = dq->o_split; i < ns; i++)
                dq->publish(dq->ent + i);
        uint64_t v = atomic_load_explicit(&dq->ts, memory_order_relaxed);
        /* seq_cst CAS: release for I2 (pairs with the thief's acquire CAS)
         * and the store-load point of the wake protocol. Only tail changes
         * under us; retry until split is moved. */
        while (!atomic_compare_exchange_weak_explicit(
            &dq->ts, &v, TS(TS_TAIL(v), ns), memory_order_seq_cst,
            memory_order_relaxed))
            ;
        heist__dq_set_split(dq, ns);
        *published = true;
    }
    /* Restores limit (a thief's NULL, served or stale). */
    heist__dq_set_limit(dq);
    return 0;
}

/* Owner, head == o_split, !o_allstolen: moves split down to take back half
 * of the public part. Returns false if the public part was empty (every
 * item at or below head is then stolen; o_allstolen is set). */
static bool shrink(struct heist__deque *dq)
{
    /* Relaxed: a first guess for the CAS below, which checks it. */
    uint64_t v = atomic_load_explicit(&dq->ts, memory_order_relaxed);
    for (;;) {
        uint32_t t = TS_TAIL(v), s = TS_SPLIT(v);
        if (t == s) {
            /* Relaxed: a hint for thieves (stops their split requests). */
            atomic_store_explicit(&dq->allstolen, true, memory_order_relaxed);
            dq->o_allstolen = true;
            heist__dq_set_limit(dq);
            return false;
        }
        uint32_t ns = t + (s - t) / 2; /* t <= ns < s: entry s-1 private */
        /* seq_cst CAS: it fails if a thief claimed an item since we read
         * ts (thieves CAS ts too), so no thief can hold a position >= ns. */
        if (atomic_compare_exchange_weak_explicit(&dq->ts, &v, TS(t, ns),
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            heist__dq_set_split(dq, ns);
            return true;
        }
    }
}

struct heist__fjent *heist__deque_pop(struct heist__deque *dq)
{
    uint32_t h = heist__dq_head(dq);
    if (h == dq->o_base)
        return NULL;
    if (heist__likely(h > dq->o_split) ||
        (!dq->o_allstolen && shrink(dq))) {
        heist__dq_set_head(dq, h - 1);
        return dq->ent + h - 1;
    }
    /* The newest item was stolen; so was everything below it. */
    return NULL;
}

bool heist__deque_pop_if_slow(struct heist__deque *dq,
                              const struct heist__fjent *e, bool *stolen)
{
    uint32_t h = heist__dq_head(dq);
    *stolen = false;
    if (heist__unlikely(h == dq->o_base || e != dq->ent + h - 1))
        return false;
    if (heist__likely(h > dq->o_split) ||
        (!dq->o_allstolen && shrink(dq))) {
        heist__dq_set_head(dq, h - 1);
        return true;
    }
    heist__dq_set_head(dq, h - 1);
    *stolen = true;
    return false;
}

struct heist__fjent *heist__deque_steal(struct heist__deque *dq, bool claim,
                                        heist_fn *fn, void **arg,
                                        enum heist__steal_status *status)
{
    /* Acquire: pairs with the owner's seq_cst store/CAS of ts that
     * published [tail, split) (I2); the CAS below re-validates it. */
    uint64_t v = atomic_load_explicit(&dq->ts, memory_order_acquire);
    uint32_t t = TS_TAIL(v), s = TS_SPLIT(v);
    if (t >= s) {
        /* Relaxed loads: splitreq and allstolen are hints (see push). The
         * request: seq_cst stores of splitreq and of NULL into the owner's
         * view's limit, and a seq_cst load of the view between them (see
         * heist__dq_set_limit). */
        if (!atomic_load_explicit(&dq->allstolen, memory_order_relaxed) &&
            !atomic_load_explicit(&dq->splitreq, memory_order_relaxed)) {
            atomic_store_explicit(&dq->splitreq, true, memory_order_seq_cst);
            struct heist__fj *fj =
                atomic_load_explicit(&dq->view, memory_order_seq_cst);
            __atomic_store_n(&fj->limit, (struct heist__fjent *)NULL,
                             __ATOMIC_SEQ_CST);
        }
        if (status)
            *status = HEIST__STEAL_EMPTY;
        return NULL;
    }
    if (!claim) {
        if (status)
            *status = HEIST__STEAL_LOST;
        return NULL;
    }
    /* seq_cst CAS: acquire pairs with the owner's publishing write (the
     * entry is visible after it); it is ordered against the owner's shrink
     * CAS, so an entry is taken by one side. */
    if (!atomic_compare_exchange_strong_explicit(&dq->ts, &v, TS(t + 1, s),
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        if (status)
            *status = HEIST__STEAL_LOST;
        return NULL;
    }
    /* Plain reads: the owner wrote them before publishing position t (I2,
     * ordered by our acquire CAS) and rewrites them only after our
     * acknowledgement (I3), which the caller stores after these reads. */
    struct heist__fjent *e = dq->ent + t;
    *fn = e->fn;
    *arg = e->arg;
    if (status)
        *status = HEIST__STEAL_OK;
    return e;
}

void heist__deque_rebase(struct heist__deque *dq, uint32_t pos)
{
    /* A plain (seq_cst) store: the deque holds no public entry, so ts has
     * tail >= split, and a thief's CAS, which expects tail < split, fails
     * whichever value it read before; after the store, as before it (I2:
     * nothing public until a push publishes). seq_cst: as every owner
     * write of ts (the wake protocol's order, park.c). */
    atomic_store_explicit(&dq->ts, TS(pos, pos), memory_order_seq_cst);
    dq->o_base = pos;
    heist__dq_set_head(dq, pos);
    heist__dq_set_split(dq, pos);
    heist__dq_set_limit(dq);
}

uint32_t heist__deque_size_owner(const struct heist__deque *dq)
{
    if (dq->o_allstolen)
        return 0;
    /* Relaxed: a size hint; tail only grows, so it may over-count. */
    uint64_t v = atomic_load_explicit(&dq->ts, memory_order_relaxed);
    return heist__dq_head(dq) - TS_TAIL(v);
}

bool heist__deque_has_public(const struct heist__deque *dq)
{
    /* seq_cst: the re-check of a worker about to sleep (park.c) must not
     * miss an item published before the publisher read `sleepers`. */
    uint64_t v = atomic_load_explicit(&dq->ts, memory_order_seq_cst);
    return TS_TAIL(v) < TS_SPLIT(v);
}
