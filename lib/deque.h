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

#include "util.h" /* and through it heist/task.h: struct heist__fj */

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

    /* Owner-private. The owner's view of the deque (top, split, limit:
     * positions as addresses of slots, heist/task_inline.h) is *fj: `own`
     * until the worker thread binds the deque to its thread-local heist__fj
     * (heist__deque_bind), which the inline fast paths of heist_fork and
     * heist_join read and write. Everything here goes through the helpers
     * below, which keep the view and the index fields in step. */
    struct heist__fj *fj;
    uint32_t o_split;            /* split, as a position */
    uint32_t o_cap;              /* o_ring's capacity */
    bool o_allstolen;            /* owner's copy of allstolen */
    _Atomic(void *) *o_slot;     /* o_ring's slots */
    struct heist__ring *o_ring;  /* owner's copy of ring */
    struct heist__ring *o_retired; /* old rings, freed by destroy */
    struct heist__fj own;        /* the view while no thread is bound */
    /* Called by the owner for each item that a push makes public, before
     * the write of ts that publishes it (NULL: none). The fork layer sets
     * it: the inline fork leaves the words only thieves need unwritten. */
    void (*publish)(void *item);
    /* Inline joins of threads that bound the deque and left (added by
     * heist__deque_unbind; relaxed both sides: statistics). */
    _Atomic uint64_t o_inlined;
    /* fj, for other threads: thieves store NULL into its limit to ask for
     * work, statistics readers read its count (seq_cst stores at bind and
     * unbind; see deque.c). */
    _Atomic(struct heist__fj *) view;
};

/* Owner-side helpers: head (one past the newest item) and split as
 * positions, kept in the view as slot addresses. */
static inline uint32_t heist__dq_head(const struct heist__deque *dq)
{
    return (uint32_t)(((uintptr_t)dq->fj->top - (uintptr_t)dq->o_slot) /
                      sizeof(void *));
}
static inline void heist__dq_set_head(struct heist__deque *dq, uint32_t h)
{
    dq->fj->top = (void **)(void *)&dq->o_slot[h];
}
static inline void heist__dq_set_split(struct heist__deque *dq, uint32_t s)
{
    dq->o_split = s;
    dq->fj->split = (void **)(void *)&dq->o_slot[s];
}
/* The fast fork applies below limit: the ring's end, or never while every
 * public item is stolen (a push must then publish at once) or a thief asks
 * for work. Owner only; see deque.c for the pairing with thieves. */
void heist__dq_set_limit(struct heist__deque *dq);

/* Owner thread: makes fj (the thread's heist__fj, zero) the deque's view,
 * so the inline fast paths on this thread use this deque. The thread must
 * unbind before it exits, when no thief runs any more (thieves write the
 * view: worker.c makes every worker leave its loop first). */
void heist__deque_bind(struct heist__deque *dq, struct heist__fj *fj);
/* Owner thread: gives the view back to the deque and zeroes fj (every
 * later fork or join on the thread takes the slow path). */
void heist__deque_unbind(struct heist__deque *dq);
/* Any thread: inline joins counted by the deque's views (statistics). */
uint64_t heist__deque_inlined(const struct heist__deque *dq);

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
    uint32_t h = heist__dq_head(dq);
    /* Fast path: room, and nothing to publish (the condition of the inline
     * fork: limit is NULL when everything was stolen or a thief asked; a
     * relaxed load, as there: see deque.c). The slot stays private. */
    if (__builtin_expect(dq->fj->top < __atomic_load_n(&dq->fj->limit,
                                                       __ATOMIC_RELAXED),
                         1)) {
        atomic_store_explicit(&dq->o_slot[h], item, memory_order_relaxed);
        heist__dq_set_head(dq, h + 1);
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
    uint32_t h = heist__dq_head(dq);
    /* Fast path: the newest item is private and is `item`. Relaxed: the
     * owner reads its own write of the slot. */
    if (__builtin_expect(h > dq->o_split &&
                             atomic_load_explicit(&dq->o_slot[h - 1],
                                                  memory_order_relaxed) ==
                                 item,
                         1)) {
        heist__dq_set_head(dq, h - 1);
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
