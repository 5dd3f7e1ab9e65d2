/*
 * task.c - zero-allocation fork-join.
 *
 * A heist_task (struct heist__frame, internal.h) lives in the forking
 * function's storage. heist_fork pushes a pointer to it on the worker's
 * deque; heist_join pops it back and runs it inline (the common case: no
 * atomic read-modify-write, no fence), or finds that a thief took it and
 * waits for the thief to finish it.
 *
 * Frame states (`state`, one word):
 *
 *   state         set by        meaning
 *   0 / garbage   -             never forked: join says EINVAL
 *   FORKED        fork          on the deque, or being run by a thief
 *   DONE          thief         the thief ran it; result is written
 *   INLINE_DONE   fork          fork ran it at once (not on a worker, or
 *                               the deque could not grow): result written
 *   BAD_FN        fork          forked with fn == NULL: join says EINVAL
 *   JOINED        join          joined: a second join says EINVAL
 *
 * The values are odd-looking constants so that a zeroed or reused frame is
 * unlikely to pass for a forked one.
 *
 * Waiting for a stolen child (for now: the futures issue turns this into a
 * fiber suspension): the joiner waits until the thief names itself in
 * `thief` (so the thief has read the deque slot, and the slot may be reused,
 * deque.c I3), then, until the child is DONE, steals work from that thief
 * only: "leapfrogging" (D. Wagner and B. Calder, "Leapfrogging: a portable
 * technique for implementing efficient futures", PPoPP 1993). The thief's
 * deque holds pieces of the child's own subtree, so helping with them makes
 * the child finish sooner, and the joiner's stack grows by at most the
 * depth of that subtree: bounded, and no deadlock (the stolen piece never
 * waits for the joiner's frame). When there is nothing to take it backs off
 * with pause and sched_yield, so an oversubscribed machine runs the thief.
 */
#include "internal.h"
#include "rcu.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    F_FORKED = 0x4f524b31u,      /* "ORK1" */
    F_DONE = 0x444f4e45u,        /* "DONE" */
    F_INLINE_DONE = 0x494e4c44u, /* "INLD" */
    F_BAD_FN = 0x42414446u,      /* "BADF" */
    F_JOINED = 0x4a4f494eu,      /* "JOIN" */
};

