/*
 * bench/nqueens_tbb.cpp - nqueens(n) with oneTBB task_group: one task per
 * valid placement, each with its own copy of the board, then one wait.
 */
#include <cstring>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "harness.h"
#include "nqueens.h"

namespace
{

struct board {
    char a[NQ_MAXN];
};

long nqueens(int n, int j, const board &p)
{
    if (j == n)
        return 1;
    long count[NQ_MAXN] = {};
    tbb::task_group g;
    for (int i = 0; i < n; i++) {
        board b;
        std::memcpy(b.a, p.a, static_cast<size_t>(j));
        b.a[j] = static_cast<char>(i);
        if (nq_ok(j + 1, b.a))
            g.run([&count, n, j, i, b] { count[i] = nqueens(n, j + 1, b); });
    }
    g.wait();
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += count[i];
    return sum;
}

long long body(void *ctx, long n)
{
    auto *arena = static_cast<tbb::task_arena *>(ctx);
    long r = 0;
    board root{};
    arena->execute([&] { r = nqueens(static_cast<int>(n), 0, root); });
    return r;
}

} // namespace

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse(&a, "nqueens", "tbb", 12, argc, argv);
    if (a.param < 1 || a.param >= NQ_MAXN)
        bench_fail(&a, "n out of range");
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           a.workers);
    tbb::task_arena arena(static_cast<int>(a.workers));
    bench_time(&a, body, &arena, bench_nqueens_expected(a.param));
    return 0;
}
