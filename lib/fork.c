/*
 * fork.c - zero-allocation fork-join: heist_fork, heist_join, frames
 * stolen by other workers, draining before a suspension.
 *
 * A heist_task (struct heist__frame, fork.h) lives in the forking
 * function's storage. heist_fork pushes a pointer to it on the worker's
 * deque; heist_join pops it back and runs it inline (the common case: no
 * atomic read-modify-write, no fence), or finds that a thief took it and
 * waits for the thief to finish it.
 *
 * The fast paths of heist_fork and heist_join (and heist_join_fn, which
 * names the forked function so that an unstolen child is a direct call)
 * live in the public header heist/task_inline.h, inline in the caller; they
 * read and write the worker's deque through the exported thread-local view
 * heist__fj (top, limit and split as slot addresses, the inline-join
 * count; deque.h keeps it in step with the deque), record the frame's slot
 * in the frame (so a join reads no word that the child's forks wrote), and
 * call heist__fork_slow and heist__join_slow here for everything else. The exported heist_fork,
 * heist_join and heist_join_fn run the same code. fork.h checks that the
 * layouts agree (HEIST_ABI_VERSION).
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
 *   JOINED        join          joined by the library: a second join
 *                               says EINVAL (the inline join writes no
 *                               state: it leaves HEIST__TASK_SLOT_JOINED
 *                               in the slot word, as the library's join
 *                               does, and a join checks that first)
 *   DRAINED       drain         its own fiber ran it before suspending
 *
 * The values are odd-looking constants so that a zeroed or reused frame is
 * unlikely to pass for a forked one.
 *
 * Waiting for a stolen child: the joiner waits until the thief names itself
 * in `thief` (so the thief has read the deque slot, and the slot may be
 * reused, deque.c I3). If the child is not finished, the joiner empties its
 * deque (heist__drain: a fiber suspends only with an empty deque, so its
 * forks never end up on another worker's deque), then suspends its fiber
 * and the worker goes on with other work. The thief's last act on the frame
 * is an exchange of `waiter` to HEIST__FRAME_DONE; if it finds a fiber there
 * it resumes it. The joiner's CAS of its fiber into `waiter` happens after
 * its switch (join_then, the suspension's "then"), so the thief never
 * resumes a running fiber; if the CAS finds DONE, the joiner's fiber is
 * simply made ready again.
 *
 * Draining runs the fiber's remaining forks inline before it suspends, as
 * the serial program would (task.h: a forked task must not wait for what its
 * parent does after the fork). Stolen ones among them only need the thief's
 * acknowledgement; their joins find `thief` set and wait on `waiter`.
 */
#include "fork.h"

#include <errno.h>
#include <sched.h>

/* The calling thread's view of its worker's deque (heist/task_inline.h):
 * zero unless the thread runs a worker (bound by heist__deque_bind). On a
 * cache line of its own: the fast paths touch nothing else per fork. */
__thread _Alignas(64) struct heist__fj heist__fj
    __attribute__((tls_model("initial-exec"), visibility("default")))
    HEIST__ASM_NAMED; /* named in assembly: heist/task_inline.h */

enum {
    F_FORKED = HEIST__TASK_FORKED, /* "ORK1"; written inline too */
    F_DONE = 0x444f4e45u,        /* "DONE" */
    F_INLINE_DONE = 0x494e4c44u, /* "INLD" */
    F_BAD_FN = 0x42414446u,      /* "BADF" */
    F_JOINED = HEIST__TASK_JOINED, /* "JOIN"; written inline too */
    F_DRAINED = 0x4452414eu,     /* "DRAN" */
};

/* Aborts with a message if a task that just returned (on worker w, which
 * started it with an empty deque) left forks unjoined. Called before the
 * item is reported done: after that a forgotten fork's frame could be
 * stolen and run on a dead stack. */
static void check_joined(struct heist__worker *w)
{
    uint32_t head = heist__dq_head(&w->dq);
    if (heist__unlikely(head != 0))
        heist__fatal("a task returned with %u heist_fork() not joined "
                     "(every fork needs its heist_join before the forking "
                     "function returns)",
                     (unsigned)head);
}

