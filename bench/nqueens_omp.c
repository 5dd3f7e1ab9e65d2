/*
 * bench/nqueens_omp.c - nqueens(n) with OpenMP tasks: one task per valid
 * placement, each with its own copy of the board, then one taskwait.
 */
#include <omp.h>
#include <string.h>

#include "harness.h"
#include "nqueens.h"

static long nqueens(int n, int j, const char *a)
{
    if (j == n)
        return 1;
    long count[NQ_MAXN] = {0};
    for (int i = 0; i < n; i++) {
        char b[NQ_MAXN];
        memcpy(b, a, (size_t)j);
        b[j] = (char)i;
        if (nq_ok(j + 1, b)) {
#pragma omp task shared(count) firstprivate(b, i)
            count[i] = nqueens(n, j + 1, b);
        }
    }
#pragma omp taskwait
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += count[i];
    return sum;
}

static long long body(void *ctx, long n)
{
    (void)ctx;
    long r = 0;
    char a[NQ_MAXN];
#pragma omp parallel
#pragma omp single
    r = nqueens((int)n, 0, a);
    return r;
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "nqueens", "omp", 12, argc, argv);
    if (a.param < 1 || a.param >= NQ_MAXN)
        bench_fail(&a, "n out of range");
    omp_set_dynamic(0);
    omp_set_num_threads((int)a.workers);
    bench_time(&a, body, NULL, bench_nqueens_expected(a.param));
    return 0;
}
