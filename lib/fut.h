/*
 * fut.h - the future record and its state word (internal). See future.c.
 */
#ifndef HEIST_FUT_H
#define HEIST_FUT_H

#include "worker.h"

/* Terminal values of heist_future.state (odd: a pending state is an
 * aligned pointer to the newest list node, or 0). */
enum { HEIST__ST_DONE = 1, HEIST__ST_FAILED = 3, HEIST__ST_CANCELLED = 5 };

/* What a kind of future does on free and on cancel (plain futures:
 * future.c; tasks: spawn.c; gathers and anys: combine.c). */
struct heist__fut_ops {
    void (*free)(heist_future *f);     /* the last reference went */
    bool (*cancel)(heist_future *f);   /* heist_future_cancel */
    /* Or NULL. A pending future about to lose its last reference but the
     * one its own nodes hold (a gather's or an any's, combine.c); called
     * by heist_future_unref while the caller still holds its reference. */
    void (*orphan)(heist_future *f);
};

struct heist_future {
    /* Pending: the newest list node (a Treiber stack, CAS push); terminal:
     * HEIST__ST_*. Written by waiters (CAS, release) and once by the
     * completer (exchange, acq_rel); read by anyone (acquire). */
    _Atomic uintptr_t state;
    _Atomic uint32_t claim;   /* 0, then 1 by the one completer (CAS) */
    _Atomic uint32_t refs;
    const struct heist__fut_ops *ops; /* immutable */
    int err;                  /* written by the completer before state */
    void *value;              /* same */
    /* The scheduler it was made on, or NULL, and that scheduler's id
     * (registry.c): it may be freed before the future. Immutable. */
    struct heist_sched *sched;
    uint64_t sched_id;
};

/* A node of a pending future's list: a waiting fiber or thread (wait.c), a
 * callback (future.c), a gather's or an any's child link (combine.c).
 * fire(l, f, true) runs once f completed (the list is taken whole);
 * fire(l, f, false) when f is freed while still pending: the node is
 * dropped. Either is the list's last access to the node. */
struct heist__lnode {
    struct heist__lnode *next; /* written before the push (release CAS) */
    void (*fire)(struct heist__lnode *l, heist_future *f, bool completed);
};

static inline bool heist__st_terminal(uintptr_t st)
{
    return st & 1;
}

static inline void heist__fut_init(heist_future *f,
                                   const struct heist__fut_ops *ops,
                                   struct heist_sched *s, uint32_t refs)
{
    atomic_init(&f->state, 0);
    atomic_init(&f->claim, 0);
    atomic_init(&f->refs, refs);
    f->ops = ops;
    f->err = 0;
    f->value = NULL;
    f->sched = s;
    f->sched_id = s ? s->id : 0;
}
/* Completes f once: 0, or EBUSY if another completer was first. */
int heist__fut_complete(heist_future *f, uintptr_t term, void *value,
                        int err);
/* Completes f, whose caller is its only possible completer (a task's
 * runner: its NEW -> RUNNING CAS excluded the canceller, and no one else
 * completes a task), without the claim. */
void heist__fut_settle(heist_future *f, uintptr_t term, void *value, int err);
/* Pushes l on f's list; false if f is already completed. */
bool heist__fut_push(heist_future *f, struct heist__lnode *l);
/* The calling worker's scheduler, or NULL. */
struct heist_sched *heist__current_sched(void);

#endif /* HEIST_FUT_H */
