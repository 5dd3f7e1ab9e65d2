/*
 * bench/fanin_heist.c - issue 6's "fanin" shape: spawn N trivial tasks
 * (task i returns i+1), then gather them; the result is their sum. The same
 * work as gather_heist.c, measured cold and warm (bench_heist_shape; -c is
 * cold).
 */
#include <stdlib.h>

#include "bench_heist.h"

static bench_args args;

static void *trivial(void *arg)
{
    return arg;
}

static void *fanin(void *arg)
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
    bench_parse_workers(&args, "fanin", BENCH_HEIST_IMPL, 100000, 2, argc, argv);
    bench_heist_shape(&args, fanin, (long long)args.param * (args.param + 1) / 2);
    return 0;
}
