/*
 * bench/bench_heist.h - what every heist benchmark program does around its
 * workload: create the scheduler once, hand each timed run to it with
 * heist_run, and free it, failing loudly on any error. At the end the
 * scheduler's counters go to stderr (they explain the times). The shape
 * programs of issue 6 hand all of it to bench_heist_shape, which also does
 * the cold run (-c).
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

static inline void bench_heist_print_stats(const bench_args *a,
                                           const heist_stats *st)
{
    fprintf(stderr,
            "%s(%ld) %s, %u workers%s: tasks %llu forks %llu inlined %llu "
            "steals %llu failed_steals %llu parks %llu suspends %llu "
            "resumes %llu\n",
            a->workload, a->param, a->impl, st->workers, a->cold ? ", cold" : "",
            (unsigned long long)st->total.tasks,
            (unsigned long long)st->total.forks,
            (unsigned long long)st->total.inlined,
            (unsigned long long)st->total.steals,
            (unsigned long long)st->total.failed_steals,
            (unsigned long long)st->total.parks,
            (unsigned long long)st->total.suspends,
            (unsigned long long)st->total.resumes);
}

static inline void bench_heist_free(const bench_args *a, heist_sched *s)
{
    heist_stats st;
    if (heist_sched_stats(s, &st) == 0)
        bench_heist_print_stats(a, &st);
    int err = heist_sched_free(s);
    if (err)
        bench_fail(a, strerror(err));
}

/* What bench_heist_shape hands bench_time: the scheduler and the shape. */
typedef struct bench_heist_shape_ctx {
    const bench_args *a;
    heist_sched *s;
    heist_fn shape;
} bench_heist_shape_ctx;

static inline long long bench_heist_shape_body(void *ctx, long n)
{
    bench_heist_shape_ctx *c = ctx;
    return bench_heist_run(c->a, c->s, c->shape, (void *)(intptr_t)n);
}

/*
 * The main of the issue-6 shape programs (seed, hops, fanin): shape(PARAM)
 * is main's task, run by heist_run; its result must be expected.
 *
 * Warm (no -c): one scheduler, WARMUP untimed runs, then REPS timed ones
 * (bench_time). Cold (-c): one run, timed from before heist_sched_new to
 * after heist_sched_free returns, so it includes starting and joining the
 * worker threads and whatever the first run costs in a fresh process
 * (stacks, records and the allocator's arenas obtained from the system for
 * the first time). The counters are read before the free and printed after
 * the clock stops.
 */
static inline void bench_heist_shape(const bench_args *a, heist_fn shape,
                                     long long expected)
{
    if (a->cold) {
        double t0 = bench_now_ms();
        heist_sched *s = bench_heist_new(a);
        long long got = bench_heist_run(a, s, shape, (void *)(intptr_t)a->param);
        heist_stats st;
        int have = heist_sched_stats(s, &st) == 0;
        int err = heist_sched_free(s);
        if (err)
            bench_fail(a, strerror(err));
        bench_cold_report(a, t0, got, expected);
        if (have)
            bench_heist_print_stats(a, &st);
        return;
    }
    bench_heist_shape_ctx c = {.a = a, .s = bench_heist_new(a), .shape = shape};
    bench_time(a, bench_heist_shape_body, &c, expected);
    bench_heist_free(a, c.s);
}

#endif /* HEIST_BENCH_BENCH_HEIST_H */
