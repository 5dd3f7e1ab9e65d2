/*
 * cache.c - records (task records, wait nodes, plain futures, callback
 * nodes) from per-worker caches that stay with their worker.
 *
 * A record is made (malloc, with a header naming its worker) the first
 * time its worker's cache of that kind is empty, and from then on it
 * belongs to that worker: freed there, it goes back on the worker's own
 * list (owner-only, LIFO, no atomics; the fast paths are inline in
 * cache.h); freed on another worker of the same scheduler, it goes on the
 * owner's remote list, a Treiber stack that any worker pushes on and that
 * the owner takes whole, in one exchange, when its own list runs dry (the
 * remote-free lists of mimalloc, after D. Leijen, B. Zorn, L. de Moura,
 * "Mimalloc: free list sharding in action", 2019). So a producer that
 * spawns on one worker gets its records back from the consumers, and a
 * warm run asks the system for no memory; without this the records drift
 * to the consumers' caches and the producer mallocs anew every run.
 * Threads that are not workers, and workers of another scheduler (the
 * owner's may be gone), use malloc and free: a record that outlives its
 * scheduler (a future the user still holds) is an ordinary malloc block.
 *
 * The remote stack has one consumer, which takes everything at once, so
 * the pushers' CAS cannot suffer ABA (nothing is popped singly).
 */
#include "cache.h"

#include <stdlib.h>

void *heist__cache_get_slow(struct heist__worker *w, int kind, size_t size)
{
    if (w) {
        /* Acquire: pairs with the pushers' release CAS, so the links and
         * whatever the freeing workers wrote before the free are visible
         * before we reuse the memory. */
        void *list = atomic_exchange_explicit(&w->remote[kind], NULL,
                                              memory_order_acquire);
        if (list) {
            unsigned n = 0;
            void *last = list;
            for (void *q = *(void **)list; q; q = *(void **)q) {
                last = q;
                n++;
            }
            *(void **)last = w->cache[kind];
            w->cache[kind] = *(void **)list; /* list itself is returned */
            w->ncache[kind] += n;
            return list;
        }
    }
    struct heist__rec *r = malloc(sizeof(*r) + size);
    if (!r)
        return NULL;
    r->sched_id = w ? w->sched->id : 0;
    r->owner = w ? w->index : 0;
    r->kind = (uint32_t)kind;
    return r + 1;
}

void heist__cache_put_slow(struct heist__worker *w, struct heist__rec *r)
{
    void *p = r + 1;
    if (w && r->sched_id == w->sched->id && r->owner != w->index) {
        /* Another worker of our (live) scheduler made it. */
        struct heist__worker *o = w->sched->workers[r->owner];
        _Atomic(void *) *head = &o->remote[r->kind];
        /* Relaxed: the CAS below publishes. */
        void *old = atomic_load_explicit(head, memory_order_relaxed);
        do {
            *(void **)p = old;
            /* Release: pairs with the owner's acquire exchange. */
        } while (!atomic_compare_exchange_weak_explicit(
            head, &old, p, memory_order_release, memory_order_relaxed));
        return;
    }
    /* A plain thread's record, another scheduler's, or our cache is full. */
    free(r);
}

static void free_list(void *p)
{
    while (p) {
        void *next = *(void **)p;
        free((struct heist__rec *)p - 1);
        p = next;
    }
}

void heist__cache_fini(struct heist__worker *w)
{
    for (int k = 0; k < HEIST__NCACHE; k++) {
        free_list(w->cache[k]);
        w->cache[k] = NULL;
        w->ncache[k] = 0;
        /* Relaxed: every worker has been joined (their pushes happen
         * before the joins). */
        free_list(atomic_exchange_explicit(&w->remote[k], NULL,
                                           memory_order_relaxed));
    }
}
