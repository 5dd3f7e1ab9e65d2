/*
 * worker.h - the worker and scheduler structs; making items runnable
 * (ready.c) and the worker loop (worker.c) (internal).
 *
 * Every shared field says which threads write it and which read it.
 */
#ifndef HEIST_WORKER_H
#define HEIST_WORKER_H

#include "deque.h"
#include "fiber.h"
#include "live.h"
#include "park.h"
#include "readyq.h"
#include "timer.h"
#include "trace.h"

#include <limits.h>
#include <pthread.h>
#include <sys/uio.h>

/* Counters: written by the owning worker only (heist__count), read by any
 * thread (relaxed) for statistics. Forks are counted when joined (inlined +
 * joined_stolen): the fork path stays free of counters. */
struct heist__counters {
    _Atomic uint64_t tasks, inlined, joined_stolen, steals, failed_steals,
        parks, suspends, resumes, stacks_mapped, stacks_reused;
};

#define HEIST__NCACHE 5
struct heist__worker {
    struct heist__deque dq;        /* forks: owner pushes/pops, thieves steal */
    struct heist__rq rq;           /* ready items: owner pops, thieves steal */
    _Alignas(HEIST_CACHELINE) struct heist_sched *sched; /* immutable */
    unsigned index;                /* immutable */
    uint64_t rng;                  /* owner-only: victim selection */
    uint32_t tick;                 /* owner-only: items taken (fairness) */
    uint32_t runnext_streak;       /* owner-only: runnext items in a row */
    bool searching;                /* owner-only: counted in nsearching */
    /* Owner-only: whether this worker runs ahead of what its tasks wait
     * for (worker.c, "Running ahead"): queued items started in the current
     * window; the suspends, here-resumes and away-resumes counted when it
     * began; fibers that slept here and were resumed here; the pause (of
     * ready steals, and of our own queue when ah_pause_pops); suspensions
     * that were sleeps (left out of the count); whether the last window
     * did not pay (then windows and steal batches are short). */
    uint32_t ah_started;
    uint32_t ah_pause_ns;
    uint64_t ah_susp0, ah_here0, ah_away0, ah_sleeps0;
    uint64_t ah_sleeps;
    bool ah_probation;
    uint64_t resumed_here;         /* fibers that slept here, resumed here */
    uint64_t ah_pause_until;
    bool ah_pause_pops;            /* the pause covers our own queue too */
    uint32_t busy_n;               /* owner-only: items in this window */
    uint64_t busy_win0;            /* owner-only: when this window began */
    /* Owner-only: task ends not yet counted in ends_live's slot (live.c,
     * "Deferred ends"): ends_n of them, ends_live NULL when none. */
    struct heist__live *ends_live;
    uint64_t ends_n;

    /* The run-next slot (Go's runnext, tokio's LIFO slot): the fiber a
     * completion on this worker woke, run before the ready queue. The
     * owner exchanges items in and out (ready.c, worker.c); another
     * worker's completion may CAS a fiber that slept here into it when it
     * is empty and this worker busy (ready.c, "Going back"); a thief that
     * has searched for a while may take it with a CAS. acq_rel (seq_cst
     * for the remote put) both ways: the item's fields (its wake reason)
     * travel with the pointer. */
    _Atomic(struct heist__item *) runnext;
    /* The worker's trace ring, or NULL when the scheduler is not traced
     * (immutable pointer; the ring is owner-only, trace.h). */
    struct heist__tbuf *tb;
    pthread_t thread;              /* written by the creator */
    /* The spawned task whose code runs now (NULL in the loop and in
     * callbacks). Written by the owner; read (relaxed) by a thief that
     * steals one of its forks, which the owner cannot finish before the
     * thief's acknowledgement (fork.c), so the value read is the fork's
     * task. */
    _Atomic(struct heist__tk *) task;
    /* Owner-only fiber state (fiber.c). */
    struct heist__fiber *cur;      /* the fiber running on this thread */
    struct heist__fiber home;      /* the thread's own stack */
    struct heist__fiber *pool;     /* idle fibers, hottest first */
    unsigned npool;
    heist__then_fn then;           /* left for the next fiber, with: */
    struct heist__fiber *then_from;
    void *then_arg;
    /* Owner-only caches of freed records, and the slabs records are carved
     * from (cache.c). */
    void *cache[HEIST__NCACHE];
    struct heist__slab *slabs;     /* every slab of this worker */
    char *bump, *bump_end;         /* the current slab's free part */
    int64_t rec_out;               /* records handed out, not given back
                                      here (remote frees: remote_frees) */
    /* A save list that a task's end left (fork.c, saved_release): the
     * next drain on this worker that needs one takes it (owner-only). */
    struct heist__saved *saved_spare;
    uint32_t saved_spare_cap;
    void *altstack;                /* the signal stack (overflow reports) */
    size_t altstack_size;
    struct heist__counters ctr;
    /* The ranges a stack allocation asks the kernel for (stack.c,
     * prefaulting): here rather than on the suspending task's stack, and
     * after the fields the loop and the switch use (1 KiB, touched only
     * when a stack is carved or taken back from the kernel). */
    struct iovec prefault_iov[HEIST__PREFAULT_SLOTS + 1];
    /* Records of this worker freed on other workers of its scheduler: a
     * Treiber stack per kind that any worker pushes on (CAS, release) and
     * the owner takes whole (exchange, acquire) when its cache is empty
     * (cache.c). On its own cache line: written by others. */
    _Alignas(HEIST_CACHELINE) _Atomic(void *) remote[HEIST__NCACHE];
    /* Records pushed on remote, ever (relaxed adds after the push; read
     * at the end, cache.c). */
    _Atomic uint64_t remote_frees;
    /* Fibers that suspended on this worker and were resumed on another:
     * the resumer adds (worker.c, "Running ahead"). */
    _Alignas(HEIST_CACHELINE) _Atomic uint64_t resumed_away;
    /* When this worker last finished a fast window of items (ns, 0:
     * never): thieves leave the ready items of a worker that starts them
     * quickly (worker.c, "Busy victims"). Written by the owner only. On
     * its own line: read by every searching thief. */
    _Alignas(HEIST_CACHELINE) _Atomic uint64_t busy_t0;
};

