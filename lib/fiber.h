/*
 * fiber.h - fibers: stacks, the pool, the switch, suspension (internal).
 *
 * A fiber is a stack plus a saved stack pointer. The worker loop runs on
 * fibers, and tasks run on the loop's fiber; a task that must wait suspends
 * its fiber (heist__suspend) and the worker goes on with a fresh fiber from
 * the pool. Stacks are carved from large mappings (chunks), and their
 * structs sit in an array at the head of the chunk, off the stacks
 * (fiber.c).
 *
 * Every switch names what the fiber switched to must do first, once the
 * switch is complete ("then", as Go's gopark(unlockf, ...)): give the old
 * fiber back to the pool, publish a wait, hand a join over to a thief. The
 * fiber that left is off the CPU by then, so the action may make it
 * runnable elsewhere. The layer that suspends supplies the action; this one
 * knows nothing of futures or joins.
 */
#ifndef HEIST_FIBER_H
#define HEIST_FIBER_H

#include "timer.h"
#include "trace.h"
#include "util.h"

#include <pthread.h>

struct heist__worker;
struct heist_sched;
struct heist__tk;
struct heist__live;

struct heist__fiber {
    /* queued when made ready; run: resume it. Cache-line aligned: the
     * structs of a chunk lie in one array, and resumers on other workers
     * write `wake`. */
    _Alignas(HEIST_CACHELINE) struct heist__item it;
    void *sp;                   /* saved stack pointer while not running */
    struct heist__fiber *next;  /* pool link (whoever holds the pool) */
    char *map;                  /* the slot: guard region, then the stack */
    size_t map_size;
    char *stack_lo;             /* lowest usable stack byte */
    size_t stack_size;          /* usable bytes */
    /* The lowest frame seen at a switch away from this fiber since its
     * stack was last made fresh: the pool charges an idle stack by it
     * (owner of the fiber). */
    char *low;
    /* The worker it last suspended on: the one that resumes it compares
     * (worker.c, "Running ahead"). Written by the fiber before it is
     * published as waiting; read by its resumer (the wake orders it). */
    struct heist__worker *slept_on;
    bool slept_timer;           /* that suspension was a sleep (a timer's,
                                   not another task's, to end): written and
                                   read as slept_on */
    bool guarded;               /* the region below stack_lo is PROT_NONE */
    bool fresh;                 /* made (frame built) and not given back */
    int wake;                   /* why it was resumed: written by the
                                   resumer before it queues the fiber (the
                                   queue orders it) */
    /* Traced schedulers only: the function of the slice this fiber runs
     * (written by the fiber itself), and the flow its resumer started
     * (written with `wake`, ordered the same way). */
    const void *trace_sym;
    uint64_t trace_flow;
    /* The forks a suspension of this fiber took off the deque and that
     * its task has not joined yet, oldest first (fork.c, the drain). Owned
     * by the fiber's own code; malloc'ed on first use, freed when a task
     * ends on this fiber with the list empty. */
    struct heist__saved *saved;
    uint32_t nsaved, capsaved;
    /* How many forks a drain of this fiber runs now, one inside another
     * (fork.c, "Bounded drains"). Owned by the fiber's own code. */
    uint32_t drain_nest;
    /* The live count of the task whose code the fiber ran when it last
     * suspended, or NULL (no task: a callback). Written by the fiber
     * before its wait is published; read by the worker that resumes it,
     * which the queue or slot it came through orders after. */
    struct heist__live *live;
#ifdef HEIST_TSAN
    void *tsan;                 /* __tsan_create_fiber's handle */
#endif
#ifdef HEIST_ASAN
    void *asan_fake;            /* __sanitizer_start_switch_fiber's save */
#endif
};

/* A scheduler's stacks (fiber.c): the chunks they are carved from and the
 * shared pools, all under `lock`; the workers' own pools are owner-only
 * (worker.h: pool, npool). */
struct heist__stack_chunk;
struct heist__stacks {
    pthread_mutex_t lock;
    struct heist__stack_chunk *chunks; /* newest first */
    unsigned nchunks;
    unsigned guarded;                  /* guarded slots carved */
    struct heist__fiber *idle;         /* idle fibers with their memory */
    size_t idle_bytes;                 /* their charge (fiber.c) */
    struct heist__fiber *given;        /* idle, memory given back */
    unsigned giving;                   /* taken from `idle` by a trim, not
                                          yet on `given` (its madvise runs
                                          without the lock) */
    size_t given_asked;                /* of `given`, the first ones whose
                                          top pages were asked for (stack.c,
                                          prefaulting) */
    size_t budget;                     /* immutable: bytes kept in `idle` */
    /* The trim: a timer that gives back what `idle` holds beyond the
     * budget once no one took from it or added to it for a while
     * (stack.c). */
    struct heist__timer_node trim;
    bool trim_armed;                   /* trim armed or firing (its fire
                                          clears it as it ends) */
    uint64_t uses, trim_uses;          /* takes from and spills to `idle`;
                                          the count at arming */
    struct heist__timers *timers;      /* immutable: the scheduler's */
};

