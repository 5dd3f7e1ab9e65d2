/*
 * trace.h - the execution trace (HEIST_TRACE): per-worker event rings and
 * the Chrome Trace Event writer (internal). See trace.c.
 *
 * Recording is for the thread that owns a ring: a worker records into its
 * own (heist__trace_rec: no lock, no atomic, no allocation); threads that
 * are not workers of the scheduler (the timer thread, any other) record
 * into two shared rings under a mutex (heist__trace_rec_shared), off the
 * hot path. A ring keeps the newest events: it overwrites the oldest when
 * full and the writer says how many were dropped. Off, the caller's cost is
 * one predictable branch on a pointer that is NULL (a worker's `tb`, a
 * scheduler's `trace`).
 */
#ifndef HEIST_TRACE_H
#define HEIST_TRACE_H

#include "util.h"

#include <pthread.h>
#include <stdio.h>

/* Event types. */
enum {
    HEIST__TEV_BEGIN = 1, /* a slice starts: sym, arg = HEIST__TK_*, id = the
                             flow it ends (a resumption), or 0 */
    HEIST__TEV_END,       /* the open slice ends */
    HEIST__TEV_STEAL,     /* a fork stolen: arg = victim, id = flow (0:
                             a queued fork, fork.c: no flow) */
    HEIST__TEV_STEAL_ITEM, /* a ready item stolen: arg = victim */
    HEIST__TEV_SUSPEND,   /* arg = HEIST__SUSP_* */
    HEIST__TEV_PARK,      /* the worker goes to sleep */
    HEIST__TEV_UNPARK,    /* and wakes up */
    HEIST__TEV_WAKE,      /* a fiber made ready: arg = HEIST__WAKE_*, id */
};

/* What a slice runs. */
enum { HEIST__TK_TASK = 0, HEIST__TK_FORK, HEIST__TK_CALLBACK,
       HEIST__TK_RESUME };

/* Why a fiber suspends (heist__suspend's `why`). */
enum { HEIST__SUSP_AWAIT = 1, HEIST__SUSP_SLEEP, HEIST__SUSP_JOIN };

struct heist__tev {
    uint64_t ts;       /* CLOCK_MONOTONIC ns */
    uint64_t id;       /* flow id, or 0 */
    const void *sym;   /* a function (slices), resolved at write time */
    uint32_t type;     /* HEIST__TEV_* */
    uint32_t arg;
};

/* One ring. Plain fields: written by its one recorder (a worker; for the
 * shared rings, whoever holds the trace's lock); read by the writer after
 * the workers were joined (pthread_join orders it) or under the lock. */
struct heist__tbuf {
    struct heist__tev *ev; /* cap = mask + 1 events, a power of two */
    uint64_t mask;
    uint64_t n;            /* events recorded so far (n > cap: dropped) */
    uint64_t seq;          /* flow ids handed out */
    uint32_t tid;          /* the track */
};

struct heist__trace {
    FILE *fp;              /* opened at heist_sched_new */
    char *path;
    bool created;          /* fp's file did not exist before */
    uint64_t t0;           /* ns: the scheduler's creation */
    unsigned nworkers;
    /* nworkers + 2 rings: one per worker (tid = index), the timer
     * thread's (tid = nworkers) and other threads' (tid = nworkers + 1);
     * the last two under `lock`. */
    struct heist__tbuf *bufs;
    pthread_mutex_t lock;
};

/* Records one event into b; the caller owns b. */
static inline void heist__trace_rec(struct heist__tbuf *b, uint32_t type,
                                    const void *sym, uint32_t arg,
                                    uint64_t id)
{
    struct heist__tev *e = &b->ev[b->n & b->mask];
    b->n++;
    e->ts = heist__now_ns();
    e->id = id;
    e->sym = sym;
    e->type = type;
    e->arg = arg;
}

/* A fresh flow id, unique in the trace (the track in the high bits). */
static inline uint64_t heist__trace_flow(struct heist__tbuf *b)
{
    return ((uint64_t)(b->tid + 1) << 40) | ++b->seq;
}

/* Records from a thread that is not a worker of the traced scheduler: into
 * the timer thread's ring when `timer`, else the other threads'. Returns
 * the flow id it gave the event (a fresh one when `flow`, else 0). */
uint64_t heist__trace_rec_shared(struct heist__trace *t, bool timer,
                                 uint32_t type, uint32_t arg, bool flow);

/* Opens `path` for writing and allocates the rings (`events` per ring,
 * rounded up to a power of two). 0, or an errno value (ENOMEM, fopen's). */
int heist__trace_new(const char *path, unsigned nworkers, size_t events,
                     struct heist__trace **out);
/* Writes the trace file and frees t; 0, or an errno value (the file could
 * not be written: it is reported on stderr too). No recorder may run. */
int heist__trace_finish(struct heist__trace *t);
/* Closes and removes the file and frees t (a scheduler that failed to
 * start). */
void heist__trace_discard(struct heist__trace *t);

#endif /* HEIST_TRACE_H */
