/*
 * deque.c - the split work-stealing deque.
 *
 * The algorithm is Lace's (T. van Dijk and J. van de Pol, "Lace:
 * non-blocking split deque for work-stealing", Euro-Par 2014 workshops),
 * which splits a Chase-Lev style deque (D. Chase and Y. Lev, SPAA 2005) in
 * two so that the owner works on its private part with plain loads and
 * stores, without the store-load fence that every Chase-Lev `take` pays.
 *
 * Positions (not wrapped: the ring is a growable array indexed by position):
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
 *  - push writes the slot at `head` and bumps `head`: private, no fence.
 *    If every public item has been stolen (`o_allstolen`), the new item is
 *    made public at once (ts = {head, head+1}), so idle workers find work
 *    without asking. If a thief asked for work (`splitreq`), half of the
 *    private part is made public (split moves up).
 *  - pop takes the newest item. When it is private (head > split) that is a
 *    plain decrement. Otherwise the owner shrinks the public part by half
 *    with a CAS (split moves down) and takes the item if it became private;
 *    if the public part was empty, every remaining item was stolen.
 * Thief: reads ts; if tail < split it CASes tail+1 and then reads the slot;
 *    else it raises `splitreq` (unless `allstolen` says there is nothing).
 *
 * Invariants:
 *  I1 tail <= split, and !o_allstolen implies split == o_split <= head.
 *  I2 every slot in [tail, split) was written before ts took that value
 *     (the owner's release/seq_cst write of ts publishes it).
 *  I3 the owner never rewrites a slot at a position a thief has claimed
 *     until that thief has read it: positions below tail are claimed, and
 *     the owner reuses one only after popping it (pop returns "stolen") and
 *     after the stolen item has told it so (heist_join waits for the frame's
 *     `thief` field, written by the thief after reading the slot).
 * ABA on ts is benign: whenever ts == {t, s} with t < s the slot at t holds
 * an unclaimed public item (I2), whichever epoch a stale thief read it in.
 *
 * Growth: when head reaches the capacity the owner copies the live slots to
 * a ring twice as large and publishes it (release); a thief that still reads
 * the old ring finds the same pointer there, because claimed slots are never
 * rewritten (I3). Old rings stay allocated until the deque is destroyed,
 * when no thief can run: a thief may hold an old ring's address for any
 * time, and without a grace period nothing else could tell when it is done.
 * The rings only double, so the old ones together are smaller than the
 * current one: growth costs at most twice the memory, and needs no
 * reclamation thread (liburcu's call_rcu starts one lazily and aborts the
 * process when it cannot: issue "Nothing lost under faults").
 */
#include "deque.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct heist__ring {
    struct heist__ring *retired_next; /* the owner's list of old rings */
    uint32_t capacity;
    _Atomic(void *) slot[]; /* relaxed: a slow thief may read a slot the
                               owner writes; ordering comes from ts */
};

#define TS(t, s) (((uint64_t)(s) << 32) | (uint32_t)(t))
#define TS_TAIL(v) ((uint32_t)(v))
#define TS_SPLIT(v) ((uint32_t)((v) >> 32))

static struct heist__ring *ring_new(uint32_t capacity)
{
    struct heist__ring *r =
        malloc(sizeof(*r) + (size_t)capacity * sizeof(r->slot[0]));
    if (!r)
        return NULL;
    r->capacity = capacity;
    for (uint32_t i = 0; i < capacity; i++)
        atomic_init(&r->slot[i], NULL);
    return r;
}

