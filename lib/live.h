/*
 * live.h - live counts: things not yet finished (tasks, scheduled
 * callbacks) that a thread can wait to see reach zero (internal). See
 * live.c for why the count read is exact and no wake-up is lost.
 */
#ifndef HEIST_LIVE_H
#define HEIST_LIVE_H

#include "park.h"

/* One counter's slot: a worker's own (only that worker's thread writes
 * it), or the shared last one (any other thread, with RMWs). `up` counts
 * starts, `down` ends, both only ever grow. */
struct heist__live_slot {
    _Alignas(HEIST_CACHELINE) _Atomic uint64_t up;
    _Atomic uint64_t down;
};

/* A live count: sum(up) - sum(down) over the slots. A single counter that
 * every worker adds to and subtracts from moves its cache line between
 * the cores at every spawn and every end: with two workers, a third of a
 * fan-in's time (perf, bench/fanin). */
struct heist__live {
    struct heist__live_slot *slot; /* nslots; the last is the shared one */
    unsigned nslots;
    _Alignas(HEIST_CACHELINE) _Atomic uint32_t armed; /* a waiter sleeps */
    _Atomic uint32_t seq;          /* futex word: bumped for each wake */
    struct heist__live *next;      /* its owner's free list */
};

/* nworkers own slots and the shared one; ENOMEM. */
int heist__live_init(struct heist__live *l, unsigned nworkers);
void heist__live_fini(struct heist__live *l);

/* The slot for the calling thread: i is its worker index if it is a worker
 * of the counter's scheduler, else nslots - 1 (the shared slot). */
static inline void heist__live_up(struct heist__live *l, unsigned i)
{
    struct heist__live_slot *sl = &l->slot[i];
    if (i + 1 < l->nslots)
        /* The owner is the only writer: a plain add. Relaxed: the count
         * (live.c) reads `up` after the `down` of an end that this start
         * happened before, so coherence gives it this value. */
        atomic_store_explicit(
            &sl->up, atomic_load_explicit(&sl->up, memory_order_relaxed) + 1,
            memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&sl->up, 1, memory_order_relaxed);
}

void heist__live_wake(struct heist__live *l);

/* Counts n ends (n >= 1) in slot i. */
static inline void heist__live_down_n(struct heist__live *l, unsigned i,
                                      uint64_t n)
{
    struct heist__live_slot *sl = &l->slot[i];
    /* seq_cst (release at least): pairs with the count's loads of `down`,
     * so what the finished things did, and the starts they made, come
     * before a count that sees this; and it precedes our load of `armed`
     * in the single total order (the no-lost-wake-up argument, live.c). */
    if (i + 1 < l->nslots)
        atomic_store_explicit(
            &sl->down,
            atomic_load_explicit(&sl->down, memory_order_relaxed) + n,
            memory_order_seq_cst);
    else
        atomic_fetch_add_explicit(&sl->down, n, memory_order_seq_cst);
    /* seq_cst: after the store above in S, against the waiter's store. */
    if (heist__unlikely(atomic_load_explicit(&l->armed, memory_order_seq_cst)))
        heist__live_wake(l);
}

static inline void heist__live_down(struct heist__live *l, unsigned i)
{
    heist__live_down_n(l, i, 1);
}

/* The count now (see live.c for what it guarantees). */
uint64_t heist__live_count(struct heist__live *l);
/* Sleeps until the count is zero (one waiter at a time). */
void heist__live_wait(struct heist__live *l);

#endif /* HEIST_LIVE_H */
