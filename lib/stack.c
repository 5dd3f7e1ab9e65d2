/*
 * stack.c - fiber stacks: chunks, pools, the budget, suspension.
 *
 * Stacks are carved from chunks: one MAP_NORESERVE mapping holds many
 * slots (pages cost memory only when touched), each a stack with a region
 * of HEIST__GUARD_SIZE below it (64 KiB, so that a large frame cannot jump over
 * it; address space only). The first chunk of a scheduler spans 64 MiB and
 * each next one twice the one before, up to 16 GiB or 16,384 slots, so a
 * million 1 MiB stacks take about 75 mappings. The fiber structs sit in an
 * array at the head of their chunk, off the stacks: a waiting fiber with
 * shallow frames touches one page of stack, and a stack given back holds
 * no memory at all.
 *
 * Guards: the region is PROT_NONE for the first GUARDS_PER_SCHED (64) slots
 * of a scheduler, while the process has fewer than vm.max_map_count / 8
 * such slots: each guard splits its chunk's mapping into two more entries
 * (a quarter of the map count at most, and a million waiting tasks in a
 * few hundred mappings). The pools hand out the hottest stacks first, and
 * the first slots carved are the guarded ones, so a program with few
 * fibers runs on guarded stacks only. Every other stack keeps the region
 * writable, as room for an overflow, and a canary below the region (the
 * top words of the slot below, fiber.h) that every switch away from the
 * fiber checks, with the frame of the switch itself: an overflow is
 * reported at the task's next switch (before anything else runs on that
 * worker) if it is still in the region then or if it went through the
 * region. One that went into the region and returned wrote only memory
 * that nothing uses and goes unreported. The canary is zero: nothing but
 * an overflow writes there (one that writes only zeros there goes
 * unseen), and it shares the page of the first frame of the slot below,
 * so it costs no page of its own.
 *
 * Pools: a stack that a fiber no longer needs goes to its worker's pool
 * (owner-only, no lock, last in first out: the next suspension takes the
 * hottest stack). Beyond POOL_LOCAL_MAX (64) the worker keeps the hottest
 * 32 and hands the rest to the scheduler's pool (a mutex, once per 32);
 * that one keeps up to its budget (heist_config.stack_pool,
 * HEIST_STACK_POOL) of idle stack memory, each stack charged from its top
 * down to the lowest frame seen at a switch, in pages. What goes beyond is
 * given back once no one has taken from that pool or added to it for
 * TRIM_DELAY_NS (1 s: a timer on the scheduler's timer thread, armed by
 * the spill that went over, armed again while the pool is in use; at once
 * when no timer slot can be had). Spills count as use: when only takes
 * did, a burst of waiters that took longer than the delay to end had its
 * stacks given back while it ended, and the same burst repeated at once
 * faulted every stack in again (bench/waiting_heist, 1M waiters on 2
 * workers, warm rounds on a VM where a first touch costs about 40 us:
 * 36-45 s each and 4 KiB of new memory per waiter; counting spills,
 * 8-16 s and none). What goes back goes with madvise(MADV_DONTNEED),
 * neighbouring slots in one call:
 * the slot keeps its address space and goes to a list of given-back slots,
 * and its frame is made anew when it is taken. A stack is carved from a
 * chunk (an mmap per chunk, none per stack) only when every pool is empty.
 * So a workload repeated on the same scheduler makes no system call for
 * stacks once its suspensions fit in the pools, and memory comes back
 * after a burst of waiting tasks. Chunks are unmapped with the scheduler.
 *
 * Suspension (heist__suspend) takes a fresh fiber from the pools and
 * switches to it (fiber.c); a ready fiber's run function (resume_run)
 * switches to it and pools the loop's own fiber.
 */
#include "fiber.h"
#include "spawn.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef HEIST_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

/* Under AddressSanitizer: frames that ran on a stack leave their redzones
 * poisoned in its shadow, and munmap does not clear that. A chunk's
 * mapping is cleared when it is made (its addresses may have been another
 * chunk's stacks: asan reported the new chunk's own fiber structs as a
 * stack underflow) and before it is unmapped (for whatever the kernel
 * maps there next). */
