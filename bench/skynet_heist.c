/*
 * bench/skynet_heist.c - the skynet sum with heist fork-join: each inner
 * node forks its 10 children, then joins them in reverse fork order.
 */
#include <stdint.h>
#include <string.h>

#include <heist/heist.h>

#include "harness.h"
#include "skynet.h"

/* Sums travel in the task result, a void *. */
_Static_assert(sizeof(void *) >= sizeof(long long), "64-bit pointers");

typedef struct sky_arg {
    long long num; /* number of the node's first leaf */
    long size;     /* leaves under the node */
} sky_arg;

static void *skynet(void *arg) {
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

static long long body(void *ctx, long leaves) {
    sky_arg root = {.num = 0, .size = leaves};
    void *r;
    int err = heist_run(ctx, skynet, &root, &r);
    if (err)
        bench_fail(&args, strerror(err));
    return (intptr_t)r;
}

int main(int argc, char **argv) {
    bench_parse(&args, "skynet", BENCH_HEIST_IMPL, 1000000, argc, argv);
    if (!skynet_leaves_ok(args.param))
        bench_fail(&args, "leaves must be a power of 10");
    heist_sched *s;
    heist_config cfg = {.workers = args.workers};
    int err = heist_sched_new(&cfg, &s);
    if (err)
        bench_fail(&args, strerror(err));
    bench_time(&args, body, s, bench_skynet_expected(args.param));
    err = heist_sched_free(s);
    if (err)
        bench_fail(&args, strerror(err));
    return 0;
}
