/*
 * cache.c - records (task records, wait nodes, plain futures, callback
 * nodes, steal records) from per-worker caches that stay with their
 * worker.
 *
 * A record is carved from its worker's current slab (a block whose
 * header is at a 64 MiB boundary, so a record finds its slab by masking
 * its address; a worker's slabs double from 256 KiB to 64 MiB, so a
 * million waiting tasks need a few dozen mappings) the first time the
 * worker's cache of that kind is empty, and from then on it belongs to that worker: freed
 * there, it goes back on the worker's own list (owner-only, LIFO, no
 * atomics; the fast paths are inline in cache.h); freed anywhere else while
 * its scheduler lives (another worker, a plain thread, a worker of another
 * scheduler), it goes on the owner's remote list, a Treiber stack that any
 * thread pushes on and that the owner takes whole, in one exchange, when
 * its own list runs dry (the remote-free lists of mimalloc, after
 * D. Leijen, B. Zorn, L. de Moura, "Mimalloc: free list sharding in
 * action", 2019). So a producer that spawns on one worker gets its records
 * back from the consumers, and a warm run asks the system for no memory.
 * Slabs instead of one malloc per record: a first run asks the system for
 * a few large blocks, not for each record (glibc grows a thread's arena a
 * page at a time, one mprotect each), and a scheduler's end frees a few
 * blocks, not every record.
 *
 * A plain thread's own records (made where no worker runs) are ordinary
 * malloc blocks, freed with free.
 *
 * The end of a scheduler: its workers have stopped and it has left the
 * registry, so no record can be given back to a remote list any more. If
 * every record of a worker is back in its caches or on its remote lists
 * (the owner's count of records handed out and not given back to it
 * directly, less the count of remote frees, is zero), its slabs are freed
 * at once. Otherwise the program keeps some (futures it holds after
 * heist_sched_free): the cached records are counted per slab, slabs without
 * kept records are freed, and each other slab's `orphan` count, which
 * starts at a bias, drops to the number of records still kept; every later
 * free of one takes one off, and the free that reaches zero frees the
 * slab. (A record freed between the scheduler's leaving the registry and
 * the count has already taken one off the bias: the arithmetic stays
 * right.)
 *
 * The remote stack has one consumer, which takes everything at once, so
 * the pushers' CAS cannot suffer ABA (nothing is popped singly).
 */
#include "cache.h"

#include <stdlib.h>
#include <sys/mman.h>

#ifdef HEIST_ASAN
#define SLAB_MALLOC 1
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

enum { SLAB_MIN = 1 << 18, SLAB_MAX = 1 << 26, SLAB_HEAD = 64 };
/* Pages are asked for this much at a time as the slab fills; slabs of
 * SLAB_HUGE bytes or more (aligned to it, as every slab starts at a
 * SLAB_MAX boundary) ask for transparent huge pages and are populated a
 * huge page at a time. The first 1.75 MiB of a worker's records stay in
 * small pages, so a small program does not hold 2 MiB per worker; a busy
 * one takes a fault per 2 MiB instead of per 4 KiB. A fault costs about
 * 10 us on a virtual machine with shadow page tables (measured: 64 MiB
 * touched a page at a time took 160 ms; populated in 256 KiB calls, 12 ms
 * plus 70 ms for the first touches; as huge pages, 3.5 ms). */
enum { SLAB_POPULATE = 1 << 18, SLAB_HUGE = 1 << 21 };
#define ORPHAN_BIAS ((uint64_t)1 << 62)

struct heist__slab {
    struct heist__slab *next; /* the owner's list (owner-only) */
    size_t size;              /* bytes, header included */
    char *populated;          /* pages below are asked for (owner-only) */
    /* Records kept after the end of the scheduler, plus ORPHAN_BIAS until
     * that end counts them; any thread (acq_rel: the free that reaches
     * zero sees every other's last use of the slab). */
    _Atomic uint64_t orphan;
    uint32_t carved; /* records carved from it (owner-only) */
    uint32_t cached; /* counted at the end (owner-only) */
};
_Static_assert(sizeof(struct heist__slab) <= SLAB_HEAD, "slab header");

