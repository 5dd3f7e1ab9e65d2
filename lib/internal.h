/*
 * internal.h - declarations shared between the files of lib/ (internal).
 *
 * Names shared between files are heist__name; public names are heist_name.
 * Every shared field says which threads write it and which read it.
 */
#ifndef HEIST_INTERNAL_H
#define HEIST_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

/* Public declarations get default visibility; everything else in the
 * library is hidden (the object files are built with -fvisibility=hidden). */
#pragma GCC visibility push(default)
#include <heist/heist.h>
#pragma GCC visibility pop

#include <urcu/wfcqueue.h>

#include "deque.h"

#define HEIST_CACHELINE 64

struct heist__worker;
struct heist__tk;
struct heist__wnode;

#define heist__likely(x)   __builtin_expect(!!(x), 1)
#define heist__unlikely(x) __builtin_expect(!!(x), 0)

/* ---- ThreadSanitizer -------------------------------------------------
 * Annotations are switched on by the compiler's own detection, so a user who
 * builds heist with -fsanitize=thread in CMAKE_C_FLAGS (no preset, no heist
 * option) gets them too. */
#if defined(__SANITIZE_THREAD__)
#define HEIST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HEIST_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define HEIST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEIST_ASAN 1
#endif
#endif

#ifdef HEIST_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define heist__tsan_acquire(p) __tsan_acquire((void *)(p))
#define heist__tsan_release(p) __tsan_release((void *)(p))
#else
#define heist__tsan_acquire(p) ((void)(p))
#define heist__tsan_release(p) ((void)(p))
#endif

/* A spin-wait hint. */
static inline void heist__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* ---- futex (park.c) -------------------------------------------------- */
/* Sleeps while *addr == expected (spurious returns are possible). */
void heist__futex_wait(_Atomic uint32_t *addr, uint32_t expected);
/* Same, until CLOCK_MONOTONIC reaches deadline_ns (UINT64_MAX: no limit). */
void heist__futex_wait_until(_Atomic uint32_t *addr, uint32_t expected,
                             uint64_t deadline_ns);
/* Wakes up to n threads sleeping on addr. */
void heist__futex_wake(_Atomic uint32_t *addr, int n);

/* ---- parking (park.c) ------------------------------------------------- */
/*
 * An eventcount: idle workers sleep on `epoch`; publishers wake them only
 * when `sleepers` says someone sleeps. See park.c for the protocol.
 */
struct heist__park {
    _Alignas(HEIST_CACHELINE) _Atomic uint32_t epoch; /* RMW: wakers */
    _Atomic uint32_t sleepers;                        /* RMW: sleepers */
};
/* Sleeper side: announce, then (after re-checking for work) wait or cancel. */
uint32_t heist__park_prepare(struct heist__park *p);
void heist__park_wait(struct heist__park *p, uint32_t key);
void heist__park_cancel(struct heist__park *p);
/* Publisher side: call after publishing work with a seq_cst operation. */
void heist__park_wake_one(struct heist__park *p);
void heist__park_wake_all(struct heist__park *p);

/* ---- frames (task.c) -------------------------------------------------- */
/* The private layout of heist_task. */
struct heist__frame {
    heist_fn fn;     /* written by the forking worker before the push */
    void *arg;       /* same */
    void *result;    /* written by whoever runs fn, before state = DONE */
    _Atomic uintptr_t state; /* see task.c */
    /* The worker that stole the frame: written by the thief (release) once
     * it has read the deque slot; read by the joining owner (acquire). */
    _Atomic(struct heist__worker *) thief;
    /* Set by the thief (relaxed, before its release store of thief) to
     * NULL; then the joiner may CAS in its suspended fiber, and the thief's
     * last act is an exchange to HEIST__FRAME_DONE (task.c). */
    _Atomic(void *) waiter;
};
#define HEIST__FRAME_DONE ((void *)1)
_Static_assert(sizeof(struct heist__frame) <= sizeof(heist_task),
               "heist_task too small for its frame");
_Static_assert(_Alignof(struct heist__frame) <= _Alignof(heist_task),
               "heist_task under-aligned for its frame");

/* Runs a frame the worker w stole from victim (task.c). */
void heist__frame_run_stolen(struct heist__worker *w, struct heist__frame *f,
                             struct heist__tk *task);
