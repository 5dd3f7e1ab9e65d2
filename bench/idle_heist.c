/*
 * bench/idle_heist.c - CPU burnt by an idle heist scheduler: run one tiny
 * fork-join task, then sleep PARAM ms and measure the process CPU time.
 */
#include "bench_heist.h"

static void *leaf(void *arg)
{
    return arg;
}

static void *tiny_task(void *arg)
{
    (void)arg;
    heist_task t;
    void *a;
    heist_fork(&t, leaf, (void *)(intptr_t)1);
    heist_join(&t, &a);
    return (void *)((intptr_t)a + 1);
}

static bench_args args;

static long long tiny(void *ctx, long unused)
{
    (void)unused;
    return bench_heist_run(&args, ctx, tiny_task, NULL);
}

int main(int argc, char **argv)
{
    bench_parse(&args, "idle", BENCH_HEIST_IMPL, 1000, argc, argv);
    heist_sched *s = bench_heist_new(&args);
    bench_idle(&args, tiny, s, 2);
    bench_heist_free(&args, s);
    return 0;
}