/* Everything heist_fork does beyond its fast path (heist__fork_fast in
 * heist/task_inline.h, inline in the caller). Exported: ABI, not API. */
void heist__fork_slow(heist_task *t, heist_fn fn, void *arg)
{
    struct heist__frame *f = (struct heist__frame *)t;
    if (heist__unlikely(!f))
        return; /* heist_join(NULL) reports EINVAL */
    f->fn = fn;
    f->arg = arg;
    f->slot = NULL; /* the inline join does not apply (set below if so) */
    if (heist__unlikely(!fn)) {
        /* Relaxed: the frame is never published; its join reads it. */
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
            /* Its slot, the newest: the inline join checks it. */
            f->slot = (void *)(w->dq.fj->top - 1);
            if (heist__unlikely(published))
                heist__wake_one(w->sched);
            return;
        }
        /* Out of memory for a bigger deque: run it now, serially. */
    }
    f->result = fn(arg);
    /* Relaxed: never published; read by the join on this thread. */
    atomic_store_explicit(&f->state, F_INLINE_DONE, memory_order_relaxed);
}

void heist__frame_publish(void *item)
{
    struct heist__frame *f = item;
    /* Relaxed: published by the deque's seq_cst write of ts, after this
     * (deque.c I2); thieves read them after their acquire CAS of ts. */
    atomic_store_explicit(&f->thief, NULL, memory_order_relaxed);
    atomic_store_explicit(&f->state, F_FORKED, memory_order_relaxed);
}

/* The exported heist_fork (for callers without the inline header, or
 * under a sanitizer): the same fast path, then the slow one. */
void heist_fork(heist_task *t, heist_fn fn, void *arg)
{
    heist__fork_fast(t, fn, arg);
}

/* Waits for the thief's acknowledgement of a stolen frame. */
static struct heist__worker *wait_thief(struct heist__frame *f)
{
    struct heist__worker *thief;
    /* Acquire: pairs with the release store in heist__frame_run_stolen;
     * after it the thief has read the deque slot, which we may reuse, and
     * has initialized f->waiter. The wait is short: the thief is between
     * its CAS on the deque and this store. */
    while (!(thief = atomic_load_explicit(&f->thief, memory_order_acquire)))
        heist__cpu_relax();
    return thief;
}

/* The suspension's then of a joiner whose child a thief still runs: hands
 * the suspended fiber to the thief, or, if the thief finished meanwhile,
 * makes it ready again at once. */
