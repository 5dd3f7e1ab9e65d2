/*
 * bench/sleeps_heist.c - N concurrent 10 ms sleeps (heist_sleep suspends
 * the task, not the worker), gathered. Each task checks on the monotonic
 * clock that it slept at least 10 ms; the result is the number that did.
 * The time is the wall time of the whole batch, about 10 ms when sleeping
 * tasks cost nothing.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <time.h>

#include "bench_heist.h"

#define SLEEP_NS 10000000u

static bench_args args;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *sleeper(void *arg)
{
    (void)arg;
    uint64_t t0 = now_ns();
    bench_heist_check(&args, heist_sleep(SLEEP_NS), "sleep");
    return (void *)(intptr_t)(now_ns() - t0 >= SLEEP_NS);
}

static void *sleeps(void *arg)
{
    long n = (long)(intptr_t)arg;
    heist_future **t = malloc((size_t)n * sizeof *t);
    if (!t)
        bench_fail(&args, "out of memory");
    for (long i = 0; i < n; i++)
        t[i] = bench_heist_future(&args, heist_spawn(NULL, sleeper, NULL),
                                  "spawn");
    heist_future *all =
        bench_heist_future(&args, heist_gather(t, (size_t)n), "gather");
    bench_heist_check(&args, heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    intptr_t slept = 0;
    for (long i = 0; i < n; i++) {
        void *v;
        bench_heist_check(&args, heist_future_result(t[i], &v), "result");
        slept += (intptr_t)v;
        heist_future_unref(t[i]);
    }
    free(t);
    return (void *)slept;
}

static long long body(void *ctx, long n)
{
    return bench_heist_run(&args, ctx, sleeps, (void *)(intptr_t)n);
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, "sleeps", BENCH_HEIST_IMPL, 10000, 2, argc,
                        argv);
    heist_sched *s = bench_heist_new(&args);
    bench_time(&args, body, s, args.param);
    bench_heist_free(&args, s);
    return 0;
}
