/*
 * bench/gather_heist.c - spawn N trivial tasks and gather them; task i
 * returns i+1, and the result is their sum. The table reports the time per
 * task too.
 *
 * Built twice (bench/CMakeLists.txt): as gather_heist (default size
 * 1,000,000), and as fanin_heist (BENCH_WORKLOAD "fanin", issue 6's
 * "fanin" shape, default 100,000), both measured cold (-c) and warm by
 * bench_heist_shape.
 */
#include <stdlib.h>

#include "bench_heist.h"

#ifndef BENCH_WORKLOAD
#define BENCH_WORKLOAD "gather"
#define BENCH_DEFAULT_SIZE 1000000
#endif

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

int main(int argc, char **argv)
{
    bench_parse_workers(&args, BENCH_WORKLOAD, BENCH_HEIST_IMPL,
                        BENCH_DEFAULT_SIZE, 2, argc, argv);
    bench_heist_shape(&args, gather,
                      (long long)args.param * (args.param + 1) / 2);
    return 0;
}
