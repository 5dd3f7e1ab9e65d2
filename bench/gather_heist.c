/*
 * bench/gather_heist.c - spawn N trivial tasks and gather them; task i
 * returns i+1, and the result is their sum. The table reports the time per
 * task too.
 */
#include <stdlib.h>

#include "bench_heist.h"

static bench_args args;

static void *trivial(void *arg)
{
    return arg;
}

static void *gather(void *arg)
{
    long n = (long)(intptr_t)arg;
    heist_future **t = malloc((size_t)n * sizeof *t);
    if (!t)
        bench_fail(&args, "out of memory");
    for (long i = 0; i < n; i++)
        t[i] = bench_heist_future(
            &args, heist_spawn(NULL, trivial, (void *)(intptr_t)(i + 1)),
            "spawn");
    heist_future *all =
        bench_heist_future(&args, heist_gather(t, (size_t)n), "gather");
    bench_heist_check(&args, heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    intptr_t sum = 0;
    for (long i = 0; i < n; i++) {
        void *v;
        bench_heist_check(&args, heist_future_result(t[i], &v), "result");
        sum += (intptr_t)v;
        heist_future_unref(t[i]);
    }
    free(t);
    return (void *)sum;
}

static long long body(void *ctx, long n)
{
    return bench_heist_run(&args, ctx, gather, (void *)(intptr_t)n);
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, "gather", BENCH_HEIST_IMPL, 1000000, 2, argc,
                        argv);
    heist_sched *s = bench_heist_new(&args);
    bench_time(&args, body, s, (long long)args.param * (args.param + 1) / 2);
    bench_heist_free(&args, s);
    return 0;
}