/* Aborts with a message if a task that just returned (on worker w, which
 * started it with an empty deque) left forks unjoined. Call it before the
 * task is reported done: after that a forgotten fork's frame could be
 * stolen and run on a dead stack. */
void heist__check_joined(struct heist__worker *w);
/* Runs every fork still on the calling worker's deque (they belong to the
 * running fiber) and waits for the thieves of stolen ones to acknowledge
 * them, so that the deque is empty: a fiber suspends only then (task.c). */
void heist__drain(void);

/* ---- runnable items ----------------------------------------------------
 * What the ready queues and the injection queue hold: a task to start, a
 * suspended fiber to resume, a callback to run. */
enum { HEIST__IT_TASK = 1, HEIST__IT_FIBER, HEIST__IT_CALLBACK };
struct heist__item {
    struct cds_wfcq_node node; /* injection queue link */
    uint8_t kind;              /* HEIST__IT_*, immutable */
};
/* Makes it runnable on s: on the caller's ready queue when the caller is a
 * worker of s, else on the injection queue; wakes a sleeping worker. */
void heist__make_runnable(struct heist_sched *s, struct heist__item *it);
/* Runs one item taken from a queue (worker.c, on the worker's fiber). */
void heist__item_run(struct heist__worker *w, struct heist__item *it);

/* ---- the ready queue (readyq.c) ---------------------------------------
 * A Chase-Lev deque (D. Chase and Y. Lev, "Dynamic circular work-stealing
 * deque", SPAA 2005) with the C11 orders of N. M. Le, A. Pop, A. Cohen and
 * F. Zappa Nardelli ("Correct and efficient work-stealing for weak memory
 * models", PPoPP 2013), fences replaced by seq_cst operations so that TSan
 * sees the synchronization. Holds spawned tasks, resumed fibers and
 * callbacks: positions wrap, so unlike the split deque it suits a queue the
 * owner pops between tasks for ever. The owner takes the oldest item (FIFO,
 * as asyncio runs ready tasks), the thieves too. */
struct heist__rq_ring;
struct heist__rq {
    _Alignas(HEIST_CACHELINE) _Atomic int64_t top; /* thieves CAS */
    _Alignas(HEIST_CACHELINE) _Atomic int64_t bottom; /* owner writes */
    _Atomic(struct heist__rq_ring *) ring; /* owner replaces (release) */
    _Atomic uint32_t rings_pending;         /* as in heist__deque */
};
int heist__rq_init(struct heist__rq *q, unsigned log2cap);
void heist__rq_destroy(struct heist__rq *q);
int heist__rq_push(struct heist__rq *q, struct heist__item *it); /* owner */
struct heist__item *heist__rq_pop(struct heist__rq *q);  /* owner: oldest */
struct heist__item *heist__rq_steal(struct heist__rq *q);       /* others */
bool heist__rq_has_work(const struct heist__rq *q);             /* any */

/* ---- fibers (fiber.c, ctx_*.S) ----------------------------------------
 * A fiber is a stack plus a saved stack pointer. The worker loop runs on
 * fibers, and tasks run on the loop's fiber; a task that must wait makes
 * its fiber suspended and the worker goes on with a fresh fiber from the
 * pool. The struct lives at the top of its own stack mapping. */
struct heist__fiber {
    struct heist__item it;      /* HEIST__IT_FIBER: queued when resumed */
    void *sp;                   /* saved stack pointer while not running */
    struct heist__fiber *next;  /* pool link */
    char *map;                  /* the mapping (guard page first if any) */
    size_t map_size;
    char *stack_lo;             /* lowest usable stack byte */
    size_t stack_size;          /* usable bytes */
    bool guarded;               /* the page below stack_lo is PROT_NONE */
    int wake;                   /* why it was resumed: written by the
                                   resumer before it queues the fiber (the
                                   queue orders it) */
#ifdef HEIST_TSAN
    void *tsan;                 /* __tsan_create_fiber's handle */
#endif
#ifdef HEIST_ASAN
    void *asan_fake;            /* __sanitizer_start_switch_fiber's save */
#endif
};
/* Wake reasons. */
enum { HEIST__WAKE_OK = 1, HEIST__WAKE_TIMEOUT, HEIST__WAKE_CANCEL };

