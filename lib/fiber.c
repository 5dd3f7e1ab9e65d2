/*
 * fiber.c - fiber stacks, the pool, the switch, suspension, stack overflow
 * reports.
 *
 * Stacks: one mmap per fiber, MAP_NORESERVE (pages cost memory only when
 * touched), with a PROT_NONE guard region of GUARD_SIZE (64 KiB, so that a
 * large frame cannot jump over it; it costs address space only) below the
 * stack while the kernel's map count allows: each guard splits the mapping
 * in two, and the default vm.max_map_count (65,530) would not hold 100,000
 * guarded stacks. We guard at most a quarter of max_map_count. Later stacks
 * keep the region, writable, and a canary at the bottom of the stack that
 * every switch away from the fiber checks: an overflow of those is
 * reported at the task's next switch (before anything else runs on that
 * worker), never silent as long as it stays within the region. The struct heist__fiber sits at the
 * top of its mapping; the stack grows down from just below it (so the usable
 * stack is the requested size rounded up to pages, less the struct).
 *
 * Switching: the loop runs on a fiber, and the tasks it starts run on top
 * of it, on the same stack. When a task must wait, heist__suspend switches
 * to a fresh fiber (from the pool), which goes on with the loop; the old one
 * is left suspended with the task's frames on it. When the wait ends,
 * whoever ends it makes the fiber ready (ready.c); a loop that takes it
 * switches to it (resume_run) and gives its own, now frameless, fiber back
 * to the pool. Every switch leaves the fiber switched to a "then" action to
 * carry out first (fiber.h): a waiter is published only there, after its
 * fiber is off the CPU, so no one can resume a fiber that is still running.
 * A finished task returns into the loop frames below it, which carry on as
 * the loop of whatever worker the fiber runs on now (the loop re-reads its
 * worker after every item).
 *
 * The switch (heist__fiber_switch) calls the sanitizers' fiber hooks around
 * the assembly switch (ctx_*.S): ThreadSanitizer's __tsan_switch_to_fiber
 * right before it, from a function TSan does not instrument; AddressSanitizer's
 * __sanitizer_start_switch_fiber before and __sanitizer_finish_switch_fiber
 * after.
 *
 * Overflow: every worker thread has an alternate signal stack, and a
 * SIGSEGV handler (installed once per process, chaining to the previous
 * one) reports a fault inside the running fiber's guard page as a stack
 * overflow and aborts; any other SIGSEGV goes to the previous handler.
 */
#include "fiber.h"
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HEIST_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif
#ifdef HEIST_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old, size_t *size_old);
#endif

enum { POOL_LOCAL_MAX = 256 };

static size_t page_size(void)
{
    static size_t ps;
    if (!ps) {
        long p = sysconf(_SC_PAGESIZE);
        ps = p > 0 ? (size_t)p : 4096;
    }
    return ps;
}

/* Guarded stacks so far, and the most we allow (a quarter of
 * vm.max_map_count). Relaxed: a counter; going a little over the soft
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
    l /= 4;
    /* Relaxed: every thread computes the same value. */
    atomic_store_explicit(&limit, l, memory_order_relaxed);
    return l;
}

__thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) struct heist__worker *heist__self_get(void)
{
    /* An empty asm the compiler must assume reads memory: the TLS load
     * below is not merged with one before a fiber switch. */
    __asm__ __volatile__("" ::: "memory");
    return heist__self;
}

static void fiber_entry(void *arg);
static void resume_run(struct heist__item *it);

enum { GUARD_SIZE = 64 * 1024, CANARY_WORDS = 8 };
#define CANARY 0x68656973745f6f6bULL /* "heist_ok" */

static void canary_set(struct heist__fiber *f)
{
    uint64_t *c = (uint64_t *)(void *)f->stack_lo;
    for (int i = 0; i < CANARY_WORDS; i++)
        c[i] = CANARY;
}

static bool canary_ok(const struct heist__fiber *f)
{
    const uint64_t *c = (const uint64_t *)(const void *)f->stack_lo;
    for (int i = 0; i < CANARY_WORDS; i++)
        if (c[i] != CANARY)
            return false;
    return true;
}

static void write_num(size_t n);
static void write_str(const char *s);

