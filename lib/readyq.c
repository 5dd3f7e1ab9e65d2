/*
 * readyq.c - the per-worker ready queue: a Chase-Lev deque.
 *
 * D. Chase and Y. Lev, "Dynamic circular work-stealing deque", SPAA 2005,
 * with the C11 orders of N. M. Le, A. Pop, A. Cohen and F. Zappa Nardelli,
 * "Correct and efficient work-stealing for weak memory models", PPoPP 2013.
 * Where Le et al. use a seq_cst fence (take, steal) we make the neighbouring
 * operations seq_cst instead: ThreadSanitizer does not model fences, and the
 * queue is off the fork-join fast path.
 *
 * Indices are signed 64-bit (take on an empty queue computes bottom - 1);
 * slots are atomic (a slow thief may read a slot the owner rewrites; the CAS
 * on top then fails). Growth copies the live range to a ring twice as
 * large; thieves may still read the old one, which is kept until the queue
 * is destroyed, like the split deque's (deque.c).
 *
 * Unlike a fork deque, the owner takes from the top too (FIFO): see
 * heist__rq_pop. Only push touches bottom.
 */
#include "readyq.h"
#include "park.h"

#include <errno.h>
#include <stdlib.h>

struct heist__rq_ring {
    struct heist__rq_ring *retired_next; /* the owner's list of old rings */
    int64_t mask;
    _Atomic(struct heist__item *) slot[];
};

static struct heist__rq_ring *ring_new(int64_t cap)
{
    struct heist__rq_ring *r =
        malloc(sizeof(*r) + (size_t)cap * sizeof(r->slot[0]));
    if (!r)
        return NULL;
    r->mask = cap - 1;
    for (int64_t i = 0; i < cap; i++)
        atomic_init(&r->slot[i], NULL);
    return r;
}

int heist__rq_init(struct heist__rq *q, unsigned log2cap)
{
    struct heist__rq_ring *r = ring_new((int64_t)1 << log2cap);
    if (!r)
        return ENOMEM;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    q->top_cache = 0;
    atomic_init(&q->ring, r);
    q->retired = NULL;
    return 0;
}

void heist__rq_destroy(struct heist__rq *q)
{
    struct heist__rq_ring *r = q->retired;
    while (r) {
        struct heist__rq_ring *next = r->retired_next;
        free(r);
        r = next;
    }
    q->retired = NULL;
    /* Relaxed: no thief runs any more (the caller's contract). */
    free(atomic_load_explicit(&q->ring, memory_order_relaxed));
}

/* q looks too full at bottom b for n more items: reads top again and, if
 * they do not fit, grows the ring. The ring to push into, or NULL when out
 * of memory. Out of line, so that the push itself needs no saved
 * registers. */
static __attribute__((noinline)) struct heist__rq_ring *
rq_room(struct heist__rq *q, int64_t b, struct heist__rq_ring *r, int64_t n)
{
    /* Acquire: pairs with the thieves' CAS of top, so the slots they took
     * are free to overwrite; the slots the push writes lie before the top
     * read here, so they were taken before that read. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    q->top_cache = t;
    if (b + n - 1 - t <= r->mask)
        return r;
    size_t cap = (size_t)r->mask + 1;
    while ((int64_t)cap <= b + n - 1 - t)
        cap *= 2;
    struct heist__rq_ring *nr = ring_new((int64_t)cap);
    if (!nr)
        return NULL;
    for (int64_t i = t; i < b; i++)
        atomic_store_explicit(
            &nr->slot[i & nr->mask],
            atomic_load_explicit(&r->slot[i & r->mask], memory_order_relaxed),
            memory_order_relaxed);
    /* Release: pairs with the thieves' acquire load of ring. */
    atomic_store_explicit(&q->ring, nr, memory_order_release);
    r->retired_next = q->retired; /* freed with the queue */
    q->retired = r;
    return nr;
}

/* The push of n items, inlined into both entry points so that the single
 * push compiles to its own straight line. */
