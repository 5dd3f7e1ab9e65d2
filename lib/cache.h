/*
 * cache.h - records from per-worker caches that stay with their worker
 * (internal). See cache.c.
 */
#ifndef HEIST_CACHE_H
#define HEIST_CACHE_H

#include "worker.h"

/* The record kinds (at most HEIST__NCACHE). */
enum { HEIST__C_TASK = 0, HEIST__C_WAIT, HEIST__C_FUTURE, HEIST__C_CALLBACK,
       HEIST__C_STOLEN };
/* In a record's kind: carved from a slab (else an ordinary malloc block). */
#define HEIST__REC_SLAB 0x100u
#define HEIST__REC_KIND(k) ((k) & 0xffu)

/* Every record is preceded by this header, written once when the record's
 * memory is first allocated: which worker's cache it belongs to. */
struct heist__rec {
    uint64_t sched_id;  /* the owner's scheduler (registry.c id), or 0: a
                           record made on a thread that is not a worker */
    uint32_t owner;     /* the owner's worker index */
    uint32_t kind;      /* HEIST__C_*, with HEIST__REC_SLAB */
#ifdef HEIST_ASAN
    /* Under AddressSanitizer slabs are plain heap blocks (cache.c), not
     * aligned to SLAB_MAX: the record names its slab. */
    struct heist__slab *slab;
    uint64_t pad;
#endif
};
_Static_assert(sizeof(struct heist__rec) % 16 == 0,
               "records keep malloc's 16-byte alignment");

/* Out of line: the remote list, a new slab, a free from elsewhere. */
void *heist__cache_get_slow(struct heist__worker *w, int kind, size_t size);
void heist__cache_put_slow(struct heist__worker *w, struct heist__rec *r);

/* A record of `size` bytes of the given kind (every caller of one kind
 * passes the same size), or NULL when out of memory. Any thread. */
static inline void *heist__cache_get(int kind, size_t size)
{
    struct heist__worker *w = heist__self_get();
    void *p;
    if (heist__likely(w && (p = w->cache[kind]))) {
        w->cache[kind] = *(void **)p;
        w->rec_out++;
        return p;
    }
    return heist__cache_get_slow(w, kind, size);
}

/* Gives a record back; any thread. A record goes back to the cache of the
 * worker that made it: its own, or, from anywhere else while its scheduler
 * lives, that worker's remote list. */
static inline void heist__cache_put(int kind, void *p)
{
    (void)kind;
    struct heist__worker *w = heist__self_get();
    struct heist__rec *r = (struct heist__rec *)p - 1;
    if (heist__likely(w && r->owner == w->index &&
                      r->sched_id == w->sched->id)) {
        uint32_t k = HEIST__REC_KIND(r->kind);
        *(void **)p = w->cache[k];
        w->cache[k] = p;
        w->rec_out--;
        return;
    }
    heist__cache_put_slow(w, r);
}

/* Frees a worker's caches, remote lists and slabs (slabs that still hold
 * records a program kept go when the last of those is freed): after every
 * worker of its scheduler has stopped and the scheduler left the registry
 * (sched.c). */
void heist__cache_fini(struct heist__worker *w);

#endif /* HEIST_CACHE_H */