struct heist__fiber *heist__fiber_new(struct heist_sched *s)
{
    size_t ps = page_size();
    size_t stack = (s->stack_size + ps - 1) & ~(ps - 1);
    size_t guard = (GUARD_SIZE + ps - 1) & ~(ps - 1);
    size_t total = guard + stack;
    char *map = mmap(NULL, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                     -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    bool guarded = false;
    /* Relaxed (here and below): a count against a soft limit; it orders
     * nothing. */
    if (atomic_fetch_add_explicit(&guarded_stacks, 1, memory_order_relaxed) <
        guard_limit()) {
        guarded = mprotect(map, guard, PROT_NONE) == 0;
    }
    if (!guarded)
        atomic_fetch_sub_explicit(&guarded_stacks, 1, memory_order_relaxed);
    /* The struct takes the top of the stack's own last page, so a fiber
     * that suspends shallow touches one page only. */
    struct heist__fiber *f =
        (struct heist__fiber *)((uintptr_t)(map + total - sizeof(*f)) &
                                ~(uintptr_t)(HEIST_CACHELINE - 1));
    memset(f, 0, sizeof(*f));
    f->it.run = resume_run;
    cds_wfcq_node_init(&f->it.node);
    f->map = map;
    f->map_size = total;
    f->stack_lo = map + guard;
    f->stack_size = (size_t)((char *)f - (map + guard));
    f->guarded = guarded;
    if (!guarded)
        canary_set(f);

    /* The initial frame that heist__ctx_switch pops (ctx_*.S). */
    uintptr_t top = (uintptr_t)f & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* [mxcsr, fpucw] r15 r14 r13 r12 rbx rbp ret: 64 bytes; after the ret
     * rsp == top, 16-aligned for heist__ctx_start's call. */
    uint64_t *sp = (uint64_t *)(top - 64);
    uint32_t csr = 0x1F80;     /* MXCSR default: all exceptions masked */
    uint16_t cw = 0x037F;      /* x87 default control word */
    memcpy(&sp[0], &csr, 4);
    memcpy((char *)&sp[0] + 4, &cw, 2);
    sp[1] = 0;                           /* r15 */
    sp[2] = 0;                           /* r14 */
    sp[3] = (uint64_t)(uintptr_t)f;      /* r13: the argument */
    sp[4] = (uint64_t)(uintptr_t)fiber_entry; /* r12: the function */
    sp[5] = 0;                           /* rbx */
    sp[6] = 0;                           /* rbp: ends backtraces */
    sp[7] = (uint64_t)(uintptr_t)heist__ctx_start;
    f->sp = sp;
#elif defined(__aarch64__)
    /* x19-x28, x29 x30, d8-d15, fpcr, pad: 176 bytes (ctx_aarch64.S); after
     * the switch's final add sp == top, 16-aligned for heist__ctx_start's
     * blr. fpcr 0 is Linux's default: round to nearest, no traps.
     * test/ctx_switch_check.c mirrors this frame. */
    uint64_t *sp = (uint64_t *)(top - 176);
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)fiber_entry; /* x19: the function */
    sp[1] = (uint64_t)(uintptr_t)f;           /* x20: the argument */
    sp[10] = 0;                               /* x29 */
    sp[11] = (uint64_t)(uintptr_t)heist__ctx_start; /* x30 */
    sp[20] = 0;                               /* fpcr */
    f->sp = sp;
#else
#error "heist: no fiber switch for this architecture (x86-64, aarch64)"
#endif
#ifdef HEIST_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
    return f;
}

void heist__fiber_free(struct heist__fiber *f)
{
#ifdef HEIST_TSAN
    __tsan_destroy_fiber(f->tsan);
#endif
    if (f->guarded) /* relaxed: the count only (see heist__fiber_new) */
        atomic_fetch_sub_explicit(&guarded_stacks, 1, memory_order_relaxed);
    munmap(f->map, f->map_size);
}

struct heist__fiber *heist__fiber_get(struct heist__worker *w)
{
    struct heist__fiber *f = w->pool;
    if (f) {
        w->pool = f->next;
        w->npool--;
        return f;
    }
    struct heist_sched *s = w->sched;
    pthread_mutex_lock(&s->fiber_lock);
    f = s->fibers;
    if (f)
        s->fibers = f->next;
    pthread_mutex_unlock(&s->fiber_lock);
    if (f)
        return f;
    return heist__fiber_new(s);
}

void heist__fiber_free_list(struct heist__fiber *f)
{
    while (f) {
        struct heist__fiber *next = f->next;
        heist__fiber_free(f);
        f = next;
    }
}

void heist__fiber_put(struct heist__worker *w, struct heist__fiber *f)
{
    if (w->npool < POOL_LOCAL_MAX) {
        f->next = w->pool;
        w->pool = f;
        w->npool++;
        return;
    }
    struct heist_sched *s = w->sched;
    pthread_mutex_lock(&s->fiber_lock);
    f->next = s->fibers;
    s->fibers = f;
    pthread_mutex_unlock(&s->fiber_lock);
}

