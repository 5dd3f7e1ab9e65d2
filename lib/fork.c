/*
 * fork.c - zero-allocation fork-join: heist_fork, heist_join, forks stolen
 * by other workers, the drain before a suspension.
 *
 * A fork is an entry on the worker's deque (struct heist__fjent: the
 * function and its argument, heist/task_inline.h); the heist_task, in the
 * forking function's storage, holds the entry's address and its own
 * copies of the function and argument. heist_join pops the entry back and
 * runs the function inline (the common case: no atomic read-modify-write,
 * no fence), or finds that a thief took it and waits for the thief.
 *
 * The fast paths of heist_fork and heist_join (and heist_join_fn) live in
 * the public header heist/task_inline.h, inline in the caller; they read
 * and write the worker's deque through the exported thread-local view
 * heist__fj (top, limit and split as entry addresses, the inline-join
 * count; deque.h keeps it in step with the deque) and call
 * heist__fork_slow and heist__join_slow here for everything else. Those
 * take the task's words as values and give back new ones: nothing of the
 * caller's frame is kept or written by the library, so a compiler may keep
 * the task in registers (and then heist_join, too, calls a known function
 * directly). The exported heist_fork, heist_join and heist_join_fn run the
 * same code on a task in memory.
 *
 * A task's slot word: its entry while forked, or HEIST__TASK_RAN (the fork
 * ran at once: not on a worker, or the deque was full; the result is in
 * the task's argument word), HEIST__TASK_BADFN (forked with fn NULL: the
 * join says EINVAL), HEIST__TASK_JOINED (a second join says EINVAL).
 *
 * Stolen forks. A thief takes a steal record R from its record cache
 * (before it tries: a thief that cannot have one steals no fork), claims
 * an entry (deque.c), copies its function and argument and acknowledges
 * the entry by storing R's address into the entry's sync word (release).
 * From then on it never touches the entry: the owner may reuse its
 * position (deque.c I3) once it has seen the acknowledgement. The thief
 * runs the function, writes R->result and exchanges R->waiter to DONE
 * (its last access to R); if it finds a suspended joiner there it resumes
 * it. The joiner CASes its fiber into R->waiter after its switch
 * (join_then, the suspension's "then"), so the thief never resumes a
 * running fiber; if the CAS finds DONE, the joiner's fiber is made ready
 * again at once. The joiner gives R back to its cache (from another
 * worker: to its maker's remote list).
 *
 * The drain. A fiber suspends only with an empty deque (a suspended fiber
 * has no deque; its worker goes on with other work). So before a
 * suspension heist__drain takes every entry of the fiber off the deque,
 * newest first, as today's join would: an entry no thief took (private,
 * or public and taken back) runs here at once, as the serial program
 * would have run it (task.h: a forked task must not wait for what its
 * parent does after the fork), and becomes a DRAINED item of the fiber's
 * save list (fiber.h) with its result; a stolen one, once acknowledged,
 * a STOLEN item (R). Older entries stay on the deque, where thieves may
 * take them, while a newer one runs. A run may suspend too: its drain
 * (nested) takes the older entries and its own forks, which it joins
 * before it returns. The items a drain appended are then sorted by entry
 * address (they come from one region of one deque, so the addresses are
 * distinct and in fork order): the list is in fork order, newest last.
 *
 * Bounded drains. A run that suspends drains again, inside the first
 * drain, on the same stack: a task that forks n children which each
 * suspend, then suspends itself, would nest n runs deep (the default stack
 * overflowed at about 740). So a drain that already runs DRAIN_NEST_MAX
 * forks one inside another, or that has less than a quarter of its stack
 * left, runs no more of them: it hands each entry it pops to its own
 * worker's ready queue as an item in a steal record (HEIST__SELF_QUEUED),
 * a STOLEN item of the save list like a thief's. The item runs the fork on
 * a fiber of its own, as a thief would, and its joiner waits for it as for
 * a thief. A joiner that cannot suspend (no fiber, no memory) would wait
 * for an item queued behind it, forever on one worker: it claims the
 * record instead (HEIST__SELF_JOINER) and runs the fork itself; the item,
 * when a worker takes it, finds the claim and gives the record back. One
 * CAS on `self` decides who runs it. Out of memory for a record, the drain
 * runs the fork inline as before. The counters and the trace take a
 * queued fork that its item runs for a stolen one (a steal by the worker
 * that runs it, from the one that queued it: forks = inlined + steals
 * still; its trace has the steal and the fork slice but no arrow from
 * the parent, suspended by then), and one its joiner runs for an inline
 * one. A queued item counts
 * in the scheduler's live count (worker.h) until it has run, claimed or
 * not, so heist_sched_free waits for it.
 *
 * Joining a fork that is not on the deque: the deque is empty (head at its
 * base) and the fork must be the save list's last item (same entry
 * address, function and argument; else the join is out of order: EINVAL,
 * nothing joined). DRAINED gives its result, STOLEN waits for R.
 *
 * Stale entries. A fiber that resumes finds an empty deque;
 * heist__fork_rebase (called at every resumption and at the end of every
 * drain) moves it above every entry of that deque that the fiber's save
 * list names. So while the fiber runs, its saved entries lie below split:
 * the inline join's test (its entry is the one below top and at or above
 * split) cannot take a saved entry for a live one, which a join out of
 * order would otherwise do, and a later fork of the fiber cannot take a
 * saved item's address, so the join's lookup by address is unambiguous
 * (but for the forks of a run inside a drain, whose joins come first).
 */