_Noreturn void heist__fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("heist: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* Everything heist_fork does beyond the fast path below. */
static __attribute__((noinline)) void fork_slow(struct heist__frame *f,
                                                heist_fn fn, void *arg)
{
    if (heist__unlikely(!f))
        return; /* heist_join(NULL) reports EINVAL */
    f->fn = fn;
    f->arg = arg;
    if (heist__unlikely(!fn)) {
        atomic_store_explicit(&f->state, F_BAD_FN, memory_order_relaxed);
        return;
    }
    struct heist__worker *w = heist__self;
    if (heist__likely(w != NULL)) {
        /* Relaxed: the frame is published to thieves by the deque's
         * release write of ts (deque.c I2), after these stores. */
        atomic_store_explicit(&f->thief, NULL, memory_order_relaxed);
        atomic_store_explicit(&f->state, F_FORKED, memory_order_relaxed);
        bool published = false;
        if (heist__likely(heist__deque_push(&w->dq, f, &published) == 0)) {
            if (heist__unlikely(published))
                heist__wake_one(w->sched);
            return;
        }
        /* Out of memory for a bigger deque: run it now, serially. */
    }
    f->result = fn(arg);
    atomic_store_explicit(&f->state, F_INLINE_DONE, memory_order_relaxed);
}

void heist_fork(heist_task *t, heist_fn fn, void *arg)
{
    struct heist__frame *f = (struct heist__frame *)t;
    struct heist__worker *w = heist__self;
    struct heist__deque *dq;
    /* Fast path: on a worker, the deque has room and nothing to publish
     * (see heist__deque_push); the frame stays private: plain stores. */
    if (heist__likely(w && (dq = &w->dq, f && fn) && dq->head < dq->o_cap &&
                      !dq->o_allstolen &&
                      !atomic_load_explicit(&dq->splitreq,
                                            memory_order_relaxed))) {
        uint32_t h = dq->head;
        f->fn = fn;
        f->arg = arg;
        /* Relaxed: published to thieves (if ever) by a later release
         * write of the deque's ts (deque.c I2). */
        atomic_store_explicit(&f->thief, NULL, memory_order_relaxed);
        atomic_store_explicit(&f->state, F_FORKED, memory_order_relaxed);
        atomic_store_explicit(&dq->o_slot[h], f, memory_order_relaxed);
        dq->head = h + 1;
        return;
    }
    fork_slow(f, fn, arg);
}

/* The owner waits for a frame a thief took (see the top of the file). */
static void wait_stolen(struct heist__worker *w, struct heist__frame *f)
{
    struct heist__worker *thief;
    /* Acquire: pairs with the release store in heist__frame_run_stolen;
     * after it the thief has read the deque slot, which we may reuse. */
    while (!(thief = atomic_load_explicit(&f->thief, memory_order_acquire)))
        heist__cpu_relax();
    unsigned idle = 0;
    /* Acquire: pairs with the thief's release store of DONE; f->result is
     * visible after it. */
    while (atomic_load_explicit(&f->state, memory_order_acquire) != F_DONE) {
        if (heist__steal_and_run(w, thief)) {
            idle = 0;
            continue;
        }
        if (++idle < 64) {
            heist__cpu_relax();
        } else {
            /* Holding no RCU pointer here: let grace periods advance. */
            heist__rcu_quiescent();
            sched_yield();
        }
    }
}

/* Everything heist_join does beyond the fast path below. */
static __attribute__((noinline)) int join_slow(struct heist__frame *f,
                                               void **result)
{
    if (heist__unlikely(!f))
        return EINVAL;
    /* Acquire: if a thief already finished the frame, pairs with its
     * release store of DONE. */
    uintptr_t st = atomic_load_explicit(&f->state, memory_order_acquire);
    void *r;
    if (heist__likely(st == F_FORKED || st == F_DONE)) {
        struct heist__worker *w = heist__self;
        bool stolen;
        if (heist__unlikely(!w))
            return EINVAL; /* forked on a worker, joined elsewhere */
        if (heist__deque_pop_if(&w->dq, f, &stolen)) {
            r = f->fn(f->arg);
            heist__count(&w->ctr.inlined);
        } else if (stolen) {
            wait_stolen(w, f);
            heist__count(&w->ctr.joined_stolen);
            r = f->result;
        } else {
            return EINVAL; /* not this worker's newest fork */
        }
    } else if (st == F_INLINE_DONE) {
        r = f->result;
    } else if (st == F_BAD_FN) {
        atomic_store_explicit(&f->state, F_JOINED, memory_order_relaxed);
        return EINVAL;
    } else {
        return EINVAL; /* never forked, or joined already */
    }
    /* Relaxed: nobody else touches a frame after DONE. */
    atomic_store_explicit(&f->state, F_JOINED, memory_order_relaxed);
    if (result)
        *result = r;
    return 0;
}

int heist_join(heist_task *t, void **result)
{
    struct heist__frame *f = (struct heist__frame *)t;
    struct heist__worker *w = heist__self;
    struct heist__deque *dq;
    /* Fast path: f is this worker's newest fork and still private (only a
     * forked, unjoined frame can be there), so no thief can take it: pop
     * and run it inline, with plain loads and stores. */
    if (heist__likely(w && (dq = &w->dq, dq->head > dq->o_split) &&
                      atomic_load_explicit(&dq->o_slot[dq->head - 1],
                                           memory_order_relaxed) == f &&
                      f)) {
        dq->head--;
        void *r = f->fn(f->arg);
        heist__count(&w->ctr.inlined);
        /* Relaxed: no other thread ever saw this frame. */
        atomic_store_explicit(&f->state, F_JOINED, memory_order_relaxed);
        if (result)
            *result = r;
        return 0;
    }
    return join_slow(f, result);
}

void heist__frame_run_stolen(struct heist__worker *w, struct heist__frame *f)
{
    /* Release: pairs with the acquire in wait_stolen; our read of the deque
     * slot (in heist__deque_steal) happens before the owner reuses it. */
    atomic_store_explicit(&f->thief, w, memory_order_release);
    uint32_t depth = w->dq.head;
    void *r = f->fn(f->arg);
    if (heist__unlikely(w->dq.head != depth))
        heist__fatal("a task returned with %u heist_fork() not joined "
                     "(every fork needs its heist_join before the forking "
                     "function returns)",
                     (unsigned)(w->dq.head - depth));
    f->result = r;
    /* Release: pairs with the acquire loads in heist_join/wait_stolen; the
     * owner reads f->result after it. The frame may be gone right after. */
    atomic_store_explicit(&f->state, F_DONE, memory_order_release);
}
