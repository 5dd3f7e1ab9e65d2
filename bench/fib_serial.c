/* bench/fib_serial.c - fib(n), the serial baseline of fib_heist.c. */
#include "harness.h"

static long fib(long n)
{
    if (n < 2)
        return n;
    return fib(n - 1) + fib(n - 2);
}

static long long body(void *ctx, long n)
{
    (void)ctx;
    return fib(n);
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "fib", "serial", 35, argc, argv);
    if (a.workers != 1)
        bench_fail(&a, "the serial baseline has 1 worker");
    bench_time(&a, body, NULL, bench_fib_expected(a.param));
    return 0;
}
