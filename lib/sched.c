/*
 * sched.c - the scheduler's lifecycle and statistics.
 *
 * heist_sched_new allocates the workers (each on its own cache lines),
 * their deques and first fibers, and starts one pthread per worker; it
 * makes everything a worker needs to start, so a scheduler that cannot
 * have it fails here with ENOMEM or EAGAIN. heist_sched_free waits until no
 * heist_run is in progress (run.c) and no task or scheduled callback is
 * left, tells the workers to stop, wakes them all and joins them; then it
 * writes the trace (trace.c) and the report ($HEIST_STATS) if asked for.
 */
#include "cache.h"
#include "fork.h"
#include "worker.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    DEQUE_LOG2CAP = 18, /* fork entries a worker holds at once (fixed: 8 MiB
                           of address space, committed as used; a fork
                           beyond them runs at once) */
    RQ_LOG2CAP = 8,                       /* 256 slots; grows */
    WORKER_STACK = 8 << 20,               /* 8 MiB */
};
#define STACK_SIZE_MAX ((size_t)1 << 32)  /* 4 GiB: beyond is a mistake */
/* 128 KiB: musl's default thread stack, and room for the usual C frames
 * (a few KiB each; a 64 KiB buffer on the stack still fits). Not more,
 * because a waiting task holds its stack's address space, and stacks lie
 * a slot apart (stack.c: stack_size and the 128-byte canary, rounded up
 * to a page, plus the 64 KiB region; 196 KiB by default): 1 MiB stacks
 * put at most two stacks under each page-table page (4 KiB each, a 2 MiB
 * span), so a million waiting tasks cost 2.1 GiB of page tables besides
 * their stacks; 128 KiB ones put ten, 0.38 KiB a waiting task. On the
 * virtual machines we measure on, page tables that many also overflow the
 * hypervisor's cache of them: a store to each of a million resident pages
 * costs 40-76 ns 4-128 KiB apart, 53 ns-1.6 us 192-196 KiB apart, 1.7-6.8
 * us 256-320 KiB apart and 12 us 1088 KiB apart, so a million tasks
 * suspended again took 9.3-12.3 s with 1 MiB stacks and 0.45-1.33 s
 * (median 0.48) with 128 KiB ones (bench/waiting_heist, 2 workers). A
 * task that needs more says so: heist_config.stack_size,
 * HEIST_STACK_SIZE. */
#define STACK_SIZE_DEFAULT ((size_t)128 << 10)

/* Parses a positive decimal number from the environment: returns 0 if
 * unset, 1 with *out set if valid, -1 if set but not a valid number. */
static int env_number(const char *name, unsigned long long max,
                      unsigned long long *out)
{
    const char *v = getenv(name);
    if (!v)
        return 0;
    if (!*v || !isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n == 0 || n > max)
        return -1;
    *out = n;
    return 1;
}

static int resolve_config(const heist_config *cfg, unsigned *workers,
                          size_t *stack_size, size_t *stack_pool)
{
    unsigned long long n = cfg ? cfg->workers : 0;
    if (n > HEIST_MAX_WORKERS)
        return EINVAL;
    if (n == 0) {
        int r = env_number("HEIST_WORKERS", HEIST_MAX_WORKERS, &n);
        if (r < 0)
            return EINVAL;
        if (r == 0) {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            n = c < 1 ? 1 : (c > (long)HEIST_MAX_WORKERS ? HEIST_MAX_WORKERS
                                                          : (unsigned long)c);
        }
    }
    unsigned long long ss = cfg ? cfg->stack_size : 0;
    if (ss == 0) {
        int r = env_number("HEIST_STACK_SIZE", STACK_SIZE_MAX, &ss);
        if (r < 0)
            return EINVAL;
    }
    if (ss > STACK_SIZE_MAX || (ss != 0 && ss < 16384))
        return EINVAL;
    /* Idle stack memory kept: the field wins over the environment; 0 in
     * both is fiber.c's default. */
    unsigned long long sp = cfg ? cfg->stack_pool : 0;
    if (sp == 0 && env_number("HEIST_STACK_POOL", SIZE_MAX, &sp) < 0)
        return EINVAL;
    *workers = (unsigned)n;
    *stack_size = ss ? (size_t)ss : STACK_SIZE_DEFAULT;
    *stack_pool = (size_t)sp;
    return 0;
}

/* The trace path: the config's, else $HEIST_TRACE (empty: none). */
static const char *trace_path(const heist_config *cfg)
{
    const char *p = cfg && cfg->trace_path ? cfg->trace_path
                                           : getenv("HEIST_TRACE");
    return p && *p ? p : NULL;
}