struct heist_sched {
    unsigned nworkers;                   /* immutable after creation */
    uint64_t id;                         /* process-unique (registry.c) */
    struct heist_sched *reg_next;        /* registry list (its lock) */
    struct heist__worker **workers;      /* immutable array */
    size_t stack_size;                   /* immutable */
    /* What a fresh fiber runs after its first then: the worker loop
     * (immutable; set by sched.c, so fiber.c does not call upward). */
    void (*fiber_main)(void);
    struct heist__park park;
    /* Injection queue: any thread enqueues (wait-free), workers dequeue
     * (cds_wfcq_dequeue_blocking serializes dequeuers). */
    struct cds_wfcq_head inj_head;
    struct cds_wfcq_tail inj_tail;
    /* Jobs enqueued and not yet dequeued: incremented (seq_cst) after the
     * enqueue, decremented after the dequeue. Workers read it to decide
     * whether to look at the queue, and before sleeping (park.c). */
    _Alignas(HEIST_CACHELINE) _Atomic long inj_pending;
    /* Threads that are no worker of this scheduler inside an injection
     * (ready.c): incremented before the enqueue, decremented (release)
     * after the wake-up that follows, their last access to the scheduler.
     * Once the enqueued work has run, its task may end and
     * heist_sched_free find nothing live: it waits for zero before it
     * frees the scheduler. */
    _Atomic long injecting;
    /* Workers searching for work (spinning between items, not parked):
     * incremented (seq_cst) when a worker starts searching, decremented
     * (seq_cst) when it finds work or before it parks. While one searches,
     * publishers wake nobody: it will find the work (worker.c's opening
     * comment has the argument). */
    _Alignas(HEIST_CACHELINE) _Atomic uint32_t nsearching;
    /* heist_run calls in progress: incremented before the enqueue,
     * decremented after the result is taken. heist_sched_free waits on
     * `quiet` until it is zero. */
    _Atomic long runs;
    _Atomic uint32_t quiet;
    /* Set (seq_cst) by heist_sched_free; workers exit when they see it. */
    atomic_bool stopping;
    /* Started workers still in their loop (they may steal): a worker's
     * thread exits only once it is zero, as thieves write the view of a
     * victim's deque in the victim thread's storage (deque.c). Set before
     * the threads start; decremented (seq_cst) by each leaving worker. */
    _Atomic unsigned in_loop;
    /* Workers pausing because they ran ahead (worker.c): fewer than
     * nworkers, so some worker always starts queued items. */
    _Alignas(HEIST_CACHELINE) _Atomic unsigned npaused;
    /* Tasks of no heist_run group, scheduled callbacks and forks a
     * suspension queued (fork.c) not yet finished: counted up before they
     * are queued, down when they end (live.h, per worker):
     * heist_sched_free waits for zero. A group's
     * tasks count in the group's own (spawn.c), which its heist_run waits
     * for before heist_sched_free can start waiting. */
    struct heist__live live;
    /* Live counts for heist_run's groups, free for reuse (under
     * lives_lock): kept until the scheduler is freed, because an end may
     * still read its count's wake flag after the count reached zero. */
    pthread_mutex_t lives_lock;
    struct heist__live *lives_free;
    /* Callbacks registered (heist_future_then) on futures still pending:
     * incremented before the push, decremented (release) once the
     * callback is scheduled (after live's increment) or dropped with its
     * future. heist_sched_free says EBUSY while there are any. */
    _Atomic uint32_t cb_waiting;
    /* Stacks: chunks and the pools beyond the workers' own (fiber.h). */
    struct heist__stacks stacks;
    struct heist__timers timers;
    /* The trace (HEIST_TRACE), or NULL: immutable after creation. */
    struct heist__trace *trace;
    bool stats_at_free;                  /* HEIST_STATS: immutable */
};

