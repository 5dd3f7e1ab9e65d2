/*
 * bench/idle_heist.c - CPU burnt by an idle heist scheduler: run one tiny
 * fork-join task, then sleep PARAM ms and measure the process CPU time.
 */
#include <stdint.h>
#include <string.h>

#include <heist/heist.h>

#include "harness.h"

static void *leaf(void *arg) {
    return arg;
}

static void *tiny_task(void *arg) {
    (void)arg;
    heist_task t;
    void *a;
    heist_fork(&t, leaf, (void *)(intptr_t)1);
    heist_join(&t, &a);
    return (void *)((intptr_t)a + 1);
}

static bench_args args;

static long long tiny(void *ctx, long unused) {
    (void)unused;
    void *r;
    int err = heist_run(ctx, tiny_task, NULL, &r);
    if (err)
        bench_fail(&args, strerror(err));
    return (intptr_t)r;
}

int main(int argc, char **argv) {
    bench_parse(&args, "idle", BENCH_HEIST_IMPL, 1000, argc, argv);
    heist_sched *s;
    heist_config cfg = {.workers = args.workers};
    int err = heist_sched_new(&cfg, &s);
    if (err)
        bench_fail(&args, strerror(err));
    bench_idle(&args, tiny, s, 2);
    err = heist_sched_free(s);
    if (err)
        bench_fail(&args, strerror(err));
    return 0;
}
