/*
 * bench/skynet_heist.c - the skynet sum with heist fork-join: each inner
 * node forks its 10 children, then joins them in reverse fork order.
 */
#include "bench_heist.h"
#include "skynet.h"

/* Sums travel in the task result, a void *. */
_Static_assert(sizeof(void *) >= sizeof(long long), "64-bit pointers");

typedef struct sky_arg {
    long long num; /* number of the node's first leaf */
    long size;     /* leaves under the node */
} sky_arg;

static void *skynet(void *arg)
{
    const sky_arg *p = arg;
    if (p->size == 1)
        return (void *)(intptr_t)p->num;
    sky_arg child[10];
    heist_task t[10];
    for (int i = 0; i < 10; i++) {
        child[i].size = p->size / 10;
        child[i].num = p->num + i * child[i].size;
        heist_fork(&t[i], skynet, &child[i]);
    }
    intptr_t sum = 0;
    for (int i = 9; i >= 0; i--) {
        void *r;
        heist_join(&t[i], &r);
        sum += (intptr_t)r;
    }
    return (void *)sum;
}

static bench_args args;

static long long body(void *ctx, long leaves)
{
    sky_arg root = {.num = 0, .size = leaves};
    return bench_heist_run(&args, ctx, skynet, &root);
}

int main(int argc, char **argv)
{
    bench_parse(&args, "skynet", BENCH_HEIST_IMPL, 1000000, argc, argv);
    if (!skynet_leaves_ok(args.param))
        bench_fail(&args, "leaves must be a power of 10");
    heist_sched *s = bench_heist_new(&args);
    bench_time(&args, body, s, bench_skynet_expected(args.param));
    bench_heist_free(&args, s);
    return 0;
}
