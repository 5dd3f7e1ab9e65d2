/*
 * bench/harness.h - the shared driver of every benchmark program.
 *
 * Each program is one workload in one implementation (serial, heist,
 * heist_static, omp, tbb). It parses the same command line:
 *
 *     PROGRAM [-w WORKERS] [-r REPS] [-W WARMUP] [-c] [PARAM]
 *
 * creates its runtime once (scheduler, OpenMP team, TBB arena), runs the
 * workload WARMUP times untimed, then REPS times timed in the same process,
 * checks every result, and prints one CSV row on stdout:
 *
 *     workload,param,impl,workers,median_ms,min_ms,runs
 *
 * -c (cold; the programs of the issue-6 shapes, seed, hops and fanin,
 * and forkwait and waiting take it; the others refuse it, with a FAIL):
 * one run only, timed from before the runtime is created to after it
 * is freed; the row then says runs 1 and median = min = that time. A cold
 * figure is the first run in a fresh process: bench/run.sh starts one
 * process per cold sample.
 *
 * A wrong result prints "FAIL: ..." on stderr and exits with status 1.
 */
#ifndef HEIST_BENCH_HARNESS_H
#define HEIST_BENCH_HARNESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The impl name of the heist programs: "heist", or "heist_static" for the
 * same source linked with libheist.a (set by bench/CMakeLists.txt). */
#ifndef BENCH_HEIST_IMPL
#define BENCH_HEIST_IMPL "heist"
#endif

typedef struct bench_args {
    const char *workload; /* "fib", "nqueens", ... */
    const char *impl;     /* "serial", "heist", "heist_static", "omp", "tbb" */
    long param;           /* the problem size */
    unsigned workers;     /* -w, default 1 (2 for the futures programs) */
    unsigned reps;        /* -r, default 5 */
    unsigned warmup;      /* -W, default 1 */
    int cold;             /* -c: one run, runtime creation and release
                             included (see above) */
} bench_args;

/*
 * Fills *a from the command line; param_default is used when PARAM is not
 * given. Exits with status 2 on a malformed command line.
 */
void bench_parse(bench_args *a, const char *workload, const char *impl,
                 long param_default, int argc, char **argv);

/* bench_parse with another default for -w: the futures programs run on 2
 * workers when not told otherwise (their comparisons are at 2). */
void bench_parse_workers(bench_args *a, const char *workload, const char *impl,
                         long param_default, unsigned workers_default, int argc,
                         char **argv);

/* One run of the workload; returns its result. */
typedef long long (*bench_body)(void *ctx, long param);

/*
 * Runs body warmup + reps times, checks each result against expected
 * (exits 1 on a mismatch), and prints the CSV row.
 */
void bench_time(const bench_args *a, bench_body body, void *ctx,
                long long expected);

/*
 * The idle-CPU measurement: for each of warmup + reps windows, calls
 * tiny(ctx) (one tiny piece of parallel work), then sleeps PARAM ms and
 * measures the process CPU time (user + system, all threads) spent during
 * the sleep. Samples are CPU ms per idle second; tiny returns a value that
 * must equal expected.
 */
void bench_idle(const bench_args *a, bench_body tiny, void *ctx,
                long long expected);

/* The monotonic clock, in ms. */
double bench_now_ms(void);

/*
 * The end of a cold run (-c) begun at t0_ms (bench_now_ms before the
 * runtime was created): checks the result and prints the CSV row of that
 * one sample.
 */
void bench_cold_report(const bench_args *a, double t0_ms, long long got,
                       long long expected);

/*
 * Prints the CSV row of n >= 1 samples (ms): their median (the middle one,
 * or the mean of the two middle ones) and min. Sorts them in place. For
 * programs that time their runs themselves (bench/waiting_*.c).
 */
void bench_report(const bench_args *a, double *samples, unsigned n);

/* Prints "FAIL: <what>" on stderr and exits with status 1. */
void bench_fail(const bench_args *a, const char *what);

/* Expected results, computed independently of the timed code. */
long long bench_fib_expected(long n);     /* iterative */
long long bench_nqueens_expected(long n); /* known table, n <= 15 */
long long bench_skynet_expected(long leaves);

#ifdef __cplusplus
}
#endif

#endif /* HEIST_BENCH_HARNESS_H */
