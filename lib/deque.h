/*
 * deque.h - the per-worker work-stealing deque of fork entries (internal).
 *
 * A split deque after Lace (T. van Dijk and J. van de Pol, "Lace: non-blocking
 * split deque for work-stealing", Euro-Par 2014 workshops; the split idea is
 * from Dinan et al., "Scalable work stealing", SC 2009). See deque.c for the
 * algorithm and its invariants.
 *
 * Its positions are entries (struct heist__fjent, heist/task_inline.h: the
 * forked function and its argument), in one array of fixed capacity: an
 * entry never moves, so a fork names its entry by address (the inline join
 * compares it with the view's top, a thief acknowledges the entry it took).
 * One thread, the owner, calls push and pop; any number of other threads
 * (thieves) call steal concurrently. Owner order is LIFO (pop returns the
 * newest entry), thief order is FIFO (steal returns the oldest).
 */
#ifndef HEIST_DEQUE_H
#define HEIST_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h" /* and through it heist/task.h: struct heist__fj */

/* Fields are grouped by writer so that thieves and owner do not share a
 * cache line needlessly. */
struct heist__deque {
    /* Shared: written by thieves (CAS) and by the owner (CAS/store). The low
     * 32 bits are `tail` (next position to steal), the high 32 bits `split`
     * (one past the last public position). */
    _Alignas(64) _Atomic uint64_t ts;
    /* Set by a thief that found no public entry (asks the owner to share);
     * cleared by the owner. */
    atomic_bool splitreq;
    /* Set by the owner when every public entry was stolen and it has no
     * private one; tells thieves not to ask. */
    atomic_bool allstolen;
    /* The entries: written once by init, before any thief exists (the
     * thread that starts a thief orders it), then read-only. */
    struct heist__fjent *ent;

    /* Owner-private. The owner's view of the deque (top, split, limit:
     * positions as addresses of entries, heist/task_inline.h) is *fj: `own`
     * until the worker thread binds the deque to its thread-local heist__fj
     * (heist__deque_bind), which the inline fast paths of heist_fork and
     * heist_join read and write. Everything here goes through the helpers
     * below, which keep the view and the index fields in step. */
    struct heist__fj *fj;
    uint32_t o_split;            /* split, as a position */
    uint32_t o_cap;              /* the capacity (fixed) */
    uint32_t o_base;             /* where the empty deque stands: its
                                    first push goes there (rebase) */
    bool o_allstolen;            /* owner's copy of allstolen */
    struct heist__fj own;        /* the view while no thread is bound */
    /* Called by the owner for each entry that a push makes public, before
     * the write of ts that publishes it (NULL: none). The fork layer sets
     * it: the inline fork leaves the words only thieves need unwritten. */
    void (*publish)(struct heist__fjent *e);
    /* Inline joins of threads that bound the deque and left (added by
     * heist__deque_unbind; relaxed both sides: statistics). */
    _Atomic uint64_t o_inlined;
    /* fj, for other threads: thieves store NULL into its limit to ask for
     * work, statistics readers read its count (seq_cst stores at bind and
     * unbind; see deque.c). */
    _Atomic(struct heist__fj *) view;
};

/* Owner-side helpers: head (one past the newest item) and split as
 * positions, kept in the view as entry addresses. */
static inline uint32_t heist__dq_head(const struct heist__deque *dq)
{
    return (uint32_t)(dq->fj->top - dq->ent);
}
static inline void heist__dq_set_head(struct heist__deque *dq, uint32_t h)
{
    dq->fj->top = dq->ent + h;
}
static inline void heist__dq_set_split(struct heist__deque *dq, uint32_t s)
{
    dq->o_split = s;
    dq->fj->split = dq->ent + s;
}
/* The fast fork applies below limit: the array's end, or never while every
 * public entry is stolen (a push must then publish at once) or a thief asks
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

/* Owner only, on an empty deque (head == o_base, every stolen entry
 * acknowledged): moves it to position pos (at most the capacity: a deque
 * moved there is full), where its next push goes. fork.c places a resumed
 * fiber's forks above the entries its save list names. */
void heist__deque_rebase(struct heist__deque *dq, uint32_t pos);

