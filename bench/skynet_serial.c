/* bench/skynet_serial.c - the skynet sum, the serial baseline. */
#include "harness.h"
#include "skynet.h"

static long long skynet(long long num, long size)
{
    if (size == 1)
        return num;
    long long sum = 0;
    for (int i = 0; i < 10; i++)
        sum += skynet(num + i * (size / 10), size / 10);
    return sum;
}

static long long body(void *ctx, long leaves)
{
    (void)ctx;
    return skynet(0, leaves);
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "skynet", "serial", 1000000, argc, argv);
    if (a.workers != 1)
        bench_fail(&a, "the serial baseline has 1 worker");
    if (!skynet_leaves_ok(a.param))
        bench_fail(&a, "leaves must be a power of 10");
    bench_time(&a, body, NULL, bench_skynet_expected(a.param));
    return 0;
}
