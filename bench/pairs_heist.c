/*
 * bench/pairs_heist.c - the seed's foo/bar pair, N times over: foo awaits a
 * future that bar resolves, and main gathers all 2N tasks. bar does not
 * sleep (the seed's 3 s sleep is the sleeps workload). The result is the
 * sum of foo's results, the values bar set: 1 + 2 + ... + N.
 *
 * Built twice (bench/CMakeLists.txt): as pairs_heist, and as seed_heist
 * (BENCH_WORKLOAD "seed", issue 6's "seed" shape: every pair spawned first,
 * then gathered, which is what this program does), both measured cold (-c)
 * and warm by bench_heist_shape.
 */
#include <stdlib.h>

#include "bench_heist.h"

#ifndef BENCH_WORKLOAD
#define BENCH_WORKLOAD "pairs"
#endif

static bench_args args;

typedef struct pair {
    heist_future *fut;
    intptr_t value; /* what bar resolves fut with */
} pair;

static void *bar(void *arg)
{
    const pair *p = arg;
    bench_heist_check(&args, heist_future_set_result(p->fut, (void *)p->value),
                      "bar: set_result");
    return NULL;
}

static void *foo(void *arg)
{
    void *v;
    bench_heist_check(&args, heist_await(arg, &v), "foo: await");
    return v;
}

static void *pairs(void *arg)
{
    long n = (long)(intptr_t)arg;
    pair *p = malloc((size_t)n * sizeof *p);
    heist_future **t = malloc(2 * (size_t)n * sizeof *t);
    if (!p || !t)
        bench_fail(&args, "out of memory");
    for (long i = 0; i < n; i++) {
        p[i].fut = bench_heist_future(&args, heist_future_new(), "future_new");
        p[i].value = i + 1;
        t[2 * i] = bench_heist_future(&args, heist_spawn(NULL, foo, p[i].fut),
                                      "spawn foo");
        t[2 * i + 1] = bench_heist_future(&args, heist_spawn(NULL, bar, &p[i]),
                                          "spawn bar");
    }
    heist_future *all =
        bench_heist_future(&args, heist_gather(t, 2 * (size_t)n), "gather");
    bench_heist_check(&args, heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    intptr_t sum = 0;
    for (long i = 0; i < n; i++) {
        void *v;
        bench_heist_check(&args, heist_future_result(t[2 * i], &v),
                          "foo's result");
        sum += (intptr_t)v;
        /* Every bar has returned (the gather is done), so nobody touches
         * the futures any more. */
        heist_future_unref(t[2 * i]);
        heist_future_unref(t[2 * i + 1]);
        heist_future_unref(p[i].fut);
    }
    free(t);
    free(p);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, BENCH_WORKLOAD, BENCH_HEIST_IMPL, 100000, 2,
                        argc, argv);
    bench_heist_shape(&args, pairs, (long long)args.param * (args.param + 1) / 2);
    return 0;
}