int heist__deque_init(struct heist__deque *dq, unsigned log2cap)
{
    if (log2cap < 1 || log2cap > 30)
        return EINVAL;
    struct heist__ring *r = ring_new(1u << log2cap);
    if (!r)
        return ENOMEM;
    atomic_init(&dq->ts, TS(0, 0));
    atomic_init(&dq->splitreq, false);
    atomic_init(&dq->allstolen, true);
    atomic_init(&dq->ring, r);
    dq->o_retired = NULL;
    dq->o_allstolen = true;
    dq->o_ring = r;
    dq->o_slot = r->slot;
    dq->o_cap = r->capacity;
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
    struct heist__ring *r = dq->o_retired;
    while (r) {
        struct heist__ring *next = r->retired_next;
        free(r);
        r = next;
    }
    dq->o_retired = NULL;
    free(dq->o_ring);
    dq->o_ring = NULL;
    /* Relaxed: no thief runs any more (the caller's contract). */
    atomic_store_explicit(&dq->ring, NULL, memory_order_relaxed);
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
    void **limit =
        dq->o_allstolen ? NULL : (void **)(void *)&dq->o_slot[dq->o_cap];
    /* seq_cst: see above (pairs with the thieves' NULL stores). */
    __atomic_store_n(&dq->fj->limit, limit, __ATOMIC_SEQ_CST);
    if (limit && atomic_load_explicit(&dq->splitreq, memory_order_seq_cst))
        __atomic_store_n(&dq->fj->limit, (void **)NULL, __ATOMIC_RELAXED);
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

/* Owner: doubles the ring. Returns 0 or ENOMEM. */
static int grow(struct heist__deque *dq)
{
    struct heist__ring *old = dq->o_ring;
    if (old->capacity >= (1u << 31))
        return ENOMEM;
    struct heist__ring *r = ring_new(old->capacity * 2);
    if (!r)
        return ENOMEM;
    uint32_t head = heist__dq_head(dq);
    for (uint32_t i = 0; i < head; i++) {
        /* Only the owner writes slots: relaxed reads see its own writes. */
        void *p = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        atomic_store_explicit(&r->slot[i], p, memory_order_relaxed);
    }
    /* Release: pairs with the acquire load of `ring` in steal, so a thief
     * that sees the new ring sees the copied slots. */
    atomic_store_explicit(&dq->ring, r, memory_order_release);
    dq->o_ring = r;
    dq->o_slot = r->slot;
    dq->o_cap = r->capacity;
    /* The view's addresses move to the new ring. (Frames forked before
     * record slots of the old one: their joins take the slow path.) */
    heist__dq_set_head(dq, head);
    heist__dq_set_split(dq, dq->o_split);
    heist__dq_set_limit(dq);
    old->retired_next = dq->o_retired; /* freed with the deque */
    dq->o_retired = old;
    return 0;
}

int heist__deque_push_slow(struct heist__deque *dq, void *item,
                           bool *published)
{
    /* Acquire: the fast path's load of limit may have read a thief's NULL
     * (seq_cst store); with this fence its earlier splitreq store is
     * visible below. */
    atomic_thread_fence(memory_order_acquire);
    uint32_t h = heist__dq_head(dq);
    if (heist__unlikely(h == dq->o_cap)) {
        int err = grow(dq);
        if (err)
            return err;
    }
    /* Relaxed: the slot becomes visible to thieves only through a later
     * release (seq_cst) write of ts, below or in a later push/pop (I2). */
    atomic_store_explicit(&dq->o_ring->slot[h], item, memory_order_relaxed);
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
                /* Relaxed: the owner reads its own writes. */
                dq->publish(atomic_load_explicit(&dq->o_slot[i],
                                                 memory_order_relaxed));
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
    /* Restores limit (a thief's NULL, served or stale, or the ring's new
     * end). */
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
        uint32_t ns = t + (s - t) / 2; /* t <= ns < s: slot s-1 private */
        /* seq_cst CAS: it fails if a thief claimed an item since we read
         * ts (thieves CAS ts too), so no thief can hold a slot >= ns. */
        if (atomic_compare_exchange_weak_explicit(&dq->ts, &v, TS(t, ns),
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            heist__dq_set_split(dq, ns);
            return true;
        }
    }
}

void *heist__deque_pop(struct heist__deque *dq)
{
    uint32_t h = heist__dq_head(dq);
    if (h == 0)
        return NULL;
    if (heist__likely(h > dq->o_split) ||
        (!dq->o_allstolen && shrink(dq))) {
        heist__dq_set_head(dq, h - 1);
        /* Relaxed: the owner reads its own write (thieves never write
         * slots). */
        return atomic_load_explicit(&dq->o_ring->slot[h - 1],
                                    memory_order_relaxed);
    }
    /* The newest item was stolen; so was everything below it. */
    return NULL;
}

bool heist__deque_pop_if_slow(struct heist__deque *dq, void *item,
                              bool *stolen)
{
    uint32_t h = heist__dq_head(dq);
    *stolen = false;
    if (heist__unlikely(h == 0))
        return false;
    /* Relaxed: the owner reads its own write. */
    void *newest =
        atomic_load_explicit(&dq->o_ring->slot[h - 1], memory_order_relaxed);
    if (heist__unlikely(newest != item))
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

void *heist__deque_steal(struct heist__deque *dq,
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
            __atomic_store_n(&fj->limit, (void **)NULL, __ATOMIC_SEQ_CST);
        }
        if (status)
            *status = HEIST__STEAL_EMPTY;
        return NULL;
    }
    /* seq_cst CAS: acquire pairs with the owner's publishing write (the
     * slot and the item it points to are visible after it); it is ordered
     * against the owner's shrink CAS, so an item is taken by one side. */
    if (!atomic_compare_exchange_strong_explicit(&dq->ts, &v, TS(t + 1, s),
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        if (status)
            *status = HEIST__STEAL_LOST;
        return NULL;
    }
    /* Acquire: pairs with the release store in grow(); the ring we get
     * holds slot t (the old one too: I3). */
    struct heist__ring *r = atomic_load_explicit(&dq->ring,
                                                 memory_order_acquire);
    void *item = atomic_load_explicit(&r->slot[t], memory_order_relaxed);
    if (status)
        *status = HEIST__STEAL_OK;
    return item;
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
