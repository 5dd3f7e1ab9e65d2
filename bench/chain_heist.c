/*
 * bench/chain_heist.c - a chain of N tasks: task i awaits future i and
 * resolves future i+1 with its value plus one; main resolves future 0 with
 * 0 and awaits future N, whose value must be N.
 *
 * Built twice (bench/CMakeLists.txt): as chain_heist, and as hops_heist
 * (BENCH_GATHER_HOPS: issue 6's "chain" shape, which also gathers the
 * tasks after future N), both measured cold (-c) and warm by
 * bench_heist_shape.
 *
 * Each future has two owners, the task that resolves it and the task that
 * awaits it, and each drops its own reference when done with it: the
 * resolver may still be inside set_result when the awaiter has resumed and
 * moved on, so neither may free the future for the other.
 */
#include <stdlib.h>

#include "bench_heist.h"

#ifndef BENCH_WORKLOAD
#define BENCH_WORKLOAD "chain"
#endif

static bench_args args;

static void *link_task(void *arg)
{
    /* Copied now: once this task resolves its successor, main may reach
     * the end of the chain and free the array. */
    heist_future *in = ((heist_future **)arg)[0];
    heist_future *out = ((heist_future **)arg)[1];
    void *v;
    bench_heist_check(&args, heist_await(in, &v), "link: await");
    heist_future_unref(in);
    bench_heist_check(&args,
                      heist_future_set_result(out, (void *)((intptr_t)v + 1)),
                      "link: set_result");
    heist_future_unref(out);
    return NULL;
}

static void *chain(void *arg)
{
    long n = (long)(intptr_t)arg;
    heist_future **f = malloc(((size_t)n + 1) * sizeof *f);
#ifdef BENCH_GATHER_HOPS
    heist_future **t = malloc((size_t)n * sizeof *t);
    if (!t)
        bench_fail(&args, "out of memory");
#endif
    if (!f)
        bench_fail(&args, "out of memory");
    for (long i = 0; i <= n; i++) {
        f[i] = bench_heist_future(&args, heist_future_new(), "future_new");
        heist_future_ref(f[i]); /* one reference for each of the two owners */
    }
    for (long i = 0; i < n; i++) {
        heist_future *task = bench_heist_future(
            &args, heist_spawn(NULL, link_task, &f[i]), "spawn");
#ifdef BENCH_GATHER_HOPS
        t[i] = task;
#else
        /* The task's own future is not needed: future N says it is done. */
        heist_future_unref(task);
#endif
    }
    bench_heist_check(&args, heist_future_set_result(f[0], NULL),
                      "set_result(future 0)");
    heist_future_unref(f[0]);
    void *v;
    bench_heist_check(&args, heist_await(f[n], &v), "await future N");
    heist_future_unref(f[n]);
#ifdef BENCH_GATHER_HOPS
    heist_future *all =
        bench_heist_future(&args, heist_gather(t, (size_t)n), "gather hops");
    bench_heist_check(&args, heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    for (long i = 0; i < n; i++)
        heist_future_unref(t[i]);
    free(t);
#endif
    /* Every task copied its two slots when it started, before the chain
     * could reach future N, so the array can go. */
    free(f);
    return v;
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, BENCH_WORKLOAD, BENCH_HEIST_IMPL, 100000, 2,
                        argc, argv);
    bench_heist_shape(&args, chain, args.param);
    return 0;
}
