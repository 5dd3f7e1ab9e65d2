/*
 * bench/harness.c - command line, timing, checking and output shared by the
 * benchmark programs (see harness.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "harness.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void usage(const bench_args *a)
{
    fprintf(stderr,
            "usage: %s_%s [-w WORKERS] [-r REPS] [-W WARMUP] [-c] [PARAM]\n",
            a->workload, a->impl);
    exit(2);
}

static long parse_long(const bench_args *a, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        usage(a);
    return v;
}

void bench_parse(bench_args *a, const char *workload, const char *impl,
                 long param_default, int argc, char **argv)
{
    bench_parse_workers(a, workload, impl, param_default, 1, argc, argv);
}

void bench_parse_workers(bench_args *a, const char *workload, const char *impl,
                         long param_default, unsigned workers_default, int argc,
                         char **argv)
{
    a->workload = workload;
    a->impl = impl;
    a->param = param_default;
    a->workers = workers_default;
    a->reps = 5;
    a->warmup = 1;
    a->cold = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "-w") == 0 && i + 1 < argc)
            a->workers = (unsigned)parse_long(a, argv[++i], 1, 1024);
        else if (strcmp(s, "-r") == 0 && i + 1 < argc)
            a->reps = (unsigned)parse_long(a, argv[++i], 1, 100000);
        else if (strcmp(s, "-W") == 0 && i + 1 < argc)
            a->warmup = (unsigned)parse_long(a, argv[++i], 0, 100000);
        else if (strcmp(s, "-c") == 0)
            a->cold = 1;
        else if (s[0] != '-')
            a->param = parse_long(a, s, 0, 1000000000L);
        else
            usage(a);
    }
}

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void bench_fail(const bench_args *a, const char *what)
{
    fprintf(stderr, "FAIL: %s(%ld) %s, %u workers: %s\n", a->workload, a->param,
            a->impl, a->workers, what);
    exit(1);
}

static void check(const bench_args *a, long long got, long long expected)
{
    if (got != expected) {
        char msg[128];
        snprintf(msg, sizeof msg, "result %lld, expected %lld", got, expected);
        bench_fail(a, msg);
    }
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

void bench_report(const bench_args *a, double *samples, unsigned n)
{
    qsort(samples, n, sizeof *samples, cmp_double);
    double median =
        n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
    printf("%s,%ld,%s,%u,%.3f,%.3f,%u\n", a->workload, a->param, a->impl,
           a->workers, median, samples[0], n);
    fflush(stdout);
}

void bench_time(const bench_args *a, bench_body body, void *ctx,
                long long expected)
{
    /* A program with a cold mode handles -c before it gets here
     * (bench_heist_shape, waiting_heist); the others have none, and a warm
     * figure must not pass for a cold one. */
    if (a->cold)
        bench_fail(a, "-c: this program has no cold run (the shape "
                      "programs, forkwait and waiting have)");
    double *samples = malloc(a->reps * sizeof *samples);
    if (!samples)
        bench_fail(a, "out of memory");
    /* BENCH_SAMPLES=1: every timed repeat on stderr too, for runs whose
     * median hides a bimodal spread. */
    const char *each = getenv("BENCH_SAMPLES");
    bool print_each = each && strcmp(each, "0") != 0;
    for (unsigned i = 0; i < a->warmup; i++)
        check(a, body(ctx, a->param), expected);
    for (unsigned i = 0; i < a->reps; i++) {
        double t0 = bench_now_ms();
        long long r = body(ctx, a->param);
        samples[i] = bench_now_ms() - t0;
        if (print_each)
            fprintf(stderr, "%s(%ld) %s, %u workers: repeat %u: %.3f ms\n",
                    a->workload, a->param, a->impl, a->workers, i + 1,
                    samples[i]);
        check(a, r, expected);
    }
    bench_report(a, samples, a->reps);
    free(samples);
}

void bench_cold_report(const bench_args *a, double t0_ms, long long got,
                       long long expected)
{
    double ms = bench_now_ms() - t0_ms;
    check(a, got, expected);
    bench_report(a, &ms, 1);
}

long long bench_fib_expected(long n)
{
    long long x = 0, y = 1;
    for (long i = 0; i < n; i++) {
        long long t = x + y;
        x = y;
        y = t;
    }
    return x;
}

long long bench_nqueens_expected(long n)
{
    /* OEIS A000170 */
    static const long long solutions[] = {
        1,  1,   0,   0,    2,     10,    4,      40,
        92, 352, 724, 2680, 14200, 73712, 365596, 2279184};
    if (n < 0 || n >= (long)(sizeof solutions / sizeof solutions[0]))
        return -1;
    return solutions[n];
}

long long bench_skynet_expected(long leaves)
{
    return (long long)leaves * (leaves - 1) / 2;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

void bench_idle(const bench_args *a, bench_body tiny, void *ctx,
                long long expected)
{
    if (a->param < 1)
        bench_fail(a, "the idle window must be at least 1 ms");
    double *samples = malloc(a->reps * sizeof *samples);
    if (!samples)
        bench_fail(a, "out of memory");
    struct timespec window = {.tv_sec = a->param / 1000,
                              .tv_nsec = (a->param % 1000) * 1000000L};
    for (unsigned i = 0; i < a->warmup + a->reps; i++) {
        check(a, tiny(ctx, 0), expected);
        double c0 = cpu_ms();
        double t0 = bench_now_ms();
        struct timespec left = window;
        while (nanosleep(&left, &left) != 0 && errno == EINTR)
            ;
        double c1 = cpu_ms();
        double t1 = bench_now_ms();
        if (i >= a->warmup)
            samples[i - a->warmup] = (c1 - c0) * 1e3 / (t1 - t0);
    }
    bench_report(a, samples, a->reps);
    free(samples);
}