static void join_then(struct heist__fiber *from, void *arg)
{
    struct heist__frame *f = arg;
    void *expected = NULL;
    /* acq_rel: release publishes the fiber's saved state to the thief
     * that will resume it; acquire pairs with the thief's exchange to
     * DONE when we lose (then we resume it ourselves). */
    if (!atomic_compare_exchange_strong_explicit(&f->waiter, &expected, from,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
        heist__fiber_ready(heist__self_get()->sched, from, HEIST__WAKE_OK);
}

/* The joiner waits for a frame a thief took (see the top of the file). */
static void wait_stolen(struct heist__frame *f)
{
    wait_thief(f);
    /* Acquire: pairs with the thief's acq_rel exchange to DONE; f->result
     * is visible after it. */
    if (atomic_load_explicit(&f->waiter, memory_order_acquire) ==
        HEIST__FRAME_DONE)
        return;
    heist__drain();
    if (atomic_load_explicit(&f->waiter, memory_order_acquire) ==
        HEIST__FRAME_DONE)
        return;
    if (heist__suspend(join_then, f, HEIST__SUSP_JOIN) == HEIST__WAKE_OK)
        return;
    /* No fiber to switch to (out of memory): wait here, yielding. The
     * child never waits for us (task.h), so this ends. */
    while (atomic_load_explicit(&f->waiter, memory_order_acquire) !=
           HEIST__FRAME_DONE)
        sched_yield();
}

void heist__drain(void)
{
    struct heist__worker *w = heist__self_get();
    uint32_t h;
    while ((h = heist__dq_head(&w->dq)) > 0) {
        /* Relaxed: the owner reads its own write. */
        struct heist__frame *f = atomic_load_explicit(&w->dq.o_slot[h - 1],
                                                      memory_order_relaxed);
        bool stolen;
        /* Off the deque from here on, whatever happens: the inline join
         * must not take the slot word for a live slot once this fiber has
         * moved on (task_inline.h). */
        f->slot = NULL;
        if (heist__deque_pop_if(&w->dq, f, &stolen)) {
            /* Run it here, as a thief would (the join finds it done). */
            atomic_store_explicit(&f->waiter, NULL, memory_order_relaxed);
            /* Release: pairs with the joiner's acquire (wait_thief). */
            atomic_store_explicit(&f->thief, w, memory_order_release);
            void *r = f->fn(f->arg);
            f->result = r;
            /* Relaxed: read by the join, later on this same fiber. */
            atomic_store_explicit(&f->state, F_DRAINED, memory_order_relaxed);
            /* Release: pairs with the joiner's acquire load; nobody waits
             * on it yet (its joiner is below us on this stack). */
            atomic_store_explicit(&f->waiter, HEIST__FRAME_DONE,
                                  memory_order_release);
            /* f may have suspended and moved us to another worker. */
            w = heist__self_get();
        } else if (stolen) {
            wait_thief(f);
        } else {
            heist__fatal("fork deque out of order while draining");
        }
    }
}

/* Everything heist_join (fn NULL) and heist_join_fn do beyond their fast
 * path (heist__join_fast in heist/task_inline.h, inline in the caller).
 * Exported: ABI, not API. */
int heist__join_slow(heist_task *t, heist_fn fn, void **result)
{
    struct heist__frame *f = (struct heist__frame *)t;
    if (heist__unlikely(!f))
        return EINVAL;
    /* Joined already (by the inline join or below). Written by this
     * task's own joins: a plain read. */
    if (heist__unlikely((uintptr_t)f->slot == HEIST__TASK_SLOT_JOINED))
        return EINVAL;
    /* A named join of another function joins nothing (task.h). f->fn was
     * written by this task's fork; nobody else writes it. */
    if (fn && f->fn != fn)
        return EINVAL;
    void *r = NULL;
    bool stolen = false, popped = false;
    struct heist__worker *w = heist__self_get();
    /* First the deque: a frame the fast fork pushed has no state yet (it
     * gets one when it is published, drained or joined), so whether it is
     * still ours is asked of the deque, not of the frame. */
    if (w) {
        uint32_t head = heist__dq_head(&w->dq);
        /* Relaxed: the owner reads its own slot. */
        if (head > 0 &&
            atomic_load_explicit(&w->dq.o_slot[head - 1],
                                 memory_order_relaxed) == f) {
            /* Still on our deque (private, public, or stolen with its
             * position not yet given back). */
            if (heist__deque_pop_if(&w->dq, f, &stolen)) {
                /* Counted before the call: f may suspend and come back
                 * on another worker. */
                heist__count(&w->ctr.inlined);
                popped = true;
                r = f->fn(f->arg);
            } else if (!stolen) {
                return EINVAL;
            }
        } else {
            /* Not our newest fork. Every slot below head holds an unjoined
             * fork of this fiber (stolen ones keep their position until
             * joined, and a fiber suspends only with an empty deque), so
             * if f is there the join is out of order, whether or not a
             * thief took f: EINVAL, nothing joined. (Without this scan an
             * out-of-order join of a stolen fork waited for it and left
             * its position behind.) Relaxed: the owner reads its own
             * writes. */
            for (uint32_t i = 0; i < head; i++)
                if (atomic_load_explicit(&w->dq.o_slot[i],
                                         memory_order_relaxed) == f)
                    return EINVAL;
        }
    }
    /* Not on our deque: the frame's state says what it is. Relaxed:
     * written by this task's slow fork, publication, drain or join (this
     * thread, or before a suspension that ordered it), or by a thief,
     * whose release of `thief` the code below acquires before reading
     * more. */
    uintptr_t st = F_FORKED;
    if (!popped && !stolen)
        st = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (popped) {
        /* Ran above. */
    } else if (stolen) {
        wait_stolen(f);
        heist__count(&heist__self_get()->ctr.joined_stolen);
        r = f->result;
    } else if (st == F_FORKED || st == F_DONE) {
        if (heist__unlikely(!w))
            return EINVAL; /* forked on a worker, joined elsewhere */
        /* Taken before this fiber last suspended, or never ours (a
         * published frame: its thief was cleared then). Acquire: pairs
         * with the release store of its thief (or of a drain). */
        if (!atomic_load_explicit(&f->thief, memory_order_acquire))
            return EINVAL; /* not this worker's newest fork */
        wait_stolen(f);
        heist__count(&heist__self_get()->ctr.joined_stolen);
        r = f->result;
    } else if (st == F_DRAINED) {
        r = f->result;
        heist__count(&heist__self_get()->ctr.inlined);
    } else if (st == F_INLINE_DONE) {
        r = f->result;
    } else if (st == F_BAD_FN) {
        /* Relaxed: a never-published frame. */
        atomic_store_explicit(&f->state, F_JOINED, memory_order_relaxed);
        f->slot = (void *)HEIST__TASK_SLOT_JOINED;
        return EINVAL;
    } else {
        return EINVAL; /* never forked, or joined already */
    }
    /* Relaxed: nobody else touches a frame after DONE. */
    atomic_store_explicit(&f->state, F_JOINED, memory_order_relaxed);
    /* And its slot word, which the inline join reads (task_inline.h). */
    f->slot = (void *)HEIST__TASK_SLOT_JOINED;
    if (result)
        *result = r;
    return 0;
}

/* The exported heist_join and heist_join_fn (for callers without the
 * inline header, or under a sanitizer). */
int heist_join(heist_task *t, void **result)
{
    return heist__join_fast(t, NULL, result);
}

int heist_join_fn(heist_task *t, heist_fn fn, void **result)
{
    if (!fn)
        return EINVAL;
    return heist__join_fast(t, fn, result);
}

void *heist__run_user(struct heist__tk *task, heist_fn fn, void *arg,
                      int kind, const void *sym)
{
    struct heist__worker *w = heist__self_get();
    /* Relaxed: owner-only writes (worker.h). */
    atomic_store_explicit(&w->task, task, memory_order_relaxed);
    if (heist__unlikely(w->tb != NULL)) {
        /* The slice's name stays with the fiber: a resumption reopens it
         * (heist__suspend). */
        w->cur->trace_sym = sym;
        heist__trace_rec(w->tb, HEIST__TEV_BEGIN, sym, (uint32_t)kind, 0);
    }
    void *r = fn(arg);
    /* fn may have suspended: we may be on another worker now. */
    w = heist__self_get();
    if (heist__unlikely(w->tb != NULL))
        heist__trace_rec(w->tb, HEIST__TEV_END, NULL, 0, 0);
    /* Relaxed: owner-only writes, as above. */
    atomic_store_explicit(&w->task, NULL, memory_order_relaxed);
    check_joined(w);
    return r;
}

void heist__frame_run_stolen(struct heist__frame *f, struct heist__tk *task)
{
    struct heist__worker *w = heist__self_get();
    /* Relaxed: published by the release store of thief just below. */
    atomic_store_explicit(&f->waiter, NULL, memory_order_relaxed);
    /* Release: pairs with the acquire in wait_thief and heist__join_slow;
     * our read of the deque slot (in heist__deque_steal) happens before the
     * owner reuses it. */
    atomic_store_explicit(&f->thief, w, memory_order_release);
    void *r = heist__run_user(task, f->fn, f->arg, HEIST__TK_FORK,
                             (const void *)f->fn);
    f->result = r;
    atomic_store_explicit(&f->state, F_DONE, memory_order_relaxed);
    /* acq_rel: release publishes f->result (and the state) to the joiner,
     * which reads them after its acquire of DONE; acquire pairs with the
     * joiner's release CAS of its suspended fiber. This is our last access
     * to the frame: the joiner may return and reuse it right after. */
    void *waiter =
        atomic_exchange_explicit(&f->waiter, HEIST__FRAME_DONE,
                                 memory_order_acq_rel);
    if (waiter)
        heist__fiber_ready(heist__self_get()->sched, waiter, HEIST__WAKE_OK);
}
