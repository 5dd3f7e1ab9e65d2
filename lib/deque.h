/*
 * deque.h - the per-worker work-stealing deque (internal).
 *
 * A split deque after Lace (T. van Dijk and J. van de Pol, "Lace: non-blocking
 * split deque for work-stealing", Euro-Par 2014 workshops; the split idea is
 * from Dinan et al., "Scalable work stealing", SC 2009). See deque.c for the
 * algorithm and its invariants.
 *
 * Items are non-NULL pointers. One thread, the owner, calls push and pop;
 * any number of other threads (thieves) call steal concurrently. Owner order
 * is LIFO (pop returns the newest item), thief order is FIFO (steal returns
 * the oldest).
 *
 * Memory: the ring grows when full; thieves may still read an old ring, so
 * old rings are kept until heist__deque_destroy (together they are smaller
 * than the current ring: see deque.c).
 */
#ifndef HEIST_DEQUE_H
#define HEIST_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct heist__ring; /* deque.c */

/* Fields are grouped by writer so that thieves and owner do not share a
 * cache line needlessly. */
struct heist__deque {
    /* Shared: written by thieves (CAS) and by the owner (CAS/store). The low
     * 32 bits are `tail` (next slot to steal), the high 32 bits `split` (one
     * past the last public slot). */
    _Alignas(64) _Atomic uint64_t ts;
    /* Set by a thief that found no public item (asks the owner to share);
     * cleared by the owner. */
    atomic_bool splitreq;
    /* Set by the owner when every public item was stolen and it has no
     * private item; tells thieves not to ask. */
    atomic_bool allstolen;
    /* The current ring; replaced (release) by the owner when it grows. */
    _Atomic(struct heist__ring *) ring;

    /* Owner-private. The fields up to o_inlined are also the public prefix
     * that the inline fork/join of heist/task_inline.h reads and writes
     * (struct heist__fj_worker; fork.h checks the offsets): keep them where
     * they are, or bump HEIST_ABI_VERSION. */
    _Alignas(64) uint32_t head;  /* one past the newest item */
    uint32_t o_split;            /* owner's copy of split */
    uint32_t o_cap;              /* o_ring's capacity */
    bool o_allstolen;            /* owner's copy of allstolen */
    _Atomic(void *) *o_slot;     /* o_ring's slots */
    /* Joins whose fork ran inline on the fast path (fork.c and the inline
     * header): written by the owner only (relaxed load and store), read
     * (relaxed) for statistics. */
    _Atomic uint64_t o_inlined;
    struct heist__ring *o_ring;  /* owner's copy of ring */
    struct heist__ring *o_retired; /* old rings, freed by destroy */
};

/* Result of heist__deque_steal when it returns NULL. */
enum heist__steal_status {
    HEIST__STEAL_OK = 0,
    HEIST__STEAL_EMPTY = 1, /* nothing public (the owner was asked to share) */
    HEIST__STEAL_LOST = 2,  /* lost a race with another thief or the owner */
};

/* Initializes an empty deque with room for 2^log2cap items (grows later).
 * Returns 0, EINVAL (log2cap not in 1..30) or ENOMEM. Not thread-safe. */
int heist__deque_init(struct heist__deque *dq, unsigned log2cap);

/* Frees the rings. Call only when no thread can steal any more (every thief
 * has been joined or has stopped stealing). */
void heist__deque_destroy(struct heist__deque *dq);

/* Owner only. Pushes item (not NULL). Returns 0, or ENOMEM if the deque was
 * full and could not grow (the item is then not pushed). Sets *published to
 * true when the push made items visible to thieves (the caller then wakes a
 * sleeping worker), else leaves it unchanged. */
int heist__deque_push_slow(struct heist__deque *dq, void *item,
                           bool *published);
static inline int heist__deque_push(struct heist__deque *dq, void *item,
                                    bool *published)
{
    uint32_t h = dq->head;
    /* Fast path: room, and nothing to publish (no thief asked: relaxed,
     * a hint; see deque.c). The slot stays private: no fence. */
    if (__builtin_expect(h < dq->o_cap && !dq->o_allstolen &&
                             !atomic_load_explicit(&dq->splitreq,
                                                   memory_order_relaxed),
                         1)) {
        atomic_store_explicit(&dq->o_slot[h], item, memory_order_relaxed);
        dq->head = h + 1;
        return 0;
    }
    return heist__deque_push_slow(dq, item, published);
}

/* Owner only. Pops the newest item, or returns NULL when every item pushed
 * and not popped has been stolen. It does not give back the positions of
 * stolen items (a thief may not have read its slot yet); pop_if does, for a
 * caller that then waits for the thief's acknowledgement (heist_join). A
 * deque used with push and pop alone therefore uses one more position for
 * each item stolen. The runtime uses pop_if only. */
void *heist__deque_pop(struct heist__deque *dq);

/* Owner only. Like pop, but only if the newest item is `item`: returns true
 * and removes it, or returns false and removes nothing when the newest item
 * is another one, or when `item` was stolen (then *stolen is set to true and
 * the slot is released, as pop would). */
bool heist__deque_pop_if_slow(struct heist__deque *dq, void *item,
                              bool *stolen);
static inline bool heist__deque_pop_if(struct heist__deque *dq, void *item,
                                       bool *stolen)
{
    uint32_t h = dq->head;
    /* Fast path: the newest item is private and is `item`. Relaxed: the
     * owner reads its own write of the slot. */
    if (__builtin_expect(h > dq->o_split &&
                             atomic_load_explicit(&dq->o_slot[h - 1],
                                                  memory_order_relaxed) ==
                                 item,
                         1)) {
        dq->head = h - 1;
        *stolen = false;
        return true;
    }
    return heist__deque_pop_if_slow(dq, item, stolen);
}

/* Any thread but the owner. Steals the oldest public item, or returns NULL
 * and sets *status (may be NULL) to EMPTY or LOST. */
void *heist__deque_steal(struct heist__deque *dq,
                         enum heist__steal_status *status);

/* Owner only: number of items pushed and neither popped nor known stolen. */
uint32_t heist__deque_size_owner(const struct heist__deque *dq);

/* Any thread: a hint that there is something to steal. */
bool heist__deque_has_public(const struct heist__deque *dq);

#endif /* HEIST_DEQUE_H */
