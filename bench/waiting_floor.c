/*
 * bench/waiting_floor.c - the machine's floor under the 1M-waiting figure
 * (bench/waiting_heist.c): the time to write N fresh pages, one byte in
 * each, with no scheduler at all.
 *
 * A task that waits holds its stack's top page at least (a C frame cannot
 * move, so two waiting tasks cannot share one), and a fresh page costs
 * what this program measures the first time it is written: on a virtual
 * machine whose hypervisor backs guest memory on first touch, most of a
 * cold million waiters is this cost (perf on waiting_heist: clear_page,
 * the kernel zeroing each new page, over half the samples). So a cold
 * waiting_heist figure is read against this one, measured in the same
 * run: N waiting tasks cannot take less than N fresh pages do.
 *
 * The pages are one anonymous mapping, written in address order (the
 * cheapest layout: a stack's top pages lie a stack apart, and their page
 * tables cost more), split between WORKERS threads (-w; default 2, as
 * waiting_heist), each writing a contiguous share. The time is from before
 * the mapping is made to after the last thread has written its share; the
 * mapping is unmapped after the clock stops. -c is one such run in a fresh
 * process (the cold figure, which the suite compares); without it, every
 * run maps anew in the same process, and the kernel mostly hands back the
 * pages the run before gave up (a warm figure, printed for contrast).
 *
 * Prints workload,param,impl,workers,median_ms,min_ms,runs as every
 * benchmark program does (workload "waiting", impl "floor").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

enum { FLOOR_MAX_THREADS = 64 };

static bench_args args;
static size_t page;

struct share {
    volatile char *lo;
    size_t pages;
};

static void *write_share(void *arg)
{
    const struct share *s = arg;
    for (size_t i = 0; i < s->pages; i++)
        s->lo[i * page] = 1;
    return NULL;
}

/* One run: maps n pages, writes each once on args.workers threads; returns
 * the ms that took. */
static double one_run(long n)
{
    size_t bytes = (size_t)n * page;
    double t0 = bench_now_ms();
    char *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        bench_fail(&args, "mmap");
    pthread_t tid[FLOOR_MAX_THREADS];
    struct share sh[FLOOR_MAX_THREADS];
    unsigned t = args.workers;
    size_t each = (size_t)n / t, rest = (size_t)n % t, at = 0;
    for (unsigned i = 0; i < t; i++) {
        sh[i].lo = map + at * page;
        sh[i].pages = each + (i < rest);
        at += sh[i].pages;
    }
    /* The caller writes the first share: t - 1 threads are made. */
    for (unsigned i = 1; i < t; i++)
        if (pthread_create(&tid[i], NULL, write_share, &sh[i]) != 0)
            bench_fail(&args, "pthread_create");
    write_share(&sh[0]);
    for (unsigned i = 1; i < t; i++)
        pthread_join(tid[i], NULL);
    double ms = bench_now_ms() - t0;
    /* Every page written, or the figure is not the floor (a FAIL, as a
     * wrong result is in every benchmark program). After the clock. */
    long seen = 0;
    for (long i = 0; i < n; i++)
        seen += map[(size_t)i * page] == 1;
    if (seen != n)
        bench_fail(&args, "a page was not written");
    munmap(map, bytes);
    return ms;
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, "waiting", "floor", 1000000, 2, argc, argv);
    long ps = sysconf(_SC_PAGESIZE);
    page = ps > 0 ? (size_t)ps : 4096;
    if (args.param < 1)
        bench_fail(&args, "the page count must be at least 1");
    if (args.workers < 1 || args.workers > FLOOR_MAX_THREADS)
        bench_fail(&args, "workers: 1 to 64");
    if (args.cold) {
        double ms = one_run(args.param);
        bench_report(&args, &ms, 1);
        return 0;
    }
    for (unsigned i = 0; i < args.warmup; i++)
        one_run(args.param);
    double *t = calloc(args.reps, sizeof *t);
    if (!t)
        bench_fail(&args, "out of memory");
    for (unsigned i = 0; i < args.reps; i++)
        t[i] = one_run(args.param);
    bench_report(&args, t, args.reps);
    free(t);
    return 0;
}