static struct heist__slab *slab_of(struct heist__rec *r)
{
#ifdef SLAB_MALLOC
    return r->slab;
#else
    return (struct heist__slab *)((uintptr_t)r & ~(uintptr_t)(SLAB_MAX - 1));
#endif
}

static struct heist__slab *slab_new(size_t size)
{
#ifdef SLAB_MALLOC
    /* Under AddressSanitizer: a heap block, so LeakSanitizer still sees a
     * slab whose records the library lost; not aligned to SLAB_MAX (ASan
     * would map and clear the shadow of twice that alignment for each:
     * 60 ms a slab on a machine where page faults are slow), so records
     * name their slab. */
    char *a = malloc(size);
    if (!a)
        return NULL;
#else
    size_t len = size + SLAB_MAX;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)p + SLAB_MAX - 1) &
                       ~(uintptr_t)(SLAB_MAX - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (a + size < p + len)
        munmap(a + size, (size_t)(p + len - (a + size)));
#ifdef MADV_HUGEPAGE
    /* An error (no THP in this kernel) leaves small pages. */
    if (size >= SLAB_HUGE)
        (void)madvise(a, size, MADV_HUGEPAGE);
#endif
#endif
    struct heist__slab *s = (struct heist__slab *)(void *)a;
    s->next = NULL;
    s->size = size;
    s->populated = a;
    atomic_init(&s->orphan, ORPHAN_BIAS);
    s->carved = 0;
    s->cached = 0;
    return s;
}

static void slab_free(struct heist__slab *s)
{
#ifdef SLAB_MALLOC
    free(s);
#else
    munmap(s, s->size);
#endif
}

/* Asks for the pages up to `upto` (and a little beyond) in one call rather
 * than one fault each (an error, on a kernel without it, only leaves them
 * to the faults). */
static void slab_populate(struct heist__slab *s, const char *upto)
{
#ifndef SLAB_MALLOC
    char *end = (char *)s + s->size;
    size_t step = s->size >= SLAB_HUGE ? SLAB_HUGE : SLAB_POPULATE;
    while (s->populated < upto && s->populated < end) {
        size_t n = step;
        if ((size_t)(end - s->populated) < n)
            n = (size_t)(end - s->populated);
        (void)madvise(s->populated, n, MADV_POPULATE_WRITE);
        s->populated += n;
    }
#else
    (void)s;
    (void)upto;
#endif
}

/* Takes w's whole remote list of kind k (NULL if empty). No walk: a list
 * of 100,000 records freed elsewhere is 100,000 dependent cache misses.
 * The owner's count of records out is settled at the end instead, from
 * remote_frees (heist__cache_fini). */
static void *take_remote(struct heist__worker *w, int k)
{
    /* Acquire: pairs with the pushers' release CAS, so the links and
     * whatever the freeing threads wrote before the free are visible
     * before we reuse the memory. */
    return atomic_exchange_explicit(&w->remote[k], NULL,
                                    memory_order_acquire);
}

void *heist__cache_get_slow(struct heist__worker *w, int kind, size_t size)
{
    if (!w) {
        struct heist__rec *r = malloc(sizeof(*r) + size);
        if (!r)
            return NULL;
        r->sched_id = 0;
        r->owner = 0;
        r->kind = (uint32_t)kind;
        return r + 1;
    }
    /* Only called with the cache empty: the list becomes the cache. */
    void *p = take_remote(w, kind);
    if (p) {
        w->cache[kind] = *(void **)p;
        w->rec_out++;
        return p;
    }
    size_t need = sizeof(struct heist__rec) + ((size + 15) & ~(size_t)15);
    if (heist__unlikely((size_t)(w->bump_end - w->bump) < need)) {
        size_t ssize = w->slabs ? w->slabs->size * 2 : SLAB_MIN;
        if (ssize > SLAB_MAX)
            ssize = SLAB_MAX;
        if (need > ssize - SLAB_HEAD)
            return NULL;
        struct heist__slab *s = slab_new(ssize);
        if (!s)
            return NULL;
        s->next = w->slabs;
        w->slabs = s;
        w->bump = (char *)s + SLAB_HEAD;
        w->bump_end = (char *)s + ssize;
    }
    struct heist__rec *r = (struct heist__rec *)(void *)w->bump;
#ifdef SLAB_MALLOC
    r->slab = w->slabs;
#endif
    w->bump += need;
    if (heist__unlikely(w->bump > w->slabs->populated))
        slab_populate(w->slabs, w->bump);
    w->slabs->carved++;
    r->sched_id = w->sched->id;
    r->owner = w->index;
    r->kind = (uint32_t)kind | HEIST__REC_SLAB;
    w->rec_out++;
    return r + 1;
}

