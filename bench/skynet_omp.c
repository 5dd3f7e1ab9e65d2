/*
 * bench/skynet_omp.c - the skynet sum with OpenMP tasks: each inner node
 * creates a task per child, then one taskwait.
 */
#include <omp.h>

#include "harness.h"
#include "skynet.h"

static long long skynet(long long num, long size)
{
    if (size == 1)
        return num;
    long long sums[10];
    for (int i = 0; i < 10; i++) {
#pragma omp task shared(sums) firstprivate(i)
        sums[i] = skynet(num + i * (size / 10), size / 10);
    }
#pragma omp taskwait
    long long sum = 0;
    for (int i = 0; i < 10; i++)
        sum += sums[i];
    return sum;
}

static long long body(void *ctx, long leaves)
{
    (void)ctx;
    long long r = 0;
#pragma omp parallel
#pragma omp single
    r = skynet(0, leaves);
    return r;
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "skynet", "omp", 1000000, argc, argv);
    if (!skynet_leaves_ok(a.param))
        bench_fail(&a, "leaves must be a power of 10");
    omp_set_dynamic(0);
    omp_set_num_threads((int)a.workers);
    bench_time(&a, body, NULL, bench_skynet_expected(a.param));
    return 0;
}