void *heist__ctx_switch(void **save_sp, void *new_sp);
void heist__ctx_start(void);
/* What the fiber switched to does first (worker.c, post_switch). */
enum {
    HEIST__POST_NONE = 0,
    HEIST__POST_POOL,  /* a: a fiber to give back to the pool */
    HEIST__POST_WAIT,  /* a: the suspended fiber, b: its wait node */
    HEIST__POST_JOIN,  /* a: the suspended fiber, b: the stolen frame */
};
/* Gets a fiber from the worker's pool, the scheduler's, or a new one;
 * NULL when out of memory. */
struct heist__fiber *heist__fiber_get(struct heist__worker *w);
void heist__fiber_put(struct heist__worker *w, struct heist__fiber *f);
struct heist__fiber *heist__fiber_new(struct heist_sched *s);
void heist__fiber_free(struct heist__fiber *f);
/* Switches the calling worker from its running fiber to `to`, leaving
 * (post, a, b) for `to` to carry out; returns when something switches back
 * to the calling fiber, possibly on another worker. */
void heist__fiber_switch(struct heist__worker *w, struct heist__fiber *to,
                         int post, void *a, void *b);
/* Worker thread set-up and tear-down of the fiber machinery. */
int heist__fiber_thread_init(struct heist__worker *w);
void heist__fiber_thread_fini(struct heist__worker *w);
/* Installs the stack overflow reporter (once per process). */
void heist__fiber_global_init(void);
/* Carries out the action the previous fiber left (worker.c). */
void heist__post_switch(struct heist__worker *w);
/* Suspends the running fiber: switches to a fresh one, which publishes the
 * wait (post, b) once the switch is done. Returns the wake reason, or 0
 * when no fiber could be had (out of memory: nothing was published). */
int heist__suspend(int post, void *b);

/* ---- futures, tasks, waits (future.c) ----------------------------------- */
enum { HEIST__FK_PLAIN = 1, HEIST__FK_TASK, HEIST__FK_GATHER, HEIST__FK_ANY };
/* Terminal values of heist_future.state (odd: a pending state is an
 * aligned pointer to the newest wait node, or 0). */
enum { HEIST__ST_DONE = 1, HEIST__ST_FAILED = 3, HEIST__ST_CANCELLED = 5 };

struct heist_future {
    /* Pending: the newest wait node (a Treiber stack, CAS push); terminal:
     * HEIST__ST_*. Written by waiters (CAS, release) and once by the
     * completer (exchange, acq_rel); read by anyone (acquire). */
    _Atomic uintptr_t state;
    _Atomic uint32_t claim;   /* 0, then 1 by the one completer (CAS) */
    _Atomic uint32_t refs;
    uint8_t kind;             /* HEIST__FK_*, immutable */
    int err;                  /* written by the completer before state */
    void *value;              /* same */
    struct heist_sched *sched; /* the scheduler it belongs to, or NULL */
};

/* A heist_run in progress: its tasks, so it can cancel the leftovers. */
struct heist__run {
    pthread_mutex_t lock;
    struct heist__tk *waiting; /* its tasks now suspended (under lock) */
    atomic_bool cancelling;    /* set (seq_cst, under lock) when main ends */
    /* Its tasks not yet ended (main included); a futex: heist_run waits
     * for zero. */
    _Atomic uint32_t live;
};

/* Task states: NEW -> RUNNING (runner) or DEAD (cancelled before start);
 * RUNNING -> CANCEL_REQ (heist_future_cancel); RUNNING or CANCEL_REQ ->
 * ENDED (runner, exchange: it tells the runner whether a cancel came
 * first, and the canceller whether its request was in time). */
enum { HEIST__TS_NEW = 0, HEIST__TS_RUNNING, HEIST__TS_CANCEL_REQ,
       HEIST__TS_ENDED, HEIST__TS_DEAD };
struct heist__tk {
    struct heist_future f;     /* first: a task is a future */
    struct heist__item it;     /* HEIST__IT_TASK */
    heist_fn fn;
    void *arg;
    struct heist__run *run;    /* immutable; NULL outside heist_run */
    _Atomic uint32_t tstate;   /* HEIST__TS_* */
    /* The wait nodes of the task's current suspensions (the task's fiber
     * and fibers running its stolen forks), for a canceller to wake; under
     * `lock`, a spinlock (held for a few instructions; future.c). */
    _Atomic uint32_t lock;
    struct heist__wnode *waits;
    _Atomic int fail_err;      /* heist_fail: relaxed (read after joins) */
    struct heist__tk *rprev, *rnext; /* run->waiting links (run->lock) */
    /* In run->waiting: set under run->lock by the task's first wait,
     * cleared by its end; read without the lock as a hint (relaxed). */
    atomic_bool in_run_list;
};

