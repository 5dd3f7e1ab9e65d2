/*
 * bench/idle_tbb.cpp - CPU burnt by an idle oneTBB arena: one tiny
 * task_group in the arena, then sleep PARAM ms and measure the process CPU
 * time.
 */
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "harness.h"

namespace
{

long long tiny(void *ctx, long)
{
    auto *arena = static_cast<tbb::task_arena *>(ctx);
    long x = 0;
    arena->execute([&] {
        tbb::task_group g;
        g.run([&x] { x = 1; });
        g.wait();
        x += 1;
    });
    return x;
}

} // namespace

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "idle", "tbb", 1000, argc, argv);
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           a.workers);
    tbb::task_arena arena(static_cast<int>(a.workers));
    bench_idle(&a, tiny, &arena, 2);
    return 0;
}