#include "cache.h"
#include "fork.h"
#include "spawn.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <stdlib.h>

/* The calling thread's view of its worker's deque (heist/task_inline.h):
 * zero unless the thread runs a worker (bound by heist__deque_bind). On a
 * cache line of its own: the fast paths touch nothing else per fork. */
__thread _Alignas(64) struct heist__fj heist__fj
    __attribute__((tls_model("initial-exec"), visibility("default")))
    HEIST__ASM_NAMED; /* named in assembly: heist/task_inline.h */

/* Bounded drains (top of file): how many forks a drain runs one inside
 * another before it queues the rest, and the part of the stack it keeps
 * free (1/DRAIN_STACK_PART). */
enum { DRAIN_NEST_MAX = 8, DRAIN_STACK_PART = 4 };
/* The largest save list (items) a worker keeps for the next drain: 1 MiB. */
enum { SAVED_SPARE_MAX = (1u << 20) / sizeof(struct heist__saved) };

/* A queued fork's record's `self` (struct heist__stolen): 0 in a thief's
 * record. */
enum { HEIST__SELF_QUEUED = 1, HEIST__SELF_ITEM, HEIST__SELF_JOINER };

static struct heist__joined joined(void *r, int err)
{
    return (struct heist__joined){.result = r, .err = (uintptr_t)err};
}

/* A task ended on fiber f, on worker w: its save list (empty) becomes
 * w's spare, which the next drain there that needs one takes
 * (saved_reserve), unless the spare is as large already or the list is
 * over SAVED_SPARE_MAX items. Freeing it at every task's end cost a warm
 * program that drains thousands of forks per run (bench/forkwait_heist
 * 3000) a trim of glibc's arena (one madvise per run) and the page faults
 * that took the memory back at the next run's drain. */
static void saved_release(struct heist__worker *w, struct heist__fiber *f)
{
    struct heist__saved *v = f->saved;
    uint32_t cap = f->capsaved;
    f->saved = NULL;
    f->capsaved = 0;
    if (cap > SAVED_SPARE_MAX || cap <= w->saved_spare_cap) {
        free(v);
        return;
    }
    free(w->saved_spare);
    w->saved_spare = v;
    w->saved_spare_cap = cap;
}

/* Aborts with a message if a task that just returned (on worker w, which
 * started it with an empty deque) left forks unjoined. Called before the
 * item is reported done: after that a forgotten fork's entry could be
 * stolen and run after its task's end. */
static void check_joined(struct heist__worker *w)
{
    uint32_t n = heist__dq_head(&w->dq) - w->dq.o_base + w->cur->nsaved;
    if (heist__unlikely(n != 0))
        heist__fatal("a task returned with %u heist_fork() not joined "
                     "(every fork needs its heist_join before the forking "
                     "function returns)",
                     (unsigned)n);
    if (heist__unlikely(w->cur->capsaved != 0))
        saved_release(w, w->cur);
    /* A rebase moved the empty deque up (heist__fork_rebase); the next task
     * starts from 0 again. */
    if (heist__unlikely(w->dq.o_base != 0))
        heist__deque_rebase(&w->dq, 0);
}