static int trace_events(const heist_config *cfg, size_t *out)
{
    unsigned long long n = cfg ? cfg->trace_events : 0;
    if (n == 0 && env_number("HEIST_TRACE_EVENTS", SIZE_MAX, &n) < 0)
        return EINVAL;
    *out = (size_t)n;
    return 0;
}

static bool stats_wanted(void)
{
    const char *v = getenv("HEIST_STATS");
    return v && *v && strcmp(v, "0") != 0;
}

static void free_workers(struct heist_sched *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct heist__worker *w = s->workers[i];
        heist__cache_fini(w);
        free(w->saved_spare); /* fork.c's spare save list */
        heist__deque_destroy(&w->dq);
        heist__rq_destroy(&w->rq);
        free(w);
    }
    free(s->workers);
    /* Every fiber is idle now: the chunks go, pools and all. */
    heist__stacks_fini(&s->stacks);
}

/* The live counts and the struct (what comes before the timers). */
static void sched_free_lives(struct heist_sched *s)
{
    struct heist__live *l = s->lives_free;
    while (l) {
        struct heist__live *next = l->next;
        heist__live_fini(l);
        free(l);
        l = next;
    }
    pthread_mutex_destroy(&s->lives_lock);
    heist__live_fini(&s->live);
    free(s);
}

static void sched_dealloc(struct heist_sched *s)
{
    cds_wfcq_destroy(&s->inj_head, &s->inj_tail);
    heist__timers_fini(&s->timers);
    if (s->trace) /* a failed creation: no file */
        heist__trace_discard(s->trace);
    sched_free_lives(s);
}

/* Stops and joins the first n started workers. */
static void stop_workers(struct heist_sched *s, unsigned n)
{
    /* seq_cst: pairs with the loads in the worker loop and in the re-check
     * before parking (park.c: the store is the "publish"). */
    atomic_store_explicit(&s->stopping, true, memory_order_seq_cst);
    heist__park_wake_all(&s->park);
    for (unsigned i = 0; i < n; i++)
        pthread_join(s->workers[i]->thread, NULL);
}

int heist_sched_new_v(const heist_config *cfg, heist_sched **out,
                      unsigned abi)
{
    /* The layout the caller's inline fork/join was compiled against
     * (heist/task_inline.h) must be this library's (fork.h checks it). */
    if (abi != HEIST_ABI_VERSION) {
        fprintf(stderr,
                "heist: this program was compiled against heist ABI version "
                "%u, but the library has version %u: rebuild it against the "
                "installed headers (heist_sched_new: ENOTSUP)\n",
                abi, HEIST_ABI_VERSION);
        return ENOTSUP;
    }
    return heist_sched_new(cfg, out);
}

int heist_sched_new(const heist_config *cfg, heist_sched **out)
{
    if (!out)
        return EINVAL;
    /* Before any worker of any scheduler starts (park.h). */
    heist__park_init();
    unsigned n;
    size_t stack_size, stack_pool;
    int err = resolve_config(cfg, &n, &stack_size, &stack_pool);
    if (err)
        return err;
    const char *tpath = trace_path(cfg);
    size_t tevents = 0;
    if (tpath && trace_events(cfg, &tevents))
        return EINVAL;

    struct heist_sched *s = calloc(1, sizeof(*s));
    if (!s)
        return ENOMEM;
    s->nworkers = n;
    s->stack_size = stack_size;
    s->fiber_main = heist__worker_loop;
    if (heist__live_init(&s->live, n)) {
        free(s);
        return ENOMEM;
    }
    if (pthread_mutex_init(&s->lives_lock, NULL)) {
        heist__live_fini(&s->live);
        free(s);
        return ENOMEM;
    }
    cds_wfcq_init(&s->inj_head, &s->inj_tail);
    /* The timers first: the stacks' fini disarms its trim timer. A heap
     * per worker, and one for that trim alone (stack.c, fiber_spill). */
    err = heist__timers_init(&s->timers, n + 1);
    if (err) {
        sched_free_lives(s);
        return err;
    }
    if (heist__stacks_init(&s->stacks, stack_pool, &s->timers)) {
        heist__timers_fini(&s->timers);
        sched_free_lives(s);
        return ENOMEM;
    }
    heist__fiber_global_init();
    s->workers = calloc(n, sizeof(*s->workers));
    if (!s->workers) {
        heist__stacks_fini(&s->stacks);
        sched_dealloc(s);
        return ENOMEM;
    }
    unsigned made = 0;
    for (; made < n; made++) {
        struct heist__worker *w = aligned_alloc(HEIST_CACHELINE, sizeof(*w));
        if (!w)
            break;
        memset(w, 0, sizeof(*w));
        if (heist__deque_init(&w->dq, DEQUE_LOG2CAP)) {
            free(w);
            break;
        }
        w->dq.publish = heist__entry_publish;
        if (heist__rq_init(&w->rq, RQ_LOG2CAP)) {
            heist__deque_destroy(&w->dq);
            free(w);
            break;
        }
        w->sched = s;
        w->index = made;
        w->rng = 0x9E3779B97F4A7C15ULL * (made + 1);
        s->workers[made] = w;
        /* The fiber the worker's loop starts on: made here, so that a
         * scheduler that cannot have one fails with ENOMEM now. */
        w->pool = heist__fiber_new(w);
        if (!w->pool) {
            made++;
            break;
        }
        w->npool = 1;
    }
    if (made < n || !s->workers[n - 1]->pool) {
        free_workers(s, made);
        sched_dealloc(s);
        return ENOMEM;
    }
    s->stats_at_free = stats_wanted();
    if (tpath) {
        err = heist__trace_new(tpath, n, tevents, &s->trace);
        if (err) {
            free_workers(s, n);
            sched_dealloc(s);
            return err;
        }
        for (unsigned i = 0; i < n; i++)
            s->workers[i]->tb = &s->trace->bufs[i];
    }

    pthread_attr_t attr;
    if (pthread_attr_init(&attr)) {
        free_workers(s, n);
        sched_dealloc(s);
        return ENOMEM;
    }
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    heist__sched_take_id(s);
    atomic_init(&s->in_loop, n);
    unsigned started = 0;
    for (; started < n; started++) {
        err = pthread_create(&s->workers[started]->thread, &attr,
                             heist__worker_main, s->workers[started]);
        if (err)
            break;
    }
    pthread_attr_destroy(&attr);
    if (started < n) {
        /* seq_cst: pairs with the leaving workers' loads (worker.c). */
        atomic_fetch_sub_explicit(&s->in_loop, n - started,
                                  memory_order_seq_cst);
        stop_workers(s, started);
        free_workers(s, n);
        sched_dealloc(s);
        return err == EAGAIN ? EAGAIN : ENOMEM;
    }
    heist__sched_register(s);
    *out = s;
    return 0;
}

