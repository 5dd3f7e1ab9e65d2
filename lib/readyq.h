/*
 * readyq.h - the per-worker ready queue (internal): spawned tasks, resumed
 * fibers and callbacks wait here for a worker.
 *
 * A Chase-Lev deque (D. Chase and Y. Lev, "Dynamic circular work-stealing
 * deque", SPAA 2005) with the C11 orders of N. M. Le, A. Pop, A. Cohen and
 * F. Zappa Nardelli ("Correct and efficient work-stealing for weak memory
 * models", PPoPP 2013), fences replaced by seq_cst operations so that TSan
 * sees the synchronization. Positions wrap, so unlike the split deque it
 * suits a queue the owner pops between tasks for ever. The owner takes the
 * oldest item (FIFO, as asyncio runs ready tasks), the thieves too.
 * Growth keeps old rings until destroy, as the split deque does (deque.c).
 */
#ifndef HEIST_READYQ_H
#define HEIST_READYQ_H

#include "util.h"

struct heist__rq_ring;
struct heist__rq {
    _Alignas(HEIST_CACHELINE) _Atomic int64_t top; /* thieves CAS */
    _Alignas(HEIST_CACHELINE) _Atomic int64_t bottom; /* owner writes */
    int64_t top_cache;                      /* owner: a past value of top */
    _Atomic(struct heist__rq_ring *) ring; /* owner replaces (release) */
    struct heist__rq_ring *retired;         /* owner: old rings (deque.c) */
};
/* Not thread-safe; destroy only when no thread can steal (see deque.h). */
int heist__rq_init(struct heist__rq *q, unsigned log2cap);
void heist__rq_destroy(struct heist__rq *q);
/* Owner only: 0 or ENOMEM (full and could not grow). */
int heist__rq_push(struct heist__rq *q, struct heist__item *it);
/* Owner only: pushes n items in order, published together; 0 or ENOMEM
 * (then none is pushed). */
int heist__rq_push_many(struct heist__rq *q, struct heist__item *const *its,
                        size_t n);
struct heist__item *heist__rq_pop(struct heist__rq *q);  /* owner: oldest */
struct heist__item *heist__rq_steal(struct heist__rq *q);       /* others */
/* Others: takes the older half of q's items (at most max) with one CAS,
 * oldest first into out; returns how many (0: none, or lost a race). */
size_t heist__rq_steal_batch(struct heist__rq *q, struct heist__item **out,
                             size_t max);
bool heist__rq_has_work(const struct heist__rq *q);             /* any */

#endif /* HEIST_READYQ_H */
