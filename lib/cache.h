/*
 * cache.h - per-worker caches of freed records (internal). See cache.c.
 */
#ifndef HEIST_CACHE_H
#define HEIST_CACHE_H

#include "worker.h"

/* The record kinds (at most HEIST__NCACHE). */
enum { HEIST__C_TASK = 0, HEIST__C_WAIT, HEIST__C_FUTURE, HEIST__C_CALLBACK };

/* Out of line: malloc and free (threads that are not workers, an empty or
 * full cache). */
void *heist__cache_get_slow(size_t size);
void heist__cache_put_slow(void *p);

enum { HEIST__CACHE_MAX = 1 << 16 };

/* A record of `size` bytes of the given kind (every caller of one kind
 * passes the same size), or NULL when out of memory. Any thread. */
static inline void *heist__cache_get(int kind, size_t size)
{
    struct heist__worker *w = heist__self_get();
    void *p;
    if (heist__likely(w && (p = w->cache[kind]))) {
        w->cache[kind] = *(void **)p;
        w->ncache[kind]--;
        return p;
    }
    return heist__cache_get_slow(size);
}

/* Gives a record back; any thread. */
static inline void heist__cache_put(int kind, void *p)
{
    struct heist__worker *w = heist__self_get();
    if (heist__likely(w && w->ncache[kind] < HEIST__CACHE_MAX)) {
        *(void **)p = w->cache[kind];
        w->cache[kind] = p;
        w->ncache[kind]++;
        return;
    }
    heist__cache_put_slow(p);
}
/* Frees the calling worker's caches (at the worker thread's end). */
void heist__cache_fini(struct heist__worker *w);

#endif /* HEIST_CACHE_H */