static bool on_worker_of(struct heist_sched *s)
{
    struct heist__worker *w = heist__self;
    return w && w->sched == s;
}

#ifndef NDEBUG
/* Debug builds, at heist_sched_free once the workers are joined: every
 * count read zero, so no item may be left in a ready queue, a run-next
 * slot or the injection queue. One left there is work that never ran (and
 * its record kept for good): a count that missed it. */
static void check_nothing_queued(struct heist_sched *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct heist__worker *w = s->workers[i];
        /* Relaxed: the workers are joined, which ordered their writes. */
        if (heist__rq_has_work(&w->rq) ||
            atomic_load_explicit(&w->runnext, memory_order_relaxed) != NULL)
            heist__fatal("heist_sched_free: worker %u's queue still holds "
                         "work",
                         i);
    }
    if (!cds_wfcq_empty(&s->inj_head, &s->inj_tail))
        heist__fatal("heist_sched_free: the injection queue still holds "
                     "work");
}
#endif

int heist_sched_free(heist_sched *s)
{
    if (!s)
        return EINVAL;
    if (on_worker_of(s))
        return EDEADLK;
    /* Wait for heist_run calls still in progress (acquire: pairs with the
     * release decrement in heist_run; their mains have then ended). */
    for (;;) {
        uint32_t q = atomic_load_explicit(&s->quiet, memory_order_seq_cst);
        if (atomic_load_explicit(&s->runs, memory_order_seq_cst) == 0)
            break;
        heist__futex_wait(&s->quiet, q);
    }
    /* Then for every task (those spawned from other threads too) and
     * scheduled callback (live.c). */
    for (;;) {
        heist__live_wait(&s->live);
        /* Callbacks waiting on pending futures keep s alive (EBUSY); once
         * none does, s leaves the registry, so no thread can register
         * one through a future any more (registry.c). */
        int err = heist__sched_retire(s);
        if (err == EBUSY)
            return EBUSY;
        if (err == 0)
            break;
    }
    stop_workers(s, s->nworkers);
    /* A thread that is no worker may still be in the wake-up after its
     * injection, whose item ran already (ready.c): a few instructions.
     * Acquire: pairs with its release decrement; its accesses to s come
     * before our free. */
    while (atomic_load_explicit(&s->injecting, memory_order_acquire) != 0)
        sched_yield();
#ifndef NDEBUG
    check_nothing_queued(s);
#endif
    /* The workers are joined: their trace rings and counters are final. */
    if (s->stats_at_free)
        heist_sched_report(s, stderr);
    if (s->trace) {
        heist__trace_finish(s->trace); /* reports its own failure */
        s->trace = NULL;
    }
    free_workers(s, s->nworkers);
    sched_dealloc(s);
    return 0;
}