/* The switch itself. Not instrumented by TSan: between
 * __tsan_switch_to_fiber and the stack switch nothing may be reported
 * against the wrong fiber. */
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize_thread, noinline))
#endif
static void
do_switch(struct heist__fiber *from, struct heist__fiber *to)
{
    /* An unguarded stack: the switch's own frame lies on it, so a frame
     * below its bottom (or a canary overwritten by a deeper call that has
     * returned) is an overflow. */
    if (heist__unlikely(!from->guarded && from->map &&
                        ((char *)__builtin_frame_address(0) <
                             from->stack_lo + 8 * CANARY_WORDS ||
                         !canary_ok(from)))) {
        write_str("heist: fatal: stack overflow in a task (the canary at the "
                  "bottom of its unguarded stack of ");
        write_num(from->stack_size);
        write_str(" bytes was overwritten; raise heist_config.stack_size or "
                  "HEIST_STACK_SIZE)\n");
        abort();
    }
#ifdef HEIST_ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake, to->stack_lo,
                                   to->stack_size);
#endif
#ifdef HEIST_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
    heist__ctx_switch(&from->sp, to->sp);
#ifdef HEIST_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}

void heist__fiber_then(struct heist__worker *w)
{
    heist__then_fn then = w->then;
    if (then) {
        w->then = NULL;
        then(w->then_from, w->then_arg);
    }
}

void heist__fiber_switch(struct heist__worker *w, struct heist__fiber *to,
                         heist__then_fn then, void *arg)
{
    struct heist__fiber *from = w->cur;
    w->then = then;
    w->then_from = from;
    w->then_arg = arg;
    w->cur = to;
    do_switch(from, to);
    /* Back, perhaps on another thread. */
    heist__fiber_then(heist__self_get());
}

void heist__fiber_pool_then(struct heist__fiber *from, void *arg)
{
    (void)arg;
    heist__fiber_put(heist__self_get(), from);
}

/* A fresh fiber starts here, on its own stack: it does what the fiber that
 * switched to it left, then runs the worker loop for ever. */
static void fiber_entry(void *arg)
{
    (void)arg;
#ifdef HEIST_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    struct heist__worker *w = heist__self_get();
    heist__fiber_then(w);
    w->sched->fiber_main();
    heist__fatal("the worker loop returned");
}

/* The run function of a ready fiber: a loop took it. The loop's own fiber
 * has no task frames above the loop: it goes to the pool, and comes back
 * from this switch when some worker takes it from the pool again. */
static void resume_run(struct heist__item *it)
{
    struct heist__fiber *f = caa_container_of(it, struct heist__fiber, it);
    struct heist__worker *w = heist__self_get();
    heist__count(&w->ctr.resumes);
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

/* ---- stack overflow reports ------------------------------------------- */

static struct sigaction old_segv;

static void write_str(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

/* Async-signal-safe decimal output. */
static void write_num(size_t n)
{
    char num[24];
    size_t i = sizeof(num) - 1;
    num[i] = 0;
    do {
        num[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n && i);
    write_str(&num[i]);
}

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    struct heist__worker *w = heist__self;
    if (w && w->cur && w->cur != &w->home && w->cur->guarded) {
        char *a = si->si_addr;
        if (a >= w->cur->map && a < w->cur->stack_lo) {
            write_str("heist: fatal: stack overflow in a task (its stack has ");
            write_num(w->cur->stack_size);
            write_str(" bytes; raise heist_config.stack_size or "
                      "HEIST_STACK_SIZE)\n");
            signal(SIGABRT, SIG_DFL);
            abort();
        }
    }
    /* Not ours: hand it on. */
    if (old_segv.sa_flags & SA_SIGINFO) {
        old_segv.sa_sigaction(sig, si, uc);
    } else if (old_segv.sa_handler == SIG_DFL ||
               old_segv.sa_handler == SIG_IGN) {
        /* Return with the default action restored: the faulting
         * instruction runs again and the kernel delivers the default. */
        signal(SIGSEGV, SIG_DFL);
    } else {
        old_segv.sa_handler(sig);
    }
}

static pthread_once_t segv_once = PTHREAD_ONCE_INIT;
static void install_segv(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

void heist__fiber_global_init(void)
{
    pthread_once(&segv_once, install_segv);
}

int heist__fiber_thread_init(struct heist__worker *w)
{
    memset(&w->home, 0, sizeof(w->home));
#ifdef HEIST_TSAN
    w->home.tsan = __tsan_get_current_fiber();
#endif
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            w->home.stack_lo = addr;
            w->home.stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
    w->cur = &w->home;
    size_t sz = 64 * 1024;
    void *alt = mmap(NULL, sz, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (alt != MAP_FAILED) {
        stack_t st = {.ss_sp = alt, .ss_size = sz, .ss_flags = 0};
        if (sigaltstack(&st, NULL) == 0) {
            w->altstack = alt;
            w->altstack_size = sz;
        } else {
            munmap(alt, sz);
        }
    }
    return 0;
}

void heist__fiber_thread_fini(struct heist__worker *w)
{
    if (w->altstack) {
        stack_t st = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
        sigaltstack(&st, NULL);
        munmap(w->altstack, w->altstack_size);
        w->altstack = NULL;
    }
}