/* Pushes r on its owner's remote list (s is its scheduler, live). */
static void push_remote(struct heist_sched *s, void *arg)
{
    struct heist__rec *r = arg;
    void *p = r + 1;
    struct heist__worker *o = s->workers[r->owner];
    _Atomic(void *) *head = &o->remote[HEIST__REC_KIND(r->kind)];
    /* Relaxed: the CAS below publishes. */
    void *old = atomic_load_explicit(head, memory_order_relaxed);
    do {
        *(void **)p = old;
        /* Release: pairs with the owner's acquire exchange. */
    } while (!atomic_compare_exchange_weak_explicit(
        head, &old, p, memory_order_release, memory_order_relaxed));
    /* Relaxed: read only at the owner's end (heist__cache_fini), after
     * every pusher is ordered before it (joined workers; plain threads
     * push under the registry's lock, which the scheduler's retirement
     * takes before). On the line the CAS just wrote. */
    atomic_fetch_add_explicit(&o->remote_frees, 1, memory_order_relaxed);
}

void heist__cache_put_slow(struct heist__worker *w, struct heist__rec *r)
{
    if (!(r->kind & HEIST__REC_SLAB)) {
        free(r); /* a plain thread's record */
        return;
    }
    if (w && r->sched_id == w->sched->id) {
        /* Another worker of our (live) scheduler made it. */
        push_remote(w->sched, r);
        return;
    }
    /* A plain thread, or a worker of another scheduler: back to the owner
     * if its scheduler lives (the registry's lock keeps it alive while we
     * push), else one kept record fewer in its slab. */
    if (heist__sched_if_live(r->sched_id, push_remote, r))
        return;
    struct heist__slab *s = slab_of(r);
    /* acq_rel: see struct heist__slab. */
    if (atomic_fetch_sub_explicit(&s->orphan, 1, memory_order_acq_rel) == 1)
        slab_free(s);
}

void heist__cache_fini(struct heist__worker *w)
{
    /* Records out: handed out and not given back here, less those given
     * back through the remote lists (relaxed: see push_remote). */
    int64_t out = w->rec_out -
                  (int64_t)atomic_load_explicit(&w->remote_frees,
                                                memory_order_relaxed);
    struct heist__slab *s = w->slabs, *next;
    if (out != 0) {
        /* The program keeps some records: count the cached ones, those on
         * the remote lists included. */
        for (int k = 0; k < HEIST__NCACHE; k++) {
            for (void *p = w->cache[k]; p; p = *(void **)p)
                slab_of((struct heist__rec *)p - 1)->cached++;
            for (void *p = take_remote(w, k); p; p = *(void **)p)
                slab_of((struct heist__rec *)p - 1)->cached++;
        }
    }
    for (; s; s = next) {
        next = s->next;
        uint64_t kept = out ? (uint64_t)s->carved - s->cached : 0;
        if (kept == 0) {
            slab_free(s);
            continue;
        }
        /* acq_rel: as in put_slow; frees since the scheduler left the
         * registry already took theirs off the bias. */
        if (atomic_fetch_sub_explicit(&s->orphan, ORPHAN_BIAS - kept,
                                      memory_order_acq_rel) ==
            ORPHAN_BIAS - kept)
            slab_free(s);
    }
    w->slabs = NULL;
    w->bump = w->bump_end = NULL;
    /* Relaxed: no thread can push on our remote lists any more (see the
     * opening comment), so these stores pair with nothing. */
    for (int k = 0; k < HEIST__NCACHE; k++) {
        w->cache[k] = NULL;
        atomic_store_explicit(&w->remote[k], NULL, memory_order_relaxed);
    }
    w->rec_out = 0;
    atomic_store_explicit(&w->remote_frees, 0, memory_order_relaxed);
}