static void stack_shadow_clear(void *map, size_t size)
{
#ifdef HEIST_ASAN
    __asan_unpoison_memory_region(map, size);
#else
    (void)map;
    (void)size;
#endif
}

#ifdef HEIST_TSAN
void __tsan_destroy_fiber(void *fiber);
#endif

enum {
    /* A worker's own pool: owner-only, no lock. Past POOL_LOCAL_MAX it
     * keeps the POOL_LOCAL_KEEP hottest and hands the rest to the
     * scheduler's pool; when empty it takes up to POOL_TAKE from there. */
    POOL_LOCAL_MAX = 64,
    POOL_LOCAL_KEEP = 32,
    POOL_TAKE = 16,
    /* Guarded slots per scheduler: each splits its chunk's mapping twice,
     * and a million stacks must fit in a few hundred mappings. */
    GUARDS_PER_SCHED = 64,
    /* Slots per chunk, at most. */
    CHUNK_SLOTS_MAX = 16384,
};
/* A scheduler's first chunk spans about CHUNK_BYTES_FIRST; each next one
 * twice the one before, up to CHUNK_BYTES_MAX (address space only: the
 * mappings are MAP_NORESERVE and pages cost memory once touched). */
#define CHUNK_BYTES_FIRST ((size_t)64 << 20)
#define CHUNK_BYTES_MAX ((size_t)16 << 30)
/* Idle stack memory a scheduler keeps by default (heist_config.stack_pool,
 * HEIST_STACK_POOL). */
#define STACK_POOL_DEFAULT ((size_t)4 << 20)
/* How long the scheduler's idle stacks must be left alone before what is
 * beyond the budget goes back. */
#define TRIM_DELAY_NS ((uint64_t)1000000000)

static size_t page_size(void)
{
    static size_t ps;
    if (!ps) {
        long p = sysconf(_SC_PAGESIZE);
        ps = p > 0 ? (size_t)p : 4096;
    }
    return ps;
}

/* Guarded slots in the process, and the most we allow: a guard splits a
 * mapping into two more entries, so vm.max_map_count / 8 guards use at
 * most a quarter of it. Relaxed: a counter; going a little over the soft
 * limit in a race is harmless. */
static _Atomic long guarded_stacks;
static long guard_limit(void)
{
    static _Atomic long limit;
    long l = atomic_load_explicit(&limit, memory_order_relaxed);
    if (l)
        return l;
    const char *off = getenv("HEIST_STACK_GUARD");
    if (off && strcmp(off, "0") == 0) {
        /* Guard regions off (tests of the canary): no stack is guarded. */
        atomic_store_explicit(&limit, -1, memory_order_relaxed);
        return -1;
    }
    l = 65530;
    FILE *fp = fopen("/proc/sys/vm/max_map_count", "r");
    if (fp) {
        long v;
        if (fscanf(fp, "%ld", &v) == 1 && v > 0)
            l = v;
        fclose(fp);
    }
    l /= 8;
    /* Relaxed: every thread computes the same value. */
    atomic_store_explicit(&limit, l, memory_order_relaxed);
    return l;
}

static void resume_run(struct heist__item *it);

/* ---- chunks ---------------------------------------------------------------
 * A chunk is one mapping: a head (this struct and the fiber structs of its
 * slots) and then nslots slots, each a guard region of HEIST__GUARD_SIZE below a
 * stack. Slots are carved in order and never go back to the chunk: a free
 * stack stays in a pool until the scheduler is freed, which unmaps its
 * chunks. A slot's guard region is PROT_NONE for the first
 * GUARDS_PER_SCHED slots of a scheduler (while the process's limit
 * allows); the others keep it writable, as room for an overflow that the
 * canary check reports. */
struct heist__stack_chunk {
    struct heist__stack_chunk *next;
    char *map;                    /* the mapping */
    size_t map_size;
    char *slots;                  /* the first slot */
    size_t slot;                  /* bytes per slot */
    size_t nslots;
    size_t carved;                /* slots handed out (the pool's lock) */
    size_t prefaulted;            /* slots asked for (prefault, the lock) */
    struct heist__fiber *fibers;  /* one per slot, in the head */
};

static size_t guard_bytes(void)
{
    size_t ps = page_size();
    return (HEIST__GUARD_SIZE + ps - 1) & ~(ps - 1);
}