/* What a pending future's list holds: wait nodes of awaiting fibers and
 * threads, callbacks, and the internal nodes of gathers and anys. */
enum { HEIST__W_FIBER = 1, HEIST__W_THREAD, HEIST__W_CALLBACK,
       HEIST__W_GATHER, HEIST__W_ANY };
struct heist__lnode {
    struct heist__lnode *next; /* written before the push (release CAS) */
    uint8_t kind;              /* HEIST__W_*, immutable */
};
struct heist__wnode {
    struct heist__lnode l;     /* first */
    struct heist__item it;     /* HEIST__IT_CALLBACK when scheduled */
    _Atomic uint32_t claimed;  /* 0, then a HEIST__WAKE_* by the claimer */
    _Atomic uint32_t refs;     /* holders: waiter, list, timer, task */
    struct heist__fiber *fiber;  /* W_FIBER: whom to resume */
    struct heist_sched *sched;   /* where to resume it / run the callback */
    struct heist__tk *task;      /* W_FIBER: the waiting task, or NULL */
    heist_future *fut;           /* the awaited future, or NULL (sleep) */
    _Atomic uint32_t futex;      /* W_THREAD: 1 once woken */
    uint64_t deadline;           /* CLOCK_MONOTONIC ns, or UINT64_MAX */
    size_t heap_idx;             /* timer heap index, or SIZE_MAX (timer
                                    lock) */
    struct heist__wnode *tprev, *tnext; /* task->waits (task->lock) */
    bool in_task;                /* same */
    void (*cb)(heist_future *, void *); /* W_CALLBACK */
    void *cb_arg;
};
void heist__wnode_unref(struct heist__wnode *n);
/* Claims n with reason and resumes its waiter; false if already claimed. */
bool heist__wnode_wake(struct heist__wnode *n, int reason);
/* Publishes the wait of a fiber that just switched away (POST_WAIT). */
void heist__wait_publish(struct heist__wnode *n);
/* Starts a task taken from a queue (future.c). */
void heist__task_run(struct heist__worker *w, struct heist__tk *t);
void heist__callback_run(struct heist__worker *w, struct heist__wnode *n);
struct heist__tk *heist__task_new(struct heist_sched *s, heist_fn fn,
                                  void *arg, struct heist__run *run);
bool heist__cancel_requested(const struct heist__tk *t);
/* Blocks a thread that is not a worker until f completes (or deadline). */
int heist__await_thread(heist_future *f, uint64_t deadline, void **value);
uint64_t heist__now_ns(void);
/* Frees the calling worker's caches (at the worker thread's end). */
void heist__cache_fini(struct heist__worker *w);
/* heist_run, once main ended: marks the run cancelling and wakes the
 * current waits of its tasks. */
void heist__run_cancel_leftovers(struct heist__run *run);

/* ---- timers (timer.c) --------------------------------------------------- */
struct heist__timers {
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* CLOCK_MONOTONIC */
    struct heist__wnode **heap; /* min-heap on deadline (under lock) */
    size_t n, cap;
    bool started, stop;
    pthread_t thread;
};
int heist__timers_init(struct heist__timers *t);
void heist__timers_fini(struct heist__timers *t);
/* Adds n (its deadline set; the caller gave the timer a reference).
 * Returns 0 or ENOMEM/EAGAIN (then the caller keeps the reference). */
int heist__timer_arm(struct heist_sched *s, struct heist__wnode *n);
/* Removes n if still armed, dropping the timer's reference. */
void heist__timer_disarm(struct heist_sched *s, struct heist__wnode *n);

/* ---- workers and the scheduler ---------------------------------------- */
/* Counters: written by the owning worker only (relaxed load + store, no
 * RMW needed), read by any thread (relaxed) for statistics. Forks are
 * counted when joined (inlined + joined_stolen): the fork path stays free
 * of counters. */
struct heist__counters {
    _Atomic uint64_t tasks, inlined, joined_stolen, steals, failed_steals,
        parks, suspends, resumes;
};