/* Below every stack, a region of HEIST__GUARD_SIZE (PROT_NONE for guarded
 * stacks). An unguarded stack's canary is the HEIST__CANARY_WORDS words
 * just below its region: the highest words of the slot below (above that
 * slot's stack top), or of its chunk's head for a chunk's first slot, so
 * they share a page that is written anyway (zero, written only by an
 * overflow). stack.c, fiber.c. */
enum { HEIST__GUARD_SIZE = 64 * 1024, HEIST__CANARY_WORDS = 16 };
/* Stacks asked for at once, at most (stack.c, prefaulting). */
enum { HEIST__PREFAULT_SLOTS = 64 };
#define HEIST__CANARY_BYTES (8 * (size_t)HEIST__CANARY_WORDS)

/* Wake reasons (heist__suspend's result). */
enum { HEIST__WAKE_OK = 1, HEIST__WAKE_TIMEOUT, HEIST__WAKE_CANCEL };

/* What the fiber switched to does first: `from` is the fiber that left. */
typedef void (*heist__then_fn)(struct heist__fiber *from, void *arg);

void *heist__ctx_switch(void **save_sp, void *new_sp);
/* Builds f's first frame at the top of its stack (map, map_size set): f
 * will run the scheduler's fiber_main after its first then (fiber.c). The
 * caller sets f->it.run. */
void heist__fiber_make(struct heist__fiber *f);
void heist__ctx_start(void);

/* The calling thread's worker, or NULL. Initial-exec TLS: one load from the
 * thread pointer, no call. */
extern __thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec")));
/* The same, read afresh: a fiber may resume on another thread, so code
 * that can come back from a switch must not reuse a thread-local address
 * computed before it (the compiler takes the thread pointer as constant
 * within a function). On x86-64 a volatile asm loads it through %fs (the
 * variable's offset from the GOT, initial-exec); elsewhere a call the
 * compiler cannot see into. */
struct heist__worker *heist__self_call(void);
#if defined(__GNUC__) && defined(__x86_64__)
static inline struct heist__worker *heist__self_get(void)
{
    struct heist__worker *w;
    uintptr_t off;
    __asm__ __volatile__("movq heist__self@gottpoff(%%rip), %1\n\t"
                         "movq %%fs:(%1), %0"
                         : "=r"(w), "=&r"(off));
    return w;
}
#else
#define heist__self_get() heist__self_call()
#endif

/* Gets a fiber from the worker's pool, the scheduler's, or a new stack;
 * NULL when out of memory. */
struct heist__fiber *heist__fiber_get(struct heist__worker *w);
void heist__fiber_put(struct heist__worker *w, struct heist__fiber *f);
/* A fiber for w (on any thread before w starts, else w's own): it will
 * run s->fiber_main after its first then. NULL when out of memory. */
struct heist__fiber *heist__fiber_new(struct heist__worker *w);
/* The scheduler's stacks: set up with a budget (bytes of idle stacks kept
 * before they are given back; 0: the default), and torn down (every
 * chunk unmapped) once no fiber runs on them. */
int heist__stacks_init(struct heist__stacks *st, size_t budget,
                       struct heist__timers *timers);
void heist__stacks_fini(struct heist__stacks *st);
/* For tests (test/test_prefault.c): what prefaulting (stack.c) asked for
 * and what of it is resident now (mincore). */
struct heist__prefault_info {
    size_t carved;                /* slots carved */
    size_t asked;                 /* slots asked for (carved or not) */
    size_t ahead;                 /* asked for, not carved yet */
    size_t ahead_resident;        /* of those, top pages resident */
    size_t ahead_struct_resident; /* of those, fiber structs resident */
    size_t given;                 /* stacks on the given-back list */
    size_t given_asked;           /* its first ones asked for */
    size_t given_resident;        /* of those, top pages resident */
    bool trim_done;               /* no trim under way, idle within budget */
    bool off;                     /* the kernel refused: none asked any more */
};
void heist__stacks_prefault_info(struct heist__stacks *st,
                                 struct heist__prefault_info *out);
/* A then: gives `from` back to the calling worker's pool. */
void heist__fiber_pool_then(struct heist__fiber *from, void *arg);

/* Switches the calling worker from its running fiber to `to`, leaving
 * then(from, arg) for `to` to carry out; returns when something switches
 * back to the calling fiber (possibly on another worker), after carrying
 * out what that switch left. */
void heist__fiber_switch(struct heist__worker *w, struct heist__fiber *to,
                         heist__then_fn then, void *arg);
/* Carries out what the previous fiber left (a fresh fiber's first act). */
void heist__fiber_then(struct heist__worker *w);

/* Suspends the running task's fiber: switches to a fresh one, which runs
 * then(suspended fiber, arg) once the switch is done (the action publishes
 * the wait; whoever ends it makes the fiber ready). `why` (HEIST__SUSP_*)
 * is for the trace. Returns the wake reason, or 0 when no fiber could be
 * had (out of memory: then was not called). */
int heist__suspend(heist__then_fn then, void *arg, int why);

/* Worker thread set-up and tear-down of the fiber machinery. */
int heist__fiber_thread_init(struct heist__worker *w);
void heist__fiber_thread_fini(struct heist__worker *w);
/* Installs the stack overflow reporter (once per process). */
void heist__fiber_global_init(void);

#endif /* HEIST_FIBER_H */