/* A slot: the region, the stack, and the canary of the slot above it
 * (fiber.h), so the stack keeps all of stack_size. */
static size_t slot_bytes(const struct heist_sched *s)
{
    size_t ps = page_size();
    return guard_bytes() +
           ((s->stack_size + HEIST__CANARY_BYTES + ps - 1) & ~(ps - 1));
}

/* A new chunk of st's scheduler s, the next in size; NULL when even a
 * chunk of one slot cannot be mapped. Under st->lock. */
static struct heist__stack_chunk *chunk_new(struct heist_sched *s,
                                            struct heist__stacks *st)
{
    size_t ps = page_size(), slot = slot_bytes(s);
    size_t bytes = CHUNK_BYTES_FIRST;
    for (unsigned i = 0; i < st->nchunks && bytes < CHUNK_BYTES_MAX; i++)
        bytes *= 2;
    size_t n = bytes / slot;
    if (n > CHUNK_SLOTS_MAX)
        n = CHUNK_SLOTS_MAX;
    if (n < 1)
        n = 1;
    size_t fibers_off = (sizeof(struct heist__stack_chunk) +
                         HEIST_CACHELINE - 1) &
                        ~(size_t)(HEIST_CACHELINE - 1);
    for (;;) {
        /* The head ends with the canary of the first slot. */
        size_t head = (fibers_off + n * sizeof(struct heist__fiber) +
                       HEIST__CANARY_BYTES + ps - 1) &
                      ~(ps - 1);
        size_t total = head + n * slot;
        char *map = mmap(NULL, total, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                             MAP_STACK,
                         -1, 0);
        if (map != MAP_FAILED) {
            stack_shadow_clear(map, total);
            struct heist__stack_chunk *c = (struct heist__stack_chunk *)map;
            c->map = map;
            c->map_size = total;
            c->slots = map + head;
            c->slot = slot;
            c->nslots = n;
            c->carved = 0;
            c->prefaulted = 0;
            c->fibers = (struct heist__fiber *)(void *)(map + fibers_off);
            /* Zero already; written so that its page is memory of its own,
             * not the zero page (fiber.c, canary_ok). */
            memset(c->slots - HEIST__CANARY_BYTES, 0, HEIST__CANARY_BYTES);
            c->next = st->chunks;
            st->chunks = c;
            st->nchunks++;
            return c;
        }
        if (n == 1)
            return NULL;
        n /= 2; /* less address space, or fewer pages of head */
    }
}

/* ---- prefaulting -----------------------------------------------------------
 * A fresh slot's first use writes its fiber struct (in the chunk's head)
 * and its stack's top page: two page faults. Where a fault is dear, as in
 * a virtual machine whose hypervisor maps each page on its first touch,
 * a burst of waiting tasks that each need a fresh stack pays mostly for
 * those faults (bench/waiting_heist: a million waiters on 2 workers, cold,
 * 21-31 s on the 2-core VM of the README, where a first touch costs 13-20
 * us). So when carving reaches slots not yet asked for, the next slots'
 * top pages and their fiber structs are asked for at once, with one
 * process_madvise(MADV_POPULATE_WRITE) call over a vector of ranges: on
 * that VM 2.4 us a page for a million pages (in calls of 1,024), and the
 * page's first touch afterwards about 6 us (the hypervisor's part),
 * against 20.7 us for a plain first touch (a stand-alone loop over a
 * million pages 196 KiB apart). A call asks for as many slots as the chunk
 * has carved so far, at most HEIST__PREFAULT_SLOTS, and none before it
 * has carved PREFAULT_FROM: a scheduler whose tasks seldom suspend (its
 * workers' own fibers, a few waiters) asks for nothing, and the pages
 * asked for ahead of use are never more than those used.
 *
 * Stacks given back to the kernel (the pool's trim) fault their top page
 * in again when taken: a take from the given-back list that finds none
 * asked for asks for that stack and up to HEIST__PREFAULT_SLOTS - 1 more
 * on the list at once (given_asked counts them down; a trim, which puts
 * stacks on the list's head, resets it). Either way at most
 * HEIST__PREFAULT_SLOTS - 1 top pages (and a page of structs) are
 * resident ahead of use: 63 pages each, outside the pool's budget.
 *
 * It is only a hint: a page that another thread touches first is simply
 * faulted in as before, and populating a page already present changes
 * nothing. The ranges go in the worker's own vector (w->prefault_iov), not
 * on the suspending task's stack. Kernels before 6.13 refuse the advice
 * through process_madvise, those before 6.15 know no PIDFD_SELF, and
 * valgrind knows neither: the first refusal turns prefaulting off for the
 * process (prefault_off), and pages fault in on first touch as before. */