heist_sched *heist_current(void)
{
    struct heist__worker *w = heist__self;
    return w ? w->sched : NULL;
}

int heist_worker_index(void)
{
    struct heist__worker *w = heist__self;
    return w ? (int)w->index : -1;
}

static void read_counters(const struct heist__worker *w, heist_counters *o)
{
    const struct heist__counters *c = &w->ctr;
    /* Relaxed: statistics; each counter is written by its owner only.
     * Inline joins are counted in two places: the fast path's in the
     * deque's view (heist/task_inline.h), the slow path's here. */
    o->tasks = atomic_load_explicit(&c->tasks, memory_order_relaxed);
    o->inlined = atomic_load_explicit(&c->inlined, memory_order_relaxed) +
                 heist__deque_inlined(&w->dq);
    o->forks = o->inlined +
               atomic_load_explicit(&c->joined_stolen, memory_order_relaxed);
    o->steals = atomic_load_explicit(&c->steals, memory_order_relaxed);
    o->failed_steals =
        atomic_load_explicit(&c->failed_steals, memory_order_relaxed);
    o->parks = atomic_load_explicit(&c->parks, memory_order_relaxed);
    o->suspends = atomic_load_explicit(&c->suspends, memory_order_relaxed);
    o->resumes = atomic_load_explicit(&c->resumes, memory_order_relaxed);
    o->stacks_mapped =
        atomic_load_explicit(&c->stacks_mapped, memory_order_relaxed);
    o->stacks_reused =
        atomic_load_explicit(&c->stacks_reused, memory_order_relaxed);
}

int heist_sched_worker_stats(heist_sched *s, unsigned i, heist_counters *out)
{
    if (!s || !out || i >= s->nworkers)
        return EINVAL;
    read_counters(s->workers[i], out);
    return 0;
}

int heist_sched_stats(heist_sched *s, heist_stats *out)
{
    if (!s || !out)
        return EINVAL;
    memset(out, 0, sizeof(*out));
    out->workers = s->nworkers;
    for (unsigned i = 0; i < s->nworkers; i++) {
        heist_counters c;
        read_counters(s->workers[i], &c);
        out->total.tasks += c.tasks;
        out->total.forks += c.forks;
        out->total.inlined += c.inlined;
        out->total.steals += c.steals;
        out->total.failed_steals += c.failed_steals;
        out->total.parks += c.parks;
        out->total.suspends += c.suspends;
        out->total.resumes += c.resumes;
        out->total.stacks_mapped += c.stacks_mapped;
        out->total.stacks_reused += c.stacks_reused;
    }
    return 0;
}

/* The report's columns, in heist_counters' order after the worker index. */
static const char *const report_cols[] = {
    "tasks", "forks", "inlined", "steals", "failed_steals",
    "parks", "suspends", "resumes", "stacks_mapped", "stacks_reused",
};
enum { REPORT_NCOLS = sizeof(report_cols) / sizeof(report_cols[0]) };

static void counters_row(const heist_counters *c, uint64_t v[REPORT_NCOLS])
{
    v[0] = c->tasks;
    v[1] = c->forks;
    v[2] = c->inlined;
    v[3] = c->steals;
    v[4] = c->failed_steals;
    v[5] = c->parks;
    v[6] = c->suspends;
    v[7] = c->resumes;
    v[8] = c->stacks_mapped;
    v[9] = c->stacks_reused;
}

static bool report_row(FILE *out, const char *label,
                       const uint64_t v[REPORT_NCOLS])
{
    if (fprintf(out, "%-6s", label) < 0)
        return false;
    for (unsigned k = 0; k < REPORT_NCOLS; k++)
        if (fprintf(out, " %13llu", (unsigned long long)v[k]) < 0)
            return false;
    return fputc('\n', out) != EOF;
}

int heist_sched_report(heist_sched *s, FILE *out)
{
    if (!s || !out)
        return EINVAL;
    bool ok = fprintf(out, "%-6s", "worker") >= 0;
    for (unsigned k = 0; ok && k < REPORT_NCOLS; k++)
        ok = fprintf(out, " %13s", report_cols[k]) >= 0;
    ok = ok && fputc('\n', out) != EOF;
    uint64_t total[REPORT_NCOLS] = {0};
    for (unsigned i = 0; ok && i < s->nworkers; i++) {
        heist_counters c;
        uint64_t v[REPORT_NCOLS];
        read_counters(s->workers[i], &c);
        counters_row(&c, v);
        for (unsigned k = 0; k < REPORT_NCOLS; k++)
            total[k] += v[k];
        char label[16];
        snprintf(label, sizeof(label), "%u", i);
        ok = report_row(out, label, v);
    }
    ok = ok && report_row(out, "total", total);
    if (fflush(out) != 0)
        ok = false;
    return ok ? 0 : EIO;
}