/* Everything heist_fork does beyond its fast path (heist__fork_fast in
 * heist/task_inline.h, inline in the caller). Exported: ABI, not API. */
struct heist__forked heist__fork_slow(heist_fn fn, void *arg)
{
    if (heist__unlikely(!fn))
        return (struct heist__forked){.slot = HEIST__TASK_BADFN};
    struct heist__worker *w = heist__self;
    if (heist__likely(w != NULL)) {
        bool published = false;
        if (heist__likely(heist__deque_push(&w->dq, fn, arg, &published) ==
                          0)) {
            if (heist__unlikely(published))
                heist__wake_one(w->sched);
            return (struct heist__forked){
                .slot = (uintptr_t)(w->dq.fj->top - 1)};
        }
        /* The deque is full: run it now, serially. */
    }
    void *r = fn(arg);
    return (struct heist__forked){.slot = HEIST__TASK_RAN, .result = r};
}

void heist__entry_publish(struct heist__fjent *e)
{
    /* Relaxed: the owner alone reads sync (wait_ack), for an entry a thief
     * claimed; a thief claims only a published entry, and acknowledges it
     * after its acquire CAS of ts, which the deque's seq_cst write of ts,
     * after this store, published (deque.c I2). */
    __atomic_store_n(&e->sync, 0, __ATOMIC_RELAXED);
}

/* The exported heist_fork (for callers without the inline header, or
 * under a sanitizer): the same fast path, then the slow one. */
void heist_fork(heist_task *t, heist_fn fn, void *arg)
{
    heist__fork_fast(t, fn, arg);
}

/* Waits for a thief's acknowledgement of the entry e, which it claimed:
 * after it the thief will not read e again (deque.c I3). */
static uintptr_t wait_ack(const struct heist__fjent *e)
{
    uintptr_t sync;
    /* Acquire: pairs with the thief's release store of its
     * acknowledgement (heist__entry_ack); R's fields are
     * initialized before it. The wait is short: the thief is between its
     * CAS on the deque and that store. */
    while (!(sync = __atomic_load_n(&e->sync, __ATOMIC_ACQUIRE)))
        heist__cpu_relax();
    return sync;
}

/* The suspension's then of a joiner whose child a thief still runs: hands
 * the suspended fiber to the thief, or, if the thief finished meanwhile,
 * makes it ready again at once. */