enum { PREFAULT_FROM = 16 };
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* The calling process, to the system calls that take a pidfd (Linux
 * 6.15's PIDFD_SELF_THREAD_GROUP). */
#define HEIST_PIDFD_SELF_THREAD_GROUP (-10001)

/* Set once a kernel refused. Every access is relaxed: it publishes no
 * other data, only "stop asking"; a worker that reads it late makes one
 * more call, which is refused the same way. */
static atomic_bool prefault_off;

static bool prefault_on(void)
{
    /* Relaxed: see prefault_off. */
    return !atomic_load_explicit(&prefault_off, memory_order_relaxed);
}

/* Asks for the k ranges of v. Outside the stacks' lock: a chunk stays
 * mapped until the scheduler is freed (after every worker stopped), and
 * the pages may already be in use (the advice only faults in what is
 * missing). */
static void populate(const struct iovec *v, unsigned k)
{
    if (!k)
        return;
#ifdef SYS_process_madvise
    long r = syscall(SYS_process_madvise, HEIST_PIDFD_SELF_THREAD_GROUP, v,
                     (size_t)k, MADV_POPULATE_WRITE, 0u);
    /* Out of memory or interrupted: the faults come later, as without
     * the hint. Anything else (EBADF: no PIDFD_SELF; EINVAL: the advice
     * is refused; ENOSYS, EPERM) will not change: stop asking. Relaxed:
     * see prefault_off. */
    if (r < 0 && errno != ENOMEM && errno != EINTR && errno != EAGAIN)
        atomic_store_explicit(&prefault_off, true, memory_order_relaxed);
#else
    (void)v;
    /* Relaxed: see prefault_off. */
    atomic_store_explicit(&prefault_off, true, memory_order_relaxed);
#endif
}

/* The top page of slot j of c: its stack's first frames (and the canary
 * of the slot above). */
static char *slot_top_page(const struct heist__stack_chunk *c, size_t j)
{
    return c->slots + (j + 1) * c->slot - page_size();
}

static char *fiber_top_page(const struct heist__fiber *f)
{
    return f->map + f->map_size - page_size();
}

/* Writes into v the ranges of slots [from, from + n) of c: their top
 * pages, then the whole pages of the head that hold their structs (the
 * head ends on a page boundary, at the first slot). Returns the count. */
static unsigned slots_ranges(const struct heist__stack_chunk *c, size_t from,
                             size_t n, struct iovec *v)
{
    size_t ps = page_size();
    unsigned k = 0;
    for (size_t j = from; j < from + n; j++) {
        v[k].iov_base = slot_top_page(c, j);
        v[k].iov_len = ps;
        k++;
    }
    uintptr_t lo = (uintptr_t)&c->fibers[from] & ~(uintptr_t)(ps - 1);
    uintptr_t hi = ((uintptr_t)&c->fibers[from + n] + ps - 1) &
                   ~(uintptr_t)(ps - 1);
    v[k].iov_base = (void *)lo;
    v[k].iov_len = hi - lo;
    return k + 1;
}

static bool page_resident(const void *page)
{
    unsigned char in = 0;
    uintptr_t p = (uintptr_t)page & ~(uintptr_t)(page_size() - 1);
    return mincore((void *)p, page_size(), &in) == 0 && (in & 1);
}

void heist__stacks_prefault_info(struct heist__stacks *st,
                                 struct heist__prefault_info *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&st->lock);
    for (const struct heist__stack_chunk *c = st->chunks; c; c = c->next) {
        out->carved += c->carved;
        out->asked += c->prefaulted;
        for (size_t j = c->carved; j < c->prefaulted; j++) {
            out->ahead++;
            out->ahead_resident += page_resident(slot_top_page(c, j));
            out->ahead_struct_resident += page_resident(&c->fibers[j]);
        }
    }
    out->given_asked = st->given_asked;
    out->trim_done = st->giving == 0 && st->idle_bytes <= st->budget;
    for (const struct heist__fiber *f = st->given; f; f = f->next) {
        if (out->given < st->given_asked)
            out->given_resident += page_resident(fiber_top_page(f));
        out->given++;
    }
    pthread_mutex_unlock(&st->lock);
    out->off = !prefault_on();
}

