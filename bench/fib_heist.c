/*
 * bench/fib_heist.c - fib(n) with heist fork-join: one task per call, no
 * cutoff, written as in heist/task.h (fork one half, call the other, join).
 * Built four ways: fib_heist (libheist.so), fib_heist_static (libheist.a),
 * with BENCH_JOIN_FN, fib_heist_fn: heist_join_fn(&t, fib, &a), the join
 * that names the function (an unstolen child is a direct call), and, with
 * BENCH_LEAF_ON_ARG, fib_heist_leaf: the leaf test made on the argument
 * itself, before it is converted (README, "Fork-join code the compiler can
 * speed up"): gcc then inlines that test into fib's callers and calls fib
 * only for inner nodes.
 */
#include "bench_heist.h"

#ifdef BENCH_JOIN_FN
#define JOIN(t, fn, res) heist_join_fn((t), (fn), (res))
#else
#define JOIN(t, fn, res) heist_join((t), (res))
#endif

static void *fib(void *arg)
{
#ifdef BENCH_LEAF_ON_ARG
    /* The test reads the parameter itself; the conversion below is then
     * part of the body, which gcc's partial inlining (-fpartial-inlining,
     * on at -O2) can split off, inlining this test into the callers. */
    if ((uintptr_t)arg < 2)
        return arg;
    long n = (long)(intptr_t)arg;
#else
    long n = (long)(intptr_t)arg;
    if (n < 2)
        return (void *)(intptr_t)n;
#endif
    heist_task t;
    void *a, *b;
    heist_fork(&t, fib, (void *)(intptr_t)(n - 1));
    b = fib((void *)(intptr_t)(n - 2));
    JOIN(&t, fib, &a);
    return (void *)((intptr_t)a + (intptr_t)b);
}

static bench_args args;

static long long body(void *ctx, long n)
{
    return bench_heist_run(&args, ctx, fib, (void *)(intptr_t)n);
}

int main(int argc, char **argv)
{
    bench_parse(&args, "fib", BENCH_HEIST_IMPL, 35, argc, argv);
    heist_sched *s = bench_heist_new(&args);
    bench_time(&args, body, s, bench_fib_expected(args.param));
    bench_heist_free(&args, s);
    return 0;
}
