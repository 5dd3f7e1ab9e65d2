/*
 * spawn.h - spawned tasks and the groups heist_run keeps (internal).
 * See spawn.c.
 */
#ifndef HEIST_SPAWN_H
#define HEIST_SPAWN_H

#include "fut.h"

/* A group's tasks that ever waited and have not ended, listed where they
 * first waited: one list per worker (and one for other threads), so that
 * tasks waiting on different workers do not share a lock. */
struct heist__gshard {
    _Alignas(HEIST_CACHELINE) _Atomic uint32_t lock; /* heist__spin_lock */
    struct cds_list_head waiting; /* under lock */
};

/* The tasks of one heist_run, so it can cancel the leftovers. */
struct heist__group {
    struct heist__gshard *shards; /* nshards: the scheduler's workers + 1 */
    unsigned nshards;
    atomic_bool cancelling;       /* set (seq_cst) when main ends, before
                                     the shards are scanned */
    /* Its tasks not yet ended (main included): heist__group_wait waits
     * for zero. From the scheduler's pool (worker.h): immutable. */
    struct heist__live *live;
    struct heist_sched *sched;    /* immutable */
};

/* A current wait of a task (wait.c embeds it in its wait node), listed in
 * the task so that a canceller can end it. */
struct heist__task_wait {
    struct cds_list_head link;    /* in t->waits (under t->lock) */
    bool listed;                  /* same */
    /* Ends the wait as cancelled; called under t->lock. */
    void (*cancel)(struct heist__task_wait *tw);
};

/* Task states: NEW -> RUNNING (runner) or DEAD (cancelled before start);
 * RUNNING -> CANCEL_REQ (heist_future_cancel); RUNNING or CANCEL_REQ ->
 * ENDED (runner, exchange: it tells the runner whether a cancel came
 * first, and the canceller whether its request was in time). */
enum { HEIST__TS_NEW = 0, HEIST__TS_RUNNING, HEIST__TS_CANCEL_REQ,
       HEIST__TS_ENDED, HEIST__TS_DEAD };

struct heist__tk {
    struct heist_future f;     /* first: a task is a future */
    struct heist__item it;     /* run: start the task */
    heist_fn fn;
    void *arg;
    struct heist__group *group; /* immutable; NULL outside heist_run */
    _Atomic uint32_t tstate;   /* HEIST__TS_* */
    /* The task's current waits (of the task's fiber and of fibers running
     * its stolen forks), under `lock`, a spinlock held for a few
     * instructions. */
    _Atomic uint32_t lock;
    struct cds_list_head waits;
    _Atomic int fail_err;      /* heist_fail: relaxed (read after joins) */
    struct cds_list_head glink; /* in gshard->waiting (its lock) */
    /* The shard of its group whose list holds it, HEIST__GSHARD_CLAIMED
     * while a first wait lists it, or NULL: set by the task's first wait,
     * cleared by its end. Atomic: the task's fiber and fibers running its
     * stolen forks wait as the task, and their first waits may race
     * (spawn.c, heist__task_wait_add). */
    _Atomic(struct heist__gshard *) gshard;
};

/* ENOMEM. */
int heist__group_init(struct heist__group *g, struct heist_sched *s);
/* After heist__group_wait (or if no task of g was made). */
void heist__group_destroy(struct heist__group *g);
/* Gives a group's live count back to s's pool. */
void heist__group_put_live(struct heist_sched *s, struct heist__live *l);
/* Marks g cancelling and ends the current waits of its tasks as cancelled:
 * every later wait and every task not yet started sees it. */
void heist__group_cancel(struct heist__group *g);
/* Blocks the calling thread until every task of g ended. */
void heist__group_wait(struct heist__group *g);

/* A task of s running fn(arg), in group g (may be NULL), with two
 * references: the caller's and the queue's. The caller queues it
 * (heist__make_runnable(s, &t->it)). NULL when out of memory. */
struct heist__tk *heist__task_new(struct heist_sched *s, heist_fn fn,
                                  void *arg, struct heist__group *g);
/* The task whose code runs on the calling worker, or NULL. */
static inline struct heist__tk *heist__current_task(void)
{
    struct heist__worker *w = heist__self_get();
    /* Relaxed: the owner reads its own write (worker.h). */
    return w ? atomic_load_explicit(&w->task, memory_order_relaxed) : NULL;
}
/* Lists tw as a current wait of t; false (nothing listed) when a cancel of
 * t was requested first: the caller then ends the wait as cancelled. */
bool heist__task_wait_add(struct heist__tk *t, struct heist__task_wait *tw);
/* Takes tw out of t if listed; true if it was. */
bool heist__task_wait_remove(struct heist__tk *t,
                             struct heist__task_wait *tw);
/* The live count t is counted in: its group's, or its scheduler's. */
static inline struct heist__live *heist__task_live(const struct heist__tk *t)
{
    return t->group ? t->group->live : &t->f.sched->live;
}
/* A cancel was requested for t (or for its group). */
static inline bool heist__cancel_requested(const struct heist__tk *t)
{
    /* seq_cst: read after the wait is registered (under t->lock, or after
     * the group list insert), against the canceller's CAS then scan. */
    if (atomic_load_explicit(&t->tstate, memory_order_seq_cst) ==
        HEIST__TS_CANCEL_REQ)
        return true;
    return t->group &&
           atomic_load_explicit(&t->group->cancelling, memory_order_seq_cst);
}

#endif /* HEIST_SPAWN_H */
