/*
 * fiber.h - fibers: stacks, the pool, the switch, suspension (internal).
 *
 * A fiber is a stack plus a saved stack pointer. The worker loop runs on
 * fibers, and tasks run on the loop's fiber; a task that must wait suspends
 * its fiber (heist__suspend) and the worker goes on with a fresh fiber from
 * the pool. The struct lives at the top of its own stack mapping.
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

#include "trace.h"
#include "util.h"

struct heist__worker;
struct heist_sched;
struct heist__tk;

struct heist__fiber {
    struct heist__item it;      /* queued when made ready; run: resume it */
    void *sp;                   /* saved stack pointer while not running */
    struct heist__fiber *next;  /* pool link (owner of the pool) */
    char *map;                  /* the mapping (guard page first if any) */
    size_t map_size;
    char *stack_lo;             /* lowest usable stack byte */
    size_t stack_size;          /* usable bytes */
    bool guarded;               /* the page below stack_lo is PROT_NONE */
    int wake;                   /* why it was resumed: written by the
                                   resumer before it queues the fiber (the
                                   queue orders it) */
    /* Traced schedulers only: the function of the slice this fiber runs
     * (written by the fiber itself), and the flow its resumer started
     * (written with `wake`, ordered the same way). */
    const void *trace_sym;
    uint64_t trace_flow;
#ifdef HEIST_TSAN
    void *tsan;                 /* __tsan_create_fiber's handle */
#endif
#ifdef HEIST_ASAN
    void *asan_fake;            /* __sanitizer_start_switch_fiber's save */
#endif
};

/* Wake reasons (heist__suspend's result). */
enum { HEIST__WAKE_OK = 1, HEIST__WAKE_TIMEOUT, HEIST__WAKE_CANCEL };

/* What the fiber switched to does first: `from` is the fiber that left. */
typedef void (*heist__then_fn)(struct heist__fiber *from, void *arg);

void *heist__ctx_switch(void **save_sp, void *new_sp);
void heist__ctx_start(void);

/* The calling thread's worker, or NULL. Initial-exec TLS: one load from the
 * thread pointer, no call (the fork/join fast path reads it). */
extern __thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec")));
/* The same, read through a call the compiler cannot see into: a fiber may
 * resume on another thread, so code that can come back from a switch must
 * not reuse a thread-local address computed before it. */
struct heist__worker *heist__self_get(void);

/* Gets a fiber from the worker's pool, the scheduler's, or a new one;
 * NULL when out of memory. */
struct heist__fiber *heist__fiber_get(struct heist__worker *w);
void heist__fiber_put(struct heist__worker *w, struct heist__fiber *f);
/* A fresh fiber of s: it will run s->fiber_main after its first then. */
struct heist__fiber *heist__fiber_new(struct heist_sched *s);
void heist__fiber_free(struct heist__fiber *f);
/* Frees a pool list (linked by next). */
void heist__fiber_free_list(struct heist__fiber *f);
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
