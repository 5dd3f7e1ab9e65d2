/*
 * bench/hops_heist.c - issue 6's "chain" shape (named hops here: chain is
 * the older workload, which does not gather): create futures 0..N, spawn N
 * hops (hop i awaits future i, then resolves future i+1 with its value plus
 * one), resolve future 0 with 0, await future N (its value must be N), then
 * gather the hops. Measured cold and warm (bench_heist_shape; -c is cold).
 *
 * Each future has two owners, the hop (or main) that resolves it and the
 * hop (or main) that awaits it, and each drops its own reference when done
 * with it: the resolver may still be inside set_result when the awaiter has
 * resumed and moved on, so neither may free the future for the other.
 */
#include <stdlib.h>

#include "bench_heist.h"

static bench_args args;

static void *hop(void *arg)
{
    heist_future *in = ((heist_future **)arg)[0];
    heist_future *out = ((heist_future **)arg)[1];
    void *v;
    bench_heist_check(&args, heist_await(in, &v), "hop: await");
    heist_future_unref(in);
    bench_heist_check(&args,
                      heist_future_set_result(out, (void *)((intptr_t)v + 1)),
                      "hop: set_result");
    heist_future_unref(out);
    return NULL;
}

static void *hops(void *arg)
{
    long n = (long)(intptr_t)arg;
    heist_future **f = malloc(((size_t)n + 1) * sizeof *f);
    heist_future **t = malloc(((size_t)n + 1) * sizeof *t);
    if (!f || !t)
        bench_fail(&args, "out of memory");
    for (long i = 0; i <= n; i++) {
        f[i] = bench_heist_future(&args, heist_future_new(), "future_new");
        heist_future_ref(f[i]); /* one reference for each of the two owners */
    }
    for (long i = 0; i < n; i++)
        t[i] = bench_heist_future(&args, heist_spawn(NULL, hop, &f[i]),
                                  "spawn hop");
    bench_heist_check(&args, heist_future_set_result(f[0], NULL),
                      "set_result(future 0)");
    heist_future_unref(f[0]);
    void *v;
    bench_heist_check(&args, heist_await(f[n], &v), "await future N");
    heist_future_unref(f[n]);
    heist_future *all =
        bench_heist_future(&args, heist_gather(t, (size_t)n), "gather hops");
    bench_heist_check(&args, heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    for (long i = 0; i < n; i++)
        heist_future_unref(t[i]);
    /* Every hop has returned (the gather is done), so the arrays can go. */
    free(t);
    free(f);
    return v;
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, "hops", BENCH_HEIST_IMPL, 100000, 2, argc, argv);
    bench_heist_shape(&args, hops, args.param);
    return 0;
}