/* Carves the next slot: a fiber whose stack was never used (its struct
 * zero but for where its stack lies); NULL when out of memory. Under
 * st->lock. Writes into v the ranges to ask for once the lock is dropped
 * (prefaulting above) and sets *k to their count (0: none). */
static struct heist__fiber *slot_carve(struct heist_sched *s,
                                       struct heist__stacks *st,
                                       struct iovec *v, unsigned *k)
{
    struct heist__stack_chunk *c = st->chunks;
    if (!c || c->carved == c->nslots) {
        c = chunk_new(s, st);
        if (!c)
            return NULL;
    }
    size_t i = c->carved++;
    struct heist__fiber *f = &c->fibers[i];
    if (i >= c->prefaulted && i >= PREFAULT_FROM && prefault_on()) {
        /* As many as carved so far, so that no more are resident ahead
         * than were used. */
        size_t n = c->nslots - i;
        if (n > i)
            n = i;
        if (n > HEIST__PREFAULT_SLOTS)
            n = HEIST__PREFAULT_SLOTS;
        c->prefaulted = i + n;
        *k = slots_ranges(c, i, n, v);
    }
    size_t guard = guard_bytes();
    f->map = c->slots + i * c->slot;
    f->map_size = c->slot;
    f->stack_lo = f->map + guard;
    f->stack_size = c->slot - guard - HEIST__CANARY_BYTES;
    /* Relaxed (here and in heist__stacks_fini): a count against a soft
     * limit; it orders nothing. */
    if (st->guarded < GUARDS_PER_SCHED &&
        atomic_fetch_add_explicit(&guarded_stacks, 1, memory_order_relaxed) <
            guard_limit()) {
        f->guarded = mprotect(f->map, guard, PROT_NONE) == 0;
        if (f->guarded)
            st->guarded++;
        else
            atomic_fetch_sub_explicit(&guarded_stacks, 1,
                                      memory_order_relaxed);
    } else if (st->guarded < GUARDS_PER_SCHED) {
        atomic_fetch_sub_explicit(&guarded_stacks, 1, memory_order_relaxed);
    }
    return f;
}

/* Bytes an idle fiber is charged against the budget: its stack from the
 * top down to the lowest frame seen at a switch, in pages (the memory it
 * holds, as far as anyone saw). */
static size_t fiber_charge(const struct heist__fiber *f)
{
    size_t ps = page_size();
    size_t used = (size_t)(f->map + f->map_size - f->low);
    return (used + ps - 1) & ~(ps - 1);
}

/* Gives the memory of n idle fibers back to the kernel (their address
 * space stays theirs): sorted by address, so that neighbouring slots go in
 * one madvise. Their frames are dropped: each is made anew when taken. */
static void fibers_give_back(struct heist__fiber **v, unsigned n)
{
    for (unsigned i = 1; i < n; i++) {
        struct heist__fiber *f = v[i];
        unsigned j = i;
        for (; j > 0 && v[j - 1]->map > f->map; j--)
            v[j] = v[j - 1];
        v[j] = f;
    }
    for (unsigned i = 0; i < n;) {
        char *lo = v[i]->map, *hi = v[i]->map + v[i]->map_size;
        for (i++; i < n && v[i]->map == hi; i++)
            hi = v[i]->map + v[i]->map_size;
        /* A failure leaves the pages in place: nothing is lost. */
        (void)madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
    }
    for (unsigned i = 0; i < n; i++) {
#ifdef HEIST_TSAN
        __tsan_destroy_fiber(v[i]->tsan);
        v[i]->tsan = NULL;
#endif
        v[i]->fresh = false;
    }
}

