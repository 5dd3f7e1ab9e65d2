/*
 * bench/forkwait_heist.c - forks that wait: main forks N children that each
 * sleep 10 us, then sleeps 10 us itself and joins them all in reverse. Its
 * suspension runs the newest children one inside another, 8 deep, and
 * hands the rest to the worker's ready queue, each to run on a stack of
 * its own (lib/fork.c, "Bounded drains"; before that bound, about 740 such
 * children overflowed the default stack). Result: the sum of the
 * children's results (child i returns i + 1). Warm, or cold with -c.
 */
#include "bench_heist.h"

#include <stdlib.h>

#define NAP_NS 10000u

static void *child(void *arg)
{
    if (heist_sleep(NAP_NS) != 0)
        return NULL; /* a wrong sum */
    return (void *)((intptr_t)arg + 1);
}

static void *forkwait(void *arg)
{
    long n = (long)(intptr_t)arg;
    heist_task *t = malloc((size_t)n * sizeof *t);
    if (!t)
        return NULL;
    for (long i = 0; i < n; i++)
        heist_fork(&t[i], child, (void *)(intptr_t)i);
    /* A failed sleep (ENOMEM) makes the sum wrong: the run fails. */
    intptr_t sum = heist_sleep(NAP_NS) == 0 ? 0 : -1;
    for (long i = n - 1; i >= 0; i--) {
        void *r = NULL;
        if (heist_join(&t[i], &r) != 0)
            r = NULL;
        sum += (intptr_t)r;
    }
    free(t);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    bench_args args;
    /* 2 workers by default, as its Go peer (bench_go.go). */
    bench_parse_workers(&args, "forkwait", BENCH_HEIST_IMPL, 3000, 2, argc,
                        argv);
    if (args.param < 1)
        bench_fail(&args, "N must be at least 1");
    long long n = args.param;
    bench_heist_shape(&args, forkwait, n * (n + 1) / 2);
    return 0;
}
