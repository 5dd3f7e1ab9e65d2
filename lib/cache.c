/*
 * cache.c - per-worker caches of freed records.
 *
 * Task records, wait nodes, plain futures and callback nodes come from a
 * free list of the calling worker (owner-only, LIFO, at most
 * HEIST__CACHE_MAX per kind; the fast paths are inline in cache.h) and go back to the list of the worker that frees them; threads that
 * are not workers use malloc/free. No atomics: each list is touched by its
 * owner only.
 */
#include "cache.h"

#include <stdlib.h>

void *heist__cache_get_slow(size_t size)
{
    return malloc(size);
}

void heist__cache_put_slow(void *p)
{
    free(p);
}

void heist__cache_fini(struct heist__worker *w)
{
    for (int k = 0; k < HEIST__NCACHE; k++) {
        void *p = w->cache[k];
        while (p) {
            void *next = *(void **)p;
            free(p);
            p = next;
        }
        w->cache[k] = NULL;
        w->ncache[k] = 0;
    }
}
