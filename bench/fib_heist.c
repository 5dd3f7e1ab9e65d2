/*
 * bench/fib_heist.c - fib(n) with heist fork-join: one task per call, no
 * cutoff, written as in heist/task.h (fork one half, call the other, join).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <heist/heist.h>

#include "harness.h"

static void *fib(void *arg) {
    long n = (long)(intptr_t)arg;
    if (n < 2)
        return (void *)(intptr_t)n;
    heist_task t;
    void *a, *b;
    heist_fork(&t, fib, (void *)(intptr_t)(n - 1));
    b = fib((void *)(intptr_t)(n - 2));
    heist_join(&t, &a);
    return (void *)((intptr_t)a + (intptr_t)b);
}

static bench_args args;

static long long body(void *ctx, long n) {
    void *r;
    int err = heist_run(ctx, fib, (void *)(intptr_t)n, &r);
    if (err)
        bench_fail(&args, strerror(err));
    return (intptr_t)r;
}

int main(int argc, char **argv) {
    bench_parse(&args, "fib", BENCH_HEIST_IMPL, 35, argc, argv);
    heist_sched *s;
    heist_config cfg = {.workers = args.workers};
    int err = heist_sched_new(&cfg, &s);
    if (err)
        bench_fail(&args, strerror(err));
    bench_time(&args, body, s, bench_fib_expected(args.param));
    heist_stats st;
    if (heist_sched_stats(s, &st) == 0)
        fprintf(stderr,
                "heist fib(%ld) w=%u: tasks %llu forks %llu inlined %llu "
                "steals %llu failed_steals %llu parks %llu\n",
                args.param, st.workers, (unsigned long long)st.total.tasks,
                (unsigned long long)st.total.forks,
                (unsigned long long)st.total.inlined,
                (unsigned long long)st.total.steals,
                (unsigned long long)st.total.failed_steals,
                (unsigned long long)st.total.parks);
    err = heist_sched_free(s);
    if (err)
        bench_fail(&args, strerror(err));
    return 0;
}
