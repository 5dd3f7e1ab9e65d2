/*
 * bench/idle_omp.c - CPU burnt by an idle OpenMP runtime: one parallel
 * region with one tiny task, then sleep PARAM ms outside any region (the
 * team's threads wait in the runtime's pool) and measure the process CPU
 * time. The wait policy is the runtime's default (OMP_WAIT_POLICY unset).
 */
#include <omp.h>

#include "harness.h"

static long long tiny(void *ctx, long unused)
{
    (void)ctx;
    (void)unused;
    long x = 0;
#pragma omp parallel
#pragma omp single
    {
#pragma omp task shared(x)
        x = 1;
#pragma omp taskwait
        x += 1;
    }
    return x;
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "idle", "omp", 1000, argc, argv);
    omp_set_dynamic(0);
    omp_set_num_threads((int)a.workers);
    bench_idle(&a, tiny, NULL, 2);
    return 0;
}
