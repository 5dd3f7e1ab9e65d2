/* bench/nqueens_serial.c - nqueens(n), the serial baseline. */
#include "harness.h"
#include "nqueens.h"

static long nqueens(int n, int j, char *a)
{
    if (j == n)
        return 1;
    long count = 0;
    for (int i = 0; i < n; i++) {
        a[j] = (char)i;
        if (nq_ok(j + 1, a))
            count += nqueens(n, j + 1, a);
    }
    return count;
}

static long long body(void *ctx, long n)
{
    (void)ctx;
    char a[NQ_MAXN];
    return nqueens((int)n, 0, a);
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "nqueens", "serial", 12, argc, argv);
    if (a.workers != 1)
        bench_fail(&a, "the serial baseline has 1 worker");
    if (a.param < 1 || a.param >= NQ_MAXN)
        bench_fail(&a, "n out of range");
    bench_time(&a, body, NULL, bench_nqueens_expected(a.param));
    return 0;
}
