/*
 * bench/skynet_tbb.cpp - the skynet sum with oneTBB task_group: each inner
 * node runs a task per child, then one wait.
 */
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "harness.h"
#include "skynet.h"

namespace
{

long long skynet(long long num, long size)
{
    if (size == 1)
        return num;
    long long sums[10];
    tbb::task_group g;
    for (int i = 0; i < 10; i++)
        g.run([&sums, i, num, size] {
            sums[i] = skynet(num + i * (size / 10), size / 10);
        });
    g.wait();
    long long sum = 0;
    for (int i = 0; i < 10; i++)
        sum += sums[i];
    return sum;
}

long long body(void *ctx, long leaves)
{
    auto *arena = static_cast<tbb::task_arena *>(ctx);
    long long r = 0;
    arena->execute([&] { r = skynet(0, leaves); });
    return r;
}

} // namespace

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "skynet", "tbb", 1000000, argc, argv);
    if (!skynet_leaves_ok(a.param))
        bench_fail(&a, "leaves must be a power of 10");
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           a.workers);
    tbb::task_arena arena(static_cast<int>(a.workers));
    bench_time(&a, body, &arena, bench_skynet_expected(a.param));
    return 0;
}