/* Gives back what st's idle list holds beyond the budget, in batches (the
 * lock is not held across madvise). */
static void stacks_trim(struct heist__stacks *st)
{
    for (;;) {
        struct heist__fiber *back[POOL_LOCAL_MAX];
        unsigned n = 0;
        pthread_mutex_lock(&st->lock);
        while (st->idle_bytes > st->budget && st->idle && n < POOL_LOCAL_MAX) {
            struct heist__fiber *f = st->idle;
            st->idle = f->next;
            st->idle_bytes -= fiber_charge(f);
            back[n++] = f;
        }
        st->giving += n;
        pthread_mutex_unlock(&st->lock);
        if (!n)
            return;
        fibers_give_back(back, n);
        pthread_mutex_lock(&st->lock);
        for (unsigned i = 0; i < n; i++) {
            back[i]->next = st->given;
            st->given = back[i];
        }
        st->giving -= n;
        /* The head of the list is no longer what was asked for (those
         * asked for further down are asked again when reached: the
         * advice does nothing to a page already in). */
        st->given_asked = 0;
        pthread_mutex_unlock(&st->lock);
    }
}

/* The trim's deadline passed (timer thread, the lock of the trim's shard
 * held; the stacks' lock is never held while taking a shard's one). If no
 * one took from the idle list or spilled to it since it was armed, what
 * is beyond the budget goes back. Then, or at once if the stacks were in
 * use, the trim waits another TRIM_DELAY_NS from now if the idle list is
 * still over the budget (armed again here: the last spill of a burst may
 * have come while it was armed, or while it trimmed, and no later one
 * would arm it). trim_armed stays true until then, so that a spill while
 * it trims does not try to arm it (and wait on this shard's lock for the
 * trim to end). */
static void trim_fire(struct heist__timer_node *n)
{
    struct heist__stacks *st = caa_container_of(n, struct heist__stacks, trim);
    pthread_mutex_lock(&st->lock);
    bool quiet = st->uses == st->trim_uses;
    pthread_mutex_unlock(&st->lock);
    if (quiet)
        stacks_trim(st);
    pthread_mutex_lock(&st->lock);
    bool again = st->idle_bytes > st->budget;
    st->trim_armed = again;
    st->trim_uses = st->uses;
    pthread_mutex_unlock(&st->lock);
    if (again)
        heist__timer_rearm_in_fire(st->timers, n,
                                   heist__deadline_after(TRIM_DELAY_NS));
}

static bool trim_wanted(struct heist__timer_node *n)
{
    (void)n;
    return true;
}

int heist__stacks_init(struct heist__stacks *st, size_t budget,
                       struct heist__timers *timers)
{
    memset(st, 0, sizeof(*st));
    st->budget = budget ? budget : STACK_POOL_DEFAULT;
    st->timers = timers;
    st->trim.heap_idx = SIZE_MAX;
    st->trim.fire = trim_fire;
    st->trim.locked = true; /* heist__stacks_fini's disarm: not running */
    return heist__mutex_init_short(&st->lock) ? ENOMEM : 0;
}

void heist__stacks_fini(struct heist__stacks *st)
{
    /* No worker runs: only the timer thread may touch st (trim_fire).
     * Disarm always, even if trim_armed reads false: the timer thread
     * clears it at the end of trim_fire, after the trim, all under the
     * lock of the trim's shard (always the last: fiber_spill), which the
     * disarm takes; so once it returns no trim is running or armed. (Reading
     * trim_armed first let a trim that had just begun run on into the
     * munmap below.) */
    heist__timer_disarm(st->timers, &st->trim);
    struct heist__stack_chunk *c = st->chunks;
    while (c) {
        struct heist__stack_chunk *next = c->next;
#ifdef HEIST_TSAN
        for (size_t i = 0; i < c->carved; i++)
            if (c->fibers[i].fresh)
                __tsan_destroy_fiber(c->fibers[i].tsan);
#endif
        stack_shadow_clear(c->map, c->map_size);
        munmap(c->map, c->map_size);
        c = next;
    }
    /* Relaxed: the count only (slot_carve). */
    atomic_fetch_sub_explicit(&guarded_stacks, (long)st->guarded,
                              memory_order_relaxed);
    pthread_mutex_destroy(&st->lock);
    memset(st, 0, sizeof(*st));
}

