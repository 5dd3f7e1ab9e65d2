/*
 * timer.h - deadlines served by a timer thread (internal). See timer.c.
 */
#ifndef HEIST_TIMER_H
#define HEIST_TIMER_H

#include "util.h"

#include <pthread.h>

/* A deadline to watch; embedded in its owner (a wait node). */
struct heist__timer_node {
    uint64_t deadline;  /* CLOCK_MONOTONIC ns: set before arming */
    size_t heap_idx;    /* heap index, or SIZE_MAX when not armed (under
                           the timers' lock) */
    /* Called by the timer thread once the deadline passed, without the
     * timers' lock (with it if `locked`); the node is already out of the
     * heap and the call takes over the heap's reference. */
    void (*fire)(struct heist__timer_node *n);
    /* Fire under the timers' lock: the owner's disarm then means that the
     * fire is not running (and rearm_in_fire may be called). */
    bool locked;
};

struct heist__timers {
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* CLOCK_MONOTONIC */
    struct heist__timer_node **heap; /* min-heap on deadline (under lock) */
    size_t n, cap;             /* under lock */
    /* Slots neither used nor promised to a waiter: cap - n - promised
     * (any thread; see timer.c) */
    _Atomic int64_t avail;
    bool stop;                 /* under lock */
    pthread_t thread;
};
/* Starts the timer thread: 0, ENOMEM or EAGAIN. */
int heist__timers_init(struct heist__timers *t);
/* True on a timer thread (the trace gives it its own track). */
extern __thread bool heist__on_timer_thread;
/* Stops the thread; every node must have been disarmed or fired. */
void heist__timers_fini(struct heist__timers *t);
/* Reserves a heap slot for one later heist__timer_arm: 0 or ENOMEM. */
int heist__timer_reserve(struct heist__timers *t);
/* Gives back a reservation that will not be armed. */
void heist__timer_unreserve(struct heist__timers *t);
/* Consumes a reservation: adds n (deadline and fire set) if wanted(n),
 * asked under the timers' lock, still says so (else the reservation is
 * given back). Returns whether it did (then the heap holds the reference
 * the caller gave it). */
bool heist__timer_arm(struct heist__timers *t, struct heist__timer_node *n,
                      bool (*wanted)(struct heist__timer_node *n));
/* From n's own fire function only, n->locked (the timers' lock held, n
 * just taken out of the heap, so its slot is free): arms n again for
 * deadline. */
void heist__timer_rearm_in_fire(struct heist__timers *t,
                                struct heist__timer_node *n,
                                uint64_t deadline);
/* Removes n if still armed: returns true, and the caller drops the heap's
 * reference; false if it fired (or was never armed). */
bool heist__timer_disarm(struct heist__timers *t, struct heist__timer_node *n);

#endif /* HEIST_TIMER_H */