static void join_then(struct heist__fiber *from, void *arg)
{
    struct heist__stolen *r = arg;
    void *expected = NULL;
    /* acq_rel: release publishes the fiber's saved state to the thief
     * that will resume it; acquire pairs with the thief's exchange to
     * DONE when we lose (then we resume it ourselves). */
    if (!atomic_compare_exchange_strong_explicit(&r->waiter, &expected, from,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
        heist__fiber_ready(heist__self_get()->sched, from, HEIST__WAKE_OK);
}

/* Whether the thief finished r. Acquire: pairs with its acq_rel exchange
 * to DONE; r->result is visible after it. */
static bool stolen_done(struct heist__stolen *r)
{
    return atomic_load_explicit(&r->waiter, memory_order_acquire) ==
           HEIST__STOLEN_DONE;
}

/* A joiner that cannot suspend claims a queued fork's record r (fn, arg:
 * the fork, from the save list) and runs the fork itself, if no worker
 * took the item yet ("Bounded drains"). Returns whether it ran it (then
 * *res is the result, and r is the item's to give back). */
static bool run_queued(struct heist__stolen *r, heist_fn fn, void *arg,
                       void **res)
{
    uint32_t st = HEIST__SELF_QUEUED;
    /* Fails on a thief's record (0, which its acknowledgement published
     * before wait_ack's acquire) and on a fork the item took. Acq_rel:
     * pairs with the item's CAS (run_self_stolen): whichever fails sees the
     * other's claim. We read nothing of r after it (fn and arg come from
     * the save list): once it fails there, the item gives r back, so our
     * release orders our last access to r before that. */
    if (!atomic_compare_exchange_strong_explicit(&r->self, &st,
                                                 HEIST__SELF_JOINER,
                                                 memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    struct heist__worker *w = heist__self_get();
    heist__count(&w->ctr.inlined);
    uintptr_t at = (uintptr_t)(w->dq.ent + heist__dq_head(&w->dq));
    *res = fn(arg);
    heist__join_check(at); /* its forks joined, as after a join's run */
    return true;
}

/* The joiner waits for a fork a thief took (record r; fn and arg: the
 * fork, for a queued one), gives r back and returns the fork's result. */
static void *wait_stolen(struct heist__stolen *r, heist_fn fn, void *arg)
{
    if (!stolen_done(r) && heist__drain() == 0 && !stolen_done(r)) {
        struct heist__fiber *self = heist__self_get()->cur;
        heist__suspend(join_then, r, HEIST__SUSP_JOIN);
        /* Resumed by the thief (or by join_then, having found DONE), or
         * not suspended (no fiber): this fiber's forks go above the ones
         * its drain saved. */
        heist__fork_rebase(heist__self_get(), self);
    }
    /* Not suspended (out of memory for the save list or a fiber): wait
     * here, yielding. The child never waits for us (task.h), so this ends:
     * a thief runs it, or, queued by our own drain, an item that some
     * worker takes, or we, if none has. */
    while (!stolen_done(r)) {
        void *res;
        if (run_queued(r, fn, arg, &res))
            return res;
        sched_yield();
    }
    void *res = r->result;
    heist__cache_put(HEIST__C_STOLEN, r);
    heist__count(&heist__self_get()->ctr.joined_stolen);
    return res;
}

/* Makes room for n more items in f's save list (w runs f). */
static int saved_reserve(struct heist__worker *w, struct heist__fiber *f,
                         uint32_t n)
{
    if (f->capsaved - f->nsaved >= n)
        return 0;
    if (f->capsaved == 0 && w->saved_spare) {
        /* The list a task's end left here (saved_release). */
        f->saved = w->saved_spare;
        f->capsaved = w->saved_spare_cap;
        w->saved_spare = NULL;
        w->saved_spare_cap = 0;
        if (f->capsaved >= n)
            return 0;
    }
    uint64_t want = (uint64_t)f->nsaved + n;
    uint64_t cap = f->capsaved ? f->capsaved : 8;
    while (cap < want)
        cap *= 2;
    if (cap > UINT32_MAX)
        return ENOMEM;
    struct heist__saved *v = realloc(f->saved, (size_t)cap * sizeof *v);
    if (!v)
        return ENOMEM;
    f->saved = v;
    f->capsaved = (uint32_t)cap;
    return 0;
}

/* Orders save-list items by entry address (qsort). */
static int saved_cmp(const void *a, const void *b)
{
    const struct heist__fjent *x = ((const struct heist__saved *)a)->e;
    const struct heist__fjent *y = ((const struct heist__saved *)b)->e;
    return (x > y) - (x < y);
}

/* The length of the run that starts v[0..n): ascending, or strictly
 * descending (then reversed in place, so it ascends). */
static uint32_t saved_run(struct heist__saved *v, uint32_t n)
{
    uint32_t i = 1;
    if (n < 2)
        return n;
    if (v[1].e < v[0].e) {
        while (i < n && v[i].e < v[i - 1].e)
            i++;
        for (uint32_t a = 0, b = i - 1; a < b; a++, b--) {
            struct heist__saved t = v[a];
            v[a] = v[b];
            v[b] = t;
        }
        return i;
    }
    while (i < n && v[i].e >= v[i - 1].e)
        i++;
    return i;
}

/* Items a merge copies aside: the shorter of the two runs, at most. */
enum { SAVED_MERGE_MAX = 32 };

/* Puts the n items a drain appended at v in address order (fork order, top
 * of file). They are one or two runs: the entries the drain popped, newest
 * first (descending), or the fork it ran and the segment its run's nested
 * drain appended, already in order. One run is reversed if need be; two
 * are merged in place when the shorter has at most SAVED_MERGE_MAX items
 * (linear, where qsort took about 6% of bench/forkwait_heist); anything
 * else goes to qsort. */
static void saved_sort(struct heist__saved *v, uint32_t n)
{
    uint32_t m = saved_run(v, n);
    if (m == n)
        return;
    uint32_t r = saved_run(v + m, n - m);
    if (m + r != n || (m > SAVED_MERGE_MAX && r > SAVED_MERGE_MAX)) {
        qsort(v, n, sizeof *v, saved_cmp);
        return;
    }
    struct heist__saved tmp[SAVED_MERGE_MAX];
    if (m <= r) {
        /* The first run aside; merge forward into v. */
        memcpy(tmp, v, m * sizeof *v);
        uint32_t i = 0, j = m, k = 0;
        while (i < m && j < n)
            v[k++] = v[j].e < tmp[i].e ? v[j++] : tmp[i++];
        while (i < m)
            v[k++] = tmp[i++];
    } else {
        /* The second run aside; merge backward into v. */
        memcpy(tmp, v + m, r * sizeof *v);
        uint32_t i = m, j = r, k = n;
        while (i > 0 && j > 0)
            v[--k] = tmp[j - 1].e < v[i - 1].e ? v[--i] : tmp[--j];
        while (j > 0)
            v[--k] = tmp[--j];
    }
}

/* After the drain ran the item i of f's save list (entry e, popped at
 * position h - 1 of w0's deque, whose base was base0): aborts if the run
 * returned with forks of its own not joined, on a deque or in the save
 * list (they would be dropped, or run on a dead frame). Those in the list
 * follow item i: items there may only be older forks of ours (in w0's
 * deque, below e), which a drain of the run took off. */
static void check_run_joined(const struct heist__worker *w0, uint32_t base0,
                             uint32_t h, const struct heist__fiber *f,
                             uint32_t i, const struct heist__fjent *e)
{
    const struct heist__worker *now = heist__self_get();
    uint32_t head = heist__dq_head(&now->dq), n = 0;
    if (now == w0 && now->dq.o_base == base0)
        n = head > h - 1 ? head - (h - 1) : 0;
    else
        n = head - now->dq.o_base;
    for (uint32_t j = i + 1; j < f->nsaved; j++)
        if (!(f->saved[j].e >= w0->dq.ent && f->saved[j].e < e))
            n++;
    if (heist__unlikely(n != 0))
        heist__fatal("a forked task returned with %u heist_fork() not "
                     "joined (every fork needs its heist_join before the "
                     "forking function returns)",
                     (unsigned)n);
}

void heist__join_check(uintptr_t slot)
{
    const struct heist__worker *w = heist__self_get();
    if (heist__unlikely(!w))
        return; /* not reached: a join runs a task here only on a worker */
    const struct heist__deque *dq = &w->dq;
    uint32_t head = heist__dq_head(dq);
    const struct heist__fjent *e = (const struct heist__fjent *)slot;
    bool here = e >= dq->ent + dq->o_base && e < dq->ent + dq->o_cap;
    uint32_t at = here ? (uint32_t)(e - dq->ent) : 0;
    /* Joined: the deque stands where the task began (the fiber did not
     * suspend since, or did and the rebase left the base below slot), or,
     * after a suspension, at the base of the empty deque the fiber
     * resumed on: the task's forks since are gone, and its caller has not
     * forked since the join began. */
    if (head == dq->o_base || (here && head == at))
        return;
    /* Not joined: the forks above where the task began, or, after a
     * suspension, every fork since the fiber resumed (all the task's). A
     * fork the task left pending at a suspension was run or taken by that
     * suspension's drain while the task lived; it stays in the fiber's
     * save list, which the end of the task that the fiber runs checks. */
    uint32_t n = here && head > at ? head - at : head - dq->o_base;
    heist__fatal("a forked task returned with %u heist_fork() not joined "
                 "(every fork needs its heist_join before the forking "
                 "function returns)",
                 (unsigned)n);
}

/* Whether a drain of f runs no more forks inline ("Bounded drains"). */
static bool drain_too_deep(const struct heist__fiber *f)
{
    if (f->drain_nest >= DRAIN_NEST_MAX)
        return true;
    /* The stack grows down from stack_lo + stack_size. */
    const char *sp = __builtin_frame_address(0);
    return f->stack_size != 0 && sp >= f->stack_lo &&
           (size_t)(sp - f->stack_lo) < f->stack_size / DRAIN_STACK_PART;
}

/* The run function of a queued fork ("Bounded drains"): runs it as a
 * thief would, unless its joiner claimed it first. */
static void run_self_stolen(struct heist__item *it)
{
    struct heist__stolen *r = caa_container_of(it, struct heist__stolen, it);
    struct heist_sched *s = heist__self_get()->sched;
    uint32_t st = HEIST__SELF_QUEUED;
    /* Acq_rel: pairs with the joiner's CAS (run_queued); on failure the
     * acquire orders the joiner's last access to r before we give it
     * back. The fields below were written before the item was queued,
     * which the queue's publication orders. */
    if (!atomic_compare_exchange_strong_explicit(&r->self, &st,
                                                 HEIST__SELF_ITEM,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        heist__cache_put(HEIST__C_STOLEN, r);
        heist__live_down(&s->live, heist__live_index(s));
        return;
    }
    heist_fn fn = r->fn;
    void *arg = r->arg;
    struct heist__tk *task = r->task;
    struct heist__worker *w = heist__self_get();
    heist__count(&w->ctr.steals);
    /* No flow arrow (id 0): the parent that queued it is suspended now,
     * and its worker's track shows something else. */
    if (heist__unlikely(w->tb != NULL))
        heist__trace_rec(w->tb, HEIST__TEV_STEAL, NULL, r->from, 0);
    heist__entry_run_stolen(fn, arg, task, r);
    /* r may be gone (its joiner gives it back after DONE). We may be on
     * another worker now. */
    heist__live_down(&s->live, heist__live_index(s));
}

/* Hands the fork fn(arg), just popped from w's deque by a drain, to w's
 * ready queue ("Bounded drains"). Returns its record, or NULL (out of
 * memory: the drain runs it). */
static struct heist__stolen *queue_fork(struct heist__worker *w, heist_fn fn,
                                        void *arg)
{
    struct heist__stolen *r = heist__stolen_new();
    if (!r)
        return NULL;
    r->result = NULL;
    /* Relaxed: the queue's publication of the item (below) orders these
     * before the item's run; the joiner is this fiber. */
    atomic_store_explicit(&r->waiter, NULL, memory_order_relaxed);
    atomic_store_explicit(&r->self, HEIST__SELF_QUEUED, memory_order_relaxed);
    r->fn = fn;
    r->arg = arg;
    /* Relaxed: owner-only writes (worker.h); the task we run for. */
    r->task = atomic_load_explicit(&w->task, memory_order_relaxed);
    r->from = w->index;
    r->it.run = run_self_stolen;
    /* Counted before it is queued: heist_sched_free waits for it. */
    heist__live_up(&w->sched->live, heist__live_index(w->sched));
    heist__make_runnable(w->sched, &r->it);
    return r;
}

int heist__drain(void)
{
    struct heist__worker *w = heist__self_get();
    struct heist__fiber *f = w->cur;
    uint32_t h = heist__dq_head(&w->dq);
    if (h > w->dq.o_base) {
        /* Room for every entry now on the deque: a run's own drain
         * reserves for its forks. */
        if (saved_reserve(w, f, h - w->dq.o_base) != 0)
            return ENOMEM;
        uint32_t first = f->nsaved;
        while ((h = heist__dq_head(&w->dq)) > w->dq.o_base) {
            struct heist__fjent *e = w->dq.ent + h - 1;
            /* This fiber's fork wrote them; a thief only reads them. */
            heist_fn fn = e->fn;
            void *arg = e->arg;
            bool stolen;
            /* The item's index, not its address: a run may grow the
             * list. */
            if (heist__unlikely(f->nsaved == f->capsaved))
                heist__fatal("fork deque grew while draining");
            uint32_t i = f->nsaved++;
            f->saved[i] = (struct heist__saved){.e = e, .fn = fn, .arg = arg};
            if (heist__deque_pop_if(&w->dq, e, &stolen)) {
                struct heist__stolen *q =
                    drain_too_deep(f) ? queue_fork(w, fn, arg) : NULL;
                if (q) {
                    f->saved[i].kind = HEIST__SAVED_STOLEN;
                    f->saved[i].val = q;
                    continue;
                }
                f->saved[i].kind = HEIST__SAVED_RUNNING;
                uint32_t base = w->dq.o_base;
                f->drain_nest++;
                void *r = fn(arg);
                f->drain_nest--;
                /* Its forks joined: the deque is back where the run began
                 * (or, if the run suspended, its drain emptied it, perhaps
                 * on another worker since). */
                check_run_joined(w, base, h, f, i, e);
                w = heist__self_get();
                f->saved[i].kind = HEIST__SAVED_DRAINED;
                f->saved[i].val = r;
            } else if (stolen) {
                f->saved[i].kind = HEIST__SAVED_STOLEN;
                f->saved[i].val = (void *)wait_ack(e);
            } else {
                heist__fatal("fork deque out of order while draining");
            }
        }
        /* In fork order (top of file). */
        saved_sort(f->saved + first, f->nsaved - first);
#ifndef NDEBUG
        for (uint32_t i = first + 1; i < f->nsaved; i++)
            if (f->saved[i].e <= f->saved[i - 1].e)
                heist__fatal("save list out of order after its sort");
#endif
    }
    /* The fiber may go on without suspending (its future was done): its
     * next forks must not take a saved entry's address (top of file). */
    heist__fork_rebase(w, f);
    return 0;
}

void heist__fork_rebase(struct heist__worker *w, struct heist__fiber *f)
{
    struct heist__deque *dq = &w->dq;
    uint32_t head = heist__dq_head(dq);
    if (heist__unlikely(head != dq->o_base))
        heist__fatal("fork deque not empty where a fiber goes on (%u forks)",
                     (unsigned)(head - dq->o_base));
    /* The list's items in this deque are in address order (each fork of
     * the fiber here went above the ones saved before, top of file), so
     * the last of them is the highest, and mostly that is the list's last
     * item (a fiber resumes where it forked): no scan of the whole list
     * at each resumption. But not while a drain of the fiber runs a fork
     * (drain_nest): the items that drain has taken so far are in pop
     * order, newest first, until its sort. */
    uint32_t pos = 0;
    for (uint32_t i = f->nsaved; i-- > 0;) {
        const struct heist__fjent *e = f->saved[i].e;
        if (e >= dq->ent && e < dq->ent + dq->o_cap &&
            (uint32_t)(e - dq->ent) >= pos) {
            pos = (uint32_t)(e - dq->ent) + 1;
            if (f->drain_nest == 0)
                break;
        }
    }
#ifndef NDEBUG
    /* The order argued above: no item of this deque lies higher. */
    for (uint32_t i = 0; i < f->nsaved; i++) {
        const struct heist__fjent *e = f->saved[i].e;
        if (e >= dq->ent + pos && e < dq->ent + dq->o_cap)
            heist__fatal("fork save list out of order (item %u of %u)",
                         (unsigned)i, (unsigned)f->nsaved);
    }
#endif
    /* pos == capacity (a saved entry in the last position): the deque
     * stands full, and forks run at once until the fiber suspends again. */
    if (pos != dq->o_base)
        heist__deque_rebase(dq, pos);
}

/* A join of the task whose words are (slot, tfn, targ), fn the named
 * function or NULL, on worker w whose running fiber has no fork on the
 * deque: the task must be the save list's last item. */
static struct heist__joined join_saved(struct heist__worker *w, uintptr_t slot,
                                       heist_fn tfn, void *targ)
{
    struct heist__fiber *f = w->cur;
    if (f->nsaved == 0)
        return joined(NULL, EINVAL);
    struct heist__saved *it = &f->saved[f->nsaved - 1];
    if ((uintptr_t)it->e != slot || it->fn != tfn || it->arg != targ ||
        it->kind == HEIST__SAVED_RUNNING)
        return joined(NULL, EINVAL);
    f->nsaved--;
    /* The deque stands just above this entry (the rebase put it there):
     * back down to it, so that a task that forks, suspends and joins in a
     * loop keeps using the same positions. The deque is empty (no fork of
     * ours on it) and the fiber's other items in it lie below (in fork
     * order, each above the older ones), but for a run inside a drain of
     * the fiber: the items that drain took before the run lie above (its
     * forks' joins come first, top of file). */
    struct heist__deque *dq = &w->dq;
    if (dq->o_base != 0 && it->e == dq->ent + dq->o_base - 1)
        heist__deque_rebase(dq, dq->o_base - 1);
    if (it->kind == HEIST__SAVED_DRAINED) {
        heist__count(&w->ctr.inlined);
        return joined(it->val, 0);
    }
    return joined(wait_stolen(it->val, it->fn, it->arg), 0);
}

/* Everything heist_join (fn NULL) and heist_join_fn do beyond their fast
 * path (heist__join_fast in heist/task_inline.h, inline in the caller).
 * Exported: ABI, not API. */
struct heist__joined heist__join_slow(uintptr_t slot, heist_fn fn,
                                      heist_fn tfn, void *targ)
{
    if (heist__unlikely(slot == HEIST__TASK_JOINED ||
                        slot == HEIST__TASK_BADFN))
        return joined(NULL, EINVAL);
    /* A named join of another function joins nothing (task.h). */
    if (fn && tfn != fn)
        return joined(NULL, EINVAL);
    if (slot == HEIST__TASK_RAN)
        return joined(targ, 0); /* the result, in the argument's word */
    struct heist__worker *w = heist__self_get();
    if (heist__unlikely(!w))
        return joined(NULL, EINVAL); /* forked on a worker, joined elsewhere */
    struct heist__deque *dq = &w->dq;
    uint32_t h = heist__dq_head(dq);
    if (h == dq->o_base)
        return join_saved(w, slot, tfn, targ);
    /* The fiber has forks on the deque: t's must be the newest of them
     * (and hold t's function and argument: a task never forked, or forked
     * before a suspension, names another entry or none). */
    struct heist__fjent *e = dq->ent + h - 1;
    if ((uintptr_t)e != slot || e->fn != tfn || e->arg != targ)
        return joined(NULL, EINVAL);
    bool stolen;
    if (heist__deque_pop_if(dq, e, &stolen)) {
        /* Counted before the call: it may suspend and come back on
         * another worker. */
        heist__count(&w->ctr.inlined);
        void *r = tfn(targ);
        /* Its forks joined (the deque stands at e again, unless it
         * suspended): as after the inline path's run. */
        heist__join_check(slot);
        return joined(r, 0);
    }
    if (!stolen)
        heist__fatal("fork deque out of order in a join");
    return joined(wait_stolen((struct heist__stolen *)wait_ack(e), tfn, targ),
                  0);
}

/* The exported heist_join and heist_join_fn (for callers without the
 * inline header, or under a sanitizer). */
int heist_join(heist_task *t, void **result)
{
    return heist__join_fast(t, NULL, result);
}

int heist_join_fn(heist_task *t, heist_fn fn, void **result)
{
    return heist__join_fn_inline(t, fn, result);
}

void *heist__run_user(struct heist__tk *task, heist_fn fn, void *arg,
                      int kind, const void *sym)
{
    struct heist__worker *w = heist__self_get();
    /* User code may run long: the ends this worker owes are counted first,
     * unless the code is a task's (its own, or a fork's) of the same
     * count, which cannot reach zero before that task ends (live.c,
     * "Deferred ends"). */
    heist__ends_flush_unless(w, task ? heist__task_live(task) : NULL);
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

struct heist__stolen *heist__stolen_new(void)
{
    return heist__cache_get(HEIST__C_STOLEN, sizeof(struct heist__stolen));
}

void heist__stolen_drop(struct heist__stolen *r)
{
    heist__cache_put(HEIST__C_STOLEN, r);
}

void heist__entry_ack(struct heist__fjent *e, struct heist__stolen *r)
{
    r->result = NULL;
    /* Relaxed, both: published by the release store of the
     * acknowledgement below (the owner reads them after its acquire in
     * wait_ack). self 0: a thief's record, which no joiner may claim. */
    atomic_store_explicit(&r->waiter, NULL, memory_order_relaxed);
    atomic_store_explicit(&r->self, 0, memory_order_relaxed);
    /* Release: pairs with the owner's acquire in wait_ack; our reads of the
     * entry (in heist__deque_steal) happen before the owner reuses it, and
     * r's fields are visible to it. Our last access to the entry. */
    __atomic_store_n(&e->sync, (uintptr_t)r, __ATOMIC_RELEASE);
}

void heist__entry_run_stolen(heist_fn fn, void *arg, struct heist__tk *task,
                             struct heist__stolen *r)
{
    void *res = heist__run_user(task, fn, arg, HEIST__TK_FORK,
                                (const void *)fn);
    r->result = res;
    /* acq_rel: release publishes r->result to the joiner, which reads it
     * after its acquire of DONE; acquire pairs with the joiner's release
     * CAS of its suspended fiber. Our last access to r: the joiner may
     * give it back right after. */
    void *waiter = atomic_exchange_explicit(&r->waiter, HEIST__STOLEN_DONE,
                                            memory_order_acq_rel);
    if (waiter)
        heist__fiber_ready(heist__self_get()->sched, waiter, HEIST__WAKE_OK);
}