/* A fiber from the given-back list or a new slot, made ready to run;
 * counted on w. NULL when out of memory. */
static struct heist__fiber *fiber_alloc(struct heist__worker *w)
{
    struct heist_sched *s = w->sched;
    struct heist__stacks *st = &s->stacks;
    pthread_mutex_lock(&st->lock);
    struct heist__fiber *f = st->given;
    bool reused = f != NULL;
    struct iovec *v = w->prefault_iov;
    unsigned k = 0;
    if (f) {
        st->given = f->next;
        if (st->given_asked > 0) {
            st->given_asked--;
        } else if (prefault_on()) {
            /* This one and the next ones on the list: a burst that comes
             * back after its stacks were given back takes them all. */
            for (struct heist__fiber *g = f;
                 g && k < HEIST__PREFAULT_SLOTS; g = g->next) {
                v[k].iov_base = fiber_top_page(g);
                v[k].iov_len = page_size();
                k++;
            }
            st->given_asked = k - 1;
        }
    } else {
        f = slot_carve(s, st, v, &k);
    }
    pthread_mutex_unlock(&st->lock);
    populate(v, k);
    if (!f)
        return NULL;
    heist__count(reused ? &w->ctr.stacks_reused : &w->ctr.stacks_mapped);
    heist__fiber_make(f);
    f->it.run = resume_run;
    return f;
}

struct heist__fiber *heist__fiber_new(struct heist__worker *w)
{
    return fiber_alloc(w);
}

/* The worker's pool is empty: takes from the scheduler's. */
static __attribute__((noinline)) struct heist__fiber *
fiber_get_shared(struct heist__worker *w)
{
    struct heist__stacks *st = &w->sched->stacks;
    pthread_mutex_lock(&st->lock);
    struct heist__fiber *f = st->idle;
    if (!f) {
        pthread_mutex_unlock(&st->lock);
        return fiber_alloc(w);
    }
    /* Take a few: the next gets need no lock. */
    unsigned n = 0;
    struct heist__fiber *last = NULL;
    for (struct heist__fiber *g = f; g && n < POOL_TAKE; g = g->next, n++) {
        st->idle_bytes -= fiber_charge(g);
        last = g;
    }
    st->idle = last->next;
    st->uses++;
    pthread_mutex_unlock(&st->lock);
    last->next = NULL;
    w->pool = f->next;
    w->npool = n - 1;
    heist__count(&w->ctr.stacks_reused);
    return f;
}

struct heist__fiber *heist__fiber_get(struct heist__worker *w)
{
    struct heist__fiber *f = w->pool;
    if (heist__likely(f != NULL)) {
        w->pool = f->next;
        w->npool--;
        heist__count(&w->ctr.stacks_reused);
        return f;
    }
    return fiber_get_shared(w);
}

/* The worker's pool is full: it keeps its hottest POOL_LOCAL_KEEP and
 * hands the rest to the scheduler's pool, which gives back what goes
 * beyond its budget. */
static __attribute__((noinline)) void fiber_spill(struct heist__worker *w)
{
    struct heist__stacks *st = &w->sched->stacks;
    struct heist__fiber *keep = w->pool;
    for (unsigned i = 1; i < POOL_LOCAL_KEEP; i++)
        keep = keep->next;
    struct heist__fiber *f = keep->next;
    keep->next = NULL;
    w->npool = POOL_LOCAL_KEEP;

    pthread_mutex_lock(&st->lock);
    while (f) {
        struct heist__fiber *next = f->next;
        f->next = st->idle;
        st->idle = f;
        st->idle_bytes += fiber_charge(f);
        f = next;
    }
    /* Over the budget: the trim gives the excess back once the idle list
     * has been left alone for TRIM_DELAY_NS (a workload repeated at once
     * takes its stacks back first). */
    st->uses++;
    bool arm = st->idle_bytes > st->budget && !st->trim_armed;
    if (arm) {
        st->trim_armed = true;
        st->trim_uses = st->uses;
    }
    pthread_mutex_unlock(&st->lock);
    if (!arm)
        return;
    /* The last shard, of its own (sched.c), whichever worker spills: the
     * trim fires under its shard's lock, and heist__stacks_fini's disarm
     * must take that lock to wait for a trim still running (timer.h,
     * `locked`); and a trim (system calls) must not hold up a worker's
     * sleeps, which arm in that worker's shard. With the spilling worker's
     * shard, a spill while a trim ran moved the node to another shard,
     * and the free unmapped the stacks under the trim. */
    if (heist__timer_reserve(st->timers, &st->trim,
                             st->timers->nshards - 1) == 0) {
        st->trim.deadline = heist__deadline_after(TRIM_DELAY_NS);
        heist__timer_arm(st->timers, &st->trim, trim_wanted);
        return;
    }
    /* No timer to be had: give the excess back now. */
    pthread_mutex_lock(&st->lock);
    st->trim_armed = false;
    pthread_mutex_unlock(&st->lock);
    stacks_trim(st);
}

