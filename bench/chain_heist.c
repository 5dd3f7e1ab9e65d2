/*
 * bench/chain_heist.c - a chain of N tasks: task i awaits future i and
 * resolves future i+1 with its value plus one; main resolves future 0 with
 * 0 and awaits future N, whose value must be N.
 *
 * Each future has two owners, the task that resolves it and the task that
 * awaits it, and each drops its own reference when done with it: the
 * resolver may still be inside set_result when the awaiter has resumed and
 * moved on, so neither may free the future for the other.
 */
#include <stdlib.h>

#include "bench_heist.h"

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
    if (!f)
        bench_fail(&args, "out of memory");
    for (long i = 0; i <= n; i++) {
        f[i] = bench_heist_future(&args, heist_future_new(), "future_new");
        heist_future_ref(f[i]); /* one reference for each of the two owners */
    }
    for (long i = 0; i < n; i++)
        /* The task's own future is not needed: future N says it is done. */
        heist_future_unref(bench_heist_future(
            &args, heist_spawn(NULL, link_task, &f[i]), "spawn"));
    bench_heist_check(&args, heist_future_set_result(f[0], NULL),
                      "set_result(future 0)");
    heist_future_unref(f[0]);
    void *v;
    bench_heist_check(&args, heist_await(f[n], &v), "await future N");
    heist_future_unref(f[n]);
    /* Every task copied its two slots when it started, before the chain
     * could reach future N, so the array can go. */
    free(f);
    return v;
}

static long long body(void *ctx, long n)
{
    return bench_heist_run(&args, ctx, chain, (void *)(intptr_t)n);
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, "chain", BENCH_HEIST_IMPL, 100000, 2, argc,
                        argv);
    heist_sched *s = bench_heist_new(&args);
    bench_time(&args, body, s, args.param);
    bench_heist_free(&args, s);
    return 0;
}
