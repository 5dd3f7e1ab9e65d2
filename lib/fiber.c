/*
 * fiber.c - fibers: their first frame, the switch, stack overflow reports.
 *
 * Switching: the loop runs on a fiber, and the tasks it starts run on top
 * of it, on the same stack. When a task must wait, heist__suspend switches
 * to a fresh fiber (from the pool), which goes on with the loop; the old one
 * is left suspended with the task's frames on it. When the wait ends,
 * whoever ends it makes the fiber ready (ready.c); a loop that takes it
 * switches to it (resume_run, stack.c) and gives its own, now frameless,
 * fiber back to the pool. Every switch leaves the fiber switched to a "then" action to
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
 * one) reports a fault inside the running fiber's guard region as a stack
 * overflow and aborts; any other SIGSEGV goes to the previous handler.
 * Stacks without a guard (stack.c) are checked at every switch away from
 * them instead: a frame below the stack's bottom, or a canary written.
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
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

/* Named in assembly by heist__self_get (fiber.h): HEIST__ASM_NAMED. */
__thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec"))) HEIST__ASM_NAMED;

__attribute__((noinline)) struct heist__worker *heist__self_call(void)
{
    /* An empty asm the compiler must assume reads memory: the TLS load
     * below is not merged with one before a fiber switch. */
    __asm__ __volatile__("" ::: "memory");
    return heist__self;
}

static void fiber_entry(void *arg);
static void write_num(size_t n);
static void write_str(const char *s);

/* The canary of an unguarded stack: the HEIST__CANARY_WORDS words just
 * below its region (fiber.h), at the top of the slot below, above that
 * slot's stack. They are never written but by an overflow that crossed
 * the whole region (a frame that reaches them is one), and they start as
 * zero. They are not at the stack's own bottom because that page is
 * never written: memory that is only read maps the kernel's zero page,
 * and under some hypervisors (shadow paging) every read of such a page
 * traps, several microseconds each, at every switch; the page of the slot
 * below holds that slot's first frame, so the canary costs neither a page
 * nor a trap. An overflow that stays within the region writes memory that
 * nothing else uses; the switch reports it when its frame is still there
 * (the frame check below), not after it returned. */

static bool canary_ok(const struct heist__fiber *f)
{
    const uint64_t *c =
        (const uint64_t *)(const void *)(f->map - HEIST__CANARY_BYTES);
    uint64_t any = 0;
    for (int i = 0; i < HEIST__CANARY_WORDS; i++)
        any |= c[i];
    return any == 0;
}


/* Builds f's first frame at the top of its stack (heist__ctx_switch pops
 * it: ctx_*.S): f will run fiber_entry. */
void heist__fiber_make(struct heist__fiber *f)
{
    /* The highest words of the slot are the canary of the slot above. */
    char *top = f->map + f->map_size - HEIST__CANARY_BYTES;
    cds_wfcq_node_init(&f->it.node);
    f->next = NULL;
    f->wake = 0;
    f->trace_sym = NULL;
    f->trace_flow = 0;
#ifdef HEIST_ASAN
    /* Frames abandoned when the stack was given back may have left their
     * redzones poisoned. */
    __asan_unpoison_memory_region(f->stack_lo, f->stack_size);
    f->asan_fake = NULL;
#endif
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* [mxcsr, fpucw] r15 r14 r13 r12 rbx rbp ret: 64 bytes; after the ret
     * rsp == t, 16-aligned for heist__ctx_start's call. */
    uint64_t *sp = (uint64_t *)(t - 64);
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
     * the switch's final add sp == t, 16-aligned for heist__ctx_start's
     * blr. fpcr 0 is Linux's default: round to nearest, no traps.
     * test/ctx_switch_check.c mirrors this frame. */
    uint64_t *sp = (uint64_t *)(t - 176);
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
    f->low = (char *)sp;
#ifdef HEIST_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
    f->fresh = true;
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
    char *frame = __builtin_frame_address(0);
    if (from->map) {
        /* How deep the stack was seen to go: the pool charges it. */
        if (frame < from->low)
            from->low = frame;
        /* An unguarded stack: the switch's own frame lies on it, so a
         * frame below its bottom (or a canary written by a deeper call
         * that has returned) is an overflow. */
        if (heist__unlikely(!from->guarded &&
                            (frame < from->stack_lo || !canary_ok(from)))) {
            heist__fatal_claim();
            write_str("heist: fatal: stack overflow in a task (the end of "
                      "its unguarded stack of ");
            write_num(from->stack_size);
            write_str(" bytes was passed; raise heist_config.stack_size "
                      "or HEIST_STACK_SIZE)\n");
            abort();
        }
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

/* ---- stack overflow reports ------------------------------------------- */

static struct sigaction old_segv;

static void write_str(const char *s)
{
    heist__write_err(s, strlen(s));
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
            heist__fatal_claim();
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