void heist__fiber_put(struct heist__worker *w, struct heist__fiber *f)
{
    f->next = w->pool;
    w->pool = f;
    if (heist__unlikely(++w->npool > POOL_LOCAL_MAX))
        fiber_spill(w);
}

void heist__fiber_pool_then(struct heist__fiber *from, void *arg)
{
    (void)arg;
    heist__fiber_put(heist__self_get(), from);
}

/* The run function of a ready fiber: a loop took it. The loop's own fiber
 * has no task frames above the loop: it goes to the pool, and comes back
 * from this switch when some worker takes it from the pool again. */
static void resume_run(struct heist__item *it)
{
    struct heist__fiber *f = caa_container_of(it, struct heist__fiber, it);
    struct heist__worker *w = heist__self_get();
    /* The fiber goes on with user code: as heist__run_user (fork.c), the
     * ends this worker owes are counted first unless that code is a
     * task's of the same count (live.c, "Deferred ends"). */
    heist__ends_flush_unless(w, f->live);
    heist__count(&w->ctr.resumes);
    if (f->slept_timer)
        ; /* a timer ended it: where it resumes says nothing of its wait */
    else if (f->slept_on == w)
        w->resumed_here++;
    else if (f->slept_on)
        /* Relaxed: a statistic its worker reads now and then. */
        atomic_fetch_add_explicit(&f->slept_on->resumed_away, 1,
                                  memory_order_relaxed);
    heist__fiber_switch(w, f, heist__fiber_pool_then, NULL);
}

int heist__suspend(heist__then_fn then, void *arg, int why)
{
    struct heist__worker *w = heist__self_get();
    struct heist__fiber *self = w->cur, *next = heist__fiber_get(w);
    if (!next)
        return 0;
    /* Relaxed: the owner reads its own write. */
    struct heist__tk *task =
        atomic_load_explicit(&w->task, memory_order_relaxed);
    heist__count(&w->ctr.suspends);
    self->slept_on = w;
    /* Its task cannot end before this fiber resumes and goes on. */
    self->live = task ? heist__task_live(task) : NULL;
    self->slept_timer = why == HEIST__SUSP_SLEEP;
    w->ah_sleeps += self->slept_timer;
    if (heist__unlikely(w->tb != NULL)) {
        /* The running slice ends here; it goes on where we resume. */
        heist__trace_rec(w->tb, HEIST__TEV_SUSPEND, NULL, (uint32_t)why, 0);
        heist__trace_rec(w->tb, HEIST__TEV_END, NULL, 0, 0);
    }
    /* While the task is suspended this worker runs other items: none of
     * them may act as (or read the record of) the suspended task; an item
     * that is a task sets its own. Relaxed: owner-only writes (worker.h). */
    atomic_store_explicit(&w->task, NULL, memory_order_relaxed);
    heist__fiber_switch(w, next, then, arg);
    w = heist__self_get();
    if (heist__unlikely(w->tb != NULL))
        heist__trace_rec(w->tb, HEIST__TEV_BEGIN, self->trace_sym,
                         HEIST__TK_RESUME, self->trace_flow);
    /* Relaxed: owner-only writes; thieves read it (worker.h). */
    atomic_store_explicit(&w->task, task, memory_order_relaxed);
    return self->wake;
}