static inline void heist__count(_Atomic uint64_t *c)
{
    /* Only the owner writes c: a relaxed load and store is enough, and
     * readers (heist_sched_stats) see some recent value. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

#define HEIST__NCACHE 3
struct heist__worker {
    struct heist__deque dq;        /* forks: owner pushes/pops, thieves steal */
    struct heist__rq rq;           /* ready items: owner pops, thieves steal */
    _Alignas(HEIST_CACHELINE) struct heist_sched *sched; /* immutable */
    unsigned index;                /* immutable */
    uint64_t rng;                  /* owner-only: victim selection */
    pthread_t thread;              /* written by the creator */
    /* The task whose code runs now (NULL in the loop and in callbacks).
     * Written by the owner; read (relaxed) by a thief that steals one of
     * its forks, which the owner cannot finish before the thief's
     * acknowledgement (task.c), so the value read is the fork's task. */
    _Atomic(struct heist__tk *) task;
    /* Owner-only fiber state. */
    struct heist__fiber *cur;      /* the fiber running on this thread */
    struct heist__fiber home;      /* the thread's own stack */
    struct heist__fiber *pool;     /* free fibers */
    unsigned npool;
    int post;                      /* HEIST__POST_* left for the next fiber */
    void *post_a, *post_b;
    /* Owner-only caches of freed task records and wait nodes (future.c):
     * spawning and awaiting reuse them instead of calling malloc. */
    void *cache[HEIST__NCACHE];
    unsigned ncache[HEIST__NCACHE];
    void *altstack;                /* the signal stack (overflow reports) */
    size_t altstack_size;
    struct heist__counters ctr;
};

/* The calling thread's worker, read through a call the compiler cannot
 * see into: a fiber may resume on another thread, so code that can come
 * back from a switch must not reuse a thread-local address computed
 * before it. */
struct heist__worker *heist__self_get(void);

struct heist_sched {
    unsigned nworkers;                   /* immutable after creation */
    struct heist__worker **workers;      /* immutable array */
    size_t stack_size;                   /* immutable */
    struct heist__park park;
    /* Injection queue: any thread enqueues (wait-free), workers dequeue
     * (cds_wfcq_dequeue_blocking serializes dequeuers). */
    struct cds_wfcq_head inj_head;
    struct cds_wfcq_tail inj_tail;
    /* Jobs enqueued and not yet dequeued: incremented (seq_cst) after the
     * enqueue, decremented after the dequeue. Workers read it to decide
     * whether to look at the queue, and before sleeping (park.c). */
    _Alignas(HEIST_CACHELINE) _Atomic long inj_pending;
    /* heist_run calls in progress: incremented before the enqueue,
     * decremented after the result is taken. heist_sched_free waits on
     * `quiet` until it is zero. */
    _Atomic long runs;
    _Atomic uint32_t quiet;
    /* Set (seq_cst) by heist_sched_free; workers exit when they see it. */
    atomic_bool stopping;
    /* Tasks and scheduled callbacks not yet finished: incremented before
     * they are queued, decremented (release) when they end; a futex:
     * heist_sched_free waits for zero. */
    _Atomic uint32_t live;
    /* Callbacks registered (heist_future_then) on futures still pending:
     * incremented before the push, decremented (release) once the
     * callback is scheduled (after live's increment) or dropped with its
     * future. heist_sched_free says EBUSY while there are any. */
    _Atomic uint32_t cb_waiting;
    /* Free fibers beyond the workers' own pools (under fiber_lock). */
    pthread_mutex_t fiber_lock;
    struct heist__fiber *fibers;
    struct heist__timers timers;
};

/* The calling thread's worker, or NULL. Initial-exec TLS: one load from the
 * thread pointer, no call (the fork/join fast path reads it). */
extern __thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec")));

/* worker.c */
void *heist__worker_main(void *arg);
/* The worker loop; runs on fibers and never returns (worker.c). */
_Noreturn void heist__worker_loop(void);
/* Wakes one sleeping worker if any sleeps (after publishing work). */
void heist__wake_one(struct heist_sched *s);

/* Reports a misuse that leaves the runtime unable to go on safely, and
 * aborts (task.c). */
_Noreturn void heist__fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif /* HEIST_INTERNAL_H */
