/*
 * timer.h - deadlines served by a timer thread (internal). See timer.c.
 */
#ifndef HEIST_TIMER_H
#define HEIST_TIMER_H

#include "util.h"

#include <pthread.h>

struct heist__timer_shard;

/* A deadline to watch; embedded in its owner (a wait node). */
struct heist__timer_node {
    uint64_t deadline;  /* CLOCK_MONOTONIC ns: set before arming */
    size_t heap_idx;    /* heap index, or SIZE_MAX when not armed (under
                           its shard's lock) */
    /* The shard its reservation named (NULL: none yet). */
    struct heist__timer_shard *shard;
    /* Called by the timer thread once the deadline passed, without the
     * shard's lock (with it if `locked`); the node is already out of the
     * heap and the call takes over the heap's reference. */
    void (*fire)(struct heist__timer_node *n);
    /* Fire under the shard's lock: the owner's disarm then means that the
     * fire is not running (and rearm_in_fire may be called). Such a node
     * must be reserved in the same shard every time: a disarm through
     * another shard's lock would not wait for a fire still running under
     * the first one's. */
    bool locked;
};

/* One worker's heap (timer.c, "Shards"). */
struct heist__timer_shard {
    _Alignas(HEIST_CACHELINE) pthread_mutex_t lock;
    struct heist__timer_node **heap; /* min-heap on deadline (under lock) */
    size_t n, cap;                   /* under lock */
    /* Slots neither used nor promised to a waiter: cap - n - promised
     * (any thread; see timer.c) */
    _Atomic int64_t avail;
    /* The deadline at the top of the heap, UINT64_MAX if empty: stored
     * under the lock, loaded by the timer thread */
    _Atomic uint64_t top;
};

struct heist__timers {
    pthread_mutex_t lock;      /* the thread's sleep: cond, stop */
    pthread_cond_t cond;       /* CLOCK_MONOTONIC */
    bool stop;                 /* under lock */
    /* The deadline the thread sleeps until; 0 while it is awake */
    _Atomic uint64_t next;
    unsigned nshards;          /* immutable */
    struct heist__timer_shard *shards; /* immutable array */
    pthread_t thread;
};
/* Starts the timer thread with nshards heaps (one per worker): 0, ENOMEM
 * or EAGAIN. */
int heist__timers_init(struct heist__timers *t, unsigned nshards);
/* True on a timer thread (the trace gives it its own track). */
extern __thread bool heist__on_timer_thread;
/* Stops the thread; every node must have been disarmed or fired. */
void heist__timers_fini(struct heist__timers *t);
/* Reserves a slot in heap `shard` (the caller's worker index; taken
 * modulo the shard count) for one later heist__timer_arm of n: 0 or
 * ENOMEM. */
int heist__timer_reserve(struct heist__timers *t, struct heist__timer_node *n,
                         unsigned shard);
/* Gives back n's reservation, which will not be armed. */
void heist__timer_unreserve(struct heist__timers *t,
                            struct heist__timer_node *n);
/* Consumes n's reservation: adds n (deadline and fire set) if wanted(n),
 * asked under its shard's lock, still says so (else the reservation is
 * given back). Returns whether it did (then the heap holds the reference
 * the caller gave it). */
bool heist__timer_arm(struct heist__timers *t, struct heist__timer_node *n,
                      bool (*wanted)(struct heist__timer_node *n));
/* From n's own fire function only, n->locked (its shard's lock held, n
 * just taken out of the heap, its slot kept for it until the fire
 * returns): arms n again for deadline, in that slot. */
void heist__timer_rearm_in_fire(struct heist__timers *t,
                                struct heist__timer_node *n,
                                uint64_t deadline);
/* Removes n if still armed: returns true, and the caller drops the heap's
 * reference; false if it fired, is firing, or was never armed. */
bool heist__timer_disarm(struct heist__timers *t, struct heist__timer_node *n);

#endif /* HEIST_TIMER_H */
