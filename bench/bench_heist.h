/*
 * bench/bench_heist.h - what every heist benchmark program does around its
 * workload: create the scheduler once, hand each timed run to it with
 * heist_run, and free it, failing loudly on any error. At the end the
 * scheduler's counters go to stderr (they explain the times).
 */
#ifndef HEIST_BENCH_BENCH_HEIST_H
#define HEIST_BENCH_BENCH_HEIST_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <heist/heist.h>

#include "harness.h"

static inline heist_sched *bench_heist_new(const bench_args *a)
{
    heist_sched *s;
    heist_config cfg = {.workers = a->workers};
    int err = heist_sched_new(&cfg, &s);
    if (err)
        bench_fail(a, strerror(err));
    return s;
}

/* Runs fn(arg) on s; returns its result as an integer. */
static inline long long bench_heist_run(const bench_args *a, heist_sched *s,
                                        heist_fn fn, void *arg)
{
    void *r;
    int err = heist_run(s, fn, arg, &r);
    if (err)
        bench_fail(a, strerror(err));
    return (intptr_t)r;
}

/* Fails the benchmark when a futures call returned an error. */
static inline void bench_heist_check(const bench_args *a, int err,
                                     const char *what)
{
    if (err) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
        bench_fail(a, msg);
    }
}

/* Fails the benchmark when a call that returns a future returned NULL. */
static inline heist_future *
bench_heist_future(const bench_args *a, heist_future *f, const char *what)
{
    if (!f)
        bench_heist_check(a, errno ? errno : ENOMEM, what);
    return f;
}

static inline void bench_heist_free(const bench_args *a, heist_sched *s)
{
    heist_stats st;
    if (heist_sched_stats(s, &st) == 0)
        fprintf(stderr,
                "%s(%ld) %s, %u workers: tasks %llu forks %llu inlined %llu "
                "steals %llu failed_steals %llu parks %llu suspends %llu "
                "resumes %llu\n",
                a->workload, a->param, a->impl, st.workers,
                (unsigned long long)st.total.tasks,
                (unsigned long long)st.total.forks,
                (unsigned long long)st.total.inlined,
                (unsigned long long)st.total.steals,
                (unsigned long long)st.total.failed_steals,
                (unsigned long long)st.total.parks,
                (unsigned long long)st.total.suspends,
                (unsigned long long)st.total.resumes);
    int err = heist_sched_free(s);
    if (err)
        bench_fail(a, strerror(err));
}

#endif /* HEIST_BENCH_BENCH_HEIST_H */