/* The slot of s's live counts (live.h) the calling thread writes: its
 * worker's, or the shared one. */
static inline unsigned heist__live_index(struct heist_sched *s)
{
    struct heist__worker *w = heist__self_get();
    return w && w->sched == s ? w->index : s->nworkers;
}

/* Counts the ends that w deferred (live.c, "Deferred ends"), if any. */
static inline void heist__ends_flush(struct heist__worker *w)
{
    if (w->ends_n) {
        struct heist__live *l = w->ends_live;
        uint64_t n = w->ends_n;
        w->ends_live = NULL;
        w->ends_n = 0;
        heist__live_down_n(l, w->index, n);
    }
}

/* Before w runs something that may take long and is not a task of count
 * l (NULL: of no count): the ends w owes to another count are counted
 * now (live.c, "Deferred ends"). */
static inline void heist__ends_flush_unless(struct heist__worker *w,
                                            const struct heist__live *l)
{
    if (w->ends_n && w->ends_live != l)
        heist__ends_flush(w);
}

/* A task counted in l ended on w, a worker of l's scheduler: counted
 * later, by heist__ends_flush (live.c, "Deferred ends"). */
static inline void heist__ends_defer(struct heist__worker *w,
                                     struct heist__live *l)
{
    if (w->ends_live != l) {
        heist__ends_flush(w);
        w->ends_live = l;
    }
    w->ends_n++;
}

/* ---- ready.c ------------------------------------------------------------ */
/* Run-next items in a row before one queued item runs (worker.c). */
enum { HEIST__RUNNEXT_MAX = 16 };

/* A worker that started a window of HEIST__BUSY_WINDOW items in under
 * HEIST__BUSY_FAST_NS (under 250 ns an item), the last one ending within
 * HEIST__BUSY_RECENT_NS, is busy: thieves leave its ready items
 * (worker.c, "Busy victims"). */
enum {
    HEIST__BUSY_WINDOW = 64,
    HEIST__BUSY_FAST_NS = 16 * 1000,
    HEIST__BUSY_RECENT_NS = 100 * 1000
};
static inline bool heist__worker_busy(const struct heist__worker *v)
{
    /* Relaxed: a timing hint, read alone; the items themselves are taken
     * by the steal's own atomics. */
    uint64_t t0 = atomic_load_explicit(&v->busy_t0, memory_order_relaxed);
    return t0 != 0 && heist__now_ns() - t0 < HEIST__BUSY_RECENT_NS;
}
/* Makes it runnable on s: on the caller's ready queue when the caller is a
 * worker of s, else on the injection queue; wakes a sleeping worker. Any
 * thread. */
void heist__make_runnable(struct heist_sched *s, struct heist__item *it);
/* Resumes a suspended fiber of s with a wake reason: the one protocol for
 * every resumer (completion, timer, canceller, thief). Any thread. */
void heist__fiber_ready(struct heist_sched *s, struct heist__fiber *f,
                        int reason);
/* Takes the oldest item of the injection queue, or NULL. Workers only. */
struct heist__item *heist__inject_take(struct heist_sched *s);
/* After publishing work (a seq_cst write): wakes one sleeping worker,
 * unless a worker is searching (it will find the work) or none sleeps. */
void heist__wake_one(struct heist_sched *s);

/* ---- registry.c: the live schedulers ------------------------------------- */
/* Gives s its id: before its workers start (their records name it: a
 * worker takes a steal record before its first steal, cache.c). */
void heist__sched_take_id(struct heist_sched *s);
/* Lists s (its id taken). */
void heist__sched_register(struct heist_sched *s);
/* If s with this id is alive, counts one callback waiting in it (its
 * cb_waiting) and returns true; false if it was freed. Any thread. */
bool heist__sched_hold_callback(struct heist_sched *s, uint64_t id);
/* heist_sched_free, once s's live count read zero: takes s out of the
 * list and returns 0, or leaves it and returns EBUSY (callbacks wait on
 * pending futures) or EAGAIN (work was queued meanwhile: wait again). */
int heist__sched_retire(struct heist_sched *s);
/* Runs fn(s, arg) under the registry's lock if the scheduler with this id
 * is live, and returns true; s cannot retire meanwhile. */
bool heist__sched_if_live(uint64_t id,
                          void (*fn)(struct heist_sched *s, void *arg),
                          void *arg);

/* ---- worker.c ----------------------------------------------------------- */
/* A worker thread's start routine. */
void *heist__worker_main(void *arg);
/* The worker loop; runs on fibers and never returns. */
_Noreturn void heist__worker_loop(void);

#endif /* HEIST_WORKER_H */
