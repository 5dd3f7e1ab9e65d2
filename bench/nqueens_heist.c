/*
 * bench/nqueens_heist.c - nqueens(n) with heist fork-join: one task per
 * valid placement, each with its own copy of the board; the parent joins
 * them all (in reverse fork order) and sums their counts.
 */
#include <string.h>

#include "bench_heist.h"
#include "nqueens.h"

typedef struct nq_arg {
    int n, j;        /* board size; rows placed so far */
    char a[NQ_MAXN]; /* columns of the queens in rows 0..j-1 */
} nq_arg;

static void *nqueens(void *arg)
{
    const nq_arg *p = arg;
    if (p->j == p->n)
        return (void *)(intptr_t)1;
    nq_arg child[NQ_MAXN];
    heist_task t[NQ_MAXN];
    int forked = 0;
    for (int i = 0; i < p->n; i++) {
        nq_arg *c = &child[forked];
        c->n = p->n;
        c->j = p->j + 1;
        memcpy(c->a, p->a, (size_t)p->j);
        c->a[p->j] = (char)i;
        if (nq_ok(c->j, c->a))
            heist_fork(&t[forked++], nqueens, c);
    }
    intptr_t count = 0;
    while (forked > 0) {
        void *r;
        heist_join(&t[--forked], &r);
        count += (intptr_t)r;
    }
    return (void *)count;
}

static bench_args args;

static long long body(void *ctx, long n)
{
    nq_arg root = {.n = (int)n, .j = 0};
    return bench_heist_run(&args, ctx, nqueens, &root);
}

int main(int argc, char **argv)
{
    bench_parse(&args, "nqueens", BENCH_HEIST_IMPL, 12, argc, argv);
    if (args.param < 1 || args.param >= NQ_MAXN)
        bench_fail(&args, "n out of range");
    heist_sched *s = bench_heist_new(&args);
    bench_time(&args, body, s, bench_nqueens_expected(args.param));
    bench_heist_free(&args, s);
    return 0;
}