/* Result of heist__deque_steal when it returns NULL. */
enum heist__steal_status {
    HEIST__STEAL_OK = 0,
    HEIST__STEAL_EMPTY = 1, /* nothing public (the owner was asked to share) */
    HEIST__STEAL_LOST = 2,  /* lost a race with another thief or the owner */
};

/* Initializes an empty deque with room for 2^log2cap entries, for good:
 * it does not grow (entries never move). The array is one allocation whose
 * pages the kernel commits as they are first used. Returns 0, EINVAL
 * (log2cap not in 1..30) or ENOMEM. Not thread-safe. */
int heist__deque_init(struct heist__deque *dq, unsigned log2cap);

/* Frees the entries. Call only when no thread can steal any more (every
 * thief has been joined or has stopped stealing). */
void heist__deque_destroy(struct heist__deque *dq);

/* Owner only. Pushes an entry (fn, arg). Returns 0, or ENOMEM if the deque
 * is full (nothing is pushed). Sets *published to true when the push made
 * entries visible to thieves (the caller then wakes a sleeping worker),
 * else leaves it unchanged. */
int heist__deque_push_slow(struct heist__deque *dq, heist_fn fn, void *arg,
                           bool *published);
static inline int heist__deque_push(struct heist__deque *dq, heist_fn fn,
                                    void *arg, bool *published)
{
    struct heist__fjent *e = dq->fj->top;
    /* Fast path: room, and nothing to publish (the condition of the inline
     * fork: limit is NULL when everything was stolen or a thief asked; a
     * relaxed load, as there: see deque.c). The entry stays private. */
    if (__builtin_expect(e < __atomic_load_n(&dq->fj->limit,
                                             __ATOMIC_RELAXED),
                         1)) {
        e->fn = fn;
        e->arg = arg;
        dq->fj->top = e + 1;
        return 0;
    }
    return heist__deque_push_slow(dq, fn, arg, published);
}

/* Owner only. Pops the newest entry, or returns NULL when every entry
 * pushed and not popped has been stolen. It does not give back the
 * positions of stolen entries (a thief may not have acknowledged its entry
 * yet); pop_if does, for a caller that then waits for the thief's
 * acknowledgement (heist_join). A deque used with push and pop alone
 * therefore uses one more position for each entry stolen. The runtime uses
 * pop_if only. The entry stays valid until the owner's next push. */
struct heist__fjent *heist__deque_pop(struct heist__deque *dq);

/* Owner only. Like pop, but only if the newest entry is e: returns true
 * and removes it, or returns false and removes nothing when the newest
 * entry is another one, or when e was stolen (then *stolen is set to true
 * and the position is released, as pop would: the caller must wait for
 * the thief's acknowledgement before it pushes again, deque.c I3). */
bool heist__deque_pop_if_slow(struct heist__deque *dq,
                              const struct heist__fjent *e, bool *stolen);
static inline bool heist__deque_pop_if(struct heist__deque *dq,
                                       const struct heist__fjent *e,
                                       bool *stolen)
{
    uint32_t h = heist__dq_head(dq);
    /* Fast path: the newest entry is private and is e. */
    if (__builtin_expect(h > dq->o_split && e == dq->ent + h - 1, 1)) {
        heist__dq_set_head(dq, h - 1);
        *stolen = false;
        return true;
    }
    return heist__deque_pop_if_slow(dq, e, stolen);
}

/* Any thread but the owner. Claims the oldest public entry and copies its
 * function and argument to *fn and *arg: returns the entry, which the
 * caller must acknowledge (a release store of a non-zero value into its
 * sync word, deque.c I3) and may not touch after that; or returns NULL and
 * sets *status (may be NULL) to EMPTY (nothing public: the owner was
 * asked to share) or LOST. With claim false it claims nothing: it asks
 * the owner to share as above, and says LOST if there was an entry. */
struct heist__fjent *heist__deque_steal(struct heist__deque *dq, bool claim,
                                        heist_fn *fn, void **arg,
                                        enum heist__steal_status *status);

/* Owner only: number of entries pushed and neither popped nor known
 * stolen. */
uint32_t heist__deque_size_owner(const struct heist__deque *dq);

/* Any thread: a hint that there is something to steal. */
bool heist__deque_has_public(const struct heist__deque *dq);

#endif /* HEIST_DEQUE_H */