static inline __attribute__((always_inline)) int
rq_push_n(struct heist__rq *q, struct heist__item *const *its, size_t n)
{
    /* Relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    struct heist__rq_ring *r =
        atomic_load_explicit(&q->ring, memory_order_relaxed);
    /* top only grows, so a past value of it (top_cache) under-counts the
     * room: reading top, the thieves' line, only when that looks full
     * (rq_room) keeps a pushing owner from missing the cache on every
     * push while a thief steals. */
    if (heist__unlikely(b + (int64_t)n - 1 - q->top_cache > r->mask) &&
        !(r = rq_room(q, b, r, (int64_t)n)))
        return ENOMEM;
    for (size_t i = 0; i < n; i++)
        atomic_store_explicit(&r->slot[(b + (int64_t)i) & r->mask], its[i],
                              memory_order_relaxed);
    /* Release for the slots (pairs with the thief's acquire of bottom) and
     * the publish of the wake protocol (park.h, park.c): one for all n. */
    heist__park_publish_i64(&q->bottom, b + (int64_t)n);
    return 0;
}

int heist__rq_push(struct heist__rq *q, struct heist__item *it)
{
    return rq_push_n(q, &it, 1);
}

int heist__rq_push_many(struct heist__rq *q, struct heist__item *const *its,
                        size_t n)
{
    return n ? rq_push_n(q, its, n) : 0;
}

struct heist__item *heist__rq_pop(struct heist__rq *q)
{
    /* The owner takes the oldest item, as a thief would: ready tasks and
     * resumed fibers run in the order they became ready (asyncio's order,
     * and no task starves behind newer ones). It costs a CAS where the
     * LIFO take would cost a store-load pair. A CAS lost to a thief is
     * tried again while the queue holds anything: an owner that took NULL
     * would go stealing and append the batch behind its own queue, where
     * an item that others wait for could sit behind tens of thousands
     * (hops on 2 workers: a link started after 87,000 later hops, 2 s). */
    for (;;) {
        struct heist__item *it = heist__rq_steal(q);
        if (it || !heist__rq_has_work(q))
            return it;
    }
}

struct heist__item *heist__rq_steal(struct heist__rq *q)
{
    /* seq_cst load of top then of bottom: Le et al.'s fence between them;
     * bottom's seq_cst/acquire pairs with push's store. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_seq_cst);
    if (t >= b)
        return NULL;
    /* Acquire: pairs with the release store in push (growth). */
    struct heist__rq_ring *r =
        atomic_load_explicit(&q->ring, memory_order_acquire);
    struct heist__item *it =
        atomic_load_explicit(&r->slot[t & r->mask], memory_order_relaxed);
    /* seq_cst CAS: one of the thieves and the owner's take wins slot t. */
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return NULL;
    return it;
}

size_t heist__rq_steal_batch(struct heist__rq *q, struct heist__item **out,
                             size_t max)
{
    /* As in heist__rq_steal: seq_cst load of top then of bottom. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_seq_cst);
    if (t >= b)
        return 0;
    int64_t k = (b - t + 1) / 2; /* half, rounded up: at least one */
    if ((uint64_t)k > max)
        k = (int64_t)max;
    /* Acquire: pairs with the release store in push (growth). */
    struct heist__rq_ring *r =
        atomic_load_explicit(&q->ring, memory_order_acquire);
    /* Slots [t, t + k) were written before bottom passed them (the seq_cst
     * load above saw it); the owner cannot rewrite them while top is t
     * (push grows the ring rather than wrap onto an unclaimed slot), and
     * every removal is a CAS of top, so one CAS from t claims them all. */
    for (int64_t i = 0; i < k; i++)
        out[i] = atomic_load_explicit(&r->slot[(t + i) & r->mask],
                                      memory_order_relaxed);
    /* seq_cst CAS: against the owner's pops and other thieves, as in
     * heist__rq_steal. */
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + k,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return 0;
    return (size_t)k;
}

bool heist__rq_has_work(const struct heist__rq *q)
{
    /* seq_cst: the re-check of a worker about to park (park.c). */
    int64_t t = atomic_load_explicit(&q->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_seq_cst);
    return t < b;
}
