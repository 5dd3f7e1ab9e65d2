/*
 * bench/fib_omp.c - fib(n) with OpenMP tasks: one task per call, no cutoff,
 * inside one parallel region of WORKERS threads.
 */
#include <omp.h>

#include "harness.h"

static long fib(long n)
{
    if (n < 2)
        return n;
    long x, y;
#pragma omp task shared(x)
    x = fib(n - 1);
    y = fib(n - 2);
#pragma omp taskwait
    return x + y;
}

static long long body(void *ctx, long n)
{
    (void)ctx;
    long r = 0;
#pragma omp parallel
#pragma omp single
    r = fib(n);
    return r;
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "fib", "omp", 35, argc, argv);
    omp_set_dynamic(0);
    omp_set_num_threads((int)a.workers);
    bench_time(&a, body, NULL, bench_fib_expected(a.param));
    return 0;
}
