/*
 * bench/fib_tbb.cpp - fib(n) with oneTBB task_group: one task per call, no
 * cutoff, in a task_arena of WORKERS threads.
 */
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "harness.h"

static long fib(long n)
{
    if (n < 2)
        return n;
    long x, y;
    tbb::task_group g;
    g.run([&] { x = fib(n - 1); });
    y = fib(n - 2);
    g.wait();
    return x + y;
}

static long long body(void *ctx, long n)
{
    auto *arena = static_cast<tbb::task_arena *>(ctx);
    long r = 0;
    arena->execute([&] { r = fib(n); });
    return r;
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "fib", "tbb", 35, argc, argv);
    // The arena has WORKERS slots (the calling thread and WORKERS-1 TBB
    // workers); global_control lets it exceed the core count when asked to.
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           a.workers);
    tbb::task_arena arena(static_cast<int>(a.workers));
    bench_time(&a, body, &arena, bench_fib_expected(a.param));
    return 0;
}
